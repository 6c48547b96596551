//! JoinGroup: new members (KIP-394's member-id round, KIP-345's static
//! members) and known members rejoining, as Kafka's `handleJoinGroup`.

use bytes::Bytes;

use super::errors;
use super::outbox::{Ctx, PendingKind, StaticJoin};
use super::requests::JoinRequest;
use super::responses::Response;
use super::state::{join_error, Group, GroupState, Member, NEW_MEMBER_JOIN_TIMEOUT_MS};

impl Group {
    /// Handles a JoinGroup that passed the group-independent checks.
    pub(super) fn join(&mut self, cx: &mut Ctx, req: JoinRequest) {
        if !self.accepts_joining_member(cx, &req) {
            // A member over the limit (a smaller `max_group_size` than the
            // group has) is dropped, as Kafka does.
            self.remove(cx, &req.member_id, errors::GROUP_MAX_SIZE_REACHED);
            cx.out
                .respond(req.reply, join_error("", errors::GROUP_MAX_SIZE_REACHED));
        } else if req.member_id.is_empty() {
            self.new_member_join(cx, req);
        } else {
            self.current_member_join(cx, req);
        }
        self.try_complete_join(cx);
    }

    /// Kafka's `acceptJoiningMember`, except that a known static member with a
    /// new member id is always accepted: it replaces itself.
    fn accepts_joining_member(&self, cx: &Ctx, req: &JoinRequest) -> bool {
        let max = cx.cfg.max_group_size;
        let replaces_static = req.member_id.is_empty()
            && req
                .group_instance_id
                .as_ref()
                .is_some_and(|i| self.static_members.contains_key(i));
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                let awaiting = self
                    .members
                    .values()
                    .filter(|m| m.awaiting_join.is_some())
                    .count();
                replaces_static
                    || self
                        .members
                        .get(&req.member_id)
                        .is_some_and(|m| m.awaiting_join.is_some())
                    || awaiting < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                replaces_static
                    || self.members.contains_key(&req.member_id)
                    || self.members.len() < max
            }
        }
    }

    fn new_member_join(&mut self, cx: &mut Ctx, req: JoinRequest) {
        if self.is(GroupState::Dead) {
            cx.out
                .respond(req.reply, join_error("", errors::COORDINATOR_NOT_AVAILABLE));
            return;
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            cx.out.respond(
                req.reply,
                join_error("", errors::INCONSISTENT_GROUP_PROTOCOL),
            );
            return;
        }
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = cx.ids.next(prefix, |id| self.knows(id));
        match req.group_instance_id.clone() {
            Some(instance) => match self.static_members.get(&instance).cloned() {
                Some(old_id) => self.update_static_member(cx, &instance, &old_id, new_id, req),
                None => self.add_member_and_rebalance(cx, new_id, req),
            },
            None if req.require_known_member_id => {
                // Bounded so a client looping on fresh joins cannot grow the group.
                if self.pending_members.len() >= cx.cfg.max_group_size {
                    cx.out
                        .respond(req.reply, join_error("", errors::GROUP_MAX_SIZE_REACHED));
                    return;
                }
                let deadline = cx
                    .now
                    .saturating_add(super::state::timeout(req.session_timeout_ms));
                self.pending_members.insert(new_id.clone(), deadline);
                cx.out
                    .respond(req.reply, join_error(&new_id, errors::MEMBER_ID_REQUIRED));
            }
            None => self.add_member_and_rebalance(cx, new_id, req),
        }
    }

    fn current_member_join(&mut self, cx: &mut Ctx, req: JoinRequest) {
        if self.is(GroupState::Dead) {
            let r = join_error(&req.member_id, errors::COORDINATOR_NOT_AVAILABLE);
            cx.out.respond(req.reply, r);
            return;
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            let r = join_error(&req.member_id, errors::INCONSISTENT_GROUP_PROTOCOL);
            cx.out.respond(req.reply, r);
            return;
        }
        if self.pending_members.contains_key(&req.member_id) {
            // Pending ids are only handed to dynamic members.
            if req.group_instance_id.is_some() {
                let r = join_error(&req.member_id, errors::UNKNOWN_MEMBER_ID);
                cx.out.respond(req.reply, r);
            } else {
                let id = req.member_id.clone();
                self.add_member_and_rebalance(cx, id, req);
            }
            return;
        }
        if let Some(error) =
            self.validate_current_member(&req.member_id, req.group_instance_id.as_deref())
        {
            cx.out.respond(req.reply, join_error(&req.member_id, error));
            return;
        }
        let unchanged = self
            .members
            .get(&req.member_id)
            .is_some_and(|m| m.protocols == req.protocols);
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(cx, req),
            GroupState::CompletingRebalance if unchanged => {
                // It probably missed its JoinGroup answer: send it again.
                let leader_view = self.is_leader(&req.member_id);
                let members = if leader_view {
                    self.member_metadata()
                } else {
                    Vec::new()
                };
                let r = self.join_response(&req.member_id, self.leader.as_deref(), members, false);
                cx.out.respond(req.reply, r);
            }
            GroupState::Stable if unchanged && !self.is_leader(&req.member_id) => {
                let r =
                    self.join_response(&req.member_id, self.leader.as_deref(), Vec::new(), false);
                cx.out.respond(req.reply, r);
            }
            // The leader rejoining a stable group asks for a rebalance (e.g.
            // topic metadata changed); changed metadata needs one too.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(cx, req)
            }
            GroupState::Empty | GroupState::Dead => {
                let r = join_error(&req.member_id, errors::UNKNOWN_MEMBER_ID);
                cx.out.respond(req.reply, r);
            }
        }
    }

    /// A known member's new protocols and timeouts; it now waits for the join.
    fn update_member_and_rebalance(&mut self, cx: &mut Ctx, req: JoinRequest) {
        let Some(member) = self.members.get_mut(&req.member_id) else {
            return;
        };
        member.protocols = req.protocols;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        if let Some(superseded) = member.awaiting_join.replace(req.reply) {
            cx.out.respond(
                superseded,
                join_error(&req.member_id, errors::REBALANCE_IN_PROGRESS),
            );
        }
        self.maybe_prepare_rebalance(cx, "a member rejoined");
    }

    fn add_member_and_rebalance(&mut self, cx: &mut Ctx, member_id: String, req: JoinRequest) {
        if self.is(GroupState::PreparingRebalance) && self.generation == 0 {
            self.new_member_added = true;
        }
        let member = Member {
            id: member_id,
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(req.reply),
            awaiting_sync: None,
            session_deadline: Some(cx.now.saturating_add(NEW_MEMBER_JOIN_TIMEOUT_MS)),
            is_new: true,
        };
        tracing::info!(group = %self.id, member = %member.id, "member joins");
        self.add(member, &req.protocol_type);
        self.maybe_prepare_rebalance(cx, "a new member joined");
    }

    /// KIP-345: a static member came back with a new member id. In a stable
    /// group whose protocol stays the same this is no rebalance: the group is
    /// written with the new id and the member rejoins the current generation.
    fn update_static_member(
        &mut self,
        cx: &mut Ctx,
        instance: &str,
        old_id: &str,
        new_id: String,
        req: JoinRequest,
    ) {
        let old_leader = self.leader.clone();
        self.replace_static_member(cx, instance, old_id, &new_id);
        let Some(member) = self.members.get_mut(&new_id) else {
            return;
        };
        member.reset_session(cx.now);
        let pending = StaticJoin {
            group: self.id.clone(),
            generation: self.generation,
            instance_id: instance.to_string(),
            member_id: new_id.clone(),
            reply: req.reply,
            supports_skip_assignment: req.supports_skip_assignment,
            old_member_id: old_id.to_string(),
            old_protocols: std::mem::replace(&mut member.protocols, req.protocols),
            old_rebalance_timeout_ms: std::mem::replace(
                &mut member.rebalance_timeout_ms,
                req.rebalance_timeout_ms,
            ),
            old_session_timeout_ms: std::mem::replace(
                &mut member.session_timeout_ms,
                req.session_timeout_ms,
            ),
            old_leader,
        };
        member.awaiting_join = Some(req.reply);
        tracing::info!(group = %self.id, instance, old = old_id, new = %new_id, "static member replaced");
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol => {
                let record = self.metadata_record(|m| m.assignment.clone());
                cx.out
                    .persist(vec![record], PendingKind::StaticJoin(pending));
            }
            GroupState::Stable => {
                self.maybe_prepare_rebalance(cx, "a static member changed the protocol")
            }
            // Its old id may already be in the leader's assignment.
            GroupState::CompletingRebalance => {
                self.prepare_rebalance(cx, "a static member rejoined while completing")
            }
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// The static member's new id is written: answer its join with the
    /// current generation, so it syncs and gets its old assignment. Its
    /// session starts again: if its deadline passed while the write was in
    /// flight, waiting in the join suspended the timer (see
    /// `Member::session_deadline`), and nothing else would restart it.
    pub(super) fn static_join_persisted(&mut self, cx: &mut Ctx, p: &StaticJoin) {
        if !self.still_awaits_static_join(p) {
            return;
        }
        let response = if p.supports_skip_assignment {
            // KIP-814: the leader learns it leads, but keeps the assignment.
            let leads = self.is_leader(&p.member_id);
            let members = if leads {
                self.member_metadata()
            } else {
                Vec::new()
            };
            self.join_response(&p.member_id, self.leader.as_deref(), members, leads)
        } else {
            // Before JoinGroup v9 the old leader's id is returned, so a
            // static leader does not compute an assignment nobody would get.
            self.join_response(&p.member_id, p.old_leader.as_deref(), Vec::new(), false)
        };
        if let Some(member) = self.members.get_mut(&p.member_id) {
            member.awaiting_join = None;
            member.reset_session(cx.now);
        }
        cx.out.respond(p.reply, response);
    }

    /// The write failed: the old member id is restored, the join refused,
    /// and the session starts again (for the same reason as on success).
    pub(super) fn static_join_failed(&mut self, cx: &mut Ctx, p: StaticJoin) {
        if !self.still_awaits_static_join(&p) {
            return;
        }
        if let Some(member) = self.members.get_mut(&p.member_id) {
            member.awaiting_join = None;
            member.protocols = p.old_protocols;
            member.rebalance_timeout_ms = p.old_rebalance_timeout_ms;
            member.session_timeout_ms = p.old_session_timeout_ms;
        }
        self.replace_static_member(cx, &p.instance_id, &p.member_id, &p.old_member_id);
        if let Some(member) = self.members.get_mut(&p.old_member_id) {
            member.reset_session(cx.now);
        }
        let mut response = self.join_response("", p.old_leader.as_deref(), Vec::new(), false);
        if let Response::Join(j) = &mut response {
            j.error_code = errors::COORDINATOR_NOT_AVAILABLE;
        }
        cx.out.respond(p.reply, response);
    }

    fn still_awaits_static_join(&self, p: &StaticJoin) -> bool {
        self.is(GroupState::Stable)
            && self.generation == p.generation
            && self
                .members
                .get(&p.member_id)
                .is_some_and(|m| m.awaiting_join == Some(p.reply))
    }
}
