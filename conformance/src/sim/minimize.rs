//! Delta debugging of failing plans: drop nemesis ops one at a time, keeping
//! each drop that still fails the same way, until no single drop does; then
//! try turning the lossy network off.
//!
//! The result is usually a handful of ops, which is what a human wants to read
//! next to the event log of `cargo xtask sim --trace FILE`.

use super::{run, Failure, Plan};

/// How many full passes over the schedule, at most: each pass is one run per op.
const MAX_PASSES: usize = 4;

/// The smallest plan found that still fails with `failure`'s kind, and its
/// failure. `failure` must be what running `plan` gave.
pub fn minimize(plan: &Plan, failure: &Failure) -> (Plan, Failure) {
    let kind = failure.violation.kind;
    let still_fails = |p: &Plan| run(p).failure.filter(|f| f.violation.kind == kind);
    let mut best = plan.clone();
    let mut best_failure = failure.clone();
    // Ops after the failing tick never ran.
    best.schedule.retain(|s| s.at <= best_failure.tick);
    for _ in 0..MAX_PASSES {
        let mut changed = false;
        let mut i = best.schedule.len();
        while i > 0 {
            i -= 1;
            let mut candidate = best.clone();
            candidate.schedule.remove(i);
            if let Some(f) = still_fails(&candidate) {
                candidate.schedule.retain(|s| s.at <= f.tick);
                i = i.min(candidate.schedule.len());
                best = candidate;
                best_failure = f;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let calmer: [fn(&mut Plan); 3] = [
        |p| p.params.drop_per_mille = 0,
        |p| p.params.dup_per_mille = 0,
        |p| p.params.slow_per_mille = 0,
    ];
    for calm in calmer {
        let mut candidate = best.clone();
        calm(&mut candidate);
        if candidate == best {
            continue;
        }
        if let Some(f) = still_fails(&candidate) {
            best = candidate;
            best_failure = f;
        }
    }
    (best, best_failure)
}
