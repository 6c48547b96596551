//! The rebalance: PreparingRebalance waits for members to rejoin, then a new
//! generation is chosen (CompletingRebalance) or the group empties; a failed
//! or interrupted rebalance sends waiting members back to rejoin.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::errors;
use super::outbox::{Ctx, PendingKind};
use super::responses::{Response, SyncResponse};
use super::state::{next_generation, Group, GroupState, InitialDelay, JoinPhase};

impl Group {
    /// Starts a rebalance unless one is already preparing (or the group is Dead).
    pub(super) fn maybe_prepare_rebalance(&mut self, cx: &mut Ctx, reason: &str) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::CompletingRebalance | GroupState::Stable
        ) {
            self.prepare_rebalance(cx, reason);
        }
    }

    /// Enters PreparingRebalance: waiting syncs are told to rejoin, and the
    /// join waits for every member or the rebalance timeout; a rebalance from
    /// Empty waits the initial delay instead.
    pub(super) fn prepare_rebalance(&mut self, cx: &mut Ctx, reason: &str) {
        if self.is(GroupState::CompletingRebalance) {
            self.reset_and_propagate_assignment_error(cx, errors::REBALANCE_IN_PROGRESS);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let rebalance_timeout = self.rebalance_timeout_ms();
        self.join = Some(if self.is(GroupState::Empty) {
            let delay = cx.cfg.initial_rebalance_delay_ms;
            JoinPhase {
                deadline: cx.now.saturating_add(delay),
                initial: Some(InitialDelay {
                    delay_ms: delay,
                    remaining_ms: rebalance_timeout.saturating_sub(delay),
                }),
            }
        } else {
            JoinPhase {
                deadline: cx.now.saturating_add(rebalance_timeout),
                initial: None,
            }
        });
        self.transition(GroupState::PreparingRebalance, cx.now);
        tracing::info!(group = %self.id, generation = self.generation, reason, "preparing to rebalance");
        self.try_complete_join(cx);
    }

    /// Completes the join early once every member rejoined (never during the
    /// initial delay).
    pub(super) fn try_complete_join(&mut self, cx: &mut Ctx) {
        let early = self
            .join
            .is_some_and(|j| j.initial.is_none() && self.has_all_members_joined());
        if self.is(GroupState::PreparingRebalance) && early {
            self.complete_join(cx);
        }
    }

    /// The join's deadline passed: extend an initial delay that saw a new
    /// member, or complete the join.
    pub(super) fn on_join_deadline(&mut self, cx: &mut Ctx) {
        let Some(phase) = self.join else {
            return;
        };
        match phase.initial {
            Some(initial) if self.new_member_added && initial.remaining_ms != 0 => {
                self.new_member_added = false;
                let delay = cx.cfg.initial_rebalance_delay_ms.min(initial.remaining_ms);
                self.join = Some(JoinPhase {
                    deadline: cx.now.saturating_add(delay),
                    initial: Some(InitialDelay {
                        delay_ms: delay,
                        remaining_ms: initial.remaining_ms.saturating_sub(initial.delay_ms),
                    }),
                });
            }
            _ => self.complete_join(cx),
        }
    }

    /// Kafka's `onCompleteJoin`: dynamic members that did not rejoin are
    /// dropped (static ones stay), the next generation starts and every
    /// waiting join is answered, the leader with every member's metadata.
    fn complete_join(&mut self, cx: &mut Ctx) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            tracing::info!(group = %self.id, member = %id, "removing a member that did not rejoin");
            self.remove(cx, id, errors::UNKNOWN_MEMBER_ID);
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait for them
            // again until their sessions expire.
            self.join = Some(JoinPhase {
                deadline: cx.now.saturating_add(self.rebalance_timeout_ms()),
                initial: None,
            });
            return;
        }
        self.init_next_generation(cx.now);
        if self.is(GroupState::Empty) {
            tracing::info!(group = %self.id, generation = self.generation, "group is empty");
            let record = self.metadata_record(|_| Bytes::new());
            cx.out.persist(vec![record], PendingKind::EmptyGroup);
            return;
        }
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), "stabilizing");
        let leader = self.leader.clone();
        let everyone = self.member_metadata();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let members = if self.is_leader(&id) {
                everyone.clone()
            } else {
                Vec::new()
            };
            let response = self.join_response(&id, leader.as_deref(), members, false);
            if let Some(member) = self.members.get_mut(&id) {
                if let Some(reply) = member.awaiting_join.take() {
                    cx.out.respond(reply, response);
                }
                member.reset_session(cx.now);
                member.is_new = false;
            }
            self.pending_sync.insert(id);
        }
        self.sync_deadline = Some(cx.now.saturating_add(self.rebalance_timeout_ms()));
    }

    /// Keeps the leader if it rejoined, else makes the first rejoined member
    /// lead; false if no member rejoined.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.as_deref() else {
            return false;
        };
        if self
            .members
            .get(leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, now: u64) {
        self.join = None;
        self.new_member_added = false;
        self.generation = next_generation(self.generation);
        if self.members.is_empty() {
            self.protocol = None;
            self.transition(GroupState::Empty, now);
        } else {
            self.protocol = self.select_protocol();
            self.transition(GroupState::CompletingRebalance, now);
        }
        self.subscribed_topics = self.compute_subscribed_topics();
        self.pending_sync.clear();
    }

    /// Clears every assignment and answers waiting syncs with `error`.
    pub(super) fn reset_and_propagate_assignment_error(&mut self, cx: &mut Ctx, error: i16) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        self.propagate_assignment(cx, error);
    }

    /// Installs the leader's assignment, answers every waiting sync and
    /// makes the group Stable.
    pub(super) fn set_and_propagate_assignment(
        &mut self,
        cx: &mut Ctx,
        assignments: &BTreeMap<String, Bytes>,
    ) {
        for m in self.members.values_mut() {
            m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
        }
        self.propagate_assignment(cx, errors::NONE);
        self.transition(GroupState::Stable, cx.now);
        tracing::info!(group = %self.id, generation = self.generation, "stable");
    }

    fn propagate_assignment(&mut self, cx: &mut Ctx, error: i16) {
        let ok = error == errors::NONE;
        let protocol_type = self.protocol_type.clone().filter(|_| ok);
        let protocol_name = self.protocol.clone().filter(|_| ok);
        for m in self.members.values_mut() {
            if let Some(reply) = m.awaiting_sync.take() {
                cx.out.respond(
                    reply,
                    Response::Sync(SyncResponse {
                        error_code: error,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    }),
                );
                // Its deadline may have passed while it waited.
                m.reset_session(cx.now);
            }
        }
    }

    /// Removes a member that left or expired, and rebalances what remains.
    pub(super) fn remove_member_and_update_group(
        &mut self,
        cx: &mut Ctx,
        member_id: &str,
        reason: &str,
    ) {
        if self
            .remove(cx, member_id, errors::UNKNOWN_MEMBER_ID)
            .is_none()
        {
            return;
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(cx, reason)
            }
            GroupState::PreparingRebalance => self.try_complete_join(cx),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
}
