//! librdkafka (rdkafka crate 0.39, librdkafka 2.12 built from source) against a
//! real `chronik` process, once per I/O driver (`tokio` and `sync`).
//!
//! Run: `cargo test -p conformance --test clients_rdkafka` (builds the broker
//! first unless `CHRONIK_BIN` names a binary). Broker logs of a failing test
//! are printed after the panic message.

mod clients;
#[path = "clients/rd.rs"]
mod rd;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clients::broker::{wait_for, Broker, DRIVERS};
use rd::*;
use rdkafka::admin::{AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// Produce and consume back in every codec; keys, values, headers, timestamps
/// survive, offsets run 0.. with no gaps, delivery reports name those offsets.
#[test]
fn round_trip_every_codec() {
    for io in DRIVERS {
        let b = Broker::start(io);
        for codec in CODECS {
            let topic = format!("rt-{codec}");
            let ctx = format!("[{io}] {topic}");
            let mut msgs = messages(400, &topic);
            // A few explicit CreateTime stamps too.
            for (i, m) in msgs.iter_mut().enumerate().filter(|(i, _)| i % 50 == 7) {
                m.timestamp = Some(1_700_000_000_000 + i as i64);
            }
            let reports = produce_all(
                &b.bootstrap(),
                &topic,
                None,
                &msgs,
                &[
                    ("compression.type", codec),
                    ("acks", "all"),
                    // Batch many records per request so compressed batches hold many.
                    ("linger.ms", "20"),
                ],
            );
            let mut by_offset = BTreeMap::new();
            for r in &reports {
                let (p, o) = acked(r);
                assert_eq!(p, 0, "{ctx}: partition of record {}", r.id);
                assert!(
                    by_offset.insert(o, r.id).is_none(),
                    "{ctx}: two records acknowledged at offset {o}"
                );
            }
            assert_eq!(
                by_offset.keys().copied().collect::<Vec<_>>(),
                (0..msgs.len() as i64).collect::<Vec<_>>(),
                "{ctx}: acknowledged offsets are not exactly 0..{}",
                msgs.len()
            );
            let got = consume(&b.bootstrap(), &topic, 0, msgs.len());
            assert_contiguous(&ctx, &got);
            for m in &got {
                let id = by_offset[&m.offset()];
                assert_same(&format!("{ctx} offset {}", m.offset()), &msgs[id], m);
            }
            assert_eq!(
                watermarks(&b.bootstrap(), &topic, 0),
                (0, msgs.len() as i64),
                "{ctx}: watermarks"
            );
        }
    }
}

/// acks=0, 1 and all: every record is then consumed, in order for acks 1/all.
#[test]
fn acks_levels() {
    for io in DRIVERS {
        let b = Broker::start(io);
        for acks in ["0", "1", "all"] {
            let topic = format!("acks-{acks}");
            let ctx = format!("[{io}] {topic}");
            let msgs = messages(300, &topic);
            let reports = produce_all(
                &b.bootstrap(),
                &topic,
                None,
                &msgs,
                &[("acks", acks), ("linger.ms", "5")],
            );
            let got = consume(&b.bootstrap(), &topic, 0, msgs.len());
            assert_contiguous(&ctx, &got);
            if acks == "0" {
                // No offsets in acks=0 reports; a single connection keeps order.
                for r in &reports {
                    assert!(
                        acked(r).1 < 0,
                        "{ctx}: acks=0 reports have no offset: {r:?}"
                    );
                }
                for (i, m) in got.iter().enumerate() {
                    assert_same(&format!("{ctx} offset {i}"), &msgs[i], m);
                }
            } else {
                for r in &reports {
                    let (_, o) = acked(r);
                    assert_same(&format!("{ctx} id {}", r.id), &msgs[r.id], &got[o as usize]);
                }
            }
        }
    }
}

/// A consumer waiting in a long-poll Fetch gets a record produced while it
/// waits. The fetch waits up to 120 s and the test only 30 s, so the record can
/// arrive in time only if the produce woke the parked fetch: no clock is read
/// and nothing is timed.
#[test]
fn long_poll_fetch_wakes_on_produce() {
    const MAX_WAIT_MS: u64 = 120_000;
    for io in DRIVERS {
        let b = Broker::start(io);
        let topic = "long-poll";
        let first = messages(1, "first");
        produce_all(&b.bootstrap(), topic, None, &first, &[("acks", "all")]);

        enum Ev {
            Msg(i64),
            Eof,
            Err(String),
        }
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let bootstrap = b.bootstrap();
        let stop2 = stop.clone();
        let c = consumer(
            &bootstrap,
            &[
                ("fetch.wait.max.ms", &MAX_WAIT_MS.to_string()),
                // librdkafka wants the socket timeout above the fetch wait.
                ("socket.timeout.ms", &(MAX_WAIT_MS + 10_000).to_string()),
            ],
        );
        let reader = std::thread::spawn(move || {
            assign(&c, topic, 0, Offset::Offset(0));
            while !stop2.load(Ordering::SeqCst) {
                let ev = match c.poll(Duration::from_millis(50)) {
                    None => continue,
                    Some(Ok(m)) => Ev::Msg(m.offset()),
                    Some(Err(KafkaError::PartitionEOF(_))) => Ev::Eof,
                    Some(Err(e)) => Ev::Err(e.to_string()),
                };
                if tx.send(ev).is_err() {
                    break;
                }
            }
        });
        let next = |what: &str| -> Ev {
            match rx.recv_timeout(OP_TIMEOUT) {
                Ok(Ev::Err(e)) => panic!("[{io}] consumer error while waiting for {what}: {e}"),
                Ok(ev) => ev,
                Err(_) => panic!("[{io}] nothing from the consumer in {OP_TIMEOUT:?} ({what})"),
            }
        };
        match next("record 0") {
            Ev::Msg(0) => {}
            _ => panic!("[{io}] expected record 0 first"),
        }
        // The consumer's next Fetch, at offset 1, finds nothing and parks (an
        // empty answer, and so partition EOF, would only come after 120 s).
        produce_all(
            &b.bootstrap(),
            topic,
            None,
            &messages(1, "second"),
            &[("acks", "all")],
        );
        loop {
            match next("record 1 (the parked fetch must be woken by the produce)") {
                Ev::Msg(1) => break,
                Ev::Msg(o) => panic!("[{io}] unexpected record {o}"),
                Ev::Eof => {}
                Ev::Err(_) => unreachable!(),
            }
        }
        stop.store(true, Ordering::SeqCst);
        reader.join().unwrap();
    }
}

/// Timestamp queries and the offsets Kafka answers for 50 records stamped
/// `base + 1000 * offset`: the first record at or after the target, End past
/// the last one.
const TIME_QUERIES: [(i64, Offset); 7] = [
    (-5000, Offset::Offset(0)),
    (0, Offset::Offset(0)),
    (2500, Offset::Offset(3)),
    (21_000, Offset::Offset(21)),
    (31_500, Offset::Offset(32)),
    (49_000, Offset::Offset(49)),
    (49_001, Offset::End),
];

/// Produces the 50 stamped records to `topic` with at most `per_batch` records
/// per batch, checks the watermarks, and answers [`TIME_QUERIES`] with
/// offsets_for_times (ListOffsets by timestamp).
fn offsets_for_times_case(b: &Broker, topic: &str, per_batch: usize) -> Vec<(i64, Offset)> {
    let io = &b.io;
    let base: i64 = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000)
        / 1000
        * 1000;
    let mut msgs = messages(50, topic);
    for (i, m) in msgs.iter_mut().enumerate() {
        m.timestamp = Some(base + i as i64 * 1000);
    }
    let per_batch = per_batch.to_string();
    let linger = if per_batch == "1" { "0" } else { "5" };
    produce_all(
        &b.bootstrap(),
        topic,
        None,
        &msgs,
        &[
            ("acks", "all"),
            ("linger.ms", linger),
            ("batch.num.messages", &per_batch),
            // One request at a time, so one-record batches stay one per request.
            ("max.in.flight.requests.per.connection", "1"),
        ],
    );
    assert_eq!(
        watermarks(&b.bootstrap(), topic, 0),
        (0, 50),
        "[{io}] {topic} watermarks"
    );
    let c = consumer(&b.bootstrap(), &[]);
    TIME_QUERIES
        .iter()
        .map(|&(delta, _)| {
            let ts = base + delta;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
                .unwrap();
            let r = c
                .offsets_for_times(tpl, OP_TIMEOUT)
                .unwrap_or_else(|e| panic!("[{io}] offsets_for_times({ts}): {e}"));
            let e = r.find_partition(topic, 0).unwrap();
            assert_eq!(e.error(), Ok(()), "[{io}] offsets_for_times({ts}) error");
            (delta, e.offset())
        })
        .collect()
}

/// ListOffsets: earliest 0 and latest = count (also on an empty topic), and
/// offsets_for_times with one record per batch.
#[test]
fn list_offsets_and_offsets_for_times() {
    for io in DRIVERS {
        let b = Broker::start(io);
        assert_eq!(
            offsets_for_times_case(&b, "times", 1),
            TIME_QUERIES.to_vec(),
            "[{io}] offsets_for_times(base + delta), one record per batch"
        );

        // An empty topic: earliest = latest = 0.
        let a = admin(&b.bootstrap());
        let r = block_on(a.create_topics(
            &[NewTopic::new("empty", 1, TopicReplication::Fixed(1))],
            &admin_opts(),
        ))
        .expect("CreateTopics");
        assert_eq!(r, vec![Ok("empty".to_string())], "[{io}] create empty");
        assert_eq!(
            watermarks(&b.bootstrap(), "empty", 0),
            (0, 0),
            "[{io}] empty topic"
        );
    }
}

/// offsets_for_times when the target falls inside a batch: Kafka answers the
/// first *record* at or after the timestamp, not the batch's base offset.
#[test]
fn offsets_for_times_inside_a_batch() {
    let mut wrong = Vec::new();
    for io in DRIVERS {
        let b = Broker::start(io);
        let got = offsets_for_times_case(&b, "times-batched", 7);
        if got != TIME_QUERIES.to_vec() {
            wrong.push(format!("[{io}] got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "offsets_for_times(base + delta), 7 records per batch: want {:?}\n{}",
        TIME_QUERIES,
        wrong.join("\n")
    );
}

fn config_value(
    a: &rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    topic: &str,
    name: &str,
) -> (Option<String>, bool) {
    let res = block_on(a.describe_configs(&[ResourceSpecifier::Topic(topic)], &admin_opts()))
        .expect("DescribeConfigs request");
    assert_eq!(res.len(), 1);
    let r = res
        .into_iter()
        .next()
        .unwrap()
        .unwrap_or_else(|e| panic!("DescribeConfigs {topic}: {e:?}"));
    let e = r
        .get(name)
        .unwrap_or_else(|| panic!("DescribeConfigs {topic} has no {name}: {:?}", r.entries));
    (e.value.clone(), e.is_default)
}

/// CreateTopics (partitions + config), DescribeConfigs, AlterConfigs,
/// IncrementalAlterConfigs, CreatePartitions, DeleteTopics, and the errors
/// for a duplicate, a bad name and replication factor 3.
#[test]
fn admin_topic_lifecycle() {
    for io in DRIVERS {
        let b = Broker::start_with(io, &["--auto-create-topics", "false"]);
        let a = admin(&b.bootstrap());
        let o = admin_opts();
        let t = "admin-topic";

        let r = block_on(
            a.create_topics(
                &[NewTopic::new(t, 3, TopicReplication::Fixed(1))
                    .set("retention.ms", "123456")
                    .set("segment.bytes", "1048576")],
                &o,
            ),
        )
        .expect("CreateTopics request");
        assert_eq!(r, vec![Ok(t.to_string())], "[{io}] create {t}");
        let parts = wait_for("the new topic in Metadata", OP_TIMEOUT, || {
            topics(&a).get(t).copied()
        });
        assert_eq!(parts, 3, "[{io}] partitions of {t}");
        assert_eq!(
            config_value(&a, t, "retention.ms"),
            (Some("123456".into()), false),
            "[{io}] retention.ms after create"
        );
        assert_eq!(
            config_value(&a, t, "segment.bytes"),
            (Some("1048576".into()), false),
            "[{io}] segment.bytes after create"
        );

        // Errors.
        let r = block_on(a.create_topics(
            &[
                NewTopic::new(t, 1, TopicReplication::Fixed(1)),
                NewTopic::new("bad name!", 1, TopicReplication::Fixed(1)),
                NewTopic::new("rf3", 1, TopicReplication::Fixed(3)),
            ],
            &o,
        ))
        .expect("CreateTopics request");
        let mut r: BTreeMap<String, Result<String, RDKafkaErrorCode>> = r
            .into_iter()
            .map(|x| match x {
                Ok(n) => (n.clone(), Ok(n)),
                Err((n, e)) => (n, Err(e)),
            })
            .collect();
        assert_eq!(
            r.remove(t),
            Some(Err(RDKafkaErrorCode::TopicAlreadyExists)),
            "[{io}] duplicate create"
        );
        assert_eq!(
            r.remove("bad name!"),
            Some(Err(RDKafkaErrorCode::InvalidTopic)),
            "[{io}] bad topic name"
        );
        assert_eq!(
            r.remove("rf3"),
            Some(Err(RDKafkaErrorCode::InvalidReplicationFactor)),
            "[{io}] replication factor 3 on one node"
        );
        let listed = topics(&a);
        assert!(
            !listed.contains_key("rf3") && !listed.contains_key("bad name!"),
            "[{io}] failed creates must not create anything: {listed:?}"
        );
        assert_eq!(
            listed.get(t),
            Some(&3),
            "[{io}] duplicate create changed {t}"
        );

        // AlterConfigs replaces the whole set: segment.bytes goes back to default.
        let r = block_on(a.alter_configs(
            &[AlterConfig::new(ResourceSpecifier::Topic(t)).set("retention.ms", "654321")],
            &o,
        ))
        .expect("AlterConfigs request");
        assert!(r.iter().all(|x| x.is_ok()), "[{io}] AlterConfigs: {r:?}");
        assert_eq!(
            config_value(&a, t, "retention.ms"),
            (Some("654321".into()), false),
            "[{io}] retention.ms after AlterConfigs"
        );
        assert!(
            config_value(&a, t, "segment.bytes").1,
            "[{io}] AlterConfigs (non-incremental) must reset unnamed topic configs to default, \
             segment.bytes is {:?}",
            config_value(&a, t, "segment.bytes")
        );

        // IncrementalAlterConfigs: set one, delete another.
        incremental_alter_topic(
            &a,
            t,
            &[
                IncOp::Set("segment.bytes", "2097152"),
                IncOp::Delete("retention.ms"),
            ],
        )
        .unwrap_or_else(|e| panic!("[{io}] IncrementalAlterConfigs: {e}"));
        assert_eq!(
            config_value(&a, t, "segment.bytes"),
            (Some("2097152".into()), false),
            "[{io}] segment.bytes after IncrementalAlterConfigs SET"
        );
        assert!(
            config_value(&a, t, "retention.ms").1,
            "[{io}] retention.ms after IncrementalAlterConfigs DELETE must be the default: {:?}",
            config_value(&a, t, "retention.ms")
        );

        // CreatePartitions 3 -> 5; the new partition takes records.
        let r = block_on(a.create_partitions(&[NewPartitions::new(t, 5)], &o))
            .expect("CreatePartitions request");
        assert_eq!(r, vec![Ok(t.to_string())], "[{io}] CreatePartitions");
        wait_for("5 partitions in Metadata", OP_TIMEOUT, || {
            (topics(&a).get(t) == Some(&5)).then_some(())
        });
        let msgs = messages(3, "p4");
        produce_all(&b.bootstrap(), t, Some(4), &msgs, &[("acks", "all")]);
        let got = consume(&b.bootstrap(), t, 4, 3);
        for (i, m) in got.iter().enumerate() {
            assert_same(&format!("[{io}] {t}/4 #{i}"), &msgs[i], m);
        }
        let r = block_on(a.create_partitions(&[NewPartitions::new(t, 2)], &o))
            .expect("CreatePartitions request");
        assert_eq!(
            r,
            vec![Err((t.to_string(), RDKafkaErrorCode::InvalidPartitions))],
            "[{io}] shrinking partitions"
        );

        // DeleteTopics, then deleting it again.
        let r = block_on(a.delete_topics(&[t], &o)).expect("DeleteTopics request");
        assert_eq!(r, vec![Ok(t.to_string())], "[{io}] DeleteTopics");
        wait_for("the topic gone from Metadata", OP_TIMEOUT, || {
            (!topics(&a).contains_key(t)).then_some(())
        });
        let r = block_on(a.delete_topics(&[t], &o)).expect("DeleteTopics request");
        assert_eq!(
            r,
            vec![Err((
                t.to_string(),
                RDKafkaErrorCode::UnknownTopicOrPartition
            ))],
            "[{io}] deleting a deleted topic"
        );
        // The name can be used again, and starts empty.
        let r = block_on(a.create_topics(&[NewTopic::new(t, 1, TopicReplication::Fixed(1))], &o))
            .expect("CreateTopics request");
        assert_eq!(r, vec![Ok(t.to_string())], "[{io}] re-create {t}");
        wait_for("the re-created topic", OP_TIMEOUT, || {
            topics(&a).get(t).copied()
        });
        assert_eq!(
            watermarks(&b.bootstrap(), t, 0),
            (0, 0),
            "[{io}] re-created topic is empty"
        );
    }
}

/// SIGTERM, start again on the same data: records, topic configs and
/// partition counts are all still there, and new records follow on.
#[test]
fn restart_keeps_data() {
    for io in DRIVERS {
        let mut b = Broker::start(io);
        let a = admin(&b.bootstrap());
        let r = block_on(
            a.create_topics(
                &[NewTopic::new("kept-3", 3, TopicReplication::Fixed(1))
                    .set("retention.ms", "86400000")],
                &admin_opts(),
            ),
        )
        .expect("CreateTopics");
        assert_eq!(r, vec![Ok("kept-3".to_string())], "[{io}] create kept-3");
        drop(a);

        let msgs = messages(500, "kept");
        produce_all(
            &b.bootstrap(),
            "kept",
            None,
            &msgs,
            &[("acks", "all"), ("compression.type", "lz4")],
        );
        let part_msgs: Vec<_> = (0..3)
            .map(|p| messages(20 + p, &format!("kept-3-{p}")))
            .collect();
        for (p, m) in part_msgs.iter().enumerate() {
            produce_all(
                &b.bootstrap(),
                "kept-3",
                Some(p as i32),
                m,
                &[("acks", "all")],
            );
        }

        b.stop();
        b.restart();

        let got = consume(&b.bootstrap(), "kept", 0, msgs.len());
        assert_contiguous(&format!("[{io}] kept"), &got);
        for (i, m) in got.iter().enumerate() {
            assert_same(&format!("[{io}] kept after restart #{i}"), &msgs[i], m);
        }
        for (p, want) in part_msgs.iter().enumerate() {
            let got = consume(&b.bootstrap(), "kept-3", p as i32, want.len());
            for (i, m) in got.iter().enumerate() {
                assert_same(
                    &format!("[{io}] kept-3/{p} after restart #{i}"),
                    &want[i],
                    m,
                );
            }
        }
        let a = admin(&b.bootstrap());
        assert_eq!(
            topics(&a).get("kept-3"),
            Some(&3),
            "[{io}] partitions after restart"
        );
        assert_eq!(
            config_value(&a, "kept-3", "retention.ms"),
            (Some("86400000".into()), false),
            "[{io}] topic config after restart"
        );
        // New records continue the offsets.
        let more = messages(10, "more");
        let reports = produce_all(&b.bootstrap(), "kept", None, &more, &[("acks", "all")]);
        let offsets: Vec<i64> = reports.iter().map(|r| acked(r).1).collect();
        assert_eq!(
            offsets,
            (500..510).collect::<Vec<_>>(),
            "[{io}] offsets after restart"
        );
        assert_eq!(
            watermarks(&b.bootstrap(), "kept", 0),
            (0, 510),
            "[{io}] watermarks"
        );
    }
}

/// kill -9 in the middle of an acks=all produce stream, start again: every
/// record whose delivery report succeeded is there at its offset, and the log
/// has no offset gaps.
#[test]
fn kill9_keeps_every_acknowledged_record() {
    for io in DRIVERS {
        let mut b = Broker::start(io);
        let topic = "kill9";
        let payload = |id: usize| format!("kill9 record {id}").into_bytes();
        let (p, reports) = producer(
            &b.bootstrap(),
            &[
                ("acks", "all"),
                ("linger.ms", "2"),
                ("message.timeout.ms", "20000"),
                ("reconnect.backoff.max.ms", "200"),
                ("queue.buffering.max.messages", "2000"),
            ],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut id = 0;
            while !stop2.load(Ordering::SeqCst) {
                let m = Msg {
                    key: Some(id.to_string().into_bytes()),
                    value: Some(payload(id)),
                    headers: vec![],
                    timestamp: None,
                };
                send(&p, topic, Some(0), id, &m);
                p.poll(Duration::ZERO);
                id += 1;
            }
            let _ = p.flush(Duration::from_secs(40));
            id
        });

        wait_for("2000 acknowledged records", OP_TIMEOUT, || {
            (reports.ok.load(Ordering::SeqCst) >= 2000).then_some(())
        });
        b.kill9();
        let acked_at_kill = reports.ok.load(Ordering::SeqCst);
        b.restart();
        // The producer reconnects and goes on.
        wait_for("acknowledgements after the restart", OP_TIMEOUT, || {
            (reports.ok.load(Ordering::SeqCst) >= acked_at_kill + 500).then_some(())
        });
        stop.store(true, Ordering::SeqCst);
        let sent = writer.join().unwrap();

        let all = reports.all.lock().unwrap().clone();
        let ok: Vec<(i64, usize)> = all
            .iter()
            .filter_map(|r| r.result.as_ref().ok().map(|&(_, o)| (o, r.id)))
            .collect();
        let failed = all.len() - ok.len();
        eprintln!(
            "[{io}] kill9: {sent} sent, {} acknowledged ({acked_at_kill} before the kill), {failed} failed",
            ok.len()
        );
        let (low, high) = watermarks(&b.bootstrap(), topic, 0);
        eprintln!(
            "[{io}] kill9: log end offset {high} ({} duplicates from retries)",
            high - ok.len() as i64
        );
        assert_eq!(low, 0, "[{io}] earliest offset");
        let got = consume(&b.bootstrap(), topic, 0, high as usize);
        assert_contiguous(&format!("[{io}] {topic}"), &got);
        let mut seen = std::collections::HashSet::new();
        for (o, id) in &ok {
            assert!(
                seen.insert(*o),
                "[{io}] two records acknowledged at offset {o}"
            );
            let m = got.get(*o as usize).unwrap_or_else(|| {
                panic!("[{io}] acknowledged record {id} at offset {o} lost: log ends at {high}")
            });
            assert_eq!(
                m.payload(),
                Some(payload(*id).as_slice()),
                "[{io}] offset {o} should hold acknowledged record {id}"
            );
        }
    }
}
