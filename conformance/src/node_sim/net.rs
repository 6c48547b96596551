//! The simulated peer transport: one TCP-like stream per directed link.
//!
//! Frames on a link arrive in the order they were sent, each after a seeded
//! delay (a slow frame holds up the ones behind it, as on a stream). A frame
//! may be lost (a full send queue, the only loss the real transport has), or,
//! when the run asks for it, delivered twice. Cutting a link (a partition, or
//! a crash of either end) breaks its stream: every frame in flight on it is
//! lost, and both ends are told the peer went down. Frames sent on a cut link,
//! or to a node that is down, are lost.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;

use super::rng::{between, chance};
use crate::sim::network::Cuts;

/// A directed link: (from, to).
pub type Link = (u64, u64);

/// The stream state of one directed link.
#[derive(Clone, Copy, Debug, Default)]
struct Stream {
    /// Bumped whenever the stream breaks: frames sent before are lost.
    epoch: u64,
    /// When the last frame sent on it arrives (arrivals never reorder).
    last_arrival: u64,
}

/// The network's knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetParams {
    /// Shortest frame delay, in ms.
    pub delay_min_ms: u64,
    /// Longest usual frame delay, in ms.
    pub delay_max_ms: u64,
    /// Per-mille chance a frame is slow (up to `slow_ms`).
    pub slow_per_mille: u64,
    /// The longest delay of a slow frame, in ms.
    pub slow_ms: u64,
    /// Per-mille chance a frame is lost.
    pub drop_per_mille: u64,
    /// Per-mille chance a frame is delivered twice.
    pub dup_per_mille: u64,
}

/// Frames in flight and the links that are cut.
pub struct Net {
    rng: ChaCha8Rng,
    p: NetParams,
    /// Loss, duplication and slow frames are on (off once healed).
    lossy: bool,
    streams: BTreeMap<Link, Stream>,
    cuts: Cuts<Link>,
}

impl Net {
    /// A network drawing from `rng`.
    pub fn new(p: NetParams, rng: ChaCha8Rng) -> Net {
        Net {
            rng,
            p,
            lossy: true,
            streams: BTreeMap::new(),
            cuts: Cuts::default(),
        }
    }

    /// Decides the fate of a frame sent now on `link`: its arrivals, each
    /// with the stream epoch it must still find (empty if it is lost).
    pub fn send(&mut self, now: u64, link: Link) -> Vec<(u64, u64)> {
        if self.cuts.contains(&link) || (self.lossy && chance(&mut self.rng, self.p.drop_per_mille))
        {
            return Vec::new();
        }
        let copies = if self.lossy && chance(&mut self.rng, self.p.dup_per_mille) {
            2
        } else {
            1
        };
        let mut out = Vec::with_capacity(copies);
        for _ in 0..copies {
            let delay = if self.lossy && chance(&mut self.rng, self.p.slow_per_mille) {
                between(&mut self.rng, self.p.delay_max_ms, self.p.slow_ms)
            } else {
                between(&mut self.rng, self.p.delay_min_ms, self.p.delay_max_ms)
            };
            let s = self.streams.entry(link).or_default();
            let at = (now + delay).max(s.last_arrival);
            s.last_arrival = at;
            out.push((at, s.epoch));
        }
        out
    }

    /// Whether a frame sent with stream epoch `epoch` may be delivered now.
    pub fn deliverable(&self, link: Link, epoch: u64) -> bool {
        !self.cuts.contains(&link) && self.streams.get(&link).map_or(0, |s| s.epoch) == epoch
    }

    /// Breaks the streams of `links`: what is in flight on them is lost.
    pub fn break_streams(&mut self, links: impl IntoIterator<Item = Link>) {
        for l in links {
            let s = self.streams.entry(l).or_default();
            s.epoch += 1;
        }
    }

    /// Cuts `links` until `until`; returns the ones not cut before (their
    /// streams break).
    pub fn cut(&mut self, links: BTreeSet<Link>, until: u64) -> BTreeSet<Link> {
        let new = self.cuts.cut(links, until);
        self.break_streams(new.iter().copied());
        new
    }

    /// Heals the cuts that end at or before `now`; true if any did.
    pub fn heal_expired(&mut self, now: u64) -> bool {
        self.cuts.heal_expired(now)
    }

    /// Heals every cut and stops loss, duplication and slow frames.
    pub fn heal_all(&mut self) {
        self.cuts.clear();
        self.lossy = false;
    }

    /// The links cut now.
    pub fn blocked(&self) -> &BTreeSet<Link> {
        self.cuts.blocked()
    }
}

/// The directed links between `side` and the other ids of `all`: out of
/// `side` if `out`, into it if `inbound`.
pub fn links_between(
    side: &BTreeSet<u64>,
    all: &[u64],
    out: bool,
    inbound: bool,
) -> BTreeSet<Link> {
    let mut links = BTreeSet::new();
    for &a in side {
        for &b in all.iter().filter(|b| !side.contains(b)) {
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
