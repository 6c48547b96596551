//! The async driver: Chronik's sockets on tokio.
//!
//! Each Kafka connection gets a reader task that cuts frames off the socket
//! and hands them to the node loop ([`io_sync::host`]), and a writer task that
//! puts answers back in request order and writes them. The node loop is the
//! same thread both drivers use, and the disk layer is io-sync's, so this
//! driver decides nothing and does no file IO of its own.
//!
//! [`peer`] is the inter-broker (Raft) transport on tokio, the twin of
//! [`io_sync::peer`].

pub mod peer;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use io_sync::host::{
    self, Connections, EventReceiver, Host, HostOutput, LoopEvent, LoopHandle, ReplyOrder, Slot,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

/// Requests a connection may have unanswered before its reader stops reading:
/// bounds memory per connection while letting clients pipeline.
const MAX_IN_FLIGHT: u64 = 256;

/// What a writer task receives.
enum Delivery {
    Answer(u64, Option<Bytes>),
    Close,
}

type Registry = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Delivery>>>>;

/// Routes the node loop's outputs to connection writer tasks.
struct TokioConnections {
    registry: Registry,
}

impl Connections for TokioConnections {
    fn deliver(&mut self, output: HostOutput) {
        let (conn, delivery) = match output {
            HostOutput::Respond { slot, frame } => (slot.conn, Delivery::Answer(slot.seq, frame)),
            HostOutput::Close { conn } => (conn, Delivery::Close),
        };
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = registry.get(&conn) {
            let _ = tx.send(delivery);
        }
    }
}

/// Runs `host` on tokio, serving Kafka connections from `listener`, until
/// `shutdown` completes. `events` and `handle` come from
/// [`io_sync::host::channel`], so the host could be built with a waker first.
pub fn serve<H: Host>(
    host: H,
    handle: LoopHandle,
    events: EventReceiver,
    listener: StdListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max_frame = host.max_frame_bytes();
    let registry: Registry = Arc::default();
    let conns = TokioConnections {
        registry: registry.clone(),
    };
    let node = std::thread::Builder::new()
        .name("chronik-node".into())
        .spawn(move || host::run_loop(host, events, conns))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("chronik-net")
        .build()?;
    listener.set_nonblocking(true)?;
    let result = runtime.block_on(async {
        let listener = TcpListener::from_std(listener)?;
        let next_conn = AtomicU64::new(0);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
                        spawn_connection(conn, stream, peer, handle.clone(), registry.clone(), max_frame);
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                },
            }
        }
        Ok::<(), std::io::Error>(())
    });
    handle.send(LoopEvent::Shutdown);
    if node.join().is_err() {
        tracing::error!("the node loop panicked");
    }
    runtime.shutdown_background();
    result
}

fn spawn_connection(
    conn: u64,
    stream: TcpStream,
    peer: SocketAddr,
    handle: LoopHandle,
    registry: Registry,
    max_frame: usize,
) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(conn, tx);
    let written = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let closed = Arc::new(Notify::new());
    tracing::debug!(conn, %peer, "connection opened");
    handle.send(LoopEvent::Opened { conn, peer });
    let writer = tokio::spawn(write_answers(
        write,
        rx,
        written.clone(),
        progress.clone(),
        closed.clone(),
    ));
    tokio::spawn(async move {
        let reading = read_frames(conn, read, &handle, max_frame, &written, &progress);
        let outcome = tokio::select! {
            r = reading => r,
            _ = closed.notified() => Err("the broker closed it".to_string()),
        };
        if let Err(reason) = outcome {
            tracing::info!(conn, %peer, %reason, "closing connection");
        }
        registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
        writer.abort();
        handle.send(LoopEvent::Closed { conn });
    });
}

/// Reads frames until the peer closes or misbehaves; the error says why.
async fn read_frames(
    conn: u64,
    mut read: OwnedReadHalf,
    handle: &LoopHandle,
    max_frame: usize,
    written: &AtomicU64,
    progress: &Notify,
) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut seq = 0u64;
    loop {
        loop {
            match io_sync::frame::next_frame(&mut buf, max_frame) {
                Ok(Some(frame)) => {
                    while seq - written.load(Ordering::Acquire) >= MAX_IN_FLIGHT {
                        let notified = progress.notified();
                        if seq - written.load(Ordering::Acquire) < MAX_IN_FLIGHT {
                            break;
                        }
                        notified.await;
                    }
                    let slot = Slot { conn, seq };
                    seq += 1;
                    if !handle.send(LoopEvent::Frame { slot, frame }) {
                        return Err("the node is stopping".into());
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

async fn write_answers(
    mut write: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    written: Arc<AtomicU64>,
    progress: Arc<Notify>,
    closed: Arc<Notify>,
) {
    let mut order = ReplyOrder::default();
    while let Some(delivery) = rx.recv().await {
        match delivery {
            Delivery::Answer(seq, frame) => order.answered(seq, frame),
            Delivery::Close => break,
        }
        let frames = order.writable();
        let released = order.released();
        for frame in frames {
            if write.write_all(&frame).await.is_err() {
                closed.notify_one();
                return;
            }
        }
        written.store(released, Ordering::Release);
        progress.notify_one();
    }
    let _ = write.shutdown().await;
    closed.notify_one();
}
