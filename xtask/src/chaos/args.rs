//! `cargo xtask chaos` flags.

use std::time::Duration;

use anyhow::{bail, Context};

use super::schedule::Nemesis;
use crate::cluster::layout::IoChoice;

/// The usage line.
pub const USAGE: &str = "usage: cargo xtask chaos [--nodes 3|5] [--duration 60s] \
[--nemesis kill,pause,partition,latency,drop,restart|all] [--seed S] [--io tokio|sync|mixed] \
[--rate N] [--request-timeout-ms MS] [--debug-build] [-- <chronik serve flags>]";

/// One run's settings.
#[derive(Clone, Debug)]
pub struct Args {
    /// Cluster size.
    pub nodes: u32,
    /// How long the fault phase lasts.
    pub duration: Duration,
    /// The faults to draw from.
    pub nemeses: Vec<Nemesis>,
    /// The schedule's seed; `None` picks one (and prints it).
    pub seed: Option<u64>,
    /// The nodes' drivers.
    pub io: IoChoice,
    /// Records per second per producer.
    pub rate: u32,
    /// The producers' `request.timeout.ms`.
    pub request_timeout_ms: u32,
    /// Run the debug `chronik` (already built by `cargo test`) instead of a
    /// release build: what CI does to save a release compile.
    pub debug_build: bool,
    /// Flags after `--`, appended to every node's `chronik serve`.
    pub serve: Vec<String>,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            nodes: 3,
            duration: Duration::from_secs(60),
            nemeses: Nemesis::ALL.to_vec(),
            seed: None,
            io: IoChoice::Mixed,
            rate: 100,
            request_timeout_ms: 5000,
            debug_build: false,
            serve: Vec::new(),
        }
    }
}

/// Parses the flags after `chaos`.
pub fn parse(args: &[String]) -> anyhow::Result<Args> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--nodes" => {
                out.nodes = value()?.parse().context("--nodes")?;
                if !(3..=9).contains(&out.nodes) {
                    bail!("--nodes must be 3 to 9 (a fault needs a majority to survive it)");
                }
            }
            "--duration" => out.duration = parse_duration(value()?)?,
            "--nemesis" => out.nemeses = Nemesis::parse_list(value()?)?,
            "--seed" => out.seed = Some(value()?.parse().context("--seed")?),
            "--io" => {
                let v = value()?;
                out.io = IoChoice::parse(v)
                    .with_context(|| format!("--io {v}: tokio, sync or mixed"))?;
            }
            "--rate" => {
                out.rate = value()?.parse().context("--rate")?;
                if out.rate == 0 {
                    bail!("--rate must be at least 1");
                }
            }
            "--request-timeout-ms" => {
                out.request_timeout_ms = value()?.parse().context("--request-timeout-ms")?;
            }
            "--debug-build" => out.debug_build = true,
            "--" => {
                out.serve = it.by_ref().cloned().collect();
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag `{other}`\n{USAGE}"),
        }
    }
    Ok(out)
}

/// `90`, `90s`, `2m`, `30m` or `1h`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("duration `{s}`: a number then s, m or h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("duration `{s}`: the unit is s, m or h"),
    };
    if secs == 0 {
        bail!("duration `{s}` is zero");
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn flags() {
        let a = parse(&strings(&[
            "--nodes",
            "5",
            "--duration",
            "2m",
            "--nemesis",
            "kill,pause",
            "--seed",
            "9",
        ]))
        .unwrap();
        assert_eq!(a.nodes, 5);
        assert_eq!(a.duration, Duration::from_secs(120));
        assert_eq!(a.nemeses, vec![Nemesis::Kill, Nemesis::Pause]);
        assert_eq!(a.seed, Some(9));
        assert!(parse(&strings(&["--nodes", "2"])).is_err());
        assert!(parse(&strings(&["--bogus"])).is_err());
    }
}
