//! The bound on what may wait for one peer, shared by both drivers.
//!
//! Each peer's frames wait in a channel between `send` and the link that
//! writes them. The channel itself is unbounded; a [`Budget`] counts what is
//! in it by frames and by bytes, and `send` takes from the budget first, so
//! memory stays bounded and a full queue is an error the caller sees.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use proto_core::raft::NodeId;
use proto_core::transport::frame::{self, TooLarge, HEADER_BYTES};

/// Why `send` did not queue a frame. Nothing was queued in every case.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The destination is not a configured peer (or is this node).
    #[error("node {0} is not a configured peer")]
    UnknownPeer(NodeId),
    /// The payload is larger than `max_frame_bytes`.
    #[error("payload of {size} bytes is larger than the frame limit of {max}")]
    TooLarge {
        /// The payload length.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The peer's queue is full: back off, or drop the batch (Raft resends).
    #[error("the queue for node {peer} is full ({frames} frames, {bytes} bytes)")]
    QueueFull {
        /// The destination.
        peer: NodeId,
        /// Frames waiting.
        frames: usize,
        /// Bytes waiting.
        bytes: usize,
    },
    /// The link's thread or task is gone (it panicked, or the runtime is
    /// shutting down).
    #[error("the link to node {0} has stopped")]
    Stopped(NodeId),
}

impl From<TooLarge> for SendError {
    fn from(TooLarge { size, max }: TooLarge) -> SendError {
        SendError::TooLarge { size, max }
    }
}

/// One frame waiting to be written: its header, computed by `send` on the
/// caller's thread, and its payload.
#[derive(Debug)]
pub struct Outgoing {
    header: [u8; HEADER_BYTES],
    payload: Bytes,
}

impl Outgoing {
    /// Frames `payload`, refused if it is longer than `max`.
    pub fn new(payload: Bytes, max: usize) -> Result<Outgoing, SendError> {
        let header = frame::encode_header(&payload, max)?;
        Ok(Outgoing { header, payload })
    }

    /// The frame header.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Bytes on the wire, which is what the budget counts.
    pub fn wire_bytes(&self) -> usize {
        HEADER_BYTES + self.payload.len()
    }
}

/// One peer's queue, as counted by its [`Budget`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Frames waiting to be written.
    pub queued_frames: usize,
    /// Their bytes, headers included.
    pub queued_bytes: usize,
    /// Frames dropped because the link was down since the transport started.
    pub dropped_frames: u64,
}

#[derive(Debug, Default)]
struct Counts {
    frames: usize,
    bytes: usize,
}

/// The frames and bytes one peer's queue may hold, and what it holds now.
#[derive(Debug)]
pub struct Budget {
    max_frames: usize,
    max_bytes: usize,
    counts: Mutex<Counts>,
    dropped: AtomicU64,
}

impl Budget {
    /// A budget of `max_frames` frames and `max_bytes` bytes.
    pub fn new(max_frames: usize, max_bytes: usize) -> Budget {
        Budget {
            max_frames,
            max_bytes,
            counts: Mutex::default(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Takes room for `frame` (bound for `peer`), or says the queue is full.
    pub fn reserve(&self, peer: NodeId, frame: &Outgoing) -> Result<(), SendError> {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.frames >= self.max_frames || c.bytes + frame.wire_bytes() > self.max_bytes {
            return Err(SendError::QueueFull {
                peer,
                frames: c.frames,
                bytes: c.bytes,
            });
        }
        c.frames += 1;
        c.bytes += frame.wire_bytes();
        Ok(())
    }

    /// Gives back the room of a frame that left the queue.
    pub fn release(&self, frame: &Outgoing) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.frames = c.frames.saturating_sub(1);
        c.bytes = c.bytes.saturating_sub(frame.wire_bytes());
    }

    /// Gives back the room of a frame that left the queue unsent, and counts it.
    pub fn drop_frame(&self, frame: &Outgoing) {
        self.release(frame);
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// What the queue holds now.
    pub fn stats(&self) -> PeerStats {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        PeerStats {
            queued_frames: c.frames,
            queued_bytes: c.bytes,
            dropped_frames: self.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Outgoing {
        Outgoing::new(Bytes::from(vec![0; len]), 100).unwrap()
    }

    #[test]
    fn the_budget_bounds_frames_and_bytes() {
        let budget = Budget::new(3, 40);
        let (a, b) = (frame(10), frame(20));
        budget.reserve(NodeId(2), &a).unwrap();
        assert_eq!(
            budget.reserve(NodeId(2), &b),
            Err(SendError::QueueFull {
                peer: NodeId(2),
                frames: 1,
                bytes: 18
            })
        );
        budget.reserve(NodeId(2), &frame(0)).unwrap();
        budget.reserve(NodeId(2), &frame(0)).unwrap();
        assert!(budget.reserve(NodeId(2), &frame(0)).is_err(), "3 frames");
        budget.release(&a);
        budget.drop_frame(&frame(0));
        assert_eq!(
            budget.stats(),
            PeerStats {
                queued_frames: 1,
                queued_bytes: 8,
                dropped_frames: 1
            }
        );
    }

    #[test]
    fn oversized_payloads_are_refused_before_queueing() {
        assert_eq!(
            Outgoing::new(Bytes::from(vec![0; 101]), 100).unwrap_err(),
            SendError::TooLarge {
                size: 101,
                max: 100
            }
        );
    }
}
