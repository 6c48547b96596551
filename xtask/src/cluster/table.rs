//! The cluster as text: the table (`status`, the live view, the final summary)
//! and the one-line form written instead of a redrawn table when stdout is not
//! a terminal. Pure functions of the state and the observations, so the tests
//! pin the exact text.

use super::process::Stopped;
use super::scrape::{Health, Observation};
use super::state::ClusterState;
use crate::table;

/// The table, one row per node. `stopped`, when given, adds how each node
/// went down (the final summary).
pub fn render(state: &ClusterState, obs: &[Observation], stopped: Option<&[Stopped]>) -> String {
    let mut header = vec!["node", "pid", "state"];
    if stopped.is_some() {
        header.push("stopped");
    }
    header.extend(["io", "kafka", "metadata", "term", "led", "isr shrinks"]);
    let rows: Vec<Vec<String>> = state
        .nodes
        .iter()
        .zip(obs)
        .enumerate()
        .map(|(i, (n, o))| {
            let raft = o.raft.as_ref();
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            let mut row = vec![
                n.spec.id.to_string(),
                or_dash(n.proc.map(|p| p.pid.to_string())),
                o.health.as_str().to_string(),
            ];
            if let Some(stopped) = stopped {
                row.push(or_dash(stopped.get(i).map(Stopped::describe)));
            }
            row.extend([
                n.spec.io.as_str().to_string(),
                n.spec.ports.kafka.to_string(),
                raft.map_or("-", |r| r.metadata_role.as_str()).to_string(),
                or_dash(raft.and_then(|r| r.metadata_term).map(|t| t.to_string())),
                or_dash(raft.map(|r| r.partitions_led.to_string())),
                or_dash(raft.and_then(|r| r.isr_shrinks).map(|c| c.to_string())),
            ]);
            row
        })
        .collect();
    table::markdown(&header, &rows, header.len() - 3)
}

/// One line for logs: `node 1 up tokio leader led=3 | node 2 down | ...`.
pub fn status_line(state: &ClusterState, obs: &[Observation]) -> String {
    state
        .nodes
        .iter()
        .zip(obs)
        .map(|(n, o)| {
            let mut s = format!("node {} {}", n.spec.id, o.health.as_str());
            if o.health != Health::Down {
                s.push_str(&format!(" {}", n.spec.io.as_str()));
                if let Some(r) = &o.raft {
                    s.push_str(&format!(
                        " {} led={} shrinks={}",
                        r.metadata_role.as_str(),
                        r.partitions_led,
                        r.isr_shrinks.map_or("-".into(), |c| c.to_string())
                    ));
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::super::layout::{plan, serve_args, IoChoice, NodeId};
    use super::super::process::Proc;
    use super::super::scrape::{parse_samples, RaftView};
    use super::super::state::NodeEntry;
    use super::*;

    /// Node 1's and node 3's own `/metrics`: node 1 leads the metadata group
    /// and `orders-0`, node 3 follows and leads `orders-1` and `orders-2`.
    const NODE1: &str = "\
chronik_raft_term{group=\"__cluster_metadata-0\"} 3
chronik_raft_leader{group=\"__cluster_metadata-0\"} 1
chronik_raft_leader{group=\"orders-0\"} 1
chronik_raft_leader{group=\"orders-1\"} 3
chronik_isr_shrinks_total 2
";
    const NODE3: &str = "\
chronik_raft_term{group=\"__cluster_metadata-0\"} 3
chronik_raft_leader{group=\"__cluster_metadata-0\"} 1
chronik_raft_leader{group=\"orders-1\"} 3
chronik_raft_leader{group=\"orders-2\"} 3
";

    fn three_nodes() -> (ClusterState, Vec<Observation>) {
        let specs = plan(3, IoChoice::Mixed, 0, Path::new("/c")).unwrap();
        let nodes = specs
            .into_iter()
            .map(|spec| NodeEntry {
                args: serve_args(&spec, "", &[]),
                proc: Some(Proc {
                    pid: 100 + spec.id.0,
                    start_time: 1,
                }),
                spec,
            })
            .collect();
        let state = ClusterState {
            bin: PathBuf::from("/bin/chronik"),
            supervisor: None,
            nodes,
        };
        let seen = |text: &str, id: u32| Observation {
            health: Health::Up,
            raft: Some(RaftView::of(&parse_samples(text), NodeId(id))),
        };
        let obs = vec![
            seen(NODE1, 1),
            Observation {
                health: Health::Down,
                raft: None,
            },
            seen(NODE3, 3),
        ];
        (state, obs)
    }

    #[test]
    fn the_live_table() {
        let (state, obs) = three_nodes();
        assert_eq!(
            render(&state, &obs, None),
            "\
| node | pid | state | io    | kafka          | metadata | term | led | isr shrinks |
|:-----|:----|:------|:------|:---------------|:---------|-----:|----:|------------:|
| 1    | 101 | up    | tokio | 127.0.0.1:9092 | leader   |    3 |   1 |           2 |
| 2    | 102 | down  | sync  | 127.0.0.1:9093 | -        |    - |   - |           - |
| 3    | 103 | up    | tokio | 127.0.0.1:9094 | follower |    3 |   2 |           - |
"
        );
    }

    #[test]
    fn the_final_summary_says_how_each_node_stopped() {
        let (state, obs) = three_nodes();
        let stopped = [
            Stopped::Terminated(Duration::from_millis(420)),
            Stopped::WasDown,
            Stopped::Killed,
        ];
        assert_eq!(
            render(&state, &obs, Some(&stopped)),
            "\
| node | pid | state | stopped            | io    | kafka          | metadata | term | led | isr shrinks |
|:-----|:----|:------|:-------------------|:------|:---------------|:---------|-----:|----:|------------:|
| 1    | 101 | up    | SIGTERM, 0.4 s     | tokio | 127.0.0.1:9092 | leader   |    3 |   1 |           2 |
| 2    | 102 | down  | was down           | sync  | 127.0.0.1:9093 | -        |    - |   - |           - |
| 3    | 103 | up    | SIGKILL after 10 s | tokio | 127.0.0.1:9094 | follower |    3 |   2 |           - |
"
        );
    }

    #[test]
    fn the_line_for_logs() {
        let (state, obs) = three_nodes();
        assert_eq!(
            status_line(&state, &obs),
            "node 1 up tokio leader led=1 shrinks=2 | node 2 down \
             | node 3 up tokio follower led=2 shrinks=-"
        );
    }
}
