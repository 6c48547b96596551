//! Load: replicas and preferred leaders per live broker, counted over every
//! partition in the cluster, and the fixed order that breaks ties between
//! equally loaded brokers.

use std::collections::BTreeMap;

use super::{Assignment, Cluster};
use crate::metadata::BrokerId;

/// Replicas and preferred leaders per live broker. Departed brokers are not
/// counted: they hold nothing the assigner can balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Load {
    replicas: BTreeMap<BrokerId, usize>,
    leaders: BTreeMap<BrokerId, usize>,
    /// Tie-break position per live broker (lower goes first).
    rank: BTreeMap<BrokerId, usize>,
}

impl Load {
    /// The load `assignment` puts on `cluster`'s brokers. Ties between equal
    /// brokers go to the broker `seed` places first: the brokers by id,
    /// rotated left by `seed % brokers`, Kafka's random start index made an
    /// input.
    pub(super) fn count(cluster: &Cluster, assignment: &Assignment, seed: u64) -> Load {
        let n = cluster.len().max(1) as u64;
        let start = (seed % n) as usize;
        let ids: Vec<BrokerId> = cluster.brokers().collect();
        let rank = ids
            .iter()
            .enumerate()
            .map(|(i, b)| (*b, (i + ids.len() - start) % ids.len()))
            .collect();
        let zero = || ids.iter().map(|b| (*b, 0)).collect::<BTreeMap<_, _>>();
        let mut load = Load {
            replicas: zero(),
            leaders: zero(),
            rank,
        };
        for replicas in assignment.values() {
            load.add_partition(replicas);
        }
        load
    }

    /// Counts a partition's live replicas and its preferred leader.
    pub(super) fn add_partition(&mut self, replicas: &[BrokerId]) {
        for b in replicas {
            self.add_replica(*b);
        }
        if let Some(first) = replicas.first() {
            self.add_leader(*first);
        }
    }

    /// The live brokers, by id.
    pub(super) fn brokers(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.rank.keys().copied()
    }

    /// Replicas on `b` (0 if `b` is not live).
    pub(super) fn replicas(&self, b: BrokerId) -> usize {
        self.replicas.get(&b).copied().unwrap_or(0)
    }

    /// Preferred leaderships on `b` (0 if `b` is not live).
    pub(super) fn leaders(&self, b: BrokerId) -> usize {
        self.leaders.get(&b).copied().unwrap_or(0)
    }

    /// `b`'s tie-break position; departed brokers sort last.
    pub(super) fn rank(&self, b: BrokerId) -> usize {
        self.rank.get(&b).copied().unwrap_or(usize::MAX)
    }

    /// One more replica on `b`, if it is live.
    pub(super) fn add_replica(&mut self, b: BrokerId) {
        if let Some(c) = self.replicas.get_mut(&b) {
            *c += 1;
        }
    }

    /// One replica fewer on `b`, if it is live.
    pub(super) fn remove_replica(&mut self, b: BrokerId) {
        if let Some(c) = self.replicas.get_mut(&b) {
            *c = c.saturating_sub(1);
        }
    }

    /// One more preferred leadership on `b`, if it is live.
    pub(super) fn add_leader(&mut self, b: BrokerId) {
        if let Some(c) = self.leaders.get_mut(&b) {
            *c += 1;
        }
    }

    /// One preferred leadership fewer on `b`, if it is live.
    pub(super) fn remove_leader(&mut self, b: BrokerId) {
        if let Some(c) = self.leaders.get_mut(&b) {
            *c = c.saturating_sub(1);
        }
    }

    /// The smallest and largest preferred-leader count over live brokers.
    pub(super) fn leader_extremes(&self) -> (usize, usize) {
        let min = self.leaders.values().copied().min().unwrap_or(0);
        let max = self.leaders.values().copied().max().unwrap_or(0);
        (min, max)
    }
}
