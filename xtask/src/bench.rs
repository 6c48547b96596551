//! `cargo xtask bench`: end-to-end produce/consume benchmarks of the real
//! `chronik` binary with librdkafka clients.
//!
//! Every case starts a fresh broker (release build, `--log-level warn`, data
//! under `target/bench/data/`, deleted afterwards; its output stays in
//! `target/bench/logs/`), then:
//!
//! 1. **produce** for `--duration` seconds from one librdkafka producer
//!    (linger.ms 5, batch.size 1 MB, no compression, a 64 MiB client queue) and
//!    times every record from `send` to its delivery report;
//! 2. **consume** everything from offset 0 with one consumer assigned to every
//!    partition by hand (there are no consumer groups yet);
//! 3. reads the broker's peak resident memory (`VmHWM`/`VmRSS` polled from
//!    `/proc/<pid>/status`) and the CPU time broker and client used.
//!
//! The cases: each driver (`--io tokio|sync|both`) × 100 B and 1 KiB records ×
//! acks 1 and all on one partition, 1 KiB on four partitions, and a fixed-rate
//! run (acks=all, 1 KiB, 50 MB/s, linger.ms 1) whose p99 latency and memory are
//! the figures the target names. MB is 10^6 bytes throughout.
//!
//! A live progress line goes to stderr, the summary table to stdout, and every
//! figure to `target/bench/bench.json`. Nothing here asserts a number: it is a
//! benchmark, not a test. Flags: `--duration SECS` (default 10), `--quick`
//! (2 s per case), `--io tokio|sync|both` (default both), `--only TEXT` (only
//! the cases whose label, e.g. `tokio 1KiB acks=all p=1`, contains TEXT;
//! repeatable).
//!
//! `--cluster [N]` (N defaults to 3) benchmarks a cluster of N release nodes on
//! 127.0.0.1 instead: acks=all throughput with replication factor min(3, N),
//! the time a SIGKILLed leader takes to be replaced, and the idle CPU of a
//! cluster holding thousands of partitions; see [`cluster`]. There `--io` is
//! `tokio|sync|mixed` (default tokio).

mod broker;
mod cluster;
mod consume;
mod hist;
mod produce;
mod report;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cluster::layout::{IoChoice, MAX_NODES};
use crate::workspace::Workspace;
use broker::{Broker, Brokers};
use consume::consume;
use produce::produce;
use report::{clear_line, fmt_size, one_line, print_table, to_json, Progress};

/// Bytes in a MB (throughput is reported in decimal megabytes).
const MB: f64 = 1e6;
/// The fixed-rate case's rate, bytes per second.
const FIXED_RATE: f64 = 50.0 * MB;
/// The cluster size `--cluster` means without a number.
const DEFAULT_CLUSTER_NODES: u32 = 3;

/// What `cargo xtask bench` accepts, for its error messages.
const USAGE: &str = "usage: cargo xtask bench [--duration SECS] [--quick] \
    [--io tokio|sync|both] [--only LABEL-PART]...\n       \
    cargo xtask bench --cluster [N] [--io tokio|sync|mixed] [--duration SECS] [--quick] \
    [--idle-partitions P] [--only LABEL-PART]...";

/// The options of one invocation.
#[derive(Debug, PartialEq)]
struct Args {
    /// How long each throughput case produces.
    duration: Duration,
    /// `--quick`: a smoke run. It sets the duration to 2 s where it appears
    /// (a later `--duration` wins); the cluster bench also kills fewer leaders
    /// and creates fewer partitions.
    quick: bool,
    /// Run only the cases whose label contains every one of these.
    only: Vec<String>,
    mode: Mode,
}

/// One broker per case, or a cluster.
#[derive(Debug, PartialEq)]
enum Mode {
    /// A fresh single broker per case, for each of these drivers.
    Single { drivers: Vec<&'static str> },
    /// `--cluster N`: the cluster benchmark on `nodes` nodes;
    /// `idle_partitions` overrides how many partitions the idle part creates.
    Cluster {
        nodes: u32,
        io: IoChoice,
        idle_partitions: Option<u32>,
    },
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut duration = Duration::from_secs(10);
    let mut quick = false;
    let mut only = Vec::new();
    let mut io: Option<String> = None;
    let mut cluster: Option<u32> = None;
    let mut idle_partitions: Option<u32> = None;
    let mut it = args.iter().peekable();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value"))
                .cloned()
        };
        match flag.as_str() {
            "--duration" => {
                let secs: f64 = value()?.parse().context("--duration (seconds)")?;
                if !(secs > 0.0 && secs.is_finite()) {
                    bail!("--duration must be a positive number of seconds");
                }
                duration = Duration::from_secs_f64(secs);
            }
            "--only" => only.push(value()?),
            "--quick" => {
                quick = true;
                duration = Duration::from_secs(2);
            }
            "--io" => io = Some(value()?),
            "--cluster" => {
                // The node count is optional: `--cluster --quick` is 3 nodes.
                let n = match it.next_if(|v| !v.starts_with('-')) {
                    None => DEFAULT_CLUSTER_NODES,
                    Some(v) => match v.parse() {
                        Ok(n) if (1..=MAX_NODES).contains(&n) => n,
                        _ => bail!("--cluster takes a node count from 1 to {MAX_NODES}, not `{v}`"),
                    },
                };
                cluster = Some(n);
            }
            "--idle-partitions" => {
                let v = value()?;
                idle_partitions = match v.parse() {
                    Ok(n) if n >= 1 => Some(n),
                    _ => bail!("--idle-partitions takes a partition count, not `{v}`"),
                };
            }
            other => bail!("unknown argument `{other}`; {USAGE}"),
        }
    }
    if cluster.is_none() && idle_partitions.is_some() {
        bail!("--idle-partitions needs --cluster");
    }
    let mode = match cluster {
        None => Mode::Single {
            drivers: match io.as_deref().unwrap_or("both") {
                "tokio" => vec!["tokio"],
                "sync" => vec!["sync"],
                "both" => vec!["tokio", "sync"],
                other => bail!("--io must be tokio, sync or both, not `{other}`"),
            },
        },
        Some(nodes) => {
            let io = io.as_deref().unwrap_or("tokio");
            Mode::Cluster {
                nodes,
                io: IoChoice::parse(io).with_context(|| {
                    format!("with --cluster, --io must be tokio, sync or mixed, not `{io}`")
                })?,
                idle_partitions,
            }
        }
    };
    Ok(Args {
        duration,
        quick,
        only,
        mode,
    })
}

/// One benchmark case.
#[derive(Clone, Debug)]
struct Case {
    /// The driver of every node: `tokio`, `sync`, or (a cluster) `mixed`.
    io: &'static str,
    /// How many nodes: 1 is a single broker.
    nodes: u32,
    /// Record value size, bytes (no key, no headers).
    size: usize,
    /// `acks` as librdkafka spells it: "1" or "all".
    acks: &'static str,
    partitions: u32,
    /// `Some(bytes per second)` paces the producer; `None` goes flat out.
    rate: Option<f64>,
    linger_ms: u32,
}

impl Case {
    /// The driver column: `tokio`, or `tokio x3` for a cluster of three.
    fn driver(&self) -> String {
        if self.nodes == 1 {
            self.io.to_string()
        } else {
            format!("{} x{}", self.io, self.nodes)
        }
    }

    /// What `--only` matches and the progress line shows.
    fn label(&self) -> String {
        let size = fmt_size(self.size).replace(' ', "");
        let mut s = format!(
            "{} {size} acks={} p={}",
            self.driver(),
            self.acks,
            self.partitions
        );
        if let Some(r) = self.rate {
            s.push_str(&format!(" @{:.0}MB/s", r / MB));
        }
        s
    }

    /// A file-name-safe form of the label.
    fn slug(&self) -> String {
        self.label().replace(['=', '/', '@'], "").replace(' ', "-")
    }
}

fn cases(drivers: &[&'static str]) -> Vec<Case> {
    let mut out = Vec::new();
    for &io in drivers {
        let base = Case {
            io,
            nodes: 1,
            size: 100,
            acks: "1",
            partitions: 1,
            rate: None,
            linger_ms: 5,
        };
        for size in [100, 1024] {
            for acks in ["1", "all"] {
                out.push(Case {
                    size,
                    acks,
                    ..base.clone()
                });
            }
        }
        for acks in ["1", "all"] {
            out.push(Case {
                size: 1024,
                acks,
                partitions: 4,
                ..base.clone()
            });
        }
        out.push(Case {
            size: 1024,
            acks: "all",
            rate: Some(FIXED_RATE),
            linger_ms: 1,
            ..base.clone()
        });
    }
    out
}

/// What one case measured.
#[derive(Clone, Debug, Default)]
struct Outcome {
    produced_msgs: u64,
    produce_secs: f64,
    lat: Option<LatencySummary>,
    delivery_errors: u64,
    first_error: Option<String>,
    consumed_msgs: u64,
    consumed_bytes: u64,
    consume_secs: f64,
    /// Records in the log (high minus low watermark, every partition).
    log_msgs: u64,
    /// Each broker's peak resident memory, MiB (node 1 first).
    peak_rss_mib: Vec<f64>,
    /// CPU cores the broker(s, summed) / this process kept busy during the
    /// produce phase.
    broker_cpu_produce: f64,
    client_cpu_produce: f64,
    broker_cpu_consume: f64,
    client_cpu_consume: f64,
    log_warnings: Vec<String>,
}

/// Produce latency quantiles, milliseconds.
#[derive(Debug, Clone, Copy)]
struct LatencySummary {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Outcome {
    fn produce_mbps(&self, size: usize) -> f64 {
        rate(
            self.produced_msgs as f64 * size as f64 / MB,
            self.produce_secs,
        )
    }
    fn produce_msgps(&self) -> f64 {
        rate(self.produced_msgs as f64, self.produce_secs)
    }
    fn consume_mbps(&self) -> f64 {
        rate(self.consumed_bytes as f64 / MB, self.consume_secs)
    }
}

fn rate(amount: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Runs `cargo xtask bench` with the arguments after `bench`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let args = parse_args(args)?;
    let workspace = Workspace::locate()?;
    let bench_dir = workspace.target.join("bench");
    std::fs::create_dir_all(bench_dir.join("logs"))?;
    let bin = workspace.chronik_release("bench")?;
    if cfg!(debug_assertions) {
        eprintln!(
            "note: the client side (the rdkafka crate's Rust layer) is a debug build; \
             librdkafka itself is optimized C"
        );
    }
    let drivers = match &args.mode {
        Mode::Single { drivers } => drivers,
        Mode::Cluster {
            nodes,
            io,
            idle_partitions,
        } => {
            return cluster::run(&bin, &bench_dir, &args, *nodes, *io, *idle_partitions);
        }
    };

    let cases: Vec<Case> = cases(drivers)
        .into_iter()
        .filter(|c| selected(&args, &c.label()))
        .collect();
    if cases.is_empty() {
        bail!("no case matches --only {:?}", args.only);
    }
    eprintln!(
        "bench: {} cases, {:.1} s of producing each, broker {}",
        cases.len(),
        args.duration.as_secs_f64(),
        bin.display()
    );
    let mut results = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let tag = format!("[{}/{}] {}", i + 1, cases.len(), case.label());
        let outcome = run_case(&bin, &bench_dir, case, args.duration, &tag)
            .with_context(|| format!("case {}", case.label()))?;
        clear_line();
        eprintln!("{tag}: {}", one_line(case, &outcome));
        results.push((case.clone(), outcome));
    }

    print_table(&results);
    let json_path = bench_dir.join("bench.json");
    write_json(&json_path, &to_json(&results, args.duration))?;
    print_warnings(&results, &bench_dir.join("logs"));
    Ok(())
}

/// Whether `--only` keeps the case labelled `label`.
fn selected(args: &Args, label: &str) -> bool {
    args.only.iter().all(|o| label.contains(o.as_str()))
}

fn write_json(path: &Path, json: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(json)? + "\n")
        .with_context(|| format!("write {}", path.display()))?;
    println!("\nwrote {}", path.display());
    Ok(())
}

/// What the brokers wrote to their logs (at level warn, anything is news).
fn print_warnings(results: &[(Case, Outcome)], logs: &Path) {
    let warned: Vec<_> = results
        .iter()
        .filter(|(_, o)| !o.log_warnings.is_empty())
        .collect();
    if !warned.is_empty() {
        println!("\nbroker warnings (logs in {}):", logs.display());
        for (c, o) in warned {
            println!(
                "  {}: {} lines, first: {}",
                c.label(),
                o.log_warnings.len(),
                o.log_warnings[0]
            );
        }
    }
}

fn run_case(
    bin: &Path,
    bench_dir: &Path,
    case: &Case,
    duration: Duration,
    tag: &str,
) -> anyhow::Result<Outcome> {
    let slug = case.slug();
    let log_path = bench_dir.join("logs").join(format!("{slug}.log"));
    let broker = Broker::start(
        bin,
        case.io,
        case.partitions,
        bench_dir.join("data").join(&slug),
        log_path.clone(),
    )?;
    let brokers = Brokers::watch(broker.bootstrap(), vec![broker.pid()]);
    let mut progress = Progress::new(tag);
    let topic = "bench";
    let mut out = Outcome::default();

    produce(&brokers, case, topic, duration, &mut progress, &mut out)
        .with_context(|| format!("produce; broker log tail:\n{}", broker.log_tail(20)))?;
    consume(&brokers, case, topic, &mut progress, &mut out)
        .with_context(|| format!("consume; broker log tail:\n{}", broker.log_tail(20)))?;

    out.peak_rss_mib = brokers.finish();
    drop(broker);
    sync_page_cache();
    out.log_warnings = log_lines(&log_path);
    Ok(out)
}

/// Writes back what a case left in the page cache now, so the next case's
/// fsyncs do not queue behind gigabytes of someone else's dirty pages.
fn sync_page_cache() {
    let _ = Command::new("sync").status();
}

/// The non-blank lines of a broker log.
fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> anyhow::Result<Args> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse_args(&args)
    }

    #[test]
    fn without_cluster_nothing_changes() {
        let a = parse("").unwrap();
        assert_eq!(a.duration, Duration::from_secs(10));
        assert!(!a.quick);
        assert_eq!(
            a.mode,
            Mode::Single {
                drivers: vec!["tokio", "sync"]
            }
        );
        let a = parse("--io sync --quick --only p=4").unwrap();
        assert_eq!(a.duration, Duration::from_secs(2));
        assert_eq!(a.only, ["p=4"]);
        assert_eq!(
            a.mode,
            Mode::Single {
                drivers: vec!["sync"]
            }
        );
        assert!(parse("--io mixed").is_err());
    }

    #[test]
    fn cluster_takes_an_optional_node_count() {
        let three = Mode::Cluster {
            nodes: 3,
            io: IoChoice::Tokio,
            idle_partitions: None,
        };
        assert_eq!(parse("--cluster").unwrap().mode, three);
        assert_eq!(parse("--cluster --quick").unwrap().mode, three);
        assert!(parse("--cluster --quick").unwrap().quick);
        let a = parse("--io mixed --cluster 5 --duration 4 --idle-partitions 3000").unwrap();
        assert_eq!(
            a.mode,
            Mode::Cluster {
                nodes: 5,
                io: IoChoice::Mixed,
                idle_partitions: Some(3000),
            }
        );
        assert_eq!(a.duration, Duration::from_secs(4));
    }

    #[test]
    fn cluster_refuses_what_it_cannot_run() {
        for bad in [
            "--cluster 0",
            "--cluster 10",
            "--cluster x",
            "--cluster --io both",
        ] {
            let err = format!("{:#}", parse(bad).unwrap_err());
            assert!(err.contains("--cluster"), "{bad}: {err}");
        }
        for bad in ["--idle-partitions 100", "--cluster --idle-partitions 0"] {
            let err = format!("{:#}", parse(bad).unwrap_err());
            assert!(err.contains("--idle-partitions"), "{bad}: {err}");
        }
    }
}
