//! Splitting a client's byte stream into Kafka request frames.
//!
//! Every Kafka request is a 4-byte big-endian signed size followed by that many
//! bytes. The size is checked before any of the frame is buffered for it, so a
//! client that announces 2 GiB (or a negative size, or garbage that reads as
//! one) is refused at once instead of making the broker wait for, or allocate,
//! the rest.

use bytes::{Buf, Bytes, BytesMut};

/// Kafka's default `socket.request.max.bytes` (100 MiB): the largest request
/// frame accepted unless the operator configures another limit.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Length of the size prefix in front of every frame.
const PREFIX_BYTES: usize = 4;

/// Why a byte stream cannot be split into frames any more.
///
/// Both cases leave the stream at an unknown position, so the connection layer
/// logs the error and closes the connection (as Kafka does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The size prefix is negative.
    #[error("invalid request frame: negative size {0}")]
    NegativeSize(i32),
    /// The size prefix is larger than the configured limit.
    #[error("invalid request frame: size {size} is larger than the limit of {max} bytes")]
    TooLarge {
        /// The announced frame size.
        size: usize,
        /// The configured limit.
        max: usize,
    },
}

/// Takes the next complete frame (without its size prefix) off the front of
/// `buf`, which holds bytes read from one connection.
///
/// Returns `Ok(None)` while the frame is incomplete (read more and call again);
/// `max` is the largest frame size accepted. A zero-size frame is returned as
/// an empty frame, which request decoding then rejects as malformed.
pub fn next_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(prefix) = buf.first_chunk::<PREFIX_BYTES>() else {
        return Ok(None);
    };
    let announced = i32::from_be_bytes(*prefix);
    let size = usize::try_from(announced).map_err(|_| FrameError::NegativeSize(announced))?;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if buf.len() < PREFIX_BYTES + size {
        return Ok(None);
    }
    buf.advance(PREFIX_BYTES);
    Ok(Some(buf.split_to(size).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn splits_back_to_back_frames_and_keeps_the_rest() {
        let mut stream = framed(b"abc");
        stream.extend(framed(b""));
        stream.extend(framed(b"de"));
        stream.extend_from_slice(&[0, 0]); // half of the next prefix
        let mut buf = BytesMut::from(&stream[..]);
        assert_eq!(
            next_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(next_frame(&mut buf, 10).unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(
            next_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&b"de"[..])
        );
        assert_eq!(next_frame(&mut buf, 10).unwrap(), None);
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn waits_for_the_whole_frame_one_byte_at_a_time() {
        let stream = framed(b"hello");
        let mut buf = BytesMut::new();
        for (i, byte) in stream.iter().enumerate() {
            assert_eq!(next_frame(&mut buf, 10).unwrap(), None, "after {i} bytes");
            buf.extend_from_slice(&[*byte]);
        }
        assert_eq!(
            next_frame(&mut buf, 10).unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_oversized_and_negative_sizes_before_the_body_arrives() {
        let mut buf = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert_eq!(
            next_frame(&mut buf, DEFAULT_MAX_FRAME_BYTES),
            Err(FrameError::TooLarge {
                size: i32::MAX as usize,
                max: DEFAULT_MAX_FRAME_BYTES
            })
        );
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(next_frame(&mut buf, 10), Err(FrameError::NegativeSize(-1)));
        // The limit itself is allowed; one byte more is not.
        let mut buf = BytesMut::from(&framed(b"0123456789")[..]);
        assert_eq!(next_frame(&mut buf, 10).unwrap().map(|f| f.len()), Some(10));
        let mut buf = BytesMut::from(&framed(b"0123456789")[..]);
        assert_eq!(
            next_frame(&mut buf, 9),
            Err(FrameError::TooLarge { size: 10, max: 9 })
        );
    }
}
