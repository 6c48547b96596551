//! Node processes: starting one detached from the terminal, telling whether a
//! recorded one still runs, and stopping it.
//!
//! The nodes outlive the invocation that started them (`restart N` exits while
//! its node keeps running), so most of them are not our children: liveness comes
//! from `/proc/<pid>/stat`, and a pid counts as the node only while the process
//! start time recorded at spawn still matches, so a recycled pid is never
//! mistaken for a node nor signalled. Signals go through the `kill` command
//! (xtask has no libc binding of its own).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use conformance::launch::poll_until;

/// How long a node may take to exit after SIGTERM (it syncs every log first).
pub const TERM_GRACE: Duration = Duration::from_secs(10);
/// How long the kernel may take to take a process down after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A process as recorded in the state file: its pid and when it started, which
/// together name it even after the pid is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proc {
    /// The process id.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot when it started.
    pub start_time: u64,
}

impl Proc {
    /// The process `pid` as it is now, if it exists (a zombie included).
    pub fn read(pid: u32) -> Option<Proc> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (_, start_time) = parse_stat(&stat)?;
        Some(Proc { pid, start_time })
    }

    /// This process.
    pub fn me() -> Option<Proc> {
        Proc::read(std::process::id())
    }

    /// Whether the recorded process still runs: not exited, not a zombie
    /// waiting to be reaped, and not another process that got the same pid.
    pub fn is_alive(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        matches!(parse_stat(&stat), Some((state, start)) if start == self.start_time && !matches!(state, 'Z' | 'X' | 'x'))
    }

    /// Sends `signal` (`TERM`, `KILL`) if the process is still the recorded one.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        if !self.is_alive() {
            return Ok(());
        }
        let out = Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .stdin(Stdio::null())
            .output()
            .context("run kill")?;
        // It may have exited between the check and the signal: that is success.
        if !out.status.success() && self.is_alive() {
            bail!(
                "kill -{signal} {}: {}",
                self.pid,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// The state letter (field 3) and start time (field 22) of a
/// `/proc/<pid>/stat` line. The command name in field 2 may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Starts `bin args`, its output appended to `log` (`fresh` truncates it
/// first), in a process group of its own: Ctrl-C in the supervisor's terminal
/// then reaches only the supervisor, which stops the nodes in order, and a node
/// started by a short-lived `restart` survives it.
pub fn spawn(bin: &Path, args: &[String], log: &Path, fresh: bool) -> anyhow::Result<Child> {
    node_command(bin, args, log, fresh)?
        .process_group(0)
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))
}

/// The command that runs `bin args` as a node: no stdin, stdout and stderr
/// appended to `log` (`fresh` truncates it first; otherwise a marker line
/// separates the runs), no colours in the log. [`spawn`] detaches it; a task
/// that owns its nodes for its own lifetime (`cargo xtask bench --cluster`)
/// spawns it as it is, so Ctrl-C takes the nodes down with the task.
pub fn node_command(
    bin: &Path,
    args: &[String],
    log: &Path,
    fresh: bool,
) -> anyhow::Result<Command> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(!fresh)
        .write(true)
        .truncate(fresh)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    if !fresh {
        writeln!(file, "----- restarted by cargo xtask -----")
            .with_context(|| format!("write {}", log.display()))?;
    }
    let mut command = Command::new(bin);
    command
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file));
    Ok(command)
}

/// The nodes this process spawned itself. They must be reaped (`waitpid`) when
/// they exit, or they stay zombies until the supervisor exits.
#[derive(Default)]
pub struct Children(Vec<Child>);

impl Children {
    /// Takes responsibility for reaping `child`.
    pub fn adopt(&mut self, child: Child) {
        self.0.push(child);
    }

    /// Reaps every child that has exited.
    pub fn reap(&mut self) {
        self.0.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }
}

/// How a node went down when asked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// It was not running.
    WasDown,
    /// It exited after SIGTERM, this long after.
    Terminated(Duration),
    /// It ignored SIGTERM for [`TERM_GRACE`] and was killed.
    Killed,
    /// Not even SIGKILL took it down (it is in uninterruptible sleep).
    StillRunning,
}

impl Stopped {
    /// A table cell.
    pub fn describe(&self) -> String {
        match self {
            Stopped::WasDown => "was down".into(),
            Stopped::Terminated(d) => format!("SIGTERM, {:.1} s", d.as_secs_f64()),
            Stopped::Killed => format!("SIGKILL after {} s", TERM_GRACE.as_secs()),
            Stopped::StillRunning => "still running!".into(),
        }
    }
}

/// Stops every process of `procs` at once: SIGTERM, then after `grace`
/// SIGKILL for whatever still runs. Returns how each went, in `procs`' order.
pub fn stop_all(procs: &[Option<Proc>], children: &mut Children, grace: Duration) -> Vec<Stopped> {
    let started = Instant::now();
    let mut outcome: Vec<Option<Stopped>> = procs
        .iter()
        .map(|p| match p {
            Some(p) if p.is_alive() => {
                if let Err(e) = p.signal("TERM") {
                    note!("cluster: {e:#}");
                }
                None
            }
            _ => Some(Stopped::WasDown),
        })
        .collect();
    let settle = |outcome: &mut Vec<Option<Stopped>>, children: &mut Children| {
        children.reap();
        for (o, p) in outcome.iter_mut().zip(procs) {
            if o.is_none() && !p.is_some_and(|p| p.is_alive()) {
                *o = Some(Stopped::Terminated(started.elapsed()));
            }
        }
        outcome.iter().all(Option::is_some).then_some(())
    };
    if poll_until(grace, || settle(&mut outcome, children)).is_none() {
        for (o, p) in outcome.iter_mut().zip(procs) {
            if o.is_some() {
                continue;
            }
            if let Some(Err(e)) = p.map(|p| p.signal("KILL")) {
                note!("cluster: {e:#}");
            }
            *o = Some(Stopped::Killed);
        }
        let still = |outcome: &Vec<Option<Stopped>>, children: &mut Children| {
            children.reap();
            outcome
                .iter()
                .zip(procs)
                .all(|(o, p)| *o != Some(Stopped::Killed) || !p.is_some_and(|p| p.is_alive()))
                .then_some(())
        };
        if poll_until(KILL_GRACE, || still(&outcome, children)).is_none() {
            for (o, p) in outcome.iter_mut().zip(procs) {
                if *o == Some(Stopped::Killed) && p.is_some_and(|p| p.is_alive()) {
                    *o = Some(Stopped::StillRunning);
                }
            }
        }
    }
    outcome
        .into_iter()
        .map(|o| o.unwrap_or(Stopped::StillRunning))
        .collect()
}

/// The last `n` lines of a node's log, indented for a message.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "4242 (chronik (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    5 3 0 0 20 0 9 0 123456 1000 200 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(('S', 123456)));
        assert_eq!(parse_stat("1 (init) Z"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = Proc::me().unwrap();
        assert!(me.is_alive());
        let recycled = Proc {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!recycled.is_alive());
    }
}
