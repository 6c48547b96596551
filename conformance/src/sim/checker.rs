//! The safety checks, run after every step of every node.
//!
//! The checker sees what an outside observer can: each node's Raft state after a
//! step and the actions that step produced. It keeps global knowledge across the
//! whole run (every leader per term, every vote granted, every entry ever
//! written, every entry ever seen committed, the longest applied sequence) so
//! that each check costs only the change since the last one.
//!
//! The simulator and the quickcheck properties share it, so both prove the same
//! invariants (Raft paper Figure 3, plus the durability promises of Figure 2).

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use bytes::Bytes;
use proto_core::raft::{Action, Entry, LogId, LogIndex, MessageBody, NodeId, Payload, Role, Term};

use crate::node::Node;

/// Which invariant broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// Two leaders in one term.
    ElectionSafety,
    /// A node granted its vote to two candidates in one term (the vote was not
    /// durable before it was sent, or was forgotten).
    DoubleVote,
    /// Two logs hold the same index and term with different data or different
    /// predecessors, or a log holds an entry it never handed to storage.
    LogMatching,
    /// A new leader lacks an entry committed in an earlier term.
    LeaderCompleteness,
    /// Two state machines applied different sequences, or one applied a value
    /// twice or a value nobody proposed.
    StateMachineSafety,
    /// An index once committed now holds an entry of another term.
    CommittedEntryLost,
    /// A node's own bookkeeping broke (marks out of order, term or commit going
    /// back without a restart).
    NodeInvariant,
    /// The healed cluster did not elect a leader and apply a new proposal on
    /// every voter in time.
    Liveness,
    /// The Raft core panicked.
    Panic,
}

impl ViolationKind {
    /// Every kind, for tables.
    pub const ALL: [ViolationKind; 9] = [
        ViolationKind::ElectionSafety,
        ViolationKind::DoubleVote,
        ViolationKind::LogMatching,
        ViolationKind::LeaderCompleteness,
        ViolationKind::StateMachineSafety,
        ViolationKind::CommittedEntryLost,
        ViolationKind::NodeInvariant,
        ViolationKind::Liveness,
        ViolationKind::Panic,
    ];

    /// The kind's name in reports and trace files.
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::ElectionSafety => "election-safety",
            ViolationKind::DoubleVote => "double-vote",
            ViolationKind::LogMatching => "log-matching",
            ViolationKind::LeaderCompleteness => "leader-completeness",
            ViolationKind::StateMachineSafety => "state-machine-safety",
            ViolationKind::CommittedEntryLost => "committed-entry-lost",
            ViolationKind::NodeInvariant => "node-invariant",
            ViolationKind::Liveness => "liveness",
            ViolationKind::Panic => "panic",
        }
    }

    /// The kind named `name`, as [`ViolationKind::name`] prints it.
    pub fn from_name(name: &str) -> Option<ViolationKind> {
        ViolationKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant and what the checker saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub kind: ViolationKind,
    /// The evidence, for humans.
    pub detail: String,
}

impl Violation {
    /// A violation of `kind` with its evidence.
    pub fn new(kind: ViolationKind, detail: impl Into<String>) -> Violation {
        Violation {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// An entry seen committed.
#[derive(Clone, Copy, Debug)]
struct Committed {
    term: Term,
    /// The lowest term of a node that saw it committed: the leader that
    /// committed it had at most this term, so every leader of a higher term
    /// must hold it (Leader Completeness).
    bound: Term,
}

/// What the checker remembers about one node since its last restart.
#[derive(Clone, Debug, Default)]
struct NodeView {
    term: Term,
    commit: LogIndex,
    /// Committed entries checked up to here.
    observed_commit: LogIndex,
    /// State-machine values checked up to here.
    applied_checked: usize,
}

/// The global record of a run, checked incrementally.
#[derive(Clone, Debug, Default)]
pub struct Checker {
    leaders: BTreeMap<Term, NodeId>,
    votes: HashMap<(NodeId, Term), NodeId>,
    /// Every entry ever written: its payload and its predecessor's term.
    written: HashMap<LogId, (Payload, Option<Term>)>,
    /// Index - 1 -> the entry seen committed there.
    committed: Vec<Option<Committed>>,
    longest: Vec<Bytes>,
    applied_once: HashSet<Bytes>,
    proposed: HashSet<Bytes>,
    views: BTreeMap<NodeId, NodeView>,
}

impl Checker {
    /// A checker that has seen nothing.
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Records that a client proposal of `value` was accepted: only proposed
    /// values may ever be applied.
    pub fn proposed(&mut self, value: &Bytes) {
        self.proposed.insert(value.clone());
    }

    /// The longest state-machine sequence applied anywhere so far.
    pub fn longest_applied(&self) -> &[Bytes] {
        &self.longest
    }

    /// Whether `value` was applied by some state machine.
    pub fn was_applied(&self, value: &Bytes) -> bool {
        self.applied_once.contains(value)
    }

    /// The number of leaders elected so far (one per term).
    pub fn leaders_elected(&self) -> usize {
        self.leaders.len()
    }

    /// The highest index seen committed.
    pub fn committed_index(&self) -> LogIndex {
        LogIndex(self.committed.len() as u64)
    }

    /// Forgets the per-node marks of `id`: it restarted from its disk, so its
    /// term, commit and state machine may legitimately be behind what it had.
    pub fn restarted(&mut self, id: NodeId, node: &Node) {
        self.views.insert(
            id,
            NodeView {
                term: node.raft.term(),
                commit: node.raft.log().commit(),
                ..NodeView::default()
            },
        );
    }

    /// Checks node `id` after one step that produced `actions`.
    pub fn observe(
        &mut self,
        id: NodeId,
        node: &Node,
        actions: &[Action],
    ) -> Result<(), Violation> {
        self.check_marks(id, node)?;
        self.check_leader(id, node)?;
        for action in actions {
            match action {
                Action::Send(m) => {
                    if let MessageBody::VoteResponse { reject: false } = m.body {
                        self.check_vote(id, m.term, m.to)?;
                    }
                }
                Action::Persist(w) => {
                    self.check_written(id, node, &w.entries)?;
                    if let Some(s) = &w.snapshot {
                        self.check_committed_at(id, s.meta.last, node.raft.term())?;
                    }
                }
                Action::ApplySnapshot(_) => {
                    if let Some(v) = self.views.get_mut(&id) {
                        v.applied_checked = 0;
                    }
                }
                _ => {}
            }
        }
        self.check_commits(id, node)?;
        self.check_applied(id, node)
    }

    /// Checks every entry of `id`'s log against everything ever written: the
    /// incremental checks only see writes, this also catches an entry that
    /// appeared in memory without one.
    pub fn sweep(&mut self, id: NodeId, node: &Node) -> Result<(), Violation> {
        let log = node.raft.log();
        let mut prev = log.term(log.snapshot_last().index);
        let mut index = log.first_index();
        while let Some(e) = log.entry(index) {
            match self.written.get(&e.id()) {
                None => {
                    return Err(Violation::new(
                        ViolationKind::LogMatching,
                        format!("node {id} holds {} that was never written", e.id()),
                    ))
                }
                Some(_) => self.record_entry(id, e, prev)?,
            }
            prev = Some(e.term);
            index = index.next();
        }
        Ok(())
    }

    fn check_marks(&mut self, id: NodeId, node: &Node) -> Result<(), Violation> {
        let raft = &node.raft;
        let log = raft.log();
        let (snap, applied, commit) = (log.snapshot_last().index, log.applied(), log.commit());
        let (persisted, last) = (log.persisted(), log.last_index());
        if !(snap <= applied && applied <= commit && applied <= persisted && persisted <= last) {
            return Err(Violation::new(
                ViolationKind::NodeInvariant,
                format!(
                    "node {id} marks out of order: snapshot {snap} applied {applied} \
                     commit {commit} persisted {persisted} last {last}"
                ),
            ));
        }
        let view = self.views.entry(id).or_default();
        if raft.term() < view.term || commit < view.commit {
            return Err(Violation::new(
                ViolationKind::NodeInvariant,
                format!(
                    "node {id} went back without a restart: term {} -> {}, commit {} -> {commit}",
                    view.term,
                    raft.term(),
                    view.commit
                ),
            ));
        }
        view.term = raft.term();
        view.commit = commit;
        Ok(())
    }

    /// Election Safety, and Leader Completeness for each new leader.
    fn check_leader(&mut self, id: NodeId, node: &Node) -> Result<(), Violation> {
        let raft = &node.raft;
        if raft.role() != Role::Leader {
            return Ok(());
        }
        let term = raft.term();
        match self.leaders.get(&term) {
            Some(&other) if other != id => {
                return Err(Violation::new(
                    ViolationKind::ElectionSafety,
                    format!("nodes {other} and {id} both lead term {term}"),
                ))
            }
            Some(_) => return Ok(()),
            None => {
                self.leaders.insert(term, id);
            }
        }
        let log = raft.log();
        let snap = log.snapshot_last();
        for (i, c) in self.committed.iter().enumerate() {
            let Some(c) = c else { continue };
            let index = LogIndex(i as u64 + 1);
            if c.bound >= term || (index < snap.index) {
                continue;
            }
            if log.term(index) != Some(c.term) {
                return Err(Violation::new(
                    ViolationKind::LeaderCompleteness,
                    format!(
                        "node {id} leads term {term} without {}/{index}, committed by term {} \
                         (its log has {:?} there, last {})",
                        c.term,
                        c.bound,
                        log.term(index).map(|t| t.0),
                        log.last_id()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_vote(&mut self, id: NodeId, term: Term, candidate: NodeId) -> Result<(), Violation> {
        match self.votes.entry((id, term)) {
            MapEntry::Occupied(o) if *o.get() != candidate => Err(Violation::new(
                ViolationKind::DoubleVote,
                format!(
                    "node {id} voted for {} and for {candidate} in term {term}",
                    o.get()
                ),
            )),
            MapEntry::Occupied(_) => Ok(()),
            MapEntry::Vacant(v) => {
                v.insert(candidate);
                Ok(())
            }
        }
    }

    /// Log Matching, by induction: an entry id always carries the same data and
    /// follows an entry of the same term, on every node, forever.
    fn check_written(
        &mut self,
        id: NodeId,
        node: &Node,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut prev = node.raft.log().term(first.index.prev());
        for e in entries {
            self.record_entry(id, e, prev)?;
            prev = Some(e.term);
        }
        Ok(())
    }

    fn record_entry(&mut self, id: NodeId, e: &Entry, prev: Option<Term>) -> Result<(), Violation> {
        match self.written.entry(e.id()) {
            MapEntry::Vacant(v) => {
                v.insert((e.payload.clone(), prev));
            }
            MapEntry::Occupied(mut o) => {
                let (payload, seen_prev) = o.get_mut();
                if *payload != e.payload {
                    return Err(Violation::new(
                        ViolationKind::LogMatching,
                        format!("node {id} holds {e}, another log holds {}", e.id()),
                    ));
                }
                match (*seen_prev, prev) {
                    (Some(a), Some(b)) if a != b => {
                        return Err(Violation::new(
                            ViolationKind::LogMatching,
                            format!(
                                "node {id} holds {} after term {b}, another log after term {a}",
                                e.id()
                            ),
                        ))
                    }
                    (None, Some(b)) => *seen_prev = Some(b),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// No committed entry is ever lost: every later view of a committed index
    /// shows the same term.
    fn check_commits(&mut self, id: NodeId, node: &Node) -> Result<(), Violation> {
        let log = node.raft.log();
        let upto = log.commit().min(log.persisted());
        let from = self
            .views
            .get(&id)
            .map_or(LogIndex(0), |v| v.observed_commit);
        let start = from.next().max(log.snapshot_last().index);
        let mut index = start;
        while index <= upto {
            if let Some(term) = log.term(index) {
                if index.0 > 0 {
                    self.check_committed_at(id, LogId { term, index }, node.raft.term())?;
                }
            }
            index = index.next();
        }
        if let Some(v) = self.views.get_mut(&id) {
            v.observed_commit = upto;
        }
        Ok(())
    }

    fn check_committed_at(
        &mut self,
        id: NodeId,
        at: LogId,
        observer: Term,
    ) -> Result<(), Violation> {
        if at.index.0 == 0 {
            return Ok(());
        }
        let i = (at.index.0 - 1) as usize;
        if self.committed.len() <= i {
            self.committed.resize(i + 1, None);
        }
        match &mut self.committed[i] {
            Some(c) if c.term != at.term => Err(Violation::new(
                ViolationKind::CommittedEntryLost,
                format!(
                    "node {id} has {} committed where {}/{} was committed before",
                    at, c.term, at.index
                ),
            )),
            Some(c) => {
                c.bound = c.bound.min(observer);
                Ok(())
            }
            slot @ None => {
                *slot = Some(Committed {
                    term: at.term,
                    bound: observer,
                });
                Ok(())
            }
        }
    }

    /// State Machine Safety: every state machine is a prefix of the longest one,
    /// holds only proposed values, and each value once.
    fn check_applied(&mut self, id: NodeId, node: &Node) -> Result<(), Violation> {
        let applied = &node.applied;
        let view = self.views.entry(id).or_default();
        let from = if view.applied_checked > applied.len() {
            0
        } else {
            view.applied_checked
        };
        view.applied_checked = applied.len();
        for (k, value) in applied.iter().enumerate().skip(from) {
            if let Some(expected) = self.longest.get(k) {
                if expected != value {
                    return Err(Violation::new(
                        ViolationKind::StateMachineSafety,
                        format!(
                            "node {id} applied {value:?} as value #{k}, another node {expected:?}"
                        ),
                    ));
                }
                continue;
            }
            if !self.proposed.contains(value) {
                return Err(Violation::new(
                    ViolationKind::StateMachineSafety,
                    format!("node {id} applied {value:?}, which nobody proposed"),
                ));
            }
            if !self.applied_once.insert(value.clone()) {
                return Err(Violation::new(
                    ViolationKind::StateMachineSafety,
                    format!("node {id} applied {value:?} twice"),
                ));
            }
            self.longest.push(value.clone());
        }
        Ok(())
    }
}
