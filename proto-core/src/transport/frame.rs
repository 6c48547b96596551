//! The frames a peer connection carries after its handshake.
//!
//! ```text
//! offset size field
//!      0    4 payload length, u32 big-endian
//!      4    4 CRC-32C (Castagnoli) of the payload, u32 big-endian
//!      8    - payload: opaque here (one encoded multi-Raft batch)
//! ```
//!
//! The length is checked against the receiver's limit as soon as its 4 bytes
//! are in, before anything is buffered for the payload, so a header claiming
//! 4 GiB costs nothing. The CRC is checked before the payload is handed on,
//! so a corrupt payload never reaches the batch decoder; a frame that fails
//! either check leaves the stream at an unknown position, and the connection
//! is closed.

use bytes::{Buf, Bytes, BytesMut};

/// Length of the header in front of every payload.
pub const HEADER_BYTES: usize = 8;

/// A payload longer than the frame limit (or than a u32 can say): the one
/// reason a frame cannot be sent, and one reason it cannot be received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("frame of {size} bytes is larger than the limit of {max}")]
pub struct TooLarge {
    /// The payload length.
    pub size: u64,
    /// The limit.
    pub max: usize,
}

/// Why a frame cannot be received.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header announces a payload over the limit.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// The payload does not match its checksum.
    #[error("frame checksum mismatch: header says {expected:#010x}, payload has {actual:#010x}")]
    BadCrc {
        /// The CRC in the header.
        expected: u32,
        /// The CRC of the bytes received.
        actual: u32,
    },
}

/// The header for `payload`, refused if the payload is longer than `max`.
pub fn encode_header(payload: &[u8], max: usize) -> Result<[u8; HEADER_BYTES], TooLarge> {
    let too_large = || TooLarge {
        size: payload.len() as u64,
        max,
    };
    if payload.len() > max {
        return Err(too_large());
    }
    let len = u32::try_from(payload.len()).map_err(|_| too_large())?;
    let mut header = [0u8; HEADER_BYTES];
    header[..4].copy_from_slice(&len.to_be_bytes());
    header[4..].copy_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    Ok(header)
}

/// Takes the next whole, checked payload off the front of `buf`, the bytes
/// read from one connection. `Ok(None)`: read more and call again. Payloads
/// longer than `max` are refused as soon as the length is in.
pub fn next_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(len) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*len);
    let size = len as usize;
    if size > max {
        return Err(TooLarge {
            size: u64::from(len),
            max,
        }
        .into());
    }
    if buf.len() < HEADER_BYTES + size {
        return Ok(None);
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&buf[4..HEADER_BYTES]);
    let expected = u32::from_be_bytes(crc);
    let actual = crc32c::crc32c(&buf[HEADER_BYTES..HEADER_BYTES + size]);
    if actual != expected {
        return Err(FrameError::BadCrc { expected, actual });
    }
    buf.advance(HEADER_BYTES);
    Ok(Some(buf.split_to(size).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = encode_header(payload, 1 << 20).unwrap().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn header_bytes_are_as_documented() {
        let bytes = framed(b"123456789");
        // CRC-32C check value of "123456789".
        assert_eq!(&bytes[..8], &[0, 0, 0, 9, 0xe3, 0x06, 0x92, 0x83]);
    }

    #[test]
    fn frames_come_off_whole_and_in_order() {
        let mut stream = framed(b"first");
        stream.extend(framed(b""));
        stream.extend(framed(b"third"));
        stream.extend_from_slice(&[0, 0]);
        let mut buf = BytesMut::from(&stream[..]);
        for want in [&b"first"[..], b"", b"third"] {
            assert_eq!(next_frame(&mut buf, 10).unwrap().as_deref(), Some(want));
        }
        assert_eq!(next_frame(&mut buf, 10), Ok(None));
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn waits_for_every_byte() {
        let stream = framed(b"hello");
        let mut buf = BytesMut::new();
        for (i, byte) in stream.iter().enumerate() {
            assert_eq!(next_frame(&mut buf, 10), Ok(None), "after {i} bytes");
            buf.extend_from_slice(&[*byte]);
        }
        assert_eq!(
            next_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
    }

    #[test]
    fn oversized_frames_are_refused_from_the_length_alone() {
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert_eq!(
            next_frame(&mut buf, 1 << 20),
            Err(FrameError::TooLarge(TooLarge {
                size: u64::from(u32::MAX),
                max: 1 << 20
            }))
        );
        assert_eq!(
            encode_header(&[0; 11], 10),
            Err(TooLarge { size: 11, max: 10 })
        );
        // The limit itself is allowed.
        let mut buf = BytesMut::from(&framed(&[7; 10])[..]);
        assert_eq!(next_frame(&mut buf, 10).unwrap().map(|f| f.len()), Some(10));
    }

    #[test]
    fn a_flipped_bit_anywhere_after_the_length_is_caught() {
        let good = framed(b"payload");
        for i in 4..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            let mut buf = BytesMut::from(&bad[..]);
            assert!(
                matches!(next_frame(&mut buf, 100), Err(FrameError::BadCrc { .. })),
                "byte {i}"
            );
        }
    }
}
