//! Recorded traces: every event a node was stepped with, so a fresh node can be
//! fed the same events and must produce the same actions (the sans-IO contract).
//!
//! `chronik serve --record-trace FILE` records at the [`BrokerHost`] level: the
//! node's start configuration (its [`NodeConfig`], seed included), then each
//! input in the order the node loop took it, with the monotonic `now_ms` it was
//! stepped at and a digest of the outputs that input produced. `cargo xtask
//! replay FILE` ([`replay::replay`]) builds a fresh node over a fresh
//! [`DiskStore`], feeds it the inputs and compares the digests step by step.
//!
//! What is recorded, and why:
//!
//! - **Raw request frames**, not decoded requests: decoding is deterministic,
//!   the frame is Kafka's own stable format, and a frame that fails to decode
//!   is replayed through the same path (the host answers or closes itself).
//! - **Connections opened (with the peer address) and closed, ticks (with the
//!   wall clock), disk completions** (`Persisted`, `PersistFailed`), and in
//!   a cluster **every frame from another broker and every lost peer link**:
//!   every other thing the node is stepped with. A replay feeds the recorded
//!   peer frames in; what the node sends to peers is digested, not sent.
//! - **Storage housekeeping** (segment roll, retention) with the wall clock it
//!   ran at: it is not a node input, but it changes what the node reads from
//!   the store (the log start offset, and whether a follower's entry load
//!   finds its entries).
//! - **The starting state: none.** A recording must start from an empty data
//!   directory (`serve` refuses `--record-trace` otherwise), so the trace alone
//!   determines the state; no copy of the data directory is needed.
//!
//! File format (all integers big-endian):
//!
//! ```text
//! header    8 bytes "CHRNKTRC", u32 format version (1)
//! record*   u32 payload length, u32 CRC-32C of the payload, payload
//! payload   u8 kind, then:
//!   1 Start  chronik version (str), NodeConfig (fixed field order), outputs
//!   2 Step   u64 now_ms, input, outputs
//!   3 End    u64 steps recorded (only after a clean shutdown)
//! input     u8 kind, then:
//!   1 Frame {u64 conn, u64 seq, bytes frame}   2 Opened {u64 conn, str peer}
//!   3 Closed {u64 conn}                         4 Tick {i64 wall_ms}
//!   5 Persisted {u64 group, u64 seq}            6 PersistFailed {u64 group, str error}
//!   7 Housekeeping {i64 wall_ms}
//!   8 Peer {u64 from, bytes payload}            9 PeerDown {u64 peer}
//! outputs   u32 responds, u32 closes, u32 persists, u32 sends, u64 digest
//! str/bytes u32 length, then the bytes
//! ```
//!
//! The digest is FNV-1a 64 over every output of the step in order: a Respond's
//! connection, sequence and frame bytes, a Close's connection, a Persist's
//! group, partition and write content (hard state, snapshot, entries), and a
//! Send's destination and payload. A record
//! whose CRC fails is corruption; a record cut short at the end of the file is
//! what a killed process leaves, and replay stops there cleanly.
//!
//! [`BrokerHost`]: crate::server::BrokerHost
//! [`DiskStore`]: crate::disk_store::DiskStore

mod codec;
mod recorder;
pub mod replay;

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use proto_core::multiraft::GroupId;
use proto_core::raft::{wire, Payload, PersistWrite};

use crate::node::{Input, NodeConfig};
use crate::store::TopicPartition;

pub use codec::{TraceError, TraceReader, TraceWriter};
pub use recorder::Recorder;

/// The first bytes of every trace file.
pub const MAGIC: [u8; 8] = *b"CHRNKTRC";

/// The format version this build writes and reads.
pub const VERSION: u32 = 2;

/// What decides a node's behaviour before its first input.
#[derive(Clone, Debug)]
pub struct TraceStart {
    /// The `chronik` version that recorded the trace: a replay by another
    /// version may legitimately differ.
    pub chronik_version: String,
    /// The configuration the node was built with, seed included.
    pub node: NodeConfig,
}

impl TraceStart {
    /// The start of a trace recorded by this build.
    pub fn new(node: NodeConfig) -> TraceStart {
        TraceStart {
            chronik_version: env!("CARGO_PKG_VERSION").to_string(),
            node,
        }
    }
}

/// One thing the node loop did to the node, as the trace records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceInput {
    /// A whole request frame (without its size prefix) from a connection.
    Frame {
        /// The driver's connection number.
        conn: u64,
        /// The request's place in the connection's order.
        seq: u64,
        /// The frame as the client sent it.
        frame: Bytes,
    },
    /// A client connected.
    Opened {
        /// The driver's connection number.
        conn: u64,
        /// The client's address.
        peer: SocketAddr,
    },
    /// A connection closed.
    Closed {
        /// The driver's connection number.
        conn: u64,
    },
    /// A tick, with the wall clock the node was given.
    Tick {
        /// Milliseconds since the Unix epoch.
        wall_ms: i64,
    },
    /// A disk write (and every earlier one of its group) became durable.
    Persisted {
        /// The Raft group written.
        group: u64,
        /// The write's sequence number.
        seq: u64,
    },
    /// A disk write failed.
    PersistFailed {
        /// The Raft group written.
        group: u64,
        /// What the disk said.
        error: String,
    },
    /// Segment rolling and retention ran over the store at this wall clock.
    Housekeeping {
        /// Milliseconds since the Unix epoch.
        wall_ms: i64,
    },
    /// A frame from another broker.
    Peer {
        /// The sending broker.
        from: u64,
        /// The frame's payload.
        payload: Bytes,
    },
    /// The transport lost its link to a broker.
    PeerDown {
        /// The broker.
        peer: u64,
    },
}

impl TraceInput {
    /// The trace's form of a disk completion; `None` for any other input.
    pub fn completion(input: &Input) -> Option<TraceInput> {
        match input {
            Input::Persisted { group, seq } => Some(TraceInput::Persisted {
                group: group.0,
                seq: *seq,
            }),
            Input::PersistFailed { group, error } => Some(TraceInput::PersistFailed {
                group: group.0,
                error: error.clone(),
            }),
            _ => None,
        }
    }

    /// The node input a completion record stands for.
    fn to_completion(&self) -> Option<Input> {
        match self {
            TraceInput::Persisted { group, seq } => Some(Input::Persisted {
                group: GroupId(*group),
                seq: *seq,
            }),
            TraceInput::PersistFailed { group, error } => Some(Input::PersistFailed {
                group: GroupId(*group),
                error: error.clone(),
            }),
            _ => None,
        }
    }
}

/// The Kafka API name and version in a request frame's header, if it names
/// one this broker serves.
pub fn frame_api(frame: &[u8]) -> Option<(&'static str, i16)> {
    let key = i16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
    let version = i16::from_be_bytes([*frame.get(2)?, *frame.get(3)?]);
    let key = kafka_protocol::messages::ApiKey::try_from(key).ok()?;
    Some((crate::protocol::support(key)?.name, version))
}

impl fmt::Display for TraceInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceInput::Frame { conn, seq, frame } => {
                write!(f, "frame conn {conn} seq {seq} (")?;
                match frame_api(frame) {
                    Some((api, v)) => write!(f, "{api} v{v}")?,
                    None => write!(f, "unknown API")?,
                }
                write!(f, ", {} bytes)", frame.len())
            }
            TraceInput::Opened { conn, peer } => write!(f, "opened conn {conn} from {peer}"),
            TraceInput::Closed { conn } => write!(f, "closed conn {conn}"),
            TraceInput::Tick { wall_ms } => write!(f, "tick (wall {wall_ms})"),
            TraceInput::Persisted { group, seq } => write!(f, "persisted g{group} seq {seq}"),
            TraceInput::PersistFailed { group, error } => {
                write!(f, "persist failed g{group}: {error}")
            }
            TraceInput::Housekeeping { wall_ms } => write!(f, "housekeeping (wall {wall_ms})"),
            TraceInput::Peer { from, payload } => {
                write!(f, "peer frame from {from} ({} bytes)", payload.len())
            }
            TraceInput::PeerDown { peer } => write!(f, "peer {peer} down"),
        }
    }
}

/// What one input made the node (or the host) do, condensed: counts by kind
/// and a digest of everything, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputSummary {
    /// Responses (including acks=0's empty ones).
    pub responds: u32,
    /// Connections closed.
    pub closes: u32,
    /// Disk writes asked for.
    pub persists: u32,
    /// Frames sent to other brokers.
    pub sends: u32,
    /// FNV-1a 64 of the outputs' content, in order.
    pub digest: u64,
}

impl fmt::Display for OutputSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} respond, {} close, {} persist, {} send, digest {:016x}",
            self.responds, self.closes, self.persists, self.sends, self.digest
        )
    }
}

/// One record of a trace file.
#[derive(Clone, Debug)]
pub enum Record {
    /// The node's start, and what it did while being built (start-up
    /// writes of the partitions it created).
    Start {
        /// The configuration.
        start: TraceStart,
        /// The outputs of `Node::new`.
        outputs: OutputSummary,
    },
    /// One input and what it produced.
    Step {
        /// The monotonic time the node was stepped at.
        now_ms: u64,
        /// The input.
        input: TraceInput,
        /// Its outputs.
        outputs: OutputSummary,
    },
    /// The recording stopped cleanly after `steps` steps.
    End {
        /// Step records written.
        steps: u64,
    },
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Accumulates an [`OutputSummary`] over one step's outputs.
#[derive(Clone, Debug)]
pub struct OutputDigest {
    summary: OutputSummary,
}

impl Default for OutputDigest {
    fn default() -> OutputDigest {
        OutputDigest {
            summary: OutputSummary {
                digest: FNV_OFFSET,
                ..OutputSummary::default()
            },
        }
    }
}

impl OutputDigest {
    fn bytes(&mut self, data: &[u8]) {
        let mut h = self.summary.digest;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        self.summary.digest = h;
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }

    /// Length-prefixed, so two outputs can never run into each other.
    fn blob(&mut self, data: &[u8]) {
        self.u64(data.len() as u64);
        self.bytes(data);
    }

    /// A response (`None`: a request answered with nothing, acks=0).
    pub fn respond(&mut self, conn: u64, seq: u64, frame: Option<&[u8]>) {
        self.summary.responds += 1;
        self.bytes(b"R");
        self.u64(conn);
        self.u64(seq);
        match frame {
            Some(f) => self.blob(f),
            None => self.bytes(b"-"),
        }
    }

    /// A connection closed by the node or the host.
    pub fn close(&mut self, conn: u64) {
        self.summary.closes += 1;
        self.bytes(b"C");
        self.u64(conn);
    }

    /// A frame for another broker.
    pub fn send(&mut self, to: u64, payload: &[u8]) {
        self.summary.sends += 1;
        self.bytes(b"S");
        self.u64(to);
        self.blob(payload);
    }

    /// A disk write: everything it would put on disk.
    pub fn persist(&mut self, group: GroupId, tp: &TopicPartition, write: &PersistWrite) {
        self.summary.persists += 1;
        self.bytes(b"P");
        self.u64(group.0);
        self.blob(tp.topic.as_bytes());
        self.u64(tp.partition as u32 as u64);
        self.u64(write.seq);
        self.u64(u64::from(write.must_sync));
        match &write.hard_state {
            Some(hs) => self.blob(&wire::encode_hard_state(hs)),
            None => self.bytes(b"-"),
        }
        match &write.snapshot {
            Some(s) => self.blob(&wire::encode_snapshot(s)),
            None => self.bytes(b"-"),
        }
        self.u64(write.entries.len() as u64);
        for e in &write.entries {
            self.u64(e.index.0);
            self.u64(e.term.0);
            match &e.payload {
                Payload::Normal(data) => self.blob(data),
                // Raft-only entries are rare and small: their wire form is exact.
                _ => self.blob(&wire::encode_entries(&vec![e.clone()])),
            }
        }
    }

    /// The summary so far; the digest starts over.
    pub fn finish(&mut self) -> OutputSummary {
        std::mem::take(self).summary
    }
}

#[cfg(test)]
mod tests;
