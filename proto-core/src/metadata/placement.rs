//! Where new replicas go: the [`Placement`] the controller is given at
//! construction. The controller decides *that* partitions are created and
//! checks what comes back; the placement decides *where*. The partition
//! assigner (`crate::assign`: round-robin, rack-aware, even load) plugs in
//! here through a small adapter; any pure function of the request will do.

use std::collections::BTreeMap;

use super::types::BrokerId;

/// A broker as placement sees it: one that may take new replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Its id.
    pub id: BrokerId,
    /// Its rack, if it has one.
    pub rack: Option<String>,
}

/// Every partition's replicas, by topic name and partition: what placement
/// counts as existing load.
pub type ExistingAssignment = BTreeMap<(String, i32), Vec<BrokerId>>;

/// New partitions of one topic, to be placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementRequest<'a> {
    /// The usable (registered, unfenced) brokers, by id.
    pub brokers: &'a [BrokerInfo],
    /// Every partition of the cluster, including those placed earlier in
    /// the same request.
    pub existing: &'a ExistingAssignment,
    /// The topic.
    pub topic: &'a str,
    /// The first new partition's number: 0 for a new topic, the current
    /// count for CreatePartitions.
    pub first_partition: i32,
    /// How many partitions to place.
    pub partitions: usize,
    /// Replicas per partition.
    pub replication_factor: usize,
}

/// Why no placement exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Fewer usable brokers than the replication factor.
    #[error("the replication factor {wanted} needs {wanted} usable brokers; {available} are")]
    NotEnoughBrokers {
        /// The replication factor.
        wanted: usize,
        /// The usable brokers.
        available: usize,
    },
    /// Another constraint could not be met.
    #[error("{0}")]
    Unsatisfiable(String),
}

/// Chooses replicas for new partitions: `request.partitions` replica sets
/// of `request.replication_factor` distinct brokers from `request.brokers`,
/// first replica the preferred leader.
///
/// It must be a pure function of the request: a rebuilt controller must
/// decide as the old one would. The controller refuses any answer that
/// breaks these rules (UNKNOWN_SERVER_ERROR), so a faulty placement cannot
/// put a replica on a fenced broker; a [`PlacementError`] is
/// INVALID_REPLICATION_FACTOR.
pub trait Placement: Send {
    /// The replica sets of the new partitions, in partition order.
    fn place(&self, request: &PlacementRequest<'_>) -> Result<Vec<Vec<BrokerId>>, PlacementError>;
}

impl<F> Placement for F
where
    F: Fn(&PlacementRequest<'_>) -> Result<Vec<Vec<BrokerId>>, PlacementError> + Send,
{
    fn place(&self, request: &PlacementRequest<'_>) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
        self(request)
    }
}
