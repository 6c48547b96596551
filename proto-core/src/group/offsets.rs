//! OffsetCommit, OffsetFetch and OffsetDelete. Committed offsets change only
//! when the write holding them completes, by the same rule replay applies, so
//! what OffsetFetch shows is always what the offsets partition holds.

use std::collections::{BTreeMap, BTreeSet};

use super::errors;
use super::outbox::{Ctx, PendingKind};
use super::record::Record;
use super::requests::{OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest};
use super::responses::{
    CommitPartitionResponse, CommitTopicResponse, FetchGroupResponse, FetchPartitionResponse,
    FetchTopicResponse, OffsetCommitResponse, OffsetDeletePartitionResponse, OffsetDeleteResponse,
    OffsetDeleteTopicResponse, OffsetFetchResponse, Response,
};
use super::state::{CommittedOffset, Group, GroupState, Partition, CONSUMER_PROTOCOL_TYPE};

/// Applies an offset record (or tombstone) to the groups; other records are
/// not about offsets. `committed_at_ms` starts a new offset's retention clock.
pub(super) fn apply_offset_record(
    groups: &mut BTreeMap<String, Group>,
    record: &Record,
    committed_at_ms: u64,
) {
    match record {
        Record::Offset {
            group,
            topic,
            partition,
            offset,
            leader_epoch,
            metadata,
            ..
        } => {
            let g = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group, committed_at_ms));
            g.offsets.insert(
                (topic.clone(), *partition),
                CommittedOffset {
                    offset: *offset,
                    leader_epoch: *leader_epoch,
                    metadata: metadata.clone(),
                    committed_at_ms,
                },
            );
        }
        Record::OffsetTombstone {
            group,
            topic,
            partition,
        } => {
            if let Some(g) = groups.get_mut(group) {
                g.offsets.remove(&(topic.clone(), *partition));
            }
        }
        Record::GroupMetadata { .. } | Record::GroupTombstone { .. } => {}
    }
}

/// The length Kafka's `String.length()` gives, which `offset.metadata.max.bytes` limits.
fn metadata_len(metadata: Option<&str>) -> usize {
    metadata.map_or(0, |m| m.encode_utf16().count())
}

/// Handles an OffsetCommit: validates it against the group (which may not
/// exist: a standalone consumer's first commit creates it) and writes the
/// accepted partitions; the answer waits for the write.
pub(super) fn commit(groups: &mut BTreeMap<String, Group>, cx: &mut Ctx, req: OffsetCommitRequest) {
    let verdict = match groups.get_mut(&req.group_id) {
        None if req.generation_id >= 0 => Err(errors::ILLEGAL_GENERATION),
        None if !req.member_id.is_empty() || req.group_instance_id.is_some() => {
            Err(errors::UNKNOWN_MEMBER_ID)
        }
        None => Ok(()),
        Some(group) => group.validate_offset_commit(cx, &req),
    };
    let mut records = Vec::new();
    let mut accepted: Vec<Partition> = Vec::new();
    let topics = req
        .topics
        .iter()
        .map(|t| CommitTopicResponse {
            name: t.name.clone(),
            partitions: t
                .partitions
                .iter()
                .map(|p| {
                    let error_code = match verdict {
                        Err(e) => e,
                        Ok(())
                            if metadata_len(p.committed_metadata.as_deref())
                                > cx.cfg.max_metadata_bytes =>
                        {
                            errors::OFFSET_METADATA_TOO_LARGE
                        }
                        Ok(()) => {
                            accepted.push((t.name.clone(), p.partition_index));
                            records.push(Record::Offset {
                                group: req.group_id.clone(),
                                topic: t.name.clone(),
                                partition: p.partition_index,
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata.clone().unwrap_or_default(),
                                commit_timestamp_ms: i64::try_from(cx.now).unwrap_or(i64::MAX),
                            });
                            errors::NONE
                        }
                    };
                    CommitPartitionResponse {
                        partition_index: p.partition_index,
                        error_code,
                    }
                })
                .collect(),
        })
        .collect();
    let response = OffsetCommitResponse { topics };
    if records.is_empty() {
        cx.out.respond(req.reply, Response::OffsetCommit(response));
        return;
    }
    let group = groups
        .entry(req.group_id.clone())
        .or_insert_with(|| Group::new(&req.group_id, cx.now));
    for p in accepted {
        *group.pending_commits.entry(p).or_insert(0) += 1;
    }
    let kind = PendingKind::Commit {
        group: req.group_id,
        reply: req.reply,
        response,
    };
    cx.out.persist(records, kind);
}

impl Group {
    /// Kafka's `validateOffsetCommit` and the state rules after it. A valid
    /// commit from a member counts as a heartbeat.
    fn validate_offset_commit(
        &mut self,
        cx: &mut Ctx,
        req: &OffsetCommitRequest,
    ) -> Result<(), i16> {
        if self.is(GroupState::Dead) {
            return Err(errors::COORDINATOR_NOT_AVAILABLE);
        }
        if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
            if let Some(error) =
                self.validate_current_member(&req.member_id, req.group_instance_id.as_deref())
            {
                return Err(error);
            }
            if req.generation_id != self.generation {
                return Err(errors::ILLEGAL_GENERATION);
            }
        } else if !self.is(GroupState::Empty) {
            // Only members commit for a group with members.
            return Err(errors::UNKNOWN_MEMBER_ID);
        }
        match self.state {
            // Members learn of a rebalance from their heartbeats, and the Java
            // consumer commits before it rejoins: Kafka accepts these.
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(member) = self.members.get_mut(&req.member_id) {
                    member.reset_session(cx.now);
                }
                Ok(())
            }
            GroupState::Empty => Ok(()),
            GroupState::CompletingRebalance => Err(errors::REBALANCE_IN_PROGRESS),
            GroupState::Dead => Err(errors::COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// Counts a write of `records` as no longer in flight.
    pub(super) fn commit_settled(&mut self, records: &[Record]) {
        for r in records {
            if let Record::Offset {
                topic, partition, ..
            } = r
            {
                let key = (topic.clone(), *partition);
                if let Some(n) = self.pending_commits.get_mut(&key) {
                    *n -= 1;
                    if *n == 0 {
                        self.pending_commits.remove(&key);
                    }
                }
            }
        }
    }

    /// Tombstones for `partitions` that have an offset or a commit in flight
    /// (which lands before the tombstone, as the log orders them).
    pub(super) fn offset_tombstones<'a>(
        &self,
        partitions: impl IntoIterator<Item = &'a Partition>,
    ) -> Vec<Record> {
        let unique: BTreeSet<&Partition> = partitions.into_iter().collect();
        unique
            .into_iter()
            .filter(|p| self.offsets.contains_key(*p) || self.pending_commits.contains_key(*p))
            .map(|(topic, partition)| Record::OffsetTombstone {
                group: self.id.clone(),
                topic: topic.clone(),
                partition: *partition,
            })
            .collect()
    }
}

/// Handles an OffsetFetch: committed offsets whatever the group's state, and
/// -1 for partitions (and groups) without one.
pub(super) fn fetch(groups: &BTreeMap<String, Group>, cx: &mut Ctx, req: OffsetFetchRequest) {
    let answer = req
        .groups
        .iter()
        .map(|fg| {
            let group = groups.get(&fg.group_id).filter(|g| !g.is(GroupState::Dead));
            let lookup = |topic: &str, partition: i32| {
                let key = (topic.to_string(), partition);
                let unstable = req.require_stable
                    && group.is_some_and(|g| g.pending_commits.contains_key(&key));
                match group.and_then(|g| g.offsets.get(&key)) {
                    Some(c) if !unstable => FetchPartitionResponse {
                        partition_index: partition,
                        committed_offset: c.offset,
                        committed_leader_epoch: c.leader_epoch,
                        metadata: c.metadata.clone(),
                        error_code: errors::NONE,
                    },
                    _ => FetchPartitionResponse {
                        partition_index: partition,
                        committed_offset: -1,
                        committed_leader_epoch: -1,
                        metadata: String::new(),
                        error_code: if unstable {
                            errors::UNSTABLE_OFFSET_COMMIT
                        } else {
                            errors::NONE
                        },
                    },
                }
            };
            let topics = match &fg.topics {
                Some(topics) => topics
                    .iter()
                    .map(|t| FetchTopicResponse {
                        name: t.name.clone(),
                        partitions: t
                            .partition_indexes
                            .iter()
                            .map(|&p| lookup(&t.name, p))
                            .collect(),
                    })
                    .collect(),
                None => {
                    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                    for (topic, partition) in group.iter().flat_map(|g| g.offsets.keys()) {
                        by_topic.entry(topic).or_default().push(*partition);
                    }
                    by_topic
                        .into_iter()
                        .map(|(topic, partitions)| FetchTopicResponse {
                            name: topic.to_string(),
                            partitions: partitions.into_iter().map(|p| lookup(topic, p)).collect(),
                        })
                        .collect()
                }
            };
            FetchGroupResponse {
                group_id: fg.group_id.clone(),
                topics,
                error_code: errors::NONE,
            }
        })
        .collect();
    cx.out.respond(
        req.reply,
        Response::OffsetFetch(OffsetFetchResponse { groups: answer }),
    );
}

/// Handles an OffsetDelete: an empty group's offsets go; a consumer group
/// with members keeps those of topics it subscribes to (every topic, while
/// its subscriptions are unknown).
pub(super) fn delete_offsets(
    groups: &mut BTreeMap<String, Group>,
    cx: &mut Ctx,
    req: OffsetDeleteRequest,
) {
    let group_error = |error_code| OffsetDeleteResponse {
        error_code,
        topics: Vec::new(),
    };
    if req.group_id.is_empty() {
        let r = group_error(errors::INVALID_GROUP_ID);
        cx.out.respond(req.reply, Response::OffsetDelete(r));
        return;
    }
    let Some(group) = groups
        .get_mut(&req.group_id)
        .filter(|g| !g.is(GroupState::Dead))
    else {
        let r = group_error(errors::GROUP_ID_NOT_FOUND);
        cx.out.respond(req.reply, Response::OffsetDelete(r));
        return;
    };
    let consumer_group = group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
    let keeps_subscribed = match group.state {
        GroupState::Empty => false,
        GroupState::PreparingRebalance | GroupState::CompletingRebalance | GroupState::Stable
            if consumer_group =>
        {
            true
        }
        _ => {
            let r = group_error(errors::NON_EMPTY_GROUP);
            cx.out.respond(req.reply, Response::OffsetDelete(r));
            return;
        }
    };
    let mut eligible: Vec<Partition> = Vec::new();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let subscribed = keeps_subscribed && group.is_subscribed_to(&t.name);
            OffsetDeleteTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|&p| {
                        let error_code = if subscribed {
                            errors::GROUP_SUBSCRIBED_TO_TOPIC
                        } else {
                            eligible.push((t.name.clone(), p));
                            errors::NONE
                        };
                        OffsetDeletePartitionResponse {
                            partition_index: p,
                            error_code,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let response = OffsetDeleteResponse {
        error_code: errors::NONE,
        topics,
    };
    let records = group.offset_tombstones(&eligible);
    if records.is_empty() {
        cx.out.respond(req.reply, Response::OffsetDelete(response));
        return;
    }
    let kind = PendingKind::OffsetDelete {
        reply: req.reply,
        response,
    };
    cx.out.persist(records, kind);
}
