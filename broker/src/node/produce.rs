//! Produce: validate each batch, give it offsets, propose it to the
//! partition's Raft group, and answer when the acks level is met.
//!
//! - `acks=0`: no answer at all (the slot in the connection's order is
//!   released at once).
//! - `acks=1`: after the leader's own write of the entry is durable (a
//!   `Persisted` covering its index).
//! - `acks=all` (-1): after the entry is committed and applied under the term it
//!   was proposed in; commit needs a durable write on a quorum, so the data is
//!   fsynced before the answer.
//!
//! A leadership change, a failed write or the request's timeout answers the
//! waiting partitions with the Kafka error for it; nothing is acknowledged that
//! is not stored.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, ResponseKind};
use kafka_protocol::ResponseError;
use proto_core::multiraft::GroupId;
use proto_core::producer::{Check, ProducerError};
use proto_core::raft::{Entry, LogIndex, Term};
use proto_core::storage::batch;

use super::{Node, ReplyId};
use crate::protocol::RequestHeader;

/// A produce request some of whose partitions still wait.
#[derive(Debug)]
pub(super) struct PendingProduce {
    header: RequestHeader,
    acks: i16,
    deadline_ms: u64,
    /// Per topic, per partition: the answer so far.
    topics: Vec<(kafka_protocol::messages::TopicName, Vec<PartState>)>,
}

#[derive(Debug)]
enum PartState {
    Done(PartitionProduceResponse),
    /// Proposed: waits for what the acks level promises about entry `last`.
    Waiting {
        index: i32,
        group: GroupId,
        term: Term,
        last: LogIndex,
        base_offset: i64,
    },
    /// A retry of a stored idempotent batch not yet committed: answered with
    /// the original offsets once the high watermark passes `end_offset`.
    Duplicate {
        index: i32,
        group: GroupId,
        base_offset: i64,
        end_offset: i64,
    },
}

impl PartState {
    /// The partition index and group of a state still waiting.
    fn waiting_on(&self) -> Option<(i32, GroupId)> {
        match *self {
            PartState::Waiting { index, group, .. } | PartState::Duplicate { index, group, .. } => {
                Some((index, group))
            }
            PartState::Done(_) => None,
        }
    }
}

/// The Kafka error for a batch the producer state refuses.
fn producer_error(e: ProducerError) -> ResponseError {
    match e {
        ProducerError::FencedEpoch { .. } => ResponseError::InvalidProducerEpoch,
        ProducerError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
        ProducerError::InvalidSequence { .. } => ResponseError::InvalidRecord,
    }
}

/// The success answer for a partition, at `base_offset`.
fn success(index: i32, base_offset: i64, log_start: i64) -> PartState {
    PartState::Done(
        PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(base_offset)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(log_start),
    )
}

/// The offset after the last record of a stored batch, read from its header.
pub(super) fn batch_end_offset(data: &Bytes) -> Option<i64> {
    batch::BatchHeader::parse(data).ok().map(|h| h.end_offset())
}

fn part_error(index: i32, error: ResponseError, message: Option<String>) -> PartState {
    PartState::Done(
        PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(error.code())
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_error_message(message.map(Into::into)),
    )
}

impl Node {
    pub(super) fn produce(
        &mut self,
        reply: ReplyId,
        header: &RequestHeader,
        req: ProduceRequest,
    ) -> Option<ResponseKind> {
        let acks = req.acks;
        let mut topics = Vec::with_capacity(req.topic_data.len());
        for t in req.topic_data {
            let mut parts = Vec::with_capacity(t.partition_data.len());
            for p in t.partition_data {
                let state = if !matches!(acks, -1..=1) {
                    part_error(p.index, ResponseError::InvalidRequiredAcks, None)
                } else if t.name.0.as_str() == super::groups::OFFSETS_TOPIC {
                    part_error(
                        p.index,
                        ResponseError::InvalidTopicException,
                        Some("cannot append to an internal topic".into()),
                    )
                } else if req.transactional_id.is_some() {
                    part_error(
                        p.index,
                        ResponseError::TransactionalIdAuthorizationFailed,
                        Some("transactions are not supported yet".into()),
                    )
                } else {
                    self.produce_partition(&t.name.0, p.index, p.records, acks)
                };
                parts.push(state);
            }
            topics.push((t.name, parts));
        }
        let pending = PendingProduce {
            header: header.clone(),
            acks,
            deadline_ms: self.now_ms + req.timeout_ms.max(0) as u64,
            topics,
        };
        if acks == 0 {
            self.outputs
                .push(super::Output::Respond { reply, frame: None });
            return None;
        }
        self.pending.insert(reply, pending);
        for group in self.waiting_groups(reply) {
            self.check_produces(group);
        }
        // Answers at once when every partition failed validation.
        self.flush_produces();
        None
    }

    fn waiting_groups(&self, reply: ReplyId) -> Vec<GroupId> {
        let mut groups: Vec<GroupId> = self
            .pending
            .get(&reply)
            .into_iter()
            .flat_map(|p| p.topics.iter().flat_map(|(_, parts)| parts.iter()))
            .filter_map(|s| s.waiting_on().map(|(_, g)| g))
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }

    /// Validates and proposes one partition's records.
    fn produce_partition(
        &mut self,
        topic: &str,
        index: i32,
        records: Option<Bytes>,
        acks: i16,
    ) -> PartState {
        let tp = crate::store::TopicPartition {
            topic: topic.to_string(),
            partition: index,
        };
        let Some(&group) = self.by_name.get(&tp) else {
            return part_error(index, self.not_hosted_error(&tp), None);
        };
        self.freshen_producer_state(group, &tp, records.as_deref());
        let max = self
            .table
            .topics
            .get(topic)
            .map_or(i64::MAX, |t| t.config.max_message_bytes);
        let p = &self.partitions[&group];
        if let Some(e) = &p.failed {
            return part_error(index, ResponseError::KafkaStorageError, Some(e.clone()));
        }
        let Some(leader_epoch) = p.leader_epoch else {
            return part_error(index, ResponseError::NotLeaderOrFollower, None);
        };
        if acks == -1 {
            let min = self
                .table
                .topics
                .get(topic)
                .map_or(1, |t| t.config.min_insync_replicas);
            if let Some(isr) = self.led_isr(group) {
                if (isr.len() as i64) < min {
                    return part_error(
                        index,
                        ResponseError::NotEnoughReplicas,
                        Some(format!(
                            "{} in-sync replicas, min.insync.replicas is {min}",
                            isr.len()
                        )),
                    );
                }
            }
        }
        let records = records.unwrap_or_default();
        let batches = match batch::split_batches(&records) {
            Ok(b) if !b.is_empty() => b,
            Ok(_) => {
                return part_error(
                    index,
                    ResponseError::InvalidRecord,
                    Some("no record batch".into()),
                )
            }
            Err(batch::BatchError::UnsupportedMagic(_)) => {
                return part_error(index, ResponseError::UnsupportedForMessageFormat, None)
            }
            Err(e) => return part_error(index, ResponseError::CorruptMessage, Some(e.to_string())),
        };
        let mut next = p.next_offset;
        let base_offset = next;
        let several = batches.len() > 1;
        let mut data = Vec::with_capacity(batches.len());
        let mut headers = Vec::with_capacity(batches.len());
        for range in batches {
            let raw = &records[range];
            if raw.len() as i64 > max {
                return part_error(
                    index,
                    ResponseError::MessageTooLarge,
                    Some(format!(
                        "a batch of {} bytes is over max.message.bytes {max}",
                        raw.len()
                    )),
                );
            }
            let header = match batch::validate(raw) {
                Ok(h) => h,
                Err(batch::BatchError::UnsupportedMagic(_)) => {
                    return part_error(index, ResponseError::UnsupportedForMessageFormat, None)
                }
                Err(e) => {
                    return part_error(index, ResponseError::CorruptMessage, Some(e.to_string()))
                }
            };
            if header.record_count < 1
                || i64::from(header.record_count) != i64::from(header.last_offset_delta) + 1
            {
                return part_error(
                    index,
                    ResponseError::InvalidRecord,
                    Some(format!(
                        "record count {} does not match last offset delta {}",
                        header.record_count, header.last_offset_delta
                    )),
                );
            }
            if header.is_control() || header.is_transactional() {
                return part_error(
                    index,
                    ResponseError::InvalidRecord,
                    Some(
                        "control and transactional batches are not accepted from producers".into(),
                    ),
                );
            }
            if header.producer_id >= 0 && several {
                // Kafka's rule from Produce v3 on: an idempotent batch is
                // checked against the state the one before it left.
                return part_error(
                    index,
                    ResponseError::InvalidRecord,
                    Some("an idempotent produce carries one batch per partition".into()),
                );
            }
            match p.producers.check(&header) {
                Check::Append => {}
                Check::Duplicate(d) if d.last_offset < p.high_watermark => {
                    return success(index, d.base_offset, self.store.log_start_offset(&tp))
                }
                Check::Duplicate(d) => {
                    return PartState::Duplicate {
                        index,
                        group,
                        base_offset: d.base_offset,
                        end_offset: d.last_offset + 1,
                    }
                }
                Check::Reject(e) => {
                    return part_error(index, producer_error(e), Some(e.to_string()))
                }
            }
            let mut stored = header;
            stored.base_offset = next;
            headers.push(stored);
            let mut owned = BytesMut::from(raw);
            batch::set_base_offset(&mut owned, next);
            batch::set_partition_leader_epoch(&mut owned, leader_epoch);
            next += i64::from(header.last_offset_delta) + 1;
            data.push(owned.freeze());
        }
        match self.propose(group, data) {
            Some((term, last)) => {
                if let Some(p) = self.partitions.get_mut(&group) {
                    p.next_offset = next;
                    for h in &headers {
                        p.producers.record(h);
                    }
                }
                PartState::Waiting {
                    index,
                    group,
                    term,
                    last,
                    base_offset,
                }
            }
            None => part_error(index, ResponseError::NotLeaderOrFollower, None),
        }
    }

    /// Answers every waiting partition of `group` whose acks level is met.
    pub(super) fn check_produces(&mut self, group: GroupId) {
        let Some(raft) = self.raft.group(group) else {
            return;
        };
        let persisted = raft.log().persisted();
        let log_start = self
            .partitions
            .get(&group)
            .map_or(0, |p| self.store.log_start_offset(&p.tp));
        for pending in self.pending.values_mut() {
            if pending.acks != 1 {
                continue;
            }
            for (_, parts) in &mut pending.topics {
                for s in parts.iter_mut() {
                    if let PartState::Waiting { group: g, last, .. } = s {
                        if *g == group && *last <= persisted {
                            *s = done(s, log_start);
                        }
                    }
                }
            }
        }
        self.flush_produces();
    }

    /// Entries committed and applied: acks=all waiters at those indexes are
    /// answered, or failed if another term's entry took the index.
    pub(super) fn applied_waiters(&mut self, group: GroupId, entries: &[Entry]) {
        let Some(first) = entries.first().map(|e| e.index) else {
            return;
        };
        let log_start = self
            .partitions
            .get(&group)
            .map_or(0, |p| self.store.log_start_offset(&p.tp));
        let last_applied = entries[entries.len() - 1].index;
        let high_watermark = self.partitions.get(&group).map_or(0, |p| p.high_watermark);
        for pending in self.pending.values_mut() {
            let acks_all = pending.acks == -1;
            for (_, parts) in &mut pending.topics {
                for s in parts.iter_mut() {
                    match *s {
                        // A retry waits for its original to be committed,
                        // whatever the acks level.
                        PartState::Duplicate {
                            index,
                            group: g,
                            base_offset,
                            end_offset,
                        } if g == group && end_offset <= high_watermark => {
                            *s = success(index, base_offset, log_start);
                        }
                        PartState::Waiting {
                            group: g,
                            term,
                            last,
                            index,
                            ..
                        } if acks_all && g == group && last <= last_applied => {
                            // An entry applied in an earlier batch cannot be
                            // waited on: waiters are checked at every apply.
                            let same_term =
                                last >= first && entries[(last.0 - first.0) as usize].term == term;
                            *s = if same_term {
                                done(s, log_start)
                            } else {
                                part_error(index, ResponseError::NotLeaderOrFollower, None)
                            };
                        }
                        _ => {}
                    }
                }
            }
        }
        self.flush_produces();
    }

    /// Fails every waiter of `group` with `error`.
    pub(super) fn fail_waiters(&mut self, group: GroupId, error: ResponseError) {
        for pending in self.pending.values_mut() {
            for (_, parts) in &mut pending.topics {
                for s in parts.iter_mut() {
                    if let Some((index, g)) = s.waiting_on() {
                        if g == group {
                            *s = part_error(index, error, None);
                        }
                    }
                }
            }
        }
        self.flush_produces();
    }

    /// Times out produces past their deadline.
    pub(super) fn expire_produces(&mut self) {
        let now = self.now_ms;
        for pending in self.pending.values_mut() {
            if pending.deadline_ms > now {
                continue;
            }
            for (_, parts) in &mut pending.topics {
                for s in parts.iter_mut() {
                    if let Some((index, _)) = s.waiting_on() {
                        *s = part_error(index, ResponseError::RequestTimedOut, None);
                    }
                }
            }
        }
        self.flush_produces();
    }

    /// Sends every produce response that no longer waits on anything.
    fn flush_produces(&mut self) {
        let ready: Vec<ReplyId> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.topics
                    .iter()
                    .all(|(_, parts)| parts.iter().all(|s| matches!(s, PartState::Done(_))))
            })
            .map(|(r, _)| *r)
            .collect();
        for reply in ready {
            let Some(p) = self.pending.remove(&reply) else {
                continue;
            };
            let responses = p
                .topics
                .into_iter()
                .map(|(name, parts)| {
                    TopicProduceResponse::default()
                        .with_name(name)
                        .with_partition_responses(
                            parts
                                .into_iter()
                                .filter_map(|s| match s {
                                    PartState::Done(r) => Some(r),
                                    PartState::Waiting { .. } | PartState::Duplicate { .. } => None,
                                })
                                .collect(),
                        )
                })
                .collect();
            let body = ResponseKind::Produce(ProduceResponse::default().with_responses(responses));
            self.respond(reply, &p.header, body);
        }
    }
}

/// The success answer for a waiting partition.
fn done(s: &PartState, log_start: i64) -> PartState {
    match *s {
        PartState::Waiting {
            index, base_offset, ..
        }
        | PartState::Duplicate {
            index, base_offset, ..
        } => success(index, base_offset, log_start),
        PartState::Done(ref r) => PartState::Done(r.clone()),
    }
}
