//! The broker's storage on io-sync's disk layer.
//!
//! Layout under `--data-dir`:
//!
//! ```text
//! .lock                     held while a process serves this directory
//! cluster/raft.meta         the topic table
//! cluster/hardstate.journal every group's Raft hard state (io_sync::disk::Journal)
//! topics/<topic>-<n>/       one partition: segment files (see io_sync::disk)
//!                           and raft.meta (snapshot marker, with the hard state
//!                           of its time; the journal's is newer; a marker
//!                           carrying a LogStart means the log starts after it)
//! ```
//!
//! [`DiskStore`] is the read side the node calls directly; [`Persister`] turns
//! the node's `Persist` outputs into group-commit jobs and hands completions
//! back through the node loop's waker. The Raft log *is* the partition log:
//! data entries are stored as the client's batches, Raft-only entries as
//! control batches that take no offset.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use io_sync::disk::{
    BeforeAppend, CommitHandle, EntryPayload, GroupCommitter, Journal, LogConfig, LogEntry,
    PartitionLog, RaftMetaStore, SharedLog, WriteJob,
};
use io_sync::host::Waker;
use proto_core::multiraft::GroupId;
use proto_core::raft::{
    wire, Entry, HardState, LogId, LogIndex, Payload, PersistWrite, Restored, Snapshot, Term,
};
use proto_core::storage::batch::BatchHeader;

use crate::log_start::LogStart;
use crate::node::topics::TopicTable;
use crate::node::{Input, RestoredGroups};
use crate::store::{LogSettings, LogStore, StoredEntries, TopicPartition};

/// Jobs the group committer takes per round (one fsync per log per round).
const JOBS_PER_ROUND: usize = 4096;

/// What a restart recovered: the topic table and each group's Raft state.
pub struct Recovered {
    /// The topic table last saved.
    pub table: TopicTable,
    /// Durable Raft state per group id.
    pub groups: RestoredGroups,
}

/// A partition's durable Raft metadata, as cached in memory.
#[derive(Clone, Debug, Default)]
struct Meta {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
}

impl Meta {
    fn encode(&self) -> Vec<u8> {
        let hs = wire::encode_hard_state(&self.hard_state);
        let mut out = Vec::with_capacity(hs.len() + 64);
        out.extend_from_slice(&(hs.len() as u32).to_be_bytes());
        out.extend_from_slice(&hs);
        if let Some(s) = &self.snapshot {
            out.extend_from_slice(&wire::encode_snapshot(s));
        }
        out
    }

    fn decode(data: &[u8]) -> Result<Meta, String> {
        let len = data
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or("raft.meta is too short")?;
        let hs = data.get(4..4 + len).ok_or("raft.meta is truncated")?;
        let hard_state = wire::decode_hard_state(hs).map_err(|e| e.to_string())?;
        let rest = &data[4 + len..];
        let snapshot = if rest.is_empty() {
            None
        } else {
            Some(wire::decode_snapshot(rest).map_err(|e| e.to_string())?)
        };
        Ok(Meta {
            hard_state,
            snapshot,
        })
    }
}

struct Partition {
    /// Its Raft group: its key in the hard-state journal.
    group: u64,
    log: SharedLog,
    /// The Raft metadata as last submitted (it may not be on disk yet).
    meta: Meta,
    meta_store: Arc<RaftMetaStore>,
    /// The first Raft index the durable snapshot marker does not cover:
    /// retention may delete entries below it only, since a restart reads the
    /// log from the marker on disk.
    durable_keep: Arc<AtomicU64>,
    /// The first Raft index a lagging replica still needs, while this node
    /// leads the partition (`u64::MAX`: none); retention holds it within
    /// limits (see [`LogStore::hold_for_replicas`]).
    replica_hold: Arc<AtomicU64>,
}

/// The Raft index after `meta`'s snapshot marker (0 without one).
fn keep_from(meta: &Meta) -> u64 {
    meta.snapshot
        .as_ref()
        .map_or(0, |s| s.meta.last.index.0 + 1)
}

struct Inner {
    root: PathBuf,
    journal: Arc<Mutex<Journal>>,
    partitions: BTreeMap<TopicPartition, Partition>,
    table_store: RaftMetaStore,
}

/// Partition storage under one data directory. Cloning shares it.
#[derive(Clone)]
pub struct DiskStore {
    inner: Arc<Mutex<Inner>>,
    /// Held for the process's lifetime: a second `chronik` on the same
    /// directory would corrupt it.
    _lock: Arc<File>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn log_config(s: &LogSettings) -> LogConfig {
    LogConfig {
        segment_bytes: s.segment_bytes,
        segment_ms: s.segment_ms,
        retention_bytes: s.retention_bytes,
        retention_ms: s.retention_ms,
        max_batch_bytes: s.max_batch_bytes,
        ..LogConfig::default()
    }
}

fn partition_dir(root: &Path, tp: &TopicPartition) -> PathBuf {
    root.join("topics")
        .join(format!("{}-{}", tp.topic, tp.partition))
}

impl DiskStore {
    /// Opens (or creates) the data directory, recovers every partition log,
    /// and starts the group committer whose completions wake the node loop.
    pub fn open(
        root: &Path,
        sync: bool,
        waker: Waker,
    ) -> io::Result<(DiskStore, Persister, Recovered)> {
        std::fs::create_dir_all(root.join("topics"))?;
        std::fs::create_dir_all(root.join("cluster"))?;
        let lock_file = File::create(root.join(".lock"))?;
        lock_file.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                "another chronik process is using this data directory",
            )
        })?;
        let table = match RaftMetaStore::load(&root.join("cluster"))? {
            Some(data) => TopicTable::decode(&data).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("topic table: {e}"))
            })?,
            None => TopicTable::default(),
        };
        let journal = Arc::new(Mutex::new(Journal::open(
            &root.join("cluster").join("hardstate.journal"),
        )?));
        let mut partitions = BTreeMap::new();
        let mut groups = RestoredGroups::new();
        for (name, topic) in &table.topics {
            for (p, &group) in topic.groups.iter().enumerate() {
                let tp = TopicPartition {
                    topic: name.clone(),
                    partition: p as i32,
                };
                let (partition, restored) = open_partition(
                    root,
                    &lock(&journal),
                    group,
                    &tp,
                    &log_config(&topic.config.log_settings()),
                )?;
                groups.insert(group, restored);
                partitions.insert(tp, partition);
            }
        }
        let store = DiskStore {
            inner: Arc::new(Mutex::new(Inner {
                table_store: RaftMetaStore::new(&root.join("cluster")),
                root: root.to_path_buf(),
                journal: journal.clone(),
                partitions,
            })),
            _lock: Arc::new(lock_file),
        };
        let synced = journal;
        let committer = GroupCommitter::start_with_barrier(
            JOBS_PER_ROUND,
            Box::new(move || lock(&synced).sync()),
        )?;
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let persister = Persister {
            handle: committer.handle(),
            committer: Some(committer),
            store: store.clone(),
            done_tx,
            done_rx,
            waker,
            sync,
            in_flight: 0,
        };
        Ok((store, persister, Recovered { table, groups }))
    }

    fn log(&self, tp: &TopicPartition) -> Option<SharedLog> {
        lock(&self.inner).partitions.get(tp).map(|p| p.log.clone())
    }

    /// Rolls and applies retention to every log, and never deletes what the
    /// Raft log still needs (entries after its snapshot).
    pub fn housekeeping(&self, wall_ms: i64) {
        let logs: Vec<(TopicPartition, SharedLog, u64, u64)> = lock(&self.inner)
            .partitions
            .iter()
            .map(|(tp, p)| {
                let keep = p.durable_keep.load(Ordering::Acquire);
                let hold = p.replica_hold.load(Ordering::Acquire);
                (tp.clone(), p.log.clone(), keep, hold)
            })
            .collect();
        for (tp, log, keep, hold) in logs {
            let mut log = lock(&log);
            if let Err(e) = log.maybe_roll(wall_ms) {
                tracing::error!(%tp, error = %e, "rolling a segment failed");
            }
            match log.enforce_retention(wall_ms, keep, hold) {
                Ok(0) => {}
                Ok(n) => tracing::info!(%tp, segments = n, "retention deleted segments"),
                Err(e) => tracing::error!(%tp, error = %e, "retention failed"),
            }
        }
    }

    /// Bytes on disk for `tp`.
    pub fn size_of(&self, tp: &TopicPartition) -> u64 {
        self.log(tp).map_or(0, |l| lock(&l).size_bytes())
    }
}

/// Opens one partition's log and reads back its Raft state: the snapshot
/// marker from `raft.meta`, the hard state from the journal when it is at
/// least as new.
fn open_partition(
    root: &Path,
    journal: &Journal,
    group: u64,
    tp: &TopicPartition,
    cfg: &LogConfig,
) -> io::Result<(Partition, Restored)> {
    let dir = partition_dir(root, tp);
    let (mut log, report) = PartitionLog::open(&dir, cfg.clone())?;
    if report.bytes_truncated > 0 || !report.quarantined.is_empty() {
        tracing::warn!(%tp, truncated = report.bytes_truncated, quarantined = ?report.quarantined,
            "recovered a damaged log");
    }
    let mut meta = match RaftMetaStore::load(&dir)? {
        Some(data) => Meta::decode(&data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{tp}: {e}")))?,
        None => Meta::default(),
    };
    if let Some(data) = journal.get(group) {
        let hs = wire::decode_hard_state(data).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{tp}: the journal's hard state: {e}"),
            )
        })?;
        if hs.term >= meta.hard_state.term {
            meta.hard_state = hs;
        }
    }
    if let Some(s) = &meta.snapshot {
        if let Some(start) = LogStart::decode(&s.data) {
            reset_to_log_start(&mut log, s.meta.last, start)?;
        }
    }
    clamp_marker_to_log(tp, &mut meta, &log)?;
    let from = meta
        .snapshot
        .as_ref()
        .map_or(log.first_raft_index(), |s| s.meta.last.index.0 + 1)
        .max(log.first_raft_index());
    let mut entries = Vec::new();
    if log.last_raft_index() >= from {
        for e in log.entries_from(from, usize::MAX)? {
            entries.push(
                to_raft_entry(e).map_err(|m| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{tp}: {m}"))
                })?,
            );
        }
    }
    let restored = Restored {
        hard_state: meta.hard_state,
        snapshot: meta.snapshot.clone(),
        entries,
        // The node supplies the founding membership.
        membership: Default::default(),
    };
    let partition = Partition {
        group,
        log: Arc::new(Mutex::new(log)),
        durable_keep: Arc::new(AtomicU64::new(keep_from(&meta))),
        replica_hold: Arc::new(AtomicU64::new(u64::MAX)),
        meta,
        meta_store: Arc::new(RaftMetaStore::new(&dir)),
    };
    Ok((partition, restored))
}

/// A marker past the log's last entry can only come from a crash with
/// `--fsync never` (the marker is synced, the entries were not). Raft would
/// take the lost entries as held and never be sent them again, and the next
/// append would not follow the log: the marker moves back to the log's end,
/// so the leader sends what was lost. An error if the log's end is not at
/// the start and its term is unknown (an old sidecar): no marker then fits.
fn clamp_marker_to_log(tp: &TopicPartition, meta: &mut Meta, log: &PartitionLog) -> io::Result<()> {
    let Some(s) = &mut meta.snapshot else {
        return Ok(());
    };
    let end = log.last_raft_index();
    if s.meta.last.index.0 <= end {
        return Ok(());
    }
    tracing::warn!(%tp, marker = s.meta.last.index.0, log_end = end,
        "the snapshot marker is past the stored log (entries lost without fsync); \
         starting from the log's end");
    match log.term_at(end) {
        _ if end == 0 => meta.snapshot = None,
        Some(term) => {
            s.meta.last = LogId {
                index: LogIndex(end),
                term: Term(term),
            };
            s.data = Bytes::new();
        }
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{tp}: the snapshot marker names Raft index {} past the log's end {end}, \
                     whose term is unknown",
                    s.meta.last.index.0
                ),
            ))
        }
    }
    Ok(())
}

fn to_raft_entry(e: LogEntry) -> Result<Entry, String> {
    match e.payload {
        EntryPayload::Data(data) => Ok(Entry {
            index: LogIndex(e.raft_index),
            term: Term(e.term),
            payload: Payload::Normal(data),
        }),
        EntryPayload::Raft(data) => {
            let mut decoded = wire::decode_entries(&data).map_err(|e| e.to_string())?;
            match decoded.pop() {
                Some(entry) if decoded.is_empty() && entry.index.0 == e.raft_index => Ok(entry),
                _ => Err(format!(
                    "Raft entry {} does not decode to itself",
                    e.raft_index
                )),
            }
        }
    }
}

fn to_log_entry(e: &Entry) -> LogEntry {
    let payload = match &e.payload {
        Payload::Normal(data) => EntryPayload::Data(data.clone()),
        _ => EntryPayload::Raft(Bytes::from(wire::encode_entries(&vec![e.clone()]))),
    };
    LogEntry {
        raft_index: e.index.0,
        term: e.term.0,
        payload,
    }
}

impl LogStore for DiskStore {
    fn create(
        &mut self,
        group: u64,
        tp: &TopicPartition,
        settings: &LogSettings,
    ) -> io::Result<Restored> {
        let (root, journal) = {
            let inner = lock(&self.inner);
            (inner.root.clone(), inner.journal.clone())
        };
        let (partition, restored) =
            open_partition(&root, &lock(&journal), group, tp, &log_config(settings))?;
        lock(&self.inner).partitions.insert(tp.clone(), partition);
        Ok(restored)
    }

    fn delete(&mut self, tp: &TopicPartition) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        if let Some(p) = inner.partitions.remove(tp) {
            lock(&inner.journal).forget(p.group);
        }
        let dir = partition_dir(&inner.root, tp);
        drop(inner);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn configure(&mut self, tp: &TopicPartition, settings: &LogSettings) -> io::Result<()> {
        if let Some(log) = self.log(tp) {
            lock(&log).set_config(log_config(settings));
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
        match self.log(tp) {
            Some(log) => Ok(lock(&log).read(offset, max_bytes, end)?.bytes),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no log for {tp}"),
            )),
        }
    }

    fn scan_headers(&self, tp: &TopicPartition, f: &mut dyn FnMut(&BatchHeader)) -> io::Result<()> {
        match self.log(tp) {
            Some(log) => lock(&log).for_each_data_header(f),
            None => Ok(()),
        }
    }

    fn next_offset_after(&self, tp: &TopicPartition, raft_index: u64) -> io::Result<i64> {
        match self.log(tp) {
            Some(log) => lock(&log).next_offset_after(raft_index),
            None => Ok(0),
        }
    }

    fn raft_entries(
        &self,
        tp: &TopicPartition,
        from: u64,
        last: u64,
        max_bytes: usize,
    ) -> io::Result<StoredEntries> {
        let Some(log) = self.log(tp) else {
            return Ok(StoredEntries::From {
                prev_term: None,
                entries: Vec::new(),
            });
        };
        let log = lock(&log);
        let first = log.first_raft_index();
        if from < first {
            if let Some(term) = log.term_at(first - 1) {
                return Ok(StoredEntries::StartsAfter {
                    index: first - 1,
                    term,
                    log_start_offset: log.log_start_offset(),
                });
            }
        }
        let prev_term = log.term_at(from.saturating_sub(1));
        let entries = log
            .entries_between(from, last, max_bytes)?
            .into_iter()
            .map(|e| {
                to_raft_entry(e)
                    .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, format!("{tp}: {m}")))
            })
            .collect::<io::Result<_>>()?;
        Ok(StoredEntries::From { prev_term, entries })
    }

    fn hold_for_replicas(&self, tp: &TopicPartition, from: Option<u64>) {
        if let Some(p) = lock(&self.inner).partitions.get(tp) {
            p.replica_hold
                .store(from.unwrap_or(u64::MAX), Ordering::Release);
        }
    }

    fn log_start_offset(&self, tp: &TopicPartition) -> i64 {
        self.log(tp).map_or(0, |l| lock(&l).log_start_offset())
    }

    fn next_offset(&self, tp: &TopicPartition) -> i64 {
        self.log(tp).map_or(0, |l| lock(&l).next_offset())
    }

    fn offset_for_timestamp(&self, tp: &TopicPartition, ts: i64) -> io::Result<Option<(i64, i64)>> {
        match self.log(tp) {
            Some(log) => lock(&log).offset_for_timestamp(ts),
            None => Ok(None),
        }
    }

    fn save_topics(&mut self, data: &[u8]) -> io::Result<()> {
        lock(&self.inner).table_store.store(data)
    }
}

/// A snapshot marker to write ahead of a job's entries.
struct Marker {
    bytes: Vec<u8>,
    keep: u64,
    store: Arc<RaftMetaStore>,
    durable_keep: Arc<AtomicU64>,
    /// The snapshot is a leader's log start (see [`LogStart`]): the log
    /// starts again after it unless it already holds that entry.
    reset: Option<(SharedLog, LogId, LogStart)>,
}

impl Marker {
    /// Writes the marker, then resets the log if it must: a crash in
    /// between leaves a marker that `open_partition` finishes.
    fn write(self) -> io::Result<()> {
        self.store.store(&self.bytes)?;
        self.durable_keep.fetch_max(self.keep, Ordering::AcqRel);
        match self.reset {
            Some((log, last, start)) => reset_to_log_start(&mut lock(&log), last, start),
            None => Ok(()),
        }
    }
}

/// Starts `log` again after entry `last`, at `start`'s offset, unless it
/// holds that entry already.
fn reset_to_log_start(log: &mut PartitionLog, last: LogId, start: LogStart) -> io::Result<()> {
    if log.term_at(last.index.0) == Some(last.term.0) {
        return Ok(());
    }
    tracing::info!(
        index = last.index.0,
        term = last.term.0,
        next_offset = start.next_offset,
        "the leader's log starts after entries this replica lacks: starting the log there"
    );
    log.reset(last.index.0 + 1, last.term.0, start.next_offset)
}

/// Turns the node's `Persist` outputs into group-commit jobs.
pub struct Persister {
    committer: Option<GroupCommitter>,
    handle: CommitHandle,
    store: DiskStore,
    done_tx: Sender<Input>,
    done_rx: Receiver<Input>,
    waker: Waker,
    sync: bool,
    /// Writes submitted whose completion has not been collected: each
    /// submit ends in exactly one completion.
    in_flight: usize,
}

impl Persister {
    /// Queues `write` for `tp`. A changed hard state (term, vote) is appended
    /// to the node's journal by the committer thread ahead of the job's
    /// entries and synced once per round before any job of the round
    /// completes; a snapshot marker is written to `raft.meta` (and synced)
    /// ahead of the entries. Both are durable before the job's `Persisted`,
    /// without blocking the node loop. Commit-index-only changes are not
    /// written (a restart recomputes the commit index).
    pub fn submit(&mut self, group: GroupId, tp: &TopicPartition, write: PersistWrite) {
        self.in_flight += 1;
        let seq = write.seq;
        let failed = |error: String| Input::PersistFailed { group, error };
        let (log, before) = {
            let mut inner = lock(&self.store.inner);
            let journal = inner.journal.clone();
            let Some(p) = inner.partitions.get_mut(tp) else {
                let _ = self.done_tx.send(failed(format!("{tp} has no log")));
                self.waker.wake();
                return;
            };
            let mut hard_state = None;
            if let Some(hs) = write.hard_state {
                if hs.term != p.meta.hard_state.term || hs.vote != p.meta.hard_state.vote {
                    hard_state = Some(wire::encode_hard_state(&hs));
                }
                p.meta.hard_state = hs;
            }
            let mut marker = None;
            if let Some(s) = &write.snapshot {
                let log_start = LogStart::decode(&s.data);
                p.meta.snapshot = Some(Snapshot {
                    meta: s.meta.clone(),
                    data: log_start.map_or_else(Bytes::new, LogStart::encode),
                });
                marker = Some(Marker {
                    bytes: p.meta.encode(),
                    keep: keep_from(&p.meta),
                    store: p.meta_store.clone(),
                    durable_keep: p.durable_keep.clone(),
                    reset: log_start.map(|start| (p.log.clone(), s.meta.last, start)),
                });
            }
            let group_key = p.group;
            let before: Option<BeforeAppend> =
                (hard_state.is_some() || marker.is_some()).then(|| {
                    Box::new(move || {
                        if let Some(hs) = hard_state {
                            lock(&journal).append(group_key, &hs)?;
                        }
                        match marker {
                            Some(m) => m.write(),
                            None => Ok(()),
                        }
                    }) as BeforeAppend
                });
            let log = p.log.clone();
            (log, before)
        };
        let entries: Vec<LogEntry> = write.entries.iter().map(to_log_entry).collect();
        let tx = self.done_tx.clone();
        let waker = self.waker.clone();
        let mut job = WriteJob::new(
            log,
            entries,
            write.must_sync && self.sync,
            Box::new(move |result| {
                let input = match result {
                    Ok(()) => Input::Persisted { group, seq },
                    Err(e) => Input::PersistFailed {
                        group,
                        error: e.to_string(),
                    },
                };
                let _ = tx.send(input);
                waker.wake();
            }),
        );
        if let Some(before) = before {
            job = job.before_append(before);
        }
        self.handle.submit(job);
    }

    /// Completions since the last call, in order.
    pub fn completions(&mut self) -> Vec<Input> {
        let done: Vec<Input> = self.done_rx.try_iter().collect();
        self.in_flight -= done.len();
        done
    }

    /// Writes submitted and not yet completed: what a test waits on instead
    /// of waiting for the disk to go quiet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Finishes every queued write and stops the committer thread.
    pub fn shutdown(&mut self) {
        drop(self.committer.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::raft::{NodeId, Term};
    use std::time::{Duration, Instant};

    fn settings() -> LogSettings {
        crate::node::topics::TopicConfig::defaults(-1, -1, 1 << 20).log_settings()
    }

    fn wait(persister: &mut Persister) -> Vec<Input> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut done = Vec::new();
        while persister.in_flight() > 0 {
            done.extend(persister.completions());
            assert!(Instant::now() < deadline, "the write did not complete");
            std::thread::yield_now();
        }
        done
    }

    fn tp() -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: 0,
        }
    }

    /// A write of sequence 1 that must be synced.
    fn write(
        hard_state: Option<HardState>,
        snapshot: Option<Snapshot>,
        entries: Vec<Entry>,
    ) -> PersistWrite {
        PersistWrite {
            seq: 1,
            hard_state,
            snapshot,
            entries,
            must_sync: true,
        }
    }

    /// Opens a store under `dir` and creates [`tp`] as group 5, as a
    /// restart does: the store, its persister and what it recovered.
    fn open(dir: &Path) -> (DiskStore, Persister, Restored) {
        let (handle, _events) = io_sync::host::channel();
        let (mut store, persister, _) = DiskStore::open(dir, true, handle.waker()).unwrap();
        let restored = store.create(5, &tp(), &settings()).unwrap();
        (store, persister, restored)
    }

    /// Opens the store under `dir` and persists `write` for [`tp`]; returns
    /// the store and persister once it is done.
    fn persist_once(dir: &Path, write: PersistWrite) -> (DiskStore, Persister) {
        let (store, mut persister, _) = open(dir);
        persister.submit(GroupId(5), &tp(), write);
        let done = wait(&mut persister);
        assert!(
            matches!(done.as_slice(), [Input::Persisted { seq: 1, .. }]),
            "{done:?}"
        );
        persister.shutdown();
        (store, persister)
    }

    fn snapshot_at(index: u64, term: u64, data: Bytes) -> Snapshot {
        Snapshot {
            meta: proto_core::raft::SnapshotMeta {
                last: LogId {
                    index: LogIndex(index),
                    term: Term(term),
                },
                membership: Default::default(),
            },
            data,
        }
    }

    fn log_start_snapshot(index: u64, term: u64, next_offset: i64) -> Snapshot {
        snapshot_at(index, term, LogStart { next_offset }.encode())
    }

    /// Leaves `snapshot` as [`tp`]'s marker in `raft.meta` under `root`, as a
    /// crash right after the marker write would.
    fn leave_marker(root: &Path, snapshot: Snapshot) {
        let dir = partition_dir(root, &tp());
        std::fs::create_dir_all(&dir).unwrap();
        let meta = Meta {
            hard_state: HardState::default(),
            snapshot: Some(snapshot),
        };
        RaftMetaStore::new(&dir).store(&meta.encode()).unwrap();
    }

    #[test]
    fn a_vote_survives_a_restart_through_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let tp = tp();
        let voted = HardState {
            term: Term(3),
            vote: Some(NodeId(2)),
            ..HardState::default()
        };
        drop(persist_once(
            dir.path(),
            write(Some(voted), None, Vec::new()),
        ));
        let (mut store, _persister, restored) = open(dir.path());
        assert_eq!(restored.hard_state.term, Term(3));
        assert_eq!(restored.hard_state.vote, Some(NodeId(2)));
        // Another group's log in the same place starts from nothing.
        let other = store.create(6, &tp, &settings()).unwrap();
        assert_eq!(other.hard_state.term, Term(0));
    }

    #[test]
    fn a_log_start_snapshot_starts_the_log_again_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let tp = tp();
        let snapshot = log_start_snapshot(40, 3, 700);
        let (store, persister) =
            persist_once(dir.path(), write(None, Some(snapshot.clone()), Vec::new()));
        assert_eq!(
            (store.log_start_offset(&tp), store.next_offset(&tp)),
            (700, 700)
        );
        assert_eq!(
            store.raft_entries(&tp, 2, 50, 1 << 20).unwrap(),
            StoredEntries::StartsAfter {
                index: 40,
                term: 3,
                log_start_offset: 700
            },
            "what it sends a follower further behind in turn"
        );
        drop((store, persister));
        let (store, _persister, restored) = open(dir.path());
        assert_eq!(restored.snapshot, Some(snapshot));
        assert_eq!(store.next_offset(&tp), 700);
    }

    #[test]
    fn a_marker_past_the_log_moves_back_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        // Entries 1..=12 were lost without fsync; the marker names 12.
        leave_marker(dir.path(), snapshot_at(12, 2, Bytes::new()));
        let (_, _, restored) = open(dir.path());
        assert_eq!(restored.snapshot, None, "an empty log: nothing is applied");
        // Entries 1..=3 of term 2 are stored, the marker names 12 again.
        let noop = |i| Entry {
            index: LogIndex(i),
            term: Term(2),
            payload: Payload::Noop,
        };
        drop(persist_once(
            dir.path(),
            write(None, None, (1..=3).map(noop).collect()),
        ));
        leave_marker(dir.path(), snapshot_at(12, 2, Bytes::new()));
        let (_, _, restored) = open(dir.path());
        assert_eq!(
            restored.snapshot,
            Some(snapshot_at(3, 2, Bytes::new())),
            "back to the log's end"
        );
        assert!(restored.entries.is_empty());
    }

    #[test]
    fn a_restart_finishes_a_reset_the_marker_announced() {
        let dir = tempfile::tempdir().unwrap();
        let tp = tp();
        // A crash after the marker was written and before the log was reset.
        let snapshot = log_start_snapshot(9, 2, 30);
        leave_marker(dir.path(), snapshot.clone());
        let (store, _persister, restored) = open(dir.path());
        assert_eq!(restored.snapshot, Some(snapshot));
        assert_eq!(
            (store.log_start_offset(&tp), store.next_offset(&tp)),
            (30, 30)
        );
        assert_eq!(
            store.raft_entries(&tp, 1, 9, 1 << 20).unwrap(),
            StoredEntries::StartsAfter {
                index: 9,
                term: 2,
                log_start_offset: 30
            }
        );
    }
}
