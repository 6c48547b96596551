//! Where each node of a local cluster listens and keeps its files.
//!
//! The ports are fixed rather than picked free, so a client config, a kcat line
//! or a Grafana scrape target written once keeps working across runs, and so
//! node N is always reachable at the same address after `restart N`. The scheme
//! starts from the broker's own defaults, one port up per node:
//!
//! | node N  | port                |
//! |---------|---------------------|
//! | kafka   | 9092 + K + N - 1    |
//! | raft    | 19092 + K + N - 1   |
//! | admin   | 9644 + K + N - 1    |
//!
//! where K is `--port-offset` (default 0), the way out when something else (a
//! real Kafka on 9092) holds a port. Everything binds 127.0.0.1 only.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Most nodes a local cluster may have: beyond this a laptop spends more time
/// electing than serving, and the port ranges stay far apart.
pub const MAX_NODES: u32 = 9;
/// Node 1's Kafka port (the broker's default `--kafka-listen`).
pub const KAFKA_BASE: u16 = 9092;
/// Node 1's Raft port (the broker's default `--raft-listen`).
pub const RAFT_BASE: u16 = 19092;
/// Node 1's admin port (the broker's default `--admin-listen`).
pub const ADMIN_BASE: u16 = 9644;
/// The `--cluster-id` every node of a local cluster gets.
pub const CLUSTER_ID: &str = "chronik-local";

/// A node's number in the cluster, which is also its `--node-id` (Kafka broker
/// id and Raft node id): 1 for the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One node's IO driver, `chronik serve --io`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    /// The async driver (`io-tokio`).
    Tokio,
    /// The blocking driver (`io-sync`).
    Sync,
}

impl Io {
    /// The `--io` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Io::Tokio => "tokio",
            Io::Sync => "sync",
        }
    }

    /// The inverse of [`Io::as_str`].
    pub fn parse(s: &str) -> Option<Io> {
        match s {
            "tokio" => Some(Io::Tokio),
            "sync" => Some(Io::Sync),
            _ => None,
        }
    }
}

/// `cargo xtask cluster --io`: one driver for all, or both side by side, which
/// is how a cluster shows that the drivers interoperate on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoChoice {
    /// Every node on tokio.
    Tokio,
    /// Every node on the blocking driver.
    Sync,
    /// Odd nodes tokio, even nodes sync.
    Mixed,
}

impl IoChoice {
    /// Parses `tokio`, `sync` or `mixed`.
    pub fn parse(s: &str) -> Option<IoChoice> {
        match s {
            "tokio" => Some(IoChoice::Tokio),
            "sync" => Some(IoChoice::Sync),
            "mixed" => Some(IoChoice::Mixed),
            _ => None,
        }
    }

    /// The driver node `id` runs.
    pub fn for_node(self, id: NodeId) -> Io {
        match self {
            IoChoice::Tokio => Io::Tokio,
            IoChoice::Sync => Io::Sync,
            IoChoice::Mixed if id.0 % 2 == 1 => Io::Tokio,
            IoChoice::Mixed => Io::Sync,
        }
    }
}

/// The three listeners of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// `--kafka-listen`: where clients connect.
    pub kafka: SocketAddr,
    /// `--raft-listen`: where the other nodes connect.
    pub raft: SocketAddr,
    /// `--admin-listen`: `/health` and `/metrics`.
    pub admin: SocketAddr,
}

impl Ports {
    /// The scheme of the module docs for node `id` shifted by `offset`; fails
    /// if a port would pass 65535.
    pub fn of(id: NodeId, offset: u16) -> anyhow::Result<Ports> {
        let port = |base: u16| -> anyhow::Result<SocketAddr> {
            let p = u32::from(base) + u32::from(offset) + id.0 - 1;
            let p = u16::try_from(p).ok().with_context(|| {
                format!("node {id}: port {p} is past 65535; use a smaller --port-offset")
            })?;
            Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, p)))
        };
        Ok(Ports {
            kafka: port(KAFKA_BASE)?,
            raft: port(RAFT_BASE)?,
            admin: port(ADMIN_BASE)?,
        })
    }

    /// Each listener with its name, for messages.
    pub fn named(&self) -> [(&'static str, SocketAddr); 3] {
        [
            ("kafka", self.kafka),
            ("raft", self.raft),
            ("admin", self.admin),
        ]
    }
}

/// Everything fixed about one node before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// Its number and `--node-id`.
    pub id: NodeId,
    /// Its driver.
    pub io: Io,
    /// Its listeners.
    pub ports: Ports,
    /// `--data-dir`: `<cluster dir>/node-N`.
    pub data_dir: PathBuf,
    /// Where its stdout and stderr go: `<cluster dir>/node-N.log`.
    pub log: PathBuf,
}

/// The nodes of a cluster of `nodes` under `dir`. Their listeners never
/// collide: the three bases are further apart than [`MAX_NODES`].
pub fn plan(nodes: u32, io: IoChoice, offset: u16, dir: &Path) -> anyhow::Result<Vec<NodeSpec>> {
    (1..=nodes)
        .map(|n| {
            let id = NodeId(n);
            Ok(NodeSpec {
                id,
                io: io.for_node(id),
                ports: Ports::of(id, offset)?,
                data_dir: dir.join(format!("node-{n}")),
                log: dir.join(format!("node-{n}.log")),
            })
        })
        .collect()
}

/// `--peers`: every node's Raft address, `1@127.0.0.1:19092,2@...`.
pub fn peers(specs: &[NodeSpec]) -> String {
    specs
        .iter()
        .map(|s| format!("{}@{}", s.id, s.ports.raft))
        .collect::<Vec<_>>()
        .join(",")
}

/// The Kafka `bootstrap.servers` of the whole cluster.
pub fn bootstrap(specs: &[NodeSpec]) -> String {
    specs
        .iter()
        .map(|s| s.ports.kafka.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The `chronik` arguments that start `spec` as a member of a cluster whose
/// `--peers` is `peers`, with `extra` flags appended (so they win over ours).
pub fn serve_args(spec: &NodeSpec, peers: &str, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = [
        "serve",
        "--node-id",
        &spec.id.to_string(),
        "--data-dir",
        &spec.data_dir.to_string_lossy(),
        "--kafka-listen",
        &spec.ports.kafka.to_string(),
        "--raft-listen",
        &spec.ports.raft.to_string(),
        "--admin-listen",
        &spec.ports.admin.to_string(),
        "--peers",
        peers,
        "--io",
        spec.io.as_str(),
        "--cluster-id",
        CLUSTER_ID,
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().cloned());
    args
}

/// The listeners of `specs` that something already holds, with whose they
/// would have been: a cluster refuses to start half-bound.
pub fn taken_ports(specs: &[NodeSpec]) -> Vec<String> {
    specs
        .iter()
        .flat_map(|s| s.ports.named().map(move |(name, addr)| (s.id, name, addr)))
        .filter(|(_, _, addr)| TcpListener::bind(addr).is_err())
        .map(|(id, name, addr)| format!("{addr} (node {id} {name})"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_follow_the_scheme() {
        let p = Ports::of(NodeId(3), 0).unwrap();
        assert_eq!(p.kafka.to_string(), "127.0.0.1:9094");
        assert_eq!(p.raft.to_string(), "127.0.0.1:19094");
        assert_eq!(p.admin.to_string(), "127.0.0.1:9646");
        let p = Ports::of(NodeId(1), 1000).unwrap();
        assert_eq!(p.kafka.to_string(), "127.0.0.1:10092");
        assert_eq!(p.raft.to_string(), "127.0.0.1:20092");
        assert_eq!(p.admin.to_string(), "127.0.0.1:10644");
    }

    #[test]
    fn ports_past_65535_are_refused() {
        let err = Ports::of(NodeId(2), 46_443).unwrap_err();
        assert!(format!("{err:#}").contains("past 65535"), "{err:#}");
    }

    #[test]
    fn the_largest_cluster_has_distinct_ports() {
        for offset in [0, 45_000] {
            let specs = plan(MAX_NODES, IoChoice::Tokio, offset, Path::new("/c")).unwrap();
            let mut all: Vec<SocketAddr> = specs
                .iter()
                .flat_map(|s| s.ports.named().map(|(_, a)| a))
                .collect();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), 3 * MAX_NODES as usize);
        }
    }

    #[test]
    fn mixed_alternates_drivers() {
        let specs = plan(4, IoChoice::Mixed, 0, Path::new("/c")).unwrap();
        let ios: Vec<&str> = specs.iter().map(|s| s.io.as_str()).collect();
        assert_eq!(ios, ["tokio", "sync", "tokio", "sync"]);
        assert_eq!(specs[1].data_dir, Path::new("/c/node-2"));
        assert_eq!(specs[1].log, Path::new("/c/node-2.log"));
    }

    #[test]
    fn peers_bootstrap_and_serve_args() {
        let specs = plan(3, IoChoice::Sync, 0, Path::new("/c")).unwrap();
        let peers = peers(&specs);
        assert_eq!(
            peers,
            "1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094"
        );
        assert_eq!(
            bootstrap(&specs),
            "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
        );
        let extra = vec!["--log-level".to_string(), "debug".to_string()];
        assert_eq!(
            serve_args(&specs[1], &peers, &extra).join(" "),
            "serve --node-id 2 --data-dir /c/node-2 --kafka-listen 127.0.0.1:9093 \
             --raft-listen 127.0.0.1:19093 --admin-listen 127.0.0.1:9645 \
             --peers 1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094 \
             --io sync --cluster-id chronik-local --log-level debug"
        );
    }

    #[test]
    fn a_held_port_is_reported_with_its_owner() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let spec = NodeSpec {
            id: NodeId(2),
            io: Io::Tokio,
            ports: Ports {
                kafka: addr,
                raft: addr,
                admin: addr,
            },
            data_dir: PathBuf::new(),
            log: PathBuf::new(),
        };
        let taken = taken_ports(&[spec]);
        assert_eq!(taken.len(), 3);
        assert_eq!(taken[0], format!("{addr} (node 2 kafka)"));
    }
}
