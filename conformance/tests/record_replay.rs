//! Recorded traces from a real `chronik` process, replayed into a fresh node:
//! the sans-IO contract (same inputs, same outputs) checked on what real
//! clients and real drivers fed the node, once per I/O driver.
//!
//! Each run starts a broker with `--record-trace`, drives it with librdkafka
//! (an acks=all producer, an assigned consumer, a consumer group that
//! commits), stops it cleanly and replays the trace with
//! `broker::trace::replay`, which must find every input identical. Then the
//! trace is tampered with (a recorded digest, and a request's bytes) and the
//! replay must name exactly the input that was changed.
//!
//! A three-node cluster (one node per driver mix) is recorded too: every node
//! records its peer frames with its client requests, and each node's trace
//! must replay identically on its own.
//!
//! Run: `cargo test -p conformance --test record_replay`.

mod clients;
#[path = "clients/cluster.rs"]
mod cluster;
#[path = "clients/group.rs"]
mod group;
#[path = "clients/rd.rs"]
mod rd;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant};

use broker::trace::replay::{replay, ReplayReport, TraceEnd};
use broker::trace::{frame_api, Record, TraceInput, TraceReader, TraceWriter};
use bytes::Bytes;
use clients::broker::{Broker, DRIVERS};
use group::{committed, create_topic, member_config, numbered};
use rd::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::Offset;

const RECORDS: usize = 200;

/// Produce (acks=all) to a two-partition topic, read partition 0 back by
/// assignment, then consume everything in a group that commits.
fn workload(b: &Broker) {
    let topic = "traced";
    create_topic(b, topic, 2);
    let msgs: Vec<Msg> = (0..RECORDS).map(|i| numbered(topic, i)).collect();
    for p in 0..2 {
        produce_all(
            &b.bootstrap(),
            topic,
            Some(p),
            &msgs[p as usize * RECORDS / 2..(p as usize + 1) * RECORDS / 2],
            &[("acks", "all"), ("linger.ms", "5")],
        );
    }
    let read = consume(&b.bootstrap(), topic, 0, RECORDS / 2);
    assert_contiguous(&format!("[{}] partition 0", b.io), &read);

    let group = "traced-group";
    let c: BaseConsumer = member_config(&b.bootstrap(), group, &[])
        .create()
        .expect("create the group consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut seen = 0;
    let deadline = Instant::now() + OP_TIMEOUT;
    while seen < RECORDS {
        assert!(
            Instant::now() < deadline,
            "[{}] the group consumer read {seen} of {RECORDS} records",
            b.io
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => panic!("[{}] group consumer: {e}", b.io),
            Some(Ok(_)) => seen += 1,
        }
    }
    c.commit_consumer_state(CommitMode::Sync)
        .expect("commit the group's offsets");
    drop(c);
    assert_eq!(
        committed(&b.bootstrap(), group, topic, 2),
        vec![Offset::Offset(RECORDS as i64 / 2); 2],
        "[{}] committed offsets",
        b.io
    );
}

fn read_records(path: &Path) -> Vec<Record> {
    let mut r = TraceReader::new(BufReader::new(File::open(path).unwrap())).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec);
    }
    out
}

fn write_records(path: &Path, records: &[Record]) {
    let mut w = TraceWriter::new(std::io::BufWriter::new(File::create(path).unwrap())).unwrap();
    for r in records {
        w.write(r).unwrap();
    }
    std::io::Write::flush(w.get_mut()).unwrap();
}

/// The number of the first recorded input that is a request of `api`.
fn first_request(records: &[Record], api: &str) -> usize {
    records
        .iter()
        .position(|r| {
            matches!(r, Record::Step { input: TraceInput::Frame { frame, .. }, .. }
                if frame_api(frame).map(|a| a.0) == Some(api))
        })
        .unwrap_or_else(|| panic!("the trace has no {api} request"))
}

fn replay_into(trace: &Path, dir: &Path, name: &str) -> ReplayReport {
    replay(trace, &dir.join(name), &mut |_| {})
        .unwrap_or_else(|e| panic!("replaying {}: {e}", trace.display()))
}

#[test]
fn a_recorded_broker_replays_identically_and_tampering_is_found() {
    for io in DRIVERS {
        let dir = tempfile::Builder::new()
            .prefix(&format!("chronik-trace-{io}-"))
            .tempdir()
            .unwrap();
        let trace = dir.path().join("broker.trace");
        let trace_arg = trace.to_str().unwrap().to_string();
        let mut b = Broker::start_with(
            io,
            &[
                "--group-initial-rebalance-delay-ms",
                "0",
                "--record-trace",
                &trace_arg,
            ],
        );
        workload(&b);
        b.stop();

        let started = Instant::now();
        let report = replay_into(&trace, dir.path(), "replay");
        eprintln!(
            "[{io}] replayed {} inputs ({} requests, {} ticks, {} writes) in {:.2?}",
            report.inputs,
            report.requests.values().sum::<u64>(),
            report.ticks,
            report.persists,
            started.elapsed()
        );
        assert!(
            report.identical(),
            "[{io}] the replay diverged: {}",
            report.divergence.as_ref().unwrap()
        );
        assert_eq!(report.end, TraceEnd::Complete, "[{io}]");
        for api in [
            "Produce",
            "Fetch",
            "JoinGroup",
            "SyncGroup",
            "OffsetCommit",
            "OffsetFetch",
        ] {
            assert!(
                report.requests.get(api).is_some_and(|&n| n > 0),
                "[{io}] no {api} in {:?}",
                report.requests
            );
        }
        assert!(
            report.persisted > 0 && report.opened > 0,
            "[{io}] {report:?}"
        );

        let records = read_records(&trace);
        let tampered = dir.path().join("tampered.trace");

        // A recorded digest changed: the replay names that input.
        let commit_at = first_request(&records, "OffsetCommit");
        let mut changed = records.clone();
        if let Record::Step { outputs, .. } = &mut changed[commit_at] {
            outputs.digest ^= 1;
        }
        write_records(&tampered, &changed);
        let report = replay_into(&tampered, dir.path(), "replay-digest");
        let d = report.divergence.expect("the changed digest is found");
        assert_eq!(d.input, commit_at as u64, "[{io}] {d}");
        assert!(d.what.contains("OffsetCommit"), "[{io}] {d}");

        // A request's bytes changed (a produce's last byte: inside the batch,
        // failing its CRC, or a tag section that no longer decodes; either
        // way the broker answers differently): found at that input.
        let produce_at = first_request(&records, "Produce");
        let mut changed = records.clone();
        if let Record::Step {
            input: TraceInput::Frame { frame, .. },
            ..
        } = &mut changed[produce_at]
        {
            let mut f = frame.to_vec();
            *f.last_mut().unwrap() ^= 0xff;
            *frame = Bytes::from(f);
        }
        write_records(&tampered, &changed);
        let report = replay_into(&tampered, dir.path(), "replay-input");
        let d = report.divergence.expect("the changed request is found");
        assert_eq!(d.input, produce_at as u64, "[{io}] {d}");
    }
}

#[test]
fn every_node_of_a_recorded_cluster_replays_identically() {
    let _slot = cluster::slot();
    let traces = tempfile::tempdir().expect("a directory for the traces");
    let path = |id: u32| traces.path().join(format!("node-{id}.trace"));
    let mut c = cluster::Cluster::start_each(
        "record_replay/mixed",
        &cluster::io_mode("mixed"),
        &[],
        |id| vec!["--record-trace".into(), path(id).display().to_string()],
    );
    let topic = "traced-cluster";
    let controller = c.controller();
    let follower = c.ids().into_iter().find(|&id| id != controller).unwrap();
    cluster::create_topic(c.node(follower).kafka_addr(), topic, 2, 3)
        .unwrap_or_else(|e| panic!("create {topic}: {e}"));
    c.wait_leaders(topic, 2);
    let msgs: Vec<Msg> = (0..RECORDS).map(|i| numbered(topic, i)).collect();
    let bootstrap = c.bootstrap();
    produce_all(&bootstrap, topic, Some(0), &msgs, &[("acks", "all")]);
    let read = consume(&bootstrap, topic, 0, RECORDS);
    assert_contiguous("cluster partition 0", &read);
    for id in c.ids() {
        c.stop(id);
    }
    for id in c.ids() {
        let report = replay_into(&path(id), traces.path(), &format!("replay-{id}"));
        assert!(report.identical(), "node {id}: {report:?}");
        assert!(
            report.peer_frames > 0 && report.sends > 0,
            "node {id} recorded no peer traffic: {report:?}"
        );
        assert!(
            matches!(report.end, TraceEnd::Complete),
            "node {id}: {:?}",
            report.end
        );
    }
}
