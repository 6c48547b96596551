//! The produce phase of a case: one librdkafka producer sending for the
//! case's duration (flat out, or paced to its rate) and timing every record
//! from `send` to its delivery report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use super::broker::{cpu_time, Brokers};
use super::hist::Hist;
use super::report::Progress;
use super::{Case, LatencySummary, Outcome};

/// How long the final `flush` of a produce phase may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Delivery reports: latency of every acknowledged record, failures counted.
struct LatencyContext {
    base: Instant,
    hist: Mutex<Hist>,
    acked: AtomicU64,
    /// When the latest acknowledgement arrived: nanoseconds since `base`.
    last_ack_ns: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    /// When the record was sent: nanoseconds since `base`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = self.base.elapsed().as_nanos() as u64;
        match result {
            Ok(_) => {
                let micros = now.saturating_sub(sent_ns as u64) / 1000;
                self.hist.lock().unwrap().record(micros);
                self.acked.fetch_add(1, Ordering::Relaxed);
                self.last_ack_ns.fetch_max(now, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap();
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

type Prod = ThreadedProducer<LatencyContext>;

fn producer(bootstrap: &str, case: &Case) -> anyhow::Result<Prod> {
    let ctx = LatencyContext {
        base: Instant::now(),
        hist: Mutex::new(Hist::default()),
        acked: AtomicU64::new(0),
        last_ack_ns: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", case.acks)
        .set("linger.ms", case.linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "65536")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "120000")
        .create_with_context(ctx)
        .context("create the librdkafka producer")
}

fn send_one(p: &Prod, topic: &str, payload: &[u8], partition: i32) -> Result<(), KafkaError> {
    let sent = p.context().base.elapsed().as_nanos() as usize;
    let record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, sent)
        .payload(payload)
        .partition(partition);
    p.send(record).map_err(|(e, _)| e)
}

/// Produces to `topic` for `duration` and fills the produce figures of `out`.
/// The topic must exist, or be auto-created by the first record.
pub fn produce(
    brokers: &Brokers,
    case: &Case,
    topic: &str,
    duration: Duration,
    progress: &mut Progress,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let p = producer(brokers.bootstrap(), case)?;
    let payload = vec![0x5a_u8; case.size];
    let parts = case.partitions as u64;

    // Warm-up: the topic gets created and every partition's connection and
    // metadata are ready before the clock starts. Its records stay in the log
    // (the consumer reads them too) but not in the latency figures.
    for part in 0..case.partitions {
        send_with_retry(&p, topic, &payload, part as i32)?;
    }
    p.flush(Duration::from_secs(60))
        .context("warm-up flush (is the topic being created?)")?;
    if p.context().failed.load(Ordering::Relaxed) > 0 {
        bail!(
            "warm-up records failed: {}",
            p.context()
                .first_error
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_default()
        );
    }
    *p.context().hist.lock().unwrap() = Hist::default();
    let warm = p.context().acked.swap(0, Ordering::Relaxed);

    let (broker_cpu0, client_cpu0) = (brokers.cpu_time(), cpu_time(0));
    let start = Instant::now();
    let start_ns = p.context().base.elapsed().as_nanos() as u64;
    let deadline = start + duration;
    let per_sec = case.rate.map(|r| r / case.size as f64);
    let mut sent: u64 = 0;
    'send: loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let phase = if case.rate.is_some() {
            "produce (paced)"
        } else {
            "produce"
        };
        let acked = p.context().acked.load(Ordering::Relaxed);
        progress.show(phase, acked * case.size as u64, start, brokers);
        // Flat out: keep librdkafka's queue full. Paced: catch up to the
        // schedule, then sleep a little.
        let target = match per_sec {
            Some(r) => (now.duration_since(start).as_secs_f64() * r) as u64,
            None => sent + 512,
        };
        while sent < target {
            match send_one(&p, topic, &payload, (sent % parts) as i32) {
                Ok(()) => sent += 1,
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                    std::thread::sleep(Duration::from_micros(200));
                    continue 'send;
                }
                Err(e) => bail!("send: {e}"),
            }
        }
        if per_sec.is_some() {
            std::thread::sleep(Duration::from_micros(250));
        }
    }
    progress.show_now("produce (flushing)", 0, start, brokers);
    p.flush(FLUSH_TIMEOUT).context("flush the producer")?;
    // Until the last acknowledgement, not until `flush` returned: the rdkafka
    // crate's flush polls in 100 ms steps.
    let last_ack = p.context().last_ack_ns.load(Ordering::Relaxed);
    let secs = Duration::from_nanos(last_ack.saturating_sub(start_ns)).as_secs_f64();
    let (broker_cpu1, client_cpu1) = (brokers.cpu_time(), cpu_time(0));

    let ctx = p.context();
    let hist = ctx.hist.lock().unwrap().clone();
    out.produced_msgs = ctx.acked.load(Ordering::Relaxed);
    out.delivery_errors = ctx.failed.load(Ordering::Relaxed);
    out.first_error = ctx.first_error.lock().unwrap().clone();
    out.produce_secs = secs;
    if hist.count() > 0 {
        let ms = |us: u64| us as f64 / 1000.0;
        out.lat = Some(LatencySummary {
            p50: ms(hist.quantile(0.50)),
            p99: ms(hist.quantile(0.99)),
            p999: ms(hist.quantile(0.999)),
            max: ms(hist.max()),
        });
    }
    out.broker_cpu_produce = cores(broker_cpu0, broker_cpu1, secs);
    out.client_cpu_produce = cores(client_cpu0, client_cpu1, secs);
    out.log_msgs = warm; // the consumer adds what it finds in the log
    Ok(())
}

/// Sends one record, waiting while librdkafka's queue is full.
fn send_with_retry(p: &Prod, topic: &str, payload: &[u8], partition: i32) -> anyhow::Result<()> {
    loop {
        match send_one(p, topic, payload, partition) {
            Ok(()) => return Ok(()),
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => bail!("send: {e}"),
        }
    }
}

/// Average cores busy between two CPU-time readings `secs` apart.
pub fn cores(before: Option<Duration>, after: Option<Duration>, secs: f64) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) if secs > 0.0 => a.saturating_sub(b).as_secs_f64() / secs,
        _ => f64::NAN,
    }
}
