//! The nemesis at work: crashes, cuts, pauses, and the healing.

use std::collections::BTreeSet;

use super::super::nemesis::{Op, Target};
use super::super::net::{links_between, Link};
use super::super::rng::{below, chance};
use super::super::store::Torn;
use super::{Event, Phase, Sim};

impl Sim<'_> {
    /// The node leading the most groups now (the lowest id on a tie).
    fn busiest_leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter_map(|(&id, n)| {
                let led = n
                    .node
                    .as_ref()?
                    .raft_status()
                    .iter()
                    .filter(|(_, _, _, l)| *l == Some(id))
                    .count();
                (led > 0).then_some((led, std::cmp::Reverse(id)))
            })
            .max()
            .map(|(_, std::cmp::Reverse(id))| id)
    }

    fn resolve(&self, t: Target) -> Option<u64> {
        match t {
            Target::Node(n) => Some(n),
            Target::Leader => self.busiest_leader(),
        }
    }

    pub(super) fn nemesis(&mut self, op: Op) {
        let all: Vec<u64> = (1..=self.p.nodes).collect();
        match op {
            Op::Crash { target, down_ms } => {
                let Some(id) = self.resolve(target) else {
                    return;
                };
                if self.nodes[&id].node.is_none() {
                    return;
                }
                self.log
                    .line(self.now, format!("nemesis: {op} -> crash n{id}"));
                self.crash(id);
                self.at(self.now + down_ms, Event::Restart { node: id });
            }
            Op::PowerLoss { down_ms } => {
                self.log.line(self.now, format!("nemesis: {op}"));
                for id in all {
                    if self.nodes[&id].node.is_some() {
                        self.crash(id);
                        self.at(self.now + down_ms, Event::Restart { node: id });
                    }
                }
            }
            Op::Isolate { target, ms } | Op::OneWay { target, ms, .. } => {
                let Some(id) = self.resolve(target) else {
                    return;
                };
                let (out, inbound) = match op {
                    Op::OneWay { outbound, .. } => (outbound, !outbound),
                    _ => (true, true),
                };
                self.log.line(self.now, format!("nemesis: {op} -> n{id}"));
                let side = BTreeSet::from([id]);
                self.cut(links_between(&side, &all, out, inbound), ms);
            }
            Op::Split { ref side, ms } => {
                self.log.line(self.now, format!("nemesis: {op}"));
                let links = links_between(side, &all, true, true);
                self.cut(links, ms);
            }
            Op::Pause { target, ms } => {
                let Some(id) = self.resolve(target) else {
                    return;
                };
                if self.nodes[&id].node.is_none() {
                    return;
                }
                self.log.line(self.now, format!("nemesis: {op} -> n{id}"));
                self.s.pauses += 1;
                let n = self.nodes.get_mut(&id).expect("a simulated node");
                n.paused_until = n.paused_until.max(self.now + ms);
            }
        }
    }

    fn cut(&mut self, links: BTreeSet<Link>, ms: u64) {
        self.s.cuts += 1;
        let broken = self.net.cut(links, self.now + ms);
        self.at(self.now + ms, Event::HealCuts);
        let mut told = BTreeSet::new();
        for (a, b) in broken {
            told.insert((a, b));
            told.insert((b, a));
        }
        for (node, peer) in told {
            self.peer_down(node, peer);
        }
    }

    fn peer_down(&mut self, node: u64, peer: u64) {
        let n = &self.nodes[&node];
        if n.node.is_some() {
            let inc = n.incarnation;
            self.at(self.now, Event::PeerDown { node, inc, peer });
        }
    }

    pub(super) fn crash(&mut self, id: u64) {
        self.s.crashes += 1;
        let torn = chance(&mut self.disk_rng, self.p.torn_per_mille);
        let rng = &mut self.disk_rng;
        let n = self.nodes.get_mut(&id).expect("a simulated node");
        n.node = None;
        n.incarnation += 1;
        n.paused_until = 0;
        let kept = n.disk.crash(|queued| {
            if !torn || queued.is_empty() {
                return Torn::default();
            }
            let n = queued.len() as u64;
            let entry_writes = below(rng, n + 1) as usize;
            let partial_entries = queued
                .get(entry_writes)
                .map_or(0, |w| below(rng, w.write.entries.len() as u64 + 1) as usize);
            Torn {
                entry_writes,
                partial_entries,
                meta_writes: below(rng, n + 1) as usize,
            }
        });
        if self.p.lying_disk {
            n.disk.lose_newest_entries();
        }
        if torn {
            self.s.torn_crashes += 1;
            self.log.line(
                self.now,
                format!(
                    "n{id} crashes torn: {} incomplete writes kept in part",
                    kept.len()
                ),
            );
        } else {
            self.log.line(self.now, format!("n{id} crashes"));
        }
        for done in &kept {
            self.completed(id, done);
        }
        let links: Vec<Link> = (1..=self.p.nodes)
            .filter(|&o| o != id)
            .flat_map(|o| [(id, o), (o, id)])
            .collect();
        self.net.break_streams(links);
        for other in 1..=self.p.nodes {
            if other != id {
                self.peer_down(other, id);
            }
        }
        let actions = self.workload.node_down(id, self.now);
        self.client_actions(actions);
    }

    /// The fault phase ends: everything runs and every link works.
    pub(super) fn heal(&mut self) {
        self.phase = Phase::Healed;
        self.heal_at = self.now;
        self.net.heal_all();
        self.log.line(
            self.now,
            "heal: all links work, all nodes run once paused ones wake".into(),
        );
        // A pause runs out by itself: cutting it short would let new disk
        // completions overtake the ones waiting for its end.
        for id in 1..=self.p.nodes {
            if self.nodes[&id].node.is_none() {
                self.start(id);
            }
        }
    }
}
