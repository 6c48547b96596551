//! The blocking disk layer both drivers share: segment files, indexes, fsync and
//! group commit. The format decisions live in `proto_core::storage`.
//!
//! A partition's directory holds its segments, `<base offset, 20 digits>.log`
//! with `.index`, `.timeindex` and `.raft` beside each, and `raft.meta`
//! ([`RaftMetaStore`]). The `.raft` sidecar names the Raft index of the
//! segment's first entry and the term of the one before, so the log knows
//! the term before its first entry after retention or a reset. The Raft log
//! is the partition log: see [`PartitionLog`].

mod commit;
mod journal;
mod log;
mod meta;
mod open;
mod read;
mod segment;
pub mod sync_ledger;

pub use commit::{
    BeforeAppend, CommitError, CommitHandle, Completion, GroupCommitter, RoundBarrier, SharedLog,
    WriteJob,
};
pub use journal::Journal;
pub use log::{EntryPayload, LogEntry, LogError, PartitionLog};
pub use meta::RaftMetaStore;
pub use open::RecoveryReport;
pub use proto_core::storage::policy::LogConfig;
pub use read::{FileRange, ReadResult};
