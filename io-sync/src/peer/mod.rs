//! The inter-broker (Raft) transport on blocking threads, and the types both
//! drivers share (`io-tokio`'s `peer` module is the same API on tokio).
//!
//! Each node listens on its Raft address and dials every configured peer.
//! **Connections carry one direction each**: a node sends to a peer only on
//! the connection it dialled, and receives from that peer only on the
//! connection the peer dialled (etcd's rafthttp and Redpanda's RPC layer also
//! keep the two directions apart). So two nodes that dial each other at the
//! same moment never race to pick a winner, either direction reconnects on
//! its own, and a node that restarts just dials again. The cost is two
//! sockets per pair of nodes, which is nothing at broker counts.
//!
//! Every connection opens with proto-core's handshake and then carries
//! proto-core's frames ([`proto_core::transport`]); the decisions (accept or
//! refuse, whether a frame is valid) are proto-core's, the threads only move
//! bytes.
//!
//! - **Sending** ([`PeerTransport::send`]) queues a payload for one peer and
//!   returns at once. The queue is bounded by frames and bytes
//!   ([`PeerConfig::queue_frames`], [`PeerConfig::queue_bytes`]); when full,
//!   `send` returns [`SendError::QueueFull`] (backpressure the caller sees),
//!   never more memory. Frames go out in order. When the link is down, or
//!   goes down, the frames waiting for it are **dropped** (counted in
//!   [`PeerStats::dropped_frames`]): Raft resends what matters.
//! - **Receiving**: every frame that passes the length and CRC checks goes to
//!   the owner's callback as [`PeerEvent::Frame`], in order per connection.
//!   The payload is then the consumer's to decode and validate.
//! - **Reconnecting** is exponential backoff with jitter, between
//!   [`PeerConfig::backoff_min`] and [`PeerConfig::backoff_max`].
//!
//! Threads: one acceptor (a `mio` poll, so shutdown can wake it), one per
//! inbound connection, and per peer one link thread plus a watcher while
//! connected. [`PeerTransport::shutdown`] joins them all.

mod config;
mod event;
mod inbound;
mod link;
mod queue;

pub use config::{
    ConfigError, PeerConfig, StartError, DEFAULT_BACKOFF_MAX, DEFAULT_BACKOFF_MIN,
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_FRAME_BYTES, DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_FRAMES,
    MAX_HANDSHAKING,
};
pub use event::{Deliver, PeerEvent};
pub use queue::{Budget, Outgoing, PeerStats, SendError};

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::Sender;
use proto_core::raft::NodeId;

/// Bytes asked of the socket per read by both drivers' receivers.
pub const READ_CHUNK: usize = 64 * 1024;
/// Bytes both drivers' senders gather before a write: many small frames, one
/// system call.
pub const WRITE_BUFFER: usize = 64 * 1024;

/// What a node loop's host needs of a running transport, whichever driver
/// runs it: a cluster may mix drivers, and the host does not care which.
pub trait PeerSend: Send {
    /// Queues `payload` for `to` (see [`PeerTransport::send`]).
    fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError>;
}

impl PeerSend for PeerTransport {
    fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        PeerTransport::send(self, to, payload)
    }
}

/// A running blocking peer transport. Dropping it shuts it down too.
pub struct PeerTransport {
    local_addr: SocketAddr,
    max_frame_bytes: usize,
    links: BTreeMap<NodeId, link::Link>,
    /// Dropped to tell every link thread to stop.
    stop: Option<Sender<()>>,
    acceptor: Option<inbound::Acceptor>,
}

impl PeerTransport {
    /// Binds `config.listen`, starts dialling every peer, and hands every
    /// event to `deliver` (on the transport's threads) until shutdown.
    pub fn start(
        config: PeerConfig,
        deliver: impl Fn(PeerEvent) + Send + Sync + 'static,
    ) -> Result<PeerTransport, StartError> {
        config.validate()?;
        let listener = TcpListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        let deliver: Deliver = Arc::new(deliver);
        let identity = config.identity();
        let shared = inbound::Shared::new(
            identity.clone(),
            deliver.clone(),
            config.max_frame_bytes,
            config.handshake_timeout,
            config.max_inbound(),
        );
        let (stop, stopped) = crossbeam_channel::bounded(0);
        // Built before the threads start, so an error below shuts down
        // whatever did start (through Drop).
        let mut transport = PeerTransport {
            local_addr,
            max_frame_bytes: config.max_frame_bytes,
            links: BTreeMap::new(),
            stop: Some(stop),
            acceptor: Some(inbound::start(listener, Arc::new(shared))?),
        };
        for (peer, addr) in config.remote_peers() {
            let link = link::start(link::Settings {
                peer,
                addr,
                identity: identity.clone(),
                deliver: deliver.clone(),
                budget: Arc::new(Budget::new(config.queue_frames, config.queue_bytes)),
                handshake_timeout: config.handshake_timeout,
                backoff: config.backoff(peer),
                stop: stopped.clone(),
            })?;
            transport.links.insert(peer, link);
        }
        tracing::info!(node = %config.node_id, listen = %local_addr, peers = transport.links.len(), "peer transport started");
        Ok(transport)
    }

    /// Queues `payload` for `to`; see the module docs for ordering, bounds
    /// and what happens while the peer is unreachable.
    pub fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        let link = self.links.get(&to).ok_or(SendError::UnknownPeer(to))?;
        link.send(to, Outgoing::new(payload, self.max_frame_bytes)?)
    }

    /// The address the listener is bound to (the port, if `listen` said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What waits for `peer`, or `None` if it is not a configured peer.
    pub fn stats(&self, peer: NodeId) -> Option<PeerStats> {
        self.links.get(&peer).map(|l| l.budget().stats())
    }

    /// Closes every socket and joins every thread; once it returns the
    /// callback is never called again.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.stop.take().is_none() {
            return;
        }
        for link in self.links.values() {
            link.interrupt();
        }
        for link in self.links.values_mut() {
            link.join();
        }
        if let Some(mut acceptor) = self.acceptor.take() {
            acceptor.stop();
        }
        tracing::info!(listen = %self.local_addr, "peer transport stopped");
    }
}

impl Drop for PeerTransport {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One read during a handshake, which must end by `deadline`: the whole
/// handshake has one time bound however slowly the other side trickles its
/// bytes. The end of the stream is an error there.
fn read_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
