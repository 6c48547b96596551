//! Properties of the rkyv wire encoding (`proto_core::raft::wire`): everything that
//! is encoded decodes to the same value, and no byte string (random, truncated or
//! mutated) makes decoding panic. Frames come from the network and the disk, so a
//! panic here would be a remote crash.

use std::collections::BTreeSet;

use bytes::Bytes;
use proto_core::raft::wire::{
    decode_entries, decode_hard_state, decode_message, encode_entries, encode_hard_state,
    encode_message, DecodeError,
};
use proto_core::raft::{
    AppendOutcome, ConfChange, Entry, HardState, LogId, LogIndex, Membership, Message, MessageBody,
    NodeId, Payload, SnapshotMeta, Term,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// How many cases the malformed-input properties try: decoding is cheap and these
/// stand in for a fuzzer.
const MALFORMED_CASES: u64 = 2000;

#[derive(Clone, Debug)]
struct ArbMessage(Message);

#[derive(Clone, Debug)]
struct ArbEntry(Entry);

#[derive(Clone, Debug)]
struct ArbHardState(HardState);

/// A valid encoding and a way to damage it.
#[derive(Clone, Debug)]
struct Damage {
    /// Where to cut or flip, reduced modulo the encoding's length.
    positions: Vec<usize>,
    /// XOR masks for the flipped bytes (zero masks are skipped).
    masks: Vec<u8>,
}

/// Every `MessageBody` variant in generation order. The match is exhaustive on
/// purpose: a new variant fails to compile here until the generator covers it.
const BODY_KINDS: usize = 13;

fn body_kind(body: &MessageBody) -> usize {
    match body {
        MessageBody::PreVote { .. } => 0,
        MessageBody::PreVoteResponse { .. } => 1,
        MessageBody::Vote { .. } => 2,
        MessageBody::VoteResponse { .. } => 3,
        MessageBody::Append { .. } => 4,
        MessageBody::AppendResponse { .. } => 5,
        MessageBody::Heartbeat { .. } => 6,
        MessageBody::HeartbeatResponse { .. } => 7,
        MessageBody::InstallSnapshot { .. } => 8,
        MessageBody::SnapshotResponse { .. } => 9,
        MessageBody::TimeoutNow => 10,
        MessageBody::ReadIndex { .. } => 11,
        MessageBody::ReadIndexResponse { .. } => 12,
    }
}

/// Every `Payload` variant, exhaustive for the same reason as `body_kind`.
const PAYLOAD_KINDS: usize = 3;

fn payload_kind(payload: &Payload) -> usize {
    match payload {
        Payload::Noop => 0,
        Payload::Normal(_) => 1,
        Payload::ConfChange { .. } => 2,
    }
}

fn below(g: &mut Gen, n: usize) -> usize {
    usize::arbitrary(g) % n
}

fn bytes(g: &mut Gen) -> Bytes {
    Bytes::from(Vec::<u8>::arbitrary(g))
}

fn log_id(g: &mut Gen) -> LogId {
    LogId::new(u64::arbitrary(g), u64::arbitrary(g))
}

fn index(g: &mut Gen) -> LogIndex {
    LogIndex(u64::arbitrary(g))
}

fn node_ids(g: &mut Gen) -> BTreeSet<NodeId> {
    Vec::<u64>::arbitrary(g).into_iter().map(NodeId).collect()
}

fn membership(g: &mut Gen) -> Membership {
    Membership {
        voters: node_ids(g),
        learners: node_ids(g),
    }
}

fn conf_change(g: &mut Gen) -> ConfChange {
    let node = NodeId(u64::arbitrary(g));
    match below(g, 3) {
        0 => ConfChange::AddLearner(node),
        1 => ConfChange::PromoteLearner(node),
        _ => ConfChange::RemoveNode(node),
    }
}

fn payload(g: &mut Gen) -> Payload {
    match below(g, PAYLOAD_KINDS) {
        0 => Payload::Noop,
        1 => Payload::Normal(bytes(g)),
        _ => Payload::ConfChange {
            change: conf_change(g),
            membership: membership(g),
        },
    }
}

fn entry(g: &mut Gen) -> Entry {
    Entry {
        term: Term(u64::arbitrary(g)),
        index: index(g),
        payload: payload(g),
    }
}

fn entries(g: &mut Gen) -> Vec<Entry> {
    // Keep batches small: each entry already carries up to `g.size()` bytes.
    let len = below(g, 8);
    (0..len).map(|_| entry(g)).collect()
}

fn body(g: &mut Gen) -> MessageBody {
    match below(g, BODY_KINDS) {
        0 => MessageBody::PreVote { last: log_id(g) },
        1 => MessageBody::PreVoteResponse {
            reject: bool::arbitrary(g),
        },
        2 => MessageBody::Vote {
            last: log_id(g),
            transfer: bool::arbitrary(g),
        },
        3 => MessageBody::VoteResponse {
            reject: bool::arbitrary(g),
        },
        4 => MessageBody::Append {
            prev: log_id(g),
            entries: entries(g),
            commit: index(g),
        },
        5 => MessageBody::AppendResponse {
            outcome: if bool::arbitrary(g) {
                AppendOutcome::Accepted { last: index(g) }
            } else {
                AppendOutcome::Rejected {
                    index: index(g),
                    hint: log_id(g),
                }
            },
        },
        6 => MessageBody::Heartbeat {
            commit: index(g),
            round: u64::arbitrary(g),
            quiesce: bool::arbitrary(g),
        },
        7 => MessageBody::HeartbeatResponse {
            round: u64::arbitrary(g),
        },
        8 => MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                last: log_id(g),
                membership: membership(g),
            },
            offset: u64::arbitrary(g),
            total: u64::arbitrary(g),
            chunk: bytes(g),
        },
        9 => MessageBody::SnapshotResponse {
            last: log_id(g),
            next_offset: u64::arbitrary(g),
            done: bool::arbitrary(g),
        },
        10 => MessageBody::TimeoutNow,
        11 => MessageBody::ReadIndex {
            ctx: u64::arbitrary(g),
        },
        _ => MessageBody::ReadIndexResponse {
            ctx: u64::arbitrary(g),
            index: Option::<u64>::arbitrary(g).map(LogIndex),
        },
    }
}

impl Arbitrary for ArbMessage {
    fn arbitrary(g: &mut Gen) -> Self {
        ArbMessage(Message {
            from: NodeId(u64::arbitrary(g)),
            to: NodeId(u64::arbitrary(g)),
            term: Term(u64::arbitrary(g)),
            body: body(g),
        })
    }
}

impl Arbitrary for ArbEntry {
    fn arbitrary(g: &mut Gen) -> Self {
        ArbEntry(entry(g))
    }
}

impl Arbitrary for ArbHardState {
    fn arbitrary(g: &mut Gen) -> Self {
        ArbHardState(HardState {
            term: Term(u64::arbitrary(g)),
            vote: Option::<u64>::arbitrary(g).map(NodeId),
            commit: index(g),
        })
    }
}

impl Arbitrary for Damage {
    fn arbitrary(g: &mut Gen) -> Self {
        Damage {
            positions: Vec::arbitrary(g),
            masks: Vec::arbitrary(g),
        }
    }
}

impl Damage {
    /// The encoding cut short at the first position.
    fn truncate(&self, encoded: &[u8]) -> Vec<u8> {
        let cut = self.positions.first().map_or(0, |p| p % encoded.len());
        encoded[..cut].to_vec()
    }

    /// The encoding with bytes flipped at the given positions.
    fn mutate(&self, encoded: &[u8]) -> Vec<u8> {
        let mut out = encoded.to_vec();
        for (p, mask) in self.positions.iter().zip(&self.masks) {
            let len = out.len();
            out[p % len] ^= mask;
        }
        out
    }
}

/// Whatever damaged bytes decode to must itself be a well-formed value: encoding
/// it again round-trips. (Decoding to `Err` is the usual outcome.)
fn decodes_safely<T: PartialEq>(
    bytes: &[u8],
    decode: fn(&[u8]) -> Result<T, DecodeError>,
    encode: fn(&T) -> Vec<u8>,
) -> bool {
    match decode(bytes) {
        Ok(value) => decode(&encode(&value)).ok() == Some(value),
        Err(_) => true,
    }
}

fn message_decodes_safely(bytes: &[u8]) -> bool {
    decodes_safely(bytes, decode_message, encode_message)
}

fn entries_decode_safely(bytes: &[u8]) -> bool {
    decodes_safely(bytes, decode_entries, encode_entries)
}

fn hard_state_decodes_safely(bytes: &[u8]) -> bool {
    decodes_safely(bytes, decode_hard_state, encode_hard_state)
}

fn check<A: quickcheck::Testable>(cases: u64, prop: A) {
    QuickCheck::new()
        .tests(cases)
        .max_tests(cases * 10)
        .quickcheck(prop);
}

#[test]
fn message_round_trips() {
    fn prop(m: ArbMessage) -> bool {
        decode_message(&encode_message(&m.0)).ok() == Some(m.0)
    }
    check(1000, prop as fn(ArbMessage) -> bool);
}

#[test]
fn entries_round_trip() {
    fn prop(entries: Vec<ArbEntry>) -> bool {
        let entries: Vec<Entry> = entries.into_iter().map(|e| e.0).collect();
        decode_entries(&encode_entries(&entries)).ok() == Some(entries)
    }
    check(500, prop as fn(Vec<ArbEntry>) -> bool);
}

#[test]
fn hard_state_round_trips() {
    fn prop(hs: ArbHardState) -> bool {
        decode_hard_state(&encode_hard_state(&hs.0)).ok() == Some(hs.0)
    }
    check(1000, prop as fn(ArbHardState) -> bool);
}

#[test]
fn generators_cover_every_variant() {
    let mut g = Gen::new(32);
    let mut bodies = BTreeSet::new();
    let mut payloads = BTreeSet::new();
    let mut outcomes = BTreeSet::new();
    for _ in 0..2000 {
        let m = ArbMessage::arbitrary(&mut g).0;
        if let MessageBody::AppendResponse { outcome } = &m.body {
            outcomes.insert(matches!(outcome, AppendOutcome::Accepted { .. }));
        }
        bodies.insert(body_kind(&m.body));
        payloads.insert(payload_kind(&ArbEntry::arbitrary(&mut g).0.payload));
    }
    assert_eq!(bodies.len(), BODY_KINDS, "message bodies: {bodies:?}");
    assert_eq!(payloads.len(), PAYLOAD_KINDS, "payloads: {payloads:?}");
    assert_eq!(outcomes.len(), 2, "append outcomes: {outcomes:?}");
}

#[test]
fn random_bytes_never_panic() {
    fn prop(bytes: Vec<u8>) -> bool {
        message_decodes_safely(&bytes)
            && entries_decode_safely(&bytes)
            && hard_state_decodes_safely(&bytes)
    }
    check(MALFORMED_CASES, prop as fn(Vec<u8>) -> bool);
}

#[test]
fn truncated_messages_never_panic() {
    fn prop(m: ArbMessage, damage: Damage) -> bool {
        message_decodes_safely(&damage.truncate(&encode_message(&m.0)))
    }
    check(MALFORMED_CASES, prop as fn(ArbMessage, Damage) -> bool);
}

#[test]
fn mutated_messages_never_panic() {
    fn prop(m: ArbMessage, damage: Damage) -> TestResult {
        let encoded = encode_message(&m.0);
        let mutated = damage.mutate(&encoded);
        if mutated == encoded {
            return TestResult::discard();
        }
        TestResult::from_bool(message_decodes_safely(&mutated))
    }
    check(
        MALFORMED_CASES,
        prop as fn(ArbMessage, Damage) -> TestResult,
    );
}

#[test]
fn mutated_entries_and_hard_states_never_panic() {
    fn prop(entries: Vec<ArbEntry>, hs: ArbHardState, damage: Damage) -> bool {
        let entries: Vec<Entry> = entries.into_iter().map(|e| e.0).collect();
        let entries = encode_entries(&entries);
        let hs = encode_hard_state(&hs.0);
        entries_decode_safely(&damage.mutate(&entries))
            && entries_decode_safely(&damage.truncate(&entries))
            && hard_state_decodes_safely(&damage.mutate(&hs))
            && hard_state_decodes_safely(&damage.truncate(&hs))
    }
    check(
        MALFORMED_CASES,
        prop as fn(Vec<ArbEntry>, ArbHardState, Damage) -> bool,
    );
}
