//! Group-coordinator trace conformance: every `traces/group/*.trace` scenario
//! runs against a fresh coordinator and its transcript must match the
//! reviewed insta snapshot in `tests/snapshots/`. After an intended behaviour
//! change, regenerate with
//! `INSTA_UPDATE=always cargo test -p conformance --test group_traces` and read
//! the diff before committing it.

mod trace_runner;

use trace_runner::{trace_snapshots, Impossible};

trace_snapshots!(
    "../traces/group",
    conformance::group_trace::run,
    Impossible::Fail("the environment saw something impossible")
);
