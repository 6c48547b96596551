//! A Raft node with a model disk, for traces, simulation and benchmarks.
//!
//! The disk applies [`PersistWrite`]s in order when told to; a crash loses every
//! write not yet applied, exactly like a page cache that was never fsynced.

use std::collections::VecDeque;

use bytes::Bytes;
use proto_core::raft::{
    Action, Config, ConfigError, Entry, Event, HardState, Membership, Message, Payload,
    PersistWrite, Raft, Refused, Restored, Snapshot,
};

/// What survives a crash.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The last durable snapshot.
    pub snapshot: Option<Snapshot>,
    /// Durable entries after the snapshot.
    pub entries: Vec<Entry>,
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
                self.entries.retain(|e| e.index > last.index);
            } else {
                self.entries.clear();
            }
            self.snapshot = Some(s.clone());
        }
        if let Some(first) = w.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(w.entries.iter().cloned());
        }
    }
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
}

impl Node {
    /// A founding member of a group of `voters`.
    pub fn new(cfg: Config, restored: Restored) -> Result<Node, ConfigError> {
        let raft = Raft::new(cfg.clone(), restored.clone())?;
        Ok(Node {
            raft,
            cfg,
            disk: Disk {
                hard_state: restored.hard_state,
                snapshot: restored.snapshot,
                entries: restored.entries,
            },
            unpersisted: VecDeque::new(),
            outbox: Vec::new(),
            applied: Vec::new(),
            notices: Vec::new(),
            recorded: None,
            initial_membership: restored.membership,
        })
    }

    /// Steps one event and sorts the resulting actions.
    pub fn step(&mut self, event: Event) -> Result<(), Refused> {
        let result = self.raft.step(event);
        self.collect();
        result
    }

    fn collect(&mut self) {
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
                other => self.notices.push(other),
            }
        }
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
        let restored = Restored {
            hard_state: self.disk.hard_state,
            snapshot: self.disk.snapshot.clone(),
            entries: self.disk.entries.clone(),
            membership: self.initial_membership.clone(),
        };
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
