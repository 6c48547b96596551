//! The node's multi-Raft inputs ([`Event`]), outputs ([`Action`]) and knobs
//! ([`MultiConfig`]).

use std::fmt;

use bytes::Bytes;

use super::types::{Batch, GroupId};
use crate::raft::{
    self, Config, ConfigError, Entry, LogIndex, NodeId, PersistWrite, Restored, Role, Snapshot,
    Term,
};

/// The node-level knobs; each group keeps its own [`Config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiConfig {
    /// This node. Every group hosted here must be configured with the same id.
    pub id: NodeId,
    /// Node ticks between liveness heartbeats to each peer node. A batch sent for
    /// any other reason counts as the heartbeat of its interval.
    pub heartbeat_ticks: u32,
    /// Node ticks of silence after which a peer node is presumed down and the
    /// quiesced groups it leads are woken to elect another leader. Keep it at
    /// about the groups' election timeout.
    pub liveness_timeout_ticks: u32,
}

impl MultiConfig {
    /// Defaults matching [`Config::new`]: a liveness heartbeat every tick, a peer
    /// presumed down after 10 silent ticks (one election timeout).
    pub fn new(id: NodeId) -> MultiConfig {
        MultiConfig {
            id,
            heartbeat_ticks: 1,
            liveness_timeout_ticks: 10,
        }
    }

    /// Checks the combination of settings; returns why it cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError("heartbeat_ticks must be at least 1"));
        }
        if self.liveness_timeout_ticks <= self.heartbeat_ticks {
            return Err(ConfigError(
                "liveness_timeout_ticks must exceed heartbeat_ticks",
            ));
        }
        Ok(())
    }
}

/// Something that happened to the node.
#[derive(Clone, Debug)]
pub enum Event {
    /// One logical clock tick of the node: ticks every group that is not
    /// quiesced, counts liveness heartbeats and peer silence.
    Tick,
    /// A batch arrived from `from`, the peer the transport authenticated.
    Receive {
        /// The sending node, as the connection's handshake established it.
        from: NodeId,
        /// What it sent.
        batch: Batch,
    },
    /// Application data for a group; only the group's leader accepts it.
    Propose {
        /// The group to append to.
        group: GroupId,
        /// The entries' data.
        data: Vec<Bytes>,
    },
    /// Every [`Action::Persist`] of `group` with a sequence number at most `seq`
    /// is durable.
    Persisted {
        /// The group whose writes completed.
        group: GroupId,
        /// The highest durable write.
        seq: u64,
    },
    /// Starts hosting a replica of a group (new, or recovered from storage).
    CreateGroup {
        /// The group.
        group: GroupId,
        /// Its Raft knobs; `config.id` must be this node.
        config: Config,
        /// What storage holds for it.
        restored: Box<Restored>,
    },
    /// Stops hosting a group; its pending outgoing messages are still sent.
    RemoveGroup {
        /// The group.
        group: GroupId,
    },
    /// Any other Raft event for one group (read index, leader transfer,
    /// compaction, membership change, campaign, unquiesce, ...).
    Group {
        /// The group.
        group: GroupId,
        /// The event, handed to the group's [`raft::Raft::step`] unchanged.
        event: raft::Event,
    },
    /// The driver lost its connection to `peer`: every awake group that replicates
    /// to it probes again before streaming, and every quiesced group that follows
    /// a leader on it wakes (a dropped link is the first sign of a dead node;
    /// waiting for the liveness timeout would add it to every failover). A woken
    /// group whose leader is fine just hears from it and sleeps again.
    PeerUnreachable {
        /// The node that could not be reached.
        peer: NodeId,
    },
    /// Emits the outgoing messages gathered since the last flush, one
    /// [`Action::Send`] per destination node, plus any liveness heartbeat due.
    Flush,
}

/// Something the driver must do. Everything but `Send` and `PeerLiveness` is a
/// [`raft::Action`] tagged with its group; the driver performs each group's
/// actions in order, as for a single group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send one batch to a peer node. Delivery may fail; Raft retries.
    Send {
        /// The destination node.
        to: NodeId,
        /// Everything for it since the last flush.
        batch: Batch,
    },
    /// Make a group's write durable, then answer with [`Event::Persisted`].
    Persist {
        /// The group.
        group: GroupId,
        /// The write.
        write: PersistWrite,
    },
    /// Apply a group's committed, durable entries to its state machine, in order.
    Apply {
        /// The group.
        group: GroupId,
        /// The entries.
        entries: Vec<Entry>,
    },
    /// Replace a group's state machine with a snapshot received from its leader.
    ApplySnapshot {
        /// The group.
        group: GroupId,
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// A proposal was appended at `first..=last` in `term`; see
    /// [`raft::Action::Proposed`].
    Proposed {
        /// The group.
        group: GroupId,
        /// The leader's term.
        term: Term,
        /// First appended index.
        first: LogIndex,
        /// Last appended index.
        last: LogIndex,
    },
    /// A group's read barrier is ready once `index` is applied.
    ReadReady {
        /// The group.
        group: GroupId,
        /// The caller's token.
        ctx: u64,
        /// The index to wait for.
        index: LogIndex,
    },
    /// A group's read barrier could not be served; retry.
    ReadAborted {
        /// The group.
        group: GroupId,
        /// The caller's token.
        ctx: u64,
    },
    /// A group's role, term or known leader changed (routing, metrics).
    RoleChanged {
        /// The group.
        group: GroupId,
        /// The new role.
        role: Role,
        /// The current term.
        term: Term,
        /// The known leader, if any.
        leader: Option<NodeId>,
    },
    /// Load a group's stored entries for a follower; see
    /// [`raft::Action::LoadEntries`]. Answer with
    /// [`raft::Event::EntriesLoaded`] through [`Event::Group`].
    LoadEntries {
        /// The group.
        group: GroupId,
        /// The follower they are for.
        to: NodeId,
        /// The first index to read.
        from: LogIndex,
        /// The last index to read.
        last: LogIndex,
        /// Soft limit on the entries' bytes.
        max_bytes: usize,
    },
    /// A peer node was presumed down (silent for the liveness timeout) or was
    /// heard from again; for metrics and operators.
    PeerLiveness {
        /// The peer node.
        peer: NodeId,
        /// Whether it is now considered alive.
        alive: bool,
    },
}

impl Action {
    /// Tags a single group's action. `Send` is not handled here: group messages
    /// go through the outbox and leave as batches.
    pub(super) fn from_group(group: GroupId, action: raft::Action) -> Option<Action> {
        Some(match action {
            raft::Action::Send(_) => return None,
            raft::Action::Persist(write) => Action::Persist { group, write },
            raft::Action::Apply(entries) => Action::Apply { group, entries },
            raft::Action::ApplySnapshot(snapshot) => Action::ApplySnapshot { group, snapshot },
            raft::Action::Proposed { term, first, last } => Action::Proposed {
                group,
                term,
                first,
                last,
            },
            raft::Action::ReadReady { ctx, index } => Action::ReadReady { group, ctx, index },
            raft::Action::ReadAborted { ctx } => Action::ReadAborted { group, ctx },
            raft::Action::RoleChanged { role, term, leader } => Action::RoleChanged {
                group,
                role,
                term,
                leader,
            },
            raft::Action::LoadEntries {
                to,
                from,
                last,
                max_bytes,
            } => Action::LoadEntries {
                group,
                to,
                from,
                last,
                max_bytes,
            },
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Send { batch, .. } => write!(f, "Send {batch}"),
            Action::Persist { group, write } => write!(f, "{group} {write}"),
            Action::Apply { group, entries } => {
                let list: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
                write!(f, "{group} Apply [{}]", list.join(", "))
            }
            Action::ApplySnapshot { group, snapshot } => write!(
                f,
                "{group} ApplySnapshot {} {}",
                snapshot.meta.last, snapshot.meta.membership
            ),
            Action::Proposed {
                group,
                term,
                first,
                last,
            } => write!(f, "{group} Proposed Term:{term} Index:{first}..={last}"),
            Action::ReadReady { group, ctx, index } => {
                write!(f, "{group} ReadReady ctx:{ctx} Index:{index}")
            }
            Action::ReadAborted { group, ctx } => write!(f, "{group} ReadAborted ctx:{ctx}"),
            Action::RoleChanged {
                group,
                role,
                term,
                leader,
            } => {
                let leader = leader.map_or(0, |l| l.0);
                write!(f, "{group} RoleChanged {role} Term:{term} Leader:{leader}")
            }
            Action::LoadEntries {
                group,
                to,
                from,
                last,
                max_bytes,
            } => write!(
                f,
                "{group} LoadEntries to:{to} from:{from} last:{last} max_bytes:{max_bytes}"
            ),
            Action::PeerLiveness { peer, alive } => {
                let state = if *alive { "alive" } else { "down" };
                write!(f, "PeerLiveness {peer} {state}")
            }
        }
    }
}

/// Why the node refused an event. Nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The node hosts no such group.
    #[error("group {0} is not hosted on this node")]
    UnknownGroup(GroupId),
    /// The group is already hosted here.
    #[error("group {0} already exists on this node")]
    GroupExists(GroupId),
    /// The group's config names another node.
    #[error("group {group} is configured for node {configured}, not this node")]
    WrongNode {
        /// The group.
        group: GroupId,
        /// The node id in its config.
        configured: NodeId,
    },
    /// The group's config cannot work.
    #[error("group {group}: {error}")]
    InvalidConfig {
        /// The group.
        group: GroupId,
        /// What is wrong.
        error: ConfigError,
    },
    /// The group refused the event.
    #[error("group {group}: {reason}")]
    Group {
        /// The group.
        group: GroupId,
        /// Its reason.
        reason: raft::Refused,
    },
}
