//! Kafka's in-sync replica set on top of Raft, as a pure state machine.
//!
//! One [`IsrTracker`] per partition runs on the node that may lead it. Raft
//! decides what is committed (the high watermark is the Raft commit index) and
//! who leads; the ISR adds Kafka's view on top: which replicas are keeping up,
//! for Metadata answers and for `min.insync.replicas`. Everything enters
//! through [`IsrTracker::step`] with the time it happened; ISR changes leave as
//! [`Action::IsrChanged`] for the caller to write to the metadata log (Kafka's
//! AlterPartition), drained with [`IsrTracker::take_actions`]. No IO, no clock
//! and ordered maps only, so the same events give the same actions.
//!
//! The rules (Kafka's, with Raft log indexes for positions):
//!
//! - A follower is caught up at `now` if it acknowledged the leader's log end,
//!   or if its acknowledged index reached the leader's log end as of some
//!   moment within the last `replica.lag.time.max.ms` (Kafka's
//!   `lastCaughtUpTimeMs`, KIP-16 semantics). So a follower that keeps up under
//!   constant load stays in although it never reaches the moving log end.
//! - An ISR follower that is not caught up leaves ([`IsrChange::Shrink`]).
//! - A follower outside the ISR joins ([`IsrChange::Expand`]) once its
//!   acknowledged index holds the high watermark and the leader's log end at
//!   election, and it is caught up: being alive is not enough.
//! - The leader is always in the ISR; a removed replica leaves it at once; the
//!   ISR never holds a non-replica, and learners are never replicas.
//!
//! One change is in flight at a time. While it is, [`IsrTracker::isr`] stays
//! the recorded ISR and `acks=all` waits for every member of the recorded and
//! the proposed ISR ([`IsrTracker::maximal_isr`], Kafka's `maximalIsr`), so
//! whichever ISR the metadata log ends up with holds every acknowledged write,
//! and `min.insync.replicas` only counts members the log recorded.
//! docs/architecture.md tells the whole story.

mod config;
mod follower;
mod history;
mod io;
mod leadership;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

pub use config::IsrConfig;
pub use io::{AcksAll, Action, Event, IsrChange, IsrEpoch, ProposalId, Refused};

use crate::raft::{LogIndex, NodeId};
use leadership::{Leadership, Pending};

/// The ISR tracker of one partition on one node.
#[derive(Clone, Debug)]
pub struct IsrTracker {
    cfg: IsrConfig,
    id: NodeId,
    /// The next proposal's number; never reset, so a late answer to an old
    /// leadership's proposal cannot match a new one.
    next_proposal: u64,
    leading: Option<Leadership>,
    actions: Vec<Action>,
}

impl IsrTracker {
    /// A tracker for node `id`, not leading yet.
    pub fn new(cfg: IsrConfig, id: NodeId) -> IsrTracker {
        IsrTracker {
            cfg,
            id,
            next_proposal: 1,
            leading: None,
            actions: Vec::new(),
        }
    }

    /// Applies one event. While not leading, only [`Event::BecameLeader`] does
    /// anything. Changes are proposed after `BecameLeader`, `FollowerProgress`
    /// and `Tick`, the events that bring news about followers or time, so a
    /// rejected change is retried at the next of them rather than at once.
    pub fn step(&mut self, event: Event) -> Result<(), Refused> {
        match event {
            Event::BecameLeader {
                replicas,
                initial_isr,
                isr_epoch,
                log_end,
                now_ms,
            } => {
                if !replicas.contains(&self.id) {
                    return Err(Refused::LeaderNotAReplica(self.id));
                }
                self.leading = Some(Leadership::new(
                    &self.cfg,
                    self.id,
                    replicas,
                    &initial_isr,
                    isr_epoch,
                    log_end,
                    now_ms,
                ));
                self.propose();
            }
            Event::SteppedDown => self.leading = None,
            Event::ReplicasChanged { replicas } if !replicas.contains(&self.id) => {
                self.leading = None;
            }
            other => self.step_leading(other),
        }
        Ok(())
    }

    /// The events a leader handles; ignored while not leading.
    fn step_leading(&mut self, event: Event) {
        let Some(l) = self.leading.as_mut() else {
            return;
        };
        match event {
            Event::FollowerProgress {
                replica,
                match_index,
                now_ms,
            } => {
                l.progress(replica, match_index, now_ms);
                self.propose();
            }
            Event::Tick { now_ms } => {
                l.advance(now_ms);
                self.propose();
            }
            Event::LeaderLogEnd { log_end, now_ms } => l.log_end_grew(log_end, now_ms),
            Event::HighWatermark { hw } => l.hw = l.hw.max(hw),
            Event::ReplicasChanged { replicas } => l.replicas_changed(replicas),
            Event::IsrCommitted { isr, epoch } => l.committed(&isr, epoch),
            Event::IsrRejected { proposal } => l.rejected(proposal),
            // Handled by `step`.
            Event::BecameLeader { .. } | Event::SteppedDown => {}
        }
    }

    /// Proposes the changes due now, unless one is in flight.
    fn propose(&mut self) {
        let Some(l) = self.leading.as_mut() else {
            return;
        };
        if l.pending.is_some() {
            return;
        }
        let changes = l.due_changes();
        if changes.is_empty() {
            return;
        }
        let mut isr = l.isr();
        for c in &changes {
            match *c {
                IsrChange::Shrink { replica, .. } => isr.remove(&replica),
                IsrChange::Expand { replica } => isr.insert(replica),
            };
        }
        let proposal = ProposalId(self.next_proposal);
        self.next_proposal += 1;
        l.pending = Some(Pending {
            proposal,
            isr: isr.clone(),
        });
        self.actions.push(Action::IsrChanged {
            proposal,
            based_on: l.epoch,
            isr,
            changes,
        });
    }

    /// The actions since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Whether no event can change anything while the inputs stay as they
    /// are: this node leads with every replica in the recorded ISR, no change
    /// pending, and the log end and high watermark it last saw are
    /// `log_end` and `hw`. With every follower's match at `log_end` too, a
    /// driver may stop feeding the tracker until an input moves: a
    /// follower's lag is measured from when the log grew past its match
    /// (the history), not from the last poll, so the pause costs nothing.
    pub fn is_settled(&self, log_end: LogIndex, hw: LogIndex) -> bool {
        self.leading.as_ref().is_some_and(|l| {
            l.pending.is_none() && l.recorded == l.replicas && l.log_end == log_end && l.hw == hw
        })
    }

    /// Whether this node leads the partition.
    pub fn is_leader(&self) -> bool {
        self.leading.is_some()
    }

    /// The ISR as recorded in the metadata log, plus the leader: what Metadata
    /// reports and `min.insync.replicas` counts. Empty while not leading.
    pub fn isr(&self) -> BTreeSet<NodeId> {
        self.leading
            .as_ref()
            .map(Leadership::isr)
            .unwrap_or_default()
    }

    /// The recorded ISR together with the pending proposal's: every replica
    /// that may be in the ISR once the pending change is answered, so every
    /// replica an `acks=all` write must reach.
    pub fn maximal_isr(&self) -> BTreeSet<NodeId> {
        self.leading
            .as_ref()
            .map(Leadership::maximal_isr)
            .unwrap_or_default()
    }

    /// The change in flight: its name and the ISR it proposes.
    pub fn pending(&self) -> Option<(ProposalId, &BTreeSet<NodeId>)> {
        let p = self.leading.as_ref()?.pending.as_ref()?;
        Some((p.proposal, &p.isr))
    }

    /// The epoch of the recorded ISR.
    pub fn epoch(&self) -> Option<IsrEpoch> {
        self.leading.as_ref().map(|l| l.epoch)
    }

    /// The replicas (Raft voters) of the current leadership.
    pub fn replicas(&self) -> BTreeSet<NodeId> {
        self.leading
            .as_ref()
            .map(|l| l.replicas.clone())
            .unwrap_or_default()
    }

    /// The highest index `replica`, a follower, acknowledged in this
    /// leadership.
    pub fn match_index(&self, replica: NodeId) -> Option<LogIndex> {
        self.leading.as_ref()?.followers.get(&replica)?.match_index
    }

    /// The latest moment `replica`, a follower, is known to have held
    /// everything the leader held (Kafka's `lastCaughtUpTimeMs`).
    pub fn last_caught_up_ms(&self, replica: NodeId) -> Option<u64> {
        self.leading.as_ref()?.last_caught_up_ms(replica)
    }

    /// The leader's last index and the high watermark, as last stepped.
    pub fn log_end_and_hw(&self) -> Option<(LogIndex, LogIndex)> {
        self.leading.as_ref().map(|l| (l.log_end, l.hw))
    }

    /// Whether `replica` is caught up with the leader by the newest time seen;
    /// the leader always is, a non-replica never.
    pub fn is_caught_up(&self, replica: NodeId) -> bool {
        self.leading
            .as_ref()
            .is_some_and(|l| l.is_caught_up(replica))
    }

    /// Whether an `acks=all` produce must be refused before it is appended
    /// (Kafka's `NOT_ENOUGH_REPLICAS`): the ISR is smaller than
    /// `min_insync_replicas`. Always true while not leading.
    pub fn under_min_isr(&self, min_insync_replicas: usize) -> bool {
        self.isr().len() < min_insync_replicas
    }

    /// The answer for an `acks=all` produce whose last entry is at `last`:
    /// wait until it is committed and every member of the maximal ISR holds it,
    /// then acknowledge it, or report `NOT_ENOUGH_REPLICAS_AFTER_APPEND` if the
    /// ISR fell below `min_insync_replicas` meanwhile (Kafka's
    /// `Partition.checkEnoughReplicasReachOffset`).
    pub fn acks_all(&self, last: LogIndex, min_insync_replicas: usize) -> AcksAll {
        let Some(l) = &self.leading else {
            return AcksAll::Wait;
        };
        let held = |r: &NodeId| {
            *r == l.leader
                || l.followers
                    .get(r)
                    .and_then(|f| f.match_index)
                    .is_some_and(|m| m >= last)
        };
        if l.hw < last || !l.maximal_isr().iter().all(held) {
            AcksAll::Wait
        } else if l.isr().len() < min_insync_replicas {
            AcksAll::NotEnoughReplicasAfterAppend
        } else {
            AcksAll::Ack
        }
    }
}
