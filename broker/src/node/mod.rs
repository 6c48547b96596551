//! The broker as a sans-IO state machine: Kafka requests, ticks and disk
//! completions in; responses and disk writes out.
//!
//! Every partition is a Raft group hosted by [`MultiRaft`]; on one node each
//! group has one voter, so the write path is the one the cluster uses: a
//! produce becomes a proposal, the proposal a [`Output::Persist`], and the
//! answer waits for what the acks level promises (see [`produce`]).
//!
//! A driver owns one `Node`, feeds it [`Input`]s with a monotonic `now_ms`,
//! and performs the [`Output`]s it drains, in order. Reads go to the
//! [`LogStore`] directly.

mod admin;
pub mod cluster;
mod created_topics;
mod entry_loads;
mod fetch;
mod fetch_session;
mod group_requests;
pub mod groups;
mod metadata;
mod offsets;
mod produce;
mod producer_ids;
mod producer_state;
pub mod topics;

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use proto_core::group::CoordinatorConfig;
use proto_core::multiraft::{self, Action, GroupId, MultiConfig, MultiRaft};
use proto_core::producer::ProducerStates;
use proto_core::raft::{
    self, Config, Entry, LogIndex, NodeId, Payload, PersistWrite, Restored, Role, Snapshot,
};

use crate::log_start::LogStart;
use crate::protocol::{encode_response, Request, RequestHeader};
use crate::store::{LogStore, TopicPartition};
use fetch::ParkedFetch;
use produce::PendingProduce;
use producer_ids::ProducerIds;
use topics::{TopicConfig, TopicTable};

/// Where a response goes: the driver's connection and the request's place in
/// that connection's order (responses must leave in request order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyId {
    /// The driver's connection number.
    pub conn: u64,
    /// The request's sequence number on that connection.
    pub seq: u64,
}

/// What a driver feeds the node.
#[derive(Debug)]
pub enum Input {
    /// A decoded request from a client connection.
    Request {
        /// Where the answer goes.
        reply: ReplyId,
        /// The request.
        request: Box<Request>,
    },
    /// The clock moved: `wall_ms` is the wall clock for retention.
    Tick {
        /// Milliseconds since the Unix epoch.
        wall_ms: i64,
    },
    /// A client connected from `peer`.
    Opened {
        /// The driver's connection number.
        conn: u64,
        /// The client's address.
        peer: std::net::SocketAddr,
    },
    /// A client connection closed.
    Closed {
        /// The driver's connection number.
        conn: u64,
    },
    /// A [`Output::Persist`] write (and every earlier one of its group) is durable.
    Persisted {
        /// The group written.
        group: GroupId,
        /// The write's sequence number.
        seq: u64,
    },
    /// A frame from another broker, whose identity the transport's
    /// handshake established.
    Peer {
        /// The sending broker.
        from: NodeId,
        /// The frame's payload, not yet validated.
        payload: Bytes,
    },
    /// The transport lost its link to a broker.
    PeerDown {
        /// The broker.
        peer: NodeId,
    },
    /// A [`Output::Persist`] write failed; the partition can take no more writes.
    PersistFailed {
        /// The group whose write failed.
        group: GroupId,
        /// What the disk said.
        error: String,
    },
}

/// What the node asks its driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send `frame` (a whole response, size prefix included) on the connection,
    /// in request order. `None` means the request gets no response (acks=0),
    /// but its place in the order is released.
    Respond {
        /// Where it goes.
        reply: ReplyId,
        /// The encoded response.
        frame: Option<Bytes>,
    },
    /// Send `payload` to another broker over the peer transport. Delivery
    /// may fail; Raft and the senders of control messages retry.
    Send {
        /// The broker.
        to: NodeId,
        /// The frame's payload.
        payload: Bytes,
    },
    /// Close the connection: its byte stream can no longer be trusted.
    Close {
        /// The driver's connection number.
        conn: u64,
    },
    /// Write to `tp`'s log and metadata, in `seq` order per group, fsync if
    /// `write.must_sync`, then feed back [`Input::Persisted`].
    Persist {
        /// The partition's Raft group.
        group: GroupId,
        /// The partition.
        tp: TopicPartition,
        /// What to write.
        write: PersistWrite,
    },
}

/// The node-wide settings request handling needs.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This broker's id.
    pub node_id: i32,
    /// The host clients are told to connect to.
    pub advertised_host: String,
    /// The port clients are told to connect to.
    pub advertised_port: i32,
    /// The rack, if declared.
    pub rack: Option<String>,
    /// The cluster id Metadata reports.
    pub cluster_id: String,
    /// Create unknown topics when Metadata asks for them.
    pub auto_create_topics: bool,
    /// Partitions of an auto-created topic, and of CreateTopics with -1.
    pub default_partitions: i32,
    /// Topic config defaults.
    pub topic_defaults: TopicConfig,
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Seeds Raft's election timeouts and topic ids: the driver draws it.
    pub seed: u64,
    /// Partitions of `__consumer_offsets` when this node creates it.
    pub offsets_partitions: i32,
    /// The group coordinators' settings.
    pub coordinator: CoordinatorConfig,
    /// Every metadata voter's node id and Raft address, this node included;
    /// with other nodes in it the node runs in cluster mode.
    pub peers: BTreeMap<u64, String>,
    /// Replicas of a topic created without a replication factor.
    pub default_replication_factor: i16,
}

/// A hosted partition's bookkeeping.
#[derive(Debug)]
struct Partition {
    tp: TopicPartition,
    /// The offset the next produced record gets (proposals included).
    next_offset: i64,
    /// The high watermark: offsets below it are committed.
    high_watermark: i64,
    /// The leader epoch (Raft term) while this node leads.
    leader_epoch: Option<i32>,
    /// Entries applied since the Raft log was last compacted.
    applied_since_compact: u64,
    /// Bytes of those entries.
    applied_bytes_since_compact: u64,
    /// A write failed: refuse produces until restart.
    failed: Option<String>,
    /// Idempotent producers' sequences and epochs, rebuilt from the log.
    producers: ProducerStates,
    /// The ISR tracker, while this node leads the partition in a cluster.
    isr: Option<cluster::isr::PartitionIsr>,
}

/// Applied entries after which the in-memory Raft log is compacted: the data
/// lives in the segment files, the Raft log only needs a short tail.
const COMPACT_EVERY: u64 = 1024;

/// Applied bytes after which the in-memory Raft log is compacted, whatever
/// the entry count: with large batches the entry bound alone would let the
/// in-memory copy grow to gigabytes.
const COMPACT_EVERY_BYTES: u64 = 4 << 20;

/// Entry bytes a partition leader has in flight to one follower before it
/// waits for answers. A follower catching up from the leader's segments is
/// sent a 1 MiB load per append; without a byte bound, 256 of them would
/// overflow the 64 MiB peer queue, whose drops cost a heartbeat round each.
const MAX_INFLIGHT_BYTES: usize = 8 << 20;

/// The offset after the last record batch in the Raft log, if it holds one:
/// where a new leader's next record goes (its log may hold entries the disk
/// has not written yet).
fn log_end_offset(log: &raft::RaftLog) -> Option<i64> {
    let mut i = log.last_index();
    while i >= log.first_index() && i.0 > 0 {
        if let Some(Entry {
            payload: Payload::Normal(b),
            ..
        }) = log.entry(i)
        {
            return produce::batch_end_offset(b);
        }
        i = LogIndex(i.0 - 1);
    }
    None
}

/// Counts an entry's record batch in its producer's state (duplicate
/// detection), if it has one.
fn record_producer(producers: &mut ProducerStates, e: &Entry) {
    if let Payload::Normal(data) = &e.payload {
        if let Ok(h) = proto_core::storage::batch::BatchHeader::parse(data) {
            producers.record(&h);
        }
    }
}

/// How long an idempotent producer's state outlives its newest batch:
/// Kafka's `producer.id.expiration.ms` default, a day.
const PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

/// How often idle producers are looked for: Kafka's
/// `producer.id.expiration.check.interval.ms` default, ten minutes.
const PRODUCER_EXPIRY_CHECK_MS: i64 = 600_000;

/// The sans-IO broker.
pub struct Node {
    cfg: NodeConfig,
    raft: MultiRaft,
    table: TopicTable,
    partitions: BTreeMap<GroupId, Partition>,
    by_name: BTreeMap<TopicPartition, GroupId>,
    store: Box<dyn LogStore + Send>,
    pending: BTreeMap<ReplyId, PendingProduce>,
    parked: Vec<ParkedFetch>,
    fetch_sessions: fetch_session::FetchSessionCache,
    outputs: Vec<Output>,
    now_ms: u64,
    wall_ms: i64,
    ids_drawn: u64,
    producer_ids: ProducerIds,
    /// Wall-clock time of the next idle-producer sweep.
    next_producer_expiry_ms: i64,
    groups: groups::Groups,
    group_requests: group_requests::GroupRequests,
    /// Each open connection's client address, as DescribeGroups reports it.
    client_hosts: BTreeMap<u64, String>,
    /// CreateTopics answers waiting for their partitions' leaders.
    parked_creates: Vec<created_topics::ParkedCreate>,
    /// Cluster mode's state; `None` on a single node.
    cluster: Option<cluster::Cluster>,
    /// Replicas the ISR trackers of this node dropped, since start.
    isr_shrinks: u64,
    /// Entry loads for followers that Raft asked for (see `entry_loads`).
    loads: entry_loads::EntryLoads,
    /// Applied entries after which a partition's in-memory Raft log is
    /// compacted ([`COMPACT_EVERY`] unless a simulator asks for less).
    compact_every: u64,
}

/// A partition's durable Raft state, read back by the driver at start.
pub type RestoredGroups = BTreeMap<u64, Restored>;

impl Node {
    /// A node over `store`, with the topic table it saved last and each
    /// group's durable Raft state.
    pub fn new(
        cfg: NodeConfig,
        store: Box<dyn LogStore + Send>,
        table: TopicTable,
        mut restored: RestoredGroups,
    ) -> Result<Node, String> {
        let mut mcfg = MultiConfig::new(NodeId(cfg.node_id as u64));
        let me = cfg.node_id as u64;
        let clustered = cfg.peers.keys().any(|&id| id != me);
        mcfg.liveness_timeout_ticks = if clustered {
            2 * cluster::ELECTION_TICKS
        } else {
            20
        };
        let raft = MultiRaft::new(mcfg).map_err(|e| e.to_string())?;
        let groups = groups::Groups::new(cfg.coordinator.clone(), cfg.offsets_partitions);
        let cluster = clustered.then(|| {
            let peers = cfg
                .peers
                .iter()
                .map(|(id, addr)| (NodeId(*id), addr.clone()))
                .collect();
            cluster::Cluster::new(peers, u128::from(cfg.seed) << 64 | u128::from(me))
        });
        let mut node = Node {
            // Before `cfg` moves in.
            fetch_sessions: fetch_session::FetchSessionCache::new(cfg.seed),
            cfg,
            raft,
            table,
            partitions: BTreeMap::new(),
            by_name: BTreeMap::new(),
            store,
            pending: BTreeMap::new(),
            parked: Vec::new(),
            outputs: Vec::new(),
            now_ms: 0,
            wall_ms: 0,
            ids_drawn: 0,
            producer_ids: ProducerIds::default(),
            next_producer_expiry_ms: 0,
            groups,
            group_requests: group_requests::GroupRequests::default(),
            client_hosts: BTreeMap::new(),
            parked_creates: Vec::new(),
            cluster,
            isr_shrinks: 0,
            loads: entry_loads::EntryLoads::default(),
            compact_every: COMPACT_EVERY,
        };
        if node.cluster.is_some() {
            // The metadata log says what to host; the topic table is rebuilt
            // from it as it is applied.
            node.host_metadata_group()?;
            return Ok(node);
        }
        let topics: Vec<(String, Vec<u64>)> = node
            .table
            .topics
            .iter()
            .map(|(name, t)| (name.clone(), t.groups.clone()))
            .collect();
        for (name, groups) in topics {
            for (p, g) in groups.into_iter().enumerate() {
                let tp = TopicPartition {
                    topic: name.clone(),
                    partition: p as i32,
                };
                let mut r = restored.remove(&g).unwrap_or_else(|| node.fresh());
                // Storage keeps what Raft wrote; the founding membership (this
                // node alone) is the node's to give.
                r.membership = node.fresh().membership;
                node.host(GroupId(g), tp, r)?;
            }
        }
        node.ensure_offsets_topic()?;
        Ok(node)
    }

    /// The topic table, for the driver's start-up (which groups to restore).
    pub fn topic_table(&self) -> &TopicTable {
        &self.table
    }

    /// Takes what the node wants done, in order.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        if self.cluster.is_some() {
            self.raft_step(multiraft::Event::Flush);
        }
        let outputs = std::mem::take(&mut self.outputs);
        self.route_forwarded(outputs)
    }

    /// Milliseconds per Raft tick, for the driver's timer.
    pub fn tick_ms(&self) -> u64 {
        self.cfg.tick_ms
    }

    /// Compacts each partition's in-memory Raft log every `entries` applied
    /// entries instead of every [`COMPACT_EVERY`]: the whole-node simulator's
    /// runs are short, and compaction (and the catch-up from segments it
    /// causes) must happen in them too.
    pub fn set_compact_every(&mut self, entries: u64) {
        self.compact_every = entries.max(1);
    }

    /// Steps one input at monotonic time `now_ms`.
    pub fn step(&mut self, now_ms: u64, input: Input) {
        self.now_ms = self.now_ms.max(now_ms);
        match input {
            Input::Request { reply, request } => self.request(reply, *request),
            Input::Tick { wall_ms } => self.tick(wall_ms),
            Input::Opened { conn, peer } => {
                // Kafka reports a member's host as Java prints an address.
                self.client_hosts.insert(conn, format!("/{}", peer.ip()));
            }
            Input::Closed { conn } => {
                self.client_hosts.remove(&conn);
                self.drop_parked_fetches(conn);
                self.drop_parked_creates(conn);
            }
            Input::Persisted { group, seq } => {
                // After a failed write nothing later may count as durable:
                // the failed write's state would be taken as written.
                if self
                    .partitions
                    .get(&group)
                    .is_some_and(|p| p.failed.is_none())
                {
                    self.raft_step(multiraft::Event::Persisted { group, seq });
                    self.check_produces(group);
                }
            }
            Input::PersistFailed { group, error } => self.persist_failed(group, error),
            Input::Peer { from, payload } => self.peer_frame(from, &payload),
            Input::PeerDown { peer } => {
                if self.cluster.is_some() {
                    self.raft_step(multiraft::Event::PeerUnreachable { peer });
                }
            }
        }
    }

    /// Replicas this node's ISR trackers dropped since start, for metrics.
    pub fn isr_shrinks(&self) -> u64 {
        self.isr_shrinks
    }

    /// The current role, term and commit index of every group, for metrics.
    pub fn raft_status(&self) -> Vec<(TopicPartition, u64, u64, Option<u64>)> {
        self.partitions
            .iter()
            .filter_map(|(g, p)| {
                let r = self.raft.group(*g)?;
                Some((
                    p.tp.clone(),
                    r.term().0,
                    r.log().commit().0,
                    r.leader().map(|l| l.0),
                ))
            })
            .collect()
    }

    fn request(&mut self, reply: ReplyId, request: Request) {
        let Request { header, body } = request;
        let response = match body {
            RequestKind::ApiVersions(_) => Some(ResponseKind::ApiVersions(
                crate::protocol::api_versions_response(),
            )),
            RequestKind::Metadata(r) => Some(ResponseKind::Metadata(self.metadata(&header, r))),
            RequestKind::DescribeCluster(r) => Some(ResponseKind::DescribeCluster(
                self.describe_cluster(r.include_cluster_authorized_operations),
            )),
            RequestKind::Produce(r) => self.produce(reply, &header, r),
            RequestKind::Fetch(r) => self.fetch(reply, &header, r),
            RequestKind::ListOffsets(r) => {
                Some(ResponseKind::ListOffsets(self.list_offsets(&header, r)))
            }
            body @ (RequestKind::CreateTopics(_)
            | RequestKind::DeleteTopics(_)
            | RequestKind::CreatePartitions(_)
            | RequestKind::AlterConfigs(_)
            | RequestKind::IncrementalAlterConfigs(_))
                if self.cluster.is_some() =>
            {
                self.cluster_admin(reply, Request { header, body });
                return;
            }
            RequestKind::CreateTopics(r) => {
                let timeout_ms = r.timeout_ms;
                let response = self.create_topics(&header, r);
                self.answer_create_topics(reply, &header, response, timeout_ms);
                None
            }
            RequestKind::DeleteTopics(r) => {
                Some(ResponseKind::DeleteTopics(self.delete_topics(&header, r)))
            }
            RequestKind::CreatePartitions(r) => {
                Some(ResponseKind::CreatePartitions(self.create_partitions(r)))
            }
            RequestKind::DescribeConfigs(r) => {
                Some(ResponseKind::DescribeConfigs(self.describe_configs(r)))
            }
            RequestKind::AlterConfigs(r) => Some(ResponseKind::AlterConfigs(self.alter_configs(r))),
            RequestKind::IncrementalAlterConfigs(r) => Some(ResponseKind::IncrementalAlterConfigs(
                self.incremental_alter_configs(r),
            )),
            RequestKind::InitProducerId(r) => {
                Some(ResponseKind::InitProducerId(self.init_producer_id(r)))
            }
            RequestKind::FindCoordinator(r) => Some(ResponseKind::FindCoordinator(
                self.find_coordinator(&header, r),
            )),
            group @ (RequestKind::JoinGroup(_)
            | RequestKind::SyncGroup(_)
            | RequestKind::Heartbeat(_)
            | RequestKind::LeaveGroup(_)
            | RequestKind::OffsetCommit(_)
            | RequestKind::OffsetFetch(_)
            | RequestKind::ListGroups(_)
            | RequestKind::DescribeGroups(_)
            | RequestKind::DeleteGroups(_)
            | RequestKind::OffsetDelete(_)) => {
                self.group_request(reply, &header, group);
                None
            }
            other => {
                // The codec only decodes what ApiVersions advertises, so this
                // is a bug between the two tables: say so and close.
                tracing::error!(api = ?other, "request decoded but not handled");
                self.outputs.push(Output::Close { conn: reply.conn });
                return;
            }
        };
        if let Some(body) = response {
            self.respond(reply, &header, body);
        }
    }

    /// Encodes and queues a response.
    fn respond(&mut self, reply: ReplyId, header: &RequestHeader, mut body: ResponseKind) {
        crate::protocol::fit_to_version(&mut body, header.api_version);
        match encode_response(header, &body) {
            Ok(frame) => self.outputs.push(Output::Respond {
                reply,
                frame: Some(frame),
            }),
            Err(e) => {
                tracing::error!(api = ?header.api_key, version = header.api_version, error = %e,
                    "could not encode a response; closing the connection");
                self.outputs.push(Output::Close { conn: reply.conn });
            }
        }
    }

    fn tick(&mut self, wall_ms: i64) {
        self.wall_ms = wall_ms;
        self.raft_step(multiraft::Event::Tick);
        self.refill_loads();
        self.publish_replica_holds();
        self.expire_produces();
        self.expire_fetches();
        self.groups_tick();
        self.expire_producers();
        self.cluster_tick();
        self.answer_led_creates();
    }

    /// Forgets idle idempotent producers, once per [`PRODUCER_EXPIRY_CHECK_MS`].
    fn expire_producers(&mut self) {
        if self.wall_ms < self.next_producer_expiry_ms {
            return;
        }
        self.next_producer_expiry_ms = self.wall_ms.saturating_add(PRODUCER_EXPIRY_CHECK_MS);
        for p in self.partitions.values_mut() {
            let n = p.producers.expire(self.wall_ms, PRODUCER_ID_EXPIRATION_MS);
            if n > 0 {
                tracing::debug!(tp = %p.tp, expired = n, "forgot idle idempotent producers");
            }
        }
    }

    /// A fresh single-voter group's starting state.
    fn fresh(&self) -> Restored {
        Restored::fresh([NodeId(self.cfg.node_id as u64)])
    }

    /// Starts hosting `tp` as group `group`, a single node's only voter.
    fn host(
        &mut self,
        group: GroupId,
        tp: TopicPartition,
        restored: Restored,
    ) -> Result<(), String> {
        // One voter: no one else can win, so there is no point waiting.
        self.host_group(group, tp, restored, true)
    }

    /// Starts hosting `tp` as group `group`; `campaign` starts an election
    /// at once instead of after an election timeout.
    fn host_group(
        &mut self,
        group: GroupId,
        tp: TopicPartition,
        restored: Restored,
        campaign: bool,
    ) -> Result<(), String> {
        let mut config = Config::new(NodeId(self.cfg.node_id as u64));
        config.seed = self.cfg.seed ^ group.0;
        config.quiesce = true;
        config.load_compacted = true;
        if self.cluster.is_some() {
            config.election_ticks = cluster::ELECTION_TICKS;
            config.max_inflight_bytes = MAX_INFLIGHT_BYTES;
        }
        let next_offset = self.store.next_offset(&tp);
        // Entries the snapshot marker covers are committed and will not be
        // applied again: the high watermark starts after them.
        let high_watermark = match &restored.snapshot {
            Some(s) => self
                .store
                .next_offset_after(&tp, s.meta.last.index.0)
                .map_err(|e| format!("{tp}: cannot find the high watermark: {e}"))?,
            None => self.store.log_start_offset(&tp),
        };
        let mut producers = ProducerStates::new();
        self.store
            .scan_headers(&tp, &mut |h| producers.record(h))
            .map_err(|e| format!("{tp}: cannot rebuild producer state: {e}"))?;
        self.raft
            .step(multiraft::Event::CreateGroup {
                group,
                config,
                restored: Box::new(restored),
            })
            .map_err(|e| e.to_string())?;
        self.partitions.insert(
            group,
            Partition {
                tp: tp.clone(),
                next_offset,
                high_watermark,
                leader_epoch: None,
                applied_since_compact: 0,
                applied_bytes_since_compact: 0,
                failed: None,
                producers,
                isr: None,
            },
        );
        if group != cluster::METADATA_GROUP {
            self.by_name.insert(tp, group);
        }
        if campaign {
            self.raft_step(multiraft::Event::Group {
                group,
                event: raft::Event::Campaign,
            });
        }
        Ok(())
    }

    /// Proposes `data` to `group`'s Raft log; the term and last index of
    /// the appended entries, or `None` if the group did not take them (not
    /// its leader, a transfer in progress).
    fn propose(&mut self, group: GroupId, data: Vec<Bytes>) -> Option<(raft::Term, LogIndex)> {
        let actions = self.raft_step(multiraft::Event::Propose { group, data });
        actions.into_iter().find_map(|a| match a {
            Action::Proposed {
                group: g,
                term,
                last,
                ..
            } if g == group => Some((term, last)),
            _ => None,
        })
    }

    /// Proposes `records` as one uncompressed batch the broker writes itself
    /// (coordinator records, metadata records) at the partition's next
    /// offset; returns the entry's term and index, or `None` if the partition
    /// cannot take it (not leader, failed disk).
    fn propose_internal_batch(
        &mut self,
        group: GroupId,
        records: &[proto_core::storage::batch::Record<'_>],
    ) -> Option<(raft::Term, LogIndex)> {
        use proto_core::storage::batch;
        let p = self.partitions.get(&group)?;
        let (Some(epoch), None) = (p.leader_epoch, &p.failed) else {
            return None;
        };
        let spec = batch::BatchSpec {
            base_offset: p.next_offset,
            partition_leader_epoch: epoch,
            attributes: 0,
            base_timestamp: self.wall_ms,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        };
        let next = p.next_offset + records.len() as i64;
        let data = Bytes::from(batch::encode_batch(&spec, records));
        let proposed = self.propose(group, vec![data])?;
        if let Some(p) = self.partitions.get_mut(&group) {
            p.next_offset = next;
        }
        Some(proposed)
    }

    /// Stops hosting `group` and forgets its waiters.
    fn unhost(&mut self, group: GroupId) {
        self.raft_step(multiraft::Event::RemoveGroup { group });
        if let Some(p) = self.partitions.remove(&group) {
            self.by_name.remove(&p.tp);
        }
        self.fail_waiters(
            group,
            kafka_protocol::ResponseError::UnknownTopicOrPartition,
        );
    }

    /// Steps the multi-Raft layer and handles what it did.
    fn raft_step(&mut self, event: multiraft::Event) -> Vec<Action> {
        let refused = self.raft.step(event).err();
        // Writes go out first, in order: handling the other actions can step
        // Raft again (a compaction after an apply, a proposal after a role
        // change), and the writes that step makes must queue behind these.
        // A group's writes complete in sequence order, and a completion
        // confirms every earlier write.
        let mut actions = self.raft.take_actions();
        let mut unhandled = Vec::new();
        let writes: Vec<Action> = actions
            .extract_if(.., |a| matches!(a, Action::Persist { .. }))
            .collect();
        for action in writes.into_iter().chain(actions) {
            if let Some(a) = self.raft_action(action) {
                unhandled.push(a);
            }
        }
        if let Some(r) = refused {
            tracing::debug!(%r, "raft refused an event");
        }
        self.answer_loads();
        unhandled
    }

    /// Handles one Raft action; returns the ones the caller must look at.
    fn raft_action(&mut self, action: Action) -> Option<Action> {
        match action {
            Action::Persist { group, write } => {
                if let Some(p) = self.partitions.get(&group) {
                    self.outputs.push(Output::Persist {
                        group,
                        tp: p.tp.clone(),
                        write,
                    });
                }
                None
            }
            Action::Apply { group, entries } if group == cluster::METADATA_GROUP => {
                self.metadata_applied(&entries);
                None
            }
            Action::Apply { group, entries } => {
                self.applied(group, &entries);
                None
            }
            Action::RoleChanged {
                group,
                role,
                term,
                leader,
            } => {
                self.role_changed(group, role, term.0);
                if group == cluster::METADATA_GROUP {
                    self.metadata_role_changed(role, leader);
                }
                None
            }
            Action::Proposed { .. } => Some(action),
            Action::Send { to, batch } => {
                for payload in
                    cluster::wire::encode_raft_frames(batch, cluster::wire::MAX_PEER_FRAME)
                {
                    self.outputs.push(Output::Send { to, payload });
                }
                None
            }
            Action::ApplySnapshot { group, snapshot } => {
                self.snapshot_received(group, &snapshot);
                None
            }
            Action::LoadEntries {
                group,
                to,
                from,
                last,
                max_bytes,
            } => {
                self.loads.push(entry_loads::EntryLoad {
                    group,
                    to,
                    from,
                    last,
                    max_bytes,
                });
                None
            }
            // Reads are served from the high watermark.
            Action::ReadReady { .. } | Action::ReadAborted { .. } | Action::PeerLiveness { .. } => {
                None
            }
        }
    }

    fn role_changed(&mut self, group: GroupId, role: Role, term: u64) {
        let Some(p) = self.partitions.get_mut(&group) else {
            return;
        };
        let was_leader = p.leader_epoch.is_some();
        tracing::debug!(tp = %p.tp, ?role, term, "partition role changed");
        if role == Role::Leader {
            p.leader_epoch = Some(term.min(i32::MAX as u64) as i32);
            let end = self
                .raft
                .group(group)
                .and_then(|r| log_end_offset(r.log()))
                .unwrap_or_else(|| self.store.next_offset(&p.tp));
            p.next_offset = end;
            if !was_leader {
                // Entries past the applied index were written by the old
                // leader and will be committed in this term: their batches
                // count for duplicate detection from now on.
                if let Some(raft) = self.raft.group(group) {
                    let log = raft.log();
                    for e in log.slice(log.applied(), log.last_index()) {
                        record_producer(&mut p.producers, &e);
                    }
                }
            }
        } else {
            p.leader_epoch = None;
            p.isr = None;
            self.fail_waiters(group, kafka_protocol::ResponseError::NotLeaderOrFollower);
        }
        self.groups_role_changed(group, role == Role::Leader);
        if role == Role::Leader {
            if !was_leader && self.cluster.is_some() && group != cluster::METADATA_GROUP {
                self.isr_became_leader(group);
            }
            self.answer_led_creates();
        }
    }

    /// Committed entries: the high watermark moves past their records.
    fn applied(&mut self, group: GroupId, entries: &[Entry]) {
        let Some(p) = self.partitions.get_mut(&group) else {
            return;
        };
        let following = p.leader_epoch.is_none();
        for e in entries {
            if following {
                // A leader recorded its batches when it proposed them.
                record_producer(&mut p.producers, e);
            }
            if let Payload::Normal(batch) = &e.payload {
                if let Some(end) = produce::batch_end_offset(batch) {
                    p.high_watermark = p.high_watermark.max(end);
                }
            }
        }
        p.applied_since_compact += entries.len() as u64;
        p.applied_bytes_since_compact += entries
            .iter()
            .map(|e| match &e.payload {
                Payload::Normal(b) => b.len() as u64,
                _ => 0,
            })
            .sum::<u64>();
        let last = entries.last().map(|e| e.index);
        let compact = p.applied_since_compact >= self.compact_every
            || p.applied_bytes_since_compact >= COMPACT_EVERY_BYTES;
        if let Some(last) = last {
            self.applied_waiters(group, entries);
            self.groups_applied(group, entries);
            if compact {
                self.compact(group, last);
            }
        }
        self.wake_fetches();
    }

    /// Drops the Raft log's copy of entries up to `index` (or less, see
    /// [`Node::compaction_bound`]): the segment files hold them.
    fn compact(&mut self, group: GroupId, index: LogIndex) {
        let Some(index) = self.compaction_bound(group, index) else {
            return;
        };
        if let Some(p) = self.partitions.get_mut(&group) {
            p.applied_since_compact = 0;
            p.applied_bytes_since_compact = 0;
        }
        self.raft_step(multiraft::Event::Group {
            group,
            event: raft::Event::Compact {
                index,
                data: Bytes::new(),
            },
        });
    }

    /// How far `group`'s Raft log may be compacted when `applied` is
    /// applied: all of it, since the segments hold every entry and a follower
    /// behind the in-memory log is sent entries loaded from them
    /// (`entry_loads`). The metadata log is never compacted: it is small and
    /// every node rebuilds its image from it.
    fn compaction_bound(&self, group: GroupId, applied: LogIndex) -> Option<LogIndex> {
        if self.cluster.is_some() && group == cluster::METADATA_GROUP {
            return None;
        }
        let raft = self.raft.group(group)?;
        (applied > raft.log().snapshot_last().index).then_some(applied)
    }

    /// A partition's leader sent a snapshot: its segments no longer hold
    /// entries this replica lacks (retention deleted them; see
    /// `entry_loads`). A [`LogStart`] snapshot starts the replica's log again
    /// at the leader's log start offset (the store resets its log); any
    /// other carries no segment data and would leave a hole, so the replica
    /// refuses writes rather than serve it.
    fn snapshot_received(&mut self, group: GroupId, snapshot: &Snapshot) {
        if group == cluster::METADATA_GROUP {
            tracing::error!("the metadata group received a snapshot, which it never sends");
            return;
        }
        let Some(start) = LogStart::decode(&snapshot.data) else {
            return self.persist_failed(
                group,
                "the leader no longer stores entries this replica lacks (retention deleted \
                 them); the replica cannot catch up and refuses writes"
                    .to_string(),
            );
        };
        if let Some(p) = self.partitions.get_mut(&group) {
            p.next_offset = start.next_offset;
            p.high_watermark = p.high_watermark.max(start.next_offset);
            // As after a restart, producer state is what the log holds.
            p.producers = ProducerStates::new();
        }
        self.wake_fetches();
    }

    fn persist_failed(&mut self, group: GroupId, error: String) {
        tracing::error!(%group, %error, "a partition write failed; the partition refuses writes until restart");
        if let Some(p) = self.partitions.get_mut(&group) {
            p.failed = Some(error);
        }
        self.fail_waiters(group, kafka_protocol::ResponseError::KafkaStorageError);
        self.groups_write_failed(group);
    }

    /// A deterministic fresh id: topic ids must be unique, and the node may not
    /// draw randomness of its own.
    fn next_id(&mut self) -> u128 {
        self.ids_drawn += 1;
        let mut x = u128::from(self.cfg.seed) << 64 | u128::from(self.ids_drawn);
        // splitmix-style scramble so ids do not look sequential.
        x ^= x >> 67;
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        x ^= x >> 59;
        x
    }
}
