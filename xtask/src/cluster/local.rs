//! A cluster owned by the task that runs it (`bench --cluster`, `chaos`):
//! `chronik` processes on free loopback ports, laid out, started and
//! restarted by the same code as `cargo xtask cluster`'s (`cluster::layout`,
//! `cluster::process`), but owned by the task: they are its children in its
//! process group, so Ctrl-C stops them with it, and dropping the cluster kills
//! them and deletes their data.
//!
//! Free ports rather than `cargo xtask cluster`'s fixed scheme, so a bench or
//! a chaos run goes on beside a local cluster someone is trying by hand.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{bail, Context};
use conformance::launch;

use crate::cluster::layout::{self, IoChoice, NodeId, NodeSpec, Ports};
use crate::cluster::process::{log_tail, node_command, Proc, TERM_GRACE};

/// How long a node may take to answer `/health` with 200 after it starts.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running cluster of nodes this process started.
pub struct LocalCluster {
    bin: PathBuf,
    nodes: Vec<Node>,
    /// Leave the data directories when dropped (evidence of a failed run).
    keep_data: bool,
}

struct Node {
    spec: NodeSpec,
    /// The arguments after the binary, the same for every restart.
    args: Vec<String>,
    /// Environment variables set for it, the same for every restart.
    env: Vec<(String, String)>,
    /// `None` while the node is killed.
    child: Option<Child>,
}

impl LocalCluster {
    /// Starts `count` nodes running `bin` with `extra` flags after the
    /// cluster's own; node N keeps its data in `data_dir/node-N` (wiped first)
    /// and writes its log to `logs_dir/<name>-node-N.log`. Returns once every
    /// node answers `/health` with 200.
    pub fn start(
        bin: &Path,
        count: u32,
        io: IoChoice,
        data_dir: &Path,
        logs_dir: &Path,
        name: &str,
        extra: &[String],
    ) -> anyhow::Result<LocalCluster> {
        let specs = LocalCluster::plan(count, io, data_dir, logs_dir, name)?;
        let peers = layout::peers(&specs);
        LocalCluster::launch(bin, specs, |_| (peers.clone(), Vec::new()), extra)
    }

    /// The layout [`LocalCluster::start`] uses, on free ports, for a caller
    /// that needs the addresses before the nodes start (to put a proxy in
    /// front of each node's Raft listener).
    pub fn plan(
        count: u32,
        io: IoChoice,
        data_dir: &Path,
        logs_dir: &Path,
        name: &str,
    ) -> anyhow::Result<Vec<NodeSpec>> {
        let ports = free_ports(3 * count as usize)?;
        Ok((1..=count)
            .zip(ports.chunks(3))
            .map(|(n, p)| {
                let id = NodeId(n);
                NodeSpec {
                    id,
                    io: io.for_node(id),
                    ports: Ports {
                        kafka: p[0],
                        raft: p[1],
                        admin: p[2],
                    },
                    data_dir: data_dir.join(format!("node-{n}")),
                    log: logs_dir.join(format!("{name}-node-{n}.log")),
                }
            })
            .collect())
    }

    /// Starts the nodes `specs` (each data directory wiped first), node N
    /// with the `--peers` and environment variables `setup(N's spec)` gives,
    /// and returns once every node answers `/health` with 200.
    pub fn launch(
        bin: &Path,
        specs: Vec<NodeSpec>,
        setup: impl Fn(&NodeSpec) -> (String, Vec<(String, String)>),
        extra: &[String],
    ) -> anyhow::Result<LocalCluster> {
        let mut cluster = LocalCluster {
            bin: bin.to_path_buf(),
            nodes: Vec::new(),
            keep_data: false,
        };
        for spec in specs {
            let _ = std::fs::remove_dir_all(&spec.data_dir);
            std::fs::create_dir_all(&spec.data_dir)
                .with_context(|| format!("create {}", spec.data_dir.display()))?;
            let (peers, env) = setup(&spec);
            let args = layout::serve_args(&spec, &peers, extra);
            let child = node_command(bin, &args, &spec.log, true)?
                .envs(env.iter().map(|(k, v)| (k, v)))
                .spawn()
                .with_context(|| format!("spawn node {} ({})", spec.id, bin.display()))?;
            cluster.nodes.push(Node {
                spec,
                args,
                env,
                child: Some(child),
            });
        }
        for i in 0..cluster.nodes.len() {
            cluster.wait_healthy(i)?;
        }
        Ok(cluster)
    }

    /// The Kafka `bootstrap.servers` of every node.
    pub fn bootstrap(&self) -> String {
        let specs: Vec<NodeSpec> = self.nodes.iter().map(|n| n.spec.clone()).collect();
        layout::bootstrap(&specs)
    }

    /// Every node's id, node 1 first.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(|n| n.spec.id).collect()
    }

    /// The process id of every running node, node 1 first.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.child.as_ref().map(Child::id))
            .collect()
    }

    /// The process id of node `id`, if it runs.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        self.node(id).ok()?.child.as_ref().map(Child::id)
    }

    /// Node `id`'s admin listener (`/health`, `/metrics`).
    pub fn admin(&self, id: NodeId) -> anyhow::Result<SocketAddr> {
        Ok(self.node(id)?.spec.ports.admin)
    }

    /// SIGKILLs node `id` at once (the caller has just taken the time) and
    /// reaps it.
    pub fn kill(&mut self, id: NodeId) -> anyhow::Result<()> {
        let i = self.index(id)?;
        let mut child = self.nodes[i]
            .child
            .take()
            .with_context(|| format!("node {id} is not running"))?;
        child
            .kill()
            .with_context(|| format!("SIGKILL node {id} (pid {})", child.id()))?;
        child.wait().with_context(|| format!("reap node {id}"))?;
        Ok(())
    }

    /// Starts node `id` again with its original flags and data (its log is
    /// appended to) and waits until it answers `/health` with 200.
    pub fn restart(&mut self, id: NodeId) -> anyhow::Result<()> {
        let i = self.index(id)?;
        let node = &mut self.nodes[i];
        if node.child.is_some() {
            bail!("node {id} is still running");
        }
        let child = node_command(&self.bin, &node.args, &node.spec.log, false)?
            .envs(node.env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .with_context(|| format!("spawn node {id}"))?;
        node.child = Some(child);
        self.wait_healthy(i)
    }

    /// Stops node `id` with SIGTERM (it syncs its logs and exits) and reaps
    /// it; SIGKILL if it takes longer than the grace period.
    pub fn terminate(&mut self, id: NodeId) -> anyhow::Result<()> {
        let i = self.index(id)?;
        let mut child = self.nodes[i]
            .child
            .take()
            .with_context(|| format!("node {id} is not running"))?;
        if let Some(p) = Proc::read(child.id()) {
            p.signal("CONT")?;
            p.signal("TERM")?;
        }
        let reaped = launch::poll_until(TERM_GRACE, || child.try_wait().ok().flatten());
        if reaped.is_none() {
            child
                .kill()
                .with_context(|| format!("SIGKILL node {id} after SIGTERM"))?;
            child.wait().with_context(|| format!("reap node {id}"))?;
        }
        Ok(())
    }

    /// Sends node `id` `signal` (`STOP`, `CONT`) if it runs: a pause freezes
    /// every thread at once, the way a long GC pause or a stalled VM does.
    pub fn signal(&self, id: NodeId, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid(id) else {
            bail!("node {id} is not running");
        };
        match Proc::read(pid) {
            Some(p) => p.signal(signal),
            None => bail!("node {id} (pid {pid}) is gone"),
        }
    }

    /// Keeps every node's data directory when the cluster is dropped, for
    /// a run whose failure someone will want to examine.
    pub fn keep_data(&mut self) {
        self.keep_data = true;
    }

    /// Whether node `id` has a process (it may be paused).
    pub fn is_running(&self, id: NodeId) -> bool {
        self.pid(id).is_some()
    }

    /// Node `id`'s layout.
    pub fn spec(&self, id: NodeId) -> anyhow::Result<&NodeSpec> {
        Ok(&self.node(id)?.spec)
    }

    /// Fails, naming the node, its exit status and its last log lines, if a
    /// node that was not killed on purpose has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        for n in &mut self.nodes {
            let Some(child) = n.child.as_mut() else {
                continue;
            };
            if let Some(status) = child.try_wait().context("poll a node")? {
                n.child = None;
                bail!(
                    "node {} exited on its own ({status}); last lines of {}:\n{}",
                    n.spec.id,
                    n.spec.log.display(),
                    log_tail(&n.spec.log, 30)
                );
            }
        }
        Ok(())
    }

    /// The last `lines` lines of every node's log, each under its node.
    pub fn log_tails(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "node {} ({}):\n{}",
                    n.spec.id,
                    n.spec.log.display(),
                    log_tail(&n.spec.log, lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every node's log file, node 1 first.
    pub fn logs(&self) -> Vec<(NodeId, PathBuf)> {
        self.nodes
            .iter()
            .map(|n| (n.spec.id, n.spec.log.clone()))
            .collect()
    }

    fn node(&self, id: NodeId) -> anyhow::Result<&Node> {
        Ok(&self.nodes[self.index(id)?])
    }

    fn index(&self, id: NodeId) -> anyhow::Result<usize> {
        self.nodes
            .iter()
            .position(|n| n.spec.id == id)
            .with_context(|| format!("no node {id} in a cluster of {}", self.nodes.len()))
    }

    fn wait_healthy(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let Some(child) = node.child.as_mut() else {
            bail!("node {} is not running", node.spec.id);
        };
        if let Err(why) = launch::wait_healthy(child, node.spec.ports.admin, START_DEADLINE) {
            bail!(
                "node {} {why}; last lines of {}:\n{}",
                node.spec.id,
                node.spec.log.display(),
                log_tail(&node.spec.log, 30)
            );
        }
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut child) = n.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if self.keep_data {
            return;
        }
        for n in &self.nodes {
            let _ = std::fs::remove_dir_all(&n.spec.data_dir);
        }
    }
}

/// Where [`free_ports`] looks: below Linux's ephemeral range (32768 and
/// up by default), which outgoing connections draw their source ports from.
/// A port picked there can be taken by any client or proxy connection
/// before the node binds it, or while a killed node is down; this range
/// only another listener can take.
const PICK_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// `n` distinct loopback addresses nobody listens on, from [`PICK_PORTS`]
/// starting at a point that differs between processes (so concurrent runs
/// rarely probe the same ports): every one is held until all are picked, so
/// none is handed out twice.
fn free_ports(n: usize) -> anyhow::Result<Vec<SocketAddr>> {
    let span = u32::from(PICK_PORTS.end - PICK_PORTS.start);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let start = (std::process::id() ^ nanos) % span;
    let mut held = Vec::with_capacity(n);
    for i in 0..span {
        if held.len() == n {
            break;
        }
        let port = PICK_PORTS.start + ((start + i) % span) as u16;
        if let Ok(l) = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        bail!(
            "only {} free loopback ports in {PICK_PORTS:?}, {n} needed",
            held.len()
        );
    }
    held.iter()
        .map(|l| l.local_addr().context("a picked port's address"))
        .collect()
}
