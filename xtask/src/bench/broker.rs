//! The `chronik` process a bench case runs against, and a sampler of its memory
//! and CPU read from `/proc/<pid>`.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use conformance::launch;

/// How long a spawned broker may take to answer `GET /health` 200.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How often the sampler reads `/proc/<pid>/status`.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// A running `chronik serve` with its own data directory and ports. Dropping it
/// kills the process and deletes the data directory (the log stays).
pub struct Broker {
    child: Child,
    data_dir: PathBuf,
    log_path: PathBuf,
    kafka: SocketAddr,
}

impl Broker {
    /// Spawns `bin serve` on free loopback ports with `--io io`, auto-created
    /// topics of `partitions` partitions and log level warn; waits for health.
    pub fn start(
        bin: &Path,
        io: &str,
        partitions: u32,
        data_dir: PathBuf,
        log_path: PathBuf,
    ) -> anyhow::Result<Broker> {
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("create {}", data_dir.display()))?;
        let log =
            File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
        let (kafka, admin, raft) = (
            launch::free_port()?,
            launch::free_port()?,
            launch::free_port()?,
        );
        let child = Command::new(bin)
            .arg("serve")
            .args(["--node-id", "1"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--kafka-listen", &kafka.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--raft-listen", &raft.to_string()])
            .args(["--io", io])
            .args(["--auto-create-topics", "true"])
            .args(["--default-partitions", &partitions.to_string()])
            .args(["--log-level", "warn"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let mut b = Broker {
            child,
            data_dir,
            log_path,
            kafka,
        };
        if let Err(why) = launch::wait_healthy(&mut b.child, admin, START_DEADLINE) {
            bail!("broker {why}; log:\n{}", b.log_tail(30));
        }
        Ok(b)
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.kafka.to_string()
    }

    /// The process id (for `/proc` and for attaching `perf`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `n` lines of the broker's output.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The broker processes a case measures, one broker or a cluster's nodes:
/// where clients connect, and a sampler of each process's memory.
pub struct Brokers {
    bootstrap: String,
    pids: Vec<u32>,
    samplers: Vec<Sampler>,
}

impl Brokers {
    /// Starts sampling every process of `pids`; clients bootstrap from
    /// `bootstrap` (`host:port,...`).
    pub fn watch(bootstrap: String, pids: Vec<u32>) -> Brokers {
        let samplers = pids.iter().map(|&pid| Sampler::start(pid)).collect();
        Brokers {
            bootstrap,
            pids,
            samplers,
        }
    }

    /// `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// CPU time the brokers have used so far, summed; `None` if `/proc`
    /// cannot tell for one of them.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.pids.iter().map(|&pid| cpu_time(pid)).sum()
    }

    /// Each broker's resident set at the last sample, MiB.
    pub fn rss_mib(&self) -> Vec<f64> {
        self.samplers.iter().map(Sampler::rss_mib).collect()
    }

    /// Stops sampling; each broker's peak resident set, MiB.
    pub fn finish(self) -> Vec<f64> {
        self.samplers.into_iter().map(Sampler::finish).collect()
    }
}

/// Memory figures of a process, in KiB, as the sampler last saw them.
#[derive(Default)]
pub struct MemStats {
    /// `VmRSS` at the last sample.
    pub rss_kib: AtomicU64,
    /// The largest of `VmHWM` and every sampled `VmRSS`.
    pub peak_kib: AtomicU64,
}

/// A thread reading `/proc/<pid>/status` every [`SAMPLE_EVERY`] until dropped.
pub struct Sampler {
    /// What it has seen so far.
    pub mem: Arc<MemStats>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32) -> Sampler {
        let mem = Arc::new(MemStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (mem, stop) = (Arc::clone(&mem), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    sample(pid, &mem);
                    std::thread::sleep(SAMPLE_EVERY);
                }
                sample(pid, &mem);
            })
        };
        Sampler {
            mem,
            stop,
            handle: Some(handle),
        }
    }

    /// Current resident set, MiB.
    pub fn rss_mib(&self) -> f64 {
        self.mem.rss_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }

    /// Stops the thread (after one last sample) and returns the peak, MiB.
    pub fn finish(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.mem.peak_kib.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn sample(pid: u32, mem: &MemStats) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return;
    };
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let rss = field("VmRSS:").unwrap_or(0);
    let hwm = field("VmHWM:").unwrap_or(0);
    mem.rss_kib.store(rss, Ordering::Relaxed);
    mem.peak_kib.fetch_max(rss.max(hwm), Ordering::Relaxed);
}

/// CPU time (user + system) process `pid` has used so far; `pid` 0 is this
/// process. `None` if `/proc` cannot tell.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let path = if pid == 0 {
        "/proc/self/stat".to_string()
    } else {
        format!("/proc/{pid}/stat")
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the `(comm)`, which may itself hold spaces: state is field 3,
    // utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// `sysconf(_SC_CLK_TCK)`, asked of `getconf` once; 100 (Linux's value) if that fails.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}
