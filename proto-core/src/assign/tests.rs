//! The assigner's rules, one small cluster at a time. The generated clusters
//! live in `conformance/tests/assign_properties.rs`, the stories in
//! `conformance/traces/assign/`.

use std::collections::BTreeMap;

use super::leaders::spread_leaders;
use super::load::Load;
use super::*;

fn b(id: i32) -> BrokerId {
    BrokerId(id)
}

fn ids(list: &[i32]) -> Vec<BrokerId> {
    list.iter().copied().map(BrokerId).collect()
}

fn plain(brokers: &[i32]) -> Cluster {
    Cluster::new(brokers.iter().map(|i| (b(*i), None)))
}

fn racked(brokers: &[(i32, &str)]) -> Cluster {
    Cluster::new(brokers.iter().map(|(i, r)| (b(*i), Some(r.to_string()))))
}

fn topic(name: &str, partitions: i32, rf: i16) -> NewPartitions {
    NewPartitions {
        topic: name.to_string(),
        partitions: 0..partitions,
        replication_factor: rf,
        seed: 0,
    }
}

fn place(cluster: &Cluster, existing: &Assignment, req: &NewPartitions) -> Assignment {
    place_partitions(cluster, existing, req).expect("placeable")
}

fn tp(topic: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic, p)
}

/// Replicas and preferred leaders per live broker.
fn counts(cluster: &Cluster, a: &Assignment) -> (Vec<usize>, Vec<usize>) {
    let mut replicas: BTreeMap<BrokerId, usize> = cluster.brokers().map(|x| (x, 0)).collect();
    let mut leaders = replicas.clone();
    for list in a.values() {
        for x in list {
            replicas.entry(*x).and_modify(|c| *c += 1);
        }
        if let Some(first) = list.first() {
            leaders.entry(*first).and_modify(|c| *c += 1);
        }
    }
    (
        replicas.into_values().collect(),
        leaders.into_values().collect(),
    )
}

fn spread(counts: &[usize]) -> usize {
    counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0)
}

#[test]
fn invalid_requests_are_refused_with_kafkas_codes() {
    let c = plain(&[1, 2, 3]);
    let none = Assignment::new();
    let err = |req: &NewPartitions, c: &Cluster| place_partitions(c, &none, req).unwrap_err();
    let e = err(&topic("t", 1, 0), &c);
    assert_eq!(e, PlacementError::NonPositiveReplicationFactor(0));
    assert_eq!(e.error_code(), INVALID_REPLICATION_FACTOR);
    let e = err(&topic("t", 1, 4), &c);
    assert_eq!(
        e.to_string(),
        "The target replication factor of 4 cannot be reached because only 3 broker(s) are registered."
    );
    assert_eq!(e.error_code(), INVALID_REPLICATION_FACTOR);
    let e = err(&topic("t", 1, 1), &Cluster::default());
    assert_eq!(e, PlacementError::NoBrokers);
    assert_eq!(e.error_code(), INVALID_REPLICATION_FACTOR);
    let mut negative = topic("t", 1, 1);
    negative.partitions = -1..1;
    assert_eq!(err(&negative, &c).error_code(), INVALID_PARTITIONS);
    let existing = place(&c, &none, &topic("t", 2, 1));
    let e = place_partitions(&c, &existing, &topic("t", 3, 1)).unwrap_err();
    assert_eq!(e, PlacementError::PartitionExists(tp("t", 0)));
    assert_eq!(e.error_code(), INVALID_PARTITIONS);
}

#[test]
fn a_new_topic_spreads_replicas_and_leaders_evenly() {
    let c = plain(&[1, 2, 3]);
    let a = place(&c, &Assignment::new(), &topic("t", 6, 3));
    assert_eq!(a.len(), 6);
    for list in a.values() {
        let mut sorted = list.clone();
        sorted.sort();
        assert_eq!(sorted, ids(&[1, 2, 3]));
    }
    assert_eq!(counts(&c, &a), (vec![6, 6, 6], vec![2, 2, 2]));
    let a = place(&c, &Assignment::new(), &topic("t", 4, 2));
    let (replicas, leaders) = counts(&c, &a);
    assert!(spread(&replicas) <= 1 && spread(&leaders) <= 1, "{a:?}");
}

#[test]
fn existing_load_is_counted_cluster_wide() {
    let three = plain(&[1, 2, 3]);
    let existing = place(&three, &Assignment::new(), &topic("old", 3, 2));
    let four = plain(&[1, 2, 3, 4]);
    let new = place(&four, &existing, &topic("new", 2, 1));
    assert_eq!(new.values().next(), Some(&ids(&[4])));
    let mut all = existing.clone();
    all.extend(new);
    let (replicas, leaders) = counts(&four, &all);
    assert_eq!(replicas, vec![2, 2, 2, 2]);
    assert_eq!(spread(&leaders), 1);
}

#[test]
fn create_partitions_places_only_the_new_indexes() {
    let c = plain(&[1, 2, 3]);
    let existing = place(&c, &Assignment::new(), &topic("t", 2, 2));
    let mut more = topic("t", 5, 2);
    more.partitions = 2..5;
    let new = place(&c, &existing, &more);
    assert_eq!(
        new.keys().cloned().collect::<Vec<_>>(),
        vec![tp("t", 2), tp("t", 3), tp("t", 4)]
    );
    let mut all = existing;
    all.extend(new);
    let (replicas, leaders) = counts(&c, &all);
    assert_eq!(spread(&replicas), 1);
    assert!(spread(&leaders) <= 1);
}

#[test]
fn create_partitions_spreads_the_whole_topics_leaders() {
    let c = plain(&[1, 2, 3]);
    let existing: Assignment = [
        (tp("t", 0), ids(&[1, 2, 3])),
        (tp("other", 0), ids(&[2, 3, 1])),
        (tp("other", 1), ids(&[3, 1, 2])),
    ]
    .into_iter()
    .collect();
    for seed in 0..6 {
        let mut more = topic("t", 6, 3);
        more.partitions = 1..6;
        more.seed = seed;
        let new = place(&c, &existing, &more);
        let mut all = existing.clone();
        all.extend(new);
        let t: Assignment = all
            .iter()
            .filter(|(k, _)| k.topic == "t")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(counts(&c, &t).1, vec![2, 2, 2], "seed {seed}: {t:?}");
        assert!(spread(&counts(&c, &all).1) <= 1, "the cluster stays even");
    }
}

#[test]
fn the_seed_rotates_the_start_like_kafkas_random_start_index() {
    let c = plain(&[1, 2, 3]);
    let first = |seed| {
        let mut req = topic("t", 1, 1);
        req.seed = seed;
        place(&c, &Assignment::new(), &req)[&tp("t", 0)].clone()
    };
    assert_eq!(first(0), ids(&[1]));
    assert_eq!(first(1), ids(&[2]));
    assert_eq!(first(5), ids(&[3]));
    assert_eq!(first(5), first(5));
}

#[test]
fn replicas_alternate_racks() {
    let c = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
    for rf in 1..=4 {
        let a = place(&c, &Assignment::new(), &topic("t", 12, rf));
        for list in a.values() {
            assert_eq!(c.racks_spanned(list), (rf as usize).min(3), "{list:?}");
        }
        let (replicas, leaders) = counts(&c, &a);
        assert!(
            spread(&replicas) <= 1 && spread(&leaders) <= 1,
            "rf {rf}: {a:?}"
        );
    }
}

#[test]
fn rackless_brokers_share_one_unnamed_rack() {
    let c = Cluster::new([
        (b(1), Some("a".to_string())),
        (b(2), Some("a".to_string())),
        (b(3), None),
        (b(4), None),
    ]);
    assert_eq!(c.rack_count(), 2);
    let a = place(&c, &Assignment::new(), &topic("t", 4, 2));
    for list in a.values() {
        assert_eq!(c.racks_spanned(list), 2, "{list:?}");
    }
    assert_eq!(plain(&[1, 2, 3]).rack_count(), 1);
}

#[test]
fn an_unbalanced_rack_takes_every_partition_as_in_kafka() {
    let c = racked(&[(1, "a"), (2, "a"), (3, "b")]);
    let a = place(&c, &Assignment::new(), &topic("t", 4, 2));
    assert!(a.values().all(|list| list.contains(&b(3))), "{a:?}");
}

#[test]
fn a_balanced_assignment_rebalances_to_nothing() {
    let c = plain(&[1, 2, 3, 4]);
    let a = place(&c, &Assignment::new(), &topic("t", 10, 3));
    assert_eq!(rebalance(&c, &a), RebalancePlan::default());
}

#[test]
fn a_leaving_broker_moves_exactly_its_replicas() {
    let four = plain(&[1, 2, 3, 4]);
    let mut a = place(&four, &Assignment::new(), &topic("t", 8, 2));
    let held = a.values().filter(|l| l.contains(&b(4))).count();
    let three = plain(&[1, 2, 3]);
    let plan = rebalance(&three, &a);
    assert_eq!(plan.counts.replaced, held);
    assert_eq!(plan.moved_replicas(), held);
    assert!(plan.under_replicated.is_empty());
    plan.apply(&mut a);
    assert!(a.values().all(|l| !l.contains(&b(4))));
    let (replicas, leaders) = counts(&three, &a);
    assert!(spread(&replicas) <= 1 && spread(&leaders) <= 1, "{a:?}");
}

#[test]
fn a_joining_broker_gets_its_share_and_nothing_else_moves() {
    let three = plain(&[1, 2, 3]);
    let mut a = place(&three, &Assignment::new(), &topic("t", 6, 3));
    let four = plain(&[1, 2, 3, 4]);
    let plan = rebalance(&four, &a);
    // 18 replicas over 4 brokers: the new one takes 4, the others keep 4 or 5.
    assert_eq!(plan.moved_replicas(), 4);
    assert_eq!(
        plan.counts,
        MoveCounts {
            replaced: 0,
            rack_repairs: 0,
            evened: 4
        }
    );
    assert!(plan.reassignments.iter().all(|r| r.added().eq([b(4)])));
    plan.apply(&mut a);
    let (mut replicas, leaders) = counts(&four, &a);
    assert_eq!(replicas[3], 4);
    replicas.sort();
    assert_eq!(replicas, vec![4, 4, 5, 5]);
    assert!(spread(&leaders) <= 1, "{leaders:?}");
    assert!(rebalance(&four, &a).is_empty());
}

#[test]
fn partitions_wider_than_the_cluster_keep_their_departed_replica() {
    let three = plain(&[1, 2, 3]);
    let mut a = place(&three, &Assignment::new(), &topic("t", 3, 3));
    let two = plain(&[1, 2]);
    let plan = rebalance(&two, &a);
    assert_eq!(plan.moved_replicas(), 0);
    assert_eq!(plan.under_replicated.len(), 3);
    plan.apply(&mut a);
    assert!(
        a.values().all(|l| l.len() == 3 && two.contains(l[0])),
        "{a:?}"
    );
    assert!(rebalance(&two, &a).is_empty());
}

#[test]
fn a_new_rack_gets_a_replica_of_every_wide_partition() {
    let two_racks = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b")]);
    let mut a = place(&two_racks, &Assignment::new(), &topic("t", 4, 3));
    let three_racks = racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
    let plan = rebalance(&three_racks, &a);
    assert_eq!(plan.counts.rack_repairs, 4);
    plan.apply(&mut a);
    for list in a.values() {
        assert_eq!(three_racks.racks_spanned(list), 3, "{list:?}");
    }
    assert!(rebalance(&three_racks, &a).is_empty());
}

#[test]
fn a_doubled_replica_is_replaced() {
    let c = plain(&[1, 2, 3]);
    let a = Assignment::from([(tp("t", 0), ids(&[1, 1]))]);
    let plan = rebalance(&c, &a);
    assert_eq!(plan.reassignments[0].to, ids(&[1, 2]));
    assert_eq!(plan.counts.replaced, 1);
}

#[test]
fn leadership_moves_down_a_chain_when_no_direct_swap_helps() {
    // 1 leads p0 and p1, whose other replica is 2; 2 leads p2, shared with 3;
    // 3 leads nothing. 1 cannot hand anything to 3 directly.
    let c = plain(&[1, 2, 3]);
    let mut a = Assignment::from([
        (tp("t", 0), ids(&[1, 2])),
        (tp("t", 1), ids(&[1, 2])),
        (tp("t", 2), ids(&[2, 3])),
    ]);
    let mut load = Load::count(&c, &a, 0);
    spread_leaders(&c, &mut load, &mut a);
    let (_, leaders) = counts(&c, &a);
    assert_eq!(leaders, vec![1, 1, 1]);
    assert_eq!(a[&tp("t", 0)], ids(&[2, 1]));
    assert_eq!(a[&tp("t", 2)], ids(&[3, 2]));
}

#[test]
fn leader_transfers_fix_the_worst_imbalance_first() {
    let c = plain(&[1, 2, 3]);
    let a = place(&c, &Assignment::new(), &topic("t", 6, 3));
    // A failover left broker 1 leading everything.
    let leaders: BTreeMap<_, _> = a.keys().map(|p| (p.clone(), b(1))).collect();
    let all = leader_transfers(&c, &a, &leaders, usize::MAX);
    assert_eq!(all.len(), 4);
    assert!(all
        .iter()
        .all(|t| t.from == b(1) && a[&t.partition][0] == t.to));
    let two = leader_transfers(&c, &a, &leaders, 2);
    assert_eq!(two.len(), 2);
    assert_ne!(two[0].to, two[1].to, "one to each starved broker first");
    assert_eq!(two, all[..2]);
}

#[test]
fn leader_transfers_skip_partitions_that_cannot_transfer() {
    let c = plain(&[1, 2]);
    let a = Assignment::from([
        (tp("t", 0), ids(&[3, 1])),
        (tp("t", 1), ids(&[2, 1])),
        (tp("t", 2), ids(&[2, 1])),
        (tp("t", 3), ids(&[1, 2])),
    ]);
    // t-0's preferred leader is gone, t-1 has no leader, t-3 is led already.
    let leaders = BTreeMap::from([(tp("t", 0), b(1)), (tp("t", 2), b(1)), (tp("t", 3), b(1))]);
    let transfers = leader_transfers(&c, &a, &leaders, 10);
    assert_eq!(
        transfers,
        vec![LeaderTransfer {
            partition: tp("t", 2),
            from: b(1),
            to: b(2)
        }]
    );
}

#[test]
fn a_topic_gets_its_share_of_leaders_whatever_the_cluster_holds() {
    let c = plain(&[1, 2, 3]);
    let mut offsets = topic("__consumer_offsets", 50, 3);
    offsets.seed = 353;
    let existing = place(&c, &Assignment::new(), &offsets);
    assert_eq!(counts(&c, &existing).1, vec![17, 16, 17]);
    let mut req = topic("orders", 12, 3);
    req.seed = 87;
    let placed = place(&c, &existing, &req);
    assert_eq!(counts(&c, &placed).1, vec![4, 4, 4], "{placed:?}");
    let mut all = existing;
    all.extend(placed);
    assert_eq!(spread(&counts(&c, &all).1), 1, "the cluster stays even");
}
