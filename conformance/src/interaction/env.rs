//! The interaction environment: nodes with model disks, one network queue, cut
//! links, and the transcript being written.
//!
//! Every action is printed once, where it happens: a command prints the actions
//! it caused; inside `deliver`, `persist` and `stabilize` each input (a message,
//! a completed write) is printed at one indent and what it caused one indent
//! deeper. Sends go to the network queue, writes to the node's disk queue; both
//! wait there until a command delivers or persists them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proto_core::raft::{Action, Event, LogId, LogIndex, Message, NodeId, Refused, Role, Term};

use crate::datadriven::CommandError;
use crate::node::Node;

/// Stabilize gives up after this many rounds: a livelock is a finding, not a hang.
const MAX_STABILIZE_ROUNDS: usize = 1000;

/// The cluster a trace drives.
pub struct Env {
    /// The nodes, by id.
    pub nodes: BTreeMap<NodeId, Node>,
    /// Messages sent and not yet delivered or dropped, oldest first.
    pub network: VecDeque<Message>,
    /// Groups of a partition: a link is cut when both ends are listed in
    /// different groups.
    pub partition: Vec<BTreeSet<NodeId>>,
    /// The transcript of the current command.
    pub out: String,
    /// The leader seen for each term, to check election safety.
    leaders: BTreeMap<Term, NodeId>,
    /// The first entry seen committed at each index, to check that commits agree.
    committed: BTreeMap<LogIndex, LogId>,
    /// Invariant violations already reported, so each prints once.
    reported: BTreeSet<String>,
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

impl Env {
    /// An empty cluster.
    pub fn new() -> Env {
        Env {
            nodes: BTreeMap::new(),
            network: VecDeque::new(),
            partition: Vec::new(),
            out: String::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            reported: BTreeSet::new(),
        }
    }

    /// Appends one line at `indent` levels (two spaces each).
    pub fn line(&mut self, indent: usize, text: impl AsRef<str>) {
        for _ in 0..indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    /// The node `id`, or an error naming the command's line.
    pub fn node(&self, line: usize, id: NodeId) -> Result<&Node, CommandError> {
        self.nodes
            .get(&id)
            .ok_or_else(|| CommandError::new(line, format!("no node {id}")))
    }

    /// Checks that node `id` exists.
    pub fn check_node(&self, line: usize, id: NodeId) -> Result<(), CommandError> {
        self.node(line, id).map(|_| ())
    }

    /// Steps `id` with `event` and prints what it did at `indent`; a refusal
    /// prints `error: <reason>`.
    pub fn step(&mut self, id: NodeId, event: Event, indent: usize) -> Result<(), Refused> {
        let result = match self.nodes.get_mut(&id) {
            Some(node) => node.step(event),
            None => return Ok(()),
        };
        if let Err(e) = &result {
            self.line(indent, format!("error: {e}"));
        }
        self.flush(id, indent);
        result
    }

    /// Prints the actions `id` recorded since the last flush and moves its
    /// sends into the network.
    pub fn flush(&mut self, id: NodeId, indent: usize) {
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        let actions = node
            .recorded
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        self.network.extend(node.outbox.drain(..));
        node.notices.clear();
        for a in &actions {
            if let Action::RoleChanged {
                role: Role::Leader,
                term,
                ..
            } = a
            {
                self.note_leader(*term, id);
            }
            self.line(indent, a.to_string());
        }
    }

    /// Makes the oldest `n` pending writes of `id` durable (all if `None`) and
    /// prints the completion with what it released; false if nothing was pending.
    pub fn persist(&mut self, id: NodeId, n: Option<usize>, indent: usize) -> bool {
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        let pending = node.unpersisted.len();
        let n = n.unwrap_or(pending).min(pending);
        if n == 0 {
            return false;
        }
        let first = node.unpersisted.front().map_or(0, |w| w.seq);
        let last = node.unpersisted.get(n - 1).map_or(0, |w| w.seq);
        node.persist(n);
        if first == last {
            self.line(indent, format!("Persisted seq:{last}"));
        } else {
            self.line(indent, format!("Persisted seq:{first}..={last}"));
        }
        self.flush(id, indent + 1);
        true
    }

    /// Whether the link between `a` and `b` is cut by the partition.
    pub fn cut(&self, a: NodeId, b: NodeId) -> bool {
        let group = |n: NodeId| self.partition.iter().position(|g| g.contains(&n));
        matches!((group(a), group(b)), (Some(x), Some(y)) if x != y)
    }

    /// Delivers one message (or drops it, with the reason) and prints it with
    /// what the receiver did in response.
    pub fn deliver(&mut self, m: Message, indent: usize) {
        let why = if self.cut(m.from, m.to) {
            Some("partitioned")
        } else if !self.nodes.contains_key(&m.to) {
            Some("no such node")
        } else {
            None
        };
        if let Some(why) = why {
            self.line(indent, format!("{m} [dropped: {why}]"));
            return;
        }
        self.line(indent, m.to_string());
        let to = m.to;
        // Messages are never refused; a refusal would still print as an error.
        let _ = self.step(to, Event::Message(m), indent + 1);
    }

    /// Persists and delivers until nothing moves, among `ids` (all nodes if empty),
    /// printing a section per node and phase like etcd's stabilize.
    pub fn stabilize(&mut self, ids: &BTreeSet<NodeId>) {
        let ids: Vec<NodeId> = if ids.is_empty() {
            self.nodes.keys().copied().collect()
        } else {
            ids.iter().copied().collect()
        };
        for _ in 0..MAX_STABILIZE_ROUNDS {
            let mut busy = false;
            for &id in &ids {
                if self
                    .nodes
                    .get(&id)
                    .is_some_and(|n| !n.unpersisted.is_empty())
                {
                    busy = true;
                    self.line(0, format!("> {id} handling actions"));
                    self.persist(id, None, 1);
                }
            }
            // Only what was in flight when the round began: answers wait for
            // the next round, as in etcd.
            let in_flight = self.network.len();
            let mut batch: BTreeMap<NodeId, Vec<Message>> = BTreeMap::new();
            let mut keep = VecDeque::new();
            for (i, m) in std::mem::take(&mut self.network).into_iter().enumerate() {
                if i < in_flight && ids.contains(&m.to) {
                    batch.entry(m.to).or_default().push(m);
                } else {
                    keep.push_back(m);
                }
            }
            self.network = keep;
            for &id in &ids {
                let Some(msgs) = batch.remove(&id) else {
                    continue;
                };
                busy = true;
                self.line(0, format!("> {id} receiving messages"));
                for m in msgs {
                    self.deliver(m, 1);
                }
            }
            if !busy {
                return;
            }
        }
        self.line(
            0,
            format!("error: no fixed point after {MAX_STABILIZE_ROUNDS} rounds"),
        );
    }

    fn note_leader(&mut self, term: Term, id: NodeId) {
        match self.leaders.get(&term) {
            Some(&other) if other != id => {
                self.violation(format!("two leaders in term {term}: {other} and {id}"));
            }
            _ => {
                self.leaders.insert(term, id);
            }
        }
    }

    fn violation(&mut self, what: String) {
        if self.reported.insert(what.clone()) {
            self.line(0, format!("!! INVARIANT VIOLATED: {what}"));
        }
    }

    /// Checks safety after a command: committed entries agree on every node and
    /// state machines are prefixes of one another. Violations print loudly.
    pub fn check_invariants(&mut self) {
        let mut found = Vec::new();
        for (&id, node) in &self.nodes {
            let log = node.raft.log();
            let mut index = log.first_index();
            while index <= log.commit() {
                if let Some(e) = log.entry(index) {
                    match self.committed.get(&index) {
                        Some(&seen) if seen != e.id() => found.push(format!(
                            "node {id} committed {} where {seen} was committed",
                            e.id()
                        )),
                        Some(_) => {}
                        None => {
                            self.committed.insert(index, e.id());
                        }
                    }
                }
                index = index.next();
            }
        }
        let longest = self
            .nodes
            .values()
            .max_by_key(|n| n.applied.len())
            .map(|n| n.applied.clone())
            .unwrap_or_default();
        for (&id, node) in &self.nodes {
            if !longest.starts_with(&node.applied) {
                found.push(format!("node {id} applied a different sequence"));
            }
        }
        for f in found {
            self.violation(f);
        }
    }

    /// The transcript of a finished command: what it printed, or `ok`.
    pub fn take_output(&mut self) -> String {
        let text = std::mem::take(&mut self.out);
        if text.is_empty() {
            "ok\n".to_string()
        } else {
            text
        }
    }
}
