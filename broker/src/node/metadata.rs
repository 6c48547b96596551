//! Metadata and DescribeCluster: who the brokers are and who leads what, and
//! topic auto-creation.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::Node;
use crate::protocol::RequestHeader;
use crate::store::TopicPartition;
use proto_core::multiraft::GroupId;
use proto_core::raft::Role;

/// Metadata v1+ distinguishes "no topics" (empty list) from "all" (null); v0
/// used an empty list for all.
const FIRST_VERSION_WITH_NULL_TOPICS: i16 = 1;
/// Metadata v4 added `allow_auto_topic_creation`; earlier versions always allow.
const FIRST_VERSION_WITH_AUTO_CREATE_FLAG: i16 = 4;

/// What Metadata and DescribeCluster report as a client's authorized
/// operations when asked: bits by Kafka's ACL operation codes (READ 3,
/// WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12). Chronik has
/// no authorizer, and Kafka without one reports every operation the
/// resource type has: these eight for a topic.
const TOPIC_AUTHORIZED_OPERATIONS: i32 =
    1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;

/// The cluster's operations, as [`TOPIC_AUTHORIZED_OPERATIONS`] for topics:
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS
/// and IDEMPOTENT_WRITE.
const CLUSTER_AUTHORIZED_OPERATIONS: i32 =
    1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;

/// "Not provided": what Kafka answers when the request did not ask.
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

impl Node {
    pub(super) fn metadata(
        &mut self,
        header: &RequestHeader,
        req: MetadataRequest,
    ) -> MetadataResponse {
        let version = header.api_version;
        let include_topic_operations = req.include_topic_authorized_operations;
        let include_cluster_operations = req.include_cluster_authorized_operations;
        let allow_create = self.cfg.auto_create_topics
            && (version < FIRST_VERSION_WITH_AUTO_CREATE_FLAG || req.allow_auto_topic_creation);
        let wanted: Option<Vec<(Option<String>, Uuid)>> = match req.topics {
            None => None,
            Some(t) if t.is_empty() && version < FIRST_VERSION_WITH_NULL_TOPICS => None,
            Some(t) => Some(
                t.into_iter()
                    .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                    .collect(),
            ),
        };
        let topics: Vec<MetadataResponseTopic> = match wanted {
            None => {
                let names: Vec<String> = self.table.topics.keys().cloned().collect();
                names.iter().map(|n| self.topic_metadata(n)).collect()
            }
            Some(list) => list
                .into_iter()
                .map(|(name, id)| {
                    let name = name.or_else(|| self.table.name_of(id.as_u128()));
                    match name {
                        None => MetadataResponseTopic::default()
                            .with_topic_id(id)
                            .with_error_code(ResponseError::UnknownTopicId.code()),
                        Some(n) => {
                            // Kafka answers INVALID_TOPIC_EXCEPTION for a name
                            // no topic could have, so producers fail fast.
                            if !self.table.topics.contains_key(&n) {
                                if let Some(why) = proto_core::metadata::invalid_topic_name(&n) {
                                    tracing::debug!(topic = %n, %why, "Metadata for an invalid topic name");
                                    return MetadataResponseTopic::default()
                                        .with_name(Some(TopicName(StrBytes::from_string(n))))
                                        .with_error_code(ResponseError::InvalidTopicException.code());
                                }
                            }
                            if allow_create
                                && !self.table.topics.contains_key(&n)
                                && self.cluster.is_some()
                                && self.metadata_caught_up()
                            {
                                self.cluster_auto_create(&n);
                                return MetadataResponseTopic::default()
                                    .with_name(Some(TopicName(StrBytes::from_string(n))))
                                    .with_error_code(ResponseError::LeaderNotAvailable.code());
                            }
                            // A cluster node creates only through the
                            // controller (above); until its metadata log
                            // has caught up the topic is LEADER_NOT_AVAILABLE.
                            if allow_create
                                && !self.table.topics.contains_key(&n)
                                && self.cluster.is_none()
                            {
                                let partitions = self.cfg.default_partitions;
                                let config = self.cfg.topic_defaults.clone();
                                if let Err((e, msg)) = self.create_topic(&n, partitions, config) {
                                    tracing::warn!(topic = %n, error = %msg, "auto-create failed");
                                    return MetadataResponseTopic::default()
                                        .with_name(Some(TopicName(StrBytes::from_string(n))))
                                        .with_error_code(e.code());
                                }
                            }
                            self.topic_metadata(&n)
                        }
                    }
                })
                .collect(),
        };
        let leaders: BTreeSet<i32> = topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.leader_id.0))
            .chain([self.controller_id()])
            .collect();
        let brokers = self
            .brokers(&leaders)
            .into_iter()
            .map(|b| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(b.host))
                    .with_port(b.port)
                    .with_rack(b.rack.map(StrBytes::from_string))
            })
            .collect();
        let topics = if include_topic_operations {
            topics
                .into_iter()
                .map(|t| t.with_topic_authorized_operations(TOPIC_AUTHORIZED_OPERATIONS))
                .collect()
        } else {
            topics
        };
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(StrBytes::from_string(self.cfg.cluster_id.clone())))
            .with_controller_id(BrokerId(self.controller_id()))
            .with_topics(topics)
            .with_cluster_authorized_operations(if include_cluster_operations {
                CLUSTER_AUTHORIZED_OPERATIONS
            } else {
                OPERATIONS_NOT_ASKED
            })
    }

    /// Every broker clients may be sent to: this one alone, or the cluster's
    /// live brokers (this one always included). Like KRaft's alive brokers,
    /// a fenced broker (down, or not caught up with the metadata log) is left
    /// out, so clients do not pick it to bootstrap or refresh from, unless
    /// it is in `leaders`: a partition leader or the controller named in the
    /// same answer must be resolvable.
    fn brokers(&self, leaders: &BTreeSet<i32>) -> Vec<BrokerView> {
        let me = BrokerView {
            id: self.cfg.node_id,
            host: self.cfg.advertised_host.clone(),
            port: self.cfg.advertised_port,
            rack: self.cfg.rack.clone(),
        };
        let Some(cluster) = &self.cluster else {
            return vec![me];
        };
        let mut out: Vec<BrokerView> = cluster
            .image()
            .brokers()
            .filter(|b| b.id.0 != self.cfg.node_id)
            .filter(|b| !b.fenced || leaders.contains(&b.id.0))
            .map(|b| BrokerView {
                id: b.id.0,
                host: b.kafka_host.clone(),
                port: i32::from(b.kafka_port),
                rack: b.rack.clone(),
            })
            .collect();
        out.push(me);
        out.sort_by_key(|b| b.id);
        out
    }

    /// The error for a partition this node does not host: it exists but
    /// lives on other brokers (NOT_LEADER_OR_FOLLOWER, so the client asks
    /// Metadata again), or it does not exist.
    pub(super) fn not_hosted_error(&self, tp: &TopicPartition) -> ResponseError {
        if self.partition_exists(tp) {
            ResponseError::NotLeaderOrFollower
        } else {
            ResponseError::UnknownTopicOrPartition
        }
    }

    /// Whether `tp` exists anywhere in the cluster (the topic table mirrors
    /// the metadata image), whether or not this node hosts a replica.
    pub(super) fn partition_exists(&self, tp: &TopicPartition) -> bool {
        self.table
            .topics
            .get(&tp.topic)
            .is_some_and(|t| (0..t.partitions).contains(&tp.partition))
    }

    /// The controller's id as Metadata reports it (-1: none known).
    fn controller_id(&self) -> i32 {
        match &self.cluster {
            None => self.cfg.node_id,
            Some(c) => c.controller_id().map_or(-1, |n| n.0 as i32),
        }
    }

    /// Who leads `tp` (Raft group `group`) and who replicates it, as this
    /// node knows: its own Raft group if it hosts one, else the image.
    pub(super) fn partition_view(&self, tp: &TopicPartition, group: GroupId) -> PartitionView {
        let me = self.cfg.node_id;
        let Some(cluster) = &self.cluster else {
            let epoch = self.partitions.get(&group).and_then(|p| p.leader_epoch);
            return PartitionView {
                leader: epoch.map(|e| (me, e)),
                replicas: vec![me],
                isr: vec![me],
            };
        };
        let image = self.table.topics.get(&tp.topic).and_then(|t| {
            cluster
                .image()
                .partition(proto_core::metadata::TopicId(t.id), tp.partition)
        });
        let ids = |v: &[proto_core::metadata::BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        let replicas = image.map(|p| ids(&p.replicas)).unwrap_or_default();
        let image_isr = image.map(|p| ids(&p.isr)).unwrap_or_default();
        let Some(raft) = self.raft.group(group) else {
            return PartitionView {
                leader: image.and_then(|p| p.leader.map(|l| (l.0, p.leader_epoch.0))),
                replicas,
                isr: image_isr,
            };
        };
        let epoch = raft.term().0.min(i32::MAX as u64) as i32;
        let leader = raft.leader().map(|l| (l.0 as i32, epoch));
        let isr = match self.led_isr(group) {
            Some(isr) if raft.role() == Role::Leader => isr.iter().map(|n| n.0 as i32).collect(),
            _ => image_isr,
        };
        PartitionView {
            leader,
            replicas,
            isr,
        }
    }

    fn topic_metadata(&self, name: &str) -> MetadataResponseTopic {
        let topic_name = Some(TopicName(StrBytes::from_string(name.to_string())));
        let Some(topic) = self.table.topics.get(name) else {
            // A node that has not caught up with the metadata log (just
            // restarted) cannot know the topic does not exist: a retriable
            // error, not one that makes librdkafka drop the topic's records.
            let error = if self.metadata_caught_up() {
                ResponseError::UnknownTopicOrPartition
            } else {
                ResponseError::LeaderNotAvailable
            };
            return MetadataResponseTopic::default()
                .with_name(topic_name)
                .with_error_code(error.code());
        };
        let partitions = (0..topic.partitions)
            .map(|p| {
                let tp = TopicPartition {
                    topic: name.to_string(),
                    partition: p,
                };
                let group = GroupId(topic.groups.get(p as usize).copied().unwrap_or(u64::MAX));
                let view = self.partition_view(&tp, group);
                let base = MetadataResponsePartition::default()
                    .with_partition_index(p)
                    .with_replica_nodes(view.replicas.into_iter().map(BrokerId).collect())
                    .with_isr_nodes(view.isr.into_iter().map(BrokerId).collect());
                match view.leader {
                    Some((leader, epoch)) => base
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(epoch),
                    None => base
                        .with_leader_id(BrokerId(-1))
                        .with_error_code(ResponseError::LeaderNotAvailable.code()),
                }
            })
            .collect();
        MetadataResponseTopic::default()
            .with_name(topic_name)
            .with_topic_id(Uuid::from_u128(topic.id))
            .with_is_internal(name == super::groups::OFFSETS_TOPIC)
            .with_partitions(partitions)
    }

    /// DescribeCluster; `include_operations` asks for the cluster's
    /// authorized operations.
    pub(super) fn describe_cluster(&self, include_operations: bool) -> DescribeClusterResponse {
        let brokers = self
            .brokers(&BTreeSet::from([self.controller_id()]))
            .into_iter()
            .map(|b| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(b.host))
                    .with_port(b.port)
                    .with_rack(b.rack.map(StrBytes::from_string))
            })
            .collect();
        DescribeClusterResponse::default()
            .with_cluster_id(StrBytes::from_string(self.cfg.cluster_id.clone()))
            .with_controller_id(BrokerId(self.controller_id()))
            .with_brokers(brokers)
            .with_cluster_authorized_operations(if include_operations {
                CLUSTER_AUTHORIZED_OPERATIONS
            } else {
                OPERATIONS_NOT_ASKED
            })
    }
}

/// A broker as Metadata and DescribeCluster list it.
struct BrokerView {
    id: i32,
    host: String,
    port: i32,
    rack: Option<String>,
}

/// A partition's leadership as this node knows it.
pub(super) struct PartitionView {
    /// The leader and its epoch.
    pub(super) leader: Option<(i32, i32)>,
    /// The replica set.
    pub(super) replicas: Vec<i32>,
    /// The in-sync replicas.
    pub(super) isr: Vec<i32>,
}
