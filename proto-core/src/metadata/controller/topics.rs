//! CreateTopics, DeleteTopics and CreatePartitions, with the single-node
//! broker's validation and Kafka's error codes. Each request's records are
//! one batch, so a request's topics are created together or not at all.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{
    Controller, ControllerResponse, CreatableTopic, CreatePartitionsResult, CreateTopicResult,
    CreatedTopic, DeleteTopicResult, PartitionsIncrease, TopicRef, MAX_PARTITIONS,
};
use crate::metadata::config::validate_topic_config;
use crate::metadata::errors::{self, ApiError};
use crate::metadata::names::{invalid_topic_name, is_internal};
use crate::metadata::placement::{ExistingAssignment, PlacementRequest};
use crate::metadata::record::{ConfigResource, MetadataRecord};
use crate::metadata::types::{id_list, BrokerId, RequestId, TopicId};
use crate::multiraft::GroupId;

/// The records of one request, built up before they are proposed together.
struct Batch {
    records: Vec<MetadataRecord>,
    /// The offset the next record will have.
    next_offset: u64,
    /// The Raft group the next partition gets.
    next_group: u64,
    /// Topic ids handed out in this batch.
    ids: BTreeSet<TopicId>,
}

impl Batch {
    fn push(&mut self, r: MetadataRecord) {
        self.records.push(r);
        self.next_offset += 1;
    }

    fn partitions(&mut self, topic_id: TopicId, first: i32, replicas: Vec<Vec<BrokerId>>) {
        for (i, replicas) in replicas.into_iter().enumerate() {
            let raft_group = GroupId(self.next_group);
            self.next_group += 1;
            self.push(MetadataRecord::Partition {
                topic_id,
                partition: first + i as i32,
                replicas,
                raft_group,
            });
        }
    }
}

/// A topic CreateTopics may create.
struct NewTopic {
    partitions: i32,
    replication_factor: usize,
    assignment: Vec<Vec<BrokerId>>,
    overrides: BTreeMap<String, String>,
}

/// Names (or ids) that appear more than once in one request.
fn repeated<T: Ord + Clone>(items: impl Iterator<Item = T>) -> BTreeSet<T> {
    let mut seen = BTreeSet::new();
    let mut twice = BTreeSet::new();
    for i in items {
        if !seen.insert(i.clone()) {
            twice.insert(i);
        }
    }
    twice
}

fn invalid_request(what: &str) -> ApiError {
    ApiError::new(
        errors::INVALID_REQUEST,
        format!("{what} is named more than once in the request"),
    )
}

impl Controller {
    fn batch(&self) -> Batch {
        Batch {
            records: Vec::new(),
            next_offset: self.latest.next_offset().0,
            next_group: self.latest.next_raft_group().0,
            ids: BTreeSet::new(),
        }
    }

    /// A topic id drawn from the seed and the offset of the topic's record:
    /// deterministic, unique because offsets are, UUID-v4 shaped, never zero
    /// and never one already in use.
    fn topic_id_for(&self, offset: u64, taken: &BTreeSet<TopicId>) -> TopicId {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.cfg.topic_id_seed.to_le_bytes());
        seed[8..16].copy_from_slice(&offset.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(seed);
        loop {
            let raw = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            // Version 4, variant 1, as Kafka's Uuid.randomUuid() gives.
            let id = TopicId((raw & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62));
            if self.latest.topic_by_id(id).is_none() && !taken.contains(&id) {
                return id;
            }
        }
    }

    /// Checks replica sets chosen by a client for the partitions from
    /// `first` on: each non-empty, of `rf` replicas when given, without
    /// repeats, on usable brokers only.
    fn check_assignment(
        &self,
        assignment: &[Vec<BrokerId>],
        first: i32,
        rf: Option<usize>,
    ) -> Result<(), ApiError> {
        let bad = |m: String| Err(ApiError::new(errors::INVALID_REPLICA_ASSIGNMENT, m));
        let rf = rf.or_else(|| assignment.first().map(Vec::len));
        for (i, replicas) in assignment.iter().enumerate() {
            let i = first + i as i32;
            if replicas.is_empty() {
                return bad(format!("partition {i} has no replicas"));
            }
            if Some(replicas.len()) != rf {
                return bad(format!(
                    "partition {i} has {} replicas; every partition must have {}",
                    replicas.len(),
                    rf.unwrap_or(0)
                ));
            }
            if replicas.iter().collect::<BTreeSet<_>>().len() != replicas.len() {
                return bad(format!(
                    "partition {i} repeats a broker in {}",
                    id_list(replicas)
                ));
            }
            if let Some(b) = replicas.iter().find(|b| !self.latest.is_usable(**b)) {
                return bad(format!(
                    "broker {b} is not registered, or is fenced, and cannot take replicas"
                ));
            }
        }
        Ok(())
    }

    /// Every partition of the cluster, for placement to count.
    fn existing_assignment(&self) -> ExistingAssignment {
        self.latest
            .topics()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| ((t.name.clone(), p.partition), p.replicas.clone()))
            })
            .collect()
    }

    /// Replica sets for `partitions` new partitions of `topic` from
    /// `first`, `rf` replicas each, from the placement, checked.
    fn place(
        &self,
        existing: &ExistingAssignment,
        topic: &str,
        first: i32,
        partitions: usize,
        rf: usize,
    ) -> Result<Vec<Vec<BrokerId>>, ApiError> {
        let brokers = self.latest.usable_brokers();
        if rf > brokers.len() {
            return Err(ApiError::new(
                errors::INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {rf} is larger than the {} usable (registered, unfenced) brokers",
                    brokers.len()
                ),
            ));
        }
        let request = PlacementRequest {
            brokers: &brokers,
            existing,
            topic,
            first_partition: first,
            partitions,
            replication_factor: rf,
        };
        let placed = self
            .placement
            .place(&request)
            .map_err(|e| ApiError::new(errors::INVALID_REPLICATION_FACTOR, e.to_string()))?;
        let usable: BTreeSet<BrokerId> = brokers.iter().map(|b| b.id).collect();
        let sound = placed.len() == partitions
            && placed.iter().all(|r| {
                r.len() == rf
                    && r.iter().all(|b| usable.contains(b))
                    && r.iter().collect::<BTreeSet<_>>().len() == rf
            });
        if !sound {
            tracing::error!(
                ?placed,
                topic,
                partitions,
                rf,
                "the placement broke its contract"
            );
            return Err(ApiError::new(
                errors::UNKNOWN_SERVER_ERROR,
                "the replica placement gave an invalid assignment",
            ));
        }
        Ok(placed)
    }

    /// One topic of a CreateTopics: its partition count, replication factor,
    /// replica sets and config overrides, or why not.
    fn check_new_topic(
        &self,
        t: &CreatableTopic,
        existing: &ExistingAssignment,
    ) -> Result<NewTopic, ApiError> {
        if let Some(why) = invalid_topic_name(&t.name) {
            return Err(ApiError::new(errors::INVALID_TOPIC_EXCEPTION, why));
        }
        if self.latest.topic(&t.name).is_some() {
            return Err(ApiError::new(
                errors::TOPIC_ALREADY_EXISTS,
                format!("topic `{}` already exists", t.name),
            ));
        }
        let mut overrides = BTreeMap::new();
        for (name, value) in &t.configs {
            if let Some(v) = value {
                let v = validate_topic_config(name, v)
                    .map_err(|e| ApiError::new(errors::INVALID_CONFIG, e))?;
                overrides.insert(name.clone(), v);
            }
        }
        let bad_partitions = |n: i32| {
            ApiError::new(
                errors::INVALID_PARTITIONS,
                format!("{n} partitions; must be 1 to {MAX_PARTITIONS}"),
            )
        };
        if !t.assignments.is_empty() {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                return Err(ApiError::new(
                    errors::INVALID_REQUEST,
                    "an explicit assignment comes with num_partitions and replication_factor -1",
                ));
            }
            let n = t.assignments.len() as i32;
            if n > MAX_PARTITIONS {
                return Err(bad_partitions(n));
            }
            let mut by_partition: BTreeMap<i32, Vec<BrokerId>> = BTreeMap::new();
            for a in &t.assignments {
                by_partition.insert(a.partition, a.replicas.clone());
            }
            if by_partition.len() != t.assignments.len() || by_partition.keys().copied().ne(0..n) {
                return Err(ApiError::new(
                    errors::INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "the assignment must name partitions 0 to {} once each",
                        n - 1
                    ),
                ));
            }
            let assignment: Vec<Vec<BrokerId>> = by_partition.into_values().collect();
            self.check_assignment(&assignment, 0, None)?;
            let rf = assignment[0].len();
            return Ok(NewTopic {
                partitions: n,
                replication_factor: rf,
                assignment,
                overrides,
            });
        }
        let partitions = if t.num_partitions == -1 {
            self.cfg.default_partitions
        } else {
            t.num_partitions
        };
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(bad_partitions(partitions));
        }
        let rf = if t.replication_factor == -1 {
            self.cfg.default_replication_factor
        } else {
            t.replication_factor
        };
        if rf < 1 {
            return Err(ApiError::new(
                errors::INVALID_REPLICATION_FACTOR,
                format!("replication factor {rf}; it must be at least 1, or -1 for the default"),
            ));
        }
        let rf = rf as usize;
        let assignment = self.place(existing, &t.name, 0, partitions as usize, rf)?;
        Ok(NewTopic {
            partitions,
            replication_factor: rf,
            assignment,
            overrides,
        })
    }

    pub(super) fn handle_create_topics(
        &mut self,
        request_id: RequestId,
        topics: &[CreatableTopic],
        validate_only: bool,
    ) {
        let twice = repeated(topics.iter().map(|t| t.name.clone()));
        let mut existing = self.existing_assignment();
        let mut batch = self.batch();
        let mut results = Vec::with_capacity(topics.len());
        for t in topics {
            let outcome = if twice.contains(&t.name) {
                Err(invalid_request(&format!("topic `{}`", t.name)))
            } else {
                self.check_new_topic(t, &existing)
            };
            let result = outcome.map(|new| {
                let NewTopic {
                    partitions,
                    replication_factor: rf,
                    assignment,
                    overrides,
                } = new;
                for (i, r) in assignment.iter().enumerate() {
                    existing.insert((t.name.clone(), i as i32), r.clone());
                }
                let created = |topic_id| CreatedTopic {
                    topic_id,
                    partitions,
                    replication_factor: rf as i16,
                };
                if validate_only {
                    return created(TopicId(0));
                }
                let topic_id = self.topic_id_for(batch.next_offset, &batch.ids);
                batch.ids.insert(topic_id);
                batch.push(MetadataRecord::Topic {
                    name: t.name.clone(),
                    topic_id,
                });
                for (key, value) in overrides {
                    batch.push(MetadataRecord::Config {
                        resource: ConfigResource::Topic(t.name.clone()),
                        key,
                        value: Some(value),
                    });
                }
                batch.partitions(topic_id, 0, assignment);
                tracing::info!(topic = %t.name, %topic_id, partitions, rf, "creating a topic");
                created(topic_id)
            });
            results.push(CreateTopicResult {
                name: t.name.clone(),
                result,
            });
        }
        self.propose(batch.records, Some(request_id));
        self.respond(request_id, ControllerResponse::CreateTopics(results));
    }

    pub(super) fn handle_delete_topics(&mut self, request_id: RequestId, topics: &[TopicRef]) {
        let found: Vec<Result<(String, TopicId), ApiError>> = topics
            .iter()
            .map(|t| {
                let topic = match t {
                    TopicRef::Name(n) => self.latest.topic(n).ok_or_else(|| {
                        ApiError::new(
                            errors::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("no topic `{n}`"),
                        )
                    }),
                    TopicRef::Id(id) => self.latest.topic_by_id(*id).ok_or_else(|| {
                        ApiError::new(errors::UNKNOWN_TOPIC_ID, format!("no topic has id {id}"))
                    }),
                };
                topic.map(|t| (t.name.clone(), t.id))
            })
            .collect();
        let twice = repeated(
            found
                .iter()
                .filter_map(|f| f.as_ref().ok().map(|(_, id)| *id)),
        );
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(topics.len());
        for (t, found) in topics.iter().zip(found) {
            results.push(match found {
                Err(e) => {
                    let (name, topic_id) = match t {
                        TopicRef::Name(n) => (Some(n.clone()), None),
                        TopicRef::Id(id) => (None, Some(*id)),
                    };
                    DeleteTopicResult {
                        name,
                        topic_id,
                        result: Err(e),
                    }
                }
                Ok((name, id)) => {
                    let result = if twice.contains(&id) {
                        Err(invalid_request(&format!("topic `{name}`")))
                    } else if is_internal(&name) {
                        Err(ApiError::new(
                            errors::INVALID_TOPIC_EXCEPTION,
                            format!("`{name}` is internal: it holds every group's offsets"),
                        ))
                    } else {
                        tracing::info!(topic = %name, topic_id = %id, "deleting a topic");
                        records.push(MetadataRecord::RemoveTopic { topic_id: id });
                        Ok(())
                    };
                    DeleteTopicResult {
                        name: Some(name),
                        topic_id: Some(id),
                        result,
                    }
                }
            });
        }
        self.propose(records, Some(request_id));
        self.respond(request_id, ControllerResponse::DeleteTopics(results));
    }

    /// One topic of a CreatePartitions: the new partitions' replica sets, or why not.
    fn check_new_partitions(
        &self,
        t: &PartitionsIncrease,
        existing: &ExistingAssignment,
    ) -> Result<(TopicId, i32, Vec<Vec<BrokerId>>), ApiError> {
        let Some(topic) = self.latest.topic(&t.name) else {
            return Err(ApiError::new(
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic `{}`", t.name),
            ));
        };
        if topic.is_internal() {
            return Err(ApiError::new(
                errors::INVALID_TOPIC_EXCEPTION,
                format!(
                    "`{}` is internal: its partition count places every group",
                    t.name
                ),
            ));
        }
        let have = topic.partitions.len() as i32;
        if t.count <= have || t.count > MAX_PARTITIONS {
            return Err(ApiError::new(
                errors::INVALID_PARTITIONS,
                format!(
                    "topic `{}` has {have} partitions; the new count must be more, and at most {MAX_PARTITIONS}",
                    t.name
                ),
            ));
        }
        let new = (t.count - have) as usize;
        let rf = topic.replication_factor();
        let assignment = match &t.assignments {
            Some(a) => {
                if a.len() != new {
                    return Err(ApiError::new(
                        errors::INVALID_REPLICA_ASSIGNMENT,
                        format!(
                            "{new} partitions are added but the assignment names {}",
                            a.len()
                        ),
                    ));
                }
                self.check_assignment(a, have, Some(rf))?;
                a.clone()
            }
            None => self.place(existing, &t.name, have, new, rf)?,
        };
        Ok((topic.id, have, assignment))
    }

    pub(super) fn handle_create_partitions(
        &mut self,
        request_id: RequestId,
        topics: &[PartitionsIncrease],
        validate_only: bool,
    ) {
        let twice = repeated(topics.iter().map(|t| t.name.clone()));
        let mut existing = self.existing_assignment();
        let mut batch = self.batch();
        let mut results = Vec::with_capacity(topics.len());
        for t in topics {
            let outcome = if twice.contains(&t.name) {
                Err(invalid_request(&format!("topic `{}`", t.name)))
            } else {
                self.check_new_partitions(t, &existing)
            };
            let result = outcome.map(|(topic_id, have, assignment)| {
                for (i, r) in assignment.iter().enumerate() {
                    existing.insert((t.name.clone(), have + i as i32), r.clone());
                }
                if !validate_only {
                    tracing::info!(topic = %t.name, from = have, to = t.count, "adding partitions");
                    batch.partitions(topic_id, have, assignment);
                }
            });
            results.push(CreatePartitionsResult {
                name: t.name.clone(),
                result,
            });
        }
        self.propose(batch.records, Some(request_id));
        self.respond(request_id, ControllerResponse::CreatePartitions(results));
    }
}
