//! What the leader knows of one follower's log and when it was last caught up:
//! Kafka's `Replica`/`ReplicaState`.

use crate::raft::LogIndex;

use super::history::LogEndHistory;

/// The leader's view of one follower in the current leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FollowerState {
    /// The highest index the follower acknowledged; `None` until it answers
    /// in this leadership (Kafka resets a follower's log end on election).
    pub(super) match_index: Option<LogIndex>,
    /// When its previous answer arrived (Kafka's `lastFetchTimeMs`).
    pub(super) last_progress_ms: Option<u64>,
    /// The leader's log end when its previous answer arrived (Kafka's
    /// `lastFetchLeaderLogEndOffset`).
    pub(super) last_progress_leader_end: Option<LogIndex>,
    /// The latest moment at which it is known to have held everything the
    /// leader held (Kafka's `lastCaughtUpTimeMs`, with what the history dated
    /// folded in before the history forgets it); `None` if never.
    pub(super) last_caught_up_ms: Option<u64>,
}

impl FollowerState {
    /// A follower nothing was heard from yet. `grace_from_ms` starts the lag
    /// clock of a member of the recorded ISR, as Kafka's new leader sets
    /// `lastCaughtUpTimeMs` to now for ISR members and to 0 for the others.
    pub(super) fn new(grace_from_ms: Option<u64>) -> FollowerState {
        FollowerState {
            match_index: None,
            last_progress_ms: None,
            last_progress_leader_end: None,
            last_caught_up_ms: grace_from_ms,
        }
    }

    /// The follower acknowledged `match_index` at `now_ms`, when the leader's
    /// log ended at `leader_end`: Kafka's `updateFetchState`, verbatim. Caught
    /// up now if it holds the log end, else as of the previous answer if it
    /// holds what the leader had then.
    pub(super) fn progress(&mut self, match_index: LogIndex, now_ms: u64, leader_end: LogIndex) {
        let m = self
            .match_index
            .map_or(match_index, |old| old.max(match_index));
        let caught_up = if m >= leader_end {
            Some(now_ms)
        } else {
            match (self.last_progress_leader_end, self.last_progress_ms) {
                (Some(end), Some(at)) if m >= end => Some(at),
                _ => None,
            }
        };
        self.last_caught_up_ms = self.last_caught_up_ms.max(caught_up);
        self.match_index = Some(m);
        self.last_progress_ms = Some(now_ms);
        self.last_progress_leader_end = self.last_progress_leader_end.max(Some(leader_end));
    }

    /// The latest moment at which it held everything the leader held: Kafka's
    /// `lastCaughtUpTimeMs`, or later if the history of the log end dates its
    /// acknowledged index later (pipelined appends, or a log end that stayed
    /// put after the answer).
    pub(super) fn caught_up_as_of(&self, history: &LogEndHistory) -> Option<u64> {
        let dated = self.match_index.and_then(|m| history.caught_up_as_of(m));
        self.last_caught_up_ms.max(dated)
    }

    /// Kafka's `isCaughtUp`: it holds the leader's log end, or it held
    /// everything the leader had no more than `lag_time_max_ms` ago.
    pub(super) fn is_caught_up(
        &self,
        leader_end: LogIndex,
        now_ms: u64,
        lag_time_max_ms: u64,
        history: &LogEndHistory,
    ) -> bool {
        self.match_index.is_some_and(|m| m >= leader_end)
            || self
                .caught_up_as_of(history)
                .is_some_and(|t| now_ms.saturating_sub(t) <= lag_time_max_ms)
    }

    /// How long it has not been caught up, counting from `leader_since_ms` if
    /// it never was in this leadership.
    pub(super) fn lag_ms(&self, now_ms: u64, leader_since_ms: u64, history: &LogEndHistory) -> u64 {
        let since = self.caught_up_as_of(history).unwrap_or(leader_since_ms);
        now_ms.saturating_sub(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaching_the_log_end_is_caught_up_now() {
        let mut f = FollowerState::new(None);
        let h = LogEndHistory::new(1);
        f.progress(LogIndex(10), 500, LogIndex(10));
        assert_eq!(f.last_caught_up_ms, Some(500));
        assert!(
            f.is_caught_up(LogIndex(10), 1_000_000, 100, &h),
            "still at the end"
        );
        assert!(!f.is_caught_up(LogIndex(11), 601, 100, &h));
        assert!(f.is_caught_up(LogIndex(11), 600, 100, &h));
    }

    #[test]
    fn holding_the_previous_answers_log_end_is_caught_up_as_of_then() {
        let mut f = FollowerState::new(None);
        f.progress(LogIndex(5), 100, LogIndex(10));
        assert_eq!(f.last_caught_up_ms, None, "never held the log end");
        f.progress(LogIndex(10), 200, LogIndex(20));
        assert_eq!(f.last_caught_up_ms, Some(100));
        f.progress(LogIndex(19), 300, LogIndex(30));
        assert_eq!(f.last_caught_up_ms, Some(100), "19 < 20, the end at 200");
    }

    #[test]
    fn pipelined_answers_are_dated_by_the_history() {
        // Appends every 10 ms, answers every 10 ms acknowledging what was sent
        // 30 ms earlier: never the previous answer's log end.
        let mut h = LogEndHistory::new(1);
        let mut f = FollowerState::new(None);
        for i in 1..100u64 {
            let t = i * 10;
            h.grew(LogIndex(i - 1), t);
            let acked = LogIndex(i.saturating_sub(3));
            f.progress(acked, t, LogIndex(i));
        }
        assert_eq!(f.last_caught_up_ms, None, "Kafka's two samples miss");
        assert_eq!(f.caught_up_as_of(&h), Some(990 - 20));
    }

    #[test]
    fn an_answer_is_dated_by_when_the_log_end_moved_past_it() {
        let mut h = LogEndHistory::new(1);
        let mut f = FollowerState::new(None);
        f.progress(LogIndex(10), 100, LogIndex(10));
        h.grew(LogIndex(10), 400);
        assert_eq!(f.last_caught_up_ms, Some(100));
        assert_eq!(f.caught_up_as_of(&h), Some(400));
        assert_eq!(f.lag_ms(450, 0, &h), 50);
    }

    #[test]
    fn a_lower_acknowledgement_does_not_move_the_match_back() {
        let mut f = FollowerState::new(Some(0));
        f.progress(LogIndex(8), 10, LogIndex(9));
        f.progress(LogIndex(3), 20, LogIndex(9));
        assert_eq!(f.match_index, Some(LogIndex(8)));
    }
}
