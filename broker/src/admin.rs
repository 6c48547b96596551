//! The admin HTTP endpoint: /health and /metrics.
//!
//! A deliberately tiny HTTP/1.1 server on `--admin-listen`, built on `std::net`
//! and threads so it runs the same under either IO driver (it must not need a
//! tokio runtime, and must not sit in the sync driver's poll loop). It serves:
//!
//! - `GET /health`: 200 `ok` once the node serves Kafka requests (the broker sets
//!   the shared ready flag), 503 before; load balancers and `cargo xtask cluster`
//!   poll it;
//! - `GET /metrics`: the Prometheus text exposition of [`Metrics`];
//! - `HEAD` of either: the same status and headers without the body;
//! - anything else: 404 (unknown path) or 405 (other method); a malformed request
//!   gets 400, a request head over [`MAX_HEAD_BYTES`] gets 431.
//!
//! Every response closes the connection (`Connection: close`), which scrapers and
//! health checkers handle and which keeps the server stateless. Each connection
//! gets its own thread with a deadline on the whole request head, so a slow or
//! idle client holds only its own thread, and at most [`MAX_CONNECTIONS`] are
//! served at once: beyond that new connections are closed unanswered.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// The largest request head (request line and headers) read; a longer one gets
/// 431. Health checks and scrapes send a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// How many connections are served at once; more are closed unanswered so a
/// flood of clients cannot exhaust threads.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client may take to send its whole request head.
const HEAD_DEADLINE: Duration = Duration::from_secs(10);

/// How long writing a response may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// After an error response, how long unread request bytes are drained before
/// closing, so the client sees the response rather than a TCP reset.
const LINGER: Duration = Duration::from_millis(500);

/// A running admin endpoint. Dropping it stops the server as
/// [`AdminHandle::shutdown`] does.
pub struct AdminHandle {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl AdminHandle {
    /// The address actually bound (the OS-chosen port when `--admin-listen` had
    /// port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits for the accept thread to exit.
    /// Requests already being served finish on their own threads.
    pub fn shutdown(mut self) {
        self.stop_acceptor();
    }

    fn stop_acceptor(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection of our own; it sees the
        // flag and exits. If the connect fails the listener is gone already.
        let _ = TcpStream::connect_timeout(&wake_addr(self.local_addr), Duration::from_secs(1));
        let _ = acceptor.join();
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.stop_acceptor();
    }
}

/// Binds `addr` (and only that address) and serves the admin endpoint on a
/// background thread. `ready` is the flag the broker sets once it serves Kafka
/// requests; `metrics` is what `/metrics` renders.
pub fn spawn_admin(
    addr: SocketAddr,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> io::Result<AdminHandle> {
    let listener = TcpListener::bind(addr)?;
    let local_addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("chronik-admin".into())
            .spawn(move || accept_loop(listener, &stop, &ready, &metrics))?
    };
    Ok(AdminHandle {
        local_addr,
        stop,
        acceptor: Some(acceptor),
    })
}

/// Where to connect to reach a listener bound to `addr` (an unspecified address
/// is reached through loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

fn accept_loop(
    listener: TcpListener,
    stop: &AtomicBool,
    ready: &Arc<AtomicBool>,
    metrics: &Arc<Metrics>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else {
            // Accept errors (a connection reset before accept, fd exhaustion) are
            // per connection; keep serving.
            continue;
        };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            continue; // dropping the stream closes it
        }
        let (ready, metrics, finished) =
            (Arc::clone(ready), Arc::clone(metrics), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("chronik-admin-conn".into())
            .spawn(move || {
                serve(stream, &ready, &metrics);
                finished.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Why a request head could not be read.
enum HeadError {
    /// The head is longer than [`MAX_HEAD_BYTES`].
    TooLarge,
    /// The client closed, timed out or the socket failed: nothing to answer.
    Gone,
}

/// Serves one request on `stream` and closes it.
fn serve(mut stream: TcpStream, ready: &AtomicBool, metrics: &Metrics) {
    if stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err() {
        return;
    }
    let response = match read_head(&mut stream) {
        Ok(head) => match parse_head(&head) {
            Some((method, path)) => route(method, path, ready, metrics),
            None => Response::text(400, "Bad Request", "malformed request\n"),
        },
        Err(HeadError::TooLarge) => Response::text(
            431,
            "Request Header Fields Too Large",
            "request head too large\n",
        ),
        Err(HeadError::Gone) => return,
    };
    let ok = response.status < 400;
    if stream.write_all(&response.bytes).is_err() || ok {
        return;
    }
    // The request may have unread bytes; closing now would reset the connection
    // and could destroy the response in flight. Half-close and drain briefly.
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Reads up to the blank line that ends the request head, within
/// [`HEAD_DEADLINE`] and [`MAX_HEAD_BYTES`]. Bytes after the head (a body) are
/// ignored.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(HeadError::Gone)?;
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| HeadError::Gone)?;
        // Never read past one byte over the limit: that byte proves "too large".
        let want = buf.len().min(MAX_HEAD_BYTES + 1 - head.len());
        let n = match stream.read(&mut buf[..want]) {
            Ok(0) => return Err(HeadError::Gone),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Gone),
        };
        let scan_from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find_blank_line(&head[scan_from..]) {
            head.truncate(scan_from + end);
            return Ok(head);
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The offset just past the first `\r\n\r\n` in `bytes`.
fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The method and path (query string removed) of a well-formed request head,
/// or `None` if it is not HTTP/1.x.
fn parse_head(head: &[u8]) -> Option<(&str, &str)> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.strip_suffix("\r\n\r\n")?.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
        || !matches!(version, "HTTP/1.0" | "HTTP/1.1")
    {
        return None;
    }
    for header in lines {
        let (name, _) = header.split_once(':')?;
        if name.is_empty()
            || name
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return None;
        }
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Some((method, path))
}

/// The response to a well-formed request.
fn route(method: &str, path: &str, ready: &AtomicBool, metrics: &Metrics) -> Response {
    let head_only = method == "HEAD";
    let response = match path {
        "/health" | "/metrics" if method != "GET" && !head_only => {
            return Response::text(405, "Method Not Allowed", "use GET\n")
                .with_header("Allow: GET, HEAD")
        }
        "/health" if ready.load(Ordering::SeqCst) => Response::text(200, "OK", "ok\n"),
        "/health" => Response::text(503, "Service Unavailable", "not ready\n"),
        "/metrics" => Response::new(
            200,
            "OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &metrics.render(),
        ),
        _ => Response::text(404, "Not Found", "not found\n"),
    };
    if head_only {
        response.without_body()
    } else {
        response
    }
}

/// A complete serialized HTTP response.
struct Response {
    status: u16,
    /// Status line and headers, without the blank line that ends them.
    head: String,
    body: Vec<u8>,
    bytes: Vec<u8>,
}

impl Response {
    fn new(status: u16, reason: &str, content_type: &str, body: &str) -> Response {
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        Response::assemble(status, head, body.as_bytes().to_vec())
    }

    fn text(status: u16, reason: &str, body: &str) -> Response {
        Response::new(status, reason, "text/plain; charset=utf-8", body)
    }

    fn with_header(self, header: &str) -> Response {
        let head = format!("{}{header}\r\n", self.head);
        Response::assemble(self.status, head, self.body)
    }

    /// The response to HEAD: same headers (Content-Length included), no body.
    fn without_body(self) -> Response {
        Response::assemble(self.status, self.head, Vec::new())
    }

    fn assemble(status: u16, head: String, body: Vec<u8>) -> Response {
        let mut bytes = Vec::with_capacity(head.len() + 2 + body.len());
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&body);
        Response {
            status,
            head,
            body,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_head_accepts_http1_and_strips_the_query() {
        let head = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
        assert_eq!(parse_head(head), Some(("GET", "/metrics")));
        assert_eq!(
            parse_head(b"HEAD /health HTTP/1.0\r\n\r\n"),
            Some(("HEAD", "/health"))
        );
    }

    #[test]
    fn parse_head_refuses_malformed_heads() {
        for bad in [
            &b"garbage\r\n\r\n"[..],
            b"GET /health\r\n\r\n",
            b"GET /health HTTP/2.0\r\n\r\n",
            b"get /health HTTP/1.1\r\n\r\n",
            b"GET health HTTP/1.1\r\n\r\n",
            b"GET /health HTTP/1.1 extra\r\n\r\n",
            b"GET /health HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /health HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_head(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn head_responses_keep_headers_and_drop_the_body() {
        let ready = AtomicBool::new(true);
        let r = route("HEAD", "/health", &ready, &Metrics::new());
        let text = String::from_utf8(r.bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 3\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn other_methods_on_known_paths_get_405() {
        let r = route("POST", "/metrics", &AtomicBool::new(true), &Metrics::new());
        assert_eq!(r.status, 405);
        assert!(String::from_utf8(r.bytes)
            .unwrap()
            .contains("Allow: GET, HEAD\r\n"));
    }

    #[test]
    fn wake_addr_maps_unspecified_to_loopback() {
        let v4: SocketAddr = "0.0.0.0:9644".parse().unwrap();
        assert_eq!(
            wake_addr(v4),
            "127.0.0.1:9644".parse::<SocketAddr>().unwrap()
        );
        let v6: SocketAddr = "[::]:9644".parse().unwrap();
        assert_eq!(wake_addr(v6), "[::1]:9644".parse::<SocketAddr>().unwrap());
        let exact: SocketAddr = "127.0.0.2:1".parse().unwrap();
        assert_eq!(wake_addr(exact), exact);
    }
}
