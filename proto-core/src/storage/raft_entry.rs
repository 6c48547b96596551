//! Raft-only entries (election no-ops, membership changes) framed as record
//! batches, so they live inline in the partition's segments with the data.
//!
//! The frame is a v2 control batch whose producer id is [`RAFT_PRODUCER_ID`],
//! holding one record keyed [`RAFT_RECORD_KEY`] whose value is the opaque
//! payload. Its `lastOffsetDelta` is -1, so the usual end-offset arithmetic
//! (`base + lastOffsetDelta + 1`) gives it no Kafka offset: its base offset is
//! the next data offset, which the following data batch shares. Clients never
//! produce control batches (the broker refuses them), and the read path never
//! serves these frames.

use super::batch::{self, BatchError, BatchHeader, BatchSpec, Record, ATTR_CONTROL, HEADER_LEN};

/// Producer id that marks a control batch as a Chronik Raft entry ("CHRONIKR").
pub const RAFT_PRODUCER_ID: i64 = 0x4348_524F_4E49_4B52;
/// Key of the single record in a Raft entry frame.
pub const RAFT_RECORD_KEY: &[u8] = b"chronik-raft";

/// Whether a stored batch is a Raft-only entry rather than client data.
pub fn is_raft_entry(h: &BatchHeader) -> bool {
    h.is_control() && h.producer_id == RAFT_PRODUCER_ID
}

/// Frames a Raft-only payload at Kafka offset `base_offset` (the partition's
/// next offset), with the Raft term as leader epoch. No timestamp (-1), so the
/// time index ignores it.
pub fn encode(base_offset: i64, epoch: i32, payload: &[u8]) -> Vec<u8> {
    let spec = BatchSpec {
        base_offset,
        partition_leader_epoch: epoch,
        attributes: ATTR_CONTROL,
        base_timestamp: -1,
        producer_id: RAFT_PRODUCER_ID,
        producer_epoch: 0,
        base_sequence: -1,
    };
    let record = Record {
        timestamp_delta: 0,
        key: Some(RAFT_RECORD_KEY),
        value: Some(payload),
    };
    batch::encode_with_last_delta(&spec, &[record], -1)
}

/// The payload of a Raft entry frame (`raw` is the whole, validated batch).
pub fn payload(raw: &[u8]) -> Result<&[u8], BatchError> {
    let h = BatchHeader::parse(raw)?;
    if !is_raft_entry(&h) || h.record_count != 1 || raw.len() < h.total_len() {
        return Err(BatchError::BadRecord);
    }
    let rec = batch::first_record(&raw[HEADER_LEN..h.total_len()])?;
    match rec {
        batch::RawRecord {
            key: Some(RAFT_RECORD_KEY),
            value: Some(v),
        } => Ok(v),
        _ => Err(BatchError::BadRecord),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_and_consumes_no_offset() {
        let raw = encode(42, 7, b"membership");
        let h = batch::validate(&raw).expect("valid batch");
        assert!(is_raft_entry(&h));
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.end_offset(), 42);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.max_timestamp, -1);
        assert_eq!(payload(&raw), Ok(&b"membership"[..]));
        assert_eq!(payload(&encode(0, 0, b"")), Ok(&b""[..]));
    }

    #[test]
    fn client_batches_are_not_raft_entries() {
        let spec = BatchSpec {
            base_offset: 0,
            partition_leader_epoch: 0,
            attributes: ATTR_CONTROL,
            base_timestamp: 0,
            producer_id: 17,
            producer_epoch: 0,
            base_sequence: -1,
        };
        let raw = batch::encode_batch(
            &spec,
            &[Record {
                timestamp_delta: 0,
                key: Some(RAFT_RECORD_KEY),
                value: None,
            }],
        );
        let h = batch::validate(&raw).expect("valid batch");
        assert!(!is_raft_entry(&h));
        assert_eq!(payload(&raw), Err(BatchError::BadRecord));
    }
}
