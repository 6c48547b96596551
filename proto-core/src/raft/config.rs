//! The knobs of one Raft group, with defaults in one place.

use super::types::NodeId;

/// How the leader serves [`Event::ReadIndex`](super::Event::ReadIndex).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Confirm leadership with a heartbeat round acknowledged by a quorum.
    Safe,
    /// Serve at once while the leader holds a lease: a quorum acknowledged a
    /// heartbeat sent less than `election_ticks - max_clock_drift_ticks` ago, so no
    /// other leader can exist yet. Needs CheckQuorum. Falls back to `Safe`.
    Lease {
        /// How many ticks a follower's clock may run ahead of the leader's within
        /// one election timeout.
        max_clock_drift_ticks: u32,
    },
}

/// Test-only switches that break Raft on purpose, to prove the simulator's checks
/// can fail. Compiled only with the `fault-switches` feature.
#[cfg(feature = "fault-switches")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultSwitches {
    /// Commit entries of earlier terms by counting replicas (ignores Figure 8).
    pub skip_figure8_rule: bool,
    /// Acknowledge appends and count the leader's own entries before they are durable.
    pub ack_before_persist: bool,
    /// Let a candidate lead on the others' votes before its own vote is durable.
    pub lead_before_own_vote_durable: bool,
}

/// Configuration of one Raft group on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node.
    pub id: NodeId,
    /// Minimum election timeout in ticks; the actual one is drawn from
    /// `[election_ticks, 2 * election_ticks)`.
    pub election_ticks: u32,
    /// Ticks between heartbeats; must be less than `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Ask for pre-votes before starting an election.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps
    /// down, and followers ignore vote requests while they hear from a leader.
    pub check_quorum: bool,
    /// How reads are confirmed.
    pub read_mode: ReadMode,
    /// Soft limit on the entry bytes in one append message.
    pub max_msg_bytes: usize,
    /// Appends in flight to one follower before the leader waits for answers.
    pub max_inflight_msgs: usize,
    /// Entry bytes in flight to one follower before the leader waits (0: no limit).
    pub max_inflight_bytes: usize,
    /// Bytes per snapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// A learner is promoted only if it lags the leader's log by at most this many entries.
    pub learner_catchup_lag: u64,
    /// Stop ticking and heartbeating when the group is idle and fully replicated.
    pub quiesce: bool,
    /// The driver's storage keeps the entries compacted out of the in-memory log
    /// (a Kafka partition's log is its data): a follower behind the in-memory log
    /// is sent them through [`Action::LoadEntries`](super::Action::LoadEntries)
    /// rather than a snapshot, which falls back only if storage lost them.
    pub load_compacted: bool,
    /// Seed for the randomized election timeouts.
    pub seed: u64,
    /// Test-only breakage; see [`FaultSwitches`].
    #[cfg(feature = "fault-switches")]
    pub faults: FaultSwitches,
}

impl Config {
    /// Sensible defaults for node `id`: a 10-tick election timeout, heartbeat each
    /// tick, PreVote and CheckQuorum on, safe reads.
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            read_mode: ReadMode::Safe,
            max_msg_bytes: 1 << 20,
            max_inflight_msgs: 256,
            max_inflight_bytes: 0,
            snapshot_chunk_bytes: 1 << 20,
            learner_catchup_lag: 0,
            quiesce: false,
            load_compacted: false,
            seed: id.0,
            #[cfg(feature = "fault-switches")]
            faults: FaultSwitches::default(),
        }
    }

    /// Checks the combination of settings; returns why it cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError("heartbeat_ticks must be at least 1"));
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError("election_ticks must exceed heartbeat_ticks"));
        }
        if self.max_inflight_msgs == 0 {
            return Err(ConfigError("max_inflight_msgs must be at least 1"));
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err(ConfigError("snapshot_chunk_bytes must be at least 1"));
        }
        if let ReadMode::Lease {
            max_clock_drift_ticks,
        } = self.read_mode
        {
            if !self.check_quorum {
                return Err(ConfigError("lease reads need check_quorum"));
            }
            if max_clock_drift_ticks >= self.election_ticks {
                return Err(ConfigError(
                    "max_clock_drift_ticks must be below election_ticks",
                ));
            }
        }
        Ok(())
    }
}

/// A configuration that cannot work, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid raft config: {0}")]
pub struct ConfigError(pub &'static str);
