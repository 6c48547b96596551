//! The admin HTTP endpoint over real sockets, with a raw `TcpStream` client so
//! every byte on the wire is what the test says.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use broker::admin::{spawn_admin, AdminHandle, MAX_HEAD_BYTES};
use broker::metrics::Metrics;

/// A generous bound so a broken server fails the test instead of hanging it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

fn start(ready: bool) -> (AdminHandle, Arc<AtomicBool>, Arc<Metrics>) {
    let ready = Arc::new(AtomicBool::new(ready));
    let metrics = Arc::new(Metrics::new());
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let handle = spawn_admin(addr, Arc::clone(&ready), Arc::clone(&metrics)).unwrap();
    (handle, ready, metrics)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).unwrap();
    stream
}

/// Sends `request` and reads until the server closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    read_all(&mut stream)
}

fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .expect("server closes the connection");
    String::from_utf8(out).unwrap()
}

fn get(addr: SocketAddr, path: &str) -> String {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

/// Splits a response into status code, headers (lowercased names) and body.
fn parse(response: &str) -> (u16, Vec<(String, String)>, String) {
    let (head, body) = response.split_once("\r\n\r\n").expect("head ends");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(": ").expect("header");
            (n.to_ascii_lowercase(), v.to_string())
        })
        .collect::<Vec<_>>();
    let length: usize = header(&headers, "content-length").parse().unwrap();
    assert_eq!(length, body.len(), "Content-Length matches the body");
    assert_eq!(header(&headers, "connection"), "close");
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[test]
fn health_is_503_until_ready_then_200() {
    let (admin, ready, _) = start(false);
    let (status, _, body) = parse(&get(admin.local_addr(), "/health"));
    assert_eq!(status, 503);
    assert_eq!(body.trim(), "not ready");

    ready.store(true, Ordering::SeqCst);
    let (status, _, body) = parse(&get(admin.local_addr(), "/health"));
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "ok");
}

#[test]
fn metrics_serves_prometheus_text() {
    let (admin, _, metrics) = start(true);
    metrics.request("Produce", Duration::from_millis(2));
    metrics.bytes_in(512);
    let (status, headers, body) = parse(&get(admin.local_addr(), "/metrics?name[]=x"));
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").starts_with("text/plain; version=0.0.4"));
    assert!(body.contains("# TYPE chronik_requests_total counter\n"));
    assert!(body.contains("chronik_requests_total{api=\"Produce\"} 1\n"));
    assert!(body.contains("chronik_bytes_in_total 512\n"));
}

#[test]
fn head_request_gets_headers_only() {
    let (admin, _, _) = start(true);
    let response = exchange(admin.local_addr(), b"HEAD /metrics HTTP/1.1\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    assert!(body.is_empty());
}

#[test]
fn unknown_path_is_404_and_other_methods_405() {
    let (admin, _, _) = start(true);
    let (status, _, _) = parse(&get(admin.local_addr(), "/nope"));
    assert_eq!(status, 404);
    let response = exchange(admin.local_addr(), b"DELETE /health HTTP/1.1\r\n\r\n");
    let (status, headers, _) = parse(&response);
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), "GET, HEAD");
}

#[test]
fn garbage_is_400_and_closed() {
    let (admin, _, _) = start(true);
    for garbage in [
        &b"garbage\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", // a TLS hello
        b"GET /health HTTP/1.1\r\nbroken header\r\n\r\n",
    ] {
        let (status, _, _) = parse(&exchange(admin.local_addr(), garbage));
        assert_eq!(status, 400, "{garbage:?}");
    }
}

#[test]
fn oversized_head_is_431_and_closed() {
    let (admin, _, _) = start(true);
    let mut request = b"GET /health HTTP/1.1\r\nX-Padding: ".to_vec();
    request.resize(MAX_HEAD_BYTES * 2, b'a');
    let (status, _, _) = parse(&exchange(admin.local_addr(), &request));
    assert_eq!(status, 431);
}

#[test]
fn head_split_across_writes_is_reassembled() {
    let (admin, _, _) = start(true);
    let mut stream = connect(admin.local_addr());
    stream.write_all(b"GET /hea").unwrap();
    stream.flush().unwrap();
    stream.write_all(b"lth HTTP/1.1\r\nHost: x\r").unwrap();
    stream.write_all(b"\n\r\n").unwrap();
    let (status, _, _) = parse(&read_all(&mut stream));
    assert_eq!(status, 200);
}

#[test]
fn a_silent_client_does_not_block_others() {
    let (admin, _, _) = start(true);
    // Connections that never send a byte (and one that sent half a head) stay open
    // while another client is served.
    let idle: Vec<TcpStream> = (0..3).map(|_| connect(admin.local_addr())).collect();
    let mut partial = connect(admin.local_addr());
    partial.write_all(b"GET /health HT").unwrap();
    let (status, _, _) = parse(&get(admin.local_addr(), "/health"));
    assert_eq!(status, 200);
    // The half-sent request is still answered once it completes.
    partial.write_all(b"TP/1.1\r\n\r\n").unwrap();
    let (status, _, _) = parse(&read_all(&mut partial));
    assert_eq!(status, 200);
    drop(idle);
}

#[test]
fn client_closing_early_does_not_break_the_server() {
    let (admin, _, _) = start(true);
    let stream = connect(admin.local_addr());
    stream.shutdown(Shutdown::Both).unwrap();
    drop(stream);
    let (status, _, _) = parse(&get(admin.local_addr(), "/health"));
    assert_eq!(status, 200);
}

#[test]
fn shutdown_releases_the_port() {
    let (admin, _, _) = start(true);
    let addr = admin.local_addr();
    assert_ne!(addr.port(), 0, "the bound port is reported");
    admin.shutdown();
    // The listener is closed once shutdown returns: the port can be bound again
    // and nothing accepts on it any more.
    let rebound = std::net::TcpListener::bind(addr);
    assert!(rebound.is_ok(), "port still held: {rebound:?}");
}

#[test]
fn binding_a_taken_address_fails() {
    let (admin, _, _) = start(true);
    let second = spawn_admin(
        admin.local_addr(),
        Arc::new(AtomicBool::new(true)),
        Arc::new(Metrics::new()),
    );
    assert!(second.is_err());
}
