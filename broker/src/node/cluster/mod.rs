//! Cluster mode: the node as one broker of several.
//!
//! When `--peers` names other nodes, the node hosts the **metadata group**
//! (Raft group 0, every peer a voter, its log the partition
//! `__cluster_metadata-0` as in KRaft) and applies its records to a
//! [`MetadataImage`]. The image says which partitions exist and which
//! brokers replicate each; the node hosts a Raft group for every partition
//! it is a replica of, and the topic table the request handlers read is
//! rebuilt from the image after every change.
//!
//! The metadata group's leader runs the [`Controller`]: admin requests
//! (CreateTopics, DeleteTopics, CreatePartitions, (Incremental)AlterConfigs)
//! become controller events there, and its answers go out only once the
//! records they depend on are committed. A node that is not the leader
//! forwards the Kafka request frame itself to the leader over the peer
//! transport (KIP-590's envelope) and relays the answer. Brokers register
//! with the controller at start and heartbeat once a second (KIP-631);
//! producer-id blocks come from the controller too.

mod admin;
pub(super) mod isr;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use proto_core::assign::AssignerPlacement;
use proto_core::metadata::{
    decode_batch, encode_batch, ApiError, BrokerId, BrokerRegistrationRequest, Controller,
    ControllerAction, ControllerConfig, ControllerEvent, ControllerResponse, CreatableTopic,
    IncarnationId, MetadataImage, MetadataOffset, MetadataRecord, RequestId,
};
use proto_core::multiraft::{self, GroupId};
use proto_core::raft::{Entry, LogIndex, Membership, NodeId, Payload, Role};
use proto_core::storage::batch;

use super::groups::OFFSETS_TOPIC;
use super::topics::{Topic, TopicConfig, TopicTable};
use super::{Node, Output, ReplyId};
use crate::protocol::{self, Request, RequestHeader};
use crate::store::TopicPartition;
use wire::{Control, PeerMessage};

/// The metadata group's Raft group id (partitions start at 1).
pub const METADATA_GROUP: GroupId = GroupId(0);
/// The metadata log's name on disk, KRaft's.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// Election timeout of every group in ticks (randomized up to twice it):
/// 0.5 to 1 s at the default 100 ms tick, so a dead leader is replaced within
/// about a second. A dropped peer link wakes quiesced groups at once, and a
/// silent peer is presumed down after two election timeouts.
pub const ELECTION_TICKS: u32 = 5;
/// Milliseconds between a broker's heartbeats to the controller (Kafka's
/// `broker.heartbeat.interval.ms` is 2000; the session timeout is 9000).
const SESSION_INTERVAL_MS: u64 = 1000;
/// How long a forwarded request waits for the metadata leader's answer.
const FORWARD_TIMEOUT_MS: u64 = 30_000;
/// Connection numbers of requests other brokers forwarded here: above any
/// number a driver gives a client connection.
const FORWARDED_CONN_BASE: u64 = 1 << 62;
/// Kafka's `REQUEST_TIMED_OUT`.
const REQUEST_TIMED_OUT: i16 = 7;

/// Who waits for a local controller answer.
#[derive(Debug)]
pub(super) enum Waiter {
    /// A client's admin request (or one another broker forwarded).
    Kafka {
        reply: ReplyId,
        /// The request, to hand on to the next controller if this one
        /// resigns before it answers (boxed: it dwarfs the other waiters).
        request: Box<Request>,
        /// CreateTopics' `timeout_ms`: the answer also waits for leaders.
        create_timeout_ms: Option<i32>,
        /// When it is refused with REQUEST_TIMED_OUT if it has to move on
        /// to another controller.
        deadline_ms: u64,
    },
    /// A broker's request for producer ids.
    ProducerIds { broker: NodeId },
    /// The node's own request (auto-creation); the answer is only logged.
    Internal,
    /// A partition leader's AlterPartition.
    AlterPartition {
        broker: NodeId,
        topic_id: u128,
        partition: i32,
    },
}

/// A request this node forwarded to the metadata leader, or holds until one
/// is known.
#[derive(Debug)]
struct Forwarded {
    reply: ReplyId,
    request: Request,
    deadline_ms: u64,
    /// Where it was sent; `None` while it waits for a controller (none was
    /// known, or the one it went to answered NOT_CONTROLLER).
    sent_to: Option<NodeId>,
}

/// The broker's registration with the controller.
#[derive(Debug, Default)]
struct Session {
    registered: bool,
    fenced: bool,
    next_ms: u64,
}

/// How long a node waits for the controller's block of producer ids before
/// it asks again (InitProducerId is answered COORDINATOR_LOAD_IN_PROGRESS
/// meanwhile, which clients retry every 500 ms or so).
const PRODUCER_IDS_RETRY_MS: u64 = 1000;

/// Ticks after its first campaign in which the preferred leader of a new
/// partition campaigns again while no leader is known. The first campaign
/// often reaches replicas that have not applied the topic's metadata yet
/// and drop it; without a retry, the next try waits a whole randomized
/// election timeout and races the other replicas' own timeouts, which left
/// leaders lopsided (e.g. 3,1,1) until the preferred-leader hand-back.
const FIRST_CAMPAIGN_RETRIES: u32 = 3;

/// Cluster-mode state of a node.
pub(super) struct Cluster {
    /// Every metadata voter and its Raft address.
    peers: BTreeMap<NodeId, String>,
    /// The committed metadata, as applied here.
    image: MetadataImage,
    /// Present while this node leads the metadata group and has applied
    /// everything before its term.
    pub(super) controller: Option<Controller>,
    /// While leading: the index of the term's first entry; the controller
    /// starts once it is applied.
    lead_from: Option<LogIndex>,
    /// The metadata group's leader, if known.
    leader: Option<NodeId>,
    incarnation: IncarnationId,
    session: Session,
    pub(super) waiting: BTreeMap<RequestId, Waiter>,
    next_request: u64,
    forwarded: BTreeMap<u64, Forwarded>,
    next_forward: u64,
    /// The controller producer ids were last asked of, and when (node
    /// milliseconds), until a block arrives.
    ids_requested: Option<(NodeId, u64)>,
    /// The offsets topic has been asked for.
    offsets_requested: bool,
    /// New partitions this node is the preferred leader of and has not led
    /// yet, with the campaigns left to start (see [`FIRST_CAMPAIGN_RETRIES`]).
    first_campaigns: BTreeMap<GroupId, u32>,
    /// The last preferred-leader check left partitions to hand back.
    transfer_backlog: bool,
}

impl Cluster {
    /// Cluster state for a node of `peers`, this process run `incarnation`.
    pub(super) fn new(peers: BTreeMap<NodeId, String>, incarnation: u128) -> Cluster {
        Cluster {
            peers,
            image: MetadataImage::new(),
            controller: None,
            lead_from: None,
            leader: None,
            incarnation: IncarnationId(incarnation),
            session: Session::default(),
            waiting: BTreeMap::new(),
            next_request: 0,
            forwarded: BTreeMap::new(),
            next_forward: 0,
            ids_requested: None,
            offsets_requested: false,
            first_campaigns: BTreeMap::new(),
            transfer_backlog: false,
        }
    }

    /// The committed metadata.
    pub(super) fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// The metadata group's leader (the controller), if known.
    pub(super) fn controller_id(&self) -> Option<NodeId> {
        self.leader
    }

    pub(super) fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }
}

/// The metadata log's partition.
pub(super) fn metadata_tp() -> TopicPartition {
    TopicPartition {
        topic: METADATA_TOPIC.to_string(),
        partition: 0,
    }
}

/// Whether applying `record` can change which partitions this node hosts,
/// their configs or the topic table: leadership and ISR reports, broker
/// sessions and producer-id blocks cannot, and at 10,000 partitions a
/// reconcile after each of the leaders' reports saturated the node loop until
/// leaders lost their quorums and reported again.
fn reshapes_hosting(record: &MetadataRecord) -> bool {
    match record {
        MetadataRecord::Topic { .. }
        | MetadataRecord::Partition { .. }
        | MetadataRecord::RemoveTopic { .. }
        | MetadataRecord::Config { .. } => true,
        MetadataRecord::PartitionChange { replicas, .. } => replicas.is_some(),
        MetadataRecord::RegisterBroker { .. }
        | MetadataRecord::UnregisterBroker { .. }
        | MetadataRecord::FenceBroker { .. }
        | MetadataRecord::UnfenceBroker { .. }
        | MetadataRecord::ProducerIdsBlock { .. } => false,
    }
}

/// Whether a reply slot belongs to a request another broker forwarded.
pub(super) fn is_forwarded(reply: ReplyId) -> bool {
    reply.conn >= FORWARDED_CONN_BASE
}

impl Node {
    pub(super) fn me(&self) -> NodeId {
        NodeId(self.cfg.node_id as u64)
    }

    /// Whether this node's image holds everything the metadata group has
    /// committed, as far as it knows: a leader is known, and the commit index
    /// it learned from it is applied. Always true on a single node.
    pub(super) fn metadata_caught_up(&self) -> bool {
        let Some(cluster) = &self.cluster else {
            return true;
        };
        let Some(raft) = self.raft.group(METADATA_GROUP) else {
            return false;
        };
        let log = raft.log();
        cluster.leader.is_some() && log.commit().0 > 0 && log.applied() >= log.commit()
    }

    /// Hosts the metadata group from what storage holds.
    pub(super) fn host_metadata_group(&mut self) -> Result<(), String> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let voters: Vec<NodeId> = cluster.peers.keys().copied().collect();
        let tp = metadata_tp();
        let mut settings = self.cfg.topic_defaults.clone();
        settings.retention_ms = -1;
        settings.retention_bytes = -1;
        let mut restored = self
            .store
            .create(METADATA_GROUP.0, &tp, &settings.log_settings())
            .map_err(|e| format!("{tp}: cannot open the metadata log: {e}"))?;
        restored.membership = Membership::with_voters(voters);
        self.host_group(METADATA_GROUP, tp, restored, false)
    }

    /// Handles a peer frame.
    pub(super) fn peer_frame(&mut self, from: NodeId, payload: &[u8]) {
        if self.cluster.is_none() {
            return;
        }
        match wire::decode(payload) {
            Ok(PeerMessage::Raft(batch)) => {
                self.raft_step(multiraft::Event::Receive { from, batch });
            }
            Ok(PeerMessage::Control(c)) => self.control(from, c),
            Err(e) => tracing::warn!(peer = %from, error = %e, "dropped a bad peer frame"),
        }
    }

    /// Sends a control message to `to` (through the driver).
    pub(super) fn send_control(&mut self, to: NodeId, message: &Control) {
        self.outputs.push(Output::Send {
            to,
            payload: wire::encode_control(message),
        });
    }

    pub(super) fn control(&mut self, from: NodeId, message: Control) {
        match message {
            Control::Forward { id, frame } => match protocol::decode_request(Bytes::from(frame)) {
                Ok(request) => {
                    let reply = ReplyId {
                        conn: FORWARDED_CONN_BASE + from.0,
                        seq: id,
                    };
                    self.request(reply, request);
                }
                Err(e) => {
                    tracing::warn!(peer = %from, error = %e, "a forwarded request does not decode");
                    self.send_control(from, &Control::Forwarded { id, frame: None });
                }
            },
            Control::NotController { id } => {
                if let Some(f) = self.cluster.as_mut().and_then(|c| c.forwarded.get_mut(&id)) {
                    f.sent_to = None;
                }
                self.send_parked_forwards();
            }
            Control::Forwarded { id, frame } => {
                let Some(f) = self.cluster.as_mut().and_then(|c| c.forwarded.remove(&id)) else {
                    return;
                };
                match frame {
                    Some(frame) => self.outputs.push(Output::Respond {
                        reply: f.reply,
                        frame: (!frame.is_empty()).then(|| Bytes::from(frame)),
                    }),
                    None => self.outputs.push(Output::Close { conn: f.reply.conn }),
                }
            }
            Control::Register {
                broker_id,
                incarnation_id,
                kafka_host,
                kafka_port,
                raft_addr,
                rack,
            } => self.controller_step(ControllerEvent::BrokerRegistration(
                BrokerRegistrationRequest {
                    broker_id: BrokerId(broker_id),
                    incarnation_id: IncarnationId(incarnation_id),
                    kafka_host,
                    kafka_port,
                    raft_addr,
                    rack,
                },
            )),
            Control::Heartbeat {
                broker_id,
                incarnation_id,
                metadata_offset,
            } => self.controller_step(ControllerEvent::BrokerHeartbeat {
                broker_id: BrokerId(broker_id),
                incarnation_id: IncarnationId(incarnation_id),
                metadata_offset: MetadataOffset(metadata_offset),
                want_fence: false,
            }),
            Control::Session {
                incarnation_id,
                registered,
                fenced,
            } => self.session_answer(incarnation_id, registered, fenced),
            Control::AllocateProducerIds { broker_id } => {
                let Some(cluster) = self.cluster.as_mut() else {
                    return;
                };
                let request_id = cluster.request_id();
                cluster
                    .waiting
                    .insert(request_id, Waiter::ProducerIds { broker: from });
                self.controller_step(ControllerEvent::AllocateProducerIds {
                    request_id,
                    broker_id: BrokerId(broker_id),
                });
            }
            Control::ProducerIds { first, len } => self.producer_ids_given(first, len),
            m @ Control::AlterPartition { .. } => self.alter_partition_request(from, m),
            Control::PartitionState {
                topic_id,
                partition,
                recorded,
            } => self.partition_state(topic_id, partition, recorded),
        }
    }

    fn session_answer(&mut self, incarnation: u128, registered: bool, fenced: bool) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.incarnation.0 != incarnation {
            return;
        }
        if cluster.session.registered != registered || cluster.session.fenced != fenced {
            tracing::info!(registered, fenced, "broker session changed");
        }
        cluster.session.registered = registered;
        cluster.session.fenced = fenced;
    }

    fn producer_ids_given(&mut self, first: i64, len: i64) {
        if let Some(c) = self.cluster.as_mut() {
            c.ids_requested = None;
        }
        if len > 0 {
            self.producer_ids = super::producer_ids::ProducerIds::block(first, len);
        }
    }

    /// Asks the controller for a block of producer ids: once at a time, but
    /// again when the controller changed or did not answer within
    /// [`PRODUCER_IDS_RETRY_MS`] (a controller that died, or one elected but
    /// not started yet, drops the request).
    pub(super) fn request_producer_ids(&mut self) {
        let me = self.cfg.node_id;
        let now = self.now_ms;
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let Some(leader) = cluster.leader else {
            return;
        };
        if let Some((asked, at)) = cluster.ids_requested {
            if asked == leader && now.saturating_sub(at) < PRODUCER_IDS_RETRY_MS {
                return;
            }
        }
        cluster.ids_requested = Some((leader, now));
        if leader == self.me() {
            self.control(leader, Control::AllocateProducerIds { broker_id: me });
        } else {
            self.send_control(leader, &Control::AllocateProducerIds { broker_id: me });
        }
    }

    /// Steps the local controller, if this node runs one, and performs what
    /// it decides. Without one the event is dropped: the sender retries.
    pub(super) fn controller_step(&mut self, event: ControllerEvent) {
        let now = self.now_ms;
        let Some(controller) = self.cluster.as_mut().and_then(|c| c.controller.as_mut()) else {
            return;
        };
        if let Err(e) = controller.step(now, event) {
            tracing::error!(error = %e, "the controller refused an event");
        }
        let actions = controller.take_actions();
        for action in actions {
            self.controller_action(action);
        }
    }

    fn controller_action(&mut self, action: ControllerAction) {
        match action {
            ControllerAction::Propose { records, .. } => {
                if !self.propose_metadata(&encode_batch(&records)) {
                    tracing::warn!(
                        records = records.len(),
                        "could not propose metadata records; the controller will resign"
                    );
                }
            }
            ControllerAction::Respond {
                request_id,
                response,
            } => self.controller_answer(request_id, response),
            ControllerAction::BrokerRegistrationReply {
                broker_id,
                incarnation_id,
                result,
            } => {
                if let Err(e) = &result {
                    tracing::warn!(broker = broker_id.0, error = %e, "registration refused");
                }
                self.session_reply(broker_id, incarnation_id, result.is_ok(), true);
            }
            ControllerAction::BrokerHeartbeatReply {
                broker_id,
                incarnation_id,
                error,
                fenced,
            } => self.session_reply(broker_id, incarnation_id, error.is_none(), fenced),
        }
    }

    fn session_reply(
        &mut self,
        broker: BrokerId,
        incarnation: IncarnationId,
        registered: bool,
        fenced: bool,
    ) {
        let to = NodeId(broker.0 as u64);
        if to == self.me() {
            self.session_answer(incarnation.0, registered, fenced);
        } else {
            self.send_control(
                to,
                &Control::Session {
                    incarnation_id: incarnation.0,
                    registered,
                    fenced,
                },
            );
        }
    }

    fn controller_answer(&mut self, request_id: RequestId, response: ControllerResponse) {
        let Some(waiter) = self
            .cluster
            .as_mut()
            .and_then(|c| c.waiting.remove(&request_id))
        else {
            return;
        };
        match waiter {
            // A resigned controller's refusal: the request goes on to the
            // next controller, as Kafka's forwarding manager retries
            // NOT_CONTROLLER (librdkafka's admin client would not). If the
            // resigned controller's proposal commits after all, the next one
            // answers TOPIC_ALREADY_EXISTS or UNKNOWN_TOPIC_OR_PARTITION.
            Waiter::Kafka {
                reply,
                request,
                deadline_ms,
                ..
            } if response.is_refused_with(proto_core::metadata::errors::NOT_CONTROLLER) => {
                self.pass_on(reply, *request, deadline_ms)
            }
            Waiter::Kafka {
                reply,
                request,
                create_timeout_ms,
                ..
            } => match (admin::to_response(response), create_timeout_ms) {
                (Some(ResponseKind::CreateTopics(r)), Some(timeout_ms)) => {
                    self.answer_create_topics(reply, &request.header, r, timeout_ms)
                }
                (Some(body), _) => self.respond(reply, &request.header, body),
                (None, _) => tracing::error!("the controller answered an admin request oddly"),
            },
            Waiter::ProducerIds { broker } => {
                let (first, len) = match response {
                    ControllerResponse::AllocateProducerIds(Ok(b)) => (b.first, b.len),
                    other => {
                        tracing::warn!(?other, "producer ids refused");
                        (0, 0)
                    }
                };
                if broker == self.me() {
                    self.producer_ids_given(first, len);
                } else {
                    self.send_control(broker, &Control::ProducerIds { first, len });
                }
            }
            Waiter::AlterPartition {
                broker,
                topic_id,
                partition,
            } => {
                let recorded = match response {
                    ControllerResponse::AlterPartition(Ok(s)) => {
                        Some((s.leader_epoch.0, s.isr.into_iter().map(|b| b.0).collect()))
                    }
                    ControllerResponse::AlterPartition(Err(e)) => {
                        tracing::info!(topic_id, partition, error = %e, "AlterPartition refused");
                        None
                    }
                    _ => None,
                };
                if broker == self.me() {
                    self.partition_state(topic_id, partition, recorded);
                } else {
                    self.send_control(
                        broker,
                        &Control::PartitionState {
                            topic_id,
                            partition,
                            recorded,
                        },
                    );
                }
            }
            Waiter::Internal => {
                if let ControllerResponse::CreateTopics(results) = response {
                    for r in results {
                        if let Err(e) = r.result {
                            tracing::info!(topic = r.name, error = %e, "creating a topic failed");
                        }
                    }
                }
            }
        }
    }

    /// Appends one entry of metadata records to the metadata log; false if
    /// this node cannot (not the leader).
    fn propose_metadata(&mut self, records: &[u8]) -> bool {
        let record = batch::Record {
            timestamp_delta: 0,
            key: None,
            value: Some(records),
        };
        self.propose_internal_batch(METADATA_GROUP, &[record])
            .is_some()
    }

    /// An admin request in cluster mode: to the local controller, or
    /// forwarded to the metadata leader (held until one is known).
    pub(super) fn cluster_admin(&mut self, reply: ReplyId, request: Request) {
        let deadline_ms = self.now_ms + FORWARD_TIMEOUT_MS;
        self.admit(reply, request, deadline_ms);
    }

    /// [`Node::cluster_admin`] for a request that must be answered by
    /// `deadline_ms` (which moving between controllers does not extend).
    fn admit(&mut self, reply: ReplyId, request: Request, deadline_ms: u64) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.controller.is_some() {
            let request_id = cluster.request_id();
            let Some(event) = admin::to_event(request_id, &request.body) else {
                return;
            };
            let create_timeout_ms = match &request.body {
                RequestKind::CreateTopics(r) if !r.validate_only => Some(r.timeout_ms),
                _ => None,
            };
            cluster.waiting.insert(
                request_id,
                Waiter::Kafka {
                    reply,
                    request: Box::new(request),
                    create_timeout_ms,
                    deadline_ms,
                },
            );
            self.controller_step(event);
            return;
        }
        self.pass_on(reply, request, deadline_ms);
    }

    /// Hands an admin request this node cannot answer to the next
    /// controller: back to the broker that forwarded it (which forwards it
    /// again), or, a client's own, parked here until a leader is known. An
    /// answer reaches the client only from a controller, or as
    /// REQUEST_TIMED_OUT after 30 s.
    fn pass_on(&mut self, reply: ReplyId, request: Request, deadline_ms: u64) {
        if is_forwarded(reply) {
            let to = NodeId(reply.conn - FORWARDED_CONN_BASE);
            self.send_control(to, &Control::NotController { id: reply.seq });
            return;
        }
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        // The request waits here (parked) until a controller is known, or
        // goes to it now; NOT_CONTROLLER reaches the client only when the
        // forward times out.
        cluster.next_forward += 1;
        let id = cluster.next_forward;
        cluster.forwarded.insert(
            id,
            Forwarded {
                reply,
                request,
                deadline_ms,
                sent_to: None,
            },
        );
        self.send_parked_forwards();
    }

    /// Sends every parked forwarded request to the metadata leader, if one
    /// other than this node is known; takes them in here if this node runs
    /// the controller now.
    fn send_parked_forwards(&mut self) {
        let me = self.me();
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let parked: Vec<u64> = cluster
            .forwarded
            .iter()
            .filter(|(_, f)| f.sent_to.is_none())
            .map(|(id, _)| *id)
            .collect();
        if parked.is_empty() {
            return;
        }
        if cluster.controller.is_some() {
            for id in parked {
                if let Some(f) = self.cluster.as_mut().and_then(|c| c.forwarded.remove(&id)) {
                    self.admit(f.reply, f.request, f.deadline_ms);
                }
            }
            return;
        }
        let Some(leader) = cluster.leader.filter(|&l| l != me) else {
            return;
        };
        let mut sends = Vec::new();
        let mut broken = Vec::new();
        for id in parked {
            let Some(f) = cluster.forwarded.get_mut(&id) else {
                continue;
            };
            match protocol::encode_request(&f.request) {
                Ok(frame) => {
                    f.sent_to = Some(leader);
                    sends.push(Control::Forward {
                        id,
                        frame: frame.to_vec(),
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot re-encode a request to forward it");
                    broken.push(id);
                }
            }
        }
        for id in broken {
            if let Some(f) = cluster.forwarded.remove(&id) {
                self.outputs.push(Output::Close { conn: f.reply.conn });
            }
        }
        for message in sends {
            self.send_control(leader, &message);
        }
    }

    fn refuse_admin(&mut self, reply: ReplyId, request: &Request, error: &ApiError) {
        match admin::refusal(&request.body, error) {
            Some(body) => self.respond(reply, &request.header, body),
            None => self.outputs.push(Output::Close { conn: reply.conn }),
        }
    }

    /// Asks the controller to create `name` with the defaults (Metadata's
    /// auto-creation); the asker retries Metadata until it exists.
    pub(super) fn cluster_auto_create(&mut self, name: &str) {
        // The controller creates __consumer_offsets itself, with
        // --offsets-partitions and its configs, once enough brokers
        // registered; Kafka never auto-creates internal topics from Metadata.
        if name == OFFSETS_TOPIC || name == METADATA_TOPIC {
            return;
        }
        let topic = CreatableTopic {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
        };
        self.internal_create(topic);
    }

    fn internal_create(&mut self, topic: CreatableTopic) {
        let me = self.me();
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.controller.is_some() {
            let request_id = cluster.request_id();
            cluster.waiting.insert(request_id, Waiter::Internal);
            self.controller_step(ControllerEvent::CreateTopics {
                request_id,
                topics: vec![topic],
                validate_only: false,
            });
            return;
        }
        let Some(leader) = cluster.leader.filter(|l| *l != me) else {
            return;
        };
        let body = kafka_protocol::messages::CreateTopicsRequest::default()
            .with_timeout_ms(0)
            .with_topics(vec![
                kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                    .with_name(kafka_protocol::messages::TopicName(
                        kafka_protocol::protocol::StrBytes::from_string(topic.name),
                    ))
                    .with_num_partitions(topic.num_partitions)
                    .with_replication_factor(topic.replication_factor),
            ]);
        let request = Request {
            header: RequestHeader {
                api_key: kafka_protocol::messages::ApiKey::CreateTopics,
                api_version: 4,
                correlation_id: 0,
                client_id: None,
            },
            body: RequestKind::CreateTopics(body),
        };
        if let Ok(frame) = protocol::encode_request(&request) {
            // The answer comes back to an id nobody waits for.
            cluster.next_forward += 1;
            let id = cluster.next_forward;
            self.send_control(
                leader,
                &Control::Forward {
                    id,
                    frame: frame.to_vec(),
                },
            );
        }
    }

    /// The metadata group's role changed.
    pub(super) fn metadata_role_changed(&mut self, role: Role, leader: Option<NodeId>) {
        let last = self
            .raft
            .group(METADATA_GROUP)
            .map(|r| r.log().last_index());
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        cluster.leader = leader;
        // Heartbeat the new leader at once.
        cluster.session.next_ms = 0;
        if role == Role::Leader {
            cluster.lead_from = last;
        } else {
            cluster.lead_from = None;
            if let Some(mut controller) = cluster.controller.take() {
                let _ = controller.step(self.now_ms, ControllerEvent::Resign);
                for action in controller.take_actions() {
                    self.controller_action(action);
                }
                tracing::info!("no longer the controller");
            }
        }
        self.maybe_start_controller();
    }

    fn maybe_start_controller(&mut self) {
        let applied = self
            .raft
            .group(METADATA_GROUP)
            .map_or(LogIndex(0), |r| r.log().applied());
        let seed = self.cfg.seed;
        let defaults = self.cfg.default_partitions;
        let rf = self.cfg.default_replication_factor;
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let Some(from) = cluster.lead_from else {
            return;
        };
        if cluster.controller.is_some() || applied < from {
            return;
        }
        let cfg = ControllerConfig {
            default_partitions: defaults,
            default_replication_factor: rf,
            topic_id_seed: seed,
            ..ControllerConfig::default()
        };
        cluster.controller = Some(Controller::new(
            cfg,
            cluster.image.clone(),
            Box::new(AssignerPlacement { seed }),
        ));
        cluster.offsets_requested = false;
        tracing::info!(node = self.cfg.node_id, "this node is the controller");
        self.controller_step(ControllerEvent::Tick);
    }

    /// Committed metadata entries: apply them, tell the controller, and
    /// host or drop partitions to match.
    pub(super) fn metadata_applied(&mut self, entries: &[Entry]) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let mut changed = false;
        for e in entries {
            let Payload::Normal(data) = &e.payload else {
                continue;
            };
            let kvs = match batch::records(data) {
                Ok(kvs) => kvs,
                Err(e) => {
                    tracing::error!(error = %e, "a metadata entry is not a record batch; skipped");
                    continue;
                }
            };
            for kv in kvs {
                let Some(value) = kv.value else { continue };
                match decode_batch(value) {
                    Ok(records) => {
                        for r in &records {
                            if let Err(e) = cluster.image.apply(r) {
                                tracing::warn!(error = %e, record = ?r, "a metadata record does not apply; skipped");
                            }
                            changed |= reshapes_hosting(r);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "undecodable metadata records; skipped"),
                }
            }
        }
        if let Some(p) = self.partitions.get_mut(&METADATA_GROUP) {
            for e in entries {
                if let Payload::Normal(b) = &e.payload {
                    if let Some(end) = super::produce::batch_end_offset(b) {
                        p.high_watermark = p.high_watermark.max(end);
                    }
                }
            }
        }
        let offset = cluster.image.next_offset();
        if cluster.controller.is_some() {
            self.controller_step(ControllerEvent::Committed { offset });
        }
        self.maybe_start_controller();
        if changed {
            self.reconcile();
        }
    }

    /// Hosts every partition the image gives this node, drops the ones it no
    /// longer does, and rebuilds the topic table from the image.
    fn reconcile(&mut self) {
        let me = BrokerId(self.cfg.node_id);
        let Some(cluster) = self.cluster.as_ref() else {
            return;
        };
        let image = cluster.image.clone();
        let mut table = TopicTable {
            next_group: image.next_raft_group().0,
            next_producer_id: image.next_producer_id(),
            ..TopicTable::default()
        };
        let mut mine: BTreeMap<GroupId, (TopicPartition, Vec<BrokerId>)> = BTreeMap::new();
        for t in image.topics() {
            let mut config = self.cfg.topic_defaults.clone();
            for (k, v) in image.topic_overrides(&t.name) {
                if let Err(e) = config.set(&k, &v) {
                    tracing::warn!(topic = t.name, error = %e, "ignoring a topic config");
                }
            }
            for p in &t.partitions {
                if p.replicas.contains(&me) {
                    let tp = TopicPartition {
                        topic: t.name.clone(),
                        partition: p.partition,
                    };
                    mine.insert(p.raft_group, (tp, p.replicas.clone()));
                }
            }
            table.topics.insert(
                t.name.clone(),
                Topic {
                    id: t.id.0,
                    partitions: t.partitions.len() as i32,
                    groups: t.partitions.iter().map(|p| p.raft_group.0).collect(),
                    config,
                },
            );
        }
        let hosted: BTreeSet<GroupId> = self
            .partitions
            .keys()
            .copied()
            .filter(|g| *g != METADATA_GROUP)
            .collect();
        for g in hosted.iter().filter(|g| !mine.contains_key(g)) {
            let tp = self.partitions.get(g).map(|p| p.tp.clone());
            self.unhost(*g);
            if let Some(tp) = tp {
                if let Err(e) = self.store.delete(&tp) {
                    tracing::error!(%tp, error = %e, "deleting a partition's files failed");
                }
                tracing::info!(%tp, "no longer a replica");
            }
        }
        self.table = table;
        for (g, (tp, replicas)) in mine {
            let settings = self
                .table
                .topics
                .get(&tp.topic)
                .map(|t| t.config.log_settings())
                .unwrap_or_else(|| TopicConfig::log_settings(&self.cfg.topic_defaults));
            if hosted.contains(&g) {
                if let Err(e) = self.store.configure(&tp, &settings) {
                    tracing::error!(%tp, error = %e, "reconfiguring a partition failed");
                }
                continue;
            }
            let mut restored = match self.store.create(g.0, &tp, &settings) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%tp, error = %e, "cannot open a partition's log");
                    continue;
                }
            };
            let fresh = restored.entries.is_empty() && restored.hard_state.term.0 == 0;
            restored.membership =
                Membership::with_voters(replicas.iter().map(|b| NodeId(b.0 as u64)));
            // The preferred leader campaigns for a new partition at once, so
            // leaders start spread as placement spread them.
            let campaign = fresh && replicas.first() == Some(&me);
            if let Err(e) = self.host_group(g, tp.clone(), restored, campaign) {
                tracing::error!(%tp, error = %e, "cannot host a partition");
            } else if campaign {
                if let Some(c) = self.cluster.as_mut() {
                    c.first_campaigns.insert(g, FIRST_CAMPAIGN_RETRIES);
                }
            }
        }
        let offsets = self.table.topics.get(OFFSETS_TOPIC).map(|t| t.partitions);
        if let Some(n) = offsets {
            self.groups.partitions = n;
        }
        self.answer_led_creates();
    }

    /// Campaigns again for the new partitions this node should lead while
    /// none of them knows a leader, once a tick for
    /// [`FIRST_CAMPAIGN_RETRIES`] ticks.
    fn retry_first_campaigns(&mut self) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.first_campaigns.is_empty() {
            return;
        }
        let mut campaign = Vec::new();
        let raft = &self.raft;
        cluster.first_campaigns.retain(|&g, left| {
            let Some(r) = raft.group(g) else {
                return false;
            };
            if r.leader().is_some() || r.role() == Role::Candidate || *left == 0 {
                return false;
            }
            *left -= 1;
            campaign.push(g);
            true
        });
        for group in campaign {
            self.raft_step(proto_core::multiraft::Event::Group {
                group,
                event: proto_core::raft::Event::Campaign,
            });
        }
    }

    /// Cluster work on every tick: the controller's clock, the broker's
    /// session, forwarded requests that timed out, the offsets topic.
    pub(super) fn cluster_tick(&mut self) {
        if self.cluster.is_none() {
            return;
        }
        self.controller_step(ControllerEvent::Tick);
        self.isr_tick();
        self.retry_first_campaigns();
        self.preferred_leader_tick();
        self.session_tick();
        self.send_parked_forwards();
        self.expire_forwarded();
        self.ensure_cluster_offsets_topic();
    }

    fn session_tick(&mut self) {
        let now = self.now_ms;
        let me = self.me();
        let (host, port, rack) = (
            self.cfg.advertised_host.clone(),
            self.cfg.advertised_port,
            self.cfg.rack.clone(),
        );
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if now < cluster.session.next_ms {
            return;
        }
        let Some(leader) = cluster.leader else {
            return;
        };
        cluster.session.next_ms = now + SESSION_INTERVAL_MS;
        let message = if cluster.session.registered {
            Control::Heartbeat {
                broker_id: me.0 as i32,
                incarnation_id: cluster.incarnation.0,
                metadata_offset: cluster.image.next_offset().0,
            }
        } else {
            Control::Register {
                broker_id: me.0 as i32,
                incarnation_id: cluster.incarnation.0,
                kafka_host: host,
                kafka_port: u16::try_from(port).unwrap_or(0),
                raft_addr: cluster.peers.get(&me).cloned().unwrap_or_default(),
                rack,
            }
        };
        if leader == me {
            self.control(me, message);
        } else {
            self.send_control(leader, &message);
        }
    }

    fn expire_forwarded(&mut self) {
        let now = self.now_ms;
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let expired: Vec<u64> = cluster
            .forwarded
            .iter()
            .filter(|(_, f)| f.deadline_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        let refused: Vec<Forwarded> = expired
            .into_iter()
            .filter_map(|id| cluster.forwarded.remove(&id))
            .collect();
        let error = ApiError::new(REQUEST_TIMED_OUT, "the controller did not answer in time");
        for f in refused {
            self.refuse_admin(f.reply, &f.request, &error);
        }
    }

    /// The controller creates `__consumer_offsets` once enough brokers have
    /// registered for its replication factor.
    fn ensure_cluster_offsets_topic(&mut self) {
        let partitions = self.cfg.offsets_partitions;
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        if cluster.controller.is_none()
            || cluster.offsets_requested
            || cluster.image.topic(OFFSETS_TOPIC).is_some()
        {
            return;
        }
        let wanted = cluster.peers.len().min(3);
        let usable = cluster.image.usable_brokers().len();
        if usable < wanted {
            return;
        }
        cluster.offsets_requested = true;
        let topic = CreatableTopic {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: partitions,
            replication_factor: wanted as i16,
            assignments: Vec::new(),
            configs: vec![
                ("retention.ms".to_string(), Some("-1".to_string())),
                ("retention.bytes".to_string(), Some("-1".to_string())),
                (
                    "segment.bytes".to_string(),
                    Some((100u64 << 20).to_string()),
                ),
            ],
        };
        self.internal_create(topic);
    }

    /// Where a broker's Kafka listener is, from its registration.
    pub(super) fn broker_endpoint(&self, id: i32) -> Option<(String, i32)> {
        if id == self.cfg.node_id {
            return Some((self.cfg.advertised_host.clone(), self.cfg.advertised_port));
        }
        let b = self.cluster.as_ref()?.image.broker(BrokerId(id))?;
        Some((b.kafka_host.clone(), i32::from(b.kafka_port)))
    }

    /// A forwarded request's answer goes back to the broker that sent it.
    pub(super) fn route_forwarded(&mut self, outputs: Vec<Output>) -> Vec<Output> {
        if self.cluster.is_none() {
            return outputs;
        }
        let mut kept = Vec::with_capacity(outputs.len());
        for out in outputs {
            match out {
                Output::Respond { reply, frame } if is_forwarded(reply) => {
                    let to = NodeId(reply.conn - FORWARDED_CONN_BASE);
                    kept.push(Output::Send {
                        to,
                        payload: wire::encode_control(&Control::Forwarded {
                            id: reply.seq,
                            frame: Some(frame.map_or_else(Vec::new, |f| f.to_vec())),
                        }),
                    });
                }
                Output::Close { conn } if conn >= FORWARDED_CONN_BASE => {}
                other => kept.push(other),
            }
        }
        kept
    }
}
