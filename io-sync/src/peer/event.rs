//! What a peer transport reports to its owner, shared by both drivers.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use proto_core::raft::NodeId;
use proto_core::transport::Refusal;

/// One thing that happened on the transport, handed to the owner's callback
/// from the transport's threads or tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// A frame arrived whole, its length and CRC checked, from a peer that
    /// passed the handshake. The payload is still unchecked bytes: the
    /// consumer decodes and validates it (`multiraft::wire::decode_batch`).
    Frame {
        /// The sending peer, as its handshake named it.
        from: NodeId,
        /// The payload.
        payload: Bytes,
    },
    /// The link to `peer` is up: frames sent to it now go out.
    Connected {
        /// The peer.
        peer: NodeId,
    },
    /// The link to `peer` went down; frames waiting for it were dropped, and
    /// the transport redials with backoff. Multi-Raft's `PeerUnreachable`.
    Disconnected {
        /// The peer.
        peer: NodeId,
    },
    /// A handshake failed: a dialer this node refused, or a peer that
    /// refused this node or answered as the wrong node.
    Refused {
        /// The other end of the connection.
        addr: SocketAddr,
        /// Why.
        reason: Refusal,
    },
}

/// The owner's callback. It runs on the transport's threads, so it should
/// only hand the event on (to the node loop's channel, say).
pub type Deliver = Arc<dyn Fn(PeerEvent) + Send + Sync>;
