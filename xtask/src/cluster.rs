//! `cargo xtask cluster`: a local multi-node Chronik cluster on 127.0.0.1, to
//! try replication by hand: produce with a real client, kill a node, watch the
//! metadata leader move, restart it, watch it catch up.
//!
//! `cargo xtask cluster [--nodes 3] [--io tokio|sync|mixed]` builds the release
//! `chronik`, starts the nodes with data in `target/cluster/node-N/` and output
//! in `target/cluster/node-N.log`, prints the bootstrap servers and a kcat line,
//! then stays in the foreground as the supervisor: a table refreshed every
//! second (or, without a terminal, a status line when something changes and at
//! least every few seconds) until Ctrl-C, which stops every node (SIGTERM, then
//! SIGKILL after 10 s) and prints a final summary.
//!
//! Other invocations act on the same cluster through `target/cluster/state.json`
//! (see [`state`]): `status` prints the table once, `kill N` SIGKILLs node N,
//! `restart N` starts it again with its original flags, `stop` stops them all.
//! The nodes run in process groups of their own, so they outlive a crashed
//! supervisor and `stop` still finds them.
//!
//! Ports are fixed (see [`layout`]): node N's Kafka listener is 9092+N-1, so
//! the bootstrap list of a 3-node cluster is always
//! `127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094`.
//!
//! [`layout`], [`process`] and [`scrape`] are shared with
//! `cargo xtask bench --cluster`, which starts its own nodes the same way
//! (on free ports, as its children) and reads the same `/metrics`.

/// `eprintln!` that ignores errors, for the same reason as [`say`]: stderr
/// may be a terminal that has gone away while the nodes are being stopped.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod args;
pub(crate) mod converge;
pub(crate) mod layout;
pub(crate) mod local;
pub(crate) mod process;
pub(crate) mod scrape;
mod state;
mod supervise;
mod table;
pub(crate) mod topics;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use conformance::launch::poll_until;

use crate::workspace::Workspace;
use args::Command;
use layout::NodeId;
use process::{log_tail, stop_all, Children, Proc, TERM_GRACE};
use scrape::{http_get, Observation};
use state::ClusterState;

/// How long a node may take to answer `/health` with 200 after it starts.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `cargo xtask cluster` with the arguments after `cluster`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let command = args::parse(args)?;
    let ws = Workspace::locate()?;
    let paths = Paths::of(&ws);
    match command {
        Command::Help => {
            say(&format!("{}\n", args::USAGE));
            Ok(())
        }
        Command::Up(up) => supervise::up(&ws, &paths, up),
        Command::Status => status(&paths),
        Command::Kill(id) => kill(&paths, id),
        Command::Restart(id) => restart(&paths, id),
        Command::Stop => stop(&paths),
    }
}

/// Where a cluster's files are.
struct Paths {
    /// `target/cluster/`: node data directories and logs.
    dir: PathBuf,
    /// `target/cluster/state.json`.
    state: PathBuf,
    /// The workspace root, to show paths short.
    root: PathBuf,
}

impl Paths {
    fn of(ws: &Workspace) -> Paths {
        let dir = ws.target.join("cluster");
        Paths {
            state: dir.join("state.json"),
            dir,
            root: ws.root.clone(),
        }
    }

    /// `path` relative to the workspace root when it is inside it.
    fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// The state of the cluster there is, or an error saying how to start one.
    fn load(&self) -> anyhow::Result<ClusterState> {
        ClusterState::load(&self.state)?.with_context(|| {
            format!(
                "no cluster: {} does not exist (start one with `cargo xtask cluster`)",
                self.show(&self.state)
            )
        })
    }

    /// Deletes the state file if every node in it is down, so the next
    /// `cargo xtask cluster` starts without a stale file to refuse.
    fn forget_if_all_down(&self) {
        if let Ok(Some(s)) = ClusterState::load(&self.state) {
            if s.live_nodes().is_empty() {
                let _ = std::fs::remove_file(&self.state);
            }
        }
    }
}

/// Writes to stdout, ignoring errors: a closed pipe (`| head`) or a closed
/// terminal must not panic the supervisor before it has stopped the nodes.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Looks at every node at once (a hung node costs one timeout, not one each).
fn observe_all(state: &ClusterState) -> Vec<Observation> {
    std::thread::scope(|s| {
        let looks: Vec<_> = state
            .nodes
            .iter()
            .map(|n| {
                s.spawn(move || {
                    let alive = n.proc.is_some_and(|p| p.is_alive());
                    Observation::take(alive, n.spec.id, n.spec.ports.admin)
                })
            })
            .collect();
        looks
            .into_iter()
            .map(|h| {
                h.join().unwrap_or(Observation {
                    health: scrape::Health::Unready,
                    raft: None,
                })
            })
            .collect()
    })
}

/// Waits until `proc` answers `/health` on `admin` with 200: `Ok(true)`, or
/// `Ok(false)` if it exits first; an error if the deadline passes.
fn wait_healthy(proc: Proc, admin: std::net::SocketAddr) -> anyhow::Result<bool> {
    poll_until(START_DEADLINE, || {
        if !proc.is_alive() {
            return Some(false);
        }
        matches!(http_get(admin, "/health"), Ok((200, _))).then_some(true)
    })
    .with_context(|| format!("not ready after {} s", START_DEADLINE.as_secs()))
}

fn status(paths: &Paths) -> anyhow::Result<()> {
    let state = paths.load()?;
    let obs = observe_all(&state);
    say(&table::render(&state, &obs, None));
    let specs: Vec<_> = state.nodes.iter().map(|n| n.spec.clone()).collect();
    say(&format!(
        "bootstrap servers: {}\n",
        layout::bootstrap(&specs)
    ));
    match state.supervisor {
        Some(p) if p.is_alive() => say(&format!("supervisor: pid {}\n", p.pid)),
        _ => say("supervisor: none (`cargo xtask cluster stop` stops the nodes)\n"),
    }
    Ok(())
}

fn kill(paths: &Paths, id: NodeId) -> anyhow::Result<()> {
    let mut state = paths.load()?;
    let node = state.node_mut(id)?;
    let Some(proc) = node.proc.filter(Proc::is_alive) else {
        bail!("node {id} is not running");
    };
    proc.signal("KILL")?;
    if poll_until(TERM_GRACE, || (!proc.is_alive()).then_some(())).is_none() {
        bail!("node {id} (pid {}) still runs after SIGKILL", proc.pid);
    }
    say(&format!(
        "node {id} (pid {}) killed with SIGKILL\n",
        proc.pid
    ));
    Ok(())
}

fn restart(paths: &Paths, id: NodeId) -> anyhow::Result<()> {
    let mut state = paths.load()?;
    let node = state.node_mut(id)?.clone();
    if let Some(old) = node.proc.filter(Proc::is_alive) {
        note!("node {id}: SIGTERM to pid {}", old.pid);
        let [how] = stop_all(&[Some(old)], &mut Children::default(), TERM_GRACE)[..] else {
            bail!("node {id}: no stop outcome");
        };
        note!("node {id}: stopped ({})", how.describe());
        if old.is_alive() {
            bail!(
                "node {id} (pid {}) does not stop; not starting another",
                old.pid
            );
        }
    }
    let taken = layout::taken_ports(std::slice::from_ref(&node.spec));
    if !taken.is_empty() {
        bail!("node {id}: ports in use: {}", taken.join(", "));
    }
    let child = process::spawn(&state.bin, &node.args, &node.spec.log, false)?;
    let proc = Proc::read(child.id())
        .with_context(|| format!("node {id}: pid {} vanished at once", child.id()))?;
    state.node_mut(id)?.proc = Some(proc);
    state.save(&paths.state)?;
    note!(
        "node {id}: started as pid {}; waiting for /health",
        proc.pid
    );
    let log = paths.show(&node.spec.log);
    match wait_healthy(proc, node.spec.ports.admin) {
        Ok(true) => {
            say(&format!(
                "node {id} (pid {}) restarted and ready\n",
                proc.pid
            ));
            Ok(())
        }
        Ok(false) => bail!(
            "node {id} exited during start; last lines of {log}:\n{}",
            log_tail(&node.spec.log, 15)
        ),
        Err(e) => bail!("node {id} (pid {}) runs but is {e:#}; see {log}", proc.pid),
    }
}

fn stop(paths: &Paths) -> anyhow::Result<()> {
    let state = paths.load()?;
    let obs = observe_all(&state);
    let live = state.live_nodes().len();
    note!(
        "cluster: stopping {live} node(s) (SIGTERM; SIGKILL after {} s)",
        TERM_GRACE.as_secs()
    );
    let procs: Vec<Option<Proc>> = state.nodes.iter().map(|n| n.proc).collect();
    let stopped = stop_all(&procs, &mut Children::default(), TERM_GRACE);
    say(&table::render(&state, &obs, Some(&stopped)));
    if stopped.contains(&process::Stopped::StillRunning) {
        bail!("some nodes survived SIGKILL; the state file stays");
    }
    paths.forget_if_all_down();
    if let Some(p) = state.supervisor.filter(Proc::is_alive) {
        say(&format!(
            "the supervisor (pid {}) exits at its next refresh\n",
            p.pid
        ));
    }
    Ok(())
}
