//! The snapshot a partition leader sends a follower that retention left
//! behind: no state, only where the leader's log now starts.
//!
//! A partition's state *is* its log, so a Raft snapshot of it would be the
//! whole log. A Kafka follower whose fetch offset is below the leader's log
//! start offset truncates its log and starts again at the leader's log start
//! (`ReplicaFetcherThread` handling `OFFSET_OUT_OF_RANGE`); Chronik does the
//! same through Raft: the leader sends a snapshot ending at the entry before
//! its first stored one, whose data is this record, and the follower resets
//! its log to begin after it, at this Kafka offset. A snapshot whose data is
//! not a `LogStart` (the in-memory log's own compactions carry none) cannot
//! be installed by a partition.

use bytes::{BufMut, Bytes, BytesMut};

const MAGIC: &[u8; 4] = b"CHLS";
const VERSION: u16 = 1;
const LEN: usize = 4 + 2 + 8;

/// Where a leader's stored log starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogStart {
    /// The Kafka offset of the first record after the snapshot's last entry:
    /// the leader's log start offset.
    pub next_offset: i64,
}

impl LogStart {
    /// The snapshot data that carries it.
    pub fn encode(self) -> Bytes {
        let mut b = BytesMut::with_capacity(LEN);
        b.put_slice(MAGIC);
        b.put_u16(VERSION);
        b.put_i64(self.next_offset);
        b.freeze()
    }

    /// Reads snapshot data; `None` if it is not a `LogStart` of this version
    /// (or its offset is negative).
    pub fn decode(data: &[u8]) -> Option<LogStart> {
        if data.len() != LEN || &data[..4] != MAGIC || data[4..6] != VERSION.to_be_bytes() {
            return None;
        }
        let next_offset = i64::from_be_bytes(data[6..].try_into().ok()?);
        (next_offset >= 0).then_some(LogStart { next_offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_anything_else() {
        let s = LogStart { next_offset: 4_321 };
        assert_eq!(LogStart::decode(&s.encode()), Some(s));
        assert_eq!(LogStart::decode(b""), None, "a compaction's empty data");
        let mut other = s.encode().to_vec();
        other[5] = 9;
        assert_eq!(LogStart::decode(&other), None, "another version");
        assert_eq!(LogStart::decode(&s.encode()[..LEN - 1]), None);
        let negative = LogStart { next_offset: -1 }.encode();
        assert_eq!(LogStart::decode(&negative), None);
    }
}
