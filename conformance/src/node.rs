//! A Raft node with a model disk, for traces, simulation and benchmarks.
//!
//! The disk applies [`PersistWrite`]s in order when told to; a crash loses every
//! write not yet applied, exactly like a page cache that was never fsynced.
//! With [`Config::load_compacted`] the disk keeps compacted entries, as a
//! partition's segments do, and the node answers [`Action::LoadEntries`] from
//! it at once.

use std::collections::VecDeque;

use bytes::Bytes;
use proto_core::raft::{
    Action, Config, ConfigError, Entry, Event, HardState, LogId, LogIndex, Membership, Message,
    NodeId, Payload, PersistWrite, Raft, Refused, Restored, Snapshot, Term,
};

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The last durable snapshot.
    pub snapshot: Option<Snapshot>,
    /// Durable entries after the snapshot (and, when `keep_compacted`, the
    /// ones before it too).
    pub entries: Vec<Entry>,
    /// Whether a snapshot keeps the entries it covers (see
    /// [`Config::load_compacted`]).
    pub keep_compacted: bool,
    /// The last entry deleted from the front of the log (by retention, or
    /// by installing a snapshot), and the state machine up to it: the
    /// storage start a load before it is answered with.
    pub dropped: Option<(LogId, Bytes)>,
}

impl Disk {
    /// Applies one write, with the storage semantics [`PersistWrite`] documents.
    pub fn apply(&mut self, w: &PersistWrite) {
        if let Some(hs) = w.hard_state {
            self.hard_state = hs;
        }
        if let Some(s) = &w.snapshot {
            let last = s.meta.last;
            let keeps = self
                .entries
                .iter()
                .any(|e| e.index == last.index && e.term == last.term);
            if keeps {
                if !self.keep_compacted {
                    self.entries.retain(|e| e.index > last.index);
                }
            } else {
                self.entries.clear();
                self.dropped = Some((last, s.data.clone()));
            }
            self.snapshot = Some(s.clone());
        }
        if let Some(first) = w.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(w.entries.iter().cloned());
        }
    }

    /// Stored entries `from..=last`, up to `max_bytes` but at least one.
    pub fn load(&self, from: LogIndex, last: LogIndex, max_bytes: usize) -> Vec<Entry> {
        let mut bytes = 0;
        let mut out = Vec::new();
        let wanted = self
            .entries
            .iter()
            .skip_while(|e| e.index < from)
            .take_while(|e| e.index <= last);
        for e in wanted {
            bytes += e.size();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// The term of the stored entry at `index`, or of the last one deleted
    /// from the front.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        self.entries
            .iter()
            .find(|e| e.index == index)
            .map(|e| e.term)
            .or_else(|| {
                self.dropped
                    .as_ref()
                    .filter(|(start, _)| start.index == index)
                    .map(|(start, _)| start.term)
            })
    }

    /// Deletes the stored entries up to `upto` from the front of the log, as
    /// retention deletes old segments, keeping the state machine up to it.
    pub fn drop_front(&mut self, upto: LogIndex) {
        let Some(last) = self.entries.iter().take_while(|e| e.index <= upto).last() else {
            return;
        };
        let start = LogId {
            term: last.term,
            index: last.index,
        };
        let mut state = self
            .dropped
            .as_ref()
            .map_or_else(Vec::new, |(_, data)| decode_state(data));
        for e in self.entries.iter().take_while(|e| e.index <= upto) {
            if let Payload::Normal(data) = &e.payload {
                state.push(data.clone());
            }
        }
        self.entries.retain(|e| e.index > upto);
        self.dropped = Some((start, encode_state(&state)));
    }

    /// What a load from `from` is answered with: storage's start if it no
    /// longer holds `from` but holds later entries, else what it holds.
    fn answer(&self, load: &Load) -> Event {
        let first = self.entries.first().map(|e| e.index);
        if let Some((start, data)) = &self.dropped {
            if first.is_none_or(|first| load.from < first) && start.index >= load.from {
                return Event::LogStartLoaded {
                    to: load.to,
                    from: load.from,
                    start: *start,
                    data: data.clone(),
                };
            }
        }
        Event::EntriesLoaded {
            to: load.to,
            from: load.from,
            prev_term: self.term(load.from.prev()),
            entries: self.load(load.from, load.last, load.max_bytes),
        }
    }

    /// What a restart reads back: the entries after the snapshot.
    fn restored(&self, membership: Membership) -> Restored {
        let after = self
            .snapshot
            .as_ref()
            .map_or(LogIndex(0), |s| s.meta.last.index);
        Restored {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self
                .entries
                .iter()
                .filter(|e| e.index > after)
                .cloned()
                .collect(),
            membership,
        }
    }
}

/// An [`Action::LoadEntries`] the node has not answered yet.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// The follower the entries are for.
    pub to: NodeId,
    /// The first index to read.
    pub from: LogIndex,
    /// The last index to read.
    pub last: LogIndex,
    /// Soft limit on the bytes read.
    pub max_bytes: usize,
}

/// A node: the Raft group, its model disk, and its state machine (the applied
/// application data, in order).
pub struct Node {
    /// The Raft state machine.
    pub raft: Raft,
    /// The configuration the node restarts with.
    pub cfg: Config,
    /// Durable state.
    pub disk: Disk,
    /// Writes issued but not yet durable, oldest first.
    pub unpersisted: VecDeque<PersistWrite>,
    /// Messages waiting to be delivered.
    pub outbox: Vec<Message>,
    /// The state machine: application data applied so far.
    pub applied: Vec<Bytes>,
    /// Actions other than sends, writes and applies, for tests to inspect.
    pub notices: Vec<Action>,
    /// Every action, in order, when recording is on (traces render them).
    pub recorded: Option<Vec<Action>>,
    /// The membership a restart starts from when the disk holds no snapshot.
    pub initial_membership: Membership,
    /// Whether entry loads wait in `held_loads` instead of being answered at
    /// once (traces use it to answer a load after the leader moved on).
    pub hold_loads: bool,
    /// Loads asked for while `hold_loads` was on, oldest first.
    pub held_loads: Vec<Load>,
}

impl Node {
    /// A founding member of a group of `voters`.
    pub fn new(cfg: Config, restored: Restored) -> Result<Node, ConfigError> {
        let raft = Raft::new(cfg.clone(), restored.clone())?;
        Ok(Node {
            raft,
            disk: Disk {
                hard_state: restored.hard_state,
                snapshot: restored.snapshot,
                entries: restored.entries,
                keep_compacted: cfg.load_compacted,
                dropped: None,
            },
            cfg,
            unpersisted: VecDeque::new(),
            outbox: Vec::new(),
            applied: Vec::new(),
            notices: Vec::new(),
            recorded: None,
            initial_membership: restored.membership,
            hold_loads: false,
            held_loads: Vec::new(),
        })
    }

    /// Steps one event and sorts the resulting actions; answers the entry
    /// loads they ask for from the disk.
    pub fn step(&mut self, event: Event) -> Result<(), Refused> {
        let result = self.raft.step(event);
        let loads = self.collect();
        self.answer(loads);
        result
    }

    /// Answers `loads` from the disk, oldest first, and the loads the
    /// answers ask for; or, while `hold_loads` is on, keeps them for
    /// [`Node::answer_held_loads`].
    fn answer(&mut self, loads: Vec<Load>) {
        if self.hold_loads {
            self.held_loads.extend(loads);
            return;
        }
        let mut loads = VecDeque::from(loads);
        while let Some(load) = loads.pop_front() {
            // Loads are not requests; they are never refused.
            let _ = self.raft.step(self.disk.answer(&load));
            loads.extend(self.collect());
        }
    }

    /// Stops holding loads and answers the held ones, oldest first.
    pub fn answer_held_loads(&mut self) {
        self.hold_loads = false;
        let held = std::mem::take(&mut self.held_loads);
        self.answer(held);
    }

    /// Sorts the actions taken so far; returns the loads asked for.
    fn collect(&mut self) -> Vec<Load> {
        let mut loads = Vec::new();
        for action in self.raft.take_actions() {
            if let Some(rec) = &mut self.recorded {
                rec.push(action.clone());
            }
            match action {
                Action::Send(m) => self.outbox.push(m),
                Action::Persist(w) => self.unpersisted.push_back(w),
                Action::Apply(entries) => {
                    for e in entries {
                        if let Payload::Normal(data) = e.payload {
                            self.applied.push(data);
                        }
                    }
                }
                Action::ApplySnapshot(s) => self.applied = decode_state(&s.data),
                Action::LoadEntries {
                    to,
                    from,
                    last,
                    max_bytes,
                } => loads.push(Load {
                    to,
                    from,
                    last,
                    max_bytes,
                }),
                other => self.notices.push(other),
            }
        }
        loads
    }

    /// Makes the oldest `n` pending writes durable and tells Raft.
    pub fn persist(&mut self, n: usize) {
        let mut last = None;
        for _ in 0..n {
            let Some(w) = self.unpersisted.pop_front() else {
                break;
            };
            self.disk.apply(&w);
            last = Some(w.seq);
        }
        if let Some(seq) = last {
            // A refused Persisted is impossible: it is not a request.
            let _ = self.step(Event::Persisted { seq });
        }
    }

    /// Makes every pending write durable.
    pub fn persist_all(&mut self) {
        while !self.unpersisted.is_empty() {
            self.persist(self.unpersisted.len());
        }
    }

    /// Loses everything not durable and restarts from the disk.
    pub fn crash_and_restart(&mut self) {
        self.unpersisted.clear();
        self.outbox.clear();
        self.notices.clear();
        let restored = self.disk.restored(self.initial_membership.clone());
        self.applied = self
            .disk
            .snapshot
            .as_ref()
            .map_or_else(Vec::new, |s| decode_state(&s.data));
        // The configuration was valid when the node first started.
        if let Ok(raft) = Raft::new(self.cfg.clone(), restored) {
            self.raft = raft;
        }
    }

    /// Snapshots the state machine at the applied index and compacts the log.
    pub fn compact(&mut self) -> Result<(), Refused> {
        let index = self.raft.log().applied();
        let data = encode_state(&self.applied);
        self.step(Event::Compact { index, data })
    }
}

/// Serializes the state machine (the applied data) for a snapshot.
pub fn encode_state(applied: &[Bytes]) -> Bytes {
    let mut out = Vec::new();
    for item in applied {
        out.extend_from_slice(&(item.len() as u32).to_le_bytes());
        out.extend_from_slice(item);
    }
    Bytes::from(out)
}

/// The inverse of [`encode_state`]; stops at the first malformed record.
pub fn decode_state(data: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= data.len() {
        let mut len = [0u8; 4];
        len.copy_from_slice(&data[pos..pos + 4]);
        let len = u32::from_le_bytes(len) as usize;
        pos += 4;
        if pos + len > data.len() {
            break;
        }
        out.push(data.slice(pos..pos + len));
        pos += len;
    }
    out
}
