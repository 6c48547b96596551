//! The nemesis: the faults of a run, drawn whole before it starts.
//!
//! Ops name a node, or a role resolved when the op fires ("the node leading
//! the most partitions"), so that failovers of partitions holding
//! acknowledged data happen whatever the elections did.

use std::collections::BTreeSet;
use std::fmt;

use super::rng::{below, between, chance, pick, stream, Stream};
use super::Params;

/// Which node an op hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This node.
    Node(u64),
    /// The node leading the most groups (partitions and the metadata group)
    /// when the op fires.
    Leader,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "n{n}"),
            Target::Leader => f.write_str("leader"),
        }
    }
}

/// One fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The process dies (losing incomplete writes) and restarts after `down_ms`.
    Crash {
        /// Who.
        target: Target,
        /// Downtime.
        down_ms: u64,
    },
    /// Every process dies at once (a power loss) and restarts after `down_ms`.
    PowerLoss {
        /// Downtime.
        down_ms: u64,
    },
    /// Every link of the node is cut both ways for `ms`.
    Isolate {
        /// Who.
        target: Target,
        /// How long.
        ms: u64,
    },
    /// Only the node's outbound (or only its inbound) links are cut for `ms`.
    OneWay {
        /// Who.
        target: Target,
        /// Outbound links if true, inbound ones if false.
        outbound: bool,
        /// How long.
        ms: u64,
    },
    /// The links between `side` and the rest are cut both ways for `ms`.
    Split {
        /// One side (the minority).
        side: BTreeSet<u64>,
        /// How long.
        ms: u64,
    },
    /// The process freezes for `ms`: no ticks, frames or disk completions
    /// reach it; then it takes them all.
    Pause {
        /// Who.
        target: Target,
        /// How long.
        ms: u64,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Crash { target, down_ms } => write!(f, "crash {target} for {down_ms}ms"),
            Op::PowerLoss { down_ms } => write!(f, "power loss for {down_ms}ms"),
            Op::Isolate { target, ms } => write!(f, "isolate {target} for {ms}ms"),
            Op::OneWay {
                target,
                outbound,
                ms,
            } => {
                let dir = if *outbound { "outbound" } else { "inbound" };
                write!(f, "cut {target} {dir} for {ms}ms")
            }
            Op::Split { side, ms } => write!(f, "split {side:?} from the rest for {ms}ms"),
            Op::Pause { target, ms } => write!(f, "pause {target} for {ms}ms"),
        }
    }
}

/// An op and when it fires, in ms after the fault phase starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// When.
    pub at_ms: u64,
    /// What.
    pub op: Op,
}

/// The schedule `seed` draws for `params`: ops every `nemesis_gap_ms`
/// (drawn), none in the last second of the fault phase.
pub fn schedule(seed: u64, params: &Params) -> Vec<Scheduled> {
    let mut r = stream(seed, Stream::Nemesis);
    let nodes: Vec<u64> = (1..=params.nodes).collect();
    let (lo, hi) = params.nemesis_gap_ms;
    let mut out = Vec::new();
    let mut at = between(&mut r, lo, hi) / 2;
    while at + 1000 < params.fault_ms {
        let target = if chance(&mut r, 500) {
            Target::Leader
        } else {
            Target::Node(pick(&mut r, &nodes))
        };
        let ms = between(&mut r, 300, 4000);
        let op = match below(&mut r, 100) {
            0..=4 => Op::PowerLoss {
                down_ms: between(&mut r, 50, 1000),
            },
            5..=34 => Op::Crash {
                target,
                down_ms: between(&mut r, 50, 3000),
            },
            35..=54 => Op::Isolate { target, ms },
            55..=69 => Op::OneWay {
                target,
                outbound: chance(&mut r, 500),
                ms,
            },
            70..=84 => {
                let minority = (params.nodes - 1) / 2;
                let mut side = BTreeSet::new();
                while (side.len() as u64) < minority.max(1) {
                    side.insert(pick(&mut r, &nodes));
                }
                Op::Split { side, ms }
            }
            _ => Op::Pause {
                target,
                ms: between(&mut r, 100, 2000),
            },
        };
        out.push(Scheduled { at_ms: at, op });
        at += between(&mut r, lo, hi);
    }
    out
}
