//! Opening a partition log: find its segments, scan each, cut a torn or
//! corrupt tail, quarantine damage before the tail, rebuild stale indexes.
//!
//! Every segment is scanned in full (CRC included), so opening costs a read
//! of the log; damage anywhere is found before it can be served.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use proto_core::storage::policy::LogConfig;

use super::log::PartitionLog;
use super::segment::{self, Segment, Sidecar};

/// The largest batch the recovery scan accepts whatever the config says, so
/// lowering `max_batch_bytes` never makes stored batches look corrupt.
const RECOVERY_MAX_BATCH_BYTES: usize = 256 << 20;

/// What opening a log found and repaired, for the operator's log and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments in the opened log.
    pub segments: usize,
    /// Bytes cut from the end of the log (torn or corrupt).
    pub bytes_truncated: u64,
    /// Files renamed or written aside as `*.corrupt`: the damaged part of a
    /// segment before the tail, and every segment after it.
    pub quarantined: Vec<PathBuf>,
    /// Segments whose index files were missing or stale and were rewritten.
    pub indexes_rebuilt: usize,
    /// Segment sidecars rewritten because they were missing or damaged.
    pub sidecars_rewritten: usize,
    /// Leftover index or sidecar files of segments that no longer exist.
    pub stray_files_removed: usize,
}

/// The base offsets of the segments in `dir`; removes files of segments
/// whose data file is gone.
fn list_segments(dir: &Path, report: &mut RecoveryReport) -> io::Result<Vec<i64>> {
    let mut files: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        let base = match stem.parse::<i64>() {
            Ok(b) if stem.len() == 20 && b >= 0 && segment::EXTENSIONS.contains(&ext) => b,
            _ => continue,
        };
        files.entry(base).or_default().insert(ext.to_string());
    }
    let mut bases = Vec::new();
    for (base, exts) in files {
        if exts.contains("log") {
            bases.push(base);
            continue;
        }
        for ext in exts {
            fs::remove_file(segment::file_path(dir, base, &ext))?;
            report.stray_files_removed += 1;
        }
    }
    Ok(bases)
}

/// `path` + ".corrupt", or with a counter if that exists already.
fn quarantine_path(path: &Path) -> PathBuf {
    let mut n = 0;
    loop {
        let suffix = if n == 0 {
            ".corrupt".to_string()
        } else {
            format!(".corrupt.{n}")
        };
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = PathBuf::from(p);
        if !p.exists() {
            return p;
        }
        n += 1;
    }
}

/// Renames every file of the segments at `bases` aside.
fn quarantine_segments(dir: &Path, bases: &[i64], report: &mut RecoveryReport) -> io::Result<()> {
    for &base in bases {
        for ext in segment::EXTENSIONS {
            let path = segment::file_path(dir, base, ext);
            if path.exists() {
                let to = quarantine_path(&path);
                fs::rename(&path, &to)?;
                if ext == "log" {
                    tracing::warn!(file = %path.display(), to = %to.display(), "quarantined segment");
                    report.quarantined.push(to);
                }
            }
        }
    }
    Ok(())
}

impl PartitionLog {
    /// Opens the log in `dir` (created if missing), recovering it: a torn or
    /// corrupt tail is cut; damage in an older segment cuts the log there,
    /// keeping the damaged bytes and every later segment aside as
    /// `*.corrupt` (the Raft log must stay contiguous; a follower re-fetches
    /// the rest from its leader). Missing or stale indexes are rebuilt.
    pub fn open(dir: &Path, cfg: LogConfig) -> io::Result<(PartitionLog, RecoveryReport)> {
        fs::create_dir_all(dir)?;
        let mut report = RecoveryReport::default();
        let bases = list_segments(dir, &mut report)?;
        let max_batch = RECOVERY_MAX_BATCH_BYTES.max(cfg.max_batch_bytes as usize);
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            cfg,
            segments: Vec::new(),
            terms: Vec::new(),
            dir_dirty: false,
            failed: None,
        };
        let mut last_epoch = 0;
        let mut changed = false;
        for (i, &base) in bases.iter().enumerate() {
            let sidecar = segment::read_sidecar(dir, base);
            let sidecar_raft = sidecar.map(|s| s.base_raft_index);
            let expected = log
                .segments
                .last()
                .map(|p| (p.next_offset, p.end_raft_index()));
            // A later segment follows the previous one's last entry; an old
            // (version 1) sidecar does not say its term.
            let prev_term = sidecar
                .and_then(|s| s.prev_term)
                .or_else(|| expected.and_then(|_| log.terms.last().map(|&(_, t)| t)))
                .or((sidecar_raft == Some(1)).then_some(0));
            if let Some((offset, raft)) = expected {
                if base != offset || sidecar_raft.is_some_and(|r| r != raft) {
                    tracing::warn!(dir = %dir.display(), base, expected_offset = offset, expected_raft_index = raft,
                        sidecar = sidecar_raft, "segment does not follow the previous one");
                    quarantine_segments(dir, &bases[i..], &mut report)?;
                    changed = true;
                    break;
                }
            }
            let out = Segment::load(
                dir,
                base,
                Sidecar {
                    base_raft_index: sidecar_raft.or(expected.map(|e| e.1)).unwrap_or(1),
                    prev_term,
                },
                last_epoch,
                log.cfg.index_interval_bytes,
                max_batch,
            )?;
            let mut seg = out.segment;
            if sidecar.is_none() {
                // The first segment's Raft index follows from the next one's sidecar.
                let derived = match expected {
                    Some((_, raft)) => Some(raft),
                    None => bases
                        .get(i + 1)
                        .and_then(|&next| segment::read_sidecar(dir, next))
                        .and_then(|r| r.base_raft_index.checked_sub(seg.entries))
                        .filter(|&r| r > 0)
                        .or((seg.entries == 0).then_some(1)),
                };
                let Some(raft) = derived else {
                    tracing::warn!(dir = %dir.display(), base, "segment has no Raft index sidecar and none can be derived");
                    drop(seg);
                    quarantine_segments(dir, &bases[i..], &mut report)?;
                    changed = true;
                    break;
                };
                tracing::warn!(dir = %dir.display(), base, raft_index = raft, "rewrote missing segment sidecar");
                let prev_term = if raft == 1 { Some(0) } else { prev_term };
                segment::write_sidecar(
                    dir,
                    base,
                    Sidecar {
                        base_raft_index: raft,
                        prev_term,
                    },
                )?;
                seg.prev_term = prev_term;
                seg.sidecar_dirty = true;
                report.sidecars_rewritten += 1;
                seg.base_raft_index = raft;
                changed = true;
            }
            if out.index_rebuilt {
                tracing::warn!(dir = %dir.display(), base, "rebuilt stale or missing segment index");
                report.indexes_rebuilt += 1;
            }
            for (k, epoch) in out.epochs {
                let term = epoch as u64;
                if log.terms.last().map(|&(_, t)| t) != Some(term) {
                    log.terms.push((seg.base_raft_index + k, term));
                }
            }
            last_epoch = out.last_epoch;
            let stop = out.stop;
            let cut = out.file_len - seg.size;
            log.segments.push(seg);
            if let Some(reason) = stop {
                let seg = log.segments.last().expect("just pushed");
                tracing::warn!(file = %seg.log_path.display(), position = seg.size, bytes = cut, %reason,
                    "log ends early: cutting the rest");
                if i + 1 < bases.len() {
                    let to = quarantine_path(&seg.log_path);
                    let mut from = File::open(&seg.log_path)?;
                    from.seek(SeekFrom::Start(seg.size))?;
                    io::copy(&mut from, &mut File::create(&to)?)?;
                    report.quarantined.push(to);
                    quarantine_segments(dir, &bases[i + 1..], &mut report)?;
                }
                seg.log.set_len(seg.size)?;
                report.bytes_truncated += cut;
                changed = true;
                break;
            }
        }
        if log.segments.is_empty() {
            let base = bases.first().copied().unwrap_or(0);
            let fresh = Sidecar {
                base_raft_index: 1,
                prev_term: Some(0),
            };
            log.segments.push(Segment::create(
                dir,
                base,
                fresh,
                log.cfg.index_interval_bytes,
            )?);
            changed = true;
        }
        report.segments = log.segments.len();
        if changed {
            log.dir_dirty = true;
            if let Some(s) = log.segments.last_mut() {
                s.dirty = true;
            }
            log.sync()?;
        }
        Ok((log, report))
    }
}
