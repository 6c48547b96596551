//! Judges a chaos run's [`History`] the way Jepsen's Kafka workload does
//! (<https://jepsen.io/analyses/redpanda-21.10.1>): every acknowledgement is
//! held to the final log, every poll to the final log and to the polls before
//! it. Each [`AnomalyKind`] is a promise Kafka makes that the run saw broken;
//! a [`Verdict`] without anomalies is a pass.
//!
//! What the checker takes as evidence, and what it does not:
//! - Sends that failed or never completed are indefinite (a timeout may still
//!   have written the record), so their records may or may not be in the log
//!   and neither is an anomaly. They still count as sightings of a value at a
//!   position only when something else (a poll, the final log) reports them.
//! - Records whose value is `None` (not ours) occupy offsets, so they count
//!   when deciding whether a consumer skipped an offset, but take no part in
//!   the value-based checks.
//! - An acknowledgement with a negative offset (the client did not learn where
//!   the record went) is held to the final log by value only.
//!
//! Every check is one pass over the sends or the polls with hash maps, so a
//! history of a million polls is judged in about a second.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde_json::{json, Value as Json};

use super::history::{ConsumerKind, FinalRead, History, PollOp, SendOutcome, Value};
use crate::table;

/// How many anomalies of each kind the JSON verdict lists in full: the counts
/// are always exact, and `history.json` keeps the rest of the evidence.
const JSON_ANOMALIES_PER_KIND: usize = 100;

/// How many example details the verdict table shows per kind.
const TABLE_EXAMPLES_PER_KIND: usize = 3;

/// A place in the topic: `(partition, offset)`.
type Position = (i32, i64);

/// The kinds of broken promise the checker looks for, in the order the
/// verdict lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// An acknowledged value is absent from the final log: acks=all promised
    /// it was stored.
    Lost,
    /// One value sits at more than one position (in the final log, or across
    /// acks, polls and the final log): a record was written twice, or
    /// reported where it is not.
    Duplicate,
    /// One position was seen holding two different values: the replicas
    /// disagree about the log.
    InconsistentOffset,
    /// A producer's acknowledged offsets on one partition went down (or
    /// repeated) in invocation order.
    NonMonotonicSend,
    /// A consumer's polled offsets on one partition went down (or repeated)
    /// within one assignment epoch.
    NonMonotonicPoll,
    /// A consumer jumped over offsets the final log holds records at.
    SkippedOffset,
    /// Acknowledged and in the final log, but no consumer ever polled it.
    Unseen,
    /// A consumer polled a value the final log does not hold: it read
    /// something that did not survive (beyond the real high watermark).
    VanishedRead,
}

impl AnomalyKind {
    /// Every kind, in verdict order, so the table lists the clean ones too.
    pub const ALL: [AnomalyKind; 8] = [
        AnomalyKind::Lost,
        AnomalyKind::Duplicate,
        AnomalyKind::InconsistentOffset,
        AnomalyKind::NonMonotonicSend,
        AnomalyKind::NonMonotonicPoll,
        AnomalyKind::SkippedOffset,
        AnomalyKind::Unseen,
        AnomalyKind::VanishedRead,
    ];

    /// The name the table and the JSON use (Jepsen's spelling).
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::Lost => "lost",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::InconsistentOffset => "inconsistent-offset",
            AnomalyKind::NonMonotonicSend => "nonmonotonic-send",
            AnomalyKind::NonMonotonicPoll => "nonmonotonic-poll",
            AnomalyKind::SkippedOffset => "skipped-offset",
            AnomalyKind::Unseen => "unseen",
            AnomalyKind::VanishedRead => "vanished-read",
        }
    }
}

/// One broken promise, with where it happened and the evidence, so a failing
/// run can be traced back into `history.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// What was broken.
    pub kind: AnomalyKind,
    /// The partition it happened on (for a duplicate, the first place the
    /// value was seen, in `(partition, offset)` order).
    pub partition: i32,
    /// The offset involved, when there is one (see each kind's check).
    pub offset: Option<i64>,
    /// The value involved, when there is one.
    pub value: Option<Value>,
    /// One ASCII line naming the evidence (who sent or polled what, where).
    pub detail: String,
}

impl Anomaly {
    fn to_json(&self) -> Json {
        json!({
            "kind": self.kind.name(),
            "partition": self.partition,
            "offset": self.offset,
            "value": self.value,
            "detail": self.detail,
        })
    }
}

/// What the history held, so a clean verdict can be told apart from one that
/// had nothing to judge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sends invoked.
    pub sends: usize,
    /// Sends acknowledged.
    pub acked: usize,
    /// Sends whose delivery report was an error.
    pub failed: usize,
    /// Sends with no delivery report by the end of the run.
    pub unanswered: usize,
    /// Records polled, by every consumer.
    pub polls: usize,
    /// Distinct values of ours among the polled records.
    pub distinct_values_polled: usize,
    /// Records in the final log, per partition.
    pub final_records: BTreeMap<i32, usize>,
}

impl Stats {
    /// Records in the final log over every partition.
    pub fn final_records_total(&self) -> usize {
        self.final_records.values().sum()
    }
}

/// The checker's judgement of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Every anomaly found, ordered by kind, partition, offset and value.
    pub anomalies: Vec<Anomaly>,
    /// What the history held.
    pub stats: Stats,
}

impl Verdict {
    /// Whether the run kept every promise: the pass/fail of `cargo xtask chaos`.
    pub fn is_clean(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// How many anomalies of `kind` were found.
    pub fn count(&self, kind: AnomalyKind) -> usize {
        self.anomalies.iter().filter(|a| a.kind == kind).count()
    }

    /// The verdict as a pipe table, one row per kind (the clean ones too, so a
    /// reader sees what was checked), then a line of what was judged.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = AnomalyKind::ALL
            .iter()
            .map(|&kind| {
                let found: Vec<&Anomaly> =
                    self.anomalies.iter().filter(|a| a.kind == kind).collect();
                let examples: Vec<&str> = found
                    .iter()
                    .take(TABLE_EXAMPLES_PER_KIND)
                    .map(|a| a.detail.as_str())
                    .collect();
                vec![
                    kind.name().to_string(),
                    if found.is_empty() { "ok" } else { "FAIL" }.to_string(),
                    examples.join("; "),
                    found.len().to_string(),
                ]
            })
            .collect();
        let s = &self.stats;
        let mut out = table::markdown(&["anomaly", "result", "examples", "count"], &rows, 3);
        out.push_str(&format!(
            "{} sends ({} acked, {} failed, {} unanswered), {} polls of {} distinct values, \
             {} records in the final log\n",
            s.sends,
            s.acked,
            s.failed,
            s.unanswered,
            s.polls,
            s.distinct_values_polled,
            s.final_records_total(),
        ));
        out
    }

    /// The verdict for `verdict.json`: exact counts per kind, the first
    /// [`JSON_ANOMALIES_PER_KIND`] anomalies of each kind, and the stats.
    pub fn to_json(&self) -> Json {
        let mut counts = serde_json::Map::new();
        let mut listed = Vec::new();
        for kind in AnomalyKind::ALL {
            counts.insert(kind.name().to_string(), json!(self.count(kind)));
            listed.extend(
                self.anomalies
                    .iter()
                    .filter(|a| a.kind == kind)
                    .take(JSON_ANOMALIES_PER_KIND)
                    .map(Anomaly::to_json),
            );
        }
        let s = &self.stats;
        let final_records: Vec<Json> = s
            .final_records
            .iter()
            .map(|(p, n)| json!({ "partition": p, "records": n }))
            .collect();
        json!({
            "clean": self.is_clean(),
            "counts": counts,
            "anomalies": listed,
            "stats": {
                "sends": s.sends,
                "acked": s.acked,
                "failed": s.failed,
                "unanswered": s.unanswered,
                "polls": s.polls,
                "distinct_values_polled": s.distinct_values_polled,
                "final_records": final_records,
                "final_records_total": s.final_records_total(),
            },
        })
    }
}

/// Judges `h`: every anomaly of every [`AnomalyKind`], and the stats.
pub fn check(h: &History) -> Verdict {
    let log = FinalLog::new(&h.finals);
    let mut sightings = Sightings::default();
    for f in &h.finals {
        for &(offset, value) in &f.records {
            if let Some(v) = value {
                sightings.see((f.partition, offset), v, Source::Final);
            }
        }
    }
    let mut anomalies = Vec::new();
    let polled = check_polls(h, &log, &mut sightings, &mut anomalies);
    check_sends(h, &log, &polled, &mut sightings, &mut anomalies);
    sightings.judge(&mut anomalies);
    // Stable, so anomalies with the same key keep history order.
    anomalies.sort_by(|a, b| {
        (a.kind, a.partition, a.offset, a.value).cmp(&(b.kind, b.partition, b.offset, b.value))
    });
    Verdict {
        anomalies,
        stats: stats(h, polled.len()),
    }
}

fn stats(h: &History, distinct_values_polled: usize) -> Stats {
    let mut s = Stats {
        sends: h.sends.len(),
        polls: h.polls.len(),
        distinct_values_polled,
        ..Stats::default()
    };
    for send in &h.sends {
        match send.outcome {
            Some(SendOutcome::Acked { .. }) => s.acked += 1,
            Some(SendOutcome::Failed { .. }) => s.failed += 1,
            None => s.unanswered += 1,
        }
    }
    for f in &h.finals {
        *s.final_records.entry(f.partition).or_default() += f.records.len();
    }
    s
}

/// NonMonotonicPoll, SkippedOffset and VanishedRead, one pass over the polls;
/// returns every value of ours that was polled (for Unseen).
fn check_polls(
    h: &History,
    log: &FinalLog,
    sightings: &mut Sightings,
    out: &mut Vec<Anomaly>,
) -> HashSet<Value> {
    let mut polled = HashSet::new();
    // The previous poll per (consumer, partition, epoch): offsets only have to
    // go up within one epoch.
    let mut previous: HashMap<(u32, i32, u32), &PollOp> = HashMap::new();
    // Vanished reads once per record, however many consumers read it: the
    // first poll and how many there were.
    let mut vanished: HashMap<(Position, Value), (&PollOp, usize)> = HashMap::new();
    for p in &h.polls {
        let at = (p.partition, p.offset);
        if let Some(v) = p.value {
            polled.insert(v);
            sightings.see(
                at,
                v,
                Source::Polled {
                    consumer: p.consumer,
                },
            );
            if !log.places.contains_key(&v) {
                vanished.entry((at, v)).or_insert((p, 0)).1 += 1;
            }
        }
        let Some(prev) = previous.insert((p.consumer, p.partition, p.epoch), p) else {
            continue;
        };
        if p.offset <= prev.offset {
            out.push(Anomaly {
                kind: AnomalyKind::NonMonotonicPoll,
                partition: p.partition,
                offset: Some(p.offset),
                value: p.value,
                detail: format!(
                    "{} polled {} ({}) after {} ({}) at {}",
                    consumer(p),
                    at_str(at),
                    value_str(p.value),
                    prev.offset,
                    value_str(prev.value),
                    secs(p.at_us),
                ),
            });
        } else if let Some(skipped) = log.between(p.partition, prev.offset, p.offset) {
            out.push(Anomaly {
                kind: AnomalyKind::SkippedOffset,
                partition: p.partition,
                offset: Some(skipped.first.0),
                value: skipped.first.1,
                detail: format!(
                    "{} polled p{} offsets {} then {} at {}, skipping {} record(s) of the final \
                     log from p{}@{} ({})",
                    consumer(p),
                    p.partition,
                    prev.offset,
                    p.offset,
                    secs(p.at_us),
                    skipped.records,
                    p.partition,
                    skipped.first.0,
                    value_str(skipped.first.1),
                ),
            });
        }
    }
    for ((at, v), (p, polls)) in vanished {
        let also = if polls > 1 {
            format!(" ({polls} polls in all)")
        } else {
            String::new()
        };
        out.push(Anomaly {
            kind: AnomalyKind::VanishedRead,
            partition: at.0,
            offset: Some(at.1),
            value: Some(v),
            detail: format!(
                "value {v} polled at {} by {} at {}{also}, absent from the final log ({})",
                at_str(at),
                consumer(p),
                secs(p.at_us),
                log.extent(at.0),
            ),
        });
    }
    polled
}

/// Lost, Unseen and NonMonotonicSend, one pass over the sends.
fn check_sends(
    h: &History,
    log: &FinalLog,
    polled: &HashSet<Value>,
    sightings: &mut Sightings,
    out: &mut Vec<Anomaly>,
) {
    // The previous acknowledged offset per (producer, partition), with its value.
    let mut previous: HashMap<(u32, i32), (i64, Value)> = HashMap::new();
    for s in &h.sends {
        let Some(SendOutcome::Acked { offset }) = s.outcome else {
            continue;
        };
        let known = (offset >= 0).then_some(offset);
        let acked_at = match known {
            Some(o) => at_str((s.partition, o)),
            None => format!("p{} (offset unknown)", s.partition),
        };
        if let Some(o) = known {
            let at = (s.partition, o);
            sightings.see(
                at,
                s.value,
                Source::Acked {
                    producer: s.producer,
                },
            );
            if let Some((prev, prev_value)) =
                previous.insert((s.producer, s.partition), (o, s.value))
            {
                if o <= prev {
                    out.push(Anomaly {
                        kind: AnomalyKind::NonMonotonicSend,
                        partition: s.partition,
                        offset: Some(o),
                        value: Some(s.value),
                        detail: format!(
                            "producer {} on p{}: value {} acked at offset {o} after value \
                             {prev_value} at offset {prev}",
                            s.producer, s.partition, s.value,
                        ),
                    });
                }
            }
        }
        match log.places.get(&s.value) {
            None => out.push(Anomaly {
                kind: AnomalyKind::Lost,
                partition: s.partition,
                offset: known,
                value: Some(s.value),
                detail: format!(
                    "value {} acked at {acked_at} to producer {} (sent at {}), absent from the \
                     final log ({})",
                    s.value,
                    s.producer,
                    secs(s.invoked_us),
                    log.extent(s.partition),
                ),
            }),
            Some(&at) if !polled.contains(&s.value) => out.push(Anomaly {
                kind: AnomalyKind::Unseen,
                partition: at.0,
                offset: Some(at.1),
                value: Some(s.value),
                detail: format!(
                    "value {} acked at {acked_at} to producer {}, at {} in the final log, never \
                     polled",
                    s.value,
                    s.producer,
                    at_str(at),
                ),
            }),
            Some(_) => {}
        }
    }
}

/// The final log, indexed for the checks.
struct FinalLog<'h> {
    /// Where each of our values first sits (partitions in order, then offsets).
    places: HashMap<Value, Position>,
    /// Each partition's final read.
    reads: HashMap<i32, &'h FinalRead>,
}

/// Records of the final log a consumer jumped over.
struct Skipped {
    /// The first skipped record, `(offset, value)`.
    first: (i64, Option<Value>),
    /// How many records were skipped.
    records: usize,
}

impl<'h> FinalLog<'h> {
    fn new(finals: &'h [FinalRead]) -> Self {
        let mut places = HashMap::new();
        for f in finals {
            for &(offset, value) in &f.records {
                if let Some(v) = value {
                    places.entry(v).or_insert((f.partition, offset));
                }
            }
        }
        FinalLog {
            places,
            reads: finals.iter().map(|f| (f.partition, f)).collect(),
        }
    }

    /// The records of `partition` at offsets strictly between `after` and
    /// `before`, if there are any (the records are in offset order).
    fn between(&self, partition: i32, after: i64, before: i64) -> Option<Skipped> {
        let records = &self.reads.get(&partition)?.records;
        let lo = records.partition_point(|r| r.0 <= after);
        let hi = records.partition_point(|r| r.0 < before);
        (hi > lo).then(|| Skipped {
            first: records[lo],
            records: hi - lo,
        })
    }

    /// How far the final log of `partition` went, for details.
    fn extent(&self, partition: i32) -> String {
        match self.reads.get(&partition) {
            Some(f) => format!("p{partition} high watermark {}", f.high_watermark),
            None => format!("no final read of p{partition}"),
        }
    }
}

/// Who reported a value at a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Final,
    Acked { producer: u32 },
    Polled { consumer: u32 },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Final => write!(f, "final log"),
            Source::Acked { producer } => write!(f, "acked to producer {producer}"),
            Source::Polled { consumer } => write!(f, "polled by consumer {consumer}"),
        }
    }
}

/// Every distinct (position, value) pair any source reported, indexed both
/// ways, with the first source that reported it: a value at two positions is
/// a Duplicate, a position with two values an InconsistentOffset.
#[derive(Default)]
struct Sightings {
    values_at: HashMap<Position, Vec<(Value, Source)>>,
    places_of: HashMap<Value, Vec<(Position, Source)>>,
}

/// How many sightings a detail names before it says how many more there were.
const SIGHTINGS_PER_DETAIL: usize = 4;

impl Sightings {
    /// Records that `source` reported `value` at `at`. The lists hold distinct
    /// entries and almost always one, so the linear scans are cheap.
    fn see(&mut self, at: Position, value: Value, source: Source) {
        let here = self.values_at.entry(at).or_default();
        if !here.iter().any(|&(v, _)| v == value) {
            here.push((value, source));
        }
        let places = self.places_of.entry(value).or_default();
        if !places.iter().any(|&(p, _)| p == at) {
            places.push((at, source));
        }
    }

    fn judge(self, out: &mut Vec<Anomaly>) {
        for (at, values) in self.values_at {
            if values.len() < 2 {
                continue;
            }
            let in_final = values.iter().find(|(_, s)| *s == Source::Final);
            let listed: Vec<String> = values.iter().map(|(v, s)| format!("{v} ({s})")).collect();
            out.push(Anomaly {
                kind: AnomalyKind::InconsistentOffset,
                partition: at.0,
                offset: Some(at.1),
                value: in_final.or(values.first()).map(|&(v, _)| v),
                detail: format!("{} holds {}", at_str(at), list(&listed)),
            });
        }
        for (value, mut places) in self.places_of {
            if places.len() < 2 {
                continue;
            }
            places.sort_by_key(|&(at, _)| at);
            let listed: Vec<String> = places
                .iter()
                .map(|&(at, s)| format!("{} ({s})", at_str(at)))
                .collect();
            out.push(Anomaly {
                kind: AnomalyKind::Duplicate,
                partition: places[0].0 .0,
                offset: Some(places[0].0 .1),
                value: Some(value),
                detail: format!("value {value} at {}", list(&listed)),
            });
        }
    }
}

/// `items` joined with commas, the first [`SIGHTINGS_PER_DETAIL`] of them.
fn list(items: &[String]) -> String {
    let shown = items[..items.len().min(SIGHTINGS_PER_DETAIL)].join(", ");
    match items.len().checked_sub(SIGHTINGS_PER_DETAIL) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}

fn at_str((partition, offset): Position) -> String {
    format!("p{partition}@{offset}")
}

fn value_str(value: Option<Value>) -> String {
    match value {
        Some(v) => format!("value {v}"),
        None => "not ours".to_string(),
    }
}

fn consumer(p: &PollOp) -> String {
    match p.kind {
        ConsumerKind::Group => format!("consumer {} (group, epoch {})", p.consumer, p.epoch),
        ConsumerKind::Assigned => format!("consumer {} (assigned)", p.consumer),
    }
}

fn secs(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::SendOp;

    fn acked(producer: u32, value: Value, partition: i32, offset: i64) -> SendOp {
        SendOp {
            producer,
            value,
            partition,
            invoked_us: value * 1_000,
            completed_us: Some(value * 1_000 + 500),
            outcome: Some(SendOutcome::Acked { offset }),
        }
    }

    fn failed(value: Value, partition: i32) -> SendOp {
        SendOp {
            outcome: Some(SendOutcome::Failed {
                error: "Local: Message timed out".to_string(),
            }),
            ..acked(0, value, partition, 0)
        }
    }

    fn unanswered(value: Value, partition: i32) -> SendOp {
        SendOp {
            completed_us: None,
            outcome: None,
            ..acked(0, value, partition, 0)
        }
    }

    fn poll(
        consumer: u32,
        epoch: u32,
        partition: i32,
        offset: i64,
        value: Option<Value>,
    ) -> PollOp {
        PollOp {
            consumer,
            kind: if consumer >= 100 {
                ConsumerKind::Assigned
            } else {
                ConsumerKind::Group
            },
            epoch,
            partition,
            offset,
            value,
            at_us: 0,
        }
    }

    /// An assigned consumer (id 100 + partition) reading all of `records`.
    fn reads_all(partition: i32, records: &[(i64, Option<Value>)]) -> Vec<PollOp> {
        records
            .iter()
            .map(|&(o, v)| poll(100 + partition as u32, 0, partition, o, v))
            .collect()
    }

    fn fin(partition: i32, records: &[(i64, Option<Value>)]) -> FinalRead {
        FinalRead {
            partition,
            high_watermark: records.last().map_or(0, |r| r.0 + 1),
            records: records.to_vec(),
        }
    }

    fn history(sends: Vec<SendOp>, polls: Vec<PollOp>, finals: Vec<FinalRead>) -> History {
        History {
            partitions: finals.len() as i32,
            sends,
            polls,
            finals,
            faults: Vec::new(),
            healed_us: None,
            ended_us: 10_000_000,
        }
    }

    fn kinds(v: &Verdict) -> Vec<AnomalyKind> {
        v.anomalies.iter().map(|a| a.kind).collect()
    }

    /// The only anomaly of `kind`, with its place.
    fn only(v: &Verdict, kind: AnomalyKind) -> (i32, Option<i64>, Option<Value>) {
        let found: Vec<&Anomaly> = v.anomalies.iter().filter(|a| a.kind == kind).collect();
        assert_eq!(found.len(), 1, "{}", v.table());
        (found[0].partition, found[0].offset, found[0].value)
    }

    #[test]
    fn a_clean_run_passes() {
        // Partition 0: two acks, a failed send that made it anyway, an
        // unanswered one that did too, a record that is not ours, and an ack
        // whose offset the client never learned.
        let log0 = [
            (0, Some(1)),
            (1, Some(2)),
            (2, Some(3)),
            (3, None),
            (4, Some(4)),
            (5, Some(7)),
        ];
        let log1 = [(0, Some(5))];
        let sends = vec![
            acked(0, 1, 0, 0),
            acked(0, 2, 0, 1),
            failed(3, 0),
            unanswered(4, 0),
            failed(8, 0),
            unanswered(9, 1),
            acked(1, 5, 1, 0),
            acked(1, 7, 0, -1),
        ];
        let mut polls = reads_all(0, &log0);
        polls.extend(reads_all(1, &log1));
        // A group consumer that is handed p0 back at offset 1 after a
        // rebalance: offsets go back across epochs, not within one.
        polls.extend([
            poll(1, 0, 0, 0, Some(1)),
            poll(1, 0, 0, 1, Some(2)),
            poll(1, 0, 0, 2, Some(3)),
            poll(1, 1, 0, 1, Some(2)),
            poll(1, 1, 0, 2, Some(3)),
            poll(1, 1, 0, 3, None),
            poll(1, 1, 0, 4, Some(4)),
        ]);
        let v = check(&history(sends, polls, vec![fin(0, &log0), fin(1, &log1)]));
        assert!(v.is_clean(), "{}", v.table());
        assert_eq!(
            v.stats,
            Stats {
                sends: 8,
                acked: 4,
                failed: 2,
                unanswered: 2,
                polls: 14,
                distinct_values_polled: 6,
                final_records: BTreeMap::from([(0, 6), (1, 1)]),
            }
        );
        assert!(v.table().contains("| lost "));
        assert_eq!(v.to_json()["clean"], json!(true));
    }

    #[test]
    fn an_acked_value_missing_from_the_final_log_is_lost() {
        let log = [(0, Some(1))];
        let v = check(&history(
            vec![acked(0, 1, 0, 0), acked(0, 2, 0, 1)],
            reads_all(0, &log),
            vec![fin(0, &log)],
        ));
        assert_eq!(kinds(&v), [AnomalyKind::Lost]);
        assert_eq!(only(&v, AnomalyKind::Lost), (0, Some(1), Some(2)));
    }

    #[test]
    fn a_value_twice_in_the_final_log_is_a_duplicate() {
        let log = [(0, Some(1)), (1, Some(1))];
        let v = check(&history(
            vec![acked(0, 1, 0, 0)],
            reads_all(0, &log),
            vec![fin(0, &log)],
        ));
        assert_eq!(kinds(&v), [AnomalyKind::Duplicate]);
        assert_eq!(only(&v, AnomalyKind::Duplicate), (0, Some(0), Some(1)));
    }

    #[test]
    fn a_value_in_two_partitions_is_a_duplicate() {
        let (log0, log1) = ([(0, Some(1))], [(0, Some(1))]);
        let mut polls = reads_all(0, &log0);
        polls.extend(reads_all(1, &log1));
        let v = check(&history(
            vec![acked(0, 1, 0, 0)],
            polls,
            vec![fin(0, &log0), fin(1, &log1)],
        ));
        assert_eq!(kinds(&v), [AnomalyKind::Duplicate]);
        assert_eq!(only(&v, AnomalyKind::Duplicate), (0, Some(0), Some(1)));
        assert!(v.anomalies[0].detail.contains("p1@0 (final log)"));
    }

    #[test]
    fn an_ack_at_an_offset_holding_another_value_is_inconsistent() {
        // Value 1 was acknowledged at p0@0, but the log holds 2 there. Value 1
        // is then lost too: inconsistency always comes with a second kind.
        let log = [(0, Some(2))];
        let v = check(&history(
            vec![acked(0, 1, 0, 0)],
            reads_all(0, &log),
            vec![fin(0, &log)],
        ));
        assert_eq!(
            kinds(&v),
            [AnomalyKind::Lost, AnomalyKind::InconsistentOffset]
        );
        assert_eq!(
            only(&v, AnomalyKind::InconsistentOffset),
            (0, Some(0), Some(2))
        );
        assert_eq!(only(&v, AnomalyKind::Lost), (0, Some(0), Some(1)));
    }

    #[test]
    fn acked_offsets_going_down_are_a_nonmonotonic_send() {
        let log = [(0, Some(2)), (1, Some(1))];
        let v = check(&history(
            vec![acked(0, 1, 0, 1), acked(0, 2, 0, 0)],
            reads_all(0, &log),
            vec![fin(0, &log)],
        ));
        assert_eq!(kinds(&v), [AnomalyKind::NonMonotonicSend]);
        assert_eq!(
            only(&v, AnomalyKind::NonMonotonicSend),
            (0, Some(0), Some(2))
        );
    }

    #[test]
    fn polled_offsets_going_down_in_one_epoch_are_a_nonmonotonic_poll() {
        let log = [(0, Some(1)), (1, Some(2))];
        let v = check(&history(
            vec![acked(0, 1, 0, 0), acked(0, 2, 0, 1)],
            vec![poll(100, 0, 0, 1, Some(2)), poll(100, 0, 0, 0, Some(1))],
            vec![fin(0, &log)],
        ));
        assert_eq!(kinds(&v), [AnomalyKind::NonMonotonicPoll]);
        assert_eq!(
            only(&v, AnomalyKind::NonMonotonicPoll),
            (0, Some(0), Some(1))
        );
    }

    #[test]
    fn a_poll_jumping_over_a_record_is_a_skipped_offset() {
        let log = [(0, Some(1)), (1, Some(2)), (2, Some(3))];
        let mut polls = reads_all(0, &log);
        polls.extend([poll(1, 0, 0, 0, Some(1)), poll(1, 0, 0, 2, Some(3))]);
        let v = check(&history(
            vec![acked(0, 1, 0, 0), acked(0, 2, 0, 1), acked(0, 3, 0, 2)],
            polls,
            vec![fin(0, &log)],
        ));
        assert_eq!(kinds(&v), [AnomalyKind::SkippedOffset]);
        assert_eq!(only(&v, AnomalyKind::SkippedOffset), (0, Some(1), Some(2)));
    }

    #[test]
    fn a_gap_the_final_log_also_has_is_not_a_skip() {
        // Offsets 1 and 2 are not in the log (say, transaction markers).
        let log = [(0, Some(1)), (3, Some(2))];
        let v = check(&history(
            vec![acked(0, 1, 0, 0), acked(0, 2, 0, 3)],
            reads_all(0, &log),
            vec![fin(0, &log)],
        ));
        assert!(v.is_clean(), "{}", v.table());
    }

    #[test]
    fn an_acked_record_nobody_polled_is_unseen() {
        let log = [(0, Some(1))];
        let v = check(&history(
            vec![acked(0, 1, 0, 0)],
            Vec::new(),
            vec![fin(0, &log)],
        ));
        assert_eq!(kinds(&v), [AnomalyKind::Unseen]);
        assert_eq!(only(&v, AnomalyKind::Unseen), (0, Some(0), Some(1)));
    }

    #[test]
    fn a_poll_beyond_the_final_log_is_a_vanished_read() {
        let log = [(0, Some(1))];
        let mut polls = reads_all(0, &log);
        // Two consumers read value 9 at p0@1, which did not survive: one anomaly.
        polls.extend([poll(100, 0, 0, 1, Some(9)), poll(1, 0, 0, 1, Some(9))]);
        let v = check(&history(
            vec![acked(0, 1, 0, 0), failed(9, 0)],
            polls,
            vec![fin(0, &log)],
        ));
        assert_eq!(kinds(&v), [AnomalyKind::VanishedRead]);
        assert_eq!(only(&v, AnomalyKind::VanishedRead), (0, Some(1), Some(9)));
        assert!(v.anomalies[0].detail.contains("2 polls in all"));
    }

    #[test]
    fn a_vanished_read_over_another_value_is_inconsistent_too() {
        let log = [(0, Some(1)), (1, Some(2))];
        let mut polls = reads_all(0, &log);
        polls.push(poll(1, 0, 0, 1, Some(9)));
        let v = check(&history(
            vec![acked(0, 1, 0, 0), acked(0, 2, 0, 1)],
            polls,
            vec![fin(0, &log)],
        ));
        assert_eq!(
            kinds(&v),
            [AnomalyKind::InconsistentOffset, AnomalyKind::VanishedRead]
        );
        assert_eq!(
            only(&v, AnomalyKind::InconsistentOffset),
            (0, Some(1), Some(2))
        );
        assert_eq!(only(&v, AnomalyKind::VanishedRead), (0, Some(1), Some(9)));
    }

    #[test]
    fn the_table_lists_every_kind_and_the_json_counts_them() {
        let log = [(0, Some(1))];
        let v = check(&history(
            vec![acked(0, 1, 0, 0), acked(0, 2, 0, 1)],
            reads_all(0, &log),
            vec![fin(0, &log)],
        ));
        let t = v.table();
        for kind in AnomalyKind::ALL {
            assert!(t.contains(&format!("| {} ", kind.name())), "{t}");
        }
        assert!(t.contains("FAIL"), "{t}");
        assert!(t.contains("value 2 acked at p0@1 to producer 0"), "{t}");
        let j = v.to_json();
        assert_eq!(j["clean"], json!(false));
        assert_eq!(j["counts"]["lost"], json!(1));
        assert_eq!(j["counts"]["unseen"], json!(0));
        assert_eq!(j["anomalies"][0]["value"], json!(2));
        assert_eq!(j["stats"]["final_records_total"], json!(1));
    }
}
