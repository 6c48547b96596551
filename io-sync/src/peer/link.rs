//! The sending half of the blocking transport: one thread per peer that
//! dials it, shakes hands, and writes its queued frames in order.
//!
//! While a connection is up a watcher thread blocks reading it: the acceptor
//! never sends anything after its answer, so any read that returns means the
//! connection is over, and the writer learns it without waiting for a write
//! to fail. When the link goes down (or a dial fails), the frames waiting for
//! the peer are dropped, and the link redials after a backoff delay.

use std::io::{self, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use proto_core::raft::NodeId;
use proto_core::transport::handshake::MAX_MESSAGE_BYTES;
use proto_core::transport::verdict::Outbound;
use proto_core::transport::{Backoff, Identity, Refusal};

use super::event::{Deliver, PeerEvent};
use super::queue::{Budget, Outgoing, SendError};
use super::{read_by, WRITE_BUFFER};

/// The handle's side of one peer's link.
pub(super) struct Link {
    tx: Sender<Outgoing>,
    budget: Arc<Budget>,
    current: Arc<Mutex<Option<TcpStream>>>,
    thread: Option<JoinHandle<()>>,
}

/// What a link thread needs.
pub(super) struct Settings {
    pub(super) peer: NodeId,
    pub(super) addr: SocketAddr,
    pub(super) identity: Identity,
    pub(super) deliver: Deliver,
    pub(super) budget: Arc<Budget>,
    pub(super) handshake_timeout: Duration,
    pub(super) backoff: Backoff,
    /// Disconnects (its sender is dropped) when the transport stops.
    pub(super) stop: Receiver<()>,
}

struct Worker {
    s: Settings,
    rx: Receiver<Outgoing>,
    current: Arc<Mutex<Option<TcpStream>>>,
}

/// Why a dial did not give a usable connection.
enum DialError {
    Refused(Refusal),
    Io(io::Error),
    Stopping,
}

impl From<io::Error> for DialError {
    fn from(e: io::Error) -> DialError {
        DialError::Io(e)
    }
}

/// How a connection ended.
enum End {
    Lost(String),
    Stopping,
}

/// Starts the link thread for one peer.
pub(super) fn start(settings: Settings) -> io::Result<Link> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let budget = settings.budget.clone();
    let current = Arc::new(Mutex::new(None));
    let worker = Worker {
        s: settings,
        rx,
        current: current.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("chronik-peer-out-{}", worker.s.peer))
        .spawn(move || worker.run())?;
    Ok(Link {
        tx,
        budget,
        current,
        thread: Some(thread),
    })
}

impl Link {
    /// Queues `frame` if the budget has room.
    pub(super) fn send(&self, peer: NodeId, frame: Outgoing) -> Result<(), SendError> {
        self.budget.reserve(peer, &frame)?;
        self.tx.send(frame).map_err(|e| {
            self.budget.release(&e.0);
            SendError::Stopped(peer)
        })
    }

    /// The peer's queue.
    pub(super) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Breaks the current connection, so a thread blocked on it returns;
    /// call after the stop channel disconnected.
    pub(super) fn interrupt(&self) {
        if let Some(stream) = lock(&self.current).as_ref() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Waits for the link thread to end.
    pub(super) fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("a peer link thread panicked");
            }
        }
    }
}

fn lock(m: &Mutex<Option<TcpStream>>) -> MutexGuard<'_, Option<TcpStream>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Worker {
    fn run(mut self) {
        let (peer, addr) = (self.s.peer, self.s.addr);
        let _span = tracing::info_span!("peer", node = %self.s.identity.node()).entered();
        loop {
            match self.dial() {
                Ok(stream) => {
                    self.s.backoff.reset();
                    tracing::info!(node = %peer, peer = %addr, "peer link up");
                    (self.s.deliver)(PeerEvent::Connected { peer });
                    let end = self.pump(&stream);
                    (self.s.deliver)(PeerEvent::Disconnected { peer });
                    match end {
                        End::Stopping => return,
                        End::Lost(reason) => {
                            tracing::info!(node = %peer, peer = %addr, %reason, "peer link down")
                        }
                    }
                }
                Err(DialError::Stopping) => return,
                Err(DialError::Refused(reason)) => {
                    tracing::warn!(node = %peer, peer = %addr, %reason, "peer handshake refused");
                    (self.s.deliver)(PeerEvent::Refused { addr, reason });
                }
                Err(DialError::Io(e)) => {
                    tracing::debug!(node = %peer, peer = %addr, error = %e, "cannot reach peer")
                }
            }
            *lock(&self.current) = None;
            self.drop_queued();
            match self.s.stop.recv_timeout(self.s.backoff.next_delay()) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Connects and shakes hands.
    fn dial(&self) -> Result<TcpStream, DialError> {
        let timeout = self.s.handshake_timeout;
        let mut stream = TcpStream::connect_timeout(&self.s.addr, timeout)?;
        {
            // Under the lock, so a stop either sees this stream or is seen.
            let mut current = lock(&self.current);
            if self.s.stop.try_recv() != Err(TryRecvError::Empty) {
                return Err(DialError::Stopping);
            }
            *current = Some(stream.try_clone()?);
        }
        let deadline = Instant::now() + timeout;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(&self.s.identity.hello(self.s.peer))?;
        let mut buf = [0u8; MAX_MESSAGE_BYTES];
        let mut len = 0;
        loop {
            match self.s.identity.judge_answer(self.s.peer, &buf[..len]) {
                // The verdict always comes within MAX_MESSAGE_BYTES.
                Outbound::NeedMore => len += read_by(&mut stream, &mut buf[len..], deadline)?,
                Outbound::Refuse(refusal) => return Err(DialError::Refused(refusal)),
                Outbound::Accept { used } if used < len => {
                    return Err(io::Error::other("the peer sent bytes after its answer").into())
                }
                Outbound::Accept { .. } => break,
            }
        }
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;
        Ok(stream)
    }

    /// Writes queued frames until the connection ends or the transport stops.
    fn pump(&self, stream: &TcpStream) -> End {
        let (lost_tx, lost_rx) = crossbeam_channel::bounded(1);
        let mut probe = match stream.try_clone() {
            Ok(s) => s,
            Err(e) => return End::Lost(e.to_string()),
        };
        let watcher = std::thread::Builder::new()
            .name(format!("chronik-peer-watch-{}", self.s.peer))
            .spawn(move || {
                let mut byte = [0u8; 1];
                let _ = probe.read(&mut byte);
                let _ = lost_tx.send(());
            });
        let watcher = match watcher {
            Ok(w) => w,
            Err(e) => return End::Lost(e.to_string()),
        };
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, stream);
        let end = loop {
            crossbeam_channel::select! {
                recv(self.rx) -> frame => {
                    // The handle owns the sender and stops the link before
                    // dropping it.
                    let Ok(frame) = frame else { break End::Stopping };
                    self.s.budget.release(&frame);
                    if let Err(e) = write_frame(&mut out, &frame, self.rx.is_empty()) {
                        break End::Lost(e.to_string());
                    }
                },
                recv(lost_rx) -> _ => break End::Lost("closed by the peer".into()),
                recv(self.s.stop) -> _ => break End::Stopping,
            }
        };
        // Unwritten bytes are dropped with the connection, never flushed late.
        let _ = out.into_parts();
        let _ = stream.shutdown(Shutdown::Both);
        if watcher.join().is_err() {
            tracing::error!("a peer watcher thread panicked");
        }
        end
    }

    /// Drops every frame waiting for the peer: Raft resends what matters, and
    /// stale batches would only delay fresh ones after a reconnect.
    fn drop_queued(&self) {
        let mut dropped = 0u64;
        while let Ok(frame) = self.rx.try_recv() {
            self.s.budget.drop_frame(&frame);
            dropped += 1;
        }
        if dropped > 0 {
            tracing::debug!(node = %self.s.peer, dropped, "dropped frames for an unreachable peer");
        }
    }
}

fn write_frame(out: &mut impl Write, frame: &Outgoing, flush: bool) -> io::Result<()> {
    out.write_all(frame.header())?;
    out.write_all(frame.payload())?;
    if flush {
        out.flush()?;
    }
    Ok(())
}
