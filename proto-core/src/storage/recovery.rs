//! The recovery scan: walk a segment's bytes batch by batch and find where the
//! valid log ends. Everything before that point is whole, CRC-checked and
//! contiguous; the first thing that is not (a torn write, a flipped bit, an
//! offset that does not follow) ends the log there.
//!
//! Kafka's format leaves `baseOffset` and `partitionLeaderEpoch` outside the
//! CRC. The scan catches a damaged base offset by contiguity and an epoch that
//! goes backwards, but an epoch damaged upwards is undetectable, as in Kafka.

use super::batch::{BatchError, BatchHeader};
use super::raft_entry;

/// Why the scan stopped before the end of the bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The header or CRC is invalid, or the bytes end inside a batch.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The batch does not start at the offset the previous one ended at.
    #[error("batch base offset {found} does not follow offset {expected}")]
    OffsetGap {
        /// The offset the previous batch ended at.
        expected: i64,
        /// The batch's base offset.
        found: i64,
    },
    /// The leader epoch (Raft term) went backwards, or is negative.
    #[error("leader epoch {found} after epoch {previous}")]
    EpochRegressed {
        /// The previous batch's epoch.
        previous: i32,
        /// This batch's epoch.
        found: i32,
    },
    /// The batch is larger than any batch the log accepts.
    #[error("batch of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Declared bytes of the batch.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A Raft frame that is malformed, or a data batch claiming no offsets.
    #[error("malformed entry frame")]
    BadFrame,
}

/// What a scan step found at the start of its buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanStep {
    /// A valid batch, `header.total_len()` bytes long.
    Batch(ScannedBatch),
    /// The buffer ends inside the batch; the whole batch is this many bytes.
    NeedMore(usize),
    /// The log ends here.
    Corrupt(Corruption),
}

/// One batch the scan accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScannedBatch {
    /// Byte position in the scanned segment.
    pub position: u64,
    /// The batch's header.
    pub header: BatchHeader,
    /// Whether it is a Raft-only entry (no Kafka offset, never served).
    pub is_raft: bool,
}

/// Walks one segment: tracks the expected next offset, the last epoch and the
/// position, so a driver can feed it the file chunk by chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scanner {
    next_offset: i64,
    last_epoch: i32,
    position: u64,
    max_batch_bytes: usize,
}

impl Scanner {
    /// A scan of a segment whose first batch must start at `base_offset`,
    /// after entries of epoch at most `min_epoch`.
    pub fn new(base_offset: i64, min_epoch: i32, max_batch_bytes: usize) -> Self {
        Scanner {
            next_offset: base_offset,
            last_epoch: min_epoch,
            position: 0,
            max_batch_bytes,
        }
    }

    /// The offset the next batch must start at.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The epoch of the last accepted batch (or the starting minimum).
    pub fn last_epoch(&self) -> i32 {
        self.last_epoch
    }

    /// Bytes accepted so far: where the valid log ends.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Examines the batch at the start of `buf` (the bytes from
    /// [`Scanner::position`] on) and, if valid, accepts it.
    pub fn step(&mut self, buf: &[u8]) -> ScanStep {
        let h = match BatchHeader::parse(buf) {
            Ok(h) => h,
            Err(BatchError::Truncated { needed, .. }) => return ScanStep::NeedMore(needed),
            Err(e) => return ScanStep::Corrupt(e.into()),
        };
        let len = h.total_len();
        if len > self.max_batch_bytes {
            return ScanStep::Corrupt(Corruption::TooLarge {
                len,
                max: self.max_batch_bytes,
            });
        }
        if buf.len() < len {
            return ScanStep::NeedMore(len);
        }
        let raw = &buf[..len];
        if let Err(e) = h.verify_crc(raw) {
            return ScanStep::Corrupt(e.into());
        }
        if h.base_offset != self.next_offset {
            return ScanStep::Corrupt(Corruption::OffsetGap {
                expected: self.next_offset,
                found: h.base_offset,
            });
        }
        if h.partition_leader_epoch < self.last_epoch.max(0) {
            return ScanStep::Corrupt(Corruption::EpochRegressed {
                previous: self.last_epoch,
                found: h.partition_leader_epoch,
            });
        }
        let is_raft = raft_entry::is_raft_entry(&h);
        let frame_ok = if is_raft {
            h.last_offset_delta == -1 && raft_entry::payload(raw).is_ok()
        } else {
            h.last_offset_delta >= 0
        };
        if !frame_ok {
            return ScanStep::Corrupt(Corruption::BadFrame);
        }
        let found = ScannedBatch {
            position: self.position,
            header: h,
            is_raft,
        };
        self.next_offset = h.end_offset();
        self.last_epoch = h.partition_leader_epoch;
        self.position += len as u64;
        ScanStep::Batch(found)
    }
}

/// The outcome of scanning a whole segment held in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// The valid batches, in order.
    pub batches: Vec<ScannedBatch>,
    /// Bytes of the valid prefix; truncate the segment here.
    pub valid_len: u64,
    /// Why the scan stopped short of the end, if it did.
    pub stop: Option<Corruption>,
}

/// Scans all of `segment` (see [`Scanner::new`] for the arguments); bytes
/// ending inside a batch count as a torn write.
pub fn scan(segment: &[u8], base_offset: i64, min_epoch: i32, max_batch_bytes: usize) -> Scan {
    let mut s = Scanner::new(base_offset, min_epoch, max_batch_bytes);
    let mut batches = Vec::new();
    let stop = loop {
        let rest = &segment[s.position() as usize..];
        if rest.is_empty() {
            break None;
        }
        match s.step(rest) {
            ScanStep::Batch(b) => batches.push(b),
            ScanStep::NeedMore(needed) => {
                break Some(Corruption::Batch(BatchError::Truncated {
                    needed,
                    available: rest.len(),
                }))
            }
            ScanStep::Corrupt(c) => break Some(c),
        }
    };
    Scan {
        batches,
        valid_len: s.position(),
        stop,
    }
}
