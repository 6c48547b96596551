//! The coordinator's knobs, named after the Kafka broker settings they mirror,
//! with Kafka's defaults in one place.

/// Configuration of one coordinator (one offsets partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `group.min.session.timeout.ms`: joins with a shorter session timeout are refused.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: joins with a longer session timeout are refused.
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// empty group waits for more members, extended per new member up to the
    /// rebalance timeout.
    pub initial_rebalance_delay_ms: u64,
    /// `offsets.retention.minutes` in ms: how long the offsets of an empty group
    /// (or of a standalone consumer, since its commit) are kept.
    pub offsets_retention_ms: u64,
    /// `offsets.retention.check.interval.ms`: how often expired offsets and
    /// empty groups without offsets are removed.
    pub offsets_retention_check_interval_ms: u64,
    /// `group.max.size`: members (and, separately, members awaiting their
    /// KIP-394 rejoin) per group.
    pub max_group_size: usize,
    /// `offset.metadata.max.bytes`: the longest metadata string of a commit,
    /// counted in UTF-16 units as Kafka's `String.length()` does.
    pub max_metadata_bytes: usize,
    /// Seeds the generator of member ids. Use a different seed per coordinator
    /// incarnation so ids do not repeat across restarts.
    pub seed: u64,
}

impl CoordinatorConfig {
    /// Kafka's broker defaults, with `seed` for member ids.
    pub fn kafka_defaults(seed: u64) -> CoordinatorConfig {
        CoordinatorConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            max_group_size: 1000,
            max_metadata_bytes: 4096,
            seed,
        }
    }
}
