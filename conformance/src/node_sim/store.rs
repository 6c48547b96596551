//! The model disk of a simulated broker: an in-memory [`LogStore`] with the
//! semantics of the real `DiskStore`, and the write queue that decides what a
//! crash keeps.
//!
//! Every partition log keeps its Raft entries (data entries as the leader's
//! record batches, Raft-only entries as offset-less markers) and its Raft
//! metadata (hard state, snapshot marker), so a restart rebuilds
//! [`Restored`] exactly as `DiskStore` reads it back. Writes validate like
//! `PartitionLog::append` (consecutive indexes, no term regression, base
//! offset = log end, leader epoch = term, whole CRC-valid batches); a refusal
//! is what a real disk would answer with `PersistFailed`.
//!
//! # What a crash keeps
//!
//! A `Persist` write is applied (visible and durable at once) when its
//! completion fires, in `seq` order per group. A crash drops the queue, so
//! only completed writes survive, except in the torn variant the simulator
//! draws, which follows `DiskStore`'s commit round: a changed hard state is
//! appended to the node's journal, a snapshot marker synced, then the entries
//! appended; the logs and the journal are synced before any completion. A
//! crash mid-round keeps a prefix of the queued writes' entries (the last one
//! possibly cut short) and, independently, a prefix of their hard states; a
//! write whose entries reached the disk had its snapshot marker synced first.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use broker::store::{LogSettings, LogStore, StoredEntries, TopicPartition};
use bytes::{Bytes, BytesMut};
use proto_core::multiraft::GroupId;
use proto_core::raft::{Entry, HardState, Payload, PersistWrite, Restored, Snapshot};
use proto_core::storage::batch::{self, BatchHeader};

/// One stored Raft entry with the Kafka offsets it spans.
#[derive(Clone, Debug)]
pub struct StoredEntry {
    /// The entry as Raft wrote it.
    pub entry: Entry,
    /// The offset of its first record; for a Raft-only entry, the log end
    /// offset when it was written (it takes none).
    pub base_offset: i64,
    /// The offset after its last record (`base_offset` for a Raft-only entry).
    pub end_offset: i64,
    /// The batch header of a data entry.
    pub header: Option<BatchHeader>,
}

/// A partition's Raft metadata, as `raft.meta` holds it.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// Term, vote and commit index.
    pub hard_state: HardState,
    /// The snapshot marker (its data is never stored: the log is the data).
    pub snapshot: Option<Snapshot>,
}

/// One partition's log on the model disk.
#[derive(Clone, Debug)]
pub struct Log {
    first_index: u64,
    start_offset: i64,
    entries: Vec<StoredEntry>,
    /// The durable Raft metadata.
    durable: Meta,
    /// The metadata as last written, with the commit-only changes that
    /// `DiskStore` keeps in memory until the next term or vote change.
    latest: Meta,
    max_batch_bytes: u32,
}

/// What applying a write did to a log's entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The index the log was truncated from (a follower replacing a
    /// conflicting suffix), if it was.
    pub truncated_from: Option<u64>,
    /// Entries the truncation removed.
    pub removed: usize,
    /// The offsets the removed entries spanned.
    pub removed_offsets: (i64, i64),
}

impl Log {
    fn new(max_batch_bytes: u32) -> Log {
        Log {
            first_index: 1,
            start_offset: 0,
            entries: Vec::new(),
            durable: Meta::default(),
            latest: Meta::default(),
            max_batch_bytes,
        }
    }

    /// The index of the first stored entry.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// The index of the last stored entry (`first_index() - 1` if none).
    pub fn last_index(&self) -> u64 {
        self.first_index + self.entries.len() as u64 - 1
    }

    /// The stored entry at `index`.
    pub fn entry(&self, index: u64) -> Option<&StoredEntry> {
        let at = index.checked_sub(self.first_index)?;
        self.entries.get(usize::try_from(at).ok()?)
    }

    /// Every stored entry, in index order.
    pub fn entries(&self) -> &[StoredEntry] {
        &self.entries
    }

    /// The durable Raft metadata.
    pub fn durable_meta(&self) -> &Meta {
        &self.durable
    }

    /// The offset the next data record gets.
    pub fn next_offset(&self) -> i64 {
        self.entries
            .last()
            .map_or(self.start_offset, |e| e.end_offset)
    }

    /// What `DiskStore::open` reads back: the durable metadata and the
    /// entries after the snapshot marker.
    pub fn restored(&self) -> Restored {
        let from = self
            .durable
            .snapshot
            .as_ref()
            .map_or(self.first_index, |s| s.meta.last.index.0 + 1)
            .max(self.first_index);
        Restored {
            hard_state: self.durable.hard_state,
            snapshot: self.durable.snapshot.clone(),
            entries: self
                .entries
                .iter()
                .filter(|e| e.entry.index.0 >= from)
                .map(|e| e.entry.clone())
                .collect(),
            // The node supplies the membership, as with `DiskStore`.
            membership: Default::default(),
        }
    }

    /// Applies a write's Raft metadata: a term or vote change or a snapshot
    /// marker makes the latest metadata durable; a commit-only change stays
    /// in memory, as in `DiskStore`.
    fn apply_meta(&mut self, w: &PersistWrite) {
        let mut changed = false;
        if let Some(hs) = w.hard_state {
            changed |=
                hs.term != self.latest.hard_state.term || hs.vote != self.latest.hard_state.vote;
            self.latest.hard_state = hs;
        }
        if let Some(s) = &w.snapshot {
            self.latest.snapshot = Some(Snapshot {
                meta: s.meta.clone(),
                data: Bytes::new(),
            });
            changed = true;
        }
        if changed {
            self.durable = self.latest.clone();
        }
    }

    /// Appends entries, truncating first if the first one's index is stored,
    /// with `PartitionLog::append`'s validation.
    fn append(&mut self, entries: &[Entry]) -> Result<Applied, String> {
        let Some(first) = entries.first() else {
            return Ok(Applied::default());
        };
        let mut applied = Applied::default();
        let fi = first.index.0;
        if fi <= self.last_index() {
            if fi < self.first_index {
                return Err(format!(
                    "cannot truncate from {fi}, before the log's first entry {}",
                    self.first_index
                ));
            }
            let keep = (fi - self.first_index) as usize;
            applied.truncated_from = Some(fi);
            applied.removed = self.entries.len() - keep;
            applied.removed_offsets = (
                self.entries[keep].base_offset,
                self.entries.last().map_or(0, |e| e.end_offset),
            );
            self.entries.truncate(keep);
        }
        let mut last_term = self.entries.last().map_or(0, |e| e.entry.term.0);
        let mut next = self.next_offset();
        let mut out = Vec::with_capacity(entries.len());
        for (expected, e) in (self.last_index() + 1..).zip(entries) {
            let index = e.index.0;
            if index != expected {
                return Err(format!("index gap: expected {expected}, found {index}"));
            }
            if e.term.0 < last_term {
                return Err(format!(
                    "term regressed at {index}: {} after {last_term}",
                    e.term.0
                ));
            }
            let stored = match &e.payload {
                Payload::Normal(data) => {
                    if data.len() > self.max_batch_bytes as usize {
                        return Err(format!(
                            "entry {index} of {} bytes is too large",
                            data.len()
                        ));
                    }
                    let h = batch::validate(data).map_err(|err| format!("entry {index}: {err}"))?;
                    if h.last_offset_delta < 0 {
                        return Err(format!("entry {index} is not a data batch"));
                    }
                    if h.base_offset != next {
                        return Err(format!(
                            "entry {index}: base offset {} is not the log end offset {next}",
                            h.base_offset
                        ));
                    }
                    if i64::from(h.partition_leader_epoch) != e.term.0 as i64 {
                        return Err(format!(
                            "entry {index}: leader epoch {} is not its term {}",
                            h.partition_leader_epoch, e.term.0
                        ));
                    }
                    StoredEntry {
                        entry: e.clone(),
                        base_offset: next,
                        end_offset: h.end_offset(),
                        header: Some(h),
                    }
                }
                _ => StoredEntry {
                    entry: e.clone(),
                    base_offset: next,
                    end_offset: next,
                    header: None,
                },
            };
            next = stored.end_offset;
            last_term = e.term.0;
            out.push(stored);
        }
        self.entries.extend(out);
        Ok(applied)
    }

    fn read(&self, offset: i64, max_bytes: usize, end: i64) -> Bytes {
        if offset < self.start_offset || offset >= self.next_offset().min(end) {
            return Bytes::new();
        }
        let mut out = BytesMut::new();
        for e in &self.entries {
            let (Some(h), Payload::Normal(data)) = (&e.header, &e.entry.payload) else {
                continue;
            };
            if h.end_offset() <= offset {
                continue;
            }
            if h.end_offset() > end || (!out.is_empty() && out.len() + data.len() > max_bytes) {
                break;
            }
            out.extend_from_slice(data);
        }
        out.freeze()
    }

    fn next_offset_after(&self, raft_index: u64) -> i64 {
        if raft_index >= self.last_index() {
            return self.next_offset();
        }
        if raft_index < self.first_index {
            return self.start_offset;
        }
        self.entry(raft_index + 1)
            .map_or(self.start_offset, |e| e.base_offset)
    }
}

/// Everything one broker's disk holds.
#[derive(Debug, Default)]
pub struct Disk {
    logs: BTreeMap<TopicPartition, Log>,
    topics: Option<Vec<u8>>,
}

impl Disk {
    /// The log of `tp`, if the node created it.
    pub fn log(&self, tp: &TopicPartition) -> Option<&Log> {
        self.logs.get(tp)
    }

    /// Every log, by partition.
    pub fn logs(&self) -> &BTreeMap<TopicPartition, Log> {
        &self.logs
    }

    /// Forgets what was only in memory: the commit-only metadata changes.
    fn crash(&mut self) {
        for log in self.logs.values_mut() {
            log.latest = log.durable.clone();
        }
    }
}

fn lock(disk: &Mutex<Disk>) -> MutexGuard<'_, Disk> {
    disk.lock().unwrap_or_else(|e| e.into_inner())
}

/// The node's handle on its disk: the [`LogStore`] it reads through.
#[derive(Clone, Debug)]
pub struct SimStore(Arc<Mutex<Disk>>);

fn missing(tp: &TopicPartition) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no log for {tp}"))
}

impl LogStore for SimStore {
    fn create(
        &mut self,
        _group: u64,
        tp: &TopicPartition,
        settings: &LogSettings,
    ) -> io::Result<Restored> {
        let mut disk = lock(&self.0);
        let log = disk
            .logs
            .entry(tp.clone())
            .or_insert_with(|| Log::new(settings.max_batch_bytes));
        log.max_batch_bytes = settings.max_batch_bytes;
        // Opening reads the metadata back from disk.
        log.latest = log.durable.clone();
        Ok(log.restored())
    }

    fn delete(&mut self, tp: &TopicPartition) -> io::Result<()> {
        lock(&self.0).logs.remove(tp);
        Ok(())
    }

    fn configure(&mut self, tp: &TopicPartition, settings: &LogSettings) -> io::Result<()> {
        if let Some(log) = lock(&self.0).logs.get_mut(tp) {
            log.max_batch_bytes = settings.max_batch_bytes;
        }
        Ok(())
    }

    fn read(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: usize,
        end: i64,
    ) -> io::Result<Bytes> {
        match lock(&self.0).logs.get(tp) {
            Some(log) => Ok(log.read(offset, max_bytes, end)),
            None => Err(missing(tp)),
        }
    }

    fn scan_headers(&self, tp: &TopicPartition, f: &mut dyn FnMut(&BatchHeader)) -> io::Result<()> {
        if let Some(log) = lock(&self.0).logs.get(tp) {
            for h in log.entries.iter().filter_map(|e| e.header.as_ref()) {
                f(h);
            }
        }
        Ok(())
    }

    fn next_offset_after(&self, tp: &TopicPartition, raft_index: u64) -> io::Result<i64> {
        Ok(lock(&self.0)
            .logs
            .get(tp)
            .map_or(0, |l| l.next_offset_after(raft_index)))
    }

    fn raft_entries(
        &self,
        tp: &TopicPartition,
        from: u64,
        last: u64,
        max_bytes: usize,
    ) -> io::Result<StoredEntries> {
        let disk = lock(&self.0);
        let Some(log) = disk.logs.get(tp) else {
            return Ok(StoredEntries::From {
                prev_term: None,
                entries: Vec::new(),
            });
        };
        let prev_term = log.entry(from.saturating_sub(1)).map(|e| e.entry.term.0);
        let mut out = Vec::new();
        let mut bytes = 0;
        for index in from..=last {
            let Some(stored) = log.entry(index) else {
                break;
            };
            bytes += stored.entry.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(stored.entry.clone());
        }
        Ok(StoredEntries::From {
            prev_term,
            entries: out,
        })
    }

    /// The model disk has no retention: nothing to hold.
    fn hold_for_replicas(&self, _: &TopicPartition, _: Option<u64>) {}

    fn log_start_offset(&self, tp: &TopicPartition) -> i64 {
        lock(&self.0).logs.get(tp).map_or(0, |l| l.start_offset)
    }

    fn next_offset(&self, tp: &TopicPartition) -> i64 {
        lock(&self.0).logs.get(tp).map_or(0, Log::next_offset)
    }

    fn offset_for_timestamp(&self, tp: &TopicPartition, ts: i64) -> io::Result<Option<(i64, i64)>> {
        Ok(lock(&self.0).logs.get(tp).and_then(|l| {
            l.entries
                .iter()
                .filter_map(|e| e.header.as_ref())
                .find(|h| h.max_timestamp >= ts)
                .map(|h| (h.base_offset, h.max_timestamp))
        }))
    }

    fn save_topics(&mut self, data: &[u8]) -> io::Result<()> {
        lock(&self.0).topics = Some(data.to_vec());
        Ok(())
    }
}

/// A write handed to the disk and not yet complete.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// The partition written.
    pub tp: TopicPartition,
    /// The write.
    pub write: PersistWrite,
    /// When it completes, in simulated milliseconds.
    pub done_at: u64,
}

/// What of a group's queued writes survives a crash: the entries of the
/// first `entry_writes` writes and the first `partial_entries` of the next
/// one's; and, independently, the hard state (and snapshot marker) of the
/// first `meta_writes` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Torn {
    /// Writes whose entries reached the disk whole.
    pub entry_writes: usize,
    /// Entries of the next write that did.
    pub partial_entries: usize,
    /// Writes whose hard state reached the journal.
    pub meta_writes: usize,
}

/// What completing a write did.
#[derive(Clone, Debug)]
pub struct Completed {
    /// The partition written.
    pub tp: TopicPartition,
    /// The write's sequence number.
    pub seq: u64,
    /// The refusal a real disk would have answered with, if any.
    pub refused: Option<String>,
    /// What the write did to the entries.
    pub applied: Applied,
}

/// A broker's disk and its queue of incomplete writes: what survives the
/// process and what dies with it.
#[derive(Debug, Default)]
pub struct NodeDisk {
    disk: Arc<Mutex<Disk>>,
    in_flight: BTreeMap<GroupId, VecDeque<InFlight>>,
    /// The last write queued per group by the running process.
    last_seq: BTreeMap<GroupId, u64>,
}

impl NodeDisk {
    /// A handle for a (re)started node.
    pub fn store(&self) -> SimStore {
        SimStore(self.disk.clone())
    }

    /// The disk's contents.
    pub fn disk(&self) -> MutexGuard<'_, Disk> {
        lock(&self.disk)
    }

    /// When the last queued write of `group` completes (writes of a group
    /// complete in order).
    pub fn last_done_at(&self, group: GroupId) -> Option<u64> {
        self.in_flight
            .get(&group)
            .and_then(|q| q.back())
            .map(|w| w.done_at)
    }

    /// The sequence number of the last write queued for `group` since the
    /// node started.
    pub fn last_seq(&self, group: GroupId) -> Option<u64> {
        self.last_seq.get(&group).copied()
    }

    /// Queues a write.
    pub fn submit(
        &mut self,
        group: GroupId,
        tp: TopicPartition,
        write: PersistWrite,
        done_at: u64,
    ) {
        self.last_seq.insert(group, write.seq);
        self.in_flight
            .entry(group)
            .or_default()
            .push_back(InFlight { tp, write, done_at });
    }

    /// Completes `group`'s oldest queued write, which must be `seq`.
    pub fn complete(&mut self, group: GroupId, seq: u64) -> Option<Completed> {
        let q = self.in_flight.get_mut(&group)?;
        if q.front().map(|w| w.write.seq) != Some(seq) {
            return None;
        }
        let w = q.pop_front()?;
        Some(self.apply(w))
    }

    fn apply(&mut self, w: InFlight) -> Completed {
        let entries = w.write.entries.len();
        self.apply_part(w, true, entries)
    }

    /// Applies `w`'s hard state and snapshot marker if `meta` (the marker
    /// also if any entry is kept: it is synced before them), and its first
    /// `entries` entries.
    fn apply_part(&mut self, w: InFlight, meta: bool, entries: usize) -> Completed {
        let mut disk = lock(&self.disk);
        let (refused, applied) = match disk.logs.get_mut(&w.tp) {
            None => (Some(format!("{} has no log", w.tp)), Applied::default()),
            Some(log) => {
                if meta {
                    log.apply_meta(&w.write);
                } else if entries > 0 && w.write.snapshot.is_some() {
                    let marker = PersistWrite {
                        hard_state: None,
                        entries: Vec::new(),
                        ..w.write.clone()
                    };
                    log.apply_meta(&marker);
                }
                match log.append(&w.write.entries[..entries.min(w.write.entries.len())]) {
                    Ok(a) => (None, a),
                    Err(e) => (Some(e), Applied::default()),
                }
            }
        };
        Completed {
            tp: w.tp,
            seq: w.write.seq,
            refused,
            applied,
        }
    }

    /// The lowest entry index a queued write of `group` will (re)write: the
    /// stored entries below it are the node's Raft log.
    pub fn first_pending_index(&self, group: GroupId) -> Option<u64> {
        self.in_flight
            .get(&group)?
            .iter()
            .filter_map(|w| w.write.entries.first().map(|e| e.index.0))
            .min()
    }

    /// Whether any write of `group` is queued.
    pub fn busy(&self, group: GroupId) -> bool {
        self.in_flight.get(&group).is_some_and(|q| !q.is_empty())
    }

    /// The groups with queued writes.
    pub fn queued_groups(&self) -> Vec<GroupId> {
        self.in_flight
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(g, _)| *g)
            .collect()
    }

    /// Test-only breakage: drops the newest entry of every log, as a disk
    /// that acknowledged an fsync it never did would lose it in a crash.
    pub fn lose_newest_entries(&mut self) {
        for log in lock(&self.disk).logs.values_mut() {
            log.entries.pop();
        }
    }

    /// The process dies. For each group, `keep` looks at its queued writes
    /// and says what reached the disk anyway ([`Torn`]); the rest is lost.
    /// Returns what the kept writes did.
    pub fn crash(&mut self, mut keep: impl FnMut(&[InFlight]) -> Torn) -> Vec<Completed> {
        self.last_seq.clear();
        let queues = std::mem::take(&mut self.in_flight);
        let mut kept = Vec::new();
        for (_, mut q) in queues {
            let torn = keep(q.make_contiguous());
            for (i, w) in q.into_iter().enumerate() {
                let meta = i < torn.meta_writes;
                let entries = match i.cmp(&torn.entry_writes) {
                    std::cmp::Ordering::Less => w.write.entries.len(),
                    std::cmp::Ordering::Equal => torn.partial_entries,
                    std::cmp::Ordering::Greater => 0,
                };
                if meta || entries > 0 {
                    kept.push(self.apply_part(w, meta, entries));
                }
            }
        }
        lock(&self.disk).crash();
        kept
    }
}
