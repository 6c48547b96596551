//! rkyv encoding of multi-Raft batches for the inter-broker transport.
//!
//! Same rules as [`crate::raft::wire`]: decoding validates the bytes before use,
//! so a corrupt or hostile frame is an error, never undefined behaviour.

use super::Batch;
pub use crate::raft::wire::DecodeError;
use crate::raft::wire::{decode, encode};

/// Encodes a batch for the wire.
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    encode(batch)
}

/// Decodes and validates a batch from the wire. The receiver still checks that
/// the batch is addressed to it and comes from the authenticated peer.
pub fn decode_batch(bytes: &[u8]) -> Result<Batch, DecodeError> {
    decode(bytes)
}
