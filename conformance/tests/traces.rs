//! Trace conformance: every `traces/*.trace` scenario runs against a fresh
//! in-memory cluster and its transcript must match the reviewed insta snapshot
//! in `tests/snapshots/`. After an intended behaviour change, regenerate with
//! `INSTA_UPDATE=always cargo test -p conformance --test traces` (or
//! `cargo insta review`) and read the diff before committing it.

mod trace_runner;

use trace_runner::{trace_snapshots, Impossible};

trace_snapshots!(
    "../traces",
    conformance::interaction::run,
    Impossible::InSnapshot
);
