//! The partition assigner: which brokers hold each partition's replicas, and
//! which of them should lead.
//!
//! Three pure functions, no state between calls: the same cluster and the
//! same assignment give the same answer, bit for bit (every map is a
//! `BTreeMap`; the only "random" input is the caller's `seed`).
//!
//! - [`place_partitions`]: replica lists for new partitions (CreateTopics,
//!   auto-create, CreatePartitions), counting the load of every existing
//!   partition cluster-wide.
//! - [`rebalance`]: the target after brokers join or leave, reached with the
//!   fewest replica moves, and preferred leaders spread by reordering lists.
//! - [`leader_transfers`]: which partitions should hand leadership to their
//!   preferred leader now, a bounded number per call.
//!
//! The rules every answer keeps (where the cluster allows them):
//!
//! 1. A partition's replicas are distinct live brokers.
//! 2. Replicas per broker are within one of even across the cluster, and so
//!    are preferred leaders (a partition's first replica). A new topic's own
//!    preferred leaders are then spread as evenly as that allows
//!    ([`place_partitions`]), as Kafka's round-robin placement spreads them.
//! 3. A partition with `n` replicas spans `min(n, racks)` racks. Brokers
//!    without a rack share one unnamed rack (KRaft's `StripedReplicaPlacer`),
//!    so a cluster with no racks has no rack rule at all.
//!
//! Rule 3 wins over rule 2, as in Kafka: with one broker in a rack of its
//! own and `rf >= racks`, that broker holds a replica of every partition.
//! Raft membership changes happen one server at a time elsewhere; this
//! module only computes targets. Brokers are named by Kafka's `node.id`
//! ([`BrokerId`]), as the metadata image's replica lists name them.

mod cluster;
mod controller_placement;
mod even;
mod leaders;
mod load;
mod place;
mod rebalance;
mod transfer;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use crate::metadata::BrokerId;

pub use cluster::Cluster;
pub use controller_placement::AssignerPlacement;
pub use place::{
    place_partitions, NewPartitions, PlacementError, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,
};
pub use rebalance::{rebalance, MoveCounts, Reassignment, RebalancePlan};
pub use transfer::{leader_transfers, LeaderTransfer};

/// A partition of a topic, the unit the assigner places. Ordered by topic,
/// then index, so every listing of an assignment comes out the same way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition's index, as Kafka's wire format carries it.
    pub partition: i32,
}

impl TopicPartition {
    /// Partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Every partition's ordered replica list; the first replica is the
/// preferred leader, as in Kafka's metadata.
pub type Assignment = BTreeMap<TopicPartition, Vec<BrokerId>>;
