//! The deterministic cluster simulator (Chronik's VOPR).
//!
//! One `u64` seed decides everything: cluster size (3 or 5 founding voters),
//! Raft knobs, network and disk behaviour, the workload and the nemesis
//! schedule. The same seed always runs the same steps, so a failure is replayed
//! with `cargo xtask sim --seed S`, and a minimized failure with
//! `cargo xtask sim --trace FILE`.
//!
//! # Fault model
//!
//! - **Network**: every message is delayed by a random number of time units (so
//!   messages reorder), may be lost or delivered twice, and a few are delayed by
//!   up to ten ticks. Partitions cut directed links: symmetric, one-way out of
//!   or into a side, or isolating the current leader; a message whose link is cut
//!   when it arrives is lost. A failed delivery is sometimes reported to the
//!   sender as `Unreachable`, as a driver's connection would.
//! - **Disk**: each write becomes durable after a random delay, in order. A crash
//!   loses every write not yet durable; the node restarts from its disk later.
//!   In half the seeds (a layer drawn from its own stream) a disk turns slow
//!   now and then (each write takes longer), so the network outruns it: peers
//!   answer before the node's own writes are durable.
//! - **Processes**: crashes with downtime, pauses (a frozen process: its ticks
//!   are lost, its messages and disk completions wait), and, in the slow-disk
//!   layer, power losses of a leader just elected on a slow disk, right after
//!   its first client proposal: its messages still in flight are lost too, and
//!   it restarts soon and campaigns at once, while its voters still remember
//!   their votes for it.
//! - **Operators**: leader transfers, learners added from a pool of spare ids,
//!   promoted and removed, compaction (so lagging followers need snapshots),
//!   forced elections.
//! - **Clients**: propose unique values to whoever leads.
//!
//! The fault phase lasts `fault_ticks`. Then everything heals (all processes
//! run, all links work, no more losses) and the cluster must elect a leader and
//! apply a new proposal on every voter. It fails if the slowest voter's applied
//! index stands still for `liveness_ticks` (stuck, not merely slow: a backlog of
//! entries proposed during a partition may take a while to ship), or if it is
//! still catching up after twenty times that.
//!
//! # Checks
//!
//! After every step of every node ([`checker::Checker`]): election safety, no
//! double votes, log matching, leader completeness, no committed entry lost,
//! state-machine safety (prefixes of one sequence, no phantom or duplicate
//! values) and each node's own bookkeeping; then liveness after healing.
//!
//! # Determinism
//!
//! Each concern draws from its own stream of the seed ([`params::Stream`]): the
//! nemesis schedule is drawn whole before the run, so dropping one op leaves the
//! others, the workload and the disk and network draws where they were. Nothing
//! reads a clock, the environment or an unseeded RNG.

pub mod checker;
mod cluster;
pub mod minimize;
pub mod nemesis;
pub mod network;
pub mod params;
pub mod trace;

use std::fmt;

pub use checker::{Checker, Violation, ViolationKind};
pub use nemesis::{NemesisOp, Scheduled};
pub use params::{Params, SimOptions};

/// Everything a run needs: the seed (for the network, disk and workload
/// streams), the parameters and the nemesis schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// Cluster, network, disk and phase parameters.
    pub params: Params,
    /// Nemesis ops, sorted by tick.
    pub schedule: Vec<Scheduled>,
}

impl Plan {
    /// The plan `seed` draws.
    pub fn from_seed(seed: u64, opts: &SimOptions) -> Plan {
        let params = Params::from_seed(seed, opts);
        let schedule = nemesis::generate(seed, &params);
        Plan {
            seed,
            params,
            schedule,
        }
    }
}

/// A violation with where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What broke.
    pub violation: Violation,
    /// The step (node steps counted from 1) after which it was seen.
    pub step: u64,
    /// The tick it happened in.
    pub tick: u64,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at step {} (tick {})",
            self.violation, self.step, self.tick
        )
    }
}

/// What happened in a run, for progress lines and the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Node steps (events stepped, writes completed, restarts).
    pub steps: u64,
    /// Ticks run.
    pub ticks: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages lost (dropped by the network, or cut or undeliverable on arrival).
    pub dropped: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Disk writes issued.
    pub writes: u64,
    /// Crashes.
    pub crashes: u64,
    /// Pauses.
    pub pauses: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Slow-disk episodes started.
    pub slow_disks: u64,
    /// Leader transfers requested.
    pub transfers: u64,
    /// Membership changes accepted by a leader.
    pub conf_changes: u64,
    /// Compactions done.
    pub compactions: u64,
    /// Snapshot chunks sent.
    pub snapshot_chunks: u64,
    /// Snapshots installed by followers.
    pub snapshots_installed: u64,
    /// Compacted entries loaded from storage for lagging followers.
    pub entry_loads: u64,
    /// Leaders elected (one per term).
    pub leaders: u64,
    /// Client values accepted by a leader.
    pub proposals: u64,
    /// Values in the longest state machine at the end.
    pub applied: u64,
    /// Ticks from healing to a new proposal applied on every voter (the worst
    /// one when stats are added up).
    pub liveness_ticks: u64,
}

impl Stats {
    /// Adds `other` into `self`, field by field.
    pub fn add(&mut self, other: &Stats) {
        let Stats {
            steps,
            ticks,
            messages,
            dropped,
            duplicated,
            writes,
            crashes,
            pauses,
            partitions,
            slow_disks,
            transfers,
            conf_changes,
            compactions,
            snapshot_chunks,
            snapshots_installed,
            entry_loads,
            leaders,
            proposals,
            applied,
            liveness_ticks,
        } = other;
        self.steps += steps;
        self.ticks += ticks;
        self.messages += messages;
        self.dropped += dropped;
        self.duplicated += duplicated;
        self.writes += writes;
        self.crashes += crashes;
        self.pauses += pauses;
        self.partitions += partitions;
        self.slow_disks += slow_disks;
        self.transfers += transfers;
        self.conf_changes += conf_changes;
        self.compactions += compactions;
        self.snapshot_chunks += snapshot_chunks;
        self.snapshots_installed += snapshots_installed;
        self.entry_loads += entry_loads;
        self.leaders += leaders;
        self.proposals += proposals;
        self.applied += applied;
        self.liveness_ticks = self.liveness_ticks.max(*liveness_ticks);
    }
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The seed that ran.
    pub seed: u64,
    /// The first violation, if any.
    pub failure: Option<Failure>,
    /// What happened.
    pub stats: Stats,
}

/// Runs `plan` to its end or its first violation.
pub fn run(plan: &Plan) -> Outcome {
    cluster::Sim::new(plan, None).run()
}

/// Runs `plan` and hands each line of the event log to `sink` as it happens:
/// every step (node, event) followed by the actions it produced, indented, and
/// the nemesis ops. Slower; for replays and the determinism check.
pub fn run_logged(plan: &Plan, sink: &mut dyn FnMut(String)) -> Outcome {
    cluster::Sim::new(plan, Some(sink)).run()
}

/// Runs `plan` and returns its event log with the outcome.
pub fn run_recorded(plan: &Plan) -> (Outcome, Vec<String>) {
    let mut lines = Vec::new();
    let outcome = run_logged(plan, &mut |line| lines.push(line));
    (outcome, lines)
}

/// Runs the plan `seed` draws.
pub fn run_seed(seed: u64, opts: &SimOptions) -> Outcome {
    run(&Plan::from_seed(seed, opts))
}
