//! Idempotent producer state of one partition: Kafka's `ProducerStateManager`.
//!
//! An idempotent producer numbers its records per partition (`baseSequence`)
//! under a producer id and epoch. A retried batch that already landed must be
//! answered with its original offsets instead of being stored twice; a batch
//! that skips sequences, or comes from a fenced (older) epoch, is refused.
//! The state is rebuilt by feeding every stored batch header back through
//! [`ProducerStates::record`], so it survives restarts without a file of its
//! own.
//!
//! The leader checks a batch with [`ProducerStates::check`] before it proposes
//! it and records it right after, so a retry that arrives while the original
//! still waits for its commit is recognised too. Transactions will add their
//! markers here; the per-producer entry already carries the epoch they fence
//! on.

use std::collections::{BTreeMap, VecDeque};

use crate::storage::batch::BatchHeader;

/// How many recent batches per producer are remembered for duplicate
/// detection: Kafka's client keeps at most five requests in flight per
/// connection when idempotence is on, so a retry is always among the last five.
pub const REMEMBERED_BATCHES: usize = 5;

/// A stored batch of one producer, as duplicate detection needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSeq {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
}

/// What one producer id last did on this partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerEntry {
    /// The newest epoch seen; older epochs are fenced.
    pub epoch: i16,
    /// The newest batches of that epoch, oldest first.
    pub batches: VecDeque<BatchSeq>,
    /// The largest batch timestamp seen: the entry expires this long after
    /// it (Kafka's `producer.id.expiration.ms` uses the same clock).
    pub last_timestamp: i64,
}

/// Why a batch is refused; each maps to the Kafka error a broker gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    /// The batch's epoch is older than the producer's newest
    /// (Kafka's `INVALID_PRODUCER_EPOCH`).
    #[error("producer epoch {got} is older than the current epoch {current}")]
    FencedEpoch {
        /// The producer's newest epoch.
        current: i16,
        /// The batch's epoch.
        got: i16,
    },
    /// The batch does not follow the last stored sequence
    /// (Kafka's `OUT_OF_ORDER_SEQUENCE_NUMBER`).
    #[error("sequence {got} does not follow {last} (expected {expected})")]
    OutOfOrder {
        /// The last stored sequence (-1 for a new epoch).
        last: i32,
        /// The sequence that would follow it.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// A batch under a producer id carries no valid sequence or epoch
    /// (Kafka's `INVALID_RECORD`).
    #[error("idempotent batch with sequence {seq} and epoch {epoch}")]
    InvalidSequence {
        /// The batch's first sequence.
        seq: i32,
        /// The batch's epoch.
        epoch: i16,
    },
}

/// What to do with a produced batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Store it.
    Append,
    /// It is a retry of a batch already stored: answer with these offsets.
    Duplicate(BatchSeq),
    /// Refuse it.
    Reject(ProducerError),
}

/// Sequence numbers wrap from `i32::MAX` to 0, as Kafka's do.
pub fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The sequence of a batch's last record.
pub fn last_sequence(header: &BatchHeader) -> i32 {
    let delta = header.last_offset_delta.max(0);
    if header.base_sequence > i32::MAX - delta {
        delta - (i32::MAX - header.base_sequence) - 1
    } else {
        header.base_sequence + delta
    }
}

/// Every producer's state on one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// No producers yet.
    pub fn new() -> ProducerStates {
        ProducerStates::default()
    }

    /// The producer's state, if it ever wrote here.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// How many producer ids have state here.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer wrote here.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Forgets producers whose newest batch is `max_age_ms` or more older
    /// than `now_ms` (wall clock), as Kafka's producer id expiration does, so
    /// short-lived producers do not hold memory forever; returns how many.
    /// A retry from an expired producer is then appended like a new one.
    pub fn expire(&mut self, now_ms: i64, max_age_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_timestamp) < max_age_ms);
        before - self.producers.len()
    }

    /// Decides a batch (with its header as produced; offsets do not matter).
    /// Batches without a producer id are always appended.
    pub fn check(&self, header: &BatchHeader) -> Check {
        if header.producer_id < 0 {
            return Check::Append;
        }
        if header.base_sequence < 0 || header.producer_epoch < 0 {
            return Check::Reject(ProducerError::InvalidSequence {
                seq: header.base_sequence,
                epoch: header.producer_epoch,
            });
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // An unknown producer starts anywhere: its earlier batches may
            // have been removed by retention (Kafka accepts it the same way).
            return Check::Append;
        };
        if header.producer_epoch < entry.epoch {
            return Check::Reject(ProducerError::FencedEpoch {
                current: entry.epoch,
                got: header.producer_epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            // A new epoch must start over at sequence 0.
            return if header.base_sequence == 0 {
                Check::Append
            } else {
                Check::Reject(ProducerError::OutOfOrder {
                    last: -1,
                    expected: 0,
                    got: header.base_sequence,
                })
            };
        }
        let last_seq = last_sequence(header);
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
        {
            return Check::Duplicate(*dup);
        }
        match entry.batches.back() {
            Some(last) if next_sequence(last.last_seq) != header.base_sequence => {
                Check::Reject(ProducerError::OutOfOrder {
                    last: last.last_seq,
                    expected: next_sequence(last.last_seq),
                    got: header.base_sequence,
                })
            }
            _ => Check::Append,
        }
    }

    /// Remembers a stored batch (its header with the offsets it was stored
    /// at). Batches without a producer id and control batches leave no state.
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 || header.is_control() {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_timestamp: header.max_timestamp,
            });
        entry.last_timestamp = entry.last_timestamp.max(header.max_timestamp);
        if header.producer_epoch > entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        } else if header.producer_epoch < entry.epoch {
            return;
        }
        if entry.batches.len() == REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchSeq {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            base_offset: header.base_offset,
            last_offset: header.end_offset() - 1,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32, offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 100,
            partition_leader_epoch: 1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: records,
        }
    }

    fn stored(states: &mut ProducerStates, h: BatchHeader) {
        assert_eq!(states.check(&h), Check::Append);
        states.record(&h);
    }

    #[test]
    fn batches_without_a_producer_are_always_appended() {
        let mut s = ProducerStates::new();
        let h = header(-1, -1, -1, 3, 0);
        stored(&mut s, h);
        assert_eq!(s.check(&h), Check::Append);
        assert!(s.is_empty());
    }

    #[test]
    fn a_retry_of_any_of_the_last_five_batches_is_a_duplicate() {
        let mut s = ProducerStates::new();
        for i in 0..6 {
            stored(&mut s, header(7, 0, i * 2, 2, 100 + i64::from(i) * 2));
        }
        // Batch 0 (seq 0-1) fell out of the window; batches 1..=5 are in it.
        assert!(matches!(
            s.check(&header(7, 0, 0, 2, 0)),
            Check::Reject(ProducerError::OutOfOrder { .. })
        ));
        assert_eq!(
            s.check(&header(7, 0, 2, 2, 0)),
            Check::Duplicate(BatchSeq {
                first_seq: 2,
                last_seq: 3,
                base_offset: 102,
                last_offset: 103
            })
        );
        assert!(matches!(
            s.check(&header(7, 0, 10, 2, 0)),
            Check::Duplicate(BatchSeq {
                base_offset: 110,
                ..
            })
        ));
        assert_eq!(s.check(&header(7, 0, 12, 1, 0)), Check::Append);
    }

    #[test]
    fn a_gap_or_a_reordered_batch_is_out_of_order() {
        let mut s = ProducerStates::new();
        stored(&mut s, header(7, 0, 0, 5, 0));
        assert_eq!(
            s.check(&header(7, 0, 6, 1, 0)),
            Check::Reject(ProducerError::OutOfOrder {
                last: 4,
                expected: 5,
                got: 6
            })
        );
        // Same first sequence, different length: not the same batch.
        assert!(matches!(
            s.check(&header(7, 0, 0, 3, 0)),
            Check::Reject(ProducerError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn an_older_epoch_is_fenced_and_a_newer_one_starts_at_zero() {
        let mut s = ProducerStates::new();
        stored(&mut s, header(7, 3, 0, 1, 0));
        assert_eq!(
            s.check(&header(7, 2, 1, 1, 0)),
            Check::Reject(ProducerError::FencedEpoch { current: 3, got: 2 })
        );
        assert!(matches!(
            s.check(&header(7, 4, 5, 1, 0)),
            Check::Reject(ProducerError::OutOfOrder { expected: 0, .. })
        ));
        stored(&mut s, header(7, 4, 0, 1, 1));
        assert_eq!(s.get(7).map(|e| e.epoch), Some(4));
        assert_eq!(s.get(7).map(|e| e.batches.len()), Some(1));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut s = ProducerStates::new();
        stored(&mut s, header(7, 0, i32::MAX - 1, 3, 0));
        assert_eq!(s.get(7).unwrap().batches[0].last_seq, 0);
        assert_eq!(s.check(&header(7, 0, 1, 1, 0)), Check::Append);
    }

    #[test]
    fn producers_expire_after_their_newest_batch_ages_out() {
        let mut s = ProducerStates::new();
        let mut old = header(1, 0, 0, 1, 0);
        old.max_timestamp = 1_000;
        let mut fresh = header(2, 0, 0, 1, 1);
        fresh.max_timestamp = 50_000;
        s.record(&old);
        s.record(&fresh);
        assert_eq!(s.expire(60_000, 30_000), 1);
        assert!(s.get(1).is_none());
        assert!(s.get(2).is_some());
        assert_eq!(s.expire(60_000, 30_000), 0);
    }

    #[test]
    fn an_unknown_producer_may_start_at_any_sequence() {
        let s = ProducerStates::new();
        assert_eq!(s.check(&header(9, 0, 42, 1, 0)), Check::Append);
    }

    #[test]
    fn negative_sequences_under_a_producer_id_are_invalid() {
        let s = ProducerStates::new();
        assert!(matches!(
            s.check(&header(9, 0, -1, 1, 0)),
            Check::Reject(ProducerError::InvalidSequence { .. })
        ));
    }

    #[test]
    fn replaying_the_same_headers_rebuilds_the_same_state() {
        let headers: Vec<BatchHeader> = (0..20)
            .map(|i| {
                header(
                    i64::from(i % 3),
                    (i / 10) as i16,
                    (i % 10) * 4,
                    4,
                    i64::from(i) * 4,
                )
            })
            .collect();
        let mut a = ProducerStates::new();
        let mut b = ProducerStates::new();
        for h in &headers {
            a.record(h);
        }
        for h in &headers {
            b.record(h);
        }
        assert_eq!(a, b);
        assert_eq!(a.len(), 3);
    }
}
