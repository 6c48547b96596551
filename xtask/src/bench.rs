//! `cargo xtask bench`: end-to-end produce/consume benchmarks of the real
//! `chronik` binary with librdkafka clients.
//!
//! Every case starts a fresh broker (release build, `--log-level warn`, data
//! under `target/bench/data/`, deleted afterwards; its output stays in
//! `target/bench/logs/`), then:
//!
//! 1. **produce** for `--duration` seconds from one librdkafka producer
//!    (linger.ms 5, batch.size 1 MB, no compression, a 64 MiB client queue) and
//!    times every record from `send` to its delivery report;
//! 2. **consume** everything from offset 0 with one consumer assigned to every
//!    partition by hand (there are no consumer groups yet);
//! 3. reads the broker's peak resident memory (`VmHWM`/`VmRSS` polled from
//!    `/proc/<pid>/status`) and the CPU time broker and client used.
//!
//! The cases: each driver (`--io tokio|sync|both`) × 100 B and 1 KiB records ×
//! acks 1 and all on one partition, 1 KiB on four partitions, and a fixed-rate
//! run (acks=all, 1 KiB, 50 MB/s, linger.ms 1) whose p99 latency and memory are
//! the figures the target names. MB is 10^6 bytes throughout.
//!
//! A live progress line goes to stderr, the summary table to stdout, and every
//! figure to `target/bench/bench.json`. Nothing here asserts a number: it is a
//! benchmark, not a test. Flags: `--duration SECS` (default 10), `--quick`
//! (2 s per case), `--io tokio|sync|both` (default both), `--only TEXT` (only
//! the cases whose label, e.g. `tokio 1KiB acks=all p=1`, contains TEXT;
//! repeatable).

mod broker;
mod hist;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use broker::{cpu_time, Broker, Sampler};
use hist::Hist;

use crate::table;
use crate::workspace::Workspace;

/// Bytes in a MB (throughput is reported in decimal megabytes).
const MB: f64 = 1e6;
/// How long a consumer may go without a record before the case gives up on it.
const CONSUME_STALL: Duration = Duration::from_secs(30);
/// How long the final `flush` of a produce phase may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
/// The fixed-rate case's rate, bytes per second.
const FIXED_RATE: f64 = 50.0 * MB;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// The options of one invocation.
struct Args {
    duration: Duration,
    drivers: Vec<&'static str>,
    /// Run only the cases whose label contains every one of these.
    only: Vec<String>,
}

fn parse_args(args: &[String]) -> anyhow::Result<Args> {
    let mut a = Args {
        duration: Duration::from_secs(10),
        drivers: vec!["tokio", "sync"],
        only: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value"))
                .cloned()
        };
        match flag.as_str() {
            "--duration" => {
                let secs: f64 = value()?.parse().context("--duration (seconds)")?;
                if !(secs > 0.0 && secs.is_finite()) {
                    bail!("--duration must be a positive number of seconds");
                }
                a.duration = Duration::from_secs_f64(secs);
            }
            "--only" => a.only.push(value()?),
            "--quick" => a.duration = Duration::from_secs(2),
            "--io" => {
                a.drivers = match value()?.as_str() {
                    "tokio" => vec!["tokio"],
                    "sync" => vec!["sync"],
                    "both" => vec!["tokio", "sync"],
                    other => bail!("--io must be tokio, sync or both, not `{other}`"),
                }
            }
            other => bail!(
                "unknown argument `{other}`; usage: cargo xtask bench [--duration SECS] \
                 [--quick] [--io tokio|sync|both] [--only LABEL-PART]..."
            ),
        }
    }
    Ok(a)
}

/// One benchmark case.
#[derive(Clone, Debug)]
struct Case {
    io: &'static str,
    /// Record value size, bytes (no key, no headers).
    size: usize,
    /// `acks` as librdkafka spells it: "1" or "all".
    acks: &'static str,
    partitions: u32,
    /// `Some(bytes per second)` paces the producer; `None` goes flat out.
    rate: Option<f64>,
    linger_ms: u32,
}

impl Case {
    fn label(&self) -> String {
        let size = fmt_size(self.size).replace(' ', "");
        let mut s = format!(
            "{} {size} acks={} p={}",
            self.io, self.acks, self.partitions
        );
        if let Some(r) = self.rate {
            s.push_str(&format!(" @{:.0}MB/s", r / MB));
        }
        s
    }

    /// A file-name-safe form of the label.
    fn slug(&self) -> String {
        self.label().replace(['=', '/', '@'], "").replace(' ', "-")
    }
}

fn cases(drivers: &[&'static str]) -> Vec<Case> {
    let mut out = Vec::new();
    for &io in drivers {
        let base = Case {
            io,
            size: 100,
            acks: "1",
            partitions: 1,
            rate: None,
            linger_ms: 5,
        };
        for size in [100, 1024] {
            for acks in ["1", "all"] {
                out.push(Case {
                    size,
                    acks,
                    ..base.clone()
                });
            }
        }
        for acks in ["1", "all"] {
            out.push(Case {
                size: 1024,
                acks,
                partitions: 4,
                ..base.clone()
            });
        }
        out.push(Case {
            size: 1024,
            acks: "all",
            rate: Some(FIXED_RATE),
            linger_ms: 1,
            ..base.clone()
        });
    }
    out
}

/// What one case measured.
#[derive(Debug, Default)]
struct Outcome {
    produced_msgs: u64,
    produce_secs: f64,
    lat: Option<LatencySummary>,
    delivery_errors: u64,
    first_error: Option<String>,
    consumed_msgs: u64,
    consumed_bytes: u64,
    consume_secs: f64,
    /// Records in the log (high minus low watermark, every partition).
    log_msgs: u64,
    peak_rss_mib: f64,
    /// CPU cores the broker / this process kept busy during the produce phase.
    broker_cpu_produce: f64,
    client_cpu_produce: f64,
    broker_cpu_consume: f64,
    client_cpu_consume: f64,
    log_warnings: Vec<String>,
}

/// Produce latency quantiles, milliseconds.
#[derive(Debug, Clone, Copy)]
struct LatencySummary {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Outcome {
    fn produce_mbps(&self, size: usize) -> f64 {
        rate(
            self.produced_msgs as f64 * size as f64 / MB,
            self.produce_secs,
        )
    }
    fn produce_msgps(&self) -> f64 {
        rate(self.produced_msgs as f64, self.produce_secs)
    }
    fn consume_mbps(&self) -> f64 {
        rate(self.consumed_bytes as f64 / MB, self.consume_secs)
    }
}

fn rate(amount: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Runs `cargo xtask bench` with the arguments after `bench`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let args = parse_args(args)?;
    let workspace = Workspace::locate()?;
    let bench_dir = workspace.target.join("bench");
    std::fs::create_dir_all(bench_dir.join("logs"))?;
    let bin = workspace.chronik_release("bench")?;
    if cfg!(debug_assertions) {
        eprintln!(
            "note: the client side (the rdkafka crate's Rust layer) is a debug build; \
             librdkafka itself is optimized C"
        );
    }

    let cases: Vec<Case> = cases(&args.drivers)
        .into_iter()
        .filter(|c| args.only.iter().all(|o| c.label().contains(o.as_str())))
        .collect();
    if cases.is_empty() {
        bail!("no case matches --only {:?}", args.only);
    }
    eprintln!(
        "bench: {} cases, {:.1} s of producing each, broker {}",
        cases.len(),
        args.duration.as_secs_f64(),
        bin.display()
    );
    let mut results = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let tag = format!("[{}/{}] {}", i + 1, cases.len(), case.label());
        let outcome = run_case(&bin, &bench_dir, case, args.duration, &tag)
            .with_context(|| format!("case {}", case.label()))?;
        clear_line();
        eprintln!("{tag}: {}", one_line(case, &outcome));
        results.push((case.clone(), outcome));
    }

    print_table(&results);
    let json_path = bench_dir.join("bench.json");
    let json = to_json(&results, args.duration);
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("write {}", json_path.display()))?;
    println!("\nwrote {}", json_path.display());
    let warned: Vec<_> = results
        .iter()
        .filter(|(_, o)| !o.log_warnings.is_empty())
        .collect();
    if !warned.is_empty() {
        println!(
            "\nbroker warnings (logs in {}):",
            bench_dir.join("logs").display()
        );
        for (c, o) in warned {
            println!(
                "  {}: {} lines, first: {}",
                c.label(),
                o.log_warnings.len(),
                o.log_warnings[0]
            );
        }
    }
    Ok(())
}

fn run_case(
    bin: &Path,
    bench_dir: &Path,
    case: &Case,
    duration: Duration,
    tag: &str,
) -> anyhow::Result<Outcome> {
    let slug = case.slug();
    let log_path = bench_dir.join("logs").join(format!("{slug}.log"));
    let broker = Broker::start(
        bin,
        case.io,
        case.partitions,
        bench_dir.join("data").join(&slug),
        log_path.clone(),
    )?;
    let sampler = Sampler::start(broker.pid());
    let mut progress = Progress::new(tag);
    let topic = "bench";
    let mut out = Outcome::default();

    produce(
        &broker,
        &sampler,
        case,
        topic,
        duration,
        &mut progress,
        &mut out,
    )
    .with_context(|| format!("produce; broker log tail:\n{}", broker.log_tail(20)))?;
    consume(&broker, &sampler, case, topic, &mut progress, &mut out)
        .with_context(|| format!("consume; broker log tail:\n{}", broker.log_tail(20)))?;

    out.peak_rss_mib = sampler.finish();
    drop(broker);
    // Write back what the case left in the page cache now, so the next case's
    // fsyncs do not queue behind gigabytes of someone else's dirty pages.
    let _ = Command::new("sync").status();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    out.log_warnings = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    Ok(out)
}

// ----- producing -------------------------------------------------------------

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

fn produce(
    broker: &Broker,
    sampler: &Sampler,
    case: &Case,
    topic: &str,
    duration: Duration,
    progress: &mut Progress,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let p = producer(&broker.bootstrap(), case)?;
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

    let (broker_cpu0, client_cpu0) = (cpu_time(broker.pid()), cpu_time(0));
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
        progress.show(phase, acked * case.size as u64, start, sampler);
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
    progress.show_now("produce (flushing)", 0, start, sampler);
    p.flush(FLUSH_TIMEOUT).context("flush the producer")?;
    // Until the last acknowledgement, not until `flush` returned: the rdkafka
    // crate's flush polls in 100 ms steps.
    let last_ack = p.context().last_ack_ns.load(Ordering::Relaxed);
    let secs = Duration::from_nanos(last_ack.saturating_sub(start_ns)).as_secs_f64();
    let (broker_cpu1, client_cpu1) = (cpu_time(broker.pid()), cpu_time(0));

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
fn cores(before: Option<Duration>, after: Option<Duration>, secs: f64) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) if secs > 0.0 => a.saturating_sub(b).as_secs_f64() / secs,
        _ => f64::NAN,
    }
}

// ----- consuming -------------------------------------------------------------

fn consume(
    broker: &Broker,
    sampler: &Sampler,
    case: &Case,
    topic: &str,
    progress: &mut Progress,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "chronik-bench-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "1048576")
        .set("queued.max.messages.kbytes", "262144")
        .set("fetch.wait.max.ms", "100")
        // librdkafka 2.x stops fetching for fetch.queue.backoff.ms (default 1 s)
        // once its local queue holds queued.min.messages (default 100k): with
        // 100 B records that throttled the consumer to ~15 MB/s.
        .set("queued.min.messages", "10000000")
        .set("fetch.queue.backoff.ms", "1")
        .create()
        .context("create the librdkafka consumer")?;
    let mut expect = 0u64;
    let mut tpl = TopicPartitionList::new();
    for part in 0..case.partitions as i32 {
        let (lo, hi) = c
            .fetch_watermarks(topic, part, Duration::from_secs(30))
            .with_context(|| format!("watermarks of {topic}/{part}"))?;
        expect += (hi - lo).max(0) as u64;
        tpl.add_partition_offset(topic, part, Offset::Beginning)?;
    }
    out.log_msgs = expect;

    let (broker_cpu0, client_cpu0) = (cpu_time(broker.pid()), cpu_time(0));
    let start = Instant::now();
    c.assign(&tpl).context("assign")?;
    let queue = ConsumerQueue::of(&c)?;
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_msg = start;
    let (mut n, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    while n < expect {
        let before = n;
        for m in queue.next_batch(&mut batch, Duration::from_millis(100))? {
            match m {
                Ok(len) => {
                    n += 1;
                    bytes += len as u64;
                }
                Err(e) => {
                    errors += 1;
                    if errors <= 5 {
                        clear_line();
                        eprintln!("{}: consumer error: {e}", case.label());
                    }
                }
            }
        }
        if n > before {
            last_msg = Instant::now();
        } else if last_msg.elapsed() > CONSUME_STALL {
            clear_line();
            eprintln!(
                "{}: consumer got no record for {CONSUME_STALL:?}; stopping at {n} of {expect}",
                case.label()
            );
            break;
        }
        progress.show("consume", bytes, start, sampler);
    }
    let secs = last_msg.duration_since(start).as_secs_f64();
    let (broker_cpu1, client_cpu1) = (cpu_time(broker.pid()), cpu_time(0));
    out.consumed_msgs = n;
    out.consumed_bytes = bytes;
    out.consume_secs = secs;
    out.broker_cpu_consume = cores(broker_cpu0, broker_cpu1, secs);
    out.client_cpu_consume = cores(client_cpu0, client_cpu1, secs);
    Ok(())
}

/// Records taken from librdkafka per call.
const BATCH: usize = 4096;

/// The consumer's message queue read in batches through the C API
/// (`rd_kafka_consume_batch_queue`): one `poll` per record through the rdkafka
/// crate costs more client CPU than the broker spends serving 100 B records.
struct ConsumerQueue(*mut rdsys::rd_kafka_queue_t);

impl ConsumerQueue {
    fn of(c: &BaseConsumer) -> anyhow::Result<ConsumerQueue> {
        // SAFETY: the client pointer is valid while `c` lives, which outlives
        // the queue handle (dropped first in `consume`).
        let q = unsafe { rdsys::rd_kafka_queue_get_consumer(c.client().native_ptr()) };
        if q.is_null() {
            bail!("librdkafka has no consumer queue (is group.id set?)");
        }
        Ok(ConsumerQueue(q))
    }

    /// Waits up to `timeout` for records; yields each one's value length, or
    /// the error librdkafka delivered in its place.
    fn next_batch<'a>(
        &self,
        buf: &'a mut Vec<*mut rdsys::rd_kafka_message_t>,
        timeout: Duration,
    ) -> anyhow::Result<impl Iterator<Item = Result<usize, String>> + 'a> {
        buf.clear();
        // SAFETY: `buf` has room for BATCH pointers; librdkafka writes at most
        // that many and returns how many it wrote.
        let got = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.0,
                timeout.as_millis() as i32,
                buf.as_mut_ptr(),
                BATCH,
            )
        };
        if got < 0 {
            bail!("rd_kafka_consume_batch_queue failed");
        }
        // SAFETY: librdkafka initialized the first `got` (<= BATCH) slots.
        unsafe { buf.set_len(got as usize) };
        Ok(buf.drain(..).map(|m| {
            // SAFETY: each pointer is a message librdkafka handed us; it is
            // read once and destroyed once, here.
            unsafe {
                let r = if (*m).err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    Ok((*m).len)
                } else {
                    Err(RDKafkaErrorCode::from((*m).err).to_string())
                };
                rdsys::rd_kafka_message_destroy(m);
                r
            }
        }))
    }
}

impl Drop for ConsumerQueue {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_queue_get_consumer and is
        // destroyed exactly once.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0) }
    }
}

// ----- reporting -------------------------------------------------------------

/// The live status line on stderr.
struct Progress {
    tag: String,
    last: Option<Instant>,
}

impl Progress {
    fn new(tag: &str) -> Progress {
        Progress {
            tag: tag.to_string(),
            last: None,
        }
    }

    /// Redraws the line if [`PROGRESS_EVERY`] has passed since the last time.
    fn show(&mut self, phase: &str, bytes: u64, start: Instant, sampler: &Sampler) {
        if self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.show_now(phase, bytes, start, sampler);
    }

    fn show_now(&mut self, phase: &str, bytes: u64, start: Instant, sampler: &Sampler) {
        self.last = Some(Instant::now());
        let secs = start.elapsed().as_secs_f64();
        let speed = if bytes > 0 {
            format!("{:7.1} MB/s", rate(bytes as f64 / MB, secs))
        } else {
            String::new()
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} | {phase} {speed} | {secs:5.1} s | broker rss {:.0} MiB",
            self.tag,
            sampler.rss_mib()
        );
        let _ = err.flush();
    }
}

fn clear_line() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

/// `100 B`, `1 KiB` (sizes from 1 KiB up are whole KiB here).
fn fmt_size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn one_line(c: &Case, o: &Outcome) -> String {
    let mut s = format!(
        "produce {:.1} MB/s ({:.0} msg/s), p50/p99/p999 {}/{}/{} ms, consume {:.1} MB/s, peak rss {:.1} MiB",
        o.produce_mbps(c.size),
        o.produce_msgps(),
        fmt_ms(o.lat.map(|l| l.p50)),
        fmt_ms(o.lat.map(|l| l.p99)),
        fmt_ms(o.lat.map(|l| l.p999)),
        o.consume_mbps(),
        o.peak_rss_mib
    );
    if o.delivery_errors > 0 {
        s.push_str(&format!(
            ", {} delivery errors (first: {})",
            o.delivery_errors,
            o.first_error.as_deref().unwrap_or("?")
        ));
    }
    if o.consumed_msgs < o.log_msgs {
        s.push_str(&format!(
            ", consumed only {} of {}",
            o.consumed_msgs, o.log_msgs
        ));
    }
    s
}

fn print_table(results: &[(Case, Outcome)]) {
    let header = [
        "driver",
        "size",
        "acks",
        "parts",
        "rate",
        "prod MB/s",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "max ms",
        "cons MB/s",
        "peak RSS MiB",
        "cpu b/c prod",
        "cpu b/c cons",
    ];
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|(c, o)| {
            vec![
                c.io.to_string(),
                fmt_size(c.size),
                c.acks.to_string(),
                c.partitions.to_string(),
                c.rate
                    .map_or_else(|| "max".into(), |r| format!("{:.0} MB/s", r / MB)),
                format!("{:.1}", o.produce_mbps(c.size)),
                format!("{:.0}", o.produce_msgps()),
                fmt_ms(o.lat.map(|l| l.p50)),
                fmt_ms(o.lat.map(|l| l.p99)),
                fmt_ms(o.lat.map(|l| l.p999)),
                fmt_ms(o.lat.map(|l| l.max)),
                format!("{:.1}", o.consume_mbps()),
                format!("{:.1}", o.peak_rss_mib),
                format!("{:.2}/{:.2}", o.broker_cpu_produce, o.client_cpu_produce),
                format!("{:.2}/{:.2}", o.broker_cpu_consume, o.client_cpu_consume),
            ]
        })
        .collect();
    println!();
    print!("{}", table::markdown(&header, &rows, 5));
    println!(
        "\nMB = 10^6 bytes of record values; latency = delivery report minus send; \
         cpu b/c = cores busy in broker / bench client"
    );
    for (c, o) in results {
        if o.delivery_errors > 0 || o.consumed_msgs < o.log_msgs {
            println!("{}: {}", c.label(), one_line(c, o));
        }
    }
}

fn to_json(results: &[(Case, Outcome)], duration: Duration) -> serde_json::Value {
    let cases: Vec<serde_json::Value> = results
        .iter()
        .map(|(c, o)| {
            serde_json::json!({
                "io": c.io,
                "size_bytes": c.size,
                "acks": c.acks,
                "partitions": c.partitions,
                "target_rate_mb_s": c.rate.map(|r| r / MB),
                "linger_ms": c.linger_ms,
                "produce": {
                    "mb_s": o.produce_mbps(c.size),
                    "msgs_s": o.produce_msgps(),
                    "records": o.produced_msgs,
                    "seconds": o.produce_secs,
                    "delivery_errors": o.delivery_errors,
                    "first_error": o.first_error,
                    "latency_ms": o.lat.map(|l| serde_json::json!({
                        "p50": l.p50, "p99": l.p99, "p999": l.p999, "max": l.max,
                    })),
                    "broker_cpu_cores": finite(o.broker_cpu_produce),
                    "client_cpu_cores": finite(o.client_cpu_produce),
                },
                "consume": {
                    "mb_s": o.consume_mbps(),
                    "records": o.consumed_msgs,
                    "bytes": o.consumed_bytes,
                    "seconds": o.consume_secs,
                    "records_in_log": o.log_msgs,
                    "broker_cpu_cores": finite(o.broker_cpu_consume),
                    "client_cpu_cores": finite(o.client_cpu_consume),
                },
                "broker_peak_rss_mib": o.peak_rss_mib,
                "broker_log_lines": o.log_warnings.len(),
            })
        })
        .collect();
    serde_json::json!({
        "duration_s": duration.as_secs_f64(),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "client_build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "mb": "10^6 bytes",
        "cases": cases,
    })
}

/// JSON has no NaN: unknown figures become null.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}
