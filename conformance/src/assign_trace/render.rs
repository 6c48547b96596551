//! The stable text form of assignments, plans and per-broker counts.

use std::fmt::Write;

use proto_core::assign::RebalancePlan;
use proto_core::metadata::BrokerId;

use super::{check, Env};

/// One line per partition (of `topic`, or all): its replicas, preferred
/// leader first, a departed one in parentheses, and its current leader.
pub fn table(env: &Env, topic: Option<&str>) -> String {
    let mut out = String::new();
    for (tp, replicas) in &env.assignment {
        if topic.is_some_and(|t| t != tp.topic) {
            continue;
        }
        let leader = env
            .leaders
            .get(tp)
            .map_or("none".to_string(), |l| l.to_string());
        let _ = writeln!(out, "{tp}: {} leader={leader}", list(env, replicas));
    }
    out
}

/// Per live broker: replicas, preferred leaderships, current leaderships;
/// then departed brokers that still hold replicas.
pub fn counts(env: &Env) -> String {
    let mut out = String::new();
    let cluster = env.cluster();
    let replicas = check::replica_counts(&cluster, &env.assignment);
    let preferred = check::leader_counts(&cluster, &env.assignment);
    for (b, rack) in &env.brokers {
        let leading = env.leaders.values().filter(|l| *l == b).count();
        let _ = writeln!(
            out,
            "broker {b} rack={}: replicas={} preferred={} leading={leading}",
            rack.as_deref().unwrap_or("-"),
            replicas[b],
            preferred[b],
        );
    }
    let mut departed: std::collections::BTreeMap<BrokerId, usize> = Default::default();
    for b in env.assignment.values().flatten() {
        if !env.brokers.contains_key(b) {
            *departed.entry(*b).or_default() += 1;
        }
    }
    for (b, n) in departed {
        let _ = writeln!(out, "departed {b}: replicas={n}");
    }
    out
}

/// Every reassignment with the replicas it adds and removes, then the
/// totals.
pub fn plan(plan: &RebalancePlan) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("no moves\n");
    }
    for r in &plan.reassignments {
        let mut change = String::new();
        for b in r.added() {
            let _ = write!(change, " +{b}");
        }
        for b in r.removed() {
            let _ = write!(change, " -{b}");
        }
        let _ = writeln!(
            out,
            "{}: {} -> {}{change}",
            r.partition,
            ids(&r.from),
            ids(&r.to)
        );
    }
    let c = plan.counts;
    let _ = writeln!(
        out,
        "moved={} leader-changes={} (replaced={} rack-repairs={} evened={})",
        plan.moved_replicas(),
        plan.leader_changes(),
        c.replaced,
        c.rack_repairs,
        c.evened
    );
    if !plan.under_replicated.is_empty() {
        let names: Vec<String> = plan
            .under_replicated
            .iter()
            .map(|p| p.to_string())
            .collect();
        let _ = writeln!(out, "under-replicated: {}", names.join(" "));
    }
    out
}

fn list(env: &Env, replicas: &[BrokerId]) -> String {
    let shown: Vec<String> = replicas
        .iter()
        .map(|b| {
            if env.brokers.contains_key(b) {
                b.to_string()
            } else {
                format!("({b})")
            }
        })
        .collect();
    shown.join(" ")
}

fn ids(replicas: &[BrokerId]) -> String {
    let shown: Vec<String> = replicas.iter().map(|b| b.to_string()).collect();
    shown.join(" ")
}
