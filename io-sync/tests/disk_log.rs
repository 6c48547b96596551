//! The partition log's write and read paths on real files.

mod common;

use bytes::Bytes;
use common::{append_data, append_raft, data_batch, small_segments};
use io_sync::disk::{EntryPayload, LogConfig, LogEntry, LogError, PartitionLog, RaftMetaStore};
use proto_core::storage::batch::{split_batches, BatchHeader};

fn headers(bytes: &Bytes) -> Vec<BatchHeader> {
    split_batches(bytes)
        .expect("whole batches")
        .into_iter()
        .map(|r| BatchHeader::parse(&bytes[r]).expect("header"))
        .collect()
}

#[test]
fn raft_entries_take_no_offset_and_are_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, report) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(report.segments, 1);
    assert_eq!(
        (
            log.first_raft_index(),
            log.last_raft_index(),
            log.next_offset()
        ),
        (1, 0, 0)
    );
    append_raft(&mut log, 1, b"noop");
    let d1 = append_data(&mut log, 1, 3, 1_000);
    append_raft(&mut log, 2, b"noop");
    let d2 = append_data(&mut log, 2, 2, 2_000);
    assert_eq!(log.next_offset(), 5);
    assert_eq!(log.last_raft_index(), 4);
    assert_eq!(log.term_at(2), Some(1));
    assert_eq!(log.term_at(3), Some(2));
    assert_eq!(log.term_at(5), None);
    assert_eq!(log.next_offset_after(1).unwrap(), 0);
    assert_eq!(log.next_offset_after(2).unwrap(), 3);
    assert_eq!(log.next_offset_after(3).unwrap(), 3);
    assert_eq!(log.next_offset_after(4).unwrap(), 5);

    let r = log.read(0, 1 << 20, i64::MAX).unwrap();
    let (EntryPayload::Data(b1), EntryPayload::Data(b2)) = (&d1.payload, &d2.payload) else {
        unreachable!()
    };
    assert_eq!(r.bytes, [b1.as_ref(), b2.as_ref()].concat());
    assert_eq!(
        r.ranges.len(),
        2,
        "split around the Raft entry between them"
    );
    assert_eq!(r.ranges[0].len as usize, b1.len());
    // Reading from inside the first batch starts at that batch.
    assert_eq!(log.read(1, 1 << 20, i64::MAX).unwrap().bytes, r.bytes);
    assert_eq!(log.read(3, 1 << 20, i64::MAX).unwrap().bytes, b2.clone());
    assert!(log.read(5, 1 << 20, i64::MAX).unwrap().bytes.is_empty());

    let entries = log.entries_from(1, usize::MAX).unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(
        entries[0].payload,
        EntryPayload::Raft(Bytes::from_static(b"noop"))
    );
    assert_eq!(entries[1], d1);
    assert_eq!(entries[3], d2);
    assert_eq!(
        log.entries_from(3, 1).unwrap().len(),
        1,
        "at least one entry"
    );
    let bounded = log.entries_between(2, 3, usize::MAX).unwrap();
    assert_eq!(
        bounded.iter().map(|e| e.raft_index).collect::<Vec<_>>(),
        vec![2, 3],
        "nothing past the last index asked for"
    );
    assert!(log.entries_between(4, 3, usize::MAX).unwrap().is_empty());
}

#[test]
fn read_limits_follow_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    for _ in 0..4 {
        append_data(&mut log, 1, 2, 0);
    }
    let one = log.read(0, 10, i64::MAX).unwrap();
    assert_eq!(
        headers(&one.bytes).len(),
        1,
        "an oversized first batch still comes whole"
    );
    let len = one.bytes.len();
    assert_eq!(
        headers(&log.read(0, 2 * len + 1, i64::MAX).unwrap().bytes).len(),
        2
    );
    let below_hw = log.read(0, 1 << 20, 4).unwrap();
    assert_eq!(
        headers(&below_hw.bytes)
            .iter()
            .map(|h| h.base_offset)
            .collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert!(log.read(4, 1 << 20, 4).unwrap().bytes.is_empty());
}

#[test]
fn appends_are_validated_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append_data(&mut log, 1, 1, 0);
    let entry = |raft_index, term, payload| LogEntry {
        raft_index,
        term,
        payload: EntryPayload::Data(payload),
    };
    let ok = entry(2, 1, data_batch(1, 1, 1, 0));
    let wrong_offset = entry(3, 1, data_batch(7, 1, 1, 0));
    assert!(matches!(
        log.append(&[ok.clone(), wrong_offset]),
        Err(LogError::OffsetMismatch {
            expected: 2,
            found: 7,
            ..
        })
    ));
    assert_eq!(
        log.last_raft_index(),
        1,
        "the valid first entry was not written either"
    );
    let mut corrupt = data_batch(1, 1, 1, 0).to_vec();
    *corrupt.last_mut().unwrap() ^= 1;
    assert!(matches!(
        log.append(&[entry(2, 1, Bytes::from(corrupt))]),
        Err(LogError::InvalidBatch { .. })
    ));
    assert!(matches!(
        log.append(&[entry(2, 2, data_batch(1, 1, 1, 0))]),
        Err(LogError::EpochMismatch { .. })
    ));
    assert!(matches!(
        log.append(&[entry(3, 1, data_batch(1, 1, 1, 0))]),
        Err(LogError::IndexGap {
            expected: 2,
            found: 3
        })
    ));
    assert!(matches!(
        log.append(&[entry(2, 0, data_batch(1, 0, 1, 0))]),
        Err(LogError::TermRegressed { .. })
    ));
    log.append(&[ok]).unwrap();
    assert_eq!(log.next_offset(), 2);
}

#[test]
fn follower_truncation_replaces_the_suffix_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), small_segments(1_000)).unwrap();
    for i in 0..30 {
        if i % 5 == 0 {
            append_raft(&mut log, 1, b"conf");
        }
        append_data(&mut log, 1, 2, i);
    }
    let segments_before = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(segments_before > 8, "small segments rolled");
    // A new leader (term 2) overwrites from Raft index 12 on.
    let cut_offset = log.next_offset_after(11).unwrap();
    let replacement = LogEntry {
        raft_index: 12,
        term: 2,
        payload: EntryPayload::Data(data_batch(cut_offset, 2, 1, 99)),
    };
    log.append(std::slice::from_ref(&replacement)).unwrap();
    assert_eq!(log.last_raft_index(), 12);
    assert_eq!(log.next_offset(), cut_offset + 1);
    assert_eq!(log.term_at(11), Some(1));
    assert_eq!(log.term_at(12), Some(2));
    append_data(&mut log, 2, 1, 100);
    log.sync().unwrap();
    let before = log.entries_from(1, usize::MAX).unwrap();
    drop(log);

    let (log, report) = PartitionLog::open(dir.path(), small_segments(1_000)).unwrap();
    assert_eq!(report.bytes_truncated, 0);
    assert_eq!(
        report.indexes_rebuilt, 0,
        "the truncated indexes match a rebuild"
    );
    assert_eq!(log.entries_from(1, usize::MAX).unwrap(), before);
    assert_eq!(log.entries_from(12, usize::MAX).unwrap()[0], replacement);
    assert_eq!(log.term_at(13), Some(2));
}

#[test]
fn segments_roll_by_size_and_age_and_reopen_whole() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: Some(1_000),
        ..small_segments(2_000)
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..40 {
        append_data(&mut log, 1, 3, 10 * i);
    }
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert!(names.contains(&"00000000000000000000.log".to_string()));
    assert!(names.len() >= 5, "rolled by size: {names:?}");
    let segments = names.len();
    let count_logs = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count()
    };
    log.maybe_roll(0).unwrap();
    assert_eq!(count_logs(), segments, "a young segment is not rolled");
    log.maybe_roll(i64::MAX).unwrap();
    assert_eq!(count_logs(), segments + 1, "rolled by age");
    append_data(&mut log, 1, 1, 0);
    append_data(&mut log, 1, 1, 0);
    let logs = count_logs();
    let all = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(headers(&all.bytes).len(), 42);
    assert!(
        all.ranges.len() >= segments,
        "one range per segment at least"
    );
    log.sync().unwrap();
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(report.segments, logs);
    assert_eq!(log.next_offset(), 122);
    assert_eq!(log.read(0, usize::MAX, i64::MAX).unwrap().bytes, all.bytes);
}

#[test]
fn retention_deletes_old_segments_but_not_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_bytes: Some(3_000),
        retention_ms: Some(1_000),
        ..small_segments(1_000)
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
    for i in 0..40 {
        append_data(&mut log, 1, 2, 100 * i);
    }
    let size = log.size_bytes();
    assert!(size > 3_000);
    // Raft still needs everything from index 2: nothing may go.
    assert_eq!(log.enforce_retention(0, 2, u64::MAX).unwrap(), 0);
    let deleted = log.enforce_retention(0, u64::MAX, u64::MAX).unwrap();
    assert!(deleted > 0);
    // Like Kafka, a segment goes only if the log stays at least retention_bytes.
    assert!(
        (3_000..4_000).contains(&log.size_bytes()),
        "size {}",
        log.size_bytes()
    );
    let start = log.log_start_offset();
    assert!(start > 0);
    assert_eq!(log.first_raft_index(), start as u64 / 2 + 1);
    assert_eq!(
        log.read(start, 1 << 20, i64::MAX).unwrap().ranges[0].position,
        0
    );
    assert!(log.read(0, 1 << 20, i64::MAX).unwrap().bytes.is_empty());
    assert_eq!(log.term_at(log.first_raft_index()), Some(1));
    // Everything is ancient now; only the active segment stays.
    log.enforce_retention(i64::MAX, u64::MAX, u64::MAX).unwrap();
    assert!(log.log_start_offset() > start);
    assert!(log.size_bytes() > 0 && log.size_bytes() <= 1_000);
    assert_eq!(log.next_offset(), 80);
}

#[test]
fn offsets_are_found_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), small_segments(2_000)).unwrap();
    for i in 0..50 {
        append_raft(&mut log, 1, b"x");
        append_data(&mut log, 1, 1, 1_000 + 10 * i);
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1_000)));
    assert_eq!(log.offset_for_timestamp(1_000).unwrap(), Some((0, 1_000)));
    assert_eq!(log.offset_for_timestamp(1_001).unwrap(), Some((1, 1_010)));
    assert_eq!(log.offset_for_timestamp(1_250).unwrap(), Some((25, 1_250)));
    assert_eq!(log.offset_for_timestamp(1_490).unwrap(), Some((49, 1_490)));
    assert_eq!(log.offset_for_timestamp(1_491).unwrap(), None);
}

#[test]
fn reset_starts_an_empty_log_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append_data(&mut log, 1, 1, 0);
    log.reset(100, 7, 5_000).unwrap();
    assert_eq!((log.first_raft_index(), log.last_raft_index()), (100, 99));
    assert_eq!(log.term_at(99), Some(7), "the term before the reset point");
    assert_eq!((log.log_start_offset(), log.next_offset()), (5_000, 5_000));
    let older = LogEntry {
        raft_index: 100,
        term: 6,
        payload: EntryPayload::Data(data_batch(5_000, 6, 1, 0)),
    };
    assert!(
        log.append(&[older]).is_err(),
        "a term below the one before the reset"
    );
    append_data(&mut log, 8, 1, 0);
    log.sync().unwrap();
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        (
            log.first_raft_index(),
            log.last_raft_index(),
            log.next_offset()
        ),
        (100, 100, 5_001)
    );
    assert_eq!((log.term_at(99), log.term_at(100)), (Some(7), Some(8)));
    assert!(!dir.path().join("00000000000000000000.log").exists());
}

#[test]
fn retention_remembers_the_term_of_the_last_deleted_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_bytes: Some(2_000),
        ..small_segments(1_000)
    };
    let (mut log, _) = PartitionLog::open(dir.path(), cfg.clone()).unwrap();
    assert_eq!(log.term_at(0), Some(0), "an empty log starts after term 0");
    for i in 0..40 {
        append_data(&mut log, i / 4 + 1, 2, 0);
    }
    assert!(log.enforce_retention(0, u64::MAX, u64::MAX).unwrap() > 0);
    let first = log.first_raft_index();
    assert!(first > 1);
    let deleted_term = (first - 2) / 4 + 1;
    assert_eq!(log.term_at(first - 1), Some(deleted_term));
    assert_eq!(log.term_at(first - 2), None, "older entries are gone");
    log.sync().unwrap();
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), cfg).unwrap();
    assert_eq!(log.first_raft_index(), first);
    assert_eq!(log.term_at(first - 1), Some(deleted_term));
}

#[test]
fn a_version_one_sidecar_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    append_data(&mut log, 2, 3, 0);
    log.sync().unwrap();
    drop(log);
    let mut v1 = b"CHRS".to_vec();
    v1.extend_from_slice(&1u32.to_be_bytes());
    v1.extend_from_slice(&1u64.to_be_bytes());
    v1.extend_from_slice(&crc32c::crc32c(&v1).to_be_bytes());
    std::fs::write(dir.path().join("00000000000000000000.raft"), v1).unwrap();
    let (log, report) = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(report.sidecars_rewritten, 0);
    assert_eq!((log.next_offset(), log.last_raft_index()), (3, 1));
    assert_eq!((log.term_at(0), log.term_at(1)), (Some(0), Some(2)));
}

#[test]
fn raft_meta_is_replaced_atomically_and_damage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(RaftMetaStore::load(dir.path()).unwrap(), None);
    let store = RaftMetaStore::new(dir.path());
    store.store(b"term=1").unwrap();
    store.store(b"term=2 vote=3").unwrap();
    std::fs::write(dir.path().join("raft.meta.tmp"), b"half written").unwrap();
    assert_eq!(
        RaftMetaStore::load(dir.path()).unwrap(),
        Some(b"term=2 vote=3".to_vec())
    );
    assert!(!dir.path().join("raft.meta.tmp").exists());
    let mut raw = std::fs::read(dir.path().join("raft.meta")).unwrap();
    *raw.last_mut().unwrap() ^= 1;
    std::fs::write(dir.path().join("raft.meta"), raw).unwrap();
    assert_eq!(
        RaftMetaStore::load(dir.path()).unwrap_err().kind(),
        std::io::ErrorKind::InvalidData
    );
}
