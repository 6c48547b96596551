//! The peer transport's settings, shared by both drivers.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::time::Duration;

use proto_core::raft::NodeId;
use proto_core::transport::frame::HEADER_BYTES;
use proto_core::transport::{Backoff, ClusterId, Identity};

/// Default largest frame payload: room for a flush's worth of appends across
/// many groups, small enough that a connection's read buffer stays modest.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Default frames that may wait for one peer.
pub const DEFAULT_QUEUE_FRAMES: usize = 1024;
/// Default bytes (headers included) that may wait for one peer.
pub const DEFAULT_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Default bound on dialling a peer and on each side's handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default first reconnect delay ceiling.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Default largest reconnect delay.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Connections still in their handshake that may be open at once, beyond one
/// established connection per peer: a flood of dialers cannot take more.
pub const MAX_HANDSHAKING: usize = 16;

/// Everything one node's peer transport needs. Build it with
/// [`PeerConfig::new`], which fills the limits with the defaults above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The Raft listen address; only this address is bound.
    pub listen: SocketAddr,
    /// This node's cluster: peers of another cluster are refused.
    pub cluster_id: ClusterId,
    /// This node's id.
    pub node_id: NodeId,
    /// Every peer and its Raft address. May name this node too (the broker's
    /// `--peers` lists every voter); that entry is not dialled.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// The largest payload sent or received; a peer announcing more is cut
    /// off before anything is buffered for it. Every node should agree.
    pub max_frame_bytes: usize,
    /// Frames that may wait for one peer before `send` says it is full.
    pub queue_frames: usize,
    /// Bytes (payloads plus headers) that may wait for one peer.
    pub queue_bytes: usize,
    /// Bound on dialling a peer and on each handshake.
    pub handshake_timeout: Duration,
    /// The first reconnect delay ceiling (waits are between half of it and it).
    pub backoff_min: Duration,
    /// The largest reconnect delay.
    pub backoff_max: Duration,
}

/// Settings the transport cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A frame length must fit the header's 32 bits.
    #[error("max_frame_bytes {0} does not fit a 32-bit frame length")]
    FrameLimit(usize),
    /// The queue must hold at least one largest frame.
    #[error("a peer queue of {frames} frames and {bytes} bytes cannot hold one frame of {max_frame} bytes")]
    QueueTooSmall {
        /// `queue_frames`.
        frames: usize,
        /// `queue_bytes`.
        bytes: usize,
        /// `max_frame_bytes`.
        max_frame: usize,
    },
    /// A zero timeout or backoff would spin, and std refuses zero timeouts.
    #[error("handshake_timeout and backoff_min must be positive")]
    ZeroDuration,
}

/// Why a transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The settings are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Binding the listen address or starting a thread failed.
    #[error("cannot start the peer transport: {0}")]
    Io(#[from] std::io::Error),
}

impl PeerConfig {
    /// Settings with the default limits, timeouts and backoff.
    pub fn new(
        listen: SocketAddr,
        cluster_id: ClusterId,
        node_id: NodeId,
        peers: BTreeMap<NodeId, SocketAddr>,
    ) -> PeerConfig {
        PeerConfig {
            listen,
            cluster_id,
            node_id,
            peers,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            queue_frames: DEFAULT_QUEUE_FRAMES,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }

    /// Checks the settings; both drivers refuse to start without this.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if u32::try_from(self.max_frame_bytes).is_err() {
            return Err(ConfigError::FrameLimit(self.max_frame_bytes));
        }
        if self.queue_frames == 0
            || self.queue_bytes < self.max_frame_bytes.saturating_add(HEADER_BYTES)
        {
            return Err(ConfigError::QueueTooSmall {
                frames: self.queue_frames,
                bytes: self.queue_bytes,
                max_frame: self.max_frame_bytes,
            });
        }
        if self.handshake_timeout.is_zero() || self.backoff_min.is_zero() {
            return Err(ConfigError::ZeroDuration);
        }
        Ok(())
    }

    /// What the handshake rules need to know about this node.
    pub fn identity(&self) -> Identity {
        Identity::new(
            self.cluster_id.clone(),
            self.node_id,
            self.peers.keys().copied(),
        )
    }

    /// The peers to dial: every configured one but this node.
    pub fn remote_peers(&self) -> impl Iterator<Item = (NodeId, SocketAddr)> + '_ {
        self.peers
            .iter()
            .filter(|(&id, _)| id != self.node_id)
            .map(|(&id, &addr)| (id, addr))
    }

    /// The most inbound connections open at once: one per peer plus
    /// [`MAX_HANDSHAKING`].
    pub fn max_inbound(&self) -> usize {
        self.remote_peers().count() + MAX_HANDSHAKING
    }

    /// The reconnect delays towards `peer`, seeded from the process's random
    /// hasher keys so that nodes restarting together spread their dials.
    pub fn backoff(&self, peer: NodeId) -> Backoff {
        let seed = RandomState::new().hash_one((self.node_id, peer));
        Backoff::new(self.backoff_min, self.backoff_max, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PeerConfig {
        let addr: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        PeerConfig::new(
            addr,
            ClusterId::new("c").unwrap(),
            NodeId(1),
            BTreeMap::from([(NodeId(1), addr), (NodeId(2), addr)]),
        )
    }

    #[test]
    fn defaults_are_valid_and_this_node_is_not_dialled() {
        let c = config();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            c.remote_peers().map(|(id, _)| id).collect::<Vec<_>>(),
            [NodeId(2)]
        );
        assert_eq!(c.max_inbound(), 1 + MAX_HANDSHAKING);
    }

    #[test]
    fn unusable_limits_are_refused() {
        let mut c = config();
        c.queue_bytes = c.max_frame_bytes;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::QueueTooSmall { .. })
        ));
        let mut c = config();
        c.queue_frames = 0;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::QueueTooSmall { .. })
        ));
        let mut c = config();
        c.backoff_min = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::ZeroDuration));
    }
}
