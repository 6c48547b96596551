//! The messages that open every peer connection, and their byte format.
//!
//! The dialer sends a [`Hello`]; the acceptor answers a [`HelloAck`] or a
//! refusal code, then the connection carries frames ([`super::frame`]).
//! Every message starts with the same 8-byte header, which later versions
//! must keep, so any version can tell a Chronik peer from a stranger and read
//! which version the other side speaks:
//!
//! ```text
//! offset size field
//!      0    4 magic "CHRP"
//!      4    2 protocol version, u16 big-endian (this version: 1)
//!      6    1 kind: 1 hello, 2 hello-ack, 3 refuse
//!      7    1 body length: the bytes after this header
//!      8    - body
//!
//! hello body:     from node u64 | to node u64 | cluster id length u8 | cluster id
//! hello-ack body: from node u64 | cluster id length u8 | cluster id
//! refuse body:    reason code u8 (see RefuseCode)
//! ```
//!
//! Decoding is strict: whatever [`decode`] accepts is the exact encoding of
//! what it returns, and it decides within [`MAX_MESSAGE_BYTES`], so a driver
//! reads a handshake into a small fixed buffer.

use std::fmt;

use crate::raft::NodeId;

/// The first bytes of every handshake message: "Chronik peer".
pub const MAGIC: [u8; 4] = *b"CHRP";

/// The only protocol version this build speaks. A peer speaking another is
/// refused: frames and batches are not versioned on their own.
pub const PROTOCOL_VERSION: u16 = 1;

/// Length of the header every handshake message starts with.
pub const HEADER_BYTES: usize = 8;

/// The longest handshake message: a hello with the longest cluster id. By
/// then [`decode`] has always decided.
pub const MAX_MESSAGE_BYTES: usize = HEADER_BYTES + HELLO_FIXED + ClusterId::MAX_BYTES;

const KIND_HELLO: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_REFUSE: u8 = 3;
/// Hello body before the cluster id: from, to, the id's length.
const HELLO_FIXED: usize = 8 + 8 + 1;
/// Hello-ack body before the cluster id: from, the id's length.
const ACK_FIXED: usize = 8 + 1;

/// The cluster a node belongs to. Nodes of different clusters refuse each
/// other, so a mistyped `--peers` cannot join two clusters' Raft groups.
///
/// 1 to 64 characters of `A-Z a-z 0-9 - _ .` (the broker's `--cluster-id`
/// rule): a hostile peer's id is logged, so it can hold no control characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterId(String);

/// A cluster id that breaks the [`ClusterId`] rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a cluster id is 1 to 64 characters of A-Z, a-z, 0-9, '-', '_', '.'")]
pub struct InvalidClusterId;

impl ClusterId {
    /// The longest cluster id, in bytes.
    pub const MAX_BYTES: usize = 64;

    /// Checks `id` against the rule.
    pub fn new(id: impl Into<String>) -> Result<ClusterId, InvalidClusterId> {
        let id = id.into();
        if Self::valid(id.as_bytes()) {
            Ok(ClusterId(id))
        } else {
            Err(InvalidClusterId)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn valid(bytes: &[u8]) -> bool {
        (1..=Self::MAX_BYTES).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    }

    fn from_wire(bytes: &[u8]) -> Result<ClusterId, HandshakeError> {
        if !Self::valid(bytes) {
            return Err(HandshakeError::BadClusterId);
        }
        // Valid ids are ASCII: one byte per character.
        Ok(ClusterId(bytes.iter().map(|&b| char::from(b)).collect()))
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The dialer's opening message: who it is and whom it means to reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The dialer's cluster.
    pub cluster: ClusterId,
    /// The dialer's node id.
    pub from: NodeId,
    /// The node the dialer expects at this address.
    pub to: NodeId,
}

/// The acceptor's yes: who it is, so the dialer can check it too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelloAck {
    /// The acceptor's cluster.
    pub cluster: ClusterId,
    /// The acceptor's node id.
    pub from: NodeId,
}

/// Why an acceptor refused a dialer, as sent on the wire. The dialer logs it;
/// the acceptor logs the full [`super::Refusal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub enum RefuseCode {
    /// The dialer belongs to another cluster.
    #[error("another cluster")]
    WrongCluster = 1,
    /// The dialer speaks another protocol version.
    #[error("unsupported protocol version")]
    UnsupportedVersion = 2,
    /// The dialer's node id is not among the acceptor's peers.
    #[error("unknown node id")]
    UnknownNode = 3,
    /// The dialer claims the acceptor's own node id.
    #[error("node id impersonates the acceptor")]
    Impersonation = 4,
    /// The dialer expected another node at this address.
    #[error("the dialer expected another node")]
    WrongTarget = 5,
    /// The dialer's hello could not be decoded.
    #[error("malformed hello")]
    Malformed = 6,
}

impl RefuseCode {
    fn from_wire(code: u8) -> Result<RefuseCode, HandshakeError> {
        Ok(match code {
            1 => RefuseCode::WrongCluster,
            2 => RefuseCode::UnsupportedVersion,
            3 => RefuseCode::UnknownNode,
            4 => RefuseCode::Impersonation,
            5 => RefuseCode::WrongTarget,
            6 => RefuseCode::Malformed,
            other => return Err(HandshakeError::UnknownRefuseCode(other)),
        })
    }
}

/// One handshake message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// The dialer's opening.
    Hello(Hello),
    /// The acceptor's yes.
    Ack(HelloAck),
    /// The acceptor's no, after which it closes the connection.
    Refuse(RefuseCode),
}

/// Why bytes are not a handshake message this build can read. Every case
/// ends the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The bytes do not start with [`MAGIC`]: not a Chronik peer.
    #[error("not a Chronik peer (bad magic)")]
    NotChronik,
    /// The header names a version other than [`PROTOCOL_VERSION`].
    #[error("protocol version {0}, this node speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion(u16),
    /// The header names no known message kind.
    #[error("unknown handshake message kind {0}")]
    UnknownKind(u8),
    /// The body length does not fit the message kind.
    #[error("handshake body of {len} bytes does not fit message kind {kind}")]
    BadLength {
        /// The message kind.
        kind: u8,
        /// The announced body length.
        len: u8,
    },
    /// The cluster id breaks the [`ClusterId`] rule.
    #[error("invalid cluster id")]
    BadClusterId,
    /// A refusal with a code this build does not know.
    #[error("unknown refusal code {0}")]
    UnknownRefuseCode(u8),
}

/// Encodes `msg` at [`PROTOCOL_VERSION`].
pub fn encode(msg: &Handshake) -> Vec<u8> {
    let mut body = Vec::with_capacity(MAX_MESSAGE_BYTES - HEADER_BYTES);
    let kind = match msg {
        Handshake::Hello(h) => {
            body.extend_from_slice(&h.from.0.to_be_bytes());
            body.extend_from_slice(&h.to.0.to_be_bytes());
            put_cluster(&mut body, &h.cluster);
            KIND_HELLO
        }
        Handshake::Ack(a) => {
            body.extend_from_slice(&a.from.0.to_be_bytes());
            put_cluster(&mut body, &a.cluster);
            KIND_ACK
        }
        Handshake::Refuse(code) => {
            body.push(*code as u8);
            KIND_REFUSE
        }
    };
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.push(kind);
    // A body is at most 81 bytes (a hello with a 64-byte cluster id).
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

fn put_cluster(body: &mut Vec<u8>, cluster: &ClusterId) {
    // ClusterId keeps its length within 64.
    body.push(cluster.0.len() as u8);
    body.extend_from_slice(cluster.0.as_bytes());
}

/// Decodes the handshake message at the front of `buf`, the bytes read so
/// far. `Ok(None)`: read more. `Ok(Some((msg, used)))`: the message took the
/// first `used` bytes. Refuses as early as the bytes allow (a stranger's first
/// byte, a version as soon as it is in), and always decides by
/// [`MAX_MESSAGE_BYTES`].
pub fn decode(buf: &[u8]) -> Result<Option<(Handshake, usize)>, HandshakeError> {
    let seen = buf.len().min(MAGIC.len());
    if buf[..seen] != MAGIC[..seen] {
        return Err(HandshakeError::NotChronik);
    }
    if let Some(&[hi, lo]) = buf.get(4..6) {
        let version = u16::from_be_bytes([hi, lo]);
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::UnsupportedVersion(version));
        }
    }
    let Some(&kind) = buf.get(6) else {
        return Ok(None);
    };
    let (fixed, clustered) = match kind {
        KIND_HELLO => (HELLO_FIXED, true),
        KIND_ACK => (ACK_FIXED, true),
        KIND_REFUSE => (1, false),
        other => return Err(HandshakeError::UnknownKind(other)),
    };
    let Some(&len) = buf.get(7) else {
        return Ok(None);
    };
    let body_len = usize::from(len);
    let fits = if clustered {
        body_len > fixed && body_len <= fixed + ClusterId::MAX_BYTES
    } else {
        body_len == fixed
    };
    if !fits {
        return Err(HandshakeError::BadLength { kind, len });
    }
    let Some(body) = buf.get(HEADER_BYTES..HEADER_BYTES + body_len) else {
        return Ok(None);
    };
    let msg = match kind {
        KIND_HELLO => {
            let cluster = cluster_at(body, 16, kind, len)?;
            Handshake::Hello(Hello {
                cluster,
                from: node_at(body, 0),
                to: node_at(body, 8),
            })
        }
        KIND_ACK => Handshake::Ack(HelloAck {
            cluster: cluster_at(body, 8, kind, len)?,
            from: node_at(body, 0),
        }),
        _ => Handshake::Refuse(RefuseCode::from_wire(body[0])?),
    };
    Ok(Some((msg, HEADER_BYTES + body_len)))
}

/// The node id at `at` in a body whose length was checked to hold it.
fn node_at(body: &[u8], at: usize) -> NodeId {
    let mut id = [0u8; 8];
    id.copy_from_slice(&body[at..at + 8]);
    NodeId(u64::from_be_bytes(id))
}

/// The length-prefixed cluster id at `at`, which must end the body exactly.
fn cluster_at(body: &[u8], at: usize, kind: u8, len: u8) -> Result<ClusterId, HandshakeError> {
    let id_len = usize::from(body[at]);
    if at + 1 + id_len != body.len() {
        return Err(HandshakeError::BadLength { kind, len });
    }
    ClusterId::from_wire(&body[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(s: &str) -> ClusterId {
        ClusterId::new(s).unwrap()
    }

    fn hello() -> Handshake {
        Handshake::Hello(Hello {
            cluster: cluster("prod-eu.1"),
            from: NodeId(2),
            to: NodeId(3),
        })
    }

    #[test]
    fn hello_bytes_are_as_documented() {
        let bytes = encode(&hello());
        let mut expected = b"CHRP".to_vec();
        expected.extend_from_slice(&[0, 1, KIND_HELLO, 26]);
        expected.extend_from_slice(&2u64.to_be_bytes());
        expected.extend_from_slice(&3u64.to_be_bytes());
        expected.push(9);
        expected.extend_from_slice(b"prod-eu.1");
        assert_eq!(bytes, expected);
        assert_eq!(decode(&bytes), Ok(Some((hello(), bytes.len()))));
    }

    #[test]
    fn every_kind_round_trips_and_keeps_what_follows() {
        let longest = "x".repeat(ClusterId::MAX_BYTES);
        for msg in [
            hello(),
            Handshake::Hello(Hello {
                cluster: cluster(&longest),
                from: NodeId(u64::MAX),
                to: NodeId(0),
            }),
            Handshake::Ack(HelloAck {
                cluster: cluster("c"),
                from: NodeId(7),
            }),
            Handshake::Refuse(RefuseCode::Impersonation),
        ] {
            let mut bytes = encode(&msg);
            let len = bytes.len();
            assert!(len <= MAX_MESSAGE_BYTES);
            bytes.extend_from_slice(b"frames");
            assert_eq!(decode(&bytes), Ok(Some((msg.clone(), len))));
            for cut in 0..len {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "{msg:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn strangers_and_other_versions_are_refused_early() {
        assert_eq!(decode(b"G"), Err(HandshakeError::NotChronik));
        assert_eq!(decode(b"GET / HTTP/1.1"), Err(HandshakeError::NotChronik));
        assert_eq!(decode(b"CHRP\x00"), Ok(None));
        assert_eq!(
            decode(b"CHRP\x00\x02"),
            Err(HandshakeError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode(b"CHRP\x00\x01\x09"),
            Err(HandshakeError::UnknownKind(9))
        );
    }

    #[test]
    fn bodies_that_do_not_fit_their_kind_are_refused() {
        // A hello whose cluster id length points past the body.
        let mut bytes = encode(&hello());
        bytes[8 + 16] = 10;
        assert!(matches!(
            decode(&bytes),
            Err(HandshakeError::BadLength { .. })
        ));
        // A body length too long for any hello, before the body arrives.
        assert_eq!(
            decode(b"CHRP\x00\x01\x01\xff"),
            Err(HandshakeError::BadLength {
                kind: KIND_HELLO,
                len: 255
            })
        );
        // An empty cluster id.
        assert_eq!(
            decode(b"CHRP\x00\x01\x02\x09\0\0\0\0\0\0\0\x01\x00"),
            Err(HandshakeError::BadLength {
                kind: KIND_ACK,
                len: 9
            })
        );
        // A cluster id with a control character.
        let mut bytes = encode(&hello());
        bytes[8 + 17] = b'\n';
        assert_eq!(decode(&bytes), Err(HandshakeError::BadClusterId));
        // A refusal code from the future.
        assert_eq!(
            decode(b"CHRP\x00\x01\x03\x01\x63"),
            Err(HandshakeError::UnknownRefuseCode(99))
        );
    }

    #[test]
    fn cluster_ids_follow_the_broker_rule() {
        assert!(ClusterId::new("a-b_c.9").is_ok());
        assert_eq!(ClusterId::new(""), Err(InvalidClusterId));
        assert_eq!(ClusterId::new("a b"), Err(InvalidClusterId));
        assert_eq!(ClusterId::new("é"), Err(InvalidClusterId));
        assert_eq!(ClusterId::new("x".repeat(65)), Err(InvalidClusterId));
    }
}
