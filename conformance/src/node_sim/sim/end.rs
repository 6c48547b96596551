//! The end of a run: phase changes, liveness bounds, convergence, the final
//! check and the final reader.

use std::collections::BTreeMap;

use broker::node::Input;
use broker::store::TopicPartition;

use super::super::check::{Check, Found};
use super::super::consume::{decode_fetch, fetch_request};
use super::super::workload::{EPOCH_MS, TOPIC};
use super::{Event, Phase, Sim, TICK_MS};

/// One node's view of a group: (node, term, commit index, leader).
type Replica = (u64, u64, u64, Option<u64>);

impl Sim<'_> {
    /// The periodic check: phase changes and liveness bounds.
    pub(super) fn check(&mut self) -> bool {
        self.at(self.now + TICK_MS, Event::Check);
        match self.phase {
            Phase::Setup => {
                if self.workload.ready() {
                    self.phase = Phase::Faults;
                    self.log
                        .line(self.now, "setup done: the fault phase starts".into());
                    for (index, s) in self.schedule.iter().enumerate() {
                        self.next_seq += 1;
                        self.queue.insert(
                            (self.now + s.at_ms, self.next_seq),
                            Event::Nemesis { index },
                        );
                    }
                    self.at(self.now + self.p.fault_ms, Event::Heal);
                } else if self.now > self.p.setup_ms {
                    self.fail(
                        Check::SetupStuck,
                        format!("no topic with known leaders after {} ms", self.p.setup_ms),
                    );
                }
            }
            Phase::Faults => {}
            Phase::Healed => match self.acked_since_heal {
                Some(at) if self.now >= self.heal_at + self.p.settle_ms => {
                    self.s.liveness_ms = at - self.heal_at;
                    self.phase = Phase::Stopped;
                    self.stop_at = self.now;
                    self.workload.stop();
                    self.log.line(self.now, "clients stop".into());
                }
                None if self.now > self.heal_at + self.p.liveness_ms => self.fail(
                    Check::NoProgress,
                    format!(
                        "no produce acknowledged in {} ms after healing",
                        self.p.liveness_ms
                    ),
                ),
                _ => {}
            },
            Phase::Stopped => match self.converged() {
                Ok(leaders) => {
                    self.s.converge_ms = self.now - self.stop_at;
                    self.finish(leaders);
                    return true;
                }
                Err(why) if self.now > self.stop_at + self.p.converge_ms => self.fail(
                    Check::NoConvergence,
                    format!("after {} ms: {why}", self.p.converge_ms),
                ),
                Err(_) => {}
            },
        }
        false
    }

    /// Every group has one leader every replica follows at the same commit
    /// index, with every write complete; returns each partition's leader.
    fn converged(&self) -> Result<BTreeMap<TopicPartition, u64>, String> {
        if self.workload.outstanding() {
            return Err("a client request is unanswered".into());
        }
        let mut views: BTreeMap<TopicPartition, Vec<Replica>> = BTreeMap::new();
        for (&id, n) in &self.nodes {
            let Some(node) = &n.node else {
                return Err(format!("n{id} is down"));
            };
            if let Some(g) = n.disk.queued_groups().first() {
                return Err(format!("n{id} has writes of group {} in flight", g.0));
            }
            for (tp, term, commit, leader) in node.raft_status() {
                views
                    .entry(tp)
                    .or_default()
                    .push((id, term, commit, leader));
            }
        }
        let mut leaders = BTreeMap::new();
        for (tp, v) in &views {
            let (_, term, commit, leader) = v[0];
            let Some(leader) = leader else {
                return Err(format!("{tp} has no leader"));
            };
            if !v.iter().any(|r| r.0 == leader) {
                return Err(format!("{tp}: n{leader} leads but does not host it"));
            }
            if let Some(r) = v
                .iter()
                .find(|r| (r.1, r.2, r.3) != (term, commit, Some(leader)))
            {
                return Err(format!(
                    "{tp}: n{} is at term {} commit {} leader {:?}, n{} at term {term} commit {commit} leader n{leader}",
                    r.0, r.1, r.2, r.3, v[0].0
                ));
            }
            for &(id, ..) in v {
                let last = self.nodes[&id]
                    .disk
                    .disk()
                    .log(tp)
                    .map_or(0, |l| l.last_index());
                if last != commit {
                    return Err(format!(
                        "{tp}: n{id} stores up to {last}, commit is {commit}"
                    ));
                }
            }
            if tp.topic == TOPIC && v.len() != self.p.replication_factor as usize {
                return Err(format!("{tp} has {} replicas", v.len()));
            }
            leaders.insert(tp.clone(), leader);
        }
        let partitions = leaders.keys().filter(|tp| tp.topic == TOPIC).count();
        if partitions != self.p.partitions as usize {
            return Err(format!("{partitions} partitions of {TOPIC} are hosted"));
        }
        Ok(leaders)
    }

    /// Reads `partition` whole from its leader through Fetch.
    fn consume(&mut self, partition: i32, leader: u64, log_end: i64) {
        let mut records = BTreeMap::new();
        let mut offset = 0;
        let mut high_watermark = 0;
        for seq in 0.. {
            let (reply, request) = fetch_request(partition, offset, seq);
            self.step(leader, Input::Request { reply, request });
            if !self.fetched.contains_key(&reply) {
                // Nothing to read: the answer waits for max_wait_ms, a tick.
                let wall_ms = EPOCH_MS + self.now as i64;
                self.step(leader, Input::Tick { wall_ms });
            }
            let got = match self.fetched.remove(&reply) {
                Some(Some(frame)) => decode_fetch(&frame),
                Some(None) => Err("a Fetch without an answer frame".into()),
                None => Err("a Fetch was not answered".into()),
            };
            let got = match got {
                Ok(f) if f.error_code == 0 => f,
                Ok(f) => {
                    let detail = format!(
                        "{TOPIC}-{partition}: Fetch at {offset} from n{leader} failed with {}",
                        f.error_code
                    );
                    self.fail(Check::FetchMismatch, detail);
                    return;
                }
                Err(e) => {
                    self.fail(Check::BadResponse, format!("{TOPIC}-{partition}: {e}"));
                    return;
                }
            };
            high_watermark = got.high_watermark;
            let before = offset;
            for (o, v) in got.records {
                if o >= offset {
                    offset = o + 1;
                    records.insert(o, v);
                }
            }
            if offset >= high_watermark || offset == before || seq > 100_000 {
                break;
            }
        }
        let r = self
            .checker
            .consumed(partition, high_watermark, log_end, &records);
        self.note(r);
    }

    /// The final check, on a converged cluster.
    fn finish(&mut self, leaders: BTreeMap<TopicPartition, u64>) {
        for id in 1..=self.p.nodes {
            self.observe(id);
        }
        let mut logs = BTreeMap::new();
        for (tp, &leader) in &leaders {
            let log = self.nodes[&leader].disk.disk().log(tp).cloned();
            if let (Some(log), true) = (log, tp.topic == TOPIC) {
                logs.insert(tp.partition, (leader, log));
            }
            // Converged: every replica's whole log is committed and checked.
            for &id in self.nodes.keys() {
                let stored = self.nodes[&id].disk.disk().log(tp).map(|l| l.last_index());
                let checked = self.checker.verified(id, tp);
                if stored.is_some_and(|s| s > 0) && stored != checked {
                    let detail =
                        format!("{tp}: n{id} stores up to {stored:?}, checked up to {checked:?}");
                    if self.found.is_none() {
                        self.found = Some(Found::new(Check::NoConvergence, detail));
                    }
                }
            }
        }
        let r = self.checker.final_check(&logs);
        self.note(r);
        for (partition, (leader, log)) in &logs {
            if self.found.is_some() {
                break;
            }
            self.consume(*partition, *leader, log.next_offset());
        }
        let w = &self.workload.stats;
        self.s.produces = w.produces;
        self.s.acked_produces = w.acked_produces;
        self.s.acked_records = w.acked_records;
        self.s.produce_errors = w.errors.values().sum();
        self.s.unknown_outcomes = w.unknown;
        self.s.creates_not_controller = w.creates_not_controller;
        self.s.resent = w.resent;
        self.s.producer_resets = w.producer_resets;
        self.s.committed_records = self.checker.committed_records() as u64;
        self.log.line(self.now, format!("converged: {}", self.s));
    }
}
