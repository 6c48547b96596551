//! Kafka clients: one creates the topic, then every client produces with
//! `acks=all`, one request at a time, a unique value per record.
//!
//! If asked, every other client is idempotent (InitProducerId, a sequence number per
//! partition): after an error or an unknown outcome it sends the same batch
//! again, with the same values and sequence, until it is answered. The
//! broker must store it once and answer the retry with its first offsets.
//!
//! A client learns leaders from Metadata (asked of any node), sends each
//! produce to the partition's leader as it believes it, and refreshes
//! Metadata after any error. Requests are decoded `broker::protocol::Request`s
//! (the node's input); answers are whole response frames, decoded here at the
//! request's version. A request whose connection breaks or that times out
//! has an unknown outcome: its values may or may not be stored. A plain
//! client never sends them again (its retries carry new values).

use std::collections::BTreeMap;

use broker::node::ReplyId;
use broker::protocol::{Request, RequestHeader};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestKind, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, HeaderVersion, StrBytes};
use proto_core::storage::batch::{encode_batch, BatchSpec, Record};
use rand_chacha::ChaCha8Rng;

use super::rng::{below, between};
use super::Params;

/// The topic the clients create and produce to.
pub const TOPIC: &str = "sim";
/// Produce v7: `acks`, per-partition base offsets, no flexible encoding.
const PRODUCE_VERSION: i16 = 7;
/// Metadata v7: leaders with their epochs.
const METADATA_VERSION: i16 = 7;
/// CreateTopics v4.
const CREATE_VERSION: i16 = 4;
/// InitProducerId v1, not flexible.
const INIT_PRODUCER_ID_VERSION: i16 = 1;
/// Produce errors after which an idempotent producer starts over with a new
/// id: the broker does not know its sequence (`OUT_OF_ORDER_SEQUENCE_NUMBER`,
/// `INVALID_PRODUCER_EPOCH`, `UNKNOWN_PRODUCER_ID`).
const SEQUENCE_ERRORS: [i16; 3] = [45, 47, 59];
/// The broker-side timeout a produce or CreateTopics carries.
const SERVER_TIMEOUT_MS: i32 = 5000;
/// How long a client waits for any answer before it drops the connection.
const CLIENT_TIMEOUT_MS: u64 = 8000;
/// How old a client's leader map may get before it asks again.
const METADATA_MAX_AGE_MS: u64 = 3000;
/// Kafka's `TOPIC_ALREADY_EXISTS`.
const TOPIC_ALREADY_EXISTS: i16 = 36;
/// Kafka's `NOT_CONTROLLER`.
const NOT_CONTROLLER: i16 = 41;
/// The wall clock the clients' record timestamps start from.
pub const EPOCH_MS: i64 = 1_700_000_000_000;

/// What the simulator must do for the clients.
#[derive(Debug)]
pub enum Action {
    /// Deliver `request` to `node` on connection `conn` (opened first if `open`).
    Send {
        /// The node.
        node: u64,
        /// The connection.
        conn: u64,
        /// A new connection: the node sees `Opened` first.
        open: bool,
        /// The reply slot.
        reply: ReplyId,
        /// The request.
        request: Box<Request>,
        /// What it is, for the event log.
        note: String,
    },
    /// The client gave up on `conn`; the node sees `Closed`.
    Close {
        /// The node.
        node: u64,
        /// The connection.
        conn: u64,
    },
    /// Wake `client` at `at`.
    Wake {
        /// The client.
        client: usize,
        /// When.
        at: u64,
    },
    /// Give up on `reply` at `at` if it is still unanswered.
    Timeout {
        /// The client.
        client: usize,
        /// The request's slot.
        reply: ReplyId,
        /// When.
        at: u64,
    },
}

/// A produce the cluster acknowledged: these values are at
/// `base_offset..base_offset + values.len()` of `partition`.
#[derive(Clone, Debug)]
pub struct Ack {
    /// The client.
    pub client: usize,
    /// The node that answered.
    pub node: u64,
    /// The partition.
    pub partition: i32,
    /// The first value's offset.
    pub base_offset: i64,
    /// The values, in offset order.
    pub values: Vec<Bytes>,
}

/// What an answer meant.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing for the checker.
    Nothing,
    /// A produce was acknowledged.
    Acked(Ack),
    /// A produce was refused with Kafka error `code`.
    Refused {
        /// The partition.
        partition: i32,
        /// The error code.
        code: i16,
    },
    /// The answer does not decode or makes no sense: a broker bug.
    Malformed(String),
}

/// Counters for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadStats {
    /// Produce requests sent.
    pub produces: u64,
    /// Produces acknowledged.
    pub acked_produces: u64,
    /// Records acknowledged.
    pub acked_records: u64,
    /// Produces answered with an error, by Kafka error code.
    pub errors: BTreeMap<i16, u64>,
    /// Produces whose outcome the client cannot know (connection lost,
    /// timed out).
    pub unknown: u64,
    /// Metadata requests sent.
    pub metadata: u64,
    /// CreateTopics answered NOT_CONTROLLER: a node that refused instead of
    /// holding the request until the metadata group had a leader.
    pub creates_not_controller: u64,
    /// Batches an idempotent client sent again (same values and sequence).
    pub resent: u64,
    /// Times an idempotent client had to start over with a new producer id.
    pub producer_resets: u64,
}

/// A batch a client sends, and sends again if it is idempotent.
#[derive(Clone, Debug)]
struct Batch {
    partition: i32,
    values: Vec<Bytes>,
    /// The base sequence (-1: not idempotent).
    sequence: i32,
}

#[derive(Debug)]
enum What {
    Create,
    Metadata,
    InitProducerId,
    Produce(Batch),
}

#[derive(Debug)]
struct Pending {
    node: u64,
    reply: ReplyId,
    what: What,
}

#[derive(Debug, Default)]
struct Client {
    idempotent: bool,
    /// The producer id and epoch, once given.
    producer: Option<(i64, i16)>,
    /// The next sequence per partition.
    sequences: BTreeMap<i32, i32>,
    /// The batch to send again before any new one.
    retry: Option<Batch>,
    leaders: BTreeMap<i32, u64>,
    metadata_at: u64,
    refresh: bool,
    conns: BTreeMap<u64, u64>,
    pending: Option<Pending>,
    next_value: u64,
    next_seq: u64,
}

/// The clients.
pub struct Workload {
    rng: ChaCha8Rng,
    nodes: u64,
    partitions: i32,
    replication_factor: i16,
    think_ms: u64,
    max_records: u64,
    clients: Vec<Client>,
    next_conn: u64,
    created: bool,
    stopped: bool,
    /// What the clients did.
    pub stats: WorkloadStats,
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// Decodes a response frame: the size prefix, the response header at the
/// version `T` uses at `version`, then the body.
pub(super) fn decode<T: Decodable + HeaderVersion>(
    frame: &Bytes,
    version: i16,
) -> Result<T, String> {
    let mut buf = frame.clone();
    if buf.remaining() < 4 {
        return Err("a frame shorter than its size prefix".into());
    }
    let len = buf.get_i32();
    if usize::try_from(len).ok() != Some(buf.remaining()) {
        return Err(format!("size prefix {len} for {} bytes", buf.remaining()));
    }
    ResponseHeader::decode(&mut buf, T::header_version(version)).map_err(|e| e.to_string())?;
    let body = T::decode(&mut buf, version).map_err(|e| e.to_string())?;
    if buf.has_remaining() {
        return Err(format!("{} bytes after the body", buf.remaining()));
    }
    Ok(body)
}

impl Workload {
    /// The clients of a run of `params`.
    pub fn new(rng: ChaCha8Rng, params: &Params) -> Workload {
        Workload {
            rng,
            nodes: params.nodes,
            partitions: params.partitions,
            replication_factor: params.replication_factor,
            think_ms: params.think_ms,
            max_records: params.max_records.max(1),
            clients: (0..params.clients)
                .map(|i| Client {
                    idempotent: params.idempotent && i % 2 == 1,
                    ..Client::default()
                })
                .collect(),
            next_conn: 1,
            created: false,
            stopped: false,
            stats: WorkloadStats::default(),
        }
    }

    /// How many clients there are.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// The topic exists and some client knows a leader for every partition.
    pub fn ready(&self) -> bool {
        self.created
            && self
                .clients
                .iter()
                .any(|c| c.leaders.len() == self.partitions as usize)
    }

    /// No new requests from now on.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Whether any request is unanswered.
    pub fn outstanding(&self) -> bool {
        self.clients.iter().any(|c| c.pending.is_some())
    }

    fn random_node(&mut self) -> u64 {
        1 + below(&mut self.rng, self.nodes)
    }

    fn after(&mut self, client: usize, now: u64, lo: u64, hi: u64) -> Action {
        Action::Wake {
            client,
            at: now + between(&mut self.rng, lo, hi),
        }
    }

    /// The client's timer fired: it sends its next request if it has none
    /// outstanding.
    pub fn wake(&mut self, client: usize, now: u64) -> Vec<Action> {
        if self.stopped || self.clients[client].pending.is_some() {
            return Vec::new();
        }
        if !self.created {
            if client != 0 {
                return vec![self.after(client, now, 100, 300)];
            }
            let node = self.random_node();
            let body = CreateTopicsRequest::default()
                .with_timeout_ms(SERVER_TIMEOUT_MS)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic_name())
                    .with_num_partitions(self.partitions)
                    .with_replication_factor(self.replication_factor)]);
            return self.send(
                client,
                node,
                What::Create,
                ApiKey::CreateTopics,
                CREATE_VERSION,
                RequestKind::CreateTopics(body),
                now,
            );
        }
        let c = &self.clients[client];
        let stale = now.saturating_sub(c.metadata_at) > METADATA_MAX_AGE_MS;
        if c.refresh || stale || c.leaders.len() < self.partitions as usize {
            let node = self.random_node();
            self.stats.metadata += 1;
            let body = MetadataRequest::default()
                .with_topics(Some(vec![
                    MetadataRequestTopic::default().with_name(Some(topic_name()))
                ]))
                .with_allow_auto_topic_creation(true);
            return self.send(
                client,
                node,
                What::Metadata,
                ApiKey::Metadata,
                METADATA_VERSION,
                RequestKind::Metadata(body),
                now,
            );
        }
        if self.clients[client].idempotent && self.clients[client].producer.is_none() {
            let node = self.random_node();
            let body = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1);
            return self.send(
                client,
                node,
                What::InitProducerId,
                ApiKey::InitProducerId,
                INIT_PRODUCER_ID_VERSION,
                RequestKind::InitProducerId(body),
                now,
            );
        }
        let batch = match self.clients[client].retry.take() {
            Some(b) => {
                self.stats.resent += 1;
                b
            }
            None => self.new_batch(client),
        };
        let node = match self.clients[client].leaders.get(&batch.partition) {
            Some(&l) => l,
            None => self.random_node(),
        };
        let records: Vec<Record> = batch
            .values
            .iter()
            .map(|v| Record {
                timestamp_delta: 0,
                key: None,
                value: Some(v),
            })
            .collect();
        let (producer_id, producer_epoch) = self.clients[client].producer.unwrap_or((-1, -1));
        let spec = BatchSpec {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: 0,
            base_timestamp: EPOCH_MS + now as i64,
            producer_id,
            producer_epoch,
            base_sequence: batch.sequence,
        };
        let data = Bytes::from(encode_batch(&spec, &records));
        let body = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(SERVER_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(batch.partition)
                    .with_records(Some(data))])]);
        self.stats.produces += 1;
        self.send(
            client,
            node,
            What::Produce(batch),
            ApiKey::Produce,
            PRODUCE_VERSION,
            RequestKind::Produce(body),
            now,
        )
    }

    /// A batch of new values for a random partition.
    fn new_batch(&mut self, client: usize) -> Batch {
        let partition = below(&mut self.rng, self.partitions as u64) as i32;
        let n = between(&mut self.rng, 1, self.max_records);
        let c = &mut self.clients[client];
        let values: Vec<Bytes> = (0..n)
            .map(|_| {
                c.next_value += 1;
                Bytes::from(format!("c{client}-{}", c.next_value))
            })
            .collect();
        let sequence = if c.idempotent {
            *c.sequences.get(&partition).unwrap_or(&0)
        } else {
            -1
        };
        Batch {
            partition,
            values,
            sequence,
        }
    }

    /// Every value a produce request of this client carried so far is
    /// `c{client}-{1..=n}`: the values ever sent, for the phantom check.
    pub fn values_sent(&self, client: usize) -> u64 {
        self.clients[client].next_value
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        client: usize,
        node: u64,
        what: What,
        api_key: ApiKey,
        api_version: i16,
        body: RequestKind,
        now: u64,
    ) -> Vec<Action> {
        let c = &mut self.clients[client];
        let (conn, open) = match c.conns.get(&node) {
            Some(&conn) => (conn, false),
            None => {
                let conn = self.next_conn;
                self.next_conn += 1;
                c.conns.insert(node, conn);
                (conn, true)
            }
        };
        c.next_seq += 1;
        let reply = ReplyId {
            conn,
            seq: c.next_seq,
        };
        let header = RequestHeader {
            api_key,
            api_version,
            correlation_id: c.next_seq as i32,
            client_id: Some(StrBytes::from_string(format!("c{client}"))),
        };
        let note = match &what {
            What::Produce(b) => format!(
                "c{client} produces {TOPIC}-{} seq {} {:?} to n{node} on conn {conn}",
                b.partition, b.sequence, b.values
            ),
            other => format!("c{client} sends {other:?} to n{node} on conn {conn}"),
        };
        c.pending = Some(Pending { node, reply, what });
        vec![
            Action::Send {
                node,
                conn,
                open,
                reply,
                request: Box::new(Request { header, body }),
                note,
            },
            Action::Timeout {
                client,
                reply,
                at: now + CLIENT_TIMEOUT_MS,
            },
        ]
    }

    /// The client that owns connection `conn`.
    pub fn owner(&self, conn: u64) -> Option<usize> {
        self.clients
            .iter()
            .position(|c| c.conns.values().any(|&k| k == conn))
    }

    /// An answer arrived on `reply`.
    pub fn on_response(
        &mut self,
        client: usize,
        reply: ReplyId,
        frame: Option<Bytes>,
        now: u64,
    ) -> (Vec<Action>, Outcome) {
        let c = &mut self.clients[client];
        if c.pending.as_ref().map(|p| p.reply) != Some(reply) {
            return (Vec::new(), Outcome::Nothing);
        }
        let Some(p) = c.pending.take() else {
            return (Vec::new(), Outcome::Nothing);
        };
        let Some(frame) = frame else {
            return (
                Vec::new(),
                Outcome::Malformed("no response frame for an acks=all produce".into()),
            );
        };
        match p.what {
            What::Create => match decode::<CreateTopicsResponse>(&frame, CREATE_VERSION) {
                Ok(r) => {
                    let code = r.topics.first().map_or(-1, |t| t.error_code);
                    if code == NOT_CONTROLLER {
                        self.stats.creates_not_controller += 1;
                    }
                    if code == 0 || code == TOPIC_ALREADY_EXISTS {
                        self.created = true;
                        self.clients[client].refresh = true;
                        (vec![self.after(client, now, 0, 10)], Outcome::Nothing)
                    } else {
                        (vec![self.after(client, now, 100, 300)], Outcome::Nothing)
                    }
                }
                Err(e) => (Vec::new(), Outcome::Malformed(format!("CreateTopics: {e}"))),
            },
            What::Metadata => match decode::<MetadataResponse>(&frame, METADATA_VERSION) {
                Ok(r) => {
                    let c = &mut self.clients[client];
                    c.leaders.clear();
                    for t in r.topics.iter().filter(|t| t.error_code == 0) {
                        for part in t.partitions.iter().filter(|p| p.error_code == 0) {
                            if let Ok(l) = u64::try_from(part.leader_id.0) {
                                c.leaders.insert(part.partition_index, l);
                            }
                        }
                    }
                    c.metadata_at = now;
                    let full = c.leaders.len() == self.partitions as usize;
                    c.refresh = !full;
                    let wake = if full {
                        self.after(client, now, 0, 5)
                    } else {
                        self.after(client, now, 50, 200)
                    };
                    (vec![wake], Outcome::Nothing)
                }
                Err(e) => (Vec::new(), Outcome::Malformed(format!("Metadata: {e}"))),
            },
            What::InitProducerId => {
                match decode::<InitProducerIdResponse>(&frame, INIT_PRODUCER_ID_VERSION) {
                    Ok(r) if r.error_code == 0 && r.producer_id.0 >= 0 => {
                        let c = &mut self.clients[client];
                        c.producer = Some((r.producer_id.0, r.producer_epoch));
                        c.sequences.clear();
                        (vec![self.after(client, now, 0, 5)], Outcome::Nothing)
                    }
                    Ok(r) if r.error_code == 0 => (
                        Vec::new(),
                        Outcome::Malformed(format!("InitProducerId gave id {}", r.producer_id.0)),
                    ),
                    Ok(_) => (vec![self.after(client, now, 50, 200)], Outcome::Nothing),
                    Err(e) => (
                        Vec::new(),
                        Outcome::Malformed(format!("InitProducerId: {e}")),
                    ),
                }
            }
            What::Produce(batch) => self.produced(client, p.node, batch, &frame, now),
        }
    }

    fn produced(
        &mut self,
        client: usize,
        node: u64,
        batch: Batch,
        frame: &Bytes,
        now: u64,
    ) -> (Vec<Action>, Outcome) {
        let r = match decode::<ProduceResponse>(frame, PRODUCE_VERSION) {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Outcome::Malformed(format!("Produce: {e}"))),
        };
        let Some(part) = r
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
        else {
            return (
                Vec::new(),
                Outcome::Malformed("a produce response without the partition".into()),
            );
        };
        if part.index != batch.partition {
            return (
                Vec::new(),
                Outcome::Malformed(format!(
                    "asked about partition {}, answered about {}",
                    batch.partition, part.index
                )),
            );
        }
        let c = &mut self.clients[client];
        if part.error_code != 0 {
            let refused = Outcome::Refused {
                partition: batch.partition,
                code: part.error_code,
            };
            *self.stats.errors.entry(part.error_code).or_default() += 1;
            c.refresh = true;
            if c.idempotent {
                if SEQUENCE_ERRORS.contains(&part.error_code) {
                    self.stats.producer_resets += 1;
                    c.producer = None;
                    c.sequences.clear();
                } else {
                    c.retry = Some(batch);
                }
            }
            return (vec![self.after(client, now, 20, 100)], refused);
        }
        if part.base_offset < 0 {
            return (
                Vec::new(),
                Outcome::Malformed(format!("acknowledged at offset {}", part.base_offset)),
            );
        }
        if c.idempotent {
            c.sequences
                .insert(batch.partition, batch.sequence + batch.values.len() as i32);
        }
        self.stats.acked_produces += 1;
        self.stats.acked_records += batch.values.len() as u64;
        let think = self.think_ms;
        let ack = Ack {
            client,
            node,
            partition: batch.partition,
            base_offset: part.base_offset,
            values: batch.values,
        };
        (vec![self.after(client, now, 0, think)], Outcome::Acked(ack))
    }

    /// The client's connection `conn` broke: its request, if any, has an
    /// unknown outcome.
    pub fn on_conn_lost(&mut self, client: usize, conn: u64, now: u64) -> Vec<Action> {
        let c = &mut self.clients[client];
        c.conns.retain(|_, k| *k != conn);
        if c.pending.as_ref().map(|p| p.reply.conn) != Some(conn) {
            return Vec::new();
        }
        self.fail_pending(client, now)
    }

    fn fail_pending(&mut self, client: usize, now: u64) -> Vec<Action> {
        let c = &mut self.clients[client];
        if let Some(Pending {
            what: What::Produce(batch),
            ..
        }) = c.pending.take()
        {
            self.stats.unknown += 1;
            if c.idempotent {
                c.retry = Some(batch);
            }
        }
        c.refresh = true;
        vec![self.after(client, now, 20, 200)]
    }

    /// `node` went down: every connection to it breaks.
    pub fn node_down(&mut self, node: u64, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        for client in 0..self.clients.len() {
            if let Some(conn) = self.clients[client].conns.get(&node).copied() {
                out.extend(self.on_conn_lost(client, conn, now));
            }
        }
        out
    }

    /// `reply`'s timer fired: if it is still unanswered the client drops the
    /// connection.
    pub fn on_timeout(&mut self, client: usize, reply: ReplyId, now: u64) -> Vec<Action> {
        let c = &mut self.clients[client];
        let Some(p) = c.pending.as_ref().filter(|p| p.reply == reply) else {
            return Vec::new();
        };
        let node = p.node;
        c.conns.retain(|_, k| *k != reply.conn);
        let mut out = vec![Action::Close {
            node,
            conn: reply.conn,
        }];
        out.extend(self.fail_pending(client, now));
        out
    }
}
