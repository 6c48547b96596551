//! The ids the cluster metadata speaks in, as newtypes so a broker id is never
//! taken for a partition number, an epoch or an offset.

use std::fmt;

use rkyv::{Archive, Deserialize, Serialize};

/// A broker's id (Kafka's `node.id`), as clients see it in Metadata.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct BrokerId(pub i32);

/// Broker ids as `[1,2,3]`, for messages.
pub(crate) fn id_list(ids: &[BrokerId]) -> String {
    let inner: Vec<String> = ids.iter().map(|b| b.0.to_string()).collect();
    format!("[{}]", inner.join(","))
}

/// A topic id: Kafka's topic UUID, which newer requests address topics by and
/// which tells a recreated topic from the one deleted before it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct TopicId(pub u128);

impl fmt::Display for TopicId {
    /// The UUID's canonical 8-4-4-4-12 form, as Kafka tools print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// One run of a broker process: a fresh value at every process start, so the
/// controller can tell a restarted broker from a retry of the same one
/// (KRaft's `incarnationId`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct IncarnationId(pub u128);

impl fmt::Display for IncarnationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A position in the metadata log: records are numbered from 0 in log order,
/// whatever Raft entries carry them, so every node numbers them alike.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Archive,
    Serialize,
    Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct MetadataOffset(pub u64);

/// A broker registration's epoch: the metadata offset of the `RegisterBroker`
/// record that created it (KRaft's rule), so a newer registration always has a
/// larger epoch and a record about an older one can be recognised as stale.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Archive, Serialize, Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct BrokerEpoch(pub u64);

/// A partition's leader epoch: the Raft term of its group when the leader
/// reported itself, so it only grows.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Archive,
    Serialize,
    Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
pub struct LeaderEpoch(pub i32);

/// The id the driver gives a request so it can route the controller's answer
/// back to whoever asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Ids that print as their bare number.
macro_rules! display_as_number {
    ($($t:ty),*) => {
        $(impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        })*
    };
}

display_as_number!(BrokerId, MetadataOffset, BrokerEpoch, LeaderEpoch);
