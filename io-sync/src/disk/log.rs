//! The partition log: segments in order, the active one last, holding the
//! partition's Raft log with its Kafka data inline.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use proto_core::storage::batch::{self, BatchError, BatchHeader};
use proto_core::storage::policy::{self, Incoming, LogConfig};
use proto_core::storage::raft_entry;

use super::segment::{self, Segment, Sidecar};

/// What a Raft entry carries, as the partition log stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryPayload {
    /// One Kafka v2 record batch whose base offset the leader already set to
    /// the partition's next offset, and whose leader epoch is the entry's term.
    Data(Bytes),
    /// A Raft-only entry (election no-op, membership change): opaque bytes
    /// that take no Kafka offset and are never served to a fetch.
    Raft(Bytes),
}

/// One Raft entry of a partition's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Position in the Raft log.
    pub raft_index: u64,
    /// Raft term (stored as the batch's partitionLeaderEpoch).
    pub term: u64,
    /// The entry's content.
    pub payload: EntryPayload,
}

/// Why an append was refused; nothing of a refused append is written, except
/// that a truncation it asked for (see [`PartitionLog::append`]) stays done.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Reading or writing the files failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// An earlier write failed; the log refuses writes until reopened, which
    /// recovers from what the files hold.
    #[error("the log failed earlier ({0}); reopen it")]
    Failed(String),
    /// The entry's Raft index does not follow the log (or the previous entry).
    #[error("raft index {found}, expected {expected}")]
    IndexGap {
        /// The index the log expects next.
        expected: u64,
        /// The entry's index.
        found: u64,
    },
    /// The term is lower than the log's last term.
    #[error("term {found} is below the log's last term {last}")]
    TermRegressed {
        /// The log's last term.
        last: u64,
        /// The entry's term.
        found: u64,
    },
    /// The term does not fit Kafka's 32-bit leader epoch.
    #[error("term {0} does not fit a leader epoch")]
    TermTooLarge(u64),
    /// The data batch is not a valid v2 batch.
    #[error("raft index {raft_index}: {source}")]
    InvalidBatch {
        /// The entry's index.
        raft_index: u64,
        /// What is wrong with it.
        source: BatchError,
    },
    /// The data batch does not start at the log's next offset.
    #[error("raft index {raft_index}: base offset {found}, expected {expected}")]
    OffsetMismatch {
        /// The entry's index.
        raft_index: u64,
        /// The log's next offset.
        expected: i64,
        /// The batch's base offset.
        found: i64,
    },
    /// The batch's leader epoch is not the entry's term.
    #[error("raft index {raft_index}: leader epoch {epoch} is not the term {term}")]
    EpochMismatch {
        /// The entry's index.
        raft_index: u64,
        /// The batch's epoch.
        epoch: i32,
        /// The entry's term.
        term: u64,
    },
    /// The data batch holds no records, or is framed as a Raft entry.
    #[error("raft index {0}: not a data batch")]
    NotData(u64),
    /// The stored frame would exceed `max_batch_bytes`.
    #[error("raft index {raft_index}: {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The entry's index.
        raft_index: u64,
        /// Bytes of its frame.
        len: usize,
        /// The limit.
        max: u32,
    },
}

/// One partition's log on disk. Blocking; share it as `Arc<Mutex<_>>`.
///
/// Invariants: segments are contiguous in Kafka offsets and Raft indexes;
/// base offsets strictly increase (a segment holding no data is never rolled);
/// every byte in a segment file is a validated frame.
pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) cfg: LogConfig,
    pub(super) segments: Vec<Segment>,
    /// `(first Raft index, term)` of each run of equal terms.
    pub(super) terms: Vec<(u64, u64)>,
    pub(super) dir_dirty: bool,
    pub(super) failed: Option<String>,
}

impl PartitionLog {
    pub(super) fn active(&self) -> &Segment {
        self.segments.last().expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has a segment")
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings in force.
    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }

    /// Applies changed topic settings; they take effect on the next append,
    /// roll or retention pass (segments already written keep their layout).
    pub fn set_config(&mut self, cfg: LogConfig) {
        self.cfg = cfg;
    }

    /// The Kafka log end offset: the offset the next data record gets.
    pub fn next_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// The first Kafka offset still stored.
    pub fn log_start_offset(&self) -> i64 {
        self.segments[0].base_offset
    }

    /// The Raft index of the first stored entry (`last_raft_index() + 1` if empty).
    pub fn first_raft_index(&self) -> u64 {
        self.segments[0].base_raft_index
    }

    /// The Raft index of the last stored entry (`first_raft_index() - 1` if empty).
    pub fn last_raft_index(&self) -> u64 {
        self.active().end_raft_index() - 1
    }

    /// The term of a stored entry, or of the entry just before the first
    /// (deleted by retention, or before a reset) when the log knows it.
    pub fn term_at(&self, raft_index: u64) -> Option<u64> {
        if raft_index.checked_add(1) == Some(self.first_raft_index()) {
            return self.segments[0].prev_term;
        }
        if raft_index < self.first_raft_index() || raft_index > self.last_raft_index() {
            return None;
        }
        let n = self
            .terms
            .partition_point(|&(first, _)| first <= raft_index);
        n.checked_sub(1).map(|i| self.terms[i].1)
    }

    /// Bytes of the segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// The last stored entry's term, or the one before the log's first
    /// entry when it is empty (0 if unknown).
    fn last_term(&self) -> u64 {
        self.terms
            .last()
            .map(|&(_, t)| t)
            .or(self.segments[0].prev_term)
            .unwrap_or(0)
    }

    fn check_ok(&self) -> Result<(), LogError> {
        match &self.failed {
            Some(why) => Err(LogError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// Refuses every later write until the log is reopened. The committer
    /// calls it when a job failed, so that no later job of this log can
    /// succeed: a later completion would otherwise vouch for the failed
    /// one, since completions are cumulative per log.
    pub fn mark_failed(&mut self, why: String) {
        if self.failed.is_none() {
            tracing::error!(dir = %self.dir.display(), error = %why, "partition log refuses writes until reopened");
            self.failed = Some(why);
        }
    }

    /// Records an IO failure of a write: the in-memory state may no longer
    /// match the files, so the log refuses writes until reopened.
    fn fail<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r {
            tracing::error!(dir = %self.dir.display(), error = %e, "partition log write failed");
            self.failed = Some(e.to_string());
        }
        r
    }

    /// Appends entries with consecutive Raft indexes. If the first index is
    /// already stored, the log is first truncated from there (a Raft follower
    /// replacing a conflicting suffix). Data batches are validated (CRC,
    /// base offset = [`Self::next_offset`], epoch = term) before anything is
    /// written. Writes but does not fsync: see [`Self::sync`].
    pub fn append(&mut self, entries: &[LogEntry]) -> Result<(), LogError> {
        self.check_ok()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.raft_index <= self.last_raft_index() {
            self.truncate_from(first.raft_index)?;
        }
        let frames = self.validate(entries)?;
        for (e, (frame, h)) in entries.iter().zip(&frames) {
            let incoming = Incoming {
                len: frame.len() as u64,
                end_offset: h.end_offset(),
                raft_index: e.raft_index,
            };
            if let Some(reason) =
                policy::should_roll(&self.active().summary(), Some(&incoming), &self.cfg, None)
            {
                let r = self.roll(reason);
                self.fail(r)?;
            }
            self.active_mut()
                .push(frame, h, matches!(e.payload, EntryPayload::Raft(_)));
            if self.last_term() != e.term {
                self.terms.push((e.raft_index, e.term));
            }
        }
        let r = self.active_mut().flush();
        self.fail(r)?;
        Ok(())
    }

    /// Checks every entry and frames it, without touching the log.
    fn validate(&self, entries: &[LogEntry]) -> Result<Vec<(Bytes, BatchHeader)>, LogError> {
        let mut last_term = self.last_term();
        let mut next_offset = self.next_offset();
        let mut out = Vec::with_capacity(entries.len());
        for (expected, e) in (self.last_raft_index() + 1..).zip(entries) {
            let raft_index = e.raft_index;
            if raft_index != expected {
                return Err(LogError::IndexGap {
                    expected,
                    found: raft_index,
                });
            }
            if e.term < last_term {
                return Err(LogError::TermRegressed {
                    last: last_term,
                    found: e.term,
                });
            }
            let epoch = i32::try_from(e.term).map_err(|_| LogError::TermTooLarge(e.term))?;
            let frame = match &e.payload {
                EntryPayload::Data(b) => b.clone(),
                EntryPayload::Raft(p) => Bytes::from(raft_entry::encode(next_offset, epoch, p)),
            };
            if frame.len() > self.cfg.max_batch_bytes as usize {
                return Err(LogError::TooLarge {
                    raft_index,
                    len: frame.len(),
                    max: self.cfg.max_batch_bytes,
                });
            }
            let h = batch::validate(&frame)
                .map_err(|source| LogError::InvalidBatch { raft_index, source })?;
            if let EntryPayload::Data(_) = e.payload {
                if raft_entry::is_raft_entry(&h) || h.last_offset_delta < 0 {
                    return Err(LogError::NotData(raft_index));
                }
                if h.base_offset != next_offset {
                    return Err(LogError::OffsetMismatch {
                        raft_index,
                        expected: next_offset,
                        found: h.base_offset,
                    });
                }
                if h.partition_leader_epoch != epoch {
                    return Err(LogError::EpochMismatch {
                        raft_index,
                        epoch: h.partition_leader_epoch,
                        term: e.term,
                    });
                }
            }
            next_offset = h.end_offset();
            last_term = e.term;
            out.push((frame, h));
        }
        Ok(out)
    }

    fn roll(&mut self, reason: policy::RollReason) -> io::Result<()> {
        self.active_mut().flush()?;
        let (base_offset, base_raft) = (self.next_offset(), self.last_raft_index() + 1);
        tracing::info!(dir = %self.dir.display(), base_offset, ?reason, "rolling segment");
        let sidecar = Sidecar {
            base_raft_index: base_raft,
            prev_term: self.term_at(base_raft - 1),
        };
        let seg = Segment::create(
            &self.dir,
            base_offset,
            sidecar,
            self.cfg.index_interval_bytes,
        )?;
        self.segments.push(seg);
        self.dir_dirty = true;
        Ok(())
    }

    /// Rolls the active segment if it is older than `segment_ms` (by its first
    /// data timestamp); appends roll by size themselves.
    pub fn maybe_roll(&mut self, now_ms: i64) -> io::Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        if let Some(reason) =
            policy::should_roll(&self.active().summary(), None, &self.cfg, Some(now_ms))
        {
            let r = self.roll(reason);
            self.fail(r)?;
        }
        Ok(())
    }

    /// fsyncs every file written since the last sync (segments, indexes,
    /// sidecars, and the directory if files were created, renamed or deleted).
    /// A no-op when nothing was written.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(why) = &self.failed {
            return Err(io::Error::other(format!("the log failed earlier: {why}")));
        }
        let dir = self.dir.clone();
        let mut r = Ok(());
        for s in &mut self.segments {
            r = r.and_then(|_| s.sync(&dir));
        }
        if r.is_ok() && self.dir_dirty {
            r = File::open(&dir).and_then(|d| d.sync_all());
            self.dir_dirty = r.is_err();
        }
        // After a failed fsync the kernel may have dropped the dirty pages:
        // nothing written since the last good sync can be trusted.
        self.fail(r)
    }

    /// Removes every entry from `raft_index` on (a Raft follower's conflict).
    /// Indexes below the log's first entry cannot be removed.
    pub fn truncate_from(&mut self, raft_index: u64) -> io::Result<()> {
        if raft_index > self.last_raft_index() {
            return Ok(());
        }
        if raft_index < self.first_raft_index() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot truncate from {raft_index}, before the log's first entry"),
            ));
        }
        let r = self.truncate_inner(raft_index);
        self.fail(r)
    }

    fn truncate_inner(&mut self, raft_index: u64) -> io::Result<()> {
        let keep = self
            .segments
            .partition_point(|s| s.base_raft_index <= raft_index);
        // A segment that would be left empty goes too, unless it is the first.
        let keep = if keep > 1 && self.segments[keep - 1].base_raft_index == raft_index {
            keep - 1
        } else {
            keep
        };
        for s in self.segments.drain(keep..) {
            remove_segment_files(&self.dir, s.base_offset)?;
            self.dir_dirty = true;
        }
        let seg = self.active_mut();
        if seg.end_raft_index() > raft_index {
            let at = seg.locate_raft(raft_index)?;
            seg.truncate(raft_index, &at)?;
        }
        self.terms.retain(|&(first, _)| first < raft_index);
        tracing::info!(dir = %self.dir.display(), raft_index, next_offset = self.next_offset(), "truncated log");
        Ok(())
    }

    /// Drops the whole log and starts it empty at `next_raft_index`, after an
    /// entry of `prev_term`, and Kafka offset `next_offset`: a follower
    /// installing a snapshot beyond its log.
    pub fn reset(
        &mut self,
        next_raft_index: u64,
        prev_term: u64,
        next_offset: i64,
    ) -> io::Result<()> {
        if next_raft_index == 0 || next_offset < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "raft index 0 or negative offset",
            ));
        }
        let sidecar = Sidecar {
            base_raft_index: next_raft_index,
            prev_term: Some(prev_term),
        };
        let r = self.reset_inner(sidecar, next_offset);
        self.fail(r)
    }

    fn reset_inner(&mut self, sidecar: Sidecar, next_offset: i64) -> io::Result<()> {
        for s in self.segments.drain(..) {
            remove_segment_files(&self.dir, s.base_offset)?;
        }
        self.terms.clear();
        self.dir_dirty = true;
        let seg = Segment::create(
            &self.dir,
            next_offset,
            sidecar,
            self.cfg.index_interval_bytes,
        )?;
        self.segments.push(seg);
        Ok(())
    }

    /// Deletes the oldest segments past `retention_bytes` or `retention_ms`
    /// (never the active one, never one holding an entry at or after
    /// `keep_from_raft_index`, e.g. the first uncommitted index, and not one
    /// at or after `hold_from_raft_index`, what a lagging replica needs,
    /// until the log is twice past its retention; see
    /// [`policy::segments_to_delete_holding`]); the log start offset moves to
    /// the first remaining segment. Returns how many.
    pub fn enforce_retention(
        &mut self,
        now_ms: i64,
        keep_from_raft_index: u64,
        hold_from_raft_index: u64,
    ) -> io::Result<usize> {
        let summaries: Vec<_> = self.segments.iter().map(Segment::summary).collect();
        let n = policy::segments_to_delete_holding(
            &summaries,
            &self.cfg,
            now_ms,
            keep_from_raft_index,
            hold_from_raft_index,
        );
        let gone: Vec<i64> = self.segments.drain(..n).map(|s| s.base_offset).collect();
        for base_offset in gone {
            tracing::info!(dir = %self.dir.display(), base_offset, "retention deletes segment");
            self.dir_dirty = true;
            let r = remove_segment_files(&self.dir, base_offset);
            self.fail(r)?;
        }
        let first = self.first_raft_index();
        let keep_from = self
            .terms
            .partition_point(|&(start, _)| start <= first)
            .saturating_sub(1);
        self.terms.drain(..keep_from);
        Ok(n)
    }
}

/// Deletes a segment's files (the missing ones are already gone).
pub(super) fn remove_segment_files(dir: &Path, base_offset: i64) -> io::Result<()> {
    for ext in segment::EXTENSIONS {
        match fs::remove_file(segment::file_path(dir, base_offset, ext)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
