//! The tracker's one knob, named after the Kafka setting it mirrors, with
//! Kafka's default.

/// How many samples of the leader's log end the tracker keeps per lag window;
/// see [`IsrConfig::history_resolution_ms`].
const HISTORY_SAMPLES: u64 = 32;

/// Configuration of the ISR tracker of one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IsrConfig {
    /// `replica.lag.time.max.ms`: how long a follower may go without having
    /// caught up with the leader's log end before it leaves the ISR.
    pub lag_time_max_ms: u64,
}

impl Default for IsrConfig {
    /// Kafka's default since 2.5 (KIP-537): 30 seconds.
    fn default() -> IsrConfig {
        IsrConfig {
            lag_time_max_ms: 30_000,
        }
    }
}

impl IsrConfig {
    /// The spacing of the remembered samples of the leader's log end, which
    /// bounds the tracker's error: a follower is never judged caught up later
    /// than it really was, and at most this much earlier, so it may leave the
    /// ISR up to this much before the exact bound (never after). Memory stays
    /// at two lag windows of samples, whatever the append rate.
    pub fn history_resolution_ms(&self) -> u64 {
        (self.lag_time_max_ms / HISTORY_SAMPLES).max(1)
    }
}
