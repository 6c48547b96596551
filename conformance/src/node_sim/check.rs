//! The checker: what the cluster committed, compared across replicas and
//! against what the clients were told.
//!
//! For every group (the metadata group, every partition) it keeps a
//! reference of the committed log: the first copy of each committed index
//! any replica showed. A replica's stored entries count as committed up to
//! its Raft commit index, but only below the first entry a queued write of
//! that group will rewrite (until then the disk may hold a stale suffix the
//! node's Raft log already replaced). Checked after every step:
//!
//! - **Committed prefixes agree**: no replica ever holds another entry (term
//!   and payload) at a committed index, and no write truncates an entry the
//!   node had committed.
//! - **One value per offset**, **no duplicates**, **no phantoms**: a committed
//!   offset of the topic has one value; a value is committed at one offset
//!   only; every committed value was sent by a client.
//! - **Acknowledged means committed there**: an acknowledged record's value
//!   is the committed value at its offset (once that offset is committed),
//!   and it is not committed elsewhere.
//!
//! At the end, with the cluster quiescent, every acknowledged record must be
//! in the reference and on the final leader's log.

use std::collections::BTreeMap;
use std::fmt;

use broker::store::TopicPartition;
use bytes::Bytes;
use proto_core::raft::Payload;
use proto_core::storage::batch;

use super::store::{Log, StoredEntry};
use super::workload::{Ack, TOPIC};

/// Which property broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Two replicas hold different entries at a committed index.
    CommittedDiverged,
    /// A write truncated an entry its node had committed.
    CommittedTruncated,
    /// Two values at one committed offset.
    TwoValuesAtOffset,
    /// One value committed at two offsets.
    Duplicated,
    /// A committed value no client sent.
    Phantom,
    /// An acknowledged record is not what is committed at its offset.
    AckedMismatch,
    /// An acknowledged record is not committed at the end.
    AckedLost,
    /// A Fetch from the final leader returned something other than the
    /// committed log.
    FetchMismatch,
    /// The model disk refused a write (the real one would fail the partition).
    StoreRefused,
    /// A node handed a group's writes to the disk out of sequence order; a
    /// disk that completes the later one first would confirm both.
    WriteOutOfOrder,
    /// A node could not start from its disk.
    RestartFailed,
    /// A response did not decode or made no sense.
    BadResponse,
    /// The cluster never formed (topic created, leaders known).
    SetupStuck,
    /// No produce was acknowledged within the bound after healing.
    NoProgress,
    /// Replicas did not converge after the workload stopped.
    NoConvergence,
}

/// A broken property and what shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Which property.
    pub check: Check,
    /// The evidence.
    pub detail: String,
}

impl Found {
    /// A finding of `check`.
    pub fn new(check: Check, detail: impl Into<String>) -> Found {
        Found {
            check,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.check, self.detail)
    }
}

/// One group's committed log as first seen.
#[derive(Debug, Default)]
struct Reference {
    /// Committed index -> (term, payload).
    entries: BTreeMap<u64, (u64, Payload)>,
    /// The topic's committed offsets and their values.
    offsets: BTreeMap<i64, Bytes>,
    /// Each committed value's offset.
    values: BTreeMap<Bytes, i64>,
}

/// The checker's state across the run.
#[derive(Debug, Default)]
pub struct Checker {
    refs: BTreeMap<TopicPartition, Reference>,
    /// (node, group's partition) -> highest index checked as committed.
    verified: BTreeMap<(u64, TopicPartition), u64>,
    /// (partition, offset) -> acknowledged value.
    acked: BTreeMap<(i32, i64), Bytes>,
    /// Values each client sent: `c{client}-{1..=n}`.
    sent: Vec<u64>,
}

fn describe(term: u64, payload: &Payload) -> String {
    match payload {
        Payload::Noop => format!("term {term} noop"),
        Payload::Normal(b) => match batch::BatchHeader::parse(b) {
            Ok(h) => format!(
                "term {term} batch at {}..{} ({} bytes)",
                h.base_offset,
                h.end_offset(),
                b.len()
            ),
            Err(_) => format!("term {term} {} bytes", b.len()),
        },
        Payload::ConfChange { .. } => format!("term {term} conf change"),
    }
}

/// The values of a stored data batch, with their offsets.
fn values(e: &StoredEntry) -> Vec<(i64, Option<Bytes>)> {
    let Payload::Normal(data) = &e.entry.payload else {
        return Vec::new();
    };
    match batch::records(data) {
        Ok(kvs) => kvs
            .iter()
            .enumerate()
            .map(|(k, kv)| {
                (
                    e.base_offset + k as i64,
                    kv.value.map(|v| data.slice_ref(v)),
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The value stored at `offset` of `log`, if a data batch holds it.
pub fn value_at(log: &Log, offset: i64) -> Option<Bytes> {
    let entries = log.entries();
    let i = entries.partition_point(|e| e.end_offset <= offset);
    let e = entries.get(i)?;
    values(e)
        .into_iter()
        .find(|(o, _)| *o == offset)
        .and_then(|(_, v)| v)
}

impl Checker {
    /// A checker for `clients` clients.
    pub fn new(clients: usize) -> Checker {
        Checker {
            sent: vec![0; clients],
            ..Checker::default()
        }
    }

    /// Client `client` has now sent values `1..=n`.
    pub fn sent(&mut self, client: usize, n: u64) {
        self.sent[client] = n;
    }

    /// Acknowledged records so far.
    pub fn acked(&self) -> usize {
        self.acked.len()
    }

    /// Committed records of the topic seen so far.
    pub fn committed_records(&self) -> usize {
        self.refs
            .iter()
            .filter(|(tp, _)| tp.topic == TOPIC)
            .map(|(_, r)| r.offsets.len())
            .sum()
    }

    /// How far `node`'s copy of `tp` has been checked.
    pub fn verified(&self, node: u64, tp: &TopicPartition) -> Option<u64> {
        self.verified.get(&(node, tp.clone())).copied()
    }

    /// `node` stores `log` for `tp` and has committed up to `bound` of it:
    /// checks the entries not checked before against the reference.
    pub fn observe(
        &mut self,
        node: u64,
        tp: &TopicPartition,
        log: &Log,
        bound: u64,
    ) -> Result<(), Found> {
        let key = (node, tp.clone());
        let from = self.verified.get(&key).map_or(log.first_index(), |v| v + 1);
        if bound < from {
            return Ok(());
        }
        for i in from..=bound {
            let Some(e) = log.entry(i) else {
                return Err(Found::new(
                    Check::CommittedTruncated,
                    format!("n{node} lost committed index {i} of {tp}"),
                ));
            };
            self.commit(node, tp, e)?;
        }
        self.verified.insert(key, bound);
        Ok(())
    }

    fn commit(&mut self, node: u64, tp: &TopicPartition, e: &StoredEntry) -> Result<(), Found> {
        let index = e.entry.index.0;
        let term = e.entry.term.0;
        let r = self.refs.entry(tp.clone()).or_default();
        if let Some((t, p)) = r.entries.get(&index) {
            if *t != term || *p != e.entry.payload {
                return Err(Found::new(
                    Check::CommittedDiverged,
                    format!(
                        "{tp} index {index}: n{node} committed {}, another replica committed {}",
                        describe(term, &e.entry.payload),
                        describe(*t, p)
                    ),
                ));
            }
            return Ok(());
        }
        r.entries.insert(index, (term, e.entry.payload.clone()));
        if tp.topic != TOPIC {
            return Ok(());
        }
        for (offset, value) in values(e) {
            let Some(value) = value else {
                return Err(Found::new(
                    Check::Phantom,
                    format!("{tp} offset {offset}: a null value"),
                ));
            };
            if let Some(old) = r.offsets.get(&offset) {
                if *old != value {
                    return Err(Found::new(
                        Check::TwoValuesAtOffset,
                        format!("{tp} offset {offset}: {old:?} and {value:?}"),
                    ));
                }
                continue;
            }
            if let Some(o) = r.values.get(&value) {
                return Err(Found::new(
                    Check::Duplicated,
                    format!(
                        "{tp}: {value:?} committed at offsets {o} and {offset} (index {index})"
                    ),
                ));
            }
            if !Checker::was_sent(&self.sent, &value) {
                return Err(Found::new(
                    Check::Phantom,
                    format!("{tp} offset {offset}: {value:?} was never sent"),
                ));
            }
            if let Some(a) = self.acked.get(&(tp.partition, offset)) {
                if *a != value {
                    return Err(Found::new(
                        Check::AckedMismatch,
                        format!(
                            "{tp} offset {offset}: {a:?} was acknowledged there, {value:?} is committed"
                        ),
                    ));
                }
            }
            r.offsets.insert(offset, value.clone());
            r.values.insert(value, offset);
        }
        Ok(())
    }

    fn was_sent(sent: &[u64], value: &[u8]) -> bool {
        let Ok(s) = std::str::from_utf8(value) else {
            return false;
        };
        let Some((c, n)) = s.strip_prefix('c').and_then(|s| s.split_once('-')) else {
            return false;
        };
        match (c.parse::<usize>(), n.parse::<u64>()) {
            (Ok(c), Ok(n)) => sent.get(c).is_some_and(|&sent| n >= 1 && n <= sent),
            _ => false,
        }
    }

    /// A write on `node` truncated `tp`'s log from `from`.
    pub fn truncated(&self, node: u64, tp: &TopicPartition, from: u64) -> Result<(), Found> {
        match self.verified.get(&(node, tp.clone())) {
            Some(&v) if from <= v => Err(Found::new(
                Check::CommittedTruncated,
                format!("n{node} truncated {tp} from {from}, but had committed up to {v}"),
            )),
            _ => Ok(()),
        }
    }

    /// A client was told its records are stored.
    pub fn ack(&mut self, ack: &Ack) -> Result<(), Found> {
        let tp = TopicPartition {
            topic: TOPIC.to_string(),
            partition: ack.partition,
        };
        for (k, v) in ack.values.iter().enumerate() {
            let offset = ack.base_offset + k as i64;
            let prev = self.acked.insert((ack.partition, offset), v.clone());
            if let Some(prev) = prev.filter(|p| p != v) {
                return Err(Found::new(
                    Check::AckedMismatch,
                    format!("{tp} offset {offset} acknowledged for {prev:?} and for {v:?}"),
                ));
            }
            let Some(r) = self.refs.get(&tp) else {
                continue;
            };
            match (r.offsets.get(&offset), r.values.get(v)) {
                (Some(stored), _) if stored != v => {
                    return Err(Found::new(
                        Check::AckedMismatch,
                        format!(
                            "{tp} offset {offset}: n{} acknowledged {v:?}, {stored:?} is committed",
                            ack.node
                        ),
                    ))
                }
                (_, Some(&o)) if o != offset => {
                    return Err(Found::new(
                        Check::AckedMismatch,
                        format!(
                            "{tp}: n{} acknowledged {v:?} at {offset}, it is committed at {o}",
                            ack.node
                        ),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The final reader fetched `records` of `partition` below the high
    /// watermark `high_watermark`, which the leader's log ends at
    /// `log_end`: they must be the committed log, the whole of it, with
    /// every acknowledged record.
    pub fn consumed(
        &self,
        partition: i32,
        high_watermark: i64,
        log_end: i64,
        records: &BTreeMap<i64, Option<Bytes>>,
    ) -> Result<(), Found> {
        let tp = TopicPartition {
            topic: TOPIC.to_string(),
            partition,
        };
        if high_watermark != log_end {
            return Err(Found::new(
                Check::FetchMismatch,
                format!("{tp}: the high watermark is {high_watermark}, the converged log ends at {log_end}"),
            ));
        }
        let empty = BTreeMap::new();
        let committed = self.refs.get(&tp).map_or(&empty, |r| &r.offsets);
        for (o, v) in records {
            if committed.get(o) != v.as_ref() {
                return Err(Found::new(
                    Check::FetchMismatch,
                    format!(
                        "{tp} offset {o}: fetched {v:?}, committed {:?}",
                        committed.get(o)
                    ),
                ));
            }
        }
        if let Some(o) = committed.keys().find(|o| !records.contains_key(o)) {
            return Err(Found::new(
                Check::FetchMismatch,
                format!("{tp} offset {o} is committed but was not fetched"),
            ));
        }
        for (&(p, o), v) in self
            .acked
            .range((partition, i64::MIN)..=(partition, i64::MAX))
        {
            if records.get(&o).and_then(|r| r.as_ref()) != Some(v) {
                return Err(Found::new(
                    Check::AckedLost,
                    format!("{tp} offset {o}: {v:?} was acknowledged, a Fetch from the leader of {p} did not return it"),
                ));
            }
        }
        Ok(())
    }

    /// The end: every acknowledged record is committed at its offset and on
    /// the final leader's log of its partition (`leaders`).
    pub fn final_check(&self, leaders: &BTreeMap<i32, (u64, Log)>) -> Result<(), Found> {
        for (&(partition, offset), v) in &self.acked {
            let tp = TopicPartition {
                topic: TOPIC.to_string(),
                partition,
            };
            let committed = self.refs.get(&tp).and_then(|r| r.offsets.get(&offset));
            if committed != Some(v) {
                return Err(Found::new(
                    Check::AckedLost,
                    format!(
                        "{tp} offset {offset}: {v:?} was acknowledged, the committed log has {committed:?}"
                    ),
                ));
            }
            let Some((leader, log)) = leaders.get(&partition) else {
                return Err(Found::new(
                    Check::AckedLost,
                    format!("{tp} has no leader at the end"),
                ));
            };
            let stored = value_at(log, offset);
            if stored.as_ref() != Some(v) {
                return Err(Found::new(
                    Check::AckedLost,
                    format!(
                        "{tp} offset {offset}: {v:?} was acknowledged, the final leader n{leader} has {stored:?}"
                    ),
                ));
            }
        }
        Ok(())
    }
}
