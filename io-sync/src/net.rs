//! The blocking network driver: one `mio` poll thread owns every Kafka
//! socket; the node loop ([`crate::host::run_loop`]) runs on its own thread.
//!
//! Frames read off sockets go to the node loop over its channel; answers come
//! back through a shared queue and a [`mio::Waker`]. Each connection keeps its
//! answers in request order ([`ReplyOrder`]) and stops reading while too many
//! requests are unanswered, so a client cannot grow the broker's memory
//! without bound.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::host::{
    self, Connections, EventReceiver, Host, HostOutput, LoopEvent, LoopHandle, ReplyOrder, Slot,
};

/// Requests a connection may have unanswered before its reads pause.
const MAX_IN_FLIGHT: u64 = 256;
const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// How often the poll thread checks the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// Outputs the node loop produced, waiting for the poll thread.
type Outbox = Arc<Mutex<Vec<HostOutput>>>;

struct MioConnections {
    outbox: Outbox,
    waker: Arc<Waker>,
}

impl Connections for MioConnections {
    fn deliver(&mut self, output: HostOutput) {
        self.outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(output);
        if let Err(e) = self.waker.wake() {
            tracing::error!(error = %e, "cannot wake the poll thread");
        }
    }
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    read_buf: BytesMut,
    pending_writes: VecDeque<Bytes>,
    /// Bytes of the front of `pending_writes` already written.
    written_front: usize,
    order: ReplyOrder,
    received: u64,
    /// Reads pause while too many requests are unanswered.
    reading: bool,
    /// Close once everything answered is written.
    closing: bool,
}

/// Runs `host` on the blocking driver until `stop` is set.
pub fn serve<H: Host>(
    host: H,
    handle: LoopHandle,
    events: EventReceiver,
    listener: StdListener,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let max_frame = host.max_frame_bytes();
    let mut poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let outbox: Outbox = Arc::default();
    let conns_out = MioConnections {
        outbox: outbox.clone(),
        waker: waker.clone(),
    };
    let node = std::thread::Builder::new()
        .name("chronik-node".into())
        .spawn(move || host::run_loop(host, events, conns_out))?;
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: HashMap<Token, Conn> = HashMap::new();
    let mut next_token = 2usize;
    let mut mio_events = Events::with_capacity(1024);
    while !stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut mio_events, Some(STOP_CHECK)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut to_close = Vec::new();
        for event in mio_events.iter() {
            match event.token() {
                LISTENER => accept(&mut listener, &poll, &mut conns, &mut next_token, &handle),
                WAKER => {}
                token => {
                    let Some(c) = conns.get_mut(&token) else {
                        continue;
                    };
                    let mut result = Ok(());
                    if event.is_readable() && c.reading {
                        result = read(token, c, &handle, max_frame);
                    }
                    if result.is_ok() && event.is_writable() {
                        result = flush(c);
                    }
                    if let Err(reason) = result {
                        log_close(token, &reason);
                        to_close.push(token);
                    }
                }
            }
        }
        let outputs = std::mem::take(&mut *outbox.lock().unwrap_or_else(|e| e.into_inner()));
        for out in outputs {
            let (token, closing) = match out {
                HostOutput::Respond { slot, frame } => {
                    let token = Token(slot.conn as usize);
                    if let Some(c) = conns.get_mut(&token) {
                        c.order.answered(slot.seq, frame);
                    }
                    (token, false)
                }
                HostOutput::Close { conn } => (Token(conn as usize), true),
            };
            let Some(c) = conns.get_mut(&token) else {
                continue;
            };
            c.closing |= closing;
            let frames = c.order.writable();
            c.pending_writes.extend(frames);
            if let Err(reason) = flush(c) {
                log_close(token, &reason);
                to_close.push(token);
                continue;
            }
            if !c.reading && c.received - c.order.released() < MAX_IN_FLIGHT && !c.closing {
                c.reading = true;
                if let Err(reason) = read(token, c, &handle, max_frame) {
                    log_close(token, &reason);
                    to_close.push(token);
                }
            }
        }
        for (token, c) in conns.iter() {
            if c.closing && c.pending_writes.is_empty() {
                to_close.push(*token);
            }
        }
        to_close.sort();
        to_close.dedup();
        for token in to_close {
            if let Some(mut c) = conns.remove(&token) {
                let _ = poll.registry().deregister(&mut c.stream);
                handle.send(LoopEvent::Closed {
                    conn: token.0 as u64,
                });
            }
        }
    }
    tracing::info!("shutting down");
    handle.send(LoopEvent::Shutdown);
    if node.join().is_err() {
        tracing::error!("the node loop panicked");
    }
    Ok(())
}

fn accept(
    listener: &mut TcpListener,
    poll: &Poll,
    conns: &mut HashMap<Token, Conn>,
    next_token: &mut usize,
    handle: &LoopHandle,
) {
    loop {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                let token = Token(*next_token);
                *next_token += 1;
                let _ = stream.set_nodelay(true);
                if let Err(e) = poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    tracing::warn!(error = %e, %peer, "cannot register a connection");
                    continue;
                }
                tracing::debug!(conn = token.0, %peer, "connection opened");
                handle.send(LoopEvent::Opened {
                    conn: token.0 as u64,
                    peer,
                });
                conns.insert(
                    token,
                    Conn {
                        stream,
                        read_buf: BytesMut::with_capacity(64 * 1024),
                        pending_writes: VecDeque::new(),
                        written_front: 0,
                        order: ReplyOrder::default(),
                        received: 0,
                        reading: true,
                        closing: false,
                    },
                );
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                return;
            }
        }
    }
}

/// Reads what the socket has and passes on whole frames; pauses when too many
/// requests wait. The error says why the connection must close.
fn read(token: Token, c: &mut Conn, handle: &LoopHandle, max_frame: usize) -> Result<(), String> {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        loop {
            if c.received - c.order.released() >= MAX_IN_FLIGHT {
                c.reading = false;
                return Ok(());
            }
            match crate::frame::next_frame(&mut c.read_buf, max_frame) {
                Ok(Some(frame)) => {
                    let slot = Slot {
                        conn: token.0 as u64,
                        seq: c.received,
                    };
                    c.received += 1;
                    if !handle.send(LoopEvent::Frame { slot, frame }) {
                        return Err("the node is stopping".into());
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        match c.stream.read(&mut chunk) {
            Ok(0) => return Err(PEER_CLOSED.into()),
            Ok(n) => c.read_buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Writes queued answers until the socket would block.
fn flush(c: &mut Conn) -> Result<(), String> {
    while let Some(front) = c.pending_writes.front() {
        match c.stream.write(&front[c.written_front..]) {
            Ok(0) => return Err("the socket accepts no more bytes".into()),
            Ok(n) => {
                c.written_front += n;
                if c.written_front == front.len() {
                    c.pending_writes.pop_front();
                    c.written_front = 0;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Why a connection closes when the client hung up: the ordinary end of a
/// connection, so it is logged at debug level (as the tokio driver does).
const PEER_CLOSED: &str = "the peer closed it";

/// Logs why a connection closes: at debug level when the client hung up, at
/// info level for anything else (a bad frame, a socket error).
fn log_close(token: Token, reason: &str) {
    if reason == PEER_CLOSED {
        tracing::debug!(conn = token.0, reason, "closing connection");
    } else {
        tracing::info!(conn = token.0, reason, "closing connection");
    }
}
