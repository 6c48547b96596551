//! The coordinator's inputs ([`Event`]) and outputs ([`Action`]).
//!
//! Durability ordering is data: an answer that reports something written to
//! the offsets partition (a commit, a completed sync, a deletion) is only
//! emitted after the [`Event::Persisted`] for the write that holds it.
//!
//! Completions follow the log: a write is reported [`Event::Persisted`] only
//! after every write issued before it has been reported, as a log commits in
//! order. A failure needs no order: [`Event::PersistFailed`] may come for any
//! write in flight, before the writes issued earlier complete (the broker
//! refuses a proposal at once during a leader transfer while earlier ones are
//! still in flight). This holds because a write's effects wait for its own
//! success, and a failure undoes only what its own write changed ahead of
//! time, where that change is still in place.

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
    /// partition. Every token issued before it must have been reported
    /// (persisted or failed) already, as a log commits in order.
    Persisted {
        /// The write.
        token: u64,
    },
    /// The records of [`Action::Persist`] `token` were not written (no longer
    /// leader, disk error, a proposal refused); nothing they carried takes
    /// effect. It may come at any time while `token` is in flight, also
    /// before tokens issued earlier are reported.
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
