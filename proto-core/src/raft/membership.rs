//! Membership changes, one server at a time, and log compaction (which must know
//! the membership at the snapshot's index).

use bytes::Bytes;

use super::{
    ConfChange, LogId, LogIndex, Membership, Payload, Progress, Raft, Refused, Role, Snapshot,
    SnapshotMeta,
};

impl Raft {
    pub(super) fn validate_conf_change(&self, cc: ConfChange) -> Result<(), Refused> {
        let m = &self.membership;
        match cc {
            ConfChange::AddLearner(n) if m.contains(n) => {
                Err(Refused::InvalidConfChange("already a member"))
            }
            ConfChange::AddLearner(_) => Ok(()),
            ConfChange::PromoteLearner(n) if !m.learners.contains(&n) => {
                Err(Refused::InvalidConfChange("not a learner"))
            }
            ConfChange::PromoteLearner(n) => {
                let matched = self.progress.get(&n).map_or(LogIndex(0), |p| p.matched);
                if matched.0 + self.cfg.learner_catchup_lag < self.log.last_index().0 {
                    Err(Refused::LearnerNotCaughtUp(n))
                } else {
                    Ok(())
                }
            }
            ConfChange::RemoveNode(n) if !m.contains(n) => {
                Err(Refused::InvalidConfChange("not a member"))
            }
            ConfChange::RemoveNode(n) if m.voters.len() == 1 && m.voters.contains(&n) => {
                Err(Refused::InvalidConfChange("cannot remove the last voter"))
            }
            ConfChange::RemoveNode(_) => Ok(()),
        }
    }

    /// Applies a membership change when its entry is applied. Idempotent per index,
    /// so replaying the log after a restart changes nothing twice.
    pub(super) fn apply_conf_change(
        &mut self,
        index: LogIndex,
        cc: ConfChange,
        membership: Membership,
    ) {
        if index <= self.membership_index {
            return;
        }
        self.membership = membership;
        self.membership_index = index;
        self.membership_history
            .push((index, self.membership.clone()));
        tracing::info!(node = self.id.0, index = index.0, change = %cc, membership = %self.membership, "membership changed");
        if self.role != Role::Leader {
            return;
        }
        match cc {
            ConfChange::AddLearner(n) if n != self.id => {
                let next = self.log.last_index().next();
                self.progress
                    .entry(n)
                    .or_insert_with(|| Progress::new(next));
                self.broadcast_append();
            }
            ConfChange::RemoveNode(n) if n == self.id => {
                // Tell everyone the change committed, then stop leading.
                self.broadcast_commit();
                self.become_follower(self.term, None);
            }
            ConfChange::RemoveNode(n) => {
                self.progress.remove(&n);
                if self.transfer_to == Some(n) {
                    self.transfer_to = None;
                }
                if self.maybe_commit() {
                    self.broadcast_commit();
                }
            }
            ConfChange::AddLearner(_) | ConfChange::PromoteLearner(_) => {
                if self.maybe_commit() {
                    self.broadcast_commit();
                }
            }
        }
    }

    /// On restart, membership changes already committed and durable take effect
    /// at once, so the node campaigns (or not) with the right membership.
    pub(super) fn apply_durable_conf_changes(&mut self) {
        let upto = self.log.commit().min(self.log.persisted());
        for e in self.log.slice(self.log.snapshot_last().index, upto) {
            if let Payload::ConfChange { change, membership } = e.payload {
                self.apply_conf_change(e.index, change, membership);
            }
        }
    }

    /// The membership in force at `index`; for an index before the history
    /// (compacted away), the oldest one known.
    pub(super) fn membership_at(&self, index: LogIndex) -> Membership {
        self.membership_history
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .or(self.membership_history.first())
            .map_or_else(|| self.membership.clone(), |(_, m)| m.clone())
    }

    /// Records the application's snapshot at `index` and drops the log up to it.
    pub(super) fn compact(&mut self, index: LogIndex, data: Bytes) -> Result<(), Refused> {
        if index > self.log.applied() {
            return Err(Refused::InvalidSnapshot("index not applied yet"));
        }
        if index <= self.log.snapshot_last().index {
            return Err(Refused::InvalidSnapshot("older than the current snapshot"));
        }
        let Some(term) = self.log.term(index) else {
            return Err(Refused::InvalidSnapshot("index not in the log"));
        };
        let last = LogId { term, index };
        let membership = self.membership_at(index);
        self.membership_history.retain(|(i, _)| *i > index);
        self.membership_history
            .insert(0, (index, membership.clone()));
        self.log.compact_to(last);
        let snapshot = Snapshot {
            meta: SnapshotMeta { last, membership },
            data,
        };
        self.pending_write.snapshot = Some(snapshot.clone());
        self.snapshot = Some(snapshot);
        Ok(())
    }
}
