//! The run's seeded random streams and the draws every module uses.
//!
//! Each concern draws from its own stream of the seed, so changing how one
//! draws (the nemesis, say) leaves the network, disk and clients where they
//! were.

use rand_chacha::ChaCha8Rng;

/// The independent streams of one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The parameters [`super::Params::drawn`] picks.
    Params = 1,
    /// The nemesis schedule.
    Nemesis = 2,
    /// Frame loss and delay.
    Network = 3,
    /// Disk latency and what a crash keeps.
    Disk = 4,
    /// Clients' choices and latencies.
    Clients = 5,
    /// The nodes' own seeds and tick phases.
    Nodes = 6,
    /// Latency between clients and nodes.
    ClientNet = 7,
}

/// The RNG of one stream of `seed`.
pub fn stream(seed: u64, which: Stream) -> ChaCha8Rng {
    crate::sim::params::stream_number(seed, which as u64)
}

/// The draws are the Raft simulator's, so both read their seeds alike.
pub use crate::sim::params::{below, between, chance, pick};
