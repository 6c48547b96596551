//! Clears response fields the request's version cannot carry.
//!
//! `kafka-protocol` refuses to encode a field that is set (not at its default)
//! at a version without it. Handlers fill in everything they know, and this
//! module, one place with one rule per field (from Kafka's message schemas),
//! resets what an older client's version has no room for.
//!
//! Where an API changed shape, handlers fill only the newest layout (never
//! the older top-level fields) and the rules here lower it the way Kafka's
//! own response classes do: FindCoordinator v0–3 and OffsetFetch v1–7 answer
//! one key or group at the top level instead of a batch, LeaveGroup v0–2
//! reports a member's error as the request's, and OffsetFetch v1 reports a
//! group's error on every partition.

use kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::ResponseKind;

/// Resets the fields of `body` that version `v` does not have.
pub fn fit_to_version(body: &mut ResponseKind, v: i16) {
    match body {
        ResponseKind::Produce(r) => {
            if v < 10 {
                r.node_endpoints.clear();
            }
            for t in &mut r.responses {
                for p in &mut t.partition_responses {
                    if v < 5 {
                        p.log_start_offset = -1;
                    }
                    if v < 8 {
                        p.record_errors.clear();
                        p.error_message = None;
                    }
                    if v < 10 {
                        p.current_leader = Default::default();
                    }
                }
            }
        }
        ResponseKind::Fetch(r) => {
            if v < 7 {
                r.error_code = 0;
                r.session_id = 0;
            }
            if v < 16 {
                r.node_endpoints.clear();
            }
            for t in &mut r.responses {
                if v < 13 {
                    t.topic_id = Default::default();
                } else {
                    t.topic = Default::default();
                }
                for p in &mut t.partitions {
                    if v < 5 {
                        p.log_start_offset = -1;
                    }
                    if v < 11 {
                        p.preferred_read_replica = (-1).into();
                    }
                    if v < 12 {
                        p.diverging_epoch = Default::default();
                        p.current_leader = Default::default();
                        p.snapshot_id = Default::default();
                    }
                }
            }
        }
        ResponseKind::ListOffsets(r) => {
            for t in &mut r.topics {
                for p in &mut t.partitions {
                    if v < 4 {
                        p.leader_epoch = -1;
                    }
                }
            }
        }
        ResponseKind::Metadata(r) => {
            if v < 1 {
                r.controller_id = (-1).into();
                for b in &mut r.brokers {
                    b.rack = None;
                }
            }
            if v < 2 {
                r.cluster_id = None;
            }
            if !(8..=10).contains(&v) {
                r.cluster_authorized_operations = i32::MIN;
            }
            for t in &mut r.topics {
                if v < 1 {
                    t.is_internal = false;
                }
                if v < 8 {
                    t.topic_authorized_operations = i32::MIN;
                }
                if v < 10 {
                    t.topic_id = Default::default();
                }
                for p in &mut t.partitions {
                    if v < 5 {
                        p.offline_replicas.clear();
                    }
                    if v < 7 {
                        p.leader_epoch = -1;
                    }
                }
            }
        }
        ResponseKind::CreateTopics(r) => {
            for t in &mut r.topics {
                if v < 1 {
                    t.error_message = None;
                }
                if v < 5 {
                    t.num_partitions = -1;
                    t.replication_factor = -1;
                    t.configs = None;
                    t.topic_config_error_code = 0;
                }
                if v < 7 {
                    t.topic_id = Default::default();
                }
            }
        }
        ResponseKind::DeleteTopics(r) => {
            for t in &mut r.responses {
                if v < 5 {
                    t.error_message = None;
                }
                if v < 6 {
                    t.topic_id = Default::default();
                }
            }
        }
        ResponseKind::DescribeConfigs(r) => {
            for res in &mut r.results {
                for c in &mut res.configs {
                    if v < 1 {
                        c.synonyms.clear();
                    }
                    if v < 3 {
                        c.config_type = 0;
                        c.documentation = None;
                    }
                }
            }
        }
        ResponseKind::FindCoordinator(r) if v < 4 => single_coordinator(r),
        ResponseKind::JoinGroup(r) => {
            if v < 7 && r.protocol_name.is_none() {
                // Non-nullable before v7: Java clients refuse a null here.
                r.protocol_name = Some(Default::default());
            }
            if v < 9 {
                r.skip_assignment = false;
            }
        }
        ResponseKind::LeaveGroup(r) if v < 3 => {
            if r.error_code == 0 {
                r.error_code = r
                    .members
                    .iter()
                    .map(|m| m.error_code)
                    .find(|&code| code != 0)
                    .unwrap_or(0);
            }
            r.members.clear();
        }
        ResponseKind::DescribeGroups(r) => {
            for g in &mut r.groups {
                if v < 3 {
                    g.authorized_operations = i32::MIN;
                }
                if v < 6 {
                    g.error_message = None;
                }
            }
        }
        ResponseKind::OffsetFetch(r) if v < 8 => single_group(r, v),
        ResponseKind::InitProducerId(r) if v < 6 => {
            r.ongoing_txn_producer_id = (-1).into();
            r.ongoing_txn_producer_epoch = -1;
        }
        _ => {}
    }
}

/// FindCoordinator before v4 answers a single key at the top level: the first
/// (and, as the request had one key, only) entry of `coordinators` moves
/// there.
fn single_coordinator(r: &mut FindCoordinatorResponse) {
    if let Some(c) = std::mem::take(&mut r.coordinators).into_iter().next() {
        r.error_code = c.error_code;
        r.error_message = c.error_message;
        r.node_id = c.node_id;
        r.host = c.host;
        r.port = c.port;
    }
}

/// OffsetFetch before v8 answers a single group at the top level: the first
/// (and, as the request named one group, only) entry of `groups` moves
/// there. Before v2 there is no group-level error code, so a group's error
/// goes on each partition that has none of its own.
fn single_group(r: &mut OffsetFetchResponse, v: i16) {
    if let Some(group) = std::mem::take(&mut r.groups).into_iter().next() {
        r.error_code = group.error_code;
        r.topics = group
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_committed_offset(p.committed_offset)
                            .with_committed_leader_epoch(p.committed_leader_epoch)
                            .with_metadata(p.metadata)
                            .with_error_code(p.error_code)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
    }
    if v < 2 && r.error_code != 0 {
        for p in r.topics.iter_mut().flat_map(|t| &mut t.partitions) {
            if p.error_code == 0 {
                p.error_code = r.error_code;
            }
        }
    }
}

#[cfg(test)]
mod tests;
