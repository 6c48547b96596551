//! The run's seeded random streams and the draws every module uses.
//!
//! Each concern draws from its own stream of the seed, so changing how one
//! draws (the nemesis, say) leaves the network, disk and clients where they
//! were.

use rand_chacha::rand_core::{RngCore, SeedableRng};
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
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(which as u64);
    rng
}

/// A uniform draw from `0..n` (0 when `n` is 0).
pub fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        rng.next_u64() % n
    }
}

/// A uniform draw from `lo..=hi`.
pub fn between(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    lo + below(rng, hi.saturating_sub(lo) + 1)
}

/// True with probability `per_mille / 1000`.
pub fn chance(rng: &mut ChaCha8Rng, per_mille: u64) -> bool {
    below(rng, 1000) < per_mille
}

/// One of `items`, uniformly.
pub fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[below(rng, items.len() as u64) as usize]
}
