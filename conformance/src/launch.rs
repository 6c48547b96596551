//! What starting a real `chronik` process needs, shared by the real-client
//! tests and `cargo xtask bench`: free loopback ports, the admin endpoint's
//! health answer, and polling a condition until a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How often [`poll_until`] looks again.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// A loopback address nobody listens on right now.
pub fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The status code of a plain HTTP/1.0 GET of `path` (`/health` answers 200
/// once a node serves Kafka requests).
pub fn http_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP answer {text:?}")))
}

/// Calls `f` until it returns `Some`, or returns `None` once `timeout` has
/// passed: a wait on a condition with a deadline, never a fixed sleep.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Waits until the node behind `admin` answers `/health` with 200. Fails with
/// the reason if `child` exits first or `timeout` passes.
pub fn wait_healthy(
    child: &mut std::process::Child,
    admin: SocketAddr,
    timeout: Duration,
) -> Result<(), String> {
    let mut last = String::from("no answer yet");
    let mut exited = None;
    let healthy = poll_until(timeout, || {
        match child.try_wait() {
            Ok(Some(status)) => {
                exited = Some(status);
                return Some(false);
            }
            Ok(None) => {}
            Err(e) => last = format!("cannot poll the process: {e}"),
        }
        match http_status(admin, "/health") {
            Ok(200) => Some(true),
            Ok(code) => {
                last = format!("HTTP {code}");
                None
            }
            Err(e) => {
                last = e.to_string();
                None
            }
        }
    });
    match (healthy, exited) {
        (Some(true), _) => Ok(()),
        (_, Some(status)) => Err(format!("exited before becoming healthy: {status}")),
        _ => Err(format!("not healthy after {timeout:?} (last: {last})")),
    }
}
