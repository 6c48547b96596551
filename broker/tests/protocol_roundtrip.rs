//! Round trips through the wire layer: requests encoded by `kafka-protocol`
//! (as a client would) at every advertised version, framed, split by
//! `next_frame` and decoded by `decode_request`, must come out equal to what
//! `kafka-protocol` itself decodes. The samples fill every array, nullable and
//! tagged field the version has, so the allocation guard's layout is exercised
//! everywhere (its walk is checked against the decoder by a debug assertion
//! inside `decode_request`). `protocol_fuzz.rs` reuses the samples as seeds.

use broker::protocol::{
    decode_request, next_frame, RequestKind, DEFAULT_MAX_FRAME_BYTES, SUPPORTED_APIS,
};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    alter_configs_request, create_partitions_request, create_topics_request, delete_topics_request,
    describe_configs_request, fetch_request, incremental_alter_configs_request, join_group_request,
    leave_group_request, list_offsets_request, metadata_request, offset_commit_request,
    offset_delete_request, offset_fetch_request, produce_request, sync_group_request,
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteTopicsRequest, DescribeClusterRequest,
    DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest, GroupId,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest, MetadataRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, ProduceRequest, ProducerId, RequestHeader,
    SyncGroupRequest, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic(text: &'static str) -> TopicName {
    TopicName(s(text))
}

fn group(text: &'static str) -> GroupId {
    GroupId(s(text))
}

/// Unknown tagged fields to add in flexible versions (the decoder must skip
/// them by size).
fn extra_tags(flexible: bool) -> std::collections::BTreeMap<i32, Bytes> {
    let mut tags = std::collections::BTreeMap::new();
    if flexible {
        tags.insert(90, Bytes::from_static(b"\x01\x02\x03"));
    }
    tags
}

/// A request of type `key` at `version` with every field the version has set
/// to something other than its default.
pub fn sample(key: ApiKey, v: i16) -> RequestKind {
    let flex = v >= flexible_from(key);
    match key {
        ApiKey::ApiVersions => RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(s("chronik-test"))
                .with_client_software_version(s("1.0"))
                .with_unknown_tagged_fields(extra_tags(flex)),
        ),
        ApiKey::Metadata => {
            use metadata_request::MetadataRequestTopic as T;
            let topics = vec![
                T::default()
                    .with_name(Some(topic("a")))
                    .with_topic_id(Uuid::from_u128(7)),
                T::default()
                    .with_name(None)
                    .with_unknown_tagged_fields(extra_tags(flex)),
            ];
            RequestKind::Metadata(
                MetadataRequest::default()
                    .with_topics(Some(topics))
                    .with_allow_auto_topic_creation(v < 4)
                    .with_include_cluster_authorized_operations((8..=10).contains(&v))
                    .with_include_topic_authorized_operations(v >= 8)
                    .with_unknown_tagged_fields(extra_tags(flex)),
            )
        }
        ApiKey::Produce => {
            use produce_request::{PartitionProduceData as P, TopicProduceData as T};
            let partitions = vec![
                P::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from_static(b"batch"))),
                P::default().with_index(1).with_records(None),
            ];
            RequestKind::Produce(
                ProduceRequest::default()
                    .with_transactional_id(Some(TransactionalId(s("tx"))))
                    .with_acks(-1)
                    .with_timeout_ms(1500)
                    .with_topic_data(vec![
                        T::default()
                            .with_name(topic("t"))
                            .with_topic_id(Uuid::from_u128(9))
                            .with_partition_data(partitions),
                        T::default().with_name(topic("u")),
                    ])
                    .with_unknown_tagged_fields(extra_tags(flex)),
            )
        }
        ApiKey::Fetch => {
            use fetch_request::{FetchPartition as P, FetchTopic as T, ForgottenTopic as F};
            let mut partition = P::default()
                .with_partition(3)
                .with_current_leader_epoch(4)
                .with_fetch_offset(500)
                .with_log_start_offset(2)
                .with_partition_max_bytes(1 << 20)
                .with_unknown_tagged_fields(extra_tags(flex));
            if v >= 12 {
                partition = partition.with_last_fetched_epoch(3);
            }
            if v >= 17 {
                partition = partition.with_replica_directory_id(Uuid::from_u128(5));
            }
            if v >= 18 {
                partition = partition.with_high_watermark(400);
            }
            let topics = vec![
                T::default()
                    .with_topic(topic("t"))
                    .with_topic_id(Uuid::from_u128(9))
                    .with_partitions(vec![partition, P::default()]),
                T::default(),
            ];
            let mut request = FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(52428800)
                .with_isolation_level(1)
                .with_session_id(12)
                .with_session_epoch(3)
                .with_topics(topics)
                .with_rack_id(s("rack-a"))
                .with_unknown_tagged_fields(extra_tags(flex));
            if v <= 14 {
                request = request.with_replica_id(BrokerId(-1));
            }
            if v >= 7 {
                let forgotten = F::default()
                    .with_topic(topic("old"))
                    .with_topic_id(Uuid::from_u128(11))
                    .with_partitions(vec![1, 2, 3]);
                request = request.with_forgotten_topics_data(vec![forgotten]);
            }
            if v >= 12 {
                request = request.with_cluster_id(Some(s("cluster")));
            }
            if v >= 15 {
                let state = fetch_request::ReplicaState::default()
                    .with_replica_id(BrokerId(2))
                    .with_replica_epoch(8);
                request = request.with_replica_state(state);
            }
            RequestKind::Fetch(request)
        }
        ApiKey::ListOffsets => {
            use list_offsets_request::{ListOffsetsPartition as P, ListOffsetsTopic as T};
            let partitions = vec![
                P::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(2)
                    .with_timestamp(-1),
                P::default().with_partition_index(1).with_timestamp(-2),
            ];
            let mut request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![T::default()
                    .with_name(topic("t"))
                    .with_partitions(partitions)])
                .with_timeout_ms(3000)
                .with_unknown_tagged_fields(extra_tags(flex));
            if v >= 2 {
                request = request.with_isolation_level(1);
            }
            RequestKind::ListOffsets(request)
        }
        ApiKey::CreateTopics => {
            use create_topics_request::{
                CreatableReplicaAssignment as A, CreatableTopic as T, CreatableTopicConfig as C,
            };
            let assigned = T::default()
                .with_name(topic("assigned"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    A::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
                    A::default().with_partition_index(1),
                ])
                .with_configs(vec![
                    C::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("1000"))),
                    C::default().with_name(s("cleanup.policy")).with_value(None),
                ]);
            RequestKind::CreateTopics(
                CreateTopicsRequest::default()
                    .with_topics(vec![
                        assigned,
                        T::default()
                            .with_name(topic("plain"))
                            .with_num_partitions(3),
                    ])
                    .with_timeout_ms(30000)
                    .with_validate_only(true)
                    .with_unknown_tagged_fields(extra_tags(flex)),
            )
        }
        ApiKey::DeleteTopics => {
            use delete_topics_request::DeleteTopicState as D;
            let mut request = DeleteTopicsRequest::default()
                .with_timeout_ms(30000)
                .with_unknown_tagged_fields(extra_tags(flex));
            if v >= 6 {
                request = request.with_topics(vec![
                    D::default().with_name(Some(topic("a"))),
                    D::default()
                        .with_name(None)
                        .with_topic_id(Uuid::from_u128(3)),
                ]);
            } else {
                request = request.with_topic_names(vec![topic("a"), topic("b")]);
            }
            RequestKind::DeleteTopics(request)
        }
        ApiKey::CreatePartitions => {
            use create_partitions_request::{
                CreatePartitionsAssignment as A, CreatePartitionsTopic as T,
            };
            RequestKind::CreatePartitions(
                CreatePartitionsRequest::default()
                    .with_topics(vec![
                        T::default()
                            .with_name(topic("t"))
                            .with_count(4)
                            .with_assignments(Some(vec![
                                A::default().with_broker_ids(vec![BrokerId(1), BrokerId(3)])
                            ])),
                        T::default()
                            .with_name(topic("u"))
                            .with_count(2)
                            .with_assignments(None),
                    ])
                    .with_timeout_ms(100)
                    .with_validate_only(true)
                    .with_unknown_tagged_fields(extra_tags(flex)),
            )
        }
        ApiKey::DescribeConfigs => {
            use describe_configs_request::DescribeConfigsResource as R;
            RequestKind::DescribeConfigs(
                DescribeConfigsRequest::default()
                    .with_resources(vec![
                        R::default()
                            .with_resource_type(2)
                            .with_resource_name(s("t"))
                            .with_configuration_keys(Some(vec![s("retention.ms")])),
                        R::default()
                            .with_resource_type(4)
                            .with_resource_name(s("1")),
                    ])
                    .with_include_synonyms(true)
                    .with_include_documentation(v >= 3)
                    .with_unknown_tagged_fields(extra_tags(flex)),
            )
        }
        ApiKey::AlterConfigs => {
            use alter_configs_request::{AlterConfigsResource as R, AlterableConfig as C};
            RequestKind::AlterConfigs(
                AlterConfigsRequest::default()
                    .with_resources(vec![R::default()
                        .with_resource_type(2)
                        .with_resource_name(s("t"))
                        .with_configs(vec![
                            C::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("5"))),
                            C::default().with_name(s("x")).with_value(None),
                        ])])
                    .with_validate_only(true)
                    .with_unknown_tagged_fields(extra_tags(flex)),
            )
        }
        ApiKey::IncrementalAlterConfigs => {
            use incremental_alter_configs_request::{
                AlterConfigsResource as R, AlterableConfig as C,
            };
            RequestKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default()
                    .with_resources(vec![R::default()
                        .with_resource_type(2)
                        .with_resource_name(s("t"))
                        .with_configs(vec![C::default()
                            .with_name(s("retention.ms"))
                            .with_config_operation(1)
                            .with_value(Some(s("5")))])])
                    .with_validate_only(true)
                    .with_unknown_tagged_fields(extra_tags(flex)),
            )
        }
        ApiKey::DescribeCluster => {
            let mut request = DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(true)
                .with_unknown_tagged_fields(extra_tags(flex));
            if v >= 1 {
                request = request.with_endpoint_type(2);
            }
            if v >= 2 {
                request = request.with_include_fenced_brokers(true);
            }
            RequestKind::DescribeCluster(request)
        }
        ApiKey::OffsetCommit => {
            use offset_commit_request::{
                OffsetCommitRequestPartition as P, OffsetCommitRequestTopic as T,
            };
            let partitions = vec![
                P::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)
                    .with_committed_leader_epoch(3)
                    .with_committed_metadata(Some(s("note")))
                    .with_unknown_tagged_fields(extra_tags(flex)),
                P::default()
                    .with_partition_index(1)
                    .with_committed_offset(7)
                    .with_committed_metadata(None),
            ];
            let mut request = OffsetCommitRequest::default()
                .with_group_id(group("g"))
                .with_generation_id_or_member_epoch(3)
                .with_member_id(s("m1"))
                .with_retention_time_ms(86_400_000)
                .with_topics(vec![
                    T::default()
                        .with_name(topic("t"))
                        .with_partitions(partitions)
                        .with_unknown_tagged_fields(extra_tags(flex)),
                    T::default().with_name(topic("u")),
                ])
                .with_unknown_tagged_fields(extra_tags(flex));
            if v >= 7 {
                request = request.with_group_instance_id(Some(s("i1")));
            }
            RequestKind::OffsetCommit(request)
        }
        ApiKey::OffsetFetch => {
            use offset_fetch_request::{
                OffsetFetchRequestGroup as G, OffsetFetchRequestTopic as T,
                OffsetFetchRequestTopics as Ts,
            };
            let mut request = OffsetFetchRequest::default()
                .with_require_stable(v >= 7)
                .with_unknown_tagged_fields(extra_tags(flex));
            if v <= 7 {
                request = request.with_group_id(group("g")).with_topics(Some(vec![
                    T::default()
                        .with_name(topic("t"))
                        .with_partition_indexes(vec![0, 1])
                        .with_unknown_tagged_fields(extra_tags(flex)),
                    T::default().with_name(topic("u")),
                ]));
            } else {
                request = request.with_groups(vec![
                    G::default()
                        .with_group_id(group("g"))
                        .with_member_id(Some(s("m1")))
                        .with_member_epoch(5)
                        .with_topics(Some(vec![Ts::default()
                            .with_name(topic("t"))
                            .with_partition_indexes(vec![0, 1])
                            .with_unknown_tagged_fields(extra_tags(flex))]))
                        .with_unknown_tagged_fields(extra_tags(flex)),
                    G::default().with_group_id(group("h")).with_topics(None),
                ]);
            }
            RequestKind::OffsetFetch(request)
        }
        ApiKey::FindCoordinator => {
            let mut request =
                FindCoordinatorRequest::default().with_unknown_tagged_fields(extra_tags(flex));
            if v <= 3 {
                request = request.with_key(s("g"));
            }
            if v >= 1 {
                request = request.with_key_type(1);
            }
            if v >= 4 {
                request = request.with_coordinator_keys(vec![s("g"), s("h")]);
            }
            RequestKind::FindCoordinator(request)
        }
        ApiKey::JoinGroup => {
            use join_group_request::JoinGroupRequestProtocol as P;
            let mut request = JoinGroupRequest::default()
                .with_group_id(group("g"))
                .with_session_timeout_ms(45_000)
                .with_rebalance_timeout_ms(300_000)
                .with_member_id(s("m1"))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    P::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::from_static(b"subscription"))
                        .with_unknown_tagged_fields(extra_tags(flex)),
                    P::default().with_name(s("roundrobin")),
                ])
                .with_reason(Some(s("rejoin")))
                .with_unknown_tagged_fields(extra_tags(flex));
            if v >= 5 {
                request = request.with_group_instance_id(Some(s("i1")));
            }
            RequestKind::JoinGroup(request)
        }
        ApiKey::Heartbeat => {
            let mut request = HeartbeatRequest::default()
                .with_group_id(group("g"))
                .with_generation_id(3)
                .with_member_id(s("m1"))
                .with_unknown_tagged_fields(extra_tags(flex));
            if v >= 3 {
                request = request.with_group_instance_id(Some(s("i1")));
            }
            RequestKind::Heartbeat(request)
        }
        ApiKey::LeaveGroup => {
            use leave_group_request::MemberIdentity as M;
            let mut request = LeaveGroupRequest::default()
                .with_group_id(group("g"))
                .with_unknown_tagged_fields(extra_tags(flex));
            if v <= 2 {
                request = request.with_member_id(s("m1"));
            } else {
                request = request.with_members(vec![
                    M::default()
                        .with_member_id(s("m1"))
                        .with_group_instance_id(Some(s("i1")))
                        .with_reason(Some(s("shutdown")))
                        .with_unknown_tagged_fields(extra_tags(flex)),
                    M::default()
                        .with_member_id(s("m2"))
                        .with_group_instance_id(None),
                ]);
            }
            RequestKind::LeaveGroup(request)
        }
        ApiKey::SyncGroup => {
            use sync_group_request::SyncGroupRequestAssignment as A;
            let mut request = SyncGroupRequest::default()
                .with_group_id(group("g"))
                .with_generation_id(3)
                .with_member_id(s("m1"))
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")))
                .with_assignments(vec![
                    A::default()
                        .with_member_id(s("m1"))
                        .with_assignment(Bytes::from_static(b"assignment"))
                        .with_unknown_tagged_fields(extra_tags(flex)),
                    A::default().with_member_id(s("m2")),
                ])
                .with_unknown_tagged_fields(extra_tags(flex));
            if v >= 3 {
                request = request.with_group_instance_id(Some(s("i1")));
            }
            RequestKind::SyncGroup(request)
        }
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(
            DescribeGroupsRequest::default()
                .with_groups(vec![group("g"), group("h")])
                .with_include_authorized_operations(v >= 3)
                .with_unknown_tagged_fields(extra_tags(flex)),
        ),
        ApiKey::ListGroups => {
            let mut request =
                ListGroupsRequest::default().with_unknown_tagged_fields(extra_tags(flex));
            if v >= 4 {
                request = request.with_states_filter(vec![s("Stable"), s("Empty")]);
            }
            if v >= 5 {
                request = request.with_types_filter(vec![s("classic")]);
            }
            RequestKind::ListGroups(request)
        }
        ApiKey::InitProducerId => {
            let mut request = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(60_000)
                .with_unknown_tagged_fields(extra_tags(flex));
            if v >= 3 {
                request = request
                    .with_producer_id(ProducerId(1000))
                    .with_producer_epoch(2);
            }
            RequestKind::InitProducerId(request)
        }
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default()
                .with_groups_names(vec![group("g"), group("h")])
                .with_unknown_tagged_fields(extra_tags(flex)),
        ),
        ApiKey::OffsetDelete => {
            use offset_delete_request::{
                OffsetDeleteRequestPartition as P, OffsetDeleteRequestTopic as T,
            };
            RequestKind::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(group("g"))
                    .with_topics(vec![
                        T::default().with_name(topic("t")).with_partitions(vec![
                            P::default().with_partition_index(0),
                            P::default().with_partition_index(1),
                        ]),
                        T::default().with_name(topic("u")),
                    ]),
            )
        }
        other => panic!("no sample for {other:?}"),
    }
}

/// First flexible version, read off the request header version (never, for
/// OffsetDelete).
fn flexible_from(key: ApiKey) -> i16 {
    (0..i16::MAX)
        .find(|&v| key.request_header_version(v) == 2)
        .unwrap_or(i16::MAX)
}

/// The frame a client would send (size prefix included), and the body bytes.
pub fn client_frame(key: ApiKey, v: i16, correlation_id: i32) -> (Bytes, Bytes) {
    let mut body = BytesMut::new();
    sample(key, v).encode(&mut body, v).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(v)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("roundtrip")));
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    header
        .encode(&mut frame, key.request_header_version(v))
        .unwrap();
    frame.extend_from_slice(&body);
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    (frame.freeze(), body.freeze())
}

/// Every (API, version) Chronik advertises.
pub fn advertised() -> Vec<(ApiKey, i16)> {
    SUPPORTED_APIS
        .iter()
        .flat_map(|api| (api.versions.min..=api.versions.max).map(move |v| (api.key, v)))
        .collect()
}

#[test]
fn every_advertised_version_round_trips_through_a_byte_stream() {
    let cases = advertised();
    assert_eq!(
        cases.len(),
        // Versions per row of SUPPORTED_APIS, in its order.
        8 + 13
            + 10
            + 14
            + 8
            + 9
            + 7
            + 10
            + 5
            + 6
            + 6
            + 6
            + 6
            + 5
            + 6
            + 6
            + 6
            + 4
            + 3
            + 4
            + 3
            + 2
            + 1
            + 3
    );
    let mut stream = BytesMut::new();
    for (i, &(key, v)) in cases.iter().enumerate() {
        stream.extend_from_slice(&client_frame(key, v, i as i32).0);
    }
    for (i, &(key, v)) in cases.iter().enumerate() {
        let frame = next_frame(&mut stream, DEFAULT_MAX_FRAME_BYTES)
            .unwrap()
            .expect("complete");
        let request = decode_request(frame).unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
        assert_eq!(request.header.api_key, key);
        assert_eq!(request.header.api_version, v);
        assert_eq!(request.header.correlation_id, i as i32);
        assert_eq!(request.header.client_id.as_deref(), Some("roundtrip"));
        // What kafka-protocol itself makes of the body (fields a version
        // lacks drop out), and not the empty default.
        let mut body = client_frame(key, v, 0).1;
        let expected = RequestKind::decode(key, &mut body, v).unwrap();
        assert_eq!(request.body, expected, "{key:?} v{v}");
        // (ApiVersions before v3 and ListGroups before v4 have no fields.)
        let fieldless =
            (key == ApiKey::ApiVersions && v < 3) || (key == ApiKey::ListGroups && v < 4);
        if !fieldless {
            assert_ne!(
                request.body,
                empty(key),
                "{key:?} v{v} sample is all defaults"
            );
        }
    }
    assert!(stream.is_empty());
}

fn empty(key: ApiKey) -> RequestKind {
    let mut bytes = BytesMut::new();
    let v = SUPPORTED_APIS
        .iter()
        .find(|a| a.key == key)
        .unwrap()
        .versions
        .min;
    let mut encoded = match key {
        ApiKey::ApiVersions => RequestKind::ApiVersions(Default::default()),
        ApiKey::Metadata => RequestKind::Metadata(Default::default()),
        ApiKey::Produce => RequestKind::Produce(Default::default()),
        ApiKey::Fetch => RequestKind::Fetch(Default::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(Default::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(Default::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(Default::default()),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(Default::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(Default::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(Default::default()),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(Default::default()),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(Default::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(Default::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(Default::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(Default::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(Default::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(Default::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(Default::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(Default::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(Default::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(Default::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(Default::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(Default::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(Default::default()),
        other => panic!("no empty {other:?}"),
    };
    encoded.encode(&mut bytes, v).unwrap();
    encoded = RequestKind::decode(key, &mut bytes.freeze(), v).unwrap();
    encoded
}

#[test]
fn every_truncation_of_a_sample_is_refused_cleanly() {
    // Cutting a valid request anywhere inside its body must give Malformed
    // (never a panic, never a wrong request).
    for (key, v) in advertised() {
        let frame = client_frame(key, v, 1).0.slice(4..);
        let body_len = client_frame(key, v, 1).1.len();
        for cut in frame.len() - body_len..frame.len() {
            let result = decode_request(frame.slice(..cut));
            assert!(
                matches!(result, Err(broker::protocol::DecodeError::Malformed(_))),
                "{key:?} v{v} cut at {cut}: {result:?}"
            );
        }
    }
}
