//! A real `chronik` process for the client-compatibility tests.
//!
//! [`Broker::start`] picks free loopback ports, makes a temporary data
//! directory, spawns `chronik serve` with its output in `broker.log` inside that
//! directory and waits (with a deadline) until `GET /health` answers 200. The
//! process can be stopped cleanly ([`Broker::stop`]), killed ([`Broker::kill9`])
//! and started again on the same ports and data ([`Broker::restart`]). Dropping
//! the handle kills the process; if the test is panicking, the tail of the
//! broker log is printed so the failure can be read next to the broker's view.
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
use std::sync::OnceLock;
use std::time::Duration;

use conformance::launch;

/// Both I/O drivers; every client test runs once against each.
pub const DRIVERS: [&str; 2] = ["tokio", "sync"];

/// How long a broker may take to answer `/health` 200 after it is spawned.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd broker may take to exit.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

pub struct Broker {
    pub io: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
    kafka: SocketAddr,
    admin: SocketAddr,
    raft: SocketAddr,
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
        let dir = tempfile::Builder::new()
            .prefix(&format!("chronik-client-{io}-"))
            .tempdir()
            .expect("create the broker's temporary directory");
        let mut b = Broker {
            io: io.to_string(),
            child: None,
            dir,
            kafka: launch::free_port().expect("a free port"),
            admin: launch::free_port().expect("a free port"),
            raft: launch::free_port().expect("a free port"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            starts: 0,
        };
        b.spawn();
        b
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.kafka.to_string()
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
            self.io
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
                self.io,
                self.log_tail(40)
            );
        };
        assert!(
            status.success(),
            "[{}] broker did not exit cleanly on SIGTERM: {status:?}\n{}",
            self.io,
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
            "===== test harness: start #{} (--io {}) =====",
            self.starts, self.io
        )
        .unwrap();
        let log2 = log.try_clone().unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .args(["--node-id", "1"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--kafka-listen", &self.kafka.to_string()])
            .args(["--admin-listen", &self.admin.to_string()])
            .args(["--raft-listen", &self.raft.to_string()])
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
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let child = self.child.as_mut().expect("broker is running");
        if let Err(why) = launch::wait_healthy(child, self.admin, START_DEADLINE) {
            panic!("[{}] broker {why}\n{}", self.io, self.log_tail(40));
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
            eprintln!(
                "----- broker log tail (--io {}, {}) -----\n{}\n----- end of broker log -----",
                self.io,
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
