//! Keeping idempotent producers' state true to the log it describes.
//!
//! A partition's producer state records batches when a leader proposes them,
//! when a new leader inherits them uncommitted, and at start from every stored
//! batch. Raft may later truncate such an uncommitted batch; the state would
//! still remember it, and a retry of that batch would be answered as a
//! duplicate with offsets that hold other records, or nothing: an
//! acknowledgement of a lost write (found by the whole-node simulator,
//! `conformance/src/node_sim`, seed 2). So before a batch is answered as a
//! duplicate, the batch it duplicates must be in the log at those offsets; if
//! it is not, the partition's producer state is rebuilt from the log as it is
//! (Kafka rebuilds it after a truncation for the same reason).

use proto_core::multiraft::GroupId;
use proto_core::producer::{Check, ProducerStates};
use proto_core::raft::{Entry, Payload};
use proto_core::storage::batch::BatchHeader;

use super::{record_producer, Node};
use crate::store::TopicPartition;

/// The fields that make two stored batches the same producer's same batch.
fn same_batch(a: &BatchHeader, b: &BatchHeader) -> bool {
    a.producer_id == b.producer_id
        && a.producer_epoch == b.producer_epoch
        && a.base_sequence == b.base_sequence
        && a.last_offset_delta == b.last_offset_delta
}

/// The batch header of a data entry.
fn entry_header(e: &Entry) -> Option<BatchHeader> {
    match &e.payload {
        Payload::Normal(data) => BatchHeader::parse(data).ok(),
        _ => None,
    }
}

impl Node {
    /// Rebuilds `group`'s producer state if `records` (a produce's records
    /// for it) would be answered as a duplicate of a batch the log does not
    /// hold.
    pub(super) fn freshen_producer_state(
        &mut self,
        group: GroupId,
        tp: &TopicPartition,
        records: Option<&[u8]>,
    ) {
        let Some(header) = records.and_then(|r| BatchHeader::parse(r).ok()) else {
            return;
        };
        if header.producer_id < 0 {
            return;
        }
        let Some(p) = self.partitions.get(&group) else {
            return;
        };
        let Check::Duplicate(d) = p.producers.check(&header) else {
            return;
        };
        if self.batch_stored_at(group, tp, d.base_offset, &header) {
            return;
        }
        tracing::warn!(%tp, producer = header.producer_id, offset = d.base_offset,
            "producer state remembered a batch the log no longer holds; rebuilding it");
        self.rebuild_producers(group, tp);
    }

    /// Whether the log of `group` holds a batch like `header` at `offset`:
    /// the Raft log in memory is the truth above its snapshot, the store
    /// (committed, so never truncated) below.
    fn batch_stored_at(
        &self,
        group: GroupId,
        tp: &TopicPartition,
        offset: i64,
        header: &BatchHeader,
    ) -> bool {
        if let Some(raft) = self.raft.group(group) {
            let log = raft.log();
            let in_memory = log.slice(log.snapshot_last().index, log.last_index());
            let mut first_offset = None;
            for h in in_memory.iter().filter_map(entry_header) {
                first_offset.get_or_insert(h.base_offset);
                if h.base_offset == offset {
                    return same_batch(&h, header);
                }
            }
            if first_offset.is_some_and(|f| offset >= f) {
                return false;
            }
        }
        match self.store.read(tp, offset, 1, offset.saturating_add(1)) {
            Ok(bytes) => BatchHeader::parse(&bytes)
                .is_ok_and(|h| h.base_offset == offset && same_batch(&h, header)),
            Err(_) => false,
        }
    }

    /// The producer state of `group` from its log as it is: the committed
    /// prefix in the store (below the snapshot), then the Raft log in memory.
    fn rebuild_producers(&mut self, group: GroupId, tp: &TopicPartition) {
        let mut states = ProducerStates::new();
        let entries = self.raft.group(group).map(|raft| {
            let log = raft.log();
            (
                log.snapshot_last().index,
                log.slice(log.snapshot_last().index, log.last_index()),
            )
        });
        let (snapshot, entries) = entries.unwrap_or_default();
        match self.store.next_offset_after(tp, snapshot.0) {
            Ok(bound) => {
                let scanned = self.store.scan_headers(tp, &mut |h| {
                    if h.base_offset < bound {
                        states.record(h);
                    }
                });
                if let Err(e) = scanned {
                    tracing::error!(%tp, error = %e, "cannot rebuild producer state");
                    return;
                }
            }
            Err(e) => {
                tracing::error!(%tp, error = %e, "cannot rebuild producer state");
                return;
            }
        }
        for e in &entries {
            record_producer(&mut states, e);
        }
        if let Some(p) = self.partitions.get_mut(&group) {
            p.producers = states;
        }
    }
}
