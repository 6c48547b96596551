//! Leader spreading: which partitions should hand leadership back to their
//! preferred leader now. Kafka's preferred-leader election
//! (`auto.leader.rebalance.enable`) and Redpanda's leader balancer both run
//! this periodically on the controller; a failover piles leaderships on the
//! survivors, and this undoes it once the preferred leaders are back.
//!
//! The goal is Kafka's: every partition led by its preferred leader, which
//! placement and rebalance spread evenly. The order is Redpanda's greedy
//! one: the hand-over that most narrows the gap between the giving and the
//! taking broker goes first, so a bounded call fixes the worst imbalance
//! first and the elections a call starts stay few.

use std::collections::BTreeMap;

use super::{Assignment, Cluster, TopicPartition};
use crate::metadata::BrokerId;

/// Hand `partition`'s leadership from `from` (its leader now) to `to` (its
/// preferred leader): a Raft leader transfer (TimeoutNow), which waits for
/// `to` to catch up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderTransfer {
    /// The partition.
    pub partition: TopicPartition,
    /// Its current leader.
    pub from: BrokerId,
    /// Its preferred leader.
    pub to: BrokerId,
}

/// At most `max` transfers to preferred leaders, biggest improvement first.
/// `leaders` holds each partition's current leader; a partition without one
/// (an election is running) or whose leader or preferred leader is not live
/// is left alone, as a transfer needs both.
pub fn leader_transfers(
    cluster: &Cluster,
    assignment: &Assignment,
    leaders: &BTreeMap<TopicPartition, BrokerId>,
    max: usize,
) -> Vec<LeaderTransfer> {
    let mut led: BTreeMap<BrokerId, i64> = cluster.brokers().map(|b| (b, 0)).collect();
    for leader in leaders.values() {
        if let Some(c) = led.get_mut(leader) {
            *c += 1;
        }
    }
    let mut candidates: Vec<LeaderTransfer> = assignment
        .iter()
        .filter_map(|(tp, replicas)| {
            let from = *leaders.get(tp)?;
            let to = *replicas.first()?;
            (from != to && cluster.contains(from) && cluster.contains(to)).then(|| LeaderTransfer {
                partition: tp.clone(),
                from,
                to,
            })
        })
        .collect();
    let mut chosen = Vec::new();
    while chosen.len() < max {
        let count = |b: &BrokerId| led.get(b).copied().unwrap_or(0);
        let gain = |t: &LeaderTransfer| count(&t.from) - count(&t.to);
        let Some(best) =
            (0..candidates.len()).max_by_key(|i| (gain(&candidates[*i]), std::cmp::Reverse(*i)))
        else {
            break;
        };
        let t = candidates.remove(best);
        *led.entry(t.from).or_default() -= 1;
        *led.entry(t.to).or_default() += 1;
        chosen.push(t);
    }
    chosen
}
