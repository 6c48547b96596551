//! The broker as a driver's [`Host`]: frames in, the sans-IO [`Node`] in the
//! middle, disk writes handed to the group committer, answers out, metrics on
//! the way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use io_sync::host::{Host, HostOutput, Slot};

use crate::disk_store::{DiskStore, Persister};
use crate::metrics::Metrics;
use crate::node::{Input, Node, Output, ReplyId};
use crate::protocol;

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
}

impl BrokerHost {
    /// Wraps `node`, whose writes go to `persister` and reads to `store`.
    pub fn new(
        node: Node,
        persister: Persister,
        store: DiskStore,
        metrics: Arc<Metrics>,
        ready: Arc<AtomicBool>,
        max_frame: usize,
    ) -> BrokerHost {
        let tick = Duration::from_millis(node.tick_ms().max(1));
        BrokerHost {
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
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    fn step(&mut self, now: Instant, input: Input) {
        let ms = self.ms(now);
        self.node.step(ms, input);
        self.collect(now);
    }

    /// Performs the node's outputs.
    fn collect(&mut self, now: Instant) {
        for out in self.node.take_outputs() {
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
            }
        }
    }

    fn housekeeping(&mut self) {
        let wall_ms = wall_ms();
        self.store.housekeeping(wall_ms);
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
        let reply = ReplyId {
            conn: slot.conn,
            seq: slot.seq,
        };
        match protocol::decode_request(frame) {
            Ok(request) => {
                let api = protocol::support(request.header.api_key).map_or("other", |s| s.name);
                self.started.insert(reply, (api, now));
                let request = Box::new(request);
                self.step(now, Input::Request { reply, request });
            }
            Err(e) => match e.reply() {
                Some(frame) => {
                    self.metrics.bytes_out(frame.len() as u64);
                    self.outputs.push(HostOutput::Respond {
                        slot,
                        frame: Some(frame),
                    });
                }
                None => {
                    tracing::warn!(conn = slot.conn, error = %e, "closing a connection on bad input");
                    self.outputs.push(HostOutput::Close { conn: slot.conn });
                }
            },
        }
    }

    fn on_opened(&mut self, now: Instant, conn: u64, peer: std::net::SocketAddr) {
        self.step(now, Input::Opened { conn, peer });
    }

    fn on_closed(&mut self, now: Instant, conn: u64) {
        self.started.retain(|r, _| r.conn != conn);
        self.step(now, Input::Closed { conn });
    }

    fn on_tick(&mut self, now: Instant) {
        self.ready.store(true, Ordering::Release);
        self.ticks += 1;
        self.step(now, Input::Tick { wall_ms: wall_ms() });
        if self.ticks % HOUSEKEEPING_TICKS == 1 {
            self.housekeeping();
        }
    }

    fn on_wake(&mut self, now: Instant) {
        for done in self.persister.completions() {
            self.step(now, done);
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
    }
}
