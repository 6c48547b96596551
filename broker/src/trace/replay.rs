//! Replaying a trace into a fresh node and comparing what it does.
//!
//! The replay plays the host: it builds the node from the recorded
//! [`NodeConfig`](crate::node::NodeConfig) over a fresh [`DiskStore`] in an
//! empty directory, feeds the recorded inputs at their recorded times, and
//! performs the node's `Persist` outputs with the same [`Persister`] the
//! broker uses, so reads see the data. Disk completions come from the trace,
//! not from the replay's own disk: before a recorded `Persisted` is stepped,
//! the replay waits until its own copy of that write is on disk, so the node
//! reads at least what it read live. After every input the outputs' digest
//! is compared with the recorded one; the first difference stops the replay.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use io_sync::host::{self, EventReceiver, HostOutput, LoopHandle, Slot};

use super::{
    frame_api, OutputDigest, OutputSummary, Record, TraceError, TraceInput, TraceReader, TraceStart,
};
use crate::disk_store::{DiskStore, Persister};
use crate::node::{Input, Node, Output};
use crate::server::{digest_host_output, frame_outcome, FrameOutcome};

/// How long the replay waits for its own disk to finish a write.
const DISK_DEADLINE: Duration = Duration::from_secs(60);

/// Why a replay could not run (a divergence is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The trace cannot be opened or does not begin as a trace must.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The trace's first record is not its start.
    #[error("the trace does not begin with a start record")]
    NoStart,
    /// The replay's data directory is unusable.
    #[error("{}: {reason}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The node could not be built from the recorded configuration.
    #[error("building the node: {0}")]
    Node(String),
    /// The replay's own disk did not finish a write in time.
    #[error(
        "the replay's disk did not finish group {group}'s write {seq} within {DISK_DEADLINE:?}"
    )]
    DiskStalled {
        /// The group.
        group: u64,
        /// The write.
        seq: u64,
    },
}

/// The first input whose outputs differ from the recording.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// The input's number: 0 is the node's start, 1 the first recorded input.
    pub input: u64,
    /// The monotonic time it was stepped at.
    pub now_ms: u64,
    /// The input, as [`TraceInput`]'s `Display` shows it.
    pub what: String,
    /// What the recording says it produced.
    pub recorded: OutputSummary,
    /// What the replay produced.
    pub replayed: OutputSummary,
    /// The replay's outputs for this input, one line each.
    pub outputs: Vec<String>,
    /// Why, when the replay could not even step the input.
    pub note: Option<String>,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "input {} at {} ms ({}) diverged",
            self.input, self.now_ms, self.what
        )?;
        if let Some(note) = &self.note {
            writeln!(f, "  {note}")?;
        }
        writeln!(f, "  recorded: {}", self.recorded)?;
        write!(f, "  replayed: {}", self.replayed)?;
        for o in &self.outputs {
            write!(f, "\n    {o}")?;
        }
        Ok(())
    }
}

/// How the trace ended, as far as the replay read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEnd {
    /// The end record of a clean shutdown, after every step it counts.
    Complete,
    /// The file ends between records with no end record: the recording
    /// process was killed (or is still running).
    Unfinished,
    /// The last record is cut short (a kill mid-write); every whole record
    /// before it was replayed.
    Truncated(String),
    /// A record is corrupt (bad CRC, malformed, or a wrong step count):
    /// the replay stopped before it.
    Corrupt(String),
    /// The replay stopped at a divergence.
    Diverged,
}

/// What a replay did.
#[derive(Clone, Debug)]
pub struct ReplayReport {
    /// The version that recorded the trace.
    pub chronik_version: String,
    /// The node's seed.
    pub seed: u64,
    /// Inputs replayed (the start not counted).
    pub inputs: u64,
    /// Request frames by API name (`unknown` for frames naming none).
    pub requests: BTreeMap<&'static str, u64>,
    /// Connections opened.
    pub opened: u64,
    /// Connections closed.
    pub closed: u64,
    /// Ticks.
    pub ticks: u64,
    /// Recorded `Persisted` completions.
    pub persisted: u64,
    /// Recorded `PersistFailed` completions.
    pub persist_failed: u64,
    /// Housekeeping runs.
    pub housekeeping: u64,
    /// Frames from other brokers.
    pub peer_frames: u64,
    /// Disk writes the replayed node asked for (and the replay performed).
    pub persists: u64,
    /// Frames the replayed node sent to other brokers (digested only).
    pub sends: u64,
    /// Responses the replayed node gave.
    pub responses: u64,
    /// The last recorded monotonic time.
    pub last_ms: u64,
    /// How the trace ended.
    pub end: TraceEnd,
    /// The first divergence, if any.
    pub divergence: Option<Divergence>,
}

impl ReplayReport {
    /// Whether every replayed input produced what was recorded, and the
    /// trace held nothing corrupt.
    pub fn identical(&self) -> bool {
        self.divergence.is_none() && !matches!(self.end, TraceEnd::Corrupt(_))
    }
}

/// One replayed input, for progress reports.
pub struct StepEvent<'a> {
    /// Its number (from 1).
    pub input: u64,
    /// Its recorded monotonic time.
    pub now_ms: u64,
    /// The input.
    pub trace: &'a TraceInput,
    /// What the recording says it produced.
    pub recorded: &'a OutputSummary,
    /// What the replay produced.
    pub replayed: &'a OutputSummary,
}

/// Replays the trace at `trace` into a fresh node whose data lives in
/// `data_dir` (created if missing; it must be empty), calling `observe`
/// after every input.
pub fn replay(
    trace: &Path,
    data_dir: &Path,
    observe: &mut dyn FnMut(&StepEvent<'_>),
) -> Result<ReplayReport, ReplayError> {
    let file = File::open(trace).map_err(TraceError::Io)?;
    let mut reader = TraceReader::new(BufReader::new(file))?;
    let (start, start_outputs) = match reader.next_record()? {
        Some(Record::Start { start, outputs }) => (start, outputs),
        _ => return Err(ReplayError::NoStart),
    };
    let mut r = Replayer::new(&start, data_dir)?;
    let mut report = ReplayReport {
        chronik_version: start.chronik_version.clone(),
        seed: start.node.seed,
        inputs: 0,
        requests: BTreeMap::new(),
        opened: 0,
        closed: 0,
        ticks: 0,
        persisted: 0,
        persist_failed: 0,
        housekeeping: 0,
        peer_frames: 0,
        persists: 0,
        sends: 0,
        responses: 0,
        last_ms: 0,
        end: TraceEnd::Unfinished,
        divergence: None,
    };

    r.collect(&mut report);
    let replayed = r.digest.finish();
    if replayed != start_outputs {
        let mut d = r.divergence(0, 0, "the node's start".into(), start_outputs);
        d.replayed = replayed;
        report.divergence = Some(d);
        report.end = TraceEnd::Diverged;
        return Ok(report);
    }

    loop {
        let record = match reader.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) if e.is_truncated_tail() => {
                report.end = TraceEnd::Truncated(e.to_string());
                break;
            }
            Err(TraceError::Io(e)) => return Err(TraceError::Io(e).into()),
            Err(e) => {
                report.end = TraceEnd::Corrupt(e.to_string());
                break;
            }
        };
        let (now_ms, input, recorded) = match record {
            Record::Step {
                now_ms,
                input,
                outputs,
            } => (now_ms, input, outputs),
            Record::End { steps } => {
                report.end = if steps == report.inputs {
                    TraceEnd::Complete
                } else {
                    TraceEnd::Corrupt(format!(
                        "the end record counts {steps} inputs, but {} were read",
                        report.inputs
                    ))
                };
                break;
            }
            Record::Start { .. } => {
                report.end = TraceEnd::Corrupt(format!(
                    "a second start record after input {}",
                    report.inputs
                ));
                break;
            }
        };
        report.inputs += 1;
        report.last_ms = now_ms;
        let number = report.inputs;
        if let Err(note) = r.apply(now_ms, &input, &mut report)? {
            let mut d = r.divergence(number, now_ms, input.to_string(), recorded);
            d.note = Some(note);
            report.divergence = Some(d);
            report.end = TraceEnd::Diverged;
            break;
        }
        let replayed = r.digest.finish();
        observe(&StepEvent {
            input: number,
            now_ms,
            trace: &input,
            recorded: &recorded,
            replayed: &replayed,
        });
        if replayed != recorded {
            let mut d = r.divergence(number, now_ms, input.to_string(), recorded);
            d.replayed = replayed;
            report.divergence = Some(d);
            report.end = TraceEnd::Diverged;
            break;
        }
    }
    r.persister.shutdown();
    Ok(report)
}

/// The replay's host: the node, its disk, and what the current input did.
struct Replayer {
    node: Node,
    store: DiskStore,
    persister: Persister,
    events: EventReceiver,
    _handle: LoopHandle,
    digest: OutputDigest,
    /// The current input's outputs, described, for a divergence report.
    described: Vec<String>,
    /// Per group: the highest write sequence asked for, and the highest the
    /// replay's disk finished.
    submitted: BTreeMap<u64, u64>,
    durable: BTreeMap<u64, u64>,
    /// Groups whose replayed write failed, with the error.
    failed: BTreeMap<u64, String>,
}

impl Replayer {
    fn new(start: &TraceStart, data_dir: &Path) -> Result<Replayer, ReplayError> {
        let dir_error = |reason: String| ReplayError::DataDir {
            path: data_dir.to_path_buf(),
            reason,
        };
        match std::fs::read_dir(data_dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(dir_error(
                        "not empty: a replay starts from an empty data directory".into(),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(dir_error(e.to_string())),
        }
        let (handle, events) = host::channel();
        // No fsync: the replay's disk only has to be readable, not durable.
        let (store, persister, recovered) = DiskStore::open(data_dir, false, handle.waker())
            .map_err(|e| dir_error(format!("cannot open the logs: {e}")))?;
        let node = Node::new(
            start.node.clone(),
            Box::new(store.clone()),
            recovered.table,
            recovered.groups,
        )
        .map_err(ReplayError::Node)?;
        Ok(Replayer {
            node,
            store,
            persister,
            events,
            _handle: handle,
            digest: OutputDigest::default(),
            described: Vec::new(),
            submitted: BTreeMap::new(),
            durable: BTreeMap::new(),
            failed: BTreeMap::new(),
        })
    }

    /// Steps one recorded input. `Ok(Err(note))`: the input cannot be
    /// replayed faithfully (a divergence), with why.
    fn apply(
        &mut self,
        now_ms: u64,
        input: &TraceInput,
        report: &mut ReplayReport,
    ) -> Result<Result<(), String>, ReplayError> {
        self.described.clear();
        match input {
            TraceInput::Frame { conn, seq, frame } => {
                let api = frame_api(frame).map_or("unknown", |(api, _)| api);
                *report.requests.entry(api).or_default() += 1;
                let slot = Slot {
                    conn: *conn,
                    seq: *seq,
                };
                match frame_outcome(slot, frame.clone()) {
                    FrameOutcome::Request { reply, request, .. } => {
                        self.node.step(now_ms, Input::Request { reply, request });
                        self.collect(report);
                    }
                    FrameOutcome::Answer(out) => {
                        digest_host_output(&mut self.digest, &out);
                        self.described.push(match &out {
                            HostOutput::Respond { slot, frame } => format!(
                                "host respond conn {} seq {} ({} bytes)",
                                slot.conn,
                                slot.seq,
                                frame.as_ref().map_or(0, |f| f.len())
                            ),
                            HostOutput::Close { conn } => format!("host close conn {conn}"),
                        });
                    }
                }
            }
            TraceInput::Opened { conn, peer } => {
                report.opened += 1;
                self.step(
                    now_ms,
                    Input::Opened {
                        conn: *conn,
                        peer: *peer,
                    },
                    report,
                );
            }
            TraceInput::Closed { conn } => {
                report.closed += 1;
                self.step(now_ms, Input::Closed { conn: *conn }, report);
            }
            TraceInput::Tick { wall_ms } => {
                report.ticks += 1;
                self.step(now_ms, Input::Tick { wall_ms: *wall_ms }, report);
            }
            TraceInput::Persisted { group, seq } => {
                report.persisted += 1;
                if let Err(note) = self.wait_durable(*group, *seq)? {
                    return Ok(Err(note));
                }
                if let Some(done) = input.to_completion() {
                    self.step(now_ms, done, report);
                }
            }
            TraceInput::PersistFailed { .. } => {
                report.persist_failed += 1;
                if let Some(done) = input.to_completion() {
                    self.step(now_ms, done, report);
                }
            }
            TraceInput::Peer { from, payload } => {
                report.peer_frames += 1;
                self.step(
                    now_ms,
                    Input::Peer {
                        from: proto_core::raft::NodeId(*from),
                        payload: payload.clone(),
                    },
                    report,
                );
            }
            TraceInput::PeerDown { peer } => {
                self.step(
                    now_ms,
                    Input::PeerDown {
                        peer: proto_core::raft::NodeId(*peer),
                    },
                    report,
                );
            }
            TraceInput::Housekeeping { wall_ms } => {
                report.housekeeping += 1;
                // Live, the committer may have been behind; here every write
                // asked for so far is on disk first (see the architecture
                // notes on what this can and cannot reproduce).
                let pending: Vec<(u64, u64)> =
                    self.submitted.iter().map(|(g, s)| (*g, *s)).collect();
                for (group, seq) in pending {
                    let _ = self.wait_durable(group, seq)?;
                }
                self.store.housekeeping(*wall_ms);
            }
        }
        Ok(Ok(()))
    }

    fn step(&mut self, now_ms: u64, input: Input, report: &mut ReplayReport) {
        self.node.step(now_ms, input);
        self.collect(report);
    }

    /// Digests the node's outputs and performs its writes.
    fn collect(&mut self, report: &mut ReplayReport) {
        for out in self.node.take_outputs() {
            match out {
                Output::Respond { reply, frame } => {
                    report.responses += 1;
                    self.digest.respond(reply.conn, reply.seq, frame.as_deref());
                    self.described.push(format!(
                        "respond conn {} seq {} ({})",
                        reply.conn,
                        reply.seq,
                        frame
                            .as_ref()
                            .map_or("no frame".into(), |f| format!("{} bytes", f.len()))
                    ));
                }
                Output::Close { conn } => {
                    self.digest.close(conn);
                    self.described.push(format!("close conn {conn}"));
                }
                Output::Send { to, payload } => {
                    report.sends += 1;
                    self.digest.send(to.0, &payload);
                    self.described
                        .push(format!("send to {to} ({} bytes)", payload.len()));
                }
                Output::Persist { group, tp, write } => {
                    report.persists += 1;
                    self.digest.persist(group, &tp, &write);
                    self.described.push(format!(
                        "persist {group} {tp} seq {} ({} entries{}{})",
                        write.seq,
                        write.entries.len(),
                        if write.hard_state.is_some() {
                            ", hard state"
                        } else {
                            ""
                        },
                        if write.snapshot.is_some() {
                            ", snapshot"
                        } else {
                            ""
                        },
                    ));
                    let s = self.submitted.entry(group.0).or_default();
                    *s = (*s).max(write.seq);
                    self.persister.submit(group, &tp, write);
                }
            }
        }
    }

    /// Waits until the replay's own disk has finished `group`'s write `seq`.
    /// `Ok(Err(note))`: it never will (never asked for, or failed here).
    fn wait_durable(&mut self, group: u64, seq: u64) -> Result<Result<(), String>, ReplayError> {
        if self.submitted.get(&group).is_none_or(|&s| s < seq) {
            return Ok(Err(format!(
                "the trace says g{group}'s write {seq} finished, but the replayed node never asked for it"
            )));
        }
        let deadline = Instant::now() + DISK_DEADLINE;
        loop {
            for done in self.persister.completions() {
                match done {
                    Input::Persisted { group, seq } => {
                        let d = self.durable.entry(group.0).or_default();
                        *d = (*d).max(seq);
                    }
                    Input::PersistFailed { group, error } => {
                        self.failed.insert(group.0, error);
                    }
                    _ => {}
                }
            }
            if self.durable.get(&group).is_some_and(|&d| d >= seq) {
                return Ok(Ok(()));
            }
            if let Some(error) = self.failed.get(&group) {
                return Ok(Err(format!(
                    "live, g{group}'s write {seq} succeeded; the replay's copy failed: {error}"
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReplayError::DiskStalled { group, seq });
            }
            let _ = self
                .events
                .recv_timeout((deadline - now).min(Duration::from_millis(50)));
        }
    }

    fn divergence(
        &mut self,
        input: u64,
        now_ms: u64,
        what: String,
        recorded: OutputSummary,
    ) -> Divergence {
        Divergence {
            input,
            now_ms,
            what,
            recorded,
            replayed: self.digest.finish(),
            outputs: std::mem::take(&mut self.described),
            note: None,
        }
    }
}
