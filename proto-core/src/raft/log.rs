//! The in-memory Raft log: the entries after the last snapshot, plus the commit,
//! persisted and applied marks.
//!
//! Invariants: `snapshot_last.index <= applied <= commit`, `applied <= persisted`,
//! `persisted <= last_index()`, and `entries[i].index == snapshot_last.index + 1 + i`.

use std::collections::VecDeque;

use super::types::{Entry, LogId, LogIndex, Term};

/// The log of one group on one node.
#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// The last entry covered by the latest snapshot (0/0 for none).
    snapshot_last: LogId,
    /// Entries after `snapshot_last`, in index order.
    entries: VecDeque<Entry>,
    /// Highest index known committed.
    pub(super) commit: LogIndex,
    /// Highest index this node knows is durable in its own storage.
    pub(super) persisted: LogIndex,
    /// Highest index handed to the state machine.
    pub(super) applied: LogIndex,
}

impl RaftLog {
    /// A log restored from storage: a snapshot point and the entries after it.
    pub fn restore(snapshot_last: LogId, entries: Vec<Entry>, commit: LogIndex) -> RaftLog {
        let entries: VecDeque<Entry> = entries
            .into_iter()
            .skip_while(|e| e.index <= snapshot_last.index)
            .collect();
        let last = entries.back().map_or(snapshot_last.index, |e| e.index);
        let commit = commit.clamp(snapshot_last.index, last);
        RaftLog {
            snapshot_last,
            entries,
            commit,
            persisted: last,
            applied: snapshot_last.index,
        }
    }

    /// The last entry covered by the snapshot.
    pub fn snapshot_last(&self) -> LogId {
        self.snapshot_last
    }

    /// The first index still held as an entry.
    pub fn first_index(&self) -> LogIndex {
        self.snapshot_last.index.next()
    }

    /// The last index in the log (the snapshot's if there are no entries).
    pub fn last_index(&self) -> LogIndex {
        self.entries
            .back()
            .map_or(self.snapshot_last.index, |e| e.index)
    }

    /// The id of the last entry.
    pub fn last_id(&self) -> LogId {
        self.entries.back().map_or(self.snapshot_last, Entry::id)
    }

    /// Highest committed index.
    pub fn commit(&self) -> LogIndex {
        self.commit
    }

    /// Highest index durable on this node.
    pub fn persisted(&self) -> LogIndex {
        self.persisted
    }

    /// Highest applied index.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// The term of the entry at `index`, if this log still knows it.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_last.index {
            return Some(self.snapshot_last.term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let first = self.first_index();
        if index < first {
            return None;
        }
        self.entries.get((index.0 - first.0) as usize)
    }

    /// Whether the log holds `id`.
    pub fn matches(&self, id: LogId) -> bool {
        self.term(id.index) == Some(id.term)
    }

    /// Whether a log ending at `last` is at least as up-to-date as this one (§5.4.1).
    pub fn is_up_to_date(&self, last: LogId) -> bool {
        let mine = self.last_id();
        last.term > mine.term || (last.term == mine.term && last.index >= mine.index)
    }

    /// Entries from `from` on, stopping once `max_bytes` is reached (at least one
    /// entry is returned if any exists). `None` if `from` was compacted away.
    pub fn entries_from(&self, from: LogIndex, max_bytes: usize) -> Option<Vec<Entry>> {
        let first = self.first_index();
        if from < first {
            return None;
        }
        // Count first, then clone into an exact-size vector: this is the
        // leader's replication hot path.
        let start = ((from.0 - first.0) as usize).min(self.entries.len());
        let mut count = 0;
        let mut bytes = 0;
        for e in self.entries.range(start..) {
            bytes += e.size();
            if count > 0 && bytes > max_bytes {
                break;
            }
            count += 1;
        }
        Some(self.entries.range(start..start + count).cloned().collect())
    }

    /// Entries in `(after, upto]`, for applying.
    pub fn slice(&self, after: LogIndex, upto: LogIndex) -> Vec<Entry> {
        let first = self.first_index();
        let start = after.next().max(first);
        if start > upto {
            return Vec::new();
        }
        // Entries are contiguous: the held part of (after, upto] is one range,
        // cloned into an exact-size vector (writes and applies on the hot path).
        let len = self.entries.len();
        let from = ((start.0 - first.0) as usize).min(len);
        let to = ((upto.0 - first.0) as usize).saturating_add(1).min(len);
        if from >= to {
            return Vec::new();
        }
        self.entries.range(from..to).cloned().collect()
    }

    /// Appends entries at the leader; they must follow the last index.
    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index().next());
        self.entries.push_back(entry);
    }

    /// Finds the first entry of `entries` that this log lacks or holds with another
    /// term; returns its position in `entries`.
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<usize> {
        entries.iter().position(|e| !self.matches(e.id()))
    }

    /// Drops every entry at or after `index` (a follower's divergent suffix). The
    /// persisted mark follows the cut; committed entries are never cut.
    pub fn truncate_from(&mut self, index: LogIndex) {
        debug_assert!(index > self.commit, "truncating committed entry {index}");
        let first = self.first_index();
        let keep = index.0.saturating_sub(first.0) as usize;
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(index.prev());
    }

    /// The largest index at or below `index` whose term is at most `term`: where
    /// the leader's and this log can possibly agree (etcd's findConflictByTerm).
    pub fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> LogId {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Some(t) if t <= term => return LogId { term: t, index },
                Some(_) if index > self.snapshot_last.index => index = index.prev(),
                _ => {
                    return LogId {
                        term: Term(0),
                        index,
                    }
                }
            }
        }
    }

    /// Discards entries up to `last`, which a snapshot now covers. Entries after it
    /// are kept if the log agrees with the snapshot there, otherwise all go.
    pub fn compact_to(&mut self, last: LogId) {
        if self.matches(last) {
            let drop = (last.index.0 + 1).saturating_sub(self.first_index().0) as usize;
            self.entries.drain(..drop.min(self.entries.len()));
        } else {
            self.entries.clear();
            self.persisted = last.index;
        }
        self.snapshot_last = last;
        self.commit = self.commit.max(last.index);
        self.applied = self.applied.max(last.index);
        self.persisted = self.persisted.max(last.index);
    }

    /// Advances the commit mark; never moves it back.
    pub fn commit_to(&mut self, index: LogIndex) -> bool {
        let index = index.min(self.last_index());
        if index > self.commit {
            self.commit = index;
            true
        } else {
            false
        }
    }
}
