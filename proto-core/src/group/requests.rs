//! What the broker hands the coordinator: Kafka's group requests at their
//! newest versions, field for field, plus the [`ReplyId`] to answer with.
//! Older versions are the broker's job to widen (e.g. a LeaveGroup v0 becomes
//! one member; a JoinGroup v0 uses the session timeout as rebalance timeout).

use bytes::Bytes;

/// The broker's token for one request; the coordinator echoes it in exactly one
/// [`Action::Respond`](super::Action::Respond).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyId(pub u64);

/// JoinGroup v9.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// The group to join; empty is INVALID_GROUP_ID.
    pub group_id: String,
    /// The member is removed if it sends nothing for this long.
    pub session_timeout_ms: i32,
    /// How long the coordinator waits for the member to rejoin in a rebalance.
    pub rebalance_timeout_ms: i32,
    /// Empty for a member that has no id yet.
    pub member_id: String,
    /// KIP-345 static membership: the instance id that survives restarts.
    pub group_instance_id: Option<String>,
    /// E.g. "consumer" or "connect"; every member of a group must agree.
    pub protocol_type: String,
    /// The member's protocols (assignors), most preferred first.
    pub protocols: Vec<JoinProtocol>,
    /// Why the member joins (KIP-800), for the log.
    pub reason: Option<String>,
    /// The client's `client.id`, the prefix of a dynamic member's new id.
    pub client_id: String,
    /// The client's address, reported by DescribeGroups.
    pub client_host: String,
    /// Set by the broker for JoinGroup v4+: a new dynamic member first gets
    /// MEMBER_ID_REQUIRED with its id (KIP-394).
    pub require_known_member_id: bool,
    /// Set by the broker for JoinGroup v9+: a static leader rejoining a stable
    /// group is told it leads with `skip_assignment` (KIP-814) instead of being
    /// given the old leader's id.
    pub supports_skip_assignment: bool,
}

/// One protocol a joining member supports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinProtocol {
    /// The protocol (assignor) name.
    pub name: String,
    /// Its metadata; for "consumer", the subscription.
    pub metadata: Bytes,
}

/// SyncGroup v5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// The group.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// The member's instance id, if static.
    pub group_instance_id: Option<String>,
    /// If given, must be the group's protocol type.
    pub protocol_type: Option<String>,
    /// If given, must be the generation's protocol.
    pub protocol_name: Option<String>,
    /// The leader's assignment of every member; empty from followers.
    pub assignments: Vec<SyncAssignment>,
}

/// One member's assignment in the leader's SyncGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncAssignment {
    /// The member it is for.
    pub member_id: String,
    /// The assignment, opaque to the coordinator.
    pub assignment: Bytes,
}

/// Heartbeat v4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// The group.
    pub group_id: String,
    /// The generation the member is in.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// The member's instance id, if static.
    pub group_instance_id: Option<String>,
}

/// LeaveGroup v5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// The group.
    pub group_id: String,
    /// The members leaving.
    pub members: Vec<LeavingMember>,
}

/// One member in a LeaveGroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeavingMember {
    /// The member; empty to remove a static member by instance id (admin).
    pub member_id: String,
    /// The member's instance id, if static.
    pub group_instance_id: Option<String>,
    /// Why it leaves (KIP-800), for the log.
    pub reason: Option<String>,
}

/// OffsetCommit v9.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// The group; empty is allowed, as in Kafka.
    pub group_id: String,
    /// The member's generation, or -1 for a standalone ("simple") commit.
    pub generation_id: i32,
    /// The member, or empty for a standalone commit.
    pub member_id: String,
    /// The member's instance id, if static.
    pub group_instance_id: Option<String>,
    /// What to commit.
    pub topics: Vec<CommitTopic>,
}

/// The partitions of one topic in an OffsetCommit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitTopic {
    /// The topic.
    pub name: String,
    /// Its partitions.
    pub partitions: Vec<CommitPartition>,
}

/// One partition's commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPartition {
    /// The partition.
    pub partition_index: i32,
    /// The next offset to consume.
    pub committed_offset: i64,
    /// The leader epoch of the last consumed record, or -1.
    pub committed_leader_epoch: i32,
    /// Client metadata; null is stored as "".
    pub committed_metadata: Option<String>,
}

/// OffsetFetch v8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// The groups to fetch for.
    pub groups: Vec<FetchGroup>,
    /// Answer UNSTABLE_OFFSET_COMMIT for partitions with a commit in flight.
    pub require_stable: bool,
}

/// One group in an OffsetFetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchGroup {
    /// The group; empty is allowed, as in Kafka.
    pub group_id: String,
    /// The partitions to fetch, or `None` for every committed offset of the group.
    pub topics: Option<Vec<FetchTopic>>,
}

/// The partitions of one topic in an OffsetFetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchTopic {
    /// The topic.
    pub name: String,
    /// Its partitions.
    pub partition_indexes: Vec<i32>,
}

/// ListGroups v5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListGroupsRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// Only groups in these states (Kafka's names, any case); empty for all.
    pub states_filter: Vec<String>,
    /// Only groups of these types ("classic", any case); empty for all.
    pub types_filter: Vec<String>,
}

/// DescribeGroups v5 (authorized operations are the broker's to fill).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribeGroupsRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// The groups to describe.
    pub groups: Vec<String>,
}

/// DeleteGroups v2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteGroupsRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// The groups to delete; only empty groups can be.
    pub groups_names: Vec<String>,
}

/// OffsetDelete v0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetDeleteRequest {
    /// Where the answer goes.
    pub reply: ReplyId,
    /// The group.
    pub group_id: String,
    /// The partitions whose committed offsets to delete.
    pub topics: Vec<OffsetDeleteTopic>,
}

/// The partitions of one topic in an OffsetDelete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetDeleteTopic {
    /// The topic.
    pub name: String,
    /// Its partition indexes.
    pub partitions: Vec<i32>,
}
