//! `target/cluster/state.json`: what a running cluster is, so every invocation
//! (`status`, `kill N`, `restart N`, `stop`, and the supervisor's own refresh)
//! acts on the same nodes.
//!
//! The file is the only channel between invocations: `restart N` rewrites it
//! with the new pid and the supervisor, which rereads it every refresh, shows
//! the new process. Writes go to a temporary file renamed over the old one, so a
//! reader sees the old state or the new, never half of one. Each node keeps the
//! exact argument list it was started with, so a restart cannot drift from the
//! original flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::layout::{Io, NodeId, NodeSpec, Ports};
use super::process::Proc;

/// Bumped when the layout changes incompatibly; older files are refused with a
/// hint rather than misread.
const VERSION: u64 = 1;

/// A cluster as the state file records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterState {
    /// The `chronik` binary every node runs.
    pub bin: PathBuf,
    /// The foreground `cargo xtask cluster` watching the nodes, if one was.
    pub supervisor: Option<Proc>,
    /// Every node, by id.
    pub nodes: Vec<NodeEntry>,
}

/// One node: its layout, its command line, and its latest process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEntry {
    /// Where it listens and keeps its files.
    pub spec: NodeSpec,
    /// The arguments after the binary, as first started.
    pub args: Vec<String>,
    /// The process last started for it (`None` if it never started).
    pub proc: Option<Proc>,
}

impl ClusterState {
    /// The entry of node `id`, or an error naming the nodes there are.
    pub fn node_mut(&mut self, id: NodeId) -> anyhow::Result<&mut NodeEntry> {
        let count = self.nodes.len();
        self.nodes
            .iter_mut()
            .find(|n| n.spec.id == id)
            .with_context(|| format!("no node {id}: the cluster has nodes 1 to {count}"))
    }

    /// The nodes whose recorded process still runs.
    pub fn live_nodes(&self) -> Vec<&NodeEntry> {
        self.nodes
            .iter()
            .filter(|n| n.proc.is_some_and(|p| p.is_alive()))
            .collect()
    }

    /// The state as JSON.
    pub fn to_json(&self) -> Value {
        let proc = |p: &Option<Proc>| {
            p.map_or(
                Value::Null,
                |p| json!({ "pid": p.pid, "start_time": p.start_time }),
            )
        };
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "id": n.spec.id.0,
                    "io": n.spec.io.as_str(),
                    "kafka": n.spec.ports.kafka.to_string(),
                    "raft": n.spec.ports.raft.to_string(),
                    "admin": n.spec.ports.admin.to_string(),
                    "data_dir": n.spec.data_dir,
                    "log": n.spec.log,
                    "args": n.args,
                    "process": proc(&n.proc),
                })
            })
            .collect();
        json!({
            "version": VERSION,
            "bin": self.bin,
            "supervisor": proc(&self.supervisor),
            "nodes": nodes,
        })
    }

    /// The inverse of [`ClusterState::to_json`].
    pub fn from_json(v: &Value) -> anyhow::Result<ClusterState> {
        let version = v.get("version").and_then(Value::as_u64);
        if version != Some(VERSION) {
            bail!("state file version {version:?}, this xtask writes {VERSION}");
        }
        let nodes = v
            .get("nodes")
            .and_then(Value::as_array)
            .context("no `nodes` array")?
            .iter()
            .enumerate()
            .map(|(i, n)| node_from_json(n).with_context(|| format!("nodes[{i}]")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ClusterState {
            bin: PathBuf::from(str_field(v, "bin")?),
            supervisor: proc_from_json(v.get("supervisor")).context("supervisor")?,
            nodes,
        })
    }

    /// Reads the state file; `None` if there is none (no cluster was started,
    /// or it was stopped).
    pub fn load(path: &Path) -> anyhow::Result<Option<ClusterState>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        };
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        ClusterState::from_json(&v).map(Some).with_context(|| {
            format!(
                "{}: not a cluster state file (delete it if no cluster runs)",
                path.display()
            )
        })
    }

    /// Writes the state file atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let text = serde_json::to_string_pretty(&self.to_json())? + "\n";
        std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("no string `{key}`"))
}

fn addr_field(v: &Value, key: &str) -> anyhow::Result<SocketAddr> {
    let s = str_field(v, key)?;
    s.parse()
        .with_context(|| format!("`{key}`: `{s}` is not IP:PORT"))
}

fn proc_from_json(v: Option<&Value>) -> anyhow::Result<Option<Proc>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(p) => {
            let num = |key: &str| {
                p.get(key)
                    .and_then(Value::as_u64)
                    .with_context(|| format!("no number `{key}`"))
            };
            let pid = u32::try_from(num("pid")?).context("pid out of range")?;
            Ok(Some(Proc {
                pid,
                start_time: num("start_time")?,
            }))
        }
    }
}

fn node_from_json(n: &Value) -> anyhow::Result<NodeEntry> {
    let id = n
        .get("id")
        .and_then(Value::as_u64)
        .and_then(|id| u32::try_from(id).ok())
        .context("no node number `id`")?;
    let io = str_field(n, "io")?;
    let args = n
        .get("args")
        .and_then(Value::as_array)
        .context("no `args` array")?
        .iter()
        .map(|a| {
            a.as_str()
                .map(String::from)
                .context("an arg is not a string")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(NodeEntry {
        spec: NodeSpec {
            id: NodeId(id),
            io: Io::parse(io).with_context(|| format!("unknown io `{io}`"))?,
            ports: Ports {
                kafka: addr_field(n, "kafka")?,
                raft: addr_field(n, "raft")?,
                admin: addr_field(n, "admin")?,
            },
            data_dir: PathBuf::from(str_field(n, "data_dir")?),
            log: PathBuf::from(str_field(n, "log")?),
        },
        args,
        proc: proc_from_json(n.get("process")).context("process")?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::layout::{plan, IoChoice};
    use super::*;

    fn sample() -> ClusterState {
        let specs = plan(2, IoChoice::Mixed, 0, Path::new("/w/target/cluster")).unwrap();
        ClusterState {
            bin: PathBuf::from("/w/target/release/chronik"),
            supervisor: Some(Proc {
                pid: 10,
                start_time: 99,
            }),
            nodes: specs
                .into_iter()
                .enumerate()
                .map(|(i, spec)| NodeEntry {
                    args: vec!["serve".into(), "--node-id".into(), spec.id.to_string()],
                    spec,
                    proc: (i == 0).then_some(Proc {
                        pid: 4242,
                        start_time: 123_456,
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn round_trips_through_json_text() {
        let state = sample();
        let text = serde_json::to_string_pretty(&state.to_json()).unwrap();
        let back = ClusterState::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = std::env::temp_dir().join(format!("xtask-cluster-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(ClusterState::load(&path).unwrap(), None);
        sample().save(&path).unwrap();
        assert_eq!(ClusterState::load(&path).unwrap(), Some(sample()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_foreign_file_is_refused_with_a_reason() {
        let mut v = sample().to_json();
        v["nodes"][1]["kafka"] = json!("nowhere");
        let err = format!("{:#}", ClusterState::from_json(&v).unwrap_err());
        assert!(
            err.contains("nodes[1]") && err.contains("not IP:PORT"),
            "{err}"
        );
        let err = format!("{:#}", ClusterState::from_json(&json!({})).unwrap_err());
        assert!(err.contains("version"), "{err}");
    }

    #[test]
    fn an_unknown_node_names_the_range() {
        let err = format!("{:#}", sample().node_mut(NodeId(5)).unwrap_err());
        assert_eq!(err, "no node 5: the cluster has nodes 1 to 2");
    }
}
