//! The final reader: a Kafka consumer that fetches every partition from its
//! leader, so the check also covers what clients would read back (the read
//! path and the high watermark), not only what the disks hold.

use broker::node::ReplyId;
use broker::protocol::{Request, RequestHeader};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, RequestKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use proto_core::storage::batch;

use super::workload::{decode, TOPIC};

/// Fetch v11: topics by name, sessionless with epoch -1, not flexible.
const FETCH_VERSION: i16 = 11;
/// Connection numbers of the final reader, apart from the clients'.
pub const CONSUMER_CONN: u64 = 1 << 40;

/// A sessionless Fetch of `partition` from `offset`, answered at once.
pub fn fetch_request(partition: i32, offset: i64, seq: u64) -> (ReplyId, Box<Request>) {
    let body = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let reply = ReplyId {
        conn: CONSUMER_CONN + partition as u64,
        seq,
    };
    let header = RequestHeader {
        api_key: ApiKey::Fetch,
        api_version: FETCH_VERSION,
        correlation_id: seq as i32,
        client_id: Some(StrBytes::from_static_str("reader")),
    };
    (
        reply,
        Box::new(Request {
            header,
            body: RequestKind::Fetch(body),
        }),
    )
}

/// What one Fetch answered for its partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The partition's error code.
    pub error_code: i16,
    /// The high watermark.
    pub high_watermark: i64,
    /// Each record's offset and value.
    pub records: Vec<(i64, Option<Bytes>)>,
}

/// Decodes a Fetch answer of [`fetch_request`].
pub fn decode_fetch(frame: &Bytes) -> Result<Fetched, String> {
    let r: FetchResponse = decode(frame, FETCH_VERSION)?;
    let p = r
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or("a Fetch answer without the partition")?;
    let mut out = Fetched {
        error_code: p.error_code,
        high_watermark: p.high_watermark,
        records: Vec::new(),
    };
    let data = p.records.clone().unwrap_or_default();
    let ranges = batch::split_batches(&data).map_err(|e| format!("fetched batches: {e}"))?;
    for range in ranges {
        let raw = data.slice(range);
        let h = batch::validate(&raw).map_err(|e| format!("a fetched batch: {e}"))?;
        let kvs = batch::records(&raw).map_err(|e| format!("a fetched batch's records: {e}"))?;
        for (k, kv) in kvs.iter().enumerate() {
            out.records
                .push((h.base_offset + k as i64, kv.value.map(|v| raw.slice_ref(v))));
        }
    }
    Ok(out)
}
