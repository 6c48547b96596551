//! quickcheck properties of the cluster-metadata controller. The generated,
//! shrinkable value is a schedule of what four brokers and an admin client
//! do (register, restart, heartbeat, create, delete, grow topics, change
//! configs, take producer ids, report leadership), time passing, proposals
//! committing, and metadata leader failovers that keep a prefix of the
//! uncommitted proposals and lose the rest, as Raft may.
//!
//! Checked on every schedule: (a) replaying the committed records into a
//! fresh image gives the controller's committed image, and no committed
//! record fails to apply; (b) no answer leaves before every record proposed
//! up to its request is committed (NOT_CONTROLLER refusals excepted: they
//! acknowledge nothing), every request is answered exactly once, in order;
//! (c) no partition is ever placed on a broker that is fenced or
//! unregistered where the record takes effect in the log; (d) producer id
//! blocks never overlap, across failovers too; (e) the same schedule gives
//! the same actions.

use std::collections::VecDeque;

use conformance::metadata_trace::controller;
use proto_core::metadata::{
    errors, BrokerId, BrokerRegistrationRequest, ConfigOperation, Controller, ControllerAction,
    ControllerConfig, ControllerEvent, ControllerResponse, CreatableTopic, IncarnationId,
    IncrementalAlterConfigsResource, LeaderEpoch, MetadataImage, MetadataOffset, MetadataRecord,
    PartitionsIncrease, ReplicaAssignment, RequestId, TopicRef, RESOURCE_TOPIC,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const BROKERS: u8 = 4;
const TOPICS: [&str; 3] = ["a", "b", "c"];
const CONFIG_KEYS: [&str; 3] = ["retention.ms", "segment.bytes", "cleanup.policy"];

/// One scheduling decision; indexes pick modulo what exists, so every
/// schedule is meaningful and shrinking keeps it so.
#[derive(Clone, Debug)]
enum Op {
    /// A broker registers; `true` restarts it with a new incarnation first.
    Register(u8, bool),
    /// A heartbeat, caught up or not, asking to be fenced or not.
    Heartbeat(u8, bool, bool),
    /// Seconds pass, then a tick.
    Tick(u8),
    /// CreateTopics of one topic: partitions, replication factor (0 = -1).
    Create(u8, u8, u8),
    /// CreateTopics with an explicit assignment of two partitions.
    CreateAssigned(u8, u8, u8),
    Delete(u8),
    /// CreatePartitions: this many more.
    Grow(u8, u8),
    /// IncrementalAlterConfigs: topic, key, value (some invalid).
    Config(u8, u8, u8),
    AllocateProducerIds(u8),
    /// AlterPartition: topic, leader pick, epoch change, ISR mask.
    AlterPartition(u8, u8, u8, u8),
    Unregister(u8),
    /// The oldest proposals commit.
    Commit(u8),
    /// The metadata leader changes: this many uncommitted proposals survive.
    Failover(u8),
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let a = u8::arbitrary(g);
        let b = u8::arbitrary(g);
        let c = u8::arbitrary(g);
        let d = u8::arbitrary(g);
        match u8::arbitrary(g) % 32 {
            0..=2 => Op::Register(a, b % 4 == 0),
            3..=7 => Op::Heartbeat(a, b % 5 != 0, c % 9 == 0),
            8..=10 => Op::Tick(a % 12),
            11..=13 => Op::Create(a, b, c),
            14 => Op::CreateAssigned(a, b, c),
            15 => Op::Delete(a),
            16 => Op::Grow(a, b),
            17 => Op::Config(a, b, c),
            18 => Op::AllocateProducerIds(a),
            19..=22 => Op::AlterPartition(a, b, c, d),
            23 => Op::Unregister(a),
            24..=30 => Op::Commit(a % 4),
            _ => Op::Failover(a % 3),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Op>> {
        match *self {
            Op::Tick(n) if n > 0 => Box::new(std::iter::once(Op::Tick(n / 2))),
            _ => Box::new(std::iter::empty()),
        }
    }
}

/// What a run saw, for the vacuity test.
#[derive(Default, Debug)]
struct Seen {
    created: usize,
    refused_rf: usize,
    fences: usize,
    unfences: usize,
    new_incarnations: usize,
    blocks: usize,
    alter_ok: usize,
    alter_fenced_epoch: usize,
    lost_proposals: usize,
    not_controller: usize,
}

struct World {
    cfg: ControllerConfig,
    c: Controller,
    now: u64,
    /// Proposed, not yet committed.
    pending: VecDeque<Vec<MetadataRecord>>,
    /// Where the proposals end: the log position every answer waits for.
    proposed_end: u64,
    /// A follower's image and the committed log.
    replica: MetadataImage,
    log: Vec<MetadataRecord>,
    incarnations: [u128; BROKERS as usize + 1],
    next_request: u64,
    /// Answers expected, in order: the log position each must wait for.
    tickets: VecDeque<u64>,
    blocks: Vec<(i64, i64)>,
    history: Vec<String>,
    seen: Seen,
}

fn broker(b: u8) -> i32 {
    i32::from(b % BROKERS) + 1
}

fn topic(t: u8) -> &'static str {
    TOPICS[usize::from(t) % TOPICS.len()]
}

fn refused_with(r: &ControllerResponse, code: i16) -> bool {
    match r {
        ControllerResponse::CreateTopics(v) => v
            .iter()
            .all(|t| t.result.as_ref().is_err_and(|e| e.code == code)),
        ControllerResponse::DeleteTopics(v) => v
            .iter()
            .all(|t| t.result.as_ref().is_err_and(|e| e.code == code)),
        ControllerResponse::CreatePartitions(v) => v
            .iter()
            .all(|t| t.result.as_ref().is_err_and(|e| e.code == code)),
        ControllerResponse::AlterConfigs(v) | ControllerResponse::IncrementalAlterConfigs(v) => v
            .iter()
            .all(|t| t.result.as_ref().is_err_and(|e| e.code == code)),
        ControllerResponse::AllocateProducerIds(r) => r.as_ref().is_err_and(|e| e.code == code),
        ControllerResponse::AlterPartition(r) => r.as_ref().is_err_and(|e| e.code == code),
        ControllerResponse::UnregisterBroker(r) => r.as_ref().is_err_and(|e| e.code == code),
    }
}

impl World {
    fn new() -> World {
        let cfg = ControllerConfig {
            producer_id_block_size: 10,
            ..ControllerConfig::default()
        };
        World {
            c: controller(&cfg, MetadataImage::new()),
            cfg,
            now: 0,
            pending: VecDeque::new(),
            proposed_end: 0,
            replica: MetadataImage::new(),
            log: Vec::new(),
            incarnations: [1; BROKERS as usize + 1],
            next_request: 0,
            tickets: VecDeque::new(),
            blocks: Vec::new(),
            history: Vec::new(),
            seen: Seen::default(),
        }
    }

    fn request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Steps a request: it expects one answer, after everything proposed
    /// so far and by itself is committed.
    fn ask(&mut self, e: ControllerEvent) -> Result<(), String> {
        self.step(e, true)
    }

    fn step(&mut self, e: ControllerEvent, is_request: bool) -> Result<(), String> {
        self.c.step(self.now, e).map_err(|e| e.to_string())?;
        let actions = self.c.take_actions();
        // Proposals first: a request's own records are part of its ticket.
        for a in &actions {
            if let ControllerAction::Propose {
                offset, records, ..
            } = a
            {
                if offset.0 != self.proposed_end {
                    return Err(format!(
                        "proposal at {offset}, expected {}",
                        self.proposed_end
                    ));
                }
                self.proposed_end += records.len() as u64;
                self.pending.push_back(records.clone());
            }
        }
        if is_request {
            self.tickets.push_back(self.proposed_end);
        }
        for a in actions {
            self.history.push(format!("{a:?}"));
            let not_controller = match &a {
                ControllerAction::Propose { .. } => continue,
                ControllerAction::Respond { response, .. } => {
                    refused_with(response, errors::NOT_CONTROLLER)
                }
                ControllerAction::BrokerRegistrationReply { result, .. } => result
                    .as_ref()
                    .is_err_and(|e| e.code == errors::NOT_CONTROLLER),
                ControllerAction::BrokerHeartbeatReply { error, .. } => error
                    .as_ref()
                    .is_some_and(|e| e.code == errors::NOT_CONTROLLER),
            };
            let Some(ticket) = self.tickets.pop_front() else {
                return Err(format!("an answer nobody asked for: {a:?}"));
            };
            let committed = self.replica.next_offset().0;
            if not_controller {
                self.seen.not_controller += 1;
            } else if committed < ticket {
                return Err(format!(
                    "answered with the log committed to {committed}, before {ticket}: {a:?}"
                ));
            }
            self.observe(&a, not_controller)?;
        }
        if self.c.committed_image() != &self.replica {
            return Err("the controller's committed image is not the replayed log's".into());
        }
        Ok(())
    }

    fn observe(&mut self, a: &ControllerAction, not_controller: bool) -> Result<(), String> {
        let ControllerAction::Respond { response, .. } = a else {
            return Ok(());
        };
        match response {
            ControllerResponse::CreateTopics(v) => {
                for t in v {
                    match &t.result {
                        Ok(_) => self.seen.created += 1,
                        Err(e) if e.code == errors::INVALID_REPLICATION_FACTOR => {
                            self.seen.refused_rf += 1
                        }
                        Err(_) => {}
                    }
                }
            }
            ControllerResponse::AllocateProducerIds(Ok(b)) if !not_controller => {
                let (first, end) = (b.first, b.first + b.len);
                if let Some((f, e)) = self.blocks.iter().find(|(f, e)| first < *e && *f < end) {
                    return Err(format!("block {first}..{end} overlaps {f}..{e}"));
                }
                if end > self.replica.next_producer_id() {
                    return Err(format!("block {first}..{end} is not committed"));
                }
                self.blocks.push((first, end));
                self.seen.blocks += 1;
            }
            ControllerResponse::AlterPartition(Ok(_)) => self.seen.alter_ok += 1,
            ControllerResponse::AlterPartition(Err(e)) if e.code == errors::FENCED_LEADER_EPOCH => {
                self.seen.alter_fenced_epoch += 1
            }
            _ => {}
        }
        Ok(())
    }

    /// The oldest `n` proposals commit on the follower.
    fn commit(&mut self, n: usize) -> Result<(), String> {
        for _ in 0..n {
            let Some(batch) = self.pending.pop_front() else {
                break;
            };
            for r in batch {
                match &r {
                    MetadataRecord::Partition { replicas, .. } => {
                        if let Some(b) = replicas.iter().find(|b| !self.replica.is_usable(**b)) {
                            return Err(format!("{r:?} places a replica on unusable broker {b}"));
                        }
                    }
                    MetadataRecord::FenceBroker { .. } => self.seen.fences += 1,
                    MetadataRecord::UnfenceBroker { .. } => self.seen.unfences += 1,
                    _ => {}
                }
                self.replica
                    .apply(&r)
                    .map_err(|e| format!("a committed record does not apply: {e}: {r:?}"))?;
                self.log.push(r);
            }
        }
        Ok(())
    }

    fn run(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Register(b, restart) => {
                let id = broker(b);
                if restart {
                    self.incarnations[id as usize] += 1;
                    self.seen.new_incarnations += 1;
                }
                let req = BrokerRegistrationRequest {
                    broker_id: BrokerId(id),
                    incarnation_id: IncarnationId(self.incarnations[id as usize]),
                    kafka_host: "127.0.0.1".into(),
                    kafka_port: 9092,
                    raft_addr: format!("127.0.0.1:{}", 19092 + id),
                    rack: None,
                };
                self.ask(ControllerEvent::BrokerRegistration(req))
            }
            Op::Heartbeat(b, caught_up, want_fence) => {
                let id = broker(b);
                let metadata_offset = if caught_up {
                    self.replica.next_offset()
                } else {
                    MetadataOffset(0)
                };
                self.ask(ControllerEvent::BrokerHeartbeat {
                    broker_id: BrokerId(id),
                    incarnation_id: IncarnationId(self.incarnations[id as usize]),
                    metadata_offset,
                    want_fence,
                })
            }
            Op::Tick(s) => {
                self.now += u64::from(s) * 1000;
                self.step(ControllerEvent::Tick, false)
            }
            Op::Create(t, p, rf) => {
                let request_id = self.request();
                let rf = i16::from(rf % 4);
                self.ask(ControllerEvent::CreateTopics {
                    request_id,
                    topics: vec![CreatableTopic {
                        name: topic(t).into(),
                        num_partitions: i32::from(p % 4) + 1,
                        replication_factor: if rf == 0 { -1 } else { rf },
                        assignments: Vec::new(),
                        configs: Vec::new(),
                    }],
                    validate_only: p % 7 == 0,
                })
            }
            Op::CreateAssigned(t, x, y) => {
                let request_id = self.request();
                let assignments = [(0, x, y), (1, y, x)]
                    .into_iter()
                    .map(|(partition, a, b)| ReplicaAssignment {
                        partition,
                        replicas: vec![BrokerId(broker(a)), BrokerId(broker(b))],
                    })
                    .collect();
                self.ask(ControllerEvent::CreateTopics {
                    request_id,
                    topics: vec![CreatableTopic {
                        name: topic(t).into(),
                        num_partitions: -1,
                        replication_factor: -1,
                        assignments,
                        configs: Vec::new(),
                    }],
                    validate_only: false,
                })
            }
            Op::Delete(t) => {
                let request_id = self.request();
                let r = match self.c.latest_image().topic(topic(t)) {
                    Some(found) if t % 2 == 0 => TopicRef::Id(found.id),
                    _ => TopicRef::Name(topic(t).into()),
                };
                self.ask(ControllerEvent::DeleteTopics {
                    request_id,
                    topics: vec![r],
                })
            }
            Op::Grow(t, more) => {
                let request_id = self.request();
                let have = self
                    .c
                    .latest_image()
                    .topic(topic(t))
                    .map_or(0, |x| x.partitions.len() as i32);
                self.ask(ControllerEvent::CreatePartitions {
                    request_id,
                    topics: vec![PartitionsIncrease {
                        name: topic(t).into(),
                        count: have + i32::from(more % 3),
                        assignments: None,
                    }],
                    validate_only: false,
                })
            }
            Op::Config(t, k, v) => {
                let request_id = self.request();
                let value = ["100", "1048576", "delete", "compact", "x"][usize::from(v) % 5];
                self.ask(ControllerEvent::IncrementalAlterConfigs {
                    request_id,
                    resources: vec![IncrementalAlterConfigsResource {
                        resource_type: RESOURCE_TOPIC,
                        resource_name: topic(t).into(),
                        ops: vec![ConfigOperation {
                            name: CONFIG_KEYS[usize::from(k) % CONFIG_KEYS.len()].into(),
                            op: (v % 3 == 0) as i8,
                            value: Some(value.into()),
                        }],
                    }],
                    validate_only: false,
                })
            }
            Op::AllocateProducerIds(b) => {
                let request_id = self.request();
                self.ask(ControllerEvent::AllocateProducerIds {
                    request_id,
                    broker_id: BrokerId(broker(b)),
                })
            }
            Op::AlterPartition(t, l, e, mask) => {
                let request_id = self.request();
                let image = self.c.latest_image();
                let Some(found) = image.topic(topic(t)) else {
                    return Ok(());
                };
                let Some(p) = found.partitions.first() else {
                    return Ok(());
                };
                let leader = p.replicas[usize::from(l) % p.replicas.len()];
                let mut isr: Vec<BrokerId> = p
                    .replicas
                    .iter()
                    .enumerate()
                    .filter(|(i, b)| **b == leader || mask & (1 << i) != 0)
                    .map(|(_, b)| *b)
                    .collect();
                if mask & 0xe0 == 0xe0 {
                    isr.retain(|b| *b != leader);
                }
                // Mostly a new term, sometimes the same, sometimes an old one.
                let epoch = LeaderEpoch(p.leader_epoch.0 + [1, 1, 0, -1][usize::from(e % 4)]);
                let topic_id = found.id;
                self.ask(ControllerEvent::AlterPartition {
                    request_id,
                    topic_id,
                    partition: 0,
                    leader,
                    leader_epoch: epoch,
                    isr,
                })
            }
            Op::Unregister(b) => {
                let request_id = self.request();
                self.ask(ControllerEvent::UnregisterBroker {
                    request_id,
                    broker_id: BrokerId(broker(b)),
                })
            }
            Op::Commit(n) => {
                self.commit(usize::from(n) + 1)?;
                let offset = self.replica.next_offset();
                self.step(ControllerEvent::Committed { offset }, false)
            }
            Op::Failover(keep) => {
                self.step(ControllerEvent::Resign, false)?;
                self.commit(usize::from(keep))?;
                let lost: usize = self.pending.drain(..).map(|b| b.len()).sum();
                self.seen.lost_proposals += lost;
                self.proposed_end = self.replica.next_offset().0;
                if !self.tickets.is_empty() {
                    return Err("a resigned controller left requests unanswered".into());
                }
                self.c = controller(&self.cfg, self.replica.clone());
                Ok(())
            }
        }
    }

    /// Runs `schedule`, then commits everything so every answer is out.
    fn play(schedule: &[Op]) -> Result<World, String> {
        let mut w = World::new();
        for op in schedule {
            w.run(op)?;
        }
        w.commit(usize::MAX)?;
        let offset = w.replica.next_offset();
        w.step(ControllerEvent::Committed { offset }, false)?;
        if !w.tickets.is_empty() {
            return Err(format!("{} requests were never answered", w.tickets.len()));
        }
        let mut fresh = MetadataImage::new();
        for r in &w.log {
            fresh.apply(r).map_err(|e| format!("replay: {e}: {r:?}"))?;
        }
        if &fresh != w.c.committed_image() {
            return Err("a fresh replay of the log differs from the controller's image".into());
        }
        Ok(w)
    }
}

fn checker() -> QuickCheck {
    QuickCheck::new().tests(300).rng(Gen::new(120))
}

#[test]
fn any_schedule_keeps_the_metadata_sound() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        match World::play(&schedule) {
            Ok(_) => TestResult::passed(),
            Err(e) => TestResult::error(e),
        }
    }
    checker().quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

#[test]
fn the_same_schedule_gives_the_same_actions() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        match (World::play(&schedule), World::play(&schedule)) {
            (Ok(a), Ok(b)) => TestResult::from_bool(a.history == b.history && a.log == b.log),
            (Err(e), _) | (_, Err(e)) => TestResult::error(e),
        }
    }
    QuickCheck::new()
        .tests(100)
        .rng(Gen::new(120))
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

/// The properties are only worth something if schedules reach the
/// interesting cases: topics created and refused for their replication
/// factor, brokers fenced and unfenced, restarts, producer blocks,
/// leadership reports accepted and fenced, proposals lost in failovers.
#[test]
fn generated_schedules_reach_every_rule() {
    let mut g = Gen::from_size_and_seed(120, 7);
    let mut total = Seen::default();
    for _ in 0..200 {
        let schedule = Vec::<Op>::arbitrary(&mut g);
        let w = World::play(&schedule).expect("a sound run");
        let s = w.seen;
        total.created += s.created;
        total.refused_rf += s.refused_rf;
        total.fences += s.fences;
        total.unfences += s.unfences;
        total.new_incarnations += s.new_incarnations;
        total.blocks += s.blocks;
        total.alter_ok += s.alter_ok;
        total.alter_fenced_epoch += s.alter_fenced_epoch;
        total.lost_proposals += s.lost_proposals;
        total.not_controller += s.not_controller;
    }
    let counts = [
        ("topics created", total.created),
        ("INVALID_REPLICATION_FACTOR", total.refused_rf),
        ("fences", total.fences),
        ("unfences", total.unfences),
        ("new incarnations", total.new_incarnations),
        ("producer id blocks", total.blocks),
        ("AlterPartition accepted", total.alter_ok),
        ("FENCED_LEADER_EPOCH", total.alter_fenced_epoch),
        ("proposals lost in failovers", total.lost_proposals),
        ("NOT_CONTROLLER answers", total.not_controller),
    ];
    for (what, n) in counts {
        assert!(n >= 5, "only {n} {what} in 200 schedules: {total:?}");
    }
}
