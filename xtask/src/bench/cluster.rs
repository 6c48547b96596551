//! `cargo xtask bench --cluster N`: the cluster benchmark, N release `chronik`
//! nodes on 127.0.0.1 (see [`crate::cluster::local`]), every topic with replication factor
//! `min(3, N)`. Three parts, each on a fresh cluster:
//!
//! 1. **throughput**: the single-node bench's produce and consume phases
//!    (same producer, same table columns) with acks=all and 1 KiB records, on
//!    1 partition flat out, on 3 partitions flat out (the leaders where the
//!    controller placed them, shown after the table), and on 1 partition at a
//!    fixed 50 MB/s; one fresh cluster per case. CPU is summed over the nodes,
//!    peak RSS is per node;
//! 2. **failover** ([`failover`]): the leader of a 1-partition topic
//!    SIGKILLed 10 times under an acks=all producer, timed from the kill to
//!    the first acknowledged write sent after it;
//! 3. **catch-up** ([`catchup`]): a follower SIGKILLed while 512 MiB of
//!    acks=all records are written, then restarted, timed until its log
//!    equals the leader's byte for byte;
//! 4. **idle** ([`idle`]): the CPU each node burns holding 10,000 partitions.
//!
//! `--quick` makes each part shorter (2 s cases, 3 kills, 64 MiB missed,
//! 1,000 partitions, a 5 s settle and a 10 s window); `--idle-partitions P` sets the idle part's
//! partition count (to find where idle cost grows); `--only TEXT` keeps the parts whose label
//! contains TEXT (`failover`, `catch-up`, `idle`, or a case label such as
//! `tokio x3 1KiB acks=all p=3`). The figures are printed next to the issue's
//! targets and written to `target/bench/cluster.json`; node logs stay in
//! `target/bench/logs/`. A part that fails is reported with its error and the
//! nodes' last log lines, and the others still run.

mod catchup;
mod failover;
mod idle;
mod report;
mod stats;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::broker::Brokers;
use super::report::{clear_line, one_line, print_table, to_json, Progress};
use super::{
    consume, log_lines, print_warnings, produce, selected, sync_page_cache, write_json, Args, Case,
    Outcome, FIXED_RATE,
};
use crate::cluster::layout::IoChoice;
use crate::cluster::local::LocalCluster;
use crate::cluster::topics;
use catchup::{CatchUp, CatchUpPlan};
use idle::{IdlePlan, IdleReport};
use report::{
    catch_up_json, catch_up_table, failover_json, failover_table, fmt_leaders, idle_json,
    idle_line, idle_table, targets_table,
};

/// How long the nodes of a fresh cluster may take to register and a new
/// small topic to get its leaders.
const FORM_DEADLINE: Duration = Duration::from_secs(60);

/// How long and how much each part does.
#[derive(Clone, Copy, Debug)]
struct Plan {
    kills: usize,
    catch_up: CatchUpPlan,
    idle: IdlePlan,
}

impl Plan {
    fn new(quick: bool, rf: u32) -> Plan {
        let secs = Duration::from_secs;
        if quick {
            Plan {
                kills: 3,
                catch_up: CatchUpPlan {
                    bytes: 64 << 20,
                    deadline: secs(120),
                },
                idle: IdlePlan {
                    partitions: 1_000,
                    rf,
                    create_timeout: secs(120),
                    led_deadline: secs(300),
                    settle: secs(5),
                    window: secs(10),
                },
            }
        } else {
            Plan {
                kills: 10,
                catch_up: CatchUpPlan {
                    bytes: 512 << 20,
                    deadline: secs(300),
                },
                idle: IdlePlan {
                    partitions: 10_000,
                    rf,
                    create_timeout: secs(300),
                    led_deadline: secs(900),
                    settle: secs(20),
                    window: secs(30),
                },
            }
        }
    }
}

/// The throughput cases on a cluster of `nodes` running `io`.
fn cases(io: &'static str, nodes: u32) -> Vec<Case> {
    let base = Case {
        io,
        nodes,
        size: 1024,
        acks: "all",
        partitions: 1,
        rate: None,
        linger_ms: 5,
    };
    vec![
        base.clone(),
        Case {
            partitions: 3,
            ..base.clone()
        },
        Case {
            rate: Some(FIXED_RATE),
            linger_ms: 1,
            ..base
        },
    ]
}

/// `--io` as the driver column spells it.
fn io_name(io: IoChoice) -> &'static str {
    match io {
        IoChoice::Tokio => "tokio",
        IoChoice::Sync => "sync",
        IoChoice::Mixed => "mixed",
    }
}

/// A throughput case and what it measured.
struct Measured {
    case: Case,
    outcome: Outcome,
    /// Each partition's leader when producing began.
    leaders: Vec<i32>,
}

/// Runs the cluster benchmark (`args.mode` is `Cluster { .. }`, whose fields
/// are the last three arguments).
pub fn run(
    bin: &Path,
    bench_dir: &Path,
    args: &Args,
    nodes: u32,
    io: IoChoice,
    idle_partitions: Option<u32>,
) -> anyhow::Result<()> {
    let rf = nodes.min(3);
    let mut plan = Plan::new(args.quick, rf);
    if let Some(p) = idle_partitions {
        plan.idle.partitions = p;
    }
    let cases: Vec<Case> = cases(io_name(io), nodes)
        .into_iter()
        .filter(|c| selected(args, &c.label()))
        .collect();
    let do_failover = selected(args, "failover");
    let do_catch_up = selected(args, "catch-up");
    let do_idle = selected(args, "idle");
    if cases.is_empty() && !do_failover && !do_catch_up && !do_idle {
        anyhow::bail!(
            "no part matches --only {:?} (parts: failover, catch-up, idle, and cases such as `{}`)",
            args.only,
            self::cases(io_name(io), nodes)[0].label()
        );
    }
    eprintln!(
        "bench --cluster {nodes} ({}, replication factor {rf}): {} throughput case(s) of \
         {:.1} s{}{}{}; broker {}",
        io_name(io),
        cases.len(),
        args.duration.as_secs_f64(),
        if do_failover {
            format!(", {} failovers", plan.kills)
        } else {
            String::new()
        },
        if do_catch_up {
            format!(", a {} MiB catch-up", plan.catch_up.bytes >> 20)
        } else {
            String::new()
        },
        if do_idle {
            format!(", idle CPU with {} partitions", plan.idle.partitions)
        } else {
            String::new()
        },
        bin.display()
    );
    let env = Env {
        bin,
        bench_dir,
        nodes,
        io,
    };
    let mut failures: Vec<(String, String)> = Vec::new();

    let mut measured = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let tag = format!("[{}/{}] {}", i + 1, cases.len(), case.label());
        match run_case(&env, case, rf, args.duration, &tag) {
            Ok(m) => {
                clear_line();
                eprintln!(
                    "{tag}: {}; leaders {}",
                    one_line(case, &m.outcome),
                    fmt_leaders(&m.leaders)
                );
                measured.push(m);
            }
            Err(e) => {
                note_line(&format!("{tag}: FAILED: {e:#}"));
                failures.push((case.label(), format!("{e:#}")));
            }
        }
    }

    let failover = part_of_three(
        do_failover,
        nodes,
        "failover",
        "a leader can only be replaced with 3 or more nodes",
        &mut failures,
        || run_failover(&env, rf, plan.kills),
    );
    if let Some(e) = failover.as_ref().and_then(|r| r.error.clone()) {
        failures.push(("failover".into(), e));
    }

    let catch_up = part_of_three(
        do_catch_up,
        nodes,
        "catch-up",
        "it needs a follower to stop while two replicas write",
        &mut failures,
        || run_catch_up(&env, rf, plan.catch_up),
    );

    let idle = if do_idle {
        match run_idle(&env, plan.idle) {
            Ok(r) => Some(r),
            Err(e) => {
                note_line(&format!("[idle]: FAILED: {e:#}"));
                failures.push(("idle".into(), format!("{e:#}")));
                None
            }
        }
    } else {
        None
    };

    let results: Vec<(Case, Outcome)> = measured
        .iter()
        .map(|m| (m.case.clone(), m.outcome.clone()))
        .collect();
    if !results.is_empty() {
        print_table(&results);
        for m in &measured {
            println!("{}: leaders {}", m.case.label(), fmt_leaders(&m.leaders));
        }
    }
    if let Some(r) = &failover {
        print!("{}", failover_table(r));
    }
    if let Some(c) = &catch_up {
        print!("{}", catch_up_table(c));
    }
    if let Some(r) = &idle {
        print!("{}", idle_table(r, plan.idle));
    }
    print!(
        "{}",
        targets_table(
            &measured,
            failover.as_ref(),
            idle.as_ref(),
            plan.idle,
            args.quick,
        )
    );
    if !failures.is_empty() {
        println!("\nfailed parts:");
        for (part, why) in &failures {
            println!("  {part}: {why}");
        }
    }

    let json = serde_json::json!({
        "nodes": nodes,
        "io": io_name(io),
        "replication_factor": rf,
        "throughput": to_json(&results, args.duration),
        "leaders": measured.iter().map(|m| serde_json::json!({
            "case": m.case.label(), "leaders": m.leaders,
        })).collect::<Vec<_>>(),
        "failover": failover.as_ref().map(failover_json),
        "catch_up": catch_up.as_ref().map(catch_up_json),
        "idle": idle.as_ref().map(|r| idle_json(r, plan.idle)),
        "failures": failures.iter().map(|(p, w)| serde_json::json!({"part": p, "error": w})).collect::<Vec<_>>(),
    });
    write_json(&bench_dir.join("cluster.json"), &json)?;
    print_warnings(&results, &bench_dir.join("logs"));
    Ok(())
}

/// What every part needs to start its cluster.
struct Env<'a> {
    bin: &'a Path,
    bench_dir: &'a Path,
    nodes: u32,
    io: IoChoice,
}

impl Env<'_> {
    /// A fresh cluster for the part `name`, its nodes logging at `log_level`.
    fn start(&self, name: &str, log_level: &str) -> anyhow::Result<LocalCluster> {
        let extra = ["--log-level", log_level, "--auto-create-topics", "false"].map(String::from);
        LocalCluster::start(
            self.bin,
            self.nodes,
            self.io,
            &self.bench_dir.join("data").join(name),
            &self.bench_dir.join("logs"),
            name,
            &extra,
        )
    }
}

/// Runs the part `name` if `enabled` and the cluster has the 3 nodes it
/// needs (else says why it is skipped: `needs`); a failure is printed and
/// added to `failures`.
fn part_of_three<T>(
    enabled: bool,
    nodes: u32,
    name: &str,
    needs: &str,
    failures: &mut Vec<(String, String)>,
    run: impl FnOnce() -> anyhow::Result<T>,
) -> Option<T> {
    if !enabled {
        return None;
    }
    if nodes < 3 {
        note_line(&format!("{name}: skipped, {needs}"));
        return None;
    }
    match run() {
        Ok(r) => Some(r),
        Err(e) => {
            note_line(&format!("[{name}]: FAILED: {e:#}"));
            failures.push((name.into(), format!("{e:#}")));
            None
        }
    }
}

/// Erases the progress line and writes `text` on its own line.
fn note_line(text: &str) {
    clear_line();
    eprintln!("{text}");
}

fn run_case(
    env: &Env<'_>,
    case: &Case,
    rf: u32,
    duration: Duration,
    tag: &str,
) -> anyhow::Result<Measured> {
    let mut progress = Progress::new(tag);
    progress.status_now(&format!("starting {} nodes", env.nodes));
    let mut cluster = env.start(&case.slug(), "warn")?;
    let (mut outcome, leaders) = measure_case(&mut cluster, case, rf, duration, &mut progress)
        .with_context(|| format!("node log tails:\n{}", cluster.log_tails(15)))?;
    outcome.log_warnings = cluster
        .logs()
        .iter()
        .flat_map(|(id, path)| {
            log_lines(path)
                .into_iter()
                .map(move |l| format!("node {id}: {l}"))
        })
        .collect();
    drop(cluster);
    sync_page_cache();
    Ok(Measured {
        case: case.clone(),
        outcome,
        leaders,
    })
}

fn measure_case(
    cluster: &mut LocalCluster,
    case: &Case,
    rf: u32,
    duration: Duration,
    progress: &mut Progress,
) -> anyhow::Result<(Outcome, Vec<i32>)> {
    let topic = "bench";
    let leaders = create_and_wait(cluster, topic, case.partitions, rf, progress)?;
    let brokers = Brokers::watch(cluster.bootstrap(), cluster.pids());
    let mut out = Outcome::default();
    produce(&brokers, case, topic, duration, progress, &mut out).context("produce")?;
    consume(&brokers, case, topic, progress, &mut out).context("consume")?;
    out.peak_rss_mib = brokers.finish();
    cluster.check_running()?;
    Ok((out, leaders))
}

/// Waits for every node to register, creates `topic` and waits for its
/// leaders (returned, partition 0 first).
fn create_and_wait(
    cluster: &LocalCluster,
    topic: &str,
    partitions: u32,
    rf: u32,
    progress: &mut Progress,
) -> anyhow::Result<Vec<i32>> {
    let admin = topics::admin(&cluster.bootstrap())?;
    progress.status_now("waiting for every node to register");
    topics::wait_brokers(&admin, cluster.ids().len(), FORM_DEADLINE)?;
    progress.status_now(&format!(
        "creating {topic}: {partitions} partition(s), rf {rf}"
    ));
    topics::create(&admin, topic, partitions, rf, &[], FORM_DEADLINE, || {})?
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("create {topic}"))?;
    topics::wait_led(&admin, topic, partitions, FORM_DEADLINE)
}

fn run_failover(env: &Env<'_>, rf: u32, kills: usize) -> anyhow::Result<failover::Report> {
    let tag = "[failover]";
    let mut progress = Progress::new(tag);
    progress.status_now(&format!("starting {} nodes", env.nodes));
    let mut cluster = env.start("failover", "info")?;
    let run = |cluster: &mut LocalCluster, progress: &mut Progress| {
        create_and_wait(cluster, failover::TOPIC, 1, rf, progress)?;
        let admin = topics::admin(&cluster.bootstrap())?;
        failover::run(cluster, &admin, rf as usize, kills, tag)
    };
    let report = run(&mut cluster, &mut progress);
    match report {
        Ok(mut r) => {
            if let Some(e) = &mut r.error {
                e.push_str(&format!("\nnode log tails:\n{}", cluster.log_tails(15)));
            }
            Ok(r)
        }
        Err(e) => Err(e).with_context(|| format!("node log tails:\n{}", cluster.log_tails(15))),
    }
}

fn run_catch_up(env: &Env<'_>, rf: u32, plan: CatchUpPlan) -> anyhow::Result<CatchUp> {
    let tag = "[catch-up]";
    let mut progress = Progress::new(tag);
    progress.status_now(&format!("starting {} nodes", env.nodes));
    let mut cluster = env.start("catch-up", "info")?;
    let run = |cluster: &mut LocalCluster, progress: &mut Progress| {
        let leader = create_and_wait(cluster, catchup::TOPIC, 1, rf, progress)?[0];
        let admin = topics::admin(&cluster.bootstrap())?;
        catchup::run(cluster, &admin, leader, plan, progress)
    };
    let measured = run(&mut cluster, &mut progress)
        .with_context(|| format!("node log tails:\n{}", cluster.log_tails(15)));
    clear_line();
    if let Ok(c) = &measured {
        eprintln!(
            "{tag}: node {} caught up {} MiB in {:.1} s ({:.0} MiB/s)",
            c.node,
            c.log_bytes.saturating_sub(c.had_bytes) >> 20,
            c.caught_up_after.as_secs_f64(),
            c.mib_per_s()
        );
    }
    measured
}

fn run_idle(env: &Env<'_>, plan: IdlePlan) -> anyhow::Result<IdleReport> {
    let tag = "[idle]";
    let mut progress = Progress::new(tag);
    progress.status_now(&format!("starting {} nodes", env.nodes));
    let mut cluster = env.start("idle", "info")?;
    let admin = topics::admin(&cluster.bootstrap())?;
    progress.status_now("waiting for every node to register");
    topics::wait_brokers(&admin, cluster.ids().len(), FORM_DEADLINE)
        .with_context(|| format!("node log tails:\n{}", cluster.log_tails(15)))?;
    let mut report = idle::run(&mut cluster, admin, plan, tag);
    clear_line();
    eprintln!("{tag}: {}", idle_line(&report, plan));
    if let Some(e) = &mut report.error {
        e.push_str(&format!("\nnode log tails:\n{}", cluster.log_tails(15)));
    }
    if let Some(Err(e)) = &mut report.create {
        e.push_str(&format!("\nnode log tails:\n{}", cluster.log_tails(15)));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_is_smaller_in_every_part() {
        let (full, quick) = (Plan::new(false, 3), Plan::new(true, 3));
        assert_eq!(full.kills, 10);
        assert_eq!(full.idle.partitions, 10_000);
        assert!(quick.kills < full.kills);
        assert!(quick.idle.partitions < full.idle.partitions);
        assert!(quick.idle.window < full.idle.window);
        assert_eq!(quick.idle.rf, 3);
    }

    #[test]
    fn cluster_cases_are_acks_all_1kib() {
        let labels: Vec<String> = cases("tokio", 3).iter().map(Case::label).collect();
        assert_eq!(
            labels,
            [
                "tokio x3 1KiB acks=all p=1",
                "tokio x3 1KiB acks=all p=3",
                "tokio x3 1KiB acks=all p=1 @50MB/s",
            ]
        );
    }
}
