//! ISR tracker trace conformance: every `traces/isr/*.trace` scenario runs
//! against a fresh tracker and its transcript must match the reviewed insta
//! snapshot in `tests/snapshots/`. After an intended behaviour change,
//! regenerate with `INSTA_UPDATE=always cargo test -p conformance --test
//! isr_traces` and read the diff before committing it.

mod trace_runner;

use trace_runner::{trace_snapshots, Impossible};

trace_snapshots!(
    "../traces/isr",
    conformance::isr_trace::run,
    Impossible::InSnapshot
);
