//! The broker's request handling end to end without sockets: the sans-IO
//! `Node` over the real disk store, with this test playing the driver.

use std::time::{Duration, Instant};

use broker::disk_store::{DiskStore, Persister};
use broker::node::topics::TopicConfig;
use broker::node::{Input, Node, NodeConfig, Output, ReplyId};
use broker::protocol::{Request, RequestHeader};
use bytes::{Buf, Bytes};
use io_sync::host;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    ProduceRequest, ProduceResponse, RequestKind, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;
use proto_core::group::CoordinatorConfig;
use proto_core::storage::batch::{encode_batch, BatchSpec, Record};

const TOPIC: &str = "orders";
/// How long a test waits for the disk before it gives up.
const DEADLINE: Duration = Duration::from_secs(20);

/// A node, its disk, and the responses it produced.
struct Harness {
    node: Node,
    persister: Persister,
    now_ms: u64,
    next_seq: u64,
    responses: Vec<(ReplyId, Option<Bytes>)>,
    _handle: host::LoopHandle,
}

impl Harness {
    fn open(dir: &std::path::Path) -> Harness {
        let (handle, _events) = host::channel();
        let (store, persister, recovered) =
            DiskStore::open(dir, true, handle.waker()).expect("open the data dir");
        let cfg = NodeConfig {
            node_id: 1,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            rack: None,
            cluster_id: "test".into(),
            auto_create_topics: false,
            default_partitions: 1,
            topic_defaults: TopicConfig::defaults(-1, -1, 1 << 20),
            tick_ms: 100,
            seed: 7,
            offsets_partitions: 2,
            coordinator: CoordinatorConfig {
                initial_rebalance_delay_ms: 0,
                ..CoordinatorConfig::kafka_defaults(7)
            },
            peers: [(1, "127.0.0.1:19092".to_string())].into(),
            default_replication_factor: 1,
        };
        let node = Node::new(cfg, Box::new(store), recovered.table, recovered.groups).unwrap();
        let mut h = Harness {
            node,
            persister,
            now_ms: 0,
            next_seq: 0,
            responses: Vec::new(),
            _handle: handle,
        };
        h.settle();
        h
    }

    /// Performs outputs and feeds disk completions back until nothing is
    /// in flight.
    fn settle(&mut self) {
        let outputs = self.node.take_outputs();
        self.perform(outputs);
    }

    /// Performs `outputs` (and whatever the node emits next) until no write
    /// is in flight.
    fn perform(&mut self, mut outputs: Vec<Output>) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            for out in outputs {
                match out {
                    Output::Respond { reply, frame } => self.responses.push((reply, frame)),
                    Output::Close { conn } => panic!("the node closed connection {conn}"),
                    Output::Send { to, .. } => panic!("a single node sent to {to}"),
                    Output::Persist { group, tp, write } => {
                        self.persister.submit(group, &tp, write)
                    }
                }
            }
            if self.persister.in_flight() == 0 {
                return;
            }
            for done in self.persister.completions() {
                self.node.step(self.now_ms, done);
            }
            outputs = self.node.take_outputs();
            assert!(Instant::now() < deadline, "the disk did not finish in time");
            std::thread::yield_now();
        }
    }

    /// Sends a request on connection 1 and performs what follows.
    fn send(&mut self, key: ApiKey, version: i16, body: RequestKind) -> ReplyId {
        let reply = self.step_request(1, key, version, body);
        self.settle();
        reply
    }

    /// Steps a request on connection `conn` and leaves its outputs with the
    /// node, for a test that inspects them before they are performed.
    fn step_request(&mut self, conn: u64, key: ApiKey, version: i16, body: RequestKind) -> ReplyId {
        let reply = ReplyId {
            conn,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        let header = RequestHeader {
            api_key: key,
            api_version: version,
            correlation_id: reply.seq as i32,
            client_id: None,
        };
        let request = Box::new(Request { header, body });
        self.node
            .step(self.now_ms, Input::Request { reply, request });
        reply
    }

    fn tick(&mut self, ms: u64) {
        self.now_ms += ms;
        self.node.step(self.now_ms, Input::Tick { wall_ms: 0 });
        self.settle();
    }

    /// The response to `reply`, decoded, if it was sent.
    fn response<T: Decodable>(
        &mut self,
        reply: ReplyId,
        version: i16,
        flexible: bool,
    ) -> Option<T> {
        let at = self.responses.iter().position(|(r, _)| *r == reply)?;
        let (_, frame) = self.responses.remove(at);
        let mut buf = frame.expect("a response frame");
        let len = buf.get_i32() as usize;
        assert_eq!(len, buf.len(), "the size prefix matches the frame");
        ResponseHeader::decode(&mut buf, if flexible { 1 } else { 0 }).unwrap();
        Some(T::decode(&mut buf, version).expect("a decodable response"))
    }

    fn create_topic(&mut self, partitions: i32) {
        let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]);
        let r = self.send(ApiKey::CreateTopics, 4, RequestKind::CreateTopics(req));
        let resp: CreateTopicsResponse = self.response(r, 4, false).unwrap();
        assert_eq!(
            resp.topics[0].error_code, 0,
            "{:?}",
            resp.topics[0].error_message
        );
    }

    fn produce(&mut self, acks: i16, records: Bytes) -> ReplyId {
        let reply = self.step_request(1, ApiKey::Produce, 7, produce_request(acks, records));
        self.settle();
        reply
    }

    fn produced(&mut self, reply: ReplyId) -> (i16, i64) {
        let resp: ProduceResponse = self.response(reply, 7, false).expect("a produce response");
        let p = &resp.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    fn fetch(&mut self, offset: i64, max_wait_ms: i32) -> ReplyId {
        let req = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name(TOPIC))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        self.send(ApiKey::Fetch, 11, RequestKind::Fetch(req))
    }

    fn latest(&mut self) -> i64 {
        let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(TOPIC))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
        let r = self.send(ApiKey::ListOffsets, 2, RequestKind::ListOffsets(req));
        let resp: ListOffsetsResponse = self.response(r, 2, false).unwrap();
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        p.offset
    }
}

/// A Produce of `records` to partition 0 of [`TOPIC`].
fn produce_request(acks: i16, records: Bytes) -> RequestKind {
    RequestKind::Produce(
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(TOPIC))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records))])]),
    )
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A client-style batch of `n` records (base offset 0, as producers send).
fn batch(n: usize, tag: &str) -> Bytes {
    idempotent_batch(n, tag, -1, -1, -1)
}

/// A batch of `n` records from producer `producer` at sequence `seq` (-1s:
/// not idempotent).
fn idempotent_batch(n: usize, tag: &str, producer: i64, epoch: i16, seq: i32) -> Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    let records: Vec<Record> = values
        .iter()
        .map(|v| Record {
            timestamp_delta: 0,
            key: None,
            value: Some(v.as_bytes()),
        })
        .collect();
    encode(&records, producer, epoch, seq)
}

/// A client-style batch of `records` (base offset 0, base timestamp
/// 1_700_000_000_000) from producer `producer` at `seq` (-1s: none).
fn encode(records: &[Record], producer: i64, epoch: i16, seq: i32) -> Bytes {
    let spec = BatchSpec {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: 0,
        base_timestamp: 1_700_000_000_000,
        producer_id: producer,
        producer_epoch: epoch,
        base_sequence: seq,
    };
    Bytes::from(encode_batch(&spec, records))
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn produced_batches_get_contiguous_offsets_and_are_fetched() {
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    h.create_topic(1);
    let first = h.produce(-1, batch(3, "a"));
    assert_eq!(h.produced(first), (0, 0));
    let second = h.produce(1, batch(2, "b"));
    assert_eq!(h.produced(second), (0, 3));
    assert_eq!(h.latest(), 5);

    let f = h.fetch(0, 0);
    let resp: FetchResponse = h.response(f, 11, false).unwrap();
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 5);
    let records = p.records.clone().unwrap();
    // Both batches come back byte for byte, offsets assigned.
    assert_eq!(records.len(), batch(3, "a").len() + batch(2, "b").len());
    assert_eq!(i64::from_be_bytes(records[..8].try_into().unwrap()), 0);
}

#[test]
fn a_corrupt_batch_is_refused_and_nothing_is_stored() {
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    h.create_topic(1);
    let mut bad = batch(2, "x").to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let r = h.produce(-1, Bytes::from(bad));
    assert_eq!(h.produced(r).0, ResponseError::CorruptMessage.code());
    let r = h.produce(-1, Bytes::from_static(b"garbage"));
    assert_ne!(h.produced(r).0, 0);
    assert_eq!(h.latest(), 0);
}

#[test]
fn acks_zero_releases_the_slot_without_a_response() {
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    h.create_topic(1);
    let r = h.produce(0, batch(1, "z"));
    let (_, frame) = h
        .responses
        .iter()
        .find(|(id, _)| *id == r)
        .cloned()
        .unwrap();
    assert!(frame.is_none());
    assert_eq!(h.latest(), 1);
}

#[test]
fn unknown_partitions_are_refused() {
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    let r = h.produce(-1, batch(1, "u"));
    assert_eq!(
        h.produced(r).0,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[test]
fn a_fetch_at_the_end_waits_for_data_then_answers() {
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    h.create_topic(1);
    let parked = h.fetch(0, 10_000);
    assert!(
        h.responses.iter().all(|(r, _)| *r != parked),
        "answered with no data"
    );
    let p = h.produce(-1, batch(1, "late"));
    assert_eq!(h.produced(p), (0, 0));
    let resp: FetchResponse = h.response(parked, 11, false).expect("woken by the produce");
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 1);

    // With no data the wait ends at max_wait.
    let idle = h.fetch(1, 500);
    h.tick(100);
    assert!(h.responses.iter().all(|(r, _)| *r != idle));
    h.tick(500);
    let resp: FetchResponse = h.response(idle, 11, false).expect("answered at max_wait");
    assert!(resp.responses[0].partitions[0]
        .records
        .as_ref()
        .is_none_or(|r| r.is_empty()));
}

#[test]
fn a_restart_keeps_every_acknowledged_record() {
    let dir = tempdir();
    {
        let mut h = Harness::open(dir.path());
        h.create_topic(1);
        for i in 0..5 {
            let r = h.produce(-1, batch(10, &format!("r{i}")));
            assert_eq!(h.produced(r), (0, i * 10));
        }
        h.persister.shutdown();
    }
    let mut h = Harness::open(dir.path());
    // The single voter elects itself again, and the log is all there.
    h.tick(100);
    assert_eq!(h.latest(), 50);
    let r = h.produce(-1, batch(1, "after"));
    assert_eq!(h.produced(r), (0, 50));
}

#[test]
fn producer_ids_are_unique_across_restarts() {
    let dir = tempdir();
    let init = |h: &mut Harness| {
        let r = h.send(
            ApiKey::InitProducerId,
            4,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(60_000),
            ),
        );
        let resp: InitProducerIdResponse = h.response(r, 4, true).unwrap();
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.producer_epoch, 0);
        resp.producer_id.0
    };
    let (a, b) = {
        let mut h = Harness::open(dir.path());
        let ids = (init(&mut h), init(&mut h));
        h.persister.shutdown();
        ids
    };
    assert_ne!(a, b);
    let mut h = Harness::open(dir.path());
    let c = init(&mut h);
    assert!(
        c > a && c > b,
        "{c} was handed out before the restart ({a}, {b})"
    );
}

#[test]
fn an_idempotent_retry_gets_the_original_offsets_and_is_stored_once() {
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    h.create_topic(1);
    let first = h.produce(-1, idempotent_batch(3, "a", 42, 0, 0));
    assert_eq!(h.produced(first), (0, 0));
    let second = h.produce(-1, idempotent_batch(2, "b", 42, 0, 3));
    assert_eq!(h.produced(second), (0, 3));
    // The retry of the first batch: success with its first offsets, no append.
    let retry = h.produce(-1, idempotent_batch(3, "a", 42, 0, 0));
    assert_eq!(h.produced(retry), (0, 0));
    assert_eq!(h.latest(), 5);
    // A gap in the sequence and a fenced epoch are refused.
    let gap = h.produce(-1, idempotent_batch(1, "c", 42, 0, 9));
    assert_eq!(
        h.produced(gap).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    let bumped = h.produce(-1, idempotent_batch(1, "d", 42, 1, 0));
    assert_eq!(h.produced(bumped), (0, 5));
    let fenced = h.produce(-1, idempotent_batch(1, "e", 42, 0, 5));
    assert_eq!(
        h.produced(fenced).0,
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(h.latest(), 6);
}

#[test]
fn producer_state_is_rebuilt_from_the_log_after_a_restart() {
    let dir = tempdir();
    {
        let mut h = Harness::open(dir.path());
        h.create_topic(1);
        let r = h.produce(-1, idempotent_batch(4, "a", 7, 2, 0));
        assert_eq!(h.produced(r), (0, 0));
        let r = h.produce(-1, idempotent_batch(4, "b", 7, 2, 4));
        assert_eq!(h.produced(r), (0, 4));
        h.persister.shutdown();
    }
    let mut h = Harness::open(dir.path());
    h.tick(100);
    let retry = h.produce(-1, idempotent_batch(4, "b", 7, 2, 4));
    assert_eq!(
        h.produced(retry),
        (0, 4),
        "the retry is recognised after the restart"
    );
    let next = h.produce(-1, idempotent_batch(1, "c", 7, 2, 8));
    assert_eq!(h.produced(next), (0, 8));
    let fenced = h.produce(-1, idempotent_batch(1, "d", 7, 1, 0));
    assert_eq!(
        h.produced(fenced).0,
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(h.latest(), 9);
}

/// One member's walk through a group: join (with the member-id round),
/// sync, commit; the offset survives a restart.
#[test]
fn a_group_member_commits_offsets_that_survive_a_restart() {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::{
        DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
        FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
        JoinGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
        OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
    };
    let group = || GroupId(StrBytes::from_static_str("g1"));
    let fetch_offset = |h: &mut Harness| {
        let req = OffsetFetchRequest::default()
            .with_group_id(group())
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(name(TOPIC))
                .with_partition_indexes(vec![0])]));
        let r = h.send(ApiKey::OffsetFetch, 5, RequestKind::OffsetFetch(req));
        let resp: OffsetFetchResponse = h.response(r, 5, false).expect("an offset fetch answer");
        assert_eq!(resp.error_code, 0);
        resp.topics[0].partitions[0].committed_offset
    };
    let dir = tempdir();
    {
        let mut h = Harness::open(dir.path());
        h.create_topic(1);
        let early = h.send(
            ApiKey::Heartbeat,
            3,
            RequestKind::Heartbeat(HeartbeatRequest::default().with_group_id(group())),
        );
        let early: HeartbeatResponse = h.response(early, 3, false).unwrap();
        assert_eq!(
            early.error_code,
            ResponseError::CoordinatorLoadInProgress.code(),
            "before the first tick the coordinators' clock is unknown"
        );
        h.tick(100);
        h.node.step(
            h.now_ms,
            Input::Opened {
                conn: 1,
                peer: "127.0.0.1:40000".parse().unwrap(),
            },
        );
        let r = h.send(
            ApiKey::FindCoordinator,
            2,
            RequestKind::FindCoordinator(
                FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g1")),
            ),
        );
        let found: FindCoordinatorResponse = h.response(r, 2, false).unwrap();
        assert_eq!((found.error_code, found.node_id.0), (0, 1));

        let join = |member: &str| {
            RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(group())
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(10_000)
                    .with_member_id(StrBytes::from_string(member.to_string()))
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(vec![JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(Bytes::from_static(b"sub"))]),
            )
        };
        let r = h.send(ApiKey::JoinGroup, 5, join(""));
        let first: JoinGroupResponse = h.response(r, 5, false).unwrap();
        assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
        let member = first.member_id.to_string();
        assert!(!member.is_empty());
        let r = h.send(ApiKey::JoinGroup, 5, join(&member));
        h.tick(100);
        let joined: JoinGroupResponse = h.response(r, 5, false).expect("the join completes");
        assert_eq!(joined.error_code, 0);
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader.as_str(), member);

        let sync = SyncGroupRequest::default()
            .with_group_id(group())
            .with_generation_id(1)
            .with_member_id(StrBytes::from_string(member.clone()))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member.clone()))
                .with_assignment(Bytes::from_static(b"mine"))]);
        let r = h.send(ApiKey::SyncGroup, 3, RequestKind::SyncGroup(sync));
        let synced: SyncGroupResponse = h.response(r, 3, false).expect("the sync completes");
        assert_eq!(synced.error_code, 0);
        assert_eq!(&synced.assignment[..], b"mine");

        let commit = |generation: i32, offset: i64| {
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(group())
                    .with_generation_id_or_member_epoch(generation)
                    .with_member_id(StrBytes::from_string(member.clone()))
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(name(TOPIC))
                        .with_partitions(vec![OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset)])]),
            )
        };
        let r = h.send(ApiKey::OffsetCommit, 7, commit(1, 42));
        let done: OffsetCommitResponse = h.response(r, 7, false).unwrap();
        assert_eq!(done.topics[0].partitions[0].error_code, 0);
        let ghost = OffsetCommitRequest::default()
            .with_group_id(group())
            .with_generation_id_or_member_epoch(1)
            .with_member_id(StrBytes::from_string(member.clone()))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(name("no-such-topic"))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])]);
        let r = h.send(ApiKey::OffsetCommit, 7, RequestKind::OffsetCommit(ghost));
        let refused: OffsetCommitResponse = h.response(r, 7, false).unwrap();
        assert_eq!(
            refused.topics[0].partitions[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        let r = h.send(ApiKey::OffsetCommit, 7, commit(0, 99));
        let stale: OffsetCommitResponse = h.response(r, 7, false).unwrap();
        assert_eq!(
            stale.topics[0].partitions[0].error_code,
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(fetch_offset(&mut h), 42);
        let r = h.send(
            ApiKey::DescribeGroups,
            5,
            RequestKind::DescribeGroups(
                DescribeGroupsRequest::default()
                    .with_groups(vec![group()])
                    .with_include_authorized_operations(true),
            ),
        );
        let described: DescribeGroupsResponse = h.response(r, 5, true).unwrap();
        let g = &described.groups[0];
        assert_eq!((g.error_code, g.group_state.as_str()), (0, "Stable"));
        assert_eq!(
            g.authorized_operations.count_ones(),
            3,
            "read, delete and describe, as Kafka without an authorizer"
        );
        assert_eq!(g.members[0].member_id.as_str(), member);
        assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");
        h.persister.shutdown();
    }
    let mut h = Harness::open(dir.path());
    h.tick(100);
    assert_eq!(fetch_offset(&mut h), 42, "the commit survives the restart");
}

/// Incremental fetch sessions (KIP-227): a full fetch at epoch 0 creates one,
/// incremental fetches answer only what changed.
mod fetch_sessions {
    use super::*;
    use kafka_protocol::messages::fetch_request::ForgottenTopic;

    /// How the requests of a test name the topic.
    #[derive(Clone, Copy)]
    enum Naming {
        /// Fetch v11, by name.
        Name,
        /// Fetch v13, by the topic's id.
        Id(uuid::Uuid),
    }

    impl Naming {
        fn version(self) -> i16 {
            match self {
                Naming::Name => 11,
                Naming::Id(_) => 13,
            }
        }
    }

    /// One Fetch request's session fields and partitions.
    struct Session<'a> {
        id: i32,
        epoch: i32,
        /// (partition, fetch offset)
        named: &'a [(i32, i64)],
        forgotten: &'a [i32],
        max_wait_ms: i32,
    }

    /// What a response says of one partition: (partition, high watermark,
    /// error code, record bytes).
    type Seen = (i32, i64, i16, usize);

    /// Sends a Fetch on connection `conn`.
    fn send_fetch(h: &mut Harness, conn: u64, naming: Naming, s: &Session) -> ReplyId {
        let topic = |t: FetchTopic| match naming {
            Naming::Name => t.with_topic(name(TOPIC)),
            Naming::Id(id) => t.with_topic_id(id),
        };
        let named: Vec<FetchTopic> = if s.named.is_empty() {
            Vec::new()
        } else {
            vec![topic(FetchTopic::default()).with_partitions(
                s.named
                    .iter()
                    .map(|&(p, offset)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]
        };
        let forgotten = if s.forgotten.is_empty() {
            Vec::new()
        } else {
            let t = ForgottenTopic::default().with_partitions(s.forgotten.to_vec());
            vec![match naming {
                Naming::Name => t.with_topic(name(TOPIC)),
                Naming::Id(id) => t.with_topic_id(id),
            }]
        };
        let req = FetchRequest::default()
            .with_max_wait_ms(s.max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_id(s.id)
            .with_session_epoch(s.epoch)
            .with_topics(named)
            .with_forgotten_topics_data(forgotten);
        let reply = ReplyId {
            conn,
            seq: h.next_seq,
        };
        h.next_seq += 1;
        let header = RequestHeader {
            api_key: ApiKey::Fetch,
            api_version: naming.version(),
            correlation_id: reply.seq as i32,
            client_id: None,
        };
        let request = Box::new(Request {
            header,
            body: RequestKind::Fetch(req),
        });
        h.node.step(h.now_ms, Input::Request { reply, request });
        h.settle();
        reply
    }

    /// The response to `reply`, if sent: (top-level error, session id, partitions).
    fn answered(h: &mut Harness, reply: ReplyId, naming: Naming) -> Option<(i16, i32, Vec<Seen>)> {
        let v = naming.version();
        let resp: FetchResponse = h.response(reply, v, v >= 12)?;
        let mut seen = Vec::new();
        for t in &resp.responses {
            match naming {
                Naming::Name => assert_eq!(t.topic.0.as_str(), TOPIC),
                Naming::Id(id) => assert_eq!(t.topic_id, id),
            }
            for p in &t.partitions {
                let bytes = p.records.as_ref().map_or(0, |r| r.len());
                seen.push((p.partition_index, p.high_watermark, p.error_code, bytes));
            }
        }
        Some((resp.error_code, resp.session_id, seen))
    }

    fn fetch_now(h: &mut Harness, naming: Naming, s: &Session) -> (i16, i32, Vec<Seen>) {
        let r = send_fetch(h, 1, naming, s);
        answered(h, r, naming).expect("answered at once")
    }

    fn partitions(seen: &[Seen]) -> Vec<i32> {
        seen.iter().map(|s| s.0).collect()
    }

    fn produce_to(h: &mut Harness, partition: i32, records: Bytes) {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(TOPIC))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])]);
        let r = h.send(ApiKey::Produce, 7, RequestKind::Produce(req));
        let resp: ProduceResponse = h.response(r, 7, false).expect("a produce response");
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }

    /// A full fetch at epoch 0 of `parts` (partition, offset), answered at
    /// once; the new session's id and what it said.
    fn open_session(h: &mut Harness, naming: Naming, parts: &[(i32, i64)]) -> (i32, Vec<Seen>) {
        let (error, id, seen) = fetch_now(
            h,
            naming,
            &Session {
                id: 0,
                epoch: 0,
                named: parts,
                forgotten: &[],
                max_wait_ms: 0,
            },
        );
        assert_eq!(error, 0);
        assert_ne!(id, 0, "a full fetch at epoch 0 creates a session");
        (id, seen)
    }

    #[test]
    fn an_incremental_fetch_answers_only_the_partitions_that_changed() {
        let dir = tempdir();
        let mut h = Harness::open(dir.path());
        h.create_topic(2);
        produce_to(&mut h, 0, batch(3, "a"));
        let (id, seen) = open_session(&mut h, Naming::Name, &[(0, 0), (1, 0)]);
        assert_eq!(
            partitions(&seen),
            vec![0, 1],
            "a full response has every partition"
        );
        assert_eq!((seen[0].1, seen[0].2), (3, 0));
        assert!(seen[0].3 > 0, "the records of partition 0");

        // The client moves partition 0 to offset 3; nothing is new anywhere,
        // so the fetch waits, and at max_wait answers with no partition.
        let quiet = Session {
            id,
            epoch: 1,
            named: &[(0, 3)],
            forgotten: &[],
            max_wait_ms: 500,
        };
        let parked = send_fetch(&mut h, 1, Naming::Name, &quiet);
        h.tick(100);
        assert!(
            answered(&mut h, parked, Naming::Name).is_none(),
            "answered with no data"
        );
        h.tick(500);
        assert_eq!(
            answered(&mut h, parked, Naming::Name),
            Some((0, id, vec![]))
        );

        // A produce to partition 1 wakes the next one, which answers exactly
        // partition 1; it names no partition, the session remembers them.
        let waiting = send_fetch(
            &mut h,
            1,
            Naming::Name,
            &Session {
                id,
                epoch: 2,
                named: &[],
                forgotten: &[],
                max_wait_ms: 60_000,
            },
        );
        assert!(answered(&mut h, waiting, Naming::Name).is_none());
        produce_to(&mut h, 1, batch(2, "b"));
        let (error, sid, seen) =
            answered(&mut h, waiting, Naming::Name).expect("woken by the produce");
        assert_eq!((error, sid), (0, id));
        assert_eq!(partitions(&seen), vec![1]);
        assert_eq!((seen[0].1, seen[0].2), (2, 0));
        assert!(seen[0].3 > 0);

        // The session is the node's, not the connection's.
        let r = send_fetch(
            &mut h,
            2,
            Naming::Name,
            &Session {
                id,
                epoch: 3,
                named: &[(1, 2)],
                forgotten: &[],
                max_wait_ms: 0,
            },
        );
        assert_eq!(answered(&mut h, r, Naming::Name), Some((0, id, vec![])));
    }

    #[test]
    fn a_forgotten_partition_stops_appearing() {
        let dir = tempdir();
        let mut h = Harness::open(dir.path());
        h.create_topic(2);
        let (id, _) = open_session(&mut h, Naming::Name, &[(0, 0), (1, 0)]);
        let forget = Session {
            id,
            epoch: 1,
            named: &[],
            forgotten: &[1],
            max_wait_ms: 0,
        };
        assert_eq!(fetch_now(&mut h, Naming::Name, &forget), (0, id, vec![]));
        produce_to(&mut h, 1, batch(1, "gone"));
        produce_to(&mut h, 0, batch(1, "kept"));
        let next = Session {
            id,
            epoch: 2,
            named: &[],
            forgotten: &[],
            max_wait_ms: 0,
        };
        let (error, _, seen) = fetch_now(&mut h, Naming::Name, &next);
        assert_eq!(error, 0);
        assert_eq!(partitions(&seen), vec![0]);
    }

    #[test]
    fn a_wrong_epoch_and_an_unknown_session_are_refused() {
        let dir = tempdir();
        let mut h = Harness::open(dir.path());
        h.create_topic(1);
        let (id, _) = open_session(&mut h, Naming::Name, &[(0, 0)]);
        let at = |id: i32, epoch: i32| Session {
            id,
            epoch,
            named: &[],
            forgotten: &[],
            max_wait_ms: 0,
        };
        assert_eq!(
            fetch_now(&mut h, Naming::Name, &at(id, 5)),
            (ResponseError::InvalidFetchSessionEpoch.code(), 0, vec![])
        );
        assert_eq!(
            fetch_now(&mut h, Naming::Name, &at(id ^ 0x55, 1)),
            (ResponseError::FetchSessionIdNotFound.code(), 0, vec![])
        );
        // Neither touched the session; then epoch -1 closes it.
        assert_eq!(fetch_now(&mut h, Naming::Name, &at(id, 1)), (0, id, vec![]));
        assert_eq!(fetch_now(&mut h, Naming::Name, &at(id, -1)), (0, 0, vec![]));
        assert_eq!(
            fetch_now(&mut h, Naming::Name, &at(id, 2)).0,
            ResponseError::FetchSessionIdNotFound.code()
        );
    }

    #[test]
    fn sessions_work_when_topics_are_named_by_id() {
        let dir = tempdir();
        let mut h = Harness::open(dir.path());
        let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(2)
            .with_replication_factor(1)]);
        let r = h.send(ApiKey::CreateTopics, 7, RequestKind::CreateTopics(req));
        let created: CreateTopicsResponse = h.response(r, 7, true).unwrap();
        assert_eq!(created.topics[0].error_code, 0);
        let naming = Naming::Id(created.topics[0].topic_id);

        let (id, seen) = open_session(&mut h, naming, &[(0, 0), (1, 0)]);
        assert_eq!(partitions(&seen), vec![0, 1]);
        produce_to(&mut h, 0, batch(2, "by-id"));
        let next = Session {
            id,
            epoch: 1,
            named: &[],
            forgotten: &[],
            max_wait_ms: 0,
        };
        let (error, sid, seen) = fetch_now(&mut h, naming, &next);
        assert_eq!((error, sid), (0, id));
        assert_eq!(partitions(&seen), vec![0]);
        assert_eq!(seen[0].1, 2);
        // The same session by name is refused (Kafka's FETCH_SESSION_TOPIC_ID_ERROR).
        let by_name = Session { epoch: 2, ..next };
        assert_eq!(
            fetch_now(&mut h, Naming::Name, &by_name).0,
            ResponseError::FetchSessionTopicIdError.code()
        );
    }
}

/// A restart right after the Raft log was compacted past the last data entry
/// still serves everything: the high watermark comes from the log, not only
/// from entries re-applied after the restart.
#[test]
fn the_high_watermark_survives_a_restart_after_compaction() {
    let dir = tempdir();
    let produced = {
        let mut h = Harness::open(dir.path());
        h.create_topic(1);
        // The no-op and 1023 batches: 1024 applied entries, so the node
        // compacts right after the last data entry.
        for i in 0..1023 {
            let r = h.produce(-1, batch(1, &format!("c{i}")));
            assert_eq!(h.produced(r), (0, i));
        }
        h.persister.shutdown();
        1023
    };
    let mut h = Harness::open(dir.path());
    h.tick(100);
    assert_eq!(
        h.latest(),
        produced,
        "ListOffsets(latest) after the restart"
    );
}

/// CreateTopics answers once the new partitions have leaders, so a client
/// that produces right after creating finds one (Kafka's controller names
/// the leader in the records that create the partition) — even with
/// timeout_ms 0, librdkafka's default.
#[test]
fn create_topics_answers_once_the_partitions_have_leaders() {
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(0)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(3)
            .with_replication_factor(1)]);
    let reply = h.step_request(1, ApiKey::CreateTopics, 4, RequestKind::CreateTopics(req));
    let before: Vec<Output> = h.node.take_outputs();
    assert!(
        !before
            .iter()
            .any(|o| matches!(o, Output::Respond { reply: r, .. } if *r == reply)),
        "answered before any partition could elect itself"
    );
    // Carry out the writes (the votes); the answer comes with the elections.
    h.perform(before);
    let resp: CreateTopicsResponse = h.response(reply, 4, false).unwrap();
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(
        h.latest(),
        0,
        "partition 0 has a leader that answers ListOffsets"
    );
}

/// A fetch parked on a connection that closes is forgotten, not answered
/// (or held) when data arrives later.
#[test]
fn a_closed_connection_drops_its_parked_fetch() {
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    h.create_topic(1);
    let parked = h.fetch(0, 60_000);
    assert!(h.responses.iter().all(|(r, _)| *r != parked));
    h.node.step(h.now_ms, Input::Closed { conn: parked.conn });
    let reply = h.step_request(
        2,
        ApiKey::Produce,
        7,
        produce_request(-1, batch(1, "after-close")),
    );
    h.settle();
    assert_eq!(h.produced(reply), (0, 0));
    assert!(
        h.responses.iter().all(|(r, _)| *r != parked),
        "the closed connection's fetch was answered"
    );
}

/// One ListOffsets v9 lookup of partition 0 of [`TOPIC`] at `timestamp`:
/// (error, offset, timestamp).
fn list_offset(h: &mut Harness, timestamp: i64) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(name(TOPIC))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(0)
            .with_timestamp(timestamp)])]);
    let r = h.send(ApiKey::ListOffsets, 9, RequestKind::ListOffsets(req));
    let resp: ListOffsetsResponse = h.response(r, 9, true).unwrap();
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// A batch whose records have the given timestamp deltas from 1_700_000_000_000.
fn batch_with_deltas(deltas: &[i64]) -> Bytes {
    let records: Vec<Record> = deltas
        .iter()
        .map(|&d| Record {
            timestamp_delta: d,
            key: None,
            value: Some(b"v"),
        })
        .collect();
    encode(&records, -1, -1, -1)
}

#[test]
fn list_offsets_answers_max_timestamp_and_the_tiered_lookups() {
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    h.create_topic(1);
    assert_eq!(
        list_offset(&mut h, -3),
        (0, -1, -1),
        "an empty log has no max timestamp"
    );
    // Offsets 0..3 with deltas 5, 9, 1; offsets 3..5 with 9, 2: the first
    // record with the highest timestamp is offset 1.
    for deltas in [&[5, 9, 1][..], &[9, 2][..]] {
        let r = h.produce(-1, batch_with_deltas(deltas));
        assert_eq!(h.produced(r).0, 0);
    }
    assert_eq!(list_offset(&mut h, -3), (0, 1, 1_700_000_000_009));
    assert_eq!(list_offset(&mut h, -4).1, 0, "earliest-local is earliest");
    assert_eq!(list_offset(&mut h, -5), (0, -1, -1), "nothing is tiered");
    assert_eq!(
        list_offset(&mut h, -6).0,
        ResponseError::InvalidRequest.code()
    );
}

#[test]
fn metadata_refuses_invalid_topic_names_and_reports_authorized_operations() {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
    let dir = tempdir();
    let mut h = Harness::open(dir.path());
    h.create_topic(1);
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_include_topic_authorized_operations(true)
        .with_include_cluster_authorized_operations(true)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("bad$#!"))),
            MetadataRequestTopic::default().with_name(Some(name(TOPIC))),
        ]));
    let r = h.send(ApiKey::Metadata, 10, RequestKind::Metadata(req));
    let resp: MetadataResponse = h.response(r, 10, true).unwrap();
    assert_eq!(
        resp.topics[0].error_code,
        ResponseError::InvalidTopicException.code(),
        "a name no topic can have"
    );
    assert_eq!(resp.topics[1].error_code, 0);
    assert_eq!(
        resp.topics[1].topic_authorized_operations.count_ones(),
        8,
        "every topic operation, as Kafka without an authorizer"
    );
    assert_eq!(resp.cluster_authorized_operations.count_ones(), 7);

    let plain = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(TOPIC)))
    ]));
    let r = h.send(ApiKey::Metadata, 10, RequestKind::Metadata(plain));
    let resp: MetadataResponse = h.response(r, 10, true).unwrap();
    assert_eq!(
        resp.topics[0].topic_authorized_operations,
        i32::MIN,
        "not asked"
    );
    assert_eq!(resp.cluster_authorized_operations, i32::MIN);
}
