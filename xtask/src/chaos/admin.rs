//! The admin workload: topics created and deleted while the faults run, and
//! the check that every answered request held.
//!
//! CreateTopics and DeleteTopics sent to any node travel to the controller
//! (the metadata Raft group's leader), which the nemeses kill, pause and cut
//! off like any other node. A request answered with success is a promise: a
//! created topic exists and has a leader once the cluster heals, a deleted
//! one is gone. An error or a timeout promises nothing, so a topic whose last
//! request failed is not judged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use serde::{Deserialize, Serialize};

use super::workload::Recorder;
use crate::cluster::topics::{self, Admin};

/// Every how often the admin client acts.
const EVERY: Duration = Duration::from_millis(1500);
/// How long one admin request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The prefix of the topics the admin workload owns.
pub const PREFIX: &str = "chaos-admin-";

/// What an admin request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminKind {
    /// CreateTopics.
    Create,
    /// DeleteTopics.
    Delete,
}

/// One admin request and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminOp {
    /// What it asked.
    pub kind: AdminKind,
    /// For which topic.
    pub topic: String,
    /// When it was sent (the run's clock).
    pub invoked_us: u64,
    /// When it was answered.
    pub completed_us: u64,
    /// `None` for success, else the error (or timeout) as the client gave it.
    pub error: Option<String>,
}

/// The running admin client.
pub struct AdminWorkload {
    stop: Arc<AtomicBool>,
    ops: Arc<Mutex<Vec<AdminOp>>>,
    thread: Option<JoinHandle<()>>,
}

impl AdminWorkload {
    /// Starts creating a topic of 1 partition and `rf` replicas every
    /// [`EVERY`], deleting the oldest live one every third turn.
    pub fn start(bootstrap: &str, rf: u32, rec: Arc<Recorder>) -> anyhow::Result<AdminWorkload> {
        let admin = topics::admin(bootstrap)?;
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, ops) = (stop.clone(), ops.clone());
            thread::Builder::new()
                .name("chaos-admin".into())
                .spawn(move || churn(&admin, rf, &rec, &ops, &stop))?
        };
        Ok(AdminWorkload {
            stop,
            ops,
            thread: Some(thread),
        })
    }

    /// Stops it (after the request in flight) and returns every request.
    pub fn stop(&mut self) -> Vec<AdminOp> {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for AdminWorkload {
    fn drop(&mut self) {
        self.stop();
    }
}

fn churn(admin: &Admin, rf: u32, rec: &Recorder, ops: &Mutex<Vec<AdminOp>>, stop: &AtomicBool) {
    let opts = AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT));
    let mut live: Vec<String> = Vec::new();
    let mut turn = 0u64;
    while !stop.load(Ordering::Acquire) {
        turn += 1;
        let (kind, topic) = if turn.is_multiple_of(3) && !live.is_empty() {
            (AdminKind::Delete, live.remove(0))
        } else {
            (AdminKind::Create, format!("{PREFIX}{turn}"))
        };
        let invoked_us = rec.now_us();
        let error = match kind {
            AdminKind::Create => {
                let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(rf as i32));
                first_error(topics::block_on(admin.create_topics([&new], &opts)))
            }
            AdminKind::Delete => {
                first_error(topics::block_on(admin.delete_topics(&[&topic], &opts)))
            }
        };
        if kind == AdminKind::Create && error.is_none() {
            live.push(topic.clone());
        }
        ops.lock().unwrap_or_else(|e| e.into_inner()).push(AdminOp {
            kind,
            topic,
            invoked_us,
            completed_us: rec.now_us(),
            error,
        });
        thread::sleep(EVERY);
    }
}

/// rdkafka's answer to a CreateTopics or DeleteTopics: per topic, its name or
/// its name and error.
type TopicResults = Vec<Result<String, (String, rdkafka::types::RDKafkaErrorCode)>>;

/// The error of a one-topic admin answer, if any.
fn first_error<E: std::fmt::Display>(answer: Result<TopicResults, E>) -> Option<String> {
    match answer {
        Err(e) => Some(e.to_string()),
        Ok(results) => match results.into_iter().next() {
            Some(Ok(_)) => None,
            Some(Err((_, code))) => Some(format!("{code:?}")),
            None => Some("no result for the topic".into()),
        },
    }
}

/// What the final Metadata says of the admin workload's topics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Topics that exist with a leader for every partition.
    pub led: BTreeSet<String>,
    /// Topics that exist at all.
    pub present: BTreeSet<String>,
}

/// The admin workload's topics in a Metadata answer for every topic.
pub fn seen(admin: &Admin) -> anyhow::Result<Seen> {
    let md = admin
        .inner()
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("Metadata for every topic: {e}"))?;
    let mut out = Seen::default();
    for t in md.topics().iter().filter(|t| t.name().starts_with(PREFIX)) {
        if t.error().is_some() {
            continue;
        }
        out.present.insert(t.name().to_string());
        let led = !t.partitions().is_empty()
            && t.partitions()
                .iter()
                .all(|p| p.error().is_none() && p.leader() >= 0);
        if led {
            out.led.insert(t.name().to_string());
        }
    }
    Ok(out)
}

/// The promises `ops` made that `seen` breaks, one line each.
pub fn check(ops: &[AdminOp], seen: &Seen) -> Vec<String> {
    let mut last: BTreeMap<&str, &AdminOp> = BTreeMap::new();
    for op in ops {
        last.insert(&op.topic, op);
    }
    let mut broken = Vec::new();
    for (topic, op) in last {
        if op.error.is_some() {
            continue;
        }
        match op.kind {
            AdminKind::Create if !seen.led.contains(topic) => broken.push(format!(
                "{topic}: CreateTopics succeeded at {:.1} s but the topic {} after the heal",
                op.completed_us as f64 / 1e6,
                if seen.present.contains(topic) {
                    "has a partition without a leader"
                } else {
                    "does not exist"
                }
            )),
            AdminKind::Delete if seen.present.contains(topic) => broken.push(format!(
                "{topic}: DeleteTopics succeeded at {:.1} s but the topic still exists after the heal",
                op.completed_us as f64 / 1e6
            )),
            _ => {}
        }
    }
    broken
}

/// How many requests of each kind succeeded and failed, for the report.
pub fn summary(ops: &[AdminOp]) -> String {
    let count = |k: AdminKind, ok: bool| {
        ops.iter()
            .filter(|o| o.kind == k && o.error.is_none() == ok)
            .count()
    };
    format!(
        "admin: CreateTopics {} ok / {} failed, DeleteTopics {} ok / {} failed",
        count(AdminKind::Create, true),
        count(AdminKind::Create, false),
        count(AdminKind::Delete, true),
        count(AdminKind::Delete, false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: AdminKind, topic: &str, at: u64, error: Option<&str>) -> AdminOp {
        AdminOp {
            kind,
            topic: topic.into(),
            invoked_us: at,
            completed_us: at + 10,
            error: error.map(String::from),
        }
    }

    fn seen(led: &[&str], present: &[&str]) -> Seen {
        Seen {
            led: led.iter().map(|s| s.to_string()).collect(),
            present: present.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn kept_promises_pass_and_failed_requests_are_not_judged() {
        let ops = vec![
            op(AdminKind::Create, "a", 1, None),
            op(AdminKind::Create, "b", 2, None),
            op(AdminKind::Delete, "b", 3, None),
            op(AdminKind::Create, "c", 4, Some("RequestTimedOut")),
            op(AdminKind::Create, "d", 5, None),
            op(AdminKind::Delete, "d", 6, Some("timed out")),
        ];
        assert!(check(&ops, &seen(&["a", "c"], &["a", "c", "d"])).is_empty());
        assert!(check(&ops, &seen(&["a"], &["a"])).is_empty());
    }

    #[test]
    fn a_created_topic_that_is_gone_or_leaderless_breaks_its_promise() {
        let ops = vec![
            op(AdminKind::Create, "a", 1, None),
            op(AdminKind::Create, "b", 2, None),
        ];
        let broken = check(&ops, &seen(&[], &["b"]));
        assert_eq!(broken.len(), 2, "{broken:?}");
        assert!(broken[0].starts_with("a:") && broken[0].contains("does not exist"));
        assert!(broken[1].starts_with("b:") && broken[1].contains("without a leader"));
    }

    #[test]
    fn a_deleted_topic_that_is_back_breaks_its_promise() {
        let ops = vec![
            op(AdminKind::Create, "a", 1, None),
            op(AdminKind::Delete, "a", 2, None),
        ];
        let broken = check(&ops, &seen(&["a"], &["a"]));
        assert_eq!(broken.len(), 1);
        assert!(broken[0].contains("still exists"), "{broken:?}");
    }
}
