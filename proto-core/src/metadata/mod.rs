//! Cluster metadata as pure code: the records of the metadata Raft log, the
//! image they build, and the controller that decides which records to write
//! (KRaft's model: KIP-500, KIP-631).
//!
//! - [`MetadataRecord`]: what the metadata log holds — broker registrations
//!   and fencing, topics, partitions (whose replica sets are the voters of
//!   their Raft groups), leadership and ISR changes, configs, producer id
//!   blocks — and its versioned, validated encoding ([`encode_batch`],
//!   [`decode_batch`]).
//! - [`MetadataImage`]: the state the records build, applied in log order
//!   by every node, with the queries Metadata, DescribeCluster and
//!   DescribeConfigs answers need.
//! - [`Controller`]: the state machine the metadata leader runs. Requests
//!   and broker heartbeats enter through [`Controller::step`]; records to
//!   propose and answers leave as [`ControllerAction`]s, and no answer leaves
//!   before the records it depends on are committed.
//!
//! No IO, no clock but the `now_ms` each step carries, no unseeded
//! randomness, and every map ordered: the same inputs give the same outputs.

mod config;
mod controller;
pub mod errors;
mod image;
mod names;
mod placement;
mod record;
#[cfg(test)]
mod record_tests;
mod types;

#[cfg(test)]
mod image_tests;

pub use config::{
    is_topic_config, validate_topic_config, ConfigEntry, ConfigSource, TopicConfigDefaults,
};
pub use controller::{
    AlterConfigsResource, AlterConfigsResult, BrokerRegistrationRequest, ConfigOperation,
    Controller, ControllerAction, ControllerConfig, ControllerEvent, ControllerResponse,
    CreatableTopic, CreatePartitionsResult, CreateTopicResult, CreatedTopic, DeleteTopicResult,
    IncrementalAlterConfigsResource, PartitionState, PartitionsIncrease, ProducerIdBlock,
    ReplicaAssignment, StepError, TopicRef, MAX_PARTITIONS, RESOURCE_BROKER, RESOURCE_TOPIC,
};
pub use errors::ApiError;
pub use image::{
    ApplyError, BrokerRegistration, MetadataImage, PartitionImage, TopicImage,
    FIRST_PARTITION_GROUP,
};
pub use names::{invalid_topic_name, is_internal, MAX_TOPIC_NAME, OFFSETS_TOPIC};
pub use placement::{BrokerInfo, ExistingAssignment, Placement, PlacementError, PlacementRequest};
pub use record::{
    decode_batch, encode_batch, ConfigResource, MetadataRecord, RecordDecodeError,
    METADATA_FORMAT_VERSION,
};
pub use types::{
    BrokerEpoch, BrokerId, IncarnationId, LeaderEpoch, MetadataOffset, RequestId, TopicId,
};
