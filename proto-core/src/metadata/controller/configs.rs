//! AlterConfigs and IncrementalAlterConfigs of topic configs, with the
//! single-node broker's rules: only topics' configs change (INVALID_REQUEST
//! otherwise), an unknown topic is UNKNOWN_TOPIC_OR_PARTITION, and a name or
//! value the topic does not accept is INVALID_CONFIG. The log holds only
//! overrides, so a reset is a `Config` record without a value.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    AlterConfigsResource, AlterConfigsResult, Controller, ControllerResponse,
    IncrementalAlterConfigsResource,
};
use crate::metadata::config::{is_topic_config, validate_topic_config};
use crate::metadata::errors::{self, ApiError};
use crate::metadata::record::{ConfigResource, MetadataRecord};
use crate::metadata::types::RequestId;

/// Kafka's topic resource type.
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's broker resource type.
pub const RESOURCE_BROKER: i8 = 4;

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

type Overrides = BTreeMap<String, String>;

fn reset(config: &mut Overrides, name: &str) -> Result<(), String> {
    if !is_topic_config(name) {
        return Err(format!("unknown or unsupported topic config `{name}`"));
    }
    config.remove(name);
    Ok(())
}

fn set(config: &mut Overrides, name: &str, value: &str) -> Result<(), String> {
    let v = validate_topic_config(name, value)?;
    config.insert(name.to_string(), v);
    Ok(())
}

impl Controller {
    /// The records that turn topic `name`'s overrides into what `edit` makes
    /// of them, or why not.
    fn change_topic_config(
        &self,
        resource_type: i8,
        name: &str,
        edit: impl FnOnce(&mut Overrides) -> Result<(), String>,
    ) -> Result<Vec<MetadataRecord>, ApiError> {
        if resource_type != RESOURCE_TOPIC {
            return Err(ApiError::new(
                errors::INVALID_REQUEST,
                "only topic configs can be changed",
            ));
        }
        if self.latest.topic(name).is_none() {
            return Err(ApiError::new(
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no topic `{name}`"),
            ));
        }
        let before = self.latest.topic_overrides(name);
        let mut after = before.clone();
        edit(&mut after).map_err(|e| ApiError::new(errors::INVALID_CONFIG, e))?;
        let resource = ConfigResource::Topic(name.to_string());
        let removed =
            before
                .keys()
                .filter(|k| !after.contains_key(*k))
                .map(|k| MetadataRecord::Config {
                    resource: resource.clone(),
                    key: k.clone(),
                    value: None,
                });
        let changed = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, v)| MetadataRecord::Config {
                resource: resource.clone(),
                key: k.clone(),
                value: Some(v.clone()),
            });
        Ok(removed.chain(changed).collect())
    }

    /// Runs `change` on each resource, refusing repeated ones, and proposes
    /// the records of all that succeed as one batch.
    fn alter_each<R>(
        &mut self,
        request_id: RequestId,
        resources: &[R],
        key: impl Fn(&R) -> (i8, &str),
        change: impl Fn(&Controller, &R) -> Result<Vec<MetadataRecord>, ApiError>,
        validate_only: bool,
    ) -> Vec<AlterConfigsResult> {
        let mut seen = BTreeSet::new();
        let twice: BTreeSet<(i8, String)> = resources
            .iter()
            .map(|r| {
                let (t, n) = key(r);
                (t, n.to_string())
            })
            .filter(|k| !seen.insert(k.clone()))
            .collect();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(resources.len());
        for r in resources {
            let (resource_type, resource_name) = key(r);
            let result = if twice.contains(&(resource_type, resource_name.to_string())) {
                Err(ApiError::new(
                    errors::INVALID_REQUEST,
                    format!("resource `{resource_name}` is named more than once in the request"),
                ))
            } else {
                change(self, r).map(|rs| {
                    if !validate_only {
                        records.extend(rs);
                    }
                })
            };
            results.push(AlterConfigsResult {
                resource_type,
                resource_name: resource_name.to_string(),
                result,
            });
        }
        self.propose(records, Some(request_id));
        results
    }

    pub(super) fn handle_alter_configs(
        &mut self,
        request_id: RequestId,
        resources: &[AlterConfigsResource],
        validate_only: bool,
    ) {
        let results = self.alter_each(
            request_id,
            resources,
            |r| (r.resource_type, r.resource_name.as_str()),
            |c, r| {
                c.change_topic_config(r.resource_type, &r.resource_name, |config| {
                    // AlterConfigs replaces the whole set: unnamed configs
                    // revert to their defaults.
                    config.clear();
                    for (name, value) in &r.configs {
                        match value {
                            Some(v) => set(config, name, v)?,
                            None => reset(config, name)?,
                        }
                    }
                    Ok(())
                })
            },
            validate_only,
        );
        self.respond(request_id, ControllerResponse::AlterConfigs(results));
    }

    pub(super) fn handle_incremental_alter_configs(
        &mut self,
        request_id: RequestId,
        resources: &[IncrementalAlterConfigsResource],
        validate_only: bool,
    ) {
        let results = self.alter_each(
            request_id,
            resources,
            |r| (r.resource_type, r.resource_name.as_str()),
            |c, r| {
                c.change_topic_config(r.resource_type, &r.resource_name, |config| {
                    for op in &r.ops {
                        match (op.op, &op.value) {
                            (OP_SET, Some(v)) => set(config, &op.name, v)?,
                            (OP_DELETE, _) => reset(config, &op.name)?,
                            (OP_SET, None) => return Err(format!("{}: SET needs a value", op.name)),
                            (other, _) => {
                                return Err(format!(
                                    "{}: operation {other} (APPEND/SUBTRACT) applies to list configs, which Chronik does not have",
                                    op.name
                                ))
                            }
                        }
                    }
                    Ok(())
                })
            },
            validate_only,
        );
        self.respond(
            request_id,
            ControllerResponse::IncrementalAlterConfigs(results),
        );
    }
}
