//! The inter-broker (Raft) transport on both drivers and between them:
//! delivery in order, refusals, hostile bytes, a peer restarting, backpressure,
//! and multi-Raft batches crossing the wire.
//!
//! Run: `cargo test -p conformance --test peer_transport`. Everything listens
//! on 127.0.0.1 on free ports, and every wait is on an event or a condition
//! with a deadline (a failure, never a timing assertion).

mod peer;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use conformance::launch::poll_until;
use io_sync::peer::{PeerEvent, SendError};
use peer::*;
use proto_core::multiraft::wire::{decode_batch, encode_batch};
use proto_core::multiraft::{Batch, GroupId};
use proto_core::raft::{Entry, LogId, LogIndex, Message, MessageBody, NodeId, Payload, Term};
use proto_core::transport::frame::{self, HEADER_BYTES};
use proto_core::transport::handshake::{Handshake, HandshakeError, RefuseCode};
use proto_core::transport::{Identity, Refusal};

/// Passes every allocation to the system allocator and remembers the largest
/// one asked for, so the hostile-bytes test can show that a frame header's
/// claim is never allocated up front.
struct Tracking;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Three nodes, each sending `FRAMES` small frames and one of the largest
/// size to each other: every frame arrives once, intact, in order.
fn three_nodes(drivers: [Driver; 3]) {
    const FRAMES: u64 = 200;
    let addrs = addresses(3);
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start(drivers[id as usize - 1], config(id, &addrs)))
        .collect();
    let ids: Vec<NodeId> = addrs.keys().copied().collect();
    for node in &mut nodes {
        let me = node.id;
        for &peer in ids.iter().filter(|&&p| p != me) {
            node.wait_connected(peer);
        }
    }
    let sent = |from: NodeId, to: NodeId| -> Vec<Bytes> {
        (0..=FRAMES)
            .map(|seq| {
                let len = if seq == FRAMES {
                    MAX_FRAME
                } else {
                    24 + (seq as usize * 37) % 2000
                };
                payload(from, to, seq, len)
            })
            .collect()
    };
    for node in &nodes {
        for &to in ids.iter().filter(|&&p| p != node.id) {
            for p in sent(node.id, to) {
                node.send(to, p).expect("queued");
            }
            assert_eq!(
                node.send(to, Bytes::from(vec![0; MAX_FRAME + 1])),
                Err(SendError::TooLarge {
                    size: MAX_FRAME as u64 + 1,
                    max: MAX_FRAME
                })
            );
        }
    }
    for node in &mut nodes {
        let me = node.id;
        for &from in ids.iter().filter(|&&p| p != me) {
            let got = node.wait_frames(from, 0, FRAMES as usize + 1);
            let ctx = format!("{drivers:?}: {from} -> {}", node.id);
            assert_frames(&got, &sent(from, node.id), &ctx);
        }
    }
    for node in &mut nodes {
        node.drain();
        for &from in &ids {
            let expected = if from == node.id { 0 } else { FRAMES + 1 };
            assert_eq!(
                frames(&node.seen, from).len() as u64,
                expected,
                "no duplicates"
            );
        }
    }
}

#[test]
fn three_sync_nodes_deliver_every_frame_once_in_order() {
    three_nodes([S, S, S]);
}

#[test]
fn three_tokio_nodes_deliver_every_frame_once_in_order() {
    three_nodes([T, T, T]);
}

/// Sync dials tokio, tokio dials sync, tokio dials tokio.
#[test]
fn one_sync_and_two_tokio_nodes_interoperate() {
    three_nodes([S, T, T]);
}

/// Tokio dials sync, sync dials tokio, sync dials sync.
#[test]
fn one_tokio_and_two_sync_nodes_interoperate() {
    three_nodes([T, S, S]);
}

/// Node 1 refuses another cluster, another version, an unknown node, its own
/// id and a dialer expecting someone else, delivers nothing from them, and
/// keeps serving node 2.
fn refusals(receiver: Driver, others: Driver) {
    let addrs = addresses(3);
    let mut r = Node::start(receiver, config(1, &addrs));
    let mut good = Node::start(others, config(2, &addrs));
    // Node 3 is a real node of another cluster that knows node 1.
    let mut stranger_config = config(3, &addrs);
    stranger_config.cluster_id = cluster_id("other-cluster");
    stranger_config.peers.retain(|&id, _| id != NodeId(2));
    let mut stranger = Node::start(others, stranger_config);
    r.wait(
        "refusal of another cluster",
        refused_with(Refusal::WrongCluster {
            ours: cluster_id(CLUSTER),
            theirs: cluster_id("other-cluster"),
        }),
    );
    let r_addr = addrs[&NodeId(1)];
    stranger.wait(
        "node 1's refusal",
        |e| matches!(e, PeerEvent::Refused { addr, reason: Refusal::ByPeer(RefuseCode::WrongCluster) } if *addr == r_addr),
    );
    let _ = stranger.send(NodeId(1), payload(NodeId(3), NodeId(1), 0, 64));

    let hello = |from: u64, to: u64| {
        Identity::new(cluster_id(CLUSTER), NodeId(from), [NodeId(to)]).hello(NodeId(to))
    };
    let mut other_version = hello(3, 1);
    other_version[4..6].copy_from_slice(&99u16.to_be_bytes());
    let cases = [
        (
            other_version,
            RefuseCode::UnsupportedVersion,
            Refusal::UnsupportedVersion { version: 99 },
        ),
        (
            hello(42, 1),
            RefuseCode::UnknownNode,
            Refusal::UnknownNode { node: NodeId(42) },
        ),
        (
            hello(1, 1),
            RefuseCode::Impersonation,
            Refusal::Impersonation { node: NodeId(1) },
        ),
        (
            hello(3, 7),
            RefuseCode::WrongTarget,
            Refusal::WrongTarget {
                expected: NodeId(7),
                actual: NodeId(1),
            },
        ),
    ];
    for (bytes, code, reason) in cases {
        let (mut s, answer) = raw_handshake(r_addr, &bytes);
        assert_eq!(answer, Some(Handshake::Refuse(code)), "{reason}");
        expect_closed(&mut s, &reason.to_string());
        let event = r.wait(&reason.to_string(), refused_with(reason.clone()));
        let PeerEvent::Refused { addr, .. } = event else {
            unreachable!("matched a refusal")
        };
        assert_eq!(
            Some(addr),
            s.local_addr().ok(),
            "the event names the dialer"
        );
    }
    exchange(&mut r, &mut good, 0, 20);
    r.drain();
    for e in &r.seen {
        if let PeerEvent::Frame { from, .. } = e {
            assert_eq!(*from, NodeId(2), "only the good peer's frames arrive");
        }
    }
}

#[test]
fn a_sync_node_refuses_bad_peers_and_keeps_serving() {
    refusals(S, T);
}

#[test]
fn a_tokio_node_refuses_bad_peers_and_keeps_serving() {
    refusals(T, S);
}

/// Garbage, a 4 GiB frame header, a frame at the limit that never completes
/// and a bad CRC are each cut off, nothing is delivered or allocated for
/// them, and node 1 keeps serving node 2. Node 3 is configured but absent,
/// so the hostile connections can pass its handshake.
fn hostile_bytes(receiver: Driver, other: Driver) {
    const LIMIT: usize = 32 << 20;
    let addrs = addresses(3);
    let mut r_config = config(1, &addrs);
    r_config.max_frame_bytes = LIMIT;
    r_config.queue_bytes = LIMIT + HEADER_BYTES;
    let mut r = Node::start(receiver, r_config);
    let mut good = Node::start(other, config(2, &addrs));
    let r_addr = addrs[&NodeId(1)];

    let (mut s, answer) = raw_handshake(r_addr, b"GET / HTTP/1.1\r\nHost: chronik\r\n\r\n");
    assert_eq!(answer, None, "a stranger gets no answer");
    expect_closed(&mut s, "garbage");
    r.wait(
        "refusal of garbage",
        refused_with(Refusal::Malformed(HandshakeError::NotChronik)),
    );

    let mut s = shaken_as(r_addr, 3, 1);
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])
        .expect("write");
    expect_closed(&mut s, "a 4 GiB frame header");

    let mut s = shaken_as(r_addr, 3, 1);
    let mut partial = (LIMIT as u32).to_be_bytes().to_vec();
    partial.extend_from_slice(&[0; 4 + 1000]);
    s.write_all(&partial).expect("write");
    s.shutdown(Shutdown::Write).expect("half-close");
    expect_closed(&mut s, "a frame at the limit that never completes");

    let mut s = shaken_as(r_addr, 3, 1);
    let mut header = frame::encode_header(b"hello", LIMIT).expect("small");
    header[7] ^= 1;
    s.write_all(&header).expect("write");
    s.write_all(b"hello").expect("write");
    expect_closed(&mut s, "a bad CRC");

    let mut s = shaken_as(r_addr, 3, 1);
    let noise: Vec<u8> = payload(NodeId(9), NodeId(9), 9, 64 << 10).to_vec();
    let _ = s.write_all(&noise);
    expect_closed(&mut s, "noise after a handshake");

    let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
    assert!(largest < LIMIT / 2, "largest allocation {largest} bytes");
    exchange(&mut r, &mut good, 0, 20);
    r.drain();
    assert!(
        frames(&r.seen, NodeId(3)).is_empty(),
        "nothing from the hostile peer"
    );
}

#[test]
fn a_sync_node_survives_hostile_bytes() {
    hostile_bytes(S, T);
}

#[test]
fn a_tokio_node_survives_hostile_bytes() {
    hostile_bytes(T, S);
}

/// Node 2 stops: node 1 sees the link go down and its sends are queued,
/// dropped or refused, never a crash. Node 2 starts again on the same
/// address: node 1 redials, and frames flow both ways again.
fn restart(a: Driver, b: Driver) {
    let addrs = addresses(2);
    let (one, two) = (NodeId(1), NodeId(2));
    let mut a = Node::start(a, config(1, &addrs));
    let mut b = Node::start(b, config(2, &addrs));
    a.wait_connected(two);
    b.wait_connected(one);
    exchange(&mut a, &mut b, 0, 10);

    b.stop();
    a.wait("link down", |e| *e == PeerEvent::Disconnected { peer: two });
    for seq in 100..150 {
        match a.send(two, payload(one, two, seq, 100)) {
            Ok(()) | Err(SendError::QueueFull { .. }) => {}
            Err(e) => panic!("send while the peer is down: {e}"),
        }
    }
    let since = b.seen.len();
    b.restart();
    a.wait_connected(two);
    b.wait_connected(one);
    exchange(&mut a, &mut b, 1000, 10);
    // Frames sent while node 2 was down may have arrived, but in order.
    let seqs: Vec<u64> = frames(&b.seen[since..], one)
        .iter()
        .map(|p| seq_of(p))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
}

#[test]
fn sync_to_sync_reconnects_after_a_restart() {
    restart(S, S);
}

#[test]
fn tokio_to_tokio_reconnects_after_a_restart() {
    restart(T, T);
}

#[test]
fn sync_to_tokio_reconnects_after_a_restart() {
    restart(S, T);
}

#[test]
fn tokio_to_sync_reconnects_after_a_restart() {
    restart(T, S);
}

/// With the peer down, `send` fills the queue up to its bounds and then says
/// so; the queue never holds more, and the link drops what waited.
fn backpressure(driver: Driver) {
    const QUEUE_BYTES: usize = 64 << 10;
    const QUEUE_FRAMES: usize = 40;
    let addrs = addresses(2);
    let mut c = config(1, &addrs);
    c.max_frame_bytes = 4096;
    c.queue_bytes = QUEUE_BYTES;
    c.queue_frames = QUEUE_FRAMES;
    let node = Node::start(driver, c);
    let (one, two) = (NodeId(1), NodeId(2));
    assert_eq!(
        node.send(NodeId(9), Bytes::new()),
        Err(SendError::UnknownPeer(NodeId(9)))
    );
    assert_eq!(
        node.send(one, Bytes::new()),
        Err(SendError::UnknownPeer(one))
    );
    for (len, bound) in [(2048, "bytes"), (0, "frames")] {
        let mut full = None;
        for seq in 0..100_000 {
            match node.send(two, payload(one, two, seq, len)) {
                Ok(()) => {}
                Err(SendError::QueueFull { frames, bytes, .. }) => {
                    full = Some((frames, bytes));
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
            let s = node.transport().stats(two).expect("a peer");
            assert!(
                s.queued_bytes <= QUEUE_BYTES && s.queued_frames <= QUEUE_FRAMES,
                "{s:?}"
            );
        }
        let (frames, bytes) = full.unwrap_or_else(|| panic!("the {bound} bound never hit"));
        match bound {
            "bytes" => assert!(bytes + HEADER_BYTES + 2048 > QUEUE_BYTES, "{bytes}"),
            _ => assert_eq!(frames, QUEUE_FRAMES),
        }
        // The unreachable peer's queue is dropped at its next failed dial.
        let drained = poll_until(WAIT, || {
            let s = node.transport().stats(two)?;
            (s.queued_frames == 0 && s.dropped_frames > 0).then_some(s)
        });
        assert!(drained.is_some(), "the queue was never dropped");
    }
}

#[test]
fn a_sync_node_pushes_back_when_a_peer_is_down() {
    backpressure(S);
}

#[test]
fn a_tokio_node_pushes_back_when_a_peer_is_down() {
    backpressure(T);
}

/// A batch of every kind of group traffic, as multi-Raft flushes it.
fn batch(from: NodeId, to: NodeId) -> Batch {
    let msg = |term: u64, body| Message {
        from,
        to,
        term: Term(term),
        body,
    };
    let entries = (8..11)
        .map(|i| Entry {
            term: Term(3),
            index: LogIndex(i),
            payload: Payload::Normal(Bytes::from(format!("record batch {i}"))),
        })
        .collect();
    let mut b = Batch::new(from, to);
    b.push(
        GroupId(7),
        msg(
            3,
            MessageBody::Append {
                prev: LogId {
                    term: Term(2),
                    index: LogIndex(7),
                },
                entries,
                commit: LogIndex(7),
            },
        ),
    );
    b.push(
        GroupId(9),
        msg(
            5,
            MessageBody::Vote {
                last: LogId {
                    term: Term(4),
                    index: LogIndex(20),
                },
                transfer: false,
            },
        ),
    );
    b.push(
        GroupId(11),
        msg(
            2,
            MessageBody::Heartbeat {
                commit: LogIndex(4),
                round: 17,
                quiesce: true,
            },
        ),
    );
    b.push(
        GroupId(12),
        msg(2, MessageBody::HeartbeatResponse { round: 16 }),
    );
    b
}

/// Multi-Raft batches encoded with `encode_batch` cross from a sync node to
/// a tokio node and back, and `decode_batch` gives back the same batches
/// from the peer the transport names.
#[test]
fn multiraft_batches_cross_between_drivers() {
    let addrs = addresses(2);
    let mut nodes = [
        Node::start(S, config(1, &addrs)),
        Node::start(T, config(2, &addrs)),
    ];
    let (one, two) = (NodeId(1), NodeId(2));
    nodes[0].wait_connected(two);
    nodes[1].wait_connected(one);
    for (i, (from, to)) in [(one, two), (two, one)].into_iter().enumerate() {
        let sent = [batch(from, to), Batch::new(from, to)];
        for b in &sent {
            nodes[i]
                .send(to, Bytes::from(encode_batch(b)))
                .expect("queued");
        }
        let receiver = &mut nodes[1 - i];
        let got = receiver.wait_frames(from, 0, sent.len());
        for (payload, want) in got.iter().zip(&sent) {
            let decoded = decode_batch(payload).expect("a valid batch");
            assert_eq!(decoded.from, from, "the batch names the peer it came from");
            assert_eq!(&decoded, want);
        }
    }
}
