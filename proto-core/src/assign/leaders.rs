//! Spreading preferred leaders by reordering replica lists: a leadership
//! change costs an election, a replica move costs a copy of the log, so
//! leaders are balanced over the replicas where they already are.
//!
//! A broker leading two more partitions than another hands one leadership
//! down a chain: partition `p1` led by `h` moves its lead to a replica `b1`,
//! `b1` hands a partition `p2` it leads to a replica `b2`, and so on until a
//! broker leading two fewer than `h` gets one; the brokers between keep
//! their counts. When no such chain exists from any broker the spread is as
//! even as the replica lists allow: it is the optimal semi-matching of
//! Harvey et al., which minimises the largest count and maximises the
//! smallest at once, so the counts are within one of even whenever any
//! choice of leaders makes them so. Chains are found shortest first, so
//! few partitions change leader.

use std::collections::{BTreeMap, VecDeque};

use super::load::Load;
use super::{Assignment, Cluster, TopicPartition};
use crate::metadata::BrokerId;

/// Reorders the replica lists of `parts` (the partitions this call may
/// change; `load` also counts the ones it may not) so preferred leaders are
/// as even as the lists allow. A partition led by a departed broker first
/// gets a live leader.
pub(super) fn spread_leaders(cluster: &Cluster, load: &mut Load, parts: &mut Assignment) {
    for replicas in parts.values_mut() {
        let Some(first) = replicas.first() else {
            continue;
        };
        if cluster.contains(*first) {
            continue;
        }
        let live = replicas.iter().copied().filter(|b| cluster.contains(*b));
        if let Some(to) = live.min_by_key(|b| (load.leaders(*b), load.rank(*b))) {
            make_first(replicas, to);
            load.add_leader(to);
        }
    }
    while let Some(chain) = improving_chain(cluster, load, parts, &|_, _| true) {
        apply(chain, parts, &mut [load]);
    }
}

/// Then evens out the leaders of one topic's new partitions `parts`, counted
/// with its `siblings` (the partitions it had before CreatePartitions, which
/// stay as they are), as far as the cluster-wide spread allows: a producer writing
/// the topic evenly loads each broker by the partitions it leads there, and
/// Kafka's round-robin placement gives every broker its share of a topic.
/// A chain may move a leadership between brokers only if the cluster-wide
/// spread stays within one, or within what it was when it was wider.
pub(super) fn spread_topic_leaders(
    cluster: &Cluster,
    load: &mut Load,
    parts: &mut Assignment,
    siblings: &Assignment,
) {
    let mut topic = Load::count(cluster, parts, 0);
    for replicas in siblings.values() {
        topic.add_partition(replicas);
    }
    loop {
        let (min, max) = load.leader_extremes();
        let bound = (max - min).max(1);
        let cluster_load = &*load;
        let keeps_cluster_spread = |from: BrokerId, to: BrokerId| {
            let after = cluster_load.brokers().map(|b| {
                let n = cluster_load.leaders(b);
                if b == from {
                    n - 1
                } else if b == to {
                    n + 1
                } else {
                    n
                }
            });
            let (lo, hi) = after.fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
            hi - lo <= bound
        };
        let Some(chain) = improving_chain(cluster, &topic, parts, &keeps_cluster_spread) else {
            return;
        };
        apply(chain, parts, &mut [load, &mut topic]);
    }
}

/// Makes each step's broker its partition's preferred leader, counting the
/// change in every one of `loads`.
fn apply(chain: Vec<(TopicPartition, BrokerId)>, parts: &mut Assignment, loads: &mut [&mut Load]) {
    for (tp, to) in chain {
        let Some(replicas) = parts.get_mut(&tp) else {
            continue;
        };
        for load in loads.iter_mut() {
            if let Some(from) = replicas.first().copied() {
                load.remove_leader(from);
            }
            load.add_leader(to);
        }
        make_first(replicas, to);
    }
}

/// Moves `to` to the front, keeping the other replicas in their order.
fn make_first(replicas: &mut Vec<BrokerId>, to: BrokerId) {
    if let Some(i) = replicas.iter().position(|b| *b == to) {
        replicas.remove(i);
        replicas.insert(0, to);
    }
}

/// The shortest chain from the broker leading the most to one leading at
/// least two fewer that `allowed(from, to)`, as (partition, its new leader)
/// steps; `None` when the spread cannot improve.
fn improving_chain(
    cluster: &Cluster,
    load: &Load,
    parts: &Assignment,
    allowed: &dyn Fn(BrokerId, BrokerId) -> bool,
) -> Option<Vec<(TopicPartition, BrokerId)>> {
    let (min, max) = load.leader_extremes();
    if max < min + 2 {
        return None;
    }
    let mut led: BTreeMap<BrokerId, Vec<&TopicPartition>> = BTreeMap::new();
    for (tp, replicas) in parts {
        if let Some(first) = replicas.first().filter(|b| cluster.contains(**b)) {
            led.entry(*first).or_default().push(tp);
        }
    }
    let mut givers: Vec<BrokerId> = load.brokers().collect();
    givers.sort_by_key(|b| (std::cmp::Reverse(load.leaders(*b)), load.rank(*b)));
    givers
        .into_iter()
        .take_while(|h| load.leaders(*h) >= min + 2)
        .find_map(|h| chain_from(cluster, load, parts, &led, h, allowed))
}

/// Breadth-first search from `from` over "leads a partition that also has a
/// replica on"; the first broker reached with the fewest leaderships (at
/// least two below `from`'s) that `allowed(from, it)` ends the chain.
fn chain_from(
    cluster: &Cluster,
    load: &Load,
    parts: &Assignment,
    led: &BTreeMap<BrokerId, Vec<&TopicPartition>>,
    from: BrokerId,
    allowed: &dyn Fn(BrokerId, BrokerId) -> bool,
) -> Option<Vec<(TopicPartition, BrokerId)>> {
    let mut parent: BTreeMap<BrokerId, (BrokerId, &TopicPartition)> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut best: Option<BrokerId> = None;
    while let Some(x) = queue.pop_front() {
        for tp in led.get(&x).into_iter().flatten() {
            for y in parts.get(*tp).into_iter().flatten() {
                if *y == from || parent.contains_key(y) || !cluster.contains(*y) {
                    continue;
                }
                parent.insert(*y, (x, tp));
                queue.push_back(*y);
                if load.leaders(*y) + 2 <= load.leaders(from)
                    && best.is_none_or(|b| load.leaders(*y) < load.leaders(b))
                    && allowed(from, *y)
                {
                    best = Some(*y);
                }
            }
        }
    }
    let mut chain = Vec::new();
    let mut at = best?;
    while at != from {
        let (prev, tp) = *parent.get(&at)?;
        chain.push((tp.clone(), at));
        at = prev;
    }
    chain.reverse();
    Some(chain)
}
