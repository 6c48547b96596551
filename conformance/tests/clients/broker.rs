//! A real `chronik` process for the client-compatibility tests.
//!
//! [`Broker::start`] picks free loopback ports, makes a temporary data
//! directory, spawns `chronik serve` with its output in `broker.log` inside that
//! directory and waits (with a deadline) until `GET /health` answers 200. The
//! process can be stopped cleanly ([`Broker::stop`]), killed ([`Broker::kill9`])
//! and started again on the same ports and data ([`Broker::restart`]). Dropping
//! the handle kills the process; if the test is panicking, the tail of the
//! broker log is printed so the failure can be read next to the broker's view,
//! and the temporary directory (data and whole log) is kept.
//!
//! A broker is one node: [`Broker::start`] makes a single-node cluster, and
//! [`Broker::spawn_node`] starts one node of several (`clients/cluster.rs`) with
//! the ports the caller picked for it, so the peers can name each other.
//!
//! The binary is `$CHRONIK_BIN` if set; otherwise `cargo build -p broker --bin
//! chronik` is run once per test process (a no-op when it is fresh, so the tests
//! never run against a stale broker) and `<target>/debug/chronik` is used.

#![allow(dead_code)]

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use conformance::launch;

/// Both I/O drivers; every client test runs once against each.
pub const DRIVERS: [&str; 2] = ["tokio", "sync"];

/// How long a broker may take to answer `/health` 200 after it is spawned.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd broker may take to exit.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The loopback addresses one node listens on; a restart reuses them.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub kafka: SocketAddr,
    pub admin: SocketAddr,
    pub raft: SocketAddr,
}

impl Ports {
    /// Three addresses nobody listens on right now, from [`PORTS`].
    pub fn free() -> Ports {
        Ports {
            kafka: free_port(),
            admin: free_port(),
            raft: free_port(),
        }
    }
}

/// Where the nodes' ports come from: below Linux's ephemeral range (32768
/// and up), where outgoing connections take their local ports. A port the
/// kernel hands out as free (`launch::free_port`) can be taken by any
/// client's or peer's connection before the node binds it, or while a
/// killed node is down; with clusters starting side by side that happened.
const PORTS: std::ops::Range<u16> = 20000..32000;

/// The next port of [`PORTS`] not bound by anyone right now. Each test
/// process walks the range from its own starting point, so concurrent
/// processes rarely probe the same ports.
fn free_port() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PORTS.end - PORTS.start);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = PORTS.start + offset as u16;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().expect("a bound listener's address");
        }
    }
    panic!("no free port in {PORTS:?}");
}

pub struct Broker {
    pub io: String,
    node_id: u32,
    child: Option<Child>,
    dir: tempfile::TempDir,
    ports: Ports,
    extra: Vec<String>,
    starts: u32,
}

impl Broker {
    /// Starts a broker with the given driver (`tokio` or `sync`), topics
    /// auto-created with one partition, log level info.
    pub fn start(io: &str) -> Broker {
        Self::start_with(io, &[])
    }

    /// Starts a broker with extra `serve` arguments, which replace the defaults
    /// of [`Broker::start`] for the flags they name.
    pub fn start_with(io: &str, extra: &[&str]) -> Broker {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut b = Self::spawn_node(io, 1, Ports::free(), &extra);
        b.wait_healthy();
        b
    }

    /// Spawns node `node_id` listening on `ports`, with extra `serve`
    /// arguments (a cluster's `--peers`, for one), without waiting for it:
    /// [`Broker::wait_healthy`] does, so that the nodes of a cluster can boot
    /// side by side.
    pub fn spawn_node(io: &str, node_id: u32, ports: Ports, extra: &[String]) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix(&format!("chronik-client-{io}-n{node_id}-"))
            .tempdir()
            .expect("create the broker's temporary directory");
        let mut b = Broker {
            io: io.to_string(),
            node_id,
            child: None,
            dir,
            ports,
            extra: extra.to_vec(),
            starts: 0,
        };
        b.spawn();
        b
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.ports.kafka.to_string()
    }

    /// The Kafka listener.
    pub fn kafka_addr(&self) -> SocketAddr {
        self.ports.kafka
    }

    pub fn node_id(&self) -> u32 {
        self.node_id
    }

    /// Whether the process runs (it was not killed or stopped since its
    /// last start).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `node N --io IO`, for messages.
    pub fn label(&self) -> String {
        format!("node {} --io {}", self.node_id, self.io)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    /// The whole broker log so far (every start appends to it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last `n` lines of the broker log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is running").id()
    }

    /// SIGKILL: no chance to sync anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is running");
        child.kill().expect("SIGKILL the broker");
        let status = child.wait().expect("reap the broker");
        assert!(
            !status.success(),
            "[{}] a SIGKILLed broker cannot exit cleanly: {status:?}",
            self.label()
        );
    }

    /// SIGTERM, then wait (with a deadline) for the exit; a clean stop exits 0.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is running");
        signal(child.id(), "TERM");
        let exited =
            launch::poll_until(STOP_DEADLINE, || child.try_wait().expect("poll the broker"));
        let Some(status) = exited else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "[{}] broker still running {STOP_DEADLINE:?} after SIGTERM\n{}",
                self.label(),
                self.log_tail(40)
            );
        };
        assert!(
            status.success(),
            "[{}] broker did not exit cleanly on SIGTERM: {status:?}\n{}",
            self.label(),
            self.log_tail(40)
        );
        status
    }

    /// Starts the process again on the same ports and data directory. Stops a
    /// running one first (SIGTERM).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
        self.wait_healthy();
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the broker log");
        writeln!(
            log,
            "===== test harness: start #{} (node {}, --io {}) =====",
            self.starts, self.node_id, self.io
        )
        .unwrap();
        let log2 = log.try_clone().unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .args(["--node-id", &self.node_id.to_string()])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--kafka-listen", &self.ports.kafka.to_string()])
            .args(["--admin-listen", &self.ports.admin.to_string()])
            .args(["--raft-listen", &self.ports.raft.to_string()])
            .args(["--io", &self.io]);
        // Defaults the extra arguments may override (clap refuses repeats).
        for (flag, value) in [
            ("--auto-create-topics", "true"),
            ("--default-partitions", "1"),
            ("--log-level", "info"),
        ] {
            if !self.extra.iter().any(|a| a == flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(&self.extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary().display()));
        self.child = Some(child);
    }

    /// Waits until the node answers `/health` with 200, which in a cluster
    /// only means it serves Kafka requests, not that the cluster has formed.
    pub fn wait_healthy(&mut self) {
        let child = self.child.as_mut().expect("broker is running");
        if let Err(why) = launch::wait_healthy(child, self.ports.admin, START_DEADLINE) {
            panic!("[{}] broker {why}\n{}", self.label(), self.log_tail(40));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // The data and the whole log stay for a post-mortem.
            self.dir.disable_cleanup(true);
            eprintln!(
                "----- broker log tail ({}, {}) -----\n{}\n----- end of broker log -----",
                self.label(),
                self.log_path().display(),
                self.log_tail(60)
            );
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// The workspace root (the conformance crate's parent).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `chronik` binary, built once per test process unless `$CHRONIK_BIN`.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CHRONIK_BIN") {
            let bin = PathBuf::from(bin);
            assert!(bin.exists(), "CHRONIK_BIN={} does not exist", bin.display());
            return bin;
        }
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug").join("chronik");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "-p", "broker", "--bin", "chronik"])
            .stdin(Stdio::null())
            .output()
            .expect("run cargo build -p broker --bin chronik");
        assert!(
            out.status.success(),
            "cargo build -p broker --bin chronik failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub fn wait_for<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    launch::poll_until(timeout, f)
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}
