//! The simulator's own guarantees: a seed replays bit for bit, a trace file
//! round-trips, healthy Raft passes, and broken Raft is caught.

use conformance::sim::{self, trace, Plan, SimOptions, ViolationKind};
use proto_core::raft::FaultSwitches;

/// Seeds the fault-switch tests search; each switch is caught well inside it.
const FAULT_SEED_BUDGET: u64 = 120;

#[test]
fn a_seed_replays_the_same_event_log() {
    let plan = Plan::from_seed(7, &SimOptions::default());
    let (first, log_a) = sim::run_recorded(&plan);
    let (second, log_b) = sim::run_recorded(&plan);
    assert!(log_a.len() > 1000, "the run did too little to compare");
    assert_eq!(log_a, log_b);
    assert_eq!(first.stats, second.stats);
}

#[test]
fn different_seeds_run_differently() {
    let a = sim::run_recorded(&Plan::from_seed(1, &SimOptions::default())).1;
    let b = sim::run_recorded(&Plan::from_seed(2, &SimOptions::default())).1;
    assert_ne!(a, b);
}

#[test]
fn a_rendered_trace_parses_back_to_its_plan() {
    let plan = Plan::from_seed(11, &SimOptions::default());
    let text = trace::render(&plan, None);
    let parsed = trace::parse(&text).expect("a rendered trace parses");
    assert_eq!(parsed.plan, plan);
    assert_eq!(parsed.expect, None);
}

#[test]
fn healthy_raft_passes_a_batch_of_seeds() {
    for seed in 0..40 {
        let outcome = sim::run_seed(seed, &SimOptions::default());
        assert!(
            outcome.failure.is_none(),
            "seed {seed}: {:?}",
            outcome.failure
        );
        assert!(outcome.stats.applied > 0, "seed {seed} applied nothing");
    }
}

/// The first seed below the budget whose run reports a safety violation with
/// `faults` switched on.
fn first_violation(faults: FaultSwitches) -> Option<(u64, ViolationKind)> {
    let opts = SimOptions {
        faults,
        ..SimOptions::default()
    };
    (0..FAULT_SEED_BUDGET).find_map(|seed| {
        let failure = sim::run_seed(seed, &opts).failure?;
        (failure.violation.kind != ViolationKind::Liveness)
            .then_some((seed, failure.violation.kind))
    })
}

#[test]
fn acknowledging_before_persisting_is_caught() {
    let faults = FaultSwitches {
        ack_before_persist: true,
        ..FaultSwitches::default()
    };
    let found = first_violation(faults);
    assert!(found.is_some(), "no violation in {FAULT_SEED_BUDGET} seeds");
}

#[test]
fn skipping_the_figure8_rule_is_caught() {
    let faults = FaultSwitches {
        skip_figure8_rule: true,
        ..FaultSwitches::default()
    };
    let found = first_violation(faults);
    assert!(found.is_some(), "no violation in {FAULT_SEED_BUDGET} seeds");
}

/// The bug `poll_election` fixed: a candidate led on its peers' votes before
/// its own term and vote were durable, lost them in a crash, and won the
/// same term again with a different log. Only the slow-disk layer finds it:
/// leadership handed to a node whose disk is slower than the network, a power
/// loss right after its first proposal, and a quick restart that campaigns
/// while its voters still remember their votes.
#[test]
fn leading_before_the_own_vote_is_durable_is_caught() {
    let faults = FaultSwitches {
        lead_before_own_vote_durable: true,
        ..FaultSwitches::default()
    };
    let found = first_violation(faults);
    assert!(found.is_some(), "no violation in {FAULT_SEED_BUDGET} seeds");
}
