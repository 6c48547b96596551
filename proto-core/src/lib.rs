//! Chronik's decisions as pure state machines.
//!
//! Every module here follows one contract: events in, actions out, no IO, no
//! clock reads, no threads, no unseeded randomness. Drivers (`io-tokio`,
//! `io-sync`) perform the actions; the conformance suite replays and simulates.

pub mod assign;
pub mod group;
pub mod isr;
pub mod metadata;
pub mod multiraft;
pub mod producer;
pub mod raft;
pub mod storage;
pub mod transport;
