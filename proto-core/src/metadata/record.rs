//! What the metadata Raft log holds: [`MetadataRecord`]s, KRaft's metadata
//! records (KIP-631, KIP-746) cut down to what Chronik needs, and their
//! encoding.
//!
//! One Raft entry carries one batch: every record one controller decision
//! produced (a topic with all its partitions and configs), so a decision is
//! committed whole or not at all (KRaft's atomic batches). The entry's bytes
//! are
//!
//! ```text
//! version:u16 (big-endian, METADATA_FORMAT_VERSION)  rkyv archive of Vec<MetadataRecord>
//! ```
//!
//! The version comes first and outside the archive so a future layout can be
//! told apart before any of it is validated. Decoding checks the version, then
//! validates the archive (rkyv's bytecheck) before use: garbage is an error,
//! never a panic.

use rkyv::{Archive, Deserialize, Serialize};

use super::types::{BrokerEpoch, BrokerId, IncarnationId, LeaderEpoch, TopicId};
use crate::multiraft::GroupId;
use crate::raft::wire;

/// The layout [`encode_batch`] writes. A new layout gets a new number and
/// [`decode_batch`] keeps reading the old ones.
pub const METADATA_FORMAT_VERSION: u16 = 1;

/// What a config record is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub enum ConfigResource {
    /// A topic's configs, by name (Kafka's `ConfigResource.Type.TOPIC`).
    Topic(String),
    /// One broker's dynamic configs (`ConfigResource.Type.BROKER`).
    Broker(BrokerId),
}

/// One record of the metadata log. Applying the log in order to an empty
/// [`MetadataImage`](super::MetadataImage) gives the cluster's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)registers. The registration's epoch is this record's
    /// offset; it starts fenced and replaces any earlier registration of the
    /// id, whose incarnation is thereby fenced for good.
    RegisterBroker {
        /// The broker.
        broker_id: BrokerId,
        /// The process run that registered.
        incarnation_id: IncarnationId,
        /// The host Kafka clients connect to.
        kafka_host: String,
        /// The port Kafka clients connect to.
        kafka_port: u16,
        /// Where peers reach its Raft transport (`host:port`).
        raft_addr: String,
        /// Its rack, for rack-aware placement.
        rack: Option<String>,
    },
    /// The broker is removed from the cluster (KRaft's UnregisterBroker).
    UnregisterBroker {
        /// The broker.
        broker_id: BrokerId,
        /// The registration removed; a record for an older one is stale.
        epoch: BrokerEpoch,
    },
    /// The broker missed its heartbeats or asked to be fenced: no new
    /// replicas go to it.
    FenceBroker {
        /// The broker.
        broker_id: BrokerId,
        /// The registration fenced; a record for an older one is stale.
        epoch: BrokerEpoch,
    },
    /// The broker heartbeats and has caught up with its registration.
    UnfenceBroker {
        /// The broker.
        broker_id: BrokerId,
        /// The registration unfenced; a record for an older one is stale.
        epoch: BrokerEpoch,
    },
    /// A topic is created; its partitions follow in the same batch.
    Topic {
        /// Its name.
        name: String,
        /// Its id.
        topic_id: TopicId,
    },
    /// A partition is created: the next one of its topic.
    Partition {
        /// Its topic.
        topic_id: TopicId,
        /// Its number: the topic's partition count before this record.
        partition: i32,
        /// Its replica set, which is the set of voters of its Raft group.
        replicas: Vec<BrokerId>,
        /// Its Raft group: never used before in this cluster.
        raft_group: GroupId,
    },
    /// A partition's leader, leader epoch, ISR or replica set changed (KRaft's
    /// PartitionChangeRecord; partition leaders report leadership and ISR with
    /// AlterPartition).
    PartitionChange {
        /// Its topic.
        topic_id: TopicId,
        /// Its number.
        partition: i32,
        /// The new replica set; `None` keeps it.
        replicas: Option<Vec<BrokerId>>,
        /// The leader after the change; `None` when it has none.
        leader: Option<BrokerId>,
        /// The leader epoch after the change: never lower than before, and a
        /// new leader always comes with a higher one.
        leader_epoch: LeaderEpoch,
        /// The new in-sync replicas; `None` keeps them.
        isr: Option<Vec<BrokerId>>,
    },
    /// A topic is deleted, with its partitions and configs.
    RemoveTopic {
        /// The topic.
        topic_id: TopicId,
    },
    /// A config is set (`Some`) or removed so its default applies (`None`).
    Config {
        /// What it configures.
        resource: ConfigResource,
        /// Kafka's name for it.
        key: String,
        /// The value.
        value: Option<String>,
    },
    /// Producer ids below `next_producer_id` are handed out: the block that
    /// ends there belongs to `broker_id` (KRaft's ProducerIdsRecord).
    ProducerIdsBlock {
        /// The broker the block was given to.
        broker_id: BrokerId,
        /// The first id no broker has been given.
        next_producer_id: i64,
    },
}

/// Why an entry of the metadata log could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordDecodeError {
    /// Fewer than the two bytes of the version.
    #[error("a metadata batch of {0} bytes has no format version")]
    Truncated(usize),
    /// A layout this build does not know.
    #[error(
        "metadata format version {0} is not known (this build reads {METADATA_FORMAT_VERSION})"
    )]
    UnknownVersion(u16),
    /// The archive did not validate.
    #[error("invalid metadata batch: {0}")]
    Invalid(String),
}

/// One Raft entry's bytes for `records`.
pub fn encode_batch(records: &[MetadataRecord]) -> Vec<u8> {
    let body = wire::encode(&records.to_vec());
    let mut out = Vec::with_capacity(2 + body.len());
    out.extend_from_slice(&METADATA_FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The records of one Raft entry, validated.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<MetadataRecord>, RecordDecodeError> {
    let Some((version, body)) = bytes.split_first_chunk::<2>() else {
        return Err(RecordDecodeError::Truncated(bytes.len()));
    };
    match u16::from_be_bytes(*version) {
        METADATA_FORMAT_VERSION => {
            wire::decode(body).map_err(|e| RecordDecodeError::Invalid(e.to_string()))
        }
        other => Err(RecordDecodeError::UnknownVersion(other)),
    }
}
