//! The `disk` nemesis's cut: after a node is SIGKILLed, make its files look
//! as a power cut could have left them, by cutting every append-only file
//! back to somewhere between the length it had at its last fsync and the
//! length it has now.
//!
//! The node records those fsync lengths itself when `CHRONIK_SYNC_LEDGER`
//! names a file (`io_sync::disk::sync_ledger`): one `<length> <path>` line
//! per fsync, written before the fsync's caller acknowledges or votes on
//! anything. Cutting at the recorded length loses exactly the un-fsynced
//! tail; cutting anywhere above it keeps part of that tail, the torn write a
//! crash leaves mid-append. Never below: that would lose data the node
//! promised was durable, which no broker can survive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One file cut back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The file.
    pub path: PathBuf,
    /// Its length before the cut.
    pub from: u64,
    /// Its length after.
    pub to: u64,
    /// Its length at its last fsync.
    pub synced: u64,
}

/// The last recorded length of every path in a ledger's text; malformed
/// lines (a line torn by the SIGKILL) are skipped.
pub fn last_synced(ledger: &str) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    for line in ledger.lines() {
        let Some((len, path)) = line.split_once(' ') else {
            continue;
        };
        if let Ok(len) = len.parse::<u64>() {
            out.insert(PathBuf::from(path), len);
        }
    }
    out
}

/// The cuts for files whose current length (`current`) is past their last
/// fsync: each to a length drawn from `synced..=current` with `seed`. With
/// `torn` false every file is cut exactly at its fsync length.
pub fn plan(
    synced: &BTreeMap<PathBuf, u64>,
    current: impl Fn(&Path) -> Option<u64>,
    seed: u64,
    torn: bool,
) -> Vec<Cut> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    synced
        .iter()
        .filter_map(|(path, &synced)| {
            let now = current(path)?;
            if now <= synced {
                return None;
            }
            let keep = if torn {
                rng.next_u64() % (now - synced + 1)
            } else {
                0
            };
            Some(Cut {
                path: path.clone(),
                from: now,
                to: synced + keep,
                synced,
            })
        })
        .filter(|c| c.to < c.from)
        .collect()
}

/// Cuts the files `ledger` records for a node that is not running; returns
/// what was cut.
pub fn lose_unsynced(ledger: &Path, seed: u64) -> anyhow::Result<Vec<Cut>> {
    let text = match std::fs::read_to_string(ledger) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", ledger.display())),
    };
    let torn = seed % 2 == 1;
    let cuts = plan(
        &last_synced(&text),
        |p| std::fs::metadata(p).ok().map(|m| m.len()),
        seed,
        torn,
    );
    for c in &cuts {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&c.path)
            .with_context(|| format!("open {}", c.path.display()))?;
        f.set_len(c.to)
            .with_context(|| format!("cut {} to {} bytes", c.path.display(), c.to))?;
    }
    Ok(cuts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_per_path_wins_and_torn_lines_are_skipped() {
        let l = last_synced("10 /d/a.log\n20 /d/b.log\n30 /d/a.log\n4x /d/c.log\n7");
        assert_eq!(l.get(Path::new("/d/a.log")), Some(&30));
        assert_eq!(l.get(Path::new("/d/b.log")), Some(&20));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn cuts_stay_between_the_fsync_and_the_current_length() {
        let synced = last_synced("100 /a\n50 /b\n70 /c\n");
        let sizes = |p: &Path| match p.to_str()? {
            "/a" => Some(160),
            "/b" => Some(50),
            "/c" => Some(60),
            _ => None,
        };
        let exact = plan(&synced, sizes, 1, false);
        assert_eq!(
            exact,
            vec![Cut {
                path: "/a".into(),
                from: 160,
                to: 100,
                synced: 100
            }],
            "only /a grew past its fsync; /b is at it, /c was truncated below it"
        );
        for seed in 0..200 {
            for c in plan(&synced, sizes, seed, true) {
                assert_eq!(c.path, PathBuf::from("/a"));
                assert!((100..160).contains(&c.to), "{c:?}");
            }
        }
    }

    #[test]
    fn a_cut_file_is_shorter_and_keeps_its_synced_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, vec![7u8; 300]).unwrap();
        let ledger = dir.path().join("ledger");
        std::fs::write(&ledger, format!("120 {}\n", log.display())).unwrap();
        let cuts = lose_unsynced(&ledger, 2).unwrap();
        assert_eq!(cuts.len(), 1);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 120);
        assert_eq!(std::fs::read(&log).unwrap(), vec![7u8; 120]);
    }
}
