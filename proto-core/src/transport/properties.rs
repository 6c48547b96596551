//! Properties of the handshake and frame formats over random and mutated
//! bytes: decoding never panics, never accepts what it would not have
//! encoded, decides a handshake within its bound, and round-trips valid input.

use bytes::BytesMut;
use quickcheck::{Arbitrary, Gen, QuickCheck};

use super::frame::{self, FrameError, HEADER_BYTES};
use super::handshake::{self, ClusterId, Handshake, Hello, HelloAck, RefuseCode};
use super::verdict::{Identity, Inbound};
use crate::raft::NodeId;

const CODES: [RefuseCode; 6] = [
    RefuseCode::WrongCluster,
    RefuseCode::UnsupportedVersion,
    RefuseCode::UnknownNode,
    RefuseCode::Impersonation,
    RefuseCode::WrongTarget,
    RefuseCode::Malformed,
];

fn qc() -> QuickCheck {
    QuickCheck::new().tests(2000)
}

/// Node 1, 2 or 3 most of the time, so verdicts see known peers.
fn node(g: &mut Gen) -> NodeId {
    if u8::arbitrary(g) % 4 != 0 {
        NodeId(1 + u64::from(u8::arbitrary(g) % 3))
    } else {
        NodeId(u64::arbitrary(g))
    }
}

/// The verdict tests' own cluster half the time, so hellos get accepted.
fn cluster(g: &mut Gen) -> ClusterId {
    const CHARS: &[u8] = b"abcXYZ019-_.";
    if bool::arbitrary(g) {
        return ClusterId::new("c").unwrap_or_else(|e| panic!("{e}"));
    }
    let len = 1 + usize::arbitrary(g) % ClusterId::MAX_BYTES;
    let id: String = (0..len)
        .map(|_| char::from(*g.choose(CHARS).unwrap_or(&b'a')))
        .collect();
    ClusterId::new(id).unwrap_or_else(|e| panic!("generated a bad id: {e}"))
}

#[derive(Clone, Debug)]
struct GenMessage(Handshake);

impl Arbitrary for GenMessage {
    fn arbitrary(g: &mut Gen) -> Self {
        GenMessage(match u8::arbitrary(g) % 3 {
            0 => Handshake::Hello(Hello {
                cluster: cluster(g),
                from: node(g),
                to: node(g),
            }),
            1 => Handshake::Ack(HelloAck {
                cluster: cluster(g),
                from: node(g),
            }),
            _ => Handshake::Refuse(*g.choose(&CODES).unwrap_or(&RefuseCode::Malformed)),
        })
    }
}

/// Whatever `decode` makes of `bytes` is consistent: an accepted message is
/// exactly the bytes it took, and a buffer of the longest message's length is
/// always decided.
fn decode_is_sound(bytes: &[u8]) -> bool {
    match handshake::decode(bytes) {
        Ok(Some((msg, used))) => used <= bytes.len() && handshake::encode(&msg) == bytes[..used],
        Ok(None) => bytes.len() < handshake::MAX_MESSAGE_BYTES,
        Err(_) => true,
    }
}

#[test]
fn handshake_decoding_of_random_bytes_is_sound() {
    fn prop(bytes: Vec<u8>, magic: bool) -> bool {
        // Half the inputs start with the magic and version, to get past them.
        let mut input = if magic {
            b"CHRP\x00\x01".to_vec()
        } else {
            Vec::new()
        };
        input.extend(bytes);
        decode_is_sound(&input)
    }
    qc().quickcheck(prop as fn(Vec<u8>, bool) -> bool);
}

#[test]
fn handshake_messages_round_trip_and_survive_mutation() {
    fn prop(msg: GenMessage, tail: Vec<u8>, at: usize, byte: u8) -> bool {
        let encoded = handshake::encode(&msg.0);
        let mut bytes = encoded.clone();
        bytes.extend(&tail);
        let round_trip = handshake::decode(&bytes) == Ok(Some((msg.0.clone(), encoded.len())));
        let prefixes = (0..encoded.len()).all(|cut| handshake::decode(&bytes[..cut]) == Ok(None));
        let mut mutated = bytes.clone();
        let at = at % mutated.len();
        mutated[at] = byte;
        round_trip && prefixes && decode_is_sound(&mutated)
    }
    qc().quickcheck(prop as fn(GenMessage, Vec<u8>, usize, u8) -> bool);
}

#[test]
fn the_acceptor_only_accepts_a_valid_hello_from_a_peer() {
    fn prop(msg: GenMessage, at: usize, byte: u8, mutate: bool) -> bool {
        let me = Identity::new(
            ClusterId::new("c").unwrap_or_else(|e| panic!("{e}")),
            NodeId(1),
            [NodeId(2), NodeId(3)],
        );
        let mut bytes = handshake::encode(&msg.0);
        if mutate {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        match me.judge_hello(&bytes) {
            Inbound::Accept { peer, used, .. } => match handshake::decode(&bytes[..used]) {
                Ok(Some((Handshake::Hello(h), _))) => {
                    h.cluster.as_str() == "c"
                        && h.to == NodeId(1)
                        && h.from == peer
                        && (peer == NodeId(2) || peer == NodeId(3))
                }
                _ => false,
            },
            Inbound::NeedMore | Inbound::Refuse { .. } => true,
        }
    }
    qc().quickcheck(prop as fn(GenMessage, usize, u8, bool) -> bool);
}

/// Cuts every frame it can off `stream`, fed in `chunk`-byte reads.
fn cut(stream: &[u8], chunk: usize, max: usize) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match frame::next_frame(&mut buf, max) {
                Ok(Some(payload)) => {
                    assert!(payload.len() <= max);
                    out.push(payload.to_vec());
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn framed(payloads: &[Vec<u8>], max: usize) -> Vec<u8> {
    let mut stream = Vec::new();
    for p in payloads {
        let header = frame::encode_header(p, max).unwrap_or_else(|e| panic!("{e}"));
        stream.extend_from_slice(&header);
        stream.extend_from_slice(p);
    }
    stream
}

#[test]
fn frames_of_random_bytes_never_panic_or_exceed_the_limit() {
    fn prop(bytes: Vec<u8>, chunk: u8, max: u8) -> bool {
        cut(&bytes, usize::from(chunk), usize::from(max));
        true
    }
    qc().quickcheck(prop as fn(Vec<u8>, u8, u8) -> bool);
}

#[test]
fn frames_round_trip_and_a_damaged_byte_is_never_delivered() {
    fn prop(payloads: Vec<Vec<u8>>, chunk: u8, at: usize, flip: u8) -> bool {
        const MAX: usize = 1 << 16;
        let stream = framed(&payloads, MAX);
        let (whole, error) = cut(&stream, usize::from(chunk), MAX);
        if whole != payloads || error.is_some() || stream.is_empty() {
            return whole == payloads && error.is_none();
        }
        let mut damaged = stream.clone();
        let at = at % damaged.len();
        damaged[at] ^= flip.max(1);
        // Everything delivered is an original payload, in order, and the
        // frame holding the damaged byte is not among them.
        let (got, _) = cut(&damaged, usize::from(chunk), MAX);
        let mut start = 0;
        let damaged_frame = payloads
            .iter()
            .position(|p| {
                start += HEADER_BYTES + p.len();
                at < start
            })
            .unwrap_or(payloads.len());
        got.len() <= damaged_frame && payloads[..got.len()] == got[..]
    }
    qc().quickcheck(prop as fn(Vec<Vec<u8>>, u8, usize, u8) -> bool);
}
