//! Consumer-group members for `clients_groups.rs`: each [`Member`] is a
//! librdkafka consumer subscribed to one topic and polled by its own thread,
//! which commits every record synchronously before it polls the next one and
//! publishes what the group coordinator has given it ([`MemberView`]).
//!
//! Committing each record before the next poll is what makes the group's
//! at-least-once promise checkable: a record can only be delivered again if the
//! commit of its earlier delivery failed, because a partition moves to another
//! member only after its old owner's thread has gone back to `poll` (where the
//! revocation runs), and so after that commit had its answer.
//!
//! Needs `rd` (`#[path = "clients/rd.rs"] mod rd;`) in the including crate.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::clients::broker::{wait_for, Broker};
use crate::rd::{admin, admin_opts, admin_request, block_on, topics, watermarks, Msg, OP_TIMEOUT};
use rdkafka::admin::{NewTopic, TopicReplication};

/// How long a member may take to close (a LeaveGroup round trip, or none for
/// a static member).
const CLOSE_DEADLINE: Duration = Duration::from_secs(60);

/// One record as a member received it, and the answer to committing it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub member: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Vec<u8>,
    pub commit: Result<(), String>,
}

/// All deliveries of all members of one group, in the order they were made.
pub type Deliveries = Arc<Mutex<Vec<Delivery>>>;

/// What a member's thread has seen so far.
#[derive(Clone, Debug, Default)]
pub struct MemberView {
    /// Partitions of the topic assigned to the member right now.
    pub assignment: BTreeSet<i32>,
    /// Rebalance callbacks that assigned at least one partition.
    pub assigns: usize,
    /// Rebalance callbacks that took at least one partition away.
    pub revocations: usize,
    /// Records received.
    pub consumed: usize,
    /// Consumer errors and rebalance errors, as text.
    pub errors: Vec<String>,
    /// librdkafka's member id (empty until the first JoinGroup answer).
    pub member_id: String,
}

type View = Arc<Mutex<MemberView>>;

struct MemberContext(View);

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut v = self.0.lock().unwrap();
        match rebalance {
            Rebalance::Assign(tpl) if tpl.count() > 0 => v.assigns += 1,
            Rebalance::Revoke(tpl) if tpl.count() > 0 => v.revocations += 1,
            Rebalance::Error(e) => v.errors.push(format!("rebalance: {e}")),
            _ => {}
        }
    }
}

/// The settings every member starts from: manual commits, earliest offsets
/// for partitions the group has not committed, and a 500 ms heartbeat so a
/// rebalance is noticed quickly.
pub fn member_config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg
}

/// A group member polled by its own thread; see the module doc.
pub struct Member {
    pub name: String,
    view: View,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    /// Creates the consumer, subscribes it to `topic` and starts polling it.
    /// Every record is appended to `deliveries` with the answer to its
    /// synchronous commit.
    pub fn spawn(name: &str, cfg: &ClientConfig, topic: &str, deliveries: Deliveries) -> Member {
        let view = View::default();
        let consumer: BaseConsumer<MemberContext> = cfg
            .create_with_context(MemberContext(view.clone()))
            .unwrap_or_else(|e| panic!("create group member {name}: {e}"));
        consumer
            .subscribe(&[topic])
            .unwrap_or_else(|e| panic!("{name}: subscribe to {topic}: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let (view2, stop2, name2) = (view.clone(), stop.clone(), name.to_string());
        let thread = std::thread::Builder::new()
            .name(format!("member-{name}"))
            .spawn(move || poll_loop(&name2, consumer, &view2, &stop2, &deliveries))
            .expect("spawn a member thread");
        Member {
            name: name.to_string(),
            view,
            stop,
            thread: Some(thread),
        }
    }

    pub fn view(&self) -> MemberView {
        self.view.lock().unwrap().clone()
    }

    /// Stops polling and closes the consumer in its own thread (a dynamic
    /// member leaves the group; a static one does not), waiting for that with
    /// a deadline. Returns what the member saw.
    pub fn close(mut self) -> MemberView {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().expect("member thread");
        wait_for(
            &format!("group member {} to close", self.name),
            CLOSE_DEADLINE,
            || thread.is_finished().then_some(()),
        );
        if let Err(e) = thread.join() {
            std::panic::resume_unwind(e);
        }
        self.view()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Not joined here: a test that is already failing must not hang on
        // a consumer that cannot close.
    }
}

fn poll_loop(
    name: &str,
    consumer: BaseConsumer<MemberContext>,
    view: &View,
    stop: &AtomicBool,
    deliveries: &Deliveries,
) {
    while !stop.load(Ordering::SeqCst) {
        let polled = consumer.poll(Duration::from_millis(100));
        let assignment = current_assignment(&consumer);
        let member_id = member_id(&consumer);
        {
            let mut v = view.lock().unwrap();
            v.assignment = assignment;
            v.member_id = member_id;
        }
        match polled {
            None => {}
            Some(Err(e)) => view.lock().unwrap().errors.push(e.to_string()),
            Some(Ok(m)) => {
                let commit = consumer
                    .commit_message(&m, CommitMode::Sync)
                    .map_err(|e| e.to_string());
                deliveries.lock().unwrap().push(Delivery {
                    member: name.to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    commit,
                });
                view.lock().unwrap().consumed += 1;
            }
        }
    }
    // Dropping the consumer closes it here, on the thread that polled it, so
    // the revocation callback runs where it always did.
    drop(consumer);
}

fn current_assignment<C: ConsumerContext>(c: &BaseConsumer<C>) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// librdkafka's current member id for the group (empty before it joined).
pub fn member_id<C: ConsumerContext>(c: &BaseConsumer<C>) -> String {
    // SAFETY: rd_kafka_memberid returns a malloc'ed copy (or NULL), freed with
    // rd_kafka_mem_free after it is copied.
    unsafe {
        let rk = c.client().native_ptr();
        let p = rdkafka::bindings::rd_kafka_memberid(rk);
        if p.is_null() {
            return String::new();
        }
        let s = std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
        rdkafka::bindings::rd_kafka_mem_free(rk, p.cast());
        s
    }
}

/// Whether `members` hold the partitions `0..partitions` between them, each
/// exactly once, with no member empty: the group has finished rebalancing.
pub fn balanced(members: &[&Member], partitions: i32) -> Option<Vec<MemberView>> {
    let views: Vec<MemberView> = members.iter().map(|m| m.view()).collect();
    let mut seen = BTreeSet::new();
    for v in &views {
        if v.assignment.is_empty() {
            return None;
        }
        for p in &v.assignment {
            if !seen.insert(*p) {
                return None;
            }
        }
    }
    (seen == (0..partitions).collect()).then_some(views)
}

/// The group's committed offsets for `topic` partitions `0..partitions`, as an
/// outsider sees them (OffsetFetch by a consumer that never joins).
pub fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<Offset> {
    let c: BaseConsumer = member_config(bootstrap, group, &[])
        .create()
        .expect("create an OffsetFetch consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, OP_TIMEOUT)
        .unwrap_or_else(|e| panic!("OffsetFetch {group} {topic}: {e}"));
    (0..partitions)
        .map(|p| {
            let e = got
                .find_partition(topic, p)
                .unwrap_or_else(|| panic!("OffsetFetch {group}: no {topic}/{p} in the answer"));
            assert_eq!(e.error(), Ok(()), "OffsetFetch {group} {topic}/{p}");
            e.offset()
        })
        .collect()
}

// ----- topics and records of the group tests -------------------------------

/// A broker whose groups rebalance at once: an empty group's first
/// rebalance does not wait three seconds for more members.
pub fn group_broker(io: &str) -> Broker {
    Broker::start_with(io, &["--group-initial-rebalance-delay-ms", "0"])
}

/// Creates `topic` with `partitions` partitions and waits until Metadata has it.
pub fn create_topic(b: &Broker, topic: &str, partitions: i32) {
    let a = admin(&b.bootstrap());
    let r = block_on(a.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &admin_opts(),
    ))
    .expect("CreateTopics request");
    assert_eq!(r, vec![Ok(topic.to_string())], "[{}] create {topic}", b.io);
    wait_for(&format!("{topic} in Metadata"), OP_TIMEOUT, || {
        (topics(&a).get(topic) == Some(&(partitions as usize))).then_some(())
    });
}

/// A record whose value names its id: `{tag}-{id}`.
pub fn numbered(tag: &str, id: usize) -> Msg {
    Msg {
        key: None,
        value: Some(format!("{tag}-{id}").into_bytes()),
        headers: vec![],
        timestamp: None,
    }
}

/// The id in a [`numbered`] record's value.
pub fn id_of(tag: &str, payload: &[u8]) -> usize {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.strip_prefix(tag)?.strip_prefix('-')?.parse().ok())
        .unwrap_or_else(|| panic!("not a {tag} record: {:?}", String::from_utf8_lossy(payload)))
}

/// Each partition's log end offset.
pub fn high_watermarks(b: &Broker, topic: &str, partitions: i32) -> Vec<Offset> {
    (0..partitions)
        .map(|p| Offset::Offset(watermarks(&b.bootstrap(), topic, p).1))
        .collect()
}

/// One partition's answer in an admin result: its index and error, if any.
pub type PartitionAnswer = (i32, Result<(), RDKafkaErrorCode>);

/// OffsetDelete (API 47) of `group`'s committed offsets for `topic` partitions,
/// through librdkafka's C API (the `rdkafka` crate does not wrap it). Returns
/// each partition's answer, or the request's or the group's error.
pub fn delete_group_offsets(
    a: &rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<PartitionAnswer>, String> {
    use rdkafka::bindings as ffi;
    let name = CString::new(group).unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    // SAFETY: plain use of librdkafka's admin C API; the request object created
    // here is destroyed here, and result pointers are read before the event is
    // freed.
    unsafe {
        let del = ffi::rd_kafka_DeleteConsumerGroupOffsets_new(name.as_ptr(), tpl.ptr());
        let out = admin_request(
            a,
            ffi::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETECONSUMERGROUPOFFSETS,
            "DeleteConsumerGroupOffsets",
            |rk, opts, queue| {
                let mut dels = [del];
                ffi::rd_kafka_DeleteConsumerGroupOffsets(rk, dels.as_mut_ptr(), 1, opts, queue);
            },
            |ev| {
                let result = ffi::rd_kafka_event_DeleteConsumerGroupOffsets_result(ev);
                let mut n = 0usize;
                let groups = ffi::rd_kafka_DeleteConsumerGroupOffsets_result_groups(result, &mut n);
                if n != 1 {
                    return Err(format!("{n} groups in the result, expected 1"));
                }
                let g = *groups;
                let err = ffi::rd_kafka_group_result_error(g);
                if !err.is_null() {
                    let code: RDKafkaErrorCode = ffi::rd_kafka_error_code(err).into();
                    return Err(format!("group error {code:?}"));
                }
                let parts = ffi::rd_kafka_group_result_partitions(g);
                let mut out = Vec::new();
                if !parts.is_null() {
                    for i in 0..(*parts).cnt as usize {
                        let e = &*(*parts).elems.add(i);
                        let code: RDKafkaErrorCode = e.err.into();
                        let r = if code == RDKafkaErrorCode::NoError {
                            Ok(())
                        } else {
                            Err(code)
                        };
                        out.push((e.partition, r));
                    }
                }
                out.sort_by_key(|(p, _)| *p);
                Ok(out)
            },
        );
        ffi::rd_kafka_DeleteConsumerGroupOffsets_destroy(del);
        out
    }
}
