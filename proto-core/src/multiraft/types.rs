//! The multi-Raft vocabulary on the wire: group ids and the batch one node sends
//! another per flush.

use std::fmt;

use rkyv::{Archive, Deserialize, Serialize};

use crate::raft::{LogIndex, Message, MessageBody, NodeId, Term};

/// A Raft group hosted by the cluster: one per partition, plus the metadata group.
/// A newtype so a group can never be confused with a node, a term or an index.
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
#[rkyv(derive(PartialEq, Eq, PartialOrd, Ord))]
pub struct GroupId(pub u64);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// A group's heartbeat in compact form. Heartbeats are most of the traffic between
/// two nodes that share many groups; without the sender, receiver and enum tag of
/// a full [`Message`] they cost a few dozen bytes each (CockroachDB's coalesced
/// heartbeats, Redpanda's `heartbeat_manager`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct GroupHeartbeat {
    /// The group whose leader sent it.
    pub group: GroupId,
    /// The leader's term.
    pub term: Term,
    /// The leader's commit index, capped at what the follower is known to hold.
    pub commit: LogIndex,
    /// The leader's heartbeat round, echoed in the response.
    pub round: u64,
    /// Asks the follower to stop ticking until something happens.
    pub quiesce: bool,
}

/// A group's answer to a heartbeat, in compact form (see [`GroupHeartbeat`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct GroupHeartbeatResponse {
    /// The group whose follower answered.
    pub group: GroupId,
    /// The follower's term.
    pub term: Term,
    /// The round being acknowledged.
    pub round: u64,
}

/// Everything one node sends another in one flush: one network write per peer
/// node instead of one per group message. Any batch, even an empty one, also
/// proves that its sender is alive (node liveness, see the module docs).
///
/// The receiver delivers `messages` first, in order, then `heartbeats`, then
/// `heartbeat_responses`. Heartbeats carry no entries, so delivering them last
/// can only make a follower quiesce later than its leader asked, never wake it
/// after a quiesce notice it should have honoured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Batch {
    /// The sending node.
    pub from: NodeId,
    /// The receiving node.
    pub to: NodeId,
    /// Group messages other than heartbeats, in the order the groups sent them.
    pub messages: Vec<(GroupId, Message)>,
    /// Coalesced group heartbeats.
    pub heartbeats: Vec<GroupHeartbeat>,
    /// Coalesced answers to group heartbeats.
    pub heartbeat_responses: Vec<GroupHeartbeatResponse>,
}

impl Batch {
    /// An empty batch from `from` to `to`: on its own, a node liveness heartbeat.
    pub fn new(from: NodeId, to: NodeId) -> Batch {
        Batch {
            from,
            to,
            ..Batch::default()
        }
    }

    /// Whether the batch carries no group traffic (a bare liveness heartbeat).
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.heartbeats.is_empty()
            && self.heartbeat_responses.is_empty()
    }

    /// How many group messages the batch carries, heartbeats included.
    pub fn len(&self) -> usize {
        self.messages.len() + self.heartbeats.len() + self.heartbeat_responses.len()
    }

    /// Adds one group message, in compact form if it is a heartbeat or its answer.
    pub fn push(&mut self, group: GroupId, msg: Message) {
        match msg.body {
            MessageBody::Heartbeat {
                commit,
                round,
                quiesce,
            } => self.heartbeats.push(GroupHeartbeat {
                group,
                term: msg.term,
                commit,
                round,
                quiesce,
            }),
            MessageBody::HeartbeatResponse { round } => {
                self.heartbeat_responses.push(GroupHeartbeatResponse {
                    group,
                    term: msg.term,
                    round,
                })
            }
            _ => self.messages.push((group, msg)),
        }
    }

    /// The group messages in delivery order, heartbeats expanded back into full
    /// messages from `from` to `to`.
    pub fn into_messages(self) -> impl Iterator<Item = (GroupId, Message)> {
        let (from, to) = (self.from, self.to);
        let heartbeats = self.heartbeats.into_iter().map(move |h| {
            let body = MessageBody::Heartbeat {
                commit: h.commit,
                round: h.round,
                quiesce: h.quiesce,
            };
            (h.group, full(from, to, h.term, body))
        });
        let responses = self.heartbeat_responses.into_iter().map(move |r| {
            let body = MessageBody::HeartbeatResponse { round: r.round };
            (r.group, full(from, to, r.term, body))
        });
        self.messages.into_iter().chain(heartbeats).chain(responses)
    }
}

fn full(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
    Message {
        from,
        to,
        term,
        body,
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} Batch", self.from, self.to)?;
        if self.is_empty() {
            return write!(f, " liveness");
        }
        for (group, m) in &self.messages {
            write!(f, "\n  {group} {m}")?;
        }
        if !self.heartbeats.is_empty() {
            write!(f, "\n  heartbeats:")?;
            for h in &self.heartbeats {
                write!(f, " {}(T{} C{} R{}", h.group, h.term, h.commit, h.round)?;
                f.write_str(if h.quiesce { " q)" } else { ")" })?;
            }
        }
        if !self.heartbeat_responses.is_empty() {
            write!(f, "\n  heartbeat-responses:")?;
            for r in &self.heartbeat_responses {
                write!(f, " {}(T{} R{})", r.group, r.term, r.round)?;
            }
        }
        Ok(())
    }
}
