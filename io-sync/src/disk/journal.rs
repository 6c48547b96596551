//! One append-only file of small keyed records for every partition of a node:
//! the Raft hard state (term and vote) of each group.
//!
//! An election changes the hard state of every group it touches, and each
//! change must be durable before the vote counts. With one `raft.meta` per
//! partition (a temporary file, its fsync, a rename and a directory fsync)
//! 10,000 partitions electing at once cost 20,000 fsyncs per node, longer than
//! the election timeout, so the elections time out and start again forever.
//! The journal makes a commit round's hard-state changes one write and one
//! fsync for the whole node, as etcd's WAL, TiKV's raft engine and Redpanda's
//! kvstore do.
//!
//! Format: records of `u32 length, u32 CRC-32C of the rest, u64 key, value`.
//! Replay keeps the last record of each key and stops at the first record that
//! is cut short or fails its CRC (what a crash mid-append leaves; nothing after
//! it was ever acknowledged). When the file has grown to [`COMPACT_BYTES`]
//! and to four times its live size, it is rewritten with one record per key
//! (temporary file, fsync, rename, directory fsync).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::sync_ledger;

/// Bytes of a record's length and CRC fields.
const HEADER: usize = 8;
/// Bytes of a record's key.
const KEY: usize = 8;
/// The largest value accepted: hard states are tens of bytes.
const MAX_VALUE: usize = 1 << 16;
/// Below this size the journal is never rewritten.
pub const COMPACT_BYTES: u64 = 16 << 20;

/// The journal file and the latest value of every key.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    latest: BTreeMap<u64, Vec<u8>>,
    /// Appended since the last [`Journal::sync`].
    dirty: bool,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and replays it. A damaged
    /// tail is cut off and reported in the log.
    pub fn open(path: &Path) -> io::Result<Journal> {
        let _ = fs::remove_file(temp_path(path));
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let (latest, valid) = replay(&data);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if (valid as u64) < data.len() as u64 {
            tracing::warn!(path = %path.display(), valid, len = data.len(),
                "cut a torn tail off the hard-state journal");
            file.set_len(valid as u64)?;
            file.sync_all()?;
            sync_ledger::synced(path, valid as u64);
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            len: valid as u64,
            latest,
            dirty: false,
        })
    }

    /// The latest value of `key`, if any was ever appended.
    pub fn get(&self, key: u64) -> Option<&[u8]> {
        self.latest.get(&key).map(Vec::as_slice)
    }

    /// Appends `value` for `key` (written, not yet synced).
    pub fn append(&mut self, key: u64, value: &[u8]) -> io::Result<()> {
        if value.len() > MAX_VALUE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a journal value of {} bytes", value.len()),
            ));
        }
        let record = encode(key, value);
        self.file.write_all_at(&record, self.len)?;
        self.len += record.len() as u64;
        self.latest.insert(key, value.to_vec());
        self.dirty = true;
        Ok(())
    }

    /// Forgets `key` (a deleted partition): it is left out of the next
    /// rewrite. Nothing is written.
    pub fn forget(&mut self, key: u64) {
        self.latest.remove(&key);
    }

    /// Makes every append so far durable (one fsync), and rewrites the file
    /// if it has grown large.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            sync_ledger::synced_file(&self.path, &self.file);
            self.dirty = false;
        }
        let live: u64 = self
            .latest
            .values()
            .map(|v| (HEADER + KEY + v.len()) as u64)
            .sum();
        if self.len >= COMPACT_BYTES && self.len >= live.saturating_mul(4) {
            self.rewrite()?;
        }
        Ok(())
    }

    fn rewrite(&mut self) -> io::Result<()> {
        let tmp = temp_path(&self.path);
        let mut out = Vec::new();
        for (k, v) in &self.latest {
            out.extend_from_slice(&encode(*k, v));
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.len = out.len() as u64;
        sync_ledger::synced(&self.path, self.len);
        Ok(())
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

fn encode(key: u64, value: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(KEY + value.len());
    body.extend_from_slice(&key.to_be_bytes());
    body.extend_from_slice(value);
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The last value per key, and the length of the valid prefix.
fn replay(data: &[u8]) -> (BTreeMap<u64, Vec<u8>>, usize) {
    let mut latest = BTreeMap::new();
    let mut at = 0;
    while let Some(h) = data.get(at..at + HEADER) {
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        if !(KEY..=KEY + MAX_VALUE).contains(&len) {
            break;
        }
        let Some(body) = data.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32c::crc32c(body) != crc {
            break;
        }
        let key = u64::from_be_bytes(body[..KEY].try_into().unwrap_or_default());
        latest.insert(key, body[KEY..].to_vec());
        at += HEADER + len;
    }
    (latest, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn the_last_value_of_each_key_survives_a_reopen() {
        let d = dir();
        let path = d.path().join("hs.journal");
        let mut j = Journal::open(&path).unwrap();
        j.append(1, b"a").unwrap();
        j.append(2, b"b").unwrap();
        j.append(1, b"c").unwrap();
        j.sync().unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get(1), Some(&b"c"[..]));
        assert_eq!(j.get(2), Some(&b"b"[..]));
        assert_eq!(j.get(3), None);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_cut_and_later_appends_survive() {
        let d = dir();
        let path = d.path().join("hs.journal");
        let mut j = Journal::open(&path).unwrap();
        j.append(1, b"first").unwrap();
        j.append(1, b"second").unwrap();
        j.sync().unwrap();
        drop(j);
        let full = fs::read(&path).unwrap();
        // Cut the second record short: the first is what survives.
        fs::write(&path, &full[..full.len() - 3]).unwrap();
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.get(1), Some(&b"first"[..]));
        j.append(2, b"after").unwrap();
        j.sync().unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get(1), Some(&b"first"[..]));
        assert_eq!(j.get(2), Some(&b"after"[..]));
        // A flipped byte ends the valid prefix at the record it damages.
        let mut bad = fs::read(&path).unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        fs::write(&path, &bad).unwrap();
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get(2), None);
        assert_eq!(j.get(1), Some(&b"first"[..]));
    }

    #[test]
    fn a_rewrite_keeps_only_live_keys() {
        let d = dir();
        let path = d.path().join("hs.journal");
        let mut j = Journal::open(&path).unwrap();
        j.append(7, b"gone").unwrap();
        j.forget(7);
        j.append(8, b"kept").unwrap();
        j.rewrite().unwrap();
        j.append(9, b"new").unwrap();
        j.sync().unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get(7), None);
        assert_eq!(j.get(8), Some(&b"kept"[..]));
        assert_eq!(j.get(9), Some(&b"new"[..]));
    }
}
