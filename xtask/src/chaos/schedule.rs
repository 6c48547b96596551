//! The fault schedule: which fault starts when and for how long, drawn from
//! the run's seed alone, so `--seed S` repeats a run's schedule exactly and
//! the schedule can be printed before anything starts.
//!
//! Faults never overlap: a quiet gap, one fault, heal, a quiet gap, the next.
//! That keeps each availability figure about one kind of fault. Targets that
//! depend on the cluster's state ("the leader of partition 0") are named
//! here and resolved when the fault starts.

use std::fmt;
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use conformance::sim::params::{below, between};

use crate::cluster::layout::NodeId;

/// A kind of fault, as `--nemesis` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Nemesis {
    /// SIGKILL a node, restart it after the hold.
    Kill,
    /// SIGSTOP a node for longer than an election timeout, then SIGCONT.
    Pause,
    /// Block peer links: isolate a leader, split the cluster, cut one
    /// direction, or a ring where every node sees only its neighbours.
    Partition,
    /// Add latency to every peer link.
    Latency,
    /// Sever every peer connection, again and again during the hold.
    Drop,
    /// SIGTERM and restart: one node, or every node in turn (rolling).
    Restart,
    /// SIGKILL a node and cut its files back to their last fsync (or into
    /// the un-fsynced tail): a power cut. Restart it after the hold.
    Disk,
}

impl Nemesis {
    /// Every nemesis, the meaning of `--nemesis all`.
    pub const ALL: [Nemesis; 7] = [
        Nemesis::Kill,
        Nemesis::Pause,
        Nemesis::Partition,
        Nemesis::Latency,
        Nemesis::Drop,
        Nemesis::Restart,
        Nemesis::Disk,
    ];

    /// The `--nemesis` name.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::Kill => "kill",
            Nemesis::Pause => "pause",
            Nemesis::Partition => "partition",
            Nemesis::Latency => "latency",
            Nemesis::Drop => "drop",
            Nemesis::Restart => "restart",
            Nemesis::Disk => "disk",
        }
    }

    /// Parses a `--nemesis` list: names separated by commas, or `all`.
    pub fn parse_list(s: &str) -> anyhow::Result<Vec<Nemesis>> {
        let mut out = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "all" {
                out.extend(Nemesis::ALL);
                continue;
            }
            match Nemesis::ALL.iter().find(|n| n.name() == name) {
                Some(&n) => out.push(n),
                None => anyhow::bail!(
                    "unknown nemesis `{name}` (known: {}, all)",
                    Nemesis::ALL.map(Nemesis::name).join(", ")
                ),
            }
        }
        out.sort();
        out.dedup();
        if out.is_empty() {
            anyhow::bail!("--nemesis names no fault");
        }
        Ok(out)
    }
}

/// Which node a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This node.
    Node(NodeId),
    /// Whichever node leads this partition of the workload's topic when the
    /// fault starts.
    LeaderOf(i32),
    /// Whichever node runs the controller (leads the metadata group) when
    /// the fault starts.
    Controller,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(n) => write!(f, "node {n}"),
            Target::LeaderOf(p) => write!(f, "the leader of partition {p}"),
            Target::Controller => write!(f, "the controller"),
        }
    }
}

/// Which peer links a partition blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Every link to and from the target.
    Isolate(Target),
    /// Every link between `minority` and the rest, both directions.
    Halves {
        /// The smaller side.
        minority: Vec<NodeId>,
    },
    /// Only the node's outgoing links (`outbound`) or only its incoming ones:
    /// it hears the cluster but is not heard, or the reverse.
    OneWay {
        /// The node whose links are cut.
        node: Target,
        /// Cut what it sends (true) or what it receives (false).
        outbound: bool,
    },
    /// Each node keeps links only to its ring neighbours (`i ± 1`): with 5
    /// nodes every node sees a majority but no two majorities agree; with 3
    /// it is a bridge (nodes 1 and 3 see each other only through 2).
    Ring,
}

/// One fault with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, restart when the hold ends.
    Kill(Target),
    /// SIGSTOP, SIGCONT when the hold ends.
    Pause(Target),
    /// Block links until the hold ends.
    Partition(Cut),
    /// Delay every chunk on every link by this much.
    Latency(Duration),
    /// Sever every connection each `every` until the hold ends.
    Drop {
        /// The interval between severings.
        every: Duration,
    },
    /// SIGTERM and restart the target, or with `None` every node in turn;
    /// the hold is a pause between nodes.
    Restart(Option<Target>),
    /// SIGKILL, lose what was not fsynced (cuts drawn from `seed`: an odd
    /// seed tears into the un-fsynced tail, an even one cuts exactly at the
    /// last fsync), restart when the hold ends.
    LoseUnsynced {
        /// The node.
        target: Target,
        /// Draws the cuts.
        seed: u64,
    },
}

impl Fault {
    /// The nemesis this fault belongs to.
    pub fn nemesis(&self) -> Nemesis {
        match self {
            Fault::Kill(_) => Nemesis::Kill,
            Fault::Pause(_) => Nemesis::Pause,
            Fault::Partition(_) => Nemesis::Partition,
            Fault::Latency(_) => Nemesis::Latency,
            Fault::Drop { .. } => Nemesis::Drop,
            Fault::Restart(_) => Nemesis::Restart,
            Fault::LoseUnsynced { .. } => Nemesis::Disk,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = |ns: &[NodeId]| {
            ns.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Fault::Kill(t) => write!(f, "SIGKILL {t}"),
            Fault::Pause(t) => write!(f, "SIGSTOP {t}"),
            Fault::Partition(Cut::Isolate(t)) => write!(f, "isolate {t}"),
            Fault::Partition(Cut::Halves { minority }) => {
                write!(f, "split nodes {} from the rest", ids(minority))
            }
            Fault::Partition(Cut::OneWay { node, outbound }) => {
                let dir = if *outbound { "sends" } else { "receives" };
                write!(f, "cut what {node} {dir}")
            }
            Fault::Partition(Cut::Ring) => write!(f, "ring of neighbours"),
            Fault::Latency(d) => write!(f, "{} ms on every peer link", d.as_millis()),
            Fault::Drop { every } => {
                write!(
                    f,
                    "sever every peer connection every {} ms",
                    every.as_millis()
                )
            }
            Fault::Restart(Some(t)) => write!(f, "SIGTERM and restart {t}"),
            Fault::Restart(None) => write!(f, "rolling restart of every node"),
            Fault::LoseUnsynced { target, seed } => {
                let how = if seed % 2 == 1 { "torn into" } else { "cut at" };
                write!(f, "SIGKILL {target}, un-fsynced tail {how} the last fsync")
            }
        }
    }
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// When it starts, from the start of the fault phase.
    pub at: Duration,
    /// How long it is held before it heals.
    pub hold: Duration,
    /// What it does.
    pub fault: Fault,
}

/// The quiet time before each fault.
const GAP_MS: (u64, u64) = (2_000, 4_000);
/// How long a fault is held.
const HOLD_MS: (u64, u64) = (3_000, 8_000);

/// The schedule of a run: faults from `nemeses` (chosen in turn from a
/// shuffled cycle, so every nemesis appears before any repeats) against a
/// cluster of `nodes` nodes, until `duration` is used up. Partitions of the
/// workload's topic number `partitions`.
pub fn plan(
    seed: u64,
    nemeses: &[Nemesis],
    nodes: u32,
    partitions: i32,
    duration: Duration,
) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut at = Duration::ZERO;
    let mut cycle: Vec<Nemesis> = Vec::new();
    loop {
        at += Duration::from_millis(between(&mut rng, GAP_MS.0, GAP_MS.1));
        let hold = Duration::from_millis(between(&mut rng, HOLD_MS.0, HOLD_MS.1));
        if at + hold > duration {
            return steps;
        }
        if cycle.is_empty() {
            cycle = nemeses.to_vec();
            shuffle(&mut rng, &mut cycle);
        }
        let nemesis = cycle.pop().expect("refilled above");
        let fault = draw(&mut rng, nemesis, nodes, partitions);
        steps.push(Step { at, hold, fault });
        at += hold;
    }
}

/// One fault of kind `nemesis`.
fn draw(rng: &mut ChaCha8Rng, nemesis: Nemesis, nodes: u32, partitions: i32) -> Fault {
    // A partition's leader half the time, the controller a quarter, any
    // node the rest.
    let target = |rng: &mut ChaCha8Rng| match below(rng, 4) {
        0 | 1 => Target::LeaderOf(below(rng, partitions as u64) as i32),
        2 => Target::Controller,
        _ => Target::Node(NodeId(1 + below(rng, u64::from(nodes)) as u32)),
    };
    match nemesis {
        Nemesis::Kill => Fault::Kill(target(rng)),
        Nemesis::Pause => Fault::Pause(target(rng)),
        Nemesis::Partition => Fault::Partition(match below(rng, 4) {
            0 => Cut::Isolate(target(rng)),
            1 => {
                let mut ids: Vec<NodeId> = (1..=nodes).map(NodeId).collect();
                shuffle(rng, &mut ids);
                ids.truncate(((nodes - 1) / 2).max(1) as usize);
                ids.sort();
                Cut::Halves { minority: ids }
            }
            2 => Cut::OneWay {
                node: target(rng),
                outbound: rng.next_u32().is_multiple_of(2),
            },
            _ => Cut::Ring,
        }),
        Nemesis::Latency => Fault::Latency(Duration::from_millis(between(rng, 20, 200))),
        Nemesis::Drop => Fault::Drop {
            every: Duration::from_millis(between(rng, 300, 1_500)),
        },
        Nemesis::Restart => Fault::Restart(if below(rng, 3) == 0 {
            None
        } else {
            Some(target(rng))
        }),
        Nemesis::Disk => Fault::LoseUnsynced {
            target: target(rng),
            seed: rng.next_u64(),
        },
    }
}

/// Fisher–Yates.
fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, i as u64 + 1) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule() {
        let d = Duration::from_secs(120);
        assert_eq!(
            plan(7, &Nemesis::ALL, 3, 3, d),
            plan(7, &Nemesis::ALL, 3, 3, d)
        );
        assert_ne!(
            plan(7, &Nemesis::ALL, 3, 3, d),
            plan(8, &Nemesis::ALL, 3, 3, d)
        );
    }

    #[test]
    fn faults_fit_the_duration_never_overlap_and_cycle_through_every_nemesis() {
        let d = Duration::from_secs(120);
        let steps = plan(3, &Nemesis::ALL, 5, 3, d);
        assert!(steps.len() >= Nemesis::ALL.len(), "{steps:?}");
        for w in steps.windows(2) {
            assert!(w[0].at + w[0].hold < w[1].at, "{w:?}");
        }
        let last = steps.last().unwrap();
        assert!(last.at + last.hold <= d);
        let n = Nemesis::ALL.len();
        let mut first: Vec<Nemesis> = steps[..n].iter().map(|s| s.fault.nemesis()).collect();
        first.sort();
        assert_eq!(first, Nemesis::ALL.to_vec());
    }

    #[test]
    fn only_the_chosen_nemeses_run_and_targets_exist() {
        let steps = plan(
            11,
            &[Nemesis::Partition, Nemesis::Pause],
            3,
            2,
            Duration::from_secs(300),
        );
        for s in &steps {
            match &s.fault {
                Fault::Pause(Target::Node(n)) => assert!((1..=3).contains(&n.0)),
                Fault::Pause(Target::LeaderOf(p)) => assert!((0..2).contains(p)),
                Fault::Pause(Target::Controller) => {}
                Fault::Partition(Cut::Halves { minority }) => assert_eq!(minority.len(), 1),
                Fault::Partition(_) => {}
                other => panic!("{other} was not asked for"),
            }
        }
    }

    #[test]
    fn nemesis_lists_parse() {
        assert_eq!(
            Nemesis::parse_list("pause,kill,pause").unwrap(),
            vec![Nemesis::Kill, Nemesis::Pause]
        );
        assert_eq!(Nemesis::parse_list("all").unwrap(), Nemesis::ALL.to_vec());
        assert!(Nemesis::parse_list("fire").is_err());
        assert!(Nemesis::parse_list("").is_err());
    }
}
