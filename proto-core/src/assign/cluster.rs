//! The live brokers and their racks: the only brokers the assigner may place
//! a replica on, and the rack rule that spreads a partition over failure
//! domains.

use std::collections::{BTreeMap, BTreeSet};

use crate::metadata::BrokerId;

/// The live brokers, each with its rack if the operator declared one
/// (`broker.rack`). A broker not listed here is gone: it gets no new
/// replicas, and [`rebalance`](super::rebalance) replaces the ones it holds.
///
/// Brokers without a rack share one unnamed rack, as KRaft's
/// `StripedReplicaPlacer` treats them, rather than refusing a mixed cluster
/// as the classic `AdminUtils.assignReplicasToBrokers` does: a rebalance
/// after a rackless broker joins must still have an answer. With no racks
/// declared anywhere there is one rack and so no rack rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    brokers: BTreeMap<BrokerId, Option<String>>,
}

impl Cluster {
    /// The cluster of these brokers. A broker listed twice keeps its last rack.
    pub fn new(brokers: impl IntoIterator<Item = (BrokerId, Option<String>)>) -> Cluster {
        Cluster {
            brokers: brokers.into_iter().collect(),
        }
    }

    /// The live brokers, by id.
    pub fn brokers(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.brokers.keys().copied()
    }

    /// How many brokers are live.
    pub fn len(&self) -> usize {
        self.brokers.len()
    }

    /// No broker is live: nothing can be placed.
    pub fn is_empty(&self) -> bool {
        self.brokers.is_empty()
    }

    /// `broker` is live.
    pub fn contains(&self, broker: BrokerId) -> bool {
        self.brokers.contains_key(&broker)
    }

    /// The rack `broker` declared; `None` for a rackless or departed broker.
    pub fn rack(&self, broker: BrokerId) -> Option<&str> {
        self.brokers.get(&broker).and_then(|r| r.as_deref())
    }

    /// How many racks the live brokers form, the unnamed rack of rackless
    /// brokers counting as one.
    pub fn rack_count(&self) -> usize {
        self.brokers.values().collect::<BTreeSet<_>>().len()
    }

    /// How many racks a partition with `replicas` replicas must span:
    /// `min(replicas, racks)`, Kafka's rack-aware rule.
    pub fn rack_target(&self, replicas: usize) -> usize {
        replicas.min(self.rack_count())
    }

    /// How many distinct racks the live brokers among `replicas` span.
    pub fn racks_spanned(&self, replicas: &[BrokerId]) -> usize {
        replicas
            .iter()
            .filter_map(|b| self.rack_key(*b))
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// `broker`'s rack for comparisons: `Some(None)` is the unnamed rack,
    /// `None` a broker that is not live.
    pub(super) fn rack_key(&self, broker: BrokerId) -> Option<Option<&str>> {
        self.brokers.get(&broker).map(|r| r.as_deref())
    }

    /// `candidate` would add a rack `replicas` does not span yet.
    pub(super) fn adds_rack(&self, replicas: &[BrokerId], candidate: BrokerId) -> bool {
        let rack = self.rack_key(candidate);
        rack.is_some() && replicas.iter().all(|b| self.rack_key(*b) != rack)
    }
}
