//! Heartbeat, LeaveGroup and the member timers: session expiry, KIP-394
//! pending members, and the deadline for SyncGroup after a rebalance.

use super::errors;
use super::outbox::Ctx;
use super::requests::{HeartbeatRequest, LeaveRequest};
use super::responses::{HeartbeatResponse, LeaveMemberResponse, LeaveResponse, Response};
use super::state::{Group, GroupState};

/// A deadline of one group, for firing in time order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Pending(String),
    Session(String),
    Join,
    Sync,
}

impl Group {
    /// Handles a Heartbeat for this group.
    pub(super) fn heartbeat(&mut self, cx: &mut Ctx, req: HeartbeatRequest) {
        let error = self.heartbeat_error(cx, &req);
        cx.out.respond(
            req.reply,
            Response::Heartbeat(HeartbeatResponse { error_code: error }),
        );
    }

    fn heartbeat_error(&mut self, cx: &mut Ctx, req: &HeartbeatRequest) -> i16 {
        if self.is(GroupState::Dead) {
            return errors::COORDINATOR_NOT_AVAILABLE;
        }
        if self.is_static_member_fenced(&req.member_id, req.group_instance_id.as_deref()) {
            return errors::FENCED_INSTANCE_ID;
        }
        let generation = self.generation;
        let state = self.state;
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return errors::UNKNOWN_MEMBER_ID;
        };
        if req.generation_id != generation {
            return errors::ILLEGAL_GENERATION;
        }
        match state {
            GroupState::Empty | GroupState::Dead => errors::UNKNOWN_MEMBER_ID,
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.reset_session(cx.now);
                errors::NONE
            }
            GroupState::PreparingRebalance => {
                member.reset_session(cx.now);
                errors::REBALANCE_IN_PROGRESS
            }
        }
    }

    /// Handles a LeaveGroup for this group: each member is judged on its own.
    pub(super) fn leave(&mut self, cx: &mut Ctx, req: LeaveRequest) {
        if self.is(GroupState::Dead) {
            let response = LeaveResponse {
                error_code: errors::COORDINATOR_NOT_AVAILABLE,
                members: Vec::new(),
            };
            cx.out.respond(req.reply, Response::Leave(response));
            return;
        }
        let mut results = Vec::with_capacity(req.members.len());
        for leaving in req.members {
            let instance = leaving.group_instance_id.as_deref();
            let reason = leaving.reason.as_deref().unwrap_or("not provided");
            let error = if leaving.member_id.is_empty() {
                // An admin removing a static member by instance id.
                match instance.and_then(|i| self.static_members.get(i)).cloned() {
                    Some(current) => {
                        tracing::info!(group = %self.id, member = %current, reason, "static member removed");
                        self.remove_member_and_update_group(
                            cx,
                            &current,
                            "a static member was removed",
                        );
                        errors::NONE
                    }
                    None => errors::UNKNOWN_MEMBER_ID,
                }
            } else if self.pending_members.remove(&leaving.member_id).is_some() {
                self.try_complete_join(cx);
                errors::NONE
            } else {
                match self.validate_current_member(&leaving.member_id, instance) {
                    Some(error) => error,
                    None => {
                        tracing::info!(group = %self.id, member = %leaving.member_id, reason, "member leaves");
                        self.remove_member_and_update_group(
                            cx,
                            &leaving.member_id,
                            "a member left",
                        );
                        errors::NONE
                    }
                }
            };
            results.push(LeaveMemberResponse {
                member_id: leaving.member_id,
                group_instance_id: leaving.group_instance_id,
                error_code: error,
            });
        }
        let response = LeaveResponse {
            error_code: errors::NONE,
            members: results,
        };
        cx.out.respond(req.reply, Response::Leave(response));
    }

    /// Fires every deadline of the group that passed, oldest first. A
    /// deadline set while firing waits for the next tick, so a zero timeout
    /// cannot spin.
    pub(super) fn fire_timers(&mut self, cx: &mut Ctx) {
        debug_assert!(
            self.members.values().all(|m| m.session_deadline.is_some()
                || m.awaiting_join.is_some()
                || m.awaiting_sync.is_some()),
            "a member waiting for no answer has no session deadline in {}",
            self.id
        );
        let mut due: Vec<(u64, Timer)> = Vec::new();
        for (id, &deadline) in &self.pending_members {
            due.push((deadline, Timer::Pending(id.clone())));
        }
        for m in self.members.values() {
            if let Some(deadline) = m.session_deadline {
                due.push((deadline, Timer::Session(m.id.clone())));
            }
        }
        if let Some(join) = self.join {
            due.push((join.deadline, Timer::Join));
        }
        if let Some(deadline) = self.sync_deadline {
            due.push((deadline, Timer::Sync));
        }
        due.retain(|(deadline, _)| *deadline <= cx.now);
        due.sort();
        for (deadline, timer) in due {
            self.fire(cx, deadline, timer);
        }
    }

    /// Fires `timer` if it is still set to `deadline`.
    fn fire(&mut self, cx: &mut Ctx, deadline: u64, timer: Timer) {
        match timer {
            Timer::Pending(id) => {
                if self.pending_members.get(&id) == Some(&deadline) {
                    self.pending_members.remove(&id);
                    self.try_complete_join(cx);
                }
            }
            Timer::Session(id) => {
                let Some(member) = self.members.get_mut(&id) else {
                    return;
                };
                if member.session_deadline != Some(deadline) {
                    return;
                }
                let waiting = member.awaiting_join.is_some() || member.awaiting_sync.is_some();
                if waiting && !member.is_new {
                    // The rebalance (or sync) timeout governs it now.
                    member.session_deadline = None;
                } else {
                    tracing::info!(group = %self.id, member = %id, "session expired");
                    self.remove_member_and_update_group(cx, &id, "a session expired");
                }
            }
            Timer::Join => {
                let still = self.join.is_some_and(|j| j.deadline == deadline);
                if self.is(GroupState::PreparingRebalance) && still {
                    self.on_join_deadline(cx);
                }
            }
            Timer::Sync => {
                if self.sync_deadline == Some(deadline) {
                    self.sync_expired(cx);
                }
            }
        }
    }

    /// Members that never sent SyncGroup after the rebalance are dropped and
    /// the group rebalances (Kafka's pending-sync expiration).
    fn sync_expired(&mut self, cx: &mut Ctx) {
        self.sync_deadline = None;
        if !matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            return;
        }
        let missing: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
        if missing.is_empty() {
            return;
        }
        for id in &missing {
            tracing::info!(group = %self.id, member = %id, "removing a member that did not sync");
            self.remove(cx, id, errors::UNKNOWN_MEMBER_ID);
        }
        self.prepare_rebalance(cx, "members did not sync in time");
    }
}
