//! Prometheus metrics the admin endpoint serves.
//!
//! A small hand-rolled registry rather than the `prometheus` or
//! `prometheus-client` crates: the broker needs a fixed, known set of metrics, and
//! hand-rolling keeps the per-request path to a few relaxed atomic adds (no lock,
//! no allocation, no label hashing into a shared map) and the output under our
//! control. [`Metrics::render`] writes the Prometheus text format 0.0.4.
//!
//! What is cheap where:
//! - per request ([`Metrics::request`], [`Metrics::bytes_in`], [`Metrics::bytes_out`]):
//!   lock-free; the per-API slot is found in a fixed open-addressed table of
//!   `OnceLock`s, created on first use;
//! - per state change ([`Metrics::set_partition_size`], [`Metrics::set_raft`]): a
//!   shared read lock and atomic stores; the write lock is taken only the first
//!   time a partition or group is seen, and when one is removed;
//! - per scrape ([`Metrics::render`]): read locks and a string build.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use proto_core::raft::{LogIndex, NodeId, Term};

/// Upper bounds of the request-duration histogram buckets, in nanoseconds, with
/// their `le` label (Prometheus' client defaults, extended down to 100µs because a
/// broker answers most requests faster than 5ms).
const BUCKETS: [(u64, &str); 15] = [
    (100_000, "0.0001"),
    (250_000, "0.00025"),
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
];

/// Slots in the per-API table. Kafka has about 70 APIs; a power of two well above
/// that keeps probe chains short.
const API_SLOTS: usize = 128;

/// The `api` label used if more distinct API names arrive than [`API_SLOTS`].
const OVERFLOW_API: &str = "other";

/// Request count and latency histogram of one Kafka API.
struct ApiStats {
    api: &'static str,
    /// Requests per bucket, not cumulative; the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Total time in nanoseconds.
    sum_nanos: AtomicU64,
}

impl ApiStats {
    fn new(api: &'static str) -> ApiStats {
        ApiStats {
            api,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, dur: Duration) {
        let nanos = u64::try_from(dur.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS
            .iter()
            .position(|&(bound, _)| nanos <= bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Cumulative bucket counts as of now; the last is the total count.
    fn cumulative(&self) -> [u64; BUCKETS.len() + 1] {
        let mut total = 0;
        std::array::from_fn(|i| {
            total += self.buckets[i].load(Relaxed);
            total
        })
    }
}

/// The Raft gauge families: name and help, in the order of [`RaftGauges::values`].
const RAFT_FAMILIES: [(&str, &str); 3] = [
    ("chronik_raft_term", "Current Raft term of a group."),
    ("chronik_raft_commit_index", "Raft commit index of a group."),
    (
        "chronik_raft_leader",
        "Node id of a group's leader, 0 if unknown.",
    ),
];

/// The Raft gauges of one group.
#[derive(Default)]
struct RaftGauges {
    /// Term, commit index and leader node id (0 while none is known: node ids
    /// start at 1), as listed in [`RAFT_FAMILIES`].
    values: [AtomicU64; 3],
}

/// Every metric the broker exports. One per process, shared by `Arc` between the
/// driver threads and the admin endpoint.
pub struct Metrics {
    apis: Box<[OnceLock<ApiStats>; API_SLOTS]>,
    overflow: ApiStats,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    connections: AtomicI64,
    isr_shrinks: AtomicU64,
    partitions: RwLock<BTreeMap<(String, i32), AtomicU64>>,
    raft: RwLock<BTreeMap<String, RaftGauges>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty registry: every counter at zero, no labelled series yet.
    pub fn new() -> Metrics {
        Metrics {
            apis: Box::new(std::array::from_fn(|_| OnceLock::new())),
            overflow: ApiStats::new(OVERFLOW_API),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            connections: AtomicI64::new(0),
            isr_shrinks: AtomicU64::new(0),
            partitions: RwLock::new(BTreeMap::new()),
            raft: RwLock::new(BTreeMap::new()),
        }
    }

    /// Records one Kafka request of `api` (e.g. `"Produce"`) that took `dur`:
    /// feeds `chronik_requests_total` and `chronik_request_duration_seconds`.
    pub fn request(&self, api: &'static str, dur: Duration) {
        self.api_stats(api).observe(dur);
    }

    /// Counts `n` bytes of Kafka requests received (`chronik_bytes_in_total`).
    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Relaxed);
    }

    /// Counts `n` bytes of Kafka responses sent (`chronik_bytes_out_total`).
    pub fn bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Relaxed);
    }

    /// A Kafka client connection was accepted (`chronik_connections` goes up).
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Relaxed);
    }

    /// A Kafka client connection was closed (`chronik_connections` goes down).
    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }

    /// Sets `chronik_partition_size_bytes{topic,partition}`: the bytes on disk of
    /// one partition's log.
    pub fn set_partition_size(&self, topic: &str, partition: i32, bytes: u64) {
        let key = (topic.to_string(), partition);
        if let Some(gauge) = read(&self.partitions).get(&key) {
            gauge.store(bytes, Relaxed);
            return;
        }
        write(&self.partitions)
            .entry(key)
            .or_default()
            .store(bytes, Relaxed);
    }

    /// Drops a deleted partition's size series, so it does not linger at its last
    /// value.
    pub fn remove_partition(&self, topic: &str, partition: i32) {
        write(&self.partitions).remove(&(topic.to_string(), partition));
    }

    /// Sets the Raft gauges of `group` (`chronik_raft_term`,
    /// `chronik_raft_commit_index`, `chronik_raft_leader`; the leader gauge is 0
    /// while no leader is known).
    pub fn set_raft(&self, group: &str, term: Term, commit: LogIndex, leader: Option<NodeId>) {
        let store = |g: &RaftGauges| {
            let values = [term.0, commit.0, leader.map_or(0, |n| n.0)];
            for (gauge, value) in g.values.iter().zip(values) {
                gauge.store(value, Relaxed);
            }
        };
        if let Some(gauges) = read(&self.raft).get(group) {
            store(gauges);
            return;
        }
        store(write(&self.raft).entry(group.to_string()).or_default());
    }

    /// Sets `chronik_isr_shrinks_total`: replicas dropped from the ISR of
    /// partitions this node leads, since start.
    pub fn set_isr_shrinks(&self, n: u64) {
        self.isr_shrinks.store(n, Relaxed);
    }

    /// Drops the Raft series of a group this node no longer hosts.
    pub fn remove_raft(&self, group: &str) {
        write(&self.raft).remove(group);
    }

    /// Every metric in the Prometheus text exposition format 0.0.4, series in a
    /// stable order (APIs, topics and groups sorted).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut apis: Vec<&ApiStats> = self.apis.iter().filter_map(OnceLock::get).collect();
        if self.overflow.cumulative()[BUCKETS.len()] > 0 {
            apis.push(&self.overflow);
        }
        apis.sort_by_key(|s| s.api);
        let snapshots: Vec<_> = apis
            .iter()
            .map(|s| (escape(s.api), s.cumulative(), s.sum_nanos.load(Relaxed)))
            .collect();

        header(
            &mut out,
            "chronik_requests_total",
            "counter",
            "Kafka requests handled, by API.",
        );
        for (api, buckets, _) in &snapshots {
            let count = buckets[BUCKETS.len()];
            let _ = writeln!(out, "chronik_requests_total{{api=\"{api}\"}} {count}");
        }

        header(
            &mut out,
            "chronik_request_duration_seconds",
            "histogram",
            "Time to handle a Kafka request, by API.",
        );
        for (api, buckets, sum_nanos) in &snapshots {
            let name = "chronik_request_duration_seconds";
            for (&(_, le), count) in BUCKETS.iter().zip(buckets) {
                let _ = writeln!(out, "{name}_bucket{{api=\"{api}\",le=\"{le}\"}} {count}");
            }
            let count = buckets[BUCKETS.len()];
            let sum = *sum_nanos as f64 / 1e9;
            let _ = writeln!(out, "{name}_bucket{{api=\"{api}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{api=\"{api}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{api=\"{api}\"}} {count}");
        }

        for (name, help, counter) in [
            (
                "chronik_bytes_in_total",
                "Bytes of Kafka requests received.",
                &self.bytes_in,
            ),
            (
                "chronik_bytes_out_total",
                "Bytes of Kafka responses sent.",
                &self.bytes_out,
            ),
            (
                "chronik_isr_shrinks_total",
                "Replicas dropped from the ISR of partitions this node leads.",
                &self.isr_shrinks,
            ),
        ] {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", counter.load(Relaxed));
        }

        header(
            &mut out,
            "chronik_connections",
            "gauge",
            "Open Kafka client connections.",
        );
        let _ = writeln!(
            out,
            "chronik_connections {}",
            self.connections.load(Relaxed)
        );

        header(
            &mut out,
            "chronik_partition_size_bytes",
            "gauge",
            "Bytes on disk of a partition's log.",
        );
        for ((topic, partition), bytes) in read(&self.partitions).iter() {
            let _ = writeln!(
                out,
                "chronik_partition_size_bytes{{topic=\"{}\",partition=\"{partition}\"}} {}",
                escape(topic),
                bytes.load(Relaxed)
            );
        }

        let raft = read(&self.raft);
        for (i, (name, help)) in RAFT_FAMILIES.iter().enumerate() {
            header(&mut out, name, "gauge", help);
            for (group, gauges) in raft.iter() {
                let value = gauges.values[i].load(Relaxed);
                let _ = writeln!(out, "{name}{{group=\"{}\"}} {value}", escape(group));
            }
        }
        out
    }

    /// The stats slot of `api`, created on first use.
    fn api_stats(&self, api: &'static str) -> &ApiStats {
        // FNV-1a: API names are short, so this is a handful of multiplies.
        let hash = api.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let start = (hash % API_SLOTS as u64) as usize;
        for i in 0..API_SLOTS {
            let stats = self.apis[(start + i) % API_SLOTS].get_or_init(|| ApiStats::new(api));
            if std::ptr::eq(stats.api, api) || stats.api == api {
                return stats;
            }
        }
        &self.overflow
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the text format requires (`\`, `"` and newline).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A read guard that survives a panic elsewhere: the maps hold plain atomics, so
/// a poisoned lock never guards a broken invariant.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// The write-guard twin of [`read`].
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    /// One sample line: metric name, labels, value.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: BTreeMap<String, String>,
        value: f64,
    }

    /// Parses the text format strictly enough to catch malformed output: every
    /// sample belongs to a family declared by one `# TYPE` line (after its `# HELP`)
    /// before it, labels are well quoted, values are numbers.
    fn parse(text: &str) -> Vec<Sample> {
        let mut types: HashMap<String, String> = HashMap::new();
        let mut helped = Vec::new();
        let mut samples = Vec::new();
        assert!(
            text.ends_with('\n'),
            "the last line must end with a newline"
        );
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP has text");
                assert!(!help.is_empty());
                helped.push(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert_eq!(
                    helped.last().map(String::as_str),
                    Some(name),
                    "HELP before TYPE"
                );
                assert!(
                    types.insert(name.into(), kind.into()).is_none(),
                    "TYPE twice: {name}"
                );
            } else {
                let sample = parse_sample(line);
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        let base = sample.name.strip_suffix(s)?;
                        (types.get(base).map(String::as_str) == Some("histogram"))
                            .then(|| base.to_string())
                    })
                    .unwrap_or_else(|| sample.name.clone());
                assert!(types.contains_key(&family), "no TYPE before {line}");
                samples.push(sample);
            }
        }
        samples
    }

    fn parse_sample(line: &str) -> Sample {
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, mut rest) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("labels close")),
            None => (series, ""),
        };
        assert!(name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        let mut labels = BTreeMap::new();
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").expect("label=\"value\"");
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().expect("label value closes") {
                    (_, '\\') => match chars.next().expect("escape") {
                        (_, 'n') => value.push('\n'),
                        (_, c @ ('\\' | '"')) => value.push(c),
                        (_, c) => panic!("bad escape \\{c} in {line}"),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.to_string(), value);
            rest = after[end + 1..]
                .strip_prefix(',')
                .unwrap_or(&after[end + 1..]);
        }
        Sample {
            name: name.to_string(),
            labels,
            value,
        }
    }

    fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> &'a Sample {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .unwrap_or_else(|| panic!("no {name}{labels:?}"))
    }

    #[test]
    fn empty_registry_renders_valid_zeroes() {
        let samples = parse(&Metrics::new().render());
        assert_eq!(find(&samples, "chronik_bytes_in_total", &[]).value, 0.0);
        assert_eq!(find(&samples, "chronik_connections", &[]).value, 0.0);
        assert!(samples.iter().all(|s| s.name != "chronik_requests_total"));
    }

    #[test]
    fn requests_fill_cumulative_buckets_sum_and_count() {
        let m = Metrics::new();
        m.request("Produce", Duration::from_micros(50)); // ≤ 0.0001
        m.request("Produce", Duration::from_millis(3)); // ≤ 0.005
        m.request("Produce", Duration::from_secs(60)); // +Inf only
        m.request("Fetch", Duration::from_millis(1)); // exactly on the 0.001 bound
        let samples = parse(&m.render());

        let produce = [("api", "Produce")];
        assert_eq!(
            find(&samples, "chronik_requests_total", &produce).value,
            3.0
        );
        let bucket = |api: &str, le: &str| {
            find(
                &samples,
                "chronik_request_duration_seconds_bucket",
                &[("api", api), ("le", le)],
            )
            .value
        };
        assert_eq!(bucket("Produce", "0.0001"), 1.0);
        assert_eq!(bucket("Produce", "0.0025"), 1.0);
        assert_eq!(bucket("Produce", "0.005"), 2.0);
        assert_eq!(bucket("Produce", "5"), 2.0);
        assert_eq!(bucket("Produce", "+Inf"), 3.0);
        assert_eq!(bucket("Fetch", "0.0005"), 0.0);
        assert_eq!(bucket("Fetch", "0.001"), 1.0);
        let sum = find(&samples, "chronik_request_duration_seconds_sum", &produce).value;
        assert!((sum - 60.00305).abs() < 1e-9, "sum {sum}");
        assert_eq!(
            find(&samples, "chronik_request_duration_seconds_count", &produce).value,
            3.0
        );

        // Buckets are cumulative: never decreasing, in `le` order.
        let les: Vec<f64> = samples
            .iter()
            .filter(|s| s.name.ends_with("_bucket") && s.labels["api"] == "Produce")
            .map(|s| {
                let le = &s.labels["le"];
                assert!(le == "+Inf" || le.parse::<f64>().is_ok());
                s.value
            })
            .collect();
        assert_eq!(les.len(), BUCKETS.len() + 1);
        assert!(les.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn counters_gauges_and_labels_render_their_values() {
        let m = Metrics::new();
        m.bytes_in(100);
        m.bytes_in(23);
        m.bytes_out(7);
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        m.set_partition_size("orders", 0, 10);
        m.set_partition_size("orders", 0, 4096);
        m.set_partition_size("we\"ird\\name\n", 3, 1);
        m.set_raft("g7", Term(5), LogIndex(42), Some(NodeId(2)));
        m.set_raft("meta", Term(1), LogIndex(0), None);
        let samples = parse(&m.render());

        assert_eq!(find(&samples, "chronik_bytes_in_total", &[]).value, 123.0);
        assert_eq!(find(&samples, "chronik_bytes_out_total", &[]).value, 7.0);
        assert_eq!(find(&samples, "chronik_connections", &[]).value, 1.0);
        let size = |topic, p| {
            find(
                &samples,
                "chronik_partition_size_bytes",
                &[("topic", topic), ("partition", p)],
            )
            .value
        };
        assert_eq!(size("orders", "0"), 4096.0);
        assert_eq!(size("we\"ird\\name\n", "3"), 1.0);
        assert_eq!(
            find(&samples, "chronik_raft_term", &[("group", "g7")]).value,
            5.0
        );
        assert_eq!(
            find(&samples, "chronik_raft_commit_index", &[("group", "g7")]).value,
            42.0
        );
        assert_eq!(
            find(&samples, "chronik_raft_leader", &[("group", "g7")]).value,
            2.0
        );
        assert_eq!(
            find(&samples, "chronik_raft_leader", &[("group", "meta")]).value,
            0.0
        );
    }

    #[test]
    fn removed_series_disappear() {
        let m = Metrics::new();
        m.set_partition_size("t", 0, 1);
        m.set_partition_size("t", 1, 1);
        m.set_raft("g1", Term(1), LogIndex(1), None);
        m.remove_partition("t", 0);
        m.remove_raft("g1");
        let text = m.render();
        assert!(!text.contains("partition=\"0\""));
        assert!(text.contains("partition=\"1\""));
        assert!(!text.contains("group=\"g1\""));
    }

    #[test]
    fn more_apis_than_slots_spill_into_other() {
        let m = Metrics::new();
        let names: Vec<&'static str> = (0..API_SLOTS + 5)
            .map(|i| &*Box::leak(format!("Api{i}").into_boxed_str()))
            .collect();
        for name in &names {
            m.request(name, Duration::from_millis(1));
        }
        m.request(names[0], Duration::from_millis(1));
        let samples = parse(&m.render());
        assert_eq!(
            find(&samples, "chronik_requests_total", &[("api", "Api0")]).value,
            2.0
        );
        assert_eq!(
            find(&samples, "chronik_requests_total", &[("api", "other")]).value,
            5.0
        );
        let total: f64 = samples
            .iter()
            .filter(|s| s.name == "chronik_requests_total")
            .map(|s| s.value)
            .sum();
        assert_eq!(total, (API_SLOTS + 6) as f64);
    }

    #[test]
    fn concurrent_requests_are_all_counted() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    let api = if t % 2 == 0 { "Produce" } else { "Fetch" };
                    for _ in 0..1000 {
                        m.request(api, Duration::from_micros(300));
                        m.bytes_in(1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let samples = parse(&m.render());
        assert_eq!(
            find(&samples, "chronik_requests_total", &[("api", "Produce")]).value,
            2000.0
        );
        assert_eq!(
            find(&samples, "chronik_requests_total", &[("api", "Fetch")]).value,
            2000.0
        );
        assert_eq!(find(&samples, "chronik_bytes_in_total", &[]).value, 4000.0);
    }
}
