//! What each trace command does. The list with arguments is in the module docs
//! of [`super`].

use std::collections::BTreeSet;

use bytes::Bytes;
use proto_core::raft::{
    ConfChange, Config, Entry, Event, HardState, LogIndex, Membership, MessageBody, NodeId,
    Payload, ReadMode, Restored, Term,
};

use super::env::Env;
use super::render;
use crate::datadriven::{Command, CommandError};
use crate::node::{Disk, Node};

/// Runs one command against the environment, writing its output to `env.out`.
pub fn run(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    match cmd.name.as_str() {
        "add-nodes" => add_nodes(env, cmd),
        "campaign" => simple(env, cmd, Event::Campaign),
        "unquiesce" => simple(env, cmd, Event::Unquiesce),
        "tick" => tick(env, cmd),
        "tick-election" => tick_election(env, cmd),
        "propose" => propose(env, cmd),
        "propose-conf-change" => propose_conf_change(env, cmd),
        "transfer-leader" => {
            let to = cmd.pos_id(1)?;
            simple(env, cmd, Event::TransferLeader { to })
        }
        "read-index" => {
            let ctx = cmd.pos_num(1, "ctx")?;
            simple(env, cmd, Event::ReadIndex { ctx })
        }
        "unreachable" => {
            let peer = cmd.pos_id(1)?;
            simple(env, cmd, Event::Unreachable { peer })
        }
        "persist" => persist(env, cmd),
        "deliver" => deliver(env, cmd),
        "stabilize" => {
            cmd.only_args(&[])?;
            let ids = pos_ids(env, cmd, 0)?;
            env.stabilize(&ids);
            Ok(())
        }
        "crash" => crash(env, cmd),
        "restore" => restore(env, cmd),
        "compact" => compact(env, cmd),
        "drop-compacted" => drop_compacted(env, cmd),
        "hold-loads" => {
            cmd.only_args(&[])?;
            let id = cmd.pos_id(0)?;
            env.check_node(cmd.line, id)?;
            if let Some(node) = env.nodes.get_mut(&id) {
                node.hold_loads = true;
            }
            Ok(())
        }
        "answer-loads" => {
            cmd.only_args(&[])?;
            let id = cmd.pos_id(0)?;
            env.check_node(cmd.line, id)?;
            if let Some(node) = env.nodes.get_mut(&id) {
                node.answer_held_loads();
            }
            env.flush(id, 0);
            Ok(())
        }
        "partition" => partition(env, cmd),
        "isolate" => {
            let id = cmd.pos_id(0)?;
            env.check_node(cmd.line, id)?;
            let rest = env.nodes.keys().copied().filter(|&n| n != id).collect();
            env.partition = vec![BTreeSet::from([id]), rest];
            render::partition(env);
            Ok(())
        }
        "heal" => {
            env.partition.clear();
            render::partition(env);
            Ok(())
        }
        "status" => {
            let id = cmd.pos_id(0)?;
            env.check_node(cmd.line, id)?;
            render::status(env, id);
            Ok(())
        }
        "raft-log" => {
            let id = cmd.pos_id(0)?;
            env.check_node(cmd.line, id)?;
            render::raft_log(env, id);
            Ok(())
        }
        "raft-state" => {
            render::raft_state(env);
            Ok(())
        }
        "state-machine" => {
            let id = cmd.pos_id(0)?;
            env.check_node(cmd.line, id)?;
            render::state_machine(env, id);
            Ok(())
        }
        "network" => {
            render::network(env);
            Ok(())
        }
        other => Err(cmd.error(format!("unknown command {other}"))),
    }
}

/// Node ids from positional arguments starting at `from`.
fn pos_ids(env: &Env, cmd: &Command, from: usize) -> Result<BTreeSet<NodeId>, CommandError> {
    let mut ids = BTreeSet::new();
    for i in from..cmd.pos.len() {
        let id = cmd.pos_id(i)?;
        env.check_node(cmd.line, id)?;
        ids.insert(id);
    }
    Ok(ids)
}

/// Steps the node named first with one event and prints what it did.
fn simple(env: &mut Env, cmd: &Command, event: Event) -> Result<(), CommandError> {
    cmd.only_args(&[])?;
    let id = cmd.pos_id(0)?;
    env.check_node(cmd.line, id)?;
    let _ = env.step(id, event, 0);
    Ok(())
}

fn add_nodes(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[
        "voters",
        "learners",
        "prevote",
        "checkquorum",
        "lease-drift",
        "quiesce",
        "election",
        "heartbeat",
        "max-inflight",
        "max-inflight-bytes",
        "max-msg-bytes",
        "chunk",
        "catchup-lag",
        "load-compacted",
    ])?;
    let n = cmd.pos_num(0, "node count")?;
    let first = env.nodes.keys().next_back().map_or(1, |id| id.0 + 1);
    let new: Vec<NodeId> = (first..first + n).map(NodeId).collect();
    let voters = cmd.ids("voters")?;
    let learners = cmd.ids("learners")?.unwrap_or_default();
    let membership = Membership {
        voters: voters.unwrap_or_else(|| new.iter().copied().collect()),
        learners,
    };
    for &id in &new {
        let mut cfg = Config::new(id);
        cfg.pre_vote = cmd.flag("prevote", cfg.pre_vote)?;
        cfg.check_quorum = cmd.flag("checkquorum", cfg.check_quorum)?;
        cfg.quiesce = cmd.flag("quiesce", cfg.quiesce)?;
        cfg.election_ticks = cmd.num("election", cfg.election_ticks.into())? as u32;
        cfg.heartbeat_ticks = cmd.num("heartbeat", cfg.heartbeat_ticks.into())? as u32;
        cfg.max_inflight_msgs = cmd.num("max-inflight", cfg.max_inflight_msgs as u64)? as usize;
        cfg.max_inflight_bytes =
            cmd.num("max-inflight-bytes", cfg.max_inflight_bytes as u64)? as usize;
        cfg.max_msg_bytes = cmd.num("max-msg-bytes", cfg.max_msg_bytes as u64)? as usize;
        cfg.snapshot_chunk_bytes = cmd.num("chunk", cfg.snapshot_chunk_bytes as u64)? as usize;
        cfg.learner_catchup_lag = cmd.num("catchup-lag", cfg.learner_catchup_lag)?;
        cfg.load_compacted = cmd.flag("load-compacted", cfg.load_compacted)?;
        if let Some(drift) = cmd.value("lease-drift", "a number")? {
            cfg.read_mode = ReadMode::Lease {
                max_clock_drift_ticks: drift,
            };
        }
        let restored = Restored {
            membership: membership.clone(),
            ..Restored::default()
        };
        let mut node =
            Node::new(cfg.clone(), restored).map_err(|e| cmd.error(format!("node {id}: {e}")))?;
        node.recorded = Some(Vec::new());
        env.line(0, render::node_config(&cfg, &membership));
        env.nodes.insert(id, node);
    }
    Ok(())
}

fn tick(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&["n"])?;
    let ids = pos_ids(env, cmd, 0)?;
    if ids.is_empty() {
        return Err(cmd.error("tick wants node ids"));
    }
    let n = cmd.num("n", 1)?;
    let many = ids.len() > 1 || n > 1;
    for i in 1..=n {
        for &id in &ids {
            if !many {
                let _ = env.step(id, Event::Tick, 0);
                continue;
            }
            // A header only for ticks that did something.
            let mark = env.out.len();
            let _ = env.step(id, Event::Tick, 1);
            if env.out.len() > mark {
                env.out.insert_str(mark, &format!("> {id} tick {i}\n"));
            }
        }
    }
    Ok(())
}

/// Ticks until the node campaigns or its role or term changes (a leader steps
/// down), at most two election timeouts (the longest randomized timeout), and
/// prints how many ticks that took.
fn tick_election(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[])?;
    let id = cmd.pos_id(0)?;
    let node = env.node(cmd.line, id)?;
    let limit = 2 * node.cfg.election_ticks;
    let before = (node.raft.role(), node.raft.term());
    let mark = env.out.len();
    for i in 1..=limit {
        let queued = env.network.len();
        let _ = env.step(id, Event::Tick, 0);
        let campaigned = env.network.iter().skip(queued).any(|m| {
            matches!(
                m.body,
                MessageBody::PreVote { .. } | MessageBody::Vote { .. }
            )
        });
        let node = env.node(cmd.line, id)?;
        if campaigned || (node.raft.role(), node.raft.term()) != before {
            env.out.insert_str(mark, &format!("ticked {i} times\n"));
            return Ok(());
        }
    }
    env.line(0, format!("ticked {limit} times, no role change"));
    Ok(())
}

fn propose(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[])?;
    let id = cmd.pos_id(0)?;
    env.check_node(cmd.line, id)?;
    if cmd.pos.len() < 2 {
        return Err(cmd.error("propose wants data"));
    }
    let data = cmd.pos[1..]
        .iter()
        .map(|d| Bytes::from(d.clone()))
        .collect();
    let _ = env.step(id, Event::Propose(data), 0);
    Ok(())
}

fn propose_conf_change(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[])?;
    let id = cmd.pos_id(0)?;
    env.check_node(cmd.line, id)?;
    let target = NodeId(cmd.pos_num(2, "target node")?);
    let cc = match cmd.pos(1, "change")? {
        "add-learner" => ConfChange::AddLearner(target),
        "promote" => ConfChange::PromoteLearner(target),
        "remove" => ConfChange::RemoveNode(target),
        other => return Err(cmd.error(format!("unknown change {other}"))),
    };
    let _ = env.step(id, Event::ProposeConfChange(cc), 0);
    Ok(())
}

fn persist(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&["n"])?;
    let id = cmd.pos_id(0)?;
    env.check_node(cmd.line, id)?;
    let n = cmd.opt_num("n")?;
    if !env.persist(id, n.map(|n| n as usize), 0) {
        env.line(0, "nothing to persist");
    }
    Ok(())
}

/// The message kind as its `Display` names it (`Append`, `Heartbeat`, ...).
fn kind(m: &proto_core::raft::Message) -> String {
    let text = m.to_string();
    text.split_whitespace().nth(1).unwrap_or("").to_string()
}

fn deliver(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&["from", "to", "type", "drop", "n"])?;
    let from = cmd.opt_num("from")?;
    let to = cmd.opt_num("to")?;
    let ty = cmd.arg("type").map(str::to_string);
    let drop = cmd.flag("drop", false)?;
    let mut n = cmd.num("n", u64::MAX)?;
    let mut chosen = Vec::new();
    let mut keep = std::collections::VecDeque::new();
    for m in std::mem::take(&mut env.network) {
        let matches = n > 0
            && from.is_none_or(|f| m.from.0 == f)
            && to.is_none_or(|t| m.to.0 == t)
            && ty.as_ref().is_none_or(|t| *t == kind(&m));
        if matches {
            n -= 1;
            chosen.push(m);
        } else {
            keep.push_back(m);
        }
    }
    env.network = keep;
    if chosen.is_empty() {
        env.line(0, "no messages");
    }
    for m in chosen {
        if drop {
            env.line(0, format!("{m} [dropped]"));
        } else {
            env.deliver(m, 0);
        }
    }
    Ok(())
}

fn crash(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[])?;
    let id = cmd.pos_id(0)?;
    env.check_node(cmd.line, id)?;
    let Some(node) = env.nodes.get_mut(&id) else {
        return Ok(());
    };
    let lost: Vec<u64> = node.unpersisted.iter().map(|w| w.seq).collect();
    node.crash_and_restart();
    if let Some(rec) = node.recorded.as_mut() {
        rec.clear();
    }
    let lost = match lost.as_slice() {
        [] => "no unsynced writes".to_string(),
        [one] => format!("unsynced write seq:{one}"),
        [first, .., last] => format!("unsynced writes seq:{first}..={last}"),
    };
    env.line(0, format!("lost {lost}; restarted"));
    render::status(env, id);
    Ok(())
}

/// Replaces a node's disk with a prepared log and hard state, then restarts it:
/// how traces set up divergent logs (Raft Figures 7 and 8) through the same
/// path a real restart takes. `log=(1,1,4)` lists the term of each entry from
/// index 1; entries carry their `term/index` as data.
fn restore(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&["term", "vote", "commit", "log"])?;
    let id = cmd.pos_id(0)?;
    env.check_node(cmd.line, id)?;
    let terms = terms_list(cmd)?;
    let entries: Vec<Entry> = terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry {
            term: Term(t),
            index: LogIndex(i as u64 + 1),
            payload: Payload::Normal(Bytes::from(format!("{t}/{}", i + 1))),
        })
        .collect();
    let last_term = terms.last().copied().unwrap_or(0);
    let hard_state = HardState {
        term: Term(cmd.num("term", last_term)?),
        vote: cmd.opt_num("vote")?.map(NodeId),
        commit: LogIndex(cmd.num("commit", 0)?),
    };
    let Some(node) = env.nodes.get_mut(&id) else {
        return Ok(());
    };
    node.disk = Disk {
        hard_state,
        snapshot: None,
        entries,
        keep_compacted: node.cfg.load_compacted,
        dropped: None,
    };
    node.unpersisted.clear();
    node.crash_and_restart();
    if let Some(rec) = node.recorded.as_mut() {
        rec.clear();
    }
    render::status(env, id);
    Ok(())
}

fn terms_list(cmd: &Command) -> Result<Vec<u64>, CommandError> {
    let terms = cmd.list("log")?.unwrap_or_default();
    terms.into_iter().map(|s| cmd.parse(s, "a term")).collect()
}

/// Deletes the disk's entries at or below the snapshot, as retention deletes
/// a partition's old segments.
fn drop_compacted(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&["upto"])?;
    let id = cmd.pos_id(0)?;
    env.check_node(cmd.line, id)?;
    let Some(node) = env.nodes.get_mut(&id) else {
        return Ok(());
    };
    let compacted = node
        .disk
        .snapshot
        .as_ref()
        .map_or(LogIndex(0), |s| s.meta.last.index);
    let upto = LogIndex(cmd.num("upto", compacted.0)?);
    if upto > compacted {
        return Err(cmd.error(format!(
            "upto={upto} is past the snapshot at {compacted}: only compacted entries may go"
        )));
    }
    node.disk.drop_front(upto);
    env.line(0, format!("dropped stored entries up to {upto}"));
    Ok(())
}

fn compact(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[])?;
    let id = cmd.pos_id(0)?;
    env.check_node(cmd.line, id)?;
    let Some(node) = env.nodes.get_mut(&id) else {
        return Ok(());
    };
    let index = node.raft.log().applied();
    match node.compact() {
        Ok(()) => env.line(0, format!("compacted to {index}")),
        Err(e) => env.line(0, format!("error: {e}")),
    }
    env.flush(id, 0);
    Ok(())
}

fn partition(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[])?;
    let mut groups = vec![BTreeSet::new()];
    for p in &cmd.pos {
        if p == "/" {
            groups.push(BTreeSet::new());
            continue;
        }
        let id = NodeId(cmd.parse(p, "a node id")?);
        env.check_node(cmd.line, id)?;
        if let Some(g) = groups.last_mut() {
            g.insert(id);
        }
    }
    groups.retain(|g| !g.is_empty());
    if groups.len() < 2 {
        return Err(cmd.error("partition wants groups separated by /"));
    }
    env.partition = groups;
    render::partition(env);
    Ok(())
}
