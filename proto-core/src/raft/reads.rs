//! Linearizable reads: ReadIndex confirmed by a heartbeat round, and leader
//! leases that skip the round while a quorum answered recently enough.

use std::collections::VecDeque;

use super::{Action, LogIndex, MessageBody, NodeId, Raft, ReadMode, Refused, Role};

/// A read waiting for a quorum to acknowledge a heartbeat round.
#[derive(Clone, Debug)]
struct PendingRead {
    ctx: u64,
    /// The follower that forwarded it, or `None` for a local read.
    from: Option<NodeId>,
    index: LogIndex,
    round: u64,
}

/// The leader's read bookkeeping.
#[derive(Clone, Debug, Default)]
pub(super) struct ReadState {
    /// The latest heartbeat round started.
    pub(super) round: u64,
    /// When each recent round was sent, in ticks, oldest first (for leases).
    round_ticks: VecDeque<(u64, u64)>,
    /// Reads waiting for a quorum to acknowledge their round.
    pending: VecDeque<PendingRead>,
    /// Reads waiting for the leader to commit an entry of its term.
    waiting_for_commit: Vec<(u64, Option<NodeId>)>,
    /// Reads this follower forwarded to the leader.
    forwarded: Vec<u64>,
    /// Set when this leader starts a leadership transfer: the target's election
    /// overrides the followers' leases, so a new leader may exist while ours
    /// still looks valid. Cleared only by a new leadership.
    pub(super) lease_revoked: bool,
}

impl ReadState {
    /// Starts a new heartbeat round sent at `tick`.
    pub(super) fn start_round(&mut self, tick: u64) {
        self.round += 1;
        self.round_ticks.push_back((self.round, tick));
        if self.round_ticks.len() > 256 {
            self.round_ticks.pop_front();
        }
    }

    /// Invalidates the lease: the leader stops counting ticks while quiesced.
    pub(super) fn forget_lease(&mut self) {
        self.round_ticks.clear();
    }

    /// Whether no read is waiting.
    pub(super) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.waiting_for_commit.is_empty() && self.forwarded.is_empty()
    }

    /// Forgets everything on a new leadership; rounds keep counting up.
    pub(super) fn reset(&mut self) {
        let round = self.round;
        *self = ReadState::default();
        self.round = round;
    }

    fn sent_at(&self, round: u64) -> Option<u64> {
        self.round_ticks
            .iter()
            .find(|(r, _)| *r == round)
            .map(|(_, t)| *t)
    }
}

impl Raft {
    pub(super) fn read_index(&mut self, ctx: u64) -> Result<(), Refused> {
        match self.role {
            Role::Leader => {
                self.leader_read(ctx, None);
                Ok(())
            }
            _ => match self.leader {
                Some(leader) => {
                    self.reads.forwarded.push(ctx);
                    self.send(leader, MessageBody::ReadIndex { ctx });
                    Ok(())
                }
                None => Err(Refused::NotLeader { leader: None }),
            },
        }
    }

    pub(super) fn handle_forwarded_read(&mut self, from: NodeId, ctx: u64) {
        if self.role == Role::Leader {
            self.leader_read(ctx, Some(from));
        } else {
            self.send(from, MessageBody::ReadIndexResponse { ctx, index: None });
        }
    }

    pub(super) fn handle_read_response(&mut self, ctx: u64, index: Option<LogIndex>) {
        let Some(pos) = self.reads.forwarded.iter().position(|&c| c == ctx) else {
            return;
        };
        self.reads.forwarded.remove(pos);
        self.actions.push(match index {
            Some(index) => Action::ReadReady { ctx, index },
            None => Action::ReadAborted { ctx },
        });
    }

    fn leader_read(&mut self, ctx: u64, from: Option<NodeId>) {
        if self.log.term(self.log.commit()) != Some(self.term) {
            // Until this term commits an entry, the commit index may be behind the
            // last leader's (Raft §6.4).
            self.reads.waiting_for_commit.push((ctx, from));
            return;
        }
        let index = self.log.commit();
        if self.membership.quorum() <= 1 || self.lease_valid() {
            self.answer_read(ctx, from, index);
            return;
        }
        let round = self.reads.round + 1;
        self.reads.pending.push_back(PendingRead {
            ctx,
            from,
            index,
            round,
        });
        self.broadcast_heartbeat();
    }

    fn answer_read(&mut self, ctx: u64, from: Option<NodeId>, index: LogIndex) {
        match from {
            None => self.actions.push(Action::ReadReady { ctx, index }),
            Some(to) => self.send(
                to,
                MessageBody::ReadIndexResponse {
                    ctx,
                    index: Some(index),
                },
            ),
        }
    }

    /// The highest round a quorum of voters has acknowledged.
    fn quorum_acked_round(&self) -> u64 {
        let mut rounds: Vec<u64> = self
            .membership
            .voters
            .iter()
            .map(|&v| {
                if v == self.id {
                    self.reads.round
                } else {
                    self.progress.get(&v).map_or(0, |p| p.acked_round)
                }
            })
            .collect();
        if rounds.is_empty() {
            return 0;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds[self.membership.quorum() - 1]
    }

    /// Whether the leader holds a lease: a quorum acknowledged a round sent less
    /// than `election_ticks - max_clock_drift_ticks` ticks ago. Followers refuse
    /// votes for `election_ticks` after hearing from the leader, so no other leader
    /// can exist before the lease ends.
    fn lease_valid(&self) -> bool {
        let ReadMode::Lease {
            max_clock_drift_ticks,
        } = self.cfg.read_mode
        else {
            return false;
        };
        if self.reads.lease_revoked {
            return false;
        }
        let Some(sent) = self.reads.sent_at(self.quorum_acked_round()) else {
            return false;
        };
        let lease = u64::from(self.cfg.election_ticks - max_clock_drift_ticks);
        self.ticks < sent + lease
    }

    pub(super) fn release_acknowledged_reads(&mut self) {
        let acked = self.quorum_acked_round();
        while self.reads.pending.front().is_some_and(|r| r.round <= acked) {
            if let Some(r) = self.reads.pending.pop_front() {
                self.answer_read(r.ctx, r.from, r.index);
            }
        }
    }

    pub(super) fn release_reads_waiting_for_commit(&mut self) {
        for (ctx, from) in std::mem::take(&mut self.reads.waiting_for_commit) {
            self.leader_read(ctx, from);
        }
    }

    /// Fails every waiting read: leadership changed, so they must be retried.
    pub(super) fn abort_reads(&mut self) {
        let mut aborted: Vec<(u64, Option<NodeId>)> = self
            .reads
            .pending
            .drain(..)
            .map(|r| (r.ctx, r.from))
            .collect();
        aborted.append(&mut self.reads.waiting_for_commit);
        for ctx in std::mem::take(&mut self.reads.forwarded) {
            aborted.push((ctx, None));
        }
        for (ctx, from) in aborted {
            match from {
                None => self.actions.push(Action::ReadAborted { ctx }),
                Some(to) => self.send(to, MessageBody::ReadIndexResponse { ctx, index: None }),
            }
        }
        self.reads.forget_lease();
    }
}
