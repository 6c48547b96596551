//! The vocabulary of Raft: ids, terms, indexes, entries and persistent state.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;
use rkyv::{Archive, Deserialize, Serialize};

macro_rules! newtype_u64 {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
            Archive, Serialize, Deserialize,
        )]
        #[rkyv(derive(PartialEq, Eq, PartialOrd, Ord))]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

newtype_u64!(
    /// A server in the cluster. Ids are assigned by the operator and never reused.
    NodeId,
    ""
);
newtype_u64!(
    /// A Raft term: a logical clock that orders leaders. At most one leader per term.
    Term,
    ""
);
newtype_u64!(
    /// A position in the Raft log, starting at 1. Index 0 is the empty log.
    LogIndex,
    ""
);

impl LogIndex {
    /// The index after this one.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index before this one; the empty log's index stays 0.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

/// An entry's identity: by the Log Matching property, two logs holding the same
/// `LogId` hold the same entry and the same prefix before it.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Archive,
    Serialize,
    Deserialize,
)]
pub struct LogId {
    /// Term of the entry.
    pub term: Term,
    /// Index of the entry.
    pub index: LogIndex,
}

impl LogId {
    /// Builds a log id from raw numbers; handy in tests and traces.
    pub fn new(term: u64, index: u64) -> LogId {
        LogId {
            term: Term(term),
            index: LogIndex(index),
        }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.term, self.index)
    }
}

/// One change of group membership, applied when its entry is applied.
///
/// Chronik changes membership one server at a time (Raft thesis §4.1): any majority
/// of the old voters overlaps any majority of the new ones, so no joint phase is
/// needed. New servers join as learners and are promoted once caught up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum ConfChange {
    /// Adds a non-voting member that receives the log.
    AddLearner(NodeId),
    /// Turns a caught-up learner into a voter.
    PromoteLearner(NodeId),
    /// Removes a voter or learner; removing the leader makes it step down.
    RemoveNode(NodeId),
}

impl fmt::Display for ConfChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfChange::AddLearner(n) => write!(f, "add-learner {n}"),
            ConfChange::PromoteLearner(n) => write!(f, "promote {n}"),
            ConfChange::RemoveNode(n) => write!(f, "remove {n}"),
        }
    }
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader so it can commit entries of earlier terms
    /// (Raft §5.4.2). Never shown to applications as data.
    Noop,
    /// Application data.
    Normal(Bytes),
    /// A membership change, with the membership it results in. Carrying the whole
    /// result (not just the change) lets a node that joined later, and never saw
    /// the founding membership, learn every voter from the log alone.
    ConfChange {
        /// What changed.
        change: ConfChange,
        /// The membership once the change applies.
        membership: Membership,
    },
}

/// A Raft log entry.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Entry {
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Position in the log.
    pub index: LogIndex,
    /// What the entry carries.
    pub payload: Payload,
}

impl Entry {
    /// The entry's identity.
    pub fn id(&self) -> LogId {
        LogId {
            term: self.term,
            index: self.index,
        }
    }

    /// Approximate encoded size, used for flow control byte limits.
    pub fn size(&self) -> usize {
        const HEADER: usize = 24;
        match &self.payload {
            Payload::Normal(data) => HEADER + data.len(),
            Payload::Noop => HEADER,
            Payload::ConfChange { membership, .. } => {
                HEADER + 8 * (membership.voters.len() + membership.learners.len())
            }
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ", self.term, self.index)?;
        match &self.payload {
            Payload::Noop => write!(f, "noop"),
            Payload::Normal(data) => write!(f, "{:?}", String::from_utf8_lossy(data)),
            Payload::ConfChange { change, .. } => write!(f, "conf({change})"),
        }
    }
}

/// The state a node must keep on stable storage before it answers anyone (Raft
/// Figure 2), plus the commit index so a restart applies without waiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Who this node voted for in `term`, if anyone.
    pub vote: Option<NodeId>,
    /// The highest index known committed.
    pub commit: LogIndex,
}

impl fmt::Display for HardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let vote = self.vote.map_or(0, |v| v.0);
        write!(f, "Term:{} Vote:{} Commit:{}", self.term, vote, self.commit)
    }
}

/// The voters and learners of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Membership {
    /// Members whose votes and acknowledgements count toward quorums.
    pub voters: BTreeSet<NodeId>,
    /// Members that receive the log but do not vote.
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A membership of voters only.
    pub fn with_voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            learners: BTreeSet::new(),
        }
    }

    /// Every member, voters first then learners, each set in id order.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// The membership after `change`. Changes are validated before they are
    /// proposed; an impossible one leaves the membership as it is.
    pub fn changed(&self, change: ConfChange) -> Membership {
        let mut m = self.clone();
        match change {
            ConfChange::AddLearner(n) => {
                if !m.voters.contains(&n) {
                    m.learners.insert(n);
                }
            }
            ConfChange::PromoteLearner(n) => {
                if m.learners.remove(&n) {
                    m.voters.insert(n);
                }
            }
            ConfChange::RemoveNode(n) => {
                m.voters.remove(&n);
                m.learners.remove(&n);
            }
        }
        m
    }

    /// How many votes or acknowledgements make a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = |s: &BTreeSet<NodeId>| {
            s.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        write!(f, "voters=({})", ids(&self.voters))?;
        if !self.learners.is_empty() {
            write!(f, " learners=({})", ids(&self.learners))?;
        }
        Ok(())
    }
}

/// Describes what a snapshot covers: everything up to and including `last`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last entry the snapshot replaces.
    pub last: LogId,
    /// The membership in force at `last`.
    pub membership: Membership,
}

/// A state-machine snapshot: the application's state after applying `meta.last`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Snapshot {
    /// What the snapshot covers.
    pub meta: SnapshotMeta,
    /// The application's serialized state; opaque to Raft.
    pub data: Bytes,
}
