//! A minimal Kafka client, Metadata v1 and CreateTopics v2 by hand, for
//! tests and tools that must ask one particular node (librdkafka picks its
//! own) and read what it says as it is: the end-to-end cluster tests and
//! `cargo xtask chaos` (which asks for the controller).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Read timeout of one Metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// CreateTopics' `timeout_ms`; the socket waits a little longer.
const CREATE_TIMEOUT: Duration = Duration::from_secs(20);

/// One node's Metadata answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataView {
    /// The brokers it lists.
    pub brokers: BTreeSet<u32>,
    /// The controller it names, if any.
    pub controller: Option<u32>,
    /// Topics listed without a topic error, partitions in index order.
    pub topics: BTreeMap<String, Vec<PartitionView>>,
}

/// One partition in a Metadata answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub leader: Option<u32>,
    pub replicas: Vec<u32>,
    pub isr: Vec<u32>,
}

const METADATA: i16 = 3;
const CREATE_TOPICS: i16 = 19;

/// Asks the node at `addr` for the metadata of every topic (Metadata v1 with
/// a null topic list, which creates nothing).
pub fn metadata(addr: SocketAddr) -> std::io::Result<MetadataView> {
    let body = (-1i32).to_be_bytes();
    let answer = call(addr, METADATA, 1, &body, METADATA_TIMEOUT)?;
    let mut r = Reader(&answer);
    let mut brokers = BTreeSet::new();
    for _ in 0..r.len()? {
        let id = r.i32()?;
        r.string()?; // host
        r.i32()?; // port
        r.string()?; // rack
        brokers.insert(node(id).ok_or_else(|| bad("a broker id below 0"))?);
    }
    let controller = node(r.i32()?);
    let mut topics = BTreeMap::new();
    for _ in 0..r.len()? {
        let error = r.i16()?;
        let name = r.string()?.unwrap_or_default();
        r.i8()?; // is_internal
        let mut partitions = BTreeMap::new();
        for _ in 0..r.len()? {
            r.i16()?; // error: LEADER_NOT_AVAILABLE comes with leader -1
            let index = r.i32()?;
            let leader = node(r.i32()?);
            let replicas = r.nodes()?;
            let isr = r.nodes()?;
            partitions.insert(
                index,
                PartitionView {
                    leader,
                    replicas,
                    isr,
                },
            );
        }
        if error == 0 {
            topics.insert(name, partitions.into_values().collect());
        }
    }
    Ok(MetadataView {
        brokers,
        controller,
        topics,
    })
}

/// Sends CreateTopics v2 for one topic to the node at `addr` (which forwards
/// it to the controller unless it is the controller) and returns the topic's
/// result: `Err` names the error code and message.
pub fn create_topic(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
) -> Result<(), String> {
    let mut body = Vec::new();
    body.extend(1i32.to_be_bytes());
    put_string(&mut body, topic);
    body.extend(partitions.to_be_bytes());
    body.extend(replication_factor.to_be_bytes());
    body.extend(0i32.to_be_bytes()); // assignments
    body.extend(0i32.to_be_bytes()); // configs
    body.extend((CREATE_TIMEOUT.as_millis() as i32).to_be_bytes());
    body.push(0); // validate_only
    let socket_timeout = CREATE_TIMEOUT + Duration::from_secs(15);
    let answer = call(addr, CREATE_TOPICS, 2, &body, socket_timeout)
        .map_err(|e| format!("CreateTopics to {addr}: {e}"))?;
    let parse = || -> std::io::Result<(String, i16, Option<String>)> {
        let mut r = Reader(&answer);
        r.i32()?; // throttle_time_ms
        if r.len()? != 1 {
            return Err(bad("not one topic in the answer"));
        }
        Ok((r.string()?.unwrap_or_default(), r.i16()?, r.string()?))
    };
    match parse().map_err(|e| format!("CreateTopics answer: {e}"))? {
        (name, _, _) if name != topic => Err(format!("answer for {name:?}, not {topic:?}")),
        (_, 0, _) => Ok(()),
        (_, code, message) => Err(format!("error {code}: {}", message.unwrap_or_default())),
    }
}

/// A Kafka id as a node id (-1: none).
fn node(id: i32) -> Option<u32> {
    u32::try_from(id).ok()
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend((s.len() as i16).to_be_bytes());
    buf.extend(s.as_bytes());
}

/// One request with a v1 header on a fresh connection; returns the answer
/// after its correlation id.
fn call(
    addr: SocketAddr,
    api_key: i16,
    version: i16,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    const CORRELATION: i32 = 7;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut frame = Vec::with_capacity(body.len() + 40);
    frame.extend(api_key.to_be_bytes());
    frame.extend(version.to_be_bytes());
    frame.extend(CORRELATION.to_be_bytes());
    put_string(&mut frame, "chronik-cluster-test");
    frame.extend(body);
    s.write_all(&(frame.len() as i32).to_be_bytes())?;
    s.write_all(&frame)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = usize::try_from(i32::from_be_bytes(len)).map_err(|_| bad("negative size"))?;
    if !(4..=64 << 20).contains(&len) {
        return Err(bad("implausible answer size"));
    }
    let mut answer = vec![0u8; len];
    s.read_exact(&mut answer)?;
    if answer[..4] != CORRELATION.to_be_bytes() {
        return Err(bad("wrong correlation id"));
    }
    answer.drain(..4);
    Ok(answer)
}

/// Reads big-endian Kafka fields off the front of a buffer.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        if self.0.len() < N {
            return Err(bad("answer ends early"));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("N bytes"))
    }

    fn i8(&mut self) -> std::io::Result<i8> {
        self.take::<1>().map(i8::from_be_bytes)
    }

    fn i16(&mut self) -> std::io::Result<i16> {
        self.take::<2>().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> std::io::Result<i32> {
        self.take::<4>().map(i32::from_be_bytes)
    }

    /// An array's length (a null array is empty).
    fn len(&mut self) -> std::io::Result<usize> {
        Ok(usize::try_from(self.i32()?).unwrap_or(0))
    }

    /// A nullable string.
    fn string(&mut self) -> std::io::Result<Option<String>> {
        let Ok(n) = usize::try_from(self.i16()?) else {
            return Ok(None);
        };
        if self.0.len() < n {
            return Err(bad("string runs past the answer"));
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(Some(String::from_utf8_lossy(s).into_owned()))
    }

    /// An array of node ids.
    fn nodes(&mut self) -> std::io::Result<Vec<u32>> {
        (0..self.len()?)
            .map(|_| Ok(node(self.i32()?).unwrap_or(u32::MAX)))
            .collect()
    }
}
