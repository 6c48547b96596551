//! The coordinator's inputs ([`Event`]) and outputs ([`Action`]).
//!
//! Durability ordering is data: an answer that reports something written to
//! the offsets partition (a commit, a completed sync, a deletion) is only
//! emitted after the [`Event::Persisted`] for the write that holds it.

use super::record::Record;
use super::requests::{
    DeleteGroupsRequest, DescribeGroupsRequest, HeartbeatRequest, JoinRequest, LeaveRequest,
    ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, ReplyId,
    SyncRequest,
};
use super::responses::Response;

/// Something that happened to the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A JoinGroup.
    Join(JoinRequest),
    /// A SyncGroup.
    Sync(SyncRequest),
    /// A Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// A LeaveGroup.
    Leave(LeaveRequest),
    /// An OffsetCommit.
    OffsetCommit(OffsetCommitRequest),
    /// An OffsetFetch.
    OffsetFetch(OffsetFetchRequest),
    /// A ListGroups.
    ListGroups(ListGroupsRequest),
    /// A DescribeGroups.
    DescribeGroups(DescribeGroupsRequest),
    /// A DeleteGroups.
    DeleteGroups(DeleteGroupsRequest),
    /// An OffsetDelete.
    OffsetDelete(OffsetDeleteRequest),
    /// Time passed: session expiry, rebalance and sync timeouts, the initial
    /// rebalance delay, pending-member expiry and offset retention fire here.
    Tick,
    /// The records of [`Action::Persist`] `token` are committed in the offsets
    /// partition. Tokens must complete in the order they were issued, as a log does.
    Persisted {
        /// The write.
        token: u64,
    },
    /// The records of [`Action::Persist`] `token` were not written (no longer
    /// leader, disk error); nothing they carried takes effect.
    PersistFailed {
        /// The write.
        token: u64,
    },
}

/// Something the broker must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this answer for the request `reply` came with. Every request gets
    /// exactly one.
    Respond {
        /// The request's token.
        reply: ReplyId,
        /// The answer.
        response: Response,
    },
    /// Append `records` to the offsets partition, in order, as one write; then
    /// step [`Event::Persisted`] or [`Event::PersistFailed`] with `token`.
    Persist {
        /// Names the write in the completion event.
        token: u64,
        /// The records, in order.
        records: Vec<Record>,
    },
}
