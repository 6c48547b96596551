//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions,
//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
//!
//! Every change is made durable (the topic table is saved) before it is
//! answered.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use proto_core::metadata::invalid_topic_name;
use proto_core::multiraft::GroupId;
use uuid::Uuid;

use super::groups::OFFSETS_TOPIC;
use super::topics::{Topic, TopicConfig};
use super::Node;
use crate::protocol::RequestHeader;
use crate::store::TopicPartition;

/// Config resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Config sources in DescribeConfigs.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

/// Most partitions one topic may have: each is a Raft group and a directory.
const MAX_PARTITIONS: i32 = 10_000;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

type AdminError = (ResponseError, String);

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

impl Node {
    /// Creates `name` with `partitions` partitions, durably.
    pub(super) fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> Result<u128, AdminError> {
        self.refuse_in_cluster_mode(name)?;
        self.check_new_topic(name, partitions)?;
        let id = self.next_id();
        let first = self.table.next_group.max(1);
        let groups: Vec<u64> = (0..partitions as u64).map(|i| first + i).collect();
        for (p, g) in groups.iter().enumerate() {
            let tp = TopicPartition {
                topic: name.to_string(),
                partition: p as i32,
            };
            self.store
                .create(*g, &tp, &config.log_settings())
                .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))?;
        }
        self.table.next_group = first + partitions as u64;
        self.table.topics.insert(
            name.to_string(),
            Topic {
                id,
                partitions,
                groups: groups.clone(),
                config,
            },
        );
        self.save_table()?;
        for (p, g) in groups.into_iter().enumerate() {
            let tp = TopicPartition {
                topic: name.to_string(),
                partition: p as i32,
            };
            let fresh = self.fresh();
            self.host(GroupId(g), tp, fresh)
                .map_err(|e| (ResponseError::UnknownServerError, e))?;
        }
        tracing::info!(topic = name, partitions, "created topic");
        Ok(id)
    }

    /// The single-node topic paths host a fresh one-voter Raft group over
    /// the partition's directory. On a cluster node that directory may hold
    /// a replica's log, which the fresh group would overwrite from index 1
    /// (a restarted node once auto-created a topic it had not yet learned
    /// of from the metadata log, and destroyed its replica). Cluster topics
    /// are created only by the controller, through the metadata log.
    fn refuse_in_cluster_mode(&self, name: &str) -> Result<(), AdminError> {
        if self.cluster.is_some() {
            tracing::error!(
                topic = name,
                "a cluster node refused a local topic creation"
            );
            return Err((
                ResponseError::UnknownServerError,
                format!("`{name}`: a cluster node creates topics only through the controller"),
            ));
        }
        Ok(())
    }

    fn check_new_topic(&self, name: &str, partitions: i32) -> Result<(), AdminError> {
        if let Some(why) = invalid_topic_name(name) {
            return Err((ResponseError::InvalidTopicException, why));
        }
        if self.table.topics.contains_key(name) {
            return Err((
                ResponseError::TopicAlreadyExists,
                format!("topic `{name}` already exists"),
            ));
        }
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err((
                ResponseError::InvalidPartitions,
                format!("{partitions} partitions; must be 1 to {MAX_PARTITIONS}"),
            ));
        }
        Ok(())
    }

    fn save_table(&mut self) -> Result<(), AdminError> {
        let data = self.table.encode();
        self.store
            .save_topics(&data)
            .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))
    }

    pub(super) fn create_topics(
        &mut self,
        _header: &RequestHeader,
        req: CreateTopicsRequest,
    ) -> CreateTopicsResponse {
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let partitions = if t.num_partitions == -1 {
                self.cfg.default_partitions
            } else {
                t.num_partitions
            };
            let result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(partitions)
                .with_replication_factor(1);
            let outcome = (|| {
                if !t.assignments.is_empty() {
                    let me = self.cfg.node_id;
                    if t.assignments
                        .iter()
                        .any(|a| a.broker_ids.iter().any(|b| b.0 != me))
                    {
                        return Err((
                            ResponseError::InvalidReplicaAssignment,
                            format!("this cluster has one broker, {me}"),
                        ));
                    }
                }
                if !matches!(t.replication_factor, -1 | 1) {
                    return Err((
                        ResponseError::InvalidReplicationFactor,
                        format!(
                            "replication factor {} is larger than the 1 available broker",
                            t.replication_factor
                        ),
                    ));
                }
                let mut config = self.cfg.topic_defaults.clone();
                for c in &t.configs {
                    if let Some(v) = &c.value {
                        config
                            .set(c.name.as_str(), v.as_str())
                            .map_err(|e| (ResponseError::InvalidConfig, e))?;
                    }
                }
                if req.validate_only {
                    self.check_new_topic(&name, partitions)?;
                    return Ok(0);
                }
                self.create_topic(&name, partitions, config)
            })();
            results.push(match outcome {
                Ok(id) => result.with_topic_id(Uuid::from_u128(id)),
                Err((e, msg)) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(s(msg)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            });
        }
        CreateTopicsResponse::default().with_topics(results)
    }

    pub(super) fn delete_topics(
        &mut self,
        _header: &RequestHeader,
        req: DeleteTopicsRequest,
    ) -> DeleteTopicsResponse {
        // v6 names topics in `topics` (by name or id); earlier versions in `topic_names`.
        let mut wanted: Vec<(Option<String>, Uuid)> = req
            .topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect();
        wanted.extend(
            req.topics
                .into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id)),
        );
        let responses = wanted
            .into_iter()
            .map(|(name, id)| {
                let name = name.or_else(|| self.table.name_of(id.as_u128()));
                let result = DeletableTopicResult::default().with_topic_id(id);
                let Some(name) = name else {
                    return result.with_error_code(ResponseError::UnknownTopicId.code());
                };
                let result = result.with_name(Some(TopicName(s(name.clone()))));
                match self.delete_topic(&name) {
                    Ok(id) => result.with_topic_id(Uuid::from_u128(id)),
                    Err((e, msg)) => result
                        .with_error_code(e.code())
                        .with_error_message(Some(s(msg))),
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    fn delete_topic(&mut self, name: &str) -> Result<u128, AdminError> {
        if name == OFFSETS_TOPIC {
            return Err((
                ResponseError::InvalidTopicException,
                format!("`{name}` is internal: it holds every group's offsets"),
            ));
        }
        let Some(topic) = self.table.topics.remove(name) else {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                format!("no topic `{name}`"),
            ));
        };
        self.save_table()?;
        for (p, g) in topic.groups.iter().enumerate() {
            self.unhost(GroupId(*g));
            let tp = TopicPartition {
                topic: name.to_string(),
                partition: p as i32,
            };
            if let Err(e) = self.store.delete(&tp) {
                tracing::error!(%tp, error = %e, "deleting a partition's files failed; they are orphaned");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    pub(super) fn create_partitions(
        &mut self,
        req: CreatePartitionsRequest,
    ) -> CreatePartitionsResponse {
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                let outcome = self.add_partitions(&t.name.0, t.count, req.validate_only);
                let r = CreatePartitionsTopicResult::default().with_name(t.name);
                match outcome {
                    Ok(()) => r,
                    Err((e, msg)) => r.with_error_code(e.code()).with_error_message(Some(s(msg))),
                }
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }

    fn add_partitions(
        &mut self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        self.refuse_in_cluster_mode(name)?;
        let Some(topic) = self.table.topics.get(name) else {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                format!("no topic `{name}`"),
            ));
        };
        if name == OFFSETS_TOPIC {
            return Err((
                ResponseError::InvalidTopicException,
                format!("`{name}` is internal: its partition count places every group"),
            ));
        }
        let have = topic.partitions;
        if count <= have || count > MAX_PARTITIONS {
            return Err((
                ResponseError::InvalidPartitions,
                format!("topic `{name}` has {have} partitions; the new count must be more, and at most {MAX_PARTITIONS}"),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let settings = topic.config.log_settings();
        let first = self.table.next_group.max(1);
        let new: Vec<u64> = (0..(count - have) as u64).map(|i| first + i).collect();
        for (i, g) in new.iter().enumerate() {
            let tp = TopicPartition {
                topic: name.to_string(),
                partition: have + i as i32,
            };
            self.store
                .create(*g, &tp, &settings)
                .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))?;
        }
        self.table.next_group = first + new.len() as u64;
        if let Some(t) = self.table.topics.get_mut(name) {
            t.partitions = count;
            t.groups.extend(new.iter().copied());
        }
        self.save_table()?;
        for (i, g) in new.into_iter().enumerate() {
            let tp = TopicPartition {
                topic: name.to_string(),
                partition: have + i as i32,
            };
            let fresh = self.fresh();
            self.host(GroupId(g), tp, fresh)
                .map_err(|e| (ResponseError::UnknownServerError, e))?;
        }
        Ok(())
    }

    pub(super) fn describe_configs(&self, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
        let results = req
            .resources
            .into_iter()
            .map(|r| {
                let result = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let keys: Option<Vec<String>> = r
                    .configuration_keys
                    .map(|k| k.iter().map(|k| k.to_string()).collect());
                let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.iter().any(|k| k == name));
                let defaults = &self.cfg.topic_defaults;
                let (config, read_only) = match r.resource_type {
                    RESOURCE_TOPIC => match self.table.topics.get(r.resource_name.as_str()) {
                        Some(t) => (&t.config, false),
                        None => {
                            return result
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                                .with_error_message(Some(s(format!(
                                    "no topic `{}`",
                                    r.resource_name
                                ))))
                        }
                    },
                    RESOURCE_BROKER => (defaults, true),
                    other => {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(s(format!(
                                "resource type {other} is not supported"
                            ))))
                    }
                };
                let default_values = defaults.entries();
                let configs = config
                    .entries()
                    .into_iter()
                    .filter(|(name, _)| wanted(name))
                    .map(|(name, value)| {
                        let is_default = default_values
                            .iter()
                            .any(|(n, v)| *n == name && *v == value);
                        let source = if is_default || read_only {
                            SOURCE_DEFAULT
                        } else {
                            SOURCE_TOPIC
                        };
                        DescribeConfigsResourceResult::default()
                            .with_name(s(name))
                            .with_value(Some(s(value)))
                            .with_read_only(read_only)
                            .with_config_source(source)
                    })
                    .collect();
                result.with_configs(configs)
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }

    /// Replaces a topic's configs (AlterConfigs: unnamed configs revert to
    /// their defaults) or edits them (IncrementalAlterConfigs).
    fn change_config(
        &mut self,
        resource_type: i8,
        name: &str,
        edit: impl FnOnce(&mut TopicConfig, &TopicConfig) -> Result<(), String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if resource_type != RESOURCE_TOPIC {
            return Err((
                ResponseError::InvalidRequest,
                "only topic configs can be changed".to_string(),
            ));
        }
        let defaults = self.cfg.topic_defaults.clone();
        let Some(topic) = self.table.topics.get(name) else {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                format!("no topic `{name}`"),
            ));
        };
        let mut config = topic.config.clone();
        edit(&mut config, &defaults).map_err(|e| (ResponseError::InvalidConfig, e))?;
        if name == OFFSETS_TOPIC && (config.retention_ms != -1 || config.retention_bytes != -1) {
            // Kafka compacts this topic; Chronik has no compaction yet, so
            // deleting old segments would delete groups' only offsets.
            return Err((
                ResponseError::InvalidConfig,
                format!(
                    "`{name}` keeps every record: retention.ms and retention.bytes must stay -1"
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let settings = config.log_settings();
        let partitions = topic.partitions;
        if let Some(t) = self.table.topics.get_mut(name) {
            t.config = config;
        }
        self.save_table()?;
        for p in 0..partitions {
            let tp = TopicPartition {
                topic: name.to_string(),
                partition: p,
            };
            self.store
                .configure(&tp, &settings)
                .map_err(|e| (ResponseError::KafkaStorageError, e.to_string()))?;
        }
        Ok(())
    }

    pub(super) fn alter_configs(&mut self, req: AlterConfigsRequest) -> AlterConfigsResponse {
        let validate_only = req.validate_only;
        let responses = req
            .resources
            .into_iter()
            .map(|r| {
                let configs: Vec<(String, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                let outcome = self.change_config(
                    r.resource_type,
                    r.resource_name.as_str(),
                    |config, defaults| {
                        *config = defaults.clone();
                        for (name, value) in &configs {
                            match value {
                                Some(v) => config.set(name, v)?,
                                None => config.reset(name, defaults)?,
                            }
                        }
                        Ok(())
                    },
                    validate_only,
                );
                let resp = alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name);
                match outcome {
                    Ok(()) => resp,
                    Err((e, msg)) => resp
                        .with_error_code(e.code())
                        .with_error_message(Some(s(msg))),
                }
            })
            .collect();
        AlterConfigsResponse::default().with_responses(responses)
    }

    pub(super) fn incremental_alter_configs(
        &mut self,
        req: IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let validate_only = req.validate_only;
        let responses = req
            .resources
            .into_iter()
            .map(|r| {
                let ops: Vec<(String, i8, Option<String>)> = r
                    .configs
                    .iter()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.config_operation,
                            c.value.as_ref().map(|v| v.to_string()),
                        )
                    })
                    .collect();
                let outcome = self.change_config(
                    r.resource_type,
                    r.resource_name.as_str(),
                    |config, defaults| {
                        for (name, op, value) in &ops {
                            match (*op, value) {
                                (OP_SET, Some(v)) => config.set(name, v)?,
                                (OP_DELETE, _) => config.reset(name, defaults)?,
                                (OP_SET, None) => return Err(format!("{name}: SET needs a value")),
                                (other, _) => {
                                    return Err(format!(
                                        "{name}: operation {other} (APPEND/SUBTRACT) applies to list configs, which Chronik does not have"
                                    ))
                                }
                            }
                        }
                        Ok(())
                    },
                    validate_only,
                );
                let resp = incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name);
                match outcome {
                    Ok(()) => resp,
                    Err((e, msg)) => resp.with_error_code(e.code()).with_error_message(Some(s(msg))),
                }
            })
            .collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }
}
