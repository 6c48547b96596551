//! rkyv encoding of messages and entries for the network and the disk.
//!
//! Decoding validates the bytes (rkyv's bytecheck) before use, so a corrupt or
//! hostile frame is an error, never undefined behaviour.

use rkyv::rancor::Error as RkyvError;

use super::{Entry, HardState, Message, Snapshot};

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("invalid encoding: {0}")]
pub struct DecodeError(String);

/// Encodes a message for the wire.
pub fn encode_message(m: &Message) -> Vec<u8> {
    encode(m)
}

/// Decodes and validates a message from the wire.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    decode(bytes)
}

/// Encodes log entries for the disk.
pub fn encode_entries(entries: &Vec<Entry>) -> Vec<u8> {
    encode(entries)
}

/// Decodes and validates log entries from the disk.
pub fn decode_entries(bytes: &[u8]) -> Result<Vec<Entry>, DecodeError> {
    decode(bytes)
}

/// Encodes a hard state for the disk.
pub fn encode_hard_state(hs: &HardState) -> Vec<u8> {
    encode(hs)
}

/// Decodes and validates a hard state from the disk.
pub fn decode_hard_state(bytes: &[u8]) -> Result<HardState, DecodeError> {
    decode(bytes)
}

/// Encodes a snapshot (its metadata and data) for the disk.
pub fn encode_snapshot(s: &Snapshot) -> Vec<u8> {
    encode(s)
}

/// Decodes and validates a snapshot from the disk.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    decode(bytes)
}

/// Shared by every wire type, so they all encode the same way.
pub(crate) fn encode<T>(value: &T) -> Vec<u8>
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            rkyv::util::AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            RkyvError,
        >,
    >,
{
    match rkyv::to_bytes::<RkyvError>(value) {
        Ok(bytes) => bytes.into_vec(),
        // Serializing plain owned data into a growable buffer cannot fail.
        Err(e) => unreachable!("rkyv serialization failed: {e}"),
    }
}

/// Shared by every wire type, so they all encode the same way.
pub(crate) fn decode<T>(bytes: &[u8]) -> Result<T, DecodeError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, RkyvError>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<RkyvError>>,
{
    // rkyv needs aligned input; frames arrive at arbitrary offsets.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, RkyvError>(&aligned).map_err(|e| DecodeError(e.to_string()))
}
