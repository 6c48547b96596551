//! What the nemesis does to the cluster: each op of the schedule applied when
//! its tick comes, and the crashes, restarts and healing it causes.

use std::collections::BTreeSet;

use proto_core::raft::{ConfChange, Event, LogIndex, NodeId, Term};

use super::Sim;
use crate::node::encode_state;
use crate::sim::checker::Violation;
use crate::sim::nemesis::{Direction, NemesisOp, Scheduled, Side};
use crate::sim::network::links;
use crate::sim::params::TICK;

/// An armed [`NemesisOp::CrashNewLeader`] expires after this many election
/// timeouts without a new leader accepting a proposal.
const ARMED_ELECTIONS: u64 = 4;

/// An armed [`NemesisOp::CrashNewLeader`].
#[derive(Clone, Copy)]
pub(super) struct ArmedCrash {
    /// Downtime of the crash.
    ticks: u64,
    /// The highest term when it was armed: a leader of a later term is new.
    above: Term,
    /// The tick it expires.
    until: u64,
}

impl Sim<'_> {
    /// Applies the ops of the schedule due at `tick`.
    pub(super) fn nemesis(&mut self, tick: u64) -> Result<(), Violation> {
        let plan = self.plan;
        while let Some(s) = plan.schedule.get(self.next_op) {
            if s.at > tick {
                break;
            }
            self.next_op += 1;
            if s.at == tick {
                self.apply(s)?;
            }
        }
        Ok(())
    }

    fn apply(&mut self, s: &Scheduled) -> Result<(), Violation> {
        self.note(|| format!("nemesis: {}", s.op));
        let ticks_to_time = |t: u64| t * TICK;
        match &s.op {
            NemesisOp::Crash { target, ticks } => {
                if let Some(id) = self.resolve(*target) {
                    self.crash(id, *ticks, false);
                }
            }
            NemesisOp::Pause { target, ticks } => {
                if let Some(id) = self.resolve(*target) {
                    let until = self.now + ticks_to_time(*ticks);
                    if let Some(s) = self.servers.get_mut(&id).filter(|s| s.up) {
                        s.paused_until = s.paused_until.max(until);
                        self.stats.pauses += 1;
                        self.note(|| format!("pause {id}"));
                    }
                }
            }
            NemesisOp::Partition { side, dir, ticks } => {
                let side: BTreeSet<NodeId> = match side {
                    Side::Nodes(set) => set.clone(),
                    Side::Leader => self.leader().into_iter().collect(),
                };
                let (out, inbound) = match dir {
                    Direction::Both => (true, true),
                    Direction::Out => (true, false),
                    Direction::In => (false, true),
                };
                let cut = links(&side, self.plan.params.all_ids(), out, inbound);
                if !cut.is_empty() {
                    self.stats.partitions += 1;
                    self.net.cut(cut, self.tick + ticks);
                    let blocked = self.net.blocked().len();
                    self.note(|| format!("network: {blocked} links cut"));
                }
            }
            NemesisOp::TransferLeader { pick } => {
                let Some(leader) = self.leader() else {
                    return Ok(());
                };
                let others: Vec<NodeId> = self.membership(leader, |m| {
                    m.voters.iter().copied().filter(|&v| v != leader).collect()
                });
                if let Some(&to) = others.get(choose(*pick, others.len())) {
                    self.stats.transfers += 1;
                    let _ = self.step(leader, Event::TransferLeader { to })?;
                }
            }
            NemesisOp::TransferTo { node } => {
                let Some(leader) = self.leader() else {
                    return Ok(());
                };
                let voter = self.membership(leader, |m| m.voters.contains(node));
                if voter && *node != leader {
                    self.stats.transfers += 1;
                    let _ = self.step(leader, Event::TransferLeader { to: *node })?;
                }
            }
            NemesisOp::AddLearner => {
                let id = self.next_spare;
                let p = &self.plan.params;
                if id.0 > p.nodes + p.spares {
                    return Ok(());
                }
                if self.propose_change(ConfChange::AddLearner(id))? {
                    self.next_spare = NodeId(id.0 + 1);
                    self.start_server(id);
                    self.note(|| format!("start {id}"));
                }
            }
            NemesisOp::Promote { pick } => {
                let Some(leader) = self.leader() else {
                    return Ok(());
                };
                let learners: Vec<NodeId> =
                    self.membership(leader, |m| m.learners.iter().copied().collect());
                if let Some(&n) = learners.get(choose(*pick, learners.len())) {
                    self.propose_change(ConfChange::PromoteLearner(n))?;
                }
            }
            NemesisOp::Remove { pick } => {
                let Some(leader) = self.leader() else {
                    return Ok(());
                };
                let (members, voters): (Vec<NodeId>, usize) =
                    self.membership(leader, |m| (m.members().collect(), m.voters.len()));
                if let Some(&n) = members.get(choose(*pick, members.len())) {
                    let is_voter = self.membership(leader, |m| m.voters.contains(&n));
                    if !is_voter || voters > 2 {
                        self.propose_change(ConfChange::RemoveNode(n))?;
                    }
                }
            }
            NemesisOp::Compact { target } => {
                let ids: Vec<NodeId> = match target {
                    None => self.servers.keys().copied().collect(),
                    Some(t) => self.resolve(*t).into_iter().collect(),
                };
                for id in ids {
                    self.compact(id)?;
                }
            }
            NemesisOp::Unreachable { node, peer } => {
                if self.servers.get(node).is_some_and(|s| s.up) {
                    let _ = self.step(*node, Event::Unreachable { peer: *peer })?;
                }
            }
            NemesisOp::Campaign { node } => {
                if self.servers.get(node).is_some_and(|s| s.up) {
                    let _ = self.step(*node, Event::Campaign)?;
                }
            }
            NemesisOp::SlowDisk { target, by, ticks } => {
                if let Some(id) = self.resolve(*target) {
                    let until = self.tick + ticks;
                    if let Some(s) = self.servers.get_mut(&id) {
                        s.slow_until = until;
                        s.slow_by = *by;
                        self.stats.slow_disks += 1;
                        self.note(|| format!("slow disk {id} until tick {until}"));
                    }
                }
            }
            NemesisOp::CrashNewLeader { ticks } => {
                let above = self.servers.values().map(|s| s.node.raft.term()).max();
                let election = u64::from(self.plan.params.election_ticks);
                self.armed_crash = Some(ArmedCrash {
                    ticks: *ticks,
                    above: above.unwrap_or_default(),
                    until: self.tick + ARMED_ELECTIONS * election,
                });
            }
        }
        Ok(())
    }

    /// Proposes a membership change to the leader; true if it was accepted.
    fn propose_change(&mut self, cc: ConfChange) -> Result<bool, Violation> {
        let Some(leader) = self.leader() else {
            return Ok(false);
        };
        let ok = self.step(leader, Event::ProposeConfChange(cc))?.is_ok();
        if ok {
            self.stats.conf_changes += 1;
        }
        Ok(ok)
    }

    fn compact(&mut self, id: NodeId) -> Result<(), Violation> {
        let Some(s) = self.servers.get_mut(&id).filter(|s| s.up) else {
            return Ok(());
        };
        if self.plan.params.retention {
            // Retention deletes the older half of what the durable snapshot
            // covers (the broker's never deletes past its durable marker).
            let first = s.node.disk.entries.first().map(|e| e.index.0);
            let covered = s.node.disk.snapshot.as_ref().map(|s| s.meta.last.index.0);
            if let (Some(first), Some(covered)) = (first, covered) {
                if covered >= first {
                    s.node
                        .disk
                        .drop_front(LogIndex(first + (covered - first) / 2));
                }
            }
        }
        let index = s.node.raft.log().applied();
        let data = encode_state(&s.node.applied);
        if self.step(id, Event::Compact { index, data })?.is_ok() {
            self.stats.compactions += 1;
        }
        Ok(())
    }

    /// Kills `id` until `ticks` from now: its writes not yet durable are lost,
    /// and with `power_loss` also its messages not yet delivered.
    fn crash(&mut self, id: NodeId, ticks: u64, power_loss: bool) {
        let until = self.tick + ticks.max(1);
        let Some(s) = self.servers.get_mut(&id).filter(|s| s.up) else {
            return;
        };
        s.up = false;
        s.down_until = until;
        s.incarnation += 1;
        if power_loss {
            s.sends_lost_below = s.incarnation;
        }
        s.campaign_on_restart = power_loss;
        s.disk_ready = 0;
        s.paused_until = 0;
        self.stats.crashes += 1;
        let how = if power_loss { "power loss" } else { "crash" };
        self.note(|| format!("{how} {id} until tick {until}"));
    }

    /// Fires an armed [`NemesisOp::CrashNewLeader`] if `leader`, which has
    /// just accepted a client proposal, took office after it was armed.
    pub(super) fn crash_new_leader(&mut self, leader: NodeId) {
        let Some(armed) = self.armed_crash else {
            return;
        };
        if self.tick >= armed.until {
            self.armed_crash = None;
            return;
        }
        let fresh = self
            .servers
            .get(&leader)
            .is_some_and(|s| s.node.raft.term() > armed.above);
        if fresh {
            self.armed_crash = None;
            self.crash(leader, armed.ticks, true);
        }
    }

    fn restart(&mut self, id: NodeId) -> Result<(), Violation> {
        let Some(s) = self.servers.get_mut(&id) else {
            return Ok(());
        };
        s.node.crash_and_restart();
        s.up = true;
        let campaign = std::mem::take(&mut s.campaign_on_restart);
        self.checker.restarted(id, &s.node);
        self.after_step(id, || "restart from disk".to_string())?;
        if campaign {
            let _ = self.step(id, Event::Campaign)?;
        }
        Ok(())
    }

    /// Restarts the crashed servers whose downtime is over.
    pub(super) fn restart_due(&mut self) -> Result<(), Violation> {
        let due: Vec<NodeId> = self
            .servers
            .iter()
            .filter(|(_, s)| !s.up && s.down_until <= self.tick)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.restart(id)?;
        }
        Ok(())
    }

    /// The end of the fault phase: every process runs, every link works, no
    /// message is lost; quiesced nodes are woken as a driver would on reconnect.
    pub(super) fn heal_all(&mut self) -> Result<(), Violation> {
        self.note(|| "heal: restart all, reconnect all, stop losses".to_string());
        self.net.heal_all();
        self.armed_crash = None;
        let ids: Vec<NodeId> = self.servers.keys().copied().collect();
        for &id in &ids {
            if let Some(s) = self.servers.get_mut(&id) {
                s.paused_until = 0;
                s.slow_until = 0;
                if !s.up {
                    s.down_until = 0;
                }
            }
        }
        self.restart_due()?;
        for id in ids {
            let _ = self.step(id, Event::Unquiesce)?;
        }
        Ok(())
    }
}

/// Index `pick` into a list of `len` candidates (`len` may be zero).
fn choose(pick: u64, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (pick % len as u64) as usize
    }
}
