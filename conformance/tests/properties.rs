//! quickcheck properties of one Raft group. The generated, shrinkable value is
//! a schedule: which node ticks, which in-flight message is delivered, dropped
//! or duplicated, which disk write completes, who proposes, crashes, compacts or
//! hands leadership away. A failing schedule shrinks to a short one.

use bytes::Bytes;
use conformance::node::Node;
use conformance::sim::Checker;
use proto_core::raft::{Action, Config, Event, FaultSwitches, Message, NodeId, Restored, Role};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const NODES: u64 = 3;

/// One scheduling decision. Indexes pick modulo what exists, so every
/// schedule is valid and shrinking never produces a meaningless one.
#[derive(Clone, Debug)]
enum Op {
    Tick(u8),
    Deliver(u8),
    Drop(u8),
    Duplicate(u8),
    Persist(u8, u8),
    /// Every message in flight arrives, in a scrambled order.
    DeliverAll(u8),
    /// Every node's pending writes complete.
    PersistAll,
    Propose(u8),
    Crash(u8),
    Compact(u8),
    Transfer(u8, u8),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let a = u8::arbitrary(g);
        let b = u8::arbitrary(g);
        // Weighted: delivery, ticks and persistence dominate, as in a real run.
        match u8::arbitrary(g) % 24 {
            0..=4 => Op::Deliver(a),
            5..=7 => Op::Tick(a),
            8..=9 => Op::Persist(a, b % 4 + 1),
            10..=12 => Op::Propose(a),
            13..=15 => Op::DeliverAll(a),
            16..=17 => Op::PersistAll,
            18 => Op::Drop(a),
            19 => Op::Duplicate(a),
            20 => Op::Crash(a),
            21 => Op::Compact(a),
            _ => Op::Transfer(a, b),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Op>> {
        // Shrinking the schedule (dropping ops) is what matters; smaller node
        // numbers make the survivor easier to read.
        match *self {
            Op::Tick(n) if n > 0 => Box::new(std::iter::once(Op::Tick(0))),
            _ => Box::new(std::iter::empty()),
        }
    }
}

/// A 3-node group, its network (messages in flight) and the checker.
struct World {
    nodes: Vec<Node>,
    in_flight: Vec<Message>,
    checker: Checker,
    next_value: u64,
    /// Every action every node produced, for the determinism property.
    history: Vec<String>,
}

impl World {
    fn new(faults: FaultSwitches) -> World {
        let nodes = (1..=NODES)
            .map(|id| {
                let mut cfg = Config::new(NodeId(id));
                cfg.seed = id;
                // Short timeouts so that a few hundred ops hold several elections.
                cfg.election_ticks = 4;
                cfg.heartbeat_ticks = 1;
                cfg.faults = faults;
                let mut node = Node::new(cfg, Restored::fresh((1..=NODES).map(NodeId)))
                    .expect("a valid config");
                node.recorded = Some(Vec::new());
                node
            })
            .collect();
        World {
            nodes,
            in_flight: Vec::new(),
            checker: Checker::new(),
            next_value: 0,
            history: Vec::new(),
        }
    }

    fn node(n: u8) -> usize {
        (u64::from(n) % NODES) as usize
    }

    /// Steps node `i` with `event` and checks everything it did.
    fn step(&mut self, i: usize, event: Event) -> Result<(), String> {
        let _ = self.nodes[i].step(event);
        self.collect(i)
    }

    fn collect(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let actions: Vec<Action> = node
            .recorded
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        self.in_flight.append(&mut node.outbox);
        node.notices.clear();
        for a in &actions {
            self.history.push(format!("n{} {a}", i + 1));
        }
        let id = NodeId(i as u64 + 1);
        self.checker
            .observe(id, &self.nodes[i], &actions)
            .map_err(|v| v.to_string())?;
        self.checker
            .sweep(id, &self.nodes[i])
            .map_err(|v| v.to_string())
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Tick(n) => self.step(World::node(n), Event::Tick),
            Op::Deliver(k) | Op::Drop(k) | Op::Duplicate(k) if !self.in_flight.is_empty() => {
                let at = usize::from(k) % self.in_flight.len();
                let m = match op {
                    Op::Duplicate(_) => self.in_flight[at].clone(),
                    _ => self.in_flight.swap_remove(at),
                };
                if matches!(op, Op::Drop(_)) {
                    return Ok(());
                }
                let to = (m.to.0 - 1) as usize;
                self.step(to, Event::Message(m))
            }
            Op::Deliver(_) | Op::Drop(_) | Op::Duplicate(_) => Ok(()),
            Op::Persist(n, count) => {
                let i = World::node(n);
                self.nodes[i].persist(usize::from(count));
                self.collect(i)
            }
            Op::DeliverAll(k) => {
                let mut batch = std::mem::take(&mut self.in_flight);
                let len = batch.len();
                if len > 1 {
                    batch.rotate_left(usize::from(k) % len);
                }
                for m in batch {
                    let to = (m.to.0 - 1) as usize;
                    self.step(to, Event::Message(m))?;
                }
                Ok(())
            }
            Op::PersistAll => {
                for i in 0..self.nodes.len() {
                    self.nodes[i].persist_all();
                    self.collect(i)?;
                }
                Ok(())
            }
            Op::Propose(n) => {
                let i = World::node(n);
                if self.nodes[i].raft.role() != Role::Leader {
                    return Ok(());
                }
                self.propose(i)
            }
            Op::Crash(n) => {
                let i = World::node(n);
                self.nodes[i].crash_and_restart();
                // Messages the dead process had queued are gone with it.
                let id = NodeId(i as u64 + 1);
                self.in_flight.retain(|m| m.from != id);
                if let Some(rec) = self.nodes[i].recorded.as_mut() {
                    rec.clear();
                }
                self.checker.restarted(id, &self.nodes[i]);
                Ok(())
            }
            Op::Compact(n) => {
                let i = World::node(n);
                let _ = self.nodes[i].compact();
                self.collect(i)
            }
            Op::Transfer(n, to) => {
                let i = World::node(n);
                let to = NodeId(u64::from(to) % NODES + 1);
                self.step(i, Event::TransferLeader { to })
            }
        }
    }

    fn propose(&mut self, i: usize) -> Result<(), String> {
        self.next_value += 1;
        let value = Bytes::from(format!("v{}", self.next_value));
        if self.nodes[i]
            .step(Event::Propose(vec![value.clone()]))
            .is_ok()
        {
            self.checker.proposed(&value);
        }
        self.collect(i)
    }

    /// Heals everything: every write completes, every message arrives, every
    /// node ticks; proposes one value once a leader exists. True once that value
    /// is applied on every node.
    fn heal_and_commit(&mut self, rounds: usize) -> Result<bool, String> {
        let mut probe: Option<Bytes> = None;
        for _ in 0..rounds {
            for i in 0..self.nodes.len() {
                self.nodes[i].persist_all();
                self.collect(i)?;
            }
            while let Some(m) = self.in_flight.pop() {
                let to = (m.to.0 - 1) as usize;
                self.step(to, Event::Message(m))?;
            }
            for i in 0..self.nodes.len() {
                self.step(i, Event::Tick)?;
            }
            if probe.is_none() {
                if let Some(i) = self
                    .nodes
                    .iter()
                    .position(|n| n.raft.role() == Role::Leader)
                {
                    self.next_value += 1;
                    let value = Bytes::from(format!("v{}", self.next_value));
                    if self.nodes[i]
                        .step(Event::Propose(vec![value.clone()]))
                        .is_ok()
                    {
                        self.checker.proposed(&value);
                        probe = Some(value);
                    }
                    self.collect(i)?;
                }
            }
            if let Some(p) = &probe {
                if self.nodes.iter().all(|n| n.applied.contains(p)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

fn run(schedule: &[Op]) -> Result<World, String> {
    run_with(schedule, FaultSwitches::default())
}

fn run_with(schedule: &[Op], faults: FaultSwitches) -> Result<World, String> {
    let mut w = World::new(faults);
    for op in schedule {
        w.apply(op)?;
    }
    Ok(w)
}

fn quickcheck() -> QuickCheck {
    QuickCheck::new().tests(300).rng(Gen::new(1000))
}

#[test]
fn any_schedule_keeps_raft_safe() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        match run(&schedule) {
            Ok(_) => TestResult::passed(),
            Err(v) => TestResult::error(v),
        }
    }
    quickcheck().quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

#[test]
fn after_any_schedule_a_healed_group_commits_again() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        let mut w = match run(&schedule) {
            Ok(w) => w,
            Err(v) => return TestResult::error(v),
        };
        match w.heal_and_commit(300) {
            Ok(true) => TestResult::passed(),
            Ok(false) => TestResult::error("no commit within 300 healed rounds"),
            Err(v) => TestResult::error(v),
        }
    }
    quickcheck().quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

#[test]
fn the_same_schedule_gives_the_same_actions() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        match (run(&schedule), run(&schedule)) {
            (Ok(a), Ok(b)) => TestResult::from_bool(a.history == b.history),
            (Err(v), _) | (_, Err(v)) => TestResult::error(v),
        }
    }
    QuickCheck::new()
        .tests(100)
        .rng(Gen::new(1000))
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

/// The generator is worth something only if its schedules elect leaders and
/// commit entries; otherwise the properties above would pass vacuously. The
/// generator is seeded so the count is the same on every run: across seeds it
/// sits between 94 and 116 of 200, and a third is the floor that still proves
/// the schedules exercise commits.
#[test]
fn generated_schedules_elect_and_commit() {
    let mut g = Gen::from_size_and_seed(1000, 1);
    let runs = 200;
    let committing = (0..runs)
        .filter(|_| {
            let schedule = Vec::<Op>::arbitrary(&mut g);
            let w = run(&schedule).expect("healthy Raft is safe");
            w.checker.committed_index().0 > 1
        })
        .count();
    assert!(
        committing * 3 >= runs,
        "only {committing} of {runs} schedules committed anything"
    );
}

/// The safety property has teeth: Raft that acknowledges before persisting
/// loses committed entries when a crash eats the unsynced tail.
#[test]
fn the_safety_property_catches_acks_before_persistence() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        let faults = FaultSwitches {
            ack_before_persist: true,
            ..FaultSwitches::default()
        };
        match run_with(&schedule, faults) {
            Ok(_) => TestResult::passed(),
            Err(v) => TestResult::error(v),
        }
    }
    let found = QuickCheck::new()
        .tests(2000)
        .rng(Gen::from_size_and_seed(1000, 1))
        .quicktest(prop as fn(Vec<Op>) -> TestResult);
    assert!(found.is_err(), "2000 schedules found no violation");
}

/// A schedule quickcheck found (CI, 2026-12-01): node 2 won term 1 on the
/// others' votes before its own term was durable, crashed, lost the term,
/// won term 1 again with an empty log and proposed a different entry at the
/// same index and term. A candidate now leads only once its own vote is
/// durable.
#[test]
fn a_leader_whose_term_was_lost_cannot_lead_that_term_again() {
    use Op::*;
    let schedule = [
        Tick(214),
        Tick(124),
        Tick(223),
        Tick(166),
        Tick(91),
        Deliver(14),
        Deliver(157),
        Deliver(17),
        Persist(212, 2),
        DeliverAll(84),
        Persist(186, 3),
        Deliver(197),
        Propose(25),
        Crash(202),
        Tick(67),
        Tick(205),
    ];
    let mut w = run(&schedule).expect("the schedule itself is safe");
    assert_eq!(w.heal_and_commit(300), Ok(true));
    // The checker sees the bug when it is switched back on.
    let faults = FaultSwitches {
        lead_before_own_vote_durable: true,
        ..FaultSwitches::default()
    };
    let mut broken = run_with(&schedule, faults).expect("the violation comes while healing");
    let found = broken.heal_and_commit(300);
    assert!(
        matches!(&found, Err(v) if v.contains("log-matching")),
        "{found:?}"
    );
}
