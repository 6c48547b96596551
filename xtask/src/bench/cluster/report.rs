//! The cluster bench's tables and JSON: failover and idle results, and every
//! figure beside the issue's target.

use std::time::Duration;

use super::catchup::CatchUp;
use super::failover;
use super::idle::{IdlePlan, IdleReport};
use super::stats::MedianMax;
use super::Measured;
use crate::bench::report::finite;
use crate::table;

/// The issue's targets: acks=all 1 KiB produce throughput, the median
/// failover, and the idle CPU of the busiest node (percent of a core).
const TARGET_MB_S: f64 = 60.0;
const TARGET_FAILOVER: Duration = Duration::from_secs(1);
const TARGET_IDLE_PCT: f64 = 5.0;

/// `1,2,3` (partition 0's leader first).
pub fn fmt_leaders(leaders: &[i32]) -> String {
    leaders
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Seconds to `decimals` places, `-` when unknown.
fn secs_cell(d: Option<Duration>, decimals: usize) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.decimals$}", d.as_secs_f64()))
}

/// Every kill as a row, then the median and max.
pub fn failover_table(r: &failover::Report) -> String {
    let header = [
        "kill",
        "node",
        "controller",
        "failover ms",
        "new leader",
        "healthy s",
        "caught up s",
        "errors d/r",
    ];
    let rows: Vec<Vec<String>> = r
        .kills
        .iter()
        .enumerate()
        .map(|(i, k)| {
            vec![
                (i + 1).to_string(),
                k.node.to_string(),
                if k.was_controller { "yes" } else { "no" }.to_string(),
                k.failover
                    .map_or("none".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e3)),
                k.new_leader.map_or("-".into(), |l| l.to_string()),
                format!("{:.1}", k.healthy_after.as_secs_f64()),
                secs_cell(k.back_after, 1),
                format!("{}/{}", k.delivery_errors, k.refused),
            ]
        })
        .collect();
    let mut s = format!(
        "\nfailover: SIGKILL of the partition leader to the first acknowledged acks=all \
         write sent after it; healthy/caught up: restart to /health 200 / to its commit \
         index reaching one the leader reported after the restart, and in the ISR \
         (gauges refresh every 5 s); errors d/r: delivery failures / records the \
         client refused to queue\n{}",
        table::markdown(&header, &rows, 3)
    );
    s.push_str(&format!("{}\n", failover_line(r)));
    s
}

/// The failover summary: median, max, every value, and what went wrong.
fn failover_line(r: &failover::Report) -> String {
    let values: Vec<String> = r
        .kills
        .iter()
        .map(|k| {
            k.failover
                .map_or("none".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e3))
        })
        .collect();
    let mut s = match r.summary() {
        Some(MedianMax { median, max }) => format!(
            "failover: median {:.0} ms, max {:.0} ms over {} kill(s) (all: {} ms); target: median <= {} ms",
            median * 1e3,
            max * 1e3,
            r.kills.len(),
            values.join(", "),
            TARGET_FAILOVER.as_millis()
        ),
        None => "failover: no kill failed over".into(),
    };
    if r.missed() > 0 {
        s.push_str(&format!(
            "; {} kill(s) got no acknowledged write",
            r.missed()
        ));
    }
    if r.failed > 0 {
        s.push_str(&format!(
            "; {} of {} records failed (first: {})",
            r.failed,
            r.failed + r.acked,
            r.first_error.as_deref().unwrap_or("?")
        ));
    }
    if r.refused > 0 {
        s.push_str(&format!(
            "; the client refused {} records (first: {})",
            r.refused,
            r.first_refusal.as_deref().unwrap_or("?")
        ));
    }
    s
}

/// The failover figures for `cluster.json`.
/// The catch-up part as a one-row table.
pub fn catch_up_table(c: &CatchUp) -> String {
    let header = [
        "follower",
        "leader",
        "missed MiB",
        "write s",
        "healthy s",
        "caught up s",
        "MiB/s",
    ];
    let missed = c.log_bytes.saturating_sub(c.had_bytes) as f64 / (1 << 20) as f64;
    let rows = vec![vec![
        c.node.to_string(),
        c.leader.to_string(),
        format!("{missed:.0}"),
        format!("{:.1}", c.produce.as_secs_f64()),
        format!("{:.1}", c.healthy_after.as_secs_f64()),
        format!("{:.1}", c.caught_up_after.as_secs_f64()),
        format!("{:.0}", c.mib_per_s()),
    ]];
    format!(
        "\ncatch-up: a follower SIGKILLed while the missed bytes were written (1 KiB \
         acks=all records), then restarted; caught up: restart to its log equal to the \
         leader's byte for byte\n{}",
        table::markdown(&header, &rows, 2)
    )
}

/// The catch-up part for `cluster.json`.
pub fn catch_up_json(c: &CatchUp) -> serde_json::Value {
    serde_json::json!({
        "follower": c.node,
        "leader": c.leader,
        "log_bytes": c.log_bytes,
        "follower_had_bytes": c.had_bytes,
        "write_s": c.produce.as_secs_f64(),
        "healthy_after_s": c.healthy_after.as_secs_f64(),
        "caught_up_after_s": c.caught_up_after.as_secs_f64(),
        "mib_per_s": finite(c.mib_per_s()),
    })
}

pub fn failover_json(r: &failover::Report) -> serde_json::Value {
    let s = r.summary();
    serde_json::json!({
        "kills": r.kills.iter().map(|k| serde_json::json!({
            "node": k.node,
            "was_controller": k.was_controller,
            "failover_ms": k.failover.map(|d| d.as_secs_f64() * 1e3),
            "new_leader": k.new_leader,
            "healthy_after_s": k.healthy_after.as_secs_f64(),
            "back_in_isr_after_s": k.back_after.map(|d| d.as_secs_f64()),
            "delivery_errors": k.delivery_errors,
            "records_refused_by_client": k.refused,
        })).collect::<Vec<_>>(),
        "median_ms": s.map(|s| s.median * 1e3),
        "max_ms": s.map(|s| s.max * 1e3),
        "records_acked": r.acked,
        "records_failed": r.failed,
        "first_error": r.first_error,
        "records_refused_by_client": r.refused,
        "first_refusal": r.first_refusal,
        "error": r.error,
    })
}

/// The idle figures in one line (the progress log and under the table).
pub fn idle_line(r: &IdleReport, plan: IdlePlan) -> String {
    let cpu: Vec<String> = r
        .nodes
        .iter()
        .map(|n| n.cpu_pct.map_or("-".into(), |p| format!("{p:.1}")))
        .collect();
    let create = match &r.create {
        Some(Ok(d)) => format!("CreateTopics answered after {:.1} s", d.as_secs_f64()),
        Some(Err(e)) => format!("CreateTopics failed: {}", e.lines().next().unwrap_or("")),
        None => "CreateTopics not sent".into(),
    };
    let led = match r.all_led_after {
        Some(d) => format!("all led after {:.1} s", d.as_secs_f64()),
        None => format!("{} of {} led", r.led, plan.partitions),
    };
    let preferred = match r.preferred_after {
        Some(d) => format!(
            ", {} by their preferred replica after {:.1} s",
            r.preferred_led,
            d.as_secs_f64()
        ),
        None => format!(
            ", {} by their preferred replica when that stopped growing",
            r.preferred_led
        ),
    };
    format!(
        "{} partitions rf {}: {create}, {led}{preferred}; idle CPU over {} s: {} % of a core per node",
        plan.partitions,
        plan.rf,
        plan.window.as_secs(),
        cpu.join("/")
    )
}

/// One row per node: CPU, memory, descriptors, leadership, log lines.
pub fn idle_table(r: &IdleReport, plan: IdlePlan) -> String {
    let header = [
        "node",
        "idle cpu %",
        "rss MiB",
        "open fds",
        "threads",
        "led (Metadata)",
        "led (/metrics)",
        "log lines",
    ];
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = r
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.id.to_string(),
                or_dash(n.cpu_pct.map(|p| format!("{p:.2}"))),
                or_dash(n.rss_mib.map(|m| format!("{m:.0}"))),
                or_dash(n.open_fds.map(|f| f.to_string())),
                or_dash(n.threads.map(|t| t.to_string())),
                n.idle_led.to_string(),
                or_dash(n.partitions_led.map(|l| l.to_string())),
                or_dash(n.log_lines.map(|l| l.to_string())),
            ]
        })
        .collect();
    format!(
        "\nidle: {} partitions, rf {}, {} s settle, CPU (utime+stime) over {} s; led: \
         partitions of the idle topic Metadata names it leader of / groups its own \
         /metrics say it leads (offsets partitions included); log lines: written \
         during the window\n{}{}\n",
        plan.partitions,
        plan.rf,
        plan.settle.as_secs(),
        plan.window.as_secs(),
        table::markdown(&header, &rows, 1),
        idle_line(r, plan)
    )
}

/// The idle figures for `cluster.json`.
pub fn idle_json(r: &IdleReport, plan: IdlePlan) -> serde_json::Value {
    serde_json::json!({
        "partitions": plan.partitions,
        "replication_factor": plan.rf,
        "settle_s": plan.settle.as_secs_f64(),
        "window_s": plan.window.as_secs_f64(),
        "create_answered_s": r.create.as_ref().and_then(|c| c.as_ref().ok()).map(Duration::as_secs_f64),
        "create_error": r.create.as_ref().and_then(|c| c.as_ref().err()),
        "all_led_after_s": r.all_led_after.map(|d| d.as_secs_f64()),
        "partitions_led": r.led,
        "preferred_led_after_s": r.preferred_after.map(|d| d.as_secs_f64()),
        "partitions_led_by_preferred": r.preferred_led,
        "nodes": r.nodes.iter().map(|n| serde_json::json!({
            "node": n.id.0,
            "cpu_pct_of_core": n.cpu_pct.and_then(finite),
            "rss_mib": n.rss_mib,
            "open_fds": n.open_fds,
            "threads": n.threads,
            "partitions_led_metrics": n.partitions_led,
            "idle_partitions_led_metadata": n.idle_led,
            "log_lines_during_window": n.log_lines,
        })).collect::<Vec<_>>(),
        "error": r.error,
    })
}

/// The issue's targets beside what was measured.
pub fn targets_table(
    measured: &[Measured],
    failover: Option<&failover::Report>,
    idle: Option<&IdleReport>,
    plan: IdlePlan,
    quick: bool,
) -> String {
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for m in measured.iter().filter(|m| m.case.rate.is_none()) {
        let mbps = m.outcome.produce_mbps(m.case.size);
        rows.push(vec![
            format!("acks=all 1 KiB produce, {} partition(s)", m.case.partitions),
            format!("{mbps:.1} MB/s"),
            format!(">= {TARGET_MB_S:.0} MB/s"),
            verdict(Some(mbps >= TARGET_MB_S)).into(),
        ]);
    }
    if let Some(r) = failover {
        let s = r.summary();
        rows.push(vec![
            format!("failover median ({} kills)", r.kills.len()),
            s.map_or("-".into(), |s| format!("{:.0} ms", s.median * 1e3)),
            format!("<= {} ms", TARGET_FAILOVER.as_millis()),
            verdict(s.map(|s| s.median <= TARGET_FAILOVER.as_secs_f64() && r.missed() == 0)).into(),
        ]);
    }
    if let Some(r) = idle {
        let worst = r.worst_pct();
        let complete = r.all_led_after.is_some();
        rows.push(vec![
            format!("idle CPU, busiest node, {} partitions", plan.partitions),
            worst.map_or("-".into(), |p| format!("{p:.2} % of a core")),
            format!("<= {TARGET_IDLE_PCT:.0} %"),
            verdict(worst.filter(|_| complete).map(|p| p <= TARGET_IDLE_PCT)).into(),
        ]);
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\ntargets{}:\n{}",
        if quick {
            " (a --quick run: shorter cases, fewer kills and partitions than the issue's)"
        } else {
            ""
        },
        table::markdown(&["figure", "measured", "target", ""], &rows, 1)
    )
}
