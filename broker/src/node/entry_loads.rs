//! Entries a partition leader loads from its log for a follower that is
//! behind the in-memory Raft log (`Action::LoadEntries`).
//!
//! The in-memory Raft log keeps only the entries not yet applied: the segment
//! files are the partition's data, and a follower that was down for a while
//! is sent them from there, the way a Kafka follower fetches old offsets from
//! the leader's log. Loads are answered on the node loop with the store's
//! synchronous read, at most [`LOAD_BYTES_PER_TICK`] per follower node per
//! tick: a node leading many partitions whose follower restarts would
//! otherwise read (and try to queue) every partition's window at once. The
//! rest wait for the next tick, as do loads whose read failed. Loads read
//! applied entries, which are on disk, and ticks are inputs, so a replay
//! answers the same loads with the same entries.
//!
//! A leader also asks its store's retention to keep what its slowest
//! follower still needs ([`Node::publish_replica_holds`]), within twice the
//! topic's retention limits. Once retention has deleted them, the load is
//! answered with where storage starts (`Event::LogStartLoaded`): the leader
//! sends the follower a snapshot ending there, and the follower starts its
//! log again at the leader's log start offset, as a Kafka follower does on
//! `OFFSET_OUT_OF_RANGE` (see [`crate::log_start`]).

use std::collections::BTreeMap;

use proto_core::multiraft::{self, GroupId};
use proto_core::raft::{self, Entry, LogId, LogIndex, NodeId, Term};

use super::Node;
use crate::log_start::LogStart;
use crate::store::StoredEntries;

/// Entry bytes loaded for one follower node per tick (of 100 ms by
/// default): about 320 MiB/s of catch-up, half the 64 MiB peer queue each
/// tick.
const LOAD_BYTES_PER_TICK: usize = 32 << 20;

/// Ticks between updates of the leaders' retention holds (the store's
/// housekeeping runs about as often).
const HOLD_EVERY_TICKS: u64 = 50;

/// A load Raft asked for and the node has not answered yet.
#[derive(Clone, Copy, Debug)]
pub(super) struct EntryLoad {
    /// The partition's group.
    pub group: GroupId,
    /// The follower the entries are for.
    pub to: NodeId,
    /// The first index to read.
    pub from: LogIndex,
    /// The last index to read.
    pub last: LogIndex,
    /// Soft limit on the bytes read.
    pub max_bytes: usize,
}

/// Loads waiting for an answer, and what each follower node may still be
/// sent this tick.
#[derive(Debug, Default)]
pub(super) struct EntryLoads {
    queued: Vec<EntryLoad>,
    /// Bytes loaded per follower node since the last tick.
    spent: BTreeMap<NodeId, usize>,
    /// Whether the loads are being answered (by an outer Raft step).
    answering: bool,
}

impl EntryLoads {
    /// Queues a load Raft asked for.
    pub(super) fn push(&mut self, load: EntryLoad) {
        self.queued.push(load);
    }
}

impl Node {
    /// Every [`HOLD_EVERY_TICKS`]: tells the store, for each partition this
    /// node leads in a cluster, the first Raft index its slowest follower
    /// lacks, and for every other partition that nothing is held.
    pub(super) fn publish_replica_holds(&mut self) {
        if self.cluster.is_none() || !self.raft.ticks().is_multiple_of(HOLD_EVERY_TICKS) {
            return;
        }
        for (&group, p) in &self.partitions {
            let hold = self
                .raft
                .group(group)
                .filter(|r| r.role() == raft::Role::Leader)
                .and_then(|r| {
                    r.progress()
                        .iter()
                        .filter(|(id, _)| **id != r.id())
                        .map(|(_, pr)| pr.matched.0 + 1)
                        .min()
                });
            self.store.hold_for_replicas(&p.tp, hold);
        }
    }

    /// A new tick: every follower node may be sent its budget again, and the
    /// loads left over are answered.
    pub(super) fn refill_loads(&mut self) {
        self.loads.spent.clear();
        self.answer_loads();
    }

    /// Answers the loads asked for so far within this tick's budgets, and
    /// the loads those answers ask for in turn (a follower far behind takes
    /// one load per append until its in-flight window is full). Nested Raft
    /// steps leave this to the one that started it, so answering never
    /// recurses.
    pub(super) fn answer_loads(&mut self) {
        if self.loads.answering {
            return;
        }
        self.loads.answering = true;
        let mut later = Vec::new();
        while !self.loads.queued.is_empty() {
            let queued = std::mem::take(&mut self.loads.queued);
            for load in queued {
                if self.loads.spent.get(&load.to).copied().unwrap_or(0) >= LOAD_BYTES_PER_TICK {
                    later.push(load);
                    continue;
                }
                let Some(stored) = self.load(load) else {
                    later.push(load);
                    continue;
                };
                let event = match stored {
                    StoredEntries::From { prev_term, entries } => {
                        let bytes: usize = entries.iter().map(Entry::size).sum();
                        *self.loads.spent.entry(load.to).or_default() += bytes;
                        raft::Event::EntriesLoaded {
                            to: load.to,
                            from: load.from,
                            prev_term: prev_term.map(Term),
                            entries,
                        }
                    }
                    StoredEntries::StartsAfter {
                        index,
                        term,
                        log_start_offset,
                    } => raft::Event::LogStartLoaded {
                        to: load.to,
                        from: load.from,
                        start: LogId {
                            index: LogIndex(index),
                            term: Term(term),
                        },
                        data: LogStart {
                            next_offset: log_start_offset,
                        }
                        .encode(),
                    },
                };
                self.raft_step(multiraft::Event::Group {
                    group: load.group,
                    event,
                });
            }
        }
        self.loads.queued = later;
        self.loads.answering = false;
    }

    /// What storage holds from `load.from` on (nothing if the partition is
    /// gone); `None` if it could not be read, to try again next tick.
    fn load(&self, load: EntryLoad) -> Option<StoredEntries> {
        let Some(p) = self.partitions.get(&load.group) else {
            return Some(StoredEntries::From {
                prev_term: None,
                entries: Vec::new(),
            });
        };
        match self
            .store
            .raft_entries(&p.tp, load.from.0, load.last.0, load.max_bytes)
        {
            Ok(stored) => Some(stored),
            Err(error) => {
                tracing::error!(tp = %p.tp, from = load.from.0, %error,
                    "cannot read Raft entries for a follower; trying again next tick");
                None
            }
        }
    }
}
