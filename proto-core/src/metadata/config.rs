//! Topic configs: the names Chronik understands, the rule each value must
//! keep (the single-node broker's rules, `broker/src/node/topics.rs`), and how
//! a topic's effective configs are resolved from its overrides and the
//! defaults.
//!
//! The metadata log holds only overrides (`Config` records); the defaults
//! are each broker's static configuration, as in Kafka, so they are an
//! argument of the queries rather than part of the image.

use std::collections::BTreeMap;

/// What a value must be.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// An integer no smaller than this.
    AtLeast(i64),
    /// Exactly this word.
    Only(&'static str),
}

/// The topic configs Chronik understands: Kafka's name, Kafka's default, the rule.
const TOPIC_CONFIGS: &[(&str, &str, Rule)] = &[
    ("cleanup.policy", "delete", Rule::Only("delete")),
    ("max.message.bytes", "1048588", Rule::AtLeast(0)),
    ("min.insync.replicas", "1", Rule::AtLeast(1)),
    ("retention.bytes", "-1", Rule::AtLeast(-1)),
    ("retention.ms", "604800000", Rule::AtLeast(-1)),
    ("segment.bytes", "1073741824", Rule::AtLeast(14)),
    ("segment.ms", "604800000", Rule::AtLeast(1)),
];

fn rule(name: &str) -> Option<Rule> {
    TOPIC_CONFIGS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, r)| *r)
}

/// Whether `name` is a topic config Chronik understands.
pub fn is_topic_config(name: &str) -> bool {
    rule(name).is_some()
}

/// The value to store for `name = value`, in canonical form (integers
/// without spaces or a `+`), or why it is refused.
pub fn validate_topic_config(name: &str, value: &str) -> Result<String, String> {
    match rule(name) {
        None => Err(format!("unknown or unsupported topic config `{name}`")),
        Some(Rule::Only(word)) => {
            if value.trim() == word {
                Ok(word.to_string())
            } else {
                Err(format!("{name}: only `{word}` is supported, not `{value}`"))
            }
        }
        Some(Rule::AtLeast(min)) => {
            let v: i64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{name}: `{value}` is not an integer"))?;
            if v < min {
                return Err(format!("{name}: {v} is below the minimum {min}"));
            }
            Ok(v.to_string())
        }
    }
}

/// The value every topic has unless it overrides it: Kafka's defaults, with
/// whatever the broker's own configuration changes (its retention and
/// segment size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfigDefaults {
    values: BTreeMap<&'static str, String>,
}

impl Default for TopicConfigDefaults {
    fn default() -> TopicConfigDefaults {
        TopicConfigDefaults {
            values: TOPIC_CONFIGS
                .iter()
                .map(|(n, d, _)| (*n, d.to_string()))
                .collect(),
        }
    }
}

impl TopicConfigDefaults {
    /// These defaults with `name` defaulting to `value`, which must keep its rule.
    pub fn with(mut self, name: &str, value: &str) -> Result<TopicConfigDefaults, String> {
        let canonical = validate_topic_config(name, value)?;
        if let Some((key, _, _)) = TOPIC_CONFIGS.iter().find(|(n, _, _)| *n == name) {
            self.values.insert(key, canonical);
        }
        Ok(self)
    }

    /// The default of `name`, if Chronik knows it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every default, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.values.iter().map(|(n, v)| (*n, v.as_str()))
    }
}

/// Where an effective config value comes from (DescribeConfigs' `config_source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigSource {
    /// An override of this topic (Kafka's DYNAMIC_TOPIC_CONFIG, 1).
    Topic,
    /// The broker's static default (Kafka's DEFAULT_CONFIG, 5).
    Default,
}

impl ConfigSource {
    /// Kafka's DescribeConfigs code for the source.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::Default => 5,
        }
    }
}

/// One effective config of a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Kafka's name.
    pub name: String,
    /// The value in effect.
    pub value: String,
    /// Whether the topic overrides it.
    pub source: ConfigSource,
}

/// The effective configs for a topic with `overrides`, by name: every config
/// Chronik knows, overridden or default.
pub(crate) fn resolve(
    overrides: Option<&BTreeMap<String, String>>,
    defaults: &TopicConfigDefaults,
) -> Vec<ConfigEntry> {
    defaults
        .iter()
        .map(
            |(name, default)| match overrides.and_then(|o| o.get(name)) {
                Some(v) => ConfigEntry {
                    name: name.to_string(),
                    value: v.clone(),
                    source: ConfigSource::Topic,
                },
                None => ConfigEntry {
                    name: name.to_string(),
                    value: default.to_string(),
                    source: ConfigSource::Default,
                },
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_the_single_node_rules() {
        assert_eq!(validate_topic_config("retention.ms", " 5 ").unwrap(), "5");
        assert!(validate_topic_config("retention.ms", "soon").is_err());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("segment.bytes", "13").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact").is_err());
        assert_eq!(
            validate_topic_config("cleanup.policy", "delete").unwrap(),
            "delete"
        );
        assert!(validate_topic_config("no.such.config", "1").is_err());
    }

    #[test]
    fn overrides_win_over_defaults() {
        let defaults = TopicConfigDefaults::default()
            .with("retention.ms", "1000")
            .unwrap();
        assert!(defaults.clone().with("retention.ms", "x").is_err());
        let overrides: BTreeMap<String, String> =
            [("segment.ms".to_string(), "7".to_string())].into();
        let entries = resolve(Some(&overrides), &defaults);
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(get("retention.ms").value, "1000");
        assert_eq!(get("retention.ms").source, ConfigSource::Default);
        assert_eq!(get("segment.ms").value, "7");
        assert_eq!(get("segment.ms").source, ConfigSource::Topic);
        assert_eq!(entries.len(), 7);
    }
}
