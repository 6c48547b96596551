//! Where handlers put their output: answers, and writes with what to do when
//! each completes. Kept apart from the groups so a handler can hold a group
//! and the outbox at once.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::config::CoordinatorConfig;
use super::io::Action;
use super::member_id::MemberIds;
use super::record::Record;
use super::requests::{JoinProtocol, ReplyId};
use super::responses::{
    DeleteGroupsResponse, OffsetCommitResponse, OffsetDeleteResponse, Response,
};

/// What a handler may touch besides its group.
pub(super) struct Ctx<'a> {
    /// The current step's time.
    pub now: u64,
    pub cfg: &'a CoordinatorConfig,
    pub out: &'a mut Outbox,
    pub ids: &'a mut MemberIds,
}

/// Actions not yet taken, and writes not yet completed.
#[derive(Default)]
pub(super) struct Outbox {
    pub actions: Vec<Action>,
    pub pending: BTreeMap<u64, Pending>,
    next_token: u64,
}

/// A write in flight: its records (offsets take effect from them when it
/// completes, as they would on replay) and what else follows from it.
pub(super) struct Pending {
    pub records: Vec<Record>,
    pub kind: PendingKind,
}

/// What a completed (or failed) write means besides its records.
pub(super) enum PendingKind {
    /// The group became empty; nothing waits for it (Kafka only logs a failure).
    EmptyGroup,
    /// The leader's assignment for `generation`: on success the group becomes
    /// Stable and every waiting SyncGroup is answered.
    Assignment {
        group: String,
        generation: i32,
        assignments: BTreeMap<String, Bytes>,
    },
    /// A static member's new id in a stable group: on success its JoinGroup is
    /// answered, on failure the old id is restored.
    StaticJoin(StaticJoin),
    /// Accepted commits (the partitions answered NONE in `response`).
    Commit {
        group: String,
        reply: ReplyId,
        response: OffsetCommitResponse,
    },
    /// OffsetDelete of the partitions answered NONE in `response`.
    OffsetDelete {
        reply: ReplyId,
        response: OffsetDeleteResponse,
    },
    /// Groups marked Dead until their tombstones are written: DeleteGroups
    /// (with `reply`) or retention (without). `trimmed` groups lose expired
    /// offsets but live on.
    Removal {
        reply: Option<(ReplyId, DeleteGroupsResponse)>,
        removed: Vec<String>,
        trimmed: Vec<String>,
    },
}

/// A static member's replacement waiting for its write, with what it
/// changed so that a failed write can undo it.
pub(super) struct StaticJoin {
    pub group: String,
    pub generation: i32,
    pub instance_id: String,
    pub member_id: String,
    pub reply: ReplyId,
    pub supports_skip_assignment: bool,
    pub old_member_id: String,
    pub old_protocols: Vec<JoinProtocol>,
    pub old_rebalance_timeout_ms: i32,
    pub old_session_timeout_ms: i32,
    /// The leader before the replacement, returned to pre-v9 joins.
    pub old_leader: Option<String>,
}

impl Outbox {
    pub(super) fn respond(&mut self, reply: ReplyId, response: Response) {
        self.actions.push(Action::Respond { reply, response });
    }

    /// Emits a write of `records` and remembers what its completion means.
    pub(super) fn persist(&mut self, records: Vec<Record>, kind: PendingKind) {
        self.next_token += 1;
        let token = self.next_token;
        self.actions.push(Action::Persist {
            token,
            records: records.clone(),
        });
        self.pending.insert(token, Pending { records, kind });
    }
}
