//! Placing new partitions: CreateTopics, auto-creation and CreatePartitions
//! all ask for replica lists for a range of a topic's partition indexes.
//!
//! Each new partition takes, one replica at a time, the least loaded live
//! broker it does not hold yet, counting every existing partition's load
//! (Redpanda's `partition_allocator` with its least-allocated constraint);
//! while the partition spans fewer racks than it must, only brokers of a
//! rack it does not span yet qualify (the rack alternation of Kafka's
//! `AdminUtils.assignReplicasToBrokersRackAware`). Ties go to the fewest
//! preferred leaderships, then to the caller's seed order. The new
//! partitions are then evened out and their leaders spread by the same
//! passes [`rebalance`](super::rebalance) uses, existing partitions staying
//! as they are; last, the topic's own leaders are spread as far as the
//! cluster-wide spread allows, so every broker leads its share of the topic.

use std::ops::Range;

use super::even::even_out;
use super::leaders::{spread_leaders, spread_topic_leaders};
use super::load::Load;
use super::{Assignment, Cluster, TopicPartition};
use crate::metadata::BrokerId;

/// Kafka's `INVALID_PARTITIONS`: the partition indexes asked for cannot be
/// created.
pub const INVALID_PARTITIONS: i16 = 37;
/// Kafka's `INVALID_REPLICATION_FACTOR`: the replication factor is below one
/// or above the number of live brokers.
pub const INVALID_REPLICATION_FACTOR: i16 = 38;

/// New partitions of one topic, as CreateTopics, auto-creation and
/// CreatePartitions ask for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPartitions {
    /// The topic.
    pub topic: String,
    /// The indexes to place: `0..n` for a new topic, `old..new` when
    /// CreatePartitions grows a topic from `old` to `new` partitions.
    pub partitions: Range<i32>,
    /// Replicas per partition, as CreateTopics carries it (the broker
    /// resolves Kafka's -1 to its default first; CreatePartitions passes the
    /// topic's).
    pub replication_factor: i16,
    /// Rotates the order that breaks ties between equally loaded brokers,
    /// as Kafka's random start index does; the caller draws it from its own
    /// seeded RNG so the answer stays reproducible.
    pub seed: u64,
}

/// Why new partitions cannot be placed; nothing is placed then.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// The replication factor is zero or negative.
    #[error("Invalid replication factor {0}: the replication factor must be positive.")]
    NonPositiveReplicationFactor(i16),
    /// No broker is live.
    #[error("There are no live brokers to place replicas on.")]
    NoBrokers,
    /// Fewer live brokers than replicas per partition.
    #[error(
        "The target replication factor of {replication_factor} cannot be reached \
         because only {brokers} broker(s) are registered."
    )]
    TooFewBrokers {
        /// What was asked for.
        replication_factor: i16,
        /// The live brokers.
        brokers: usize,
    },
    /// A partition index below zero.
    #[error("Partition indexes start at 0, not {0}.")]
    NegativePartition(i32),
    /// The partition is already in the assignment.
    #[error("Partition {0} already exists.")]
    PartitionExists(TopicPartition),
}

impl PlacementError {
    /// The Kafka error code a CreateTopics or CreatePartitions answer carries.
    pub fn error_code(&self) -> i16 {
        match self {
            PlacementError::NonPositiveReplicationFactor(_)
            | PlacementError::NoBrokers
            | PlacementError::TooFewBrokers { .. } => INVALID_REPLICATION_FACTOR,
            PlacementError::NegativePartition(_) | PlacementError::PartitionExists(_) => {
                INVALID_PARTITIONS
            }
        }
    }
}

/// Replica lists for `request`'s partitions on `cluster`'s live brokers,
/// first replica the preferred leader. `existing` is every partition of the
/// cluster today: its load is counted, its lists are not changed.
pub fn place_partitions(
    cluster: &Cluster,
    existing: &Assignment,
    request: &NewPartitions,
) -> Result<Assignment, PlacementError> {
    let rf = request.replication_factor;
    if rf < 1 {
        return Err(PlacementError::NonPositiveReplicationFactor(rf));
    }
    if cluster.is_empty() {
        return Err(PlacementError::NoBrokers);
    }
    let replication = rf as usize;
    if replication > cluster.len() {
        return Err(PlacementError::TooFewBrokers {
            replication_factor: rf,
            brokers: cluster.len(),
        });
    }
    if request.partitions.start < 0 {
        return Err(PlacementError::NegativePartition(request.partitions.start));
    }
    let mut load = Load::count(cluster, existing, request.seed);
    let mut placed = Assignment::new();
    for index in request.partitions.clone() {
        let tp = TopicPartition::new(request.topic.clone(), index);
        if existing.contains_key(&tp) {
            return Err(PlacementError::PartitionExists(tp));
        }
        let replicas = pick(cluster, &load, replication);
        load.add_partition(&replicas);
        placed.insert(tp, replicas);
    }
    even_out(cluster, &mut load, &mut placed, &Assignment::new());
    spread_leaders(cluster, &mut load, &mut placed);
    let siblings: Assignment = existing
        .iter()
        .filter(|(tp, _)| tp.topic == request.topic)
        .map(|(tp, r)| (tp.clone(), r.clone()))
        .collect();
    spread_topic_leaders(cluster, &mut load, &mut placed, &siblings);
    Ok(placed)
}

/// One partition's replicas: the least loaded brokers, a new rack for each
/// replica until the partition spans enough racks; the one with the fewest
/// preferred leaderships first.
fn pick(cluster: &Cluster, load: &Load, replication: usize) -> Vec<BrokerId> {
    let target = cluster.rack_target(replication);
    let mut chosen: Vec<BrokerId> = Vec::with_capacity(replication);
    while chosen.len() < replication {
        let need_rack = cluster.racks_spanned(&chosen) < target;
        let next = load
            .brokers()
            .filter(|b| !chosen.contains(b) && (!need_rack || cluster.adds_rack(&chosen, *b)))
            .min_by_key(|b| (load.replicas(*b), load.leaders(*b), load.rank(*b)));
        // Always found: replication <= live brokers, and a partition short
        // of racks has an unspanned rack left.
        let Some(next) = next else {
            break;
        };
        chosen.push(next);
    }
    debug_assert_eq!(chosen.len(), replication);
    if let Some(i) = (0..chosen.len()).min_by_key(|i| (load.leaders(chosen[*i]), *i)) {
        chosen[..=i].rotate_right(1);
    }
    chosen
}
