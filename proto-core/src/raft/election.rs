//! Followers' timeouts, (pre-)candidates, votes, and the term rules every
//! message goes through first.

use super::{Message, MessageBody, NodeId, Raft, Role, Term};

impl Raft {
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.unknown_lease = false;
        }
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.campaign(self.cfg.pre_vote, false);
        }
    }

    /// Whether this node still honours a leader it heard from recently: while it
    /// does, it refuses to help anyone else become leader (CheckQuorum's lease).
    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && (self.leader.is_some() || self.unknown_lease)
            && (self.quiesced || self.election_elapsed < self.cfg.election_ticks)
    }

    /// Starts an election: a pre-vote round first if `pre_vote`, otherwise a real
    /// one. `transfer` marks elections a leader asked for, which override leases.
    pub(super) fn campaign(&mut self, pre_vote: bool, transfer: bool) {
        if !self.promotable() {
            return;
        }
        self.abort_reads();
        self.progress.clear();
        self.transfer_to = None;
        self.votes.clear();
        self.leader = None;
        self.unknown_lease = false;
        self.reset_timers();
        let last = self.log.last_id();
        let voters: Vec<NodeId> = self
            .membership
            .voters
            .iter()
            .copied()
            .filter(|&v| v != self.id)
            .collect();
        if pre_vote {
            self.role = Role::PreCandidate;
            let term = Term(self.term.0 + 1);
            for to in voters {
                self.actions.push(super::Action::Send(Message {
                    from: self.id,
                    to,
                    term,
                    body: MessageBody::PreVote { last },
                }));
            }
        } else {
            self.role = Role::Candidate;
            self.term = Term(self.term.0 + 1);
            self.vote = Some(self.id);
            for to in voters {
                self.send(to, MessageBody::Vote { last, transfer });
            }
        }
        self.poll_election();
    }

    /// Counts votes; wins, loses, or keeps waiting.
    pub(super) fn poll_election(&mut self) {
        let own = match self.role {
            Role::PreCandidate => true,
            Role::Candidate => self.own_vote_durable(),
            Role::Follower | Role::Leader => return,
        };
        let granted = self.votes.values().filter(|&&g| g).count() + usize::from(own);
        let rejected = self.votes.values().filter(|&&g| !g).count();
        let quorum = self.membership.quorum();
        // A candidate leads only once its own term and vote are durable, even
        // when the others' votes already make a quorum: otherwise a crash
        // that loses them lets it campaign for the same term again, win it a
        // second time with an empty log, and give a follower a different
        // entry at an index and term it already holds (found by the
        // schedule property; log matching would break).
        if granted >= quorum && (own || self.leads_without_own_vote()) {
            if self.role == Role::PreCandidate {
                self.campaign(false, false);
            } else {
                self.become_leader();
            }
        } else if rejected >= quorum || (self.membership.voters.len() - rejected) < quorum {
            self.become_follower(self.term, None);
        }
    }

    /// The test-only switch that brings back the bug the rule above fixes.
    fn leads_without_own_vote(&self) -> bool {
        #[cfg(feature = "fault-switches")]
        if self.cfg.faults.lead_before_own_vote_durable {
            return true;
        }
        false
    }

    /// A candidate counts its own vote only once the vote is durable.
    fn own_vote_durable(&self) -> bool {
        #[cfg(feature = "fault-switches")]
        if self.cfg.faults.ack_before_persist {
            return true;
        }
        self.persisted_hard_state.term == self.term
            && self.persisted_hard_state.vote == Some(self.id)
    }

    /// Applies the term rules to a message; returns false if it must be dropped.
    fn check_term(&mut self, m: &Message) -> bool {
        if m.term > self.term {
            match &m.body {
                MessageBody::PreVote { .. }
                | MessageBody::Vote {
                    transfer: false, ..
                } if self.in_lease() => {
                    // A member missing our heartbeats (perhaps it missed the quiesce
                    // notice) is reminded who leads. Not a removed node: its answer
                    // would carry its higher term and depose us, the very disruption
                    // the lease prevents.
                    if self.role == Role::Leader && self.progress.contains_key(&m.from) {
                        self.send_heartbeat(m.from, false);
                    }
                    return false;
                }
                MessageBody::PreVote { .. } => return true,
                MessageBody::PreVoteResponse { reject: false } => return true,
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => self.become_follower(m.term, Some(m.from)),
                _ => self.become_follower(m.term, None),
            }
            return true;
        }
        if m.term < self.term {
            match m.body {
                // A stale leader learns our term from the answer and steps down.
                MessageBody::Append { .. }
                | MessageBody::Heartbeat { .. }
                | MessageBody::InstallSnapshot { .. } => {
                    self.send(m.from, MessageBody::HeartbeatResponse { round: 0 });
                }
                MessageBody::PreVote { .. } => {
                    self.send(m.from, MessageBody::PreVoteResponse { reject: true });
                }
                _ => {}
            }
            return false;
        }
        true
    }

    pub(super) fn handle_message(&mut self, m: Message) {
        if m.to != self.id || !self.check_term(&m) {
            return;
        }
        let from = m.from;
        match m.body {
            MessageBody::PreVote { last } => self.handle_vote_request(from, m.term, last, true),
            MessageBody::Vote { last, .. } => self.handle_vote_request(from, m.term, last, false),
            MessageBody::PreVoteResponse { reject } => {
                if self.role == Role::PreCandidate && (reject || m.term == Term(self.term.0 + 1)) {
                    self.votes.insert(from, !reject);
                    self.poll_election();
                }
            }
            MessageBody::VoteResponse { reject } => {
                if self.role == Role::Candidate {
                    self.votes.insert(from, !reject);
                    self.poll_election();
                }
            }
            MessageBody::Append {
                prev,
                entries,
                commit,
            } => {
                self.accept_leader(from);
                self.handle_append(from, prev, entries, commit);
            }
            MessageBody::Heartbeat {
                commit,
                round,
                quiesce,
            } => {
                self.accept_leader(from);
                self.handle_heartbeat(from, commit, round, quiesce);
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                total,
                chunk,
            } => {
                self.accept_leader(from);
                self.handle_snapshot_chunk(from, meta, offset, total, chunk);
            }
            MessageBody::AppendResponse { outcome } => self.handle_append_response(from, outcome),
            MessageBody::HeartbeatResponse { round } => self.handle_heartbeat_response(from, round),
            MessageBody::SnapshotResponse {
                last,
                next_offset,
                done,
            } => self.handle_snapshot_response(from, last, next_offset, done),
            MessageBody::TimeoutNow => {
                if self.leader == Some(from) || self.leader.is_none() {
                    self.campaign(false, true);
                }
            }
            MessageBody::ReadIndex { ctx } => self.handle_forwarded_read(from, ctx),
            MessageBody::ReadIndexResponse { ctx, index } => self.handle_read_response(ctx, index),
        }
    }

    /// A message from the leader of our term: follow it and restart the timeout.
    fn accept_leader(&mut self, from: NodeId) {
        if self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(self.term, Some(from));
        }
        self.election_elapsed = 0;
    }

    fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        last: super::LogId,
        pre_vote: bool,
    ) {
        let can_vote = self.vote == Some(from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && term > self.term);
        let grant = can_vote && self.log.is_up_to_date(last);
        if pre_vote {
            let term = if grant { term } else { self.term };
            self.actions.push(super::Action::Send(Message {
                from: self.id,
                to: from,
                term,
                body: MessageBody::PreVoteResponse { reject: !grant },
            }));
        } else if grant {
            self.election_elapsed = 0;
            self.vote = Some(from);
            self.send_after_persist(from, MessageBody::VoteResponse { reject: false });
        } else {
            self.send(from, MessageBody::VoteResponse { reject: true });
        }
    }
}
