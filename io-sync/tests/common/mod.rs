//! Builders shared by the disk tests.
#![allow(dead_code)] // each test binary uses a subset

use bytes::Bytes;
use io_sync::disk::{EntryPayload, LogConfig, LogEntry, PartitionLog};
use proto_core::storage::batch::{encode_batch, BatchSpec, Record};

/// A data batch of `records` records of 100 bytes each, at `offset`.
pub fn data_batch(offset: i64, term: u64, records: usize, ts: i64) -> Bytes {
    let value = vec![7u8; 100];
    let recs: Vec<Record<'_>> = (0..records)
        .map(|i| Record {
            timestamp_delta: i as i64,
            key: None,
            value: Some(&value),
        })
        .collect();
    let spec = BatchSpec {
        base_offset: offset,
        partition_leader_epoch: term as i32,
        attributes: 0,
        base_timestamp: ts,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
    Bytes::from(encode_batch(&spec, &recs))
}

/// Appends one data entry of `records` records at the log's end.
pub fn append_data(log: &mut PartitionLog, term: u64, records: usize, ts: i64) -> LogEntry {
    let e = LogEntry {
        raft_index: log.last_raft_index() + 1,
        term,
        payload: EntryPayload::Data(data_batch(log.next_offset(), term, records, ts)),
    };
    log.append(std::slice::from_ref(&e)).expect("append data");
    e
}

/// Appends one Raft-only entry at the log's end.
pub fn append_raft(log: &mut PartitionLog, term: u64, payload: &'static [u8]) -> LogEntry {
    let e = LogEntry {
        raft_index: log.last_raft_index() + 1,
        term,
        payload: EntryPayload::Raft(Bytes::from_static(payload)),
    };
    log.append(std::slice::from_ref(&e)).expect("append raft");
    e
}

/// A config with small segments so tests roll.
pub fn small_segments(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}
