//! The foreground `cargo xtask cluster`: start the nodes, wait for them, watch
//! them until Ctrl-C, stop them.
//!
//! The supervisor holds no state of its own about the nodes: every refresh
//! rereads the state file, so a node that `restart N` started from another
//! shell appears with its new pid, and a `stop` from another shell (which
//! deletes the file) ends the supervisor too. Whatever happens after the first
//! node is spawned (an error, a signal), the nodes are stopped before it returns.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use conformance::launch::poll_until;

use super::args::UpArgs;
use super::layout::{self, NodeSpec};
use super::process::{self, log_tail, stop_all, Children, Proc, Stopped, TERM_GRACE};
use super::scrape::{http_get, Health, Observation};
use super::state::{ClusterState, NodeEntry};
use super::{observe_all, say, table, Paths, START_DEADLINE};
use crate::workspace::Workspace;

/// How often the live table is redrawn.
const REFRESH: Duration = Duration::from_secs(1);
/// Without a terminal: the longest gap between two status lines.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// `cargo xtask cluster [--nodes N] ...`: runs until the cluster is stopped.
pub fn up(ws: &Workspace, paths: &Paths, args: UpArgs) -> anyhow::Result<()> {
    refuse_running(paths)?;
    let specs = layout::plan(args.nodes, args.io, args.port_offset, &paths.dir)?;
    refuse_taken_ports(&specs)?;
    let bin = ws.chronik_release("cluster")?;
    // The build may have taken minutes: look again right before binding.
    refuse_taken_ports(&specs)?;
    let stop = stop_on_signals()?;
    prepare_dirs(paths, &specs, args.keep_data)?;

    let peers = layout::peers(&specs);
    let mut sup = Supervisor {
        state: ClusterState {
            bin,
            supervisor: Proc::me(),
            nodes: Vec::new(),
        },
        obs: Vec::new(),
        children: Children::default(),
        stop,
        started: Instant::now(),
        tty: std::io::stdout().is_terminal(),
    };
    let outcome = sup.start_nodes(paths, specs, &peers, &args.serve_flags);
    let outcome = outcome.and_then(|()| sup.supervise(paths));
    match outcome {
        Ok(End::StoppedElsewhere) => {
            say("\ncluster: the state file is gone (`cargo xtask cluster stop`); exiting\n");
            sup.children.reap();
            Ok(())
        }
        Ok(End::Signal) => sup.shut_down(paths),
        Err(e) => {
            let _ = sup.shut_down(paths);
            Err(e)
        }
    }
}

/// Why watching ended.
enum End {
    /// Ctrl-C, SIGTERM or SIGHUP.
    Signal,
    /// Another invocation stopped the cluster and deleted the state file.
    StoppedElsewhere,
}

struct Supervisor {
    /// The state as last read from the file.
    state: ClusterState,
    /// What the last refresh saw of each node of `state`.
    obs: Vec<Observation>,
    children: Children,
    /// Set by SIGINT, SIGTERM or SIGHUP.
    stop: Arc<AtomicBool>,
    started: Instant,
    /// Redraw a table in place, or print lines (CI logs, pipes).
    tty: bool,
}

impl Supervisor {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Spawns every node and records it in the state file.
    fn start_nodes(
        &mut self,
        paths: &Paths,
        specs: Vec<NodeSpec>,
        peers: &str,
        extra: &[String],
    ) -> anyhow::Result<()> {
        for spec in specs {
            let args = layout::serve_args(&spec, peers, extra);
            let child = process::spawn(&self.state.bin, &args, &spec.log, true)
                .with_context(|| format!("node {}", spec.id))?;
            let proc = Proc::read(child.id());
            self.children.adopt(child);
            self.state.nodes.push(NodeEntry { spec, args, proc });
        }
        self.state.save(&paths.state)?;
        say(&intro(paths, &self.state));
        Ok(())
    }

    /// Waits for the nodes to become ready, then watches them.
    fn supervise(&mut self, paths: &Paths) -> anyhow::Result<End> {
        let alive = self.wait_ready(paths);
        if self.stopping() {
            return Ok(End::Signal);
        }
        if alive == 0 {
            bail!("no node is running: every node exited during start (see above)");
        }
        Ok(self.watch(paths))
    }

    /// Waits until every node answers `/health` with 200 or exits, for at most
    /// [`START_DEADLINE`]; reports each as it settles. Returns how many run.
    fn wait_ready(&mut self, paths: &Paths) -> usize {
        note!(
            "waiting up to {} s for every node's /health",
            START_DEADLINE.as_secs()
        );
        let mut pending: Vec<&NodeEntry> = self.state.nodes.iter().collect();
        let (stop, children, started) = (&self.stop, &mut self.children, self.started);
        poll_until(START_DEADLINE, || {
            children.reap();
            pending.retain(|n| {
                let id = n.spec.id;
                if !n.proc.is_some_and(|p| p.is_alive()) {
                    note!(
                        "node {id}: exited during start; last lines of {}:\n{}",
                        paths.show(&n.spec.log),
                        log_tail(&n.spec.log, 10)
                    );
                    return false;
                }
                if matches!(http_get(n.spec.ports.admin, "/health"), Ok((200, _))) {
                    let secs = started.elapsed().as_secs_f64();
                    note!("node {id}: ready after {secs:.1} s");
                    return false;
                }
                true
            });
            (pending.is_empty() || stop.load(Ordering::Relaxed)).then_some(())
        });
        for n in &pending {
            if !self.stopping() {
                note!(
                    "node {}: not ready after {} s; watching anyway (log {})",
                    n.spec.id,
                    START_DEADLINE.as_secs(),
                    paths.show(&n.spec.log)
                );
            }
        }
        self.obs = observe_all(&self.state);
        self.state.live_nodes().len()
    }

    /// Refreshes until a signal or until the state file disappears.
    fn watch(&mut self, paths: &Paths) -> End {
        let mut drawn = 0;
        let mut last_line: Option<(String, Instant)> = None;
        let mut load_error_shown = false;
        loop {
            self.children.reap();
            match ClusterState::load(&paths.state) {
                Ok(Some(s)) => self.state = s,
                Ok(None) => return End::StoppedElsewhere,
                // Keep showing the last good state; say so once.
                Err(e) if !load_error_shown => {
                    load_error_shown = true;
                    note!("cluster: {e:#}");
                }
                Err(_) => {}
            }
            self.obs = observe_all(&self.state);
            if self.tty {
                let frame = format!(
                    "{}\n{}",
                    self.headline(),
                    table::render(&self.state, &self.obs, None)
                );
                let up = if drawn > 0 {
                    format!("\x1b[{drawn}A\r\x1b[J")
                } else {
                    String::new()
                };
                say(&format!("{up}{frame}"));
                drawn = frame.lines().count();
            } else {
                let line = table::status_line(&self.state, &self.obs);
                let due = last_line
                    .as_ref()
                    .is_none_or(|(prev, at)| *prev != line || at.elapsed() >= LINE_EVERY);
                if due {
                    say(&format!("[{}] {line}\n", uptime(self.started.elapsed())));
                    last_line = Some((line, Instant::now()));
                }
            }
            let stop = &self.stop;
            if poll_until(REFRESH, || stop.load(Ordering::Relaxed).then_some(())).is_some() {
                return End::Signal;
            }
        }
    }

    fn headline(&self) -> String {
        let live = self.obs.iter().filter(|o| o.health == Health::Up).count();
        format!(
            "chronik cluster: {live}/{} up, running {} (Ctrl-C stops it; another shell: \
             cargo xtask cluster kill N | restart N | stop)",
            self.state.nodes.len(),
            uptime(self.started.elapsed())
        )
    }

    /// Stops every node the state file names (it may have gained restarted
    /// ones since the last refresh) and prints the final summary.
    fn shut_down(&mut self, paths: &Paths) -> anyhow::Result<()> {
        if let Ok(Some(s)) = ClusterState::load(&paths.state) {
            // Only a file this supervisor wrote: a stale one from an earlier
            // run (if saving failed) names other processes.
            if s.supervisor == self.state.supervisor && s.nodes.len() == self.state.nodes.len() {
                self.state = s;
            }
        }
        if self.obs.len() != self.state.nodes.len() {
            self.obs = observe_all(&self.state);
        }
        let live = self.state.live_nodes().len();
        if live > 0 {
            note!(
                "\ncluster: stopping {live} node(s) (SIGTERM; SIGKILL after {} s; \
                 Ctrl-C again leaves them running)",
                TERM_GRACE.as_secs()
            );
        }
        let procs: Vec<Option<Proc>> = self.state.nodes.iter().map(|n| n.proc).collect();
        let stopped = stop_all(&procs, &mut self.children, TERM_GRACE);
        say(&format!(
            "\nfinal summary after {} (state as last seen, then how each node stopped):\n{}",
            uptime(self.started.elapsed()),
            table::render(&self.state, &self.obs, Some(&stopped))
        ));
        if stopped.contains(&Stopped::StillRunning) {
            bail!(
                "some nodes survived SIGKILL; {} stays",
                paths.show(&paths.state)
            );
        }
        paths.forget_if_all_down();
        Ok(())
    }
}

/// Refuses to start over a cluster whose nodes or supervisor still run.
fn refuse_running(paths: &Paths) -> anyhow::Result<()> {
    let Some(state) = ClusterState::load(&paths.state)? else {
        return Ok(());
    };
    let mut running: Vec<String> = state
        .live_nodes()
        .iter()
        .filter_map(|n| {
            n.proc
                .map(|p| format!("node {} (pid {})", n.spec.id, p.pid))
        })
        .collect();
    if let Some(p) = state.supervisor.filter(Proc::is_alive) {
        running.push(format!("its supervisor (pid {})", p.pid));
    }
    if !running.is_empty() {
        bail!(
            "a cluster is already running: {}; `cargo xtask cluster status` shows it, \
             `cargo xtask cluster stop` stops it",
            running.join(", ")
        );
    }
    Ok(())
}

fn refuse_taken_ports(specs: &[NodeSpec]) -> anyhow::Result<()> {
    let taken = layout::taken_ports(specs);
    if !taken.is_empty() {
        bail!(
            "ports in use: {}; stop whatever holds them (another broker, a Kafka) \
             or shift every port with --port-offset K",
            taken.join(", ")
        );
    }
    Ok(())
}

/// Creates the data directories, wiped first unless `keep`: a cluster of a
/// different size or id would not recognise the old Raft state as its own.
fn prepare_dirs(paths: &Paths, specs: &[NodeSpec], keep: bool) -> anyhow::Result<()> {
    for s in specs {
        if !keep {
            match std::fs::remove_dir_all(&s.data_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("wipe {}", paths.show(&s.data_dir)))
                }
            }
        }
        std::fs::create_dir_all(&s.data_dir)
            .with_context(|| format!("create {}", paths.show(&s.data_dir)))?;
    }
    Ok(())
}

/// A flag raised by SIGINT, SIGTERM or SIGHUP. A second SIGINT (Ctrl-C
/// pressed again) while it is raised exits at once, leaving the nodes to
/// `cargo xtask cluster stop`; a SIGTERM or SIGHUP never does, since a closing
/// terminal sends SIGHUP right after the Ctrl-C that asked for a clean stop.
fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    // Registered before the flag's own handler, so it sees the flag as it was
    // before this signal raised it.
    signal_hook::flag::register_conditional_shutdown(SIGINT, 1, Arc::clone(&flag))
        .context("install a SIGINT handler")?;
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).context("install a signal handler")?;
    }
    Ok(flag)
}

/// What a user needs to use the cluster, printed once after the start.
fn intro(paths: &Paths, state: &ClusterState) -> String {
    let specs: Vec<NodeSpec> = state.nodes.iter().map(|n| n.spec.clone()).collect();
    let bootstrap = layout::bootstrap(&specs);
    let mut s = format!(
        "cluster: {} node(s) on 127.0.0.1, cluster id {}, binary {}\n",
        specs.len(),
        layout::CLUSTER_ID,
        paths.show(&state.bin)
    );
    for n in &state.nodes {
        s.push_str(&format!(
            "  node {}  {:5}  pid {:>7}  kafka {}  raft {}  admin {}  log {}\n",
            n.spec.id,
            n.spec.io.as_str(),
            n.proc.map_or("-".into(), |p| p.pid.to_string()),
            n.spec.ports.kafka,
            n.spec.ports.raft,
            n.spec.ports.admin,
            paths.show(&n.spec.log)
        ));
    }
    s.push_str(&format!(
        "state file: {}\n\n\
         bootstrap servers: {bootstrap}\n\
         try:  kcat -b {bootstrap} -L\n      \
         echo hello | kcat -b {bootstrap} -P -t demo\n      \
         kcat -b {bootstrap} -C -t demo -o beginning -e\n\n",
        paths.show(&paths.state)
    ));
    s
}

/// `1m05s`, `42s`.
fn uptime(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_at_a_glance() {
        assert_eq!(uptime(Duration::from_secs(42)), "42s");
        assert_eq!(uptime(Duration::from_secs(65)), "1m05s");
    }
}
