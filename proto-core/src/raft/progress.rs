//! What the leader knows of each follower's log, and how fast it may send to it
//! (etcd's tracker: probe, replicate and snapshot states, in-flight window).

use std::collections::VecDeque;

use super::types::{LogIndex, Snapshot};

/// How the leader is currently sending to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationState {
    /// The follower's last matching index is unknown: send one append at a time
    /// and wait for its answer (or the next heartbeat answer) before another.
    Probe {
        /// An append was sent and not yet answered.
        paused: bool,
    },
    /// The follower is known to match; stream appends optimistically, up to the
    /// in-flight limits.
    Replicate,
    /// The follower needs entries the leader compacted away: a snapshot is being sent.
    Snapshot {
        /// Index of the snapshot being sent.
        index: LogIndex,
        /// Bytes of the snapshot the follower has acknowledged so far.
        acked_offset: u64,
    },
}

/// Appends sent but not yet acknowledged, bounded by count and bytes.
#[derive(Clone, Debug, Default)]
pub struct Inflights {
    /// Last index and byte size of each in-flight append, oldest first.
    queue: VecDeque<(LogIndex, usize)>,
    bytes: usize,
}

impl Inflights {
    /// Whether another append would exceed the limits (a zero byte limit means none).
    pub fn full(&self, max_msgs: usize, max_bytes: usize) -> bool {
        self.queue.len() >= max_msgs || (max_bytes > 0 && self.bytes >= max_bytes)
    }

    /// Records an append ending at `last` carrying `bytes`.
    pub fn add(&mut self, last: LogIndex, bytes: usize) {
        self.queue.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every append ending at or before `index`.
    pub fn free_to(&mut self, index: LogIndex) {
        while let Some(&(last, bytes)) = self.queue.front() {
            if last > index {
                break;
            }
            self.bytes -= bytes;
            self.queue.pop_front();
        }
    }

    /// Forgets everything in flight.
    pub fn reset(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }

    /// Number of appends in flight.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The leader's view of one member. Invariant: `matched < next`.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Highest index known to match the leader's log (durably, on that member).
    pub matched: LogIndex,
    /// Next index to send.
    pub next: LogIndex,
    /// How the leader is sending.
    pub state: ReplicationState,
    /// Appends in flight while replicating.
    pub inflights: Inflights,
    /// Heard from since the last CheckQuorum round.
    pub recent_active: bool,
    /// Highest commit index sent, so commit advances reach followers.
    pub sent_commit: LogIndex,
    /// Highest heartbeat round acknowledged (read index and leases).
    pub acked_round: u64,
    /// `matched` when the previous heartbeat answer arrived: if it has not moved
    /// for a whole heartbeat interval while the follower is behind, the appends in
    /// flight are presumed lost.
    pub matched_at_heartbeat: LogIndex,
    /// Compacted entries from this index are being loaded from storage for the
    /// member (`Action::LoadEntries`); nothing else is sent until they arrive.
    pub loading: Option<LogIndex>,
    /// The snapshot being sent when it is not the leader's own but one at
    /// storage's start (`Event::LogStartLoaded`); only while the state is
    /// `Snapshot` at its index.
    pub log_start: Option<Snapshot>,
}

impl Progress {
    /// Progress for a member whose log is unknown: probe from `next`.
    pub fn new(next: LogIndex) -> Progress {
        Progress {
            matched: LogIndex(0),
            next,
            state: ReplicationState::Probe { paused: false },
            inflights: Inflights::default(),
            recent_active: false,
            sent_commit: LogIndex(0),
            acked_round: 0,
            matched_at_heartbeat: LogIndex(0),
            loading: None,
            log_start: None,
        }
    }

    /// Whether the leader must wait before sending more entries.
    pub fn is_paused(&self, max_msgs: usize, max_bytes: usize) -> bool {
        if self.loading.is_some() {
            return true;
        }
        match self.state {
            ReplicationState::Probe { paused } => paused,
            ReplicationState::Replicate => self.inflights.full(max_msgs, max_bytes),
            ReplicationState::Snapshot { .. } => true,
        }
    }

    /// Switches to probing after a rejection or a lost connection.
    pub fn become_probe(&mut self) {
        if let ReplicationState::Snapshot { index, .. } = self.state {
            self.next = index.next().max(self.matched.next());
        } else {
            self.next = self.matched.next();
        }
        self.state = ReplicationState::Probe { paused: false };
        self.inflights.reset();
        self.loading = None;
        self.log_start = None;
    }

    /// Switches to streaming once the follower's position is known.
    pub fn become_replicate(&mut self) {
        self.next = self.matched.next();
        self.state = ReplicationState::Replicate;
        self.inflights.reset();
        self.loading = None;
        self.log_start = None;
    }

    /// Starts sending the snapshot at `index`.
    pub fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ReplicationState::Snapshot {
            index,
            acked_offset: 0,
        };
        self.inflights.reset();
        self.loading = None;
    }

    /// Records that the member holds everything up to `index`; false if stale.
    pub fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            if let ReplicationState::Probe { paused } = &mut self.state {
                *paused = false;
            }
        }
        self.next = self.next.max(index.next());
        updated
    }

    /// Handles a rejection of the append whose `prev` was `rejected`; `hint` is the
    /// highest index where the logs may agree. False if the rejection is stale.
    pub fn maybe_decrease_to(&mut self, rejected: LogIndex, hint: LogIndex) -> bool {
        if self.state == ReplicationState::Replicate {
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched.next();
            return true;
        }
        if self.next.prev() != rejected {
            return false;
        }
        self.next = rejected.min(hint.next()).max(self.matched.next());
        self.state = ReplicationState::Probe { paused: false };
        self.log_start = None;
        true
    }
}
