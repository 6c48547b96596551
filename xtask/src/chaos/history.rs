//! What a chaos run observed, as plain data: every send with its outcome,
//! every record a consumer polled, the log as read back after the faults
//! healed, and when each fault was active. The workload records it, the
//! checker ([`super::checker`]) judges it, and `history.json` keeps it so a
//! verdict can be re-examined after the run.
//!
//! Times are microseconds since the workload started, one clock for every
//! thread, so sends, polls and fault windows line up on one timeline.
//! Values are unique per run: producer `p`'s `n`th send carries
//! `p * VALUES_PER_PRODUCER + n`, written as its decimal digits.

use serde::{Deserialize, Serialize};

/// How many values each producer may send: the stride between producers'
/// value ranges.
pub const VALUES_PER_PRODUCER: u64 = 1_000_000_000;

/// A record's value: unique within a run (see the module docs).
pub type Value = u64;

/// One produce request for one record, from `send` to its delivery report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendOp {
    /// Which producer sent it (0, 1, …).
    pub producer: u32,
    /// The record's value.
    pub value: Value,
    /// The partition it was sent to (chosen by the workload, not the client).
    pub partition: i32,
    /// When `send` was called.
    pub invoked_us: u64,
    /// When the delivery report arrived; `None` if it never did before the
    /// run ended.
    pub completed_us: Option<u64>,
    /// What the report said; `None` with `completed_us`.
    pub outcome: Option<SendOutcome>,
}

/// A delivery report's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendOutcome {
    /// Acknowledged (acks=all) at this offset: a promise that the record is
    /// stored there.
    Acked {
        /// The offset the broker reported.
        offset: i64,
    },
    /// Not acknowledged. The record may still have been written (a timeout
    /// is indefinite), so a failed send that shows up in the log is fine.
    Failed {
        /// The client's error, as it printed it.
        error: String,
    },
}

/// How a consumer got its partitions, which decides what "monotonic" means
/// for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConsumerKind {
    /// Subscribed in a consumer group: a rebalance may hand a partition back
    /// at the group's committed offset, so offsets may go back across
    /// assignment epochs, never within one.
    Group,
    /// `assign`ed every partition from offset 0: offsets only ever go up.
    Assigned,
}

/// One record a consumer returned from `poll`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollOp {
    /// Which consumer polled it (unique across kinds).
    pub consumer: u32,
    /// How that consumer was assigned its partitions.
    pub kind: ConsumerKind,
    /// The consumer's assignment epoch: starts at 0 and goes up by one at
    /// every rebalance (always 0 for [`ConsumerKind::Assigned`]).
    pub epoch: u32,
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// The record's value, `None` if it was not one of ours (unparseable).
    pub value: Option<Value>,
    /// When `poll` returned it.
    pub at_us: u64,
}

/// One partition read from offset 0 to its high watermark once the faults
/// healed and the cluster converged: the log every acknowledgement is held
/// to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    /// The partition.
    pub partition: i32,
    /// The high watermark the read went up to.
    pub high_watermark: i64,
    /// Every record read, `(offset, value)`, in offset order; `None` for a
    /// value that was not one of ours.
    pub records: Vec<(i64, Option<Value>)>,
}

/// When one fault was in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// The nemesis that injected it (`kill`, `pause`, `partition`, …): the
    /// key availability figures are grouped by.
    pub nemesis: String,
    /// What exactly it did, for the schedule and the timeline
    /// (`SIGKILL node 2 (partition 0's leader)`).
    pub label: String,
    /// When it began.
    pub start_us: u64,
    /// When it was healed; `None` if the run ended first (it is healed
    /// then).
    pub end_us: Option<u64>,
}

/// Everything one run recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The topic's partition count.
    pub partitions: i32,
    /// Every send, in invocation order per producer.
    pub sends: Vec<SendOp>,
    /// Every polled record, in poll order per consumer.
    pub polls: Vec<PollOp>,
    /// The final read of every partition, partition 0 first.
    pub finals: Vec<FinalRead>,
    /// Every fault, in the order they began.
    pub faults: Vec<FaultWindow>,
    /// When the last fault healed (the end of the fault phase).
    pub healed_us: Option<u64>,
    /// When the workload stopped.
    pub ended_us: u64,
}
