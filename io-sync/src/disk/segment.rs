//! One segment: its data file, its two index files and its Raft sidecar, the
//! in-memory copy of its indexes, and header walks over its bytes.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use proto_core::storage::batch::{BatchHeader, HEADER_LEN};

use super::sync_ledger;
use proto_core::storage::index::{
    self, IndexBuilder, IndexedBatch, OffsetIndexEntry, TimeIndexEntry, OFFSET_ENTRY_LEN,
    TIME_ENTRY_LEN,
};
use proto_core::storage::policy::SegmentSummary;
use proto_core::storage::raft_entry;
use proto_core::storage::recovery::{Corruption, ScanStep, Scanner};

const SIDECAR_MAGIC: &[u8; 4] = b"CHRS";
/// Version 1 holds the base Raft index; version 2 adds the term before it.
const SIDECAR_VERSION: u32 = 2;
const SIDECAR_V1_LEN: usize = 20;
const SIDECAR_LEN: usize = 28;
/// The term field of a sidecar that does not know the term before it.
const UNKNOWN_TERM: u64 = u64::MAX;
/// Bytes read at a time when walking or scanning a segment.
const CHUNK: usize = 64 * 1024;

/// The file of segment `base_offset` with extension `ext` ("log", "index", ...).
pub(super) fn file_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// The extensions of a segment's files.
pub(super) const EXTENSIONS: [&str; 4] = ["log", "index", "timeindex", "raft"];

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

/// What a segment's sidecar says of the Raft log at the segment's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sidecar {
    /// The Raft index of the segment's first entry.
    pub(super) base_raft_index: u64,
    /// The term of the entry before it (0 at the log's start), if known:
    /// what a leader sends as the `prev` of the first entry it still stores
    /// once retention has deleted the segments before.
    pub(super) prev_term: Option<u64>,
}

/// Writes the sidecar naming the Raft index of the segment's first entry and
/// the term before it.
pub(super) fn write_sidecar(dir: &Path, base_offset: i64, sidecar: Sidecar) -> io::Result<()> {
    let mut b = Vec::with_capacity(SIDECAR_LEN);
    b.extend_from_slice(SIDECAR_MAGIC);
    b.extend_from_slice(&SIDECAR_VERSION.to_be_bytes());
    b.extend_from_slice(&sidecar.base_raft_index.to_be_bytes());
    b.extend_from_slice(&sidecar.prev_term.unwrap_or(UNKNOWN_TERM).to_be_bytes());
    b.extend_from_slice(&crc32c::crc32c(&b).to_be_bytes());
    fs::write(file_path(dir, base_offset, "raft"), b)
}

/// The segment's sidecar (version 1 knows no term); `None` if missing or
/// damaged.
pub(super) fn read_sidecar(dir: &Path, base_offset: i64) -> Option<Sidecar> {
    let b = fs::read(file_path(dir, base_offset, "raft")).ok()?;
    let word = |at: usize| u64::from_be_bytes(b[at..at + 8].try_into().unwrap_or_default());
    let crc_ok = |len: usize| b[len - 4..] == crc32c::crc32c(&b[..len - 4]).to_be_bytes();
    if b.len() < SIDECAR_V1_LEN || &b[..4] != SIDECAR_MAGIC {
        return None;
    }
    match u32::from_be_bytes([b[4], b[5], b[6], b[7]]) {
        1 if b.len() == SIDECAR_V1_LEN && crc_ok(SIDECAR_V1_LEN) => Some(Sidecar {
            base_raft_index: word(8),
            prev_term: None,
        }),
        2 if b.len() == SIDECAR_LEN && crc_ok(SIDECAR_LEN) => Some(Sidecar {
            base_raft_index: word(8),
            prev_term: Some(word(16)).filter(|&t| t != UNKNOWN_TERM),
        }),
        _ => None,
    }
}

/// A batch of the segment, as found by a header walk.
#[derive(Clone, Copy, Debug)]
pub(super) struct Located {
    pub(super) position: u64,
    pub(super) header: BatchHeader,
    pub(super) is_raft: bool,
}

/// What loading a segment found beyond its valid bytes.
pub(super) struct LoadOutcome {
    pub(super) segment: Segment,
    /// Bytes of the file; more than `segment.size` if the scan stopped early.
    pub(super) file_len: u64,
    pub(super) stop: Option<Corruption>,
    /// Each valid entry's position in the segment (0, 1, ...) and epoch, for the log's term runs.
    pub(super) epochs: Vec<(u64, i32)>,
    /// The epoch of the last valid entry (or the minimum the scan started with).
    pub(super) last_epoch: i32,
    pub(super) index_rebuilt: bool,
}

/// One open segment. `size`, the indexes and the counters cover every byte
/// written to the file; nothing is buffered between calls.
///
/// Only the log file stays open: the indexes live in memory and their files
/// are opened for the moment they are written or synced, so a partition costs
/// one descriptor per segment, not three (10,000 partitions must fit the
/// usual 20,000-descriptor hard limit with room for sockets).
pub(super) struct Segment {
    pub(super) base_offset: i64,
    pub(super) base_raft_index: u64,
    /// The term of the entry before the first, if known (see [`Sidecar`]).
    pub(super) prev_term: Option<u64>,
    pub(super) log_path: PathBuf,
    pub(super) log: Arc<File>,
    index_path: PathBuf,
    time_path: PathBuf,
    pub(super) size: u64,
    /// Raft entries held.
    pub(super) entries: u64,
    pub(super) next_offset: i64,
    index_interval: u32,
    pub(super) first_timestamp: Option<i64>,
    pub(super) offsets: Vec<OffsetIndexEntry>,
    pub(super) times: Vec<TimeIndexEntry>,
    builder: IndexBuilder,
    /// Written since the last fsync.
    pub(super) dirty: bool,
    /// The index files were written since the last fsync.
    indexes_dirty: bool,
    /// The sidecar was written since the last fsync.
    pub(super) sidecar_dirty: bool,
    pending: Vec<u8>,
    pending_offsets: usize,
    pending_times: usize,
}

impl Segment {
    /// Creates the files of an empty segment (replacing any).
    pub(super) fn create(
        dir: &Path,
        base_offset: i64,
        sidecar: Sidecar,
        index_interval: u32,
    ) -> io::Result<Segment> {
        write_sidecar(dir, base_offset, sidecar)?;
        Segment::open_files(dir, base_offset, sidecar, index_interval, true)
    }

    /// Opens (`create`: creating and truncating) a segment's three files; the
    /// segment starts empty, with every file dirty if it was just created.
    fn open_files(
        dir: &Path,
        base_offset: i64,
        sidecar: Sidecar,
        index_interval: u32,
        create: bool,
    ) -> io::Result<Segment> {
        let log_path = file_path(dir, base_offset, "log");
        let index_path = file_path(dir, base_offset, "index");
        let time_path = file_path(dir, base_offset, "timeindex");
        open_rw(&index_path, create)?;
        open_rw(&time_path, create)?;
        Ok(Segment {
            base_offset,
            base_raft_index: sidecar.base_raft_index,
            prev_term: sidecar.prev_term,
            log: Arc::new(open_rw(&log_path, create)?),
            log_path,
            index_path,
            time_path,
            size: 0,
            entries: 0,
            next_offset: base_offset,
            index_interval,
            first_timestamp: None,
            offsets: Vec::new(),
            times: Vec::new(),
            builder: IndexBuilder::new(index_interval),
            dirty: create,
            indexes_dirty: create,
            sidecar_dirty: create,
            pending: Vec::new(),
            pending_offsets: 0,
            pending_times: 0,
        })
    }

    /// Opens an existing segment and scans it; the caller decides what to do
    /// with bytes after the valid prefix (the segment's state stops there).
    pub(super) fn load(
        dir: &Path,
        base_offset: i64,
        sidecar: Sidecar,
        min_epoch: i32,
        index_interval: u32,
        max_batch_bytes: usize,
    ) -> io::Result<LoadOutcome> {
        let mut seg = Segment::open_files(dir, base_offset, sidecar, index_interval, false)?;
        let file_len = seg.log.metadata()?.len();
        let mut scanner = Scanner::new(base_offset, min_epoch, max_batch_bytes);
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_start = 0u64;
        let mut epochs = Vec::new();
        let stop = loop {
            if scanner.position() == file_len {
                break None;
            }
            let rel = (scanner.position() - buf_start) as usize;
            match scanner.step(&buf[rel..]) {
                ScanStep::Batch(b) => {
                    epochs.push((seg.entries, b.header.partition_leader_epoch));
                    seg.record(&b.header, b.is_raft);
                }
                ScanStep::NeedMore(needed) => {
                    let have = buf_start + buf.len() as u64;
                    if have >= file_len || scanner.position() + needed as u64 > file_len {
                        break Some(Corruption::Batch(
                            proto_core::storage::batch::BatchError::Truncated {
                                needed,
                                available: (file_len - scanner.position()) as usize,
                            },
                        ));
                    }
                    buf.drain(..rel);
                    buf_start = scanner.position();
                    let want = needed.max(CHUNK).min((file_len - buf_start) as usize);
                    let old = buf.len();
                    buf.resize(want.max(old), 0);
                    seg.log
                        .read_exact_at(&mut buf[old..], buf_start + old as u64)?;
                }
                ScanStep::Corrupt(c) => break Some(c),
            }
        };
        let index_rebuilt = seg.reconcile_indexes()?;
        seg.pending_offsets = seg.offsets.len();
        seg.pending_times = seg.times.len();
        Ok(LoadOutcome {
            segment: seg,
            file_len,
            stop,
            epochs,
            last_epoch: scanner.last_epoch(),
            index_rebuilt,
        })
    }

    /// Rewrites the index files unless they already hold exactly the entries
    /// the scan rebuilt; true if they were rewritten.
    fn reconcile_indexes(&mut self) -> io::Result<bool> {
        let offsets_ok = index::decode_offset_index(&fs::read(&self.index_path)?).as_deref()
            == Some(&self.offsets[..]);
        let times_ok = index::decode_time_index(&fs::read(&self.time_path)?).as_deref()
            == Some(&self.times[..]);
        if offsets_ok && times_ok {
            return Ok(false);
        }
        let o: Vec<u8> = self.offsets.iter().flat_map(|e| e.encode()).collect();
        let t: Vec<u8> = self.times.iter().flat_map(|e| e.encode()).collect();
        for (path, bytes) in [(&self.index_path, o), (&self.time_path, t)] {
            let f = open_rw(path, false)?;
            f.set_len(0)?;
            f.write_all_at(&bytes, 0)?;
        }
        self.dirty = true;
        self.indexes_dirty = true;
        Ok(true)
    }

    /// Updates the in-memory state for a batch appended at `self.size`.
    fn record(&mut self, h: &BatchHeader, is_raft: bool) {
        let at = OffsetIndexEntry {
            relative_offset: (h.base_offset - self.base_offset) as u32,
            relative_raft_index: self.entries as u32,
            position: self.size as u32,
        };
        let (o, t) = self.builder.push(&IndexedBatch {
            at,
            len: h.total_len() as u32,
            max_timestamp: (!is_raft).then_some(h.max_timestamp),
        });
        self.offsets.extend(o);
        self.times.extend(t);
        if !is_raft && self.first_timestamp.is_none() {
            self.first_timestamp = Some(h.max_timestamp);
        }
        self.size += h.total_len() as u64;
        self.entries += 1;
        self.next_offset = h.end_offset();
    }

    /// Buffers a validated frame at the end of the segment; [`Segment::flush`] writes it.
    pub(super) fn push(&mut self, frame: &[u8], h: &BatchHeader, is_raft: bool) {
        self.pending.extend_from_slice(frame);
        self.record(h, is_raft);
    }

    /// Writes buffered frames and index entries to the files (no fsync).
    pub(super) fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let at = self.size - self.pending.len() as u64;
        self.log.write_all_at(&self.pending, at)?;
        let o: Vec<u8> = self.offsets[self.pending_offsets..]
            .iter()
            .flat_map(|e| e.encode())
            .collect();
        if !o.is_empty() {
            open_rw(&self.index_path, false)?
                .write_all_at(&o, (self.pending_offsets * OFFSET_ENTRY_LEN) as u64)?;
        }
        let t: Vec<u8> = self.times[self.pending_times..]
            .iter()
            .flat_map(|e| e.encode())
            .collect();
        if !t.is_empty() {
            open_rw(&self.time_path, false)?
                .write_all_at(&t, (self.pending_times * TIME_ENTRY_LEN) as u64)?;
            self.indexes_dirty = true;
        }
        if !o.is_empty() {
            self.indexes_dirty = true;
        }
        self.pending.clear();
        self.pending_offsets = self.offsets.len();
        self.pending_times = self.times.len();
        self.dirty = true;
        Ok(())
    }

    /// fsyncs the segment's files if anything was written since the last call.
    pub(super) fn sync(&mut self, dir: &Path) -> io::Result<()> {
        if self.sidecar_dirty {
            File::open(file_path(dir, self.base_offset, "raft"))?.sync_data()?;
            self.sidecar_dirty = false;
        }
        if self.dirty {
            self.log.sync_data()?;
            sync_ledger::synced_file(&self.log_path, &self.log);
            if self.indexes_dirty {
                // fsync through a new descriptor syncs what the earlier ones wrote.
                for path in [&self.index_path, &self.time_path] {
                    let f = File::open(path)?;
                    f.sync_data()?;
                    sync_ledger::synced_file(path, &f);
                }
                self.indexes_dirty = false;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// The Raft index after the segment's last entry.
    pub(super) fn end_raft_index(&self) -> u64 {
        self.base_raft_index + self.entries
    }

    /// The largest data timestamp in the segment (-1 if none).
    pub(super) fn max_timestamp(&self) -> i64 {
        self.builder.max_timestamp()
    }

    /// What roll and retention decide on.
    pub(super) fn summary(&self) -> SegmentSummary {
        SegmentSummary {
            base_offset: self.base_offset,
            next_offset: self.next_offset,
            base_raft_index: self.base_raft_index,
            size_bytes: self.size,
            first_timestamp: self.first_timestamp,
            max_timestamp: self.max_timestamp(),
        }
    }

    /// Walks batch headers from `position` (a batch boundary) to the end.
    pub(super) fn walk(&self, position: u64) -> Walk<'_> {
        Walk {
            seg: self,
            pos: position,
            buf: Vec::new(),
            buf_start: position,
        }
    }

    /// The batch holding Raft index `raft_index` (which the segment must hold).
    pub(super) fn locate_raft(&self, raft_index: u64) -> io::Result<Located> {
        let rel = raft_index - self.base_raft_index;
        let start = index::floor_by_raft_index(&self.offsets, rel as u32);
        let skip = rel - u64::from(start.relative_raft_index);
        self.walk(u64::from(start.position))
            .nth(skip as usize)
            .unwrap_or_else(|| {
                Err(invalid(format!(
                    "raft index {raft_index} is missing from its segment"
                )))
            })
    }

    /// Reads `len` bytes at `position`.
    pub(super) fn read_bytes(&self, position: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut b = vec![0; len];
        self.log.read_exact_at(&mut b, position)?;
        Ok(b)
    }

    /// Cuts the segment before `at`, the batch holding `raft_index`; the
    /// index files and counters follow, as if the rest had never been written.
    pub(super) fn truncate(&mut self, raft_index: u64, at: &Located) -> io::Result<()> {
        let cut = at.position;
        self.log.set_len(cut)?;
        self.size = cut;
        self.offsets.retain(|e| u64::from(e.position) < cut);
        let rel_offset = at.header.base_offset - self.base_offset;
        self.times
            .retain(|e| i64::from(e.relative_offset) < rel_offset);
        open_rw(&self.index_path, false)?
            .set_len((self.offsets.len() * OFFSET_ENTRY_LEN) as u64)?;
        open_rw(&self.time_path, false)?.set_len((self.times.len() * TIME_ENTRY_LEN) as u64)?;
        self.indexes_dirty = true;
        self.pending_offsets = self.offsets.len();
        self.pending_times = self.times.len();
        // The last time entry summarises every batch up to its own; walk the rest.
        let last_time = self.times.last().map_or(-1, |t| t.max_timestamp);
        let from = self.times.last().map_or(0, |t| {
            index::floor_by_offset(&self.offsets, t.relative_offset).position
        });
        let mut max_timestamp = last_time;
        for b in self.walk(u64::from(from)) {
            let b = b?;
            if !b.is_raft {
                max_timestamp = max_timestamp.max(b.header.max_timestamp);
            }
        }
        let last_entry = self.offsets.last().map_or(0, |e| u64::from(e.position));
        self.builder = IndexBuilder::resume(
            self.index_interval,
            cut - last_entry,
            max_timestamp,
            last_time,
        );
        if at.header.base_offset == self.base_offset {
            self.first_timestamp = None;
        }
        self.entries = raft_index - self.base_raft_index;
        self.next_offset = at.header.base_offset;
        self.dirty = true;
        Ok(())
    }
}

/// An iterator over the batch headers of a segment, reading ahead in chunks.
pub(super) struct Walk<'a> {
    seg: &'a Segment,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl Iterator for Walk<'_> {
    type Item = io::Result<Located>;

    fn next(&mut self) -> Option<io::Result<Located>> {
        if self.pos >= self.seg.size {
            return None;
        }
        if self.pos + HEADER_LEN as u64 > self.buf_start + self.buf.len() as u64 {
            let len = (CHUNK as u64).min(self.seg.size - self.pos) as usize;
            self.buf.resize(len, 0);
            self.buf_start = self.pos;
            if let Err(e) = self.seg.log.read_exact_at(&mut self.buf, self.pos) {
                self.pos = u64::MAX;
                return Some(Err(e));
            }
        }
        let rel = (self.pos - self.buf_start) as usize;
        match BatchHeader::parse(&self.buf[rel..]) {
            Ok(header) => {
                let found = Located {
                    position: self.pos,
                    header,
                    is_raft: raft_entry::is_raft_entry(&header),
                };
                self.pos += header.total_len() as u64;
                Some(Ok(found))
            }
            Err(e) => {
                let at = self.pos;
                self.pos = u64::MAX;
                Some(Err(invalid(format!(
                    "{}: batch at {at}: {e}",
                    self.seg.log_path.display()
                ))))
            }
        }
    }
}
