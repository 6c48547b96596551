//! The simulated cluster and its event loop.
//!
//! Time is discrete: [`TICK`] units per logical tick. One priority queue, ordered
//! by (time, insertion), holds every pending happening: node ticks (each node at
//! its own offset inside the tick), message deliveries and disk completions.
//! At each tick boundary the nemesis ops due run, then the workload, then the
//! queue drains up to the next boundary. Every node step is followed by the
//! checker, so a violation is caught at the step that caused it. What each
//! nemesis op does to the cluster lives in [`faults`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use bytes::Bytes;
use proto_core::raft::{
    Action, Event, LogIndex, Message, MessageBody, NodeId, Refused, Restored, Role,
};
use rand_chacha::ChaCha8Rng;

use super::checker::{Checker, Violation, ViolationKind};
use super::nemesis::Target;
use super::network::Network;
use super::params::{below, chance, pick, stream, Stream, TICK};
use super::{Failure, Outcome, Plan, Stats};
use crate::node::Node;

mod faults;

use faults::ArmedCrash;

/// A run that takes more steps than this is a message storm: reported, not waited out.
const MAX_STEPS: u64 = 20_000_000;

/// The liveness phase ends in failure after this many times `liveness_ticks`
/// even if the slowest voter is still catching up.
const LIVENESS_CAP_FACTOR: u64 = 20;

/// Full log sweeps run every this many ticks (the per-step checks are incremental).
const SWEEP_EVERY: u64 = 64;

enum Happening {
    Tick(NodeId),
    /// A message, with the incarnation of the sender that sent it.
    Deliver {
        msg: Message,
        sent_by: u64,
    },
    Durable {
        node: NodeId,
        incarnation: u64,
    },
}

struct Queued {
    time: u64,
    seq: u64,
    what: Happening,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Queued) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Queued) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Queued) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// Pending happenings, earliest first, ties in insertion order.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<Queued>>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, time: u64, what: Happening) {
        self.seq += 1;
        self.heap.push(Reverse(Queued {
            time,
            seq: self.seq,
            what,
        }));
    }

    fn pop_before(&mut self, until: u64) -> Option<Queued> {
        if self.heap.peek()?.0.time >= until {
            return None;
        }
        self.heap.pop().map(|r| r.0)
    }
}

/// One server: the model node plus what the simulator knows about its process.
struct Server {
    node: Node,
    up: bool,
    /// The tick a crashed server restarts at.
    down_until: u64,
    /// Time until which the process is frozen.
    paused_until: u64,
    /// Bumped by each crash, so completions of lost writes are ignored.
    incarnation: u64,
    /// When the latest write becomes durable (writes complete in order).
    disk_ready: u64,
    /// The tick until which each write takes `slow_by` time units longer.
    slow_until: u64,
    /// The extra latency of a slow disk.
    slow_by: u64,
    /// Messages sent by incarnations below this one are lost in flight: the
    /// machine lost power and its connections broke.
    sends_lost_below: u64,
    /// Campaigns as soon as it restarts (its election timer advanced on boot,
    /// as etcd's `initial-election-tick-advance` does).
    campaign_on_restart: bool,
    /// Where in each tick this server's timer fires.
    tick_offset: u64,
}

/// The running simulation of one plan.
pub(super) struct Sim<'p> {
    plan: &'p Plan,
    servers: BTreeMap<NodeId, Server>,
    net: Network,
    queue: Queue,
    now: u64,
    tick: u64,
    checker: Checker,
    disk_rng: ChaCha8Rng,
    work_rng: ChaCha8Rng,
    next_op: usize,
    next_value: u64,
    next_spare: NodeId,
    /// The armed [`NemesisOp::CrashNewLeader`], until it fires or expires.
    armed_crash: Option<ArmedCrash>,
    /// Each client's outstanding proposal (its last value) and when it was made.
    clients: Vec<Option<(Bytes, u64)>>,
    /// The liveness proposal in flight: its value and the tick it was made.
    probe: Option<(Bytes, u64)>,
    stats: Stats,
    log: Option<&'p mut dyn FnMut(String)>,
}

impl<'p> Sim<'p> {
    pub(super) fn new(plan: &'p Plan, log: Option<&'p mut dyn FnMut(String)>) -> Sim<'p> {
        let p = &plan.params;
        let mut sim = Sim {
            plan,
            servers: BTreeMap::new(),
            net: Network::new(p, stream(plan.seed, Stream::Network)),
            queue: Queue::default(),
            now: 0,
            tick: 0,
            checker: Checker::new(),
            disk_rng: stream(plan.seed, Stream::Disk),
            work_rng: stream(plan.seed, Stream::Workload),
            next_op: 0,
            next_value: 0,
            next_spare: NodeId(p.nodes + 1),
            armed_crash: None,
            clients: vec![None; p.clients as usize],
            probe: None,
            stats: Stats::default(),
            log,
        };
        for id in p.founders() {
            sim.start_server(id);
        }
        sim
    }

    fn start_server(&mut self, id: NodeId) {
        let p = &self.plan.params;
        let cfg = p.raft_config(self.plan.seed, id);
        // The parameters always give a valid configuration.
        let Ok(mut node) = Node::new(cfg, Restored::fresh(p.founders())) else {
            return;
        };
        node.recorded = Some(Vec::new());
        let tick_offset = (self.plan.seed ^ id.0.wrapping_mul(0x9e37_79b9)) % TICK;
        self.servers.insert(
            id,
            Server {
                node,
                up: true,
                down_until: 0,
                paused_until: 0,
                incarnation: 0,
                disk_ready: 0,
                slow_until: 0,
                slow_by: 0,
                sends_lost_below: 0,
                campaign_on_restart: false,
                tick_offset,
            },
        );
        if let Some(s) = self.servers.get(&id) {
            self.checker.restarted(id, &s.node);
        }
    }

    /// Runs the plan to its end or its first violation.
    pub(super) fn run(mut self) -> Outcome {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.phases()));
        let result = match result {
            Ok(r) => r,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(Violation::new(ViolationKind::Panic, msg))
            }
        };
        self.stats.ticks = self.tick;
        self.stats.leaders = self.checker.leaders_elected() as u64;
        self.stats.applied = self.checker.longest_applied().len() as u64;
        let failure = result.err().map(|violation| Failure {
            violation,
            step: self.stats.steps,
            tick: self.tick,
        });
        if let (Some(f), Some(log)) = (&failure, &mut self.log) {
            log(format!("VIOLATION {} at step {}", f.violation, f.step));
        }
        Outcome {
            seed: self.plan.seed,
            failure,
            stats: self.stats,
        }
    }

    fn phases(&mut self) -> Result<(), Violation> {
        let p = &self.plan.params;
        let cap = p.fault_ticks + LIVENESS_CAP_FACTOR * p.liveness_ticks;
        // The liveness phase: the slowest voter's applied and durable indexes,
        // and the tick either last moved.
        let mut slowest = ((LogIndex(0), LogIndex(0)), p.fault_ticks);
        for tick in 0..cap {
            self.tick = tick;
            self.now = tick * TICK;
            if tick == p.fault_ticks {
                self.heal_all()?;
            }
            self.restart_due()?;
            if self.net.heal_expired(tick) {
                self.note(|| "network: partition healed".to_string());
            }
            if tick < p.fault_ticks {
                self.nemesis(tick)?;
                self.workload()?;
            } else {
                if self.liveness()? {
                    self.stats.liveness_ticks = tick - p.fault_ticks;
                    return self.sweep_all();
                }
                let now = self.slowest_voter();
                if now.0 > slowest.0 .0 || now.1 > slowest.0 .1 {
                    slowest = ((now.0.max(slowest.0 .0), now.1.max(slowest.0 .1)), tick);
                }
                if tick >= slowest.1 + p.liveness_ticks {
                    return Err(Violation::new(
                        ViolationKind::Liveness,
                        format!(
                            "{} ticks after healing, the slowest voter has neither applied \
                             nor stored anything new for {} ticks, and the probe is not \
                             applied everywhere; {}",
                            tick - p.fault_ticks,
                            p.liveness_ticks,
                            self.describe()
                        ),
                    ));
                }
            }
            if tick % SWEEP_EVERY == 0 {
                self.sweep_all()?;
            }
            for (&id, s) in &self.servers {
                self.queue
                    .push(self.now + s.tick_offset, Happening::Tick(id));
            }
            while let Some(q) = self.queue.pop_before((tick + 1) * TICK) {
                self.now = q.time;
                self.handle(q.what)?;
            }
        }
        Err(Violation::new(
            ViolationKind::Liveness,
            format!(
                "still catching up {} ticks after healing; {}",
                cap - p.fault_ticks,
                self.describe()
            ),
        ))
    }

    /// The lowest applied and the lowest durable index among the voters of the
    /// current leader's membership (zeros without a leader): a backlog of
    /// entries from an earlier term moves the second long before the first.
    fn slowest_voter(&self) -> (LogIndex, LogIndex) {
        let Some(leader) = self.leader() else {
            return (LogIndex(0), LogIndex(0));
        };
        let voters: Vec<NodeId> = self.membership(leader, |m| m.voters.iter().copied().collect());
        let marks = |v: &NodeId| {
            self.servers
                .get(v)
                .filter(|s| s.up)
                .map_or((LogIndex(0), LogIndex(0)), |s| {
                    (s.node.raft.log().applied(), s.node.raft.log().persisted())
                })
        };
        let applied = voters.iter().map(|v| marks(v).0).min();
        let persisted = voters.iter().map(|v| marks(v).1).min();
        (
            applied.unwrap_or(LogIndex(0)),
            persisted.unwrap_or(LogIndex(0)),
        )
    }

    fn handle(&mut self, what: Happening) -> Result<(), Violation> {
        match what {
            Happening::Tick(id) => {
                let Some(s) = self.servers.get(&id) else {
                    return Ok(());
                };
                if !s.up || self.now < s.paused_until {
                    return Ok(());
                }
                if s.node.raft.is_quiesced() && self.leader_lost(id) {
                    let _ = self.step(id, Event::Unquiesce)?;
                }
                let _ = self.step(id, Event::Tick)?;
            }
            Happening::Deliver { msg: m, sent_by } => {
                let (from, to) = (m.from, m.to);
                if self
                    .servers
                    .get(&from)
                    .is_some_and(|s| sent_by < s.sends_lost_below)
                {
                    self.stats.dropped += 1;
                    return Ok(());
                }
                let receiver = self.servers.get(&to).map(|s| (s.up, s.paused_until));
                match receiver {
                    Some((true, paused)) if !self.net.is_cut(from, to) => {
                        if self.now < paused {
                            let what = Happening::Deliver { msg: m, sent_by };
                            self.queue.push(paused, what);
                        } else {
                            let _ = self.step(to, Event::Message(m))?;
                        }
                    }
                    _ => {
                        self.stats.dropped += 1;
                        let sender_up = self.servers.get(&from).is_some_and(|s| s.up);
                        if sender_up && self.net.report_unreachable() {
                            let _ = self.step(from, Event::Unreachable { peer: to })?;
                        }
                    }
                }
            }
            Happening::Durable { node, incarnation } => {
                let Some(s) = self.servers.get_mut(&node) else {
                    return Ok(());
                };
                if !s.up || s.incarnation != incarnation {
                    return Ok(());
                }
                if self.now < s.paused_until {
                    let at = s.paused_until;
                    self.queue
                        .push(at, Happening::Durable { node, incarnation });
                    return Ok(());
                }
                let seq = s.node.unpersisted.front().map_or(0, |w| w.seq);
                s.node.persist(1);
                self.after_step(node, || format!("persisted seq:{seq}"))?;
            }
        }
        Ok(())
    }

    /// Whether a quiesced node's leader is gone from its point of view, as the
    /// driver's node-level failure detector would tell it.
    fn leader_lost(&self, id: NodeId) -> bool {
        let Some(leader) = self.servers.get(&id).and_then(|s| s.node.raft.leader()) else {
            return true;
        };
        if leader == id {
            return false;
        }
        let alive = self
            .servers
            .get(&leader)
            .is_some_and(|l| l.up && self.now >= l.paused_until);
        !alive || self.net.is_cut(leader, id) || self.net.is_cut(id, leader)
    }

    /// Steps `id` with `event`, then processes and checks what it did.
    fn step(&mut self, id: NodeId, event: Event) -> Result<Result<(), Refused>, Violation> {
        let Some(s) = self.servers.get_mut(&id) else {
            return Ok(Ok(()));
        };
        let desc = self.log.is_some().then(|| describe(&event));
        let result = s.node.step(event);
        self.after_step(id, || {
            let mut d = desc.unwrap_or_default();
            if let Err(e) = &result {
                d.push_str(&format!(" -> refused: {e}"));
            }
            d
        })?;
        Ok(result)
    }

    /// Collects a step's actions: schedules its writes and sends, logs it, and
    /// runs the checker.
    fn after_step(&mut self, id: NodeId, desc: impl FnOnce() -> String) -> Result<(), Violation> {
        self.stats.steps += 1;
        if self.stats.steps > MAX_STEPS {
            return Err(Violation::new(
                ViolationKind::Liveness,
                format!("more than {MAX_STEPS} steps: a message storm"),
            ));
        }
        let Some(s) = self.servers.get_mut(&id) else {
            return Ok(());
        };
        let actions = s
            .node
            .recorded
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let outbox = std::mem::take(&mut s.node.outbox);
        s.node.notices.clear();
        for a in &actions {
            match a {
                Action::Persist(_) => {
                    let mut delay = below(&mut self.disk_rng, self.plan.params.disk_delay_max + 1);
                    if self.tick < s.slow_until {
                        delay += s.slow_by;
                    }
                    s.disk_ready = s.disk_ready.max(self.now + delay);
                    let what = Happening::Durable {
                        node: id,
                        incarnation: s.incarnation,
                    };
                    self.queue.push(s.disk_ready, what);
                    self.stats.writes += 1;
                }
                Action::ApplySnapshot(_) => self.stats.snapshots_installed += 1,
                Action::LoadEntries { .. } => self.stats.entry_loads += 1,
                _ => {}
            }
        }
        if let Some(log) = &mut self.log {
            log(format!(
                "{:>8} {:>5}.{:02} n{id} {}",
                self.stats.steps,
                self.tick,
                self.now % TICK,
                desc()
            ));
            for a in &actions {
                log(format!("{:>20}{a}", ""));
            }
        }
        self.checker.observe(id, &s.node, &actions)?;
        for m in outbox {
            self.stats.messages += 1;
            if matches!(m.body, MessageBody::InstallSnapshot { .. }) {
                self.stats.snapshot_chunks += 1;
            }
            let copies = self.net.send();
            if copies.is_empty() {
                self.stats.dropped += 1;
            }
            self.stats.duplicated += copies.len().saturating_sub(1) as u64;
            for delay in copies {
                let what = Happening::Deliver {
                    msg: m.clone(),
                    sent_by: s.incarnation,
                };
                self.queue.push(self.now + delay, what);
            }
        }
        Ok(())
    }

    /// The leader clients talk to: a running, unfrozen leader of the highest term.
    fn leader(&self) -> Option<NodeId> {
        self.servers
            .iter()
            .filter(|(_, s)| s.up && self.now >= s.paused_until)
            .filter(|(_, s)| s.node.raft.role() == Role::Leader)
            .max_by_key(|(_, s)| s.node.raft.term())
            .map(|(&id, _)| id)
    }

    fn resolve(&self, target: Target) -> Option<NodeId> {
        match target {
            Target::Node(id) => self.servers.contains_key(&id).then_some(id),
            Target::Leader => self.leader(),
        }
    }

    fn note(&mut self, what: impl FnOnce() -> String) {
        if let Some(log) = &mut self.log {
            log(format!(
                "{:>8} {:>5}.{:02} {}",
                self.stats.steps,
                self.tick,
                self.now % TICK,
                what()
            ));
        }
    }

    fn membership<T>(&self, id: NodeId, f: impl FnOnce(&proto_core::raft::Membership) -> T) -> T {
        // Callers pass a running node's id.
        f(self.servers[&id].node.raft.membership())
    }

    /// Closed-loop clients, as in Jepsen: each has at most one proposal
    /// outstanding and moves on once it is applied somewhere or times out. The
    /// workload stream is drawn identically every tick, whatever the clients do.
    fn workload(&mut self) -> Result<(), Violation> {
        let timeout = 3 * u64::from(self.plan.params.election_ticks);
        for c in 0..self.clients.len() {
            let wants = chance(&mut self.work_rng, self.plan.params.propose_per_mille);
            let n = pick(&mut self.work_rng, &[1, 1, 2, 3, 20]);
            if let Some((value, since)) = &self.clients[c] {
                if !self.checker.was_applied(value) && self.tick < since + timeout {
                    continue;
                }
                self.clients[c] = None;
            }
            if !wants {
                continue;
            }
            let Some(leader) = self.leader() else {
                continue;
            };
            let values: Vec<Bytes> = (0..n).map(|_| self.next_value()).collect();
            for v in &values {
                self.checker.proposed(v);
            }
            let last = values.last().cloned();
            if self.step(leader, Event::Propose(values))?.is_ok() {
                self.stats.proposals += n;
                self.clients[c] = last.map(|v| (v, self.tick));
                self.crash_new_leader(leader);
            }
        }
        Ok(())
    }

    fn next_value(&mut self) -> Bytes {
        self.next_value += 1;
        Bytes::from(format!("v{}", self.next_value))
    }

    /// One tick of the liveness phase: true once a leader exists and a probe
    /// proposed after healing is applied on every voter of its membership.
    fn liveness(&mut self) -> Result<bool, Violation> {
        let Some(leader) = self.leader() else {
            return Ok(false);
        };
        if let Some((value, at)) = &self.probe {
            let voters: Vec<NodeId> =
                self.membership(leader, |m| m.voters.iter().copied().collect());
            let done = voters.iter().all(|v| {
                self.servers
                    .get(v)
                    .is_some_and(|s| s.up && s.node.applied.iter().rev().any(|x| x == value))
            });
            if done {
                self.note(|| "liveness: probe applied on every voter".to_string());
                return Ok(true);
            }
            if self.tick < at + 4 * u64::from(self.plan.params.election_ticks) {
                return Ok(false);
            }
        }
        let value = self.next_value();
        self.checker.proposed(&value);
        if self
            .step(leader, Event::Propose(vec![value.clone()]))?
            .is_ok()
        {
            self.probe = Some((value, self.tick));
        }
        Ok(false)
    }

    fn sweep_all(&mut self) -> Result<(), Violation> {
        for (&id, s) in &self.servers {
            if s.up {
                self.checker.sweep(id, &s.node)?;
            }
        }
        Ok(())
    }

    /// One line per server, for liveness failures.
    fn describe(&self) -> String {
        let lines: Vec<String> = self
            .servers
            .iter()
            .map(|(id, s)| {
                let r = &s.node.raft;
                let log = r.log();
                format!(
                    "n{id}: {} {} term {} leader {:?} commit {} applied {} last {} {}",
                    if s.up { "up" } else { "down" },
                    r.role(),
                    r.term(),
                    r.leader().map(|l| l.0),
                    log.commit(),
                    log.applied(),
                    log.last_id(),
                    r.membership()
                )
            })
            .collect();
        lines.join("; ")
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::Tick => "tick".to_string(),
        Event::Message(m) => format!("recv {m}"),
        Event::Compact { index, data } => format!("compact at {index} ({} bytes)", data.len()),
        Event::Propose(values) => format!("propose {values:?}"),
        other => format!("{other:?}"),
    }
}
