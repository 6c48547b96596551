//! Reads: Kafka fetches (data batches only, as file ranges), Raft entries
//! for replication and restart, and lookups by Raft index or timestamp.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use proto_core::storage::batch::BatchHeader;
use proto_core::storage::{index, raft_entry};

use super::log::{EntryPayload, LogEntry, PartitionLog};
use super::segment::{Located, Segment};

/// A byte range of a segment file holding whole data batches: what a driver
/// would hand to `sendfile`. The open file stays readable even if retention
/// deletes the segment meanwhile.
#[derive(Clone, Debug)]
pub struct FileRange {
    /// The segment file.
    pub file: Arc<File>,
    /// Its path (for logs and diagnostics).
    pub path: PathBuf,
    /// Where the range starts.
    pub position: u64,
    /// Bytes in the range.
    pub len: u64,
}

/// The answer to a Kafka fetch: data batches only, Raft-only entries left out.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    /// The batches, concatenated, exactly as stored.
    pub bytes: Bytes,
    /// The same bytes as file ranges, in order.
    pub ranges: Vec<FileRange>,
}

impl PartitionLog {
    fn segment_for_offset(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    fn segment_for_raft_index(&self, raft_index: u64) -> usize {
        self.segments
            .partition_point(|s| s.base_raft_index <= raft_index)
            .saturating_sub(1)
    }

    /// Whole data batches from the one holding `offset`, up to `max_bytes`
    /// but at least one, none reaching past `end_offset` (exclusive, e.g. the
    /// high watermark). Empty if `offset` is at or past the end or below the
    /// log start: the caller answers those with Kafka's range errors.
    pub fn read(&self, offset: i64, max_bytes: usize, end_offset: i64) -> io::Result<ReadResult> {
        let mut out = ReadResult::default();
        if offset < self.log_start_offset() || offset >= self.next_offset().min(end_offset) {
            return Ok(out);
        }
        let mut total = 0usize;
        let first = self.segment_for_offset(offset);
        'segments: for seg in &self.segments[first..] {
            let start =
                index::floor_by_offset(&seg.offsets, (offset - seg.base_offset).max(0) as u32);
            let mut open: Option<FileRange> = None;
            for b in seg.walk(u64::from(start.position)) {
                let b = b?;
                if b.is_raft || b.header.end_offset() <= offset {
                    out.ranges.extend(open.take());
                    continue;
                }
                let len = b.header.total_len();
                if b.header.end_offset() > end_offset || (total > 0 && total + len > max_bytes) {
                    out.ranges.extend(open.take());
                    break 'segments;
                }
                total += len;
                match &mut open {
                    Some(r) => r.len += len as u64,
                    None => {
                        open = Some(FileRange {
                            file: seg.log.clone(),
                            path: seg.log_path.clone(),
                            position: b.position,
                            len: len as u64,
                        })
                    }
                }
            }
            out.ranges.extend(open.take());
        }
        let mut bytes = BytesMut::zeroed(total);
        let mut at = 0;
        for r in &out.ranges {
            let end = at + r.len as usize;
            std::os::unix::fs::FileExt::read_exact_at(&*r.file, &mut bytes[at..end], r.position)?;
            at = end;
        }
        out.bytes = bytes.freeze();
        Ok(out)
    }

    /// Calls `f` with every stored data batch's header, in offset order,
    /// reading headers only: state kept beside the log (idempotent producers)
    /// is rebuilt from them at start.
    pub fn for_each_data_header(&self, f: &mut dyn FnMut(&BatchHeader)) -> io::Result<()> {
        for seg in &self.segments {
            for b in seg.walk(0) {
                let b = b?;
                if !b.is_raft {
                    f(&b.header);
                }
            }
        }
        Ok(())
    }

    /// The batch holding `raft_index`, which must be stored.
    fn locate(&self, raft_index: u64) -> io::Result<(usize, Located)> {
        let i = self.segment_for_raft_index(raft_index);
        Ok((i, self.segments[i].locate_raft(raft_index)?))
    }

    /// Raft entries from `raft_index` on, up to `max_bytes` of frames but at
    /// least one: for replication to followers and for a Raft restart. Empty
    /// if `raft_index` is not stored.
    pub fn entries_from(&self, raft_index: u64, max_bytes: usize) -> io::Result<Vec<LogEntry>> {
        self.entries_between(raft_index, u64::MAX, max_bytes)
    }

    /// [`PartitionLog::entries_from`], stopping after `last_raft_index`: a
    /// leader loading what a follower lacks reads only what its in-memory
    /// Raft log no longer holds.
    pub fn entries_between(
        &self,
        raft_index: u64,
        last_raft_index: u64,
        max_bytes: usize,
    ) -> io::Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        if raft_index < self.first_raft_index()
            || raft_index > self.last_raft_index()
            || raft_index > last_raft_index
        {
            return Ok(out);
        }
        let (first, at) = self.locate(raft_index)?;
        let mut total = 0usize;
        let mut next_index = raft_index;
        let mut from = at.position;
        for seg in &self.segments[first..] {
            for b in seg.walk(from) {
                let b = b?;
                let len = b.header.total_len();
                if next_index > last_raft_index || (total > 0 && total + len > max_bytes) {
                    return Ok(out);
                }
                total += len;
                out.push(entry_at(seg, &b, next_index)?);
                next_index += 1;
            }
            from = 0;
        }
        Ok(out)
    }

    /// The Kafka offset after every data batch up to and including
    /// `raft_index`: the high watermark when `raft_index` is the commit index.
    /// For an index before the first stored entry, the log start offset.
    pub fn next_offset_after(&self, raft_index: u64) -> io::Result<i64> {
        if raft_index >= self.last_raft_index() {
            return Ok(self.next_offset());
        }
        if raft_index < self.first_raft_index() {
            return Ok(self.log_start_offset());
        }
        // Every frame's base offset is the next offset at the time it was written.
        Ok(self.locate(raft_index + 1)?.1.header.base_offset)
    }

    /// Kafka's ListOffsets by timestamp: the first data batch whose max
    /// timestamp is at least `ts_ms`, as (base offset, max timestamp).
    pub fn offset_for_timestamp(&self, ts_ms: i64) -> io::Result<Option<(i64, i64)>> {
        for seg in self.segments.iter().filter(|s| s.max_timestamp() >= ts_ms) {
            let lower = index::time_lower_bound(&seg.times, ts_ms);
            let start = index::floor_by_offset(&seg.offsets, lower);
            for b in seg.walk(u64::from(start.position)) {
                let b = b?;
                if !b.is_raft && b.header.max_timestamp >= ts_ms {
                    return Ok(Some((b.header.base_offset, b.header.max_timestamp)));
                }
            }
        }
        Ok(None)
    }
}

/// Reads the entry framed by `b`.
fn entry_at(seg: &Segment, b: &Located, raft_index: u64) -> io::Result<LogEntry> {
    let raw = Bytes::from(seg.read_bytes(b.position, b.header.total_len())?);
    let payload = if b.is_raft {
        let p =
            raft_entry::payload(&raw).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        EntryPayload::Raft(raw.slice_ref(p))
    } else {
        EntryPayload::Data(raw)
    };
    Ok(LogEntry {
        raft_index,
        term: b.header.partition_leader_epoch as u64,
        payload,
    })
}
