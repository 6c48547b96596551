//! Idle cost: the CPU a cluster burns holding many partitions and serving
//! nothing.
//!
//! One CreateTopics of `partitions` partitions (replication factor `rf`),
//! then Metadata polled until every partition has a leader, then until the
//! preferred leaders (first replicas) lead nearly all of them (the nodes hand
//! leadership back in batches; measuring during that would measure
//! elections), then a settle time (ISR reports and the first quiescing are
//! over), then each
//! node's CPU time (`utime + stime` of `/proc/<pid>/stat`) read at the start
//! and the end of a window with no client talking to the cluster.

use std::time::{Duration, Instant};

use crate::bench::broker::cpu_time;
use crate::bench::report::Progress;
use crate::cluster::layout::NodeId;
use crate::cluster::local::LocalCluster;
use crate::cluster::scrape::{http_get, parse_samples, RaftView};
use crate::cluster::topics::{self, Admin};

/// The topic holding the idle partitions.
pub const TOPIC: &str = "idle";
/// The share of partitions led by their preferred replica the balance wait
/// ends at.
pub const PREFERRED_SHARE: f64 = 0.99;
/// How long the balance wait goes on without the count growing.
const BALANCE_STALL: Duration = Duration::from_secs(60);

/// How the idle measurement runs.
#[derive(Clone, Copy, Debug)]
pub struct IdlePlan {
    pub partitions: u32,
    pub rf: u32,
    /// How long CreateTopics may take to answer.
    pub create_timeout: Duration,
    /// How long, from the CreateTopics request, every partition may take to
    /// have a leader.
    pub led_deadline: Duration,
    /// The quiet time before the window.
    pub settle: Duration,
    /// The window CPU time is measured over.
    pub window: Duration,
}

/// One node over the window.
#[derive(Clone, Debug)]
pub struct IdleNode {
    pub id: NodeId,
    /// Percent of one core, averaged over the window; `None` if `/proc`
    /// could not tell.
    pub cpu_pct: Option<f64>,
    pub rss_mib: Option<f64>,
    pub open_fds: Option<usize>,
    pub threads: Option<u64>,
    /// Partitions its own `/metrics` say it leads after the window (the
    /// offsets topic's included, the metadata group not).
    pub partitions_led: Option<usize>,
    /// Partitions of the idle topic Metadata named it the leader of.
    pub idle_led: usize,
    /// Lines it logged during the window: an idle node has nothing to say,
    /// so anything here (elections, ISR changes) is where the CPU went.
    pub log_lines: Option<usize>,
}

/// What the idle measurement found.
#[derive(Clone, Debug, Default)]
pub struct IdleReport {
    /// How long CreateTopics took to answer, or the broker's error.
    pub create: Option<Result<Duration, String>>,
    /// From the CreateTopics request until Metadata showed every partition
    /// led; `None` if that never happened.
    pub all_led_after: Option<Duration>,
    /// Partitions with a leader when the waiting ended.
    pub led: usize,
    /// From the CreateTopics request until [`PREFERRED_SHARE`] of the
    /// partitions were led by their preferred replica; `None` if the count
    /// stopped growing first.
    pub preferred_after: Option<Duration>,
    /// Partitions led by their preferred replica when that waiting ended.
    pub preferred_led: usize,
    pub nodes: Vec<IdleNode>,
    /// Why the measurement is incomplete, if it is.
    pub error: Option<String>,
}

impl IdleReport {
    /// The busiest node's CPU, percent of a core.
    pub fn worst_pct(&self) -> Option<f64> {
        self.nodes
            .iter()
            .filter_map(|n| n.cpu_pct)
            .max_by(f64::total_cmp)
    }
}

/// Polls Metadata until [`PREFERRED_SHARE`] of the partitions are led by
/// their first replica, the count has not grown for [`BALANCE_STALL`], or
/// the led deadline passed; returns each partition's leader at the end.
fn wait_for_preferred_leaders(
    cluster: &mut LocalCluster,
    admin: &Admin,
    plan: IdlePlan,
    asked: Instant,
    report: &mut IdleReport,
    progress: &mut Progress,
) -> Vec<i32> {
    let want = (f64::from(plan.partitions) * PREFERRED_SHARE).ceil() as usize;
    let mut leaders = Vec::new();
    let mut best = (0, Instant::now());
    loop {
        if let Ok((parts, _)) = topics::partitions(admin, TOPIC) {
            leaders = parts.iter().filter_map(|p| p.leader).collect();
            report.preferred_led = parts
                .iter()
                .filter(|p| p.leader.is_some() && p.leader == p.replicas.first().copied())
                .count();
            if report.preferred_led >= want {
                report.preferred_after = Some(asked.elapsed());
                return leaders;
            }
            if report.preferred_led > best.0 {
                best = (report.preferred_led, Instant::now());
            }
        }
        if best.1.elapsed() > BALANCE_STALL
            || asked.elapsed() > plan.led_deadline
            || cluster.check_running().is_err()
        {
            return leaders;
        }
        progress.status_now(&format!(
            "{} of {} partitions led by their preferred replica after {:.0} s",
            report.preferred_led,
            plan.partitions,
            asked.elapsed().as_secs_f64()
        ));
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Creates the partitions, waits for their leaders, settles and measures.
/// `admin` is dropped before the window so no client traffic reaches the
/// cluster while it is measured.
pub fn run(cluster: &mut LocalCluster, admin: Admin, plan: IdlePlan, tag: &str) -> IdleReport {
    let mut report = IdleReport::default();
    let mut progress = Progress::new(tag);
    let asked = Instant::now();
    let created = topics::create(
        &admin,
        TOPIC,
        plan.partitions,
        plan.rf,
        &[],
        plan.create_timeout,
        || {
            progress.status(&format!(
                "CreateTopics {TOPIC}: {} partitions, rf {}: waiting {:.0} s",
                plan.partitions,
                plan.rf,
                asked.elapsed().as_secs_f64()
            ))
        },
    );
    report.create = Some(match created {
        Ok(Ok(())) => Ok(asked.elapsed()),
        Ok(Err(why)) => Err(why),
        Err(e) => Err(format!("{e:#}")),
    });
    if let Some(Err(why)) = &report.create {
        super::note_line(&format!(
            "{tag}: CreateTopics: {why} after {:.1} s; waiting for leaders anyway",
            asked.elapsed().as_secs_f64()
        ));
    }

    let mut last_error: Option<String>;
    let mut leaders: Vec<i32> = Vec::new();
    loop {
        match topics::partitions(&admin, TOPIC) {
            Ok((parts, error)) => {
                report.led = topics::led(&parts);
                leaders = parts.iter().filter_map(|p| p.leader).collect();
                last_error = error;
                if parts.len() == plan.partitions as usize && report.led == parts.len() {
                    report.all_led_after = Some(asked.elapsed());
                    break;
                }
            }
            Err(e) => last_error = Some(format!("{e:#}")),
        }
        if asked.elapsed() > plan.led_deadline {
            report.error = Some(format!(
                "only {} of {} partitions had a leader {} s after CreateTopics (last Metadata error: {})",
                report.led,
                plan.partitions,
                plan.led_deadline.as_secs(),
                last_error.as_deref().unwrap_or("none")
            ));
            break;
        }
        if let Err(e) = cluster.check_running() {
            report.error = Some(format!("{e:#}"));
            return report;
        }
        progress.status_now(&format!(
            "{} of {} partitions led after {:.0} s",
            report.led,
            plan.partitions,
            asked.elapsed().as_secs_f64()
        ));
        std::thread::sleep(Duration::from_secs(1));
    }
    if report.error.is_none() {
        leaders =
            wait_for_preferred_leaders(cluster, &admin, plan, asked, &mut report, &mut progress);
    }
    drop(admin);

    let pids: Vec<(NodeId, u32)> = cluster
        .ids()
        .into_iter()
        .filter_map(|id| cluster.pid(id).map(|pid| (id, pid)))
        .collect();
    let settle_end = Instant::now() + plan.settle;
    let mut prev: Vec<Option<Duration>> = pids.iter().map(|&(_, pid)| cpu_time(pid)).collect();
    while Instant::now() < settle_end {
        std::thread::sleep(Duration::from_secs(1));
        let now: Vec<Option<Duration>> = pids.iter().map(|&(_, pid)| cpu_time(pid)).collect();
        let pct: Vec<String> = prev
            .iter()
            .zip(&now)
            .map(|(a, b)| {
                pct(*a, *b, Duration::from_secs(1)).map_or("-".into(), |p| format!("{p:.1}"))
            })
            .collect();
        progress.status_now(&format!(
            "settling, {:.0} s left | cpu in the last second {} % of a core",
            settle_end
                .saturating_duration_since(Instant::now())
                .as_secs_f64(),
            pct.join("/")
        ));
        prev = now;
    }

    let logs = cluster.logs();
    let lines_before: Vec<Option<usize>> = logs.iter().map(|(_, p)| line_count(p)).collect();
    let start = Instant::now();
    let before: Vec<Option<Duration>> = pids.iter().map(|&(_, pid)| cpu_time(pid)).collect();
    while start.elapsed() < plan.window {
        progress.status_now(&format!(
            "measuring idle CPU: {:.0} of {} s",
            start.elapsed().as_secs_f64(),
            plan.window.as_secs()
        ));
        std::thread::sleep(
            Duration::from_millis(500).min(plan.window.saturating_sub(start.elapsed())),
        );
    }
    let after: Vec<Option<Duration>> = pids.iter().map(|&(_, pid)| cpu_time(pid)).collect();
    let secs = start.elapsed();
    let lines_during = |id: NodeId| -> Option<usize> {
        let i = logs.iter().position(|(n, _)| *n == id)?;
        Some(line_count(&logs[i].1)?.saturating_sub(lines_before[i]?))
    };

    report.nodes = pids
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(&(id, pid), (b, a))| {
            let led = cluster
                .admin(id)
                .ok()
                .and_then(|addr| match http_get(addr, "/metrics") {
                    Ok((200, body)) => Some(RaftView::of(&parse_samples(&body), id)),
                    _ => None,
                })
                .map(|v| v.partitions_led);
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            IdleNode {
                id,
                cpu_pct: pct(*b, *a, secs),
                rss_mib: status_field(&status, "VmRSS:").map(|k| k as f64 / 1024.0),
                open_fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .ok()
                    .map(|d| d.count()),
                threads: status_field(&status, "Threads:"),
                partitions_led: led,
                idle_led: leaders.iter().filter(|&&l| l == id.0 as i32).count(),
                log_lines: lines_during(id),
            }
        })
        .collect();
    if let Err(e) = cluster.check_running() {
        report.error.get_or_insert(format!("{e:#}"));
    }
    report
}

/// Lines in a log file so far.
fn line_count(path: &std::path::Path) -> Option<usize> {
    let bytes = std::fs::read(path).ok()?;
    Some(bytes.iter().filter(|&&b| b == b'\n').count())
}

/// CPU time between two readings as percent of one core over `over`.
fn pct(before: Option<Duration>, after: Option<Duration>, over: Duration) -> Option<f64> {
    let (b, a) = (before?, after?);
    (!over.is_zero()).then(|| a.saturating_sub(b).as_secs_f64() / over.as_secs_f64() * 100.0)
}

/// The number after `field` in `/proc/<pid>/status` (`VmRSS:  1234 kB`).
fn status_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_a_core() {
        let s = Duration::from_secs;
        assert_eq!(pct(Some(s(10)), Some(s(13)), s(30)), Some(10.0));
        assert_eq!(pct(None, Some(s(1)), s(30)), None);
        assert_eq!(pct(Some(s(1)), Some(s(2)), Duration::ZERO), None);
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tchronik\nVmRSS:\t  204800 kB\nThreads:\t12\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(204_800));
        assert_eq!(status_field(status, "Threads:"), Some(12));
        assert_eq!(status_field(status, "VmHWM:"), None);
    }
}
