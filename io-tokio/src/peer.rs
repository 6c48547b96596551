//! The inter-broker (Raft) transport on tokio: the same API, formats and
//! behaviour as [`io_sync::peer`] (whose docs describe them), so a cluster
//! can mix drivers.
//!
//! The transport owns a small runtime (one worker thread): an acceptor task,
//! a task per inbound connection, and a link task per peer. `send` is a plain
//! function, callable from any thread, that queues into the link's channel
//! under the shared [`Budget`]. Call [`PeerTransport::start`] and
//! [`PeerTransport::shutdown`] (or drop it) outside any async context: they
//! block on the runtime.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use io_sync::peer::{
    Budget, Deliver, Outgoing, PeerConfig, PeerEvent, PeerStats, SendError, StartError, READ_CHUNK,
    WRITE_BUFFER,
};
use proto_core::raft::NodeId;
use proto_core::transport::frame;
use proto_core::transport::handshake::MAX_MESSAGE_BYTES;
use proto_core::transport::verdict::{Inbound as Verdict, Outbound};
use proto_core::transport::{Backoff, Identity, Refusal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

/// A running tokio peer transport. Dropping it shuts it down too.
pub struct PeerTransport {
    local_addr: SocketAddr,
    max_frame_bytes: usize,
    links: BTreeMap<NodeId, Link>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    runtime: Option<Runtime>,
}

/// The handle's side of one peer's link.
struct Link {
    tx: mpsc::UnboundedSender<Outgoing>,
    budget: Arc<Budget>,
}

impl PeerTransport {
    /// Binds `config.listen`, starts dialling every peer, and hands every
    /// event to `deliver` (on the runtime's thread) until shutdown.
    pub fn start(
        config: PeerConfig,
        deliver: impl Fn(PeerEvent) + Send + Sync + 'static,
    ) -> Result<PeerTransport, StartError> {
        config.validate()?;
        let listener = StdListener::bind(config.listen)?;
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("chronik-peer")
            .build()?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let deliver: Deliver = Arc::new(deliver);
        let identity = config.identity();
        let span = tracing::info_span!("peer", node = %config.node_id);
        let (stop, stopped) = watch::channel(false);
        let inbound = Arc::new(Inbound {
            identity: identity.clone(),
            deliver: deliver.clone(),
            max_frame_bytes: config.max_frame_bytes,
            handshake_timeout: config.handshake_timeout,
            max_inbound: config.max_inbound(),
            by_peer: Mutex::default(),
        });
        let mut tasks =
            vec![runtime
                .spawn(accept_loop(listener, inbound, stopped.clone()).instrument(span.clone()))];
        let mut links = BTreeMap::new();
        for (peer, addr) in config.remote_peers() {
            let (tx, rx) = mpsc::unbounded_channel();
            let budget = Arc::new(Budget::new(config.queue_frames, config.queue_bytes));
            let worker = Worker {
                peer,
                addr,
                identity: identity.clone(),
                deliver: deliver.clone(),
                budget: budget.clone(),
                handshake_timeout: config.handshake_timeout,
                backoff: config.backoff(peer),
                rx,
                stop: stopped.clone(),
            };
            tasks.push(runtime.spawn(worker.run().instrument(span.clone())));
            links.insert(peer, Link { tx, budget });
        }
        tracing::info!(node = %config.node_id, listen = %local_addr, peers = links.len(), "peer transport started");
        Ok(PeerTransport {
            local_addr,
            max_frame_bytes: config.max_frame_bytes,
            links,
            stop,
            tasks,
            runtime: Some(runtime),
        })
    }

    /// Queues `payload` for `to`; see [`io_sync::peer`] for ordering, bounds
    /// and what happens while the peer is unreachable.
    pub fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        let link = self.links.get(&to).ok_or(SendError::UnknownPeer(to))?;
        let frame = Outgoing::new(payload, self.max_frame_bytes)?;
        link.budget.reserve(to, &frame)?;
        link.tx.send(frame).map_err(|e| {
            link.budget.release(&e.0);
            SendError::Stopped(to)
        })
    }

    /// The address the listener is bound to (the port, if `listen` said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What waits for `peer`, or `None` if it is not a configured peer.
    pub fn stats(&self, peer: NodeId) -> Option<PeerStats> {
        self.links.get(&peer).map(|l| l.budget.stats())
    }

    /// Closes every socket and waits for every task; once it returns the
    /// callback is never called again.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut self.tasks);
        runtime.block_on(async {
            for task in tasks {
                if let Err(e) = task.await {
                    tracing::error!(error = %e, "a peer task failed");
                }
            }
        });
        tracing::info!(listen = %self.local_addr, "peer transport stopped");
    }
}

impl io_sync::peer::PeerSend for PeerTransport {
    fn send(&self, to: NodeId, payload: Bytes) -> Result<(), SendError> {
        PeerTransport::send(self, to, payload)
    }
}

impl Drop for PeerTransport {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resolves once the transport stops (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|&s| s).await;
}

/// What the acceptor and the inbound connection tasks share.
struct Inbound {
    identity: Identity,
    deliver: Deliver,
    max_frame_bytes: usize,
    handshake_timeout: Duration,
    max_inbound: usize,
    /// Each peer's established connection, and the sender whose drop tells
    /// that connection a newer one replaced it.
    by_peer: Mutex<BTreeMap<NodeId, (u64, oneshot::Sender<()>)>>,
}

async fn accept_loop(
    listener: TcpListener,
    inbound: Arc<Inbound>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let mut next_conn = 0u64;
    loop {
        while conns.try_join_next().is_some() {}
        let (stream, addr) = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "peer accept failed");
                    continue;
                }
            },
        };
        if conns.len() >= inbound.max_inbound {
            tracing::warn!(peer = %addr, limit = inbound.max_inbound, "too many peer connections, closing one");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = next_conn;
        next_conn += 1;
        conns.spawn(serve(inbound.clone(), conn, stream, addr).in_current_span());
    }
    // Aborting the connection tasks closes their sockets.
    conns.shutdown().await;
}

/// One inbound connection, from handshake to close.
async fn serve(inbound: Arc<Inbound>, conn: u64, mut stream: TcpStream, addr: SocketAddr) {
    let shaken = tokio::time::timeout(
        inbound.handshake_timeout,
        handshake(&inbound, &mut stream, addr),
    )
    .await;
    let (peer, rest) = match shaken {
        Ok(Ok(Some(accepted))) => accepted,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::info!(peer = %addr, error = %e, "peer handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(peer = %addr, "peer handshake timed out");
            return;
        }
    };
    let (replace, replaced) = oneshot::channel();
    let older = lock(&inbound.by_peer).insert(peer, (conn, replace));
    if older.is_some() {
        tracing::info!(node = %peer, "a newer connection replaces the peer's older one");
    }
    drop(older);
    tracing::info!(peer = %addr, node = %peer, "peer connection accepted");
    let reason = tokio::select! {
        reason = read_frames(&inbound, peer, &mut stream, rest) => reason,
        _ = replaced => "replaced by a newer connection".to_string(),
    };
    tracing::info!(peer = %addr, node = %peer, %reason, "peer connection closed");
    lock(&inbound.by_peer).retain(|_, (c, _)| *c != conn);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads and judges the hello, answers it; on success, the peer and any bytes
/// read past the hello.
async fn handshake(
    inbound: &Inbound,
    stream: &mut TcpStream,
    addr: SocketAddr,
) -> io::Result<Option<(NodeId, Vec<u8>)>> {
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    let mut len = 0;
    loop {
        match inbound.identity.judge_hello(&buf[..len]) {
            // The verdict always comes within MAX_MESSAGE_BYTES.
            Verdict::NeedMore => len += read_some(stream, &mut buf[len..]).await?,
            Verdict::Refuse { refusal, reply } => {
                tracing::warn!(peer = %addr, reason = %refusal, "refused a peer connection");
                if let Some(reply) = reply {
                    let _ = stream.write_all(&reply).await;
                }
                (inbound.deliver)(PeerEvent::Refused {
                    addr,
                    reason: refusal,
                });
                return Ok(None);
            }
            Verdict::Accept { peer, used, reply } => {
                stream.write_all(&reply).await?;
                return Ok(Some((peer, buf[used..len].to_vec())));
            }
        }
    }
}

/// One read during a handshake; the end of the stream is an error there.
async fn read_some(stream: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> io::Result<usize> {
    match stream.read(buf).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        n => Ok(n),
    }
}

/// Hands on every checked frame until the connection ends; returns why.
async fn read_frames(
    inbound: &Inbound,
    peer: NodeId,
    stream: &mut TcpStream,
    rest: Vec<u8>,
) -> String {
    let mut buf = BytesMut::from(&rest[..]);
    loop {
        loop {
            match frame::next_frame(&mut buf, inbound.max_frame_bytes) {
                Ok(Some(payload)) => (inbound.deliver)(PeerEvent::Frame {
                    from: peer,
                    payload,
                }),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(node = %peer, error = %e, "invalid frame from a peer");
                    return e.to_string();
                }
            }
        }
        buf.reserve(READ_CHUNK);
        match stream.read_buf(&mut buf).await {
            Ok(0) => return "closed by the peer".into(),
            Ok(_) => {}
            Err(e) => return e.to_string(),
        }
    }
}

/// One peer's link task: dial, shake hands, write queued frames in order;
/// on failure drop what waits and redial after a backoff delay.
struct Worker {
    peer: NodeId,
    addr: SocketAddr,
    identity: Identity,
    deliver: Deliver,
    budget: Arc<Budget>,
    handshake_timeout: Duration,
    backoff: Backoff,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    stop: watch::Receiver<bool>,
}

enum DialError {
    Refused(Refusal),
    Io(io::Error),
}

impl From<io::Error> for DialError {
    fn from(e: io::Error) -> DialError {
        DialError::Io(e)
    }
}

enum End {
    Lost(String),
    Stopping,
}

impl Worker {
    async fn run(mut self) {
        let (peer, addr) = (self.peer, self.addr);
        loop {
            let mut stop = self.stop.clone();
            let dialed = tokio::select! {
                _ = stopped(&mut stop) => return,
                dialed = tokio::time::timeout(self.handshake_timeout, self.dial()) => dialed,
            };
            match dialed {
                Ok(Ok(stream)) => {
                    self.backoff.reset();
                    tracing::info!(node = %peer, peer = %addr, "peer link up");
                    (self.deliver)(PeerEvent::Connected { peer });
                    let end = self.pump(stream).await;
                    (self.deliver)(PeerEvent::Disconnected { peer });
                    match end {
                        End::Stopping => return,
                        End::Lost(reason) => {
                            tracing::info!(node = %peer, peer = %addr, %reason, "peer link down")
                        }
                    }
                }
                Ok(Err(DialError::Refused(reason))) => {
                    tracing::warn!(node = %peer, peer = %addr, %reason, "peer handshake refused");
                    (self.deliver)(PeerEvent::Refused { addr, reason });
                }
                Ok(Err(DialError::Io(e))) => {
                    tracing::debug!(node = %peer, peer = %addr, error = %e, "cannot reach peer")
                }
                Err(_) => {
                    tracing::debug!(node = %peer, peer = %addr, "dialling the peer timed out")
                }
            }
            self.drop_queued();
            let delay = self.backoff.next_delay();
            tokio::select! {
                _ = stopped(&mut self.stop) => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Connects and shakes hands.
    async fn dial(&self) -> Result<TcpStream, DialError> {
        let mut stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        stream.write_all(&self.identity.hello(self.peer)).await?;
        let mut buf = [0u8; MAX_MESSAGE_BYTES];
        let mut len = 0;
        loop {
            match self.identity.judge_answer(self.peer, &buf[..len]) {
                // The verdict always comes within MAX_MESSAGE_BYTES.
                Outbound::NeedMore => len += read_some(&mut stream, &mut buf[len..]).await?,
                Outbound::Refuse(refusal) => return Err(DialError::Refused(refusal)),
                Outbound::Accept { used } if used < len => {
                    return Err(io::Error::other("the peer sent bytes after its answer").into())
                }
                Outbound::Accept { .. } => return Ok(stream),
            }
        }
    }

    /// Writes queued frames until the connection ends or the transport
    /// stops. The acceptor never sends after its answer, so any read that
    /// returns means the connection is over.
    async fn pump(&mut self, stream: TcpStream) -> End {
        let (mut read, write) = stream.into_split();
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, write);
        let mut probe = [0u8; 1];
        loop {
            let frame = tokio::select! {
                _ = stopped(&mut self.stop) => return End::Stopping,
                _ = read.read(&mut probe) => return End::Lost("closed by the peer".into()),
                frame = self.rx.recv() => match frame {
                    Some(frame) => frame,
                    // The handle owns the sender and stops the link first.
                    None => return End::Stopping,
                },
            };
            self.budget.release(&frame);
            let flush = self.rx.is_empty();
            tokio::select! {
                _ = stopped(&mut self.stop) => return End::Stopping,
                written = write_frame(&mut out, &frame, flush) => if let Err(e) = written {
                    return End::Lost(e.to_string());
                },
            }
        }
    }

    /// Drops every frame waiting for the peer (see [`io_sync::peer`]).
    fn drop_queued(&mut self) {
        let mut dropped = 0u64;
        while let Ok(frame) = self.rx.try_recv() {
            self.budget.drop_frame(&frame);
            dropped += 1;
        }
        if dropped > 0 {
            tracing::debug!(node = %self.peer, dropped, "dropped frames for an unreachable peer");
        }
    }
}

async fn write_frame(
    out: &mut (impl AsyncWrite + Unpin),
    frame: &Outgoing,
    flush: bool,
) -> io::Result<()> {
    out.write_all(frame.header()).await?;
    out.write_all(frame.payload()).await?;
    if flush {
        out.flush().await?;
    }
    Ok(())
}
