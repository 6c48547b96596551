//! One chaos run from start to verdict: start the cluster behind the peer
//! proxies, create the topic, start the clients, warm up, play the schedule,
//! heal, wait for recovery, read everything back, judge, report.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use conformance::launch::poll_until;
use serde_json::json;

use super::admin::{self, AdminWorkload};
use super::args::Args;
use super::history::{FaultWindow, History, SendOutcome};
use super::nemesis::{Active, Nemeses};
use super::proxy::Proxies;
use super::schedule::{self, Step};
use super::workload::{self, Recorder, Setup, Workload};
use super::{availability, checker, timeline};
use crate::cluster::converge;
use crate::cluster::layout::{NodeId, NodeSpec};
use crate::cluster::local::LocalCluster;
use crate::cluster::topics;
use crate::workspace::Workspace;

/// The variable that makes a node record its fsyncs for the `disk`
/// nemesis (`io_sync::disk::sync_ledger::ENV`).
const SYNC_LEDGER_ENV: &str = "CHRONIK_SYNC_LEDGER";
/// The workload's topic.
const TOPIC: &str = "chaos";
/// Its partition count.
const PARTITIONS: i32 = 3;
/// Producers (each writes every partition).
const PRODUCERS: u32 = 2;
/// Clients run this long before the first fault.
const WARMUP: Duration = Duration::from_secs(5);
/// After the last fault heals, every partition must accept writes again
/// within this bound, or the run fails.
const RECOVERY_BOUND: Duration = Duration::from_secs(60);
/// Producers keep writing at least this long after the heal, so recovery
/// shows on the timeline.
const AFTER_HEAL: Duration = Duration::from_secs(5);
/// How long the consumers may take to read up to the final high watermarks,
/// and the final read to read everything.
const DRAIN_BOUND: Duration = Duration::from_secs(60);
/// How long the cluster may take to form and lead the topic.
const FORM_BOUND: Duration = Duration::from_secs(60);
/// The width of an availability bucket.
const BUCKET_US: u64 = 1_000_000;

/// Runs `cargo xtask chaos` with parsed `args`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000)
    });
    let steps = schedule::plan(seed, &args.nemeses, args.nodes, PARTITIONS, args.duration);
    let names: Vec<&str> = args.nemeses.iter().map(|n| n.name()).collect();
    eprintln!(
        "chaos: seed {seed}, {} nodes ({:?}), {} s of faults from [{}], {} producers x {} records/s \
         (repeat with --seed {seed})",
        args.nodes,
        args.io,
        args.duration.as_secs(),
        names.join(","),
        PRODUCERS,
        args.rate
    );
    eprint!("{}", schedule_table(&steps));

    let ws = Workspace::locate()?;
    let bin = if args.debug_build {
        ws.chronik_debug("chaos")?
    } else {
        ws.chronik_release("chaos")?
    };
    let out = ws.target.join("chaos").join(format!("seed-{seed}"));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("logs"))
        .with_context(|| format!("create {}", out.display()))?;

    let specs = LocalCluster::plan(
        args.nodes,
        args.io,
        &out.join("data"),
        &out.join("logs"),
        "chaos",
    )?;
    let real: Vec<(NodeId, SocketAddr)> = specs.iter().map(|s| (s.id, s.ports.raft)).collect();
    let proxies = Proxies::start(&real)?;
    let ledgers = out.join("ledgers");
    std::fs::create_dir_all(&ledgers)?;
    let ledger_of = |id: NodeId| ledgers.join(format!("node-{id}.ledger"));
    let setup = |spec: &NodeSpec| {
        let peers = specs
            .iter()
            .map(|other| {
                let addr = if other.id == spec.id {
                    other.ports.raft
                } else {
                    proxies
                        .address(spec.id, other.id)
                        .expect("a proxy per link")
                };
                format!("{}@{addr}", other.id)
            })
            .collect::<Vec<_>>()
            .join(",");
        let ledger = ledger_of(spec.id).to_string_lossy().into_owned();
        (peers, vec![(SYNC_LEDGER_ENV.to_string(), ledger)])
    };
    eprintln!("chaos: starting {} nodes ({})", args.nodes, bin.display());
    let mut cluster = LocalCluster::launch(&bin, specs.clone(), setup, &args.serve)?;
    let bootstrap = cluster.bootstrap();
    let rf = args.nodes.min(3);
    let min_isr = (rf / 2 + 1).to_string();
    let setup_admin = topics::admin(&bootstrap)?;
    topics::wait_brokers(&setup_admin, args.nodes as usize, FORM_BOUND)?;
    topics::create(
        &setup_admin,
        TOPIC,
        PARTITIONS as u32,
        rf,
        &[("min.insync.replicas", &min_isr)],
        FORM_BOUND,
        || {},
    )?
    .map_err(|e| anyhow::anyhow!("create {TOPIC}: {e}"))?;
    let leaders = topics::wait_led(&setup_admin, TOPIC, PARTITIONS as u32, FORM_BOUND)?;
    drop(setup_admin);
    eprintln!("chaos: topic {TOPIC}: {PARTITIONS} partitions, rf {rf}, min.insync.replicas {min_isr}, leaders {leaders:?}");

    let setup = Setup {
        bootstrap: bootstrap.clone(),
        topic: TOPIC.into(),
        partitions: PARTITIONS,
        rate: args.rate,
        request_timeout_ms: args.request_timeout_ms,
    };
    let recorder = Recorder::new();
    let mut workload = Workload::start(&setup, PRODUCERS, recorder.clone())?;
    let mut admin_load = AdminWorkload::start(&bootstrap, rf, recorder.clone())?;
    let mut watch = Watch {
        rec: &recorder,
        status: Status::new(args.duration + WARMUP),
        crashes: Vec::new(),
    };
    let mut nemeses = Nemeses::new(&mut cluster, &proxies, TOPIC, &ledger_of);

    watch.hold(&mut nemeses, None, Instant::now() + WARMUP, "warm-up", "-");
    let (windows, failure) = watch.play(&mut nemeses, &steps);
    nemeses.heal_links();
    let healed_us = recorder.now_us();
    watch
        .status
        .event("every fault healed; waiting for every partition to accept writes");

    let recovered = watch.recovery(&mut nemeses, healed_us);
    let admin_ops = admin_load.stop();
    let admin_broken = wait_admin_promises(&bootstrap, &admin_ops);
    watch
        .status
        .event("stopping producers (waiting for outstanding acknowledgements)");
    workload.stop_producing();
    let ends = wait_high_watermarks(&bootstrap)?;
    watch
        .status
        .event(&format!("high watermarks {ends:?}; draining consumers"));
    let drained = poll_until(DRAIN_BOUND, || {
        workload.consumers_reached(&ends).then_some(())
    })
    .is_some();
    workload.stop_consuming();
    let finals = workload::final_reads(&bootstrap, TOPIC, &ends, DRAIN_BOUND)?;
    watch
        .status
        .event("waiting for every replica to hold the same log");
    let converged = converge::wait_identical(&specs, TOPIC, PARTITIONS, rf as usize, DRAIN_BOUND);
    watch.status.finish();
    let crashes = std::mem::take(&mut watch.crashes);

    let history = History {
        partitions: PARTITIONS,
        sends: recorder.sends(),
        polls: recorder.polls(),
        finals,
        faults: windows,
        healed_us: Some(healed_us),
        ended_us: recorder.now_us(),
    };
    drop(workload);
    let verdict = checker::check(&history);
    let avail = availability::availability(&history, BUCKET_US);

    write(&out.join("history.json"), &serde_json::to_vec(&history)?)?;
    write(&out.join("admin.json"), &serde_json::to_vec(&admin_ops)?)?;
    write(
        &out.join("timeline.svg"),
        timeline::svg(&history).as_bytes(),
    )?;
    let mut problems: Vec<String> = crashes.clone();
    if let Some(e) = &failure {
        problems.push(format!("the fault phase failed: {e:#}"));
    }
    if let Err(why) = &recovered {
        problems.push(why.clone());
    }
    if let Err(why) = &converged {
        problems.push(why.clone());
    }
    problems.extend(admin_broken.iter().cloned());
    if !drained {
        problems.push(format!(
            "the consumers did not reach the high watermarks {ends:?} within {} s",
            DRAIN_BOUND.as_secs()
        ));
    }
    let report = json!({
        "seed": seed,
        "nodes": args.nodes,
        "io": format!("{:?}", args.io),
        "duration_s": args.duration.as_secs(),
        "nemeses": names,
        "rate_per_producer": args.rate,
        "request_timeout_ms": args.request_timeout_ms,
        "producers": PRODUCERS,
        "schedule": steps.iter().map(|s| json!({
            "at_ms": s.at.as_millis() as u64, "hold_ms": s.hold.as_millis() as u64,
            "fault": s.fault.to_string(),
        })).collect::<Vec<_>>(),
        "faults": history.faults,
        "consumer_errors": recorder.consumer_errors.load(std::sync::atomic::Ordering::Relaxed),
        "first_consumer_errors": recorder.first_errors(),
        "replicas_converged_ms": converged.as_ref().ok().map(|d| d.as_millis() as u64),
        "admin": admin::summary(&admin_ops),
        "problems": problems,
        "verdict": verdict.to_json(),
        "availability": avail.to_json(),
    });
    write(
        &out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;

    println!("\nchaos verdict (seed {seed})\n");
    print!("{}", verdict.table());
    println!("\navailability of acks=all writes\n");
    print!("{}", avail.table());
    println!(
        "\nsends {} (acked {}, failed {}), polled {}, consumer errors {}",
        history.sends.len(),
        history
            .sends
            .iter()
            .filter(|s| matches!(s.outcome, Some(SendOutcome::Acked { .. })))
            .count(),
        history
            .sends
            .iter()
            .filter(|s| matches!(s.outcome, Some(SendOutcome::Failed { .. })))
            .count(),
        history.polls.len(),
        recorder
            .consumer_errors
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    println!("{}", admin::summary(&admin_ops));
    if let Ok(d) = &converged {
        println!(
            "every replica of every partition held the same log {:.2} s after the final read",
            d.as_secs_f64()
        );
    }
    println!(
        "history {}, report {}, timeline {}, node logs {}",
        out.join("history.json").display(),
        out.join("report.json").display(),
        out.join("timeline.svg").display(),
        out.join("logs").display()
    );
    for p in &problems {
        println!("problem: {p}");
    }
    if !verdict.is_clean() || !problems.is_empty() {
        nemeses.cluster.keep_data();
        println!("node data kept in {}", out.join("data").display());
        bail!(
            "chaos run with seed {seed} found {} anomalies and {} problems (repeat: cargo xtask chaos --seed {seed} ...)",
            verdict.anomalies.len(),
            problems.len()
        );
    }
    Ok(())
}

/// The schedule as a table, before the run starts.
fn schedule_table(steps: &[Step]) -> String {
    let rows: Vec<Vec<String>> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            vec![
                (i + 1).to_string(),
                s.fault.nemesis().name().to_string(),
                s.fault.to_string(),
                format!("{:.1}", s.at.as_secs_f64()),
                format!("{:.1}", s.hold.as_secs_f64()),
            ]
        })
        .collect();
    crate::table::markdown(&["#", "nemesis", "fault", "at s", "hold s"], &rows, 3)
}

/// What the waiting loops share: the recorder (for progress), the progress
/// line, and the crashes noticed so far.
struct Watch<'r> {
    rec: &'r Recorder,
    status: Status,
    crashes: Vec<String>,
}

impl Watch<'_> {
    /// Plays `steps` from now: each fault begins at its time, is held, and
    /// ends. Returns the windows as they happened, and the error that
    /// stopped the schedule early, if one did (a node that would not
    /// restart).
    fn play(
        &mut self,
        nemeses: &mut Nemeses<'_>,
        steps: &[Step],
    ) -> (Vec<FaultWindow>, Option<anyhow::Error>) {
        let phase = Instant::now();
        let mut windows = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let n = format!("{}/{}", i + 1, steps.len());
            self.hold(
                nemeses,
                None,
                phase + step.at,
                &format!("quiet before fault {n}"),
                "-",
            );
            let start_us = self.rec.now_us();
            let (mut active, label) = match nemeses.begin(&step.fault) {
                Ok(x) => x,
                Err(e) => {
                    return (
                        windows,
                        Some(e.context(format!("fault {n}: {}", step.fault))),
                    )
                }
            };
            self.status.event(&format!("fault {n}: {label}"));
            let until = Instant::now().max(phase + step.at) + step.hold;
            self.hold(
                nemeses,
                Some(&mut active),
                until,
                &format!("fault {n}"),
                &label,
            );
            let ended = nemeses.end(active);
            windows.push(FaultWindow {
                nemesis: step.fault.nemesis().name().into(),
                label: label.clone(),
                start_us,
                end_us: Some(self.rec.now_us()),
            });
            self.status.event(&format!("healed: {label}"));
            if let Err(e) = ended {
                return (windows, Some(e));
            }
        }
        (windows, None)
    }

    /// Waits until `until`, keeping a held fault going, noticing nodes that
    /// exit on their own, and showing progress.
    fn hold(
        &mut self,
        nemeses: &mut Nemeses<'_>,
        mut active: Option<&mut Active>,
        until: Instant,
        phase: &str,
        faults: &str,
    ) {
        loop {
            if let Some(a) = active.as_deref_mut() {
                nemeses.nudge(a);
            }
            self.notice_crashes(nemeses);
            self.status.show(phase, faults, self.rec);
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    /// Records and restarts any node that exited without being told to: a
    /// crash is a finding, and the run goes on without hiding it.
    fn notice_crashes(&mut self, nemeses: &mut Nemeses<'_>) {
        if let Err(e) = nemeses.cluster.check_running() {
            let msg = format!("{e:#}");
            self.status
                .event(&format!("CRASH: {}", msg.lines().next().unwrap_or("")));
            self.crashes.push(msg);
            for id in nemeses.cluster.ids() {
                if !nemeses.cluster.is_running(id) && !nemeses.is_out(id) {
                    if let Err(e) = nemeses.cluster.restart(id) {
                        self.crashes
                            .push(format!("restart node {id} after its crash: {e:#}"));
                    }
                }
            }
        }
    }

    /// Waits until every partition acknowledged a send invoked after the
    /// heal (at `healed_us`), and at least [`AFTER_HEAL`]; fails past
    /// [`RECOVERY_BOUND`]. (How long it took is measured from the history,
    /// by [`availability`].)
    fn recovery(&mut self, nemeses: &mut Nemeses<'_>, healed_us: u64) -> Result<(), String> {
        let healed = Instant::now();
        let mut recovered = false;
        loop {
            self.notice_crashes(nemeses);
            self.status.show("recovery", "-", self.rec);
            if !recovered {
                let latest = self.rec.latest_acked_invocations();
                recovered =
                    (0..PARTITIONS).all(|p| latest.get(&p).is_some_and(|&t| t >= healed_us));
            }
            if recovered && healed.elapsed() >= AFTER_HEAL {
                return Ok(());
            }
            if healed.elapsed() > RECOVERY_BOUND {
                return Err(format!(
                    "not every partition accepted an acks=all write within {} s of the heal",
                    RECOVERY_BOUND.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Waits up to [`DRAIN_BOUND`] for the admin workload's answered requests to
/// hold (a created topic needs its first election after a heal); returns
/// the promises still broken then.
fn wait_admin_promises(bootstrap: &str, ops: &[admin::AdminOp]) -> Vec<String> {
    let client = match topics::admin(bootstrap) {
        Ok(c) => c,
        Err(e) => return vec![format!("admin check: {e:#}")],
    };
    let mut broken = Vec::new();
    poll_until(DRAIN_BOUND, || {
        broken = match admin::seen(&client) {
            Ok(seen) => admin::check(ops, &seen),
            Err(e) => vec![format!("admin check: {e:#}")],
        };
        broken.is_empty().then_some(())
    });
    broken
}

/// Each partition's high watermark, retried until the cluster answers.
fn wait_high_watermarks(bootstrap: &str) -> anyhow::Result<Vec<i64>> {
    let mut last = None;
    poll_until(DRAIN_BOUND, || {
        match workload::high_watermarks(bootstrap, TOPIC, PARTITIONS) {
            Ok(ends) => Some(ends),
            Err(e) => {
                last = Some(e);
                None
            }
        }
    })
    .ok_or_else(|| last.unwrap_or_else(|| anyhow::anyhow!("no watermarks within the bound")))
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("write {}", path.display()))
}

/// The progress line: live on a terminal, one line every 10 s otherwise
/// (CI logs), and events on lines of their own.
struct Status {
    started: Instant,
    total: Duration,
    live: bool,
    last: Option<Instant>,
}

impl Status {
    fn new(total: Duration) -> Status {
        Status {
            started: Instant::now(),
            total,
            live: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, phase: &str, faults: &str, rec: &Recorder) {
        let every = if self.live {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        };
        if self.last.is_some_and(|l| l.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let ord = std::sync::atomic::Ordering::Relaxed;
        let line = format!(
            "chaos {:>4.0}/{:.0} s | {phase:<24} | faults: {faults:<44} | acked {} failed {} polled {}",
            self.started.elapsed().as_secs_f64(),
            self.total.as_secs_f64(),
            rec.acked.load(ord),
            rec.failed.load(ord),
            rec.polled.load(ord),
        );
        let mut err = std::io::stderr().lock();
        if self.live {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn event(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.live {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(
            err,
            "[{:>6.1} s] {text}",
            self.started.elapsed().as_secs_f64()
        );
        self.last = None;
    }

    fn finish(&mut self) {
        if self.live {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err);
        }
    }
}
