//! The clients of a chaos run, real librdkafka through the `rdkafka` crate,
//! configured as a careful application would be: idempotent acks=all
//! producers, a consumer in a group that commits, and a consumer `assign`ed
//! every partition from offset 0. Each records what it did into one
//! [`Recorder`], whose contents become the run's [`History`].
//!
//! Producers write at a fixed pace (not flat out) so a minute-long history
//! stays small enough to check and draw, and so every partition sees writes
//! throughout every fault window. Each record's value is unique in the run
//! ([`history::VALUES_PER_PRODUCER`]) and sent to a partition the workload
//! chooses (round robin), so the checker knows where each value belongs.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::history::{
    ConsumerKind, FinalRead, PollOp, SendOp, SendOutcome, Value, VALUES_PER_PRODUCER,
};

/// How long a record may wait for its acknowledgement before librdkafka
/// gives up on it: long enough to ride out most faults, short enough that a
/// run's tail of unanswered sends stays small.
const MESSAGE_TIMEOUT_MS: &str = "20000";
/// How long one consumer poll waits.
const POLL: Duration = Duration::from_millis(100);
/// How long a Metadata or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One clock and the shared record of everything the clients did.
pub struct Recorder {
    started: Instant,
    sends: Mutex<Vec<SendOp>>,
    polls: Mutex<Vec<PollOp>>,
    /// See [`Recorder::latest_acked_invocations`].
    latest_acked: Mutex<BTreeMap<i32, u64>>,
    /// Acknowledged sends so far (the progress line's).
    pub acked: AtomicU64,
    /// Failed sends so far.
    pub failed: AtomicU64,
    /// Records polled so far.
    pub polled: AtomicU64,
    /// Consumer errors so far (not anomalies: clients see errors while
    /// nodes die), and the first few, for the report.
    pub consumer_errors: AtomicU64,
    first_errors: Mutex<Vec<String>>,
}

impl Recorder {
    /// An empty record whose clock starts now.
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            started: Instant::now(),
            sends: Mutex::new(Vec::new()),
            polls: Mutex::new(Vec::new()),
            latest_acked: Mutex::new(BTreeMap::new()),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            polled: AtomicU64::new(0),
            consumer_errors: AtomicU64::new(0),
            first_errors: Mutex::new(Vec::new()),
        })
    }

    /// Microseconds since the recorder was made: every timestamp in the
    /// history.
    pub fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Everything sent so far.
    pub fn sends(&self) -> Vec<SendOp> {
        self.sends.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything polled so far.
    pub fn polls(&self) -> Vec<PollOp> {
        self.polls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first consumer errors seen.
    pub fn first_errors(&self) -> Vec<String> {
        self.first_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn invoke(&self, op: SendOp) -> usize {
        let mut sends = self.sends.lock().unwrap_or_else(|e| e.into_inner());
        sends.push(op);
        sends.len() - 1
    }

    fn complete(&self, index: usize, outcome: SendOutcome) {
        let at = self.now_us();
        match outcome {
            SendOutcome::Acked { .. } => self.acked.fetch_add(1, Ordering::Relaxed),
            SendOutcome::Failed { .. } => self.failed.fetch_add(1, Ordering::Relaxed),
        };
        let acked = matches!(outcome, SendOutcome::Acked { .. });
        let mut sends = self.sends.lock().unwrap_or_else(|e| e.into_inner());
        let Some(op) = sends.get_mut(index) else {
            return;
        };
        op.completed_us = Some(at);
        op.outcome = Some(outcome);
        if acked {
            let (partition, invoked) = (op.partition, op.invoked_us);
            drop(sends);
            let mut latest = self.latest_acked.lock().unwrap_or_else(|e| e.into_inner());
            let t = latest.entry(partition).or_insert(invoked);
            *t = (*t).max(invoked);
        }
    }

    /// Per partition, the latest invocation time of an acknowledged send:
    /// whether a partition took writes again after a moment, without
    /// scanning the history.
    pub fn latest_acked_invocations(&self) -> BTreeMap<i32, u64> {
        self.latest_acked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn poll(&self, op: PollOp) {
        self.polled.fetch_add(1, Ordering::Relaxed);
        self.polls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op);
    }

    fn consumer_error(&self, who: &str, e: &KafkaError) {
        self.consumer_errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < 5 {
            first.push(format!("{who}: {e}"));
        }
    }
}

/// A value as the record carries it.
fn encode(value: Value) -> String {
    value.to_string()
}

/// A record's value back, if it is one of ours.
fn decode(payload: Option<&[u8]>) -> Option<Value> {
    std::str::from_utf8(payload?).ok()?.parse().ok()
}

/// Delivery reports land in the recorder; librdkafka's log is printed
/// only when `CHAOS_RDKAFKA_DEBUG` asked for it (`.1`, see [`producer`]):
/// otherwise every kill would fill the output with refused connections.
struct Reports(Arc<Recorder>, bool);

impl ClientContext for Reports {
    /// librdkafka's own log, to stderr with the run's clock when asked for.
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        if self.1 {
            eprintln!(
                "[{:>10.3} s librdkafka {fac}] {message}",
                self.0.now_us() as f64 / 1e6
            );
        }
    }
}

impl ProducerContext for Reports {
    /// The send's index in the recorder.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(m) => SendOutcome::Acked { offset: m.offset() },
            Err((e, _)) => SendOutcome::Failed {
                error: e.to_string(),
            },
        };
        self.0.complete(index, outcome);
    }
}

/// What every client of the run shares.
#[derive(Clone)]
pub struct Setup {
    /// `bootstrap.servers`: every node.
    pub bootstrap: String,
    /// The topic.
    pub topic: String,
    /// Its partition count.
    pub partitions: i32,
    /// Records per second each producer sends.
    pub rate: u32,
    /// The producers' `request.timeout.ms` and `socket.timeout.ms`: how long
    /// a produce request may wait on a broker that does not answer (a frozen
    /// leader) before it is retried at the new leader. librdkafka times out
    /// an in-flight produce after `socket.timeout.ms` (default 60 s), and its
    /// idempotent producer will not send to a new leader until the requests
    /// in flight to the old one are done.
    pub request_timeout_ms: u32,
}

/// The running clients.
pub struct Workload {
    stop_producing: Arc<AtomicBool>,
    stop_consuming: Arc<AtomicBool>,
    producers: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
    /// Per consumer, the highest offset it has polled in each partition.
    progress: Vec<Arc<Mutex<BTreeMap<i32, i64>>>>,
}

impl Workload {
    /// Starts `producers` producers, one group consumer and one assigned
    /// consumer on `setup`.
    pub fn start(
        setup: &Setup,
        producers: u32,
        recorder: Arc<Recorder>,
    ) -> anyhow::Result<Workload> {
        let stop_producing = Arc::new(AtomicBool::new(false));
        let stop_consuming = Arc::new(AtomicBool::new(false));
        let mut w = Workload {
            stop_producing: stop_producing.clone(),
            stop_consuming: stop_consuming.clone(),
            producers: Vec::new(),
            consumers: Vec::new(),
            progress: Vec::new(),
        };
        for (id, kind) in [(0, ConsumerKind::Group), (1, ConsumerKind::Assigned)] {
            let progress = Arc::new(Mutex::new(BTreeMap::new()));
            let consumer = consumer(setup, id, kind)?;
            let (stop, rec, prog, setup) = (
                stop_consuming.clone(),
                recorder.clone(),
                progress.clone(),
                setup.clone(),
            );
            w.consumers.push(
                thread::Builder::new()
                    .name(format!("chaos-consumer-{id}"))
                    .spawn(move || consume(consumer, id, kind, &setup, &rec, &prog, &stop))?,
            );
            w.progress.push(progress);
        }
        for id in 0..producers {
            let p = producer(setup, recorder.clone())?;
            let (stop, rec, setup) = (stop_producing.clone(), recorder.clone(), setup.clone());
            w.producers.push(
                thread::Builder::new()
                    .name(format!("chaos-producer-{id}"))
                    .spawn(move || produce(&p, id, &setup, &rec, &stop))?,
            );
        }
        Ok(w)
    }

    /// Stops the producers; each waits up to `flush` for its outstanding
    /// delivery reports first.
    pub fn stop_producing(&mut self) {
        self.stop_producing.store(true, Ordering::Release);
        for p in self.producers.drain(..) {
            let _ = p.join();
        }
    }

    /// Whether every consumer has polled up to (not including) `ends[p]` in
    /// every partition `p`.
    pub fn consumers_reached(&self, ends: &[i64]) -> bool {
        self.progress.iter().all(|prog| {
            let prog = prog.lock().unwrap_or_else(|e| e.into_inner());
            ends.iter()
                .enumerate()
                .all(|(p, &end)| end == 0 || prog.get(&(p as i32)).is_some_and(|&o| o + 1 >= end))
        })
    }

    /// Stops the consumers (the group consumer leaves its group).
    pub fn stop_consuming(&mut self) {
        self.stop_consuming.store(true, Ordering::Release);
        for c in self.consumers.drain(..) {
            let _ = c.join();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop_producing();
        self.stop_consuming();
    }
}

/// The environment variable that turns on the producers' librdkafka
/// `debug` contexts (`eos,msg,broker,topic`), printed to stderr: how to see
/// what a client does during a fault.
const RDKAFKA_DEBUG_ENV: &str = "CHAOS_RDKAFKA_DEBUG";

/// An idempotent acks=all producer whose delivery reports go to `recorder`.
fn producer(setup: &Setup, recorder: Arc<Recorder>) -> anyhow::Result<ThreadedProducer<Reports>> {
    let mut cfg = ClientConfig::new();
    let debug = std::env::var(RDKAFKA_DEBUG_ENV).ok();
    if let Some(contexts) = &debug {
        cfg.set("debug", contexts)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    cfg.set("bootstrap.servers", &setup.bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
        .set("request.timeout.ms", setup.request_timeout_ms.to_string())
        .set("socket.timeout.ms", setup.request_timeout_ms.to_string())
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "500")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create_with_context(Reports(recorder, debug.is_some()))
        .context("create a chaos producer")
}

/// Sends `setup.rate` records a second, round robin over the partitions,
/// until `stop`; then waits for the outstanding reports.
fn produce(
    p: &ThreadedProducer<Reports>,
    id: u32,
    setup: &Setup,
    rec: &Recorder,
    stop: &AtomicBool,
) {
    let every = Duration::from_secs(1) / setup.rate.max(1);
    let mut next = Instant::now();
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let value = u64::from(id) * VALUES_PER_PRODUCER + seq;
        let partition = ((seq + u64::from(id)) % setup.partitions as u64) as i32;
        seq += 1;
        let index = rec.invoke(SendOp {
            producer: id,
            value,
            partition,
            invoked_us: rec.now_us(),
            completed_us: None,
            outcome: None,
        });
        let payload = encode(value);
        let mut record: BaseRecord<(), String, usize> =
            BaseRecord::with_opaque_to(&setup.topic, index)
                .partition(partition)
                .payload(&payload);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    rec.complete(
                        index,
                        SendOutcome::Failed {
                            error: format!("refused by the client: {e}"),
                        },
                    );
                    break;
                }
            }
        }
        next += every;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    let _ = p.flush(Duration::from_secs(30));
}

/// Counts the group consumer's rebalances: each starts a new epoch.
struct Epochs(Arc<AtomicU32>);

impl ClientContext for Epochs {}

impl ConsumerContext for Epochs {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// A consumer of `setup.topic`: subscribed in group `chaos` or assigned
/// every partition from offset 0.
fn consumer(
    setup: &Setup,
    id: u32,
    kind: ConsumerKind,
) -> anyhow::Result<(BaseConsumer<Epochs>, Arc<AtomicU32>)> {
    let epochs = Arc::new(AtomicU32::new(0));
    let group = match kind {
        ConsumerKind::Group => "chaos".to_string(),
        ConsumerKind::Assigned => format!("chaos-assigned-{id}"),
    };
    let c: BaseConsumer<Epochs> = ClientConfig::new()
        .set("bootstrap.servers", &setup.bootstrap)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set(
            "enable.auto.commit",
            if kind == ConsumerKind::Group {
                "true"
            } else {
                "false"
            },
        )
        .set("auto.commit.interval.ms", "1000")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create_with_context(Epochs(epochs.clone()))
        .context("create a chaos consumer")?;
    match kind {
        ConsumerKind::Group => c.subscribe(&[&setup.topic])?,
        ConsumerKind::Assigned => {
            let mut tpl = TopicPartitionList::new();
            for p in 0..setup.partitions {
                tpl.add_partition_offset(&setup.topic, p, Offset::Beginning)?;
            }
            c.assign(&tpl)?;
        }
    }
    Ok((c, epochs))
}

/// Polls until `stop`, recording every record.
fn consume(
    (c, epochs): (BaseConsumer<Epochs>, Arc<AtomicU32>),
    id: u32,
    kind: ConsumerKind,
    setup: &Setup,
    rec: &Recorder,
    progress: &Mutex<BTreeMap<i32, i64>>,
    stop: &AtomicBool,
) {
    let who = format!("consumer {id} ({kind:?})");
    while !stop.load(Ordering::Acquire) {
        match c.poll(POLL) {
            None => {}
            Some(Err(e)) => rec.consumer_error(&who, &e),
            Some(Ok(m)) => {
                if m.topic() != setup.topic {
                    continue;
                }
                let (partition, offset) = (m.partition(), m.offset());
                let mut prog = progress.lock().unwrap_or_else(|e| e.into_inner());
                let seen = prog.entry(partition).or_insert(-1);
                *seen = (*seen).max(offset);
                drop(prog);
                rec.poll(PollOp {
                    consumer: id,
                    kind,
                    epoch: epochs.load(Ordering::Acquire),
                    partition,
                    offset,
                    value: decode(m.payload()),
                    at_us: rec.now_us(),
                });
            }
        }
    }
    if kind == ConsumerKind::Group {
        let _ = c.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
        c.unsubscribe();
    }
}

/// Each partition's high watermark, asking `bootstrap`.
pub fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<Vec<i64>> {
    let c = reader(bootstrap)?;
    (0..partitions)
        .map(|p| {
            c.fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                .map(|(_, high)| high)
                .with_context(|| format!("watermarks of {topic}-{p}"))
        })
        .collect()
}

/// A consumer that only reads what it is assigned.
fn reader(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "chaos-final-read")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("create the final reader")
}

/// Reads every partition from offset 0 up to its high watermark in `ends`
/// (within `deadline`).
pub fn final_reads(
    bootstrap: &str,
    topic: &str,
    ends: &[i64],
    deadline: Duration,
) -> anyhow::Result<Vec<FinalRead>> {
    let c = reader(bootstrap)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..ends.len() as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let mut reads: Vec<FinalRead> = ends
        .iter()
        .enumerate()
        .map(|(p, &hw)| FinalRead {
            partition: p as i32,
            high_watermark: hw,
            records: Vec::new(),
        })
        .collect();
    let done = |reads: &[FinalRead]| {
        reads.iter().all(|r| {
            r.high_watermark == 0
                || r.records
                    .last()
                    .is_some_and(|&(o, _)| o + 1 >= r.high_watermark)
        })
    };
    let until = Instant::now() + deadline;
    while !done(&reads) {
        if Instant::now() > until {
            let short: Vec<String> = reads
                .iter()
                .map(|r| format!("p{} {}/{}", r.partition, r.records.len(), r.high_watermark))
                .collect();
            anyhow::bail!(
                "the final read did not reach the high watermarks: {}",
                short.join(", ")
            );
        }
        match c.poll(POLL) {
            None => {}
            Some(Err(e)) => eprintln!("chaos: final read: {e}"),
            Some(Ok(m)) => {
                let r = &mut reads[m.partition() as usize];
                if m.offset() < r.high_watermark {
                    r.records.push((m.offset(), decode(m.payload())));
                }
            }
        }
    }
    Ok(reads)
}
