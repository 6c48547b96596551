//! `cargo xtask chaos`: Jepsen-style fault injection against a live cluster of
//! real `chronik` processes, with real clients, judged by a history checker.
//!
//! A run ([`run`]) starts N nodes whose peer links all pass through a
//! fault-injecting proxy ([`proxy`]), creates a 3-partition topic, and runs
//! librdkafka clients ([`workload`]): idempotent acks=all producers, a
//! consumer in a group and one assigned every partition, and an admin client
//! creating and deleting topics ([`admin`]). Meanwhile it plays a
//! fault schedule drawn from the seed ([`schedule`], applied by [`nemesis`]):
//! SIGKILL and restart, SIGSTOP pauses, partitions (isolation, halves, one
//! direction, ring/bridge), added latency, severed connections, graceful and
//! rolling restarts, and power cuts that lose the un-fsynced tail ([`disk`]).
//! Then it heals everything, waits for every partition to
//! accept writes and every replica to hold the same bytes ([`crate::cluster::converge`]),
//! reads the whole log back and hands the recorded
//! [`history`] to the [`checker`]: lost, duplicated, inconsistent,
//! non-monotonic, skipped, unseen and vanished records. It prints a verdict
//! table and availability figures ([`availability`]), and writes
//! `target/chaos/seed-S/{history.json,report.json,timeline.svg}` and the
//! node logs; any anomaly, crash or failure to recover exits non-zero.

mod admin;
mod args;
mod availability;
mod checker;
mod disk;
mod history;
mod nemesis;
mod proxy;
mod run;
mod schedule;
mod timeline;
mod workload;

/// Runs `cargo xtask chaos` with the arguments after `chaos`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    run::run(args::parse(args)?)
}
