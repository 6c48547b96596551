//! The async driver for Chronik's proto-core (empty today).
//!
//! It will do on tokio what `io-sync` does with a `mio` loop: turn sockets, timers
//! and disk completions into proto-core events and perform the actions that come
//! back, reusing `io-sync`'s disk layer. It decides nothing; proto-core does.
//!
//! Built by the "single-node broker" issue. Until then this crate is deliberately
//! empty rather than a stub that pretends to work.
