//! Opening logs whose files were damaged: torn tails are cut, damage before
//! the tail is quarantined, lost indexes and sidecars are rebuilt.

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use common::{append_data, append_raft, small_segments};
use io_sync::disk::{LogConfig, PartitionLog};

fn seg(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

fn flip(path: &Path, at: u64) {
    let mut b = fs::read(path).unwrap();
    b[at as usize] ^= 0x40;
    fs::write(path, b).unwrap();
}

/// A synced log of 20 data batches (and some Raft entries) in small segments;
/// returns the data batch boundaries as (raft index, offset after it).
fn build(dir: &Path) -> Vec<(u64, i64)> {
    let (mut log, _) = PartitionLog::open(dir, small_segments(1_500)).unwrap();
    let mut ends = Vec::new();
    for i in 0..20 {
        if i % 7 == 0 {
            append_raft(&mut log, 1 + i / 7, b"leader");
        }
        let e = append_data(&mut log, 1 + i / 7, 2, i as i64);
        ends.push((e.raft_index, log.next_offset()));
    }
    log.sync().unwrap();
    ends
}

fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".log").map(|s| s.parse().unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_clean_log_reopens_without_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let ends = build(dir.path());
    let (log, report) = PartitionLog::open(dir.path(), small_segments(1_500)).unwrap();
    assert_eq!(
        report.bytes_truncated + report.indexes_rebuilt as u64 + report.quarantined.len() as u64,
        0
    );
    assert_eq!(log.next_offset(), ends.last().unwrap().1);
    assert!(report.segments > 3);
}

#[test]
fn a_write_torn_mid_batch_is_cut_to_the_last_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let ends = build(dir.path());
    let tail = *segment_bases(dir.path()).last().unwrap();
    let path = seg(dir.path(), tail, "log");
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 30)
        .unwrap();
    let (mut log, report) = PartitionLog::open(dir.path(), small_segments(1_500)).unwrap();
    let (raft, offset) = ends[ends.len() - 2];
    assert_eq!(log.next_offset(), offset);
    assert_eq!(log.last_raft_index(), raft);
    assert!(report.bytes_truncated > 0 && report.bytes_truncated < 300);
    assert!(report.quarantined.is_empty());
    // The log takes the lost entry again.
    append_data(&mut log, 3, 2, 0);
    assert_eq!(log.next_offset(), ends.last().unwrap().1);
}

#[test]
fn a_flipped_byte_in_the_last_batch_cuts_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let ends = build(dir.path());
    let tail = *segment_bases(dir.path()).last().unwrap();
    let path = seg(dir.path(), tail, "log");
    let len = fs::metadata(&path).unwrap().len();
    flip(&path, len - 5);
    let (log, report) = PartitionLog::open(dir.path(), small_segments(1_500)).unwrap();
    assert_eq!(log.next_offset(), ends[ends.len() - 2].1);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        len - report.bytes_truncated
    );
    let served = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(
        proto_core::storage::batch::split_batches(&served.bytes)
            .unwrap()
            .len(),
        19
    );
}

#[test]
fn damage_before_the_tail_is_quarantined_and_the_log_ends_there() {
    let dir = tempfile::tempdir().unwrap();
    let ends = build(dir.path());
    let bases = segment_bases(dir.path());
    assert!(bases.len() >= 4);
    let victim = bases[1];
    // Flip a byte in the second batch of the second segment.
    let (log, _) = PartitionLog::open(dir.path(), small_segments(1_500)).unwrap();
    let r = log.read(victim, usize::MAX, i64::MAX).unwrap();
    let second_batch_at = r.ranges[0].position + 61 + 300;
    drop(log);
    flip(&seg(dir.path(), victim, "log"), second_batch_at);

    let (log, report) = PartitionLog::open(dir.path(), small_segments(1_500)).unwrap();
    assert_eq!(report.segments, 2);
    assert_eq!(
        report.quarantined.len(),
        bases.len() - 1,
        "damaged suffix + each later segment"
    );
    assert!(report
        .quarantined
        .iter()
        .all(|p| p.exists() && p.to_string_lossy().contains(".corrupt")));
    assert_eq!(segment_bases(dir.path()), vec![bases[0], victim]);
    assert!(log.next_offset() > victim && log.next_offset() < ends.last().unwrap().1);
    assert!(ends
        .iter()
        .any(|&(raft, offset)| offset == log.next_offset() && raft == log.last_raft_index()));
    // Opening again finds nothing more to repair.
    drop(log);
    let (_, again) = PartitionLog::open(dir.path(), small_segments(1_500)).unwrap();
    assert_eq!((again.bytes_truncated, again.quarantined.len()), (0, 0));
}

#[test]
fn a_deleted_index_is_rebuilt_identically() {
    let dir = tempfile::tempdir().unwrap();
    let ends = build(dir.path());
    let base = segment_bases(dir.path())[0];
    let index = seg(dir.path(), base, "index");
    let original = fs::read(&index).unwrap();
    assert!(
        !original.is_empty(),
        "the segment spans several index intervals"
    );
    fs::remove_file(&index).unwrap();
    fs::write(seg(dir.path(), base, "timeindex"), b"garbage").unwrap();
    let (log, report) = PartitionLog::open(dir.path(), small_segments(1_500)).unwrap();
    assert_eq!(report.indexes_rebuilt, 1);
    assert_eq!(fs::read(&index).unwrap(), original);
    assert_eq!(log.next_offset(), ends.last().unwrap().1);
    assert_eq!(
        log.offset_for_timestamp(5).unwrap().map(|(o, _)| o),
        Some(8)
    );
}

#[test]
fn lost_sidecars_are_derived_from_neighbours() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let bases = segment_bases(dir.path());
    let (log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    let (first, last) = (log.first_raft_index(), log.last_raft_index());
    let entries = log.entries_from(first, usize::MAX).unwrap();
    drop(log);
    fs::remove_file(seg(dir.path(), bases[0], "raft")).unwrap();
    fs::write(seg(dir.path(), *bases.last().unwrap(), "raft"), b"bad").unwrap();
    let (log, report) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(report.sidecars_rewritten, 2);
    assert_eq!(
        (log.first_raft_index(), log.last_raft_index()),
        (first, last)
    );
    assert_eq!(log.entries_from(first, usize::MAX).unwrap(), entries);
}

#[test]
fn stray_files_and_foreign_names_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    fs::write(seg(dir.path(), 999_999, "index"), b"").unwrap();
    fs::write(dir.path().join("raft.meta"), b"kept").unwrap();
    let (_, report) = PartitionLog::open(dir.path(), small_segments(1_500)).unwrap();
    assert_eq!(report.stray_files_removed, 1);
    assert!(dir.path().join("raft.meta").exists());
    assert!(!seg(dir.path(), 999_999, "index").exists());
}

#[test]
fn garbage_in_place_of_a_single_segment_gives_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(seg(dir.path(), 0, "log"), vec![0xAB; 5_000]).unwrap();
    let (mut log, report) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(report.bytes_truncated, 5_000);
    assert_eq!((log.next_offset(), log.last_raft_index()), (0, 0));
    append_data(&mut log, 1, 1, 0);
    assert_eq!(log.next_offset(), 1);
}
