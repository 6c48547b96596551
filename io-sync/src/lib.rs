//! The blocking driver for Chronik's proto-core (empty today).
//!
//! It will hold a `mio` poll loop with worker threads and `crossbeam` channels that
//! turn sockets, timers and disk completions into proto-core events and perform the
//! actions that come back, plus the blocking disk layer both drivers share: segment
//! files, fsync and group commit. It decides nothing; proto-core does.
//!
//! Built by the "single-node broker" issue. Until then this crate is deliberately
//! empty rather than a stub that pretends to work.
