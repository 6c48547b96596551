//! What the coordinator keeps in its offsets partition (Kafka's
//! `__consumer_offsets`), and the record format.
//!
//! Every record has a compaction key; the last record per key wins, and a
//! tombstone (no value) deletes the key. The format is ours, big-endian and
//! versioned:
//!
//! ```text
//! key   = kind:u8 fields...
//!         kind 1 (group):  group:str
//!         kind 2 (offset): group:str topic:str partition:i32
//! value = version:u8 fields...                       (absent = tombstone)
//!         group v2:  protocol_type:str generation:i32 protocol:opt leader:opt
//!                    current_state_timestamp_ms:i64 count:u32 count * member
//!         group v1:  as v2 without current_state_timestamp_ms
//!         member:    member_id:str group_instance_id:opt client_id:str
//!                    client_host:str rebalance_timeout_ms:i32
//!                    session_timeout_ms:i32 subscription:bytes assignment:bytes
//!         offset v1: offset:i64 leader_epoch:i32 metadata:str commit_timestamp_ms:i64
//! str, bytes = len:u32 then len bytes (str is UTF-8)
//! opt        = 0:u8 (none) | 1:u8 str
//! ```
//!
//! A key kind is never reused for another layout; a new layout gets a new
//! value version, and older versions still decode (an offsets partition keeps
//! what older brokers wrote). A group value is written as v2, or as v1 when it
//! has no state timestamp (a v1 record read back), so every record encodes to
//! the bytes it was decoded from. Decoding checks every length against the
//! bytes left before it copies, and rejects trailing bytes, so garbage is an
//! error, never a panic or a large allocation.

use bytes::Bytes;

const KIND_GROUP: u8 = 1;
const KIND_OFFSET: u8 = 2;
const VALUE_V1: u8 = 1;
/// Group values with `current_state_timestamp_ms`.
const VALUE_V2: u8 = 2;

/// One record of the offsets partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// A group's membership and assignment as of a completed sync, a static
    /// member's replacement or the group becoming empty.
    GroupMetadata {
        /// The group.
        group: String,
        /// Its protocol type, or "" if it never had members.
        protocol_type: String,
        /// The generation.
        generation: i32,
        /// The generation's protocol; `None` when the group is empty.
        protocol: Option<String>,
        /// The leader's member id; `None` when the group is empty.
        leader: Option<String>,
        /// When the group entered its state, in the coordinator's clock
        /// (Kafka's `currentStateTimestamp`). For an empty group that is when
        /// it became empty, where its offsets' retention starts, so it
        /// survives a restart. `None` in a value of version 1, which did not
        /// carry it.
        current_state_timestamp_ms: Option<i64>,
        /// The members with their subscription and assignment.
        members: Vec<MemberRecord>,
    },
    /// The group is gone.
    GroupTombstone {
        /// The group.
        group: String,
    },
    /// A committed offset.
    Offset {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The next offset to consume.
        offset: i64,
        /// The leader epoch of the last consumed record, or -1.
        leader_epoch: i32,
        /// Client metadata.
        metadata: String,
        /// The coordinator's `now_ms` when the commit arrived: where the
        /// offset's retention starts, replayed after a restart too.
        commit_timestamp_ms: i64,
    },
    /// A committed offset is gone.
    OffsetTombstone {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
}

/// One member in a [`Record::GroupMetadata`], as Kafka's `GroupMetadataValue` keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// The member.
    pub member_id: String,
    /// Its instance id, if static.
    pub group_instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// Its client host.
    pub client_host: String,
    /// Its rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Its session timeout.
    pub session_timeout_ms: i32,
    /// Its metadata for the generation's protocol.
    pub subscription: Bytes,
    /// Its assignment.
    pub assignment: Bytes,
}

/// Why bytes are not a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes end inside a field.
    #[error("record ends inside a field")]
    Truncated,
    /// The key's first byte is not a known kind.
    #[error("unknown record key kind {0}")]
    UnknownKeyKind(u8),
    /// The value's first byte is not a known version.
    #[error("unknown record value version {0}")]
    UnknownVersion(u8),
    /// Bytes are left after the last field.
    #[error("{0} bytes after the last field")]
    TrailingBytes(usize),
    /// A string is not UTF-8.
    #[error("a string is not UTF-8")]
    InvalidUtf8,
    /// An optional field's marker is neither 0 nor 1.
    #[error("invalid optional-field marker {0}")]
    InvalidMarker(u8),
}

impl Record {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            Record::GroupMetadata { group, .. }
            | Record::GroupTombstone { group }
            | Record::Offset { group, .. }
            | Record::OffsetTombstone { group, .. } => group,
        }
    }

    /// The compaction key; a tombstone has its live record's key.
    pub fn key(&self) -> Vec<u8> {
        let mut w = Vec::new();
        match self {
            Record::GroupMetadata { group, .. } | Record::GroupTombstone { group } => {
                w.push(KIND_GROUP);
                put_str(&mut w, group);
            }
            Record::Offset {
                group,
                topic,
                partition,
                ..
            }
            | Record::OffsetTombstone {
                group,
                topic,
                partition,
            } => {
                w.push(KIND_OFFSET);
                put_str(&mut w, group);
                put_str(&mut w, topic);
                w.extend_from_slice(&partition.to_be_bytes());
            }
        }
        w
    }

    /// The Kafka record's key and value; `None` for tombstones.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let value = match self {
            Record::GroupTombstone { .. } | Record::OffsetTombstone { .. } => None,
            Record::GroupMetadata {
                protocol_type,
                generation,
                protocol,
                leader,
                current_state_timestamp_ms,
                members,
                ..
            } => {
                let version = match current_state_timestamp_ms {
                    Some(_) => VALUE_V2,
                    None => VALUE_V1,
                };
                let mut w = vec![version];
                put_str(&mut w, protocol_type);
                w.extend_from_slice(&generation.to_be_bytes());
                put_opt(&mut w, protocol.as_deref());
                put_opt(&mut w, leader.as_deref());
                if let Some(ts) = current_state_timestamp_ms {
                    w.extend_from_slice(&ts.to_be_bytes());
                }
                put_len(&mut w, members.len());
                for m in members {
                    put_str(&mut w, &m.member_id);
                    put_opt(&mut w, m.group_instance_id.as_deref());
                    put_str(&mut w, &m.client_id);
                    put_str(&mut w, &m.client_host);
                    w.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
                    w.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
                    put_bytes(&mut w, &m.subscription);
                    put_bytes(&mut w, &m.assignment);
                }
                Some(w)
            }
            Record::Offset {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp_ms,
                ..
            } => {
                let mut w = vec![VALUE_V1];
                w.extend_from_slice(&offset.to_be_bytes());
                w.extend_from_slice(&leader_epoch.to_be_bytes());
                put_str(&mut w, metadata);
                w.extend_from_slice(&commit_timestamp_ms.to_be_bytes());
                Some(w)
            }
        };
        (self.key(), value)
    }

    /// Reads a record back from its key and value; any bytes give a result.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Record, RecordError> {
        let mut k = Reader::new(key);
        let kind = k.u8()?;
        match kind {
            KIND_GROUP => {
                let group = k.str()?;
                k.end()?;
                match value {
                    None => Ok(Record::GroupTombstone { group }),
                    Some(v) => decode_group(group, v),
                }
            }
            KIND_OFFSET => {
                let group = k.str()?;
                let topic = k.str()?;
                let partition = k.i32()?;
                k.end()?;
                match value {
                    None => Ok(Record::OffsetTombstone {
                        group,
                        topic,
                        partition,
                    }),
                    Some(v) => {
                        let mut r = Reader::new(v);
                        r.version(&[VALUE_V1])?;
                        let offset = r.i64()?;
                        let leader_epoch = r.i32()?;
                        let metadata = r.str()?;
                        let commit_timestamp_ms = r.i64()?;
                        r.end()?;
                        Ok(Record::Offset {
                            group,
                            topic,
                            partition,
                            offset,
                            leader_epoch,
                            metadata,
                            commit_timestamp_ms,
                        })
                    }
                }
            }
            other => Err(RecordError::UnknownKeyKind(other)),
        }
    }
}

fn decode_group(group: String, value: &[u8]) -> Result<Record, RecordError> {
    let mut r = Reader::new(value);
    let version = r.version(&[VALUE_V1, VALUE_V2])?;
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.opt()?;
    let leader = r.opt()?;
    let current_state_timestamp_ms = match version {
        VALUE_V1 => None,
        _ => Some(r.i64()?),
    };
    let count = r.u32()?;
    // No capacity from the count: every member consumes bytes, so a forged
    // count ends in `Truncated`, not in a huge allocation.
    let mut members = Vec::new();
    for _ in 0..count {
        members.push(MemberRecord {
            member_id: r.str()?,
            group_instance_id: r.opt()?,
            client_id: r.str()?,
            client_host: r.str()?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    r.end()?;
    Ok(Record::GroupMetadata {
        group,
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

fn put_len(w: &mut Vec<u8>, len: usize) {
    // Fields come from requests bounded far below 4 GiB by the broker's frame limit.
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    w.extend_from_slice(&len.to_be_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_len(w, b.len());
    w.extend_from_slice(b);
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put_bytes(w, s.as_bytes());
}

fn put_opt(w: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => w.push(0),
        Some(s) => {
            w.push(1);
            put_str(w, s);
        }
    }
}

/// A cursor over untrusted bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.buf.len() < n {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// The value's version, if it is one of `known`.
    fn version(&mut self, known: &[u8]) -> Result<u8, RecordError> {
        let v = self.u8()?;
        if known.contains(&v) {
            Ok(v)
        } else {
            Err(RecordError::UnknownVersion(v))
        }
    }

    fn raw(&mut self) -> Result<&'a [u8], RecordError> {
        let len = self.u32()?;
        let len = usize::try_from(len).map_err(|_| RecordError::Truncated)?;
        self.take(len)
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        Ok(Bytes::copy_from_slice(self.raw()?))
    }

    fn str(&mut self) -> Result<String, RecordError> {
        let raw = self.raw()?;
        std::str::from_utf8(raw)
            .map(str::to_string)
            .map_err(|_| RecordError::InvalidUtf8)
    }

    fn opt(&mut self) -> Result<Option<String>, RecordError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            m => Err(RecordError::InvalidMarker(m)),
        }
    }

    fn end(&self) -> Result<(), RecordError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(RecordError::TrailingBytes(n)),
        }
    }
}
