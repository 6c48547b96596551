//! Evening out replica counts: replicas move from a broker holding at least
//! two more than another towards that other broker, until no allowed move
//! narrows the spread. Placement and rebalance share it.
//!
//! Moves are chosen for the least data copied. A replica this call placed
//! itself (a new partition's, or one replacing a departed broker) is not
//! copied anywhere yet, so moving it again is free: first the spread is
//! narrowed by chains of such free moves (`p1`'s new replica from `h` to
//! `b1`, `p2`'s from `b1` to `b2`, ... until a broker two below `h`),
//! found breadth-first like the leader chains of [`super::leaders`]. Only
//! when no free chain helps does a held replica move, one at a time, from
//! the fullest broker to the emptiest that can take one, a follower before
//! a preferred leader. Every step lowers the sum of squared counts, so the
//! loop ends. Without a rack rule it ends within one of even: a broker
//! holding two more replicas than another holds a partition the other does
//! not.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::load::Load;
use super::{Assignment, Cluster, TopicPartition};
use crate::metadata::BrokerId;

/// One replica move: the partition, from, to.
type Move = (TopicPartition, BrokerId, BrokerId);

/// Moving `from`'s replica of a partition to `to` keeps the rack rule: the
/// partition still spans as many racks as it must, or no fewer than it did.
pub(super) fn move_keeps_racks(
    cluster: &Cluster,
    replicas: &[BrokerId],
    from: BrokerId,
    to: BrokerId,
) -> bool {
    let before = cluster.racks_spanned(replicas);
    let after: Vec<BrokerId> = replicas
        .iter()
        .map(|b| if *b == from { to } else { *b })
        .collect();
    cluster.racks_spanned(&after) >= before.min(cluster.rack_target(replicas.len()))
}

/// Moves replicas of `parts` (the partitions this call may change; `load`
/// also counts the ones it may not) until no allowed move narrows the
/// spread. `held` is what brokers hold today: a replica of `parts` not
/// listed there was placed by this call. A moved replica keeps its
/// position, so the preferred leader changes only when the leader's
/// replica moves. Returns how many moves were made.
pub(super) fn even_out(
    cluster: &Cluster,
    load: &mut Load,
    parts: &mut Assignment,
    held: &Assignment,
) -> usize {
    let mut e = Evener {
        cluster,
        held,
        holders: load.brokers().map(|b| (b, BTreeSet::new())).collect(),
    };
    for (tp, replicas) in parts.iter() {
        for b in replicas {
            if let Some(set) = e.holders.get_mut(b) {
                set.insert(tp.clone());
            }
        }
    }
    let mut moves = 0;
    loop {
        let steps = match e.free_chain(load, parts) {
            Some(chain) => chain,
            None => match e.held_move(load, parts) {
                Some(one) => vec![one],
                None => break,
            },
        };
        for (tp, from, to) in steps {
            e.apply(load, parts, tp, from, to);
            moves += 1;
        }
    }
    moves
}

/// The state of one evening: who holds which partition of `parts`.
struct Evener<'a> {
    cluster: &'a Cluster,
    held: &'a Assignment,
    holders: BTreeMap<BrokerId, BTreeSet<TopicPartition>>,
}

impl Evener<'_> {
    fn apply(
        &mut self,
        load: &mut Load,
        parts: &mut Assignment,
        tp: TopicPartition,
        from: BrokerId,
        to: BrokerId,
    ) {
        let Some(replicas) = parts.get_mut(&tp) else {
            return;
        };
        let Some(slot) = replicas.iter().position(|b| *b == from) else {
            return;
        };
        replicas[slot] = to;
        load.remove_replica(from);
        load.add_replica(to);
        if slot == 0 {
            load.remove_leader(from);
            load.add_leader(to);
        }
        if let Some(set) = self.holders.get_mut(&from) {
            set.remove(&tp);
        }
        if let Some(set) = self.holders.get_mut(&to) {
            set.insert(tp);
        }
    }

    /// `tp`'s replica on `from` may go to `to`.
    fn allowed(&self, replicas: &[BrokerId], from: BrokerId, to: BrokerId) -> bool {
        !replicas.contains(&to) && move_keeps_racks(self.cluster, replicas, from, to)
    }

    /// `from`'s replica of `tp` was placed by this call.
    fn unheld(&self, tp: &TopicPartition, from: BrokerId) -> bool {
        self.held.get(tp).is_none_or(|h| !h.contains(&from))
    }

    /// The shortest chain of free moves from the fullest broker that has one
    /// to a broker holding at least two fewer.
    fn free_chain(&self, load: &Load, parts: &Assignment) -> Option<Vec<Move>> {
        let min = load.brokers().map(|b| load.replicas(b)).min()?;
        let mut givers: Vec<BrokerId> = load.brokers().collect();
        givers.sort_by_key(|b| (std::cmp::Reverse(load.replicas(*b)), load.rank(*b)));
        givers
            .into_iter()
            .take_while(|h| load.replicas(*h) >= min + 2)
            .find_map(|h| self.chain_from(load, parts, h))
    }

    /// Breadth-first over free moves from `start`; a partition moves at most
    /// once per chain, so each step is allowed whatever the others do.
    fn chain_from(&self, load: &Load, parts: &Assignment, start: BrokerId) -> Option<Vec<Move>> {
        let mut takers: Vec<BrokerId> = load.brokers().collect();
        takers.sort_by_key(|b| (load.replicas(*b), load.rank(*b)));
        let mut parent: BTreeMap<BrokerId, (BrokerId, &TopicPartition)> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        let mut best: Option<BrokerId> = None;
        while let Some(x) = queue.pop_front() {
            let used = path_partitions(&parent, start, x);
            for tp in self.holders.get(&x).into_iter().flatten() {
                if !self.unheld(tp, x) || used.contains(tp) {
                    continue;
                }
                let Some(replicas) = parts.get(tp) else {
                    continue;
                };
                for y in &takers {
                    if *y == start || parent.contains_key(y) || !self.allowed(replicas, x, *y) {
                        continue;
                    }
                    parent.insert(*y, (x, tp));
                    queue.push_back(*y);
                    if load.replicas(*y) + 2 <= load.replicas(start)
                        && best.is_none_or(|b| load.replicas(*y) < load.replicas(b))
                    {
                        best = Some(*y);
                    }
                }
            }
        }
        let mut chain = Vec::new();
        let mut at = best?;
        while at != start {
            let (prev, tp) = *parent.get(&at)?;
            chain.push((tp.clone(), prev, at));
            at = prev;
        }
        chain.reverse();
        Some(chain)
    }

    /// One move of a held replica from the fullest giver to the emptiest
    /// taker that can have one, a follower's before a preferred leader's.
    fn held_move(&self, load: &Load, parts: &Assignment) -> Option<Move> {
        let mut takers: Vec<BrokerId> = load.brokers().collect();
        takers.sort_by_key(|b| (load.replicas(*b), load.rank(*b)));
        let mut givers = takers.clone();
        givers.sort_by_key(|b| (std::cmp::Reverse(load.replicas(*b)), load.rank(*b)));
        for from in &givers {
            for to in &takers {
                if load.replicas(*from) < load.replicas(*to) + 2 {
                    break;
                }
                let mut leader_move = None;
                for tp in self.holders.get(from).into_iter().flatten() {
                    let Some(replicas) = parts.get(tp) else {
                        continue;
                    };
                    if !self.allowed(replicas, *from, *to) {
                        continue;
                    }
                    if replicas.first() != Some(from) {
                        return Some((tp.clone(), *from, *to));
                    }
                    leader_move.get_or_insert(tp);
                }
                if let Some(tp) = leader_move {
                    return Some((tp.clone(), *from, *to));
                }
            }
        }
        None
    }
}

/// The partitions the chain from `start` to `at` already moves.
fn path_partitions<'p>(
    parent: &BTreeMap<BrokerId, (BrokerId, &'p TopicPartition)>,
    start: BrokerId,
    mut at: BrokerId,
) -> BTreeSet<&'p TopicPartition> {
    let mut used = BTreeSet::new();
    while at != start {
        let Some((prev, tp)) = parent.get(&at) else {
            break;
        };
        used.insert(*tp);
        at = *prev;
    }
    used
}
