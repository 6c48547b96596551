//! Everything a seed decides before the run starts: cluster size, Raft knobs,
//! network and disk behaviour, workload rate and phase lengths.
//!
//! Each concern draws from its own RNG stream of the seed ([`stream`]), so
//! changing how one concern draws (or dropping a nemesis op) leaves the others'
//! draws untouched.

use proto_core::raft::{Config, FaultSwitches, NodeId, ReadMode};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Simulated time units per logical tick. Messages and disk writes complete at
/// unit granularity, so they interleave with ticks and with each other.
pub const TICK: u64 = 16;

/// The independent RNG streams derived from one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Cluster parameters.
    Params = 1,
    /// The nemesis schedule.
    Nemesis = 2,
    /// Message drop, duplication and delay.
    Network = 3,
    /// Disk write latency.
    Disk = 4,
    /// Client proposals.
    Workload = 5,
    /// The slow-disk layer of the nemesis schedule.
    SlowDisks = 6,
    /// Whether storage keeps compacted entries (`Config::load_compacted`).
    Storage = 7,
}

/// The RNG of one stream of `seed`.
pub fn stream(seed: u64, which: Stream) -> ChaCha8Rng {
    stream_number(seed, which as u64)
}

/// The RNG of stream number `n` of `seed`: how both simulators derive
/// independent streams from one seed (each numbers its own streams).
pub fn stream_number(seed: u64, n: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(n);
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

/// The parameters of one run. Derived from the seed, and written in full into
/// trace files so a replay does not depend on how they were derived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Founding voters, numbered `1..=nodes`.
    pub nodes: u64,
    /// Spare ids after the founders that membership changes may add, once each.
    pub spares: u64,
    /// Ticks of the fault phase (nemesis, lossy network, workload).
    pub fault_ticks: u64,
    /// Ticks the healed cluster may go without the slowest voter applying
    /// anything before it is declared stuck.
    pub liveness_ticks: u64,
    /// Raft's minimum election timeout.
    pub election_ticks: u32,
    /// Raft's heartbeat interval.
    pub heartbeat_ticks: u32,
    /// Raft's PreVote switch.
    pub pre_vote: bool,
    /// Raft's CheckQuorum switch.
    pub check_quorum: bool,
    /// Raft's quiesce switch.
    pub quiesce: bool,
    /// Storage keeps compacted entries and leaders load them for lagging
    /// followers instead of sending snapshots.
    pub load_compacted: bool,
    /// With `load_compacted`: a compaction also deletes the older half of
    /// the stored entries it covers, as retention deletes old segments, so
    /// lagging followers restart at storage's start (`LogStartLoaded`).
    pub retention: bool,
    /// Raft's in-flight append window.
    pub max_inflight_msgs: usize,
    /// Raft's soft limit on entry bytes per append.
    pub max_msg_bytes: usize,
    /// Raft's snapshot chunk size.
    pub snapshot_chunk_bytes: usize,
    /// Raft's learner catch-up slack.
    pub learner_catchup_lag: u64,
    /// Per-mille chance a message is lost.
    pub drop_per_mille: u64,
    /// Per-mille chance a message is delivered twice.
    pub dup_per_mille: u64,
    /// Shortest message delay, in time units.
    pub delay_min: u64,
    /// Longest usual message delay, in time units.
    pub delay_max: u64,
    /// Per-mille chance a message is delayed up to ten ticks (strong reordering).
    pub slow_per_mille: u64,
    /// Longest disk write latency, in time units.
    pub disk_delay_max: u64,
    /// Closed-loop clients, each with at most one proposal outstanding.
    pub clients: u64,
    /// Per-mille chance per tick that an idle client proposes.
    pub propose_per_mille: u64,
    /// Mean ticks between nemesis ops.
    pub nemesis_gap: u64,
    /// Test-only Raft breakage.
    pub faults: FaultSwitches,
}

/// What a caller may fix instead of leaving it to the seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// Length of the fault phase; the default is 600 ticks.
    pub fault_ticks: Option<u64>,
    /// Test-only Raft breakage.
    pub faults: FaultSwitches,
}

/// The default fault phase: long enough for several elections, crashes and
/// membership changes at the slowest settings.
pub const DEFAULT_FAULT_TICKS: u64 = 600;

impl Params {
    /// The parameters `seed` picks.
    pub fn from_seed(seed: u64, opts: &SimOptions) -> Params {
        let mut r = stream(seed, Stream::Params);
        let nodes = pick(&mut r, &[3, 3, 5]);
        let delay_min = between(&mut r, 1, 8);
        let delay_max = delay_min + pick(&mut r, &[4, 16, 48]);
        let disk_delay_max = pick(&mut r, &[1, 8, 40, 120]);
        // Raft needs broadcast time well below the election timeout: a vote
        // round is two message delays plus a durable write on each side.
        let round = 2 * delay_max + disk_delay_max;
        let shortest = (2 * round).div_ceil(TICK).max(4);
        let election_ticks = between(&mut r, shortest, shortest + 8) as u32;
        let heartbeat_ticks = between(&mut r, 1, u64::from(election_ticks / 3).max(1)) as u32;
        let mut storage = stream(seed, Stream::Storage);
        let load_compacted = chance(&mut storage, 500);
        Params {
            nodes,
            spares: 3,
            fault_ticks: opts.fault_ticks.unwrap_or(DEFAULT_FAULT_TICKS),
            liveness_ticks: 600,
            election_ticks,
            heartbeat_ticks,
            pre_vote: chance(&mut r, 750),
            check_quorum: chance(&mut r, 750),
            quiesce: chance(&mut r, 250),
            max_inflight_msgs: pick(&mut r, &[1, 2, 4, 256]),
            max_msg_bytes: pick(&mut r, &[100, 1000, 1 << 20]),
            snapshot_chunk_bytes: pick(&mut r, &[256, 1024, 1 << 20]),
            learner_catchup_lag: pick(&mut r, &[0, 0, 3]),
            drop_per_mille: pick(&mut r, &[0, 10, 50, 150]),
            dup_per_mille: pick(&mut r, &[0, 10, 50]),
            delay_min,
            delay_max,
            slow_per_mille: pick(&mut r, &[0, 5, 30]),
            disk_delay_max,
            clients: pick(&mut r, &[1, 2, 4]),
            propose_per_mille: pick(&mut r, &[100, 300, 700]),
            nemesis_gap: pick(&mut r, &[4, 8, 16, 32]),
            // Drawn last and from their own stream, so the other draws stay
            // what they were before the knobs existed.
            load_compacted,
            retention: load_compacted && chance(&mut storage, 500),
            faults: opts.faults,
        }
    }

    /// Every id that may ever run: founders, then spares.
    pub fn all_ids(&self) -> impl Iterator<Item = NodeId> {
        (1..=self.nodes + self.spares).map(NodeId)
    }

    /// The founding voters.
    pub fn founders(&self) -> impl Iterator<Item = NodeId> {
        (1..=self.nodes).map(NodeId)
    }

    /// The Raft configuration of node `id` in a run of `seed`.
    pub fn raft_config(&self, seed: u64, id: NodeId) -> Config {
        let mut cfg = Config::new(id);
        cfg.election_ticks = self.election_ticks;
        cfg.heartbeat_ticks = self.heartbeat_ticks;
        cfg.pre_vote = self.pre_vote;
        cfg.check_quorum = self.check_quorum;
        cfg.read_mode = ReadMode::Safe;
        cfg.max_msg_bytes = self.max_msg_bytes;
        cfg.max_inflight_msgs = self.max_inflight_msgs;
        cfg.snapshot_chunk_bytes = self.snapshot_chunk_bytes;
        cfg.learner_catchup_lag = self.learner_catchup_lag;
        cfg.quiesce = self.quiesce;
        cfg.load_compacted = self.load_compacted;
        cfg.seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id.0;
        cfg.faults = self.faults;
        cfg
    }
}
