//! Whether a handshake succeeds, and what to answer: the one set of rules both
//! drivers apply, so neither decides anything about a peer on its own.
//!
//! The acceptor refuses a dialer from another cluster, at another protocol
//! version, with a node id it does not know, with its own node id, or that
//! expected another node; the dialer refuses an answer from another cluster or
//! from a node other than the one it dialled. The handshake is a guard
//! against misconfiguration, not authentication: anyone who can reach the
//! port and knows the ids can pass it.

use std::collections::BTreeSet;

use super::handshake::{self, ClusterId, Handshake, HandshakeError, Hello, HelloAck, RefuseCode};
use super::PROTOCOL_VERSION;
use crate::raft::NodeId;

/// What a node knows to judge a handshake: its cluster, its id and the ids of
/// the peers it may talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    cluster: ClusterId,
    node: NodeId,
    peers: BTreeSet<NodeId>,
}

/// Why a connection was refused during its handshake, for the log and the
/// driver's `Refused` event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The bytes were not a handshake message this build reads.
    #[error("{0}")]
    Malformed(HandshakeError),
    /// A well-formed message of the wrong kind (a hello-ack to an acceptor).
    #[error("unexpected handshake message")]
    Unexpected,
    /// The other side belongs to another cluster.
    #[error("cluster {theirs:?}, this node's is {ours:?}")]
    WrongCluster {
        /// This node's cluster.
        ours: ClusterId,
        /// The other side's.
        theirs: ClusterId,
    },
    /// The other side speaks another protocol version.
    #[error("protocol version {version}, this node speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion {
        /// The version it speaks.
        version: u16,
    },
    /// The dialer's node id is not among this node's peers.
    #[error("node {node} is not a configured peer")]
    UnknownNode {
        /// The id it claimed.
        node: NodeId,
    },
    /// The dialer claims this node's own id.
    #[error("node {node} is this node's own id")]
    Impersonation {
        /// The id it claimed.
        node: NodeId,
    },
    /// The node reached is not the one expected: the dialer expected another
    /// node here, or the acceptor that answered is not the one dialled.
    #[error("expected node {expected}, found node {actual}")]
    WrongTarget {
        /// The node the dialer meant to reach.
        expected: NodeId,
        /// The node it reached.
        actual: NodeId,
    },
    /// The acceptor refused this node's hello.
    #[error("refused by the peer: {0}")]
    ByPeer(RefuseCode),
}

impl Refusal {
    /// The code an acceptor sends back; none for a stranger (it speaks
    /// another protocol) or for the dialer's own refusals (it just closes).
    fn reply_code(&self) -> Option<RefuseCode> {
        Some(match self {
            Refusal::Malformed(HandshakeError::NotChronik) | Refusal::ByPeer(_) => return None,
            Refusal::Malformed(_) | Refusal::Unexpected => RefuseCode::Malformed,
            Refusal::WrongCluster { .. } => RefuseCode::WrongCluster,
            Refusal::UnsupportedVersion { .. } => RefuseCode::UnsupportedVersion,
            Refusal::UnknownNode { .. } => RefuseCode::UnknownNode,
            Refusal::Impersonation { .. } => RefuseCode::Impersonation,
            Refusal::WrongTarget { .. } => RefuseCode::WrongTarget,
        })
    }
}

impl From<HandshakeError> for Refusal {
    fn from(e: HandshakeError) -> Refusal {
        match e {
            HandshakeError::UnsupportedVersion(version) => Refusal::UnsupportedVersion { version },
            other => Refusal::Malformed(other),
        }
    }
}

/// The acceptor's verdict on the bytes a dialer sent so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// The hello is not complete: read more.
    NeedMore,
    /// Accept: send `reply`, then read frames from `peer`. The hello took the
    /// first `used` bytes; any after it are the start of the frame stream.
    Accept {
        /// The dialer, now known to be a configured peer.
        peer: NodeId,
        /// Bytes of the hello.
        used: usize,
        /// The hello-ack to send.
        reply: Vec<u8>,
    },
    /// Refuse: log the refusal, send `reply` if any, close.
    Refuse {
        /// Why.
        refusal: Refusal,
        /// The refusal message to send first.
        reply: Option<Vec<u8>>,
    },
}

/// The dialer's verdict on the bytes an acceptor answered so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// The answer is not complete: read more.
    NeedMore,
    /// Accepted: frames may flow. The answer took the first `used` bytes.
    Accept {
        /// Bytes of the answer.
        used: usize,
    },
    /// Refused (by either side): log it, close, retry later.
    Refuse(Refusal),
}

impl Identity {
    /// This node's identity. `peers` may name this node too (the broker's
    /// `--peers` lists every voter); it is left out.
    pub fn new(cluster: ClusterId, node: NodeId, peers: impl IntoIterator<Item = NodeId>) -> Self {
        let peers = peers.into_iter().filter(|&p| p != node).collect();
        Identity {
            cluster,
            node,
            peers,
        }
    }

    /// This node's cluster.
    pub fn cluster(&self) -> &ClusterId {
        &self.cluster
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The hello this node sends when it dials `to`.
    pub fn hello(&self, to: NodeId) -> Vec<u8> {
        handshake::encode(&Handshake::Hello(Hello {
            cluster: self.cluster.clone(),
            from: self.node,
            to,
        }))
    }

    /// Judges what a dialer sent so far.
    pub fn judge_hello(&self, received: &[u8]) -> Inbound {
        let refuse = |refusal: Refusal| {
            let reply = refusal
                .reply_code()
                .map(|code| handshake::encode(&Handshake::Refuse(code)));
            Inbound::Refuse { refusal, reply }
        };
        let (hello, used) = match handshake::decode(received) {
            Ok(None) => return Inbound::NeedMore,
            Ok(Some((Handshake::Hello(hello), used))) => (hello, used),
            Ok(Some(_)) => return refuse(Refusal::Unexpected),
            Err(e) => return refuse(e.into()),
        };
        if hello.cluster != self.cluster {
            return refuse(Refusal::WrongCluster {
                ours: self.cluster.clone(),
                theirs: hello.cluster,
            });
        }
        if hello.from == self.node {
            return refuse(Refusal::Impersonation { node: hello.from });
        }
        if !self.peers.contains(&hello.from) {
            return refuse(Refusal::UnknownNode { node: hello.from });
        }
        if hello.to != self.node {
            return refuse(Refusal::WrongTarget {
                expected: hello.to,
                actual: self.node,
            });
        }
        let reply = handshake::encode(&Handshake::Ack(HelloAck {
            cluster: self.cluster.clone(),
            from: self.node,
        }));
        Inbound::Accept {
            peer: hello.from,
            used,
            reply,
        }
    }

    /// Judges what the acceptor at `expected`'s address answered so far.
    pub fn judge_answer(&self, expected: NodeId, received: &[u8]) -> Outbound {
        let (ack, used) = match handshake::decode(received) {
            Ok(None) => return Outbound::NeedMore,
            Ok(Some((Handshake::Ack(ack), used))) => (ack, used),
            Ok(Some((Handshake::Refuse(code), _))) => {
                return Outbound::Refuse(Refusal::ByPeer(code))
            }
            Ok(Some((Handshake::Hello(_), _))) => return Outbound::Refuse(Refusal::Unexpected),
            Err(e) => return Outbound::Refuse(e.into()),
        };
        if ack.cluster != self.cluster {
            return Outbound::Refuse(Refusal::WrongCluster {
                ours: self.cluster.clone(),
                theirs: ack.cluster,
            });
        }
        if ack.from != expected {
            return Outbound::Refuse(Refusal::WrongTarget {
                expected,
                actual: ack.from,
            });
        }
        Outbound::Accept { used }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(cluster: &str, node: u64, peers: &[u64]) -> Identity {
        Identity::new(
            ClusterId::new(cluster).unwrap(),
            NodeId(node),
            peers.iter().map(|&p| NodeId(p)),
        )
    }

    fn refusal_of(verdict: Inbound) -> (Refusal, Option<Handshake>) {
        match verdict {
            Inbound::Refuse { refusal, reply } => {
                let reply = reply.map(|r| handshake::decode(&r).unwrap().unwrap().0);
                (refusal, reply)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_configured_peer_is_accepted_both_ways() {
        let one = identity("c", 1, &[1, 2, 3]);
        let two = identity("c", 2, &[1, 2, 3]);
        let mut hello = one.hello(NodeId(2));
        let hello_len = hello.len();
        hello.extend_from_slice(b"rest");
        let Inbound::Accept { peer, used, reply } = two.judge_hello(&hello) else {
            panic!("refused");
        };
        assert_eq!((peer, used), (NodeId(1), hello_len));
        assert_eq!(
            one.judge_answer(NodeId(2), &reply),
            Outbound::Accept { used: reply.len() }
        );
        assert_eq!(
            one.judge_answer(NodeId(2), &reply[..reply.len() - 1]),
            Outbound::NeedMore
        );
        assert_eq!(two.judge_hello(&hello[..5]), Inbound::NeedMore);
    }

    #[test]
    fn the_acceptor_refuses_and_says_why() {
        let me = identity("c", 1, &[1, 2]);
        let cases = [
            (
                identity("other", 2, &[1]).hello(NodeId(1)),
                Refusal::WrongCluster {
                    ours: ClusterId::new("c").unwrap(),
                    theirs: ClusterId::new("other").unwrap(),
                },
                Some(RefuseCode::WrongCluster),
            ),
            (
                identity("c", 9, &[1]).hello(NodeId(1)),
                Refusal::UnknownNode { node: NodeId(9) },
                Some(RefuseCode::UnknownNode),
            ),
            (
                identity("c", 1, &[5]).hello(NodeId(1)),
                Refusal::Impersonation { node: NodeId(1) },
                Some(RefuseCode::Impersonation),
            ),
            (
                identity("c", 2, &[1]).hello(NodeId(3)),
                Refusal::WrongTarget {
                    expected: NodeId(3),
                    actual: NodeId(1),
                },
                Some(RefuseCode::WrongTarget),
            ),
            (
                b"\x16\x03\x01".to_vec(),
                Refusal::Malformed(HandshakeError::NotChronik),
                None,
            ),
            (
                b"CHRP\x00\x07".to_vec(),
                Refusal::UnsupportedVersion { version: 7 },
                Some(RefuseCode::UnsupportedVersion),
            ),
            (
                handshake::encode(&Handshake::Refuse(RefuseCode::Malformed)),
                Refusal::Unexpected,
                Some(RefuseCode::Malformed),
            ),
        ];
        for (bytes, refusal, code) in cases {
            let (got, reply) = refusal_of(me.judge_hello(&bytes));
            assert_eq!(got, refusal);
            assert_eq!(reply, code.map(Handshake::Refuse), "{refusal}");
        }
    }

    #[test]
    fn the_dialer_checks_whom_it_reached() {
        let me = identity("c", 1, &[2, 3]);
        let ack = |cluster: &str, from: u64| {
            handshake::encode(&Handshake::Ack(HelloAck {
                cluster: ClusterId::new(cluster).unwrap(),
                from: NodeId(from),
            }))
        };
        assert_eq!(
            me.judge_answer(NodeId(2), &ack("c", 3)),
            Outbound::Refuse(Refusal::WrongTarget {
                expected: NodeId(2),
                actual: NodeId(3)
            })
        );
        assert!(matches!(
            me.judge_answer(NodeId(2), &ack("d", 2)),
            Outbound::Refuse(Refusal::WrongCluster { .. })
        ));
        let refused = handshake::encode(&Handshake::Refuse(RefuseCode::UnknownNode));
        assert_eq!(
            me.judge_answer(NodeId(2), &refused),
            Outbound::Refuse(Refusal::ByPeer(RefuseCode::UnknownNode))
        );
        assert_eq!(
            me.judge_answer(NodeId(2), &me.hello(NodeId(2))),
            Outbound::Refuse(Refusal::Unexpected)
        );
        assert_eq!(
            me.judge_answer(NodeId(2), b"HTTP/1.1 400"),
            Outbound::Refuse(Refusal::Malformed(HandshakeError::NotChronik))
        );
    }
}
