//! Responses filled at the newest layout, as handlers fill them, must encode
//! at every advertised version once fitted, and decode to what an older
//! client expects.

use bytes::Bytes;
use kafka_protocol::messages::{
    delete_groups_response, describe_groups_response, find_coordinator_response,
    join_group_response, leave_group_response, list_groups_response, offset_commit_response,
    offset_delete_response, offset_fetch_response, ApiKey, BrokerId, DeleteGroupsResponse,
    DescribeGroupsResponse, FindCoordinatorResponse, GroupId, HeartbeatResponse,
    InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse,
    OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse, ProducerId, ResponseHeader,
    ResponseKind, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use uuid::Uuid;

use super::fit_to_version;
use crate::protocol::{encode_response, support, RequestHeader};

/// The group and producer-id APIs, whose fitting rules this file checks.
const KEYS: [ApiKey; 12] = [
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::InitProducerId,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
];

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn group(text: &'static str) -> GroupId {
    GroupId(s(text))
}

fn topic(text: &'static str) -> TopicName {
    TopicName(s(text))
}

/// A response of `key` with every field of the newest layout set to
/// something other than its default.
fn populated(key: ApiKey) -> ResponseKind {
    match key {
        ApiKey::FindCoordinator => {
            use find_coordinator_response::Coordinator as C;
            ResponseKind::FindCoordinator(
                FindCoordinatorResponse::default()
                    .with_throttle_time_ms(10)
                    .with_coordinators(vec![
                        C::default()
                            .with_key(s("g"))
                            .with_node_id(BrokerId(1))
                            .with_host(s("broker-1"))
                            .with_port(9092)
                            .with_error_message(None),
                        C::default()
                            .with_key(s("h"))
                            .with_node_id(BrokerId(-1))
                            .with_error_code(15)
                            .with_error_message(Some(s("not yet"))),
                    ]),
            )
        }
        ApiKey::JoinGroup => {
            use join_group_response::JoinGroupResponseMember as M;
            ResponseKind::JoinGroup(
                JoinGroupResponse::default()
                    .with_throttle_time_ms(10)
                    .with_error_code(0)
                    .with_generation_id(3)
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")))
                    .with_leader(s("m1"))
                    .with_skip_assignment(true)
                    .with_member_id(s("m1"))
                    .with_members(vec![
                        M::default()
                            .with_member_id(s("m1"))
                            .with_group_instance_id(Some(s("i1")))
                            .with_metadata(Bytes::from_static(b"subscription")),
                        M::default().with_member_id(s("m2")),
                    ]),
            )
        }
        ApiKey::Heartbeat => ResponseKind::Heartbeat(
            HeartbeatResponse::default()
                .with_throttle_time_ms(10)
                .with_error_code(27),
        ),
        ApiKey::LeaveGroup => {
            use leave_group_response::MemberResponse as M;
            ResponseKind::LeaveGroup(
                LeaveGroupResponse::default()
                    .with_throttle_time_ms(10)
                    .with_members(vec![
                        M::default()
                            .with_member_id(s("m1"))
                            .with_group_instance_id(Some(s("i1"))),
                        M::default()
                            .with_member_id(s("m2"))
                            .with_group_instance_id(None)
                            .with_error_code(25),
                    ]),
            )
        }
        ApiKey::SyncGroup => ResponseKind::SyncGroup(
            SyncGroupResponse::default()
                .with_throttle_time_ms(10)
                .with_error_code(27)
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")))
                .with_assignment(Bytes::from_static(b"assignment")),
        ),
        ApiKey::DescribeGroups => {
            use describe_groups_response::{DescribedGroup as G, DescribedGroupMember as M};
            let member = M::default()
                .with_member_id(s("m1"))
                .with_group_instance_id(Some(s("i1")))
                .with_client_id(s("rdkafka"))
                .with_client_host(s("/10.0.0.1"))
                .with_member_metadata(Bytes::from_static(b"subscription"))
                .with_member_assignment(Bytes::from_static(b"assignment"));
            ResponseKind::DescribeGroups(
                DescribeGroupsResponse::default()
                    .with_throttle_time_ms(10)
                    .with_groups(vec![
                        G::default()
                            .with_group_id(group("g"))
                            .with_group_state(s("Stable"))
                            .with_protocol_type(s("consumer"))
                            .with_protocol_data(s("range"))
                            .with_members(vec![member])
                            .with_authorized_operations(0b1000),
                        G::default()
                            .with_group_id(group("gone"))
                            .with_error_code(69)
                            .with_error_message(Some(s("no such group"))),
                    ]),
            )
        }
        ApiKey::ListGroups => {
            use list_groups_response::ListedGroup as G;
            ResponseKind::ListGroups(
                ListGroupsResponse::default()
                    .with_throttle_time_ms(10)
                    .with_groups(vec![G::default()
                        .with_group_id(group("g"))
                        .with_protocol_type(s("consumer"))
                        .with_group_state(s("Stable"))
                        .with_group_type(s("classic"))]),
            )
        }
        ApiKey::OffsetCommit => {
            use offset_commit_response::{
                OffsetCommitResponsePartition as P, OffsetCommitResponseTopic as T,
            };
            ResponseKind::OffsetCommit(
                OffsetCommitResponse::default()
                    .with_throttle_time_ms(10)
                    .with_topics(vec![T::default()
                        .with_name(topic("t"))
                        .with_topic_id(Uuid::from_u128(7))
                        .with_partitions(vec![
                            P::default().with_partition_index(0),
                            P::default().with_partition_index(1).with_error_code(3),
                        ])]),
            )
        }
        ApiKey::OffsetFetch => {
            use offset_fetch_response::{
                OffsetFetchResponseGroup as G, OffsetFetchResponsePartitions as P,
                OffsetFetchResponseTopics as T,
            };
            let partitions = vec![
                P::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)
                    .with_committed_leader_epoch(3)
                    .with_metadata(Some(s("note"))),
                P::default()
                    .with_partition_index(1)
                    .with_committed_offset(-1)
                    .with_metadata(None)
                    .with_error_code(3),
            ];
            ResponseKind::OffsetFetch(
                OffsetFetchResponse::default()
                    .with_throttle_time_ms(10)
                    .with_groups(vec![G::default()
                        .with_group_id(group("g"))
                        .with_error_code(14)
                        .with_topics(vec![T::default()
                            .with_name(topic("t"))
                            .with_topic_id(Uuid::from_u128(7))
                            .with_partitions(partitions)])]),
            )
        }
        ApiKey::InitProducerId => ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_throttle_time_ms(10)
                .with_producer_id(ProducerId(1000))
                .with_producer_epoch(2)
                .with_ongoing_txn_producer_id(ProducerId(999))
                .with_ongoing_txn_producer_epoch(1),
        ),
        ApiKey::DeleteGroups => {
            use delete_groups_response::DeletableGroupResult as R;
            ResponseKind::DeleteGroups(
                DeleteGroupsResponse::default()
                    .with_throttle_time_ms(10)
                    .with_results(vec![
                        R::default().with_group_id(group("g")),
                        R::default().with_group_id(group("h")).with_error_code(69),
                    ]),
            )
        }
        ApiKey::OffsetDelete => {
            use offset_delete_response::{
                OffsetDeleteResponsePartition as P, OffsetDeleteResponseTopic as T,
            };
            ResponseKind::OffsetDelete(
                OffsetDeleteResponse::default()
                    .with_throttle_time_ms(10)
                    .with_topics(vec![T::default().with_name(topic("t")).with_partitions(
                        vec![
                            P::default().with_partition_index(0),
                            P::default().with_partition_index(1).with_error_code(86),
                        ],
                    )]),
            )
        }
        other => panic!("no populated response for {other:?}"),
    }
}

fn header(api_key: ApiKey, api_version: i16) -> RequestHeader {
    RequestHeader {
        api_key,
        api_version,
        correlation_id: 7,
        client_id: None,
    }
}

/// Fits and encodes `body`, then decodes the frame as a client would.
fn as_client_sees_it(key: ApiKey, v: i16, mut body: ResponseKind) -> ResponseKind {
    fit_to_version(&mut body, v);
    let frame = encode_response(&header(key, v), &body).unwrap_or_else(|e| panic!("{e}"));
    let mut buf = frame.slice(4..);
    let wire_header = ResponseHeader::decode(&mut buf, key.response_header_version(v)).unwrap();
    assert_eq!(wire_header.correlation_id, 7);
    let decoded = ResponseKind::decode(key, &mut buf, v).unwrap();
    assert!(buf.is_empty(), "{key:?} v{v}: trailing bytes");
    decoded
}

#[test]
fn populated_responses_encode_at_every_advertised_version_once_fitted() {
    let mut cases = 0;
    for key in KEYS {
        let versions = support(key).expect("served").versions;
        for v in versions.min..=versions.max {
            as_client_sees_it(key, v, populated(key));
            cases += 1;
        }
    }
    assert_eq!(cases, 8 + 9 + 7 + 10 + 5 + 6 + 6 + 6 + 6 + 6 + 3 + 1);
}

#[test]
fn the_crate_refuses_what_the_rules_clear() {
    // The highest version at which each API needs a rule: without it,
    // kafka-protocol will not write the response at all.
    for (key, v) in [
        (ApiKey::FindCoordinator, 3),
        (ApiKey::JoinGroup, 8),
        (ApiKey::LeaveGroup, 2),
        (ApiKey::DescribeGroups, 5),
        (ApiKey::OffsetFetch, 7),
        (ApiKey::InitProducerId, 5),
    ] {
        assert!(
            encode_response(&header(key, v), &populated(key)).is_err(),
            "{key:?} v{v} encodes unfitted: its rule is dead"
        );
    }
}

#[test]
fn find_coordinator_before_v4_answers_the_one_key_at_the_top() {
    for v in 0..=3 {
        let ResponseKind::FindCoordinator(r) = as_client_sees_it(
            ApiKey::FindCoordinator,
            v,
            populated(ApiKey::FindCoordinator),
        ) else {
            unreachable!()
        };
        assert_eq!(
            (r.error_code, r.node_id, r.host.as_str(), r.port),
            (0, BrokerId(1), "broker-1", 9092),
            "v{v}"
        );
        assert!(r.coordinators.is_empty());
    }
}

#[test]
fn offset_fetch_before_v8_answers_the_one_group_at_the_top() {
    for v in 1..=7 {
        let ResponseKind::OffsetFetch(r) =
            as_client_sees_it(ApiKey::OffsetFetch, v, populated(ApiKey::OffsetFetch))
        else {
            unreachable!()
        };
        assert_eq!(r.error_code, if v >= 2 { 14 } else { 0 }, "v{v}");
        let [t] = &r.topics[..] else {
            panic!("v{v}: {:?}", r.topics)
        };
        assert_eq!(t.name, topic("t"));
        let offsets: Vec<_> = t
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset, p.error_code))
            .collect();
        // v1 has no group-level error: the group's goes on each partition
        // that has none of its own.
        let first_error = if v >= 2 { 0 } else { 14 };
        assert_eq!(offsets, [(0, 42, first_error), (1, -1, 3)], "v{v}");
        assert_eq!(t.partitions[0].metadata, Some(s("note")));
        let epoch = if (5..=7).contains(&v) { 3 } else { -1 };
        assert_eq!(t.partitions[0].committed_leader_epoch, epoch, "v{v}");
    }
}

#[test]
fn leave_group_before_v3_reports_the_member_error_as_the_request_error() {
    for v in 0..=2 {
        let ResponseKind::LeaveGroup(r) =
            as_client_sees_it(ApiKey::LeaveGroup, v, populated(ApiKey::LeaveGroup))
        else {
            unreachable!()
        };
        assert_eq!(r.error_code, 25, "v{v}");
    }
}

#[test]
fn join_group_protocol_name_is_never_null_before_v7() {
    let unnamed = || {
        let ResponseKind::JoinGroup(r) = populated(ApiKey::JoinGroup) else {
            unreachable!()
        };
        ResponseKind::JoinGroup(r.with_error_code(27).with_protocol_name(None))
    };
    for v in 0..=9 {
        let ResponseKind::JoinGroup(r) = as_client_sees_it(ApiKey::JoinGroup, v, unnamed()) else {
            unreachable!()
        };
        let want = if v < 7 { Some(s("")) } else { None };
        assert_eq!(r.protocol_name, want, "v{v}");
    }
}
