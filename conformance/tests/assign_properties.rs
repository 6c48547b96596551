//! quickcheck properties of the partition assigner (`proto_core::assign`).
//! A generated [`World`] is 1..=9 live brokers (racks on none, all or some
//! of them) and 0..=4 topics placed on them in order; a [`Change`] then
//! removes and adds brokers. The rules are checked from the outside
//! (`conformance::assign_trace::check`):
//!
//! - placement: the refusals are Kafka's; every new partition gets `rf`
//!   distinct live brokers spanning `min(rf, racks)` racks; without racks
//!   replica counts stay within one of even; preferred leaders are as even
//!   as the lists allow (no chain of hand-overs improves them), and with
//!   racks no single allowed move evens replicas further; when every broker
//!   holds every new partition, the topic's own leaders are within one of
//!   even too;
//! - rebalance: afterwards the rules hold again, replica counts within one
//!   without racks (with racks, no single allowed move evens them
//!   further), leaders as even as the lists allow; the moves respect the bounds (at least the departed
//!   replicas, without racks exactly the lower bound, for a join at most
//!   `ceil(replicas / brokers)` per joining broker); rebalancing the result
//!   moves nothing; messy assignments (departed and unknown brokers) come
//!   out valid too;
//! - leader transfers: bounded, to live preferred leaders, and all of them
//!   together leave every partition led by its preferred leader;
//! - the same input gives the same output, always.
//!
//! Every test runs from a fixed seed (`Gen::from_size_and_seed`), so counts
//! are asserted without flakiness.

use std::collections::{BTreeMap, BTreeSet};

use conformance::assign_trace::check::{
    leader_counts, leaders_improvable, rack_count, replica_counts, replicas_improvable, spanned,
    spread, violations,
};
use proto_core::assign::{
    leader_transfers, place_partitions, rebalance, Assignment, Cluster, NewPartitions,
    PlacementError, TopicPartition,
};
use proto_core::metadata::BrokerId;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const RACKS: [&str; 4] = ["a", "b", "c", "d"];

/// A cluster and the topics placed on it, oldest first.
#[derive(Clone, Debug)]
struct World {
    brokers: Vec<(i32, Option<String>)>,
    topics: Vec<Topic>,
}

#[derive(Clone, Debug)]
struct Topic {
    partitions: i32,
    rf: i16,
    seed: u64,
}

impl Arbitrary for Topic {
    fn arbitrary(g: &mut Gen) -> Topic {
        Topic {
            partitions: 1 + (u8::arbitrary(g) % 8) as i32,
            rf: 1 + (u8::arbitrary(g) % 4) as i16,
            seed: u64::arbitrary(g) % 16,
        }
    }
}

impl Arbitrary for World {
    fn arbitrary(g: &mut Gen) -> World {
        let n = 1 + (u8::arbitrary(g) % 9) as usize;
        let mut ids: Vec<i32> = (1..=12).collect();
        // Ids with gaps, so the order of ids is not the order of positions.
        while ids.len() > n {
            let i = usize::arbitrary(g) % ids.len();
            ids.remove(i);
        }
        let racks = 1 + usize::arbitrary(g) % 3;
        let mode = u8::arbitrary(g) % 3;
        let brokers = ids
            .into_iter()
            .map(|id| {
                let rack = Some(RACKS[usize::arbitrary(g) % racks].to_string());
                let rack = match mode {
                    0 => None,
                    1 => rack,
                    _ => rack.filter(|_| bool::arbitrary(g)),
                };
                (id, rack)
            })
            .collect();
        let topics = (0..usize::arbitrary(g) % 5)
            .map(|_| Topic::arbitrary(g))
            .collect();
        World { brokers, topics }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = World>> {
        let mut smaller: Vec<World> = self
            .topics
            .shrink()
            .map(|topics| World {
                brokers: self.brokers.clone(),
                topics,
            })
            .collect();
        if self.brokers.len() > 1 {
            for i in 0..self.brokers.len() {
                let mut brokers = self.brokers.clone();
                brokers.remove(i);
                smaller.push(World {
                    brokers,
                    topics: self.topics.clone(),
                });
            }
        }
        Box::new(smaller.into_iter())
    }
}

impl World {
    fn cluster(&self) -> Cluster {
        cluster_of(&self.brokers)
    }

    /// The topics placed, then rebalanced once: the fixed point a cluster
    /// sits at between membership changes (placement balances the new
    /// partitions only, so with racks an older imbalance may remain).
    fn settled(&self) -> Assignment {
        let mut a = self.assignment();
        rebalance(&self.cluster(), &a).apply(&mut a);
        a
    }

    /// The topics placed in order (rf capped at the cluster size).
    fn assignment(&self) -> Assignment {
        let cluster = self.cluster();
        let mut all = Assignment::new();
        for (i, t) in self.topics.iter().enumerate() {
            let req = NewPartitions {
                topic: format!("t{i}"),
                partitions: 0..t.partitions,
                replication_factor: t.rf.min(cluster.len() as i16),
                seed: t.seed,
            };
            let placed = place_partitions(&cluster, &all, &req).expect("capped rf is placeable");
            all.extend(placed);
        }
        all
    }
}

fn cluster_of(brokers: &[(i32, Option<String>)]) -> Cluster {
    Cluster::new(brokers.iter().map(|(id, r)| (BrokerId(*id), r.clone())))
}

/// A membership change: brokers leave (by position) and join (ids 13.., in
/// one of the world's racks, a new rack, or none).
#[derive(Clone, Debug)]
struct Change {
    leave: Vec<u8>,
    join: Vec<u8>,
}

impl Arbitrary for Change {
    fn arbitrary(g: &mut Gen) -> Change {
        let leave = (0..usize::arbitrary(g) % 3)
            .map(|_| u8::arbitrary(g))
            .collect();
        let join = (0..usize::arbitrary(g) % 3)
            .map(|_| u8::arbitrary(g))
            .collect();
        Change { leave, join }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Change>> {
        let join = self.join.clone();
        let leave = self.leave.clone();
        let a = self.leave.shrink().map(move |leave| Change {
            leave,
            join: join.clone(),
        });
        let b = self.join.shrink().map(move |join| Change {
            leave: leave.clone(),
            join,
        });
        Box::new(a.chain(b))
    }
}

impl Change {
    /// The brokers after the change.
    fn apply(&self, world: &World) -> Vec<(i32, Option<String>)> {
        let mut brokers = world.brokers.clone();
        for l in &self.leave {
            if brokers.len() > 1 {
                brokers.remove(*l as usize % brokers.len());
            }
        }
        let racks: Vec<Option<String>> = world
            .brokers
            .iter()
            .map(|(_, r)| r.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for (i, j) in self.join.iter().enumerate() {
            let rack = match j % 8 {
                // Mostly a rack the cluster has (or none, if it has none).
                0..=5 => racks[*j as usize % racks.len()].clone(),
                6 => Some("z".to_string()),
                _ => None,
            };
            brokers.push((13 + i as i32, rack));
        }
        brokers
    }
}

fn run(prop: impl quickcheck::Testable, seed: u64, tests: u64) {
    QuickCheck::new()
        .tests(tests)
        .max_tests(tests * 10)
        .rng(Gen::from_size_and_seed(100, seed))
        .quickcheck(prop);
}

#[test]
fn placement_keeps_the_rules() {
    fn prop(world: World, partitions: u8, rf: i8, seed: u64) -> TestResult {
        let cluster = world.cluster();
        let existing = world.assignment();
        let req = NewPartitions {
            topic: "new".to_string(),
            partitions: 0..(partitions % 9) as i32,
            replication_factor: (rf % 7) as i16,
            seed,
        };
        let got = place_partitions(&cluster, &existing, &req);
        if got != place_partitions(&cluster, &existing, &req) {
            return TestResult::error("two calls disagree");
        }
        let rf = req.replication_factor;
        let placed = match got {
            Err(PlacementError::NonPositiveReplicationFactor(_)) if rf < 1 => {
                return TestResult::passed()
            }
            Err(PlacementError::TooFewBrokers { .. }) if rf as usize > cluster.len() => {
                return TestResult::passed()
            }
            Err(e) => return TestResult::error(format!("refused: {e}")),
            Ok(_) if rf < 1 || rf as usize > cluster.len() => {
                return TestResult::error("placed an impossible replication factor")
            }
            Ok(p) => p,
        };
        if placed.len() != req.partitions.len() {
            return TestResult::error("wrong partitions");
        }
        let racks = rack_count(&cluster);
        for (tp, replicas) in &placed {
            if replicas.len() != rf as usize {
                return TestResult::error(format!("{tp}: {replicas:?} is not rf {rf}"));
            }
            if spanned(&cluster, replicas) != (rf as usize).min(racks) {
                return TestResult::error(format!("{tp}: {replicas:?} spans too few racks"));
            }
        }
        let v = violations(&cluster, &placed);
        if !v.is_empty() {
            return TestResult::error(v.join("; "));
        }
        let mut all = existing.clone();
        all.extend(placed.clone());
        if racks == 1 && spread(&replica_counts(&cluster, &all)) > 1 {
            return TestResult::error(format!("replicas uneven: {all:?}"));
        }
        if replicas_improvable(&cluster, &existing, &placed) {
            return TestResult::error(format!("a single move would even replicas: {placed:?}"));
        }
        if leaders_improvable(&cluster, &existing, &placed) {
            return TestResult::error(format!("leaders could be more even: {placed:?}"));
        }
        if racks == 1 && existing.is_empty() && spread(&leader_counts(&cluster, &all)) > 1 {
            return TestResult::error(format!("leaders uneven on a fresh cluster: {all:?}"));
        }
        // Every broker holds every new partition, so any leader will do: the
        // topic's own leaders are within one of even, and the cluster's stay
        // so if they were.
        let existing_even = spread(&leader_counts(&cluster, &existing)) <= 1;
        if rf as usize == cluster.len()
            && existing_even
            && spread(&leader_counts(&cluster, &placed)) > 1
        {
            return TestResult::error(format!("the topic's leaders are uneven: {placed:?}"));
        }
        if rf as usize == cluster.len()
            && existing_even
            && spread(&leader_counts(&cluster, &all)) > 1
        {
            return TestResult::error(format!("the cluster's leaders became uneven: {all:?}"));
        }
        TestResult::passed()
    }
    run(prop as fn(World, u8, i8, u64) -> TestResult, 1, 500);
}

/// What one rebalance did, for the bounds and the figures.
struct Outcome {
    /// Replicas that land on a new broker.
    moved: usize,
    /// The least any plan could move without racks; `None` with racks.
    lower_bound: Option<usize>,
    /// Replicas on departed brokers that a live broker could take.
    departed: usize,
    /// `ceil(replicas / brokers)` per joining broker, for a pure join to a
    /// cluster without racks; `None` otherwise.
    join_bound: Option<usize>,
    /// For a pure join, replicas that landed on a broker that was already
    /// there.
    onto_old: usize,
    evened: usize,
}

/// Rebalances `current` on `brokers` and checks every rule; the outcome or
/// what broke.
fn check_rebalance(
    brokers: &[(i32, Option<String>)],
    before: &[(i32, Option<String>)],
    current: &Assignment,
) -> Result<Outcome, String> {
    let cluster = cluster_of(brokers);
    let plan = rebalance(&cluster, current);
    if plan != rebalance(&cluster, current) {
        return Err("two calls disagree".into());
    }
    let mut target = current.clone();
    plan.apply(&mut target);
    for (tp, replicas) in &target {
        if replicas.len() != current[tp].len() {
            return Err(format!("{tp}: replication factor changed"));
        }
    }
    let v = violations(&cluster, &target);
    if !v.is_empty() {
        return Err(v.join("; "));
    }
    let wide: BTreeSet<TopicPartition> = target
        .iter()
        .filter(|(_, r)| r.len() > cluster.len())
        .map(|(tp, _)| tp.clone())
        .collect();
    if plan.under_replicated != wide {
        return Err(format!(
            "under-replicated {:?}, expected {wide:?}",
            plan.under_replicated
        ));
    }
    let racks = rack_count(&cluster);
    if racks == 1 && spread(&replica_counts(&cluster, &target)) > 1 {
        return Err(format!("replicas uneven: {target:?}"));
    }
    if replicas_improvable(&cluster, &Assignment::new(), &target) {
        return Err(format!("a single move would even replicas: {target:?}"));
    }
    if leaders_improvable(&cluster, &Assignment::new(), &target) {
        return Err(format!("leaders could be more even: {target:?}"));
    }
    if !rebalance(&cluster, &target).is_empty() {
        return Err("rebalancing the result moves something".into());
    }
    let moved = plan.moved_replicas();
    let c = plan.counts;
    if moved > c.replaced + c.rack_repairs + c.evened {
        return Err(format!("net moves {moved} exceed the passes' {c:?}"));
    }
    let departed: usize = current
        .values()
        .map(|r| {
            let dead = r.iter().filter(|b| !cluster.contains(**b)).count();
            dead.min(cluster.len().saturating_sub(r.len() - dead))
        })
        .sum();
    if moved < departed {
        return Err(format!(
            "{moved} moves cannot replace {departed} departed replicas"
        ));
    }
    let lower_bound = (racks == 1).then(|| departed + forced_moves(&cluster, current, departed));
    if let Some(lb) = lower_bound {
        if moved < lb {
            return Err(format!("moved {moved} below the lower bound {lb}"));
        }
    }
    let old: BTreeSet<i32> = before.iter().map(|(id, _)| *id).collect();
    let joined = brokers.iter().filter(|(id, _)| !old.contains(id)).count();
    let pure_join = brokers.len() == old.len() + joined
        && rack_count(&cluster_of(before)) == racks
        && joined > 0;
    let total: usize = current.values().map(Vec::len).sum();
    let join_bound = (pure_join && racks == 1).then(|| joined * total.div_ceil(cluster.len()));
    if let Some(bound) = join_bound {
        if moved > bound {
            return Err(format!("a join moved {moved}, more than {bound}"));
        }
    }
    let onto_old = if pure_join {
        let added = plan.reassignments.iter().flat_map(|r| r.added());
        added.filter(|b| old.contains(&b.0)).count()
    } else {
        0
    };
    Ok(Outcome {
        moved,
        lower_bound,
        departed,
        join_bound,
        onto_old,
        evened: c.evened,
    })
}

/// Replicas that must leave live brokers for the counts to be within one
/// of even, once `departed` more replicas are placed: the largest brokers
/// keep the `+1`s.
fn forced_moves(cluster: &Cluster, current: &Assignment, departed: usize) -> usize {
    let mut loads: Vec<usize> = replica_counts(cluster, current).into_values().collect();
    loads.sort_unstable_by(|a, b| b.cmp(a));
    let total: usize = loads.iter().sum::<usize>() + departed;
    let (floor, extra) = (total / loads.len(), total % loads.len());
    loads
        .iter()
        .enumerate()
        .map(|(i, l)| l.saturating_sub(floor + usize::from(i < extra)))
        .sum()
}

#[test]
fn rebalance_after_membership_changes_keeps_the_rules_and_bounds() {
    fn prop(world: World, change: Change) -> TestResult {
        let current = world.settled();
        let after = change.apply(&world);
        match check_rebalance(&after, &world.brokers, &current) {
            Ok(_) => TestResult::passed(),
            Err(e) => TestResult::error(e),
        }
    }
    run(prop as fn(World, Change) -> TestResult, 2, 500);
}

/// Any replica lists at all: departed brokers, unknown ids, lists longer
/// than the cluster.
#[derive(Clone, Debug)]
struct Messy(Vec<Vec<u8>>);

impl Arbitrary for Messy {
    fn arbitrary(g: &mut Gen) -> Messy {
        let lists = (0..usize::arbitrary(g) % 12)
            .map(|_| {
                let mut ids: Vec<u8> = (1..=12).collect();
                let len = 1 + usize::arbitrary(g) % 4;
                (0..len)
                    .map(|_| ids.remove(usize::arbitrary(g) % ids.len()))
                    .collect()
            })
            .collect();
        Messy(lists)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Messy>> {
        Box::new(self.0.shrink().map(Messy))
    }
}

#[test]
fn rebalance_repairs_any_assignment() {
    fn prop(world: World, messy: Messy) -> TestResult {
        let current: Assignment = messy
            .0
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let replicas = l.iter().map(|b| BrokerId(i32::from(*b))).collect();
                (TopicPartition::new("m", i as i32), replicas)
            })
            .collect();
        match check_rebalance(&world.brokers, &world.brokers, &current) {
            Ok(_) => TestResult::passed(),
            Err(e) => TestResult::error(e),
        }
    }
    run(prop as fn(World, Messy) -> TestResult, 3, 500);
}

#[test]
fn leader_transfers_are_bounded_and_reach_the_preferred_leaders() {
    fn prop(world: World, picks: Vec<u8>, max: u8, gone: bool) -> TestResult {
        let assignment = world.assignment();
        // The first broker may have gone since: its leaderships and
        // preferred leaderships cannot transfer.
        let live = if gone {
            &world.brokers[1..]
        } else {
            &world.brokers[..]
        };
        let cluster = cluster_of(live);
        // Current leaders: some replica of each partition, or none.
        let mut picks = picks.into_iter().cycle().chain(std::iter::repeat(0));
        let leaders: BTreeMap<TopicPartition, BrokerId> = assignment
            .iter()
            .filter_map(|(tp, r)| {
                let p = picks.next().unwrap_or(0) as usize;
                (!p.is_multiple_of(5)).then(|| (tp.clone(), r[p % r.len()]))
            })
            .collect();
        let max = (max % 6) as usize;
        let some = leader_transfers(&cluster, &assignment, &leaders, max);
        if some != leader_transfers(&cluster, &assignment, &leaders, max) {
            return TestResult::error("two calls disagree");
        }
        if some.len() > max {
            return TestResult::error("over the bound");
        }
        let all = leader_transfers(&cluster, &assignment, &leaders, usize::MAX);
        if all[..some.len()] != some[..] {
            return TestResult::error("a bounded call is not a prefix of the full one");
        }
        let mut after = leaders.clone();
        let mut seen = BTreeSet::new();
        for t in &all {
            if !seen.insert(t.partition.clone())
                || leaders.get(&t.partition) != Some(&t.from)
                || assignment[&t.partition].first() != Some(&t.to)
                || !cluster.contains(t.to)
                || !cluster.contains(t.from)
                || t.from == t.to
            {
                return TestResult::error(format!("bad transfer {t:?}"));
            }
            after.insert(t.partition.clone(), t.to);
        }
        for (tp, leader) in &after {
            let preferred = assignment[tp][0];
            if *leader != preferred && cluster.contains(*leader) && cluster.contains(preferred) {
                return TestResult::error(format!("{tp} is not back on {preferred}"));
            }
        }
        TestResult::passed()
    }
    run(prop as fn(World, Vec<u8>, u8, bool) -> TestResult, 4, 300);
}

/// The generator reaches every kind of cluster and change the rules
/// distinguish, so the properties above are not vacuous.
#[test]
fn generated_worlds_cover_the_cases() {
    let mut g = Gen::from_size_and_seed(100, 6);
    let (mut rackless, mut racked, mut mixed) = (0, 0, 0);
    let (mut under_replicated, mut rack_repairs, mut replaced, mut evened) = (0, 0, 0, 0);
    for _ in 0..300 {
        let world = World::arbitrary(&mut g);
        let with_rack = world.brokers.iter().filter(|(_, r)| r.is_some()).count();
        match with_rack {
            0 => rackless += 1,
            n if n == world.brokers.len() => racked += 1,
            _ => mixed += 1,
        }
        let after = Change::arbitrary(&mut g).apply(&world);
        let plan = rebalance(&cluster_of(&after), &world.settled());
        under_replicated += usize::from(!plan.under_replicated.is_empty());
        rack_repairs += usize::from(plan.counts.rack_repairs > 0);
        replaced += usize::from(plan.counts.replaced > 0);
        evened += usize::from(plan.counts.evened > 0);
    }
    let seen = [
        rackless,
        racked,
        mixed,
        under_replicated,
        rack_repairs,
        replaced,
        evened,
    ];
    assert!(seen.iter().all(|n| *n >= 15), "{seen:?}");
}

/// Totals over the figures' runs.
#[derive(Debug, Default)]
struct Figures {
    runs: usize,
    moved: usize,
    /// The join bounds summed (rackless joins only).
    bound: usize,
    departed: usize,
    evened: usize,
    /// The most moves one run made beyond its departed replicas.
    max_extra: usize,
    /// Replicas a join put on brokers other than the joiner.
    onto_old: usize,
    /// Rackless runs, those that moved exactly the lower bound, and the
    /// most any moved beyond it.
    rackless: usize,
    at_lower_bound: usize,
    max_over_lower_bound: usize,
}

impl Figures {
    fn add(&mut self, o: &Outcome) {
        self.runs += 1;
        self.moved += o.moved;
        self.bound += o.join_bound.unwrap_or(0);
        self.departed += o.departed;
        self.evened += o.evened;
        self.max_extra = self.max_extra.max(o.moved - o.departed);
        self.onto_old += o.onto_old;
        if let Some(lb) = o.lower_bound {
            self.rackless += 1;
            self.at_lower_bound += usize::from(o.moved == lb);
            self.max_over_lower_bound = self.max_over_lower_bound.max(o.moved - lb);
        }
    }
}

/// The movement figures behind the bounds, over 1000 fixed-seed settled
/// worlds: one broker joins (in the rack of the world's first broker), or
/// the first broker leaves. Run with `--nocapture` to see the totals. What
/// they show:
///
/// - a rackless join moves exactly the lower bound, which is at most
///   `ceil(replicas / brokers)`, all onto the joiner;
/// - a rackless leave moves the departed replicas plus at most one more
///   than the lower bound (the bound ignores that a partition cannot take
///   a broker twice, which can force one extra move);
/// - with racks a join moves almost only onto the joiner: a broker that
///   its rack ties to many partitions may shed onto a broker the joiner
///   relieved.
#[test]
fn movement_figures() {
    let mut g = Gen::from_size_and_seed(100, 5);
    let mut plain_joins = Figures::default();
    let mut rack_joins = Figures::default();
    let mut leaves = Figures::default();
    for _ in 0..1000 {
        let world = World::arbitrary(&mut g);
        let current = world.settled();
        let mut joined = world.brokers.clone();
        joined.push((13, world.brokers[0].1.clone()));
        let o = check_rebalance(&joined, &world.brokers, &current)
            .unwrap_or_else(|e| panic!("join to {world:?}: {e}"));
        if o.onto_old > 0 {
            eprintln!(
                "DEBUG {world:?}\n{current:?}\n{:?}",
                rebalance(&cluster_of(&joined), &current)
            );
        }
        if o.lower_bound.is_some() {
            plain_joins.add(&o);
        } else {
            rack_joins.add(&o);
        }
        if world.brokers.len() > 1 {
            let left = world.brokers[1..].to_vec();
            let o = check_rebalance(&left, &world.brokers, &current)
                .unwrap_or_else(|e| panic!("leave of {world:?}: {e}"));
            leaves.add(&o);
        }
    }
    eprintln!("joins without racks: {plain_joins:?}");
    eprintln!("joins with racks: {rack_joins:?}");
    eprintln!("leaves: {leaves:?}");
    assert!(plain_joins.runs >= 200 && rack_joins.runs >= 200 && leaves.runs >= 500);
    assert!(plain_joins.moved <= plain_joins.bound);
    assert_eq!(plain_joins.rackless, plain_joins.at_lower_bound);
    assert_eq!(plain_joins.onto_old, 0);
    assert!(leaves.max_over_lower_bound <= 1, "{leaves:?}");
    assert!(
        leaves.at_lower_bound * 100 >= leaves.rackless * 95,
        "{leaves:?}"
    );
    assert!(
        rack_joins.onto_old * 100 <= rack_joins.moved,
        "{rack_joins:?}"
    );
}
