//! What request handling needs from partition storage, as a trait.
//!
//! Writes never go through here: they leave the node as [`Output::Persist`]
//! actions so the driver can batch them into group commits. Reads, creation and
//! deletion are synchronous calls, the way etcd-raft's `Storage` interface lets
//! the core read its log: a fetch needs bytes now, and a test can substitute an
//! in-memory store.
//!
//! [`Output::Persist`]: crate::node::Output::Persist

use std::fmt;
use std::io;

use bytes::Bytes;
use proto_core::raft::{Entry, Restored};
use proto_core::storage::batch::BatchHeader;

/// A topic partition, as Kafka names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: String,
    /// The partition number within the topic.
    pub partition: i32,
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The per-partition storage settings that topic configs control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// `segment.bytes`: roll the active segment at this size.
    pub segment_bytes: u64,
    /// `segment.ms`: roll the active segment at this age.
    pub segment_ms: Option<u64>,
    /// `retention.bytes`: delete old segments beyond this size (`None`: keep).
    pub retention_bytes: Option<u64>,
    /// `retention.ms`: delete segments older than this (`None`: keep).
    pub retention_ms: Option<u64>,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_batch_bytes: u32,
}

/// What storage holds for a follower that lacks the entries from some Raft
/// index on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredEntries {
    /// The entries from the index asked for (none if storage does not reach
    /// it, or cannot say where it starts), after the stored term of the one
    /// before, if known.
    From {
        /// The term of the entry before the first.
        prev_term: Option<u64>,
        /// The entries.
        entries: Vec<Entry>,
    },
    /// Retention deleted the index asked for: storage starts after the
    /// entry `index` of term `term`, at Kafka offset `log_start_offset`.
    StartsAfter {
        /// The Raft index before storage's first entry.
        index: u64,
        /// Its term.
        term: u64,
        /// The Kafka offset of storage's first record.
        log_start_offset: i64,
    },
}

/// Partition storage as the request handler sees it.
pub trait LogStore {
    /// Creates an empty log for `tp`, or opens the existing one, and returns
    /// the Raft state it holds (a cluster node hosts a partition again after
    /// a restart this way, once the metadata log names it).
    /// `group` is the partition's Raft group, whose durable hard state the
    /// store may keep apart from the log.
    fn create(
        &mut self,
        group: u64,
        tp: &TopicPartition,
        settings: &LogSettings,
    ) -> io::Result<Restored>;
    /// Deletes `tp`'s log and everything on disk for it.
    fn delete(&mut self, tp: &TopicPartition) -> io::Result<()>;
    /// Applies changed settings to an existing log.
    fn configure(&mut self, tp: &TopicPartition, settings: &LogSettings) -> io::Result<()>;
    /// Whole record batches from the one holding `offset`, up to `max_bytes`
    /// (at least one batch if any), never at or past `end`.
    fn read(
        &self,
        tp: &TopicPartition,
        offset: i64,
        max_bytes: usize,
        end: i64,
    ) -> io::Result<Bytes>;
    /// Calls `f` with the header of every stored data batch of `tp`, in
    /// offset order: how producer state is rebuilt at start.
    fn scan_headers(&self, tp: &TopicPartition, f: &mut dyn FnMut(&BatchHeader)) -> io::Result<()>;
    /// The offset after every data record up to and including Raft index
    /// `raft_index`: the high watermark when that index is known committed
    /// (a restart's snapshot marker).
    fn next_offset_after(&self, tp: &TopicPartition, raft_index: u64) -> io::Result<i64>;
    /// What a leader sends a follower that is behind its in-memory Raft log:
    /// `tp`'s stored entries `from..=last`, up to `max_bytes` but at least
    /// one, or where storage starts if retention deleted `from`.
    fn raft_entries(
        &self,
        tp: &TopicPartition,
        from: u64,
        last: u64,
        max_bytes: usize,
    ) -> io::Result<StoredEntries>;
    /// Asks retention to keep `tp`'s entries from Raft index `from` on, the
    /// first one a lagging replica still needs (`None`: nothing to hold), as
    /// long as the log stays within twice its retention limits. A partition's
    /// leader sets it: a follower behind the leader's log cannot catch up.
    fn hold_for_replicas(&self, tp: &TopicPartition, from: Option<u64>);
    /// The first offset still stored.
    fn log_start_offset(&self, tp: &TopicPartition) -> i64;
    /// The offset the next data record will get.
    fn next_offset(&self, tp: &TopicPartition) -> i64;
    /// The first offset whose batch's max timestamp is at least `ts`, with that
    /// timestamp.
    fn offset_for_timestamp(&self, tp: &TopicPartition, ts: i64) -> io::Result<Option<(i64, i64)>>;
    /// Makes the topic table durable (atomically replaces the previous one).
    fn save_topics(&mut self, data: &[u8]) -> io::Result<()>;
}
