//! Topic names: Kafka's rules for a legal one, and the internal topics.

/// Longest legal topic name (Kafka's limit).
pub const MAX_TOPIC_NAME: usize = 249;

/// The consumer-offsets topic: internal, so it can be neither deleted nor
/// given new partitions (its partition count places every group).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Whether `name` is one of Chronik's internal topics.
pub fn is_internal(name: &str) -> bool {
    name == OFFSETS_TOPIC
}

/// Why a topic name is illegal, if it is (Kafka's rules, as the single-node
/// broker applies them).
pub fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the topic name is empty".to_string());
    }
    if name == "." || name == ".." {
        return Some(format!("`{name}` is not a legal topic name"));
    }
    if name.len() > MAX_TOPIC_NAME {
        return Some(format!(
            "the topic name is {} characters, over the limit of {MAX_TOPIC_NAME}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "the topic name contains `{c}`; only ASCII letters, digits, '.', '_' and '-' are legal"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafkas_rules() {
        assert!(invalid_topic_name("orders.v1_x-2").is_none());
        assert!(invalid_topic_name("").is_some());
        assert!(invalid_topic_name("..").is_some());
        assert!(invalid_topic_name("a/b").is_some());
        assert!(invalid_topic_name(&"x".repeat(250)).is_some());
        assert!(is_internal(OFFSETS_TOPIC));
    }
}
