//! A cluster of real `chronik` processes for the cluster end-to-end tests
//! (`clients_cluster.rs`).
//!
//! [`Cluster::start`] picks every node's ports first, so that each node's
//! `--peers` can name all of them, starts nodes 1..=N (one [`Broker`] each,
//! with its own data directory and log) and waits until the cluster has
//! formed: every node's Metadata lists every broker, names the same running
//! controller, and lists `__consumer_offsets` with a running leader for each
//! partition. The controller creates that topic only once every broker has
//! registered and been unfenced, so from then on a topic with replication
//! factor N can be created.
//!
//! What a node knows is read from that node's own Metadata answer, through a
//! minimal Kafka client at the end of this file (Metadata v1, CreateTopics
//! v2) rather than librdkafka: librdkafka answers from whichever broker it
//! picks, from a cache, and sends CreateTopics to the controller itself, while
//! these tests need to ask one particular node, and to send a CreateTopics to
//! a node that has to forward it.
//!
//! Cluster tests take a [`slot`] so that at most [`CLUSTERS_AT_ONCE`] clusters
//! run at a time, whatever the number of test threads.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use conformance::launch;
pub use conformance::mini_client::{create_topic, metadata, MetadataView};

use crate::clients::broker::{Broker, Ports};

/// The internal topic whose creation shows that every broker registered.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The I/O drivers of a 3-node cluster, by mode: every node on one driver,
/// or both drivers side by side (`mixed`), which the peer transport must
/// bridge.
pub const IO_MODES: [(&str, [&str; 3]); 3] = [
    ("tokio", ["tokio", "tokio", "tokio"]),
    ("sync", ["sync", "sync", "sync"]),
    ("mixed", ["tokio", "sync", "tokio"]),
];

/// Serve flags of every cluster node unless [`Cluster::start`]'s `extra`
/// names them.
const CLUSTER_DEFAULTS: [(&str, &str); 2] = [
    // Groups in these tests have one member: no point waiting for more.
    ("--group-initial-rebalance-delay-ms", "0"),
    // Each offsets partition is a Raft group with a directory of files on
    // every node; the tests use one group, and three partitions still spread
    // coordinators over three nodes. Fifty cost about two seconds per
    // cluster, mostly in deleting the ~750 files afterwards.
    ("--offsets-partitions", "3"),
];

/// How long a cluster may take to form, or to agree on partition leaders.
pub const FORM_DEADLINE: Duration = Duration::from_secs(60);
/// How long replicas may take to hold the same log bytes: a follower learns
/// of the last entries a heartbeat later, a restarted one must catch up.
pub const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);

/// How many clusters of one test binary may run at once, unless
/// `$CHRONIK_CLUSTERS_AT_ONCE` says otherwise. A cluster mostly waits, on
/// election timeouts, broker heartbeats and fsyncs: the twelve cluster tests
/// take about 20 s of CPU in all (nodes and clients), run one at a time or
/// two, so two at a time stay far from filling two cores.
pub const CLUSTERS_AT_ONCE: usize = 2;

/// The right to run a cluster; see [`slot`].
pub struct Slot(());

static RUNNING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// Waits until fewer than [`CLUSTERS_AT_ONCE`] clusters run and takes a slot,
/// given back when the [`Slot`] is dropped (also by a failing test).
pub fn slot() -> Slot {
    let limit = std::env::var("CHRONIK_CLUSTERS_AT_ONCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(CLUSTERS_AT_ONCE);
    let (running, freed) = &RUNNING;
    let mut n = running.lock().unwrap_or_else(|e| e.into_inner());
    while *n >= limit {
        n = freed.wait(n).unwrap_or_else(|e| e.into_inner());
    }
    *n += 1;
    Slot(())
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (running, freed) = &RUNNING;
        *running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        freed.notify_one();
    }
}

/// The drivers of `mode`, one of [`IO_MODES`].
pub fn io_mode(mode: &str) -> [&'static str; 3] {
    IO_MODES
        .iter()
        .find(|(m, _)| *m == mode)
        .map(|(_, ios)| *ios)
        .unwrap_or_else(|| panic!("unknown io mode {mode:?}"))
}

/// Polls `f` until it returns `Ok`, or panics once `timeout` has passed with
/// `what` and the last reason `f` gave for not being there yet. It pauses
/// between calls, so it is not for loops that make progress on each one.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::from("never polled");
    launch::poll_until(timeout, || match f() {
        Ok(v) => Some(v),
        Err(why) => {
            last = why;
            None
        }
    })
    .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}; last: {last}"))
}

/// N `chronik` nodes forming one cluster; node `id` is `nodes[id - 1]`.
/// Dropping it kills every node (and, in a failing test, prints each one's
/// log tail).
pub struct Cluster {
    /// What the cluster is for, in messages: `scenario/mode`.
    pub name: String,
    nodes: Vec<Broker>,
    started: Instant,
}

impl Cluster {
    /// Starts one node per entry of `ios` (its driver), with `extra` serve
    /// arguments on every node, and waits until the cluster has formed.
    pub fn start(name: &str, ios: &[&str], extra: &[&str]) -> Cluster {
        Self::start_each(name, ios, extra, |_| Vec::new())
    }

    /// Like [`Cluster::start`], with `each(id)`'s arguments added to node
    /// `id` alone (a trace file per node, say).
    pub fn start_each(
        name: &str,
        ios: &[&str],
        extra: &[&str],
        each: impl Fn(u32) -> Vec<String>,
    ) -> Cluster {
        let ports: Vec<Ports> = ios.iter().map(|_| Ports::free()).collect();
        let peers = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@{}", i + 1, p.raft))
            .collect::<Vec<_>>()
            .join(",");
        let mut args: Vec<String> = vec!["--peers".into(), peers];
        for (flag, value) in CLUSTER_DEFAULTS {
            if !extra.contains(&flag) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cluster = Cluster {
            name: name.to_string(),
            nodes: Vec::with_capacity(ios.len()),
            started: Instant::now(),
        };
        for (i, (io, ports)) in ios.iter().zip(ports).enumerate() {
            let id = i as u32 + 1;
            let mut node_args = args.clone();
            node_args.extend(each(id));
            cluster
                .nodes
                .push(Broker::spawn_node(io, id, ports, &node_args));
        }
        for node in &mut cluster.nodes {
            node.wait_healthy();
        }
        cluster.wait_formed();
        cluster
    }

    /// Prints `what` to the test's output with the cluster's name and the
    /// time since it started, to read next to the nodes' logs.
    pub fn note(&self, what: &str) {
        let t = self.started.elapsed().as_secs_f64();
        eprintln!("[{} +{t:.1}s] {what}", self.name);
    }

    pub fn node(&self, id: u32) -> &Broker {
        &self.nodes[id as usize - 1]
    }

    fn node_mut(&mut self, id: u32) -> &mut Broker {
        &mut self.nodes[id as usize - 1]
    }

    /// Every node's id.
    pub fn ids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.node_id()).collect()
    }

    /// The first node that is not `id` (a follower of `id`'s partition on
    /// an rf-3 topic of three nodes).
    pub fn other_than(&self, id: u32) -> u32 {
        self.ids()
            .into_iter()
            .find(|&n| n != id)
            .unwrap_or_else(|| panic!("[{}] a node besides node {id}", self.name))
    }

    /// The ids of the nodes whose process runs.
    pub fn running(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.node_id())
            .collect()
    }

    /// `bootstrap.servers` naming every running node.
    pub fn bootstrap(&self) -> String {
        self.bootstrap_of(&self.running())
    }

    /// `bootstrap.servers` naming `ids`.
    pub fn bootstrap_of(&self, ids: &[u32]) -> String {
        ids.iter()
            .map(|&id| self.node(id).bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILL node `id`.
    pub fn kill9(&mut self, id: u32) {
        self.note(&format!("SIGKILL node {id}"));
        self.node_mut(id).kill9();
    }

    /// SIGTERM node `id` and wait for its clean exit.
    pub fn stop(&mut self, id: u32) {
        self.note(&format!("SIGTERM node {id}"));
        self.node_mut(id).stop();
    }

    /// Starts node `id` again, on its ports and data directory.
    pub fn restart(&mut self, id: u32) {
        self.note(&format!("restart node {id}"));
        self.node_mut(id).restart();
        self.note(&format!("node {id} answers /health"));
    }

    /// Node `id`'s own Metadata answer, for all topics.
    pub fn metadata(&self, id: u32) -> Result<MetadataView, String> {
        metadata(self.node(id).kafka_addr()).map_err(|e| format!("node {id}: Metadata: {e}"))
    }

    /// Every running node's Metadata, once they all agree on a running
    /// controller: `(controller, views by node)`.
    fn agreed_views(&self) -> Result<(u32, BTreeMap<u32, MetadataView>), String> {
        let running = self.running();
        let mut views = BTreeMap::new();
        for &id in &running {
            views.insert(id, self.metadata(id)?);
        }
        let controllers: BTreeMap<u32, Option<u32>> =
            views.iter().map(|(id, v)| (*id, v.controller)).collect();
        let first = controllers.values().next().copied().flatten();
        match first {
            Some(c) if running.contains(&c) && controllers.values().all(|v| *v == Some(c)) => {
                Ok((c, views))
            }
            _ => Err(format!("controllers by node: {controllers:?}")),
        }
    }

    /// Waits until every running node's Metadata lists exactly the running
    /// nodes as brokers: a SIGKILLed node is fenced once it misses its
    /// heartbeats and left out, and listed again once it is back.
    pub fn wait_brokers_are_the_running_nodes(&self) {
        let running: BTreeSet<u32> = self.running().into_iter().collect();
        wait_until(
            &format!("[{}] brokers listed: {running:?}", self.name),
            FORM_DEADLINE,
            || {
                for &id in &running {
                    let listed = self.metadata(id)?.brokers;
                    if listed != running {
                        return Err(format!("node {id} lists brokers {listed:?}"));
                    }
                }
                Ok(())
            },
        );
        self.note(&format!("Metadata lists brokers {running:?}"));
    }

    /// Waits until the cluster has formed (see the module doc); returns the
    /// controller.
    pub fn wait_formed(&self) -> u32 {
        let all: BTreeSet<u32> = self.ids().into_iter().collect();
        let controller = wait_until(
            &format!("[{}] the cluster to form", self.name),
            FORM_DEADLINE,
            || {
                let (controller, views) = self.agreed_views()?;
                for (id, v) in &views {
                    if v.brokers != all {
                        return Err(format!("node {id} lists brokers {:?}", v.brokers));
                    }
                }
                self.leaders_in(&views, OFFSETS_TOPIC, None)?;
                Ok(controller)
            },
        );
        self.note(&format!("cluster formed, controller node {controller}"));
        controller
    }

    /// The controller, once every running node names the same running one.
    pub fn controller(&self) -> u32 {
        wait_until(
            &format!("[{}] agreement on the controller", self.name),
            FORM_DEADLINE,
            || self.agreed_views().map(|(c, _)| c),
        )
    }

    /// Each partition's leader, once every running node lists `topic` with
    /// `partitions` partitions, each led by a running node, and all agree.
    pub fn wait_leaders(&self, topic: &str, partitions: usize) -> Vec<u32> {
        wait_until(
            &format!(
                "[{}] leaders of {topic}'s {partitions} partitions",
                self.name
            ),
            FORM_DEADLINE,
            || {
                let (_, views) = self.agreed_views()?;
                self.leaders_in(&views, topic, Some(partitions))
            },
        )
    }

    /// `topic`'s partitions as every node of `views` lists them, if they all
    /// agree, with the right number of partitions, on running leaders.
    fn leaders_in(
        &self,
        views: &BTreeMap<u32, MetadataView>,
        topic: &str,
        partitions: Option<usize>,
    ) -> Result<Vec<u32>, String> {
        let running = self.running();
        let mut agreed: Option<Vec<Option<u32>>> = None;
        for (id, v) in views {
            let Some(ps) = v.topics.get(topic) else {
                return Err(format!("node {id} does not list {topic}"));
            };
            if partitions.is_some_and(|n| n != ps.len()) {
                return Err(format!(
                    "node {id} lists {} partitions of {topic}",
                    ps.len()
                ));
            }
            let leaders: Vec<Option<u32>> = ps.iter().map(|p| p.leader).collect();
            if agreed.as_ref().is_some_and(|a| *a != leaders) {
                return Err(format!("nodes disagree on {topic}'s leaders: {views:?}"));
            }
            agreed = Some(leaders);
        }
        let leaders = agreed.ok_or("no node runs")?;
        leaders
            .iter()
            .enumerate()
            .map(|(p, l)| match l {
                Some(l) if running.contains(l) => Ok(*l),
                _ => Err(format!("{topic}/{p} has no running leader ({l:?})")),
            })
            .collect()
    }

    /// The replicas Metadata lists for `topic`/`partition` (asking a running
    /// node).
    pub fn replicas(&self, topic: &str, partition: usize) -> Vec<u32> {
        let id = *self.running().first().expect("a running node");
        let view = self.metadata(id).unwrap_or_else(|e| panic!("{e}"));
        view.topics
            .get(topic)
            .and_then(|ps| ps.get(partition))
            .map(|p| p.replicas.clone())
            .unwrap_or_else(|| panic!("node {id} does not list {topic}/{partition}"))
    }

    /// The `.log` segment files of `topic`/`partition` on node `id`, by file
    /// name (none if the partition has no directory there).
    pub fn log_files(&self, id: u32, topic: &str, partition: usize) -> BTreeMap<String, Vec<u8>> {
        let dir = self
            .node(id)
            .data_dir()
            .join("topics")
            .join(format!("{topic}-{partition}"));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return BTreeMap::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .filter_map(|p| {
                // A segment deleted between listing and reading is not there.
                let bytes = std::fs::read(&p).ok()?;
                Some((p.file_name()?.to_string_lossy().into_owned(), bytes))
            })
            .collect()
    }

    /// Waits until nodes `ids` hold byte-identical, non-empty `.log` files
    /// for `topic`/`partition`.
    pub fn wait_logs_identical(&self, topic: &str, partition: usize, ids: &[u32]) {
        let bytes = wait_until(
            &format!(
                "[{}] identical {topic}-{partition} logs on nodes {ids:?}",
                self.name
            ),
            CATCH_UP_DEADLINE,
            || {
                let logs: BTreeMap<u32, BTreeMap<String, Vec<u8>>> = ids
                    .iter()
                    .map(|&id| (id, self.log_files(id, topic, partition)))
                    .collect();
                let first = logs.values().next().ok_or("no nodes named")?;
                let same = logs.values().all(|l| l == first);
                let bytes: usize = first.values().map(Vec::len).sum();
                if same && bytes > 0 {
                    return Ok(bytes);
                }
                Err(format!("segment sizes by node: {:?}", sizes(&logs)))
            },
        );
        self.note(&format!(
            "nodes {ids:?} hold the same {bytes} bytes of {topic}-{partition}"
        ));
    }
}

/// Each node's segment files and their lengths, for messages.
fn sizes(logs: &BTreeMap<u32, BTreeMap<String, Vec<u8>>>) -> BTreeMap<u32, Vec<(String, usize)>> {
    logs.iter()
        .map(|(id, files)| {
            let s = files.iter().map(|(n, b)| (n.clone(), b.len())).collect();
            (*id, s)
        })
        .collect()
}
