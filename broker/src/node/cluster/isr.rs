//! The ISR of the partitions this node leads, and leadership reports.
//!
//! Each led partition runs proto-core's [`IsrTracker`], fed from its Raft
//! group every [`ISR_POLL_TICKS`] ticks: each follower's matched index, the
//! leader's log end and the commit index (a quiesced group is fully
//! replicated, so its frozen progress keeps its followers caught up). A
//! partition where none of that moved and nothing is pending is skipped
//! ([`IsrTracker::is_settled`]): with 10,000 idle partitions the polls were
//! most of a node's idle CPU. A new
//! leader reports itself, and the tracker's ISR changes go to the controller
//! as AlterPartition (KIP-497); the recorded answer comes back as the
//! tracker's `IsrCommitted`. The image's leader and ISR are what nodes that do
//! not host a partition tell clients.
//!
//! `min.insync.replicas` refuses an `acks=all` produce with
//! NOT_ENOUGH_REPLICAS while the recorded ISR is smaller. Acknowledgement
//! itself stays Raft's: a write is acknowledged once a majority of replicas
//! holds it and it is committed, as Redpanda does, not once every ISR member
//! holds it as Kafka does.

use std::collections::BTreeSet;

use proto_core::isr::{self, IsrConfig, IsrEpoch, IsrTracker, ProposalId};
use proto_core::metadata::{BrokerId, ControllerEvent, LeaderEpoch, TopicId};
use proto_core::multiraft::GroupId;
use proto_core::raft::NodeId;

use super::super::Node;
use super::wire::Control;
use super::Waiter;

/// Ticks between ISR polls of the led partitions.
const ISR_POLL_TICKS: u64 = 5;
/// How long an unanswered AlterPartition waits before it is sent again.
const ALTER_RETRY_MS: u64 = 5_000;
/// Ticks between preferred-leader checks (Kafka's
/// `leader.imbalance.check.interval.seconds` is 300; a local cluster whose
/// node came back should not stay lopsided for minutes).
const PREFERRED_LEADER_TICKS: u64 = 100;
/// Leadership transfers one check may start: a returning node takes its
/// partitions back gradually, not all in one burst of elections.
const TRANSFERS_PER_CHECK: usize = 64;
/// Ticks between checks while the last one found more to hand back than it
/// could: after thousands of partitions were created at once on a busy
/// cluster, most may be led by whichever replica's timer fired first, and
/// 64 per 10 s would leave a node without its share for minutes.
const BACKLOG_CHECK_TICKS: u64 = 10;

/// A led partition's ISR bookkeeping.
#[derive(Debug)]
pub(in crate::node) struct PartitionIsr {
    tracker: IsrTracker,
    /// The epoch of the ISR last recorded, counted here.
    epoch: u64,
    /// The leader epoch the controller has recorded this node's leadership at.
    reported: Option<i32>,
    /// An AlterPartition in flight: when it was sent, and the tracker
    /// proposal it carries (none for a bare leadership report).
    in_flight: Option<(u64, Option<ProposalId>)>,
    /// ISR changes the tracker proposed and the controller has not answered.
    proposed: Option<(ProposalId, BTreeSet<NodeId>)>,
}

/// Whether polling a led partition could change nothing: every follower
/// holds the whole log, which is committed, the tracker has seen exactly
/// that with every replica in the ISR, and the controller has recorded this
/// leadership with nothing in flight. An idle cluster's partitions are all
/// settled, so the poll costs a few comparisons each, not a tracker step.
fn is_settled(
    leader_epoch: Option<i32>,
    state: Option<&PartitionIsr>,
    raft: &proto_core::raft::Raft,
) -> bool {
    let log = raft.log();
    let end = log.last_index();
    let me = raft.id();
    state.is_some_and(|s| {
        s.proposed.is_none()
            && s.in_flight.is_none()
            && s.reported.is_some()
            && s.reported == leader_epoch
            && s.tracker.is_settled(end, log.commit())
    }) && log.commit() == end
        && raft
            .progress()
            .iter()
            .all(|(id, p)| *id == me || p.matched == end)
}

impl Node {
    /// This node now leads `group`: start its ISR tracker.
    pub(in crate::node) fn isr_became_leader(&mut self, group: GroupId) {
        let now = self.now_ms;
        let Some(raft) = self.raft.group(group) else {
            return;
        };
        let replicas: BTreeSet<NodeId> = raft.membership().voters.iter().copied().collect();
        let log_end = raft.log().last_index();
        let Some(p) = self.partitions.get(&group) else {
            return;
        };
        let initial: BTreeSet<NodeId> = self
            .image_partition(&p.tp)
            .map(|i| i.isr.iter().map(|b| NodeId(b.0 as u64)).collect())
            .unwrap_or_else(|| replicas.clone());
        let mut tracker = IsrTracker::new(IsrConfig::default(), self.me());
        let started = tracker.step(isr::Event::BecameLeader {
            replicas,
            initial_isr: initial,
            isr_epoch: IsrEpoch(0),
            log_end,
            now_ms: now,
        });
        if let Err(e) = started {
            tracing::error!(%group, error = %e, "cannot track the ISR");
            return;
        }
        let mut state = PartitionIsr {
            tracker,
            epoch: 0,
            reported: None,
            in_flight: None,
            proposed: None,
        };
        self.isr_shrinks += state.take_proposals(group);
        if let Some(p) = self.partitions.get_mut(&group) {
            p.isr = Some(state);
        }
        self.report_partition(group);
    }

    /// The image's record of the partition `tp`.
    fn image_partition(
        &self,
        tp: &crate::store::TopicPartition,
    ) -> Option<&proto_core::metadata::PartitionImage> {
        let id = self.table.topics.get(&tp.topic)?.id;
        self.cluster
            .as_ref()?
            .image()
            .partition(TopicId(id), tp.partition)
    }

    /// The ISR this node reports for `group`, which it leads.
    pub(in crate::node) fn led_isr(&self, group: GroupId) -> Option<BTreeSet<NodeId>> {
        let isr = self.partitions.get(&group)?.isr.as_ref()?;
        Some(isr.tracker.isr())
    }

    /// Feeds every led partition's tracker and sends what changed.
    pub(in crate::node) fn isr_tick(&mut self) {
        if !self.raft.ticks().is_multiple_of(ISR_POLL_TICKS) {
            return;
        }
        let now = self.now_ms;
        let led: Vec<GroupId> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.isr.is_some())
            .map(|(g, _)| *g)
            .collect();
        for group in led {
            let Some(raft) = self.raft.group(group) else {
                continue;
            };
            if self
                .partitions
                .get(&group)
                .is_some_and(|p| is_settled(p.leader_epoch, p.isr.as_ref(), raft))
            {
                continue;
            }
            let me = raft.id();
            let mut events: Vec<isr::Event> = raft
                .progress()
                .iter()
                .filter(|(id, _)| **id != me)
                .map(|(id, p)| isr::Event::FollowerProgress {
                    replica: *id,
                    match_index: p.matched,
                    now_ms: now,
                })
                .collect();
            events.push(isr::Event::LeaderLogEnd {
                log_end: raft.log().last_index(),
                now_ms: now,
            });
            events.push(isr::Event::HighWatermark {
                hw: raft.log().commit(),
            });
            events.push(isr::Event::Tick { now_ms: now });
            let Some(state) = self.partitions.get_mut(&group).and_then(|p| p.isr.as_mut()) else {
                continue;
            };
            for e in events {
                let _ = state.tracker.step(e);
            }
            let shrinks = state.take_proposals(group);
            self.isr_shrinks += shrinks;
            self.report_partition(group);
        }
    }

    /// Hands led partitions back to their preferred leader (the first
    /// replica, where placement spread leadership) once it is in the ISR and
    /// caught up: after a failover the survivors would otherwise keep every
    /// partition the returning node used to lead (Kafka's
    /// `auto.leader.rebalance.enable`).
    pub(in crate::node) fn preferred_leader_tick(&mut self) {
        let backlog = self.cluster.as_ref().is_some_and(|c| c.transfer_backlog);
        let every = if backlog {
            BACKLOG_CHECK_TICKS
        } else {
            PREFERRED_LEADER_TICKS
        };
        if !self.raft.ticks().is_multiple_of(every) {
            return;
        }
        let me = self.me();
        let mut transfers = Vec::new();
        for (group, p) in &self.partitions {
            if transfers.len() >= TRANSFERS_PER_CHECK {
                break;
            }
            let Some(state) = &p.isr else {
                continue;
            };
            let Some(preferred) = self
                .image_partition(&p.tp)
                .and_then(|i| i.replicas.first())
                .map(|b| NodeId(b.0 as u64))
            else {
                continue;
            };
            if preferred != me
                && state.tracker.isr().contains(&preferred)
                && state.tracker.is_caught_up(preferred)
            {
                transfers.push((*group, preferred));
            }
        }
        if let Some(c) = self.cluster.as_mut() {
            c.transfer_backlog = transfers.len() >= TRANSFERS_PER_CHECK;
        }
        for (group, to) in transfers {
            tracing::debug!(%group, %to, "handing leadership back to the preferred replica");
            self.raft_step(proto_core::multiraft::Event::Group {
                group,
                event: proto_core::raft::Event::TransferLeader { to },
            });
        }
    }

    /// Sends the AlterPartition `group` needs, if any: its leadership
    /// unreported, or a proposed ISR, with nothing in flight.
    fn report_partition(&mut self, group: GroupId) {
        let now = self.now_ms;
        let me = self.cfg.node_id;
        let Some(p) = self.partitions.get(&group) else {
            return;
        };
        let Some(epoch) = p.leader_epoch else {
            return;
        };
        let Some(topic_id) = self.table.topics.get(&p.tp.topic).map(|t| t.id) else {
            return;
        };
        let partition = p.tp.partition;
        let Some(state) = p.isr.as_ref() else {
            return;
        };
        if let Some((since, _)) = state.in_flight {
            if now < since + ALTER_RETRY_MS {
                return;
            }
        }
        let (proposal, isr) = match &state.proposed {
            Some((proposal, isr)) => (Some(*proposal), isr.clone()),
            None if state.reported != Some(epoch) => (None, state.tracker.isr()),
            None => return,
        };
        let message = Control::AlterPartition {
            topic_id,
            partition,
            leader: me,
            leader_epoch: epoch,
            isr: isr.iter().map(|n| n.0 as i32).collect(),
        };
        if let Some(state) = self.partitions.get_mut(&group).and_then(|p| p.isr.as_mut()) {
            state.in_flight = Some((now, proposal));
        }
        match self.cluster.as_ref().and_then(|c| c.controller_id()) {
            Some(c) if c == self.me() => self.control(c, message),
            Some(c) => self.send_control(c, &message),
            None => {}
        }
    }

    /// The controller's AlterPartition from `from`: step it, and route the
    /// answer back.
    pub(super) fn alter_partition_request(&mut self, from: NodeId, message: Control) {
        let Control::AlterPartition {
            topic_id,
            partition,
            leader,
            leader_epoch,
            isr,
        } = message
        else {
            return;
        };
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.controller.is_none() {
            return;
        }
        let request_id = cluster.request_id();
        cluster.waiting.insert(
            request_id,
            Waiter::AlterPartition {
                broker: from,
                topic_id,
                partition,
            },
        );
        self.controller_step(ControllerEvent::AlterPartition {
            request_id,
            topic_id: TopicId(topic_id),
            partition,
            leader: BrokerId(leader),
            leader_epoch: LeaderEpoch(leader_epoch),
            isr: isr.into_iter().map(BrokerId).collect(),
        });
    }

    /// The controller recorded (or refused) this node's AlterPartition.
    pub(super) fn partition_state(
        &mut self,
        topic_id: u128,
        partition: i32,
        recorded: Option<(i32, Vec<i32>)>,
    ) {
        let Some(name) = self.table.name_of(topic_id) else {
            return;
        };
        let tp = crate::store::TopicPartition {
            topic: name,
            partition,
        };
        let Some(&group) = self.by_name.get(&tp) else {
            return;
        };
        let Some(p) = self.partitions.get_mut(&group) else {
            return;
        };
        let epoch = p.leader_epoch;
        let Some(state) = p.isr.as_mut() else {
            return;
        };
        let proposal = state.in_flight.take().and_then(|(_, proposal)| proposal);
        match recorded {
            Some((leader_epoch, isr)) if Some(leader_epoch) == epoch => {
                state.reported = Some(leader_epoch);
                state.epoch += 1;
                let isr: BTreeSet<NodeId> = isr.into_iter().map(|b| NodeId(b as u64)).collect();
                if state.proposed.as_ref().is_some_and(|(_, p)| *p == isr) {
                    state.proposed = None;
                }
                let _ = state.tracker.step(isr::Event::IsrCommitted {
                    isr,
                    epoch: IsrEpoch(state.epoch),
                });
            }
            _ => {
                if let Some(proposal) = proposal {
                    state.proposed = None;
                    let _ = state.tracker.step(isr::Event::IsrRejected { proposal });
                }
            }
        }
        let shrinks = state.take_proposals(group);
        self.isr_shrinks += shrinks;
    }
}

impl PartitionIsr {
    /// Takes the tracker's proposals (the newest wins: one is in flight at a
    /// time) and counts the replicas they drop.
    fn take_proposals(&mut self, group: GroupId) -> u64 {
        let mut shrinks = 0;
        for action in self.tracker.take_actions() {
            let isr::Action::IsrChanged {
                proposal,
                isr,
                changes,
                ..
            } = action;
            shrinks += changes
                .iter()
                .filter(|c| matches!(c, isr::IsrChange::Shrink { .. }))
                .count() as u64;
            tracing::info!(%group, ?changes, ?isr, "proposing an ISR change");
            self.proposed = Some((proposal, isr));
            self.in_flight = None;
        }
        shrinks
    }
}
