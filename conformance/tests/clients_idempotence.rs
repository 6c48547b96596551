//! The idempotent producer (librdkafka, `enable.idempotence=true`) against a
//! real `chronik` process, once per I/O driver, through a proxy that loses
//! Produce answers after the broker has appended the records
//! (`clients/proxy.rs`): the producer retries, and the broker must answer the
//! retry as a duplicate with the original offsets instead of appending again,
//! also when it was SIGKILLed between the two and rebuilt its producer state
//! from the log. A non-idempotent producer through the same proxy shows that
//! the retries really happen: its records are duplicated.
//!
//! Run: `cargo test -p conformance --test clients_idempotence`.

mod clients;
#[path = "clients/proxy.rs"]
mod proxy;
#[path = "clients/rd.rs"]
mod rd;

use std::collections::BTreeMap;
use std::time::Duration;

use clients::broker::{wait_for, Broker, DRIVERS};
use proxy::{CutPlan, LostAnswer, Proxy};
use rd::*;
use rdkafka::message::Message;
use rdkafka::producer::Producer;

/// A broker that advertises the proxy, and the proxy forwarding to it.
fn proxied_broker(io: &str) -> (Proxy, Broker) {
    let mut proxy = Proxy::bind();
    let b = Broker::start_with(io, &["--advertised-listener", &proxy.addr()]);
    proxy.forward_to(&b.bootstrap());
    (proxy, b)
}

fn numbered(tag: &str, n: usize) -> Vec<Msg> {
    (0..n)
        .map(|id| Msg {
            key: Some(id.to_string().into_bytes()),
            value: Some(format!("{tag}-{id}").into_bytes()),
            headers: vec![],
            timestamp: None,
        })
        .collect()
}

/// Settings that make many small Produce requests and retry quickly.
const SMALL_BATCHES: [(&str, &str); 5] = [
    ("acks", "all"),
    ("linger.ms", "5"),
    ("batch.num.messages", "20"),
    ("reconnect.backoff.ms", "10"),
    ("reconnect.backoff.max.ms", "200"),
];

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(more).copied().collect()
}

/// The lost answers that were successes: the broker had appended those
/// batches, at these base offsets, before the client lost track of them.
fn appended_then_lost(ctx: &str, lost: &[LostAnswer]) -> Vec<i64> {
    assert!(!lost.is_empty(), "{ctx}: the proxy lost no Produce answer");
    let offsets: Vec<i64> = lost
        .iter()
        .filter_map(|l| match l.first_partition {
            Some((0, base)) => Some(base),
            _ => None,
        })
        .collect();
    assert!(
        !offsets.is_empty(),
        "{ctx}: no lost Produce answer was a success, so no retry had to be deduplicated: {lost:?}"
    );
    offsets
}

/// Every record acknowledged at the offset equal to its id (exactly once, in
/// order), and the log holding exactly those records.
fn assert_exactly_once_in_order(
    ctx: &str,
    bootstrap: &str,
    topic: &str,
    reports: &[Report],
    n: usize,
) {
    assert_eq!(reports.len(), n, "{ctx}: one report per record");
    for r in reports {
        assert_eq!(
            r.result,
            Ok((0, r.id as i64)),
            "{ctx}: record {} must be acknowledged at offset {}",
            r.id,
            r.id
        );
    }
    let got = consume(bootstrap, topic, 0, n);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(
            (m.offset(), m.payload()),
            (i as i64, Some(format!("{topic}-{i}").as_bytes())),
            "{ctx}: the log at offset {i}"
        );
    }
}

/// librdkafka with enable.idempotence=true produces 1000 records in batches of
/// 20 while the proxy loses the answer to every third Produce request (up to
/// eight times) after the broker appended it. Every delivery succeeds, each
/// record is in the log exactly once at the offset its report names, and the
/// log is in production order.
#[test]
fn idempotent_producer_retries_through_cut_connections_exactly_once() {
    const N: usize = 1000;
    for io in DRIVERS {
        let (proxy, _b) = proxied_broker(io);
        let topic = "idem-cuts";
        let ctx = format!("[{io}] {topic}");
        proxy.cut_produce(CutPlan {
            every: 3,
            max_cuts: 8,
            then_pause: false,
        });
        let reports = produce_all(
            &proxy.addr(),
            topic,
            Some(0),
            &numbered(topic, N),
            &with(&SMALL_BATCHES, &[("enable.idempotence", "true")]),
        );
        proxy.disarm();
        let lost = proxy.lost();
        let appended = appended_then_lost(&ctx, &lost);
        eprintln!(
            "{ctx}: {} Produce requests, {} connections, {} answers lost (appended at {appended:?})",
            proxy.produce_requests(),
            proxy.connections(),
            lost.len()
        );
        assert_exactly_once_in_order(&ctx, &proxy.addr(), topic, &reports, N);
    }
}

/// As above, but after the proxy loses one Produce answer it refuses every
/// connection until the broker has been SIGKILLed and started again, so the
/// producer's retry reaches a broker that only knows the first attempt from
/// its log. Still every record exactly once, in order.
#[test]
fn idempotent_retry_after_broker_restart_is_not_duplicated() {
    const N: usize = 500;
    for io in DRIVERS {
        let (proxy, mut b) = proxied_broker(io);
        let topic = "idem-restart";
        let ctx = format!("[{io}] {topic}");
        proxy.cut_produce(CutPlan {
            every: 4,
            max_cuts: 1,
            then_pause: true,
        });
        let (p, reports) = producer(
            &proxy.addr(),
            &with(
                &SMALL_BATCHES,
                &[
                    ("enable.idempotence", "true"),
                    // Long enough for the outage: librdkafka keeps retrying.
                    ("message.timeout.ms", "120000"),
                ],
            ),
        );
        let msgs = numbered(topic, N);
        for (id, m) in msgs.iter().enumerate() {
            send(&p, topic, Some(0), id, m);
            p.poll(Duration::ZERO);
        }
        wait_for(
            &format!("{ctx}: the proxy to lose a Produce answer"),
            OP_TIMEOUT,
            || (!proxy.lost().is_empty()).then_some(()),
        );
        assert!(proxy.paused(), "{ctx}: the proxy pauses after the cut");
        let appended = appended_then_lost(&ctx, &proxy.lost());
        b.kill9();
        b.restart();
        proxy.resume();
        p.flush(Duration::from_secs(90))
            .unwrap_or_else(|e| panic!("{ctx}: flush after the restart: {e}"));
        let mut all = reports.all.lock().unwrap().clone();
        all.sort_by_key(|r| r.id);
        eprintln!(
            "{ctx}: {} Produce requests, {} connections ({} refused while the broker restarted), \
             lost answer appended at {appended:?}",
            proxy.produce_requests(),
            proxy.connections(),
            proxy.refused()
        );
        assert_exactly_once_in_order(&ctx, &proxy.addr(), topic, &all, N);
    }
}

/// The same proxy with enable.idempotence=false (one request in flight, so
/// order is kept): every delivery succeeds, but each batch whose answer was
/// lost is in the log twice. This proves the cuts make retries of appended
/// batches, which the idempotent tests above rely on.
#[test]
fn plain_producer_through_cut_connections_duplicates() {
    const N: usize = 300;
    for io in DRIVERS {
        let (proxy, _b) = proxied_broker(io);
        let topic = "plain-cuts";
        let ctx = format!("[{io}] {topic}");
        proxy.cut_produce(CutPlan {
            every: 3,
            max_cuts: 5,
            then_pause: false,
        });
        produce_all(
            &proxy.addr(),
            topic,
            Some(0),
            &numbered(topic, N),
            &with(
                &SMALL_BATCHES,
                &[
                    ("enable.idempotence", "false"),
                    ("max.in.flight.requests.per.connection", "1"),
                    ("retries", "100"),
                ],
            ),
        );
        proxy.disarm();
        let appended = appended_then_lost(&ctx, &proxy.lost());
        let (_, end) = watermarks(&proxy.addr(), topic, 0);
        let got = consume(&proxy.addr(), topic, 0, end as usize);
        let mut copies: BTreeMap<&[u8], usize> = BTreeMap::new();
        for m in &got {
            *copies.entry(m.payload().unwrap_or_default()).or_default() += 1;
        }
        assert_eq!(copies.len(), N, "{ctx}: every record is in the log");
        for base in &appended {
            let m = &got[*base as usize];
            assert!(
                copies[m.payload().unwrap_or_default()] >= 2,
                "{ctx}: the batch at {base}, whose answer was lost, was not retried"
            );
        }
        eprintln!(
            "{ctx}: {N} records, log end offset {end}, lost answers appended at {appended:?}"
        );
    }
}

/// Each new idempotent producer gets a producer id no earlier producer had,
/// also after a SIGKILL and after a clean restart: if an id were handed out
/// again, the new producer's first batches (sequence 0, ...) would look like
/// duplicates of the old producer's and be answered with old offsets instead
/// of being appended. Four producers in turn, 50 records each: every record
/// is appended after the ones before it.
#[test]
fn producer_ids_are_never_reused_across_restarts() {
    const EACH: usize = 50;
    for io in DRIVERS {
        let mut b = Broker::start(io);
        let topic = "idem-ids";
        let mut want = Vec::new();
        for round in 0..4 {
            match round {
                2 => {
                    b.kill9();
                    b.restart();
                }
                3 => b.restart(),
                _ => {}
            }
            let tag = format!("{topic}-p{round}");
            let msgs: Vec<Msg> = (0..EACH)
                .map(|i| Msg {
                    key: None,
                    value: Some(format!("{tag}-{i}").into_bytes()),
                    headers: vec![],
                    timestamp: None,
                })
                .collect();
            let reports = produce_all(
                &b.bootstrap(),
                topic,
                Some(0),
                &msgs,
                &[("enable.idempotence", "true"), ("acks", "all")],
            );
            let offsets: Vec<i64> = reports.iter().map(|r| acked(r).1).collect();
            let first = (round * EACH) as i64;
            assert_eq!(
                offsets,
                (first..first + EACH as i64).collect::<Vec<_>>(),
                "[{io}] offsets of producer #{round}'s records"
            );
            want.extend(msgs.into_iter().map(|m| m.value.unwrap()));
        }
        let got = consume(&b.bootstrap(), topic, 0, want.len());
        let got: Vec<Vec<u8>> = got
            .iter()
            .map(|m| m.payload().unwrap_or_default().to_vec())
            .collect();
        assert_eq!(
            got, want,
            "[{io}] the log holds every producer's records in turn"
        );
    }
}
