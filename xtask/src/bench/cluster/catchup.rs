//! Catch-up: how fast a follower that was down gets back what it missed.
//!
//! On a 1-partition topic of replication factor 3, one follower is
//! SIGKILLed and [`CatchUpPlan::bytes`] of 1 KiB acks=all records are
//! written without it, far more than the leader keeps in its in-memory Raft
//! log, so everything the follower lacks comes from the leader's segments
//! (`Action::LoadEntries`). Then the follower restarts, and the **catch-up
//! time** runs from the restart until its `.log` bytes equal the leader's
//! ([`converge`]), which includes the restart itself (reported apart as
//! `healthy_after`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use conformance::launch::poll_until;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::bench::report::Progress;
use crate::cluster::converge;
use crate::cluster::layout::NodeId;
use crate::cluster::local::LocalCluster;
use crate::cluster::topics::{self, Admin};

/// The topic the catch-up part writes.
pub const TOPIC: &str = "catchup";
/// Bytes of each record's value.
const RECORD_BYTES: usize = 1024;
/// How long writing the missed bytes may take.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(300);

/// How much the follower misses, and how long it may take to get it back.
#[derive(Clone, Copy, Debug)]
pub struct CatchUpPlan {
    /// Record bytes written while the follower is down.
    pub bytes: u64,
    /// How long the restarted follower may take to converge.
    pub deadline: Duration,
}

/// What the catch-up part measured.
#[derive(Clone, Debug)]
pub struct CatchUp {
    /// The follower that was down.
    pub node: i32,
    /// The partition's leader.
    pub leader: i32,
    /// Bytes of the leader's log when the follower restarted.
    pub log_bytes: u64,
    /// Bytes of that log the follower held when it restarted.
    pub had_bytes: u64,
    /// Writing the missed records (acks=all, two replicas).
    pub produce: Duration,
    /// Restart to `/health` 200.
    pub healthy_after: Duration,
    /// Restart to a log equal to the leader's.
    pub caught_up_after: Duration,
}

impl CatchUp {
    /// Bytes the follower fetched, per second of catch-up.
    pub fn mib_per_s(&self) -> f64 {
        let missed = self.log_bytes.saturating_sub(self.had_bytes) as f64;
        missed / (1 << 20) as f64 / self.caught_up_after.as_secs_f64().max(1e-9)
    }
}

/// Delivery counts of the producer.
#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Counts {}

impl ProducerContext for Counts {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.acked
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the part on `cluster`, whose [`TOPIC`] exists with every replica in
/// sync and is led by `leader`.
pub fn run(
    cluster: &mut LocalCluster,
    admin: &Admin,
    leader: i32,
    plan: CatchUpPlan,
    progress: &mut Progress,
) -> anyhow::Result<CatchUp> {
    let (parts, _) = topics::partitions(admin, TOPIC)?;
    let replicas = parts
        .first()
        .map(|p| p.replicas.clone())
        .unwrap_or_default();
    let Some(&node) = replicas.iter().find(|&&r| r != leader) else {
        bail!("{TOPIC} has no follower (replicas {replicas:?})");
    };
    progress.status_now(&format!("SIGKILL follower node {node}"));
    cluster.kill(NodeId(node as u32))?;
    let produce = write(cluster, plan.bytes, progress)?;

    let specs: Vec<_> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.spec(id).cloned())
        .collect::<anyhow::Result<_>>()?;
    let digests = converge::replicas(&specs, TOPIC, 0);
    let size = |id: i32| digests.get(&NodeId(id as u32)).map_or(0, |d| d.bytes);
    let (log_bytes, had_bytes) = (size(leader), size(node));
    progress.status_now(&format!(
        "restarting node {node}: it holds {had_bytes} of the leader's {log_bytes} log bytes"
    ));
    let restarted = Instant::now();
    cluster.restart(NodeId(node as u32))?;
    let healthy_after = restarted.elapsed();
    let caught_up_after = converge::wait_identical(&specs, TOPIC, 1, replicas.len(), plan.deadline)
        .map_err(anyhow::Error::msg)
        .map(|_| restarted.elapsed())?;
    Ok(CatchUp {
        node,
        leader,
        log_bytes,
        had_bytes,
        produce,
        healthy_after,
        caught_up_after,
    })
}

/// Writes `bytes` of acks=all records to [`TOPIC`] and waits until every
/// one is acknowledged; returns how long that took.
fn write(cluster: &LocalCluster, bytes: u64, progress: &mut Progress) -> anyhow::Result<Duration> {
    let p: ThreadedProducer<Counts> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.kbytes", "65536")
        .create_with_context(Counts::default())
        .context("create the catch-up producer")?;
    let records = bytes.div_ceil(RECORD_BYTES as u64);
    let payload = vec![0x6b_u8; RECORD_BYTES];
    let start = Instant::now();
    let mut sent = 0;
    while sent < records {
        match p.send(
            BaseRecord::<(), [u8], ()>::to(TOPIC)
                .payload(&payload)
                .partition(0),
        ) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("the producer refused a record: {e}"),
        }
        if sent % 4096 == 0 {
            progress.status(&written(p.context().acked.load(Ordering::Relaxed), bytes));
        }
    }
    let done = poll_until(PRODUCE_DEADLINE, || {
        let c = p.context();
        let (acked, failed) = (
            c.acked.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
        );
        progress.status(&written(acked, bytes));
        (acked + failed == records).then_some(failed)
    });
    match done {
        Some(0) => Ok(start.elapsed()),
        Some(failed) => bail!("{failed} of {records} acks=all records failed"),
        None => bail!(
            "not every record was acknowledged within {} s",
            PRODUCE_DEADLINE.as_secs()
        ),
    }
}

/// The progress line while writing: `acked` records of `bytes`.
fn written(acked: u64, bytes: u64) -> String {
    format!(
        "writing without the follower: {} of {} MiB acknowledged",
        (acked * RECORD_BYTES as u64) >> 20,
        bytes >> 20
    )
}
