//! A fault-injecting TCP proxy on every directed peer link.
//!
//! Chronik's peer connections carry one direction each (a node sends only on
//! the connection it dialled; see `io_sync::peer`), so the link from node A
//! to node B is exactly the connections A dials to B. The chaos run gives
//! node A, for each peer B, the address of a proxy listener that forwards to
//! B's real Raft listener; blocking that one proxy cuts A→B and nothing
//! else, which is what asymmetric partitions need.
//!
//! A link is in one of three modes:
//! - **pass**: bytes are forwarded as they come;
//! - **delayed** by D: every chunk is held until D after it was read (added
//!   latency without a throughput cap);
//! - **blocked**: nothing is forwarded in either direction of the link's
//!   connections, old or new. Like a real partition, connections are not
//!   closed: they stall, the sender's buffers fill, and on heal the backlog
//!   flows (stale Raft messages that Raft must cope with).
//!
//! Apart from the mode, [`Proxies::sever`] shuts every current connection of
//! a link (the peer sees a reset and redials): the "dropped connections"
//! fault.
//!
//! Plain threads: two per connection direction (a reader stamps chunks, a
//! writer releases them when due), bounded channels so a blocked link holds
//! at most [`MAX_HELD_CHUNKS`] chunks per direction before it stops reading.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cluster::layout::NodeId;

/// Bytes read from a socket at a time.
const CHUNK: usize = 64 * 1024;
/// Chunks a connection direction holds (blocked or delayed) before it stops
/// reading and lets TCP push back on the sender.
const MAX_HELD_CHUNKS: usize = 64;
/// How long the upstream connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How often blocked writers and the acceptor look at the stop flag.
const RECHECK: Duration = Duration::from_millis(50);

/// What a link does with the bytes it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Forward each chunk this long after it was read.
    Delayed(Duration),
    /// Forward nothing until the mode changes.
    Blocked,
}

/// One directed link's shared state: its mode, and the connections it
/// carries (so they can be severed).
struct LinkState {
    mode: Mutex<Mode>,
    changed: Condvar,
    next_conn: AtomicU64,
    conns: Mutex<BTreeMap<u64, [TcpStream; 2]>>,
    /// Chunks read and waiting for the link to unblock.
    held: AtomicUsize,
    stop: Arc<AtomicBool>,
}

impl LinkState {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Shuts both sockets of every current connection.
    fn sever(&self) -> usize {
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for [a, b] in conns.values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        self.changed.notify_all();
        conns.len()
    }
}

/// One directed link's proxy: a listener and its acceptor thread.
struct Link {
    listen: SocketAddr,
    state: Arc<LinkState>,
    acceptor: Option<JoinHandle<()>>,
}

/// The proxies of every directed link between the nodes of a cluster.
pub struct Proxies {
    links: BTreeMap<(NodeId, NodeId), Link>,
    stop: Arc<AtomicBool>,
}

impl Proxies {
    /// Starts a proxy for every ordered pair of `nodes` (id and real Raft
    /// address), each on a free loopback port.
    pub fn start(nodes: &[(NodeId, SocketAddr)]) -> anyhow::Result<Proxies> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut links = BTreeMap::new();
        for &(from, _) in nodes {
            for &(to, upstream) in nodes {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind("127.0.0.1:0").context("bind a proxy port")?;
                let listen = listener.local_addr()?;
                let state = Arc::new(LinkState {
                    mode: Mutex::new(Mode::Pass),
                    changed: Condvar::new(),
                    next_conn: AtomicU64::new(0),
                    conns: Mutex::new(BTreeMap::new()),
                    held: AtomicUsize::new(0),
                    stop: stop.clone(),
                });
                let acceptor = {
                    let state = state.clone();
                    thread::Builder::new()
                        .name(format!("proxy-{from}-{to}"))
                        .spawn(move || accept(listener, upstream, state))?
                };
                links.insert(
                    (from, to),
                    Link {
                        listen,
                        state,
                        acceptor: Some(acceptor),
                    },
                );
            }
        }
        Ok(Proxies { links, stop })
    }

    /// The address node `from` should dial to reach node `to`.
    pub fn address(&self, from: NodeId, to: NodeId) -> Option<SocketAddr> {
        self.links.get(&(from, to)).map(|l| l.listen)
    }

    /// Every directed link.
    pub fn links(&self) -> Vec<(NodeId, NodeId)> {
        self.links.keys().copied().collect()
    }

    /// Sets link `from`→`to`'s mode.
    pub fn set(&self, from: NodeId, to: NodeId, mode: Mode) {
        if let Some(link) = self.links.get(&(from, to)) {
            *link.state.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
            link.state.changed.notify_all();
        }
    }

    /// Every link back to [`Mode::Pass`].
    pub fn heal_all(&self) {
        for &(from, to) in self.links.keys() {
            self.set(from, to, Mode::Pass);
        }
    }

    /// How many chunks link `from`→`to` holds because it is blocked: what
    /// a test waits for before it checks nothing got through.
    #[cfg(test)]
    pub fn held(&self, from: NodeId, to: NodeId) -> usize {
        self.links
            .get(&(from, to))
            .map_or(0, |l| l.state.held.load(Ordering::Acquire))
    }

    /// Shuts every current connection of link `from`→`to`; returns how
    /// many there were.
    pub fn sever(&self, from: NodeId, to: NodeId) -> usize {
        self.links.get(&(from, to)).map_or(0, |l| l.state.sever())
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for link in self.links.values_mut() {
            link.state.sever();
            if let Some(acceptor) = link.acceptor.take() {
                let _ = acceptor.join();
            }
        }
    }
}

/// Accepts connections to one link until the proxies stop.
fn accept(listener: TcpListener, upstream: SocketAddr, state: Arc<LinkState>) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    while !state.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((down, _)) => {
                let _ = down.set_nonblocking(false);
                let state = state.clone();
                let _ = thread::Builder::new()
                    .name("proxy-conn".into())
                    .spawn(move || connect(down, upstream, state));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => thread::sleep(RECHECK),
            Err(_) => thread::sleep(RECHECK),
        }
    }
}

/// Joins an accepted connection to a new one to the real listener and pumps
/// both directions until either side ends or the link is severed.
fn connect(down: TcpStream, upstream: SocketAddr, state: Arc<LinkState>) {
    let Ok(up) = TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT) else {
        return;
    };
    let _ = up.set_nodelay(true);
    let _ = down.set_nodelay(true);
    let (Ok(down2), Ok(up2)) = (down.try_clone(), up.try_clone()) else {
        return;
    };
    let id = state.next_conn.fetch_add(1, Ordering::Relaxed);
    {
        let (Ok(d), Ok(u)) = (down.try_clone(), up.try_clone()) else {
            return;
        };
        state
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, [d, u]);
    }
    let forward = {
        let state = state.clone();
        thread::spawn(move || pump(down, up, &state))
    };
    pump(up2, down2, &state);
    let _ = forward.join();
    state
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
}

/// Copies `from` to `to` under the link's mode, then shuts both.
fn pump(from: TcpStream, to: TcpStream, state: &Arc<LinkState>) {
    let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(MAX_HELD_CHUNKS);
    let reader = {
        let mut from = match from.try_clone() {
            Ok(f) => f,
            Err(_) => return,
        };
        thread::spawn(move || {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                }
            }
        })
    };
    write_when_due(rx, to.try_clone().ok(), state);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    let _ = reader.join();
}

/// Writes each chunk once it is due and the link is not blocked; returns
/// when the reader ends, a write fails, or the proxies stop.
fn write_when_due(rx: Receiver<(Instant, Vec<u8>)>, to: Option<TcpStream>, state: &LinkState) {
    let Some(mut to) = to else {
        return;
    };
    loop {
        let (read_at, chunk) = match rx.recv_timeout(RECHECK) {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) if !state.stop.load(Ordering::Acquire) => continue,
            Err(_) => return,
        };
        let mut holding = false;
        loop {
            if state.stop.load(Ordering::Acquire) {
                return;
            }
            let mode = state.mode();
            let wait = match mode {
                Mode::Pass => None,
                Mode::Delayed(d) => (read_at + d).checked_duration_since(Instant::now()),
                Mode::Blocked => Some(RECHECK),
            };
            let blocked = mode == Mode::Blocked;
            if blocked != holding {
                holding = blocked;
                if holding {
                    state.held.fetch_add(1, Ordering::AcqRel);
                } else {
                    state.held.fetch_sub(1, Ordering::AcqRel);
                }
            }
            let Some(wait) = wait else {
                break;
            };
            let guard = state.mode.lock().unwrap_or_else(|e| e.into_inner());
            let _ = state.changed.wait_timeout(guard, wait.min(RECHECK));
        }
        if holding {
            state.held.fetch_sub(1, Ordering::AcqRel);
        }
        if to.write_all(&chunk).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo-free sink: accepts one connection and returns what it reads
    /// through a channel, chunk by chunk.
    fn sink() -> (SocketAddr, Receiver<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = sync_channel(1024);
        thread::spawn(move || {
            while let Ok((mut s, _)) = l.accept() {
                let tx = tx.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    fn pair() -> (Proxies, Receiver<Vec<u8>>, TcpStream) {
        let (b_addr, rx) = sink();
        let a_addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let proxies = Proxies::start(&[(NodeId(1), a_addr), (NodeId(2), b_addr)]).unwrap();
        let via = proxies.address(NodeId(1), NodeId(2)).unwrap();
        let s = TcpStream::connect(via).unwrap();
        (proxies, rx, s)
    }

    #[test]
    fn passes_bytes_and_holds_them_while_blocked() {
        let (proxies, rx, mut s) = pair();
        s.write_all(b"hello").unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"hello");

        proxies.set(NodeId(1), NodeId(2), Mode::Blocked);
        s.write_all(b"held").unwrap();
        let held = conformance::launch::poll_until(Duration::from_secs(10), || {
            (proxies.held(NodeId(1), NodeId(2)) == 1).then_some(())
        });
        assert!(held.is_some(), "the blocked link never held the chunk");
        assert!(rx.try_recv().is_err(), "a blocked link forwarded bytes");
        proxies.heal_all();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"held");
    }

    #[test]
    fn severing_closes_the_connection() {
        let (proxies, rx, mut s) = pair();
        s.write_all(b"x").unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"x");
        assert_eq!(proxies.sever(NodeId(1), NodeId(2)), 1);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 8];
        let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
        assert!(closed, "the client side stayed open after sever");
    }
}
