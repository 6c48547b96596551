//! Many Raft groups on one node, as one pure state machine.
//!
//! A broker hosts one Raft group per partition replica, so thousands of groups
//! share a node. [`MultiRaft`] hosts them behind the same contract as a single
//! [`Raft`]: everything enters through [`MultiRaft::step`], everything leaves as
//! [`Action`]s drained with [`MultiRaft::take_actions`]; no IO, no clock, and
//! `BTreeMap` order wherever order reaches an action, so the same events always
//! give the same actions.
//!
//! What the node adds over its groups:
//!
//! - **Batching.** Group messages are gathered per destination node and leave
//!   at [`Event::Flush`] as one [`Action::Send`] per peer node, whatever the
//!   number of groups. The driver decides when to flush (after each poll round,
//!   say), trading a little latency for far fewer writes.
//! - **Coalesced heartbeats.** Group heartbeats and their answers travel in a
//!   compact form inside the batch ([`GroupHeartbeat`]), as CockroachDB and
//!   Redpanda's `heartbeat_manager` do.
//! - **Quiescence.** Groups run with [`Config::quiesce`]: an idle, fully
//!   replicated group stops ticking (TiKV's hibernate regions). The node keeps
//!   the set of awake groups and ticks only those, so 10,000 quiesced groups
//!   cost a node tick almost nothing.
//! - **Node liveness.** Quiesced followers no longer hear group heartbeats, so
//!   they cannot tell on their own that their leader died. Instead the node
//!   sends each peer node one liveness heartbeat (an empty [`Batch`]) per
//!   [`MultiConfig::heartbeat_ticks`], even when every group sleeps; any batch
//!   counts as one. When a peer has been silent for
//!   [`MultiConfig::liveness_timeout_ticks`], every quiesced group whose known
//!   leader is on that peer gets [`raft::Event::Unquiesce`]: it ticks again,
//!   its election timeout runs out, and it elects a new leader among the
//!   survivors. This is CockroachDB's node liveness plus TiKV's hibernate
//!   wake-up, cut down to what Raft needs: the cost at rest is one tiny
//!   message per node pair per interval instead of one per group. A failed
//!   leader is replaced after about the liveness timeout plus one election
//!   timeout. Leaders are not woken when a follower's node dies: they have
//!   nothing in flight, and the next proposal or read wakes them with the
//!   usual flow control and CheckQuorum. A node that restarts quickly enough
//!   to never look dead is still handled: its groups restart awake and their
//!   pre-votes wake the quiesced replicas.

mod io;
mod peers;
mod types;
pub mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use io::{Action, Event, MultiConfig, Refused};
pub use types::{Batch, GroupHeartbeat, GroupHeartbeatResponse, GroupId};

use crate::raft::{self, Config, ConfigError, NodeId, Payload, Raft, Restored};
use peers::Peers;

/// One hosted group and the peer nodes it replicates with.
struct Group {
    raft: Raft,
    /// The group's members other than this node, for peer bookkeeping.
    peers: Vec<NodeId>,
}

impl Group {
    fn member_peers(raft: &Raft) -> Vec<NodeId> {
        raft.membership()
            .members()
            .filter(|&n| n != raft.id())
            .collect()
    }
}

/// Every Raft group hosted on one node.
pub struct MultiRaft {
    cfg: MultiConfig,
    /// Node ticks since start: the clock for node liveness.
    ticks: u64,
    groups: BTreeMap<GroupId, Group>,
    /// Groups that are not quiesced: the only ones a node tick reaches.
    active: BTreeSet<GroupId>,
    peers: Peers,
    /// Outgoing batches gathered since the last flush, by destination.
    outbox: BTreeMap<NodeId, Batch>,
    actions: Vec<Action>,
    /// Reused buffers, so a step allocates nothing when nothing happens.
    group_actions: Vec<raft::Action>,
    tick_list: Vec<GroupId>,
}

impl MultiRaft {
    /// Starts a node that hosts no group yet.
    pub fn new(cfg: MultiConfig) -> Result<MultiRaft, ConfigError> {
        cfg.validate()?;
        Ok(MultiRaft {
            peers: Peers::new(cfg.heartbeat_ticks, cfg.liveness_timeout_ticks),
            cfg,
            ticks: 0,
            groups: BTreeMap::new(),
            active: BTreeSet::new(),
            outbox: BTreeMap::new(),
            actions: Vec::new(),
            group_actions: Vec::new(),
            tick_list: Vec::new(),
        })
    }

    /// Feeds one event. On `Err` nothing changed; otherwise the resulting actions
    /// wait in [`MultiRaft::take_actions`].
    pub fn step(&mut self, event: Event) -> Result<(), Refused> {
        match event {
            Event::Tick => self.tick(),
            Event::Receive { from, batch } => self.receive(from, batch),
            Event::Propose { group, data } => {
                return self.step_group(group, raft::Event::Propose(data))
            }
            Event::Persisted { group, seq } => {
                return self.step_group(group, raft::Event::Persisted { seq })
            }
            Event::CreateGroup {
                group,
                config,
                restored,
            } => return self.create_group(group, config, *restored),
            Event::RemoveGroup { group } => return self.remove_group(group),
            Event::Group { group, event } => return self.step_group(group, event),
            Event::PeerUnreachable { peer } => self.peer_unreachable(peer),
            Event::Flush => self.flush(),
        }
        Ok(())
    }

    /// Takes the actions produced so far, oldest first.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Moves the actions produced so far onto the end of `out`.
    pub fn drain_actions_into(&mut self, out: &mut Vec<Action>) {
        out.append(&mut self.actions);
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// Node ticks since start.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// One hosted group's state, for routing, metrics and tests.
    pub fn group(&self, group: GroupId) -> Option<&Raft> {
        self.groups.get(&group).map(|g| &g.raft)
    }

    /// Every hosted group, in id order.
    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &Raft)> + '_ {
        self.groups.iter().map(|(&id, g)| (id, &g.raft))
    }

    /// How many groups are hosted.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// How many groups are awake (not quiesced), i.e. reached by a node tick.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Whether `peer` is considered alive; `None` if no hosted group has it.
    pub fn peer_alive(&self, peer: NodeId) -> Option<bool> {
        self.peers.is_alive(peer)
    }

    /// Every peer node sharing a group with this one, with its liveness.
    pub fn peers(&self) -> impl Iterator<Item = (NodeId, bool)> + '_ {
        self.peers.iter()
    }

    fn tick(&mut self) {
        self.ticks += 1;
        let mut down = Vec::new();
        self.peers.tick(self.ticks, &mut down);
        for peer in down {
            tracing::info!(
                node = self.cfg.id.0,
                peer = peer.0,
                "peer node silent, waking the quiesced groups it leads"
            );
            self.actions
                .push(Action::PeerLiveness { peer, alive: false });
            self.wake_groups_led_by(peer);
        }
        let mut ids = std::mem::take(&mut self.tick_list);
        ids.extend(self.active.iter().copied());
        for id in ids.drain(..) {
            // Groups in the active set exist; a tick is never refused.
            let _ = self.step_group(id, raft::Event::Tick);
        }
        self.tick_list = ids;
    }

    /// Wakes every quiesced group that follows a leader on `peer`. Scans all
    /// groups: it runs only when a peer is first presumed down.
    fn wake_groups_led_by(&mut self, peer: NodeId) {
        let sleeping: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| g.raft.is_quiesced() && g.raft.leader() == Some(peer))
            .map(|(&id, _)| id)
            .collect();
        for id in sleeping {
            let _ = self.step_group(id, raft::Event::Unquiesce);
        }
    }

    fn receive(&mut self, from: NodeId, batch: Batch) {
        if batch.from != from || batch.to != self.cfg.id {
            tracing::warn!(
                node = self.cfg.id.0,
                peer = from.0,
                batch_from = batch.from.0,
                batch_to = batch.to.0,
                "dropping a misaddressed batch"
            );
            return;
        }
        if self.peers.heard(from, self.ticks) {
            self.actions.push(Action::PeerLiveness {
                peer: from,
                alive: true,
            });
        }
        for (group, msg) in batch.into_messages() {
            if msg.from != from {
                tracing::warn!(node = self.cfg.id.0, peer = from.0, %group, "dropping a message with a forged sender");
                continue;
            }
            if self.groups.contains_key(&group) {
                let _ = self.step_group(group, raft::Event::Message(msg));
            } else {
                tracing::debug!(node = self.cfg.id.0, peer = from.0, %group, "message for a group not hosted here");
            }
        }
    }

    fn peer_unreachable(&mut self, peer: NodeId) {
        let mut ids = std::mem::take(&mut self.tick_list);
        ids.extend(
            self.active
                .iter()
                .filter(|id| self.groups.get(id).is_some_and(|g| g.peers.contains(&peer))),
        );
        for id in ids.drain(..) {
            let _ = self.step_group(id, raft::Event::Unreachable { peer });
        }
        self.tick_list = ids;
        self.wake_groups_led_by(peer);
    }

    fn create_group(
        &mut self,
        id: GroupId,
        config: Config,
        restored: Restored,
    ) -> Result<(), Refused> {
        if self.groups.contains_key(&id) {
            return Err(Refused::GroupExists(id));
        }
        if config.id != self.cfg.id {
            return Err(Refused::WrongNode {
                group: id,
                configured: config.id,
            });
        }
        let raft = Raft::new(config, restored)
            .map_err(|error| Refused::InvalidConfig { group: id, error })?;
        let peers = Group::member_peers(&raft);
        for &p in &peers {
            self.peers.add(p, self.ticks);
        }
        self.groups.insert(id, Group { raft, peers });
        self.after_group_step(id);
        Ok(())
    }

    fn remove_group(&mut self, id: GroupId) -> Result<(), Refused> {
        let Some(group) = self.groups.remove(&id) else {
            return Err(Refused::UnknownGroup(id));
        };
        self.active.remove(&id);
        for p in group.peers {
            self.peers.remove(p);
        }
        Ok(())
    }

    fn step_group(&mut self, id: GroupId, event: raft::Event) -> Result<(), Refused> {
        let Some(group) = self.groups.get_mut(&id) else {
            return Err(Refused::UnknownGroup(id));
        };
        let result = group.raft.step(event);
        self.after_group_step(id);
        result.map_err(|reason| Refused::Group { group: id, reason })
    }

    /// Routes what a group just produced (messages to the outbox, the rest out
    /// tagged with the group), then refreshes its place in the active set and,
    /// if its membership may have changed, the peer bookkeeping.
    fn after_group_step(&mut self, id: GroupId) {
        let Some(group) = self.groups.get_mut(&id) else {
            return;
        };
        group.raft.drain_actions_into(&mut self.group_actions);
        let mut membership_changed = false;
        for action in self.group_actions.drain(..) {
            match action {
                raft::Action::Send(msg) => {
                    let to = msg.to;
                    self.outbox
                        .entry(to)
                        .or_insert_with(|| Batch::new(self.cfg.id, to))
                        .push(id, msg);
                }
                action => {
                    membership_changed |= match &action {
                        raft::Action::Apply(entries) => entries
                            .iter()
                            .any(|e| matches!(e.payload, Payload::ConfChange { .. })),
                        raft::Action::ApplySnapshot(_) => true,
                        _ => false,
                    };
                    self.actions.extend(Action::from_group(id, action));
                }
            }
        }
        if group.raft.is_quiesced() {
            self.active.remove(&id);
        } else if !self.active.contains(&id) {
            self.active.insert(id);
        }
        if membership_changed {
            let now = Group::member_peers(&group.raft);
            let before = std::mem::replace(&mut group.peers, now.clone());
            for p in now {
                self.peers.add(p, self.ticks);
            }
            for p in before {
                self.peers.remove(p);
            }
        }
    }

    fn flush(&mut self) {
        for to in self.peers.due() {
            self.outbox
                .entry(to)
                .or_insert_with(|| Batch::new(self.cfg.id, to));
        }
        for (to, batch) in std::mem::take(&mut self.outbox) {
            self.peers.sent(to);
            self.actions.push(Action::Send { to, batch });
        }
    }
}
