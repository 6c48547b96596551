//! `cargo xtask sim`: the deterministic simulator's front end.
//!
//! - `--seeds N [--start S]` runs seeds `S..S+N` on every core, with a live
//!   progress line on stderr and a summary table at the end.
//! - `--seed S` replays one seed and prints its event log (every step and the
//!   actions it produced) on stdout.
//! - `--trace FILE` replays a trace file the same way.
//! - `--faults ack-before-persist|skip-figure8|lead-before-own-vote` breaks
//!   Raft on purpose (the checks must then fail); `--ticks T` sets the fault
//!   phase length; `--out DIR` is where minimized traces go (default
//!   `target/sim-traces`); `--jobs J` caps the threads.
//!
//! Every failure prints its seed, the violation and the step, and the first few
//! are minimized into trace files. The command fails if any seed failed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context};
use conformance::sim::minimize::minimize;
use conformance::sim::trace::{self, fault_names, parse_faults};
use conformance::sim::{self, Failure, Outcome, Plan, SimOptions, Stats};

/// Failures minimized per multi-seed run; the rest print their replay command.
const MINIMIZE_AT_MOST: usize = 3;

/// The options of one invocation.
struct Args {
    seeds: Option<u64>,
    start: u64,
    seed: Option<u64>,
    trace: Option<PathBuf>,
    opts: SimOptions,
    out: PathBuf,
    jobs: usize,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut a = Args {
        seeds: None,
        start: 0,
        seed: None,
        trace: None,
        opts: SimOptions::default(),
        out: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("sim-traces"),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value"))
                .cloned()
        };
        match flag.as_str() {
            "--seeds" => a.seeds = Some(value()?.parse().context("--seeds")?),
            "--start" => a.start = value()?.parse().context("--start")?,
            "--seed" => a.seed = Some(value()?.parse().context("--seed")?),
            "--trace" => a.trace = Some(PathBuf::from(value()?)),
            "--ticks" => a.opts.fault_ticks = Some(value()?.parse().context("--ticks")?),
            "--out" => a.out = PathBuf::from(value()?),
            "--jobs" => a.jobs = value()?.parse::<usize>().context("--jobs")?.max(1),
            "--faults" => {
                let v = value()?;
                a.opts.faults = parse_faults(&v).with_context(|| {
                    format!("unknown --faults `{v}` (ack-before-persist, skip-figure8, lead-before-own-vote)")
                })?;
            }
            other => bail!(
                "unknown argument `{other}`; usage: cargo xtask sim --seeds N [--start S] | \
                 --seed S | --trace FILE [--faults F] [--ticks T] [--out DIR] [--jobs J]"
            ),
        }
    }
    Ok(a)
}

/// Runs `cargo xtask sim` with the arguments after `sim`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let a = parse_args(args)?;
    if let Some(path) = &a.trace {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let t = trace::parse(&text)?;
        let outcome = replay(&t.plan);
        return match (&outcome.failure, t.expect) {
            (Some(f), Some(kind)) if f.violation.kind == kind => {
                bail!("reproduced: {f}")
            }
            (Some(f), _) => bail!("failed differently than the trace expects: {f}"),
            (None, Some(kind)) => {
                eprintln!("the trace no longer fails (it expected {kind})");
                Ok(())
            }
            (None, None) => Ok(()),
        };
    }
    if let Some(seed) = a.seed {
        let plan = Plan::from_seed(seed, &a.opts);
        let outcome = replay(&plan);
        return match &outcome.failure {
            Some(f) => {
                let path = save_minimized(&plan, f, &a.out)?;
                bail!("seed {seed}: {f}; minimized trace: {}", path.display())
            }
            None => Ok(()),
        };
    }
    let Some(count) = a.seeds else {
        bail!("give --seeds N, --seed S or --trace FILE");
    };
    many(&a, count)
}

/// Runs one plan with its event log on stdout and the outcome on stderr.
fn replay(plan: &Plan) -> Outcome {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut broken = false;
    let outcome = sim::run_logged(plan, &mut |line| {
        // A closed pipe (`| head`) stops the printing, not the run.
        if !broken && writeln!(stdout, "{line}").is_err() {
            broken = true;
        }
    });
    let _ = stdout.flush();
    drop(stdout);
    let s = &outcome.stats;
    eprintln!(
        "seed {}: {} steps, {} ticks, {} leaders, {} crashes, {} partitions, {} snapshots installed, {} values applied",
        plan.seed, s.steps, s.ticks, s.leaders, s.crashes, s.partitions, s.snapshots_installed, s.applied
    );
    outcome
}

fn save_minimized(plan: &Plan, failure: &Failure, dir: &Path) -> anyhow::Result<PathBuf> {
    let (small, small_failure) = minimize(plan, failure);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let faults = fault_names(&plan.params.faults);
    let name = if faults == "none" {
        format!("seed-{}.trace", plan.seed)
    } else {
        format!("seed-{}-{faults}.trace", plan.seed)
    };
    let path = dir.join(name);
    std::fs::write(&path, trace::render(&small, Some(&small_failure)))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn many(a: &Args, count: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let next = AtomicU64::new(a.start);
    let end = a.start + count;
    let (tx, rx) = mpsc::channel::<Outcome>();
    let mut total = Stats::default();
    let mut failures: Vec<Failure> = Vec::new();
    let mut failed_seeds: Vec<u64> = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..a.jobs.min(count.max(1) as usize) {
            let tx = tx.clone();
            let next = &next;
            let opts = a.opts;
            scope.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                if tx.send(sim::run_seed(seed, &opts)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut done = 0u64;
        for outcome in rx {
            done += 1;
            total.add(&outcome.stats);
            if let Some(f) = outcome.failure {
                eprintln!(
                    "\rseed {} FAILED: {f}\n  replay: cargo xtask sim --seed {}{}",
                    outcome.seed,
                    outcome.seed,
                    faults_flag(&a.opts)
                );
                failures.push(f);
                failed_seeds.push(outcome.seed);
            }
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            eprint!(
                "\rseeds {done}/{count}  failures {}  steps/s {:.0}   ",
                failures.len(),
                total.steps as f64 / secs
            );
        }
    });
    eprintln!();
    let mut rows: Vec<(u64, Failure)> = failed_seeds.into_iter().zip(failures).collect();
    rows.sort_by_key(|(seed, _)| *seed);
    let mut traces = Vec::new();
    for (i, (seed, f)) in rows.iter().enumerate() {
        if i < MINIMIZE_AT_MOST {
            eprintln!("minimizing seed {seed}...");
            let plan = Plan::from_seed(*seed, &a.opts);
            traces.push(Some(save_minimized(&plan, f, &a.out)?));
        } else {
            traces.push(None);
        }
    }
    summary(
        a,
        count,
        started.elapsed().as_secs_f64(),
        &total,
        &rows,
        &traces,
    );
    if !rows.is_empty() {
        bail!("{} of {count} seeds failed", rows.len());
    }
    Ok(())
}

fn faults_flag(opts: &SimOptions) -> String {
    let mut s = String::new();
    let names = fault_names(&opts.faults);
    if names != "none" {
        s.push_str(&format!(" --faults {names}"));
    }
    if let Some(t) = opts.fault_ticks {
        s.push_str(&format!(" --ticks {t}"));
    }
    s
}

fn summary(
    a: &Args,
    count: u64,
    secs: f64,
    t: &Stats,
    failures: &[(u64, Failure)],
    traces: &[Option<PathBuf>],
) {
    let secs = secs.max(1e-9);
    let per_seed = |v: u64| v as f64 / count.max(1) as f64;
    println!();
    println!(
        "simulator summary (faults: {})",
        fault_names(&a.opts.faults)
    );
    println!(
        "  {:<22} {:>14}",
        "seeds",
        format!("{}..{}", a.start, a.start + count)
    );
    println!("  {:<22} {:>14}", "failures", failures.len());
    println!("  {:<22} {:>14.1}", "wall seconds", secs);
    println!("  {:<22} {:>14.1}", "seeds/s", count as f64 / secs);
    println!("  {:<22} {:>14.0}", "steps/s", t.steps as f64 / secs);
    println!();
    println!("  {:<22} {:>14} {:>12}", "", "total", "per seed");
    let rows: [(&str, u64); 18] = [
        ("steps", t.steps),
        ("ticks", t.ticks),
        ("messages", t.messages),
        ("messages lost", t.dropped),
        ("messages duplicated", t.duplicated),
        ("disk writes", t.writes),
        ("leaders elected", t.leaders),
        ("crashes", t.crashes),
        ("pauses", t.pauses),
        ("partitions", t.partitions),
        ("slow disks", t.slow_disks),
        ("leader transfers", t.transfers),
        ("membership changes", t.conf_changes),
        ("compactions", t.compactions),
        ("snapshot chunks sent", t.snapshot_chunks),
        ("snapshots installed", t.snapshots_installed),
        ("entry loads", t.entry_loads),
        ("values applied", t.applied),
    ];
    for (name, v) in rows {
        println!("  {name:<22} {v:>14} {:>12.1}", per_seed(v));
    }
    println!("  {:<22} {:>14}", "worst liveness ticks", t.liveness_ticks);
    if failures.is_empty() {
        return;
    }
    println!();
    println!(
        "  {:>8}  {:<22} {:>10} {:>7}  trace",
        "seed", "violation", "step", "tick"
    );
    for ((seed, f), path) in failures.iter().zip(traces) {
        let path = path
            .as_ref()
            .map_or_else(|| "-".to_string(), |p| p.display().to_string());
        println!(
            "  {seed:>8}  {:<22} {:>10} {:>7}  {path}",
            f.violation.kind.name(),
            f.step,
            f.tick
        );
    }
}
