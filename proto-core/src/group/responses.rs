//! What the coordinator answers: Kafka's group responses, field for field, at
//! the newest versions. Throttle times and authorized operations are the broker's.

use bytes::Bytes;

/// One answer, by request kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// To a JoinGroup.
    Join(JoinResponse),
    /// To a SyncGroup.
    Sync(SyncResponse),
    /// To a Heartbeat.
    Heartbeat(HeartbeatResponse),
    /// To a LeaveGroup.
    Leave(LeaveResponse),
    /// To an OffsetCommit.
    OffsetCommit(OffsetCommitResponse),
    /// To an OffsetFetch.
    OffsetFetch(OffsetFetchResponse),
    /// To a ListGroups.
    ListGroups(ListGroupsResponse),
    /// To a DescribeGroups.
    DescribeGroups(DescribeGroupsResponse),
    /// To a DeleteGroups.
    DeleteGroups(DeleteGroupsResponse),
    /// To an OffsetDelete.
    OffsetDelete(OffsetDeleteResponse),
}

/// JoinGroup v9 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResponse {
    /// NONE or the reason the join failed.
    pub error_code: i16,
    /// The generation joined, or -1.
    pub generation_id: i32,
    /// The group's protocol type, if known.
    pub protocol_type: Option<String>,
    /// The generation's protocol, if chosen.
    pub protocol_name: Option<String>,
    /// The leader's member id, or "".
    pub leader: String,
    /// KIP-814: the (static) leader must not compute a new assignment.
    pub skip_assignment: bool,
    /// The member's id (new with MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol: to the leader only.
    pub members: Vec<JoinResponseMember>,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResponseMember {
    /// The member.
    pub member_id: String,
    /// Its instance id, if static.
    pub group_instance_id: Option<String>,
    /// Its metadata for the generation's protocol.
    pub metadata: Bytes,
}

/// SyncGroup v5 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResponse {
    /// NONE or the reason.
    pub error_code: i16,
    /// The group's protocol type, on success.
    pub protocol_type: Option<String>,
    /// The generation's protocol, on success.
    pub protocol_name: Option<String>,
    /// The member's assignment (empty on error).
    pub assignment: Bytes,
}

/// Heartbeat v4 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// NONE, or what the member must do (REBALANCE_IN_PROGRESS: rejoin).
    pub error_code: i16,
}

/// LeaveGroup v5 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveResponse {
    /// A group-level error (then `members` is empty).
    pub error_code: i16,
    /// One result per leaving member, in request order.
    pub members: Vec<LeaveMemberResponse>,
}

/// The result for one leaving member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveMemberResponse {
    /// The member id as sent.
    pub member_id: String,
    /// The instance id as sent.
    pub group_instance_id: Option<String>,
    /// NONE, UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID.
    pub error_code: i16,
}

/// OffsetCommit v9 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitResponse {
    /// One entry per requested topic, in request order.
    pub topics: Vec<CommitTopicResponse>,
}

/// The results for one topic of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitTopicResponse {
    /// The topic.
    pub name: String,
    /// One result per requested partition, in request order.
    pub partitions: Vec<CommitPartitionResponse>,
}

/// The result for one partition of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitPartitionResponse {
    /// The partition.
    pub partition_index: i32,
    /// NONE or the reason.
    pub error_code: i16,
}

/// OffsetFetch v8 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    /// One entry per requested group, in request order.
    pub groups: Vec<FetchGroupResponse>,
}

/// The offsets of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchGroupResponse {
    /// The group.
    pub group_id: String,
    /// Per topic, the requested partitions (or all committed ones).
    pub topics: Vec<FetchTopicResponse>,
    /// A group-level error.
    pub error_code: i16,
}

/// The offsets of one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchTopicResponse {
    /// The topic.
    pub name: String,
    /// Its partitions.
    pub partitions: Vec<FetchPartitionResponse>,
}

/// One partition's committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchPartitionResponse {
    /// The partition.
    pub partition_index: i32,
    /// The committed offset, or -1 if none.
    pub committed_offset: i64,
    /// The committed leader epoch, or -1.
    pub committed_leader_epoch: i32,
    /// The committed metadata, or "".
    pub metadata: String,
    /// NONE or UNSTABLE_OFFSET_COMMIT.
    pub error_code: i16,
}

/// ListGroups v5 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListGroupsResponse {
    /// Always NONE here; the broker reports coordinator-level errors.
    pub error_code: i16,
    /// The groups, by group id.
    pub groups: Vec<ListedGroup>,
}

/// One group in a ListGroups response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGroup {
    /// The group.
    pub group_id: String,
    /// Its protocol type, or "".
    pub protocol_type: String,
    /// Its state, as Kafka names it.
    pub group_state: String,
    /// Always "classic".
    pub group_type: String,
}

/// DescribeGroups v5 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribeGroupsResponse {
    /// One entry per requested group, in request order.
    pub groups: Vec<DescribedGroup>,
}

/// One group described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedGroup {
    /// NONE (an unknown group is "Dead") or INVALID_GROUP_ID.
    pub error_code: i16,
    /// The group.
    pub group_id: String,
    /// Its state, as Kafka names it.
    pub group_state: String,
    /// Its protocol type, or "".
    pub protocol_type: String,
    /// Its protocol when Stable, else "".
    pub protocol_data: String,
    /// Its members; metadata and assignment only when Stable.
    pub members: Vec<DescribedMember>,
}

/// One member described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedMember {
    /// The member.
    pub member_id: String,
    /// Its instance id, if static.
    pub group_instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// Its client host.
    pub client_host: String,
    /// Its metadata for the group's protocol (Stable only).
    pub member_metadata: Bytes,
    /// Its assignment (Stable only).
    pub member_assignment: Bytes,
}

/// DeleteGroups v2 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteGroupsResponse {
    /// One result per distinct requested group, in request order.
    pub results: Vec<DeletedGroup>,
}

/// The result for one group of a DeleteGroups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletedGroup {
    /// The group.
    pub group_id: String,
    /// NONE, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP or COORDINATOR_NOT_AVAILABLE.
    pub error_code: i16,
}

/// OffsetDelete v0 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetDeleteResponse {
    /// A group-level error (then `topics` is empty).
    pub error_code: i16,
    /// Per requested topic, the results of its partitions.
    pub topics: Vec<OffsetDeleteTopicResponse>,
}

/// The results for one topic of an OffsetDelete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetDeleteTopicResponse {
    /// The topic.
    pub name: String,
    /// One result per requested partition.
    pub partitions: Vec<OffsetDeletePartitionResponse>,
}

/// The result for one partition of an OffsetDelete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetDeletePartitionResponse {
    /// The partition.
    pub partition_index: i32,
    /// NONE, GROUP_SUBSCRIBED_TO_TOPIC or COORDINATOR_NOT_AVAILABLE.
    pub error_code: i16,
}
