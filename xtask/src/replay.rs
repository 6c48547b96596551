//! `cargo xtask replay FILE [--verbose]`: feeds a trace recorded by `chronik
//! serve --record-trace FILE` to a fresh node and checks that it does the same
//! thing, input by input.
//!
//! The node's data lives in a temporary directory that is removed afterwards.
//! A progress line goes to stderr; `--verbose` prints every input and what it
//! produced on stdout. The summary names the first divergence (input number,
//! the input, recorded and replayed outputs) or says "identical"; the command
//! fails on a divergence or a corrupt record. A tail cut short by a killed
//! recorder is reported, and everything before it still counts.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use broker::trace::replay::{replay, ReplayReport, TraceEnd};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Runs `cargo xtask replay` with the arguments after `replay`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut trace: Option<PathBuf> = None;
    let mut verbose = false;
    for a in args {
        match a.as_str() {
            "--verbose" | "-v" => verbose = true,
            flag if flag.starts_with('-') => {
                bail!("unknown argument `{flag}`; usage: cargo xtask replay FILE [--verbose]")
            }
            file if trace.is_none() => trace = Some(PathBuf::from(file)),
            extra => bail!("one trace file at a time (also got `{extra}`)"),
        }
    }
    let Some(trace) = trace else {
        bail!("usage: cargo xtask replay FILE [--verbose]");
    };
    let data = scratch_dir();
    let result = run_in(&trace, &data, verbose);
    let _ = std::fs::remove_dir_all(&data);
    result
}

fn run_in(trace: &Path, data: &Path, verbose: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut broken = false;
    let report = replay(trace, data, &mut |step| {
        if verbose && !broken {
            let mark = if step.recorded == step.replayed {
                "ok"
            } else {
                "DIFF"
            };
            // A closed pipe (`| head`) stops the printing, not the replay.
            broken = writeln!(
                stdout,
                "{:>8} {:>10} ms  {mark:<4} {}  ->  {}",
                step.input, step.now_ms, step.trace, step.replayed
            )
            .is_err();
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            eprint!(
                "\rreplayed {} inputs ({:.1} s of node time)   ",
                step.input,
                step.now_ms as f64 / 1000.0
            );
        }
    })
    .with_context(|| format!("replaying {}", trace.display()))?;
    let _ = stdout.flush();
    drop(stdout);
    // Clears the progress line.
    eprint!("\r{:60}\r", "");
    print_summary(trace, &report, started.elapsed());
    if let Some(d) = &report.divergence {
        bail!("the replay diverged at input {}", d.input);
    }
    if let TraceEnd::Corrupt(why) = &report.end {
        bail!("the trace is corrupt: {why}");
    }
    Ok(())
}

fn print_summary(trace: &Path, r: &ReplayReport, took: Duration) {
    let this = env!("CARGO_PKG_VERSION");
    println!("trace       {}", trace.display());
    let version_note = if r.chronik_version == this {
        String::new()
    } else {
        format!(" (this build is {this}: differences may be legitimate)")
    };
    println!(
        "recorded by chronik {}{version_note}, seed {:#018x}",
        r.chronik_version, r.seed
    );
    println!(
        "inputs      {} over {:.1} s of node time, replayed in {:.1} s",
        r.inputs,
        r.last_ms as f64 / 1000.0,
        took.as_secs_f64()
    );
    let total: u64 = r.requests.values().sum();
    let by_api: Vec<String> = r.requests.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("requests    {total}: {}", by_api.join(", "));
    println!("connections {} opened, {} closed", r.opened, r.closed);
    println!("ticks       {} (housekeeping {})", r.ticks, r.housekeeping);
    println!(
        "disk        {} writes asked for, {} persisted, {} failed (as recorded)",
        r.persists, r.persisted, r.persist_failed
    );
    println!("responses   {}", r.responses);
    println!(
        "peers       {} frames in, {} frames out",
        r.peer_frames, r.sends
    );
    let end = match &r.end {
        TraceEnd::Complete => "complete (clean shutdown)".to_string(),
        TraceEnd::Unfinished => {
            "no end record: the recorder was killed or is still running".to_string()
        }
        TraceEnd::Truncated(why) => format!("truncated tail, replay stopped there: {why}"),
        TraceEnd::Corrupt(why) => format!("CORRUPT: {why}"),
        TraceEnd::Diverged => "not read past the divergence".to_string(),
    };
    println!("end         {end}");
    match &r.divergence {
        None if r.identical() => println!("result      identical"),
        None => println!("result      identical up to the corrupt record"),
        Some(d) => println!("result      DIVERGED: {d}"),
    }
}

/// A fresh directory under the system's temporary directory.
fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("chronik-replay-{}-{nanos}", std::process::id()))
}
