//! Trace files: a plan written out in full, so a (minimized) failure replays
//! exactly with `cargo xtask sim --trace FILE`.
//!
//! ```text
//! # comments, including the violation the trace reproduces
//! seed 42
//! expect committed-entry-lost
//! nodes 3
//! election_ticks 7
//! ...
//! faults ack-before-persist
//! @37 crash 2 for=25
//! @52 partition leader both for=40
//! ```
//!
//! Parameter lines override what the seed would pick, so a trace stays exact
//! even if the derivation of parameters from seeds changes later.

use std::fmt::Write as _;

use proto_core::raft::FaultSwitches;

use super::checker::ViolationKind;
use super::nemesis::Scheduled;
use super::params::{Params, SimOptions};
use super::{Failure, Plan};

/// A trace that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {msg}")]
pub struct TraceError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// A parsed trace: the plan and the violation it is expected to reproduce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// What to run.
    pub plan: Plan,
    /// The violation kind the trace was saved for, if any.
    pub expect: Option<ViolationKind>,
}

/// The names of the fault switches, as `--faults` and trace files spell them.
pub fn fault_names(f: &FaultSwitches) -> String {
    let mut names = Vec::new();
    if f.ack_before_persist {
        names.push("ack-before-persist");
    }
    if f.skip_figure8_rule {
        names.push("skip-figure8");
    }
    if f.lead_before_own_vote_durable {
        names.push("lead-before-own-vote");
    }
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    }
}

/// Parses a comma-separated list of fault switch names (`none` for none).
pub fn parse_faults(s: &str) -> Option<FaultSwitches> {
    let mut f = FaultSwitches::default();
    for name in s.split(',') {
        match name.trim() {
            "ack-before-persist" => f.ack_before_persist = true,
            "skip-figure8" => f.skip_figure8_rule = true,
            "lead-before-own-vote" => f.lead_before_own_vote_durable = true,
            "none" | "" => {}
            _ => return None,
        }
    }
    Some(f)
}

/// Writes `plan` as a trace file, with `failure` as its expectation.
pub fn render(plan: &Plan, failure: Option<&Failure>) -> String {
    let mut out = String::new();
    out.push_str("# Chronik simulator trace. Replay: cargo xtask sim --trace <this file>\n");
    if let Some(f) = failure {
        let _ = writeln!(out, "# violation: {f}");
    }
    let _ = writeln!(out, "seed {}", plan.seed);
    if let Some(f) = failure {
        let _ = writeln!(out, "expect {}", f.violation.kind);
    }
    let p = &plan.params;
    let _ = writeln!(out, "faults {}", fault_names(&p.faults));
    for (key, value) in numbers(p) {
        let _ = writeln!(out, "{key} {value}");
    }
    for s in &plan.schedule {
        let _ = writeln!(out, "{s}");
    }
    out
}

fn numbers(p: &Params) -> Vec<(&'static str, u64)> {
    vec![
        ("nodes", p.nodes),
        ("spares", p.spares),
        ("fault_ticks", p.fault_ticks),
        ("liveness_ticks", p.liveness_ticks),
        ("election_ticks", u64::from(p.election_ticks)),
        ("heartbeat_ticks", u64::from(p.heartbeat_ticks)),
        ("pre_vote", u64::from(p.pre_vote)),
        ("check_quorum", u64::from(p.check_quorum)),
        ("quiesce", u64::from(p.quiesce)),
        ("load_compacted", u64::from(p.load_compacted)),
        ("retention", u64::from(p.retention)),
        ("max_inflight_msgs", p.max_inflight_msgs as u64),
        ("max_msg_bytes", p.max_msg_bytes as u64),
        ("snapshot_chunk_bytes", p.snapshot_chunk_bytes as u64),
        ("learner_catchup_lag", p.learner_catchup_lag),
        ("drop_per_mille", p.drop_per_mille),
        ("dup_per_mille", p.dup_per_mille),
        ("delay_min", p.delay_min),
        ("delay_max", p.delay_max),
        ("slow_per_mille", p.slow_per_mille),
        ("disk_delay_max", p.disk_delay_max),
        ("clients", p.clients),
        ("propose_per_mille", p.propose_per_mille),
        ("nemesis_gap", p.nemesis_gap),
    ]
}

fn set(p: &mut Params, key: &str, v: u64) -> bool {
    let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    match key {
        "nodes" => p.nodes = v,
        "spares" => p.spares = v,
        "fault_ticks" => p.fault_ticks = v,
        "liveness_ticks" => p.liveness_ticks = v,
        "election_ticks" => p.election_ticks = small(v),
        "heartbeat_ticks" => p.heartbeat_ticks = small(v),
        "pre_vote" => p.pre_vote = v != 0,
        "check_quorum" => p.check_quorum = v != 0,
        "quiesce" => p.quiesce = v != 0,
        "load_compacted" => p.load_compacted = v != 0,
        "retention" => p.retention = v != 0,
        "max_inflight_msgs" => p.max_inflight_msgs = v as usize,
        "max_msg_bytes" => p.max_msg_bytes = v as usize,
        "snapshot_chunk_bytes" => p.snapshot_chunk_bytes = v as usize,
        "learner_catchup_lag" => p.learner_catchup_lag = v,
        "drop_per_mille" => p.drop_per_mille = v,
        "dup_per_mille" => p.dup_per_mille = v,
        "delay_min" => p.delay_min = v,
        "delay_max" => p.delay_max = v,
        "slow_per_mille" => p.slow_per_mille = v,
        "disk_delay_max" => p.disk_delay_max = v,
        "clients" => p.clients = v,
        "propose_per_mille" => p.propose_per_mille = v,
        "nemesis_gap" => p.nemesis_gap = v,
        _ => return false,
    }
    true
}

/// Reads a trace file. The `seed` line must come before parameters and ops;
/// parameters not given are the seed's.
pub fn parse(text: &str) -> Result<Trace, TraceError> {
    let mut plan: Option<Plan> = None;
    let mut expect = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |msg: String| TraceError { line: n + 1, msg };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let value = value.trim();
        if key == "seed" {
            let seed = value
                .parse()
                .map_err(|_| err(format!("bad seed `{value}`")))?;
            plan = Some(Plan {
                seed,
                params: Params::from_seed(seed, &SimOptions::default()),
                schedule: Vec::new(),
            });
            continue;
        }
        let Some(plan) = plan.as_mut() else {
            return Err(err("the first line must be `seed N`".to_string()));
        };
        if key.starts_with('@') {
            let op: Scheduled = line.parse().map_err(|e| err(format!("{e}")))?;
            plan.schedule.push(op);
        } else if key == "expect" {
            expect = Some(
                ViolationKind::from_name(value)
                    .ok_or_else(|| err(format!("unknown violation `{value}`")))?,
            );
        } else if key == "faults" {
            plan.params.faults =
                parse_faults(value).ok_or_else(|| err(format!("unknown faults `{value}`")))?;
        } else {
            let v: u64 = value
                .parse()
                .map_err(|_| err(format!("bad number `{value}`")))?;
            if !set(&mut plan.params, key, v) {
                return Err(err(format!("unknown key `{key}`")));
            }
        }
    }
    let mut plan = plan.ok_or(TraceError {
        line: 0,
        msg: "no `seed` line".to_string(),
    })?;
    plan.schedule.sort_by_key(|s| s.at);
    Ok(Trace { plan, expect })
}
