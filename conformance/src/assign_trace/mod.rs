//! Partition-assignment traces: a cluster's brokers come and go, topics are
//! created, and the assigner's answers are rendered as one stable
//! transcript per trace in the [`crate::datadriven`] form.
//!
//! The environment holds the live brokers, every partition's replica list
//! and its current leader. A new partition's first leader is its preferred
//! leader; when a broker leaves, each partition it led elects the next live
//! replica in its list (the environment's stand-in for a Raft election),
//! and a leader dropped from its list by a rebalance hands over to the new
//! first replica.
//!
//! Commands (`[..]` is optional):
//!
//! - `brokers 1 2 3 [racks=a,b,c]`: the live brokers, replacing any; `-` is
//!   a broker without a rack.
//! - `add-broker ID [rack=R]`, `remove-broker ID...`: membership changes;
//!   nothing is reassigned until `rebalance`.
//! - `create TOPIC partitions=N rf=R [seed=S]`: CreateTopics; prints the new
//!   replica lists or the error.
//! - `add-partitions TOPIC total=N [seed=S]`: CreatePartitions, at the
//!   topic's replication factor.
//! - `rebalance`: prints and applies the plan.
//! - `transfer-leaders [max=N]`: prints and applies the leader transfers.
//! - `show`: every partition and the per-broker counts.
//!
//! After `create`, `add-partitions` and `rebalance` the environment checks
//! the assigner's answer against the hard rules from the outside
//! ([`check::violations`]) and prints `!! ` lines if one broke. (Between a
//! `remove-broker` and the next `rebalance` the departed broker's replicas
//! are expected to stay where they are.)

pub mod check;
mod env;
mod render;

pub use env::Env;

use crate::datadriven::{run_transcript, CommandError};

/// Runs an assignment trace and returns its transcript.
pub fn run(text: &str) -> Result<String, CommandError> {
    let mut env = Env::default();
    run_transcript(text, |cmd| {
        env.run(cmd)?;
        Ok(std::mem::take(&mut env.out))
    })
}
