//! Availability figures from a chaos run's [`History`]: how much of the time
//! each nemesis was active every partition still acknowledged writes, and
//! how long it took to accept writes on every partition again once a fault
//! healed. The checker ([`super::checker`]) judges correctness; these figures
//! are what the faults cost.
//!
//! The run `[0, ended_us)` is cut into buckets of `bucket_us`, and the unit
//! the fractions count is a *partition-bucket*: a pair of a partition
//! (`0..partitions`) and a bucket (with 1 s buckets, a partition-second). A
//! pair is *available* if an acknowledged send to that partition completed
//! in that bucket, so a partition whose leader is stopped shows up even
//! while the other partitions keep acknowledging.
//!
//! Only the span the producers ran counts: the buckets from the one in which
//! the first acknowledged send completed (before it, the clients were still
//! starting) to the one in which the last send was invoked (after it, the
//! producers had stopped while the run drained and read back), both
//! included. Without an acknowledged send, no bucket counts. A counted
//! bucket counts, with each of its partitions, toward a nemesis if any
//! window of that nemesis overlaps it (so a bucket may count toward
//! several), and toward `none` if no window overlaps it. A window without an
//! end lasts until `healed_us` (or `ended_us`, if the faults never healed or
//! healed before it began).
//!
//! Recovery after a moment `t` is measured per partition, from `t` to the
//! completion of the first acknowledged send *invoked* at or after `t`, and
//! the slowest partition gives the figure: the time until every partition
//! accepts writes again. Sends already in flight at `t` do not count, since a
//! retry that finally lands says little about new writes.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use super::history::{FaultWindow, History, SendOutcome};
use crate::table;

/// The row name for buckets and time with no fault active.
pub const NO_FAULT: &str = "none";

/// One nemesis's share of the run (or the fault-free share, [`NO_FAULT`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NemesisRow {
    /// The nemesis's name, or [`NO_FAULT`].
    pub nemesis: String,
    /// How many fault windows it opened (0 for [`NO_FAULT`]).
    pub windows: usize,
    /// Time under this fault (the union of its windows, so overlapping
    /// windows count once); for [`NO_FAULT`], time with no fault at all.
    pub fault_us: u64,
    /// Partition-buckets this row counts: its buckets within the span the
    /// producers ran, times the partition count (see the module docs).
    pub buckets: usize,
    /// Of those, the pairs in which an acknowledged send to that partition
    /// completed.
    pub available_buckets: usize,
    /// Acknowledged sends that completed during this row's time.
    pub acks: usize,
    /// The lower median, over the windows that ended and recovered, of the
    /// time from a window's end until every partition accepted a new write.
    pub recovery_median_us: Option<u64>,
    /// The longest of those recoveries.
    pub recovery_max_us: Option<u64>,
    /// Windows that ended but after which some partition never accepted a
    /// new write before the run ended.
    pub unrecovered: usize,
}

impl NemesisRow {
    /// The share of this row's partition-buckets that were available; `None`
    /// without any.
    pub fn available_fraction(&self) -> Option<f64> {
        (self.buckets > 0).then(|| self.available_buckets as f64 / self.buckets as f64)
    }
}

/// What one run's faults cost, for the report and `availability.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Availability {
    /// The bucket width the fractions were measured with.
    pub bucket_us: u64,
    /// One row per nemesis, sorted by name, then [`NO_FAULT`].
    pub rows: Vec<NemesisRow>,
    /// When the last fault healed, from the history, so the figures can tell
    /// "never healed" from "never recovered".
    pub healed_us: Option<u64>,
    /// From `healed_us` until every partition accepted a write invoked after
    /// it; `None` without a heal, or if some partition never did.
    pub recovery_after_heal_us: Option<u64>,
}

/// Measures `h` in buckets of `bucket_us` (at least 1 µs); see the module docs
/// for what counts.
pub fn availability(h: &History, bucket_us: u64) -> Availability {
    let bucket_us = bucket_us.max(1);
    let buckets = h.ended_us.div_ceil(bucket_us) as usize;
    let partitions = usize::try_from(h.partitions).unwrap_or(0);
    let bucket_of = |t: u64| (t / bucket_us) as usize;
    let mut completions: Vec<u64> = acked(h).map(|(_, _, done)| done).collect();
    completions.sort_unstable();
    // Per bucket, how many partitions acknowledged a send completing in it.
    let mut available = vec![0usize; buckets];
    let mut seen = vec![false; partitions * buckets];
    for (p, _, done) in acked(h) {
        let Some(p) = usize::try_from(p).ok().filter(|&p| p < partitions) else {
            continue;
        };
        if done < h.ended_us {
            let b = bucket_of(done);
            if !std::mem::replace(&mut seen[p * buckets + b], true) {
                available[b] += 1;
            }
        }
    }
    // The buckets the producers ran in: from the first ack's completion to
    // the last send's invocation.
    let measured = match completions.first().filter(|&&t| t < h.ended_us) {
        Some(&first) => {
            let last = h.sends.iter().map(|s| s.invoked_us).max().unwrap_or(0);
            bucket_of(first)..bucket_of(last).saturating_add(1).min(buckets)
        }
        None => 0..0,
    };
    // The partition-buckets among the measured buckets `counted` marks, and
    // how many of them were available.
    let pairs = |counted: &dyn Fn(usize) -> bool| {
        measured
            .clone()
            .filter(|&b| counted(b))
            .fold((0, 0), |(all, up), b| (all + partitions, up + available[b]))
    };
    let recovery = Recovery::new(h);
    let mut by_nemesis: BTreeMap<&str, Vec<&FaultWindow>> = BTreeMap::new();
    for w in &h.faults {
        by_nemesis.entry(&w.nemesis).or_default().push(w);
    }
    let mut faulted = vec![false; buckets];
    let mut rows = Vec::new();
    for (nemesis, windows) in &by_nemesis {
        let spans: Vec<(u64, u64)> = windows.iter().map(|w| fault_span(h, w)).collect();
        let mut counted = vec![false; buckets];
        for &(start, end) in &spans {
            let first = bucket_of(start);
            // An empty window still touches the bucket it began in.
            let past = (bucket_of(end.max(start + 1) - 1) + 1).min(buckets);
            if first < past {
                counted[first..past].fill(true);
                faulted[first..past].fill(true);
            }
        }
        let (all, up) = pairs(&|b| counted[b]);
        let union = merge(spans);
        let mut recoveries = Vec::new();
        let mut unrecovered = 0;
        for end in windows.iter().filter_map(|w| w.end_us) {
            match recovery.after(end) {
                Some(us) => recoveries.push(us),
                None => unrecovered += 1,
            }
        }
        recoveries.sort_unstable();
        rows.push(NemesisRow {
            nemesis: nemesis.to_string(),
            windows: windows.len(),
            fault_us: union.iter().map(|(s, e)| e - s).sum(),
            buckets: all,
            available_buckets: up,
            acks: union.iter().map(|&span| within(&completions, span)).sum(),
            recovery_median_us: recoveries
                .get(recoveries.len().saturating_sub(1) / 2)
                .copied(),
            recovery_max_us: recoveries.last().copied(),
            unrecovered,
        });
    }
    let any_fault = merge(h.faults.iter().map(|w| fault_span(h, w)).collect());
    let fault_us: u64 = any_fault.iter().map(|(s, e)| e - s).sum();
    let acks_under_faults: usize = any_fault
        .iter()
        .map(|&span| within(&completions, span))
        .sum();
    let (all, up) = pairs(&|b| !faulted[b]);
    rows.push(NemesisRow {
        nemesis: NO_FAULT.to_string(),
        windows: 0,
        fault_us: h.ended_us - fault_us,
        buckets: all,
        available_buckets: up,
        acks: within(&completions, (0, h.ended_us)) - acks_under_faults,
        recovery_median_us: None,
        recovery_max_us: None,
        unrecovered: 0,
    });
    Availability {
        bucket_us,
        rows,
        healed_us: h.healed_us,
        recovery_after_heal_us: h.healed_us.and_then(|t| recovery.after(t)),
    }
}

impl Availability {
    /// The figures as a pipe table, one row per nemesis and one for no
    /// fault (availability as available/counted partition-buckets), then a
    /// line on recovery after the last heal.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let available = match r.available_fraction() {
                    Some(f) => format!("{:.1}% ({}/{})", f * 100.0, r.available_buckets, r.buckets),
                    None => "-".to_string(),
                };
                let max = if r.unrecovered > 0 {
                    format!("never ({})", r.unrecovered)
                } else {
                    secs_or_dash(r.recovery_max_us)
                };
                vec![
                    r.nemesis.clone(),
                    r.windows.to_string(),
                    format!("{:.1}", r.fault_us as f64 / 1e6),
                    available,
                    r.acks.to_string(),
                    secs_or_dash(r.recovery_median_us),
                    max,
                ]
            })
            .collect();
        let available = if self.bucket_us == 1_000_000 {
            "available (partition-seconds)".to_string()
        } else {
            format!("available (partition-buckets of {})", secs(self.bucket_us))
        };
        let mut out = table::markdown(
            &[
                "nemesis",
                "windows",
                "seconds",
                available.as_str(),
                "acks",
                "recovery median",
                "recovery max",
            ],
            &rows,
            1,
        );
        out.push_str(&match (self.healed_us, self.recovery_after_heal_us) {
            (None, _) => "the faults never healed\n".to_string(),
            (Some(healed), Some(us)) => format!(
                "every partition accepted writes again {} after the faults healed at {}\n",
                secs(us),
                secs(healed),
            ),
            (Some(healed), None) => format!(
                "some partition never accepted a write after the faults healed at {}\n",
                secs(healed),
            ),
        });
        out
    }

    /// The figures for `availability.json`, times in microseconds.
    pub fn to_json(&self) -> Json {
        let rows: Vec<Json> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "nemesis": r.nemesis,
                    "windows": r.windows,
                    "fault_us": r.fault_us,
                    "buckets": r.buckets,
                    "available_buckets": r.available_buckets,
                    "available_fraction": r.available_fraction(),
                    "acks": r.acks,
                    "recovery_median_us": r.recovery_median_us,
                    "recovery_max_us": r.recovery_max_us,
                    "unrecovered": r.unrecovered,
                })
            })
            .collect();
        json!({
            "bucket_us": self.bucket_us,
            "rows": rows,
            "healed_us": self.healed_us,
            "recovery_after_heal_us": self.recovery_after_heal_us,
        })
    }
}

/// Every acknowledged send that completed: `(partition, invoked_us,
/// completed_us)`.
fn acked(h: &History) -> impl Iterator<Item = (i32, u64, u64)> + '_ {
    h.sends
        .iter()
        .filter_map(|s| match (&s.outcome, s.completed_us) {
            (Some(SendOutcome::Acked { .. }), Some(done)) => {
                Some((s.partition, s.invoked_us, done))
            }
            _ => None,
        })
}

/// When `w` was in force, clipped to the run: `[start, end)`. The one rule for
/// where a window without an end stops (at the heal, else at the end of the
/// run), shared with the timeline so the picture and the figures agree.
pub fn fault_span(h: &History, w: &FaultWindow) -> (u64, u64) {
    let start = w.start_us.min(h.ended_us);
    let end = w
        .end_us
        .or(h.healed_us.filter(|&t| t >= w.start_us))
        .unwrap_or(h.ended_us);
    (start, end.clamp(start, h.ended_us))
}

/// The union of `spans`, as disjoint spans in order.
fn merge(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// How many of the sorted `times` fall in `[start, end)`.
fn within(times: &[u64], (start, end): (u64, u64)) -> usize {
    times.partition_point(|&t| t < end) - times.partition_point(|&t| t < start)
}

/// Per partition, the acknowledged sends in invocation order with the
/// earliest completion among each send and every later one, so "the first
/// ack of a send invoked at or after `t`" is one binary search.
struct Recovery {
    partitions: Vec<Vec<(u64, u64)>>,
}

impl Recovery {
    fn new(h: &History) -> Self {
        let count = usize::try_from(h.partitions).unwrap_or(0);
        let mut partitions: Vec<Vec<(u64, u64)>> = vec![Vec::new(); count];
        for (p, invoked, done) in acked(h) {
            if let Some(sends) = usize::try_from(p).ok().and_then(|p| partitions.get_mut(p)) {
                sends.push((invoked, done));
            }
        }
        for sends in &mut partitions {
            sends.sort_unstable();
            let mut earliest = u64::MAX;
            for send in sends.iter_mut().rev() {
                earliest = earliest.min(send.1);
                send.1 = earliest;
            }
        }
        Recovery { partitions }
    }

    /// How long after `t` every partition had acknowledged a send invoked at
    /// or after `t`; `None` if one never did, or there are no partitions.
    fn after(&self, t: u64) -> Option<u64> {
        if self.partitions.is_empty() {
            return None;
        }
        self.partitions.iter().try_fold(0, |slowest, sends| {
            let i = sends.partition_point(|&(invoked, _)| invoked < t);
            sends
                .get(i)
                .map(|&(_, earliest)| slowest.max(earliest.saturating_sub(t)))
        })
    }
}

fn secs(us: u64) -> String {
    format!("{:.3} s", us as f64 / 1e6)
}

fn secs_or_dash(us: Option<u64>) -> String {
    us.map_or_else(|| "-".to_string(), secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::SendOp;

    const S: u64 = 1_000_000;

    fn ack(partition: i32, invoked_us: u64, completed_us: u64) -> SendOp {
        SendOp {
            producer: 0,
            value: invoked_us,
            partition,
            invoked_us,
            completed_us: Some(completed_us),
            outcome: Some(SendOutcome::Acked { offset: 0 }),
        }
    }

    fn window(nemesis: &str, start_us: u64, end_us: Option<u64>) -> FaultWindow {
        FaultWindow {
            nemesis: nemesis.to_string(),
            label: format!("{nemesis} something"),
            start_us,
            end_us,
        }
    }

    /// Ten seconds, two partitions, one ack per partition every 100 ms
    /// except while `kill` is active in [3 s, 5 s) and partition 1 stays
    /// quiet until 5.8 s; `pause` from 7 s never ends.
    fn run() -> History {
        let mut sends = Vec::new();
        for tenth in 0..100 {
            let t = tenth * S / 10;
            if (3 * S..5 * S).contains(&t) {
                // In flight during the fault, answered only after it.
                sends.push(ack(0, t, 5 * S + 900_000));
                continue;
            }
            sends.push(ack(0, t, t + 20_000));
            if !(5 * S..58 * S / 10).contains(&t) {
                sends.push(ack(1, t, t + 20_000));
            }
        }
        sends.push(SendOp {
            completed_us: None,
            outcome: None,
            ..ack(1, 3 * S, 0)
        });
        History {
            partitions: 2,
            sends,
            faults: vec![
                window("kill", 3 * S, Some(5 * S)),
                window("pause", 7 * S, None),
            ],
            healed_us: Some(9 * S),
            ended_us: 10 * S,
            ..History::default()
        }
    }

    #[test]
    fn acks_stop_under_a_fault_and_resume_after_it() {
        let a = availability(&run(), S);
        let names: Vec<&str> = a.rows.iter().map(|r| r.nemesis.as_str()).collect();
        assert_eq!(names, ["kill", "pause", NO_FAULT]);
        let (kill, pause, none) = (&a.rows[0], &a.rows[1], &a.rows[2]);

        assert_eq!(kill.windows, 1);
        assert_eq!(kill.fault_us, 2 * S);
        // Buckets 3 and 4 on both partitions, no ack completing in any.
        assert_eq!((kill.available_buckets, kill.buckets), (0, 4));
        assert_eq!(kill.available_fraction(), Some(0.0));
        assert_eq!(kill.acks, 0);
        // Partition 0 answers a send invoked at 5.0 s at 5.02 s; partition 1
        // only takes writes again from 5.8 s.
        assert_eq!(kill.recovery_median_us, Some(820_000));
        assert_eq!(kill.recovery_max_us, Some(820_000));
        assert_eq!(kill.unrecovered, 0);

        // The open window lasts until the heal at 9 s: buckets 7 and 8, on
        // both partitions.
        assert_eq!(pause.fault_us, 2 * S);
        assert_eq!((pause.available_buckets, pause.buckets), (4, 4));
        assert_eq!(pause.acks, 40);
        assert_eq!(pause.recovery_median_us, None);

        // The producers ran from the first ack (bucket 0) to the last send
        // (9.9 s, bucket 9): buckets 0-2, 5, 6 and 9 on both partitions.
        // Partition 1 is back in bucket 5 with its acks from 5.82 s.
        assert_eq!(none.fault_us, 6 * S);
        assert_eq!((none.available_buckets, none.buckets), (12, 12));
        // Every completed ack falls in the run, and outside the faults when
        // not in a window.
        assert_eq!(none.acks + pause.acks + kill.acks, 100 + 100 - 20 - 8);

        assert_eq!(a.recovery_after_heal_us, Some(20_000));
        let t = a.table();
        assert!(
            t.contains("again 0.020 s after the faults healed at 9.000 s"),
            "{t}"
        );
        assert!(t.contains("| kill "), "{t}");
        assert!(t.contains("0.0% (0/4)"), "{t}");
        assert!(t.contains("100.0% (12/12)"), "{t}");
        assert!(t.contains("available (partition-seconds)"), "{t}");
        assert!(t.contains("0.820 s"), "{t}");
        assert_eq!(a.to_json()["rows"][0]["recovery_max_us"], json!(820_000));
        assert_eq!(a.to_json()["rows"][2]["buckets"], json!(12));

        // Other bucket widths say so in the header.
        let t = availability(&run(), S / 2).table();
        assert!(
            t.contains("available (partition-buckets of 0.500 s)"),
            "{t}"
        );
    }

    #[test]
    fn a_partition_that_never_takes_writes_again_has_no_recovery() {
        let mut h = run();
        h.sends.retain(|s| s.partition == 0 || s.invoked_us < 3 * S);
        let a = availability(&h, S);
        assert_eq!(a.rows[0].unrecovered, 1);
        assert_eq!(a.rows[0].recovery_max_us, None);
        assert_eq!(a.recovery_after_heal_us, None);
        assert!(a.table().contains("never (1)"));
        // Partition 1 is gone from bucket 3 on: of `none`'s buckets 0-2, 5,
        // 6 and 9 it has only the first three.
        let none = &a.rows[2];
        assert_eq!((none.available_buckets, none.buckets), (9, 12));
        assert!(a.table().contains("75.0% (9/12)"));
    }

    /// A failed send to `partition`, reported at `completed_us`.
    fn failed(partition: i32, invoked_us: u64, completed_us: u64) -> SendOp {
        SendOp {
            outcome: Some(SendOutcome::Failed {
                error: "timed out".to_string(),
            }),
            ..ack(partition, invoked_us, completed_us)
        }
    }

    #[test]
    fn a_partition_that_stops_alone_is_unavailable_alone() {
        // Ten seconds, two partitions, a send to each every 100 ms; while
        // `pause` is active in [4 s, 6 s) only partition 1's sends fail.
        let mut sends = Vec::new();
        for tenth in 0..100 {
            let t = tenth * S / 10;
            sends.push(ack(0, t, t + 20_000));
            if (4 * S..6 * S).contains(&t) {
                sends.push(failed(1, t, t + 20_000));
            } else {
                sends.push(ack(1, t, t + 20_000));
            }
        }
        let h = History {
            partitions: 2,
            sends,
            faults: vec![window("pause", 4 * S, Some(6 * S))],
            healed_us: Some(6 * S),
            ended_us: 10 * S,
            ..History::default()
        };
        let a = availability(&h, S);
        let (pause, none) = (&a.rows[0], &a.rows[1]);
        // Buckets 4 and 5: partition 0 acknowledged in both, partition 1 in
        // neither. Counting any ack in a bucket would say 100%.
        assert_eq!((pause.available_buckets, pause.buckets), (2, 4));
        assert_eq!(pause.available_fraction(), Some(0.5));
        assert_eq!(pause.acks, 20);
        assert_eq!(pause.recovery_max_us, Some(20_000));
        assert_eq!((none.available_buckets, none.buckets), (16, 16));
        assert_eq!(none.acks, 160);
        let t = a.table();
        assert!(t.contains("50.0% (2/4)"), "{t}");
        assert_eq!(a.to_json()["rows"][0]["available_fraction"], json!(0.5));
    }

    #[test]
    fn buckets_before_the_first_ack_and_after_the_last_send_do_not_count() {
        // Ten seconds, two partitions. A send at 0.5 s fails (the clients
        // are starting); from 2.5 s to 6.4 s a send to each partition every
        // 100 ms is acknowledged; a last send at 7.2 s fails; then the
        // producers stop and the run drains. `kill` strikes at 8 s.
        let mut sends = vec![failed(0, S / 2, 3 * S / 2)];
        for tenth in 25..65 {
            let t = tenth * S / 10;
            sends.push(ack(0, t, t + 20_000));
            sends.push(ack(1, t, t + 20_000));
        }
        sends.push(failed(1, 72 * S / 10, 75 * S / 10));
        let h = History {
            partitions: 2,
            sends,
            faults: vec![window("kill", 8 * S, Some(9 * S))],
            healed_us: Some(9 * S),
            ended_us: 10 * S,
            ..History::default()
        };
        let a = availability(&h, S);
        let (kill, none) = (&a.rows[0], &a.rows[1]);
        // From the first ack's bucket (2.52 s: 2) to the last send's (7.2 s:
        // 7); only bucket 7, after the acks stopped, is unavailable. Buckets
        // 0, 1, 8 and 9 are left out: counting the whole run, `none` would
        // be 10 of 18 partition-buckets.
        assert_eq!((none.available_buckets, none.buckets), (10, 12));
        assert!(a.table().contains("83.3% (10/12)"), "{}", a.table());
        // Time and acks are still the whole run's.
        assert_eq!(none.fault_us, 9 * S);
        assert_eq!(none.acks, 80);
        // The fault came after the producers stopped: nothing to measure.
        assert_eq!(kill.buckets, 0);
        assert_eq!(kill.available_fraction(), None);
        assert!(a.table().contains("| kill "), "{}", a.table());
        assert_eq!(a.to_json()["rows"][0]["available_fraction"], json!(null));

        // Without a single ack, no bucket counts at all.
        let mut h = h;
        h.sends
            .retain(|s| !matches!(s.outcome, Some(SendOutcome::Acked { .. })));
        let a = availability(&h, S);
        assert!(a.rows.iter().all(|r| r.buckets == 0), "{:?}", a.rows);
        assert_eq!(a.rows[1].available_fraction(), None);
    }

    #[test]
    fn an_empty_history_has_figures_too() {
        let a = availability(&History::default(), S);
        assert_eq!(a.rows.len(), 1);
        assert_eq!(a.rows[0].buckets, 0);
        assert_eq!(a.rows[0].available_fraction(), None);
        assert_eq!(a.recovery_after_heal_us, None);
        assert!(a.table().contains("| none "));
        assert!(a.table().contains("never healed"));

        // A fault and no time at all.
        let h = History {
            faults: vec![window("kill", 0, None)],
            ..History::default()
        };
        let a = availability(&h, S);
        assert_eq!(a.rows[0].nemesis, "kill");
        assert_eq!((a.rows[0].buckets, a.rows[0].fault_us), (0, 0));
    }
}
