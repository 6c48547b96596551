//! What each group trace command does. The list with arguments is in the
//! module docs of [`super`].

use bytes::Bytes;
use proto_core::group::{
    CommitPartition, CommitTopic, Coordinator, DeleteGroupsRequest, DescribeGroupsRequest, Event,
    FetchGroup, FetchTopic, HeartbeatRequest, JoinProtocol, JoinRequest, LeaveRequest,
    LeavingMember, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetDeleteTopic,
    OffsetFetchRequest, Record, SyncAssignment, SyncRequest,
};

use super::env::{Client, Env};
use super::render;
use crate::datadriven::{Command, CommandError};

/// A consumer-protocol subscription (version 0) to `topics`, no user data.
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

/// Runs one command, writing its output to `env.out`.
pub fn run(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    match cmd.name.as_str() {
        "config" => config(env, cmd),
        "join" => join(env, cmd),
        "sync" => sync(env, cmd),
        "heartbeat" => heartbeat(env, cmd),
        "leave" => leave(env, cmd),
        "commit" => commit(env, cmd),
        "fetch" => fetch(env, cmd),
        "describe" => {
            cmd.only_args(&[])?;
            let reply = env.reply("admin");
            let groups = cmd.pos.clone();
            env.step(
                Event::DescribeGroups(DescribeGroupsRequest { reply, groups }),
                0,
            );
            Ok(())
        }
        "list" => {
            cmd.only_args(&["states", "types"])?;
            let reply = env.reply("admin");
            let req = ListGroupsRequest {
                reply,
                states_filter: list_arg(cmd, "states"),
                types_filter: list_arg(cmd, "types"),
            };
            env.step(Event::ListGroups(req), 0);
            Ok(())
        }
        "delete" => {
            cmd.only_args(&[])?;
            let reply = env.reply("admin");
            let groups_names = cmd.pos.iter().map(|g| group_name(g)).collect();
            env.step(
                Event::DeleteGroups(DeleteGroupsRequest {
                    reply,
                    groups_names,
                }),
                0,
            );
            Ok(())
        }
        "offset-delete" => offset_delete(env, cmd),
        "tick" => {
            cmd.only_args(&[])?;
            env.now += cmd.pos_num(0, "milliseconds")?;
            let now = env.now;
            env.line(0, format!("now={now}"));
            env.step(Event::Tick, 0);
            Ok(())
        }
        "persist" | "fail-persist" => {
            let ok = cmd.name == "persist";
            // Only a failure can overtake: successes follow the log.
            let known: &[&str] = if ok { &["n"] } else { &["n", "token"] };
            cmd.only_args(known)?;
            if let Some(token) = cmd.value("token", "a token")? {
                if !env.fail(token) {
                    return Err(cmd.error(format!("no write {token} is pending")));
                }
                return Ok(());
            }
            let n = cmd.num("n", env.pending.len() as u64)? as usize;
            if env.pending.is_empty() {
                env.line(0, "(no writes pending)");
            }
            env.complete(n, ok);
            Ok(())
        }
        "restart" => {
            cmd.only_args(&["seed"])?;
            let seed = cmd.num("seed", env.cfg.seed + 1)?;
            env.restart(seed);
            Ok(())
        }
        "log" => {
            cmd.only_args(&[])?;
            for (key, value) in env.log.clone() {
                let text = match Record::decode(&key, value.as_deref()) {
                    Ok(r) => render::record(env, &r),
                    Err(e) => format!("!! undecodable: {e}"),
                };
                env.line(0, text);
            }
            Ok(())
        }
        other => Err(cmd.error(format!("unknown command {other}"))),
    }
}

fn config(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[
        "seed",
        "delay",
        "retention",
        "retention-check",
        "max-size",
        "max-metadata",
        "min-session",
        "max-session",
    ])?;
    if !env.log.is_empty() || !env.pending.is_empty() || !env.clients.is_empty() {
        return Err(cmd.error("config must come first"));
    }
    let d = Env::default_config();
    let cfg = proto_core::group::CoordinatorConfig {
        seed: cmd.num("seed", d.seed)?,
        initial_rebalance_delay_ms: cmd.num("delay", d.initial_rebalance_delay_ms)?,
        offsets_retention_ms: cmd.num("retention", d.offsets_retention_ms)?,
        offsets_retention_check_interval_ms: cmd
            .num("retention-check", d.offsets_retention_check_interval_ms)?,
        max_group_size: cmd.num("max-size", d.max_group_size as u64)? as usize,
        max_metadata_bytes: cmd.num("max-metadata", d.max_metadata_bytes as u64)? as usize,
        min_session_timeout_ms: cmd.num("min-session", d.min_session_timeout_ms as u64)? as i32,
        max_session_timeout_ms: cmd.num("max-session", d.max_session_timeout_ms as u64)? as i32,
    };
    env.line(0, format!("{cfg:?}"));
    env.coordinator = Coordinator::new(cfg.clone());
    env.cfg = cfg;
    Ok(())
}

/// A group id as a trace writes it: `""` is the empty one.
fn group_name(s: &str) -> String {
    if s == "\"\"" {
        String::new()
    } else {
        s.to_string()
    }
}

/// `key=a,b,c` as a list; empty if not given.
fn list_arg(cmd: &Command, key: &str) -> Vec<String> {
    cmd.arg(key)
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `topic-N` as (topic, N).
fn partition(cmd: &Command, s: &str) -> Result<(String, i32), CommandError> {
    s.rsplit_once('-')
        .and_then(|(t, p)| Some((t.to_string(), p.parse().ok()?)))
        .ok_or_else(|| cmd.error(format!("{s} is not topic-partition")))
}

/// The client named by positional `i`, created on first use.
fn client(env: &mut Env, cmd: &Command, i: usize) -> Result<(String, Client), CommandError> {
    let name = cmd.pos(i, "client")?.to_string();
    let c = env.clients.entry(name.clone()).or_insert_with(|| Client {
        generation: -1,
        ..Client::default()
    });
    Ok((name, c.clone()))
}

fn member_arg(env: &Env, cmd: &Command, default: &str) -> String {
    cmd.arg("member")
        .map(|m| env.member_named(m))
        .unwrap_or_else(|| default.to_string())
}

fn generation_arg(cmd: &Command, default: i32) -> Result<i32, CommandError> {
    Ok(cmd.value("gen", "a generation")?.unwrap_or(default))
}

fn instance_arg(cmd: &Command, default: Option<String>) -> Option<String> {
    match cmd.arg("instance") {
        None => default,
        Some("none") => None,
        Some(i) => Some(i.to_string()),
    }
}

fn join(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[
        "group",
        "session",
        "rebalance",
        "type",
        "protocols",
        "topics",
        "metadata",
        "instance",
        "member",
        "require-known",
        "skip",
    ])?;
    let (name, mut c) = client(env, cmd, 0)?;
    match cmd.arg("group") {
        Some(g) => c.group = group_name(g),
        None if !env.clients.get(&name).is_some_and(|c| c.joined_once) => {
            return Err(cmd.error("the client's first join needs group="));
        }
        None => {}
    }
    c.joined_once = true;
    c.instance = instance_arg(cmd, c.instance.clone());
    let topics = cmd.arg("topics").unwrap_or("t");
    let topics: Vec<&str> = topics.split(',').filter(|s| !s.is_empty()).collect();
    let metadata = match cmd.arg("metadata") {
        Some(text) => Bytes::from(text.to_string()),
        None => subscription(&topics),
    };
    let protocols = cmd
        .arg("protocols")
        .unwrap_or("range")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|p| JoinProtocol {
            name: p.to_string(),
            metadata: metadata.clone(),
        })
        .collect();
    let member_id = member_arg(env, cmd, &c.member_id);
    env.clients.insert(name.clone(), c.clone());
    let req = JoinRequest {
        reply: env.reply(&name),
        group_id: c.group.clone(),
        session_timeout_ms: cmd.num("session", 10_000)? as i32,
        rebalance_timeout_ms: cmd.num("rebalance", 30_000)? as i32,
        member_id,
        group_instance_id: c.instance.clone(),
        protocol_type: cmd.arg("type").unwrap_or("consumer").to_string(),
        protocols,
        reason: None,
        client_id: name.clone(),
        client_host: "/10.0.0.1".to_string(),
        require_known_member_id: cmd.flag("require-known", true)?,
        supports_skip_assignment: cmd.flag("skip", true)?,
    };
    env.step(Event::Join(req), 0);
    Ok(())
}

fn sync(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&["gen", "member", "assign", "type", "protocol", "instance"])?;
    let (name, c) = client(env, cmd, 0)?;
    let mut assignments = Vec::new();
    for entry in cmd.arg("assign").unwrap_or_default().split(';') {
        if entry.is_empty() {
            continue;
        }
        let (who, what) = entry
            .split_once(':')
            .ok_or_else(|| cmd.error(format!("{entry} is not client:assignment")))?;
        let member_id = match env.clients.get(who) {
            Some(other) => other.member_id.clone(),
            None => env.member_named(who),
        };
        assignments.push(SyncAssignment {
            member_id,
            assignment: Bytes::from(what.to_string()),
        });
    }
    let req = SyncRequest {
        reply: env.reply(&name),
        group_id: c.group.clone(),
        generation_id: generation_arg(cmd, c.generation)?,
        member_id: member_arg(env, cmd, &c.member_id),
        group_instance_id: instance_arg(cmd, c.instance.clone()),
        protocol_type: cmd.arg("type").map(str::to_string),
        protocol_name: cmd.arg("protocol").map(str::to_string),
        assignments,
    };
    env.step(Event::Sync(req), 0);
    Ok(())
}

fn heartbeat(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&["gen", "member", "instance"])?;
    let (name, c) = client(env, cmd, 0)?;
    let req = HeartbeatRequest {
        reply: env.reply(&name),
        group_id: c.group.clone(),
        generation_id: generation_arg(cmd, c.generation)?,
        member_id: member_arg(env, cmd, &c.member_id),
        group_instance_id: instance_arg(cmd, c.instance.clone()),
    };
    env.step(Event::Heartbeat(req), 0);
    Ok(())
}

fn leave(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&["by-instance", "member", "instance"])?;
    let by_instance = cmd.flag("by-instance", false)?;
    let mut group = String::new();
    let mut members = Vec::new();
    for i in 0..cmd.pos.len() {
        let (_, c) = client(env, cmd, i)?;
        if i == 0 {
            group = c.group.clone();
        }
        let member_id = if by_instance {
            String::new()
        } else {
            member_arg(env, cmd, &c.member_id)
        };
        members.push(LeavingMember {
            member_id,
            group_instance_id: instance_arg(cmd, c.instance.clone()),
            reason: Some("the trace says so".to_string()),
        });
    }
    let who = cmd.pos(0, "client")?.to_string();
    let req = LeaveRequest {
        reply: env.reply(&who),
        group_id: group,
        members,
    };
    env.step(Event::Leave(req), 0);
    Ok(())
}

fn commit(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    let known = ["group", "gen", "member", "metadata", "epoch", "instance"];
    let epoch = cmd.opt_num("epoch")?.map_or(-1, |e| e as i32);
    let mut topics: Vec<CommitTopic> = Vec::new();
    for (k, v) in &cmd.args {
        if known.contains(&k.as_str()) {
            continue;
        }
        let (topic, p) = partition(cmd, k)?;
        let offset = v
            .parse()
            .map_err(|_| cmd.error(format!("{k}={v}: not an offset")))?;
        let entry = CommitPartition {
            partition_index: p,
            committed_offset: offset,
            committed_leader_epoch: epoch,
            committed_metadata: cmd.arg("metadata").map(str::to_string),
        };
        match topics.iter_mut().find(|t| t.name == topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(CommitTopic {
                name: topic,
                partitions: vec![entry],
            }),
        }
    }
    let (who, group, generation, member_id, instance) = match cmd.pos_opt(0) {
        Some(_) => {
            let (name, c) = client(env, cmd, 0)?;
            let generation = generation_arg(cmd, c.generation)?;
            let member = member_arg(env, cmd, &c.member_id);
            let instance = instance_arg(cmd, c.instance.clone());
            (name, c.group.clone(), generation, member, instance)
        }
        None => {
            let group = cmd
                .arg("group")
                .ok_or_else(|| cmd.error("a commit without a client needs group="))?;
            let generation = generation_arg(cmd, -1)?;
            let member = member_arg(env, cmd, "");
            (
                "admin".to_string(),
                group.to_string(),
                generation,
                member,
                instance_arg(cmd, None),
            )
        }
    };
    let req = OffsetCommitRequest {
        reply: env.reply(&who),
        group_id: group,
        generation_id: generation,
        member_id,
        group_instance_id: instance,
        topics,
    };
    env.step(Event::OffsetCommit(req), 0);
    Ok(())
}

fn fetch(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&["partitions", "stable"])?;
    let topics = match cmd.arg("partitions") {
        None => None,
        Some(list) => {
            let mut topics: Vec<FetchTopic> = Vec::new();
            for s in list.split(',').filter(|s| !s.is_empty()) {
                let (topic, p) = partition(cmd, s)?;
                match topics.iter_mut().find(|t| t.name == topic) {
                    Some(t) => t.partition_indexes.push(p),
                    None => topics.push(FetchTopic {
                        name: topic,
                        partition_indexes: vec![p],
                    }),
                }
            }
            Some(topics)
        }
    };
    let groups = cmd
        .pos
        .iter()
        .map(|g| FetchGroup {
            group_id: group_name(g),
            topics: topics.clone(),
        })
        .collect();
    let req = OffsetFetchRequest {
        reply: env.reply("admin"),
        groups,
        require_stable: cmd.flag("stable", false)?,
    };
    env.step(Event::OffsetFetch(req), 0);
    Ok(())
}

fn offset_delete(env: &mut Env, cmd: &Command) -> Result<(), CommandError> {
    cmd.only_args(&[])?;
    let group = group_name(cmd.pos(0, "group")?);
    let mut topics: Vec<OffsetDeleteTopic> = Vec::new();
    for s in &cmd.pos[1..] {
        let (topic, p) = partition(cmd, s)?;
        match topics.iter_mut().find(|t| t.name == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(OffsetDeleteTopic {
                name: topic,
                partitions: vec![p],
            }),
        }
    }
    let req = OffsetDeleteRequest {
        reply: env.reply("admin"),
        group_id: group,
        topics,
    };
    env.step(Event::OffsetDelete(req), 0);
    Ok(())
}
