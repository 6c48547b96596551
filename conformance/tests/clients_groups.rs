//! Consumer groups with librdkafka (rdkafka crate 0.39) against a real
//! `chronik` process, once per I/O driver: members joining and leaving while
//! records flow, committed offsets surviving a SIGKILL, static membership, and
//! the group admin APIs (ListGroups, DescribeGroups, DeleteGroups,
//! OffsetDelete, OffsetFetch).
//!
//! Every broker runs with `--group-initial-rebalance-delay-ms 0`, so an empty
//! group's first rebalance does not wait three seconds for more members.
//!
//! Run: `cargo test -p conformance --test clients_groups`.

mod clients;
#[path = "clients/group.rs"]
mod group;
#[path = "clients/rd.rs"]
mod rd;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clients::broker::{wait_for, DRIVERS};
use group::*;
use rd::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// How long a group may take to settle after a member joins or leaves.
const REBALANCE_DEADLINE: Duration = Duration::from_secs(60);

const FLOW_PARTITIONS: i32 = 6;
/// Records the producer may be ahead of the group before it waits.
const FLOW_BACKLOG: usize = 400;

/// Members join one at a time (1 → 2 → 3) and leave one at a time, oldest
/// (the leader) first (3 → 1), while a producer keeps sending numbered records
/// with acks=all to all six partitions. Each step waits until the live members
/// hold the six partitions between them, each once, and every one of them is
/// consuming. At the end: every acknowledged record was delivered to the group
/// at the offset its report named; a record was delivered twice only if the
/// synchronous commit of its earlier delivery failed (at-least-once, nothing
/// else repeated); and the committed offsets are the log end offsets. `range`
/// (eager) on the tokio driver, `cooperative-sticky` on the sync driver.
#[test]
fn group_rebalances_1_3_1_while_messages_flow() {
    for (io, assignor) in DRIVERS.into_iter().zip(["range", "cooperative-sticky"]) {
        let started = Instant::now();
        let ctx = format!("[{io}] {assignor}");
        let b = group_broker(io);
        let topic = "flow";
        create_topic(&b, topic, FLOW_PARTITIONS);
        let group = format!("flow-{assignor}");
        let deliveries = Deliveries::default();

        let (p, reports) = producer(&b.bootstrap(), &[("acks", "all"), ("linger.ms", "2")]);
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, deliveries2) = (stop.clone(), deliveries.clone());
        let writer = std::thread::spawn(move || {
            let mut id = 0;
            while !stop2.load(Ordering::SeqCst) {
                if id >= deliveries2.lock().unwrap().len() + FLOW_BACKLOG {
                    p.poll(Duration::from_millis(10));
                    continue;
                }
                let partition = (id % FLOW_PARTITIONS as usize) as i32;
                send(&p, topic, Some(partition), id, &numbered(topic, id));
                // Paces the stream (it keeps flowing through every rebalance)
                // and serves delivery reports.
                p.poll(Duration::from_millis(2));
                id += 1;
            }
            // One more record per partition, produced after the last
            // rebalance: its commit cannot be refused, so the committed
            // offsets must reach the log end even if a commit failed before.
            for _ in 0..FLOW_PARTITIONS {
                let partition = (id % FLOW_PARTITIONS as usize) as i32;
                send(&p, topic, Some(partition), id, &numbered(topic, id));
                id += 1;
            }
            p.flush(OP_TIMEOUT)
                .unwrap_or_else(|e| panic!("flush the flow producer: {e}"));
            id
        });

        let cfg = |name: &str| {
            member_config(
                &b.bootstrap(),
                &group,
                &[
                    ("partition.assignment.strategy", assignor),
                    ("client.id", name),
                ],
            )
        };
        let mut live: Vec<Member> = Vec::new();
        let mut steps = Vec::new();
        let mut next = 1;
        for join in [true, true, true, false, false] {
            if join {
                let name = format!("m{next}");
                next += 1;
                live.push(Member::spawn(&name, &cfg(&name), topic, deliveries.clone()));
            } else {
                let gone = live.remove(0);
                let name = gone.name.clone();
                let v = gone.close();
                steps.push(format!("{name} left after {} records", v.consumed));
            }
            let members: Vec<&Member> = live.iter().collect();
            let views = wait_for(
                &format!(
                    "{ctx}: {} members to hold the {FLOW_PARTITIONS} partitions between them \
                     (views: {:?})",
                    live.len(),
                    live.iter().map(|m| (&m.name, m.view())).collect::<Vec<_>>()
                ),
                REBALANCE_DEADLINE,
                || balanced(&members, FLOW_PARTITIONS),
            );
            wait_for(
                &format!("{ctx}: every one of {} members consuming", live.len()),
                REBALANCE_DEADLINE,
                || {
                    live.iter()
                        .zip(&views)
                        .all(|(m, v)| m.view().consumed >= v.consumed + 10)
                        .then_some(())
                },
            );
            steps.push(format!(
                "{} members: {}",
                live.len(),
                live.iter()
                    .zip(&views)
                    .map(|(m, v)| format!("{}={:?}", m.name, v.assignment))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }

        stop.store(true, Ordering::SeqCst);
        let sent = writer.join().expect("the producer thread");
        let all = reports.all.lock().unwrap().clone();
        assert_eq!(all.len(), sent, "{ctx}: one delivery report per record");
        let failed: Vec<_> = all.iter().filter(|r| r.result.is_err()).take(5).collect();
        assert!(
            failed.is_empty(),
            "{ctx}: failed deliveries, e.g. {failed:?}"
        );
        let acked: BTreeMap<usize, (i32, i64)> = all.iter().map(|r| (r.id, acked(r))).collect();

        let distinct = || -> BTreeSet<usize> {
            deliveries
                .lock()
                .unwrap()
                .iter()
                .map(|d| id_of(topic, &d.payload))
                .collect()
        };
        wait_for(
            &format!("{ctx}: the last member to consume all {sent} records"),
            OP_TIMEOUT,
            || (distinct().len() >= sent).then_some(()),
        );
        let last = live.pop().expect("one member left");
        let last_view = last.close();

        let got = deliveries.lock().unwrap().clone();
        let mut by_id: BTreeMap<usize, Vec<&Delivery>> = BTreeMap::new();
        for d in &got {
            let id = id_of(topic, &d.payload);
            assert_eq!(
                acked.get(&id),
                Some(&(d.partition, d.offset)),
                "{ctx}: {} got record {id} at {topic}/{}@{}, its delivery report said {:?}",
                d.member,
                d.partition,
                d.offset,
                acked.get(&id)
            );
            by_id.entry(id).or_default().push(d);
        }
        let missing: Vec<_> = acked
            .keys()
            .filter(|id| !by_id.contains_key(id))
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "{ctx}: acknowledged records never consumed: {missing:?}"
        );
        let mut duplicates = 0;
        for (id, ds) in &by_id {
            for d in &ds[..ds.len() - 1] {
                duplicates += 1;
                assert!(
                    d.commit.is_err(),
                    "{ctx}: record {id} delivered again after its commit succeeded: {ds:?}"
                );
            }
        }
        let failed_commits: Vec<&str> = got
            .iter()
            .filter_map(|d| d.commit.as_ref().err().map(|e| e.as_str()))
            .collect();
        let mut commit_errors: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &failed_commits {
            *commit_errors.entry(e).or_default() += 1;
        }
        assert_eq!(
            committed(&b.bootstrap(), &group, topic, FLOW_PARTITIONS),
            high_watermarks(&b, topic, FLOW_PARTITIONS),
            "{ctx}: committed offsets after the drain must be the log end offsets"
        );
        eprintln!(
            "{ctx}: {sent} records, {} deliveries, {duplicates} redelivered, failed commits \
             {commit_errors:?}; last member's errors {:?}; {:.1}s\n  {}",
            got.len(),
            last_view.errors,
            started.elapsed().as_secs_f64(),
            steps.join("\n  ")
        );
    }
}

/// Consume half of each of two partitions in a group, committing each record,
/// SIGKILL the broker and start it again: the committed offsets are still
/// there, and a new member of the group starts each partition exactly at its
/// committed offset and reads the rest, each record once. A member of another
/// group, alive across the kill, goes on as the same member with the same
/// partitions: the coordinator rebuilt the group from `__consumer_offsets`.
#[test]
fn restart_mid_consumption_resumes_from_committed_offsets() {
    const PER_PARTITION: usize = 300;
    const COMMIT_BELOW: i64 = 150;
    for io in DRIVERS {
        let mut b = group_broker(io);
        let (topic, group) = ("resume", "resume-group");
        create_topic(&b, topic, 2);
        for p in 0..2 {
            let msgs: Vec<Msg> = (0..PER_PARTITION)
                .map(|i| numbered(topic, p * PER_PARTITION + i))
                .collect();
            produce_all(
                &b.bootstrap(),
                topic,
                Some(p as i32),
                &msgs,
                &[("acks", "all")],
            );
        }

        // Commits every record below offset 150 of each partition, skips the
        // rest, until it has seen both partitions past 150.
        let c: BaseConsumer = member_config(&b.bootstrap(), group, &[])
            .create()
            .expect("create the first consumer");
        c.subscribe(&[topic]).expect("subscribe");
        let mut highest = [-1i64; 2];
        let deadline = Instant::now() + OP_TIMEOUT;
        while highest.iter().any(|&o| o < COMMIT_BELOW) {
            assert!(
                Instant::now() < deadline,
                "[{io}] first consumer reached offsets {highest:?} in {OP_TIMEOUT:?}"
            );
            match c.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(e)) => panic!("[{io}] first consumer: {e}"),
                Some(Ok(m)) => {
                    let p = m.partition() as usize;
                    highest[p] = highest[p].max(m.offset());
                    if m.offset() < COMMIT_BELOW {
                        c.commit_message(&m, CommitMode::Sync).unwrap_or_else(|e| {
                            panic!("[{io}] commit {topic}/{p}@{}: {e}", m.offset())
                        });
                    }
                }
            }
        }
        drop(c);
        let want = vec![Offset::Offset(COMMIT_BELOW); 2];
        assert_eq!(
            committed(&b.bootstrap(), group, topic, 2),
            want,
            "[{io}] committed offsets before the kill"
        );

        // A member of another group stays up across the kill.
        let deliveries = Deliveries::default();
        let live = Member::spawn(
            "live",
            &member_config(
                &b.bootstrap(),
                "resume-live",
                &[("session.timeout.ms", "30000")],
            ),
            topic,
            deliveries.clone(),
        );
        wait_for(
            &format!("[{io}] the live member to read everything"),
            OP_TIMEOUT,
            || (live.view().consumed >= 2 * PER_PARTITION).then_some(()),
        );
        let live_before = live.view();

        b.kill9();
        b.restart();
        assert_eq!(
            committed(&b.bootstrap(), group, topic, 2),
            want,
            "[{io}] committed offsets after SIGKILL and restart"
        );

        // The coordinator loads the live group from its log: the member goes
        // on with the same assignment (no rebalance) and commits succeed.
        for p in 0..2 {
            produce_all(
                &b.bootstrap(),
                topic,
                Some(p),
                &[numbered("after", p as usize)],
                &[("acks", "all")],
            );
        }
        wait_for(
            &format!("[{io}] the live member to read the 2 records produced after the restart"),
            OP_TIMEOUT,
            || (live.view().consumed >= 2 * PER_PARTITION + 2).then_some(()),
        );
        // Before the close, whose unsubscribe revokes everything.
        let live_after = live.view();
        live.close();
        assert_eq!(
            (live_after.revocations, live_after.member_id.as_str()),
            (live_before.revocations, live_before.member_id.as_str()),
            "[{io}] the live member was revoked or re-joined across the broker restart \
             (errors {:?})",
            live_after.errors
        );
        let tail: Vec<_> = deliveries.lock().unwrap()[2 * PER_PARTITION..].to_vec();
        assert!(
            tail.iter().all(|d| d.commit.is_ok()),
            "[{io}] commits of the live member after the restart: {tail:?}"
        );
        assert_eq!(
            committed(&b.bootstrap(), "resume-live", topic, 2),
            vec![Offset::Offset(PER_PARTITION as i64 + 1); 2],
            "[{io}] the live group's committed offsets"
        );

        let c: BaseConsumer = member_config(&b.bootstrap(), group, &[])
            .create()
            .expect("create the second consumer");
        c.subscribe(&[topic]).expect("subscribe");
        let mut first: [Option<i64>; 2] = [None; 2];
        let mut ids = Vec::new();
        let mut after = 0;
        let rest = 2 * (PER_PARTITION - COMMIT_BELOW as usize + 1);
        let deadline = Instant::now() + OP_TIMEOUT;
        while ids.len() + after < rest {
            assert!(
                Instant::now() < deadline,
                "[{io}] second consumer got {} of {rest} records in {OP_TIMEOUT:?}",
                ids.len()
            );
            match c.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(e)) => panic!("[{io}] second consumer: {e}"),
                Some(Ok(m)) => {
                    let p = m.partition() as usize;
                    first[p].get_or_insert(m.offset());
                    let payload = m.payload().unwrap_or_default();
                    if payload.starts_with(b"after-") {
                        after += 1;
                    } else {
                        ids.push(id_of(topic, payload));
                    }
                }
            }
        }
        assert_eq!(
            first,
            [Some(COMMIT_BELOW); 2],
            "[{io}] first offsets the second consumer got"
        );
        let want_ids: Vec<usize> = (0..2)
            .flat_map(|p| {
                (COMMIT_BELOW as usize..PER_PARTITION).map(move |i| p * PER_PARTITION + i)
            })
            .collect();
        ids.sort_unstable();
        assert_eq!(
            (ids, after),
            (want_ids, 2),
            "[{io}] records read after the restart"
        );
    }
}

/// Two static members (group.instance.id), `range` (eager) assignment.
/// Member `a`, the group's leader, is closed, which for a static member sends
/// no LeaveGroup, and a new consumer with the same instance id joins within the
/// session timeout: it gets `a`'s partitions back and the group does not
/// rebalance. An eager rebalance cannot finish before every member has
/// revoked, so `b` having no revocation when the new `a` holds its partitions
/// proves there was none. When the new `a` closes too and does not come back,
/// its session expires and `b` gets all partitions; a second consumer with
/// `b`'s instance id then fences `b` (FENCED_INSTANCE_ID) and takes over.
#[test]
fn static_member_rejoins_without_rebalance() {
    for io in DRIVERS {
        let b = group_broker(io);
        let (topic, group) = ("static", "static-group");
        create_topic(&b, topic, 4);
        let deliveries = Deliveries::default();
        let cfg = |instance: &str, session_timeout_ms: &str| {
            member_config(
                &b.bootstrap(),
                group,
                &[
                    ("group.instance.id", instance),
                    ("client.id", instance),
                    ("partition.assignment.strategy", "range"),
                    ("session.timeout.ms", session_timeout_ms),
                ],
            )
        };
        let a = Member::spawn("a", &cfg("a", "30000"), topic, deliveries.clone());
        wait_for(
            &format!("[{io}] a alone to hold 4 partitions"),
            REBALANCE_DEADLINE,
            || balanced(&[&a], 4),
        );
        let m_b = Member::spawn("b", &cfg("b", "30000"), topic, deliveries.clone());
        let views = wait_for(
            &format!("[{io}] a and b to share 4 partitions"),
            REBALANCE_DEADLINE,
            || balanced(&[&a, &m_b], 4),
        );
        let (a_parts, b_before) = (views[0].assignment.clone(), views[1].clone());
        let old_a_id = views[0].member_id.clone();
        assert!(!old_a_id.is_empty(), "[{io}] a has a member id");

        a.close();
        // The broker's shortest session timeout, so that its expiry below is quick.
        let a2 = Member::spawn("a", &cfg("a", "6000"), topic, deliveries.clone());
        let (a2_view, b_view) = wait_for(
            &format!("[{io}] the new a to get partitions, or b to be revoked"),
            REBALANCE_DEADLINE,
            || {
                let (v2, vb) = (a2.view(), m_b.view());
                (!v2.assignment.is_empty() || vb.revocations > b_before.revocations)
                    .then_some((v2, vb))
            },
        );
        assert_eq!(
            (b_view.revocations, b_view.assigns),
            (b_before.revocations, b_before.assigns),
            "[{io}] b saw a rebalance when static member a came back: {b_view:?}"
        );
        assert_eq!(
            a2_view.assignment, a_parts,
            "[{io}] the new a must get the old a's partitions"
        );
        assert_eq!(
            b_view.assignment, b_before.assignment,
            "[{io}] b kept its partitions"
        );

        // The group still works: each partition's new records reach its owner.
        let c = consumer(&b.bootstrap(), &[]);
        let groups = c
            .fetch_group_list(Some(group), OP_TIMEOUT)
            .expect("ListGroups + DescribeGroups");
        let g = &groups.groups()[0];
        let mut members: Vec<&str> = g.members().iter().map(|m| m.client_id()).collect();
        members.sort_unstable();
        assert_eq!(
            (g.state(), members),
            ("Stable", vec!["a", "b"]),
            "[{io}] described group"
        );
        assert!(
            g.members().iter().all(|m| m.id() != old_a_id),
            "[{io}] the old a's member id {old_a_id} is still in the group"
        );
        let before = deliveries.lock().unwrap().len();
        for p in 0..4 {
            produce_all(
                &b.bootstrap(),
                topic,
                Some(p),
                &[numbered(topic, p as usize)],
                &[("acks", "all")],
            );
        }
        wait_for(
            &format!("[{io}] the 4 new records consumed"),
            OP_TIMEOUT,
            || (deliveries.lock().unwrap().len() >= before + 4).then_some(()),
        );
        for d in &deliveries.lock().unwrap()[before..] {
            let owner = if a_parts.contains(&d.partition) {
                "a"
            } else {
                "b"
            };
            assert_eq!(
                d.member, owner,
                "[{io}] who consumed partition {}",
                d.partition
            );
            assert_eq!(d.commit, Ok(()), "[{io}] commit after the static rejoin");
        }

        // A static member that does not come back is removed when its session
        // expires, and b then gets every partition.
        a2.close();
        wait_for(
            &format!("[{io}] b to hold all 4 partitions once a's session expired"),
            REBALANCE_DEADLINE,
            || balanced(&[&m_b], 4),
        );

        // A second live consumer with b's instance id takes b's place and
        // partitions; b's next heartbeat is refused with FENCED_INSTANCE_ID.
        let b2 = Member::spawn("b2", &cfg("b", "30000"), topic, deliveries.clone());
        wait_for(
            &format!("[{io}] the second b to hold all 4 partitions"),
            REBALANCE_DEADLINE,
            || balanced(&[&b2], 4),
        );
        wait_for(
            &format!("[{io}] the first b to be fenced: {:?}", m_b.view().errors),
            REBALANCE_DEADLINE,
            || {
                m_b.view()
                    .errors
                    .iter()
                    .any(|e| e.to_lowercase().contains("fenced"))
                    .then_some(())
            },
        );
        m_b.close();
        b2.close();
    }
}

/// ListGroups and DescribeGroups (librdkafka's group list), OffsetFetch,
/// OffsetDelete and DeleteGroups: an empty group with committed offsets and a
/// group with a live member are listed and described; OffsetDelete refuses a
/// topic the live group is subscribed to and deletes one partition's offset of
/// an empty group; DeleteGroups deletes the empty group (its offsets go with
/// it), refuses the live one (GROUP_NOT_EMPTY) and a group that never existed
/// (GROUP_ID_NOT_FOUND), and deletes the live one once its member has left.
/// A consumer that never joins commits offsets with metadata (an offset-only
/// group, listed as Empty with no protocol type). JoinGroup refuses a protocol
/// the group does not have and a too short session timeout.
#[test]
fn admin_lists_describes_and_deletes_groups() {
    for io in DRIVERS {
        let b = group_broker(io);
        let topic = "admin-groups";
        create_topic(&b, topic, 2);
        for p in 0..2 {
            let msgs: Vec<Msg> = (0..10).map(|i| numbered(topic, i)).collect();
            produce_all(&b.bootstrap(), topic, Some(p), &msgs, &[("acks", "all")]);
        }
        let deliveries = Deliveries::default();

        // Two groups that consume everything, commit and leave.
        for group in ["admin-done", "admin-offsets"] {
            let m = Member::spawn(
                group,
                &member_config(&b.bootstrap(), group, &[]),
                topic,
                deliveries.clone(),
            );
            wait_for(
                &format!("[{io}] {group} to consume 20 records"),
                OP_TIMEOUT,
                || (m.view().consumed >= 20).then_some(()),
            );
            m.close();
            assert_eq!(
                committed(&b.bootstrap(), group, topic, 2),
                vec![Offset::Offset(10); 2],
                "[{io}] {group} committed offsets"
            );
        }
        // A group only used to store offsets: a consumer that never joins
        // commits (generation -1, no member id), with commit metadata.
        let manual = consumer(&b.bootstrap(), &[("group.id", "admin-manual")]);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, 1)
            .set_offset(Offset::Offset(7))
            .unwrap();
        tpl.find_partition(topic, 1)
            .unwrap()
            .set_metadata("chronik metadata");
        manual
            .commit(&tpl, CommitMode::Sync)
            .unwrap_or_else(|e| panic!("[{io}] commit without joining: {e}"));
        let mut ask = TopicPartitionList::new();
        ask.add_partition(topic, 1);
        let got = manual
            .committed_offsets(ask, OP_TIMEOUT)
            .expect("OffsetFetch admin-manual");
        let e = got
            .find_partition(topic, 1)
            .expect("partition 1 in the answer");
        assert_eq!(
            (e.offset(), e.metadata()),
            (Offset::Offset(7), "chronik metadata"),
            "[{io}] admin-manual's committed offset and metadata"
        );
        drop(manual);

        // A group with a live member.
        let live = Member::spawn(
            "admin-live",
            &member_config(
                &b.bootstrap(),
                "admin-live",
                &[
                    ("client.id", "admin-live-member"),
                    // Only range (librdkafka's default is "range,roundrobin").
                    ("partition.assignment.strategy", "range"),
                ],
            ),
            topic,
            deliveries.clone(),
        );
        wait_for(
            &format!("[{io}] admin-live to hold both partitions"),
            REBALANCE_DEADLINE,
            || balanced(&[&live], 2),
        );
        let live_id = live.view().member_id;

        // Joins the coordinator refuses, without disturbing the live group: a
        // protocol its member does not speak (INCONSISTENT_GROUP_PROTOCOL), and
        // a session timeout below --group-min-session-timeout-ms (6000 by
        // default; INVALID_SESSION_TIMEOUT).
        for (group, extra, want) in [
            (
                "admin-live",
                ("partition.assignment.strategy", "roundrobin"),
                "InconsistentGroupProtocol",
            ),
            (
                "admin-short",
                ("session.timeout.ms", "3000"),
                "InvalidSessionTimeout",
            ),
        ] {
            let refused = Member::spawn(
                "refused",
                &member_config(&b.bootstrap(), group, &[extra]),
                topic,
                deliveries.clone(),
            );
            let errors = wait_for(
                &format!("[{io}] a {want} error for a member joining {group} with {extra:?}"),
                OP_TIMEOUT,
                || {
                    let v = refused.view();
                    v.errors
                        .iter()
                        .any(|e| e.contains(want))
                        .then_some(v.errors)
                },
            );
            let v = refused.close();
            assert!(
                v.assignment.is_empty() && v.consumed == 0,
                "[{io}] a refused member got partitions: {v:?} (errors {errors:?})"
            );
        }
        assert_eq!(
            live.view().revocations,
            0,
            "[{io}] refused joins made admin-live rebalance"
        );

        let c = consumer(&b.bootstrap(), &[]);
        let list = |c: &rd::Cons| -> BTreeMap<String, (String, String)> {
            c.fetch_group_list(None, OP_TIMEOUT)
                .expect("ListGroups + DescribeGroups")
                .groups()
                .iter()
                .map(|g| {
                    (
                        g.name().to_string(),
                        (g.state().to_string(), g.protocol_type().to_string()),
                    )
                })
                .collect()
        };
        let listed = list(&c);
        for (group, state, protocol_type) in [
            ("admin-done", "Empty", "consumer"),
            ("admin-offsets", "Empty", "consumer"),
            ("admin-live", "Stable", "consumer"),
            // Kafka lists offset-only groups with no protocol type.
            ("admin-manual", "Empty", ""),
        ] {
            assert_eq!(
                listed.get(group),
                Some(&(state.to_string(), protocol_type.to_string())),
                "[{io}] {group} in the group list {listed:?}"
            );
        }
        let described = c
            .fetch_group_list(Some("admin-live"), OP_TIMEOUT)
            .expect("DescribeGroups admin-live");
        assert_eq!(described.groups().len(), 1, "[{io}] describe one group");
        let g = &described.groups()[0];
        assert_eq!(
            (
                g.name(),
                g.state(),
                g.protocol_type(),
                g.protocol(),
                g.members().len()
            ),
            ("admin-live", "Stable", "consumer", "range", 1),
            "[{io}] described admin-live"
        );
        let m = &g.members()[0];
        assert_eq!(
            (m.id(), m.client_id()),
            (live_id.as_str(), "admin-live-member"),
            "[{io}] admin-live's member"
        );
        let client_host = m.client_host().to_string();
        assert!(
            m.assignment().is_some_and(|a| !a.is_empty())
                && m.metadata().is_some_and(|md| !md.is_empty()),
            "[{io}] the member's assignment and subscription metadata are described"
        );

        // OffsetDelete.
        let a = admin(&b.bootstrap());
        assert_eq!(
            delete_group_offsets(&a, "admin-live", topic, &[0]),
            Ok(vec![(0, Err(RDKafkaErrorCode::GroupSubscribedToTopic))]),
            "[{io}] OffsetDelete on a topic the live group consumes"
        );
        assert_eq!(
            delete_group_offsets(&a, "admin-offsets", topic, &[0]),
            Ok(vec![(0, Ok(()))]),
            "[{io}] OffsetDelete of an empty group's partition 0"
        );
        assert_eq!(
            committed(&b.bootstrap(), "admin-offsets", topic, 2),
            vec![Offset::Invalid, Offset::Offset(10)],
            "[{io}] admin-offsets after deleting partition 0's offset"
        );

        // DeleteGroups.
        let r =
            block_on(a.delete_groups(&["admin-done", "admin-live", "admin-never"], &admin_opts()))
                .expect("DeleteGroups request");
        assert_eq!(
            r,
            vec![
                Ok("admin-done".to_string()),
                Err(("admin-live".to_string(), RDKafkaErrorCode::NonEmptyGroup)),
                Err(("admin-never".to_string(), RDKafkaErrorCode::GroupIdNotFound)),
            ],
            "[{io}] DeleteGroups"
        );
        let listed = list(&c);
        assert!(
            !listed.contains_key("admin-done") && listed.contains_key("admin-live"),
            "[{io}] group list after DeleteGroups: {listed:?}"
        );
        assert_eq!(
            committed(&b.bootstrap(), "admin-done", topic, 2),
            vec![Offset::Invalid; 2],
            "[{io}] a deleted group's offsets are gone"
        );
        assert_eq!(
            committed(&b.bootstrap(), "admin-offsets", topic, 2),
            vec![Offset::Invalid, Offset::Offset(10)],
            "[{io}] deleting another group left admin-offsets alone"
        );

        live.close();
        wait_for(
            &format!("[{io}] admin-live to be empty"),
            OP_TIMEOUT,
            || (list(&c).get("admin-live").map(|(s, _)| s.as_str()) == Some("Empty")).then_some(()),
        );
        let r = block_on(a.delete_groups(&["admin-live"], &admin_opts())).expect("DeleteGroups");
        assert_eq!(
            r,
            vec![Ok("admin-live".to_string())],
            "[{io}] delete the emptied group"
        );

        // Kafka describes a member's host as the connection's address
        // ("/127.0.0.1"); `kafka-consumer-groups --describe` shows it.
        assert!(
            client_host.contains("127.0.0.1"),
            "[{io}] DescribeGroups member client_host is {client_host:?}"
        );
    }
}
