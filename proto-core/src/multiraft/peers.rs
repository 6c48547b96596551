//! Node liveness: which peer nodes this node shares groups with, when each was
//! last heard from, and when each is owed a liveness heartbeat.

use std::collections::BTreeMap;

use crate::raft::NodeId;

/// What this node knows of one peer node.
#[derive(Clone, Debug)]
struct Peer {
    /// How many hosted groups have the peer as a member; the peer is forgotten
    /// at zero.
    groups: usize,
    /// The node tick at which a batch from the peer last arrived.
    last_heard: u64,
    /// False once the peer was silent for the liveness timeout.
    alive: bool,
    /// A liveness heartbeat is owed to the peer at the next flush.
    heartbeat_due: bool,
}

/// Liveness bookkeeping for every peer node, in node order.
#[derive(Clone, Debug)]
pub(super) struct Peers {
    heartbeat_ticks: u32,
    timeout_ticks: u64,
    since_heartbeat: u32,
    peers: BTreeMap<NodeId, Peer>,
}

impl Peers {
    pub(super) fn new(heartbeat_ticks: u32, timeout_ticks: u32) -> Peers {
        Peers {
            heartbeat_ticks,
            timeout_ticks: u64::from(timeout_ticks),
            since_heartbeat: 0,
            peers: BTreeMap::new(),
        }
    }

    /// A hosted group has `peer` as a member. A new peer starts alive, as if
    /// heard from `now`: silence is only counted from when we start caring.
    pub(super) fn add(&mut self, peer: NodeId, now: u64) {
        self.peers
            .entry(peer)
            .or_insert(Peer {
                groups: 0,
                last_heard: now,
                alive: true,
                heartbeat_due: false,
            })
            .groups += 1;
    }

    /// A hosted group no longer has `peer` as a member.
    pub(super) fn remove(&mut self, peer: NodeId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.groups -= 1;
            if p.groups == 0 {
                self.peers.remove(&peer);
            }
        }
    }

    /// A batch from `peer` arrived at `now`; true if the peer was presumed down.
    pub(super) fn heard(&mut self, peer: NodeId, now: u64) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        p.last_heard = now;
        let revived = !p.alive;
        p.alive = true;
        revived
    }

    /// Advances to node tick `now`: owes every peer a heartbeat once per interval,
    /// and appends to `down` the peers that just reached the liveness timeout.
    pub(super) fn tick(&mut self, now: u64, down: &mut Vec<NodeId>) {
        self.since_heartbeat += 1;
        let heartbeat = self.since_heartbeat >= self.heartbeat_ticks;
        if heartbeat {
            self.since_heartbeat = 0;
        }
        for (&id, p) in &mut self.peers {
            p.heartbeat_due |= heartbeat;
            if p.alive && now.saturating_sub(p.last_heard) >= self.timeout_ticks {
                p.alive = false;
                down.push(id);
            }
        }
    }

    /// The peers owed a liveness heartbeat, in node order.
    pub(super) fn due(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.heartbeat_due)
            .map(|(&id, _)| id)
    }

    /// A batch is going to `peer`: it carries this interval's heartbeat.
    pub(super) fn sent(&mut self, peer: NodeId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.heartbeat_due = false;
        }
    }

    /// Whether `peer` is considered alive; `None` if no hosted group has it.
    pub(super) fn is_alive(&self, peer: NodeId) -> Option<bool> {
        self.peers.get(&peer).map(|p| p.alive)
    }

    /// Every tracked peer with its liveness, in node order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (NodeId, bool)> + '_ {
        self.peers.iter().map(|(&id, p)| (id, p.alive))
    }
}
