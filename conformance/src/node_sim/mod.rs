//! The whole-node cluster simulator: real [`broker::node::Node`]s in cluster
//! mode (the metadata group, the controller, broker sessions, partitions as
//! Raft groups), model disks, a seeded network and Kafka clients, in
//! simulated time.
//!
//! One `u64` seed and a [`Params`] decide everything: the nodes' own seeds,
//! every delay, loss and crash, the clients' choices. Nothing reads a clock
//! or an unseeded RNG, so a seed replays its run exactly.
//!
//! # A run
//!
//! 1. **Setup** (a lossy network, no nemesis): the nodes form the metadata
//!    group and register with the controller; a client creates the topic
//!    with CreateTopics (`replication_factor` replicas, `partitions`
//!    partitions) and clients learn its leaders from Metadata.
//! 2. **Faults** for `fault_ms`: clients produce with `acks=all` while the
//!    [nemesis] crashes (one node, or all at once), isolates, one-way-cuts,
//!    splits and pauses nodes, often the one leading the most groups.
//! 3. **Healing**: every node runs, every link works, nothing is lost. A
//!    produce must be acknowledged within `liveness_ms`; clients keep
//!    producing for `settle_ms`, then stop.
//! 4. **Convergence**: within `converge_ms` every group must have one leader
//!    that every replica follows at the same commit index, with every write
//!    complete; then the final check runs, and a reader fetches every
//!    partition from its leader.
//!
//! # Fault model
//!
//! - **Network** ([`net`]): a TCP-like stream per directed link: frames keep
//!   their order, arrive after a seeded delay (some slow), and may be lost
//!   (a full send queue) or, if asked, duplicated. A cut (partition, or a
//!   crash of either end) loses what is in flight on the link and tells both
//!   ends `PeerDown`; frames sent on a cut link, or to a dead node, are lost.
//! - **Disk** ([`store`]): a write completes after a seeded delay, in order
//!   per group; only then is it visible and durable. A crash loses the
//!   incomplete writes, except in the torn variant (`DiskStore`'s commit
//!   round cut short): a prefix of their entries, and independently a prefix
//!   of their hard states (the node's journal), may have reached the disk.
//! - **Processes**: crashes with downtime (the node restarts from its disk
//!   with a new seed, as a new process does), pauses (a frozen process:
//!   everything for it waits).
//! - **Clients** ([`workload`]): Kafka requests over connections that break
//!   when the node dies; answers are decoded whole frames.
//!
//! # Checks
//!
//! See [`check`]: committed prefixes agree across replicas after every step,
//! acknowledged records are what is committed at their offsets, no
//! duplicates or phantoms, and at the end every acknowledged record is on the
//! final leader's log; liveness after healing.
//!
//! # Not modelled
//!
//! Clients are never cut off from a node that runs; Fetch is exercised only
//! by the final reader, consumer groups and transactions not at all; disks
//! do not fail (`PersistFailed`) or corrupt data; no retention, topic
//! deletion, reassignment or membership change; the setup phase has no
//! nemesis; clocks do not drift (every node ticks every 100 ms of simulated
//! time, except while paused); frames are duplicated only if
//! [`NetParams::dup_per_mille`] asks, which a TCP transport never does.

pub mod check;
pub mod consume;
pub mod nemesis;
pub mod net;
pub mod rng;
mod sim;
pub mod store;
pub mod workload;

use std::fmt;

pub use check::{Check, Found};
pub use nemesis::{Op, Scheduled, Target};
pub use net::NetParams;

use rng::{between, pick, stream, Stream};

/// What one run is made of, besides its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Brokers, numbered `1..=nodes`, all metadata voters.
    pub nodes: u64,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Replicas per partition.
    pub replication_factor: i16,
    /// Closed-loop producers.
    pub clients: usize,
    /// Every other client is an idempotent producer that resends a batch
    /// with its sequence until answered (the others never resend).
    pub idempotent: bool,
    /// Longest wait between a client's answer and its next request, in ms.
    pub think_ms: u64,
    /// Most records per produce.
    pub max_records: u64,
    /// Bound on the setup phase.
    pub setup_ms: u64,
    /// Length of the fault phase.
    pub fault_ms: u64,
    /// Bound from healing to the first acknowledged produce.
    pub liveness_ms: u64,
    /// How long clients keep producing once healed.
    pub settle_ms: u64,
    /// Bound from the clients' stop to a quiescent, agreeing cluster.
    pub converge_ms: u64,
    /// The network.
    pub net: NetParams,
    /// Shortest disk write latency, in ms.
    pub disk_min_ms: u64,
    /// Longest usual disk write latency, in ms.
    pub disk_max_ms: u64,
    /// Per-mille chance a write is slow (up to `disk_slow_ms`).
    pub disk_slow_per_mille: u64,
    /// The latency of a slow write, at most.
    pub disk_slow_ms: u64,
    /// Per-mille chance a crash is torn: some incomplete writes survive.
    pub torn_per_mille: u64,
    /// Gap between nemesis ops, drawn from this range (ms).
    pub nemesis_gap_ms: (u64, u64),
    /// Test-only breakage: a crash also loses the newest entry of every
    /// log, as a disk that acknowledges fsyncs it does not do. Only for
    /// proving the checks can fail.
    pub lying_disk: bool,
}

impl Params {
    /// The parameters `seed` draws for a cluster of `nodes`.
    pub fn drawn(seed: u64, nodes: u64) -> Params {
        let mut r = stream(seed, Stream::Params);
        let delay_min_ms = between(&mut r, 1, 3);
        let delay_max_ms = delay_min_ms + pick(&mut r, &[2, 10, 30]);
        let gap = pick(&mut r, &[400, 800, 1500]);
        Params {
            nodes,
            partitions: pick(&mut r, &[3, 4, 6]),
            replication_factor: nodes.min(3) as i16,
            clients: pick(&mut r, &[2, 3, 4]),
            idempotent: true,
            think_ms: pick(&mut r, &[0, 10, 50]),
            max_records: pick(&mut r, &[1, 3]),
            setup_ms: 30_000,
            fault_ms: 20_000,
            liveness_ms: 5_000,
            settle_ms: 2_000,
            converge_ms: 10_000,
            net: NetParams {
                delay_min_ms,
                delay_max_ms,
                slow_per_mille: pick(&mut r, &[0, 5, 20]),
                slow_ms: 400,
                drop_per_mille: pick(&mut r, &[0, 2, 10, 40]),
                dup_per_mille: 0,
            },
            disk_min_ms: 1,
            disk_max_ms: pick(&mut r, &[2, 10, 40]),
            disk_slow_per_mille: pick(&mut r, &[0, 10]),
            disk_slow_ms: 300,
            torn_per_mille: pick(&mut r, &[0, 300, 700]),
            nemesis_gap_ms: (gap, 3 * gap),
            lying_disk: false,
        }
    }
}

/// What happened in a run that passed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Brokers.
    pub nodes: u64,
    /// Simulated time at the end.
    pub sim_ms: u64,
    /// Events handled.
    pub events: u64,
    /// Produce requests sent.
    pub produces: u64,
    /// Produces acknowledged.
    pub acked_produces: u64,
    /// Records acknowledged.
    pub acked_records: u64,
    /// Records of the topic committed at the end (acknowledged or not).
    pub committed_records: u64,
    /// Produces answered with an error.
    pub produce_errors: u64,
    /// Produces whose outcome the client could not know.
    pub unknown_outcomes: u64,
    /// CreateTopics answered NOT_CONTROLLER.
    pub creates_not_controller: u64,
    /// Batches idempotent clients sent again.
    pub resent: u64,
    /// Times an idempotent client started over with a new producer id.
    pub producer_resets: u64,
    /// Crashes.
    pub crashes: u64,
    /// Crashes that kept incomplete writes (torn).
    pub torn_crashes: u64,
    /// Cuts started (isolations, one-way cuts, splits).
    pub cuts: u64,
    /// Pauses.
    pub pauses: u64,
    /// Times a partition's leadership moved to another node.
    pub failovers: u64,
    /// Times the metadata group's leadership moved to another node.
    pub metadata_failovers: u64,
    /// Follower truncations seen on the disks.
    pub truncations: u64,
    /// Peer frames sent.
    pub frames: u64,
    /// Peer frames lost.
    pub frames_lost: u64,
    /// Disk writes issued.
    pub writes: u64,
    /// Writes with a snapshot marker (the node compacted a Raft log).
    pub compactions: u64,
    /// Milliseconds from healing to the first acknowledged produce.
    pub liveness_ms: u64,
    /// Milliseconds from the clients' stop to convergence.
    pub converge_ms: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} ({} nodes): {} ms, {} events; {} produces, {} acked ({} records, {} committed), \
             {} errors, {} unknown, {} resent, {} producer resets; {} crashes ({} torn), {} cuts, {} pauses, {} failovers \
             (+{} metadata), {} truncations; {} frames ({} lost), {} writes, {} compactions; \
             healed in {} ms, converged in {} ms",
            self.seed,
            self.nodes,
            self.sim_ms,
            self.events,
            self.produces,
            self.acked_produces,
            self.acked_records,
            self.committed_records,
            self.produce_errors,
            self.unknown_outcomes,
            self.resent,
            self.producer_resets,
            self.crashes,
            self.torn_crashes,
            self.cuts,
            self.pauses,
            self.failovers,
            self.metadata_failovers,
            self.truncations,
            self.frames,
            self.frames_lost,
            self.writes,
            self.compactions,
            self.liveness_ms,
            self.converge_ms
        )
    }
}

/// A broken property, with the seed that breaks it and the run's last events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The seed: `run(seed, &params)` replays the run.
    pub seed: u64,
    /// When it was seen, in simulated ms.
    pub at_ms: u64,
    /// What broke.
    pub found: Found,
    /// The event log's last lines.
    pub tail: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {} at {} ms: {}", self.seed, self.at_ms, self.found)?;
        writeln!(f, "--- the last {} events ---", self.tail.len())?;
        for line in &self.tail {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Runs `seed` with `params` to its end or its first violation.
pub fn run(seed: u64, params: &Params) -> Result<Summary, Violation> {
    sim::Sim::new(seed, params, None).run()
}

/// Runs `seed` with `params`, handing every line of the event log (frames
/// and writes included) to `sink` as it happens.
pub fn run_logged(
    seed: u64,
    params: &Params,
    sink: &mut dyn FnMut(&str),
) -> Result<Summary, Violation> {
    sim::Sim::new(seed, params, Some(sink)).run()
}
