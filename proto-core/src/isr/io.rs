//! The tracker's inputs ([`Event`]), outputs ([`Action`]) and answers.
//!
//! Positions are Raft log indexes, never Kafka offsets: every input comes from
//! the Raft core (the follower's `Progress::matched`, the leader's last index,
//! the commit index), and an index also counts the Raft-only entries (no-ops,
//! configuration changes) that offset translation hides from clients, so "the
//! follower holds everything the leader holds" is exact.

use std::collections::BTreeSet;
use std::fmt;

use crate::raft::{LogIndex, NodeId};

/// The version of a partition's ISR record in the metadata log (Kafka's
/// partition epoch): the metadata log bumps it on every ISR it records, and
/// applies an [`Action::IsrChanged`] only if its record is still at the
/// `based_on` epoch, so two writers cannot both succeed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsrEpoch(pub u64);

impl fmt::Display for IsrEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Names one [`Action::IsrChanged`] so that its rejection can be told apart
/// from a late answer to an earlier proposal. Never reused by a tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId(pub u64);

impl fmt::Display for ProposalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Something that happened to the partition, as the leader saw it.
///
/// Times are a monotonic clock in milliseconds; a time older than one already
/// seen counts as the newest one seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// This node became the partition's Raft leader. Starts a new leadership:
    /// everything known about followers is forgotten.
    BecameLeader {
        /// The Raft voters, this node included. Learners are never replicas
        /// here, so they never enter the ISR.
        replicas: BTreeSet<NodeId>,
        /// The last ISR the metadata log recorded, as Kafka's new leader starts
        /// from the ISR in its LeaderAndIsr. Its members get one lag window to
        /// prove they are caught up; non-replicas are dropped.
        initial_isr: BTreeSet<NodeId>,
        /// The epoch of that record.
        isr_epoch: IsrEpoch,
        /// The leader's last log index at election (Kafka's leader epoch start
        /// offset): a follower may join only once it holds all of it.
        log_end: LogIndex,
        /// Now.
        now_ms: u64,
    },
    /// This node is no longer the leader; every later event but `BecameLeader`
    /// is ignored, answers to its proposals included.
    SteppedDown,
    /// A follower acknowledged its log up to `match_index` (a Raft append or
    /// heartbeat answer: the follower's `Progress::matched`).
    FollowerProgress {
        /// The follower.
        replica: NodeId,
        /// The highest index known to match the leader's log on that follower.
        match_index: LogIndex,
        /// When the answer arrived.
        now_ms: u64,
    },
    /// The leader appended entries; its last index is now `log_end`.
    LeaderLogEnd {
        /// The leader's last index.
        log_end: LogIndex,
        /// When it appended.
        now_ms: u64,
    },
    /// The Raft commit index moved: Chronik's high watermark.
    HighWatermark {
        /// The commit index.
        hw: LogIndex,
    },
    /// The Raft voters changed. A replica that left leaves the ISR at once;
    /// if this node left, it stops leading.
    ReplicasChanged {
        /// The voters now.
        replicas: BTreeSet<NodeId>,
    },
    /// Time passed: followers that stayed behind too long leave the ISR here.
    Tick {
        /// Now.
        now_ms: u64,
    },
    /// The metadata log holds this ISR at `epoch`: the answer to the pending
    /// proposal, or a record another writer made. Ignored unless `epoch` is
    /// newer than the one the tracker knows.
    IsrCommitted {
        /// The recorded ISR.
        isr: BTreeSet<NodeId>,
        /// Its epoch.
        epoch: IsrEpoch,
    },
    /// The metadata log refused `proposal` and will never apply it (Kafka's
    /// `INELIGIBLE_REPLICA`, `OPERATION_NOT_ATTEMPTED`). A proposal refused
    /// because the record moved on (`INVALID_UPDATE_VERSION`) is answered by
    /// stepping the newer record as [`Event::IsrCommitted`] instead.
    IsrRejected {
        /// The refused proposal.
        proposal: ProposalId,
    },
}

/// Something the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write this ISR to the metadata log (Kafka's AlterPartition), applied only
    /// if the partition's record is still at `based_on`, then step
    /// [`Event::IsrCommitted`] or [`Event::IsrRejected`]. No other change is
    /// proposed until one of them arrives.
    IsrChanged {
        /// Names the proposal in its rejection.
        proposal: ProposalId,
        /// The record epoch this change applies to.
        based_on: IsrEpoch,
        /// The proposed ISR, leader included.
        isr: BTreeSet<NodeId>,
        /// Why, one entry per replica that leaves or joins, by replica id.
        changes: Vec<IsrChange>,
    },
}

/// One replica leaving or joining the ISR, with the reason an operator reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsrChange {
    /// The replica has not caught up with the leader's log end for `lag_ms`,
    /// more than `replica.lag.time.max.ms` (Kafka's maybeShrinkIsr).
    Shrink {
        /// The replica.
        replica: NodeId,
        /// How long since it was last caught up.
        lag_ms: u64,
    },
    /// The replica holds the high watermark and the leader's epoch start and is
    /// caught up (Kafka's maybeExpandIsr); also the leader itself when the
    /// record lacks it.
    Expand {
        /// The replica.
        replica: NodeId,
    },
}

/// What an `acks=all` produce should hear now ([`IsrTracker::acks_all`](super::IsrTracker::acks_all)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcksAll {
    /// Not committed yet, or a member of the maximal ISR lacks it.
    Wait,
    /// Committed, held by every member of the maximal ISR, and the recorded
    /// ISR is at least `min.insync.replicas` large.
    Ack,
    /// Stored as above, but the ISR shrank below `min.insync.replicas`
    /// meanwhile (Kafka's `NOT_ENOUGH_REPLICAS_AFTER_APPEND`).
    NotEnoughReplicasAfterAppend,
}

/// An event that cannot be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// A leader must be one of the replicas it leads.
    #[error("{0} is not one of the replicas it leads")]
    LeaderNotAReplica(NodeId),
}
