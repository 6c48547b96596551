//! Cluster mode end to end: three real `chronik` processes (`clients/cluster.rs`)
//! and librdkafka (rdkafka crate 0.39), each scenario once per io mode (every
//! node on tokio, every node on sync, and node 2 on sync between two tokio
//! nodes):
//!
//! - `leader_failover`: acks=all records survive a SIGKILL of the partition
//!   leader; the producer carries on with the new leader, and every record is
//!   there exactly once, in order.
//! - `partition_independence`: killing one partition's leader does not stop
//!   the partitions other nodes lead from acknowledging.
//! - `lifecycle`: a topic created through a node that must forward the request
//!   to the controller, a consumer group whose commits survive a SIGKILL,
//!   Metadata that leaves the dead node out of its brokers, and a restarted
//!   node that is listed again and catches up byte for byte.
//! - `minority_loss`: with two of three nodes down, acks=all is refused, not
//!   falsely acknowledged; with one back, writes resume.
//!
//! The tests wait on conditions with deadlines and assert nothing about how
//! long anything took. At most two clusters run at a time (`cluster::slot`).
//! On a failure every node's log tail follows the panic message and the
//! nodes' temporary directories are kept.
//!
//! Run: `cargo test -p conformance --test clients_cluster` (builds the broker
//! first unless `CHRONIK_BIN` names a binary); one scenario:
//! `... --test clients_cluster lifecycle::`.

mod clients;
#[path = "clients/cluster.rs"]
mod cluster;
#[path = "clients/group.rs"]
mod group;
#[path = "clients/rd.rs"]
mod rd;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cluster::{io_mode, wait_until, Cluster};
use group::{committed, id_of, member_config, numbered};
use rd::*;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::Producer;
use rdkafka::Offset;

/// Records per phase of a scenario.
const RECORDS: usize = 2000;
/// How long a flush may wait for delivery reports: longer than the
/// producers' 30 s `message.timeout.ms`, so a record that cannot be written
/// ends in a failed report rather than in a flush timeout.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a scenario waits for its clients to get somewhere: records read,
/// the first acknowledgements.
const DEADLINE: Duration = Duration::from_secs(60);

/// One `#[test]` per io mode for each scenario, as `scenario::mode`.
macro_rules! per_io_mode {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn tokio() {
                super::run(stringify!($scenario), "tokio", super::$scenario);
            }
            #[test]
            fn sync() {
                super::run(stringify!($scenario), "sync", super::$scenario);
            }
            #[test]
            fn mixed() {
                super::run(stringify!($scenario), "mixed", super::$scenario);
            }
        }
    )*};
}

per_io_mode!(
    leader_failover,
    partition_independence,
    lifecycle,
    minority_loss,
    far_behind_follower
);

/// A producer id right after the controller died: a fresh cluster loses its
/// controller before any node holds a block of producer ids, and an
/// idempotent producer started at once must still get one (from the next
/// controller) and have its records acknowledged.
#[test]
fn producer_ids_after_controller_loss() {
    run("producer_ids_after_controller_loss", "mixed", |c| {
        let topic = "pid-after-controller";
        let ctx = format!("[{}] {topic}", c.name);
        c.kill9(c.controller());
        let (p, reports) = producer_all(c, &[("enable.idempotence", "true")]);
        send_ids(&p, topic, None, 0..100);
        acked_ids(&ctx, &reports, 0..100);
    });
}

/// Racks: nodes 1 and 2 declare `--rack a`, node 3 `--rack b`. A topic of
/// six partitions with replication factor 2 must span both racks in every
/// partition, so node 3, alone in its rack, holds a replica of each.
#[test]
fn rack_aware_placement() {
    let _slot = cluster::slot();
    let c = Cluster::start_each("rack_aware_placement/mixed", &io_mode("mixed"), &[], |id| {
        vec!["--rack".into(), if id == 3 { "b" } else { "a" }.into()]
    });
    let topic = "racks";
    cluster::create_topic(c.node(1).kafka_addr(), topic, 6, 2)
        .unwrap_or_else(|e| panic!("[{}] CreateTopics: {e}", c.name));
    c.wait_leaders(topic, 6);
    for partition in 0..6 {
        let replicas = c.replicas(topic, partition);
        assert!(
            replicas.len() == 2 && replicas.contains(&3),
            "[{}] {topic}/{partition}: replicas {replicas:?} do not span racks a and b",
            c.name
        );
    }
    c.note("done");
}

/// Retention waits, within twice its limits, for a follower that is down.
/// On a topic with 64 KiB segments and `retention.bytes` 1 MiB: write 1100
/// one-record batches of 1 KiB and wait until retention has deleted
/// something; SIGKILL a follower; write 1100 more and wait for the retention
/// pass after that (the log start reaches the kill point). Each phase is
/// more than the 1024 entries after which Raft compacts, which is what lets
/// retention delete. Restarted, the follower must catch up from the
/// leader's segments: without the hold, retention would have deleted
/// entries it lacks, and it would have to start again at the leader's log
/// start (`a_follower_behind_retention_starts_at_the_log_start`).
#[test]
fn retention_holds_for_a_follower() {
    run("retention_holds_for_a_follower", "mixed", |c| {
        let topic = "held";
        follower_down_during_retention(c, topic, 1100, |at_kill, low| low >= at_kill - 128);
    });
}

/// Past twice its limits, retention stops waiting: with 3300 batches
/// written while the follower is down, the leader's log start passes
/// everything the follower holds. Like a Kafka follower behind the leader's
/// log start offset, the restarted follower starts its log again there and
/// catches up (before, the leader sent a data-less snapshot and the replica
/// failed). It is then a whole replica: with the leader SIGKILLed, it and
/// the third node acknowledge new writes, and the new leader serves every
/// record from its log start on, each at its own offset.
#[test]
fn a_follower_behind_retention_starts_at_the_log_start() {
    run(
        "a_follower_behind_retention_starts_at_the_log_start",
        "mixed",
        |c| {
            let topic = "restarted";
            let ctx = format!("[{}] {topic}", c.name);
            let (leader, follower) =
                follower_down_during_retention(c, topic, 3300, |at_kill, low| low > at_kill + 64);
            c.kill9(leader);
            c.note(&format!(
                "node {leader} (the leader) down; node {follower} must serve"
            ));
            let (p, reports) =
                producer_all(c, &[("enable.idempotence", "true"), ("linger.ms", "0")]);
            let written = 1100 + 3300;
            for id in written..written + 100 {
                send(&p, topic, Some(0), id, &kib(topic, id));
            }
            p.flush(FLUSH_TIMEOUT).expect("flush");
            acked_ids(&ctx, &reports, written..written + 100);
            let (low, high) = watermarks(&c.bootstrap(), topic, 0);
            assert_eq!(high, (written + 100) as i64, "{ctx}: log end offset");
            let consumer = consumer(&c.bootstrap(), &[]);
            assign(&consumer, topic, 0, Offset::Offset(low));
            let mut next = low;
            wait_until(&format!("{ctx}: read {low}..{high}"), DEADLINE, || {
                while let Some(m) = consumer.poll(Duration::from_millis(100)) {
                    let m = m.map_err(|e| e.to_string())?;
                    assert_eq!(m.offset(), next, "{ctx}: offsets are contiguous");
                    assert_eq!(
                        m.payload(),
                        kib(topic, next as usize).value.as_deref(),
                        "{ctx}: record at offset {next}"
                    );
                    next += 1;
                }
                if next == high {
                    Ok(())
                } else {
                    Err(format!("read up to {next}"))
                }
            });
        },
    );
}

/// A one-record batch of 1 KiB, numbered `id`.
fn kib(topic: &str, id: usize) -> Msg {
    Msg {
        key: None,
        value: Some(format!("{topic}-{id}-{:>1010}", "").into_bytes()),
        headers: vec![],
        timestamp: None,
    }
}

/// Creates `topic` (one partition, rf 3, 64 KiB segments, `retention.bytes`
/// 1 MiB), writes 1100 acknowledged 1 KiB batches and waits for a retention
/// pass; SIGKILLs a follower, writes `missed` more and waits until
/// `retention_passed(log start at the kill, log start)`; restarts the
/// follower and waits until its log and the leader's agree (retention trims
/// each replica's start on its own, so the shorter must end the longer).
/// Returns the leader and the follower.
fn follower_down_during_retention(
    c: &mut Cluster,
    topic: &str,
    missed: usize,
    retention_passed: impl Fn(i64, i64) -> bool,
) -> (u32, u32) {
    let ctx = format!("[{}] {topic}", c.name);
    let a = admin(&c.bootstrap());
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(3))
        .set("segment.bytes", "65536")
        .set("retention.bytes", "1048576");
    let created = block_on(a.create_topics(&[new], &admin_opts())).expect("CreateTopics");
    assert_eq!(created, vec![Ok(topic.to_string())], "{ctx}: create");
    let leader = c.wait_leaders(topic, 1)[0];
    let follower = c.other_than(leader);
    let (p, reports) = producer_all(
        c,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "0"),
            ("batch.num.messages", "1"),
        ],
    );
    let write = |ids: Range<usize>| {
        for id in ids.clone() {
            send(&p, topic, Some(0), id, &kib(topic, id));
            p.poll(Duration::ZERO);
        }
        p.flush(FLUSH_TIMEOUT).expect("flush");
        acked_ids(&ctx, &reports, ids);
    };
    write(0..1100);
    wait_until(&format!("{ctx}: a first retention pass"), DEADLINE, || {
        let (low, _) = watermarks(&c.bootstrap(), topic, 0);
        if low > 0 {
            Ok(())
        } else {
            Err(format!("log start {low}"))
        }
    });
    let (_, at_kill) = watermarks(&c.bootstrap(), topic, 0);
    c.kill9(follower);
    write(1100..1100 + missed);
    c.note(&format!(
        "node {follower} down since offset {at_kill}; {missed} more acknowledged"
    ));
    wait_until(
        &format!("{ctx}: the retention pass after the kill"),
        DEADLINE,
        || {
            let (low, _) = watermarks(&c.bootstrap(), topic, 0);
            if retention_passed(at_kill, low) {
                Ok(())
            } else {
                Err(format!("log start {low}"))
            }
        },
    );
    drop(p);
    c.restart(follower);
    let log = |id: u32| -> Vec<u8> { c.log_files(id, topic, 0).into_values().flatten().collect() };
    wait_until(
        &format!("{ctx}: node {follower} caught up"),
        DEADLINE,
        || {
            let (lead, back) = (log(leader), log(follower));
            let (short, long) = if lead.len() < back.len() {
                (&lead, &back)
            } else {
                (&back, &lead)
            };
            if !short.is_empty() && long.ends_with(short) {
                Ok(())
            } else {
                Err(format!(
                    "leader holds {} bytes, node {follower} {}",
                    lead.len(),
                    back.len()
                ))
            }
        },
    );
    c.note(&format!("node {follower} caught up"));
    (leader, follower)
}

/// A group commits offsets for partitions its coordinator holds no replica
/// of: a 3-partition topic of replication factor 1 has a partition on each
/// node, and a commit of all three through the group's coordinator must
/// succeed for each (it refused the two elsewhere with
/// UNKNOWN_TOPIC_OR_PARTITION; found by librdkafka's test suite).
#[test]
fn commits_for_partitions_the_coordinator_does_not_host() {
    run(
        "commits_for_partitions_the_coordinator_does_not_host",
        "mixed",
        |c| {
            let (topic, group) = ("rf1", "rf1-group");
            cluster::create_topic(c.node(1).kafka_addr(), topic, 3, 1)
                .unwrap_or_else(|e| panic!("[{}] CreateTopics: {e}", c.name));
            c.wait_leaders(topic, 3);
            let consumer: BaseConsumer = member_config(&c.bootstrap(), group, &[])
                .create()
                .expect("a consumer");
            let mut offsets = rdkafka::TopicPartitionList::new();
            for partition in 0..3 {
                offsets
                    .add_partition_offset(topic, partition, Offset::Offset(7))
                    .expect("an offset");
            }
            consumer
                .commit(&offsets, CommitMode::Sync)
                .unwrap_or_else(|e| panic!("[{}] commit: {e}", c.name));
            assert_eq!(
                committed(&c.bootstrap(), group, topic, 3),
                vec![Offset::Offset(7); 3],
                "[{}] every partition's commit holds",
                c.name
            );
        },
    );
}

fn run(name: &str, mode: &str, scenario: fn(&mut Cluster)) {
    let _slot = cluster::slot();
    let mut c = Cluster::start(&format!("{name}/{mode}"), &io_mode(mode), &[]);
    scenario(&mut c);
    c.note("done");
}

// ----- producing ------------------------------------------------------------

/// A producer for acks=all records. librdkafka waits up to 10 s before it
/// reconnects to a broker that refused it; a second is plenty for a node that
/// was restarted.
fn producer_all(c: &Cluster, extra: &[(&str, &str)]) -> (Prod, Reports) {
    let mut cfg = vec![("acks", "all"), ("reconnect.backoff.max.ms", "1000")];
    cfg.extend_from_slice(extra);
    producer(&c.bootstrap(), &cfg)
}

/// Sends records `ids` (`numbered(topic, id)`) and waits for every delivery
/// report (all reports so far, not only these, are in `reports`). With
/// `spread_over: Some(n)` record `id` goes to partition `id % n`; with `None`
/// the client's partitioner chooses (its sticky partitioner may put every
/// record on one partition).
fn send_ids(p: &Prod, topic: &str, spread_over: Option<i32>, ids: Range<usize>) {
    for id in ids {
        let partition = spread_over.map(|n| (id % n as usize) as i32);
        send(p, topic, partition, id, &numbered(topic, id));
        p.poll(Duration::ZERO);
    }
    p.flush(FLUSH_TIMEOUT)
        .unwrap_or_else(|e| panic!("flush {topic}: {e}"));
}

/// The reports of `ids`, by id, asserting there is one for each and each
/// was acknowledged.
fn acked_ids(ctx: &str, reports: &Reports, ids: Range<usize>) -> BTreeMap<usize, (i32, i64)> {
    let mut by_id: BTreeMap<usize, Result<(i32, i64), String>> = BTreeMap::new();
    for r in reports.all.lock().unwrap().iter() {
        if ids.contains(&r.id) {
            assert!(
                by_id.insert(r.id, r.result.clone()).is_none(),
                "{ctx}: two delivery reports for record {}",
                r.id
            );
        }
    }
    assert_eq!(
        by_id.len(),
        ids.len(),
        "{ctx}: one delivery report per record"
    );
    let failed: Vec<_> = by_id.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{ctx}: {} of {} acks=all records not acknowledged, e.g. {:?}",
        failed.len(),
        ids.len(),
        &failed[..failed.len().min(5)]
    );
    by_id
        .into_iter()
        .map(|(id, r)| (id, r.expect("acknowledged")))
        .collect()
}

// ----- the scenarios ----------------------------------------------------------

/// One partition, rf 3: 2000 acks=all records, replicas byte-identical,
/// SIGKILL the leader, 2000 more through the same (idempotent) producer, and
/// all 4000 read back from the survivors exactly once, in order, at the
/// offsets their delivery reports named.
fn leader_failover(c: &mut Cluster) {
    let topic = "failover";
    let ctx = format!("[{}] {topic}", c.name);
    // Idempotence makes "exactly once, in order" the promise, also across
    // the retries the failover causes.
    let (p, reports) = producer_all(c, &[("enable.idempotence", "true"), ("linger.ms", "5")]);
    send_ids(&p, topic, None, 0..RECORDS);
    acked_ids(&ctx, &reports, 0..RECORDS);

    let leader = c.wait_leaders(topic, 1)[0];
    let replicas = c.replicas(topic, 0);
    c.note(&format!("leader node {leader}, replicas {replicas:?}"));
    assert_eq!(
        replicas.iter().copied().collect::<BTreeSet<_>>(),
        c.ids().into_iter().collect(),
        "{ctx}: an auto-created topic is replicated to all three nodes"
    );
    c.wait_logs_identical(topic, 0, &c.ids());

    c.kill9(leader);
    send_ids(&p, topic, None, RECORDS..2 * RECORDS);
    let acked = acked_ids(&ctx, &reports, 0..2 * RECORDS);
    for (id, (partition, offset)) in &acked {
        assert_eq!(
            (*partition, *offset),
            (0, *id as i64),
            "{ctx}: record {id} acknowledged at"
        );
    }
    drop(p);

    read_numbered(c, &ctx, topic, 2 * RECORDS);
    c.wait_logs_identical(topic, 0, &c.running());
}

/// Three partitions, rf 3, created through the admin client with leaders
/// spread ([`spread_topic`]); SIGKILL the leader of partition 0 while a
/// producer streams to partitions 1 and 2:
/// records to a partition whose leader survived are all acknowledged, also
/// those sent after the kill.
fn partition_independence(c: &mut Cluster) {
    let (topic, leaders) = spread_topic(c);
    let topic = topic.as_str();
    let ctx = format!("[{}] {topic}", c.name);
    let killed = leaders[0];
    let survivors: Vec<i32> = [1, 2]
        .into_iter()
        .filter(|&p| leaders[p as usize] != killed)
        .collect();
    c.note(&format!(
        "killing node {killed} leaves partitions {survivors:?} their leader"
    ));

    let stream = Stream::start(c, topic, &[1, 2]);
    wait_until(
        &format!("{ctx}: the stream to get acknowledgements before the kill"),
        DEADLINE,
        || match stream.reports.ok.load(Ordering::SeqCst) {
            n if n >= 200 => Ok(()),
            n => Err(format!("{n} acknowledged")),
        },
    );
    c.kill9(killed);
    let after_kill = stream.next_id.load(Ordering::SeqCst);
    let sent = stream.finish(StopAt {
        from_id: after_kill,
        partitions: survivors.clone(),
        records: 300,
    });

    let mut after: BTreeMap<i32, usize> = BTreeMap::new();
    for s in &sent {
        let Some(result) = &s.result else {
            panic!("{ctx}: no delivery report for record {}", s.id);
        };
        if !survivors.contains(&s.partition) {
            continue;
        }
        if let Err(e) = result {
            panic!(
                "{ctx}: record {} to partition {} (leader node {} alive) not acknowledged: {e}",
                s.id, s.partition, leaders[s.partition as usize]
            );
        }
        if s.id >= after_kill {
            *after.entry(s.partition).or_default() += 1;
        }
    }
    c.note(&format!(
        "acknowledged after the kill, by partition: {after:?}"
    ));
    for p in &survivors {
        assert!(
            after.get(p).copied().unwrap_or(0) >= 300,
            "{ctx}: partition {p}: {after:?} acknowledged after the kill"
        );
    }
}

/// Creates a topic of 3 partitions, rf 3, through the admin client, until
/// partition 1 or 2 has another leader than partition 0; returns its name and
/// leaders. Each partition's first replica campaigns first, and placement
/// spreads first replicas, but the first election can still go to another
/// replica.
fn spread_topic(c: &Cluster) -> (String, Vec<u32>) {
    const ATTEMPTS: usize = 5;
    let a = admin(&c.bootstrap());
    for attempt in 0..ATTEMPTS {
        let topic = format!("independent-{attempt}");
        let created = block_on(a.create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(3))],
            &admin_opts(),
        ))
        .expect("CreateTopics request");
        assert_eq!(
            created,
            vec![Ok(topic.clone())],
            "[{}] CreateTopics {topic}",
            c.name
        );
        let leaders = c.wait_leaders(&topic, 3);
        let replicas: Vec<Vec<u32>> = (0..3).map(|p| c.replicas(&topic, p)).collect();
        c.note(&format!(
            "{topic}: leaders of partitions 0, 1, 2 {leaders:?}, replicas {replicas:?}"
        ));
        if leaders[1..].iter().any(|&l| l != leaders[0]) {
            return (topic, leaders);
        }
    }
    panic!(
        "[{}] {ATTEMPTS} topics of 3 partitions each had one leader for all",
        c.name
    );
}

/// Create a topic through a node that is not the controller; produce, and
/// consume with a group that commits; SIGKILL the controller; produce and
/// consume more (the group resumes at its commit); restart the node and wait
/// until its logs of the topic equal the other replicas' byte for byte.
fn lifecycle(c: &mut Cluster) {
    let topic = "lifecycle";
    let group = "lifecycle-group";
    let ctx = format!("[{}] {topic}", c.name);
    let partitions = 2;
    let controller = c.controller();
    let follower = c.other_than(controller);
    c.note(&format!(
        "controller node {controller}, creating through node {follower}"
    ));
    cluster::create_topic(c.node(follower).kafka_addr(), topic, partitions, 3)
        .unwrap_or_else(|e| panic!("{ctx}: CreateTopics through node {follower}: {e}"));
    let leaders = c.wait_leaders(topic, partitions as usize);
    c.note(&format!("leaders {leaders:?}"));

    let half = RECORDS / 2;
    let (p, reports) = producer_all(c, &[("enable.idempotence", "true")]);
    send_ids(&p, topic, Some(partitions), 0..half);
    acked_ids(&ctx, &reports, 0..half);
    c.note(&format!("{half} records acknowledged"));
    let first = consume_group(c, group, topic, half);
    c.note(&format!("group {group} read and committed them"));
    assert_ids(&format!("{ctx} first read"), topic, &first, 0..half);
    let ends = end_offsets(c, topic, partitions);
    assert_eq!(
        ends.iter().sum::<i64>(),
        half as i64,
        "{ctx}: log end offsets {ends:?}"
    );
    assert_eq!(
        committed(&c.bootstrap(), group, topic, partitions),
        ends.iter().map(|&o| Offset::Offset(o)).collect::<Vec<_>>(),
        "{ctx}: the group's commits"
    );

    c.kill9(controller);
    send_ids(&p, topic, Some(partitions), half..2 * half);
    acked_ids(&ctx, &reports, half..2 * half);
    drop(p);
    c.note(&format!("{half} more acknowledged"));
    let second = consume_group(c, group, topic, half);
    c.note(&format!("group {group} read them"));
    assert_ids(
        &format!("{ctx} read after the kill"),
        topic,
        &second,
        half..2 * half,
    );
    c.wait_brokers_are_the_running_nodes();

    c.restart(controller);
    c.wait_brokers_are_the_running_nodes();
    for partition in 0..partitions as usize {
        c.wait_logs_identical(topic, partition, &c.ids());
    }
}

/// Batches a follower misses while it is down, more than the leader keeps in
/// its in-memory Raft log (it compacts every 1024 applied entries).
const MISSED_BATCHES: usize = 3000;

/// One partition, rf 3: SIGKILL a follower, then write
/// [`MISSED_BATCHES`] one-record batches, each its own Raft entry, so the
/// leader's in-memory log no longer holds what the follower lacks. Restarted,
/// the follower catches up from the leader's segments until its log equals
/// the others' byte for byte; then the leader is SIGKILLed and every record
/// is read back from the two left, one of them the follower that caught up.
fn far_behind_follower(c: &mut Cluster) {
    let topic = "far-behind";
    let ctx = format!("[{}] {topic}", c.name);
    cluster::create_topic(c.node(c.controller()).kafka_addr(), topic, 1, 3)
        .unwrap_or_else(|e| panic!("{ctx}: CreateTopics: {e}"));
    let leader = c.wait_leaders(topic, 1)[0];
    let follower = c.other_than(leader);
    c.note(&format!(
        "leader node {leader}, stopping follower {follower}"
    ));
    c.kill9(follower);

    let (p, reports) = producer_all(
        c,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "0"),
            ("batch.num.messages", "1"),
        ],
    );
    send_ids(&p, topic, Some(1), 0..MISSED_BATCHES);
    acked_ids(&ctx, &reports, 0..MISSED_BATCHES);
    drop(p);
    c.note(&format!(
        "{MISSED_BATCHES} batches acknowledged without node {follower}"
    ));

    c.restart(follower);
    c.wait_logs_identical(topic, 0, &c.ids());
    c.note(&format!("node {follower} caught up"));

    c.kill9(leader);
    read_numbered(c, &ctx, topic, MISSED_BATCHES);
}

/// Two of three nodes SIGKILLed: an acks=all produce fails instead of being
/// acknowledged. One node back: produce succeeds again, and every
/// acknowledged record is in the log.
fn minority_loss(c: &mut Cluster) {
    let topic = "minority";
    let ctx = format!("[{}] {topic}", c.name);
    let mut acked = BTreeSet::new();
    let (p, reports) = producer_all(c, &[]);
    send_ids(&p, topic, None, 0..100);
    acked.extend(acked_ids(&ctx, &reports, 0..100).into_keys());
    drop(p);

    let leader = c.wait_leaders(topic, 1)[0];
    let followers: Vec<u32> = c.ids().into_iter().filter(|&n| n != leader).collect();
    c.note(&format!(
        "leader node {leader}; killing followers {followers:?}"
    ));
    for &f in &followers {
        c.kill9(f);
    }
    let (p, reports) = producer_all(c, &[("message.timeout.ms", "5000")]);
    send_ids(&p, topic, None, 100..101);
    let report = reports.all.lock().unwrap()[0].clone();
    drop(p);
    let error = match report.result {
        Ok(at) => panic!("{ctx}: acknowledged at {at:?} with two of three replicas down"),
        Err(e) => e,
    };
    c.note(&format!("the produce without a quorum failed: {error}"));
    const NOT_WRITTEN: [&str; 5] = [
        "MessageTimedOut",
        "NotEnoughReplicas",
        "RequestTimedOut",
        "NotLeaderForPartition",
        "LeaderNotAvailable",
    ];
    assert!(
        NOT_WRITTEN.iter().any(|kind| error.contains(kind)),
        "{ctx}: expected a timeout or a retriable replication error, got {error}"
    );

    // Back to a quorum: the producer's 30 s message timeout is the deadline
    // for the partition to take writes again.
    c.restart(followers[0]);
    let (p, reports) = producer_all(c, &[]);
    send_ids(&p, topic, None, 101..201);
    acked.extend(acked_ids(&ctx, &reports, 101..201).into_keys());
    drop(p);
    let failed = [100];

    let (low, high) = watermarks(&c.bootstrap(), topic, 0);
    assert_eq!(low, 0, "{ctx}: log start offset");
    let got = consume(&c.bootstrap(), topic, 0, high as usize);
    let present: BTreeSet<usize> = got
        .iter()
        .map(|m| id_of(topic, m.payload().unwrap_or_default()))
        .collect();
    let lost: Vec<_> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{ctx}: acknowledged records lost: {lost:?}"
    );
    let unacked_present: Vec<_> = failed.iter().filter(|id| present.contains(id)).collect();
    c.note(&format!(
        "{} acknowledged records all present; of the unacknowledged {failed:?}, \
         {unacked_present:?} are in the log ({} records in all)",
        acked.len(),
        got.len()
    ));
}

// ----- helpers of the scenarios ---------------------------------------------

/// Joins `group` subscribed to `topic`, reads until it has `expect` records,
/// commits its position synchronously and leaves.
fn consume_group(c: &Cluster, group: &str, topic: &str, expect: usize) -> Vec<OwnedMessage> {
    let ctx = format!("[{}] group {group}", c.name);
    let consumer: BaseConsumer = member_config(&c.bootstrap(), group, &[])
        .create()
        .expect("create a group consumer");
    consumer
        .subscribe(&[topic])
        .unwrap_or_else(|e| panic!("{ctx}: subscribe to {topic}: {e}"));
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut errors = Vec::new();
    // Not `wait_until`: its pause between polls would come after every record.
    while got.len() < expect {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => got.push(m.detach()),
            Some(Err(e)) => errors.push(e.to_string()),
            None => {}
        }
        assert!(
            Instant::now() < deadline,
            "{ctx}: read {} of {expect} records of {topic} in {DEADLINE:?}; \
             consumer errors: {errors:?}",
            got.len()
        );
    }
    if !errors.is_empty() {
        c.note(&format!(
            "group {group}: consumer errors on the way: {errors:?}"
        ));
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .unwrap_or_else(|e| panic!("{ctx}: commit: {e}"));
    got
}

/// Asserts `got` holds exactly the records `ids`, each once.
fn assert_ids(ctx: &str, topic: &str, got: &[OwnedMessage], ids: Range<usize>) {
    let mut seen = BTreeMap::<usize, usize>::new();
    for m in got {
        *seen
            .entry(id_of(topic, m.payload().unwrap_or_default()))
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{ctx}: records read twice: {twice:?}");
    let seen: Vec<usize> = seen.into_keys().collect();
    assert_eq!(
        seen,
        ids.clone().collect::<Vec<_>>(),
        "{ctx}: not exactly records {ids:?}"
    );
}

/// Reads partition 0 of `topic` from offset 0 and asserts it holds exactly
/// records `numbered(topic, 0..n)`, in order, at contiguous offsets.
fn read_numbered(c: &Cluster, ctx: &str, topic: &str, n: usize) {
    let got = consume(&c.bootstrap(), topic, 0, n);
    assert_contiguous(ctx, &got);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(
            m.payload(),
            numbered(topic, i).value.as_deref(),
            "{ctx}: record at offset {i}"
        );
    }
}

/// Each partition's log end offset.
fn end_offsets(c: &Cluster, topic: &str, partitions: i32) -> Vec<i64> {
    (0..partitions)
        .map(|p| watermarks(&c.bootstrap(), topic, p).1)
        .collect()
}

/// One record of a [`Stream`] and its delivery report (`None`: none came).
#[derive(Debug)]
struct Sent {
    id: usize,
    partition: i32,
    result: Option<Result<(i32, i64), String>>,
}

/// A producer thread writing to fixed partitions, each with at most
/// [`Stream::WINDOW`] records unacknowledged: records keep flowing to a
/// partition as long as it acknowledges, whatever the others do.
struct Stream {
    reports: Reports,
    /// The id the next record will get.
    next_id: Arc<AtomicUsize>,
    /// Set by [`Stream::finish`].
    stop: Arc<Mutex<Option<StopAt>>>,
    thread: JoinHandle<Vec<(usize, i32)>>,
}

impl Stream {
    const WINDOW: usize = 10;
    /// How long the stream may take to send its last records once told to
    /// stop; a stalled partition then shows as records never sent.
    const STOP_DEADLINE: Duration = Duration::from_secs(60);

    fn start(c: &Cluster, topic: &str, partitions: &[i32]) -> Stream {
        let (p, reports) = producer_all(c, &[]);
        let next_id = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(Mutex::new(None));
        let (topic, partitions) = (topic.to_string(), partitions.to_vec());
        let (reports2, next_id2, stop2) = (reports.clone(), next_id.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("stream".into())
            .spawn(move || stream_loop(&p, &topic, &partitions, &reports2, &next_id2, &stop2))
            .expect("spawn the stream thread");
        Stream {
            reports,
            next_id,
            stop,
            thread,
        }
    }

    /// Stops at `at`, waits for the delivery reports and returns every
    /// record sent.
    fn finish(self, at: StopAt) -> Vec<Sent> {
        *self.stop.lock().unwrap() = Some(at);
        let sent = match self.thread.join() {
            Ok(sent) => sent,
            Err(e) => std::panic::resume_unwind(e),
        };
        let results: BTreeMap<usize, Result<(i32, i64), String>> = self
            .reports
            .all
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.id, r.result.clone()))
            .collect();
        sent.into_iter()
            .map(|(id, partition)| Sent {
                id,
                partition,
                result: results.get(&id).cloned(),
            })
            .collect()
    }
}

/// When a [`Stream`] stops: once `records` records with ids from `from_id`
/// on went to each of `partitions`.
#[derive(Clone, Debug)]
struct StopAt {
    from_id: usize,
    partitions: Vec<i32>,
    records: usize,
}

/// The [`Stream`] thread: returns `(id, partition)` of every record sent.
fn stream_loop(
    p: &Prod,
    topic: &str,
    partitions: &[i32],
    reports: &Reports,
    next_id: &AtomicUsize,
    stop: &Mutex<Option<StopAt>>,
) -> Vec<(usize, i32)> {
    let mut sent: Vec<(usize, i32)> = Vec::new();
    let mut open: BTreeMap<i32, usize> = partitions.iter().map(|&p| (p, 0)).collect();
    let mut reported = 0;
    let mut stop_deadline = None;
    loop {
        p.poll(Duration::from_millis(5));
        {
            let all = reports.all.lock().unwrap();
            for r in &all[reported..] {
                *open.get_mut(&sent[r.id].1).expect("a stream partition") -= 1;
            }
            reported = all.len();
        }
        if let Some(at) = stop.lock().unwrap().clone() {
            let deadline =
                *stop_deadline.get_or_insert_with(|| Instant::now() + Stream::STOP_DEADLINE);
            let enough = at.partitions.iter().all(|part| {
                let since = sent.get(at.from_id..).unwrap_or_default();
                since.iter().filter(|(_, q)| q == part).count() >= at.records
            });
            if enough || Instant::now() > deadline {
                break;
            }
        }
        for &part in partitions {
            if open[&part] < Stream::WINDOW {
                let id = sent.len();
                send(p, topic, Some(part), id, &numbered(topic, id));
                sent.push((id, part));
                *open.get_mut(&part).expect("a stream partition") += 1;
                next_id.store(id + 1, Ordering::SeqCst);
            }
        }
    }
    if let Err(e) = p.flush(FLUSH_TIMEOUT) {
        eprintln!("stream {topic}: flush: {e}");
    }
    sent
}
