//! Unit tests for `RaftLog`: conflict search, truncation, compaction and the byte
//! limits on what the leader sends.

use bytes::Bytes;

use super::log::RaftLog;
use super::types::{Entry, LogId, LogIndex, Payload, Term};

/// Entries at `first, first+1, …` with the given terms, each carrying `data_len`
/// bytes so its `size()` is `24 + data_len`.
fn entries(first: u64, terms: &[u64], data_len: usize) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &term)| Entry {
            term: Term(term),
            index: LogIndex(first + i as u64),
            payload: Payload::Normal(Bytes::from(vec![b'x'; data_len])),
        })
        .collect()
}

/// A log whose snapshot ends at `snapshot` and holds entries with `terms` after it.
fn log(snapshot: LogId, terms: &[u64]) -> RaftLog {
    RaftLog::restore(
        snapshot,
        entries(snapshot.index.0 + 1, terms, 0),
        LogIndex(0),
    )
}

fn ids(entries: &[Entry]) -> Vec<LogId> {
    entries.iter().map(Entry::id).collect()
}

#[test]
fn restore_drops_entries_the_snapshot_covers_and_clamps_commit() {
    let l = RaftLog::restore(
        LogId::new(2, 3),
        entries(1, &[1, 1, 2, 2, 3], 0),
        LogIndex(9),
    );
    assert_eq!(l.first_index(), LogIndex(4));
    assert_eq!(l.last_id(), LogId::new(3, 5));
    assert_eq!(
        l.commit(),
        LogIndex(5),
        "commit is capped at the last entry"
    );
    assert_eq!(l.persisted(), LogIndex(5), "restored entries are durable");
    assert_eq!(l.applied(), LogIndex(3), "the snapshot is applied");

    let empty = RaftLog::restore(LogId::new(2, 3), Vec::new(), LogIndex(0));
    assert_eq!(
        empty.commit(),
        LogIndex(3),
        "commit is at least the snapshot"
    );
    assert_eq!(empty.last_id(), LogId::new(2, 3));
}

#[test]
fn term_is_known_from_the_snapshot_point_to_the_last_entry() {
    let l = log(LogId::new(2, 3), &[2, 4]);
    assert_eq!(l.term(LogIndex(2)), None, "compacted away");
    assert_eq!(
        l.term(LogIndex(3)),
        Some(Term(2)),
        "the snapshot's own term"
    );
    assert_eq!(l.term(LogIndex(5)), Some(Term(4)));
    assert_eq!(l.term(LogIndex(6)), None, "past the end");
    assert!(l.matches(LogId::new(2, 3)));
    assert!(!l.matches(LogId::new(3, 5)));
}

#[test]
fn find_conflict_by_term_without_snapshot() {
    // etcd's TestFindConflictByTerm: terms 2 2 5 5 5 at indexes 1..=5.
    let l = log(LogId::default(), &[2, 2, 5, 5, 5]);
    let cases = [
        // (index, term) -> where the logs may agree
        ((100, 2), LogId::new(2, 2)), // an index past the end is clamped first
        ((5, 6), LogId::new(5, 5)),
        ((5, 5), LogId::new(5, 5)),
        ((5, 4), LogId::new(2, 2)),
        ((5, 2), LogId::new(2, 2)),
        ((5, 1), LogId::new(0, 0)),
        ((1, 2), LogId::new(2, 1)),
        ((1, 1), LogId::new(0, 0)),
        ((3, 2), LogId::new(2, 2)),
        ((0, 0), LogId::new(0, 0)),
    ];
    for ((index, term), want) in cases {
        assert_eq!(
            l.find_conflict_by_term(LogIndex(index), Term(term)),
            want,
            "find_conflict_by_term({index}, {term})"
        );
    }
}

#[test]
fn find_conflict_by_term_stops_at_the_snapshot() {
    let l = log(LogId::new(3, 10), &[3, 4, 4]);
    assert_eq!(
        l.find_conflict_by_term(LogIndex(13), Term(4)),
        LogId::new(4, 13)
    );
    assert_eq!(
        l.find_conflict_by_term(LogIndex(13), Term(3)),
        LogId::new(3, 11)
    );
    assert_eq!(
        l.find_conflict_by_term(LogIndex(10), Term(3)),
        LogId::new(3, 10),
        "the snapshot point itself can match"
    );
    // Every known term is newer: the log cannot tell, and says so with term 0 at
    // the snapshot point rather than searching entries it no longer has.
    assert_eq!(
        l.find_conflict_by_term(LogIndex(12), Term(2)),
        LogId::new(0, 10)
    );
    assert_eq!(
        l.find_conflict_by_term(LogIndex(9), Term(3)),
        LogId::new(0, 9),
        "below the snapshot nothing is known"
    );
}

#[test]
fn find_conflict_reports_the_first_missing_or_different_entry() {
    let l = log(LogId::default(), &[1, 1, 2]);
    assert_eq!(l.find_conflict(&entries(1, &[1, 1, 2], 0)), None);
    assert_eq!(l.find_conflict(&entries(2, &[1, 2], 0)), None);
    assert_eq!(l.find_conflict(&entries(2, &[1, 3, 3], 0)), Some(1));
    assert_eq!(
        l.find_conflict(&entries(3, &[2, 2], 0)),
        Some(1),
        "new entries past the end"
    );
    assert_eq!(l.find_conflict(&[]), None);
}

#[test]
fn truncate_from_drops_the_suffix_and_pulls_persisted_back() {
    let mut l = log(LogId::default(), &[1, 1, 2, 2]);
    l.commit_to(LogIndex(1));
    l.truncate_from(LogIndex(3));
    assert_eq!(l.last_id(), LogId::new(1, 2));
    assert_eq!(l.entry(LogIndex(3)), None);
    assert_eq!(l.persisted(), LogIndex(2), "persisted follows the cut");
    assert_eq!(l.commit(), LogIndex(1));

    // The log continues where it was cut.
    l.append(entries(3, &[3], 0).remove(0));
    assert_eq!(l.last_id(), LogId::new(3, 3));
}

#[test]
fn truncate_from_keeps_a_lower_persisted_mark() {
    let mut l = log(LogId::default(), &[1, 1]);
    for e in entries(3, &[1, 1], 0) {
        l.append(e);
    }
    assert_eq!(l.persisted(), LogIndex(2), "appends are not durable yet");
    l.truncate_from(LogIndex(4));
    assert_eq!(l.last_index(), LogIndex(3));
    assert_eq!(l.persisted(), LogIndex(2));
}

#[test]
fn truncate_from_past_the_end_changes_nothing() {
    let mut l = log(LogId::default(), &[1, 1]);
    l.truncate_from(LogIndex(10));
    assert_eq!(l.last_id(), LogId::new(1, 2));
    assert_eq!(l.persisted(), LogIndex(2));
}

#[test]
fn truncate_from_after_a_snapshot() {
    let mut l = log(LogId::new(2, 5), &[2, 3, 3]);
    l.truncate_from(LogIndex(7));
    assert_eq!(l.last_id(), LogId::new(2, 6));
    assert_eq!(l.first_index(), LogIndex(6));
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "truncating committed entry")]
fn truncate_from_refuses_committed_entries() {
    let mut l = log(LogId::default(), &[1, 1, 2]);
    l.commit_to(LogIndex(2));
    l.truncate_from(LogIndex(2));
}

#[test]
fn compact_to_a_matching_entry_keeps_the_entries_after_it() {
    let mut l = log(LogId::default(), &[1, 1, 2, 2, 3]);
    l.compact_to(LogId::new(2, 3));
    assert_eq!(l.snapshot_last(), LogId::new(2, 3));
    assert_eq!(l.first_index(), LogIndex(4));
    assert_eq!(l.entry(LogIndex(3)), None);
    assert_eq!(l.term(LogIndex(3)), Some(Term(2)));
    assert_eq!(
        ids(&l.slice(LogIndex(0), LogIndex(5))),
        [LogId::new(2, 4), LogId::new(3, 5)]
    );
    assert_eq!(l.commit(), LogIndex(3), "a snapshot is committed");
    assert_eq!(l.applied(), LogIndex(3), "a snapshot is applied");
    assert_eq!(l.persisted(), LogIndex(5));
}

#[test]
fn compact_to_the_last_entry_leaves_no_entries() {
    let mut l = log(LogId::default(), &[1, 2]);
    l.compact_to(LogId::new(2, 2));
    assert_eq!(l.last_id(), LogId::new(2, 2));
    assert_eq!(l.first_index(), LogIndex(3));
    assert_eq!(l.entries_from(LogIndex(3), usize::MAX), Some(Vec::new()));
}

#[test]
fn compact_to_a_conflicting_entry_drops_the_whole_log() {
    let mut l = log(LogId::default(), &[1, 1, 2, 2, 3]);
    l.compact_to(LogId::new(5, 4));
    assert_eq!(l.last_id(), LogId::new(5, 4));
    assert_eq!(
        l.entry(LogIndex(5)),
        None,
        "entries after the snapshot go too"
    );
    assert_eq!(l.persisted(), LogIndex(4));
    assert_eq!(l.commit(), LogIndex(4));
}

#[test]
fn compact_to_past_the_end_jumps_the_log_forward() {
    let mut l = log(LogId::default(), &[1, 1]);
    l.compact_to(LogId::new(3, 10));
    assert_eq!(l.last_id(), LogId::new(3, 10));
    assert_eq!(l.first_index(), LogIndex(11));
    assert_eq!(l.commit(), LogIndex(10));
    assert_eq!(l.applied(), LogIndex(10));
    assert_eq!(l.persisted(), LogIndex(10));
}

#[test]
fn compact_to_never_moves_commit_back() {
    let mut l = log(LogId::default(), &[1, 1, 2, 2, 3]);
    assert!(l.commit_to(LogIndex(5)));
    l.compact_to(LogId::new(2, 3));
    assert_eq!(l.commit(), LogIndex(5));
}

#[test]
fn entries_from_stops_at_the_byte_limit_but_sends_at_least_one() {
    // Each entry is 24 + 10 = 34 bytes.
    let l = RaftLog::restore(LogId::default(), entries(1, &[1, 1, 1, 1], 10), LogIndex(0));
    let count =
        |from: u64, max_bytes: usize| l.entries_from(LogIndex(from), max_bytes).map(|es| es.len());
    assert_eq!(
        count(1, 0),
        Some(1),
        "an entry over the limit still goes alone"
    );
    assert_eq!(count(1, 33), Some(1));
    assert_eq!(count(1, 34), Some(1));
    assert_eq!(count(1, 67), Some(1));
    assert_eq!(count(1, 68), Some(2), "the limit is inclusive");
    assert_eq!(count(1, 101), Some(2));
    assert_eq!(count(1, 102), Some(3));
    assert_eq!(count(1, usize::MAX), Some(4));
    assert_eq!(count(3, usize::MAX), Some(2));
    assert_eq!(count(5, usize::MAX), Some(0), "nothing past the end");

    let first = l.entries_from(LogIndex(2), 68);
    assert_eq!(
        first.as_deref().map(ids),
        Some(vec![LogId::new(1, 2), LogId::new(1, 3)])
    );
}

#[test]
fn entries_from_a_compacted_index_is_none() {
    let l = log(LogId::new(2, 5), &[2, 3]);
    assert_eq!(l.entries_from(LogIndex(5), usize::MAX), None);
    assert_eq!(
        l.entries_from(LogIndex(6), usize::MAX).as_deref().map(ids),
        Some(vec![LogId::new(2, 6), LogId::new(3, 7)])
    );
}

#[test]
fn slice_clips_to_what_the_log_holds() {
    let l = log(LogId::new(1, 2), &[1, 2, 2]);
    assert_eq!(
        ids(&l.slice(LogIndex(0), LogIndex(9))),
        [LogId::new(1, 3), LogId::new(2, 4), LogId::new(2, 5)]
    );
    assert_eq!(ids(&l.slice(LogIndex(3), LogIndex(4))), [LogId::new(2, 4)]);
    assert!(l.slice(LogIndex(4), LogIndex(4)).is_empty());
}

#[test]
fn commit_to_only_moves_forward_and_stays_within_the_log() {
    let mut l = log(LogId::default(), &[1, 1, 1]);
    assert!(l.commit_to(LogIndex(2)));
    assert!(!l.commit_to(LogIndex(1)), "never back");
    assert!(!l.commit_to(LogIndex(2)));
    assert!(l.commit_to(LogIndex(9)));
    assert_eq!(l.commit(), LogIndex(3), "capped at the last index");
}

#[test]
fn is_up_to_date_compares_last_term_then_last_index() {
    let l = log(LogId::default(), &[1, 2, 2]);
    assert!(l.is_up_to_date(LogId::new(3, 1)), "higher term wins");
    assert!(l.is_up_to_date(LogId::new(2, 3)), "same log");
    assert!(l.is_up_to_date(LogId::new(2, 4)), "longer log, same term");
    assert!(!l.is_up_to_date(LogId::new(2, 2)), "shorter log, same term");
    assert!(!l.is_up_to_date(LogId::new(1, 9)), "lower term loses");
}
