//! The Raft group's inputs ([`Event`]) and outputs ([`Action`]).
//!
//! A driver feeds events to [`Raft::step`](super::Raft::step) and performs the
//! actions in order. Durability ordering is data: a message that promises
//! something durable is only emitted after the [`Event::Persisted`] that covers it.

use std::fmt;

use bytes::Bytes;

use super::message::Message;
use super::types::{ConfChange, Entry, HardState, LogId, LogIndex, NodeId, Snapshot, Term};

/// Something that happened to the group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// One logical clock tick. Election and heartbeat timeouts count ticks.
    Tick,
    /// A message from another member.
    Message(Message),
    /// Application data to append; only the leader accepts it.
    Propose(Vec<Bytes>),
    /// A membership change to append; only the leader accepts it, one at a time.
    ProposeConfChange(ConfChange),
    /// Every [`Action::Persist`] with `seq` at most this is durable.
    Persisted {
        /// The highest durable write.
        seq: u64,
    },
    /// Asks the leader to hand leadership to `to`.
    TransferLeader {
        /// The member that should lead next.
        to: NodeId,
    },
    /// Asks for a linearizable read barrier; answered by [`Action::ReadReady`].
    ReadIndex {
        /// A token chosen by the caller, echoed in the answer.
        ctx: u64,
    },
    /// The application has snapshotted its state after applying `index`; the log
    /// up to `index` may be discarded.
    Compact {
        /// The last applied index the snapshot covers.
        index: LogIndex,
        /// The application's serialized state.
        data: Bytes,
    },
    /// Starts an election now, as if the election timeout had passed.
    Campaign,
    /// The driver lost its connection to `peer`: probe it again before streaming.
    Unreachable {
        /// The member that could not be reached.
        peer: NodeId,
    },
    /// Wakes a quiesced group, e.g. because its leader's node stopped answering.
    Unquiesce,
    /// The answer to [`Action::LoadEntries`]: the stored term of the entry
    /// before `from` and the stored entries from `from` on, in order; `None`
    /// and nothing if storage no longer holds them.
    EntriesLoaded {
        /// The follower they were loaded for.
        to: NodeId,
        /// The first index asked for.
        from: LogIndex,
        /// The term of the entry at `from - 1`.
        prev_term: Option<Term>,
        /// The entries, `from` first.
        entries: Vec<Entry>,
    },
    /// The answer to [`Action::LoadEntries`] when storage no longer holds
    /// `from` (retention deleted it) and its first entry follows `start`: the
    /// follower is sent a snapshot at `start` carrying `data` (what the
    /// follower's storage needs to begin its log there), then the stored
    /// entries. A Kafka follower behind the leader's log start offset does the
    /// same: it truncates its log and fetches from the leader's log start.
    LogStartLoaded {
        /// The follower the load was for.
        to: NodeId,
        /// The first index asked for.
        from: LogIndex,
        /// The entry before storage's first: the snapshot's last entry.
        start: LogId,
        /// The snapshot's data, from the driver.
        data: Bytes,
    },
}

/// A write to stable storage. Writes must become durable in `seq` order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistWrite {
    /// Sequence number acknowledged by [`Event::Persisted`].
    pub seq: u64,
    /// New hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// A snapshot to store: drop every entry at or below its index (with
    /// [`Config::load_compacted`](super::Config::load_compacted) they may be kept,
    /// as the data [`Action::LoadEntries`] reads); if the stored entry at its index
    /// has another term, drop the whole log.
    pub snapshot: Option<Snapshot>,
    /// Entries to write; first drop every stored entry at or after the first one's index.
    pub entries: Vec<Entry>,
    /// Whether the write must be fsynced before it is acknowledged. False only when
    /// nothing but the commit index changed.
    pub must_sync: bool,
}

/// How a group's role changed, for the driver's routing and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes before starting an election.
    PreCandidate,
    /// Asking for votes.
    Candidate,
    /// Leads the group.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        f.write_str(s)
    }
}

/// Something the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a message to another member. Delivery may fail; Raft retries.
    Send(Message),
    /// Make a write durable, then answer with [`Event::Persisted`].
    Persist(PersistWrite),
    /// Apply committed, durable entries to the state machine, in order.
    Apply(Vec<Entry>),
    /// Replace the state machine with a snapshot received from the leader.
    ApplySnapshot(Snapshot),
    /// A proposal was appended at these indexes in this term. It is committed once
    /// the commit index reaches `last` and the entries are applied.
    Proposed {
        /// The leader's term; if another term's entry lands at these indexes, the
        /// proposal was lost.
        term: Term,
        /// First appended index.
        first: LogIndex,
        /// Last appended index.
        last: LogIndex,
    },
    /// A read barrier is ready: once the state machine has applied `index`, a read
    /// of it is linearizable.
    ReadReady {
        /// The caller's token.
        ctx: u64,
        /// The index to wait for.
        index: LogIndex,
    },
    /// A read barrier could not be served (leadership changed); retry.
    ReadAborted {
        /// The caller's token.
        ctx: u64,
    },
    /// This node's role, term or known leader changed.
    RoleChanged {
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The known leader, if any.
        leader: Option<NodeId>,
    },
    /// Read the stored term of the entry before `from` and the stored entries
    /// `from..=last`, up to `max_bytes` (but at least one), and answer with
    /// [`Event::EntriesLoaded`]: follower `to` needs entries the in-memory log
    /// compacted away. Only with
    /// [`Config::load_compacted`](super::Config::load_compacted).
    LoadEntries {
        /// The follower they are for.
        to: NodeId,
        /// The first index to read.
        from: LogIndex,
        /// The last index to read: the compaction point, after which the
        /// in-memory log sends.
        last: LogIndex,
        /// Soft limit on the entries' bytes.
        max_bytes: usize,
    },
}

impl fmt::Display for PersistWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Persist seq:{}", self.seq)?;
        if self.must_sync {
            write!(f, " sync")?;
        }
        if let Some(hs) = &self.hard_state {
            write!(f, " HardState({hs})")?;
        }
        if let Some(s) = &self.snapshot {
            write!(f, " Snapshot({} {})", s.meta.last, s.meta.membership)?;
        }
        if !self.entries.is_empty() {
            let list: Vec<String> = self.entries.iter().map(|e| e.to_string()).collect();
            write!(f, " Entries:[{}]", list.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Send(m) => write!(f, "{m}"),
            Action::Persist(w) => write!(f, "{w}"),
            Action::Apply(entries) => {
                let list: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
                write!(f, "Apply [{}]", list.join(", "))
            }
            Action::ApplySnapshot(s) => {
                write!(f, "ApplySnapshot {} {}", s.meta.last, s.meta.membership)
            }
            Action::Proposed { term, first, last } => {
                write!(f, "Proposed Term:{term} Index:{first}..={last}")
            }
            Action::ReadReady { ctx, index } => write!(f, "ReadReady ctx:{ctx} Index:{index}"),
            Action::ReadAborted { ctx } => write!(f, "ReadAborted ctx:{ctx}"),
            Action::RoleChanged { role, term, leader } => {
                let leader = leader.map_or(0, |l| l.0);
                write!(f, "RoleChanged {role} Term:{term} Leader:{leader}")
            }
            Action::LoadEntries {
                to,
                from,
                last,
                max_bytes,
            } => write!(
                f,
                "LoadEntries to:{to} from:{from} last:{last} max_bytes:{max_bytes}"
            ),
        }
    }
}

/// Why the group refused an event. The group's state did not change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Only the leader accepts this; `leader` is who to ask instead.
    #[error("not the leader (leader is {})", leader.map_or_else(|| "unknown".to_string(), |l| l.to_string()))]
    NotLeader {
        /// The known leader, if any.
        leader: Option<NodeId>,
    },
    /// Leadership is being handed to another member.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// An earlier membership change has not been applied yet.
    #[error("a membership change is already pending")]
    ConfChangePending,
    /// A learner must catch up with the log before it may vote.
    #[error("learner {0} has not caught up")]
    LearnerNotCaughtUp(NodeId),
    /// The membership change does not fit the current membership.
    #[error("invalid membership change: {0}")]
    InvalidConfChange(&'static str),
    /// The snapshot is older than what this node already has, or ahead of what it applied.
    #[error("snapshot does not fit: {0}")]
    InvalidSnapshot(&'static str),
    /// The named node is not a voter of this group.
    #[error("{0} is not a voter of this group")]
    NotAVoter(NodeId),
    /// This node is no longer a member of the group.
    #[error("this node was removed from the group")]
    Removed,
}
