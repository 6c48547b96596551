//! Just enough of Kafka's consumer protocol to know what a "consumer" group
//! subscribes to: OffsetDelete refuses subscribed topics, and retention
//! expires offsets of unsubscribed topics in stable groups.

use std::collections::BTreeSet;

/// The topics of a consumer subscription (`ConsumerProtocolSubscription`):
/// version i16, then topics as i32 count and i16-length strings. Every
/// version starts with version 0's layout, and whatever follows the topics
/// (user data, owned partitions, rack) is ignored. `None` if the bytes are not
/// a subscription: the coordinator then does not know the topics, as Kafka.
pub(super) fn subscription_topics(metadata: &[u8]) -> Option<BTreeSet<String>> {
    let mut buf = metadata;
    let version = i16::from_be_bytes(take::<2>(&mut buf)?);
    if version < 0 {
        return None;
    }
    let count = i32::from_be_bytes(take::<4>(&mut buf)?);
    if count < 0 {
        return None;
    }
    let mut topics = BTreeSet::new();
    for _ in 0..count {
        let len = usize::try_from(i16::from_be_bytes(take::<2>(&mut buf)?)).ok()?;
        if buf.len() < len {
            return None;
        }
        let (name, rest) = buf.split_at(len);
        buf = rest;
        topics.insert(std::str::from_utf8(name).ok()?.to_string());
    }
    Some(topics)
}

fn take<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
    if buf.len() < N {
        return None;
    }
    let (head, rest) = buf.split_at(N);
    *buf = rest;
    let mut a = [0u8; N];
    a.copy_from_slice(head);
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(version: i16, topics: &[&str], tail: &[u8]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for t in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        b.extend_from_slice(tail);
        b
    }

    #[test]
    fn reads_topics_of_any_version_and_ignores_the_rest() {
        let b = subscription(3, &["b", "a"], &[0xff, 0xff, 0xff, 0xff, 1, 2]);
        let topics = subscription_topics(&b).expect("a subscription");
        assert_eq!(topics.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn garbage_is_not_a_subscription() {
        assert_eq!(subscription_topics(&[]), None);
        assert_eq!(subscription_topics(&subscription(-1, &["a"], &[])), None);
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(subscription_topics(&huge), None);
        let mut cut = subscription(0, &["topic"], &[]);
        cut.pop();
        assert_eq!(subscription_topics(&cut), None);
    }
}
