//! The sparse per-segment indexes: their entry formats, when an entry is
//! added, and the lookups.
//!
//! Offset index entry (12 bytes, big-endian): relative Kafka offset u32,
//! relative Raft index u32, file position u32, for the batch starting there.
//! Time index entry (12 bytes): max timestamp i64 of the segment up to and
//! including a data batch, that batch's relative offset u32. Both are
//! "relative" to the segment's base offset / base Raft index. A segment's
//! first batch never gets an entry: a lookup that finds none starts at 0.
//!
//! The same [`IndexBuilder`] produces the entries on append and on recovery,
//! so an index rebuilt from a segment equals the one written alongside it.

/// Bytes of one offset index entry.
pub const OFFSET_ENTRY_LEN: usize = 12;
/// Bytes of one time index entry.
pub const TIME_ENTRY_LEN: usize = 12;

/// Where a batch starts in its segment, findable by Kafka offset or Raft index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OffsetIndexEntry {
    /// Batch base offset minus the segment's base offset.
    pub relative_offset: u32,
    /// Raft index of the batch minus the segment's base Raft index.
    pub relative_raft_index: u32,
    /// Byte position of the batch in the segment file.
    pub position: u32,
}

/// The largest timestamp seen up to a data batch, so ListOffsets by time can
/// skip the earlier part of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeIndexEntry {
    /// Max timestamp over the segment's batches up to and including this one.
    pub max_timestamp: i64,
    /// The batch's base offset minus the segment's base offset.
    pub relative_offset: u32,
}

impl OffsetIndexEntry {
    /// The on-disk form.
    pub fn encode(&self) -> [u8; OFFSET_ENTRY_LEN] {
        let mut out = [0; OFFSET_ENTRY_LEN];
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.relative_raft_index.to_be_bytes());
        out[8..].copy_from_slice(&self.position.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Self {
        let u = |at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        OffsetIndexEntry {
            relative_offset: u(0),
            relative_raft_index: u(4),
            position: u(8),
        }
    }
}

impl TimeIndexEntry {
    /// The on-disk form.
    pub fn encode(&self) -> [u8; TIME_ENTRY_LEN] {
        let mut out = [0; TIME_ENTRY_LEN];
        out[..8].copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[8..].copy_from_slice(&self.relative_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Self {
        let mut ts = [0; 8];
        ts.copy_from_slice(&b[..8]);
        TimeIndexEntry {
            max_timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// Decodes an offset index file; `None` if its length is not whole entries.
pub fn decode_offset_index(bytes: &[u8]) -> Option<Vec<OffsetIndexEntry>> {
    bytes
        .chunks_exact(OFFSET_ENTRY_LEN)
        .remainder()
        .is_empty()
        .then(|| {
            bytes
                .chunks_exact(OFFSET_ENTRY_LEN)
                .map(OffsetIndexEntry::decode)
                .collect()
        })
}

/// Decodes a time index file; `None` if its length is not whole entries.
pub fn decode_time_index(bytes: &[u8]) -> Option<Vec<TimeIndexEntry>> {
    bytes
        .chunks_exact(TIME_ENTRY_LEN)
        .remainder()
        .is_empty()
        .then(|| {
            bytes
                .chunks_exact(TIME_ENTRY_LEN)
                .map(TimeIndexEntry::decode)
                .collect()
        })
}

/// The last entry at or before the batch holding `relative_offset`
/// (the default entry, position 0, when none is).
pub fn floor_by_offset(entries: &[OffsetIndexEntry], relative_offset: u32) -> OffsetIndexEntry {
    let n = entries.partition_point(|e| e.relative_offset <= relative_offset);
    n.checked_sub(1).map(|i| entries[i]).unwrap_or_default()
}

/// The last entry at or before the batch of `relative_raft_index`.
pub fn floor_by_raft_index(
    entries: &[OffsetIndexEntry],
    relative_raft_index: u32,
) -> OffsetIndexEntry {
    let n = entries.partition_point(|e| e.relative_raft_index <= relative_raft_index);
    n.checked_sub(1).map(|i| entries[i]).unwrap_or_default()
}

/// A relative offset at or before the first data batch whose max timestamp is
/// at least `ts`: the offset of the last entry whose running max is below
/// `ts` (everything up to it is older), or 0.
pub fn time_lower_bound(entries: &[TimeIndexEntry], ts: i64) -> u32 {
    let n = entries.partition_point(|e| e.max_timestamp < ts);
    n.checked_sub(1).map_or(0, |i| entries[i].relative_offset)
}

/// One batch as the index builder sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexedBatch {
    /// The batch's entry for the offset index.
    pub at: OffsetIndexEntry,
    /// Bytes of the batch.
    pub len: u32,
    /// Max timestamp of a data batch; `None` for a Raft-only entry.
    pub max_timestamp: Option<i64>,
}

/// Decides which batches of a segment get index entries: one every
/// `interval_bytes`, and a time entry there when the running max timestamp grew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexBuilder {
    interval_bytes: u32,
    bytes_since_entry: u64,
    max_timestamp: i64,
    last_time_entry: i64,
}

impl IndexBuilder {
    /// A builder for an empty segment.
    pub fn new(interval_bytes: u32) -> Self {
        IndexBuilder {
            interval_bytes,
            bytes_since_entry: 0,
            max_timestamp: -1,
            last_time_entry: -1,
        }
    }

    /// A builder that continues after a segment's existing batches (after a
    /// truncation): the bytes since its last offset entry, its max timestamp
    /// and the timestamp of its last time entry (-1 for none).
    pub fn resume(
        interval_bytes: u32,
        bytes_since_entry: u64,
        max_timestamp: i64,
        last_time_entry: i64,
    ) -> Self {
        IndexBuilder {
            interval_bytes,
            bytes_since_entry,
            max_timestamp,
            last_time_entry,
        }
    }

    /// The segment's largest data timestamp so far (-1 if none).
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Feeds the next batch of the segment; returns the entries to append.
    pub fn push(&mut self, b: &IndexedBatch) -> (Option<OffsetIndexEntry>, Option<TimeIndexEntry>) {
        if let Some(ts) = b.max_timestamp {
            self.max_timestamp = self.max_timestamp.max(ts);
        }
        let mut out = (None, None);
        if self.bytes_since_entry >= u64::from(self.interval_bytes) && b.at.position > 0 {
            self.bytes_since_entry = 0;
            out.0 = Some(b.at);
            if b.max_timestamp.is_some() && self.max_timestamp > self.last_time_entry {
                self.last_time_entry = self.max_timestamp;
                out.1 = Some(TimeIndexEntry {
                    max_timestamp: self.max_timestamp,
                    relative_offset: b.at.relative_offset,
                });
            }
        }
        self.bytes_since_entry += u64::from(b.len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(off: u32, raft: u32, pos: u32) -> OffsetIndexEntry {
        OffsetIndexEntry {
            relative_offset: off,
            relative_raft_index: raft,
            position: pos,
        }
    }

    #[test]
    fn entries_round_trip_and_partial_files_are_refused() {
        let o = e(1, 2, 3);
        assert_eq!(decode_offset_index(&o.encode()), Some(vec![o]));
        let t = TimeIndexEntry {
            max_timestamp: -5,
            relative_offset: 9,
        };
        assert_eq!(decode_time_index(&t.encode()), Some(vec![t]));
        assert_eq!(decode_offset_index(&[0; 13]), None);
        assert_eq!(decode_time_index(&[0; 11]), None);
    }

    #[test]
    fn floor_lookups_pick_the_last_entry_not_after_the_target() {
        // Offset 10 is shared by a Raft entry (raft 4) and the data batch after it (raft 5).
        let idx = [e(5, 2, 100), e(10, 4, 200), e(10, 5, 250), e(20, 8, 400)];
        assert_eq!(floor_by_offset(&idx, 4), OffsetIndexEntry::default());
        assert_eq!(floor_by_offset(&idx, 10).position, 250);
        assert_eq!(floor_by_offset(&idx, 19).position, 250);
        assert_eq!(floor_by_offset(&idx, 99).position, 400);
        assert_eq!(floor_by_raft_index(&idx, 4).position, 200);
        assert_eq!(floor_by_raft_index(&idx, 1).position, 0);
        assert_eq!(floor_by_raft_index(&idx, 7).position, 250);
    }

    #[test]
    fn time_lower_bound_skips_only_older_prefixes() {
        let idx = [
            TimeIndexEntry {
                max_timestamp: 100,
                relative_offset: 3,
            },
            TimeIndexEntry {
                max_timestamp: 200,
                relative_offset: 8,
            },
        ];
        assert_eq!(time_lower_bound(&idx, 50), 0);
        assert_eq!(time_lower_bound(&idx, 100), 0);
        assert_eq!(time_lower_bound(&idx, 101), 3);
        assert_eq!(time_lower_bound(&idx, 500), 8);
    }

    #[test]
    fn builder_indexes_every_interval_and_times_only_growth() {
        let mut b = IndexBuilder::new(100);
        let batch = |i: u32, ts: Option<i64>| IndexedBatch {
            at: e(i, i, i * 60),
            len: 60,
            max_timestamp: ts,
        };
        assert_eq!(b.push(&batch(0, Some(10))), (None, None));
        assert_eq!(b.push(&batch(1, Some(5))), (None, None));
        // 120 bytes since the last entry: index here, and max 10 is new to the time index.
        let (o, t) = b.push(&batch(2, Some(7)));
        assert_eq!(o, Some(e(2, 2, 120)));
        assert_eq!(
            t.map(|t| (t.max_timestamp, t.relative_offset)),
            Some((10, 2))
        );
        assert_eq!(b.push(&batch(3, None)), (None, None));
        // A Raft entry gets an offset entry but no time entry.
        let (o, t) = b.push(&batch(4, None));
        assert_eq!((o.is_some(), t), (true, None));
        b.push(&batch(5, Some(9)));
        let (o, t) = b.push(&batch(6, Some(1)));
        assert!(o.is_some());
        assert_eq!(t, None, "running max 10 did not grow");
        assert_eq!(b.max_timestamp(), 10);
    }
}
