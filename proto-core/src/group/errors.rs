//! The Kafka error codes the coordinator answers with, named as Kafka names
//! them (`org.apache.kafka.common.protocol.Errors`), so a response can be
//! checked against Kafka's documentation by eye.

/// Success.
pub const NONE: i16 = 0;
/// A committed offset's metadata is longer than `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
/// The coordinator could not do it now (a write to the offsets partition failed,
/// or the group is being removed); clients look the coordinator up again and retry.
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
/// The request names a generation that is not the group's current one.
pub const ILLEGAL_GENERATION: i16 = 22;
/// The member's protocol type or protocols do not match the group's.
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
/// The group id is not valid for this request (empty).
pub const INVALID_GROUP_ID: i16 = 24;
/// The member id is not (or no longer) a member of the group.
pub const UNKNOWN_MEMBER_ID: i16 = 25;
/// The session timeout is outside `[min_session_timeout_ms, max_session_timeout_ms]`.
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
/// The group is rebalancing: the member must rejoin.
pub const REBALANCE_IN_PROGRESS: i16 = 27;
/// DeleteGroups on a group that still has members.
pub const NON_EMPTY_GROUP: i16 = 68;
/// The group does not exist.
pub const GROUP_ID_NOT_FOUND: i16 = 69;
/// KIP-394: the member must join again with the member id in the response.
pub const MEMBER_ID_REQUIRED: i16 = 79;
/// The group has `max_group_size` members already.
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
/// KIP-345: another member id now holds this static member's instance id.
pub const FENCED_INSTANCE_ID: i16 = 82;
/// OffsetDelete of a topic that members of the group subscribe to.
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
/// OffsetFetch with `require_stable` while a commit of the partition is in flight.
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// Kafka's name for `code`, for logs and rendered traces.
pub fn name(code: i16) -> &'static str {
    match code {
        NONE => "NONE",
        OFFSET_METADATA_TOO_LARGE => "OFFSET_METADATA_TOO_LARGE",
        COORDINATOR_NOT_AVAILABLE => "COORDINATOR_NOT_AVAILABLE",
        ILLEGAL_GENERATION => "ILLEGAL_GENERATION",
        INCONSISTENT_GROUP_PROTOCOL => "INCONSISTENT_GROUP_PROTOCOL",
        INVALID_GROUP_ID => "INVALID_GROUP_ID",
        UNKNOWN_MEMBER_ID => "UNKNOWN_MEMBER_ID",
        INVALID_SESSION_TIMEOUT => "INVALID_SESSION_TIMEOUT",
        REBALANCE_IN_PROGRESS => "REBALANCE_IN_PROGRESS",
        NON_EMPTY_GROUP => "NON_EMPTY_GROUP",
        GROUP_ID_NOT_FOUND => "GROUP_ID_NOT_FOUND",
        MEMBER_ID_REQUIRED => "MEMBER_ID_REQUIRED",
        GROUP_MAX_SIZE_REACHED => "GROUP_MAX_SIZE_REACHED",
        FENCED_INSTANCE_ID => "FENCED_INSTANCE_ID",
        GROUP_SUBSCRIBED_TO_TOPIC => "GROUP_SUBSCRIBED_TO_TOPIC",
        UNSTABLE_OFFSET_COMMIT => "UNSTABLE_OFFSET_COMMIT",
        _ => "UNKNOWN",
    }
}
