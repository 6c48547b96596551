//! [`MetadataImage`]: the cluster metadata the log's records build, and the
//! queries a broker answers Metadata, DescribeCluster and DescribeConfigs from.
//!
//! Every node applies the committed records in log order to its own image;
//! the controller keeps two (committed, and committed plus what it proposed).
//! Applying is deterministic and total: a record that does not fit the image
//! (a partition of an unknown topic, a fence of a replaced registration) is an
//! [`ApplyError`] that changes nothing but the offset. The caller logs it and
//! goes on, so a bad record can never wedge a node, and every node skips the
//! same records.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{
    is_topic_config, resolve, validate_topic_config, ConfigEntry, TopicConfigDefaults,
};
use super::names::is_internal;
use super::placement::BrokerInfo;
use super::record::{ConfigResource, MetadataRecord};
use super::types::{
    id_list, BrokerEpoch, BrokerId, IncarnationId, LeaderEpoch, MetadataOffset, TopicId,
};
use crate::multiraft::GroupId;

/// The first Raft group id partitions get; group 0 is the metadata group's.
pub const FIRST_PARTITION_GROUP: GroupId = GroupId(1);

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    /// Its id.
    pub id: BrokerId,
    /// The process run that registered.
    pub incarnation_id: IncarnationId,
    /// The offset of the `RegisterBroker` record.
    pub epoch: BrokerEpoch,
    /// The host Kafka clients connect to.
    pub kafka_host: String,
    /// The port Kafka clients connect to.
    pub kafka_port: u16,
    /// Where peers reach its Raft transport.
    pub raft_addr: String,
    /// Its rack.
    pub rack: Option<String>,
    /// Fenced: registered but not (or no longer) heartbeating; it gets no new
    /// replicas.
    pub fenced: bool,
}

/// One partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionImage {
    /// Its number.
    pub partition: i32,
    /// Its replica set (the voters of its Raft group), in preference order.
    pub replicas: Vec<BrokerId>,
    /// Its Raft group.
    pub raft_group: GroupId,
    /// The leader its Raft group elected, once the leader reported itself.
    pub leader: Option<BrokerId>,
    /// The leader epoch (Raft term) of that report; 0 before any.
    pub leader_epoch: LeaderEpoch,
    /// The in-sync replicas the leader reported; all replicas at creation.
    pub isr: Vec<BrokerId>,
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    /// Its id.
    pub id: TopicId,
    /// Its name.
    pub name: String,
    /// Its partitions, by number.
    pub partitions: Vec<PartitionImage>,
}

impl TopicImage {
    /// The replication factor: the replica count of its first partition (all
    /// partitions of a topic have the same).
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }

    /// Whether it is internal (`__consumer_offsets`).
    pub fn is_internal(&self) -> bool {
        is_internal(&self.name)
    }
}

/// Why a record was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// A broker id below 0.
    #[error("broker id {0} is negative")]
    InvalidBrokerId(BrokerId),
    /// The broker is not registered.
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    /// The record is about a registration that was replaced.
    #[error("broker {broker} is registered at epoch {current}, not {record}")]
    StaleBrokerEpoch {
        /// The broker.
        broker: BrokerId,
        /// The record's epoch.
        record: BrokerEpoch,
        /// The registration's.
        current: BrokerEpoch,
    },
    /// A topic of that name exists.
    #[error("topic `{0}` exists")]
    TopicNameTaken(String),
    /// A topic with that id exists, or the id is the reserved zero.
    #[error("topic id {0} is taken or reserved")]
    TopicIdTaken(TopicId),
    /// No topic has the id.
    #[error("no topic has id {0}")]
    UnknownTopicId(TopicId),
    /// No topic has the name.
    #[error("no topic `{0}`")]
    UnknownTopic(String),
    /// A partition record that is not the topic's next partition.
    #[error("partition {partition} of topic {topic}: the next partition is {expected}")]
    PartitionOutOfOrder {
        /// The topic.
        topic: TopicId,
        /// The record's partition.
        partition: i32,
        /// The topic's partition count.
        expected: i32,
    },
    /// The topic has no such partition.
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: TopicId,
        /// The partition.
        partition: i32,
    },
    /// Replicas or ISR empty where they may not be, repeated, or not a subset.
    #[error("{0}")]
    InvalidReplicas(String),
    /// A Raft group id at or below one already handed out.
    #[error("raft group {record} is below the next unused group {next}")]
    RaftGroupReused {
        /// The record's group.
        record: GroupId,
        /// The first group not handed out.
        next: GroupId,
    },
    /// A leader epoch lower than the recorded one, or a new leader in the same epoch.
    #[error("leader epoch {record} with leader {leader:?} against epoch {current} with leader {current_leader:?}")]
    FencedLeaderEpoch {
        /// The record's epoch.
        record: LeaderEpoch,
        /// The record's leader.
        leader: Option<BrokerId>,
        /// The recorded epoch.
        current: LeaderEpoch,
        /// The recorded leader.
        current_leader: Option<BrokerId>,
    },
    /// A producer id block that does not move forward.
    #[error("next producer id {record} is not above {current}")]
    ProducerIdsBackwards {
        /// The record's.
        record: i64,
        /// The image's.
        current: i64,
    },
    /// A topic config Chronik does not accept.
    #[error("{0}")]
    InvalidConfig(String),
}

/// The cluster metadata as of some offset of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataImage {
    next_offset: MetadataOffset,
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    topics: BTreeMap<TopicId, TopicImage>,
    names: BTreeMap<String, TopicId>,
    configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    next_producer_id: i64,
    next_raft_group: GroupId,
}

impl Default for MetadataImage {
    fn default() -> MetadataImage {
        MetadataImage {
            next_offset: MetadataOffset(0),
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            names: BTreeMap::new(),
            configs: BTreeMap::new(),
            next_producer_id: 0,
            next_raft_group: FIRST_PARTITION_GROUP,
        }
    }
}

/// Replicas (or an ISR) must be distinct; `what` names them in the error.
fn distinct(ids: &[BrokerId], what: &str) -> Result<(), ApplyError> {
    let set: BTreeSet<_> = ids.iter().collect();
    if set.len() != ids.len() {
        return Err(ApplyError::InvalidReplicas(format!(
            "{what} {} repeat a broker",
            id_list(ids)
        )));
    }
    Ok(())
}

impl MetadataImage {
    /// An empty image: the state before the first record.
    pub fn new() -> MetadataImage {
        MetadataImage::default()
    }

    /// Applies the record at offset [`next_offset`](Self::next_offset), which
    /// then moves on by one whether or not the record fits: the log holds it
    /// either way. An error leaves everything else unchanged.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ApplyError> {
        let offset = self.next_offset;
        self.next_offset = MetadataOffset(offset.0 + 1);
        match record {
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                kafka_host,
                kafka_port,
                raft_addr,
                rack,
            } => {
                if broker_id.0 < 0 {
                    return Err(ApplyError::InvalidBrokerId(*broker_id));
                }
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        id: *broker_id,
                        incarnation_id: *incarnation_id,
                        epoch: BrokerEpoch(offset.0),
                        kafka_host: kafka_host.clone(),
                        kafka_port: *kafka_port,
                        raft_addr: raft_addr.clone(),
                        rack: rack.clone(),
                        fenced: true,
                    },
                );
                Ok(())
            }
            MetadataRecord::UnregisterBroker { broker_id, epoch } => {
                self.registration(*broker_id, *epoch)?;
                self.brokers.remove(broker_id);
                Ok(())
            }
            MetadataRecord::FenceBroker { broker_id, epoch } => {
                self.registration(*broker_id, *epoch)?.fenced = true;
                Ok(())
            }
            MetadataRecord::UnfenceBroker { broker_id, epoch } => {
                self.registration(*broker_id, *epoch)?.fenced = false;
                Ok(())
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.names.contains_key(name) {
                    return Err(ApplyError::TopicNameTaken(name.clone()));
                }
                if topic_id.0 == 0 || self.topics.contains_key(topic_id) {
                    return Err(ApplyError::TopicIdTaken(*topic_id));
                }
                self.names.insert(name.clone(), *topic_id);
                self.topics.insert(
                    *topic_id,
                    TopicImage {
                        id: *topic_id,
                        name: name.clone(),
                        partitions: Vec::new(),
                    },
                );
                Ok(())
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                raft_group,
            } => self.apply_partition(*topic_id, *partition, replicas, *raft_group),
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                replicas,
                leader,
                leader_epoch,
                isr,
            } => self.apply_partition_change(
                *topic_id,
                *partition,
                replicas.as_deref(),
                *leader,
                *leader_epoch,
                isr.as_deref(),
            ),
            MetadataRecord::RemoveTopic { topic_id } => {
                let Some(topic) = self.topics.remove(topic_id) else {
                    return Err(ApplyError::UnknownTopicId(*topic_id));
                };
                self.names.remove(&topic.name);
                self.configs.remove(&ConfigResource::Topic(topic.name));
                Ok(())
            }
            MetadataRecord::Config {
                resource,
                key,
                value,
            } => self.apply_config(resource, key, value.as_deref()),
            MetadataRecord::ProducerIdsBlock {
                next_producer_id, ..
            } => {
                if *next_producer_id <= self.next_producer_id {
                    return Err(ApplyError::ProducerIdsBackwards {
                        record: *next_producer_id,
                        current: self.next_producer_id,
                    });
                }
                self.next_producer_id = *next_producer_id;
                Ok(())
            }
        }
    }

    /// The registration a fence, unfence or unregister record is about.
    fn registration(
        &mut self,
        id: BrokerId,
        epoch: BrokerEpoch,
    ) -> Result<&mut BrokerRegistration, ApplyError> {
        let Some(b) = self.brokers.get_mut(&id) else {
            return Err(ApplyError::UnknownBroker(id));
        };
        if b.epoch != epoch {
            return Err(ApplyError::StaleBrokerEpoch {
                broker: id,
                record: epoch,
                current: b.epoch,
            });
        }
        Ok(b)
    }

    fn apply_partition(
        &mut self,
        topic_id: TopicId,
        partition: i32,
        replicas: &[BrokerId],
        raft_group: GroupId,
    ) -> Result<(), ApplyError> {
        let next_group = self.next_raft_group;
        let Some(topic) = self.topics.get_mut(&topic_id) else {
            return Err(ApplyError::UnknownTopicId(topic_id));
        };
        let expected = topic.partitions.len() as i32;
        if partition != expected {
            return Err(ApplyError::PartitionOutOfOrder {
                topic: topic_id,
                partition,
                expected,
            });
        }
        if replicas.is_empty() {
            return Err(ApplyError::InvalidReplicas(format!(
                "partition {partition} of topic {topic_id} has no replicas"
            )));
        }
        distinct(replicas, "replicas")?;
        if raft_group < next_group {
            return Err(ApplyError::RaftGroupReused {
                record: raft_group,
                next: next_group,
            });
        }
        topic.partitions.push(PartitionImage {
            partition,
            replicas: replicas.to_vec(),
            raft_group,
            leader: None,
            leader_epoch: LeaderEpoch(0),
            isr: replicas.to_vec(),
        });
        self.next_raft_group = GroupId(raft_group.0 + 1);
        Ok(())
    }

    fn apply_partition_change(
        &mut self,
        topic_id: TopicId,
        partition: i32,
        replicas: Option<&[BrokerId]>,
        leader: Option<BrokerId>,
        leader_epoch: LeaderEpoch,
        isr: Option<&[BrokerId]>,
    ) -> Result<(), ApplyError> {
        let Some(p) = self.topics.get_mut(&topic_id).and_then(|t| {
            usize::try_from(partition)
                .ok()
                .and_then(|i| t.partitions.get_mut(i))
        }) else {
            return Err(ApplyError::UnknownPartition {
                topic: topic_id,
                partition,
            });
        };
        if leader_epoch < p.leader_epoch || (leader_epoch == p.leader_epoch && leader != p.leader) {
            return Err(ApplyError::FencedLeaderEpoch {
                record: leader_epoch,
                leader,
                current: p.leader_epoch,
                current_leader: p.leader,
            });
        }
        let replicas = replicas.unwrap_or(&p.replicas);
        if replicas.is_empty() {
            return Err(ApplyError::InvalidReplicas(
                "a partition needs at least one replica".to_string(),
            ));
        }
        distinct(replicas, "replicas")?;
        let isr = isr.unwrap_or(&p.isr);
        distinct(isr, "the ISR")?;
        if let Some(b) = isr.iter().find(|b| !replicas.contains(b)) {
            return Err(ApplyError::InvalidReplicas(format!(
                "ISR member {b} is not a replica"
            )));
        }
        if let Some(l) = leader {
            if !isr.contains(&l) {
                return Err(ApplyError::InvalidReplicas(format!(
                    "leader {l} is not in the ISR {}",
                    id_list(isr)
                )));
            }
        }
        let (replicas, isr) = (replicas.to_vec(), isr.to_vec());
        p.replicas = replicas;
        p.isr = isr;
        p.leader = leader;
        p.leader_epoch = leader_epoch;
        Ok(())
    }

    fn apply_config(
        &mut self,
        resource: &ConfigResource,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), ApplyError> {
        if let ConfigResource::Topic(name) = resource {
            if !self.names.contains_key(name) {
                return Err(ApplyError::UnknownTopic(name.clone()));
            }
            match value {
                Some(v) => {
                    validate_topic_config(key, v).map_err(ApplyError::InvalidConfig)?;
                }
                None if !is_topic_config(key) => {
                    return Err(ApplyError::InvalidConfig(format!(
                        "unknown or unsupported topic config `{key}`"
                    )))
                }
                None => {}
            }
        }
        match value {
            Some(v) => {
                self.configs
                    .entry(resource.clone())
                    .or_default()
                    .insert(key.to_string(), v.to_string());
            }
            None => {
                if let Some(c) = self.configs.get_mut(resource) {
                    c.remove(key);
                    if c.is_empty() {
                        self.configs.remove(resource);
                    }
                }
            }
        }
        Ok(())
    }

    /// The offset the next record will have: how many records the image has
    /// applied (or skipped).
    pub fn next_offset(&self) -> MetadataOffset {
        self.next_offset
    }

    /// Every registered broker, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    /// One broker's registration.
    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// The brokers new replicas may go to: registered and unfenced, by id.
    pub fn usable_brokers(&self) -> Vec<BrokerInfo> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| BrokerInfo {
                id: b.id,
                rack: b.rack.clone(),
            })
            .collect()
    }

    /// Whether `id` is registered and unfenced.
    pub fn is_usable(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.names.values().filter_map(|id| self.topics.get(id))
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.names.get(name).and_then(|id| self.topics.get(id))
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: TopicId) -> Option<&TopicImage> {
        self.topics.get(&id)
    }

    /// One partition.
    pub fn partition(&self, topic: TopicId, partition: i32) -> Option<&PartitionImage> {
        let i = usize::try_from(partition).ok()?;
        self.topics.get(&topic)?.partitions.get(i)
    }

    /// The configs a topic overrides, by name (empty if none or no topic).
    pub fn topic_overrides(&self, name: &str) -> BTreeMap<String, String> {
        self.configs
            .get(&ConfigResource::Topic(name.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// A topic's effective configs over `defaults`, by name; `None` if there
    /// is no such topic.
    pub fn topic_configs(
        &self,
        name: &str,
        defaults: &TopicConfigDefaults,
    ) -> Option<Vec<ConfigEntry>> {
        self.names.get(name)?;
        Some(resolve(
            self.configs.get(&ConfigResource::Topic(name.to_string())),
            defaults,
        ))
    }

    /// A broker's dynamic configs, by name.
    pub fn broker_configs(&self, id: BrokerId) -> BTreeMap<String, String> {
        self.configs
            .get(&ConfigResource::Broker(id))
            .cloned()
            .unwrap_or_default()
    }

    /// The first producer id no broker has been given.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// The Raft group the next new partition gets.
    pub fn next_raft_group(&self) -> GroupId {
        self.next_raft_group
    }
}
