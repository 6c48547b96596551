//! What the cluster bench asks of the cluster through librdkafka's admin
//! client: CreateTopics, and Metadata read as who leads each partition and
//! which replicas are in sync.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

/// An admin client on the cluster (it also answers Metadata).
pub type Admin = AdminClient<DefaultClientContext>;

/// The pause before asking again after INVALID_REPLICATION_FACTOR.
const REFUSED_RETRY: Duration = Duration::from_millis(200);
/// How long one Metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// An admin client bootstrapping from `bootstrap`.
pub fn admin(bootstrap: &str) -> anyhow::Result<Admin> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // Metadata is polled; a dead node's address should be retried soon
        // after it restarts.
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .create()
        .context("create the librdkafka admin client")
}

/// One partition as a Metadata answer describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub id: i32,
    /// The leader's broker id; `None` while there is none (or an error).
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Every partition of `topic`, by id; empty while the topic is not known yet
/// (the answer's error, if any, second).
pub fn partitions(a: &Admin, topic: &str) -> anyhow::Result<(Vec<PartitionState>, Option<String>)> {
    let md = a
        .inner()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .with_context(|| format!("Metadata of {topic}"))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok((Vec::new(), Some("topic not in the answer".into())));
    };
    if let Some(e) = t.error() {
        return Ok((Vec::new(), Some(format!("{e:?}"))));
    }
    let mut parts: Vec<PartitionState> = t
        .partitions()
        .iter()
        .map(|p| PartitionState {
            id: p.id(),
            leader: (p.error().is_none() && p.leader() >= 0).then_some(p.leader()),
            replicas: p.replicas().to_vec(),
            isr: p.isr().to_vec(),
        })
        .collect();
    parts.sort_by_key(|p| p.id);
    Ok((parts, None))
}

/// How many brokers a Metadata answer lists.
pub fn broker_count(a: &Admin) -> anyhow::Result<usize> {
    let md = a
        .inner()
        .fetch_metadata(None, METADATA_TIMEOUT)
        .context("Metadata")?;
    Ok(md.brokers().len())
}

/// Waits until Metadata lists `nodes` brokers: every node has registered with
/// the controller, so a topic created now gets replicas on all of them.
pub fn wait_brokers(a: &Admin, nodes: usize, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match broker_count(a) {
            Ok(n) if n >= nodes => return Ok(()),
            Ok(n) => last = format!("{n} of {nodes} brokers"),
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "Metadata did not list {nodes} brokers within {} s (last: {last})",
        timeout.as_secs()
    )
}

/// CreateTopics for `topic` with `partitions` partitions of `rf` replicas
/// and the topic configs `configs`, waiting up to `timeout` for the answer; `tick` is called about every
/// 100 ms while it waits. `Ok(Err(why))` is the broker's refusal (or the
/// client's timeout), `Err` a client that could not ask.
///
/// A fresh cluster lists every node in Metadata before the controller has
/// unfenced them all, and refuses a replication factor above the unfenced
/// count with INVALID_REPLICATION_FACTOR; that answer is retried (with the
/// same `timeout` as the whole budget) as a client waiting for the cluster
/// would.
pub fn create(
    a: &Admin,
    topic: &str,
    partitions: u32,
    rf: u32,
    configs: &[(&str, &str)],
    timeout: Duration,
    mut tick: impl FnMut(),
) -> anyhow::Result<Result<(), String>> {
    let mut new = NewTopic::new(
        topic,
        i32::try_from(partitions).context("partition count")?,
        TopicReplication::Fixed(i32::try_from(rf).context("replication factor")?),
    );
    for &(key, value) in configs {
        new = new.set(key, value);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let opts = AdminOptions::new()
            .request_timeout(Some(left))
            .operation_timeout(Some(left));
        let answer = wait(a.create_topics([&new], &opts), &mut tick);
        return Ok(match answer {
            Err(e) => Err(format!("CreateTopics failed: {e}")),
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) => Ok(()),
                Some(Err((_, RDKafkaErrorCode::InvalidReplicationFactor)))
                    if Instant::now() + REFUSED_RETRY < deadline =>
                {
                    std::thread::sleep(REFUSED_RETRY);
                    continue;
                }
                Some(Err((_, code))) => Err(format!("CreateTopics answered {code:?} ({code})")),
                None => Err("CreateTopics answered no result for the topic".into()),
            },
        });
    }
}

/// Runs an rdkafka admin future to completion on this thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    wait(f, &mut || {})
}

/// Runs a future to completion on this thread, calling `tick` whenever it
/// wakes without an answer (at least every 100 ms). rdkafka's admin futures
/// are completed by its own background thread, so no runtime is needed.
fn wait<F: Future>(f: F, tick: &mut impl FnMut()) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => {
                tick();
                std::thread::park_timeout(Duration::from_millis(100));
            }
        }
    }
}

/// Waits until every one of the `partitions` partitions of `topic` has a
/// leader; returns each partition's leader, partition 0 first.
pub fn wait_led(
    a: &Admin,
    topic: &str,
    partitions: u32,
    timeout: Duration,
) -> anyhow::Result<Vec<i32>> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match self::partitions(a, topic) {
            Ok((parts, error)) => {
                let leaders: Vec<i32> = parts.iter().filter_map(|p| p.leader).collect();
                if parts.len() == partitions as usize && leaders.len() == parts.len() {
                    return Ok(leaders);
                }
                last = format!(
                    "{} of {partitions} partitions led{}",
                    leaders.len(),
                    error.map_or(String::new(), |e| format!(" ({e})"))
                );
            }
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{topic}: not every partition had a leader within {} s (last: {last})",
        timeout.as_secs()
    )
}

/// The partitions of `parts` that have a leader.
pub fn led(parts: &[PartitionState]) -> usize {
    parts.iter().filter(|p| p.leader.is_some()).count()
}
