//! ListOffsets: earliest, latest, by timestamp and max timestamp.
//!
//! Latest is the high watermark: the offset after the last committed record,
//! which is what a consumer can read (Kafka answers the same for
//! `read_uncommitted`; without transactions the last stable offset equals it).
//! There is no tiered storage: earliest-local (-4) is earliest, and
//! latest-tiered (-5) finds nothing (offset -1), as Kafka answers when
//! remote storage is off.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::Node;
use crate::protocol::RequestHeader;
use crate::store::TopicPartition;
use kafka_protocol::records::RecordBatchDecoder;
use proto_core::storage::batch::BatchHeader;

/// The special timestamps of ListOffsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// The record with the highest timestamp (KIP-734, v7).
const MAX_TIMESTAMP: i64 = -3;
/// The first offset on local storage (KIP-405, v8).
const EARLIEST_LOCAL: i64 = -4;
/// The last offset in tiered storage (KIP-1005, v9).
const LATEST_TIERED: i64 = -5;

impl Node {
    pub(super) fn list_offsets(
        &self,
        _header: &RequestHeader,
        req: ListOffsetsRequest,
    ) -> ListOffsetsResponse {
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| self.list_offset(&t.name.0, p.partition_index, p.timestamp))
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }

    fn list_offset(&self, topic: &str, partition: i32, ts: i64) -> ListOffsetsPartitionResponse {
        let base = ListOffsetsPartitionResponse::default()
            .with_partition_index(partition)
            .with_timestamp(-1)
            .with_offset(-1);
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        let Some(p) = self.by_name.get(&tp).and_then(|g| self.partitions.get(g)) else {
            return base.with_error_code(self.not_hosted_error(&tp).code());
        };
        let Some(epoch) = p.leader_epoch else {
            return base.with_error_code(ResponseError::NotLeaderOrFollower.code());
        };
        let base = base.with_leader_epoch(epoch);
        match ts {
            LATEST => base.with_offset(p.high_watermark),
            EARLIEST | EARLIEST_LOCAL => base.with_offset(self.store.log_start_offset(&tp)),
            LATEST_TIERED => base,
            MAX_TIMESTAMP => match self.max_timestamp_record(&tp, p.high_watermark) {
                Ok(Some((offset, found))) => base.with_offset(offset).with_timestamp(found),
                Ok(None) => base,
                Err(e) => {
                    tracing::error!(%tp, error = %e, "max timestamp lookup failed");
                    base.with_error_code(ResponseError::KafkaStorageError.code())
                }
            },
            0.. => {
                let found =
                    self.store
                        .offset_for_timestamp(&tp, ts)
                        .and_then(|batch| match batch {
                            Some((offset, max)) => {
                                self.record_at_or_after(&tp, offset, ts, max).map(Some)
                            }
                            None => Ok(None),
                        });
                match found {
                    Ok(Some((offset, found))) if offset < p.high_watermark => {
                        base.with_offset(offset).with_timestamp(found)
                    }
                    // No batch that late: Kafka answers offset -1.
                    Ok(_) => base,
                    Err(e) => {
                        tracing::error!(%tp, error = %e, "offset lookup failed");
                        base.with_error_code(ResponseError::KafkaStorageError.code())
                    }
                }
            }
            _ => base.with_error_code(ResponseError::InvalidRequest.code()),
        }
    }
}

/// Batches with more records than this are answered at batch granularity:
/// decoding them could allocate without bound.
const MAX_RECORDS_TO_SCAN: i32 = 1 << 20;

impl Node {
    /// The first record with the highest timestamp below `high_watermark`,
    /// as (offset, timestamp): the batch with the highest max timestamp
    /// (the first of equals), then the record in it that carries it.
    fn max_timestamp_record(
        &self,
        tp: &TopicPartition,
        high_watermark: i64,
    ) -> std::io::Result<Option<(i64, i64)>> {
        let mut best: Option<(i64, i64)> = None;
        self.store.scan_headers(tp, &mut |h| {
            if h.base_offset < high_watermark && best.is_none_or(|(_, max)| h.max_timestamp > max) {
                best = Some((h.base_offset, h.max_timestamp));
            }
        })?;
        best.map(|(offset, max)| self.record_at_or_after(tp, offset, max, max))
            .transpose()
    }

    /// The first record at or after `ts` in the batch starting at
    /// `batch_offset` (whose max timestamp is `max`), as Kafka answers
    /// ListOffsets: record by record, decompressing if need be.
    fn record_at_or_after(
        &self,
        tp: &TopicPartition,
        batch_offset: i64,
        ts: i64,
        max: i64,
    ) -> std::io::Result<(i64, i64)> {
        let fallback = (batch_offset, max);
        let mut raw = self.store.read(tp, batch_offset, 1, i64::MAX)?;
        let Ok(header) = BatchHeader::parse(&raw) else {
            return Ok(fallback);
        };
        if header.base_offset != batch_offset
            || !(0..=MAX_RECORDS_TO_SCAN).contains(&header.record_count)
        {
            return Ok(fallback);
        }
        raw.truncate(header.total_len());
        let Ok(set) = RecordBatchDecoder::decode(&mut raw) else {
            tracing::warn!(%tp, batch_offset, "a stored batch did not decode; answering at batch level");
            return Ok(fallback);
        };
        Ok(set
            .records
            .iter()
            .find(|r| r.timestamp >= ts)
            .map_or(fallback, |r| (r.offset, r.timestamp)))
    }
}
