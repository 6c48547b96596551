//! quickcheck properties of the group coordinator. The generated, shrinkable
//! value is a schedule of what three clients do (join, sync, heartbeat, leave,
//! commit, restart without their member id), standalone commits, time passing
//! and writes completing (in the order they were issued, as a log commits) or
//! failing (any write in flight, also ahead of older ones, as a broker
//! refusing a proposal does). Client c2 is static (instance "i2").
//!
//! Checked on every schedule: (a) within a generation, every member handed
//! an assignment gets its part of one leader assignment, so no partition goes
//! to two members; (b) committed offsets change only when a commit that was
//! valid when it arrived (current generation, or standalone on an empty
//! group) is written; (c) the same schedule gives the same actions; (d) a
//! fresh coordinator replaying the written records answers OffsetFetch the
//! same and has the same generation; (e) every request is answered exactly
//! once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use proto_core::group::{
    errors, Action, CommitPartition, CommitTopic, Coordinator, CoordinatorConfig,
    DescribeGroupsRequest, Event, FetchGroup, GroupState, HeartbeatRequest, JoinProtocol,
    JoinRequest, LeaveRequest, LeavingMember, OffsetCommitRequest, OffsetFetchRequest, Record,
    ReplyId, Response, SyncAssignment, SyncRequest,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const GROUP: &str = "g";
const TOPIC: &str = "t";
const PARTITIONS: u8 = 4;
const CLIENTS: usize = 3;
const STATIC_CLIENT: usize = 2;

/// One scheduling decision; indexes pick modulo what exists, so every
/// schedule is meaningful and shrinking keeps it so.
#[derive(Clone, Debug)]
enum Op {
    Join(u8),
    /// A sync; a client that leads assigns the partitions round-robin from
    /// this rotation, so leaders of one generation may disagree.
    Sync(u8, u8),
    Heartbeat(u8),
    Leave(u8),
    Commit(u8, u8, u8),
    StandaloneCommit(u8, u8),
    /// The client restarts: it joins next without its member id.
    Forget(u8),
    /// Seconds pass, then a tick.
    Tick(u8),
    /// The oldest writes complete.
    Persist(u8),
    /// A write in flight fails, not necessarily the oldest.
    Fail(u8),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let a = u8::arbitrary(g);
        let b = u8::arbitrary(g);
        let c = u8::arbitrary(g);
        match u8::arbitrary(g) % 26 {
            0..=4 => Op::Join(a),
            5..=8 => Op::Sync(a, b),
            9..=11 => Op::Heartbeat(a),
            12 => Op::Leave(a),
            13..=15 => Op::Commit(a, b, c),
            16 => Op::StandaloneCommit(a, b),
            17 => Op::Forget(a),
            18..=20 => Op::Tick(a),
            21..=24 => Op::Persist(a % 3 + 1),
            _ => Op::Fail(a),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Op>> {
        match *self {
            Op::Tick(n) if n > 0 => Box::new(std::iter::once(Op::Tick(n / 2))),
            _ => Box::new(std::iter::empty()),
        }
    }
}

/// What a client remembers from its answers.
#[derive(Clone, Debug, Default)]
struct Client {
    member_id: String,
    generation: i32,
    leader: bool,
    /// The members of its generation (with instance ids), if it leads.
    members: Vec<(String, Option<String>)>,
}

/// What a request was, to judge its answer.
#[derive(Clone, Debug)]
enum Asked {
    Join(usize),
    Sync {
        client: usize,
        logical: String,
        generation: i32,
    },
    Heartbeat(usize),
    Leave,
    Commit,
    Query,
}

/// Counts that show a schedule did something (for the vacuity test).
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    stable: usize,
    assignments_handed: usize,
    commits_written: usize,
    standalone_written: usize,
    static_rejoins: usize,
    failed_writes: usize,
    /// Failures of a write while an older one was still in flight.
    failed_ahead: usize,
}

struct World {
    c: Coordinator,
    now: u64,
    next_reply: u64,
    clients: Vec<Client>,
    asked: BTreeMap<ReplyId, Asked>,
    /// Writes in flight, oldest first, and the commit each one carries.
    pending: VecDeque<(u64, Vec<Record>)>,
    commit_writes: BTreeMap<u64, ReplyId>,
    /// Every commit request, kept after its answer.
    commits: BTreeMap<ReplyId, (Vec<(i32, i64)>, bool)>,
    /// The offsets partition.
    log: Vec<Record>,
    /// Failed writes of a group record for GROUP issued after the last one
    /// written: the group in memory may be ahead of the log.
    failed_group_writes: BTreeSet<u64>,
    /// OffsetFetch's view of GROUP after the last step.
    committed: BTreeMap<i32, i64>,
    /// Per generation: the leaders' assignments, and what members were handed
    /// (by logical member: instance id or member id).
    offered: BTreeMap<i32, Vec<BTreeMap<String, Bytes>>>,
    handed: BTreeMap<i32, BTreeMap<String, Bytes>>,
    history: Vec<String>,
    seen: Seen,
}

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        ..CoordinatorConfig::kafka_defaults(7)
    }
}

fn logical(member_id: &str, instance: Option<&str>) -> String {
    instance.unwrap_or(member_id).to_string()
}

fn instance(client: usize) -> Option<String> {
    (client == STATIC_CLIENT).then(|| "i2".to_string())
}

/// An assignment's partitions (one byte each).
fn partitions(assignment: &[u8]) -> Vec<u8> {
    assignment.to_vec()
}

impl World {
    fn new() -> World {
        World {
            c: Coordinator::new(config()),
            now: 0,
            next_reply: 0,
            clients: vec![Client::default(); CLIENTS],
            asked: BTreeMap::new(),
            pending: VecDeque::new(),
            commit_writes: BTreeMap::new(),
            commits: BTreeMap::new(),
            log: Vec::new(),
            failed_group_writes: BTreeSet::new(),
            committed: BTreeMap::new(),
            offered: BTreeMap::new(),
            handed: BTreeMap::new(),
            history: Vec::new(),
            seen: Seen::default(),
        }
    }

    fn ask(&mut self, what: Asked) -> ReplyId {
        self.next_reply += 1;
        let reply = ReplyId(self.next_reply);
        self.asked.insert(reply, what);
        reply
    }

    /// Steps one event and checks everything it caused.
    fn step(&mut self, event: Event) -> Result<Vec<Action>, String> {
        let completing = match &event {
            Event::Persisted { token } => Some((*token, true)),
            Event::PersistFailed { token } => Some((*token, false)),
            _ => None,
        };
        if let Some((token, ok)) = completing {
            if let Some(i) = self.pending.iter().position(|(t, _)| *t == token) {
                if let Some((_, records)) = self.pending.remove(i) {
                    if records.iter().any(|r| {
                        r.group() == GROUP
                            && matches!(
                                r,
                                Record::GroupMetadata { .. } | Record::GroupTombstone { .. }
                            )
                    }) {
                        if ok {
                            self.failed_group_writes.retain(|&t| t > token);
                        } else {
                            self.failed_group_writes.insert(token);
                        }
                    }
                    if ok {
                        self.log.extend(records);
                    } else {
                        self.seen.failed_writes += 1;
                    }
                }
            }
        }
        self.history.push(format!("{} {event:?}", self.now));
        self.c.step(self.now, event);
        let actions = self.c.take_actions();
        for a in &actions {
            self.history.push(format!("  {a:?}"));
            match a {
                Action::Persist { token, records } => {
                    self.pending.push_back((*token, records.clone()));
                }
                Action::Respond { reply, response } => {
                    let Some(asked) = self.asked.remove(reply) else {
                        return Err(format!(
                            "(e) {reply:?} answered twice or never asked: {response:?}"
                        ));
                    };
                    self.learn(asked, response)?;
                }
            }
        }
        if self.c.group_state(GROUP) == Some(GroupState::Stable) {
            self.seen.stable += 1;
        }
        self.check_offsets(completing, &actions)?;
        Ok(actions)
    }

    fn learn(&mut self, asked: Asked, response: &Response) -> Result<(), String> {
        match (asked, response) {
            (Asked::Join(i), Response::Join(j)) => {
                let c = &mut self.clients[i];
                match j.error_code {
                    errors::NONE => {
                        c.member_id = j.member_id.clone();
                        c.generation = j.generation_id;
                        c.leader = j.leader == j.member_id;
                        c.members = j
                            .members
                            .iter()
                            .map(|m| (m.member_id.clone(), m.group_instance_id.clone()))
                            .collect();
                    }
                    errors::MEMBER_ID_REQUIRED => c.member_id = j.member_id.clone(),
                    errors::UNKNOWN_MEMBER_ID | errors::FENCED_INSTANCE_ID => {
                        *c = Client::default();
                    }
                    _ => {}
                }
            }
            (
                Asked::Sync {
                    client,
                    logical,
                    generation,
                },
                Response::Sync(s),
            ) => match s.error_code {
                errors::NONE => {
                    self.seen.assignments_handed += 1;
                    self.handed
                        .entry(generation)
                        .or_default()
                        .insert(logical, s.assignment.clone());
                    self.check_assignments(generation)?;
                }
                errors::UNKNOWN_MEMBER_ID | errors::FENCED_INSTANCE_ID => {
                    self.clients[client] = Client::default();
                }
                _ => {}
            },
            (Asked::Heartbeat(i), Response::Heartbeat(h)) => {
                if matches!(
                    h.error_code,
                    errors::UNKNOWN_MEMBER_ID | errors::FENCED_INSTANCE_ID
                ) {
                    self.clients[i] = Client::default();
                }
            }
            (Asked::Leave, Response::Leave(_))
            | (Asked::Commit, Response::OffsetCommit(_))
            | (Asked::Query, _) => {}
            (asked, response) => return Err(format!("{asked:?} answered with {response:?}")),
        }
        Ok(())
    }

    /// (a): what members of `generation` were handed is one leader's
    /// assignment, so no partition is handed twice.
    fn check_assignments(&self, generation: i32) -> Result<(), String> {
        let handed = &self.handed[&generation];
        let mut owners: BTreeMap<u8, &str> = BTreeMap::new();
        for (member, assignment) in handed {
            for p in partitions(assignment) {
                if let Some(other) = owners.insert(p, member) {
                    return Err(format!(
                        "(a) generation {generation}: partition {p} handed to {other} and {member}"
                    ));
                }
            }
        }
        let offers = self
            .offered
            .get(&generation)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let consistent = offers.iter().any(|offer| {
            handed
                .iter()
                .all(|(m, a)| offer.get(m).cloned().unwrap_or_default() == *a)
        });
        if !consistent {
            return Err(format!(
                "(a) generation {generation}: handed {handed:?} is none of the leaders' {offers:?}"
            ));
        }
        Ok(())
    }

    fn fetch(&mut self) -> Result<BTreeMap<i32, i64>, String> {
        let reply = self.ask(Asked::Query);
        let req = OffsetFetchRequest {
            reply,
            groups: vec![FetchGroup {
                group_id: GROUP.to_string(),
                topics: None,
            }],
            require_stable: false,
        };
        self.c.step(self.now, Event::OffsetFetch(req));
        self.asked.remove(&reply);
        match self.c.take_actions().as_slice() {
            [Action::Respond {
                response: Response::OffsetFetch(f),
                ..
            }] => Ok(f.groups[0]
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.committed_offset))
                })
                .collect()),
            other => Err(format!("a fetch answered {other:?}")),
        }
    }

    /// (b): an offset changed only as a valid commit's write completed, to
    /// what it committed.
    fn check_offsets(
        &mut self,
        completing: Option<(u64, bool)>,
        actions: &[Action],
    ) -> Result<(), String> {
        let now = self.fetch()?;
        let before = std::mem::replace(&mut self.committed, now.clone());
        let keys: BTreeSet<i32> = before.keys().chain(now.keys()).copied().collect();
        for p in keys {
            let (old, new) = (before.get(&p), now.get(&p));
            if old == new {
                continue;
            }
            let commit = completing
                .filter(|&(_, ok)| ok)
                .and_then(|(token, _)| self.commit_writes.get(&token))
                .and_then(|reply| {
                    actions.iter().find_map(|a| match a {
                        Action::Respond {
                            reply: r,
                            response: Response::OffsetCommit(c),
                        } if r == reply => Some(c),
                        _ => None,
                    })
                });
            let Some(response) = commit else {
                return Err(format!(
                    "(b) partition {p} changed {old:?} -> {new:?} without a commit written"
                ));
            };
            let accepted = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .any(|r| r.partition_index == p && r.error_code == errors::NONE);
            let (valid, committed) = match self.commit_request(completing) {
                Some((partitions, valid)) => (
                    *valid,
                    partitions
                        .iter()
                        .rev()
                        .find(|(q, _)| *q == p)
                        .map(|(_, o)| *o),
                ),
                None => (false, None),
            };
            if !accepted || !valid || committed != new.copied() {
                return Err(format!(
                    "(b) partition {p} changed {old:?} -> {new:?}: accepted={accepted} valid={valid} committed={committed:?}"
                ));
            }
        }
        Ok(())
    }

    fn commit_request(&self, completing: Option<(u64, bool)>) -> Option<&(Vec<(i32, i64)>, bool)> {
        let (token, _) = completing?;
        self.commits.get(self.commit_writes.get(&token)?)
    }

    /// Whether `member_id` of generation `generation` may commit now, judged
    /// from outside: the group's state, generation and members.
    fn may_commit(&mut self, member_id: &str, generation: i32) -> Result<bool, String> {
        let state = self.c.group_state(GROUP);
        if member_id.is_empty() && generation < 0 {
            return Ok(matches!(state, None | Some(GroupState::Empty)));
        }
        let reply = self.ask(Asked::Query);
        let req = DescribeGroupsRequest {
            reply,
            groups: vec![GROUP.to_string()],
        };
        self.c.step(self.now, Event::DescribeGroups(req));
        self.asked.remove(&reply);
        let members: Vec<String> = match self.c.take_actions().as_slice() {
            [Action::Respond {
                response: Response::DescribeGroups(d),
                ..
            }] => d.groups[0]
                .members
                .iter()
                .map(|m| m.member_id.clone())
                .collect(),
            other => return Err(format!("a describe answered {other:?}")),
        };
        Ok(self.c.generation(GROUP) == Some(generation)
            && matches!(
                state,
                Some(GroupState::Stable | GroupState::PreparingRebalance)
            )
            && members.iter().any(|m| m == member_id))
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Join(a) => {
                let i = usize::from(a) % CLIENTS;
                let reply = self.ask(Asked::Join(i));
                let req = JoinRequest {
                    reply,
                    group_id: GROUP.to_string(),
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 15_000,
                    member_id: self.clients[i].member_id.clone(),
                    group_instance_id: instance(i),
                    protocol_type: "consumer".to_string(),
                    protocols: vec![JoinProtocol {
                        name: "range".to_string(),
                        metadata: Bytes::from_static(b"subscription"),
                    }],
                    reason: None,
                    client_id: format!("c{i}"),
                    client_host: "/10.0.0.1".to_string(),
                    require_known_member_id: true,
                    supports_skip_assignment: true,
                };
                if i == STATIC_CLIENT && req.member_id.is_empty() {
                    self.seen.static_rejoins += 1;
                }
                self.step(Event::Join(req))?;
            }
            Op::Sync(a, rotation) => {
                let i = usize::from(a) % CLIENTS;
                let c = self.clients[i].clone();
                let mut assignments = Vec::new();
                if c.leader && !c.members.is_empty() {
                    let n = c.members.len();
                    let mut offer = BTreeMap::new();
                    for (k, (member, inst)) in c.members.iter().enumerate() {
                        let mine: Vec<u8> = (0..PARTITIONS)
                            .filter(|p| (usize::from(*p) + usize::from(rotation)) % n == k)
                            .collect();
                        offer.insert(logical(member, inst.as_deref()), Bytes::from(mine.clone()));
                        assignments.push(SyncAssignment {
                            member_id: member.clone(),
                            assignment: Bytes::from(mine),
                        });
                    }
                    self.offered.entry(c.generation).or_default().push(offer);
                }
                let reply = self.ask(Asked::Sync {
                    client: i,
                    logical: logical(&c.member_id, instance(i).as_deref()),
                    generation: c.generation,
                });
                let req = SyncRequest {
                    reply,
                    group_id: GROUP.to_string(),
                    generation_id: c.generation,
                    member_id: c.member_id.clone(),
                    group_instance_id: instance(i),
                    protocol_type: Some("consumer".to_string()),
                    protocol_name: Some("range".to_string()),
                    assignments,
                };
                self.step(Event::Sync(req))?;
            }
            Op::Heartbeat(a) => {
                let i = usize::from(a) % CLIENTS;
                let reply = self.ask(Asked::Heartbeat(i));
                let req = HeartbeatRequest {
                    reply,
                    group_id: GROUP.to_string(),
                    generation_id: self.clients[i].generation,
                    member_id: self.clients[i].member_id.clone(),
                    group_instance_id: instance(i),
                };
                self.step(Event::Heartbeat(req))?;
            }
            Op::Leave(a) => {
                let i = usize::from(a) % CLIENTS;
                let reply = self.ask(Asked::Leave);
                let req = LeaveRequest {
                    reply,
                    group_id: GROUP.to_string(),
                    members: vec![LeavingMember {
                        member_id: self.clients[i].member_id.clone(),
                        group_instance_id: instance(i),
                        reason: None,
                    }],
                };
                self.clients[i] = Client::default();
                self.step(Event::Leave(req))?;
            }
            Op::Commit(a, p, offset) => {
                let i = usize::from(a) % CLIENTS;
                let c = self.clients[i].clone();
                self.commit(c.member_id, c.generation, instance(i), p, offset)?;
            }
            Op::StandaloneCommit(p, offset) => self.commit(String::new(), -1, None, p, offset)?,
            Op::Forget(a) => {
                self.clients[usize::from(a) % CLIENTS] = Client::default();
            }
            Op::Tick(s) => {
                self.now += u64::from(s % 16) * 1000;
                self.step(Event::Tick)?;
            }
            Op::Persist(n) => {
                for _ in 0..n {
                    let Some(&(token, _)) = self.pending.front() else {
                        break;
                    };
                    self.step(Event::Persisted { token })?;
                }
            }
            Op::Fail(a) => {
                if !self.pending.is_empty() {
                    let i = usize::from(a) % self.pending.len();
                    let token = self.pending[i].0;
                    if i > 0 {
                        self.seen.failed_ahead += 1;
                    }
                    self.step(Event::PersistFailed { token })?;
                }
            }
        }
        Ok(())
    }

    fn commit(
        &mut self,
        member_id: String,
        generation: i32,
        group_instance_id: Option<String>,
        p: u8,
        offset: u8,
    ) -> Result<(), String> {
        let partition = i32::from(p % PARTITIONS);
        let offset = i64::from(offset);
        let valid = self.may_commit(&member_id, generation)?;
        let reply = self.ask(Asked::Commit);
        self.commits
            .insert(reply, (vec![(partition, offset)], valid));
        let standalone = member_id.is_empty();
        let req = OffsetCommitRequest {
            reply,
            group_id: GROUP.to_string(),
            generation_id: generation,
            member_id,
            group_instance_id,
            topics: vec![CommitTopic {
                name: TOPIC.to_string(),
                partitions: vec![CommitPartition {
                    partition_index: partition,
                    committed_offset: offset,
                    committed_leader_epoch: -1,
                    committed_metadata: None,
                }],
            }],
        };
        let actions = self.step(Event::OffsetCommit(req))?;
        for a in &actions {
            if let Action::Persist { token, .. } = a {
                self.commit_writes.insert(*token, reply);
                if standalone {
                    self.seen.standalone_written += 1;
                } else {
                    self.seen.commits_written += 1;
                }
            }
        }
        Ok(())
    }

    /// Completes every write in flight.
    fn persist_all(&mut self) -> Result<(), String> {
        while let Some(&(token, _)) = self.pending.front() {
            self.step(Event::Persisted { token })?;
        }
        Ok(())
    }

    /// (d): a coordinator replaying the log agrees on offsets, and on the
    /// generation of a group at rest whose last group record was written.
    fn check_replay(&mut self) -> Result<(), String> {
        let mut fresh = World::new();
        for r in self.log.clone() {
            fresh.c.replay(r);
        }
        fresh.now = self.now;
        let replayed = fresh.fetch()?;
        if replayed != self.committed {
            return Err(format!(
                "(d) replayed offsets {replayed:?}, live {:?}",
                self.committed
            ));
        }
        let at_rest = matches!(
            self.c.group_state(GROUP),
            None | Some(GroupState::Stable | GroupState::Empty)
        );
        let live = self.c.generation(GROUP).unwrap_or(0);
        let again = fresh.c.generation(GROUP).unwrap_or(0);
        if at_rest && self.failed_group_writes.is_empty() && live != again {
            return Err(format!("(d) replayed generation {again}, live {live}"));
        }
        Ok(())
    }

    /// (e): with time and writes, every request gets its answer.
    fn drain(&mut self) -> Result<(), String> {
        for _ in 0..10 {
            self.persist_all()?;
            self.now += 20_000;
            self.step(Event::Tick)?;
        }
        self.persist_all()?;
        if !self.asked.is_empty() {
            return Err(format!("(e) never answered: {:?}", self.asked));
        }
        Ok(())
    }
}

fn run(schedule: &[Op]) -> Result<World, String> {
    let mut w = World::new();
    for op in schedule {
        w.apply(op)?;
    }
    w.persist_all()?;
    w.check_replay()?;
    w.drain()?;
    w.check_replay()?;
    Ok(w)
}

fn quickcheck() -> QuickCheck {
    QuickCheck::new().tests(300).rng(Gen::new(150))
}

#[test]
fn any_schedule_keeps_the_coordinator_sound() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        match run(&schedule) {
            Ok(_) => TestResult::passed(),
            Err(e) => TestResult::error(e),
        }
    }
    quickcheck().quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

#[test]
fn the_same_schedule_gives_the_same_actions() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        match (run(&schedule), run(&schedule)) {
            (Ok(a), Ok(b)) => TestResult::from_bool(a.history == b.history),
            (Err(e), _) | (_, Err(e)) => TestResult::error(e),
        }
    }
    QuickCheck::new()
        .tests(100)
        .rng(Gen::new(150))
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

/// The properties are only worth something if schedules reach the
/// interesting states: stable generations, handed assignments, written
/// commits of both kinds, static rejoins and failed writes.
#[test]
fn generated_schedules_rebalance_commit_and_fail() {
    let mut g = Gen::from_size_and_seed(150, 1);
    let mut total = Seen::default();
    let mut generations = 0;
    for _ in 0..200 {
        let schedule = Vec::<Op>::arbitrary(&mut g);
        let w = run(&schedule).expect("a sound run");
        generations = generations.max(w.c.generation(GROUP).unwrap_or(0));
        total.stable += usize::from(w.seen.stable > 0);
        total.assignments_handed += w.seen.assignments_handed;
        total.commits_written += w.seen.commits_written;
        total.standalone_written += w.seen.standalone_written;
        total.static_rejoins += w.seen.static_rejoins;
        total.failed_writes += w.seen.failed_writes;
        total.failed_ahead += w.seen.failed_ahead;
    }
    assert!(total.stable >= 50, "{total:?}");
    assert!(total.assignments_handed >= 100, "{total:?}");
    assert!(total.commits_written >= 50, "{total:?}");
    assert!(total.standalone_written >= 20, "{total:?}");
    assert!(total.static_rejoins >= 50, "{total:?}");
    assert!(total.failed_writes >= 50, "{total:?}");
    assert!(total.failed_ahead >= 5, "{total:?}");
    assert!(
        generations >= 5,
        "the longest run reached generation {generations}"
    );
}
