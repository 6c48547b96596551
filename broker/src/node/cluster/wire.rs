//! What brokers say to each other over the peer transport: one tag byte,
//! then either a multi-Raft batch (proto-core's encoding, the hot path) or a
//! small control message (rkyv, validated before use).
//!
//! Control messages carry the two things that are not Raft traffic: Kafka
//! requests a broker forwards to the metadata leader (KIP-590's envelope, so
//! any node can take a CreateTopics), and broker registration and heartbeats
//! (KIP-631), which the metadata leader's controller answers.

use bytes::Bytes;
use proto_core::multiraft::{wire as raft_wire, Batch};

/// The tag of a multi-Raft batch.
const TAG_RAFT: u8 = 0;
/// The tag of a [`Control`] message.
const TAG_CONTROL: u8 = 1;

/// One decoded peer frame.
#[derive(Debug)]
pub enum PeerMessage {
    /// Raft traffic for the groups both nodes host.
    Raft(Batch),
    /// Everything else.
    Control(Control),
}

/// The non-Raft peer messages.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Control {
    /// A Kafka request (its frame, without the size prefix) for the metadata
    /// leader to handle as if a client had sent it there.
    Forward {
        /// The sender's number for the request, echoed in the answer.
        id: u64,
        /// The request frame.
        frame: Vec<u8>,
    },
    /// The answer to a [`Control::Forward`]: the response frame (size prefix
    /// included; empty if the request gets no answer), or `None` if the
    /// request was refused as malformed and the client's connection must close.
    Forwarded {
        /// The forwarded request's number.
        id: u64,
        /// The response frame.
        frame: Option<Vec<u8>>,
    },
    /// The answer to a [`Control::Forward`] from a node that does not run
    /// the controller (leadership moved while the request travelled): it
    /// did nothing, so the sender forwards the request again to the leader
    /// it learns of, as Kafka's forwarding manager retries NOT_CONTROLLER.
    NotController {
        /// The forwarded request's number.
        id: u64,
    },
    /// A broker registers with the controller at every process start.
    Register {
        /// Its id.
        broker_id: i32,
        /// This process run.
        incarnation_id: u128,
        /// Where Kafka clients reach it.
        kafka_host: String,
        /// Where Kafka clients reach it.
        kafka_port: u16,
        /// Where peers reach it.
        raft_addr: String,
        /// Its rack, if declared.
        rack: Option<String>,
    },
    /// A registered broker's heartbeat.
    Heartbeat {
        /// Its id.
        broker_id: i32,
        /// The registered process run.
        incarnation_id: u128,
        /// How far its metadata image has applied the log.
        metadata_offset: u64,
    },
    /// A broker asks the controller for a block of producer ids.
    AllocateProducerIds {
        /// Its id.
        broker_id: i32,
    },
    /// The controller's block of producer ids: `first .. first + len`;
    /// `len` 0 when it refused.
    ProducerIds {
        /// The first id.
        first: i64,
        /// How many.
        len: i64,
    },
    /// A partition leader reports its leadership and ISR (KIP-497).
    AlterPartition {
        /// The topic.
        topic_id: u128,
        /// The partition.
        partition: i32,
        /// The reporting leader.
        leader: i32,
        /// Its Raft term.
        leader_epoch: i32,
        /// The replicas it finds in sync, itself included.
        isr: Vec<i32>,
    },
    /// The controller's answer to an AlterPartition: the recorded leader
    /// epoch and ISR, or `None` if it refused.
    PartitionState {
        /// The topic.
        topic_id: u128,
        /// The partition.
        partition: i32,
        /// The leader epoch and ISR recorded.
        recorded: Option<(i32, Vec<i32>)>,
    },
    /// The controller's answer to a registration or heartbeat.
    Session {
        /// The incarnation answered.
        incarnation_id: u128,
        /// Registered (or still registered) under that incarnation.
        registered: bool,
        /// Fenced: it gets no new replicas until it catches up.
        fenced: bool,
    },
}

/// Why a peer frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// An empty frame.
    #[error("empty peer frame")]
    Empty,
    /// A tag this build does not know.
    #[error("unknown peer frame tag {0}")]
    UnknownTag(u8),
    /// The payload does not decode.
    #[error("bad peer frame: {0}")]
    Invalid(String),
}

/// The largest frame this node sends: half the transport's 16 MiB limit,
/// so a peer with the default limit always takes it.
pub const MAX_PEER_FRAME: usize = 8 << 20;

/// A batch as peer frames of at most `max` bytes each: one flush may gather
/// more than a frame holds (a large produce to many partitions), and an
/// oversized frame would be refused every time Raft resent it. The batch's
/// messages are split in order; a single message larger than `max` still
/// goes alone (Raft's own per-message byte limit keeps those small).
pub fn encode_raft_frames(batch: Batch, max: usize) -> Vec<Bytes> {
    let whole = encode_raft(&batch);
    if whole.len() <= max || batch.messages.len() <= 1 {
        return vec![whole];
    }
    let Batch {
        from,
        to,
        mut messages,
        heartbeats,
        heartbeat_responses,
    } = batch;
    let rest = messages.split_off(messages.len() / 2);
    let first = Batch {
        from,
        to,
        messages,
        heartbeats,
        heartbeat_responses,
    };
    let second = Batch {
        messages: rest,
        ..Batch::new(from, to)
    };
    let mut frames = encode_raft_frames(first, max);
    frames.extend(encode_raft_frames(second, max));
    frames
}

/// A batch as a peer frame.
pub fn encode_raft(batch: &Batch) -> Bytes {
    let body = raft_wire::encode_batch(batch);
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(TAG_RAFT);
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// A control message as a peer frame.
pub fn encode_control(message: &Control) -> Bytes {
    let body = rkyv::to_bytes::<rkyv::rancor::Error>(message)
        .map(|b| b.into_vec())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(TAG_CONTROL);
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// Decodes and validates a peer frame.
pub fn decode(frame: &[u8]) -> Result<PeerMessage, WireError> {
    let (&tag, body) = frame.split_first().ok_or(WireError::Empty)?;
    match tag {
        TAG_RAFT => raft_wire::decode_batch(body)
            .map(PeerMessage::Raft)
            .map_err(|e| WireError::Invalid(e.to_string())),
        TAG_CONTROL => {
            let mut aligned = rkyv::util::AlignedVec::<16>::new();
            aligned.extend_from_slice(body);
            rkyv::from_bytes::<Control, rkyv::rancor::Error>(&aligned)
                .map(PeerMessage::Control)
                .map_err(|e| WireError::Invalid(e.to_string()))
        }
        other => Err(WireError::UnknownTag(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto_core::raft::NodeId;

    #[test]
    fn a_large_batch_leaves_as_several_frames_in_order() {
        use proto_core::raft::{Entry, LogId, LogIndex, Message, MessageBody, Payload, Term};
        let mut batch = Batch::new(NodeId(1), NodeId(2));
        for g in 0..8u64 {
            let entry = Entry {
                index: LogIndex(g + 1),
                term: Term(1),
                payload: Payload::Normal(Bytes::from(vec![g as u8; 1000])),
            };
            batch.messages.push((
                proto_core::multiraft::GroupId(g),
                Message {
                    from: NodeId(1),
                    to: NodeId(2),
                    term: Term(1),
                    body: MessageBody::Append {
                        prev: LogId {
                            term: Term(1),
                            index: LogIndex(g),
                        },
                        entries: vec![entry],
                        commit: LogIndex(0),
                    },
                },
            ));
        }
        let frames = encode_raft_frames(batch.clone(), 3000);
        assert!(frames.len() > 1, "8 KB of entries in 3 KB frames");
        let mut groups = Vec::new();
        for f in &frames {
            assert!(
                f.len() <= 3000
                    || matches!(decode(f), Ok(PeerMessage::Raft(b)) if b.messages.len() == 1)
            );
            match decode(f).unwrap() {
                PeerMessage::Raft(b) => groups.extend(b.messages.into_iter().map(|(g, _)| g.0)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(groups, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let batch = Batch::new(NodeId(1), NodeId(2));
        match decode(&encode_raft(&batch)).unwrap() {
            PeerMessage::Raft(b) => assert_eq!(b, batch),
            other => panic!("{other:?}"),
        }
        let control = Control::Forward {
            id: 7,
            frame: b"request".to_vec(),
        };
        match decode(&encode_control(&control)).unwrap() {
            PeerMessage::Control(c) => assert_eq!(c, control),
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode(b""), Err(WireError::Empty)));
        assert!(matches!(decode(b"\x09abc"), Err(WireError::UnknownTag(9))));
        assert!(matches!(decode(b"\x01abc"), Err(WireError::Invalid(_))));
        assert!(matches!(decode(b"\x00abc"), Err(WireError::Invalid(_))));
    }
}
