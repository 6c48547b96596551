//! The leader: proposals, replication with flow control, the commit rule,
//! heartbeats, snapshots for followers behind the log, and leadership transfer.

use bytes::Bytes;

use super::{
    Action, AppendOutcome, Entry, LogId, LogIndex, MessageBody, NodeId, Payload, Progress, Raft,
    Refused, ReplicationState, Role, Snapshot, SnapshotMeta, Term,
};

impl Raft {
    pub(super) fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.votes.clear();
        self.reset_timers();
        let next = self.log.last_index().next();
        self.progress = self
            .membership
            .members()
            .filter(|&n| n != self.id)
            .map(|n| {
                let mut pr = Progress::new(next);
                pr.recent_active = true;
                (n, pr)
            })
            .collect();
        self.reads.reset();
        // No membership change until this term's first entry is applied: a change
        // proposed earlier might overlap an unknown change of a previous term.
        self.append_entries(vec![Payload::Noop]);
        self.pending_conf_index = self.log.last_index();
    }

    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                if !self.quorum_active() {
                    tracing::info!(
                        node = self.id.0,
                        term = self.term.0,
                        "leader lost quorum, stepping down"
                    );
                    self.become_follower(self.term, None);
                    return;
                }
                for pr in self.progress.values_mut() {
                    pr.recent_active = false;
                }
            }
            self.transfer_to = None;
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Whether a quorum of voters (this node included) was heard from recently.
    fn quorum_active(&self) -> bool {
        let active = self
            .membership
            .voters
            .iter()
            .filter(|&&v| v == self.id || self.progress.get(&v).is_some_and(|p| p.recent_active))
            .count();
        active >= self.membership.quorum()
    }

    fn check_can_propose(&self) -> Result<(), Refused> {
        if self.role != Role::Leader {
            return Err(Refused::NotLeader {
                leader: self.leader,
            });
        }
        if self.transfer_to.is_some() {
            return Err(Refused::TransferInProgress);
        }
        Ok(())
    }

    pub(super) fn propose(&mut self, data: Vec<Bytes>) -> Result<(), Refused> {
        self.check_can_propose()?;
        if data.is_empty() {
            return Ok(());
        }
        self.append_proposal(data.into_iter().map(Payload::Normal).collect());
        Ok(())
    }

    pub(super) fn propose_conf_change(&mut self, cc: super::ConfChange) -> Result<(), Refused> {
        self.check_can_propose()?;
        if self.pending_conf_index > self.log.applied() {
            return Err(Refused::ConfChangePending);
        }
        self.validate_conf_change(cc)?;
        let membership = self.membership.changed(cc);
        self.append_proposal(vec![Payload::ConfChange {
            change: cc,
            membership,
        }]);
        self.pending_conf_index = self.log.last_index();
        Ok(())
    }

    /// Appends entries of this term to the leader's own log and starts
    /// replicating them.
    fn append_entries(&mut self, payloads: Vec<Payload>) {
        let first = self.log.last_index().next();
        for payload in payloads {
            let index = self.log.last_index().next();
            self.log.append(Entry {
                term: self.term,
                index,
                payload,
            });
        }
        self.mark_unwritten(first);
        self.broadcast_append();
    }

    /// Appends a client's entries and tells the caller where they landed.
    fn append_proposal(&mut self, payloads: Vec<Payload>) {
        let first = self.log.last_index().next();
        self.append_entries(payloads);
        self.actions.push(Action::Proposed {
            term: self.term,
            first,
            last: self.log.last_index(),
        });
    }

    /// Sends `to` the next append if flow control allows; returns whether it did.
    fn send_append(&mut self, to: NodeId, send_if_empty: bool) -> bool {
        let (max_msgs, max_bytes) = (self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes);
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        if pr.is_paused(max_msgs, max_bytes) {
            return false;
        }
        let prev_index = pr.next.prev();
        let prev_term = self.log.term(prev_index);
        let entries = self.log.entries_from(pr.next, self.cfg.max_msg_bytes);
        let (Some(prev_term), Some(entries)) = (prev_term, entries) else {
            return self.send_compacted(to);
        };
        if entries.is_empty() && !send_if_empty {
            return false;
        }
        let prev = LogId {
            term: prev_term,
            index: prev_index,
        };
        self.send_entries(to, prev, entries)
    }

    /// Sends `to` an append of `entries` after `prev`, counting it against the
    /// follower's flow control; false if its state does not take appends.
    fn send_entries(&mut self, to: NodeId, prev: LogId, entries: Vec<Entry>) -> bool {
        let commit = self.log.commit();
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        match pr.state {
            ReplicationState::Replicate => {
                if let Some(last) = entries.last() {
                    let bytes = entries.iter().map(Entry::size).sum();
                    pr.next = last.index.next();
                    pr.inflights.add(last.index, bytes);
                }
            }
            ReplicationState::Probe { .. } => pr.state = ReplicationState::Probe { paused: true },
            ReplicationState::Snapshot { .. } => return false,
        }
        pr.sent_commit = commit;
        self.send(
            to,
            MessageBody::Append {
                prev,
                entries,
                commit,
            },
        );
        true
    }

    /// `to` needs entries the in-memory log compacted away: asks the driver to
    /// load them from storage when it keeps them (one load at a time), and
    /// otherwise sends the snapshot. Returns whether an append went out.
    fn send_compacted(&mut self, to: NodeId) -> bool {
        if !self.cfg.load_compacted {
            return self.start_snapshot(to);
        }
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        if pr.loading.is_some() {
            return false;
        }
        pr.loading = Some(pr.next);
        self.actions.push(Action::LoadEntries {
            to,
            from: pr.next,
            last: self.log.snapshot_last().index,
            max_bytes: self.cfg.max_msg_bytes,
        });
        false
    }

    /// Takes the answer to `to`'s outstanding load from `from`: whether it
    /// is still wanted. A stale answer (not the leader, another load, or
    /// progress that moved meanwhile, after a rejection or a state change)
    /// is dropped, and in the last case replication goes on from the new
    /// `next`.
    fn take_load_answer(&mut self, to: NodeId, from: LogIndex) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        if pr.loading != Some(from) {
            return false;
        }
        pr.loading = None;
        if pr.next != from {
            self.maybe_send_append(to);
            return false;
        }
        true
    }

    /// Sends what storage loaded for `to` (see [`Raft::send_compacted`]), then
    /// goes on replicating. Entries past the compaction point (storage was
    /// asked for none) are dropped: the in-memory log sends those.
    pub(super) fn handle_entries_loaded(
        &mut self,
        to: NodeId,
        from: LogIndex,
        prev_term: Option<Term>,
        entries: Vec<Entry>,
    ) {
        if !self.take_load_answer(to, from) {
            return;
        }
        let prev_index = from.prev();
        let known = if prev_index.0 == 0 {
            Some(Term(0))
        } else {
            self.log.term(prev_index)
        };
        let Some(prev_term) = known.or(prev_term).filter(|_| !entries.is_empty()) else {
            return self.snapshot_instead(to, from, "storage no longer holds them");
        };
        let snapshot_last = self.log.snapshot_last();
        let entries: Vec<Entry> = entries
            .into_iter()
            .take_while(|e| e.index <= snapshot_last.index)
            .collect();
        let contiguous = entries
            .iter()
            .zip(from.0..)
            .all(|(e, index)| e.index.0 == index);
        // The entry at the compaction point, if loaded, must be the one the
        // log remembers there.
        let agrees = entries
            .last()
            .filter(|e| e.index == snapshot_last.index)
            .is_none_or(|e| e.term == snapshot_last.term);
        if entries.is_empty() || !contiguous || !agrees {
            return self.snapshot_instead(to, from, "what storage returned does not fit the log");
        }
        let prev = LogId {
            term: prev_term,
            index: prev_index,
        };
        if self.send_entries(to, prev, entries) {
            self.maybe_send_append(to);
        }
    }

    /// Sends to `to` as much as flow control allows, then the commit index if it
    /// has nothing else in flight to carry it.
    fn maybe_send_append(&mut self, to: NodeId) {
        while self.send_append(to, false) {}
        let commit = self.log.commit();
        if self
            .progress
            .get(&to)
            .is_some_and(|pr| pr.sent_commit < commit && pr.inflights.is_empty())
        {
            self.send_append(to, true);
        }
    }

    /// Sends an empty append at `next`, ignoring the in-flight window. A follower
    /// that stayed behind for a whole heartbeat interval while nothing new could
    /// be sent has probably lost the appends in flight; it rejects a `prev` it
    /// lacks, which turns it back to probing.
    fn send_empty_append(&mut self, to: NodeId) {
        let Some(pr) = self.progress.get(&to) else {
            return;
        };
        let prev_index = pr.next.prev();
        let Some(prev_term) = self.log.term(prev_index) else {
            // What was in flight has been compacted away since: probe again
            // from what the follower matched, which takes entries from
            // storage or a snapshot.
            if let Some(pr) = self.progress.get_mut(&to) {
                if pr.loading.is_none() {
                    pr.become_probe();
                }
            }
            self.send_append(to, true);
            return;
        };
        let commit = self.log.commit();
        let prev = LogId {
            term: prev_term,
            index: prev_index,
        };
        self.send(
            to,
            MessageBody::Append {
                prev,
                entries: Vec::new(),
                commit,
            },
        );
    }

    pub(super) fn broadcast_append(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for to in peers {
            while self.send_append(to, false) {}
        }
    }

    /// Makes sure every follower hears of a commit advance.
    pub(super) fn broadcast_commit(&mut self) {
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for to in peers {
            self.maybe_send_append(to);
        }
    }

    /// The leader's own durable position, counted toward quorums.
    fn own_match(&self) -> LogIndex {
        #[cfg(feature = "fault-switches")]
        if self.cfg.faults.ack_before_persist {
            return self.log.last_index();
        }
        self.log.persisted()
    }

    /// Advances the commit index to the highest index durable on a quorum of
    /// voters, if that entry is of this term (Raft Figure 8: entries of earlier
    /// terms commit only indirectly).
    pub(super) fn maybe_commit(&mut self) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        let mut matched: Vec<LogIndex> = self
            .membership
            .voters
            .iter()
            .map(|&v| {
                if v == self.id {
                    self.own_match()
                } else {
                    self.progress.get(&v).map_or(LogIndex(0), |p| p.matched)
                }
            })
            .collect();
        if matched.is_empty() {
            return false;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.membership.quorum() - 1];
        if candidate <= self.log.commit() {
            return false;
        }
        let current_term = self.log.term(candidate) == Some(self.term);
        #[cfg(feature = "fault-switches")]
        let current_term = current_term || self.cfg.faults.skip_figure8_rule;
        if !current_term {
            return false;
        }
        let first_in_term = self.log.term(self.log.commit()) != Some(self.term);
        self.log.commit_to(candidate);
        if first_in_term {
            self.release_reads_waiting_for_commit();
        }
        true
    }

    pub(super) fn handle_append_response(&mut self, from: NodeId, outcome: AppendOutcome) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        match outcome {
            AppendOutcome::Accepted { last } => {
                if !pr.maybe_update(last) {
                    return;
                }
                match pr.state {
                    ReplicationState::Probe { .. } => pr.become_replicate(),
                    ReplicationState::Snapshot { index, .. } if pr.matched >= index => {
                        pr.become_probe();
                        pr.become_replicate();
                    }
                    ReplicationState::Replicate => pr.inflights.free_to(last),
                    ReplicationState::Snapshot { .. } => {}
                }
                if self.maybe_commit() {
                    self.broadcast_commit();
                } else {
                    self.maybe_send_append(from);
                }
                if self.transfer_to == Some(from)
                    && self.progress[&from].matched == self.log.last_index()
                {
                    self.send(from, MessageBody::TimeoutNow);
                }
            }
            AppendOutcome::Rejected { index, hint } => {
                let probe_to = if hint.term.0 > 0 {
                    self.log.find_conflict_by_term(hint.index, hint.term).index
                } else {
                    hint.index
                };
                let Some(pr) = self.progress.get_mut(&from) else {
                    return;
                };
                if pr.maybe_decrease_to(index, probe_to) {
                    if pr.state == ReplicationState::Replicate {
                        pr.become_probe();
                    }
                    self.send_append(from, true);
                }
            }
        }
    }

    /// Sends one heartbeat; `quiesce` asks the follower to stop ticking.
    pub(super) fn send_heartbeat(&mut self, to: NodeId, quiesce: bool) {
        let matched = self.progress.get(&to).map_or(LogIndex(0), |p| p.matched);
        let commit = self.log.commit().min(matched);
        let round = self.reads.round;
        self.send(
            to,
            MessageBody::Heartbeat {
                commit,
                round,
                quiesce,
            },
        );
    }

    /// Starts a new heartbeat round to every member. When the group is idle and
    /// everyone is caught up, the round asks followers to quiesce, and so does
    /// the leader.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let quiesce = self.ready_to_quiesce();
        self.reads.start_round(self.ticks);
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for to in peers {
            self.send_heartbeat(to, quiesce);
        }
        if quiesce {
            self.quiesced = true;
            self.reads.forget_lease();
        }
    }

    fn ready_to_quiesce(&self) -> bool {
        let last = self.log.last_index();
        self.cfg.quiesce
            && self.transfer_to.is_none()
            && self.reads.is_idle()
            && self.log.commit() == last
            && self.log.persisted() == last
            && self.log.applied() == last
            && self
                .progress
                .values()
                .all(|p| p.matched == last && p.acked_round == self.reads.round && p.recent_active)
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, round: u64) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(round);
        if let ReplicationState::Probe { paused } = &mut pr.state {
            *paused = false;
        }
        let stalled = pr.matched == pr.matched_at_heartbeat;
        pr.matched_at_heartbeat = pr.matched;
        let resend_snapshot = matches!(pr.state, ReplicationState::Snapshot { .. });
        let behind = pr.matched < self.log.last_index();
        if resend_snapshot {
            self.send_snapshot_chunk(from);
        } else if behind {
            let before = self.actions.len();
            self.maybe_send_append(from);
            if self.actions.len() == before && stalled {
                self.send_empty_append(from);
            }
        }
        self.release_acknowledged_reads();
    }

    /// Storage no longer holds `from`, which `to` needs, and starts after
    /// `start` (see [`Event::LogStartLoaded`](super::Event::LogStartLoaded)):
    /// sends `to` a snapshot at `start` with the driver's `data`, after which
    /// it is sent the stored entries. The snapshot's membership is the
    /// oldest the leader knows (its own snapshot's): a partition's membership
    /// does not change.
    pub(super) fn handle_log_start_loaded(
        &mut self,
        to: NodeId,
        from: LogIndex,
        start: LogId,
        data: Bytes,
    ) {
        if !self.take_load_answer(to, from) {
            return;
        }
        let snapshot_last = self.log.snapshot_last();
        let fits = start.index >= from
            && start.index <= snapshot_last.index
            && self.log.term(start.index).is_none_or(|t| t == start.term);
        if !fits {
            return self.snapshot_instead(to, from, "storage's start does not fit the log");
        }
        tracing::info!(
            node = self.id.0,
            peer = to.0,
            from = from.0,
            start = start.index.0,
            "storage no longer holds what a follower needs; it restarts at storage's start"
        );
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                last: start,
                membership: self.membership_at(start.index),
            },
            data,
        };
        let Some(pr) = self.progress.get_mut(&to) else {
            return;
        };
        pr.become_snapshot(start.index);
        pr.log_start = Some(snapshot);
        self.send_snapshot_chunk(to);
    }

    /// Sends `to` the snapshot because the compacted entries from `from` on
    /// cannot be sent, for the reason `why`.
    fn snapshot_instead(&mut self, to: NodeId, from: LogIndex, why: &str) {
        tracing::warn!(
            node = self.id.0,
            peer = to.0,
            from = from.0,
            why,
            "cannot send a follower the compacted entries it needs; sending the snapshot"
        );
        self.start_snapshot(to);
    }

    /// Switches `to` to receiving the latest snapshot; false if there is none.
    fn start_snapshot(&mut self, to: NodeId) -> bool {
        let Some(index) = self.snapshot.as_ref().map(|s| s.meta.last.index) else {
            tracing::warn!(
                node = self.id.0,
                peer = to.0,
                "follower needs compacted entries but no snapshot is held"
            );
            return false;
        };
        let Some(pr) = self.progress.get_mut(&to) else {
            return false;
        };
        pr.become_snapshot(index);
        self.send_snapshot_chunk(to);
        true
    }

    /// Sends the chunk the follower needs next, of the storage-start snapshot
    /// it is being sent or else the leader's own.
    fn send_snapshot_chunk(&mut self, to: NodeId) {
        let Some(pr) = self.progress.get_mut(&to) else {
            return;
        };
        let ReplicationState::Snapshot {
            index,
            acked_offset,
        } = pr.state
        else {
            return;
        };
        let log_start = pr.log_start.clone().filter(|s| s.meta.last.index == index);
        let Some(snapshot) = log_start.or_else(|| self.snapshot.clone()) else {
            return;
        };
        let offset = if index == snapshot.meta.last.index {
            acked_offset
        } else {
            pr.become_snapshot(snapshot.meta.last.index);
            0
        };
        let total = snapshot.data.len() as u64;
        let start = (offset.min(total)) as usize;
        let end = (start + self.cfg.snapshot_chunk_bytes).min(snapshot.data.len());
        let chunk = snapshot.data.slice(start..end);
        self.send(
            to,
            MessageBody::InstallSnapshot {
                meta: snapshot.meta,
                offset: start as u64,
                total,
                chunk,
            },
        );
    }

    pub(super) fn handle_snapshot_response(
        &mut self,
        from: NodeId,
        last: LogId,
        next_offset: u64,
        done: bool,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        let ReplicationState::Snapshot {
            index,
            acked_offset,
        } = pr.state
        else {
            return;
        };
        if index != last.index {
            return;
        }
        if done {
            pr.maybe_update(last.index);
            pr.become_probe();
            pr.become_replicate();
            self.maybe_send_append(from);
        } else if next_offset != acked_offset {
            // Only an answer that moves the follower's position asks for another
            // chunk. A duplicate or stale answer (to a chunk a heartbeat resent)
            // would start a second stream of chunks, and streams would multiply.
            pr.state = ReplicationState::Snapshot {
                index,
                acked_offset: next_offset,
            };
            self.send_snapshot_chunk(from);
        }
    }

    pub(super) fn transfer_leader(&mut self, to: NodeId) -> Result<(), Refused> {
        if self.role != Role::Leader {
            return Err(Refused::NotLeader {
                leader: self.leader,
            });
        }
        if to == self.id {
            return Ok(());
        }
        if !self.membership.voters.contains(&to) {
            return Err(Refused::NotAVoter(to));
        }
        self.transfer_to = Some(to);
        self.reads.lease_revoked = true;
        // The transfer is abandoned if it has not happened within an election timeout.
        self.election_elapsed = 0;
        if self
            .progress
            .get(&to)
            .is_some_and(|p| p.matched == self.log.last_index())
        {
            self.send(to, MessageBody::TimeoutNow);
        } else {
            self.maybe_send_append(to);
        }
        Ok(())
    }

    pub(super) fn handle_unreachable(&mut self, peer: NodeId) {
        if let Some(pr) = self.progress.get_mut(&peer) {
            if pr.state != (ReplicationState::Probe { paused: false }) {
                pr.become_probe();
            }
        }
    }
}
