//! SyncGroup: followers wait for the leader's assignment, which is written to
//! the offsets partition before anyone gets it; a stable group answers at once.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::errors;
use super::outbox::{Ctx, PendingKind};
use super::requests::SyncRequest;
use super::responses::{Response, SyncResponse};
use super::state::{sync_error, Group, GroupState};

impl Group {
    /// Handles a SyncGroup for this group.
    pub(super) fn sync(&mut self, cx: &mut Ctx, req: SyncRequest) {
        if let Some(error) = self.validate_sync(&req) {
            cx.out.respond(req.reply, sync_error(error));
            return;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => {
                cx.out
                    .respond(req.reply, sync_error(errors::UNKNOWN_MEMBER_ID));
            }
            GroupState::PreparingRebalance => {
                cx.out
                    .respond(req.reply, sync_error(errors::REBALANCE_IN_PROGRESS));
            }
            GroupState::CompletingRebalance => {
                let Some(member) = self.members.get_mut(&req.member_id) else {
                    return;
                };
                if let Some(superseded) = member.awaiting_sync.replace(req.reply) {
                    cx.out
                        .respond(superseded, sync_error(errors::REBALANCE_IN_PROGRESS));
                }
                self.synced(&req.member_id);
                if self.is_leader(&req.member_id) {
                    self.store_assignment(cx, req);
                }
            }
            GroupState::Stable => {
                self.synced(&req.member_id);
                let Some(member) = self.members.get_mut(&req.member_id) else {
                    return;
                };
                let response = Response::Sync(SyncResponse {
                    error_code: errors::NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol.clone(),
                    assignment: member.assignment.clone(),
                });
                member.reset_session(cx.now);
                cx.out.respond(req.reply, response);
            }
        }
    }

    /// Kafka's `validateSyncGroup`.
    fn validate_sync(&self, req: &SyncRequest) -> Option<i16> {
        if self.is(GroupState::Dead) {
            return Some(errors::COORDINATOR_NOT_AVAILABLE);
        }
        if let Some(error) =
            self.validate_current_member(&req.member_id, req.group_instance_id.as_deref())
        {
            return Some(error);
        }
        if req.generation_id != self.generation {
            return Some(errors::ILLEGAL_GENERATION);
        }
        let type_differs = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| self.protocol_type.as_ref() != Some(t));
        let name_differs = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| self.protocol.as_ref() != Some(n));
        if type_differs || name_differs {
            return Some(errors::INCONSISTENT_GROUP_PROTOCOL);
        }
        None
    }

    fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    /// Writes the leader's assignment (members it left out get an empty one).
    fn store_assignment(&mut self, cx: &mut Ctx, req: SyncRequest) {
        let mut given: BTreeMap<String, Bytes> = BTreeMap::new();
        for a in req.assignments {
            given.insert(a.member_id, a.assignment);
        }
        let assignments: BTreeMap<String, Bytes> = self
            .members
            .keys()
            .map(|id| (id.clone(), given.get(id).cloned().unwrap_or_default()))
            .collect();
        let record = self.metadata_record(|m| assignments.get(&m.id).cloned().unwrap_or_default());
        tracing::info!(group = %self.id, generation = self.generation, "assignment received from the leader");
        cx.out.persist(
            vec![record],
            PendingKind::Assignment {
                group: self.id.clone(),
                generation: self.generation,
                assignments,
            },
        );
    }

    /// The assignment of `generation` is written. If the group still waits for
    /// it, every waiting sync gets its part and the group is Stable.
    pub(super) fn assignment_persisted(
        &mut self,
        cx: &mut Ctx,
        generation: i32,
        assignments: &BTreeMap<String, Bytes>,
    ) {
        if self.is(GroupState::CompletingRebalance) && self.generation == generation {
            self.set_and_propagate_assignment(cx, assignments);
        }
    }

    /// The assignment could not be written: waiting syncs fail and the group
    /// rebalances.
    pub(super) fn assignment_failed(&mut self, cx: &mut Ctx, generation: i32) {
        if self.is(GroupState::CompletingRebalance) && self.generation == generation {
            self.reset_and_propagate_assignment_error(cx, errors::COORDINATOR_NOT_AVAILABLE);
            self.maybe_prepare_rebalance(cx, "the assignment could not be written");
        }
    }
}
