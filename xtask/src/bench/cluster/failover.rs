//! Failover: how long acks=all writes stop when a partition's leader dies.
//!
//! One producer sends a 1 KiB acks=all record every [`SEND_EVERY`] to the
//! single partition of an rf-3 topic, configured as an application that wants
//! fast failover would be (small retry and reconnect backoffs, a 250 ms
//! metadata refresh). Then, `kills` times:
//!
//! 1. wait until the cluster is steady: Metadata names a leader that its own
//!    `/metrics` agree leads, every replica is in the ISR, and records are
//!    being acknowledged;
//! 2. SIGKILL the leader, the time taken just before the signal;
//! 3. the **failover time** is from the kill to the first acknowledgement of a
//!    record *sent after* the kill (delivery reports carry each record's send
//!    time, so an acknowledgement of an older record in flight does not count);
//! 4. restart the node with its data and wait until it serves `/health`, has
//!    caught up (its commit index reaches one the leader reported after the
//!    restart) and Metadata lists it in the ISR again, so the next kill does
//!    not wait on a lagging follower for its majority.
//!
//! The commit index and leader come from the nodes' `/metrics`, whose Raft
//! gauges the broker refreshes every 50 ticks (5 s): "caught up" is known
//! to within 5 s, and the leader check before a kill may wait that long after
//! a change. The ISR rarely shrinks at all: a replica leaves it after 30 s
//! behind (`replica.lag.time.max.ms`), longer than a restart takes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use conformance::launch::poll_until;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::stats::{median_max, MedianMax};
use crate::bench::report::{clear_line, Progress};
use crate::cluster::layout::NodeId;
use crate::cluster::local::LocalCluster;
use crate::cluster::scrape::{http_get, parse_samples, RaftView, Role, Sample};
use crate::cluster::topics::{self, Admin};

/// The topic the failover producer writes.
pub const TOPIC: &str = "failover";
/// Bytes of each record's value.
const RECORD_BYTES: usize = 1024;
/// The producer's pace: fine enough to time a failover to a few ms, and a
/// steady load while the killed node is down and catching up.
const SEND_EVERY: Duration = Duration::from_millis(2);
/// How long a kill may go without an acknowledgement before it counts as a
/// failed failover.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);
/// How long the cluster may take to be steady before a kill.
const STEADY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a restarted node may take to catch up and rejoin the ISR.
const REJOIN_DEADLINE: Duration = Duration::from_secs(120);
/// An acknowledgement this recent means records are flowing.
const FLOWING: Duration = Duration::from_millis(500);
/// No pending kill / no acknowledgement yet.
const NONE: u64 = u64::MAX;

/// What one kill measured.
#[derive(Clone, Debug)]
pub struct Kill {
    /// The node killed: the partition's leader.
    pub node: i32,
    /// Whether it was also the metadata leader (the controller).
    pub was_controller: bool,
    /// SIGKILL to the first acknowledged write sent after it; `None` if none
    /// came within [`FAILOVER_DEADLINE`].
    pub failover: Option<Duration>,
    /// The leader Metadata named next.
    pub new_leader: Option<i32>,
    /// Restart to `/health` 200.
    pub healthy_after: Duration,
    /// Restart to caught up (to within the 5 s gauge refresh) and in the
    /// ISR; `None` if not within [`REJOIN_DEADLINE`].
    pub back_after: Option<Duration>,
    /// Records whose delivery failed from this kill to the next.
    pub delivery_errors: u64,
    /// Records librdkafka refused to queue from this kill to the next.
    pub refused: u64,
}

/// Everything the failover runs measured.
#[derive(Debug, Default)]
pub struct Report {
    pub kills: Vec<Kill>,
    /// Why the runs stopped early, if they did.
    pub error: Option<String>,
    pub acked: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    /// Records librdkafka refused to queue, and the first reason.
    pub refused: u64,
    pub first_refusal: Option<String>,
}

impl Report {
    /// Median and max failover, seconds, over the kills that failed over.
    pub fn summary(&self) -> Option<MedianMax> {
        let secs: Vec<f64> = self
            .kills
            .iter()
            .filter_map(|k| k.failover.map(|d| d.as_secs_f64()))
            .collect();
        median_max(&secs)
    }

    /// Kills after which no write was acknowledged within the deadline.
    pub fn missed(&self) -> usize {
        self.kills.iter().filter(|k| k.failover.is_none()).count()
    }
}

/// Delivery reports of the failover producer.
struct FailoverContext {
    base: Instant,
    /// When the pending kill happened, nanoseconds since `base`; [`NONE`]
    /// when no kill is pending.
    kill_ns: AtomicU64,
    /// The earliest acknowledgement of a record sent at or after `kill_ns`.
    first_ack_ns: AtomicU64,
    last_ack_ns: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Records librdkafka refused to queue (a full queue aside), and the
    /// first reason: it refuses a topic some broker just called unknown.
    refused: AtomicU64,
    first_refusal: Mutex<Option<String>>,
}

impl FailoverContext {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn flowing(&self) -> bool {
        let last = self.last_ack_ns.load(Ordering::Relaxed);
        last != 0 && self.now_ns().saturating_sub(last) < FLOWING.as_nanos() as u64
    }
}

impl ClientContext for FailoverContext {}

impl ProducerContext for FailoverContext {
    /// When the record was sent: nanoseconds since `base`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = self.now_ns();
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.last_ack_ns.fetch_max(now, Ordering::Relaxed);
                if sent_ns as u64 >= self.kill_ns.load(Ordering::Acquire) {
                    self.first_ack_ns.fetch_min(now, Ordering::AcqRel);
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap();
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

type Prod = ThreadedProducer<FailoverContext>;

fn producer(bootstrap: &str) -> anyhow::Result<Prod> {
    let ctx = FailoverContext {
        base: Instant::now(),
        kill_ns: AtomicU64::new(NONE),
        first_ack_ns: AtomicU64::new(NONE),
        last_ack_ns: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
        refused: AtomicU64::new(0),
        first_refusal: Mutex::new(None),
    };
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("enable.idempotence", "false")
        .set("retry.backoff.ms", "10")
        .set("retry.backoff.max.ms", "100")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "250")
        .set("topic.metadata.refresh.fast.interval.ms", "50")
        .set("request.timeout.ms", "5000")
        .set("message.timeout.ms", "60000")
        .create_with_context(ctx)
        .context("create the failover producer")
}

/// Kills the leader of [`TOPIC`]'s partition `kills` times while a producer
/// writes to it. The topic must exist with every replica in sync.
pub fn run(
    cluster: &mut LocalCluster,
    admin: &Admin,
    rf: usize,
    kills: usize,
    tag: &str,
) -> anyhow::Result<Report> {
    let p = producer(&cluster.bootstrap())?;
    let stop = AtomicBool::new(false);
    let mut report = Report::default();
    std::thread::scope(|s| {
        let sender = s.spawn(|| send_until(&p, &stop));
        for k in 0..kills {
            let tag = format!("{tag} {}/{kills}", k + 1);
            let failed_before = p.context().failed.load(Ordering::Relaxed);
            let refused_before = p.context().refused.load(Ordering::Relaxed);
            match kill_once(cluster, admin, &p, rf, &tag) {
                Ok(mut kill) => {
                    kill.delivery_errors =
                        p.context().failed.load(Ordering::Relaxed) - failed_before;
                    kill.refused = p.context().refused.load(Ordering::Relaxed) - refused_before;
                    clear_line();
                    eprintln!("{tag}: {}", describe(&kill));
                    report.kills.push(kill);
                }
                Err(e) => {
                    clear_line();
                    report.error = Some(format!("kill {}: {e:#}", k + 1));
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        if sender.join().is_err() {
            report
                .error
                .get_or_insert("the sending thread panicked".into());
        }
    });
    let ctx = p.context();
    report.acked = ctx.acked.load(Ordering::Relaxed);
    report.failed = ctx.failed.load(Ordering::Relaxed);
    report.first_error = ctx.first_error.lock().unwrap().clone();
    report.refused = ctx.refused.load(Ordering::Relaxed);
    report.first_refusal = ctx.first_refusal.lock().unwrap().clone();
    Ok(report)
}

/// Sends a record every [`SEND_EVERY`] until `stop`. A record librdkafka
/// refuses is counted and the loop goes on: the next one may be accepted.
fn send_until(p: &Prod, stop: &AtomicBool) {
    let payload = vec![0x5a_u8; RECORD_BYTES];
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let sent = p.context().now_ns() as usize;
        let record = BaseRecord::<(), [u8], usize>::with_opaque_to(TOPIC, sent)
            .payload(&payload)
            .partition(0);
        match p.send(record) {
            Ok(()) => {}
            // The queue fills only if nothing is acknowledged for a long
            // time; the kill that causes it is measured anyway.
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
            Err((e, _)) => {
                let ctx = p.context();
                ctx.refused.fetch_add(1, Ordering::Relaxed);
                let mut first = ctx.first_refusal.lock().unwrap();
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
        next += SEND_EVERY;
        let now = Instant::now();
        match next.checked_duration_since(now) {
            Some(wait) => std::thread::sleep(wait),
            None => next = now,
        }
    }
}

fn kill_once(
    cluster: &mut LocalCluster,
    admin: &Admin,
    p: &Prod,
    rf: usize,
    tag: &str,
) -> anyhow::Result<Kill> {
    let ctx = p.context();
    let mut progress = Progress::new(tag);
    let leader = wait_steady(cluster, admin, ctx, rf, &mut progress)?;
    let id = NodeId(leader as u32);
    let was_controller = metrics(cluster.admin(id)?)
        .is_some_and(|s| RaftView::of(&s, id).metadata_role == Role::Leader);
    let role = if was_controller {
        "leader and controller"
    } else {
        "leader"
    };

    ctx.first_ack_ns.store(NONE, Ordering::Release);
    let killed_ns = ctx.now_ns();
    ctx.kill_ns.store(killed_ns, Ordering::Release);
    cluster.kill(id)?;
    let killed = Instant::now();
    let acked = poll_until(FAILOVER_DEADLINE, || {
        progress.status(&format!(
            "node {leader} ({role}) SIGKILLed {:.1} s ago; waiting for an acknowledged write",
            killed.elapsed().as_secs_f64()
        ));
        let first = ctx.first_ack_ns.load(Ordering::Acquire);
        (first != NONE).then_some(first)
    });
    ctx.kill_ns.store(NONE, Ordering::Release);
    let failover = acked.map(|ns| Duration::from_nanos(ns.saturating_sub(killed_ns)));
    let new_leader = poll_until(Duration::from_secs(10), || {
        let (parts, _) = topics::partitions(admin, TOPIC).ok()?;
        parts.first()?.leader.filter(|&l| l != leader)
    });

    progress.status_now(&format!("restarting node {leader}"));
    let restarted = Instant::now();
    cluster.restart(id)?;
    let healthy_after = restarted.elapsed();
    let back_after = wait_back(cluster, admin, id, &mut progress).map(|()| restarted.elapsed());
    Ok(Kill {
        node: leader,
        was_controller,
        failover,
        new_leader,
        healthy_after,
        back_after,
        delivery_errors: 0,
        refused: 0,
    })
}

/// Waits until records flow, every replica of the partition is in the ISR
/// and its leader's own metrics agree it leads; returns the leader.
fn wait_steady(
    cluster: &mut LocalCluster,
    admin: &Admin,
    ctx: &FailoverContext,
    rf: usize,
    progress: &mut Progress,
) -> anyhow::Result<i32> {
    let mut last = String::from("no Metadata answer yet");
    let steady = poll_until(STEADY_DEADLINE, || {
        progress.status(&format!("waiting for a steady cluster: {last}"));
        let (parts, error) = match topics::partitions(admin, TOPIC) {
            Ok(v) => v,
            Err(e) => {
                last = format!("{e:#}");
                return None;
            }
        };
        let Some(p0) = parts.first() else {
            last = format!("no partition ({})", error.unwrap_or_default());
            return None;
        };
        let Some(leader) = p0.leader else {
            last = "no leader".into();
            return None;
        };
        if p0.isr.len() < rf {
            last = format!(
                "leader {leader}, ISR {:?} of replicas {:?}",
                p0.isr, p0.replicas
            );
            return None;
        }
        if !ctx.flowing() {
            last = format!("leader {leader}, no acknowledgement in the last {FLOWING:?}");
            return None;
        }
        let admin_addr = cluster.admin(NodeId(leader as u32)).ok()?;
        let leads = metrics(admin_addr)
            .and_then(|s| gauge(&s, "chronik_raft_leader", &group()))
            .is_some_and(|v| v == f64::from(leader));
        if !leads {
            last = format!("Metadata names leader {leader}, its /metrics do not agree");
            return None;
        }
        Some(leader)
    });
    cluster.check_running()?;
    steady.with_context(|| format!("not steady within {} s: {last}", STEADY_DEADLINE.as_secs()))
}

/// Waits until node `id`, just restarted, has caught up and Metadata lists it
/// in the ISR; `None` if not within [`REJOIN_DEADLINE`].
///
/// Caught up: its commit index reaches a commit index the leader reported
/// *after* the restart. The gauges refresh every 5 s, so the leader's value
/// at the restart may be seconds old and a freshly started node's own value,
/// recomputed from its disk, may already pass it; the first value the leader
/// shows after a refresh cannot be passed that way.
fn wait_back(
    cluster: &LocalCluster,
    admin: &Admin,
    id: NodeId,
    progress: &mut Progress,
) -> Option<()> {
    let commit_of = |node: i32| -> Option<f64> {
        let s = metrics(cluster.admin(NodeId(node as u32)).ok()?)?;
        gauge(&s, "chronik_raft_commit_index", &group())
    };
    let me = id.0 as i32;
    // The leader and its commit gauge when first seen, then the first newer
    // value of that gauge: the index to reach.
    let mut baseline: Option<(i32, Option<f64>)> = None;
    let mut target: Option<f64> = None;
    let restarted = Instant::now();
    poll_until(REJOIN_DEADLINE, || {
        let (parts, _) = topics::partitions(admin, TOPIC).ok()?;
        let p0 = parts.first()?;
        let leader = p0.leader?;
        let now = commit_of(leader);
        if baseline.is_none_or(|(l, _)| l != leader) {
            baseline = Some((leader, now));
            target = None;
        }
        if let (None, Some(now), Some((_, base))) = (target, now, baseline) {
            if base.is_none_or(|b| now > b) {
                target = Some(now);
            }
        }
        let mine = commit_of(me);
        progress.status(&format!(
            "node {id} restarted {:.1} s ago; commit index {} of {} (gauges refresh every 5 s)",
            restarted.elapsed().as_secs_f64(),
            mine.map_or("-".into(), |v| format!("{v:.0}")),
            target.map_or("-".into(), |v| format!("{v:.0}")),
        ));
        let caught_up = leader == me || matches!((mine, target), (Some(m), Some(t)) if m >= t);
        (caught_up && p0.isr.contains(&me)).then_some(())
    })
}

/// The Raft group of the failover partition, as `/metrics` labels it.
fn group() -> String {
    format!("{TOPIC}-0")
}

/// A node's `/metrics` samples, if it answers.
fn metrics(admin: SocketAddr) -> Option<Vec<Sample>> {
    match http_get(admin, "/metrics") {
        Ok((200, body)) => Some(parse_samples(&body)),
        _ => None,
    }
}

/// The value of gauge `name` for Raft group `group`.
fn gauge(samples: &[Sample], name: &str, group: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.label("group") == Some(group))
        .map(|s| s.value)
}

/// One kill as a line.
fn describe(k: &Kill) -> String {
    let role = if k.was_controller {
        "leader and controller"
    } else {
        "leader"
    };
    let failover = k.failover.map_or_else(
        || {
            format!(
                "no acknowledged write within {} s",
                FAILOVER_DEADLINE.as_secs()
            )
        },
        |d| {
            format!(
                "first acknowledged write after {:.0} ms",
                d.as_secs_f64() * 1e3
            )
        },
    );
    let new = k.new_leader.map_or_else(
        || "no new leader seen".into(),
        |l| format!("new leader {l}"),
    );
    let back = k.back_after.map_or_else(
        || format!("not back in the ISR within {} s", REJOIN_DEADLINE.as_secs()),
        |d| format!("caught up and in the ISR after {:.1} s", d.as_secs_f64()),
    );
    format!(
        "node {} ({role}) SIGKILLed: {failover}; {new}; restarted, healthy after {:.1} s, {back}{}",
        k.node,
        k.healthy_after.as_secs_f64(),
        if k.delivery_errors + k.refused > 0 {
            format!(
                "; {} delivery errors, {} records refused by the client",
                k.delivery_errors, k.refused
            )
        } else {
            String::new()
        }
    )
}
