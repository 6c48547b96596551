//! Rebalancing after brokers join or leave: the target assignment, reached
//! with as few replica moves as the rules allow.
//!
//! Four passes over one working copy, each doing only what the rules need:
//!
//! 1. Replace every replica on a departed broker (or listed twice) in its
//!    slot, with the least loaded live broker the partition lacks, one of a
//!    new rack if the partition spans too few. A partition with more
//!    replicas than there are live brokers keeps what cannot be replaced.
//! 2. Repair rack spread: a partition spanning fewer than
//!    `min(replicas, racks)` racks (a rack appeared) moves a replica from a
//!    doubled rack to the least loaded broker of a rack it lacks.
//! 3. Even out replica counts ([`even_out`]): replacements placed in pass 1
//!    move again for free first, held replicas only when that is not
//!    enough; a joining broker receives its share.
//! 4. Spread preferred leaders by reordering lists ([`spread_leaders`]).
//!
//! A balanced assignment passes through unchanged, so rebalancing twice
//! moves nothing the second time.

use std::collections::BTreeSet;

use super::even::even_out;
use super::leaders::spread_leaders;
use super::load::Load;
use super::{Assignment, Cluster, TopicPartition};
use crate::metadata::BrokerId;

/// One partition's change of replica list. The first replica of `to` is the
/// new preferred leader; the driver adds and removes voters one at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassignment {
    /// The partition.
    pub partition: TopicPartition,
    /// Its replica list today.
    pub from: Vec<BrokerId>,
    /// Its target replica list.
    pub to: Vec<BrokerId>,
}

impl Reassignment {
    /// Brokers that gain a replica: each one copies the partition's log.
    pub fn added(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.to.iter().copied().filter(|b| !self.from.contains(b))
    }

    /// Brokers that lose their replica.
    pub fn removed(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.from.iter().copied().filter(|b| !self.to.contains(b))
    }

    /// The preferred leader changes (by a move or by reordering).
    pub fn leader_changed(&self) -> bool {
        self.from.first() != self.to.first()
    }
}

/// Replica moves made by each pass, counted as they happen: a replica moved
/// twice (replaced, then evened) counts twice here and once in
/// [`RebalancePlan::moved_replicas`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoveCounts {
    /// Replicas taken off departed brokers (or out of a doubled slot).
    pub replaced: usize,
    /// Replicas moved to a rack the partition lacked.
    pub rack_repairs: usize,
    /// Replicas moved to even out counts.
    pub evened: usize,
}

/// What [`rebalance`] decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebalancePlan {
    /// Every partition whose list changes, in partition order.
    pub reassignments: Vec<Reassignment>,
    /// Partitions that keep a departed replica because every live broker
    /// already holds one: fewer live brokers than replicas.
    pub under_replicated: BTreeSet<TopicPartition>,
    /// Moves per pass.
    pub counts: MoveCounts,
}

impl RebalancePlan {
    /// Replicas that land on a broker that did not hold them: the data the
    /// plan copies.
    pub fn moved_replicas(&self) -> usize {
        self.reassignments.iter().map(|r| r.added().count()).sum()
    }

    /// Partitions whose preferred leader changes.
    pub fn leader_changes(&self) -> usize {
        self.reassignments
            .iter()
            .filter(|r| r.leader_changed())
            .count()
    }

    /// Nothing changes.
    pub fn is_empty(&self) -> bool {
        self.reassignments.is_empty()
    }

    /// `assignment` with every reassignment done.
    pub fn apply(&self, assignment: &mut Assignment) {
        for r in &self.reassignments {
            assignment.insert(r.partition.clone(), r.to.clone());
        }
    }
}

/// The target for `current` on `cluster`'s live brokers (with their racks)
/// and the moves that reach it.
pub fn rebalance(cluster: &Cluster, current: &Assignment) -> RebalancePlan {
    let mut target = current.clone();
    let mut load = Load::count(cluster, &target, 0);
    let mut counts = MoveCounts::default();
    let mut under_replicated = BTreeSet::new();
    for (tp, replicas) in target.iter_mut() {
        let (replaced, stuck) = replace_departed(cluster, &mut load, replicas);
        counts.replaced += replaced;
        if stuck {
            under_replicated.insert(tp.clone());
        }
        counts.rack_repairs += repair_racks(cluster, &mut load, replicas);
    }
    counts.evened = even_out(cluster, &mut load, &mut target, current);
    spread_leaders(cluster, &mut load, &mut target);
    let reassignments = target
        .into_iter()
        .filter_map(|(partition, to)| {
            let from = current.get(&partition)?;
            (*from != to).then(|| Reassignment {
                partition,
                from: from.clone(),
                to,
            })
        })
        .collect();
    RebalancePlan {
        reassignments,
        under_replicated,
        counts,
    }
}

/// Pass 1 for one partition: how many replicas were replaced, and whether
/// one could not be.
fn replace_departed(
    cluster: &Cluster,
    load: &mut Load,
    replicas: &mut [BrokerId],
) -> (usize, bool) {
    let mut replaced = 0;
    let mut stuck = false;
    for slot in 0..replicas.len() {
        let old = replicas[slot];
        let doubled = replicas[..slot].contains(&old);
        if cluster.contains(old) && !doubled {
            continue;
        }
        let others: Vec<BrokerId> = (0..replicas.len())
            .filter(|i| *i != slot)
            .map(|i| replicas[i])
            .collect();
        let short_of_racks = cluster.racks_spanned(&others) < cluster.rack_target(replicas.len());
        let pick = load
            .brokers()
            .filter(|b| !replicas.contains(b))
            .min_by_key(|b| {
                (
                    short_of_racks && !cluster.adds_rack(&others, *b),
                    load.replicas(*b),
                    load.leaders(*b),
                    load.rank(*b),
                )
            });
        let Some(new) = pick else {
            stuck = true;
            continue;
        };
        if doubled {
            load.remove_replica(old);
        }
        replicas[slot] = new;
        load.add_replica(new);
        if slot == 0 {
            load.add_leader(new);
        }
        replaced += 1;
    }
    (replaced, stuck)
}

/// Pass 2 for one partition: moves a replica out of a doubled rack into a
/// missing one until the partition spans enough racks; returns the moves.
fn repair_racks(cluster: &Cluster, load: &mut Load, replicas: &mut [BrokerId]) -> usize {
    let mut repairs = 0;
    while cluster.racks_spanned(replicas) < cluster.rack_target(replicas.len()) {
        let rack_of = |i: usize| cluster.rack_key(replicas[i]);
        let doubled = (0..replicas.len())
            .filter(|i| {
                rack_of(*i).is_some()
                    && (0..replicas.len()).any(|j| j != *i && rack_of(j) == rack_of(*i))
            })
            .max_by_key(|i| (*i != 0, load.replicas(replicas[*i]), std::cmp::Reverse(*i)));
        let missing = load
            .brokers()
            .filter(|b| !replicas.contains(b) && cluster.adds_rack(replicas, *b))
            .min_by_key(|b| (load.replicas(*b), load.leaders(*b), load.rank(*b)));
        let (Some(slot), Some(new)) = (doubled, missing) else {
            break;
        };
        let old = replicas[slot];
        replicas[slot] = new;
        load.remove_replica(old);
        load.add_replica(new);
        if slot == 0 {
            load.remove_leader(old);
            load.add_leader(new);
        }
        repairs += 1;
    }
    repairs
}
