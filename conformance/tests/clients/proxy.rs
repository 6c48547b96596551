//! A TCP proxy between Kafka clients and one broker (127.0.0.1 only, std
//! threads) that loses Produce responses on purpose, for the idempotent
//! producer tests.
//!
//! It forwards every byte unchanged in both directions. When a [`CutPlan`] is
//! armed, every `every`-th Produce request (api key 0) is forwarded to the
//! broker as usual, but when the broker's answer to it arrives the proxy drops
//! it and closes both sides of that connection: the broker has done the work,
//! and the client does not know, so it must retry. Waiting for the answer
//! (rather than cutting as soon as the request is through) is what makes the
//! retry a true duplicate: the broker cannot have missed the first attempt.
//!
//! The broker puts its advertised address in Metadata, so it must advertise
//! the proxy (`--advertised-listener <proxy addr>`): bind the proxy first
//! ([`Proxy::bind`]), start the broker, then [`Proxy::forward_to`] it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Which Produce answers the proxy loses.
#[derive(Clone, Copy, Debug)]
pub struct CutPlan {
    /// Lose the answer to every `every`-th Produce request counted from when
    /// the plan was armed.
    pub every: u64,
    /// Stop after this many connections were cut.
    pub max_cuts: u64,
    /// After a cut, refuse new connections (accept and close them at once)
    /// until [`Proxy::resume`].
    pub then_pause: bool,
}

/// A Produce answer the proxy dropped: what the broker had said to the
/// request the client never heard back about.
#[derive(Clone, Debug, PartialEq)]
pub struct LostAnswer {
    pub api_version: i16,
    /// The first partition's error code and base offset in the answer, if it
    /// could be read.
    pub first_partition: Option<(i16, i64)>,
}

#[derive(Default)]
struct State {
    plan: Option<CutPlan>,
    /// Produce requests seen since the plan was armed.
    produce_seen: u64,
    /// Cuts decided (a request marked) since the plan was armed.
    marked: u64,
    lost: Vec<LostAnswer>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    paused: AtomicBool,
    stopping: AtomicBool,
    produce_requests: AtomicU64,
    connections: AtomicU64,
    refused: AtomicU64,
    /// Both sockets of every connection, so dropping the proxy closes them.
    open: Mutex<Vec<(TcpStream, TcpStream)>>,
}

pub struct Proxy {
    listener: Option<TcpListener>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Binds the listening socket; nothing is accepted before [`forward_to`].
    ///
    /// [`forward_to`]: Proxy::forward_to
    pub fn bind() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        Proxy {
            listener: Some(listener),
            addr,
            shared: Arc::default(),
            accept: None,
        }
    }

    /// `host:port` for `bootstrap.servers` and `--advertised-listener`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Starts accepting clients and connecting each to `upstream`.
    pub fn forward_to(&mut self, upstream: &str) {
        let upstream: SocketAddr = upstream.parse().expect("the broker's address");
        let listener = self.listener.take().expect("forward_to once");
        let shared = self.shared.clone();
        self.accept = Some(
            std::thread::Builder::new()
                .name("proxy-accept".into())
                .spawn(move || accept_loop(listener, upstream, shared))
                .expect("spawn the proxy's accept thread"),
        );
    }

    /// Arms `plan`, restarting its counts.
    pub fn cut_produce(&self, plan: CutPlan) {
        assert!(plan.every > 0, "every must be at least 1");
        let mut s = self.shared.state.lock().unwrap();
        s.plan = Some(plan);
        s.produce_seen = 0;
        s.marked = 0;
    }

    /// No more cuts (connections already marked are still cut).
    pub fn disarm(&self) {
        self.shared.state.lock().unwrap().plan = None;
    }

    /// Accepts and forwards new connections again after a pausing cut.
    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
    }

    pub fn paused(&self) -> bool {
        self.shared.paused.load(Ordering::SeqCst)
    }

    /// Produce answers dropped so far, one per cut connection.
    pub fn lost(&self) -> Vec<LostAnswer> {
        self.shared.state.lock().unwrap().lost.clone()
    }

    /// Produce requests forwarded to the broker so far.
    pub fn produce_requests(&self) -> u64 {
        self.shared.produce_requests.load(Ordering::SeqCst)
    }

    /// Client connections accepted and forwarded so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Client connections closed at once because the proxy was paused.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        for (c, u) in self.shared.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.paused.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(broker) = TcpStream::connect(upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = broker.set_nodelay(true);
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let conn = Arc::new(Conn {
            client: client.try_clone().expect("clone a socket"),
            broker: broker.try_clone().expect("clone a socket"),
            marked: Mutex::default(),
        });
        shared.open.lock().unwrap().push((
            client.try_clone().expect("clone a socket"),
            broker.try_clone().expect("clone a socket"),
        ));
        let (c2, s2) = (conn.clone(), shared.clone());
        std::thread::spawn(move || requests(&c2, client, &s2));
        let s3 = shared.clone();
        std::thread::spawn(move || responses(&conn, broker, &s3));
    }
}

/// One proxied connection.
struct Conn {
    client: TcpStream,
    broker: TcpStream,
    /// Correlation id → api version of the Produce requests whose answers are
    /// to be lost.
    marked: Mutex<BTreeMap<i32, i16>>,
}

impl Conn {
    fn close(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.broker.shutdown(Shutdown::Both);
    }
}

/// Reads one length-prefixed Kafka frame (size included), or `None` at EOF.
fn read_frame(from: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    from.read_exact(&mut size).ok()?;
    let len = i32::from_be_bytes(size);
    if len < 0 {
        return None;
    }
    let mut frame = vec![0u8; 4 + len as usize];
    frame[..4].copy_from_slice(&size);
    from.read_exact(&mut frame[4..]).ok()?;
    Some(frame)
}

/// Client → broker: forwards every request; marks the Produce requests the
/// plan picks before they reach the broker, so the mark is there before any
/// answer can be.
fn requests(conn: &Conn, mut client: TcpStream, shared: &Shared) {
    let mut broker = &conn.broker;
    while let Some(frame) = read_frame(&mut client) {
        // Request header: i16 api_key, i16 api_version, i32 correlation_id.
        if frame.len() >= 12 && i16::from_be_bytes([frame[4], frame[5]]) == 0 {
            let version = i16::from_be_bytes([frame[6], frame[7]]);
            let correlation = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
            shared.produce_requests.fetch_add(1, Ordering::SeqCst);
            let mut s = shared.state.lock().unwrap();
            if let Some(plan) = s.plan {
                s.produce_seen += 1;
                if s.marked < plan.max_cuts && s.produce_seen.is_multiple_of(plan.every) {
                    s.marked += 1;
                    conn.marked.lock().unwrap().insert(correlation, version);
                }
            }
        }
        if broker.write_all(&frame).is_err() {
            break;
        }
    }
    conn.close();
}

/// Broker → client: forwards every answer, except that the answer to a marked
/// request is dropped and the connection closed.
fn responses(conn: &Conn, mut broker: TcpStream, shared: &Shared) {
    let mut client = &conn.client;
    while let Some(frame) = read_frame(&mut broker) {
        if frame.len() >= 8 {
            let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            let marked = conn.marked.lock().unwrap().remove(&correlation);
            if let Some(version) = marked {
                let plan = shared.state.lock().unwrap().plan;
                if plan.is_some_and(|p| p.then_pause) {
                    // Before the close, so the client's reconnect is refused.
                    shared.paused.store(true, Ordering::SeqCst);
                }
                shared.state.lock().unwrap().lost.push(LostAnswer {
                    api_version: version,
                    first_partition: first_partition(version, &frame[8..]),
                });
                break;
            }
        }
        if client.write_all(&frame).is_err() {
            break;
        }
    }
    conn.close();
}

/// The first partition's (error_code, base_offset) in a Produce response body
/// (after the correlation id).
fn first_partition(version: i16, body: &[u8]) -> Option<(i16, i64)> {
    let mut r = Reader(body);
    let flexible = version >= 9;
    if flexible {
        r.tagged_fields()?;
    }
    let topics = if flexible {
        r.uvarint()?.checked_sub(1)?
    } else {
        r.i32()? as u64
    };
    if topics == 0 {
        return None;
    }
    if version >= 13 {
        r.skip(16)?; // topic id
    } else if flexible {
        let n = r.uvarint()?.checked_sub(1)?;
        r.skip(n as usize)?;
    } else {
        let n = r.i16()?;
        r.skip(n.max(0) as usize)?;
    }
    let partitions = if flexible {
        r.uvarint()?.checked_sub(1)?
    } else {
        r.i32()? as u64
    };
    if partitions == 0 {
        return None;
    }
    let _index = r.i32()?;
    let error = r.i16()?;
    let base_offset = r.i64()?;
    Some((error, base_offset))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn tagged_fields(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            let _tag = self.uvarint()?;
            let n = self.uvarint()?;
            self.skip(n as usize)?;
        }
        Some(())
    }
}
