//! What a node says about itself on its admin port: `/health` for readiness and
//! the Raft gauges of `/metrics`, boiled down to the table's columns.
//!
//! Each node is asked about itself only: the role it reports for the metadata
//! group and the groups it reports leading. A partitioned node may still believe
//! it leads; showing each node's own belief is exactly what makes such a split
//! visible in the table.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

use super::layout::NodeId;

/// The Raft group of the cluster metadata (topics, brokers, assignments).
pub const METADATA_GROUP: &str = "__cluster_metadata-0";
/// How long one admin request may take; a stopped (SIGSTOP) node then shows as
/// not ready within a refresh instead of freezing the table.
const TIMEOUT: Duration = Duration::from_millis(800);
/// The most of a `/metrics` answer read (a node with thousands of partitions
/// stays far below this).
const MAX_BODY: u64 = 32 << 20;

/// A plain HTTP/1.0 GET: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(MAX_BODY).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("GET {path}: no end of headers"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("GET {path}: no status code"))?;
    Ok((code, body.to_string()))
}

/// One sample of the Prometheus text format: `name{label="v",...} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// The labels, unescaped, in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample of a text exposition. Comments, blank lines and lines that do
/// not parse are skipped: a metric the broker adds later must not break the
/// table.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        (labels, rest) = parse_labels(body)?;
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` (the text after `{`): the labels, and what follows
/// the closing brace.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after_eq) = s.split_once('=')?;
        let quoted = after_eq.strip_prefix('"')?;
        let mut chars = quoted.char_indices();
        let mut value = String::new();
        let close = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_string(), value));
        s = &quoted[close + 1..];
    }
}

/// A node's role in a Raft group, as the node itself reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Its leader gauge names itself.
    Leader,
    /// Its leader gauge names another node.
    Follower,
    /// No leader known (gauge 0), or no such group on the node.
    Unknown,
}

impl Role {
    /// A table cell.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Unknown => "-",
        }
    }
}

/// The Raft figures of one node's `/metrics` that the table shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftView {
    /// Its role in [`METADATA_GROUP`].
    pub metadata_role: Role,
    /// Its term of [`METADATA_GROUP`], if it has the group.
    pub metadata_term: Option<u64>,
    /// The groups other than [`METADATA_GROUP`] whose leader gauge is `me`.
    pub partitions_led: usize,
    /// `chronik_isr_shrinks_total` summed over its series; `None` while the
    /// broker does not export it.
    pub isr_shrinks: Option<u64>,
}

impl RaftView {
    /// Reads the view of node `me` from its own samples.
    pub fn of(samples: &[Sample], me: NodeId) -> RaftView {
        let is_me = |v: f64| v == f64::from(me.0);
        let leaders = samples.iter().filter(|s| s.name == "chronik_raft_leader");
        let mut metadata_role = Role::Unknown;
        let mut partitions_led = 0;
        for s in leaders {
            if s.label("group") == Some(METADATA_GROUP) {
                metadata_role = if is_me(s.value) {
                    Role::Leader
                } else if s.value >= 1.0 {
                    Role::Follower
                } else {
                    Role::Unknown
                };
            } else if is_me(s.value) {
                partitions_led += 1;
            }
        }
        let count = |v: f64| (v.is_finite() && v >= 0.0).then_some(v as u64);
        let metadata_term = samples
            .iter()
            .find(|s| s.name == "chronik_raft_term" && s.label("group") == Some(METADATA_GROUP))
            .and_then(|s| count(s.value));
        let shrinks: Vec<u64> = samples
            .iter()
            .filter(|s| s.name == "chronik_isr_shrinks_total")
            .filter_map(|s| count(s.value))
            .collect();
        RaftView {
            metadata_role,
            metadata_term,
            partitions_led,
            isr_shrinks: (!shrinks.is_empty()).then(|| shrinks.iter().sum()),
        }
    }
}

/// Whether a node's process runs and serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// `/health` answers 200.
    Up,
    /// The process runs but `/health` does not answer 200 (starting, stopped
    /// with SIGSTOP, or unwell).
    Unready,
    /// No process.
    Down,
}

impl Health {
    /// A table cell.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Unready => "unready",
            Health::Down => "down",
        }
    }
}

/// What one look at a node found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Process and readiness.
    pub health: Health,
    /// Its Raft figures, if `/metrics` answered.
    pub raft: Option<RaftView>,
}

impl Observation {
    /// Looks at the node behind `admin`, given whether its process runs.
    pub fn take(alive: bool, id: NodeId, admin: SocketAddr) -> Observation {
        if !alive {
            return Observation {
                health: Health::Down,
                raft: None,
            };
        }
        let health = match http_get(admin, "/health") {
            Ok((200, _)) => Health::Up,
            _ => Health::Unready,
        };
        let raft = match http_get(admin, "/metrics") {
            Ok((200, body)) => Some(RaftView::of(&parse_samples(&body), id)),
            _ => None,
        };
        Observation { health, raft }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `broker/src/metrics.rs` renders, with the gauges of a node 2
    /// that leads the metadata group and two of four partitions.
    const NODE2: &str = r#"# HELP chronik_requests_total Kafka requests handled, by API.
# TYPE chronik_requests_total counter
chronik_requests_total{api="Produce"} 17
# HELP chronik_raft_term Current Raft term of a group.
# TYPE chronik_raft_term gauge
chronik_raft_term{group="__cluster_metadata-0"} 4
chronik_raft_term{group="orders-0"} 2
# HELP chronik_raft_leader Node id of a group's leader, 0 if unknown.
# TYPE chronik_raft_leader gauge
chronik_raft_leader{group="__cluster_metadata-0"} 2
chronik_raft_leader{group="orders-0"} 2
chronik_raft_leader{group="orders-1"} 1
chronik_raft_leader{group="orders-2"} 0
chronik_raft_leader{group="__consumer_offsets-7"} 2
chronik_raft_leader{group="odd \"name\", with} comma"} 2
chronik_isr_shrinks_total{topic="orders",partition="1"} 3
chronik_isr_shrinks_total{topic="orders",partition="2"} 1
"#;

    #[test]
    fn samples_with_and_without_labels() {
        let s = parse_samples("up 1\nx{a=\"1\", b=\"q\\\"\\n\\\\\"} 2.5 1700000000\n# c\n\nbad{ 3");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "up");
        assert!(s[0].labels.is_empty());
        assert_eq!(s[1].label("a"), Some("1"));
        assert_eq!(s[1].label("b"), Some("q\"\n\\"));
        assert_eq!(s[1].value, 2.5);
    }

    #[test]
    fn the_metadata_leader_and_its_partitions() {
        let view = RaftView::of(&parse_samples(NODE2), NodeId(2));
        assert_eq!(
            view,
            RaftView {
                metadata_role: Role::Leader,
                metadata_term: Some(4),
                // orders-0, __consumer_offsets-7 and the oddly named group; not
                // the metadata group, not orders-1 (node 1's), not orders-2.
                partitions_led: 3,
                isr_shrinks: Some(4),
            }
        );
    }

    #[test]
    fn a_follower_and_a_node_that_knows_no_leader() {
        let view = RaftView::of(&parse_samples(NODE2), NodeId(1));
        assert_eq!(view.metadata_role, Role::Follower);
        assert_eq!(view.partitions_led, 1);
        let none = NODE2.replace(
            "chronik_raft_leader{group=\"__cluster_metadata-0\"} 2",
            "chronik_raft_leader{group=\"__cluster_metadata-0\"} 0",
        );
        let view = RaftView::of(&parse_samples(&none), NodeId(1));
        assert_eq!(view.metadata_role, Role::Unknown);
    }

    #[test]
    fn todays_single_node_metrics() {
        // No metadata group and no ISR counter yet: both show as unknown.
        let view = RaftView::of(
            &parse_samples("chronik_raft_leader{group=\"t-0\"} 1\n"),
            NodeId(1),
        );
        assert_eq!(
            view,
            RaftView {
                metadata_role: Role::Unknown,
                metadata_term: None,
                partitions_led: 1,
                isr_shrinks: None,
            }
        );
    }
}
