//! Partition-assignment trace conformance: every `traces/assign/*.trace`
//! scenario runs against a fresh environment and its transcript must match
//! the reviewed insta snapshot in `tests/snapshots/`. After an intended
//! behaviour change, regenerate with
//! `INSTA_UPDATE=always cargo test -p conformance --test assign_traces` and
//! read the diff before committing it.

mod trace_runner;

use trace_runner::{trace_snapshots, Impossible};

trace_snapshots!(
    "../traces/assign",
    conformance::assign_trace::run,
    Impossible::Fail("a rule broke")
);
