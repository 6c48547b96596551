//! The trace file format, and record + replay of a host driven in-process.

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use io_sync::host::{self, EventReceiver, Host, HostOutput, LoopEvent, Slot};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, MetadataRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proto_core::group::CoordinatorConfig;
use proto_core::storage::batch::{encode_batch, BatchSpec};

use super::replay::{replay, TraceEnd};
use super::*;
use crate::disk_store::DiskStore;
use crate::metrics::Metrics;
use crate::node::topics::TopicConfig;
use crate::node::Node;
use crate::server::BrokerHost;

fn node_config() -> NodeConfig {
    NodeConfig {
        node_id: 1,
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9092,
        rack: Some("r1".into()),
        cluster_id: "trace-test".into(),
        auto_create_topics: true,
        default_partitions: 1,
        topic_defaults: TopicConfig::defaults(-1, -1, 1 << 20),
        tick_ms: 100,
        seed: 0x5eed,
        offsets_partitions: 2,
        coordinator: CoordinatorConfig {
            initial_rebalance_delay_ms: 0,
            ..CoordinatorConfig::kafka_defaults(0x5eed)
        },
        peers: [(1, "127.0.0.1:19092".to_string())].into(),
        default_replication_factor: 1,
    }
}

fn summary(n: u32) -> OutputSummary {
    OutputSummary {
        responds: n,
        closes: 1,
        persists: 2,
        sends: 3,
        digest: 0xdead_beef_0000_0000 | u64::from(n),
    }
}

fn sample_records() -> Vec<Record> {
    let inputs = [
        TraceInput::Opened {
            conn: 1,
            peer: "[::1]:50000".parse().unwrap(),
        },
        TraceInput::Frame {
            conn: 1,
            seq: 0,
            frame: Bytes::from_static(b"\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff"),
        },
        TraceInput::Tick {
            wall_ms: 1_700_000_000_000,
        },
        TraceInput::Persisted { group: 7, seq: 3 },
        TraceInput::PersistFailed {
            group: 7,
            error: "disk full".into(),
        },
        TraceInput::Housekeeping { wall_ms: -1 },
        TraceInput::Peer {
            from: 2,
            payload: Bytes::from_static(b"\x00raft"),
        },
        TraceInput::PeerDown { peer: 3 },
        TraceInput::Closed { conn: 1 },
    ];
    let mut records = vec![Record::Start {
        start: TraceStart::new(node_config()),
        outputs: summary(0),
    }];
    for (i, input) in inputs.into_iter().enumerate() {
        records.push(Record::Step {
            now_ms: 10 * i as u64,
            input,
            outputs: summary(i as u32),
        });
    }
    records.push(Record::End { steps: 7 });
    records
}

fn encode(records: &[Record]) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new()).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    w.into_inner()
}

/// Every record the bytes hold, and the error that stopped the reader.
fn decode(bytes: &[u8]) -> (Vec<Record>, Option<TraceError>) {
    let mut r = match TraceReader::new(Cursor::new(bytes)) {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e)),
    };
    let mut out = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => out.push(rec),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Records are compared by their debug form: `NodeConfig` has no `PartialEq`.
fn same(a: &[Record], b: &[Record]) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

#[test]
fn records_round_trip() {
    let records = sample_records();
    let bytes = encode(&records);
    assert_eq!(&bytes[..8], b"CHRNKTRC");
    assert_eq!(&bytes[8..12], &[0, 0, 0, 2]);
    let (back, err) = decode(&bytes);
    assert!(err.is_none(), "{err:?}");
    assert!(same(&records, &back), "{records:?}\n!=\n{back:?}");
}

#[test]
fn a_cut_tail_is_reported_as_truncated_after_every_whole_record() {
    let records = sample_records();
    let bytes = encode(&records);
    let whole = encode(&records[..records.len() - 1]).len();
    // Every cut inside the last record: its header, then its payload.
    for cut in whole + 1..bytes.len() {
        let (back, err) = decode(&bytes[..cut]);
        assert!(same(&records[..records.len() - 1], &back), "cut at {cut}");
        match err {
            Some(e @ TraceError::Truncated { .. }) => {
                assert!(e.is_truncated_tail());
                assert!(e.to_string().contains("record 10"), "{e}");
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // A cut between records is a clean end (no end record).
    let (back, err) = decode(&bytes[..whole]);
    assert!(err.is_none());
    assert_eq!(back.len(), records.len() - 1);
}

#[test]
fn a_flipped_byte_fails_the_crc_of_its_record() {
    let records = sample_records();
    let bytes = encode(&records);
    let before = encode(&records[..3]).len();
    // A byte inside record 3's payload (8 bytes of frame header first).
    let mut bad = bytes.clone();
    bad[before + 8 + 2] ^= 0x40;
    let (back, err) = decode(&bad);
    assert_eq!(back.len(), 3);
    match err {
        Some(TraceError::Corrupt {
            record: 3, reason, ..
        }) => {
            assert!(reason.contains("CRC"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_files_and_versions_are_refused() {
    assert!(matches!(
        decode(b"hello world, not a trace").1,
        Some(TraceError::NotATrace)
    ));
    let mut v1 = encode(&sample_records());
    v1[11] = 1;
    assert!(matches!(
        decode(&v1).1,
        Some(TraceError::Version { found: 1 })
    ));
}

// ----- record and replay in-process ----------------------------------------

/// A `BrokerHost` over a temporary data directory, recording, driven by the
/// test in place of a driver.
struct Live {
    host: BrokerHost,
    events: EventReceiver,
    _handle: host::LoopHandle,
    outputs: Vec<HostOutput>,
}

impl Live {
    fn start(data: &Path, trace: &Path) -> Live {
        let (handle, events) = host::channel();
        let (store, persister, restored) = DiskStore::open(data, false, handle.waker()).unwrap();
        let cfg = node_config();
        let recorder = Recorder::create(trace, TraceStart::new(cfg.clone())).unwrap();
        let node = Node::new(
            cfg,
            Box::new(store.clone()),
            restored.table,
            restored.groups,
        )
        .unwrap();
        let host = BrokerHost::new(
            node,
            persister,
            store,
            Arc::new(Metrics::new()),
            Arc::new(AtomicBool::new(false)),
            1 << 20,
            Some(recorder),
        );
        let mut live = Live {
            host,
            events,
            _handle: handle,
            outputs: Vec::new(),
        };
        live.settle();
        live
    }

    /// Feeds disk completions until every submitted write has completed.
    fn settle(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.host.writes_in_flight() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(LoopEvent::Wake) => self.host.on_wake(Instant::now()),
                Ok(_) => {}
                Err(_) => panic!("the disk did not finish its writes in time"),
            }
        }
        self.outputs.extend(self.host.take_outputs());
    }

    fn frame(&mut self, conn: u64, seq: u64, frame: Bytes) {
        self.host
            .on_frame(Instant::now(), Slot { conn, seq }, frame);
        self.settle();
    }
}

/// A request frame as the host receives it (no size prefix).
fn request<T: Encodable>(key: ApiKey, v: i16, correlation_id: i32, body: &T) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(v)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("trace-test")))
        .encode(&mut buf, key.request_header_version(v))
        .unwrap();
    body.encode(&mut buf, v).unwrap();
    buf.freeze()
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn batch(n: usize) -> Bytes {
    let values: Vec<String> = (0..n).map(|i| format!("value-{i}")).collect();
    let records: Vec<proto_core::storage::batch::Record> = values
        .iter()
        .map(|v| proto_core::storage::batch::Record {
            timestamp_delta: 0,
            key: None,
            value: Some(v.as_bytes()),
        })
        .collect();
    let spec = BatchSpec {
        base_offset: 0,
        partition_leader_epoch: -1,
        attributes: 0,
        base_timestamp: 1_700_000_000_000,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
    Bytes::from(encode_batch(&spec, &records))
}

/// Records a short session: metadata auto-creating a topic, two acks=all
/// produces, a fetch, a frame that cannot be decoded, ticks, closes.
fn record_session(data: &Path, trace: &Path) {
    let mut live = Live::start(data, trace);
    let now = Instant::now();
    live.host
        .on_opened(now, 1, "127.0.0.1:40001".parse().unwrap());
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic("t")))
        ]))
        .with_allow_auto_topic_creation(true);
    live.frame(1, 0, request(ApiKey::Metadata, 4, 1, &metadata));
    for (seq, n) in [(1, 3), (2, 5)] {
        let produce = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic("t"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(n)))])]);
        live.frame(
            1,
            seq,
            request(ApiKey::Produce, 7, seq as i32 + 1, &produce),
        );
    }
    for _ in 0..3 {
        live.host.on_tick(Instant::now());
        live.settle();
    }
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            kafka_protocol::messages::fetch_request::FetchTopic::default()
                .with_topic(topic("t"))
                .with_partitions(vec![
                    kafka_protocol::messages::fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    live.frame(1, 3, request(ApiKey::Fetch, 11, 4, &fetch));
    live.host
        .on_opened(Instant::now(), 2, "127.0.0.1:40002".parse().unwrap());
    live.frame(2, 0, Bytes::from_static(b"\x00"));
    live.host.on_closed(Instant::now(), 2);
    live.host.on_closed(Instant::now(), 1);
    live.host.on_tick(Instant::now());
    let responded = live
        .outputs
        .iter()
        .filter(|o| matches!(o, HostOutput::Respond { frame: Some(_), .. }))
        .count();
    assert_eq!(
        responded, 4,
        "metadata, two produces and a fetch were answered"
    );
    live.host.on_shutdown();
}

fn read_all(path: &Path) -> Vec<Record> {
    let (records, err) = decode(&std::fs::read(path).unwrap());
    assert!(err.is_none(), "{err:?}");
    records
}

fn write_all(path: &Path, records: &[Record]) {
    std::fs::write(path, encode(records)).unwrap();
}

#[test]
fn a_recorded_session_replays_identically_and_tampering_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("session.trace");
    record_session(&dir.path().join("live"), &trace);

    let mut seen = 0;
    let report = replay(&trace, &dir.path().join("replay-1"), &mut |_| seen += 1).unwrap();
    assert!(report.identical(), "{:?}", report.divergence);
    assert_eq!(report.end, TraceEnd::Complete);
    assert_eq!(seen, report.inputs);
    assert_eq!(report.requests.get("Metadata"), Some(&1));
    assert_eq!(report.requests.get("Produce"), Some(&2));
    assert_eq!(report.requests.get("Fetch"), Some(&1));
    assert_eq!(report.requests.get("unknown"), Some(&1));
    assert_eq!(report.ticks, 4);
    assert!(report.persisted >= 2, "{report:?}");
    assert_eq!(report.seed, 0x5eed);

    let records = read_all(&trace);
    let produce_at = records
        .iter()
        .position(|r| {
            matches!(r, Record::Step { input: TraceInput::Frame { frame, .. }, .. }
                if frame_api(frame).map(|a| a.0) == Some("Produce"))
        })
        .unwrap();

    // A wrong recorded digest: found at that very input.
    let mut tampered = records.clone();
    if let Record::Step { outputs, .. } = &mut tampered[produce_at] {
        outputs.digest ^= 1 << 17;
    }
    let bad = dir.path().join("digest.trace");
    write_all(&bad, &tampered);
    let report = replay(&bad, &dir.path().join("replay-2"), &mut |_| {}).unwrap();
    let d = report.divergence.expect("a divergence");
    assert_eq!(d.input, produce_at as u64, "{d}");
    assert_eq!(report.end, TraceEnd::Diverged);

    // A changed input (the fetch asks from offset 3, not 0): found there.
    let fetch_at = records
        .iter()
        .position(|r| {
            matches!(r, Record::Step { input: TraceInput::Frame { frame, .. }, .. }
                if frame_api(frame).map(|a| a.0) == Some("Fetch"))
        })
        .unwrap();
    let mut tampered = records.clone();
    if let Record::Step {
        input: TraceInput::Frame { frame, .. },
        ..
    } = &mut tampered[fetch_at]
    {
        let mut f = frame.to_vec();
        // The correlation id is bytes 4..8 of the header.
        f[7] ^= 0x10;
        *frame = Bytes::from(f);
    }
    write_all(&bad, &tampered);
    let report = replay(&bad, &dir.path().join("replay-3"), &mut |_| {}).unwrap();
    let d = report.divergence.expect("a divergence");
    assert_eq!(d.input, fetch_at as u64, "{d}");
    assert!(d.to_string().contains("Fetch v11"), "{d}");

    // A tail cut by a kill: everything before it replays, and the end says so.
    let bytes = std::fs::read(&trace).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() - 5]).unwrap();
    let report = replay(&bad, &dir.path().join("replay-4"), &mut |_| {}).unwrap();
    assert!(report.identical(), "{:?}", report.divergence);
    assert!(
        matches!(report.end, TraceEnd::Truncated(_)),
        "{:?}",
        report.end
    );
}
