//! The nemesis: the faults and operator actions a run suffers, as a schedule of
//! ops fixed before the run starts.
//!
//! The schedule is data. It is drawn from the seed's own nemesis streams (the
//! profile mix, and the slow-disk layer on top in half the seeds), written
//! into trace files, replayed from them, and shrunk by dropping ops. Every op
//! stands alone (a crash carries its downtime, a partition its duration) and is
//! resolved against the cluster when it runs (`leader`, `pick=K`), so any subset
//! of a schedule is still a valid schedule.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use proto_core::raft::NodeId;
use rand_chacha::ChaCha8Rng;

use super::params::{below, between, chance, stream, Params, Stream, TICK};

/// Whom an op hits: a fixed node, or whoever leads when the op runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This node.
    Node(NodeId),
    /// The current leader (the op does nothing if there is none).
    Leader,
}

/// Which directions a partition cuts, seen from its side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Neither way.
    Both,
    /// The side's messages are lost; it still hears the others.
    Out,
    /// The side hears nothing; its own messages still arrive.
    In,
}

/// One side of a partition; the other side is every other id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Side {
    /// These nodes.
    Nodes(BTreeSet<NodeId>),
    /// The current leader alone.
    Leader,
}

/// One fault or operator action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NemesisOp {
    /// Kills a node (unsynced writes are lost) and restarts it `ticks` later.
    Crash {
        /// Who crashes.
        target: Target,
        /// Downtime.
        ticks: u64,
    },
    /// Freezes a node (a GC pause, SIGSTOP): its ticks are lost and its
    /// messages and disk completions wait until it resumes.
    Pause {
        /// Who pauses.
        target: Target,
        /// How long.
        ticks: u64,
    },
    /// Cuts the links between `side` and everyone else for `ticks`.
    Partition {
        /// The cut-off side.
        side: Side,
        /// Which directions are cut.
        dir: Direction,
        /// How long.
        ticks: u64,
    },
    /// Asks the leader to hand leadership to one of the other voters.
    TransferLeader {
        /// Chooses the target among the other voters, modulo their number.
        pick: u64,
    },
    /// Asks the leader to hand leadership to `node` (if it is another voter).
    TransferTo {
        /// The voter to hand leadership to.
        node: NodeId,
    },
    /// Asks the leader to add the next spare id as a learner (and starts it).
    AddLearner,
    /// Asks the leader to promote one of its learners.
    Promote {
        /// Chooses the learner, modulo their number.
        pick: u64,
    },
    /// Asks the leader to remove a member (never below two voters).
    Remove {
        /// Chooses the member, modulo their number.
        pick: u64,
    },
    /// Snapshots state machines and compacts logs, so lagging followers need
    /// InstallSnapshot.
    Compact {
        /// One node, or every running node if `None`.
        target: Option<Target>,
    },
    /// The driver of `node` reports that `peer` could not be reached.
    Unreachable {
        /// Whose driver reports.
        node: NodeId,
        /// The peer that failed.
        peer: NodeId,
    },
    /// `node` starts an election now (as if its timer fired early).
    Campaign {
        /// Who campaigns.
        node: NodeId,
    },
    /// Makes a node's disk slow (a degraded drive, a stalled fsync): for
    /// `ticks`, each write it issues takes `by` time units longer, so the
    /// network outruns it and peers answer before its own writes are durable.
    SlowDisk {
        /// Whose disk.
        target: Target,
        /// Extra latency per write, in time units.
        by: u64,
        /// How long.
        ticks: u64,
    },
    /// Arms a power loss for the next leader elected (within four election
    /// timeouts): right after it accepts its first client proposal, before
    /// that write can be durable, its machine dies, losing the writes not yet
    /// durable and the messages not yet delivered. It restarts `ticks` later
    /// and campaigns at once (its election timer advanced on boot, as etcd's
    /// `initial-election-tick-advance` does), while its voters still remember
    /// their votes for it.
    CrashNewLeader {
        /// Downtime.
        ticks: u64,
    },
}

/// An op and the tick it runs at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// The tick, counted from the start of the run.
    pub at: u64,
    /// What happens.
    pub op: NemesisOp,
}

/// The kinds of op, in the order of the weight tables below.
#[derive(Clone, Copy)]
enum Kind {
    Crash,
    Pause,
    Partition,
    Transfer,
    AddLearner,
    Promote,
    Remove,
    Compact,
    Unreachable,
    Campaign,
}

const KINDS: [Kind; 10] = [
    Kind::Crash,
    Kind::Pause,
    Kind::Partition,
    Kind::Transfer,
    Kind::AddLearner,
    Kind::Promote,
    Kind::Remove,
    Kind::Compact,
    Kind::Unreachable,
    Kind::Campaign,
];

/// A seed's fault mix, as VOPR varies its fault probabilities per seed: the
/// weight of each kind of op, the per-mille chance that a crash, pause or
/// partition targets the leader, and the longest crash in election timeouts.
struct Profile {
    weights: [u64; 10],
    at_leader: u64,
    crash_timeouts: u64,
}

const PROFILES: [Profile; 3] = [
    // Balanced.
    Profile {
        weights: [16, 6, 18, 8, 6, 6, 5, 15, 6, 14],
        at_leader: 400,
        crash_timeouts: 6,
    },
    // Leader churn: leaders die, freeze or get cut off soon after they are
    // elected, with entries of several terms in flight (Raft's Figure 8).
    Profile {
        weights: [30, 8, 25, 8, 1, 1, 1, 6, 5, 15],
        at_leader: 850,
        crash_timeouts: 2,
    },
    // Membership: learners come, get promoted and go while the rest happens.
    Profile {
        weights: [10, 5, 12, 8, 15, 15, 12, 12, 5, 6],
        at_leader: 400,
        crash_timeouts: 6,
    },
];

/// Draws the nemesis schedule of `seed` for a run with `params`: about one op
/// every `nemesis_gap` ticks during the fault phase, after a short calm start,
/// with the mix of one of the profiles, and in some seeds the slow-disk layer
/// on top.
pub fn generate(seed: u64, params: &Params) -> Vec<Scheduled> {
    let mut out = mix(seed, params);
    let layer = slow_disks(seed, params);
    if !layer.is_empty() {
        out.extend(layer);
        // Stable: at one tick, the mix's ops keep their order and come first.
        out.sort_by_key(|s| s.at);
    }
    out
}

/// The per-mille share of seeds that get the slow-disk layer.
const SLOW_DISK_SEEDS: u64 = 500;

/// The ops of one of the profiles' mixes.
fn mix(seed: u64, params: &Params) -> Vec<Scheduled> {
    let mut r = stream(seed, Stream::Nemesis);
    let profile = &PROFILES[below(&mut r, PROFILES.len() as u64) as usize];
    let total: u64 = profile.weights.iter().sum();
    let ids: Vec<NodeId> = params.all_ids().collect();
    let max_node = params.nodes + params.spares.min(2);
    let election = u64::from(params.election_ticks);
    let mut out = Vec::new();
    let mut at = 2 * election + below(&mut r, params.nemesis_gap);
    while at < params.fault_ticks {
        let node = |r: &mut ChaCha8Rng| NodeId(between(r, 1, max_node));
        let target = |r: &mut ChaCha8Rng| {
            if chance(r, profile.at_leader) {
                Target::Leader
            } else {
                Target::Node(node(r))
            }
        };
        let mut roll = below(&mut r, total);
        let mut kind = Kind::Campaign;
        for (k, w) in KINDS.iter().zip(profile.weights) {
            if roll < w {
                kind = *k;
                break;
            }
            roll -= w;
        }
        let op = match kind {
            Kind::Crash => NemesisOp::Crash {
                target: target(&mut r),
                ticks: between(&mut r, 1, profile.crash_timeouts * election),
            },
            Kind::Pause => NemesisOp::Pause {
                target: target(&mut r),
                ticks: between(&mut r, 1, 3 * election),
            },
            Kind::Partition => {
                let side = if chance(&mut r, profile.at_leader) {
                    Side::Leader
                } else {
                    let set: BTreeSet<NodeId> = ids
                        .iter()
                        .copied()
                        .filter(|_| chance(&mut r, 400))
                        .collect();
                    Side::Nodes(set)
                };
                let dir = match below(&mut r, 10) {
                    0..=5 => Direction::Both,
                    6..=7 => Direction::Out,
                    _ => Direction::In,
                };
                let ticks = between(&mut r, election, 10 * election);
                NemesisOp::Partition { side, dir, ticks }
            }
            Kind::Transfer => NemesisOp::TransferLeader {
                pick: below(&mut r, 64),
            },
            Kind::AddLearner => NemesisOp::AddLearner,
            Kind::Promote => NemesisOp::Promote {
                pick: below(&mut r, 64),
            },
            Kind::Remove => NemesisOp::Remove {
                pick: below(&mut r, 64),
            },
            Kind::Compact => NemesisOp::Compact {
                target: match below(&mut r, 3) {
                    0 => None,
                    1 => Some(Target::Leader),
                    _ => Some(Target::Node(node(&mut r))),
                },
            },
            Kind::Unreachable => {
                let a = node(&mut r);
                NemesisOp::Unreachable {
                    node: a,
                    peer: node(&mut r),
                }
            }
            Kind::Campaign => NemesisOp::Campaign { node: node(&mut r) },
        };
        out.push(Scheduled { at, op });
        at += 1 + below(&mut r, 2 * params.nemesis_gap);
    }
    out
}

/// The slow-disk layer, drawn from its own stream so that seeds without it
/// run exactly as they did before it existed: now and then a node's disk
/// turns slow, and now and then leadership moves to a node whose disk has
/// just turned slow (its peers' votes arrive before its own vote is durable)
/// and that new leader loses power right after its first client proposal.
fn slow_disks(seed: u64, params: &Params) -> Vec<Scheduled> {
    let mut r = stream(seed, Stream::SlowDisks);
    let mut out = Vec::new();
    if !chance(&mut r, SLOW_DISK_SEEDS) {
        return out;
    }
    let election = u64::from(params.election_ticks);
    let gap = 4 * params.nemesis_gap;
    let mut at = 2 * election + below(&mut r, gap);
    while at < params.fault_ticks {
        let node = NodeId(between(&mut r, 1, params.nodes));
        let by = between(&mut r, TICK, election * TICK);
        let ticks = between(&mut r, election, 6 * election);
        if chance(&mut r, 500) {
            let target = if chance(&mut r, 400) {
                Target::Leader
            } else {
                Target::Node(node)
            };
            let op = NemesisOp::SlowDisk { target, by, ticks };
            out.push(Scheduled { at, op });
        } else {
            let down = between(&mut r, 1, (election / 2).max(1));
            out.push(Scheduled {
                at,
                op: NemesisOp::TransferTo { node },
            });
            out.push(Scheduled {
                at,
                op: NemesisOp::SlowDisk {
                    target: Target::Node(node),
                    by,
                    ticks,
                },
            });
            out.push(Scheduled {
                at,
                op: NemesisOp::CrashNewLeader { ticks: down },
            });
        }
        at += 1 + below(&mut r, 2 * gap);
    }
    out
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "{n}"),
            Target::Leader => f.write_str("leader"),
        }
    }
}

impl fmt::Display for NemesisOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NemesisOp::Crash { target, ticks } => write!(f, "crash {target} for={ticks}"),
            NemesisOp::Pause { target, ticks } => write!(f, "pause {target} for={ticks}"),
            NemesisOp::Partition { side, dir, ticks } => {
                let side = match side {
                    Side::Leader => "leader".to_string(),
                    Side::Nodes(set) if set.is_empty() => "none".to_string(),
                    Side::Nodes(set) => {
                        let ids: Vec<String> = set.iter().map(|n| n.to_string()).collect();
                        ids.join(",")
                    }
                };
                let dir = match dir {
                    Direction::Both => "both",
                    Direction::Out => "out",
                    Direction::In => "in",
                };
                write!(f, "partition {side} {dir} for={ticks}")
            }
            NemesisOp::TransferLeader { pick } => write!(f, "transfer-leader pick={pick}"),
            NemesisOp::TransferTo { node } => write!(f, "transfer-leader to={node}"),
            NemesisOp::AddLearner => f.write_str("add-learner"),
            NemesisOp::Promote { pick } => write!(f, "promote pick={pick}"),
            NemesisOp::Remove { pick } => write!(f, "remove pick={pick}"),
            NemesisOp::Compact { target: None } => f.write_str("compact all"),
            NemesisOp::Compact {
                target: Some(target),
            } => write!(f, "compact {target}"),
            NemesisOp::Unreachable { node, peer } => write!(f, "unreachable {node} {peer}"),
            NemesisOp::Campaign { node } => write!(f, "campaign {node}"),
            NemesisOp::SlowDisk { target, by, ticks } => {
                write!(f, "slow-disk {target} by={by} for={ticks}")
            }
            NemesisOp::CrashNewLeader { ticks } => write!(f, "crash-new-leader for={ticks}"),
        }
    }
}

impl fmt::Display for Scheduled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{} {}", self.at, self.op)
    }
}

/// Why a schedule line could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad nemesis op `{0}`")]
pub struct BadOp(pub String);

fn num(s: &str, key: &str, line: &str) -> Result<u64, BadOp> {
    s.strip_prefix(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| BadOp(line.to_string()))
}

fn target(s: &str, line: &str) -> Result<Target, BadOp> {
    if s == "leader" {
        return Ok(Target::Leader);
    }
    s.parse()
        .map(|n| Target::Node(NodeId(n)))
        .map_err(|_| BadOp(line.to_string()))
}

impl FromStr for NemesisOp {
    type Err = BadOp;

    fn from_str(line: &str) -> Result<NemesisOp, BadOp> {
        let bad = || BadOp(line.to_string());
        let words: Vec<&str> = line.split_whitespace().collect();
        let op = match words.as_slice() {
            ["crash", t, d] => NemesisOp::Crash {
                target: target(t, line)?,
                ticks: num(d, "for=", line)?,
            },
            ["pause", t, d] => NemesisOp::Pause {
                target: target(t, line)?,
                ticks: num(d, "for=", line)?,
            },
            ["partition", side, dir, d] => {
                let side = match *side {
                    "leader" => Side::Leader,
                    "none" => Side::Nodes(BTreeSet::new()),
                    list => Side::Nodes(
                        list.split(',')
                            .map(|n| n.parse().map(NodeId).map_err(|_| bad()))
                            .collect::<Result<_, _>>()?,
                    ),
                };
                let dir = match *dir {
                    "both" => Direction::Both,
                    "out" => Direction::Out,
                    "in" => Direction::In,
                    _ => return Err(bad()),
                };
                NemesisOp::Partition {
                    side,
                    dir,
                    ticks: num(d, "for=", line)?,
                }
            }
            ["transfer-leader", p] if p.starts_with("to=") => NemesisOp::TransferTo {
                node: NodeId(num(p, "to=", line)?),
            },
            ["transfer-leader", p] => NemesisOp::TransferLeader {
                pick: num(p, "pick=", line)?,
            },
            ["add-learner"] => NemesisOp::AddLearner,
            ["promote", p] => NemesisOp::Promote {
                pick: num(p, "pick=", line)?,
            },
            ["remove", p] => NemesisOp::Remove {
                pick: num(p, "pick=", line)?,
            },
            ["compact", "all"] => NemesisOp::Compact { target: None },
            ["compact", t] => NemesisOp::Compact {
                target: Some(target(t, line)?),
            },
            ["unreachable", a, b] => NemesisOp::Unreachable {
                node: NodeId(a.parse().map_err(|_| bad())?),
                peer: NodeId(b.parse().map_err(|_| bad())?),
            },
            ["campaign", a] => NemesisOp::Campaign {
                node: NodeId(a.parse().map_err(|_| bad())?),
            },
            ["slow-disk", t, b, d] => NemesisOp::SlowDisk {
                target: target(t, line)?,
                by: num(b, "by=", line)?,
                ticks: num(d, "for=", line)?,
            },
            ["crash-new-leader", d] => NemesisOp::CrashNewLeader {
                ticks: num(d, "for=", line)?,
            },
            _ => return Err(bad()),
        };
        Ok(op)
    }
}

impl FromStr for Scheduled {
    type Err = BadOp;

    fn from_str(line: &str) -> Result<Scheduled, BadOp> {
        let bad = || BadOp(line.to_string());
        let rest = line.trim().strip_prefix('@').ok_or_else(bad)?;
        let (at, op) = rest.split_once(char::is_whitespace).ok_or_else(bad)?;
        Ok(Scheduled {
            at: at.parse().map_err(|_| bad())?,
            op: op.trim().parse()?,
        })
    }
}
