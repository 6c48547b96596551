//! How long a node waits before dialling an unreachable peer again.
//!
//! Exponential backoff with "equal jitter": the ceiling starts at `min` and
//! doubles after every failed attempt up to `max`, and each wait is half the
//! ceiling plus a random part of the other half. The doubling keeps a dead
//! peer cheap; the jitter keeps the nodes of a cluster that lost a peer at the
//! same moment from dialling it in lockstep; the fixed half keeps a refused
//! dial from turning into a busy loop. The randomness is a seeded generator,
//! so the delays are reproducible; drivers seed it differently per node.

use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The reconnect delays towards one peer.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
    rng: ChaCha8Rng,
}

impl Backoff {
    /// Delays between `min / 2` and `max` (a `max` below `min` counts as
    /// `min`), jittered by a generator seeded with `seed`.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            ceiling: min,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The wait before the next attempt, after one failed.
    pub fn next_delay(&mut self) -> Duration {
        let half = self.ceiling / 2;
        let spread = u64::try_from((self.ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = Duration::from_nanos(self.rng.next_u64() % spread.saturating_add(1));
        self.ceiling = self.ceiling.saturating_mul(2).min(self.max);
        half + jitter
    }

    /// An attempt succeeded: the next failure waits about `min` again.
    pub fn reset(&mut self) {
        self.ceiling = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(2);

    #[test]
    fn delays_grow_to_the_bound_and_stay_within_it() {
        let mut b = Backoff::new(MIN, MAX, 7);
        let mut ceiling = MIN;
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} vs {ceiling:?}");
            ceiling = (ceiling * 2).min(MAX);
        }
        assert_eq!(ceiling, MAX);
    }

    #[test]
    fn reset_starts_over_and_seeds_reproduce() {
        let mut a = Backoff::new(MIN, MAX, 1);
        let first: Vec<_> = (0..6).map(|_| a.next_delay()).collect();
        a.reset();
        assert!(a.next_delay() <= MIN);
        let mut again = Backoff::new(MIN, MAX, 1);
        let replay: Vec<_> = (0..6).map(|_| again.next_delay()).collect();
        assert_eq!(first, replay);
        let mut other = Backoff::new(MIN, MAX, 2);
        let different: Vec<_> = (0..6).map(|_| other.next_delay()).collect();
        assert_ne!(first, different);
    }

    #[test]
    fn degenerate_bounds_do_not_panic() {
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO, 3);
        assert_eq!(zero.next_delay(), Duration::ZERO);
        let mut inverted = Backoff::new(MAX, MIN, 3);
        assert!(inverted.next_delay() <= MAX);
        let mut huge = Backoff::new(Duration::MAX, Duration::MAX, 3);
        assert!(huge.next_delay() >= Duration::MAX / 2);
    }
}
