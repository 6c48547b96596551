//! The inter-broker (Raft) transport's decisions, without the sockets.
//!
//! Brokers talk to each other over their own TCP port. Every connection opens
//! with a handshake and then carries length-prefixed, checksummed frames whose
//! payloads are opaque here (the multi-Raft layer puts one encoded
//! [`crate::multiraft::Batch`] in each). The drivers (io-sync's `peer` module,
//! io-tokio's `peer` module) read and write the bytes; everything they must
//! decide about those bytes is a pure function in this module, so both drivers
//! decide the same way and the rules are tested without a network:
//!
//! - [`handshake`]: the handshake messages and their byte format.
//! - [`verdict`]: whether to accept a dialer's hello or an acceptor's answer,
//!   and what to answer.
//! - [`frame`]: the frame header, and cutting validated frames (length bound
//!   checked before anything is buffered for a frame, CRC-32C checked before a
//!   payload is handed on) off a byte stream.
//! - [`backoff`]: the reconnect delays, with jitter from a seeded generator.
//!
//! `docs/architecture.md` ("Peer transport") lists both formats byte by byte.

pub mod backoff;
pub mod frame;
pub mod handshake;
pub mod verdict;

#[cfg(test)]
mod properties;

pub use backoff::Backoff;
pub use handshake::{ClusterId, InvalidClusterId, PROTOCOL_VERSION};
pub use verdict::{Identity, Refusal};
