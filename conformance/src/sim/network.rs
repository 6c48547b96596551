//! The simulated network: every message gets a random delay (so messages
//! reorder), may be lost or delivered twice, and is dropped at delivery time if
//! a partition cuts its link then.
//!
//! Partitions are sets of cut directed links, so symmetric and one-way cuts are
//! the same mechanism. A message in flight when a cut starts is lost, as with a
//! TCP connection that breaks.

use std::collections::BTreeSet;

use proto_core::raft::NodeId;
use rand_chacha::ChaCha8Rng;

use super::params::{below, between, chance, Params, TICK};

/// One cut episode: the links it cuts and the time it heals.
#[derive(Clone, Debug)]
struct Cut<L> {
    until: u64,
    links: BTreeSet<L>,
}

/// Overlapping cuts of links (`L`: a directed pair of nodes), each healing at
/// its own time: the bookkeeping both simulators' networks share, whatever
/// they count time in (ticks, ms) and whatever a link is.
#[derive(Clone, Debug)]
pub struct Cuts<L> {
    cuts: Vec<Cut<L>>,
    /// The union of the cuts' links, recomputed when a cut starts or heals.
    blocked: BTreeSet<L>,
}

impl<L: Ord + Copy> Default for Cuts<L> {
    fn default() -> Cuts<L> {
        Cuts {
            cuts: Vec::new(),
            blocked: BTreeSet::new(),
        }
    }
}

impl<L: Ord + Copy> Cuts<L> {
    /// Cuts `links` until `until`; returns those that were not cut already.
    pub fn cut(&mut self, links: BTreeSet<L>, until: u64) -> BTreeSet<L> {
        let new = links.difference(&self.blocked).copied().collect();
        self.blocked.extend(links.iter().copied());
        self.cuts.push(Cut { until, links });
        new
    }

    /// Heals the cuts that end at or before `now`; true if any did.
    pub fn heal_expired(&mut self, now: u64) -> bool {
        let before = self.cuts.len();
        self.cuts.retain(|c| c.until > now);
        if self.cuts.len() == before {
            return false;
        }
        self.blocked = self
            .cuts
            .iter()
            .flat_map(|c| c.links.iter().copied())
            .collect();
        true
    }

    /// Heals every cut.
    pub fn clear(&mut self) {
        self.cuts.clear();
        self.blocked.clear();
    }

    /// Whether `link` is cut now.
    pub fn contains(&self, link: &L) -> bool {
        self.blocked.contains(link)
    }

    /// The links cut now.
    pub fn blocked(&self) -> &BTreeSet<L> {
        &self.blocked
    }
}

/// Messages in flight and the links that are cut.
pub struct Network {
    rng: ChaCha8Rng,
    drop_per_mille: u64,
    dup_per_mille: u64,
    slow_per_mille: u64,
    delay_min: u64,
    delay_max: u64,
    /// Whether loss and duplication are on (off once the cluster is healed).
    lossy: bool,
    cuts: Cuts<(NodeId, NodeId)>,
}

/// What the network decided for one message: the delivery delays of its
/// copies (none if it was lost).
pub type Deliveries = Vec<u64>;

impl Network {
    /// A network with the seed's loss, duplication and delays.
    pub fn new(params: &Params, rng: ChaCha8Rng) -> Network {
        Network {
            rng,
            drop_per_mille: params.drop_per_mille,
            dup_per_mille: params.dup_per_mille,
            slow_per_mille: params.slow_per_mille,
            delay_min: params.delay_min,
            delay_max: params.delay_max,
            lossy: true,
            cuts: Cuts::default(),
        }
    }

    /// Decides the fate of a message just sent: the delay of each copy.
    pub fn send(&mut self) -> Deliveries {
        let mut out = Vec::new();
        if self.lossy && chance(&mut self.rng, self.drop_per_mille) {
            return out;
        }
        out.push(self.delay());
        if self.lossy && chance(&mut self.rng, self.dup_per_mille) {
            out.push(self.delay());
        }
        out
    }

    fn delay(&mut self) -> u64 {
        if self.lossy && chance(&mut self.rng, self.slow_per_mille) {
            between(&mut self.rng, self.delay_max, 10 * TICK)
        } else {
            between(&mut self.rng, self.delay_min, self.delay_max)
        }
    }

    /// Whether the driver reports a failed delivery to the sender as
    /// [`Event::Unreachable`](proto_core::raft::Event::Unreachable): a coin toss,
    /// as a real connection may or may not notice.
    pub fn report_unreachable(&mut self) -> bool {
        below(&mut self.rng, 4) == 0
    }

    /// Whether messages from `from` to `to` are cut now.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts.contains(&(from, to))
    }

    /// Cuts `links` until tick `until`.
    pub fn cut(&mut self, links: BTreeSet<(NodeId, NodeId)>, until: u64) {
        self.cuts.cut(links, until);
    }

    /// Heals the cuts that end at or before `tick`; true if any did.
    pub fn heal_expired(&mut self, tick: u64) -> bool {
        self.cuts.heal_expired(tick)
    }

    /// Heals every cut and stops loss and duplication: the liveness phase.
    pub fn heal_all(&mut self) {
        self.cuts.clear();
        self.lossy = false;
    }

    /// The links cut now, for the event log.
    pub fn blocked(&self) -> &BTreeSet<(NodeId, NodeId)> {
        self.cuts.blocked()
    }
}

/// The directed links between `side` and every other id in `all`: both ways,
/// or only out of `side` (`out`), or only into it (`inbound`).
pub fn links(
    side: &BTreeSet<NodeId>,
    all: impl Iterator<Item = NodeId>,
    out: bool,
    inbound: bool,
) -> BTreeSet<(NodeId, NodeId)> {
    let rest: Vec<NodeId> = all.filter(|n| !side.contains(n)).collect();
    let mut links = BTreeSet::new();
    for &a in side {
        for &b in &rest {
            if out {
                links.insert((a, b));
            }
            if inbound {
                links.insert((b, a));
            }
        }
    }
    links
}
