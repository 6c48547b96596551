//! The receiving half of the blocking transport: the listener and one thread
//! per inbound connection.
//!
//! An acceptor thread waits on the listener with `mio` (so shutdown can wake
//! it); each accepted connection gets a thread that judges the dialer's hello
//! (proto-core's [`Identity::judge_hello`]), answers, and then reads frames
//! until the connection ends, handing each checked frame to the owner. Inbound
//! connections only receive. A peer has at most one: a newer one from the
//! same node replaces the older (its node restarted, or the old connection is
//! half-dead), and at most `max_inbound` are open at once, handshakes
//! included.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener as StdListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use proto_core::raft::NodeId;
use proto_core::transport::frame;
use proto_core::transport::handshake::MAX_MESSAGE_BYTES;
use proto_core::transport::verdict::Inbound as Verdict;
use proto_core::transport::Identity;

use super::event::{Deliver, PeerEvent};
use super::{read_by, READ_CHUNK};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// What the acceptor and the connection threads share.
pub(super) struct Shared {
    pub(super) identity: Identity,
    pub(super) deliver: Deliver,
    pub(super) max_frame_bytes: usize,
    pub(super) handshake_timeout: Duration,
    pub(super) max_inbound: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_conn: u64,
    /// A handle on every open connection, to shut it down from another thread.
    open: BTreeMap<u64, TcpStream>,
    /// The established connection of each peer.
    by_peer: BTreeMap<NodeId, u64>,
    threads: Vec<JoinHandle<()>>,
    stopping: bool,
}

impl Shared {
    /// The shared state of a transport that accepts nothing yet.
    pub(super) fn new(
        identity: Identity,
        deliver: Deliver,
        max_frame_bytes: usize,
        handshake_timeout: Duration,
        max_inbound: usize,
    ) -> Shared {
        Shared {
            identity,
            deliver,
            max_frame_bytes,
            handshake_timeout,
            max_inbound,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running listener; [`Acceptor::stop`] ends it and every inbound
/// connection.
pub(super) struct Acceptor {
    shared: Arc<Shared>,
    waker: Waker,
    thread: Option<JoinHandle<()>>,
}

/// Starts accepting on `listener`.
pub(super) fn start(listener: StdListener, shared: Arc<Shared>) -> io::Result<Acceptor> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Waker::new(poll.registry(), WAKER)?;
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("chronik-peer-accept".into())
            .spawn(move || accept_loop(poll, listener, &shared))?
    };
    Ok(Acceptor {
        shared,
        waker,
        thread: Some(thread),
    })
}

impl Acceptor {
    /// Stops accepting, closes every inbound connection and waits for their
    /// threads, so nothing is delivered once this returns.
    pub(super) fn stop(&mut self) {
        self.shared.state().stopping = true;
        if let Err(e) = self.waker.wake() {
            tracing::error!(error = %e, "cannot wake the peer acceptor");
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the peer acceptor panicked");
            }
        }
        let threads = {
            let mut state = self.shared.state();
            for stream in state.open.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut state.threads)
        };
        for t in threads {
            if t.join().is_err() {
                tracing::error!("a peer connection thread panicked");
            }
        }
    }
}

fn accept_loop(mut poll: Poll, listener: TcpListener, shared: &Arc<Shared>) {
    let _span = tracing::info_span!("peer", node = %shared.identity.node()).entered();
    let mut events = Events::with_capacity(16);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(error = %e, "the peer acceptor stopped");
            return;
        }
        if shared.state().stopping {
            return;
        }
        loop {
            match listener.accept() {
                Ok((stream, addr)) => open(shared, stream.into(), addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(error = %e, "peer accept failed");
                    break;
                }
            }
        }
    }
}

/// Gives an accepted connection its thread, unless too many are open.
fn open(shared: &Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let mut state = shared.state();
    state.threads.retain(|t| !t.is_finished());
    if state.stopping {
        return;
    }
    if state.open.len() >= shared.max_inbound {
        tracing::warn!(peer = %addr, limit = shared.max_inbound, "too many peer connections, closing one");
        return;
    }
    let handle = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_nodelay(true))
        .and_then(|()| stream.try_clone());
    let handle = match handle {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(peer = %addr, error = %e, "cannot set up a peer connection");
            return;
        }
    };
    let conn = state.next_conn;
    state.next_conn += 1;
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("chronik-peer-in".into())
            .spawn(move || serve(&shared, conn, stream, addr))
    };
    match thread {
        Ok(t) => {
            state.open.insert(conn, handle);
            state.threads.push(t);
        }
        Err(e) => tracing::warn!(peer = %addr, error = %e, "cannot start a peer connection thread"),
    }
}

/// One inbound connection, from handshake to close.
fn serve(shared: &Shared, conn: u64, mut stream: TcpStream, addr: SocketAddr) {
    let _span = tracing::info_span!("peer", node = %shared.identity.node()).entered();
    match handshake(shared, &mut stream, addr) {
        Ok(Some((peer, rest))) => {
            adopt(shared, peer, conn);
            tracing::info!(peer = %addr, node = %peer, "peer connection accepted");
            let reason = read_frames(shared, peer, &mut stream, rest);
            tracing::info!(peer = %addr, node = %peer, %reason, "peer connection closed");
        }
        Ok(None) => {}
        Err(e) => tracing::info!(peer = %addr, error = %e, "peer handshake failed"),
    }
    let mut state = shared.state();
    state.open.remove(&conn);
    state.by_peer.retain(|_, c| *c != conn);
}

/// Reads and judges the hello, answers it; on success, the peer and any bytes
/// read past the hello.
fn handshake(
    shared: &Shared,
    stream: &mut TcpStream,
    addr: SocketAddr,
) -> io::Result<Option<(NodeId, Vec<u8>)>> {
    let deadline = Instant::now() + shared.handshake_timeout;
    stream.set_write_timeout(Some(shared.handshake_timeout))?;
    let mut buf = [0u8; MAX_MESSAGE_BYTES];
    let mut len = 0;
    loop {
        match shared.identity.judge_hello(&buf[..len]) {
            // The verdict always comes within MAX_MESSAGE_BYTES, so the
            // buffer never fills up here.
            Verdict::NeedMore => len += read_by(stream, &mut buf[len..], deadline)?,
            Verdict::Refuse { refusal, reply } => {
                tracing::warn!(peer = %addr, reason = %refusal, "refused a peer connection");
                if let Some(reply) = reply {
                    let _ = stream.write_all(&reply);
                }
                (shared.deliver)(PeerEvent::Refused {
                    addr,
                    reason: refusal,
                });
                return Ok(None);
            }
            Verdict::Accept { peer, used, reply } => {
                stream.write_all(&reply)?;
                stream.set_read_timeout(None)?;
                stream.set_write_timeout(None)?;
                return Ok(Some((peer, buf[used..len].to_vec())));
            }
        }
    }
}

/// Makes `conn` the peer's connection, closing the one it replaces.
fn adopt(shared: &Shared, peer: NodeId, conn: u64) {
    let mut state = shared.state();
    if let Some(old) = state.by_peer.insert(peer, conn) {
        if let Some(stream) = state.open.get(&old) {
            tracing::info!(node = %peer, "a newer connection replaces the peer's older one");
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Hands on every checked frame until the connection ends; returns why.
fn read_frames(shared: &Shared, peer: NodeId, stream: &mut TcpStream, rest: Vec<u8>) -> String {
    let mut buf = BytesMut::from(&rest[..]);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        loop {
            match frame::next_frame(&mut buf, shared.max_frame_bytes) {
                Ok(Some(payload)) => (shared.deliver)(PeerEvent::Frame {
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
        match stream.read(&mut chunk) {
            Ok(0) => return "closed by the peer".into(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return e.to_string(),
        }
    }
}
