//! Request decoding and response encoding over `kafka-protocol`'s generated
//! messages.
//!
//! [`decode_request`] turns one frame into a [`Request`] or says precisely why
//! it cannot, so the connection layer can do what Kafka does: answer an
//! ApiVersions request at a version we do not know with error 35 in the v0
//! layout (clients then retry at a version we list), and close the connection
//! (after a log line) for anything else it cannot serve.
//!
//! [`encode_response`] writes a whole response frame: size prefix, response
//! header (v1 with tagged fields for flexible versions, except ApiVersions
//! whose response header is always v0) and body. `kafka-protocol` writes known
//! tagged fields only when they differ from their defaults (e.g. ApiVersions
//! v3 leaves `FinalizedFeaturesEpoch = -1` out), which librdkafka < 2.2
//! requires; handlers must not put anything into `unknown_tagged_fields`.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader as WireRequestHeader, RequestKind, ResponseHeader,
    ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::versions::{support, SUPPORTED_APIS};

/// The request header fields the broker needs to route a request and to
/// address its response.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHeader {
    /// Which API the request is for.
    pub api_key: ApiKey,
    /// The request (and response) version.
    pub api_version: i16,
    /// Echoed in the response so the client can match it to the request.
    pub correlation_id: i32,
    /// The client's self-chosen id, for logs and quotas (null is allowed).
    pub client_id: Option<StrBytes>,
}

/// A decoded request, ready for a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The header.
    pub header: RequestHeader,
    /// The body; its variant always matches `header.api_key`.
    pub body: RequestKind,
}

/// Why a frame did not decode into a [`Request`].
///
/// The connection layer sends [`DecodeError::reply`] when there is one and
/// keeps the connection; otherwise it logs the error and closes the
/// connection, as Kafka does.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The header is readable but the version is outside what Chronik serves
    /// for this API.
    #[error("unsupported version {api_version} of {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// From the header, for the reply.
        correlation_id: i32,
        /// The API.
        api_key: ApiKey,
        /// The requested version.
        api_version: i16,
    },
    /// The API key is unknown to Kafka or not served by Chronik.
    #[error("unsupported API key {api_key} v{api_version} (correlation id {correlation_id})")]
    UnknownApi {
        /// From the header, for logs.
        correlation_id: i32,
        /// The raw API key.
        api_key: i16,
        /// The requested version.
        api_version: i16,
    },
    /// The frame is truncated or not a valid request of the version it claims.
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// The response frame to send for this error, if Kafka answers it instead
    /// of closing the connection: only an ApiVersions request at an
    /// unsupported version, answered with UNSUPPORTED_VERSION in the v0
    /// layout (header v0, body v0) listing the supported APIs.
    pub fn reply(&self) -> Option<Bytes> {
        match *self {
            DecodeError::UnsupportedVersion {
                correlation_id,
                api_key: ApiKey::ApiVersions,
                ..
            } => {
                let header = RequestHeader {
                    api_key: ApiKey::ApiVersions,
                    api_version: 0,
                    correlation_id,
                    client_id: None,
                };
                let body = api_versions_response()
                    .with_error_code(ResponseError::UnsupportedVersion.code());
                // Always encodable: every field is valid in v0.
                encode_response(&header, &ResponseKind::ApiVersions(body)).ok()
            }
            _ => None,
        }
    }
}

/// A response the handler built cannot be written at the requested version
/// (a field set that the version lacks, or a size past the wire's limits).
/// This is a broker bug; the connection layer logs it and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode {api_key:?} v{api_version} response: {reason}")]
pub struct EncodeError {
    /// The API of the response.
    pub api_key: ApiKey,
    /// The version it was encoded at.
    pub api_version: i16,
    /// What `kafka-protocol` reported.
    pub reason: String,
}

/// Bytes of api_key (2) + api_version (2) + correlation_id (4): the part of
/// every request header version that is laid out the same.
const FIXED_HEADER_BYTES: usize = 8;

/// Decodes one frame (without its size prefix) into a request.
pub fn decode_request(frame: Bytes) -> Result<Request, DecodeError> {
    let Some(fixed) = frame.first_chunk::<FIXED_HEADER_BYTES>() else {
        return Err(DecodeError::Malformed(format!(
            "{} bytes is too short for a request header",
            frame.len()
        )));
    };
    let raw_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let api_version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let Some(api) = ApiKey::try_from(raw_key).ok().and_then(support) else {
        return Err(DecodeError::UnknownApi {
            correlation_id,
            api_key: raw_key,
            api_version,
        });
    };
    let api_key = api.key;
    if !(api.versions.min..=api.versions.max).contains(&api_version) {
        return Err(DecodeError::UnsupportedVersion {
            correlation_id,
            api_key,
            api_version,
        });
    }
    let malformed = |what: &str, err: &dyn std::fmt::Display| {
        DecodeError::Malformed(format!("{api_key:?} v{api_version} {what}: {err:#}"))
    };
    let mut buf = frame;
    let wire_header =
        WireRequestHeader::decode(&mut buf, api_key.request_header_version(api_version))
            .map_err(|e| malformed("header", &e))?;
    // Must run before kafka-protocol sees the body: see guard.rs.
    let walked = api
        .schema
        .check(api_version, &buf)
        .map_err(|e| malformed("body", &e))?;
    let body_len = buf.len();
    let body =
        RequestKind::decode(api_key, &mut buf, api_version).map_err(|e| malformed("body", &e))?;
    // The guard is only sound if it walks exactly what the decoder reads;
    // tests and the fuzzer run with debug assertions to catch a layout slip.
    debug_assert_eq!(
        body_len - buf.len(),
        walked,
        "guard.rs layout of {api_key:?} v{api_version} disagrees with kafka-protocol"
    );
    Ok(Request {
        header: RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id: wire_header.client_id,
        },
        body,
    })
}

/// Encodes `request` as a frame without its size prefix, the form
/// [`decode_request`] reads: how a broker forwards a request it received to
/// the broker that must handle it.
pub fn encode_request(request: &Request) -> Result<Bytes, EncodeError> {
    let header = &request.header;
    let failed = |reason: String| EncodeError {
        api_key: header.api_key,
        api_version: header.api_version,
        reason,
    };
    let mut out = BytesMut::with_capacity(256);
    WireRequestHeader::default()
        .with_request_api_key(header.api_key as i16)
        .with_request_api_version(header.api_version)
        .with_correlation_id(header.correlation_id)
        .with_client_id(header.client_id.clone())
        .encode(
            &mut out,
            header.api_key.request_header_version(header.api_version),
        )
        .map_err(|e| failed(format!("header: {e:#}")))?;
    request
        .body
        .encode(&mut out, header.api_version)
        .map_err(|e| failed(format!("{e:#}")))?;
    Ok(out.freeze())
}

/// Encodes `body` as the response to the request with `header`: the whole
/// frame, size prefix included.
///
/// `body` must be the response type of `header.api_key`; nothing checks this.
pub fn encode_response(header: &RequestHeader, body: &ResponseKind) -> Result<Bytes, EncodeError> {
    let failed = |reason: String| EncodeError {
        api_key: header.api_key,
        api_version: header.api_version,
        reason,
    };
    let mut out = BytesMut::with_capacity(256);
    out.put_i32(0); // size, patched below
    ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(
            &mut out,
            header.api_key.response_header_version(header.api_version),
        )
        .map_err(|e| failed(format!("header: {e:#}")))?;
    body.encode(&mut out, header.api_version)
        .map_err(|e| failed(format!("{e:#}")))?;
    let size = i32::try_from(out.len() - 4)
        .map_err(|_| failed(format!("{} bytes is too large for a frame", out.len() - 4)))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out.freeze())
}

/// The ApiVersions response body listing [`SUPPORTED_APIS`], error 0. The
/// content is the same for every version; the encoding picks the layout.
pub fn api_versions_response() -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.versions.min)
                .with_max_version(api.versions.max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataResponse};

    fn header(api_key: ApiKey, api_version: i16) -> RequestHeader {
        RequestHeader {
            api_key,
            api_version,
            correlation_id: 7,
            client_id: None,
        }
    }

    /// Rows of the ApiVersions body (key, min, max) as raw bytes, no tags.
    const TABLE_BYTES: [[u8; 6]; 24] = [
        [0, 0, 0, 3, 0, 10],
        [0, 1, 0, 4, 0, 16],
        [0, 2, 0, 1, 0, 10],
        [0, 3, 0, 0, 0, 13],
        [0, 8, 0, 2, 0, 9],
        [0, 9, 0, 1, 0, 9],
        [0, 10, 0, 0, 0, 6],
        [0, 11, 0, 0, 0, 9],
        [0, 12, 0, 0, 0, 4],
        [0, 13, 0, 0, 0, 5],
        [0, 14, 0, 0, 0, 5],
        [0, 15, 0, 0, 0, 5],
        [0, 16, 0, 0, 0, 5],
        [0, 18, 0, 0, 0, 4],
        [0, 19, 0, 2, 0, 7],
        [0, 20, 0, 1, 0, 6],
        [0, 22, 0, 0, 0, 5],
        [0, 32, 0, 1, 0, 4],
        [0, 33, 0, 0, 0, 2],
        [0, 37, 0, 0, 0, 3],
        [0, 42, 0, 0, 0, 2],
        [0, 44, 0, 0, 0, 1],
        [0, 47, 0, 0, 0, 0],
        [0, 60, 0, 0, 0, 2],
    ];

    fn api_versions_frame(version: i16) -> Bytes {
        let body = ResponseKind::ApiVersions(api_versions_response());
        encode_response(&header(ApiKey::ApiVersions, version), &body).unwrap()
    }

    #[test]
    fn api_versions_v0_golden_bytes() {
        let mut want = vec![0, 0, 0, 154, 0, 0, 0, 7, 0, 0, 0, 0, 0, 24];
        want.extend(TABLE_BYTES.concat());
        assert_eq!(&api_versions_frame(0)[..], &want[..]);
    }

    #[test]
    fn api_versions_v3_golden_bytes_have_no_tagged_fields() {
        // Header v0 (no tag byte); compact array of 24 (varint 25), each entry
        // with an empty tag section; throttle 0; an empty top-level tag section:
        // no FinalizedFeaturesEpoch, which librdkafka < 2.2 cannot skip.
        let mut want = vec![0, 0, 0, 180, 0, 0, 0, 7, 0, 0, 25];
        for row in TABLE_BYTES {
            want.extend(row);
            want.push(0);
        }
        want.extend([0, 0, 0, 0, 0]);
        assert_eq!(&api_versions_frame(3)[..], &want[..]);
    }

    #[test]
    fn response_header_is_v1_only_for_flexible_non_api_versions() {
        let metadata = ResponseKind::Metadata(MetadataResponse::default());
        // v8: header v0 = correlation id, then throttle_time_ms.
        let v8 = encode_response(&header(ApiKey::Metadata, 8), &metadata).unwrap();
        assert_eq!(&v8[4..12], &[0, 0, 0, 7, 0, 0, 0, 0]);
        // v9: header v1 = correlation id + empty tag section, then throttle.
        let v9 = encode_response(&header(ApiKey::Metadata, 9), &metadata).unwrap();
        assert_eq!(&v9[4..13], &[0, 0, 0, 7, 0, 0, 0, 0, 0]);
        assert_eq!(ApiKey::ApiVersions.response_header_version(4), 0);
        assert_eq!(ApiKey::ApiVersions.request_header_version(3), 2);
        assert_eq!(ApiKey::ApiVersions.request_header_version(2), 1);
        assert_eq!(ApiKey::Fetch.request_header_version(11), 1);
        assert_eq!(ApiKey::Fetch.request_header_version(12), 2);
        assert_eq!(ApiKey::DescribeCluster.request_header_version(0), 2);
    }

    #[test]
    fn size_prefix_matches_the_frame() {
        for v in 0..=4 {
            let frame = api_versions_frame(v);
            let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
            assert_eq!(size as usize, frame.len() - 4, "v{v}");
        }
    }

    #[test]
    fn unencodable_response_is_an_error_not_garbage() {
        // cluster_authorized_operations exists only in Metadata v8..=10.
        let body = MetadataResponse::default().with_cluster_authorized_operations(5);
        let err = encode_response(&header(ApiKey::Metadata, 12), &ResponseKind::Metadata(body))
            .unwrap_err();
        assert_eq!((err.api_key, err.api_version), (ApiKey::Metadata, 12));
    }

    /// A request frame body: header fields then `rest`.
    fn raw(api_key: i16, version: i16, rest: &[u8]) -> Bytes {
        let mut out = Vec::new();
        out.extend(api_key.to_be_bytes());
        out.extend(version.to_be_bytes());
        out.extend(99i32.to_be_bytes());
        out.extend(rest);
        Bytes::from(out)
    }

    #[test]
    fn api_versions_v5_gets_error_35_in_the_v0_layout() {
        // A future client: header v2 (client id, tag section), unknown body.
        let err = decode_request(raw(18, 5, &[0, 1, b'x', 0, 7, 7])).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedVersion {
                correlation_id: 99,
                api_key: ApiKey::ApiVersions,
                api_version: 5
            }
        );
        let mut want = vec![0, 0, 0, 154, 0, 0, 0, 99, 0, 35, 0, 0, 0, 24];
        want.extend(TABLE_BYTES.concat());
        assert_eq!(err.reply().as_deref(), Some(&want[..]));
    }

    #[test]
    fn other_refusals_carry_no_reply() {
        let old_produce = decode_request(raw(0, 2, &[])).unwrap_err();
        assert_eq!(
            old_produce,
            DecodeError::UnsupportedVersion {
                correlation_id: 99,
                api_key: ApiKey::Produce,
                api_version: 2
            }
        );
        assert_eq!(old_produce.reply(), None);
        // Known to Kafka but not served yet, and unknown to Kafka.
        for key in [ApiKey::AddPartitionsToTxn as i16, 999, -1] {
            let err = decode_request(raw(key, 0, &[])).unwrap_err();
            assert_eq!(
                err,
                DecodeError::UnknownApi {
                    correlation_id: 99,
                    api_key: key,
                    api_version: 0
                }
            );
            assert_eq!(err.reply(), None);
        }
    }

    #[test]
    fn truncated_and_garbage_frames_are_malformed() {
        for frame in [&b""[..], &[0, 18, 0, 3, 0, 0, 0][..]] {
            assert!(matches!(
                decode_request(Bytes::copy_from_slice(frame)),
                Err(DecodeError::Malformed(_))
            ));
        }
        // Metadata v1 whose client id length runs past the end.
        assert!(matches!(
            decode_request(raw(3, 1, &[0, 50])),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn huge_array_count_is_malformed_not_an_abort() {
        // Metadata v1, client id null, topics count i32::MAX: kafka-protocol
        // alone would try to allocate ~150 GiB and abort the process.
        let mut rest = (-1i16).to_be_bytes().to_vec();
        rest.extend(i32::MAX.to_be_bytes());
        let err = decode_request(raw(3, 1, &rest)).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Malformed(m) if m.contains("array of 2147483647")),
            "{err}"
        );
    }

    #[test]
    fn decodes_an_api_versions_v3_request() {
        let mut rest = vec![0, 3, b'c', b'l', b'i', 0]; // client id "cli", no tags
        let body = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kcat"))
            .with_client_software_version(StrBytes::from_static_str("1.7"));
        let mut encoded = BytesMut::new();
        body.encode(&mut encoded, 3).unwrap();
        rest.extend_from_slice(&encoded);
        let request = decode_request(raw(18, 3, &rest)).unwrap();
        assert_eq!(
            request.header,
            RequestHeader {
                api_key: ApiKey::ApiVersions,
                api_version: 3,
                correlation_id: 99,
                client_id: Some(StrBytes::from_static_str("cli")),
            }
        );
        assert_eq!(request.body, RequestKind::ApiVersions(body));
    }
}
