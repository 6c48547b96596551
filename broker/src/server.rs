//! The broker as a driver's [`Host`]: frames in, the sans-IO [`Node`] in the
//! middle, disk writes handed to the group committer, answers out, metrics on
//! the way. With a [`Recorder`], every input and a digest of what it produced
//! go to a trace file (see [`crate::trace`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use io_sync::host::{Host, HostOutput, Slot};
use io_sync::peer::{PeerEvent, PeerSend};

use crate::disk_store::{DiskStore, Persister};
use crate::metrics::Metrics;
use crate::node::{Input, Node, Output, ReplyId};
use crate::protocol::{self, Request};
use crate::trace::{OutputDigest, Recorder, TraceInput};

/// Ticks between refreshes of the per-partition gauges and storage housekeeping.
const HOUSEKEEPING_TICKS: u64 = 50;

/// The broker hosted by a driver.
pub struct BrokerHost {
    node: Node,
    persister: Persister,
    store: DiskStore,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    epoch: Instant,
    tick: Duration,
    ticks: u64,
    max_frame: usize,
    /// Requests in progress: their API name and arrival, for latency metrics.
    started: std::collections::HashMap<ReplyId, (&'static str, Instant)>,
    outputs: Vec<HostOutput>,
    /// Where inputs are recorded, if `--record-trace` asked for it.
    recorder: Option<Recorder>,
    /// The outputs of the input being handled, for the trace.
    digest: OutputDigest,
    /// The transport to the other brokers, in cluster mode.
    peers: Option<Box<dyn PeerSend>>,
}

/// What the host makes of one request frame. Shared with the replayer, so a
/// replayed frame takes exactly the live path.
pub(crate) enum FrameOutcome {
    /// A request for the node, with its API name for metrics.
    Request {
        /// Where the answer goes.
        reply: ReplyId,
        /// The decoded request.
        request: Box<Request>,
        /// The API's name.
        api: &'static str,
    },
    /// Not a request the node can take: the host answers (or closes) itself.
    Answer(HostOutput),
}

/// Decodes `frame`, or says how the host answers a frame it cannot decode.
pub(crate) fn frame_outcome(slot: Slot, frame: Bytes) -> FrameOutcome {
    let reply = ReplyId {
        conn: slot.conn,
        seq: slot.seq,
    };
    match protocol::decode_request(frame) {
        Ok(request) => FrameOutcome::Request {
            reply,
            api: protocol::support(request.header.api_key).map_or("other", |s| s.name),
            request: Box::new(request),
        },
        Err(e) => match e.reply() {
            Some(frame) => FrameOutcome::Answer(HostOutput::Respond {
                slot,
                frame: Some(frame),
            }),
            None => {
                tracing::warn!(conn = slot.conn, error = %e, "closing a connection on bad input");
                FrameOutcome::Answer(HostOutput::Close { conn: slot.conn })
            }
        },
    }
}

/// Adds a host-level output (an answer to an undecodable frame) to `digest`.
pub(crate) fn digest_host_output(digest: &mut OutputDigest, out: &HostOutput) {
    match out {
        HostOutput::Respond { slot, frame } => {
            digest.respond(slot.conn, slot.seq, frame.as_deref())
        }
        HostOutput::Close { conn } => digest.close(*conn),
    }
}

impl BrokerHost {
    /// Disk writes submitted and not yet completed, so a test driving the
    /// host can wait for its writes instead of for the disk to go quiet.
    #[cfg(test)]
    pub(crate) fn writes_in_flight(&self) -> usize {
        self.persister.in_flight()
    }

    /// Wraps `node`, whose writes go to `persister` and reads to `store`,
    /// recording into `recorder` if given. What the node did while being
    /// built (the start-up writes of the partitions it created) is performed
    /// at once.
    pub fn new(
        node: Node,
        persister: Persister,
        store: DiskStore,
        metrics: Arc<Metrics>,
        ready: Arc<AtomicBool>,
        max_frame: usize,
        recorder: Option<Recorder>,
    ) -> BrokerHost {
        let tick = Duration::from_millis(node.tick_ms().max(1));
        let mut host = BrokerHost {
            node,
            persister,
            store,
            metrics,
            ready,
            epoch: Instant::now(),
            tick,
            ticks: 0,
            max_frame,
            started: Default::default(),
            outputs: Vec::new(),
            recorder,
            digest: OutputDigest::default(),
            peers: None,
        };
        host.collect(Instant::now());
        if let Some(rec) = &mut host.recorder {
            rec.started(host.digest.finish());
        }
        host
    }

    /// Gives the host the transport its node's `Send` outputs go out on.
    pub fn with_peers(mut self, peers: Box<dyn PeerSend>) -> BrokerHost {
        self.peers = Some(peers);
        self
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Steps the node with `input` and records `traced`, the trace's name
    /// for it (built only while recording).
    fn step(
        &mut self,
        now: Instant,
        input: Input,
        traced: impl FnOnce(&Input) -> Option<TraceInput>,
    ) {
        let ms = self.ms(now);
        let traced = self.recorder.as_ref().and_then(|_| traced(&input));
        self.node.step(ms, input);
        self.collect(now);
        self.record(ms, traced);
    }

    /// Writes `input` and the outputs digested since the last record.
    fn record(&mut self, now_ms: u64, input: Option<TraceInput>) {
        if let (Some(rec), Some(input)) = (&mut self.recorder, input) {
            rec.step(now_ms, &input, self.digest.finish());
        }
    }

    /// Performs the node's outputs.
    fn collect(&mut self, now: Instant) {
        let recording = self.recorder.is_some();
        for out in self.node.take_outputs() {
            if recording {
                match &out {
                    Output::Respond { reply, frame } => {
                        self.digest.respond(reply.conn, reply.seq, frame.as_deref())
                    }
                    Output::Close { conn } => self.digest.close(*conn),
                    Output::Persist { group, tp, write } => self.digest.persist(*group, tp, write),
                    Output::Send { to, payload } => self.digest.send(to.0, payload),
                }
            }
            match out {
                Output::Respond { reply, frame } => {
                    if let Some((api, at)) = self.started.remove(&reply) {
                        self.metrics.request(api, now.saturating_duration_since(at));
                    }
                    if let Some(f) = &frame {
                        self.metrics.bytes_out(f.len() as u64);
                    }
                    self.outputs.push(HostOutput::Respond {
                        slot: Slot {
                            conn: reply.conn,
                            seq: reply.seq,
                        },
                        frame,
                    });
                }
                Output::Close { conn } => self.outputs.push(HostOutput::Close { conn }),
                Output::Persist { group, tp, write } => self.persister.submit(group, &tp, write),
                Output::Send { to, payload } => match &self.peers {
                    // A full queue is backpressure: Raft resends what matters.
                    Some(peers) => {
                        if let Err(e) = peers.send(to, payload) {
                            tracing::debug!(peer = %to, error = %e, "a peer frame was not queued");
                        }
                    }
                    None => tracing::error!(peer = %to, "a peer frame with no transport"),
                },
            }
        }
    }

    fn housekeeping(&mut self, wall_ms: i64) {
        self.store.housekeeping(wall_ms);
        self.metrics.set_isr_shrinks(self.node.isr_shrinks());
        for (tp, term, commit, leader) in self.node.raft_status() {
            let size = self.store.size_of(&tp);
            self.metrics
                .set_partition_size(&tp.topic, tp.partition, size);
            self.metrics.set_raft(
                &tp.to_string(),
                proto_core::raft::Term(term),
                proto_core::raft::LogIndex(commit),
                leader.map(proto_core::raft::NodeId),
            );
        }
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Host for BrokerHost {
    fn on_frame(&mut self, now: Instant, slot: Slot, frame: Bytes) {
        self.metrics.bytes_in(frame.len() as u64 + 4);
        let ms = self.ms(now);
        let traced = self.recorder.is_some().then(|| TraceInput::Frame {
            conn: slot.conn,
            seq: slot.seq,
            frame: frame.clone(),
        });
        match frame_outcome(slot, frame) {
            FrameOutcome::Request {
                reply,
                request,
                api,
            } => {
                self.started.insert(reply, (api, now));
                self.node.step(ms, Input::Request { reply, request });
                self.collect(now);
            }
            FrameOutcome::Answer(out) => {
                if let HostOutput::Respond { frame: Some(f), .. } = &out {
                    self.metrics.bytes_out(f.len() as u64);
                }
                if self.recorder.is_some() {
                    digest_host_output(&mut self.digest, &out);
                }
                self.outputs.push(out);
            }
        }
        self.record(ms, traced);
    }

    fn on_opened(&mut self, now: Instant, conn: u64, peer: std::net::SocketAddr) {
        self.step(now, Input::Opened { conn, peer }, |_| {
            Some(TraceInput::Opened { conn, peer })
        });
    }

    fn on_closed(&mut self, now: Instant, conn: u64) {
        self.started.retain(|r, _| r.conn != conn);
        self.step(now, Input::Closed { conn }, |_| {
            Some(TraceInput::Closed { conn })
        });
    }

    fn on_tick(&mut self, now: Instant) {
        self.ready.store(true, Ordering::Release);
        self.ticks += 1;
        let wall = wall_ms();
        self.step(now, Input::Tick { wall_ms: wall }, |_| {
            Some(TraceInput::Tick { wall_ms: wall })
        });
        if self.ticks % HOUSEKEEPING_TICKS == 1 {
            // Not a node input, but it changes what the node reads (the log
            // start offset), so the trace has it too.
            let wall = wall_ms();
            self.housekeeping(wall);
            let ms = self.ms(now);
            let traced = self
                .recorder
                .is_some()
                .then_some(TraceInput::Housekeeping { wall_ms: wall });
            self.record(ms, traced);
        }
        if let Some(rec) = &mut self.recorder {
            rec.tick(now);
        }
    }

    fn on_peer(&mut self, now: Instant, event: PeerEvent) {
        match event {
            PeerEvent::Frame { from, payload } => {
                self.step(now, Input::Peer { from, payload }, |input| match input {
                    Input::Peer { from, payload } => Some(TraceInput::Peer {
                        from: from.0,
                        payload: payload.clone(),
                    }),
                    _ => None,
                })
            }
            PeerEvent::Disconnected { peer } => {
                tracing::info!(%peer, "peer link down");
                self.step(now, Input::PeerDown { peer }, |_| {
                    Some(TraceInput::PeerDown { peer: peer.0 })
                })
            }
            PeerEvent::Connected { peer } => tracing::info!(%peer, "peer link up"),
            PeerEvent::Refused { addr, reason } => {
                tracing::warn!(%addr, %reason, "a peer handshake was refused")
            }
        }
    }

    fn on_wake(&mut self, now: Instant) {
        for done in self.persister.completions() {
            self.step(now, done, TraceInput::completion);
        }
    }

    fn take_outputs(&mut self) -> Vec<HostOutput> {
        std::mem::take(&mut self.outputs)
    }

    fn tick_interval(&self) -> Duration {
        self.tick
    }

    fn max_frame_bytes(&self) -> usize {
        self.max_frame
    }

    fn on_shutdown(&mut self) {
        self.ready.store(false, Ordering::Release);
        self.persister.shutdown();
        if let Some(mut rec) = self.recorder.take() {
            match rec.finish() {
                Ok(()) => tracing::info!(path = %rec.path().display(), "trace written"),
                Err(e) => tracing::error!(path = %rec.path().display(), error = %e,
                    "finishing the trace failed"),
            }
        }
    }
}
