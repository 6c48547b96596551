//! Consumer groups: the broker's side of proto-core's group coordinator.
//!
//! Groups live in the internal topic `__consumer_offsets`, as in Kafka: the
//! group id's hash picks a partition, and the leader of that partition is the
//! group's coordinator. For every offsets partition this node leads, a
//! [`Coordinator`] (a pure state machine, one per partition) holds the groups
//! of that partition; it is rebuilt by replaying the partition's records when
//! the node becomes leader, and dropped when it stops leading.
//!
//! The coordinator's writes ([`Action::Persist`]) become one record batch
//! proposed to the partition's Raft group, exactly like a produce with
//! acks=all: the coordinator hears `Persisted` only once the batch is
//! committed under the term it was proposed in, and `PersistFailed`
//! otherwise. Requests naming several groups (DescribeGroups, DeleteGroups,
//! OffsetFetch v8+) or all of them (ListGroups) are split per partition and
//! their answers gathered ([`super::group_requests`]).

use std::collections::BTreeMap;

use kafka_protocol::messages::find_coordinator_response::Coordinator as FoundCoordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use proto_core::group::{Action as GroupAction, Coordinator, CoordinatorConfig, Event, Record};
use proto_core::multiraft::GroupId;
use proto_core::raft::{Entry, LogIndex, Term};
use proto_core::storage::batch;

use super::Node;
use crate::protocol::RequestHeader;
use crate::store::TopicPartition;

/// The internal topic holding every group's membership and offsets.
pub use proto_core::metadata::OFFSETS_TOPIC;

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// FindCoordinator v4 made the request batched.
const FIRST_BATCHED_FIND_COORDINATOR: i16 = 4;

/// Bytes read per call while replaying an offsets partition.
const REPLAY_READ_BYTES: usize = 4 << 20;

/// Which offsets partition holds `group`: Kafka's
/// `Utils.abs(groupId.hashCode) % partitions`, so Kafka tooling and Chronik
/// agree on where a group lives.
pub fn offsets_partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    });
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// A coordinator's seed from the node's, its partition and how many
/// coordinators came before it (splitmix64 steps, so nearby inputs differ).
fn mix(seed: u64, partition: u64, load: u64) -> u64 {
    let step = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    step(step(step(seed) ^ partition) ^ load)
}

/// The coordinator of one offsets partition this node leads.
struct Shard {
    coordinator: Coordinator,
    group: GroupId,
}

/// A coordinator write proposed to Raft, waiting for its commit.
#[derive(Debug)]
struct PendingPersist {
    partition: i32,
    token: u64,
    group: GroupId,
    term: Term,
    last: LogIndex,
}

/// Every coordinator of this node and their writes in flight.
pub(super) struct Groups {
    /// Settings every coordinator starts with (its seed is varied per partition).
    config: CoordinatorConfig,
    /// Partitions of the offsets topic.
    pub(super) partitions: i32,
    shards: BTreeMap<i32, Shard>,
    persists: Vec<PendingPersist>,
    /// Coordinators created so far: each gets a distinct seed, so a
    /// partition led again in the same process draws new member ids.
    loads: u64,
    /// The coordinators' clock, anchored at the first tick: (wall-clock ms,
    /// the node's monotonic ms) then. Until it is known no coordinator is
    /// stepped, so nothing is timed or stamped against a zero clock.
    clock: Option<(i64, u64)>,
}

impl Groups {
    /// No coordinators yet; `partitions` is the offsets topic's size.
    pub(super) fn new(config: CoordinatorConfig, partitions: i32) -> Groups {
        Groups {
            config,
            partitions,
            shards: BTreeMap::new(),
            persists: Vec::new(),
            loads: 0,
            clock: None,
        }
    }

    /// The offsets partition of `group`.
    pub(super) fn partition_of(&self, group: &str) -> i32 {
        offsets_partition_for(group, self.partitions)
    }

    /// Whether this node coordinates the groups of `partition`.
    pub(super) fn leads(&self, partition: i32) -> bool {
        self.shards.contains_key(&partition)
    }

    /// Every offsets partition this node coordinates.
    pub(super) fn led_partitions(&self) -> Vec<i32> {
        self.shards.keys().copied().collect()
    }
}

impl Node {
    /// Creates `__consumer_offsets` on first start. Its records are never
    /// deleted by retention: they are the groups' only copy (Kafka compacts
    /// the topic instead; compaction is not built yet).
    pub(super) fn ensure_offsets_topic(&mut self) -> Result<(), String> {
        if self.table.topics.contains_key(OFFSETS_TOPIC) {
            let have = self.table.topics[OFFSETS_TOPIC].partitions;
            if have != self.groups.partitions {
                tracing::warn!(
                    configured = self.groups.partitions,
                    existing = have,
                    "{OFFSETS_TOPIC} keeps the partition count it was created with"
                );
                self.groups.partitions = have;
            }
            return Ok(());
        }
        let mut config = self.cfg.topic_defaults.clone();
        config.retention_ms = -1;
        config.retention_bytes = -1;
        config.segment_bytes = 100 << 20;
        let partitions = self.groups.partitions;
        self.create_topic(OFFSETS_TOPIC, partitions, config)
            .map(|_| ())
            .map_err(|(_, msg)| format!("creating {OFFSETS_TOPIC}: {msg}"))
    }

    /// The offsets partition behind Raft group `group`, if it is one.
    fn offsets_partition(&self, group: GroupId) -> Option<i32> {
        let p = self.partitions.get(&group)?;
        (p.tp.topic == OFFSETS_TOPIC).then_some(p.tp.partition)
    }

    /// The coordinators' clock moved (every tick).
    pub(super) fn groups_tick(&mut self) {
        if self.groups.clock.is_none() {
            self.groups.clock = Some((self.wall_ms, self.now_ms));
        }
        for partition in self.groups.led_partitions() {
            self.group_step(partition, Event::Tick);
        }
    }

    /// Raft group `group` changed role: start or stop coordinating its
    /// groups if it is an offsets partition.
    pub(super) fn groups_role_changed(&mut self, group: GroupId, leader: bool) {
        let Some(partition) = self.offsets_partition(group) else {
            return;
        };
        if leader {
            if !self.groups.leads(partition) {
                self.load_shard(partition, group);
            }
        } else {
            self.unload_shard(partition);
        }
    }

    /// Rebuilds the coordinator of `partition` from its records.
    fn load_shard(&mut self, partition: i32, group: GroupId) {
        let tp = TopicPartition {
            topic: OFFSETS_TOPIC.to_string(),
            partition,
        };
        let mut config = self.groups.config.clone();
        self.groups.loads += 1;
        config.seed = mix(config.seed, u64::from(partition as u32), self.groups.loads);
        let mut coordinator = Coordinator::new(config);
        let (mut records, mut bad) = (0u64, 0u64);
        let end = self.store.next_offset(&tp);
        let mut offset = self.store.log_start_offset(&tp);
        while offset < end {
            let data = match self.store.read(&tp, offset, REPLAY_READ_BYTES, end) {
                Ok(d) if !d.is_empty() => d,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(%tp, offset, error = %e,
                        "cannot read the offsets partition; its groups are served from the records before this offset");
                    break;
                }
            };
            let ranges = match batch::split_batches(&data) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(%tp, offset, error = %e,
                        "the offsets partition holds a malformed batch; its groups are served from the records before it");
                    break;
                }
            };
            for range in ranges {
                let raw = &data[range];
                if let Ok(h) = batch::BatchHeader::parse(raw) {
                    offset = offset.max(h.end_offset());
                }
                match batch::records(raw) {
                    Ok(kvs) => {
                        for kv in kvs {
                            match kv.key.map(|k| Record::decode(k, kv.value)) {
                                Some(Ok(r)) => {
                                    coordinator.replay(r);
                                    records += 1;
                                }
                                _ => bad += 1,
                            }
                        }
                    }
                    Err(_) => bad += 1,
                }
            }
        }
        if bad > 0 {
            tracing::warn!(%tp, bad, "skipped offsets records that do not decode");
        }
        tracing::debug!(%tp, records, "coordinating the groups of an offsets partition");
        self.groups
            .shards
            .insert(partition, Shard { coordinator, group });
    }

    /// Stops coordinating `partition`: its writes in flight fail, and every
    /// request still waiting on it is answered NOT_COORDINATOR.
    fn unload_shard(&mut self, partition: i32) {
        let tokens: Vec<u64> = self
            .groups
            .persists
            .iter()
            .filter(|p| p.partition == partition)
            .map(|p| p.token)
            .collect();
        self.groups.persists.retain(|p| p.partition != partition);
        for token in tokens {
            self.group_step(partition, Event::PersistFailed { token });
        }
        if self.groups.shards.remove(&partition).is_some() {
            tracing::info!(partition, "no longer coordinating an offsets partition");
        }
        self.abandon_group_requests(partition, ResponseError::NotCoordinator);
    }

    /// The coordinators' time: wall-clock milliseconds as of the first tick
    /// plus the monotonic time since, so commit timestamps mean wall time
    /// while timers never jump with the wall clock (Kafka's delayed
    /// operations run on monotonic time too). `None` before the first tick.
    pub(super) fn group_now(&self) -> Option<u64> {
        let (wall, mono) = self.groups.clock?;
        Some(wall.max(0) as u64 + self.now_ms.saturating_sub(mono))
    }

    /// Steps the coordinator of `partition` and carries out what it asks.
    pub(super) fn group_step(&mut self, partition: i32, event: Event) {
        let Some(now) = self.group_now() else {
            tracing::error!(
                partition,
                "a coordinator was stepped before the clock was known"
            );
            return;
        };
        let Some(shard) = self.groups.shards.get_mut(&partition) else {
            return;
        };
        shard.coordinator.step(now, event);
        let mut queue = shard.coordinator.take_actions();
        while !queue.is_empty() {
            for action in std::mem::take(&mut queue) {
                match action {
                    GroupAction::Respond { reply, response } => {
                        self.group_response(partition, reply, response)
                    }
                    GroupAction::Persist { token, records } => {
                        if !self.propose_records(partition, token, &records) {
                            let Some(shard) = self.groups.shards.get_mut(&partition) else {
                                return;
                            };
                            shard.coordinator.step(now, Event::PersistFailed { token });
                            queue.extend(shard.coordinator.take_actions());
                        }
                    }
                }
            }
        }
    }

    /// Proposes `records` as one batch to the offsets partition; false if
    /// the partition cannot take it (not leader, failed disk).
    fn propose_records(&mut self, partition: i32, token: u64, records: &[Record]) -> bool {
        let Some(group) = self.groups.shards.get(&partition).map(|s| s.group) else {
            return false;
        };
        if records.is_empty() {
            return false;
        }
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = records.iter().map(Record::encode).collect();
        let kvs: Vec<batch::Record<'_>> = encoded
            .iter()
            .map(|(k, v)| batch::Record {
                timestamp_delta: 0,
                key: Some(k),
                value: v.as_deref(),
            })
            .collect();
        let Some((term, last)) = self.propose_internal_batch(group, &kvs) else {
            return false;
        };
        self.groups.persists.push(PendingPersist {
            partition,
            token,
            group,
            term,
            last,
        });
        true
    }

    /// Entries of Raft group `group` were applied: coordinator writes among
    /// them are durable if they kept their term.
    pub(super) fn groups_applied(&mut self, group: GroupId, entries: &[Entry]) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        let (first, last) = (first.index, last.index);
        let mut settled = Vec::new();
        self.groups.persists.retain(|p| {
            if p.group != group || p.last > last {
                return true;
            }
            let kept = p.last >= first && entries[(p.last.0 - first.0) as usize].term == p.term;
            settled.push((p.partition, p.token, kept));
            false
        });
        for (partition, token, kept) in settled {
            let event = if kept {
                Event::Persisted { token }
            } else {
                Event::PersistFailed { token }
            };
            self.group_step(partition, event);
        }
    }

    /// Raft group `group` can no longer write: its coordinator writes fail.
    pub(super) fn groups_write_failed(&mut self, group: GroupId) {
        let mut failed = Vec::new();
        self.groups.persists.retain(|p| {
            if p.group == group {
                failed.push((p.partition, p.token));
                false
            } else {
                true
            }
        });
        for (partition, token) in failed {
            self.group_step(partition, Event::PersistFailed { token });
        }
    }

    /// The broker coordinating the groups of offsets partition `partition`:
    /// the partition's leader, once this node knows where it listens.
    fn coordinator_of(&self, partition: i32) -> Option<(i32, String, i32)> {
        if self.cluster.is_none() {
            return self.groups.leads(partition).then(|| {
                (
                    self.cfg.node_id,
                    self.cfg.advertised_host.clone(),
                    self.cfg.advertised_port,
                )
            });
        }
        let tp = TopicPartition {
            topic: OFFSETS_TOPIC.to_string(),
            partition,
        };
        let group = self
            .table
            .topics
            .get(OFFSETS_TOPIC)
            .and_then(|t| t.groups.get(usize::try_from(partition).ok()?).copied())?;
        let (leader, _) = self.partition_view(&tp, GroupId(group)).leader?;
        if leader == self.cfg.node_id && !self.groups.leads(partition) {
            // Elected, but its groups are still being loaded.
            return None;
        }
        let (host, port) = self.broker_endpoint(leader)?;
        Some((leader, host, port))
    }

    /// FindCoordinator: this node for every group whose offsets partition it
    /// leads, and for transactional ids (their coordinator comes with
    /// transactions; finding it is harmless).
    pub(super) fn find_coordinator(
        &mut self,
        header: &RequestHeader,
        req: FindCoordinatorRequest,
    ) -> FindCoordinatorResponse {
        let keys: Vec<StrBytes> = if header.api_version >= FIRST_BATCHED_FIND_COORDINATOR {
            req.coordinator_keys
        } else {
            vec![req.key]
        };
        let found: Vec<FoundCoordinator> = keys
            .into_iter()
            .map(|key| {
                let found = match req.key_type {
                    KEY_TYPE_GROUP if key.is_empty() => Err(ResponseError::InvalidRequest),
                    KEY_TYPE_GROUP => self
                        .coordinator_of(self.groups.partition_of(&key))
                        .ok_or(ResponseError::CoordinatorNotAvailable),
                    KEY_TYPE_TRANSACTION => Ok((
                        self.cfg.node_id,
                        self.cfg.advertised_host.clone(),
                        self.cfg.advertised_port,
                    )),
                    _ => Err(ResponseError::InvalidRequest),
                };
                let base = FoundCoordinator::default().with_key(key);
                match found {
                    Ok((id, host, port)) => base
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(port),
                    Err(e) => base
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(e.code()),
                }
            })
            .collect();
        // The batched layout; `fit` moves the one entry to the top level for v0-3.
        FindCoordinatorResponse::default().with_coordinators(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_partitions_match_kafkas_hash() {
        // Java: "test".hashCode() == 3556498; "group-0-consumers".hashCode()
        // overflows to -1911774318, and Kafka takes Utils.abs of it.
        assert_eq!(offsets_partition_for("test", 50), 3_556_498 % 50);
        assert_eq!(
            offsets_partition_for("group-0-consumers", 50),
            1_911_774_318 % 50
        );
        assert_eq!(offsets_partition_for("", 50), 0);
        let long = "x".repeat(1000);
        assert!((0..50).contains(&offsets_partition_for(&long, 50)));
    }
}
