//! What a case shows: the live status line on stderr, the one-line result,
//! the summary table on stdout and the JSON record.

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::broker::Brokers;
use super::{rate, Case, Outcome, MB};
use crate::table;

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// The live status line on stderr: `tag | what is happening`.
pub struct Progress {
    tag: String,
    last: Option<Instant>,
}

impl Progress {
    /// A line whose every redraw starts with `tag` (the case).
    pub fn new(tag: &str) -> Progress {
        Progress {
            tag: tag.to_string(),
            last: None,
        }
    }

    /// Redraws the line with the throughput so far if [`PROGRESS_EVERY`] has
    /// passed since the last redraw.
    pub fn show(&mut self, phase: &str, bytes: u64, start: Instant, brokers: &Brokers) {
        if !self.due() {
            return;
        }
        self.show_now(phase, bytes, start, brokers);
    }

    /// Redraws the line with the throughput so far.
    pub fn show_now(&mut self, phase: &str, bytes: u64, start: Instant, brokers: &Brokers) {
        let secs = start.elapsed().as_secs_f64();
        let speed = if bytes > 0 {
            format!("{:7.1} MB/s", rate(bytes as f64 / MB, secs))
        } else {
            String::new()
        };
        let rss = brokers.rss_mib();
        let who = if rss.len() == 1 { "broker" } else { "node" };
        self.status_now(&format!(
            "{phase} {speed} | {secs:5.1} s | {who} rss {} MiB",
            fmt_mib(&rss)
        ));
    }

    /// Redraws the line with `text` if [`PROGRESS_EVERY`] has passed since the
    /// last redraw.
    pub fn status(&mut self, text: &str) {
        if self.due() {
            self.status_now(text);
        }
    }

    /// Redraws the line with `text`.
    pub fn status_now(&mut self, text: &str) {
        self.last = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{} | {text}", self.tag);
        let _ = err.flush();
    }

    fn due(&self) -> bool {
        self.last.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY)
    }
}

/// Erases the progress line, so a result line can take its place.
pub fn clear_line() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

/// A figure of each node, MiB: `198.3` for one, `180/175/97` for several.
pub fn fmt_mib(values: &[f64]) -> String {
    match values {
        [one] => format!("{one:.1}"),
        many => many
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join("/"),
    }
}

/// `100 B`, `1 KiB` (sizes from 1 KiB up are whole KiB here).
pub fn fmt_size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

/// Milliseconds to two decimals, `-` when unknown.
pub fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

/// A case's figures in one line, with its delivery errors and a short consume.
pub fn one_line(c: &Case, o: &Outcome) -> String {
    let mut s = format!(
        "produce {:.1} MB/s ({:.0} msg/s), p50/p99/p999 {}/{}/{} ms, consume {:.1} MB/s, peak rss {} MiB",
        o.produce_mbps(c.size),
        o.produce_msgps(),
        fmt_ms(o.lat.map(|l| l.p50)),
        fmt_ms(o.lat.map(|l| l.p99)),
        fmt_ms(o.lat.map(|l| l.p999)),
        o.consume_mbps(),
        fmt_mib(&o.peak_rss_mib)
    );
    if o.delivery_errors > 0 {
        s.push_str(&format!(
            ", {} delivery errors (first: {})",
            o.delivery_errors,
            o.first_error.as_deref().unwrap_or("?")
        ));
    }
    if o.consumed_msgs < o.log_msgs {
        s.push_str(&format!(
            ", consumed only {} of {}",
            o.consumed_msgs, o.log_msgs
        ));
    }
    s
}

/// The summary table of `results` on stdout, with the footnote and every case
/// that lost records spelled out below it.
pub fn print_table(results: &[(Case, Outcome)]) {
    let header = [
        "driver",
        "size",
        "acks",
        "parts",
        "rate",
        "prod MB/s",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "max ms",
        "cons MB/s",
        "peak RSS MiB",
        "cpu b/c prod",
        "cpu b/c cons",
    ];
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(c, o)| {
            vec![
                c.driver(),
                fmt_size(c.size),
                c.acks.to_string(),
                c.partitions.to_string(),
                c.rate
                    .map_or_else(|| "max".into(), |r| format!("{:.0} MB/s", r / MB)),
                format!("{:.1}", o.produce_mbps(c.size)),
                format!("{:.0}", o.produce_msgps()),
                fmt_ms(o.lat.map(|l| l.p50)),
                fmt_ms(o.lat.map(|l| l.p99)),
                fmt_ms(o.lat.map(|l| l.p999)),
                fmt_ms(o.lat.map(|l| l.max)),
                format!("{:.1}", o.consume_mbps()),
                fmt_mib(&o.peak_rss_mib),
                format!("{:.2}/{:.2}", o.broker_cpu_produce, o.client_cpu_produce),
                format!("{:.2}/{:.2}", o.broker_cpu_consume, o.client_cpu_consume),
            ]
        })
        .collect();
    println!();
    print!("{}", table::markdown(&header, &rows, 5));
    println!(
        "\nMB = 10^6 bytes of record values; latency = delivery report minus send; \
         cpu b/c = cores busy in broker / bench client"
    );
    if results.iter().any(|(c, _)| c.nodes > 1) {
        println!(
            "a cluster (driver `xN`: N nodes): cpu b is summed over its nodes; \
             peak RSS is each node's, node 1 first"
        );
    }
    for (c, o) in results {
        if o.delivery_errors > 0 || o.consumed_msgs < o.log_msgs {
            println!("{}: {}", c.label(), one_line(c, o));
        }
    }
}

/// Every figure of `results`, for `target/bench/*.json`.
pub fn to_json(results: &[(Case, Outcome)], duration: Duration) -> serde_json::Value {
    let cases: Vec<serde_json::Value> = results
        .iter()
        .map(|(c, o)| {
            serde_json::json!({
                "io": c.io,
                "nodes": c.nodes,
                "size_bytes": c.size,
                "acks": c.acks,
                "partitions": c.partitions,
                "target_rate_mb_s": c.rate.map(|r| r / MB),
                "linger_ms": c.linger_ms,
                "produce": {
                    "mb_s": o.produce_mbps(c.size),
                    "msgs_s": o.produce_msgps(),
                    "records": o.produced_msgs,
                    "seconds": o.produce_secs,
                    "delivery_errors": o.delivery_errors,
                    "first_error": o.first_error,
                    "latency_ms": o.lat.map(|l| serde_json::json!({
                        "p50": l.p50, "p99": l.p99, "p999": l.p999, "max": l.max,
                    })),
                    "broker_cpu_cores": finite(o.broker_cpu_produce),
                    "client_cpu_cores": finite(o.client_cpu_produce),
                },
                "consume": {
                    "mb_s": o.consume_mbps(),
                    "records": o.consumed_msgs,
                    "bytes": o.consumed_bytes,
                    "seconds": o.consume_secs,
                    "records_in_log": o.log_msgs,
                    "broker_cpu_cores": finite(o.broker_cpu_consume),
                    "client_cpu_cores": finite(o.client_cpu_consume),
                },
                "broker_peak_rss_mib": o.peak_rss_mib.iter().copied().fold(0.0, f64::max),
                "peak_rss_mib_per_node": o.peak_rss_mib,
                "broker_log_lines": o.log_warnings.len(),
            })
        })
        .collect();
    serde_json::json!({
        "duration_s": duration.as_secs_f64(),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "client_build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "mb": "10^6 bytes",
        "cases": cases,
    })
}

/// JSON has no NaN: unknown figures become null.
pub fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}
