//! One Raft group as a pure state machine.
//!
//! Everything enters through [`Raft::step`]: ticks, peer messages, proposals,
//! storage completions. Everything leaves as [`Action`]s, drained with
//! [`Raft::take_actions`]. No IO, no clock, no unseeded randomness: the same
//! events always produce the same actions.
//!
//! The design follows etcd-raft (see docs/architecture.md for what is taken from
//! where): PreVote, CheckQuorum, probe/replicate/snapshot flow control, fast
//! backtracking, async storage writes, ReadIndex and leases, leader transfer, and
//! single-server membership changes with learners.

mod config;
mod election;
mod follower;
mod io;
mod leader;
mod log;
#[cfg(test)]
mod log_tests;
mod membership;
mod message;
mod progress;
#[cfg(test)]
mod progress_tests;
mod reads;
mod types;
pub mod wire;

use std::collections::{BTreeMap, VecDeque};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[cfg(feature = "fault-switches")]
pub use config::FaultSwitches;
pub use config::{Config, ConfigError, ReadMode};
pub use io::{Action, Event, PersistWrite, Refused, Role};
pub use log::RaftLog;
pub use message::{AppendOutcome, Message, MessageBody};
pub use progress::{Inflights, Progress, ReplicationState};
pub use types::{
    ConfChange, Entry, HardState, LogId, LogIndex, Membership, NodeId, Payload, Snapshot,
    SnapshotMeta, Term,
};

use follower::IncomingSnapshot;
use reads::ReadState;

/// What a node recovered from stable storage when it (re)starts.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The latest durable snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Durable entries after the snapshot.
    pub entries: Vec<Entry>,
    /// The membership to start from when there is no snapshot: the founding
    /// voters for a founding member, empty for a node added later (it learns the
    /// membership from the conf-change entries or the snapshot it receives, which
    /// carry whole memberships).
    pub membership: Membership,
}

impl Restored {
    /// A brand-new node of a group founded by `voters`.
    pub fn fresh(voters: impl IntoIterator<Item = NodeId>) -> Restored {
        Restored {
            membership: Membership::with_voters(voters),
            ..Restored::default()
        }
    }
}

/// Whether an event means the group has work to do. Ticks, storage completions
/// and heartbeat traffic do not: answers to the quiesce notice must not wake the
/// leader that sent it.
fn wakes(event: &Event) -> bool {
    match event {
        Event::Tick | Event::Persisted { .. } => false,
        Event::Message(m) => !matches!(
            m.body,
            MessageBody::HeartbeatResponse { .. } | MessageBody::Heartbeat { quiesce: true, .. }
        ),
        _ => true,
    }
}

/// A write handed to the driver and not yet confirmed durable.
#[derive(Clone, Debug)]
struct WriteRecord {
    seq: u64,
    /// The last log entry when the write was issued: durable once confirmed, if
    /// the log still holds it.
    last: LogId,
    hard_state: HardState,
}

/// Changes accumulated during one step, emitted as a single write at its end.
#[derive(Clone, Debug, Default)]
struct PendingWrite {
    /// First index of new entries to write, if any.
    entries_from: Option<LogIndex>,
    snapshot: Option<Snapshot>,
}

/// One Raft group on one node.
pub struct Raft {
    cfg: Config,
    id: NodeId,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    role: Role,
    log: RaftLog,
    membership: Membership,
    /// Index of the entry that produced `membership` (or the snapshot's).
    membership_index: LogIndex,
    /// Applied memberships by index, oldest first, for building snapshots.
    membership_history: Vec<(LogIndex, Membership)>,
    /// The latest snapshot with data, sent to followers behind the log.
    snapshot: Option<Snapshot>,
    rng: ChaCha8Rng,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_election_timeout: u32,
    /// Ticks since start; the leader's clock for leases.
    ticks: u64,
    quiesced: bool,
    /// Set on restart with a term: this node may have been inside a leader's lease
    /// before it crashed, so it refuses votes for one election timeout.
    unknown_lease: bool,

    next_seq: u64,
    persisted_seq: u64,
    pending_write: PendingWrite,
    written_hard_state: HardState,
    persisted_hard_state: HardState,
    writes: VecDeque<WriteRecord>,
    /// Messages that promise durable state, released once that write is durable.
    held: VecDeque<(u64, Message)>,

    /// Votes received in the current election (the node's own is not here).
    votes: BTreeMap<NodeId, bool>,
    /// The leader's view of every other member.
    progress: BTreeMap<NodeId, Progress>,
    /// A membership change at or below this index is not yet applied.
    pending_conf_index: LogIndex,
    /// A leadership transfer in progress.
    transfer_to: Option<NodeId>,
    reads: ReadState,
    incoming_snapshot: Option<IncomingSnapshot>,

    reported: (Role, Term, Option<NodeId>),
    actions: Vec<Action>,
}

impl Raft {
    /// Starts a node from what it recovered from storage.
    pub fn new(cfg: Config, restored: Restored) -> Result<Raft, ConfigError> {
        cfg.validate()?;
        let Restored {
            hard_state,
            snapshot,
            entries,
            membership,
        } = restored;
        let (snapshot_last, membership) = match &snapshot {
            Some(s) => (s.meta.last, s.meta.membership.clone()),
            None => (LogId::default(), membership),
        };
        let log = RaftLog::restore(snapshot_last, entries, hard_state.commit);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let timeout = cfg.election_ticks + (rng.next_u64() % u64::from(cfg.election_ticks)) as u32;
        let hard_state = HardState {
            commit: log.commit(),
            ..hard_state
        };
        let mut raft = Raft {
            id: cfg.id,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            role: Role::Follower,
            log,
            membership_history: vec![(snapshot_last.index, membership.clone())],
            membership,
            membership_index: snapshot_last.index,
            snapshot,
            rng,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: timeout,
            ticks: 0,
            quiesced: false,
            unknown_lease: hard_state.term.0 > 0,
            next_seq: 1,
            persisted_seq: 0,
            pending_write: PendingWrite::default(),
            written_hard_state: hard_state,
            persisted_hard_state: hard_state,
            writes: VecDeque::new(),
            held: VecDeque::new(),
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            pending_conf_index: LogIndex(0),
            transfer_to: None,
            reads: ReadState::default(),
            incoming_snapshot: None,
            reported: (Role::Follower, hard_state.term, None),
            actions: Vec::new(),
            cfg,
        };
        raft.apply_durable_conf_changes();
        Ok(raft)
    }

    /// Feeds one event. On `Err` the event itself had no effect (work already due,
    /// such as applying entries a restart found committed, still happens). The
    /// resulting actions wait in [`Raft::take_actions`].
    pub fn step(&mut self, event: Event) -> Result<(), Refused> {
        if wakes(&event) {
            self.wake();
        }
        let result = match event {
            Event::Tick => {
                self.tick();
                Ok(())
            }
            Event::Message(m) => {
                self.handle_message(m);
                Ok(())
            }
            Event::Propose(data) => self.propose(data),
            Event::ProposeConfChange(cc) => self.propose_conf_change(cc),
            Event::Persisted { seq } => {
                self.handle_persisted(seq);
                Ok(())
            }
            Event::TransferLeader { to } => self.transfer_leader(to),
            Event::ReadIndex { ctx } => self.read_index(ctx),
            Event::Compact { index, data } => self.compact(index, data),
            Event::Campaign => {
                self.campaign(self.cfg.pre_vote, false);
                Ok(())
            }
            Event::Unreachable { peer } => {
                self.handle_unreachable(peer);
                Ok(())
            }
            Event::Unquiesce => Ok(()),
            Event::EntriesLoaded {
                to,
                from,
                prev_term,
                entries,
            } => {
                self.handle_entries_loaded(to, from, prev_term, entries);
                Ok(())
            }
            Event::LogStartLoaded {
                to,
                from,
                start,
                data,
            } => {
                self.handle_log_start_loaded(to, from, start, data);
                Ok(())
            }
        };
        self.finish_step();
        result
    }

    /// Takes the actions produced so far, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Moves the actions produced so far onto the end of `out`.
    pub fn drain_actions_into(&mut self, out: &mut Vec<Action>) {
        out.append(&mut self.actions);
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// Who this node voted for in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The log and its commit, persisted and applied marks.
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The membership in force (as of the last applied change).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The leader's view of the other members; empty unless leading.
    pub fn progress(&self) -> &BTreeMap<NodeId, Progress> {
        &self.progress
    }

    /// Whether the group is idle and neither ticks nor heartbeats.
    pub fn is_quiesced(&self) -> bool {
        self.quiesced
    }

    /// The leadership transfer in progress, if any.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer_to
    }

    /// The latest snapshot this node holds.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.commit(),
        }
    }

    /// Whether this node may campaign: a voter of its group.
    fn promotable(&self) -> bool {
        self.membership.voters.contains(&self.id)
    }

    fn wake(&mut self) {
        if self.quiesced {
            self.quiesced = false;
            self.election_elapsed = 0;
            self.heartbeat_elapsed = 0;
        }
    }

    fn tick(&mut self) {
        if self.quiesced {
            return;
        }
        self.ticks += 1;
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        let msg = Message {
            from: self.id,
            to,
            term: self.term,
            body,
        };
        self.actions.push(Action::Send(msg));
    }

    /// Sends a message that promises durable state once every write issued so
    /// far (including the one this step will emit) is durable.
    fn send_after_persist(&mut self, to: NodeId, body: MessageBody) {
        let msg = Message {
            from: self.id,
            to,
            term: self.term,
            body,
        };
        #[cfg(feature = "fault-switches")]
        if self.cfg.faults.ack_before_persist {
            self.actions.push(Action::Send(msg));
            return;
        }
        let write_pending = self.pending_write.entries_from.is_some()
            || self.pending_write.snapshot.is_some()
            || self.hard_state_needs_sync();
        let wait_for = if write_pending {
            self.next_seq
        } else {
            self.next_seq - 1
        };
        if wait_for > self.persisted_seq {
            self.held.push_back((wait_for, msg));
        } else {
            self.actions.push(Action::Send(msg));
        }
    }

    fn hard_state_needs_sync(&self) -> bool {
        self.term != self.written_hard_state.term || self.vote != self.written_hard_state.vote
    }

    /// Marks entries from `index` on as needing a write.
    fn mark_unwritten(&mut self, index: LogIndex) {
        let from = self.pending_write.entries_from.get_or_insert(index);
        *from = (*from).min(index);
    }

    fn handle_persisted(&mut self, seq: u64) {
        let seq = seq.min(self.next_seq - 1);
        if seq <= self.persisted_seq {
            return;
        }
        self.persisted_seq = seq;
        while self.writes.front().is_some_and(|w| w.seq <= seq) {
            let Some(w) = self.writes.pop_front() else {
                break;
            };
            if w.last.index > self.log.persisted && self.log.matches(w.last) {
                self.log.persisted = w.last.index;
            }
            self.persisted_hard_state = w.hard_state;
        }
        while self.held.front().is_some_and(|(s, _)| *s <= seq) {
            if let Some((_, msg)) = self.held.pop_front() {
                self.actions.push(Action::Send(msg));
            }
        }
        match self.role {
            Role::Leader => {
                if self.maybe_commit() {
                    self.broadcast_commit();
                }
            }
            Role::Candidate => self.poll_election(),
            Role::Follower | Role::PreCandidate => {}
        }
    }

    /// Ends every step: applies what became committed and durable, emits the
    /// accumulated write, and reports role changes.
    fn finish_step(&mut self) {
        while self.advance_apply() {}
        self.flush_write();
        let now = (self.role, self.term, self.leader);
        if now != self.reported {
            self.reported = now;
            self.actions.push(Action::RoleChanged {
                role: self.role,
                term: self.term,
                leader: self.leader,
            });
        }
    }

    fn flush_write(&mut self) {
        let hard_state = self.hard_state();
        let pending = std::mem::take(&mut self.pending_write);
        let entries = match pending.entries_from {
            Some(from) => self.log.slice(from.prev(), self.log.last_index()),
            None => Vec::new(),
        };
        let sync =
            self.hard_state_needs_sync() || !entries.is_empty() || pending.snapshot.is_some();
        if !sync && hard_state == self.written_hard_state {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.writes.push_back(WriteRecord {
            seq,
            last: self.log.last_id(),
            hard_state,
        });
        let changed = hard_state != self.written_hard_state;
        self.written_hard_state = hard_state;
        self.actions.push(Action::Persist(PersistWrite {
            seq,
            hard_state: changed.then_some(hard_state),
            snapshot: pending.snapshot,
            entries,
            must_sync: sync,
        }));
    }

    fn advance_apply(&mut self) -> bool {
        let upto = self.log.commit().min(self.log.persisted());
        if upto <= self.log.applied {
            return false;
        }
        let entries = self.log.slice(self.log.applied, upto);
        self.log.applied = upto;
        for e in &entries {
            if let Payload::ConfChange { change, membership } = &e.payload {
                self.apply_conf_change(e.index, *change, membership.clone());
            }
        }
        if !entries.is_empty() {
            self.actions.push(Action::Apply(entries));
        }
        true
    }

    fn reset_timers(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        let spread = u64::from(self.cfg.election_ticks);
        self.randomized_election_timeout =
            self.cfg.election_ticks + (self.rng.next_u64() % spread) as u32;
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        if self.leader != leader || self.role == Role::Leader {
            self.abort_reads();
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.quiesced = false;
        self.progress.clear();
        self.transfer_to = None;
        self.votes.clear();
        self.reset_timers();
    }
}
