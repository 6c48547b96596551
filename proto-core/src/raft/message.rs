//! Messages between the members of one Raft group.

use std::fmt;

use bytes::Bytes;
use rkyv::{Archive, Deserialize, Serialize};

use super::types::{Entry, LogId, LogIndex, NodeId, SnapshotMeta, Term};

/// A message from one member of a group to another. Every message carries the
/// sender's term so stale leaders and candidates learn they are stale.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The sender's term; for pre-votes, the term the sender would campaign in.
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// How a follower answered an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log matches the leader's up to `last`, durably.
    Accepted {
        /// The highest index now known to match.
        last: LogIndex,
    },
    /// The follower's log does not hold the append's `prev` entry.
    Rejected {
        /// The `prev` index that did not match.
        index: LogIndex,
        /// The follower's best guess where the logs may agree: its last entry with a
        /// term at most the leader's `prev` term (fast backtracking, etcd's hint).
        hint: LogId,
    },
}

/// The kinds of Raft messages.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum MessageBody {
    /// Asks whether the receiver would vote for the sender in `term`, without
    /// changing anyone's term (thesis §9.6): a partitioned node cannot inflate terms.
    PreVote {
        /// The sender's last log entry.
        last: LogId,
    },
    /// The answer to a pre-vote.
    PreVoteResponse {
        /// Whether the pre-vote was refused.
        reject: bool,
    },
    /// Asks for a vote in `term`.
    Vote {
        /// The sender's last log entry.
        last: LogId,
        /// Set when a leader transfer caused the election; overrides leader leases.
        transfer: bool,
    },
    /// The answer to a vote request, sent only once the vote is durable.
    VoteResponse {
        /// Whether the vote was refused.
        reject: bool,
    },
    /// Replicates entries following `prev`.
    Append {
        /// The entry just before `entries`; the follower must hold it.
        prev: LogId,
        /// The entries to append (possibly none: a probe or a commit update).
        entries: Vec<Entry>,
        /// The leader's commit index, capped at what this follower is known to hold.
        commit: LogIndex,
    },
    /// The answer to an append.
    AppendResponse {
        /// Accepted or rejected, with details.
        outcome: AppendOutcome,
    },
    /// Keeps followers from campaigning, carries the commit index, and collects
    /// acknowledgements for read-index rounds and leases.
    Heartbeat {
        /// The leader's commit index, capped at what this follower is known to hold.
        commit: LogIndex,
        /// The leader's heartbeat round, echoed in the response.
        round: u64,
        /// Asks the follower to stop ticking until something happens.
        quiesce: bool,
    },
    /// The answer to a heartbeat.
    HeartbeatResponse {
        /// The round being acknowledged.
        round: u64,
    },
    /// One chunk of a snapshot for a follower behind the leader's compacted log.
    InstallSnapshot {
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// Byte offset of `chunk` in the snapshot data.
        offset: u64,
        /// Total length of the snapshot data.
        total: u64,
        /// The bytes at `offset`.
        chunk: Bytes,
    },
    /// The answer to a snapshot chunk: which byte the follower needs next.
    SnapshotResponse {
        /// The snapshot being answered for.
        last: LogId,
        /// The offset of the next chunk the follower expects; equal to the total
        /// once the snapshot is installed and durable.
        next_offset: u64,
        /// Whether the snapshot is installed and durable.
        done: bool,
    },
    /// Tells a transfer target to campaign now.
    TimeoutNow,
    /// A follower's linearizable-read request forwarded to the leader.
    ReadIndex {
        /// The follower's request token.
        ctx: u64,
    },
    /// The leader's answer to a forwarded read.
    ReadIndexResponse {
        /// The follower's request token.
        ctx: u64,
        /// The index to wait for, or `None` if the leader could not serve it.
        index: Option<LogIndex>,
    },
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{} ", self.from, self.to)?;
        let t = self.term;
        match &self.body {
            MessageBody::PreVote { last } => write!(f, "PreVote Term:{t} Log:{last}"),
            MessageBody::PreVoteResponse { reject } => {
                write!(f, "PreVoteResponse Term:{t}{}", rejected(*reject))
            }
            MessageBody::Vote { last, transfer } => {
                write!(f, "Vote Term:{t} Log:{last}")?;
                if *transfer {
                    write!(f, " transfer")?;
                }
                Ok(())
            }
            MessageBody::VoteResponse { reject } => {
                write!(f, "VoteResponse Term:{t}{}", rejected(*reject))
            }
            MessageBody::Append {
                prev,
                entries,
                commit,
            } => {
                write!(f, "Append Term:{t} Log:{prev} Commit:{commit}")?;
                if !entries.is_empty() {
                    let list: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
                    write!(f, " Entries:[{}]", list.join(", "))?;
                }
                Ok(())
            }
            MessageBody::AppendResponse { outcome } => match outcome {
                AppendOutcome::Accepted { last } => {
                    write!(f, "AppendResponse Term:{t} Accepted:{last}")
                }
                AppendOutcome::Rejected { index, hint } => {
                    write!(f, "AppendResponse Term:{t} Rejected:{index} Hint:{hint}")
                }
            },
            MessageBody::Heartbeat {
                commit,
                round,
                quiesce,
            } => {
                write!(f, "Heartbeat Term:{t} Commit:{commit} Round:{round}")?;
                if *quiesce {
                    write!(f, " quiesce")?;
                }
                Ok(())
            }
            MessageBody::HeartbeatResponse { round } => {
                write!(f, "HeartbeatResponse Term:{t} Round:{round}")
            }
            MessageBody::InstallSnapshot {
                meta,
                offset,
                total,
                chunk,
            } => write!(
                f,
                "InstallSnapshot Term:{t} Snapshot:{} {} Bytes:{}..{}/{}",
                meta.last,
                meta.membership,
                offset,
                offset + chunk.len() as u64,
                total
            ),
            MessageBody::SnapshotResponse {
                last,
                next_offset,
                done,
            } => {
                write!(
                    f,
                    "SnapshotResponse Term:{t} Snapshot:{last} Next:{next_offset}"
                )?;
                if *done {
                    write!(f, " done")?;
                }
                Ok(())
            }
            MessageBody::TimeoutNow => write!(f, "TimeoutNow Term:{t}"),
            MessageBody::ReadIndex { ctx } => write!(f, "ReadIndex Term:{t} ctx:{ctx}"),
            MessageBody::ReadIndexResponse { ctx, index } => match index {
                Some(i) => write!(f, "ReadIndexResponse Term:{t} ctx:{ctx} Index:{i}"),
                None => write!(f, "ReadIndexResponse Term:{t} ctx:{ctx} refused"),
            },
        }
    }
}

fn rejected(reject: bool) -> &'static str {
    if reject {
        " Rejected"
    } else {
        " Granted"
    }
}
