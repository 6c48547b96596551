//! The assigner's rules, checked from the outside: nothing here calls the
//! assigner's own helpers, so a bug there cannot hide itself. The traces
//! print what these find; the properties assert on them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proto_core::assign::{Assignment, Cluster};
use proto_core::metadata::BrokerId;

/// The hard rules an assignment breaks on `cluster`, one line each: a
/// broker listed twice; a departed replica while some live broker does not
/// hold the partition; fewer racks than `min(replicas, racks)`.
pub fn violations(cluster: &Cluster, assignment: &Assignment) -> Vec<String> {
    let racks = rack_count(cluster);
    let mut out = Vec::new();
    for (tp, replicas) in assignment {
        let distinct: BTreeSet<BrokerId> = replicas.iter().copied().collect();
        if distinct.len() != replicas.len() {
            out.push(format!("{tp}: a broker is listed twice in {replicas:?}"));
        }
        let departed = replicas.iter().any(|b| !cluster.contains(*b));
        let all_live_hold_it = cluster.brokers().all(|b| distinct.contains(&b));
        if departed && !all_live_hold_it {
            out.push(format!(
                "{tp}: a departed broker keeps a replica that could move"
            ));
        }
        let spanned = spanned(cluster, replicas);
        if spanned < replicas.len().min(racks) {
            out.push(format!(
                "{tp}: spans {spanned} racks, fewer than min({}, {racks})",
                replicas.len()
            ));
        }
    }
    out
}

/// Racks the live brokers form; rackless brokers share one unnamed rack.
pub fn rack_count(cluster: &Cluster) -> usize {
    cluster
        .brokers()
        .map(|b| cluster.rack(b))
        .collect::<BTreeSet<_>>()
        .len()
}

/// Distinct racks of the live brokers among `replicas`.
pub fn spanned(cluster: &Cluster, replicas: &[BrokerId]) -> usize {
    replicas
        .iter()
        .filter(|b| cluster.contains(**b))
        .map(|b| cluster.rack(*b))
        .collect::<BTreeSet<_>>()
        .len()
}

/// Replicas per live broker.
pub fn replica_counts(cluster: &Cluster, assignment: &Assignment) -> BTreeMap<BrokerId, usize> {
    let mut counts: BTreeMap<BrokerId, usize> = cluster.brokers().map(|b| (b, 0)).collect();
    for b in assignment.values().flatten() {
        if let Some(c) = counts.get_mut(b) {
            *c += 1;
        }
    }
    counts
}

/// Preferred leaderships (first replicas) per live broker.
pub fn leader_counts(cluster: &Cluster, assignment: &Assignment) -> BTreeMap<BrokerId, usize> {
    let mut counts: BTreeMap<BrokerId, usize> = cluster.brokers().map(|b| (b, 0)).collect();
    for b in assignment.values().filter_map(|r| r.first()) {
        if let Some(c) = counts.get_mut(b) {
            *c += 1;
        }
    }
    counts
}

/// Largest count minus smallest.
pub fn spread(counts: &BTreeMap<BrokerId, usize>) -> usize {
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    max - min
}

/// Some broker could hand a preferred leadership, possibly through other
/// brokers, to a broker leading two fewer, using only the partitions in
/// `movable`: the leaders are not as even as the replica lists allow.
/// `fixed` partitions count towards the load but cannot change.
pub fn leaders_improvable(cluster: &Cluster, fixed: &Assignment, movable: &Assignment) -> bool {
    let mut all = fixed.clone();
    all.extend(movable.iter().map(|(k, v)| (k.clone(), v.clone())));
    let counts = leader_counts(cluster, &all);
    let mut edges: BTreeMap<BrokerId, BTreeSet<BrokerId>> = BTreeMap::new();
    for replicas in movable.values() {
        let Some(first) = replicas.first().filter(|b| cluster.contains(**b)) else {
            continue;
        };
        for b in replicas.iter().filter(|b| cluster.contains(**b)) {
            edges.entry(*first).or_default().insert(*b);
        }
    }
    counts.iter().any(|(from, high)| {
        let mut seen = BTreeSet::from([*from]);
        let mut queue = VecDeque::from([*from]);
        while let Some(x) = queue.pop_front() {
            for y in edges.get(&x).into_iter().flatten() {
                if seen.insert(*y) {
                    if counts[y] + 2 <= *high {
                        return true;
                    }
                    queue.push_back(*y);
                }
            }
        }
        false
    })
}

/// Some replica of a `movable` partition could move, by itself and within
/// the rack rule, from a broker holding at least two more replicas than
/// the broker it would go to: the counts are not as even as single moves
/// can make them. `fixed` partitions count towards the load only.
pub fn replicas_improvable(cluster: &Cluster, fixed: &Assignment, movable: &Assignment) -> bool {
    let mut all = fixed.clone();
    all.extend(movable.iter().map(|(k, v)| (k.clone(), v.clone())));
    let counts = replica_counts(cluster, &all);
    let racks = rack_count(cluster);
    movable.values().any(|replicas| {
        let before = spanned(cluster, replicas);
        let need = before.min(replicas.len().min(racks));
        replicas.iter().filter(|x| cluster.contains(**x)).any(|x| {
            counts.iter().any(|(y, low)| {
                let after: Vec<BrokerId> = replicas
                    .iter()
                    .map(|b| if b == x { *y } else { *b })
                    .collect();
                *low + 2 <= counts[x] && !replicas.contains(y) && spanned(cluster, &after) >= need
            })
        })
    })
}
