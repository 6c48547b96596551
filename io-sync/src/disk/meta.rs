//! The durable Raft metadata of one partition (hard state, snapshot meta):
//! opaque bytes the caller encodes, replaced atomically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const FILE: &str = "raft.meta";
const TEMP: &str = "raft.meta.tmp";
const MAGIC: &[u8; 4] = b"CHRM";

/// Stores one small blob per partition so that a crash leaves either the old
/// or the new one, never a mix: write a temporary file, fsync it, rename it
/// over the old one, fsync the directory.
#[derive(Debug)]
pub struct RaftMetaStore {
    dir: PathBuf,
}

impl RaftMetaStore {
    /// A store in `dir` (which must exist; the partition log creates it).
    pub fn new(dir: &Path) -> Self {
        RaftMetaStore {
            dir: dir.to_path_buf(),
        }
    }

    /// The last stored bytes, or `None` if nothing was ever stored. A leftover
    /// temporary file (a crash mid-store) is ignored and removed; a damaged
    /// file is an `InvalidData` error, since guessing Raft state is unsafe.
    pub fn load(dir: &Path) -> io::Result<Option<Vec<u8>>> {
        match fs::remove_file(dir.join(TEMP)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let b = match fs::read(dir.join(FILE)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let damaged = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is damaged", dir.join(FILE).display()),
            )
        };
        if b.len() < 12 || &b[..4] != MAGIC {
            return Err(damaged());
        }
        let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let crc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        let body = &b[12..];
        if body.len() != len || crc32c::crc32c(body) != crc {
            return Err(damaged());
        }
        Ok(Some(body.to_vec()))
    }

    /// Replaces the stored bytes durably.
    pub fn store(&self, bytes: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "meta too large"))?;
        let tmp = self.dir.join(TEMP);
        let mut f = File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&len.to_be_bytes())?;
        f.write_all(&crc32c::crc32c(bytes).to_be_bytes())?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(FILE))?;
        File::open(&self.dir)?.sync_all()
    }
}
