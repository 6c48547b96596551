//! ListGroups, DescribeGroups and DeleteGroups, and the removal of groups
//! (deleted or expired): a group is Dead while its tombstones are written,
//! gone once they are, and Empty again if they could not be.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::errors;
use super::outbox::{Ctx, PendingKind};
use super::record::Record;
use super::requests::{DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, ReplyId};
use super::responses::{
    DeleteGroupsResponse, DeletedGroup, DescribeGroupsResponse, DescribedGroup, DescribedMember,
    ListGroupsResponse, ListedGroup, Response,
};
use super::state::{Group, GroupState};

/// The only group type this coordinator runs (KIP-848's name for it).
const CLASSIC_GROUP_TYPE: &str = "classic";

/// Handles a ListGroups.
pub(super) fn list(groups: &BTreeMap<String, Group>, cx: &mut Ctx, req: ListGroupsRequest) {
    let wants = |filter: &[String], value: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
    };
    let listed = if wants(&req.types_filter, CLASSIC_GROUP_TYPE) {
        groups
            .values()
            .filter(|g| !g.is(GroupState::Dead) && wants(&req.states_filter, g.state.name()))
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                group_state: g.state.name().to_string(),
                group_type: CLASSIC_GROUP_TYPE.to_string(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let response = ListGroupsResponse {
        error_code: errors::NONE,
        groups: listed,
    };
    cx.out.respond(req.reply, Response::ListGroups(response));
}

/// Handles a DescribeGroups: an unknown group is described as Dead.
pub(super) fn describe(groups: &BTreeMap<String, Group>, cx: &mut Ctx, req: DescribeGroupsRequest) {
    let described = req
        .groups
        .iter()
        .map(
            |id| match groups.get(id).filter(|g| !g.is(GroupState::Dead)) {
                None => DescribedGroup {
                    error_code: errors::NONE,
                    group_id: id.clone(),
                    group_state: GroupState::Dead.name().to_string(),
                    protocol_type: String::new(),
                    protocol_data: String::new(),
                    members: Vec::new(),
                },
                Some(g) => {
                    let stable = g.is(GroupState::Stable);
                    let protocol = g.protocol.clone().filter(|_| stable).unwrap_or_default();
                    DescribedGroup {
                        error_code: errors::NONE,
                        group_id: id.clone(),
                        group_state: g.state.name().to_string(),
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        members: g
                            .members
                            .values()
                            .map(|m| DescribedMember {
                                member_id: m.id.clone(),
                                group_instance_id: m.instance_id.clone(),
                                client_id: m.client_id.clone(),
                                client_host: m.client_host.clone(),
                                member_metadata: if stable {
                                    m.metadata(&protocol)
                                } else {
                                    Bytes::new()
                                },
                                member_assignment: if stable {
                                    m.assignment.clone()
                                } else {
                                    Bytes::new()
                                },
                            })
                            .collect(),
                        protocol_data: protocol,
                    }
                }
            },
        )
        .collect();
    let response = DescribeGroupsResponse { groups: described };
    cx.out
        .respond(req.reply, Response::DescribeGroups(response));
}

/// Handles a DeleteGroups: empty groups are removed with their offsets, and
/// the answer waits for the tombstones.
pub(super) fn delete(groups: &mut BTreeMap<String, Group>, cx: &mut Ctx, req: DeleteGroupsRequest) {
    let mut seen = BTreeSet::new();
    let mut results = Vec::new();
    let mut eligible = Vec::new();
    for id in req.groups_names {
        if !seen.insert(id.clone()) {
            continue;
        }
        let error_code = match groups.get(&id).map(|g| g.state) {
            None | Some(GroupState::Dead) => errors::GROUP_ID_NOT_FOUND,
            Some(GroupState::Empty) => {
                eligible.push(id.clone());
                errors::NONE
            }
            Some(_) => errors::NON_EMPTY_GROUP,
        };
        results.push(DeletedGroup {
            group_id: id,
            error_code,
        });
    }
    let response = DeleteGroupsResponse { results };
    remove_groups(
        groups,
        cx,
        eligible,
        Vec::new(),
        Vec::new(),
        Some((req.reply, response)),
    );
}

/// Removes `removed` (empty groups) and writes `expired` tombstones for
/// `trimmed` groups, in one write: offset tombstones first, then a group
/// tombstone for each removed group that was ever written (generation > 0).
pub(super) fn remove_groups(
    groups: &mut BTreeMap<String, Group>,
    cx: &mut Ctx,
    removed: Vec<String>,
    trimmed: Vec<String>,
    mut records: Vec<Record>,
    reply: Option<(ReplyId, DeleteGroupsResponse)>,
) {
    for id in &removed {
        let Some(g) = groups.get_mut(id) else {
            continue;
        };
        let partitions: Vec<_> = g
            .offsets
            .keys()
            .chain(g.pending_commits.keys())
            .cloned()
            .collect();
        records.extend(g.offset_tombstones(&partitions));
        if g.generation > 0 {
            records.push(Record::GroupTombstone { group: id.clone() });
        }
        g.pending_members.clear();
        // Not `transition`: if the write fails, the group is Empty since when it was.
        g.state = GroupState::Dead;
        tracing::info!(group = %id, "removing group");
    }
    if records.is_empty() {
        for id in &removed {
            groups.remove(id);
        }
        if let Some((reply, response)) = reply {
            cx.out.respond(reply, Response::DeleteGroups(response));
        }
        return;
    }
    for id in &trimmed {
        if let Some(g) = groups.get_mut(id) {
            g.expiry_in_flight = true;
        }
    }
    let kind = PendingKind::Removal {
        reply,
        removed,
        trimmed,
    };
    cx.out.persist(records, kind);
}

/// The tombstones are written: removed groups are gone.
pub(super) fn removal_persisted(
    groups: &mut BTreeMap<String, Group>,
    cx: &mut Ctx,
    removed: &[String],
    trimmed: &[String],
    reply: Option<(ReplyId, DeleteGroupsResponse)>,
) {
    for id in removed {
        if groups.get(id).is_some_and(|g| g.is(GroupState::Dead)) {
            groups.remove(id);
        }
    }
    for id in trimmed {
        if let Some(g) = groups.get_mut(id) {
            g.expiry_in_flight = false;
        }
    }
    if let Some((reply, response)) = reply {
        cx.out.respond(reply, Response::DeleteGroups(response));
    }
}

/// The tombstones were not written: the groups are back as they were.
pub(super) fn removal_failed(
    groups: &mut BTreeMap<String, Group>,
    cx: &mut Ctx,
    removed: &[String],
    trimmed: &[String],
    reply: Option<(ReplyId, DeleteGroupsResponse)>,
) {
    for id in removed {
        if let Some(g) = groups.get_mut(id).filter(|g| g.is(GroupState::Dead)) {
            g.state = GroupState::Empty;
        }
    }
    for id in trimmed {
        if let Some(g) = groups.get_mut(id) {
            g.expiry_in_flight = false;
        }
    }
    if let Some((reply, mut response)) = reply {
        for r in &mut response.results {
            if r.error_code == errors::NONE {
                r.error_code = errors::COORDINATOR_NOT_AVAILABLE;
            }
        }
        cx.out.respond(reply, Response::DeleteGroups(response));
    }
}
