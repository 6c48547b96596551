//! The trace file's bytes: the header, framed records and their payloads, as
//! the module documentation lays them out.
//!
//! Records are framed the way peer connections frame theirs
//! ([`proto_core::transport::frame`]: length, CRC-32C, payload), so the same
//! checked reader cuts them.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use proto_core::group::CoordinatorConfig;
use proto_core::transport::frame::{self, FrameError, HEADER_BYTES};

use super::{OutputSummary, Record, TraceInput, TraceStart, MAGIC, VERSION};
use crate::node::topics::TopicConfig;
use crate::node::NodeConfig;

/// Why a trace cannot be read (further).
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read or written.
    #[error("trace file: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with the trace magic.
    #[error("not a Chronik trace (the file does not start with {:?})", String::from_utf8_lossy(&MAGIC))]
    NotATrace,
    /// The file was written in a format this build does not read.
    #[error("trace format version {found}, but this build reads version {VERSION}")]
    Version {
        /// The version in the header.
        found: u32,
    },
    /// The file ends inside a record: the recording process was killed (or
    /// the file was cut) while writing it. Every earlier record is whole.
    #[error("record {record} at byte {offset} is cut short ({have} of {need} bytes): the recording stopped mid-write")]
    Truncated {
        /// The record's number, from 0 (the start record).
        record: u64,
        /// Where it starts in the file.
        offset: u64,
        /// Bytes present.
        have: usize,
        /// Bytes its header (or a whole header) needs.
        need: usize,
    },
    /// A record's bytes do not match its checksum.
    #[error("record {record} at byte {offset} is corrupt: {reason}")]
    Corrupt {
        /// The record's number, from 0.
        record: u64,
        /// Where it starts in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

impl TraceError {
    /// Whether this is the clean kind of end: a tail cut short by a kill.
    pub fn is_truncated_tail(&self) -> bool {
        matches!(self, TraceError::Truncated { .. })
    }
}

/// Writes a trace to any byte sink: the recorder's buffer, or a test's file.
pub struct TraceWriter<W: Write> {
    out: W,
    scratch: Vec<u8>,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the header.
    pub fn new(mut out: W) -> io::Result<TraceWriter<W>> {
        out.write_all(&MAGIC)?;
        out.write_all(&VERSION.to_be_bytes())?;
        Ok(TraceWriter {
            out,
            scratch: Vec::new(),
        })
    }

    /// Appends one framed record.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        self.scratch.clear();
        encode_record(record, &mut self.scratch);
        let header = frame::encode_header(&self.scratch, u32::MAX as usize)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.out.write_all(&header)?;
        self.out.write_all(&self.scratch)
    }

    /// The sink, for flushing.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The sink back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads a trace record by record, checking each one's CRC.
pub struct TraceReader<R: Read> {
    input: R,
    buf: BytesMut,
    eof: bool,
    /// Records returned so far.
    records: u64,
    /// File offset of `buf`'s first byte.
    offset: u64,
}

const READ_CHUNK: usize = 256 * 1024;

impl<R: Read> TraceReader<R> {
    /// Checks the header.
    pub fn new(mut input: R) -> Result<TraceReader<R>, TraceError> {
        let mut header = [0u8; 12];
        let mut have = 0;
        while have < header.len() {
            match input.read(&mut header[have..]) {
                Ok(0) => break,
                Ok(n) => have += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if have < 8 || header[..8] != MAGIC {
            return Err(TraceError::NotATrace);
        }
        if have < 12 {
            return Err(TraceError::Truncated {
                record: 0,
                offset: 8,
                have: have - 8,
                need: 4,
            });
        }
        let found = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        if found != VERSION {
            return Err(TraceError::Version { found });
        }
        Ok(TraceReader {
            input,
            buf: BytesMut::new(),
            eof: false,
            records: 0,
            offset: 12,
        })
    }

    /// The next record; `Ok(None)` at a clean end of file (between records).
    pub fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
        loop {
            let before = self.buf.len();
            match frame::next_frame(&mut self.buf, u32::MAX as usize) {
                Ok(Some(payload)) => {
                    let at = self.offset;
                    let record = self.records;
                    self.offset += (before - self.buf.len()) as u64;
                    self.records += 1;
                    return decode_record(payload).map(Some).map_err(|reason| {
                        TraceError::Corrupt {
                            record,
                            offset: at,
                            reason,
                        }
                    });
                }
                Ok(None) if self.eof => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let need = match self.buf.first_chunk::<4>() {
                        Some(len) => HEADER_BYTES + u32::from_be_bytes(*len) as usize,
                        None => HEADER_BYTES,
                    };
                    return Err(TraceError::Truncated {
                        record: self.records,
                        offset: self.offset,
                        have: self.buf.len(),
                        need,
                    });
                }
                Ok(None) => self.fill()?,
                Err(FrameError::BadCrc { expected, actual }) => {
                    return Err(TraceError::Corrupt {
                        record: self.records,
                        offset: self.offset,
                        reason: format!(
                            "CRC-32C mismatch (header {expected:#010x}, payload {actual:#010x})"
                        ),
                    })
                }
                Err(e @ FrameError::TooLarge(_)) => {
                    return Err(TraceError::Corrupt {
                        record: self.records,
                        offset: self.offset,
                        reason: e.to_string(),
                    })
                }
            }
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let n = loop {
            match self.input.read(&mut self.buf[len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(len + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(())
    }
}

// ----- payloads -------------------------------------------------------------

const REC_START: u8 = 1;
const REC_STEP: u8 = 2;
const REC_END: u8 = 3;

const IN_FRAME: u8 = 1;
const IN_OPENED: u8 = 2;
const IN_CLOSED: u8 = 3;
const IN_TICK: u8 = 4;
const IN_PERSISTED: u8 = 5;
const IN_PERSIST_FAILED: u8 = 6;
const IN_HOUSEKEEPING: u8 = 7;
const IN_PEER: u8 = 8;
const IN_PEER_DOWN: u8 = 9;

struct Enc<'a>(&'a mut Vec<u8>);

impl Enc<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.u64(v as u64);
    }
    fn i32(&mut self, v: i32) {
        self.u32(v as u32);
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
}

struct Dec {
    buf: Bytes,
    pos: usize,
}

impl Dec {
    fn take(&mut self, n: usize) -> Result<Bytes, String> {
        if self.buf.len() - self.pos < n {
            return Err(format!(
                "payload ends at byte {} but a field needs {n} more",
                self.buf.len()
            ));
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(&b);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.array().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.array().map(u64::from_be_bytes)
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.u64().map(|v| v as i64)
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.u32().map(|v| v as i32)
    }
    fn bool(&mut self) -> Result<bool, String> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(format!("{b} is not a boolean")),
        }
    }
    fn bytes(&mut self) -> Result<Bytes, String> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn str(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| "a string is not UTF-8".to_string())
    }
}

fn encode_record(record: &Record, out: &mut Vec<u8>) {
    let mut e = Enc(out);
    match record {
        Record::Start { start, outputs } => {
            e.u8(REC_START);
            e.str(&start.chronik_version);
            encode_node_config(&mut e, &start.node);
            encode_outputs(&mut e, outputs);
        }
        Record::Step {
            now_ms,
            input,
            outputs,
        } => {
            e.u8(REC_STEP);
            e.u64(*now_ms);
            encode_input(&mut e, input);
            encode_outputs(&mut e, outputs);
        }
        Record::End { steps } => {
            e.u8(REC_END);
            e.u64(*steps);
        }
    }
}

fn decode_record(payload: Bytes) -> Result<Record, String> {
    let mut d = Dec {
        buf: payload,
        pos: 0,
    };
    let record = match d.u8()? {
        REC_START => Record::Start {
            start: TraceStart {
                chronik_version: d.str()?,
                node: decode_node_config(&mut d)?,
            },
            outputs: decode_outputs(&mut d)?,
        },
        REC_STEP => Record::Step {
            now_ms: d.u64()?,
            input: decode_input(&mut d)?,
            outputs: decode_outputs(&mut d)?,
        },
        REC_END => Record::End { steps: d.u64()? },
        kind => return Err(format!("unknown record kind {kind}")),
    };
    if d.pos != d.buf.len() {
        return Err(format!(
            "{} bytes left over after the record",
            d.buf.len() - d.pos
        ));
    }
    Ok(record)
}

fn encode_outputs(e: &mut Enc<'_>, o: &OutputSummary) {
    e.u32(o.responds);
    e.u32(o.closes);
    e.u32(o.persists);
    e.u32(o.sends);
    e.u64(o.digest);
}

fn decode_outputs(d: &mut Dec) -> Result<OutputSummary, String> {
    Ok(OutputSummary {
        responds: d.u32()?,
        closes: d.u32()?,
        persists: d.u32()?,
        sends: d.u32()?,
        digest: d.u64()?,
    })
}

fn encode_input(e: &mut Enc<'_>, input: &TraceInput) {
    match input {
        TraceInput::Frame { conn, seq, frame } => {
            e.u8(IN_FRAME);
            e.u64(*conn);
            e.u64(*seq);
            e.bytes(frame);
        }
        TraceInput::Opened { conn, peer } => {
            e.u8(IN_OPENED);
            e.u64(*conn);
            e.str(&peer.to_string());
        }
        TraceInput::Closed { conn } => {
            e.u8(IN_CLOSED);
            e.u64(*conn);
        }
        TraceInput::Tick { wall_ms } => {
            e.u8(IN_TICK);
            e.i64(*wall_ms);
        }
        TraceInput::Persisted { group, seq } => {
            e.u8(IN_PERSISTED);
            e.u64(*group);
            e.u64(*seq);
        }
        TraceInput::PersistFailed { group, error } => {
            e.u8(IN_PERSIST_FAILED);
            e.u64(*group);
            e.str(error);
        }
        TraceInput::Housekeeping { wall_ms } => {
            e.u8(IN_HOUSEKEEPING);
            e.i64(*wall_ms);
        }
        TraceInput::Peer { from, payload } => {
            e.u8(IN_PEER);
            e.u64(*from);
            e.bytes(payload);
        }
        TraceInput::PeerDown { peer } => {
            e.u8(IN_PEER_DOWN);
            e.u64(*peer);
        }
    }
}

fn decode_input(d: &mut Dec) -> Result<TraceInput, String> {
    Ok(match d.u8()? {
        IN_FRAME => TraceInput::Frame {
            conn: d.u64()?,
            seq: d.u64()?,
            frame: d.bytes()?,
        },
        IN_OPENED => TraceInput::Opened {
            conn: d.u64()?,
            peer: {
                let s = d.str()?;
                s.parse::<SocketAddr>()
                    .map_err(|_| format!("{s:?} is not a socket address"))?
            },
        },
        IN_CLOSED => TraceInput::Closed { conn: d.u64()? },
        IN_TICK => TraceInput::Tick { wall_ms: d.i64()? },
        IN_PERSISTED => TraceInput::Persisted {
            group: d.u64()?,
            seq: d.u64()?,
        },
        IN_PERSIST_FAILED => TraceInput::PersistFailed {
            group: d.u64()?,
            error: d.str()?,
        },
        IN_HOUSEKEEPING => TraceInput::Housekeeping { wall_ms: d.i64()? },
        IN_PEER => TraceInput::Peer {
            from: d.u64()?,
            payload: d.bytes()?,
        },
        IN_PEER_DOWN => TraceInput::PeerDown { peer: d.u64()? },
        kind => return Err(format!("unknown input kind {kind}")),
    })
}

/// Every field, in a fixed order. The destructuring has no `..`, so a field
/// added to the config fails to compile here until the trace records it.
fn encode_node_config(e: &mut Enc<'_>, cfg: &NodeConfig) {
    let NodeConfig {
        node_id,
        advertised_host,
        advertised_port,
        rack,
        cluster_id,
        auto_create_topics,
        default_partitions,
        topic_defaults,
        tick_ms,
        seed,
        offsets_partitions,
        coordinator,
        peers,
        default_replication_factor,
    } = cfg;
    e.i32(*node_id);
    e.str(advertised_host);
    e.i32(*advertised_port);
    match rack {
        Some(r) => {
            e.bool(true);
            e.str(r);
        }
        None => e.bool(false),
    }
    e.str(cluster_id);
    e.bool(*auto_create_topics);
    e.i32(*default_partitions);
    let TopicConfig {
        retention_ms,
        retention_bytes,
        segment_bytes,
        segment_ms,
        max_message_bytes,
        min_insync_replicas,
    } = topic_defaults;
    for v in [
        retention_ms,
        retention_bytes,
        segment_bytes,
        segment_ms,
        max_message_bytes,
        min_insync_replicas,
    ] {
        e.i64(*v);
    }
    e.u64(*tick_ms);
    e.u64(*seed);
    e.i32(*offsets_partitions);
    let CoordinatorConfig {
        min_session_timeout_ms,
        max_session_timeout_ms,
        initial_rebalance_delay_ms,
        offsets_retention_ms,
        offsets_retention_check_interval_ms,
        max_group_size,
        max_metadata_bytes,
        seed: coordinator_seed,
    } = coordinator;
    e.i32(*min_session_timeout_ms);
    e.i32(*max_session_timeout_ms);
    e.u64(*initial_rebalance_delay_ms);
    e.u64(*offsets_retention_ms);
    e.u64(*offsets_retention_check_interval_ms);
    e.u64(*max_group_size as u64);
    e.u64(*max_metadata_bytes as u64);
    e.u64(*coordinator_seed);
    e.u64(peers.len() as u64);
    for (id, addr) in peers {
        e.u64(*id);
        e.str(addr);
    }
    e.i32(i32::from(*default_replication_factor));
}

fn decode_node_config(d: &mut Dec) -> Result<NodeConfig, String> {
    Ok(NodeConfig {
        node_id: d.i32()?,
        advertised_host: d.str()?,
        advertised_port: d.i32()?,
        rack: if d.bool()? { Some(d.str()?) } else { None },
        cluster_id: d.str()?,
        auto_create_topics: d.bool()?,
        default_partitions: d.i32()?,
        topic_defaults: TopicConfig {
            retention_ms: d.i64()?,
            retention_bytes: d.i64()?,
            segment_bytes: d.i64()?,
            segment_ms: d.i64()?,
            max_message_bytes: d.i64()?,
            min_insync_replicas: d.i64()?,
        },
        tick_ms: d.u64()?,
        seed: d.u64()?,
        offsets_partitions: d.i32()?,
        coordinator: CoordinatorConfig {
            min_session_timeout_ms: d.i32()?,
            max_session_timeout_ms: d.i32()?,
            initial_rebalance_delay_ms: d.u64()?,
            offsets_retention_ms: d.u64()?,
            offsets_retention_check_interval_ms: d.u64()?,
            max_group_size: d.u64()? as usize,
            max_metadata_bytes: d.u64()? as usize,
            seed: d.u64()?,
        },
        peers: {
            let n = d.u64()?;
            let mut peers = std::collections::BTreeMap::new();
            for _ in 0..n {
                peers.insert(d.u64()?, d.str()?);
            }
            peers
        },
        default_replication_factor: i16::try_from(d.i32()?)
            .map_err(|_| "replication factor out of range".to_string())?,
    })
}
