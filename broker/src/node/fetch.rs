//! Fetch: read committed batches (never past the high watermark), and park a
//! request that found less than `min_bytes` until data arrives or `max_wait_ms`
//! passes (long polling).
//!
//! Fetch sessions (KIP-227, [`super::fetch_session`]): a request's session
//! fields decide which partitions are read (the request's, or all of its
//! session's) and which are answered (all, or the ones that changed). A parked
//! fetch keeps that decision, so it wakes when any partition of its session
//! has data, and its answer still holds only what changed.

use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::fetch_session::{
    FetchContext, PartitionAnswer, PartitionFetch, SessionError, SessionPartition, SessionRequest,
    TopicRef, NO_SESSION,
};
use super::{Node, ReplyId};
use crate::protocol::RequestHeader;
use crate::store::TopicPartition;

/// A fetch waiting for `min_bytes`.
#[derive(Debug)]
pub(super) struct ParkedFetch {
    reply: ReplyId,
    header: RequestHeader,
    job: FetchJob,
    deadline_ms: u64,
}

/// A fetch once its session fields are taken in: what it reads and how it
/// is answered.
#[derive(Debug)]
struct FetchJob {
    context: FetchContext,
    /// The request names topics by id.
    by_id: bool,
    /// The request's partitions in its order: what a full fetch reads.
    partitions: Vec<(SessionPartition, PartitionFetch)>,
    max_bytes: usize,
    /// At least 1: a fetch answers at once only if it has some data.
    min_bytes: usize,
}

/// What a fetch read, partition by partition, in read order.
struct Reads {
    partitions: Vec<(SessionPartition, PartitionData)>,
    /// Record bytes read.
    bytes: usize,
    /// Some partition has an error, or the session is gone: answer now.
    error: bool,
}

/// Fetch v13 and later name topics by id only.
const FIRST_VERSION_WITH_TOPIC_IDS: i16 = 13;

impl Node {
    /// Forgets the parked fetches of a closed connection: nobody is left to
    /// answer, and a long max_wait would otherwise hold them until it passed.
    pub(super) fn drop_parked_fetches(&mut self, conn: u64) {
        self.parked.retain(|f| f.reply.conn != conn);
    }

    pub(super) fn fetch(
        &mut self,
        reply: ReplyId,
        header: &RequestHeader,
        request: FetchRequest,
    ) -> Option<ResponseKind> {
        let by_id = header.api_version >= FIRST_VERSION_WITH_TOPIC_IDS;
        let partitions = requested_partitions(&request, by_id);
        let forgotten = forgotten_partitions(&request, by_id);
        let session = SessionRequest {
            id: request.session_id,
            epoch: request.session_epoch,
            by_id,
            partitions: &partitions,
            forgotten: &forgotten,
        };
        let context = match self.fetch_sessions.handle_request(self.now_ms, &session) {
            Ok(context) => context,
            Err(e) => {
                tracing::debug!(session = request.session_id, epoch = request.session_epoch,
                    error = %e, "fetch session refused");
                return Some(ResponseKind::Fetch(session_error(e)));
            }
        };
        let job = FetchJob {
            context,
            by_id,
            partitions,
            max_bytes: if request.max_bytes > 0 {
                request.max_bytes as usize
            } else {
                usize::MAX
            },
            min_bytes: request.min_bytes.max(1) as usize,
        };
        let reads = self.read_fetch(&job);
        if reads.bytes >= job.min_bytes || reads.error || request.max_wait_ms <= 0 {
            return Some(ResponseKind::Fetch(self.answer_fetch(&job, reads)));
        }
        self.parked.push(ParkedFetch {
            reply,
            header: header.clone(),
            deadline_ms: self.now_ms + request.max_wait_ms as u64,
            job,
        });
        None
    }

    /// Reads what `job` reads, as it is now.
    fn read_fetch(&self, job: &FetchJob) -> Reads {
        let mut reads = Reads {
            partitions: Vec::with_capacity(job.partitions.len()),
            bytes: 0,
            error: false,
        };
        let mut budget = job.max_bytes;
        let mut read = |key: &SessionPartition, fetch: PartitionFetch| {
            let data = self.read_partition(key, fetch, budget);
            let len = data.records.as_ref().map_or(0, |r| r.len());
            budget = budget.saturating_sub(len);
            reads.bytes += len;
            reads.error |= data.error_code != 0;
            reads.partitions.push((key.clone(), data));
        };
        match job.context {
            FetchContext::Sessionless | FetchContext::Full => {
                for (key, fetch) in &job.partitions {
                    read(key, *fetch);
                }
            }
            FetchContext::Incremental { id, epoch } => {
                match self.fetch_sessions.partitions(id, epoch) {
                    Ok(partitions) => partitions.for_each(|(key, fetch)| read(key, fetch)),
                    // Answered at once, with the session error.
                    Err(_) => reads.error = true,
                }
            }
        }
        reads
    }

    /// One partition's answer, reading at most `budget` bytes.
    fn read_partition(
        &self,
        key: &SessionPartition,
        fetch: PartitionFetch,
        budget: usize,
    ) -> PartitionData {
        let data = PartitionData::default()
            .with_partition_index(key.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
        let name = match &key.topic {
            TopicRef::Name(name) => name.clone(),
            TopicRef::Id(id) => match self.table.name_of(*id) {
                Some(name) => name,
                None => return data.with_error_code(ResponseError::UnknownTopicId.code()),
            },
        };
        let tp = TopicPartition {
            topic: name,
            partition: key.partition,
        };
        let Some(part) = self.by_name.get(&tp).and_then(|g| self.partitions.get(g)) else {
            return data.with_error_code(self.not_hosted_error(&tp).code());
        };
        if self.cluster.is_some() && part.leader_epoch.is_none() {
            // Consumers read from leaders (no KIP-392 follower fetching): the
            // error sends one that followed a moved leader to the new one.
            return data.with_error_code(ResponseError::NotLeaderOrFollower.code());
        }
        let hw = part.high_watermark;
        let start = self.store.log_start_offset(&tp);
        let data = data
            .with_high_watermark(hw)
            .with_last_stable_offset(hw)
            .with_log_start_offset(start);
        if fetch.fetch_offset < start || fetch.fetch_offset > part.next_offset {
            return data.with_error_code(ResponseError::OffsetOutOfRange.code());
        }
        let max = (fetch.max_bytes.max(0) as usize).min(budget);
        let records = if fetch.fetch_offset >= hw || max == 0 {
            Ok(bytes::Bytes::new())
        } else {
            self.store.read(&tp, fetch.fetch_offset, max, hw)
        };
        match records {
            Ok(records) => data.with_records(Some(records)),
            Err(e) => {
                tracing::error!(%tp, error = %e, "fetch read failed");
                data.with_error_code(ResponseError::KafkaStorageError.code())
            }
        }
    }

    /// The response to `job` from `reads`: all of them, or for an
    /// incremental fetch the ones that changed; a full fetch at epoch 0
    /// becomes a session here.
    fn answer_fetch(&mut self, job: &FetchJob, reads: Reads) -> FetchResponse {
        match job.context {
            FetchContext::Sessionless => response(reads.partitions, NO_SESSION),
            FetchContext::Full => {
                // A full fetch reads exactly the request's partitions, in order.
                let cached = job
                    .partitions
                    .iter()
                    .zip(&reads.partitions)
                    .map(|((key, fetch), (_, data))| (key, *fetch, answer_of(data)));
                let id = self
                    .fetch_sessions
                    .handle_full_answer(self.now_ms, job.by_id, cached);
                response(reads.partitions, id)
            }
            FetchContext::Incremental { id, epoch } => {
                let answers = reads.partitions.iter().map(|(k, d)| (k, answer_of(d)));
                match self
                    .fetch_sessions
                    .handle_incremental_answer(id, epoch, answers)
                {
                    Ok(send) => {
                        let changed = reads
                            .partitions
                            .into_iter()
                            .zip(send)
                            .filter_map(|(p, send)| send.then_some(p));
                        response(changed, id)
                    }
                    Err(e) => session_error(e),
                }
            }
        }
    }

    /// Answers parked fetches that now have enough data.
    pub(super) fn wake_fetches(&mut self) {
        if self.parked.is_empty() {
            return;
        }
        let parked = std::mem::take(&mut self.parked);
        for f in parked {
            let reads = self.read_fetch(&f.job);
            if reads.bytes >= f.job.min_bytes || reads.error {
                let response = self.answer_fetch(&f.job, reads);
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
            let reads = self.read_fetch(&f.job);
            let response = self.answer_fetch(&f.job, reads);
            self.respond(f.reply, &f.header, ResponseKind::Fetch(response));
        }
    }
}

/// The partitions a request names in `topics`, keyed as it names them.
fn requested_partitions(
    req: &FetchRequest,
    by_id: bool,
) -> Vec<(SessionPartition, PartitionFetch)> {
    req.topics
        .iter()
        .flat_map(|t| {
            let topic = topic_ref(by_id, &t.topic, t.topic_id);
            t.partitions.iter().map(move |p| {
                let key = SessionPartition {
                    topic: topic.clone(),
                    partition: p.partition,
                };
                let fetch = PartitionFetch {
                    fetch_offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                };
                (key, fetch)
            })
        })
        .collect()
}

/// The partitions a request names in `forgotten_topics_data`.
fn forgotten_partitions(req: &FetchRequest, by_id: bool) -> Vec<SessionPartition> {
    req.forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_ref(by_id, &t.topic, t.topic_id);
            t.partitions.iter().map(move |&partition| SessionPartition {
                topic: topic.clone(),
                partition,
            })
        })
        .collect()
}

fn topic_ref(by_id: bool, name: &TopicName, id: Uuid) -> TopicRef {
    if by_id {
        TopicRef::Id(id.as_u128())
    } else {
        TopicRef::Name(name.0.to_string())
    }
}

/// What a session needs to know of a partition's answer.
fn answer_of(data: &PartitionData) -> PartitionAnswer {
    PartitionAnswer {
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
        log_start_offset: data.log_start_offset,
        has_records: data.records.as_ref().is_some_and(|r| !r.is_empty()),
        error: data.error_code != 0,
    }
}

/// A response with `partitions`, consecutive partitions of a topic under one
/// topic entry (as Kafka builds it: a session's read order may visit a topic
/// more than once).
fn response(
    partitions: impl IntoIterator<Item = (SessionPartition, PartitionData)>,
    session_id: i32,
) -> FetchResponse {
    let mut topics: Vec<(TopicRef, Vec<PartitionData>)> = Vec::new();
    for (key, data) in partitions {
        match topics.last_mut() {
            Some((topic, datas)) if *topic == key.topic => datas.push(data),
            _ => topics.push((key.topic, vec![data])),
        }
    }
    let topics = topics
        .into_iter()
        .map(|(topic, partitions)| {
            let t = FetchableTopicResponse::default().with_partitions(partitions);
            match topic {
                TopicRef::Name(name) => t.with_topic(TopicName(StrBytes::from_string(name))),
                TopicRef::Id(id) => t.with_topic_id(Uuid::from_u128(id)),
            }
        })
        .collect();
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(topics)
}

/// The response to a request whose session fields cannot be served: the
/// error, no partitions, no session.
fn session_error(e: SessionError) -> FetchResponse {
    FetchResponse::default()
        .with_error_code(e.code())
        .with_session_id(NO_SESSION)
}
