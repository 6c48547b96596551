//! Entries a partition leader loads from its log for a follower that is
//! behind the in-memory Raft log (`Action::LoadEntries`).
//!
//! The in-memory Raft log keeps only the entries not yet applied: the segment
//! files are the partition's data, and a follower that was down for a while
//! is sent them from there, the way a Kafka follower fetches old offsets from
//! the leader's log. Loads are answered at once, on the node loop, with the
//! store's synchronous read; they read applied entries, which are on disk, so
//! the answer is the same on a replay.

use proto_core::multiraft::{self, GroupId};
use proto_core::raft::{self, LogIndex, NodeId};

use super::Node;

/// A load Raft asked for and the node has not answered yet.
#[derive(Clone, Copy, Debug)]
pub(super) struct EntryLoad {
    /// The partition's group.
    pub group: GroupId,
    /// The follower the entries are for.
    pub to: NodeId,
    /// The first index to read.
    pub from: LogIndex,
    /// Soft limit on the bytes read.
    pub max_bytes: usize,
}

impl Node {
    /// Answers every load asked for so far, and the loads those answers ask
    /// for in turn (a follower far behind takes one load per append until its
    /// in-flight window is full). Only the outermost Raft step runs this, so
    /// answering never recurses.
    pub(super) fn answer_loads(&mut self) {
        if self.answering_loads {
            return;
        }
        self.answering_loads = true;
        while let Some(load) = self.loads.pop_front() {
            let (prev_term, entries) = self.load(load);
            self.raft_step(multiraft::Event::Group {
                group: load.group,
                event: raft::Event::EntriesLoaded {
                    to: load.to,
                    from: load.from,
                    prev_term,
                    entries,
                },
            });
        }
        self.answering_loads = false;
    }

    /// The stored term before `load.from` and the entries from it on;
    /// nothing if they cannot be read.
    fn load(&self, load: EntryLoad) -> (Option<raft::Term>, Vec<raft::Entry>) {
        let Some(p) = self.partitions.get(&load.group) else {
            return (None, Vec::new());
        };
        let prev_term = self
            .store
            .raft_term(&p.tp, load.from.0.saturating_sub(1))
            .map(raft::Term);
        match self.store.raft_entries(&p.tp, load.from.0, load.max_bytes) {
            Ok(entries) => (prev_term, entries),
            Err(error) => {
                tracing::error!(tp = %p.tp, from = load.from.0, %error,
                    "cannot read Raft entries for a follower");
                (None, Vec::new())
            }
        }
    }
}
