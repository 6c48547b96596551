//! When the leader's log end moved, so a follower's acknowledgement can be
//! dated: "caught up as of t" means "held everything the leader held at t".
//!
//! Kafka dates it from two samples only, the leader's log end at this fetch and
//! at the previous one (`Replica.updateFetchState`). That is enough for Kafka's
//! fetches, one in flight per follower, but Raft pipelines appends: under
//! constant load every answer acknowledges entries sent one round trip ago,
//! older than the previous answer, and both samples miss. Kafka's own
//! definition of `lastCaughtUpTimeMs` ("the largest time t such that the offset
//! of the most recent fetch >= the LEO of the leader at time t") needs the log
//! end's history, which this keeps, one sample per
//! [`IsrConfig::history_resolution_ms`](super::IsrConfig::history_resolution_ms)
//! and only for the last two lag windows, about 64 samples.

use std::collections::VecDeque;

use crate::raft::LogIndex;

/// Samples `(end, until_ms)`: the leader's log ended at `end` until `until_ms`,
/// when it grew. Both columns increase from front to back.
#[derive(Clone, Debug)]
pub(super) struct LogEndHistory {
    samples: VecDeque<(LogIndex, u64)>,
    spacing_ms: u64,
}

impl LogEndHistory {
    /// An empty history keeping at most one sample per `spacing_ms`.
    pub(super) fn new(spacing_ms: u64) -> LogEndHistory {
        LogEndHistory {
            samples: VecDeque::new(),
            spacing_ms,
        }
    }

    /// The log end grew past `from` at `at_ms`. Dropped if the newest sample
    /// is less than the spacing older: the kept one dates a follower that holds
    /// `from` at most that much too early, never too late.
    pub(super) fn grew(&mut self, from: LogIndex, at_ms: u64) {
        if let Some(&(_, last)) = self.samples.back() {
            if at_ms < last.saturating_add(self.spacing_ms) {
                return;
            }
        }
        self.samples.push_back((from, at_ms));
    }

    /// The latest moment at which the leader's log ended at or before
    /// `match_index`, if the history still holds one.
    pub(super) fn caught_up_as_of(&self, match_index: LogIndex) -> Option<u64> {
        let i = self.samples.partition_point(|&(end, _)| end <= match_index);
        i.checked_sub(1).map(|i| self.samples[i].1)
    }

    /// Forgets samples older than `before_ms`, when a follower last caught up
    /// then would be out of the lag window whatever it acknowledges next.
    pub(super) fn forget_before(&mut self, before_ms: u64) {
        while self.samples.front().is_some_and(|&(_, t)| t < before_ms) {
            self.samples.pop_front();
        }
    }

    /// Number of samples kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_a_match_by_the_last_time_the_log_ended_at_or_before_it() {
        let mut h = LogEndHistory::new(1);
        h.grew(LogIndex(10), 100);
        h.grew(LogIndex(20), 200);
        h.grew(LogIndex(30), 300);
        assert_eq!(h.caught_up_as_of(LogIndex(9)), None);
        assert_eq!(h.caught_up_as_of(LogIndex(10)), Some(100));
        assert_eq!(h.caught_up_as_of(LogIndex(25)), Some(200));
        assert_eq!(h.caught_up_as_of(LogIndex(30)), Some(300));
    }

    #[test]
    fn keeps_one_sample_per_spacing_and_errs_early() {
        let mut h = LogEndHistory::new(100);
        for t in 0..1000 {
            h.grew(LogIndex(t), t);
        }
        assert_eq!(h.len(), 10);
        // The log really ended at 150 until 151; the kept sample says 100.
        assert_eq!(h.caught_up_as_of(LogIndex(150)), Some(100));
    }

    #[test]
    fn forgets_what_left_the_window() {
        let mut h = LogEndHistory::new(1);
        h.grew(LogIndex(10), 100);
        h.grew(LogIndex(20), 200);
        h.forget_before(150);
        assert_eq!(h.caught_up_as_of(LogIndex(15)), None);
        assert_eq!(h.caught_up_as_of(LogIndex(20)), Some(200));
    }
}
