//! The controller's vocabulary: its configuration, what enters
//! ([`ControllerEvent`]), what leaves ([`ControllerAction`]) and the answers
//! it carries. Requests keep Kafka's request shapes (and raw Kafka codes where
//! the wire has them), so the broker's glue is a field-for-field copy.

use crate::metadata::errors::ApiError;
use crate::metadata::record::MetadataRecord;
use crate::metadata::types::{
    BrokerEpoch, BrokerId, IncarnationId, LeaderEpoch, MetadataOffset, RequestId, TopicId,
};

/// The controller's settings, with Kafka's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// A broker that has not heartbeaten for longer than this is fenced
    /// (Kafka's `broker.session.timeout.ms`, 9000).
    pub broker_session_timeout_ms: u64,
    /// Partitions of a topic created with `num_partitions = -1` (Kafka's `num.partitions`).
    pub default_partitions: i32,
    /// Replicas of a topic created with `replication_factor = -1` (Kafka's
    /// `default.replication.factor`).
    pub default_replication_factor: i16,
    /// Producer ids per AllocateProducerIds (Kafka's block of 1000).
    pub producer_id_block_size: i64,
    /// Mixed with a topic record's offset to draw its id: ids are unique
    /// because offsets are, and differ between clusters seeded differently.
    pub topic_id_seed: u64,
}

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            broker_session_timeout_ms: 9000,
            default_partitions: 1,
            default_replication_factor: 1,
            producer_id_block_size: 1000,
            topic_id_seed: 0,
        }
    }
}

/// A broker's registration, as it sends it at every process start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistrationRequest {
    /// Its id.
    pub broker_id: BrokerId,
    /// This process run.
    pub incarnation_id: IncarnationId,
    /// The host Kafka clients connect to.
    pub kafka_host: String,
    /// The port Kafka clients connect to.
    pub kafka_port: u16,
    /// Where peers reach its Raft transport.
    pub raft_addr: String,
    /// Its rack.
    pub rack: Option<String>,
}

/// One partition of an explicit assignment (CreateTopics' `assignments`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaAssignment {
    /// The partition.
    pub partition: i32,
    /// Its replicas.
    pub replicas: Vec<BrokerId>,
}

/// One topic of a CreateTopics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatableTopic {
    /// Its name.
    pub name: String,
    /// Its partition count, or -1 for the default (or with `assignments`).
    pub num_partitions: i32,
    /// Its replication factor, or -1 for the default (or with `assignments`).
    pub replication_factor: i16,
    /// Explicit replicas per partition; empty to let placement choose.
    pub assignments: Vec<ReplicaAssignment>,
    /// Configs to override; a `None` value is ignored, as Kafka does.
    pub configs: Vec<(String, Option<String>)>,
}

/// A topic named by a DeleteTopics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By id (DeleteTopics v6).
    Id(TopicId),
}

/// One topic of a CreatePartitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionsIncrease {
    /// The topic.
    pub name: String,
    /// The partition count wanted.
    pub count: i32,
    /// Replicas for each new partition; `None` to let placement choose.
    pub assignments: Option<Vec<Vec<BrokerId>>>,
}

/// One resource of an AlterConfigs: its configs become exactly these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterConfigsResource {
    /// Kafka's resource type (2 topic, 4 broker).
    pub resource_type: i8,
    /// The topic name, or the broker id as text.
    pub resource_name: String,
    /// Name and value; a `None` value resets the config to its default.
    pub configs: Vec<(String, Option<String>)>,
}

/// One operation of an IncrementalAlterConfigs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigOperation {
    /// The config.
    pub name: String,
    /// Kafka's operation: 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT.
    pub op: i8,
    /// The value (SET, APPEND, SUBTRACT).
    pub value: Option<String>,
}

/// One resource of an IncrementalAlterConfigs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncrementalAlterConfigsResource {
    /// Kafka's resource type (2 topic, 4 broker).
    pub resource_type: i8,
    /// The topic name, or the broker id as text.
    pub resource_name: String,
    /// The operations, applied in order.
    pub ops: Vec<ConfigOperation>,
}

/// Something that happened to the controller. Every input enters as one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerEvent {
    /// A broker (re)registers, forwarded over the peer transport. Answered
    /// with [`ControllerAction::BrokerRegistrationReply`].
    BrokerRegistration(BrokerRegistrationRequest),
    /// A broker's heartbeat, forwarded over the peer transport. Answered with
    /// [`ControllerAction::BrokerHeartbeatReply`]; the step's `now_ms` is when
    /// it arrived.
    BrokerHeartbeat {
        /// The broker.
        broker_id: BrokerId,
        /// The process run heartbeating.
        incarnation_id: IncarnationId,
        /// How far the broker's own image has applied the metadata log (its
        /// [`next_offset`](crate::metadata::MetadataImage::next_offset)): it is
        /// caught up once this is past its registration record.
        metadata_offset: MetadataOffset,
        /// The broker asks to be fenced (it is shutting down).
        want_fence: bool,
    },
    /// An operator removes a broker from the cluster (KRaft's UnregisterBroker).
    UnregisterBroker {
        /// Echoed in the answer.
        request_id: RequestId,
        /// The broker.
        broker_id: BrokerId,
    },
    /// A CreateTopics.
    CreateTopics {
        /// Echoed in the answer.
        request_id: RequestId,
        /// The topics.
        topics: Vec<CreatableTopic>,
        /// Check everything, create nothing.
        validate_only: bool,
    },
    /// A DeleteTopics.
    DeleteTopics {
        /// Echoed in the answer.
        request_id: RequestId,
        /// The topics.
        topics: Vec<TopicRef>,
    },
    /// A CreatePartitions.
    CreatePartitions {
        /// Echoed in the answer.
        request_id: RequestId,
        /// The topics.
        topics: Vec<PartitionsIncrease>,
        /// Check everything, create nothing.
        validate_only: bool,
    },
    /// An AlterConfigs.
    AlterConfigs {
        /// Echoed in the answer.
        request_id: RequestId,
        /// The resources.
        resources: Vec<AlterConfigsResource>,
        /// Check everything, change nothing.
        validate_only: bool,
    },
    /// An IncrementalAlterConfigs.
    IncrementalAlterConfigs {
        /// Echoed in the answer.
        request_id: RequestId,
        /// The resources.
        resources: Vec<IncrementalAlterConfigsResource>,
        /// Check everything, change nothing.
        validate_only: bool,
    },
    /// A broker wants a block of producer ids for InitProducerId.
    AllocateProducerIds {
        /// Echoed in the answer.
        request_id: RequestId,
        /// The broker.
        broker_id: BrokerId,
    },
    /// A partition's Raft leader reports its leadership and ISR (KRaft's
    /// AlterPartition, KIP-497). The leader waits for the answer before it
    /// sends the next, as Kafka's AlterPartitionManager does.
    AlterPartition {
        /// Echoed in the answer.
        request_id: RequestId,
        /// The topic.
        topic_id: TopicId,
        /// The partition.
        partition: i32,
        /// The reporting leader.
        leader: BrokerId,
        /// Its Raft term.
        leader_epoch: LeaderEpoch,
        /// The replicas it finds in sync, itself included.
        isr: Vec<BrokerId>,
    },
    /// The metadata log is committed, and applied by the driver, up to (not
    /// including) `offset`: the records proposed before it are durable, and
    /// the answers that waited for them go out.
    Committed {
        /// The first offset not committed.
        offset: MetadataOffset,
    },
    /// This node no longer leads the metadata group: every answer still
    /// waiting becomes NOT_CONTROLLER, and so does every later request. The
    /// driver then drops the controller.
    Resign,
    /// Time passed: brokers whose session ran out are fenced.
    Tick,
}

/// Something the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerAction {
    /// Append `records` to the metadata Raft log as one entry. They take the
    /// offsets from `offset` on; nothing else may be appended by this leader
    /// in between, so the offsets hold. Step [`ControllerEvent::Committed`]
    /// once they are committed and applied.
    Propose {
        /// The offset of the first record.
        offset: MetadataOffset,
        /// The records.
        records: Vec<MetadataRecord>,
        /// The request they answer, if any (fences from a tick answer none).
        request_id: Option<RequestId>,
    },
    /// Send this answer. Emitted only once every record proposed before it
    /// (its own included) is committed, so nothing is acknowledged that a
    /// failover could lose.
    Respond {
        /// The request.
        request_id: RequestId,
        /// The answer.
        response: ControllerResponse,
    },
    /// Answer a broker's registration with its registration's epoch.
    BrokerRegistrationReply {
        /// The broker.
        broker_id: BrokerId,
        /// The incarnation that registered.
        incarnation_id: IncarnationId,
        /// Its broker epoch, or why not.
        result: Result<BrokerEpoch, ApiError>,
    },
    /// Answer a broker's heartbeat.
    BrokerHeartbeatReply {
        /// The broker.
        broker_id: BrokerId,
        /// The incarnation that heartbeat.
        incarnation_id: IncarnationId,
        /// Why the heartbeat was refused, if it was.
        error: Option<ApiError>,
        /// Whether the broker is fenced (always true with an error).
        fenced: bool,
    },
}

/// A created (or, with `validate_only`, creatable) topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedTopic {
    /// Its id (zero when only validated).
    pub topic_id: TopicId,
    /// Its partition count.
    pub partitions: i32,
    /// Its replication factor.
    pub replication_factor: i16,
}

/// One topic of a CreateTopics answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateTopicResult {
    /// The topic.
    pub name: String,
    /// What came of it.
    pub result: Result<CreatedTopic, ApiError>,
}

/// One topic of a DeleteTopics answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteTopicResult {
    /// Its name, if known.
    pub name: Option<String>,
    /// Its id, if known.
    pub topic_id: Option<TopicId>,
    /// What came of it.
    pub result: Result<(), ApiError>,
}

/// One topic of a CreatePartitions answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatePartitionsResult {
    /// The topic.
    pub name: String,
    /// What came of it.
    pub result: Result<(), ApiError>,
}

/// One resource of an (Incremental)AlterConfigs answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterConfigsResult {
    /// Kafka's resource type, echoed.
    pub resource_type: i8,
    /// The resource name, echoed.
    pub resource_name: String,
    /// What came of it.
    pub result: Result<(), ApiError>,
}

/// Producer ids `first .. first + len`, given to one broker only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdBlock {
    /// The first id.
    pub first: i64,
    /// How many.
    pub len: i64,
}

/// A partition's leadership as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    /// The leader.
    pub leader: Option<BrokerId>,
    /// Its epoch.
    pub leader_epoch: LeaderEpoch,
    /// The in-sync replicas.
    pub isr: Vec<BrokerId>,
}

/// The controller's answer to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControllerResponse {
    /// CreateTopics, in request order.
    CreateTopics(Vec<CreateTopicResult>),
    /// DeleteTopics, in request order.
    DeleteTopics(Vec<DeleteTopicResult>),
    /// CreatePartitions, in request order.
    CreatePartitions(Vec<CreatePartitionsResult>),
    /// AlterConfigs, in request order.
    AlterConfigs(Vec<AlterConfigsResult>),
    /// IncrementalAlterConfigs, in request order.
    IncrementalAlterConfigs(Vec<AlterConfigsResult>),
    /// AllocateProducerIds.
    AllocateProducerIds(Result<ProducerIdBlock, ApiError>),
    /// AlterPartition: the recorded state.
    AlterPartition(Result<PartitionState, ApiError>),
    /// UnregisterBroker.
    UnregisterBroker(Result<(), ApiError>),
}

/// A refusal of any answer's type.
pub(super) fn err<T>(error: &ApiError) -> Result<T, ApiError> {
    Err(error.clone())
}

impl ControllerResponse {
    /// Whether every part of the answer is refused with error `code` (and
    /// there is a part): how a driver tells a resigned controller's refusal
    /// ([`ControllerResponse::refused`] with NOT_CONTROLLER), which it may
    /// send on to the next controller, from a decision.
    pub fn is_refused_with(&self, code: i16) -> bool {
        fn all<'a>(mut results: impl Iterator<Item = Option<&'a ApiError>>, code: i16) -> bool {
            let mut any = false;
            let every = results.all(|e| {
                any = true;
                e.is_some_and(|e| e.code == code)
            });
            any && every
        }
        match self {
            ControllerResponse::CreateTopics(v) => {
                all(v.iter().map(|r| r.result.as_ref().err()), code)
            }
            ControllerResponse::DeleteTopics(v) => {
                all(v.iter().map(|r| r.result.as_ref().err()), code)
            }
            ControllerResponse::CreatePartitions(v) => {
                all(v.iter().map(|r| r.result.as_ref().err()), code)
            }
            ControllerResponse::AlterConfigs(v)
            | ControllerResponse::IncrementalAlterConfigs(v) => {
                all(v.iter().map(|r| r.result.as_ref().err()), code)
            }
            ControllerResponse::AllocateProducerIds(r) => all([r.as_ref().err()].into_iter(), code),
            ControllerResponse::AlterPartition(r) => all([r.as_ref().err()].into_iter(), code),
            ControllerResponse::UnregisterBroker(r) => all([r.as_ref().err()].into_iter(), code),
        }
    }

    /// The same answer with every part refused with `error` (a resigned
    /// controller's answer: the client retries against the new one).
    pub fn refused(self, error: &ApiError) -> ControllerResponse {
        match self {
            ControllerResponse::CreateTopics(v) => ControllerResponse::CreateTopics(
                v.into_iter()
                    .map(|r| CreateTopicResult {
                        result: err(error),
                        ..r
                    })
                    .collect(),
            ),
            ControllerResponse::DeleteTopics(v) => ControllerResponse::DeleteTopics(
                v.into_iter()
                    .map(|r| DeleteTopicResult {
                        result: err(error),
                        ..r
                    })
                    .collect(),
            ),
            ControllerResponse::CreatePartitions(v) => ControllerResponse::CreatePartitions(
                v.into_iter()
                    .map(|r| CreatePartitionsResult {
                        result: err(error),
                        ..r
                    })
                    .collect(),
            ),
            ControllerResponse::AlterConfigs(v) => ControllerResponse::AlterConfigs(
                v.into_iter()
                    .map(|r| AlterConfigsResult {
                        result: err(error),
                        ..r
                    })
                    .collect(),
            ),
            ControllerResponse::IncrementalAlterConfigs(v) => {
                ControllerResponse::IncrementalAlterConfigs(
                    v.into_iter()
                        .map(|r| AlterConfigsResult {
                            result: err(error),
                            ..r
                        })
                        .collect(),
                )
            }
            ControllerResponse::AllocateProducerIds(_) => {
                ControllerResponse::AllocateProducerIds(err(error))
            }
            ControllerResponse::AlterPartition(_) => ControllerResponse::AlterPartition(err(error)),
            ControllerResponse::UnregisterBroker(_) => {
                ControllerResponse::UnregisterBroker(err(error))
            }
        }
    }
}

/// The driver broke the controller's contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// `Committed` past what this controller proposed: records it did not
    /// propose were appended in its term, or the controller was built from an
    /// image behind the log.
    #[error("committed up to offset {committed}, but only {proposed} records were proposed")]
    CommittedBeyondProposed {
        /// The event's offset.
        committed: MetadataOffset,
        /// The end of what was proposed.
        proposed: MetadataOffset,
    },
}
