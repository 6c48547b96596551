//! Metadata and DescribeCluster: who the brokers are and who leads what, and
//! topic auto-creation.

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

/// Metadata v1+ distinguishes "no topics" (empty list) from "all" (null); v0
/// used an empty list for all.
const FIRST_VERSION_WITH_NULL_TOPICS: i16 = 1;
/// Metadata v4 added `allow_auto_topic_creation`; earlier versions always allow.
const FIRST_VERSION_WITH_AUTO_CREATE_FLAG: i16 = 4;

impl Node {
    pub(super) fn metadata(
        &mut self,
        header: &RequestHeader,
        req: MetadataRequest,
    ) -> MetadataResponse {
        let version = header.api_version;
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
        let topics = match wanted {
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
                            if allow_create && !self.table.topics.contains_key(&n) {
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
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(BrokerId(self.cfg.node_id))
                .with_host(StrBytes::from_string(self.cfg.advertised_host.clone()))
                .with_port(self.cfg.advertised_port)
                .with_rack(self.cfg.rack.clone().map(StrBytes::from_string))])
            .with_cluster_id(Some(StrBytes::from_string(self.cfg.cluster_id.clone())))
            .with_controller_id(BrokerId(self.cfg.node_id))
            .with_topics(topics)
    }

    fn topic_metadata(&self, name: &str) -> MetadataResponseTopic {
        let topic_name = Some(TopicName(StrBytes::from_string(name.to_string())));
        let Some(topic) = self.table.topics.get(name) else {
            return MetadataResponseTopic::default()
                .with_name(topic_name)
                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
        };
        let me = BrokerId(self.cfg.node_id);
        let partitions = (0..topic.partitions)
            .map(|p| {
                let tp = TopicPartition {
                    topic: name.to_string(),
                    partition: p,
                };
                let epoch = self
                    .by_name
                    .get(&tp)
                    .and_then(|g| self.partitions.get(g))
                    .and_then(|p| p.leader_epoch);
                let base = MetadataResponsePartition::default()
                    .with_partition_index(p)
                    .with_replica_nodes(vec![me])
                    .with_isr_nodes(vec![me]);
                match epoch {
                    Some(e) => base.with_leader_id(me).with_leader_epoch(e),
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

    pub(super) fn describe_cluster(&self) -> DescribeClusterResponse {
        DescribeClusterResponse::default()
            .with_cluster_id(StrBytes::from_string(self.cfg.cluster_id.clone()))
            .with_controller_id(BrokerId(self.cfg.node_id))
            .with_brokers(vec![DescribeClusterBroker::default()
                .with_broker_id(BrokerId(self.cfg.node_id))
                .with_host(StrBytes::from_string(self.cfg.advertised_host.clone()))
                .with_port(self.cfg.advertised_port)
                .with_rack(self.cfg.rack.clone().map(StrBytes::from_string))])
    }
}
