//! Fetch: read committed batches (never past the high watermark), and park a
//! request that found less than `min_bytes` until data arrives or `max_wait_ms`
//! passes (long polling).
//!
//! Fetch sessions (KIP-227) are answered sessionless (`session_id` 0), which
//! every client accepts: it keeps sending full requests.

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind, TopicName};
use kafka_protocol::ResponseError;

use super::{Node, ReplyId};
use crate::protocol::RequestHeader;
use crate::store::TopicPartition;

/// A fetch waiting for `min_bytes`.
#[derive(Debug)]
pub(super) struct ParkedFetch {
    reply: ReplyId,
    header: RequestHeader,
    request: FetchRequest,
    deadline_ms: u64,
}

/// Fetch v13 and later name topics by id only.
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;

impl Node {
    pub(super) fn fetch(
        &mut self,
        reply: ReplyId,
        header: &RequestHeader,
        request: FetchRequest,
    ) -> Option<ResponseKind> {
        let (response, bytes, error) = self.read_fetch(header, &request);
        let min = request.min_bytes.max(0) as usize;
        if bytes >= min.max(1) || error || request.max_wait_ms <= 0 {
            return Some(ResponseKind::Fetch(response));
        }
        self.parked.push(ParkedFetch {
            reply,
            header: header.clone(),
            deadline_ms: self.now_ms + request.max_wait_ms as u64,
            request,
        });
        None
    }

    /// Builds the response from what is readable now: (response, record
    /// bytes, whether some partition has an error).
    fn read_fetch(
        &self,
        header: &RequestHeader,
        req: &FetchRequest,
    ) -> (FetchResponse, usize, bool) {
        let by_id = header.api_version >= FIRST_VERSION_WITH_TOPIC_IDS;
        let mut budget = if req.max_bytes > 0 {
            req.max_bytes as usize
        } else {
            usize::MAX
        };
        let mut total = 0;
        let mut any_error = false;
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in &req.topics {
            let name = if by_id {
                self.table.name_of(t.topic_id.as_u128())
            } else {
                Some(t.topic.0.to_string())
            };
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let mut data = PartitionData::default()
                    .with_partition_index(p.partition)
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_log_start_offset(-1);
                let Some(name) = &name else {
                    any_error = true;
                    partitions.push(data.with_error_code(ResponseError::UnknownTopicId.code()));
                    continue;
                };
                let tp = TopicPartition {
                    topic: name.clone(),
                    partition: p.partition,
                };
                let Some(part) = self.by_name.get(&tp).and_then(|g| self.partitions.get(g)) else {
                    any_error = true;
                    partitions
                        .push(data.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                    continue;
                };
                let hw = part.high_watermark;
                let start = self.store.log_start_offset(&tp);
                data = data
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(start);
                if p.fetch_offset < start || p.fetch_offset > part.next_offset {
                    any_error = true;
                    partitions.push(data.with_error_code(ResponseError::OffsetOutOfRange.code()));
                    continue;
                }
                let max = (p.partition_max_bytes.max(0) as usize).min(budget);
                let records = if p.fetch_offset >= hw || max == 0 {
                    Ok(bytes::Bytes::new())
                } else {
                    self.store.read(&tp, p.fetch_offset, max, hw)
                };
                match records {
                    Ok(records) => {
                        total += records.len();
                        budget = budget.saturating_sub(records.len());
                        partitions.push(data.with_records(Some(records)));
                    }
                    Err(e) => {
                        tracing::error!(%tp, error = %e, "fetch read failed");
                        any_error = true;
                        partitions
                            .push(data.with_error_code(ResponseError::KafkaStorageError.code()));
                    }
                }
            }
            let mut topic = FetchableTopicResponse::default().with_partitions(partitions);
            if by_id {
                topic = topic.with_topic_id(t.topic_id);
            } else {
                topic = topic.with_topic(TopicName(t.topic.0.clone()));
            }
            topics.push(topic);
        }
        (
            FetchResponse::default().with_responses(topics),
            total,
            any_error,
        )
    }

    /// Answers parked fetches that now have enough data.
    pub(super) fn wake_fetches(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut self.parked);
        for f in parked {
            let (response, bytes, error) = self.read_fetch(&f.header, &f.request);
            let min = f.request.min_bytes.max(1) as usize;
            if bytes >= min || error {
                self.respond(f.reply, &f.header, ResponseKind::Fetch(response));
            } else {
                self.parked.push(f);
            }
        }
    }

    /// Answers parked fetches whose wait is over with whatever there is.
    pub(super) fn expire_fetches(&mut self) {
        let now = self.now_ms;
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|f| f.deadline_ms <= now);
        self.parked = keep;
        for f in due {
            let (response, _, _) = self.read_fetch(&f.header, &f.request);
            self.respond(f.reply, &f.header, ResponseKind::Fetch(response));
        }
    }
}
