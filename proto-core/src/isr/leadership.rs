//! One leadership's view of the partition and the shrink and expand rules
//! (Kafka's `Partition.maybeShrinkIsr` and `maybeExpandIsr`).

use std::collections::{BTreeMap, BTreeSet};

use crate::raft::{LogIndex, NodeId};

use super::follower::FollowerState;
use super::history::LogEndHistory;
use super::io::{IsrChange, IsrEpoch, ProposalId};
use super::IsrConfig;

/// An ISR change written to the metadata log and not answered yet (Kafka's
/// `PendingShrinkIsr` / `PendingExpandIsr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pending {
    /// Names it in a rejection.
    pub(super) proposal: ProposalId,
    /// The proposed ISR (kept within the replicas as they change).
    pub(super) isr: BTreeSet<NodeId>,
}

/// Everything the tracker knows while this node leads.
#[derive(Clone, Debug)]
pub(super) struct Leadership {
    /// This node.
    pub(super) leader: NodeId,
    /// `replica.lag.time.max.ms`.
    lag_time_max_ms: u64,
    /// The Raft voters, leader included.
    pub(super) replicas: BTreeSet<NodeId>,
    /// The ISR the metadata log recorded, within the replicas. May lack the
    /// leader (Raft, not the ISR, elected it); the leader then proposes itself.
    pub(super) recorded: BTreeSet<NodeId>,
    /// The epoch of that record.
    pub(super) epoch: IsrEpoch,
    /// The change in flight, if any.
    pub(super) pending: Option<Pending>,
    /// Every replica but the leader.
    pub(super) followers: BTreeMap<NodeId, FollowerState>,
    /// The leader's last index.
    pub(super) log_end: LogIndex,
    /// The leader's last index at election: joiners must hold it.
    pub(super) epoch_start: LogIndex,
    /// The Raft commit index.
    pub(super) hw: LogIndex,
    /// The newest time seen.
    pub(super) now_ms: u64,
    /// When this leadership began.
    since_ms: u64,
    history: LogEndHistory,
}

impl Leadership {
    /// A new leadership, starting from the last recorded ISR.
    pub(super) fn new(
        cfg: &IsrConfig,
        leader: NodeId,
        replicas: BTreeSet<NodeId>,
        initial_isr: &BTreeSet<NodeId>,
        epoch: IsrEpoch,
        log_end: LogIndex,
        now_ms: u64,
    ) -> Leadership {
        let recorded: BTreeSet<NodeId> = initial_isr.intersection(&replicas).copied().collect();
        let followers = replicas
            .iter()
            .filter(|&&r| r != leader)
            .map(|&r| {
                let grace = recorded.contains(&r).then_some(now_ms);
                (r, FollowerState::new(grace))
            })
            .collect();
        Leadership {
            leader,
            lag_time_max_ms: cfg.lag_time_max_ms,
            replicas,
            recorded,
            epoch,
            pending: None,
            followers,
            log_end,
            epoch_start: log_end,
            hw: LogIndex(0),
            now_ms,
            since_ms: now_ms,
            history: LogEndHistory::new(cfg.history_resolution_ms()),
        }
    }

    /// The ISR for Metadata and `min.insync.replicas`: the recorded one, plus
    /// the leader, which holds every entry by Raft's leader completeness.
    pub(super) fn isr(&self) -> BTreeSet<NodeId> {
        let mut isr = self.recorded.clone();
        isr.insert(self.leader);
        isr
    }

    /// The ISR whichever way the pending change goes (Kafka's `maximalIsr`):
    /// the members `acks=all` waits for.
    pub(super) fn maximal_isr(&self) -> BTreeSet<NodeId> {
        let mut isr = self.isr();
        if let Some(p) = &self.pending {
            isr.extend(p.isr.iter().copied());
        }
        isr
    }

    /// Whether `replica` is caught up now; the leader always is.
    pub(super) fn is_caught_up(&self, replica: NodeId) -> bool {
        replica == self.leader
            || self.followers.get(&replica).is_some_and(|f| {
                f.is_caught_up(
                    self.log_end,
                    self.now_ms,
                    self.lag_time_max_ms,
                    &self.history,
                )
            })
    }

    /// When `replica`, a follower, last held everything the leader held.
    pub(super) fn last_caught_up_ms(&self, replica: NodeId) -> Option<u64> {
        self.followers.get(&replica)?.caught_up_as_of(&self.history)
    }

    /// The newest time seen moves to `now_ms` unless it is already later.
    /// The history keeps two lag windows: one decides, the second keeps the
    /// lag a shrink reports exact. What it dated is kept in each follower
    /// first, so a follower's last caught-up time never moves back.
    pub(super) fn advance(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        for f in self.followers.values_mut() {
            f.last_caught_up_ms = f.caught_up_as_of(&self.history);
        }
        let window = self.lag_time_max_ms.saturating_mul(2);
        self.history
            .forget_before(self.now_ms.saturating_sub(window));
    }

    /// A follower answered. Progress from a non-replica (a learner) or about
    /// the leader itself is not ISR business and is ignored.
    pub(super) fn progress(&mut self, replica: NodeId, match_index: LogIndex, now_ms: u64) {
        self.advance(now_ms);
        if let Some(f) = self.followers.get_mut(&replica) {
            f.progress(match_index, self.now_ms, self.log_end);
        }
    }

    /// The leader appended up to `log_end`. Its log never shrinks while it
    /// leads, so a smaller value is stale and ignored.
    pub(super) fn log_end_grew(&mut self, log_end: LogIndex, now_ms: u64) {
        self.advance(now_ms);
        if log_end > self.log_end {
            self.history.grew(self.log_end, self.now_ms);
            self.log_end = log_end;
        }
    }

    /// The voters changed (this node is still one). A removed replica leaves
    /// both the recorded and the proposed ISR at once: the replica-set change
    /// is itself a metadata record, so nothing is proposed for it. A new one
    /// starts outside the ISR, never caught up.
    pub(super) fn replicas_changed(&mut self, replicas: BTreeSet<NodeId>) {
        self.recorded.retain(|r| replicas.contains(r));
        if let Some(p) = &mut self.pending {
            p.isr.retain(|r| replicas.contains(r));
        }
        self.followers.retain(|r, _| replicas.contains(r));
        for &r in &replicas {
            if r != self.leader {
                self.followers
                    .entry(r)
                    .or_insert_with(|| FollowerState::new(None));
            }
        }
        self.replicas = replicas;
    }

    /// The metadata log recorded `isr` at `epoch`. A member the leader has
    /// never seen caught up gets a lag window from now, as Kafka's leader
    /// resets its followers on a new partition record.
    pub(super) fn committed(&mut self, isr: &BTreeSet<NodeId>, epoch: IsrEpoch) {
        if epoch <= self.epoch {
            return;
        }
        self.recorded = isr.intersection(&self.replicas).copied().collect();
        self.epoch = epoch;
        self.pending = None;
        for r in &self.recorded {
            if let Some(f) = self.followers.get_mut(r) {
                if f.caught_up_as_of(&self.history).is_none() {
                    f.last_caught_up_ms = Some(self.now_ms);
                }
            }
        }
    }

    /// The metadata log refused `proposal`: the recorded ISR stands.
    pub(super) fn rejected(&mut self, proposal: ProposalId) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.proposal == proposal)
        {
            self.pending = None;
        }
    }

    /// The changes due now, by replica id: ISR followers that are not caught up
    /// leave, caught-up followers holding the high watermark and the epoch
    /// start join, and the leader joins a record that lacks it.
    pub(super) fn due_changes(&self) -> Vec<IsrChange> {
        let mut changes = Vec::new();
        let isr = self.isr();
        for &r in &self.replicas {
            if r == self.leader {
                if !self.recorded.contains(&r) {
                    changes.push(IsrChange::Expand { replica: r });
                }
            } else if isr.contains(&r) {
                if !self.is_caught_up(r) {
                    let f = &self.followers[&r];
                    let lag_ms = f.lag_ms(self.now_ms, self.since_ms, &self.history);
                    changes.push(IsrChange::Shrink { replica: r, lag_ms });
                }
            } else if self.may_join(r) {
                changes.push(IsrChange::Expand { replica: r });
            }
        }
        changes
    }

    /// Kafka's `isFollowerInSync` (it holds the high watermark and the leader
    /// epoch's start), and caught up within the lag bound, so a replica never
    /// joins only to be shrunk out at the next tick.
    fn may_join(&self, replica: NodeId) -> bool {
        let floor = self.hw.max(self.epoch_start);
        self.followers
            .get(&replica)
            .and_then(|f| f.match_index)
            .is_some_and(|m| m >= floor)
            && self.is_caught_up(replica)
    }
}
