//! The partition log's on-disk format as pure functions: record batches, the
//! sparse offset and time indexes, and the recovery scan. No files here; io-sync's
//! disk layer does the IO.
//!
//! The Raft log is the partition log: a Raft data entry is one Kafka batch,
//! stored byte for byte as a fetch serves it; a Raft-only entry is framed as a
//! control batch ([`raft_entry`]) that consumes no offset and is never served.
//!
//! - [`batch`]: v2 batch headers, CRC, splitting produce payloads, encoding.
//! - [`raft_entry`]: the frame of Raft-only entries.
//! - [`index`]: sparse offset and time index entries, when to add them, lookups.
//! - [`recovery`]: the scan that finds where a segment's valid bytes end.
//! - [`policy`]: the log's settings, segment roll and retention decisions.

pub mod batch;
pub mod index;
pub mod policy;
pub mod raft_entry;
pub mod recovery;

#[cfg(test)]
mod properties;
