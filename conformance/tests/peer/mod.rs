//! The peer transport tests' harness: either driver behind one face, nodes
//! that record their events and wait on them with deadlines, payloads that
//! say where they belong, and raw sockets for playing a hostile peer.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use bytes::Bytes;
use conformance::launch::free_port;
use io_sync::peer::{PeerConfig, PeerEvent, PeerStats, SendError};
use proto_core::raft::NodeId;
use proto_core::transport::handshake::{self, Handshake};
use proto_core::transport::{ClusterId, Identity, Refusal};

/// The cluster every well-behaved test node belongs to.
pub const CLUSTER: &str = "peer-test";
/// The frame limit of the test nodes (unless a test sets another).
pub const MAX_FRAME: usize = 1 << 20;
/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Which driver a node runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io-sync's blocking threads.
    Sync,
    /// io-tokio's tasks.
    Tokio,
}

/// Short names, so a cluster reads `[S, T, T]`.
pub use Driver::{Sync as S, Tokio as T};

/// Either driver's transport behind one face.
pub enum Transport {
    /// io-sync's.
    Sync(io_sync::peer::PeerTransport),
    /// io-tokio's.
    Tokio(io_tokio::peer::PeerTransport),
}

impl Transport {
    /// Starts `driver`'s transport, its events going to `events`.
    pub fn start(driver: Driver, config: PeerConfig, events: Sender<PeerEvent>) -> Transport {
        let deliver = move |e: PeerEvent| {
            let _ = events.send(e);
        };
        match driver {
            S => Transport::Sync(
                io_sync::peer::PeerTransport::start(config, deliver).expect("start a sync node"),
            ),
            T => Transport::Tokio(
                io_tokio::peer::PeerTransport::start(config, deliver).expect("start a tokio node"),
            ),
        }
    }

    /// The driver's `send`.
    pub fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        match self {
            Transport::Sync(t) => t.send(to, payload),
            Transport::Tokio(t) => t.send(to, payload),
        }
    }

    /// The driver's `stats`.
    pub fn stats(&self, peer: NodeId) -> Option<PeerStats> {
        match self {
            Transport::Sync(t) => t.stats(peer),
            Transport::Tokio(t) => t.stats(peer),
        }
    }

    /// The driver's `shutdown`.
    pub fn shutdown(self) {
        match self {
            Transport::Sync(t) => t.shutdown(),
            Transport::Tokio(t) => t.shutdown(),
        }
    }
}

/// One node: its transport and everything it reported.
pub struct Node {
    pub id: NodeId,
    driver: Driver,
    config: PeerConfig,
    transport: Option<Transport>,
    tx: Sender<PeerEvent>,
    rx: Receiver<PeerEvent>,
    /// Every event received so far, oldest first.
    pub seen: Vec<PeerEvent>,
}

impl Node {
    /// Starts a node on `driver`.
    pub fn start(driver: Driver, config: PeerConfig) -> Node {
        let (tx, rx) = mpsc::channel();
        let transport = Transport::start(driver, config.clone(), tx.clone());
        Node {
            id: config.node_id,
            driver,
            config,
            transport: Some(transport),
            tx,
            rx,
            seen: Vec::new(),
        }
    }

    /// The running transport.
    pub fn transport(&self) -> &Transport {
        self.transport.as_ref().expect("the node is running")
    }

    /// Sends through the running transport.
    pub fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        self.transport().send(to, payload)
    }

    /// Shuts the transport down (its events stay recorded).
    pub fn stop(&mut self) {
        if let Some(t) = self.transport.take() {
            t.shutdown();
        }
    }

    /// Starts again with the same settings (and so the same address).
    pub fn restart(&mut self) {
        self.stop();
        let transport = Transport::start(self.driver, self.config.clone(), self.tx.clone());
        self.transport = Some(transport);
    }

    /// Waits for the next event that `pred` matches, keeping every event seen.
    pub fn wait(&mut self, what: &str, pred: impl Fn(&PeerEvent) -> bool) -> PeerEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    if pred(&e) {
                        return e;
                    }
                }
                Err(_) => panic!(
                    "node {} ({:?}): no {what} within {WAIT:?}; saw {:?}",
                    self.id,
                    self.driver,
                    self.seen.iter().map(summary).collect::<Vec<_>>()
                ),
            }
        }
    }

    /// Waits until the link to `peer` is up (unless the latest news of it
    /// already says so).
    pub fn wait_connected(&mut self, peer: NodeId) {
        let up = PeerEvent::Connected { peer };
        let down = PeerEvent::Disconnected { peer };
        if self.seen.iter().rev().find(|e| **e == up || **e == down) == Some(&up) {
            return;
        }
        self.wait(&format!("connection to {peer}"), |e| *e == up);
    }

    /// Waits until `count` frames from `from` that `keep` picks arrived after
    /// event `since`, and returns those.
    pub fn wait_frames_where(
        &mut self,
        from: NodeId,
        since: usize,
        count: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Vec<Bytes> {
        let kept = |seen: &[PeerEvent]| -> Vec<Bytes> {
            let mut all = frames(&seen[since..], from);
            all.retain(|p| keep(p));
            all
        };
        while kept(&self.seen).len() < count {
            self.wait(&format!("{count} frames from {from}"), |e| {
                matches!(e, PeerEvent::Frame { from: f, payload } if *f == from && keep(payload))
            });
        }
        kept(&self.seen)
    }

    /// Waits until `count` frames from `from` arrived after event `since`.
    pub fn wait_frames(&mut self, from: NodeId, since: usize, count: usize) -> Vec<Bytes> {
        self.wait_frames_where(from, since, count, |_| true)
    }

    /// Collects whatever has arrived without waiting.
    pub fn drain(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An event for a failure message, payloads left out.
fn summary(e: &PeerEvent) -> String {
    match e {
        PeerEvent::Frame { from, payload } => {
            format!("frame from {from} ({} bytes)", payload.len())
        }
        other => format!("{other:?}"),
    }
}

/// The payloads from `from` among `events`, in arrival order.
pub fn frames(events: &[PeerEvent], from: NodeId) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Frame { from: f, payload } if *f == from => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

/// Free loopback addresses for nodes 1 to `n`.
pub fn addresses(n: u64) -> BTreeMap<NodeId, SocketAddr> {
    (1..=n)
        .map(|id| (NodeId(id), free_port().expect("a free port")))
        .collect()
}

/// A cluster id the test knows is valid.
pub fn cluster_id(s: &str) -> ClusterId {
    ClusterId::new(s).expect("a valid cluster id")
}

/// Node `id` of a cluster at `addrs` (this node's own entry included, as the
/// broker's `--peers` has it).
pub fn config(id: u64, addrs: &BTreeMap<NodeId, SocketAddr>) -> PeerConfig {
    let mut c = PeerConfig::new(
        addrs[&NodeId(id)],
        cluster_id(CLUSTER),
        NodeId(id),
        addrs.clone(),
    );
    c.max_frame_bytes = MAX_FRAME;
    c.queue_bytes = 8 * MAX_FRAME;
    c.backoff_max = Duration::from_millis(500);
    c
}

/// A payload that says who sent it to whom and its place in the sequence,
/// padded to `len` with bytes derived from those.
pub fn payload(from: NodeId, to: NodeId, seq: u64, len: usize) -> Bytes {
    let mut p = Vec::with_capacity(len.max(24));
    p.extend_from_slice(&from.0.to_be_bytes());
    p.extend_from_slice(&to.0.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    let mut x = from.0 ^ (to.0 << 20) ^ (seq << 40);
    while p.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        p.push((x >> 56) as u8);
    }
    Bytes::from(p)
}

/// The sequence number [`payload`] put in `p`.
pub fn seq_of(p: &[u8]) -> u64 {
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&p[16..24]);
    u64::from_be_bytes(seq)
}

/// `got` is `want`, compared without printing megabytes on failure.
pub fn assert_frames(got: &[Bytes], want: &[Bytes], ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: frame count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "{ctx}: frame {i} differs ({} vs {} bytes)",
            g.len(),
            w.len()
        );
    }
}

/// `a` and `b` each send `n` frames numbered from `first_seq` to the other,
/// which must all arrive in order (frames numbered otherwise are ignored).
pub fn exchange(a: &mut Node, b: &mut Node, first_seq: u64, n: u64) {
    for (from, to) in [(&*a, &*b), (&*b, &*a)] {
        for seq in first_seq..first_seq + n {
            from.send(to.id, payload(from.id, to.id, seq, 100))
                .expect("queued");
        }
    }
    let (a_id, b_id) = (a.id, b.id);
    for (from, to) in [(a_id, b), (b_id, a)] {
        let since = to.seen.len();
        let range = first_seq..first_seq + n;
        let got = to.wait_frames_where(from, since, n as usize, |p| range.contains(&seq_of(p)));
        let want: Vec<_> = range.map(|seq| payload(from, to.id, seq, 100)).collect();
        assert_frames(&got, &want, &format!("{from} -> {}", to.id));
    }
}

/// Sends raw bytes to `addr` and returns the handshake answer, once whole.
pub fn raw_handshake(addr: SocketAddr, bytes: &[u8]) -> (TcpStream, Option<Handshake>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("set a timeout");
    s.write_all(bytes).expect("write");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        if let Ok(Some((msg, _))) = handshake::decode(&answer) {
            return (s, Some(msg));
        }
        match s.read(&mut chunk) {
            Ok(0) => return (s, None),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (s, None),
            Err(e) => panic!("no answer from {addr}: {e}"),
        }
    }
}

/// A connection from a dialer that passed the handshake as `from`.
pub fn shaken_as(addr: SocketAddr, from: u64, to: u64) -> TcpStream {
    let me = Identity::new(cluster_id(CLUSTER), NodeId(from), [NodeId(to)]);
    let (s, answer) = raw_handshake(addr, &me.hello(NodeId(to)));
    assert!(matches!(answer, Some(Handshake::Ack(_))), "{answer:?}");
    s
}

/// The other end closes `s` (before the deadline) without sending anything.
pub fn expect_closed(s: &mut TcpStream, what: &str) {
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(_) => panic!("{what}: the node sent bytes instead of closing"),
        Err(e) => panic!("{what}: the connection stayed open: {e}"),
    }
}

/// Matches a `Refused` event for exactly `reason`.
pub fn refused_with(reason: Refusal) -> impl Fn(&PeerEvent) -> bool {
    move |e| matches!(e, PeerEvent::Refused { reason: r, .. } if *r == reason)
}
