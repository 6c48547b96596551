//! Throws 1,000,000 random and mutated frames at `next_frame` +
//! `decode_request` and every request that decodes at the broker's `Node`:
//! none may panic or abort, every answer must be a well-formed frame, and no
//! decode may make an allocation out of proportion to its frame (the failure
//! `guard.rs` exists to prevent; in `kafka-protocol` alone it aborts the
//! process).
//!
//! Seeds are valid requests of every advertised API and version (the samples
//! of `protocol_roundtrip.rs`); mutations are bit flips, truncation, size
//! prefix tweaks, "interesting" integers written over length and count
//! fields, byte insertion/deletion, splices of two requests, and random bytes
//! behind a plausible header. Every kind of outcome, and every served API,
//! must come up often enough to have been tested. The RNG is seeded, so a
//! failure repeats; set `CHRONIK_FUZZ_SEED` / `CHRONIK_FUZZ_FRAMES` to
//! explore further.

#[path = "protocol_roundtrip.rs"]
mod roundtrip;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use broker::node::topics::TopicConfig;
use broker::node::{Input, Node, NodeConfig, Output, ReplyId};
use broker::protocol::{decode_request, next_frame, DecodeError, SUPPORTED_APIS};
use broker::store::{LogSettings, LogStore, StoredEntries, TopicPartition};
use bytes::{Bytes, BytesMut};
use proto_core::group::CoordinatorConfig;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Records the largest single allocation made on the current thread while
/// `WATCHING` is set, so the test can bound what one decode asks for.
struct LargestAllocation;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only observes sizes
// (const-initialised thread locals of `Cell`s never allocate).
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    if WATCHING.with(Cell::get) {
        LARGEST.with(|l| l.set(l.get().max(size)));
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Values that tend to break length and count handling.
const INTERESTING: [u32; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    (rng.next_u64() % n.max(1) as u64) as usize
}

fn mutate(rng: &mut ChaCha8Rng, seeds: &[Bytes]) -> Vec<u8> {
    let mut frame = seeds[below(rng, seeds.len())].to_vec();
    match below(rng, 8) {
        0 => {
            for _ in 0..1 + below(rng, 8) {
                let bit = below(rng, frame.len() * 8);
                frame[bit / 8] ^= 1 << (bit % 8);
            }
        }
        1 => frame.truncate(below(rng, frame.len() + 1)),
        2 => {
            // Size prefix: off by a little, or anything.
            let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
            let new = match below(rng, 3) {
                0 => size.wrapping_add(below(rng, 9) as i32 - 4),
                1 => INTERESTING[below(rng, INTERESTING.len())] as i32,
                _ => rng.next_u32() as i32,
            };
            frame[..4].copy_from_slice(&new.to_be_bytes());
        }
        3 | 4 => {
            // An interesting value over a body position: hits i32 counts,
            // i16 string lengths and varints alike.
            for _ in 0..1 + below(rng, 3) {
                let value = INTERESTING[below(rng, INTERESTING.len())].to_be_bytes();
                let width = [1, 2, 4, 5][below(rng, 4)].min(4);
                let at = 12 + below(rng, frame.len().saturating_sub(12 + width) + 1);
                if at + width <= frame.len() {
                    frame[at..at + width].copy_from_slice(&value[4 - width..]);
                }
            }
        }
        5 => {
            let at = below(rng, frame.len() + 1);
            if below(rng, 2) == 0 {
                let extra: Vec<u8> = (0..1 + below(rng, 8))
                    .map(|_| rng.next_u32() as u8)
                    .collect();
                frame.splice(at..at, extra);
            } else {
                let end = (at + 1 + below(rng, 8)).min(frame.len());
                frame.drain(at..end);
            }
        }
        6 => {
            // Head of one request, tail of another, size prefix fixed up.
            let other = &seeds[below(rng, seeds.len())];
            let cut = 4 + below(rng, frame.len() - 4);
            let from = 4 + below(rng, other.len() - 4);
            frame.truncate(cut);
            frame.extend_from_slice(&other[from..]);
            let size = (frame.len() - 4) as i32;
            frame[..4].copy_from_slice(&size.to_be_bytes());
        }
        _ => {
            // A plausible header (served API, any version near its range,
            // client id) and random bytes behind it.
            let api = &SUPPORTED_APIS[below(rng, SUPPORTED_APIS.len())];
            let version = api.versions.min - 1
                + below(rng, 3 + (api.versions.max - api.versions.min) as usize) as i16;
            let mut body = Vec::new();
            body.extend((api.key as i16).to_be_bytes());
            body.extend(version.to_be_bytes());
            body.extend(rng.next_u32().to_be_bytes());
            body.extend(0i16.to_be_bytes());
            body.extend((0..below(rng, 64)).map(|_| rng.next_u32() as u8));
            frame = (body.len() as i32).to_be_bytes().to_vec();
            frame.extend(body);
        }
    }
    frame
}

/// Storage that keeps nothing: the handler's logic is under test, not the disk.
struct NullStore;

impl LogStore for NullStore {
    fn create(
        &mut self,
        _: u64,
        _: &TopicPartition,
        _: &LogSettings,
    ) -> std::io::Result<proto_core::raft::Restored> {
        Ok(proto_core::raft::Restored::default())
    }
    fn delete(&mut self, _: &TopicPartition) -> std::io::Result<()> {
        Ok(())
    }
    fn configure(&mut self, _: &TopicPartition, _: &LogSettings) -> std::io::Result<()> {
        Ok(())
    }
    fn read(&self, _: &TopicPartition, _: i64, _: usize, _: i64) -> std::io::Result<Bytes> {
        Ok(Bytes::new())
    }
    fn scan_headers(
        &self,
        _: &TopicPartition,
        _: &mut dyn FnMut(&proto_core::storage::batch::BatchHeader),
    ) -> std::io::Result<()> {
        Ok(())
    }
    fn next_offset_after(&self, _: &TopicPartition, _: u64) -> std::io::Result<i64> {
        Ok(0)
    }
    fn raft_entries(
        &self,
        _: &TopicPartition,
        _: u64,
        _: u64,
        _: usize,
    ) -> std::io::Result<StoredEntries> {
        Ok(StoredEntries::From {
            prev_term: None,
            entries: Vec::new(),
        })
    }
    fn hold_for_replicas(&self, _: &TopicPartition, _: Option<u64>) {}
    fn log_start_offset(&self, _: &TopicPartition) -> i64 {
        0
    }
    fn next_offset(&self, _: &TopicPartition) -> i64 {
        0
    }
    fn offset_for_timestamp(
        &self,
        _: &TopicPartition,
        _: i64,
    ) -> std::io::Result<Option<(i64, i64)>> {
        Ok(None)
    }
    fn save_topics(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
}

/// A fresh node with auto-creation on, over [`NullStore`].
fn node() -> Node {
    let cfg = NodeConfig {
        node_id: 1,
        advertised_host: "127.0.0.1".into(),
        advertised_port: 9092,
        rack: None,
        cluster_id: "fuzz".into(),
        auto_create_topics: true,
        default_partitions: 2,
        topic_defaults: TopicConfig::defaults(-1, -1, 1 << 20),
        tick_ms: 100,
        seed: 1,
        offsets_partitions: 2,
        coordinator: CoordinatorConfig {
            initial_rebalance_delay_ms: 0,
            ..CoordinatorConfig::kafka_defaults(1)
        },
        peers: [(1, "127.0.0.1:19092".to_string())].into(),
        default_replication_factor: 1,
    };
    Node::new(
        cfg,
        Box::new(NullStore),
        Default::default(),
        Default::default(),
    )
    .unwrap()
}

/// Feeds one decoded request to `node`, completes its disk writes at once,
/// and checks every answer is a frame whose size prefix is right.
fn handle(node: &mut Node, now_ms: u64, seq: u64, request: broker::protocol::Request) {
    let reply = ReplyId { conn: 0, seq };
    node.step(
        now_ms,
        Input::Request {
            reply,
            request: Box::new(request),
        },
    );
    let mut outputs = node.take_outputs();
    while !outputs.is_empty() {
        for out in outputs {
            match out {
                Output::Respond { frame, .. } => {
                    if let Some(f) = frame {
                        let size = i32::from_be_bytes(f[..4].try_into().unwrap());
                        assert_eq!(size as usize, f.len() - 4, "a mis-sized answer frame");
                    }
                }
                Output::Close { .. } => {}
                Output::Send { .. } => panic!("a single node sent to a peer"),
                Output::Persist { group, write, .. } => node.step(
                    now_ms,
                    Input::Persisted {
                        group,
                        seq: write.seq,
                    },
                ),
            }
        }
        outputs = node.take_outputs();
    }
}

#[derive(Debug, Default)]
struct Outcomes {
    decoded: u64,
    malformed: u64,
    unsupported_version: u64,
    unknown_api: u64,
    frame_error: u64,
    incomplete: u64,
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn a_million_hostile_frames_neither_panic_nor_blow_up_memory() {
    const MAX_FRAME: usize = 1 << 20;
    let seed = env_or("CHRONIK_FUZZ_SEED", 0x00c4_2011);
    let frames = env_or("CHRONIK_FUZZ_FRAMES", 1_000_000);
    let seeds: Vec<Bytes> = roundtrip::advertised()
        .into_iter()
        .map(|(key, v)| roundtrip::client_frame(key, v, 5).0)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut outcomes = Outcomes::default();
    let mut decoded_by_api = std::collections::BTreeMap::<&str, u64>::new();
    let mut worst = (0.0f64, 0usize, Vec::new());
    let mut broker = node();
    for i in 0..frames {
        if i % 20_000 == 0 {
            // Mutated CreateTopics pile up topics; start over now and then.
            broker = node();
        }
        if i % 1000 == 0 {
            broker.step(i / 10, Input::Tick { wall_ms: 0 });
            let _ = broker.take_outputs();
        }
        let input = mutate(&mut rng, &seeds);
        let mut buf = BytesMut::from(&input[..]);
        match next_frame(&mut buf, MAX_FRAME) {
            Err(_) => outcomes.frame_error += 1,
            Ok(None) => outcomes.incomplete += 1,
            Ok(Some(frame)) => {
                let len = frame.len();
                LARGEST.with(|l| l.set(0));
                WATCHING.with(|w| w.set(true));
                let result = decode_request(frame);
                WATCHING.with(|w| w.set(false));
                let largest = LARGEST.with(Cell::get);
                // Decoded structures may be bigger than their wire form (a
                // 1-byte empty string becomes a 32-byte StrBytes, a Vec
                // doubles), but only by a constant factor.
                let ratio = largest as f64 / (len + 64) as f64;
                if ratio > worst.0 {
                    worst = (ratio, largest, input.clone());
                }
                assert!(
                    largest <= 64 * (len + 64),
                    "frame {i} (seed {seed}) of {len} bytes made a {largest}-byte allocation: {input:02x?}"
                );
                match result {
                    Ok(request) => {
                        let api = SUPPORTED_APIS
                            .iter()
                            .find(|a| a.key == request.header.api_key)
                            .expect("only served APIs decode");
                        *decoded_by_api.entry(api.name).or_default() += 1;
                        outcomes.decoded += 1;
                        handle(&mut broker, i / 10, i, request);
                    }
                    Err(DecodeError::Malformed(_)) => outcomes.malformed += 1,
                    Err(e @ DecodeError::UnsupportedVersion { .. }) => {
                        outcomes.unsupported_version += 1;
                        // The reply, when there is one, is itself a frame.
                        if let Some(reply) = e.reply() {
                            let size = i32::from_be_bytes(reply[..4].try_into().unwrap());
                            assert_eq!(size as usize, reply.len() - 4);
                        }
                    }
                    Err(DecodeError::UnknownApi { .. }) => outcomes.unknown_api += 1,
                }
            }
        }
    }
    println!(
        "{frames} frames, seed {seed}: {outcomes:?}; worst allocation/frame ratio {:.1} ({} bytes)",
        worst.0, worst.1
    );
    println!("decoded per API: {decoded_by_api:?}");
    // Each kind of outcome must have been reached, or the mutations are too
    // weak (or too destructive) to test anything.
    let min = frames / 1000;
    for (name, count) in [
        ("decoded", outcomes.decoded),
        ("malformed", outcomes.malformed),
        ("unsupported_version", outcomes.unsupported_version),
        ("unknown_api", outcomes.unknown_api),
        ("frame_error", outcomes.frame_error),
        ("incomplete", outcomes.incomplete),
    ] {
        assert!(
            count >= min,
            "only {count} frames ended {name}: {outcomes:?}"
        );
    }
    // Every served API must reach the node now and then, or its seeds (and
    // its handler) go untested.
    for api in SUPPORTED_APIS {
        let count = decoded_by_api.get(api.name).copied().unwrap_or(0);
        assert!(
            count >= frames / 10_000,
            "only {count} {} requests decoded",
            api.name
        );
    }
}
