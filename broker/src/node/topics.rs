//! The topic table: names, ids, partition counts and per-topic configs, with
//! the validation Kafka applies to each.
//!
//! On one node the table is saved whole through [`LogStore::save_topics`]
//! whenever it changes; the cluster moves it into the metadata Raft group.
//!
//! [`LogStore::save_topics`]: crate::store::LogStore::save_topics

use std::collections::BTreeMap;

use crate::store::LogSettings;

/// The topic configs Chronik understands, with Kafka's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct TopicConfig {
    /// `retention.ms` (-1: forever).
    pub retention_ms: i64,
    /// `retention.bytes` (-1: unlimited).
    pub retention_bytes: i64,
    /// `segment.bytes`.
    pub segment_bytes: i64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `max.message.bytes`.
    pub max_message_bytes: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i64,
}

impl TopicConfig {
    /// Kafka's defaults, with the node's retention and segment size.
    pub fn defaults(retention_ms: i64, retention_bytes: i64, segment_bytes: i64) -> TopicConfig {
        TopicConfig {
            retention_ms,
            retention_bytes,
            segment_bytes,
            segment_ms: 604_800_000,
            max_message_bytes: 1_048_588,
            min_insync_replicas: 1,
        }
    }

    /// Every config with its current value, in Kafka's spelling.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            ("cleanup.policy", "delete".to_string()),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("retention.ms", self.retention_ms.to_string()),
            ("segment.bytes", self.segment_bytes.to_string()),
            ("segment.ms", self.segment_ms.to_string()),
        ]
    }

    /// Sets `name` to `value`, or explains why not.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let number = |min: i64| -> Result<i64, String> {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{name}: `{value}` is not an integer"))?;
            if v < min {
                return Err(format!("{name}: {v} is below the minimum {min}"));
            }
            Ok(v)
        };
        match name {
            "cleanup.policy" => {
                if value.trim() != "delete" {
                    return Err(format!(
                        "cleanup.policy: only `delete` is supported, not `{value}`"
                    ));
                }
            }
            "retention.ms" => self.retention_ms = number(-1)?,
            "retention.bytes" => self.retention_bytes = number(-1)?,
            "segment.bytes" => self.segment_bytes = number(14)?,
            "segment.ms" => self.segment_ms = number(1)?,
            "max.message.bytes" => self.max_message_bytes = number(0)?,
            "min.insync.replicas" => self.min_insync_replicas = number(1)?,
            _ => return Err(format!("unknown or unsupported topic config `{name}`")),
        }
        Ok(())
    }

    /// Resets `name` to the default in `defaults`.
    pub fn reset(&mut self, name: &str, defaults: &TopicConfig) -> Result<(), String> {
        match name {
            "cleanup.policy" => {}
            "retention.ms" => self.retention_ms = defaults.retention_ms,
            "retention.bytes" => self.retention_bytes = defaults.retention_bytes,
            "segment.bytes" => self.segment_bytes = defaults.segment_bytes,
            "segment.ms" => self.segment_ms = defaults.segment_ms,
            "max.message.bytes" => self.max_message_bytes = defaults.max_message_bytes,
            "min.insync.replicas" => self.min_insync_replicas = defaults.min_insync_replicas,
            _ => return Err(format!("unknown or unsupported topic config `{name}`")),
        }
        Ok(())
    }

    /// The storage settings these configs give.
    pub fn log_settings(&self) -> LogSettings {
        let positive = |v: i64| (v >= 0).then_some(v as u64);
        LogSettings {
            segment_bytes: self.segment_bytes.max(14) as u64,
            segment_ms: positive(self.segment_ms),
            retention_bytes: positive(self.retention_bytes),
            retention_ms: positive(self.retention_ms),
            max_batch_bytes: self.max_message_bytes.clamp(0, i64::from(i32::MAX)) as u32,
        }
    }
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Topic {
    /// The topic id (a UUID) newer clients address it by.
    pub id: u128,
    /// Partition count.
    pub partitions: i32,
    /// The Raft group of each partition, by partition number.
    pub groups: Vec<u64>,
    /// Its configs.
    pub config: TopicConfig,
}

/// Every topic, and the counters that keep ids unique.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct TopicTable {
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
    /// The next Raft group id to hand out.
    pub next_group: u64,
    /// The first producer id no process has handed out yet: a node reserves
    /// ids in blocks by moving it forward and saving the table before it
    /// answers with any id of the block.
    pub next_producer_id: i64,
}

impl TopicTable {
    /// The table as bytes for [`TopicTable::decode`].
    pub fn encode(&self) -> Vec<u8> {
        rkyv::to_bytes::<rkyv::rancor::Error>(self)
            .map(|b| b.to_vec())
            .unwrap_or_default()
    }

    /// The name of the topic with id `id` (newer requests name topics by id).
    pub fn name_of(&self, id: u128) -> Option<String> {
        self.topics
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(n, _)| n.clone())
    }

    /// Reads a table [`TopicTable::encode`] wrote, validating it first.
    pub fn decode(data: &[u8]) -> Result<TopicTable, String> {
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(data);
        rkyv::from_bytes::<TopicTable, rkyv::rancor::Error>(&aligned).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_validate_and_reset() {
        let defaults = TopicConfig::defaults(1000, -1, 1 << 20);
        let mut c = defaults.clone();
        c.set("retention.ms", "5").unwrap();
        assert_eq!(c.retention_ms, 5);
        assert!(c.set("retention.ms", "soon").is_err());
        assert!(c.set("cleanup.policy", "compact").is_err());
        assert!(c.set("no.such.config", "1").is_err());
        c.reset("retention.ms", &defaults).unwrap();
        assert_eq!(c, defaults);
    }

    #[test]
    fn the_table_round_trips() {
        let mut t = TopicTable::default();
        t.topics.insert(
            "a".into(),
            Topic {
                id: 7,
                partitions: 2,
                groups: vec![1, 2],
                config: TopicConfig::defaults(1, 2, 3),
            },
        );
        t.next_group = 3;
        assert_eq!(TopicTable::decode(&t.encode()).unwrap(), t);
        assert!(TopicTable::decode(b"garbage").is_err());
    }
}
