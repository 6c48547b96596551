//! Applies the schedule's faults to the running cluster: signals to the node
//! processes, modes on the peer-link proxies. A fault begins, may need a
//! nudge while it is held (severing connections again), and ends; ending
//! always undoes everything it did, so the cluster is whole between faults.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use conformance::mini_client;

use super::disk;
use super::proxy::{Mode, Proxies};
use super::schedule::{Cut, Fault, Target};
use crate::cluster::layout::NodeId;
use crate::cluster::local::LocalCluster;

/// A fault in force, with what ending it must undo.
#[derive(Debug)]
pub enum Active {
    /// A SIGKILLed node to restart.
    Killed(NodeId),
    /// A SIGSTOPped node to continue.
    Paused(NodeId),
    /// Blocked links to open.
    Blocked(Vec<(NodeId, NodeId)>),
    /// Delayed links to set back to pass.
    Delayed,
    /// Severing every connection each `every`; the next at `next`.
    Dropping {
        /// The interval.
        every: Duration,
        /// When to sever next.
        next: Instant,
    },
    /// Nothing to undo (a restart already happened).
    Done,
}

/// The cluster and its proxies, as the faults see them.
pub struct Nemeses<'a> {
    /// The nodes.
    pub cluster: &'a mut LocalCluster,
    /// The proxies on their peer links.
    pub proxies: &'a Proxies,
    /// The workload's topic, whose leaders targets name.
    pub topic: String,
    /// Nodes killed or paused right now: not asked for Metadata.
    out: BTreeSet<NodeId>,
    /// Each node's fsync ledger (see [`super::disk`]).
    ledger_of: &'a dyn Fn(NodeId) -> PathBuf,
}

impl<'a> Nemeses<'a> {
    /// The faults of `cluster`, whose peer links run through `proxies`.
    pub fn new(
        cluster: &'a mut LocalCluster,
        proxies: &'a Proxies,
        topic: &str,
        ledger_of: &'a dyn Fn(NodeId) -> PathBuf,
    ) -> Nemeses<'a> {
        Nemeses {
            cluster,
            proxies,
            topic: topic.to_string(),
            out: BTreeSet::new(),
            ledger_of,
        }
    }

    /// Whether node `n` is down on purpose (killed, paused, restarting).
    pub fn is_out(&self, n: NodeId) -> bool {
        self.out.contains(&n)
    }

    /// Which node `target` names now, from the Metadata of the first node
    /// that answers (any node names every partition's leader and the
    /// controller); with no answer, node 1.
    pub fn resolve(&self, target: Target) -> NodeId {
        if let Target::Node(n) = target {
            return n;
        }
        let named = self.answering().into_iter().find_map(|(_, addr)| {
            let md = mini_client::metadata(addr).ok()?;
            match target {
                Target::Controller => md.controller,
                Target::LeaderOf(p) => md.topics.get(&self.topic)?.get(p as usize)?.leader,
                Target::Node(n) => Some(n.0),
            }
        });
        named.map_or(NodeId(1), NodeId)
    }

    /// The Kafka listener of every node that should answer now: running,
    /// and neither killed nor paused by a fault.
    fn answering(&self) -> Vec<(NodeId, SocketAddr)> {
        self.cluster
            .ids()
            .into_iter()
            .filter(|id| !self.out.contains(id) && self.cluster.is_running(*id))
            .filter_map(|id| Some((id, self.cluster.spec(id).ok()?.ports.kafka)))
            .collect()
    }

    /// Starts `fault`; returns what ending it must undo and what it did, in
    /// words (with targets resolved).
    pub fn begin(&mut self, fault: &Fault) -> anyhow::Result<(Active, String)> {
        let named = describe;
        Ok(match fault {
            Fault::Kill(t) => {
                let n = self.resolve(*t);
                self.cluster.kill(n)?;
                self.out.insert(n);
                (Active::Killed(n), format!("SIGKILL {}", named(*t, n)))
            }
            Fault::LoseUnsynced { target, seed } => {
                let n = self.resolve(*target);
                self.cluster.kill(n)?;
                self.out.insert(n);
                let cuts = disk::lose_unsynced(&(self.ledger_of)(n), *seed)?;
                let lost: u64 = cuts.iter().map(|c| c.from - c.to).sum();
                let torn = cuts.iter().filter(|c| c.to > c.synced).count();
                (
                    Active::Killed(n),
                    format!(
                        "SIGKILL {}, {lost} un-fsynced bytes cut from {} files ({torn} torn)",
                        named(*target, n),
                        cuts.len()
                    ),
                )
            }
            Fault::Pause(t) => {
                let n = self.resolve(*t);
                self.cluster.signal(n, "STOP")?;
                self.out.insert(n);
                (Active::Paused(n), format!("SIGSTOP {}", named(*t, n)))
            }
            Fault::Partition(cut) => {
                let (links, what) = self.links_cut_by(cut);
                for &(from, to) in &links {
                    self.proxies.set(from, to, Mode::Blocked);
                }
                (Active::Blocked(links), what)
            }
            Fault::Latency(d) => {
                for (from, to) in self.proxies.links() {
                    self.proxies.set(from, to, Mode::Delayed(*d));
                }
                (Active::Delayed, fault.to_string())
            }
            Fault::Drop { every } => {
                self.sever_all();
                (
                    Active::Dropping {
                        every: *every,
                        next: Instant::now() + *every,
                    },
                    fault.to_string(),
                )
            }
            Fault::Restart(Some(t)) => {
                let n = self.resolve(*t);
                self.restart(n)?;
                (
                    Active::Done,
                    format!("SIGTERM and restart {}", named(*t, n)),
                )
            }
            Fault::Restart(None) => {
                for n in self.cluster.ids() {
                    self.restart(n)?;
                }
                (Active::Done, fault.to_string())
            }
        })
    }

    /// Does what a held fault needs done meanwhile (sever again when due).
    pub fn nudge(&mut self, active: &mut Active) {
        if let Active::Dropping { every, next } = active {
            if Instant::now() >= *next {
                self.sever_all();
                *next += *every;
            }
        }
    }

    /// Ends `active`: restarts, continues, opens or resets what it changed.
    pub fn end(&mut self, active: Active) -> anyhow::Result<()> {
        match active {
            Active::Killed(n) => {
                self.out.remove(&n);
                self.cluster
                    .restart(n)
                    .with_context(|| format!("restart node {n} after SIGKILL"))?;
            }
            Active::Paused(n) => {
                self.out.remove(&n);
                self.cluster.signal(n, "CONT")?;
            }
            Active::Blocked(links) => {
                for (from, to) in links {
                    self.proxies.set(from, to, Mode::Pass);
                }
            }
            Active::Delayed => self.proxies.heal_all(),
            Active::Dropping { .. } | Active::Done => {}
        }
        Ok(())
    }

    /// The directed links `cut` blocks, and what it does in words.
    fn links_cut_by(&self, cut: &Cut) -> (Vec<(NodeId, NodeId)>, String) {
        let all = self.proxies.links();
        let pick = |keep: &dyn Fn(NodeId, NodeId) -> bool| {
            all.iter()
                .copied()
                .filter(|&(a, b)| keep(a, b))
                .collect::<Vec<_>>()
        };
        match cut {
            Cut::Isolate(t) => {
                let n = self.resolve(*t);
                (
                    pick(&|a, b| a == n || b == n),
                    format!("isolate {}", describe(*t, n)),
                )
            }
            Cut::Halves { minority } => {
                let side = |x: NodeId| minority.contains(&x);
                (
                    pick(&|a, b| side(a) != side(b)),
                    Fault::Partition(cut.clone()).to_string(),
                )
            }
            Cut::OneWay { node, outbound } => {
                let n = self.resolve(*node);
                let who = describe(*node, n);
                if *outbound {
                    (pick(&|a, _| a == n), format!("cut what {who} sends"))
                } else {
                    (pick(&|_, b| b == n), format!("cut what {who} receives"))
                }
            }
            Cut::Ring => {
                let count = self.cluster.ids().len() as u32;
                let neighbours = |a: NodeId, b: NodeId| {
                    if count <= 3 {
                        // A line 1 - 2 - 3: only the ends are cut apart.
                        a.0.abs_diff(b.0) == 1
                    } else {
                        let d = a.0.abs_diff(b.0);
                        d == 1 || d == count - 1
                    }
                };
                let what = if count <= 3 {
                    "bridge: nodes 1 and 3 cut apart, node 2 sees both".to_string()
                } else {
                    "ring: each node sees only its two neighbours".to_string()
                };
                (pick(&|a, b| !neighbours(a, b)), what)
            }
        }
    }

    fn sever_all(&self) {
        for (from, to) in self.proxies.links() {
            self.proxies.sever(from, to);
        }
    }

    fn restart(&mut self, n: NodeId) -> anyhow::Result<()> {
        self.out.insert(n);
        self.cluster.terminate(n)?;
        self.cluster
            .restart(n)
            .with_context(|| format!("restart node {n} after SIGTERM"))?;
        self.out.remove(&n);
        Ok(())
    }

    /// Heals everything the proxies do (the end of the fault phase).
    pub fn heal_links(&self) {
        self.proxies.heal_all();
    }
}

/// Node `n`, with what made it the target.
fn describe(t: Target, n: NodeId) -> String {
    match t {
        Target::Node(_) => format!("node {n}"),
        Target::LeaderOf(p) => format!("node {n} (leader of partition {p})"),
        Target::Controller => format!("node {n} (the controller)"),
    }
}
