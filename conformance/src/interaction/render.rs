//! Stable text forms of node state for the transcript: status, logs, progress.
//! Everything iterates in id or index order, so the same run prints the same bytes.

use proto_core::raft::{
    Config, LogIndex, Membership, NodeId, Progress, ReadMode, ReplicationState,
};

use super::env::Env;

/// One line describing a new node's configuration.
pub fn node_config(cfg: &Config, membership: &Membership) -> String {
    let mut s = format!(
        "{}: {} election={} heartbeat={} prevote={} checkquorum={}",
        cfg.id, membership, cfg.election_ticks, cfg.heartbeat_ticks, cfg.pre_vote, cfg.check_quorum
    );
    if membership.voters.is_empty() && membership.learners.is_empty() {
        s = format!(
            "{}: joining (no membership) election={} heartbeat={}",
            cfg.id, cfg.election_ticks, cfg.heartbeat_ticks
        );
    }
    if let ReadMode::Lease {
        max_clock_drift_ticks,
    } = cfg.read_mode
    {
        s.push_str(&format!(" lease-drift={max_clock_drift_ticks}"));
    }
    if cfg.quiesce {
        s.push_str(" quiesce=true");
    }
    let defaults = Config::new(cfg.id);
    if cfg.max_inflight_msgs != defaults.max_inflight_msgs {
        s.push_str(&format!(" max-inflight={}", cfg.max_inflight_msgs));
    }
    if cfg.max_inflight_bytes != defaults.max_inflight_bytes {
        s.push_str(&format!(" max-inflight-bytes={}", cfg.max_inflight_bytes));
    }
    if cfg.max_msg_bytes != defaults.max_msg_bytes {
        s.push_str(&format!(" max-msg-bytes={}", cfg.max_msg_bytes));
    }
    if cfg.snapshot_chunk_bytes != defaults.snapshot_chunk_bytes {
        s.push_str(&format!(" chunk={}", cfg.snapshot_chunk_bytes));
    }
    if cfg.learner_catchup_lag != defaults.learner_catchup_lag {
        s.push_str(&format!(" catchup-lag={}", cfg.learner_catchup_lag));
    }
    if cfg.load_compacted {
        s.push_str(" load-compacted=true");
    }
    s
}

/// The partition in force, as `1 | 2 3`.
pub fn partition(env: &mut Env) {
    if env.partition.is_empty() {
        env.line(0, "network healed");
        return;
    }
    let groups: Vec<String> = env
        .partition
        .iter()
        .map(|g| {
            g.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    env.line(0, format!("partitioned: {}", groups.join(" | ")));
}

fn progress_line(id: NodeId, p: &Progress) -> String {
    let state = match p.state {
        ReplicationState::Probe { paused: false } => "probe".to_string(),
        ReplicationState::Probe { paused: true } => "probe(paused)".to_string(),
        ReplicationState::Replicate => "replicate".to_string(),
        ReplicationState::Snapshot {
            index,
            acked_offset,
        } => format!("snapshot(index={index} acked={acked_offset})"),
    };
    let mut s = format!(
        "{id}: {state} match={} next={} inflight={} sent-commit={} acked-round={}",
        p.matched,
        p.next,
        p.inflights.len(),
        p.sent_commit,
        p.acked_round
    );
    if let Some(from) = p.loading {
        s.push_str(&format!(" loading-from={from}"));
    }
    if !p.recent_active {
        s.push_str(" inactive");
    }
    s
}

/// A node's role, term, log marks, membership and (on a leader) progress.
pub fn status(env: &mut Env, id: NodeId) {
    let Some(node) = env.nodes.get(&id) else {
        return;
    };
    let r = &node.raft;
    let log = r.log();
    let mut lines = vec![format!(
        "{id}: {} Term:{} Vote:{} Leader:{}",
        r.role(),
        r.term(),
        r.vote().map_or(0, |v| v.0),
        r.leader().map_or(0, |l| l.0)
    )];
    lines.push(format!(
        "log: first={} last={} commit={} persisted={} applied={}",
        log.first_index(),
        log.last_id(),
        log.commit(),
        log.persisted(),
        log.applied()
    ));
    lines.push(format!("membership: {}", r.membership()));
    if let Some(s) = r.snapshot() {
        lines.push(format!(
            "snapshot: {} {} ({} bytes)",
            s.meta.last,
            s.meta.membership,
            s.data.len()
        ));
    }
    if !node.unpersisted.is_empty() {
        let seqs: Vec<String> = node.unpersisted.iter().map(|w| w.seq.to_string()).collect();
        lines.push(format!("unpersisted writes: seq {}", seqs.join(" ")));
    }
    if r.is_quiesced() {
        lines.push("quiesced".to_string());
    }
    if let Some(t) = r.transfer_target() {
        lines.push(format!("transferring leadership to {t}"));
    }
    if !r.progress().is_empty() {
        lines.push("progress:".to_string());
        for (&peer, p) in r.progress() {
            lines.push(format!("  {}", progress_line(peer, p)));
        }
    }
    for l in lines {
        env.line(0, l);
    }
}

/// A node's log as held in memory: the snapshot point, then each entry with
/// markers for commit and durability.
pub fn raft_log(env: &mut Env, id: NodeId) {
    let Some(node) = env.nodes.get(&id) else {
        return;
    };
    let log = node.raft.log();
    let mut lines = Vec::new();
    if log.snapshot_last().index > LogIndex(0) {
        lines.push(format!("snapshot {}", log.snapshot_last()));
    }
    let mut index = log.first_index();
    while let Some(e) = log.entry(index) {
        let mut line = e.to_string();
        if index > log.persisted() {
            line.push_str(" (unpersisted)");
        } else if index > log.commit() {
            line.push_str(" (uncommitted)");
        }
        lines.push(line);
        index = index.next();
    }
    if lines.is_empty() {
        lines.push("log is empty".to_string());
    }
    for l in lines {
        env.line(0, l);
    }
}

/// One line per node: the overview etcd's `raft-state` gives.
pub fn raft_state(env: &mut Env) {
    let lines: Vec<String> = env
        .nodes
        .iter()
        .map(|(&id, node)| {
            let r = &node.raft;
            let log = r.log();
            let mut s = format!(
                "{id}: {} Term:{} Leader:{} Last:{} Commit:{} Persisted:{} Applied:{} {}",
                r.role(),
                r.term(),
                r.leader().map_or(0, |l| l.0),
                log.last_id(),
                log.commit(),
                log.persisted(),
                log.applied(),
                r.membership()
            );
            if r.is_quiesced() {
                s.push_str(" quiesced");
            }
            s
        })
        .collect();
    for l in lines {
        env.line(0, l);
    }
}

/// The application data a node's state machine has applied, in order.
pub fn state_machine(env: &mut Env, id: NodeId) {
    let Some(node) = env.nodes.get(&id) else {
        return;
    };
    let items: Vec<String> = node
        .applied
        .iter()
        .map(|d| format!("{:?}", String::from_utf8_lossy(d)))
        .collect();
    let line = format!("{id} applied: [{}]", items.join(", "));
    env.line(0, line);
}

/// The messages in flight, oldest first.
pub fn network(env: &mut Env) {
    let lines: Vec<String> = env.network.iter().map(|m| m.to_string()).collect();
    if lines.is_empty() {
        env.line(0, "no messages in flight");
    }
    for l in lines {
        env.line(0, l);
    }
}
