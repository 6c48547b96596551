//! The Kafka wire protocol, sans-IO: splitting a byte stream into frames
//! (`io_sync::frame`, shared with the drivers), the APIs and versions Chronik serves ([`versions`]), and
//! decoding requests / encoding responses ([`codec`]) with the generated
//! messages of the `kafka-protocol` crate, guarded against its allocation on
//! untrusted counts (`guard.rs`).

pub mod codec;
pub mod fit;
mod guard;
pub mod versions;

pub use codec::{
    api_versions_response, decode_request, encode_request, encode_response, DecodeError,
    EncodeError, Request, RequestHeader,
};
pub use fit::fit_to_version;
pub use io_sync::frame::{next_frame, FrameError, DEFAULT_MAX_FRAME_BYTES};
pub use kafka_protocol::messages::{RequestKind, ResponseKind};
pub use versions::{support, ApiSupport, SUPPORTED_APIS};
