//! librdkafka (the `rdkafka` crate, blocking API) helpers for `clients_rdkafka.rs`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::bindings as ffi;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Generous deadline for any single client operation against a local broker.
pub const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// One record to produce and the exact record expected back.
#[derive(Clone, Debug, PartialEq)]
pub struct Msg {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// CreateTime to set; `None` lets the client stamp it.
    pub timestamp: Option<i64>,
}

/// `n` records exercising null keys, null values (tombstones), no headers,
/// several headers, null and empty header values, and compressible values of
/// varying sizes.
pub fn messages(n: usize, tag: &str) -> Vec<Msg> {
    (0..n)
        .map(|i| {
            let key = (i % 10 != 3).then(|| format!("{tag}-key-{i}").into_bytes());
            let value = (i % 17 != 5).then(|| {
                format!("{tag} value {i} lorem ipsum dolor sit amet; ")
                    .repeat(1 + i % 23)
                    .into_bytes()
            });
            let mut headers = Vec::new();
            if i % 4 != 0 {
                headers.push(("index".to_string(), Some(i.to_string().into_bytes())));
                if i % 4 == 2 {
                    headers.push(("null".to_string(), None));
                    headers.push(("empty".to_string(), Some(Vec::new())));
                    headers.push(("index".to_string(), Some(b"duplicate name".to_vec())));
                }
            }
            Msg {
                key,
                value,
                headers,
                timestamp: None,
            }
        })
        .collect()
}

// ----- producing -------------------------------------------------------------

/// The outcome of one produced record, as its delivery report told it.
#[derive(Clone, Debug)]
pub struct Report {
    pub id: usize,
    pub result: Result<(i32, i64), String>,
}

#[derive(Clone, Default)]
pub struct Reports {
    pub all: Arc<Mutex<Vec<Report>>>,
    pub ok: Arc<AtomicUsize>,
}

pub struct ReportingContext(pub Reports);

impl ClientContext for ReportingContext {}

impl ProducerContext for ReportingContext {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<usize>) {
        let result = match result {
            Ok(m) => {
                self.0.ok.fetch_add(1, Ordering::SeqCst);
                Ok((m.partition(), m.offset()))
            }
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.all.lock().unwrap().push(Report { id: *id, result });
    }
}

pub type Prod = BaseProducer<ReportingContext>;

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> (Prod, Reports) {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "30000")
        // Plain (retries may duplicate) unless a test asks for idempotence;
        // clients_idempotence.rs tests the idempotent producer.
        .set("enable.idempotence", "false");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let reports = Reports::default();
    let p = cfg
        .create_with_context(ReportingContext(reports.clone()))
        .expect("create librdkafka producer");
    (p, reports)
}

/// Enqueues one record, polling while the local queue is full.
pub fn send(p: &Prod, topic: &str, partition: Option<i32>, id: usize, m: &Msg) {
    let mut headers = OwnedHeaders::new();
    for (k, v) in &m.headers {
        headers = headers.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    let deadline = Instant::now() + OP_TIMEOUT;
    loop {
        let mut rec: BaseRecord<'_, [u8], [u8], Box<usize>> =
            BaseRecord::with_opaque_to(topic, Box::new(id));
        if let Some(k) = &m.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &m.value {
            rec = rec.payload(v.as_slice());
        }
        if !m.headers.is_empty() {
            rec = rec.headers(headers.clone());
        }
        if let Some(ts) = m.timestamp {
            rec = rec.timestamp(ts);
        }
        if let Some(p) = partition {
            rec = rec.partition(p);
        }
        match p.send(rec) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                assert!(
                    Instant::now() < deadline,
                    "producer queue full for {OP_TIMEOUT:?}"
                );
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("enqueue record {id} to {topic}: {e}"),
        }
    }
}

/// Produces `msgs` (ids = indexes) and waits for every delivery report; panics
/// unless every record was acknowledged. Reports are returned in id order.
pub fn produce_all(
    bootstrap: &str,
    topic: &str,
    partition: Option<i32>,
    msgs: &[Msg],
    extra: &[(&str, &str)],
) -> Vec<Report> {
    let (p, reports) = producer(bootstrap, extra);
    for (i, m) in msgs.iter().enumerate() {
        send(&p, topic, partition, i, m);
        p.poll(Duration::ZERO);
    }
    p.flush(OP_TIMEOUT)
        .unwrap_or_else(|e| panic!("flush {topic} ({extra:?}): {e}"));
    let mut all = reports.all.lock().unwrap().clone();
    all.sort_by_key(|r| r.id);
    assert_eq!(all.len(), msgs.len(), "one delivery report per record");
    let failed: Vec<_> = all.iter().filter(|r| r.result.is_err()).take(5).collect();
    assert!(
        failed.is_empty(),
        "{topic} ({extra:?}): {} of {} records failed, e.g. {failed:?}",
        all.iter().filter(|r| r.result.is_err()).count(),
        all.len()
    );
    all
}

/// The partition and offset of an acknowledged report.
pub fn acked(r: &Report) -> (i32, i64) {
    *r.result.as_ref().expect("acknowledged")
}

// ----- consuming -------------------------------------------------------------

/// The consumer every test uses.
pub type Cons = BaseConsumer;

/// A consumer with manual assignment (librdkafka wants a `group.id` for
/// `assign`, but never joins the group and nothing is committed; the group
/// tests use `clients/group.rs`), reporting partition EOF.
pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> Cons {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", "chronik-compat-unused")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("create librdkafka consumer")
}

pub fn assign(c: &Cons, topic: &str, partition: i32, from: Offset) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, from).unwrap();
    c.assign(&tpl).expect("assign");
}

/// Reads `topic`/`partition` from offset 0 until it has `expect` records and
/// has then seen the partition's end; panics at the deadline, or if more
/// than `expect` records are there.
pub fn consume(bootstrap: &str, topic: &str, partition: i32, expect: usize) -> Vec<OwnedMessage> {
    let c = consumer(bootstrap, &[]);
    assign(&c, topic, partition, Offset::Offset(0));
    let deadline = Instant::now() + OP_TIMEOUT;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    loop {
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(KafkaError::PartitionEOF(_))) if out.len() >= expect => break,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => errors.push(e.to_string()),
        }
        if Instant::now() > deadline {
            panic!(
                "{topic}/{partition}: consumed {} of {expect} records in {OP_TIMEOUT:?}; \
                 consumer errors: {errors:?}",
                out.len()
            );
        }
    }
    if !errors.is_empty() {
        eprintln!("{topic}/{partition}: consumer errors on the way: {errors:?}");
    }
    assert_eq!(
        out.len(),
        expect,
        "{topic}/{partition}: more records than produced"
    );
    out
}

pub fn headers_of(m: &impl Message) -> Vec<(String, Option<Vec<u8>>)> {
    match m.headers() {
        None => Vec::new(),
        Some(h) => h
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

/// Asserts `got` is exactly `want` (key, value, headers, explicit timestamp).
pub fn assert_same(ctx: &str, want: &Msg, got: &impl Message) {
    assert_eq!(got.key().map(|k| k.to_vec()), want.key, "{ctx}: key");
    assert_eq!(
        got.payload().map(|v| v.to_vec()),
        want.value,
        "{ctx}: value"
    );
    assert_eq!(headers_of(got), want.headers, "{ctx}: headers");
    match (want.timestamp, got.timestamp().to_millis()) {
        (Some(ts), got_ts) => assert_eq!(got_ts, Some(ts), "{ctx}: timestamp"),
        (None, Some(ts)) => assert!(ts > 1_600_000_000_000, "{ctx}: timestamp {ts}"),
        (None, None) => panic!("{ctx}: record has no timestamp"),
    }
}

/// Offsets must run 0, 1, 2, ... with no gaps.
pub fn assert_contiguous(ctx: &str, msgs: &[OwnedMessage]) {
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.offset(), i as i64, "{ctx}: offset of record #{i}");
    }
}

pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let c = consumer(bootstrap, &[]);
    c.fetch_watermarks(topic, partition, OP_TIMEOUT)
        .unwrap_or_else(|e| panic!("ListOffsets {topic}/{partition}: {e}"))
}

pub fn borrowed_to_owned(m: BorrowedMessage<'_>) -> OwnedMessage {
    m.detach()
}

// ----- admin -----------------------------------------------------------------

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create librdkafka admin client")
}

pub fn admin_opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(OP_TIMEOUT))
        .operation_timeout(Some(Duration::from_secs(10)))
}

/// Topic names and partition counts the broker's metadata lists.
pub fn topics(a: &AdminClient<DefaultClientContext>) -> BTreeMap<String, usize> {
    let md = a
        .inner()
        .fetch_metadata(None, OP_TIMEOUT)
        .expect("Metadata (all topics)");
    md.topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

/// Runs a future to completion on this thread (rdkafka's admin futures are
/// completed by its own background thread; no runtime is needed).
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(100)),
        }
    }
}

/// One incremental config change.
pub enum IncOp<'a> {
    Set(&'a str, &'a str),
    Delete(&'a str),
}

/// One admin request through librdkafka's C API, for the requests the
/// `rdkafka` crate does not wrap: `start(rk, options, queue)` issues the
/// request with the request timeout set and its result due on `queue`;
/// `read(event)` reads the result, unless the request failed as a whole or no
/// result came before the deadline (`what` names the request in that error).
/// The options, the queue and the event are freed here, after `read`; what
/// `start` was given stays the caller's.
pub fn admin_request<T>(
    a: &AdminClient<DefaultClientContext>,
    op: ffi::rd_kafka_admin_op_t,
    what: &str,
    start: impl FnOnce(
        *mut ffi::rd_kafka_t,
        *mut ffi::rd_kafka_AdminOptions_t,
        *mut ffi::rd_kafka_queue_t,
    ),
    read: impl FnOnce(*mut ffi::rd_kafka_event_t) -> Result<T, String>,
) -> Result<T, String> {
    let rk = a.inner().native_ptr();
    // SAFETY: `rk` lives as long as `a`; the options, the queue and the event
    // are created here and destroyed here, after their last use.
    unsafe {
        let opts = ffi::rd_kafka_AdminOptions_new(rk, op);
        let mut errstr = [0 as std::os::raw::c_char; 256];
        ffi::rd_kafka_AdminOptions_set_request_timeout(
            opts,
            OP_TIMEOUT.as_millis() as i32,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        let queue = ffi::rd_kafka_queue_new(rk);
        start(rk, opts, queue);
        let ev = ffi::rd_kafka_queue_poll(queue, (OP_TIMEOUT.as_millis() + 5000) as i32);
        let out = if ev.is_null() {
            Err(format!("no {what} result before the deadline"))
        } else if ffi::rd_kafka_event_error(ev)
            != ffi::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            Err(format!(
                "request failed: {}",
                CStr::from_ptr(ffi::rd_kafka_event_error_string(ev)).to_string_lossy()
            ))
        } else {
            read(ev)
        };
        if !ev.is_null() {
            ffi::rd_kafka_event_destroy(ev);
        }
        ffi::rd_kafka_queue_destroy(queue);
        ffi::rd_kafka_AdminOptions_destroy(opts);
        out
    }
}

/// IncrementalAlterConfigs (API 44) on one topic, through librdkafka's C API
/// (the `rdkafka` crate does not wrap it). Returns the per-resource result.
pub fn incremental_alter_topic(
    a: &AdminClient<DefaultClientContext>,
    topic: &str,
    ops: &[IncOp<'_>],
) -> Result<(), String> {
    use ffi::rd_kafka_AlterConfigOpType_t::*;
    let name = CString::new(topic).unwrap();
    // SAFETY: plain use of librdkafka's admin C API; the resource created here
    // is destroyed here, and result pointers are read before the event is freed.
    unsafe {
        let res = ffi::rd_kafka_ConfigResource_new(
            ffi::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            name.as_ptr(),
        );
        for op in ops {
            let (k, t, v) = match op {
                IncOp::Set(k, v) => (*k, RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET, Some(*v)),
                IncOp::Delete(k) => (*k, RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE, None),
            };
            let k = CString::new(k).unwrap();
            let v = v.map(|v| CString::new(v).unwrap());
            let err = ffi::rd_kafka_ConfigResource_add_incremental_config(
                res,
                k.as_ptr(),
                t,
                v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
            );
            assert!(err.is_null(), "add_incremental_config rejected locally");
        }
        let out = admin_request(
            a,
            ffi::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
            "IncrementalAlterConfigs",
            |rk, opts, queue| {
                let mut resources = [res];
                ffi::rd_kafka_IncrementalAlterConfigs(rk, resources.as_mut_ptr(), 1, opts, queue);
            },
            |ev| {
                let result = ffi::rd_kafka_event_IncrementalAlterConfigs_result(ev);
                let mut n = 0usize;
                let arr = ffi::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut n);
                if n != 1 {
                    return Err(format!("{n} resources in the result, expected 1"));
                }
                let r = *arr;
                let code = ffi::rd_kafka_ConfigResource_error(r);
                if code == ffi::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    return Ok(());
                }
                let msg = ffi::rd_kafka_ConfigResource_error_string(r);
                let msg = if msg.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(msg).to_string_lossy().into_owned()
                };
                Err(format!("{code:?}: {msg}"))
            },
        );
        ffi::rd_kafka_ConfigResource_destroy(res);
        out
    }
}
