//! Every replica of a partition must come to hold the same log, byte for
//! byte: the convergence check of `chaos` (after the faults heal) and the
//! catch-up part of `bench --cluster` (when a restarted follower has caught
//! up). Clients read the log through the leader; this looks at each node's
//! files, so a follower that kept a divergent suffix, or never caught up,
//! is seen even though no client would read from it yet.
//!
//! A replica's log is its `.log` segments concatenated in name order
//! (segment boundaries may differ between nodes; the bytes may not).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use conformance::launch::poll_until;

use crate::cluster::layout::{NodeId, NodeSpec};

/// One replica's log: its length and a CRC-32C of its bytes, so it can be
/// compared and printed cheaply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    /// Bytes in all its segments.
    pub bytes: u64,
    /// CRC-32C of those bytes, in segment order.
    pub crc: u32,
}

/// The digest of the partition directory `dir`; `None` if it does not exist
/// (the node is not a replica).
pub fn digest(dir: &Path) -> Option<Digest> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    let mut d = Digest { bytes: 0, crc: 0 };
    for p in names {
        // A segment deleted between listing and reading is not there.
        if let Ok(b) = std::fs::read(&p) {
            d.bytes += b.len() as u64;
            d.crc = crc32c::crc32c_append(d.crc, &b);
        }
    }
    Some(d)
}

/// Every replica's digest of `topic`-`partition`, by node.
pub fn replicas(specs: &[NodeSpec], topic: &str, partition: i32) -> BTreeMap<NodeId, Digest> {
    specs
        .iter()
        .filter_map(|s| {
            let dir = s
                .data_dir
                .join("topics")
                .join(format!("{topic}-{partition}"));
            digest(&dir).map(|d| (s.id, d))
        })
        .collect()
}

/// Waits up to `deadline` until every partition's replicas (at least
/// `rf` of them) hold identical, non-empty logs; returns how long it took,
/// or what still differed.
pub fn wait_identical(
    specs: &[NodeSpec],
    topic: &str,
    partitions: i32,
    rf: usize,
    deadline: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut differing = Vec::new();
    poll_until(deadline, || {
        differing = (0..partitions)
            .filter_map(|p| {
                let r = replicas(specs, topic, p);
                let first = r.values().next().copied();
                let same = r.len() >= rf
                    && first.is_some_and(|f| f.bytes > 0 && r.values().all(|d| *d == f));
                (!same).then(|| format!("{topic}-{p}: {r:?}"))
            })
            .collect();
        differing.is_empty().then(|| start.elapsed())
    })
    .ok_or_else(|| {
        format!(
            "replicas did not converge within {} s: {}",
            deadline.as_secs(),
            differing.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_cover_every_segment_in_order_and_only_logs() {
        let base = tempfile::tempdir().unwrap();
        let (a, b) = (base.path().join("a"), base.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(a.join("00.log"), b"hello ").unwrap();
        std::fs::write(a.join("01.log"), b"world").unwrap();
        std::fs::write(a.join("00.index"), b"ignored").unwrap();
        std::fs::write(b.join("00.log"), b"hello world").unwrap();
        let (da, db) = (digest(&a).unwrap(), digest(&b).unwrap());
        assert_eq!(da, db, "one log split at another segment boundary");
        assert_eq!(da.bytes, 11);
        std::fs::write(b.join("00.log"), b"hello worle").unwrap();
        assert_ne!(digest(&b).unwrap(), da);
        assert_eq!(digest(&base.path().join("missing")), None);
    }
}
