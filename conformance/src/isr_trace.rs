//! ISR traces: scripted events against one
//! [`IsrTracker`](proto_core::isr::IsrTracker), rendered as one stable
//! transcript per trace in the [`crate::datadriven`] form.
//!
//! The tracker runs on the node the first `leader` names. Time is whatever
//! `at=` says; positions are Raft indexes. Lists are `1,2,3` (or `(1,2,3)`,
//! `-` for none). After every event the transcript shows the actions and
//! the ISR line: `isr=(..) epoch=E`, then `pending #N=(..)` while a change
//! is in flight.
//!
//! Commands (`[..]` is optional):
//!
//! - `config lag=MS`: `replica.lag.time.max.ms` (10000 unless given); before
//!   the first `leader`.
//! - `leader ID replicas=1,2,3 isr=1,2,3 [epoch=E] [end=N] [at=MS]`: the node
//!   became leader with that last recorded ISR.
//! - `step-down`, `replicas 1,2,4`, `hw N`, `tick at=MS`,
//!   `append end=N at=MS`, `progress ID match=N at=MS`: one event each.
//! - `committed isr=1,2 epoch=E`: the metadata log recorded that ISR;
//!   without `isr=`, the pending proposal's, at the next epoch.
//! - `rejected [proposal=N]`: the metadata log refused a proposal (the
//!   pending one unless given).
//! - `state`: every replica's view; `min-isr N...`, `acks last=N min=M`:
//!   the produce decisions.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use proto_core::isr::{
    AcksAll, Action, Event, IsrChange, IsrConfig, IsrEpoch, IsrTracker, ProposalId,
};
use proto_core::raft::{LogIndex, NodeId};

use crate::datadriven::{run_transcript, Command, CommandError};

/// Runs an ISR trace and returns its transcript.
pub fn run(text: &str) -> Result<String, CommandError> {
    let mut env = Env {
        cfg: IsrConfig {
            lag_time_max_ms: 10_000,
        },
        node: None,
        tracker: None,
        out: String::new(),
    };
    run_transcript(text, |cmd| {
        env.run(cmd)?;
        Ok(std::mem::take(&mut env.out))
    })
}

struct Env {
    cfg: IsrConfig,
    /// The node the tracker runs on, from the first `leader`.
    node: Option<NodeId>,
    tracker: Option<IsrTracker>,
    out: String,
}

impl Env {
    fn run(&mut self, cmd: &Command) -> Result<(), CommandError> {
        match cmd.name.as_str() {
            "config" => {
                cmd.only_args(&["lag"])?;
                if self.tracker.is_some() {
                    return Err(cmd.error("config comes before the first leader"));
                }
                self.cfg.lag_time_max_ms = cmd.num("lag", self.cfg.lag_time_max_ms)?;
                Ok(())
            }
            "leader" => self.leader(cmd),
            "step-down" => {
                cmd.only_args(&[])?;
                self.step(cmd, Event::SteppedDown)
            }
            "replicas" => {
                cmd.only_args(&[])?;
                let replicas = list(cmd, cmd.pos(0, "replica list")?)?;
                self.step(cmd, Event::ReplicasChanged { replicas })
            }
            "hw" => {
                cmd.only_args(&[])?;
                let hw = LogIndex(cmd.pos_num(0, "high watermark")?);
                self.step(cmd, Event::HighWatermark { hw })
            }
            "tick" => {
                cmd.only_args(&["at"])?;
                let now_ms = cmd.required_num("at")?;
                self.step(cmd, Event::Tick { now_ms })
            }
            "append" => {
                cmd.only_args(&["end", "at"])?;
                let log_end = LogIndex(cmd.required_num("end")?);
                let now_ms = cmd.required_num("at")?;
                self.step(cmd, Event::LeaderLogEnd { log_end, now_ms })
            }
            "progress" => {
                cmd.only_args(&["match", "at"])?;
                let replica = cmd.pos_id(0)?;
                let match_index = LogIndex(cmd.required_num("match")?);
                let now_ms = cmd.required_num("at")?;
                let e = Event::FollowerProgress {
                    replica,
                    match_index,
                    now_ms,
                };
                self.step(cmd, e)
            }
            "committed" => self.committed(cmd),
            "rejected" => {
                cmd.only_args(&["proposal"])?;
                let proposal = match cmd.opt_num("proposal")? {
                    Some(p) => ProposalId(p),
                    None => self
                        .tracker(cmd)?
                        .pending()
                        .map(|(p, _)| p)
                        .ok_or_else(|| cmd.error("no pending proposal; give proposal=N"))?,
                };
                self.step(cmd, Event::IsrRejected { proposal })
            }
            "state" => {
                cmd.only_args(&[])?;
                self.state(cmd)
            }
            "min-isr" => {
                cmd.only_args(&[])?;
                let t = self.tracker(cmd)?;
                let mut lines = Vec::new();
                for i in 0..cmd.pos.len() {
                    let min = cmd.pos_num(i, "min.insync.replicas")? as usize;
                    let verdict = if t.under_min_isr(min) {
                        "NOT_ENOUGH_REPLICAS"
                    } else {
                        "ok"
                    };
                    lines.push(format!("min.insync.replicas={min}: {verdict}"));
                }
                self.lines(lines);
                Ok(())
            }
            "acks" => {
                cmd.only_args(&["last", "min"])?;
                let last = LogIndex(cmd.required_num("last")?);
                let min = cmd.required_num("min")? as usize;
                let answer = match self.tracker(cmd)?.acks_all(last, min) {
                    AcksAll::Wait => "wait",
                    AcksAll::Ack => "ack",
                    AcksAll::NotEnoughReplicasAfterAppend => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
                };
                self.lines([format!("acks=all last={last}: {answer}")]);
                Ok(())
            }
            other => Err(cmd.error(format!("unknown command {other}"))),
        }
    }

    fn leader(&mut self, cmd: &Command) -> Result<(), CommandError> {
        cmd.only_args(&["replicas", "isr", "epoch", "end", "at"])?;
        let id = cmd.pos_id(0)?;
        let replicas = list(cmd, cmd.required("replicas")?)?;
        let initial_isr = list(cmd, cmd.required("isr")?)?;
        let e = Event::BecameLeader {
            replicas,
            initial_isr,
            isr_epoch: IsrEpoch(cmd.num("epoch", 0)?),
            log_end: LogIndex(cmd.num("end", 0)?),
            now_ms: cmd.num("at", 0)?,
        };
        match self.node {
            None => {
                self.node = Some(id);
                self.tracker = Some(IsrTracker::new(self.cfg, id));
            }
            Some(node) if node != id => {
                return Err(cmd.error(format!("the tracker is node {node}'s")));
            }
            Some(_) => {}
        }
        self.step(cmd, e)
    }

    fn committed(&mut self, cmd: &Command) -> Result<(), CommandError> {
        cmd.only_args(&["isr", "epoch"])?;
        let t = self.tracker(cmd)?;
        let next = IsrEpoch(t.epoch().map_or(0, |e| e.0 + 1));
        let isr = match cmd.arg("isr") {
            Some(v) => list(cmd, v)?,
            None => t
                .pending()
                .map(|(_, isr)| isr.clone())
                .ok_or_else(|| cmd.error("no pending proposal; give isr=..."))?,
        };
        let epoch = IsrEpoch(cmd.num("epoch", next.0)?);
        self.step(cmd, Event::IsrCommitted { isr, epoch })
    }

    fn tracker(&self, cmd: &Command) -> Result<&IsrTracker, CommandError> {
        self.tracker
            .as_ref()
            .ok_or_else(|| cmd.error("no tracker yet: start with leader"))
    }

    fn step(&mut self, cmd: &Command, e: Event) -> Result<(), CommandError> {
        let t = self
            .tracker
            .as_mut()
            .ok_or_else(|| cmd.error("no tracker yet: start with leader"))?;
        let mut lines = Vec::new();
        if let Err(refused) = t.step(e) {
            lines.push(format!("error: {refused}"));
        }
        for a in t.take_actions() {
            lines.push(action(&a));
        }
        lines.push(isr_line(t));
        self.lines(lines);
        Ok(())
    }

    fn state(&mut self, cmd: &Command) -> Result<(), CommandError> {
        let t = self.tracker(cmd)?;
        let mut lines = vec![isr_line(t)];
        if let Some((end, hw)) = t.log_end_and_hw() {
            lines.push(format!(
                "log end={end} hw={hw} maximal isr={}",
                set(&t.maximal_isr())
            ));
        }
        for r in t.replicas() {
            let caught = if t.is_caught_up(r) {
                "caught up"
            } else {
                "behind"
            };
            let line = if Some(r) == self.node {
                format!("{r}: leader, {caught}")
            } else {
                format!(
                    "{r}: match={} last caught up at={}, {caught}",
                    opt(t.match_index(r)),
                    opt(t.last_caught_up_ms(r))
                )
            };
            lines.push(line);
        }
        self.lines(lines);
        Ok(())
    }

    fn lines(&mut self, lines: impl IntoIterator<Item = String>) {
        for l in lines {
            let _ = writeln!(self.out, "{l}");
        }
    }
}

fn action(a: &Action) -> String {
    match a {
        Action::IsrChanged {
            proposal,
            based_on,
            isr,
            changes,
        } => {
            let why: Vec<String> = changes
                .iter()
                .map(|c| match c {
                    IsrChange::Shrink { replica, lag_ms } => {
                        format!("shrink {replica} (lag {lag_ms}ms)")
                    }
                    IsrChange::Expand { replica } => format!("expand {replica}"),
                })
                .collect();
            format!(
                "IsrChanged {proposal} based-on={based_on} isr={}: {}",
                set(isr),
                why.join(", ")
            )
        }
    }
}

fn isr_line(t: &IsrTracker) -> String {
    let Some(epoch) = t.epoch() else {
        return "not leading".to_string();
    };
    let mut line = format!("isr={} epoch={epoch}", set(&t.isr()));
    if let Some((p, isr)) = t.pending() {
        let _ = write!(line, " pending {p}={}", set(isr));
    }
    line
}

fn set(s: &BTreeSet<NodeId>) -> String {
    let v: Vec<String> = s.iter().map(ToString::to_string).collect();
    format!("({})", v.join(","))
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `1,2,3`, `(1,2,3)` or `-` (none) as node ids.
fn list(cmd: &Command, v: &str) -> Result<BTreeSet<NodeId>, CommandError> {
    let inner = v.trim_start_matches('(').trim_end_matches(')');
    if inner == "-" {
        return Ok(BTreeSet::new());
    }
    inner
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| cmd.parse(s.trim(), "a node id").map(NodeId))
        .collect()
}
