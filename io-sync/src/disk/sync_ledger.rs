//! An optional record, for fault injection, of how long each append-only
//! file was when it was last fsynced.
//!
//! A SIGKILLed process keeps its page cache: everything it wrote survives,
//! fsynced or not, so killing a node never tests what a power cut does, which
//! is lose the un-fsynced tail. With `CHRONIK_SYNC_LEDGER=FILE` in the
//! environment, every fsync of a segment's `.log`, `.index` and `.timeindex`
//! and of the hard-state journal appends `<length> <path>` to FILE before the
//! fsync's caller can act on it (acknowledge, vote). After a SIGKILL, a fault
//! injector (`cargo xtask chaos`'s `disk` nemesis) cuts each file back to
//! anywhere between its last recorded length and its current one: a state a
//! power cut could have left. Without the variable nothing is recorded and the
//! cost is one check of a `OnceLock`.
//!
//! The ledger itself is not fsynced: the process dies, not the machine, so
//! its page cache is kept. A length recorded after a later truncation and
//! regrowth is still right (the length now durable); files rewritten in
//! place or by rename (`raft.meta`, the `.raft` sidecars) are not recorded
//! and are left whole.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// The environment variable naming the ledger file.
pub const ENV: &str = "CHRONIK_SYNC_LEDGER";

fn ledger() -> Option<&'static Mutex<File>> {
    static LEDGER: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    LEDGER
        .get_or_init(|| {
            let path = std::env::var_os(ENV)?;
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => Some(Mutex::new(f)),
                Err(e) => {
                    tracing::error!(path = ?path, error = %e, "cannot open the sync ledger");
                    None
                }
            }
        })
        .as_ref()
}

/// Whether fsyncs are being recorded.
pub fn enabled() -> bool {
    ledger().is_some()
}

/// Records that `path` was `len` bytes long when an fsync of it returned.
pub fn synced(path: &Path, len: u64) {
    if let Some(l) = ledger() {
        let mut f = l.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(f, "{len} {}", path.display());
    }
}

/// Records `file`'s current length under `path`, if the ledger is on.
pub fn synced_file(path: &Path, file: &File) {
    if enabled() {
        if let Ok(m) = file.metadata() {
            synced(path, m.len());
        }
    }
}
