//! Kafka's classic consumer-group coordinator as a pure state machine.
//!
//! One [`Coordinator`] serves the groups of one offsets partition. Every
//! request, every tick and every write completion enters through
//! [`Coordinator::step`]; answers and writes leave as [`Action`]s drained with
//! [`Coordinator::take_actions`]. There is no IO and no clock but the
//! `now_ms` each step carries; member ids come from a generator seeded by
//! [`CoordinatorConfig::seed`], and every map is ordered, so the same events
//! give the same actions.
//!
//! The rules follow Apache Kafka 3.x's `GroupCoordinator` (the classic
//! protocol): JoinGroup with KIP-394 member ids and KIP-345 static members,
//! the initial rebalance delay, SyncGroup answered once the leader's
//! assignment is written, heartbeats and session expiry, LeaveGroup,
//! offsets (standalone commits included) visible once written, retention, and
//! the admin requests. What it writes lives in the offsets partition as
//! [`Record`]s; [`Coordinator::replay`] loads them back. docs/architecture.md
//! draws the states and lists where this departs from Kafka.

mod admin;
mod config;
mod consumer_protocol;
pub mod errors;
mod io;
mod join;
#[cfg(test)]
mod join_tests;
mod member_id;
mod members;
mod offsets;
#[cfg(test)]
mod offsets_tests;
mod outbox;
mod rebalance;
mod record;
#[cfg(test)]
mod record_tests;
mod replay;
mod requests;
mod responses;
mod retention;
mod state;
mod sync;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod test_support;

use std::collections::{BTreeMap, BTreeSet};

pub use config::CoordinatorConfig;
pub use io::{Action, Event};
pub use record::{MemberRecord, Record, RecordError};
pub use requests::{
    CommitPartition, CommitTopic, DeleteGroupsRequest, DescribeGroupsRequest, FetchGroup,
    FetchTopic, HeartbeatRequest, JoinProtocol, JoinRequest, LeaveRequest, LeavingMember,
    ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetDeleteTopic,
    OffsetFetchRequest, ReplyId, SyncAssignment, SyncRequest,
};
pub use responses::{
    CommitPartitionResponse, CommitTopicResponse, DeleteGroupsResponse, DeletedGroup,
    DescribeGroupsResponse, DescribedGroup, DescribedMember, FetchGroupResponse,
    FetchPartitionResponse, FetchTopicResponse, HeartbeatResponse, JoinResponse,
    JoinResponseMember, LeaveMemberResponse, LeaveResponse, ListGroupsResponse, ListedGroup,
    OffsetCommitResponse, OffsetDeletePartitionResponse, OffsetDeleteResponse,
    OffsetDeleteTopicResponse, OffsetFetchResponse, Response, SyncResponse,
};
pub use state::GroupState;

use member_id::MemberIds;
use outbox::{Ctx, Outbox, Pending, PendingKind};
use replay::Restored;
use state::{join_error, sync_error, Group, Partition};

/// The group coordinator of one offsets partition.
pub struct Coordinator {
    cfg: CoordinatorConfig,
    groups: BTreeMap<String, Group>,
    out: Outbox,
    ids: MemberIds,
    /// The latest `now_ms` seen; time never goes back.
    now: u64,
    /// A step has run, so `now` is a real time.
    started: bool,
    /// Groups replayed before the first step from a record that does not say
    /// since when they are in their state (group value v1): that clock starts
    /// at the first step.
    unclocked_groups: BTreeSet<String>,
    /// Offsets replayed before the first step with a commit timestamp that is
    /// no time (negative; no coordinator writes one): likewise.
    unclocked_offsets: BTreeSet<(String, Partition)>,
    next_retention_check: u64,
}

impl Coordinator {
    /// A coordinator with no groups.
    pub fn new(cfg: CoordinatorConfig) -> Coordinator {
        Coordinator {
            ids: MemberIds::new(cfg.seed),
            cfg,
            groups: BTreeMap::new(),
            out: Outbox::default(),
            now: 0,
            started: false,
            unclocked_groups: BTreeSet::new(),
            unclocked_offsets: BTreeSet::new(),
            next_retention_check: 0,
        }
    }

    /// Loads one record of the offsets partition; the broker replays them all,
    /// in log order, before the first step. The last record per key wins, a
    /// group tombstone keeps offsets committed after it (a standalone
    /// consumer's), and nothing is emitted. Retention goes on from the times
    /// the records carry (an offset's commit timestamp, the time a group
    /// became empty), so `now_ms` must be comparable with the clock that
    /// wrote them, as the broker's wall-anchored clock is; a record without
    /// its time (a group value v1) starts that clock at the first step's
    /// `now_ms`. Members' sessions always start at the first step: they must
    /// heartbeat again. (A replay after steps uses the latest `now_ms` for
    /// both, and answers the requests waiting in a group it replaces with
    /// COORDINATOR_NOT_AVAILABLE, so none is lost.)
    pub fn replay(&mut self, record: Record) {
        let now = self.now;
        let before_start = !self.started;
        let mut cx = Ctx {
            now,
            cfg: &self.cfg,
            out: &mut self.out,
            ids: &mut self.ids,
        };
        if let Some(g) = self.groups.get_mut(record.group()) {
            if matches!(
                record,
                Record::GroupMetadata { .. } | Record::GroupTombstone { .. }
            ) {
                g.abandon_waiting(&mut cx, errors::COORDINATOR_NOT_AVAILABLE);
            }
        }
        match record {
            Record::GroupMetadata {
                group,
                protocol_type,
                generation,
                protocol,
                leader,
                current_state_timestamp_ms,
                members,
            } => {
                let state_since_ms = current_state_timestamp_ms.and_then(record_time);
                if state_since_ms.is_none() && before_start {
                    self.unclocked_groups.insert(group.clone());
                } else {
                    self.unclocked_groups.remove(&group);
                }
                let restored = Restored {
                    protocol_type,
                    generation,
                    protocol,
                    leader,
                    state_since_ms,
                    members,
                };
                self.groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group, now))
                    .restore(restored, now);
            }
            Record::GroupTombstone { group } => {
                self.unclocked_groups.remove(&group);
                let Some(g) = self.groups.get_mut(&group) else {
                    return;
                };
                if g.offsets.is_empty() {
                    self.groups.remove(&group);
                } else {
                    let offsets = std::mem::take(&mut g.offsets);
                    *g = Group::new(&group, now);
                    g.offsets = offsets;
                }
            }
            Record::Offset {
                ref group,
                ref topic,
                partition,
                commit_timestamp_ms,
                ..
            } => {
                let key = (group.clone(), (topic.clone(), partition));
                let committed_at = record_time(commit_timestamp_ms);
                if committed_at.is_none() && before_start {
                    self.unclocked_offsets.insert(key);
                } else {
                    self.unclocked_offsets.remove(&key);
                }
                let committed_at = committed_at.unwrap_or(now);
                offsets::apply_offset_record(&mut self.groups, &record, committed_at);
            }
            Record::OffsetTombstone { .. } => {
                offsets::apply_offset_record(&mut self.groups, &record, now);
            }
        }
    }

    /// Takes one event at time `now_ms`. Time never goes back: an earlier
    /// `now_ms` counts as the latest one seen. For retention to carry across
    /// a restart, `now_ms` must be comparable with the previous coordinator's
    /// (the records it wrote carry its times).
    pub fn step(&mut self, now_ms: u64, event: Event) {
        self.start_clocks(now_ms);
        self.now = self.now.max(now_ms);
        let retention_due = self.now >= self.next_retention_check;
        let mut cx = Ctx {
            now: self.now,
            cfg: &self.cfg,
            out: &mut self.out,
            ids: &mut self.ids,
        };
        let groups = &mut self.groups;
        match event {
            Event::Join(req) => join(groups, &mut cx, req),
            Event::Sync(req) => {
                let error = if req.group_id.is_empty() {
                    errors::INVALID_GROUP_ID
                } else if let Some(g) = groups.get_mut(&req.group_id) {
                    return g.sync(&mut cx, req);
                } else {
                    errors::UNKNOWN_MEMBER_ID
                };
                cx.out.respond(req.reply, sync_error(error));
            }
            Event::Heartbeat(req) => {
                let error = if req.group_id.is_empty() {
                    errors::INVALID_GROUP_ID
                } else if let Some(g) = groups.get_mut(&req.group_id) {
                    return g.heartbeat(&mut cx, req);
                } else {
                    errors::UNKNOWN_MEMBER_ID
                };
                let response = HeartbeatResponse { error_code: error };
                cx.out.respond(req.reply, Response::Heartbeat(response));
            }
            Event::Leave(req) => leave(groups, &mut cx, req),
            Event::OffsetCommit(req) => offsets::commit(groups, &mut cx, req),
            Event::OffsetFetch(req) => offsets::fetch(groups, &mut cx, req),
            Event::OffsetDelete(req) => offsets::delete_offsets(groups, &mut cx, req),
            Event::ListGroups(req) => admin::list(groups, &mut cx, req),
            Event::DescribeGroups(req) => admin::describe(groups, &mut cx, req),
            Event::DeleteGroups(req) => admin::delete(groups, &mut cx, req),
            Event::Tick => {
                for g in groups.values_mut() {
                    g.fire_timers(&mut cx);
                }
                if retention_due {
                    self.next_retention_check = cx
                        .now
                        .saturating_add(cx.cfg.offsets_retention_check_interval_ms);
                    retention::expire(groups, &mut cx);
                }
            }
            Event::Persisted { token } => {
                if let Some(p) = cx.out.pending.remove(&token) {
                    persisted(groups, &mut cx, p);
                }
            }
            Event::PersistFailed { token } => {
                if let Some(p) = cx.out.pending.remove(&token) {
                    failed(groups, &mut cx, p);
                }
            }
        }
    }

    /// Drains the actions of the steps so far, in the order to perform them.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out.actions)
    }

    /// The state of `group`, if the coordinator knows it (for metrics and tests).
    pub fn group_state(&self, group: &str) -> Option<GroupState> {
        self.groups.get(group).map(|g| g.state)
    }

    /// The generation of `group`, if the coordinator knows it.
    pub fn generation(&self, group: &str) -> Option<i32> {
        self.groups.get(group).map(|g| g.generation)
    }

    /// The first step starts the sessions of replayed members, and the
    /// retention clocks replay could not read from their records.
    fn start_clocks(&mut self, now: u64) {
        if self.started {
            return;
        }
        self.started = true;
        self.now = now;
        self.next_retention_check =
            now.saturating_add(self.cfg.offsets_retention_check_interval_ms);
        for g in self.groups.values_mut() {
            for m in g.members.values_mut() {
                m.reset_session(now);
            }
        }
        for id in std::mem::take(&mut self.unclocked_groups) {
            if let Some(g) = self.groups.get_mut(&id) {
                g.state_since_ms = now;
            }
        }
        for (id, partition) in std::mem::take(&mut self.unclocked_offsets) {
            let offset = self
                .groups
                .get_mut(&id)
                .and_then(|g| g.offsets.get_mut(&partition));
            if let Some(o) = offset {
                o.committed_at_ms = now;
            }
        }
    }
}

/// A time read from a record, if it is one (no coordinator writes a
/// negative time).
fn record_time(ms: i64) -> Option<u64> {
    u64::try_from(ms).ok()
}

/// JoinGroup's checks that need no group, then the group's own rules. A
/// group is created for a new member, and dropped again if the join left
/// nothing in it.
fn join(groups: &mut BTreeMap<String, Group>, cx: &mut Ctx, req: JoinRequest) {
    let error = if req.group_id.is_empty() {
        Some(errors::INVALID_GROUP_ID)
    } else if req.session_timeout_ms < cx.cfg.min_session_timeout_ms
        || req.session_timeout_ms > cx.cfg.max_session_timeout_ms
    {
        Some(errors::INVALID_SESSION_TIMEOUT)
    } else if !req.member_id.is_empty() && !groups.contains_key(&req.group_id) {
        Some(errors::UNKNOWN_MEMBER_ID)
    } else {
        None
    };
    if let Some(error) = error {
        cx.out.respond(req.reply, join_error(&req.member_id, error));
        return;
    }
    let id = req.group_id.clone();
    let group = groups
        .entry(id.clone())
        .or_insert_with(|| Group::new(&id, cx.now));
    group.join(cx, req);
    if group.is_vacant() {
        groups.remove(&id);
    }
}

fn leave(groups: &mut BTreeMap<String, Group>, cx: &mut Ctx, req: LeaveRequest) {
    if req.group_id.is_empty() {
        let response = LeaveResponse {
            error_code: errors::INVALID_GROUP_ID,
            members: Vec::new(),
        };
        cx.out.respond(req.reply, Response::Leave(response));
        return;
    }
    match groups.get_mut(&req.group_id) {
        Some(g) => g.leave(cx, req),
        None => {
            let members = req
                .members
                .into_iter()
                .map(|m| LeaveMemberResponse {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    error_code: errors::UNKNOWN_MEMBER_ID,
                })
                .collect();
            let response = LeaveResponse {
                error_code: errors::NONE,
                members,
            };
            cx.out.respond(req.reply, Response::Leave(response));
        }
    }
}

/// A write completed: its offsets take effect, then whatever waited for it.
fn persisted(groups: &mut BTreeMap<String, Group>, cx: &mut Ctx, p: Pending) {
    for r in &p.records {
        let committed_at = match r {
            Record::Offset {
                commit_timestamp_ms,
                ..
            } => record_time(*commit_timestamp_ms).unwrap_or(cx.now),
            _ => cx.now,
        };
        offsets::apply_offset_record(groups, r, committed_at);
    }
    match p.kind {
        PendingKind::EmptyGroup => {}
        PendingKind::Assignment {
            group,
            generation,
            assignments,
        } => {
            if let Some(g) = groups.get_mut(&group) {
                g.assignment_persisted(cx, generation, &assignments);
            }
        }
        PendingKind::StaticJoin(s) => {
            if let Some(g) = groups.get_mut(&s.group) {
                g.static_join_persisted(cx, &s);
            }
        }
        PendingKind::Commit {
            group,
            reply,
            response,
        } => {
            if let Some(g) = groups.get_mut(&group) {
                g.commit_settled(&p.records);
            }
            cx.out.respond(reply, Response::OffsetCommit(response));
        }
        PendingKind::OffsetDelete { reply, response } => {
            cx.out.respond(reply, Response::OffsetDelete(response));
        }
        PendingKind::Removal {
            reply,
            removed,
            trimmed,
        } => admin::removal_persisted(groups, cx, &removed, &trimmed, reply),
    }
}

/// A write failed: nothing it carried takes effect, and what waited for it
/// is answered COORDINATOR_NOT_AVAILABLE (Kafka's answer to a failed append).
fn failed(groups: &mut BTreeMap<String, Group>, cx: &mut Ctx, p: Pending) {
    match p.kind {
        PendingKind::EmptyGroup => {
            tracing::warn!("could not write an empty group's metadata");
        }
        PendingKind::Assignment {
            group, generation, ..
        } => {
            if let Some(g) = groups.get_mut(&group) {
                g.assignment_failed(cx, generation);
            }
        }
        PendingKind::StaticJoin(s) => {
            if let Some(g) = groups.get_mut(&s.group) {
                g.static_join_failed(cx, s);
            }
        }
        PendingKind::Commit {
            group,
            reply,
            mut response,
        } => {
            if let Some(g) = groups.get_mut(&group) {
                g.commit_settled(&p.records);
                if g.is_vacant() {
                    groups.remove(&group);
                }
            }
            for p in response
                .topics
                .iter_mut()
                .flat_map(|t| t.partitions.iter_mut())
            {
                if p.error_code == errors::NONE {
                    p.error_code = errors::COORDINATOR_NOT_AVAILABLE;
                }
            }
            cx.out.respond(reply, Response::OffsetCommit(response));
        }
        PendingKind::OffsetDelete {
            reply,
            mut response,
        } => {
            for p in response
                .topics
                .iter_mut()
                .flat_map(|t| t.partitions.iter_mut())
            {
                if p.error_code == errors::NONE {
                    p.error_code = errors::COORDINATOR_NOT_AVAILABLE;
                }
            }
            cx.out.respond(reply, Response::OffsetDelete(response));
        }
        PendingKind::Removal {
            reply,
            removed,
            trimmed,
        } => admin::removal_failed(groups, cx, &removed, &trimmed, reply),
    }
}
