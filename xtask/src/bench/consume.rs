//! The consume phase of a case: everything in the log read back from offset 0
//! by one librdkafka consumer assigned every partition by hand, its records
//! taken in batches through the C API.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::bindings as rdsys;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::broker::{cpu_time, Brokers};
use super::produce::cores;
use super::report::{clear_line, Progress};
use super::{Case, Outcome};

/// How long a consumer may go without a record before the case gives up on it.
const CONSUME_STALL: Duration = Duration::from_secs(30);

/// Reads every partition of `topic` from its start to the high watermark seen
/// first and fills the consume figures of `out`.
pub fn consume(
    brokers: &Brokers,
    case: &Case,
    topic: &str,
    progress: &mut Progress,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers.bootstrap())
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

    let (broker_cpu0, client_cpu0) = (brokers.cpu_time(), cpu_time(0));
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
        progress.show("consume", bytes, start, brokers);
    }
    let secs = last_msg.duration_since(start).as_secs_f64();
    let (broker_cpu1, client_cpu1) = (brokers.cpu_time(), cpu_time(0));
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
