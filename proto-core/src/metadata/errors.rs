//! The Kafka error codes the controller answers with, named as Kafka names
//! them (`org.apache.kafka.common.protocol.Errors`), and [`ApiError`], a code
//! with the message that explains it to an operator.

use std::fmt;

/// Success.
pub const NONE: i16 = 0;
/// Something the controller cannot attribute to the request (a placement that
/// broke its contract, an exhausted id space).
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
/// The topic (or partition) does not exist.
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// The broker that sent AlterPartition is not a replica of the partition.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
/// The topic name is illegal, or the topic is internal and may not be changed so.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// CreateTopics of a topic that exists.
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
/// A partition count out of range, or not larger than the current one.
pub const INVALID_PARTITIONS: i16 = 37;
/// A replication factor below 1, or above the number of usable brokers.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
/// An explicit assignment that names unusable brokers, repeats one, or
/// disagrees with the partition count or replication factor.
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
/// A config name or value the topic does not accept.
pub const INVALID_CONFIG: i16 = 40;
/// This controller is no longer the metadata leader: ask the new one.
pub const NOT_CONTROLLER: i16 = 41;
/// A malformed request: a topic named twice, both counts and an assignment, a
/// resource type that cannot be changed.
pub const INVALID_REQUEST: i16 = 42;
/// The request breaks a configured policy.
pub const POLICY_VIOLATION: i16 = 44;
/// AlterPartition from an older leader epoch than the one recorded.
pub const FENCED_LEADER_EPOCH: i16 = 74;
/// A heartbeat from an incarnation that is no longer the registered one.
pub const STALE_BROKER_EPOCH: i16 = 77;
/// A topic id that names no topic.
pub const UNKNOWN_TOPIC_ID: i16 = 100;
/// The broker id is not registered.
pub const BROKER_ID_NOT_REGISTERED: i16 = 102;
/// An ISR that would add a fenced or unregistered broker (KIP-841).
pub const INELIGIBLE_REPLICA: i16 = 107;

/// Kafka's name for `code`, for logs and rendered traces.
pub fn name(code: i16) -> &'static str {
    match code {
        NONE => "NONE",
        UNKNOWN_SERVER_ERROR => "UNKNOWN_SERVER_ERROR",
        UNKNOWN_TOPIC_OR_PARTITION => "UNKNOWN_TOPIC_OR_PARTITION",
        NOT_LEADER_OR_FOLLOWER => "NOT_LEADER_OR_FOLLOWER",
        INVALID_TOPIC_EXCEPTION => "INVALID_TOPIC_EXCEPTION",
        TOPIC_ALREADY_EXISTS => "TOPIC_ALREADY_EXISTS",
        INVALID_PARTITIONS => "INVALID_PARTITIONS",
        INVALID_REPLICATION_FACTOR => "INVALID_REPLICATION_FACTOR",
        INVALID_REPLICA_ASSIGNMENT => "INVALID_REPLICA_ASSIGNMENT",
        INVALID_CONFIG => "INVALID_CONFIG",
        NOT_CONTROLLER => "NOT_CONTROLLER",
        INVALID_REQUEST => "INVALID_REQUEST",
        POLICY_VIOLATION => "POLICY_VIOLATION",
        FENCED_LEADER_EPOCH => "FENCED_LEADER_EPOCH",
        STALE_BROKER_EPOCH => "STALE_BROKER_EPOCH",
        UNKNOWN_TOPIC_ID => "UNKNOWN_TOPIC_ID",
        BROKER_ID_NOT_REGISTERED => "BROKER_ID_NOT_REGISTERED",
        INELIGIBLE_REPLICA => "INELIGIBLE_REPLICA",
        _ => "UNKNOWN",
    }
}

/// A refusal: the Kafka error code the client acts on and a message for the
/// operator (Kafka's `error_message` fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The Kafka error code; never [`NONE`].
    pub code: i16,
    /// Why, in words.
    pub message: String,
}

impl ApiError {
    /// A refusal with `code`.
    pub fn new(code: i16, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// The answer to every request a resigned controller still held.
    pub fn not_controller() -> ApiError {
        ApiError::new(
            NOT_CONTROLLER,
            "this node no longer leads the metadata group",
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", name(self.code), self.message)
    }
}
