//! The scheduler: one queue of timed events, handled in (time, sequence)
//! order, each one stepping a node, a client or the nemesis.

mod end;
mod faults;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use broker::node::topics::{TopicConfig, TopicTable};
use broker::node::{Input, Node, NodeConfig, Output, ReplyId, RestoredGroups};
use broker::protocol::Request;
use broker::store::TopicPartition;
use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use proto_core::group::CoordinatorConfig;
use proto_core::multiraft::GroupId;
use proto_core::raft::NodeId;
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;

use super::check::{Check, Checker, Found};
use super::consume::CONSUMER_CONN;
use super::nemesis::{self, Scheduled};
use super::net::{Link, Net};
use super::rng::{between, chance, stream, Stream};
use super::store::{Completed, NodeDisk};
use super::workload::{Action, Outcome, Workload, EPOCH_MS, TOPIC};
use super::{Params, Summary, Violation};

/// Milliseconds per tick (`NodeConfig::tick_ms`).
/// Applied entries between compactions of a partition's in-memory Raft log:
/// far fewer than the broker's 1024, so that in a run of a few thousand
/// writes replicas compact and followers that fell behind are sent entries
/// loaded from their leader's log.
const COMPACT_EVERY: u64 = 32;

const TICK_MS: u64 = 100;
/// Lines of the event log a violation shows.
const TAIL: usize = 250;
/// The metadata log's partition name.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// Something that happens at a time.
#[derive(Debug)]
enum Event {
    Tick {
        node: u64,
        inc: u64,
    },
    Frame {
        link: Link,
        epoch: u64,
        payload: Bytes,
    },
    DiskDone {
        node: u64,
        inc: u64,
        group: GroupId,
        seq: u64,
    },
    PeerDown {
        node: u64,
        inc: u64,
        peer: u64,
    },
    Request {
        node: u64,
        inc: u64,
        conn: u64,
        open: bool,
        reply: ReplyId,
        request: Box<Request>,
    },
    Closed {
        node: u64,
        inc: u64,
        conn: u64,
    },
    Response {
        client: usize,
        reply: ReplyId,
        frame: Option<Bytes>,
    },
    ConnLost {
        client: usize,
        conn: u64,
    },
    ClientWake {
        client: usize,
    },
    ClientTimeout {
        client: usize,
        reply: ReplyId,
    },
    Restart {
        node: u64,
    },
    Nemesis {
        index: usize,
    },
    HealCuts,
    Heal,
    Check,
}

impl Event {
    /// The node the event is delivered to (it waits while the node is paused).
    fn node(&self) -> Option<u64> {
        match self {
            Event::Tick { node, .. }
            | Event::DiskDone { node, .. }
            | Event::PeerDown { node, .. }
            | Event::Request { node, .. }
            | Event::Closed { node, .. } => Some(*node),
            Event::Frame { link, .. } => Some(link.1),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Setup,
    Faults,
    Healed,
    Stopped,
}

/// One broker: its process (if running) and its disk.
struct SimNode {
    incarnation: u64,
    node: Option<Node>,
    disk: NodeDisk,
    paused_until: u64,
}

/// The event log: a tail kept for violations, everything for a sink.
struct EventLog<'a> {
    tail: VecDeque<String>,
    sink: Option<&'a mut dyn FnMut(&str)>,
}

impl EventLog<'_> {
    fn line(&mut self, now: u64, line: String) {
        let line = format!("{now:>7} {line}");
        if let Some(sink) = self.sink.as_mut() {
            sink(&line);
        }
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn verbose(&mut self, now: u64, line: impl FnOnce() -> String) {
        if let Some(sink) = self.sink.as_mut() {
            sink(&format!("{now:>7} {}", line()));
        }
    }
}

/// A run in progress.
pub(super) struct Sim<'a> {
    seed: u64,
    p: Params,
    now: u64,
    queue: BTreeMap<(u64, u64), Event>,
    next_seq: u64,
    nodes: BTreeMap<u64, SimNode>,
    net: Net,
    disk_rng: ChaCha8Rng,
    client_net: ChaCha8Rng,
    node_rng: ChaCha8Rng,
    workload: Workload,
    checker: Checker,
    schedule: Vec<Scheduled>,
    log: EventLog<'a>,
    s: Summary,
    /// Each partition's group, learned from the writes.
    groups: BTreeMap<TopicPartition, GroupId>,
    /// Each group's leader as last seen: (term, node).
    leaders: BTreeMap<TopicPartition, (u64, u64)>,
    phase: Phase,
    heal_at: u64,
    acked_since_heal: Option<u64>,
    stop_at: u64,
    found: Option<Found>,
    /// The final reader's answers.
    fetched: BTreeMap<ReplyId, Option<Bytes>>,
}

impl<'a> Sim<'a> {
    pub(super) fn new(
        seed: u64,
        params: &Params,
        sink: Option<&'a mut dyn FnMut(&str)>,
    ) -> Sim<'a> {
        let nodes = (1..=params.nodes)
            .map(|id| {
                (
                    id,
                    SimNode {
                        incarnation: 0,
                        node: None,
                        disk: NodeDisk::default(),
                        paused_until: 0,
                    },
                )
            })
            .collect();
        Sim {
            seed,
            p: params.clone(),
            now: 0,
            queue: BTreeMap::new(),
            next_seq: 0,
            nodes,
            net: Net::new(params.net, stream(seed, Stream::Network)),
            disk_rng: stream(seed, Stream::Disk),
            client_net: stream(seed, Stream::ClientNet),
            node_rng: stream(seed, Stream::Nodes),
            workload: Workload::new(stream(seed, Stream::Clients), params),
            checker: Checker::new(params.clients),
            schedule: nemesis::schedule(seed, params),
            log: EventLog {
                tail: VecDeque::with_capacity(TAIL),
                sink,
            },
            s: Summary {
                seed,
                nodes: params.nodes,
                ..Summary::default()
            },
            groups: BTreeMap::new(),
            leaders: BTreeMap::new(),
            phase: Phase::Setup,
            heal_at: 0,
            acked_since_heal: None,
            stop_at: 0,
            found: None,
            fetched: BTreeMap::new(),
        }
    }

    fn at(&mut self, time: u64, event: Event) {
        self.next_seq += 1;
        self.queue.insert((time, self.next_seq), event);
    }

    fn fail(&mut self, check: Check, detail: impl Into<String>) {
        if self.found.is_none() {
            self.found = Some(Found::new(check, detail));
        }
    }

    fn note(&mut self, r: Result<(), Found>) {
        if let Err(f) = r {
            if self.found.is_none() {
                self.found = Some(f);
            }
        }
    }

    pub(super) fn run(mut self) -> Result<Summary, Violation> {
        for id in 1..=self.p.nodes {
            self.start(id);
        }
        for c in 0..self.workload.clients() {
            let at = between(&mut self.client_net, 1, 50);
            self.at(at, Event::ClientWake { client: c });
        }
        self.at(TICK_MS, Event::Check);
        let end = self.p.setup_ms
            + self.p.fault_ms
            + self.p.liveness_ms
            + self.p.settle_ms
            + self.p.converge_ms;
        loop {
            let Some(((time, seq), event)) = self.queue.pop_first() else {
                self.fail(Check::NoConvergence, "the event queue ran dry");
                break;
            };
            self.now = time;
            if let Some(n) = event.node() {
                let until = self.nodes[&n].paused_until;
                if until > time {
                    self.queue.insert((until, seq), event);
                    continue;
                }
            }
            self.s.events += 1;
            let done = self.handle(event);
            if self.found.is_some() || done {
                break;
            }
            if self.now > end {
                self.fail(Check::NoConvergence, format!("the run passed {end} ms"));
                break;
            }
        }
        self.s.sim_ms = self.now;
        match self.found.take() {
            None => Ok(self.s),
            Some(found) => {
                let line = format!("VIOLATION {found}");
                self.log.line(self.now, line);
                Err(Violation {
                    seed: self.seed,
                    at_ms: self.now,
                    found,
                    tail: self.log.tail.into_iter().collect(),
                })
            }
        }
    }

    /// Handles one event; true when the run is over.
    fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Tick { node, inc } => {
                if self.nodes[&node].incarnation == inc {
                    let wall_ms = EPOCH_MS + self.now as i64;
                    self.step(node, Input::Tick { wall_ms });
                    self.at(self.now + TICK_MS, Event::Tick { node, inc });
                }
            }
            Event::Frame {
                link,
                epoch,
                payload,
            } => {
                let up = self.nodes[&link.1].node.is_some();
                if up && self.net.deliverable(link, epoch) {
                    self.step(
                        link.1,
                        Input::Peer {
                            from: NodeId(link.0),
                            payload,
                        },
                    );
                } else {
                    self.s.frames_lost += 1;
                }
            }
            Event::DiskDone {
                node,
                inc,
                group,
                seq,
            } => {
                if self.nodes[&node].incarnation == inc {
                    self.disk_done(node, group, seq);
                }
            }
            Event::PeerDown { node, inc, peer } => {
                if self.nodes[&node].incarnation == inc {
                    self.step(node, Input::PeerDown { peer: NodeId(peer) });
                }
            }
            Event::Request {
                node,
                inc,
                conn,
                open,
                reply,
                request,
            } => self.request(node, inc, conn, open, reply, request),
            Event::Closed { node, inc, conn } => {
                if self.nodes[&node].incarnation == inc {
                    self.step(node, Input::Closed { conn });
                }
            }
            Event::Response {
                client,
                reply,
                frame,
            } => self.response(client, reply, frame),
            Event::ConnLost { client, conn } => {
                let actions = self.workload.on_conn_lost(client, conn, self.now);
                self.client_actions(actions);
            }
            Event::ClientWake { client } => {
                let actions = self.workload.wake(client, self.now);
                self.checker.sent(client, self.workload.values_sent(client));
                self.client_actions(actions);
            }
            Event::ClientTimeout { client, reply } => {
                let actions = self.workload.on_timeout(client, reply, self.now);
                if !actions.is_empty() {
                    self.log.line(
                        self.now,
                        format!("c{client} timed out on conn {}", reply.conn),
                    );
                }
                self.client_actions(actions);
            }
            Event::Restart { node } => {
                if self.nodes[&node].node.is_none() {
                    self.start(node);
                }
            }
            Event::Nemesis { index } => {
                if self.phase == Phase::Faults {
                    let op = self.schedule[index].op.clone();
                    self.nemesis(op);
                }
            }
            Event::HealCuts => {
                if self.net.heal_expired(self.now) {
                    let cut = self.net.blocked().len();
                    self.log
                        .line(self.now, format!("cuts healed, {cut} links still cut"));
                }
            }
            Event::Heal => self.heal(),
            Event::Check => return self.check(),
        }
        false
    }

    /// Starts (or restarts) node `id` from its disk.
    fn start(&mut self, id: u64) {
        let seed = self.node_rng.next_u64();
        let peers = (1..=self.p.nodes)
            .map(|n| (n, format!("node{n}:9093")))
            .collect();
        let cfg = NodeConfig {
            node_id: id as i32,
            advertised_host: format!("node{id}"),
            advertised_port: 9092,
            rack: None,
            cluster_id: "node-sim".into(),
            auto_create_topics: true,
            default_partitions: self.p.partitions,
            topic_defaults: TopicConfig::defaults(-1, -1, 1 << 30),
            tick_ms: TICK_MS,
            seed,
            offsets_partitions: 1,
            coordinator: CoordinatorConfig::kafka_defaults(seed),
            peers,
            default_replication_factor: self.p.replication_factor,
        };
        let n = self.nodes.get_mut(&id).expect("a simulated node");
        n.paused_until = 0;
        let store = Box::new(n.disk.store());
        match Node::new(cfg, store, TopicTable::default(), RestoredGroups::new()) {
            Ok(mut node) => {
                node.set_compact_every(COMPACT_EVERY);
                n.node = Some(node);
            }
            Err(e) => {
                self.fail(Check::RestartFailed, format!("n{id} cannot start: {e}"));
                return;
            }
        }
        let inc = n.incarnation;
        self.log.line(
            self.now,
            format!("n{id} starts (incarnation {inc}, seed {seed:#x})"),
        );
        self.flush(id);
        let phase = between(&mut self.node_rng, 1, TICK_MS);
        self.at(self.now + phase, Event::Tick { node: id, inc });
    }

    /// Steps node `id` (if it runs), performs its outputs and checks it.
    fn step(&mut self, id: u64, input: Input) {
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) else {
            return;
        };
        node.step(now, input);
        self.flush(id);
    }

    fn flush(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) else {
            return;
        };
        let outputs = node.take_outputs();
        for out in outputs {
            self.output(id, out);
        }
        self.observe(id);
    }

    fn output(&mut self, id: u64, out: Output) {
        match out {
            Output::Respond { reply, frame } if reply.conn >= CONSUMER_CONN => {
                self.fetched.insert(reply, frame);
            }
            Output::Respond { reply, frame } => {
                if let Some(client) = self.workload.owner(reply.conn) {
                    let at = self.now + between(&mut self.client_net, 1, 5);
                    self.at(
                        at,
                        Event::Response {
                            client,
                            reply,
                            frame,
                        },
                    );
                }
            }
            Output::Close { conn } => {
                self.log.line(self.now, format!("n{id} closes conn {conn}"));
                if let Some(client) = self.workload.owner(conn) {
                    let at = self.now + between(&mut self.client_net, 1, 5);
                    self.at(at, Event::ConnLost { client, conn });
                }
            }
            Output::Persist { group, tp, write } => {
                self.s.writes += 1;
                self.s.compactions += u64::from(write.snapshot.is_some());
                self.groups.entry(tp.clone()).or_insert(group);
                let delay = if chance(&mut self.disk_rng, self.p.disk_slow_per_mille) {
                    between(&mut self.disk_rng, self.p.disk_max_ms, self.p.disk_slow_ms)
                } else {
                    between(&mut self.disk_rng, self.p.disk_min_ms, self.p.disk_max_ms)
                };
                let n = self.nodes.get_mut(&id).expect("a simulated node");
                let done_at = (self.now + delay).max(n.disk.last_done_at(group).unwrap_or(0));
                let seq = write.seq;
                if let Some(last) = n.disk.last_seq(group).filter(|&last| last >= seq) {
                    self.fail(
                        Check::WriteOutOfOrder,
                        format!("n{id} wrote {tp} seq {seq} after seq {last}"),
                    );
                    return;
                }
                let (entries, first) = (
                    write.entries.len(),
                    write.entries.first().map_or(0, |e| e.index.0),
                );
                n.disk.submit(group, tp.clone(), write, done_at);
                let inc = n.incarnation;
                self.log.verbose(self.now, || {
                    format!("n{id} writes {tp} seq {seq}: {entries} entries from {first}, done at {done_at}")
                });
                self.at(
                    done_at,
                    Event::DiskDone {
                        node: id,
                        inc,
                        group,
                        seq,
                    },
                );
            }
            Output::Send { to, payload } => {
                self.s.frames += 1;
                let link = (id, to.0);
                let up = self.nodes.get(&to.0).is_some_and(|n| n.node.is_some());
                let arrivals = if up {
                    self.net.send(self.now, link)
                } else {
                    Vec::new()
                };
                if arrivals.is_empty() {
                    self.s.frames_lost += 1;
                }
                for (at, epoch) in arrivals {
                    self.at(
                        at,
                        Event::Frame {
                            link,
                            epoch,
                            payload: payload.clone(),
                        },
                    );
                }
            }
        }
    }

    /// Checks node `id`'s committed prefixes and notes leadership changes.
    fn observe(&mut self, id: u64) {
        let Some(node) = self.nodes.get(&id).and_then(|n| n.node.as_ref()) else {
            return;
        };
        let status = node.raft_status();
        for (tp, term, commit, leader) in status {
            if leader == Some(id) {
                self.leader_seen(&tp, term, id);
            }
            let Some(&group) = self.groups.get(&tp) else {
                continue;
            };
            let n = &self.nodes[&id];
            let pending = n.disk.first_pending_index(group);
            let disk = n.disk.disk();
            let Some(log) = disk.log(&tp) else {
                continue;
            };
            let mut bound = commit.min(log.last_index());
            if let Some(p) = pending {
                bound = bound.min(p.saturating_sub(1));
            }
            let r = self.checker.observe(id, &tp, log, bound);
            drop(disk);
            self.note(r);
        }
    }

    fn leader_seen(&mut self, tp: &TopicPartition, term: u64, id: u64) {
        let prev = self.leaders.get(tp).copied();
        if prev.is_some_and(|(t, _)| t >= term) {
            return;
        }
        self.leaders.insert(tp.clone(), (term, id));
        if let Some((_, before)) = prev {
            if before != id {
                if tp.topic == METADATA_TOPIC {
                    self.s.metadata_failovers += 1;
                } else if tp.topic == TOPIC {
                    self.s.failovers += 1;
                }
            }
        }
        self.log
            .line(self.now, format!("n{id} leads {tp} in term {term}"));
    }

    fn disk_done(&mut self, id: u64, group: GroupId, seq: u64) {
        let n = self.nodes.get_mut(&id).expect("a simulated node");
        let Some(done) = n.disk.complete(group, seq) else {
            self.fail(
                Check::StoreRefused,
                format!("n{id} group {group:?}: write {seq} completed out of order"),
            );
            return;
        };
        if !self.completed(id, &done) {
            return;
        }
        self.step(id, Input::Persisted { group, seq });
    }

    /// Checks what a completed write did; false if the disk refused it.
    fn completed(&mut self, id: u64, done: &Completed) -> bool {
        if let Some(from) = done.applied.truncated_from {
            self.s.truncations += 1;
            let (lo, hi) = done.applied.removed_offsets;
            let removed = done.applied.removed;
            self.log.line(
                self.now,
                format!(
                    "n{id} truncates {} from index {from}: {removed} entries, offsets {lo}..{hi}",
                    done.tp
                ),
            );
            let r = self.checker.truncated(id, &done.tp, from);
            self.note(r);
        }
        if let Some(why) = &done.refused {
            self.fail(
                Check::StoreRefused,
                format!("n{id} {} write {}: {why}", done.tp, done.seq),
            );
            return false;
        }
        true
    }

    fn request(
        &mut self,
        node: u64,
        inc: u64,
        conn: u64,
        open: bool,
        reply: ReplyId,
        request: Box<Request>,
    ) {
        let n = &self.nodes[&node];
        if n.incarnation != inc || n.node.is_none() {
            if let Some(client) = self.workload.owner(conn) {
                self.at(self.now + 1, Event::ConnLost { client, conn });
            }
            return;
        }
        if open {
            let ip = Ipv4Addr::new(10, 0, (conn >> 8) as u8, conn as u8);
            let peer = SocketAddr::new(IpAddr::V4(ip), 40000);
            self.step(node, Input::Opened { conn, peer });
        }
        self.step(node, Input::Request { reply, request });
    }

    fn response(&mut self, client: usize, reply: ReplyId, frame: Option<Bytes>) {
        let (actions, outcome) = self.workload.on_response(client, reply, frame, self.now);
        match outcome {
            Outcome::Nothing => {}
            Outcome::Refused { partition, code } => self.log.line(
                self.now,
                format!("c{client}: {TOPIC}-{partition} refused with error {code}"),
            ),
            Outcome::Malformed(why) => self.fail(Check::BadResponse, format!("c{client}: {why}")),
            Outcome::Acked(ack) => {
                self.log.line(
                    self.now,
                    format!(
                        "c{client} acked by n{}: {TOPIC}-{} at {} {:?}",
                        ack.node, ack.partition, ack.base_offset, ack.values
                    ),
                );
                if self.phase == Phase::Healed && self.acked_since_heal.is_none() {
                    self.acked_since_heal = Some(self.now);
                }
                let r = self.checker.ack(&ack);
                self.note(r);
            }
        }
        self.client_actions(actions);
    }

    fn client_actions(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send {
                    node,
                    conn,
                    open,
                    reply,
                    request,
                    note,
                } => {
                    if matches!(request.header.api_key, ApiKey::Produce) {
                        self.log.line(self.now, note);
                    } else {
                        self.log.verbose(self.now, || note);
                    }
                    let inc = self.nodes[&node].incarnation;
                    let at = self.now + between(&mut self.client_net, 1, 5);
                    self.at(
                        at,
                        Event::Request {
                            node,
                            inc,
                            conn,
                            open,
                            reply,
                            request,
                        },
                    );
                }
                Action::Close { node, conn } => {
                    let inc = self.nodes[&node].incarnation;
                    let at = self.now + between(&mut self.client_net, 1, 5);
                    self.at(at, Event::Closed { node, inc, conn });
                }
                Action::Wake { client, at } => self.at(at, Event::ClientWake { client }),
                Action::Timeout { client, reply, at } => {
                    self.at(at, Event::ClientTimeout { client, reply })
                }
            }
        }
    }
}
