//! The image: what each record does, and that a record that does not fit is
//! skipped whole (only the offset moves).

use super::*;
use crate::multiraft::GroupId;

fn register(id: i32, incarnation: u128) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        broker_id: BrokerId(id),
        incarnation_id: IncarnationId(incarnation),
        kafka_host: "127.0.0.1".into(),
        kafka_port: 9092,
        raft_addr: "127.0.0.1:9093".into(),
        rack: None,
    }
}

fn topic(name: &str, id: u128) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id: TopicId(id),
    }
}

fn partition(id: u128, p: i32, replicas: &[i32], group: u64) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id: TopicId(id),
        partition: p,
        replicas: replicas.iter().copied().map(BrokerId).collect(),
        raft_group: GroupId(group),
    }
}

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().copied().map(BrokerId).collect()
}

/// Applies `r` expecting an error, and checks nothing but the offset moved.
fn refused(image: &mut MetadataImage, r: MetadataRecord) -> ApplyError {
    let mut before = image.clone();
    let e = image.apply(&r).expect_err("the record must not apply");
    // The same image with the offset moved on: apply a record that fails the
    // same way to the copy.
    let _ = before.apply(&r);
    assert_eq!(&before, image);
    assert_eq!(image.next_offset(), before.next_offset());
    e
}

#[test]
fn a_registration_starts_fenced_with_its_offset_as_epoch() {
    let mut image = MetadataImage::new();
    image.apply(&register(1, 10)).unwrap();
    image.apply(&register(2, 20)).unwrap();
    let b2 = image.broker(BrokerId(2)).unwrap();
    assert_eq!(b2.epoch, BrokerEpoch(1));
    assert!(b2.fenced);
    assert!(image.usable_brokers().is_empty());
    image
        .apply(&MetadataRecord::UnfenceBroker {
            broker_id: BrokerId(2),
            epoch: BrokerEpoch(1),
        })
        .unwrap();
    assert!(image.is_usable(BrokerId(2)));
    assert_eq!(image.usable_brokers().len(), 1);

    // A new incarnation replaces the registration, fenced, at a new epoch:
    // records about the old one are stale.
    image.apply(&register(2, 21)).unwrap();
    assert!(!image.is_usable(BrokerId(2)));
    let e = refused(
        &mut image,
        MetadataRecord::UnfenceBroker {
            broker_id: BrokerId(2),
            epoch: BrokerEpoch(1),
        },
    );
    assert!(matches!(e, ApplyError::StaleBrokerEpoch { .. }));
    let e = refused(
        &mut image,
        MetadataRecord::FenceBroker {
            broker_id: BrokerId(9),
            epoch: BrokerEpoch(0),
        },
    );
    assert_eq!(e, ApplyError::UnknownBroker(BrokerId(9)));
    image
        .apply(&MetadataRecord::UnregisterBroker {
            broker_id: BrokerId(1),
            epoch: BrokerEpoch(0),
        })
        .unwrap();
    assert!(image.broker(BrokerId(1)).is_none());
    assert!(matches!(
        refused(&mut image, register(-1, 1)),
        ApplyError::InvalidBrokerId(_)
    ));
}

#[test]
fn partitions_need_their_topic_in_order_with_fresh_groups() {
    let mut image = MetadataImage::new();
    let e = refused(&mut image, partition(5, 0, &[1], 1));
    assert_eq!(e, ApplyError::UnknownTopicId(TopicId(5)));
    assert_eq!(image.next_offset(), MetadataOffset(1));

    image.apply(&topic("orders", 5)).unwrap();
    assert!(matches!(
        refused(&mut image, topic("orders", 6)),
        ApplyError::TopicNameTaken(_)
    ));
    assert!(matches!(
        refused(&mut image, topic("other", 5)),
        ApplyError::TopicIdTaken(_)
    ));
    assert!(matches!(
        refused(&mut image, topic("zero", 0)),
        ApplyError::TopicIdTaken(_)
    ));
    assert!(matches!(
        refused(&mut image, partition(5, 1, &[1], 1)),
        ApplyError::PartitionOutOfOrder { expected: 0, .. }
    ));
    assert!(matches!(
        refused(&mut image, partition(5, 0, &[1, 1], 1)),
        ApplyError::InvalidReplicas(_)
    ));
    assert!(matches!(
        refused(&mut image, partition(5, 0, &[], 1)),
        ApplyError::InvalidReplicas(_)
    ));
    assert!(matches!(
        refused(&mut image, partition(5, 0, &[1], 0)),
        ApplyError::RaftGroupReused { .. }
    ));
    image.apply(&partition(5, 0, &[1, 2], 1)).unwrap();
    image.apply(&partition(5, 1, &[2, 3], 4)).unwrap();
    assert!(matches!(
        refused(&mut image, partition(5, 2, &[1], 3)),
        ApplyError::RaftGroupReused { .. }
    ));
    assert_eq!(image.next_raft_group(), GroupId(5));
    let t = image.topic("orders").unwrap();
    assert_eq!(t.partitions.len(), 2);
    assert_eq!(t.replication_factor(), 2);
    let p1 = image.partition(TopicId(5), 1).unwrap();
    assert_eq!(p1.isr, ids(&[2, 3]));
    assert_eq!(p1.leader, None);
    assert_eq!(image.topic_by_id(TopicId(5)).unwrap().name, "orders");
    assert!(image.partition(TopicId(5), -1).is_none());
}

#[test]
fn leadership_moves_forward_only() {
    let mut image = MetadataImage::new();
    image.apply(&topic("t", 1)).unwrap();
    image.apply(&partition(1, 0, &[1, 2, 3], 1)).unwrap();
    let change =
        |leader: Option<i32>, epoch: i32, isr: Option<&[i32]>| MetadataRecord::PartitionChange {
            topic_id: TopicId(1),
            partition: 0,
            replicas: None,
            leader: leader.map(BrokerId),
            leader_epoch: LeaderEpoch(epoch),
            isr: isr.map(ids),
        };
    image.apply(&change(Some(2), 3, Some(&[2, 3]))).unwrap();
    let p = image.partition(TopicId(1), 0).unwrap();
    assert_eq!(
        (p.leader, p.leader_epoch),
        (Some(BrokerId(2)), LeaderEpoch(3))
    );
    assert_eq!(p.isr, ids(&[2, 3]));
    assert!(matches!(
        refused(&mut image, change(Some(1), 2, None)),
        ApplyError::FencedLeaderEpoch { .. }
    ));
    assert!(matches!(
        refused(&mut image, change(Some(3), 3, None)),
        ApplyError::FencedLeaderEpoch { .. }
    ));
    assert!(matches!(
        refused(&mut image, change(Some(2), 3, Some(&[2, 4]))),
        ApplyError::InvalidReplicas(_)
    ));
    assert!(matches!(
        refused(&mut image, change(Some(1), 4, Some(&[2, 3]))),
        ApplyError::InvalidReplicas(_)
    ));
    // Shrinking the replica set below the ISR needs the ISR changed too.
    let shrink = |isr: Option<&[i32]>| MetadataRecord::PartitionChange {
        topic_id: TopicId(1),
        partition: 0,
        replicas: Some(ids(&[2])),
        leader: Some(BrokerId(2)),
        leader_epoch: LeaderEpoch(3),
        isr: isr.map(ids),
    };
    assert!(matches!(
        refused(&mut image, shrink(None)),
        ApplyError::InvalidReplicas(_)
    ));
    image.apply(&shrink(Some(&[2]))).unwrap();
    assert_eq!(image.partition(TopicId(1), 0).unwrap().replicas, ids(&[2]));
    assert!(matches!(
        refused(
            &mut image,
            MetadataRecord::PartitionChange {
                topic_id: TopicId(1),
                partition: 7,
                replicas: None,
                leader: None,
                leader_epoch: LeaderEpoch(9),
                isr: None,
            }
        ),
        ApplyError::UnknownPartition { .. }
    ));
}

#[test]
fn configs_are_overrides_that_go_with_their_topic() {
    let mut image = MetadataImage::new();
    let set = |name: &str, key: &str, value: Option<&str>| MetadataRecord::Config {
        resource: ConfigResource::Topic(name.into()),
        key: key.into(),
        value: value.map(String::from),
    };
    assert!(matches!(
        refused(&mut image, set("t", "retention.ms", Some("5"))),
        ApplyError::UnknownTopic(_)
    ));
    image.apply(&topic("t", 1)).unwrap();
    image.apply(&set("t", "retention.ms", Some("5"))).unwrap();
    assert!(matches!(
        refused(&mut image, set("t", "retention.ms", Some("soon"))),
        ApplyError::InvalidConfig(_)
    ));
    assert!(matches!(
        refused(&mut image, set("t", "no.such", None)),
        ApplyError::InvalidConfig(_)
    ));
    let defaults = TopicConfigDefaults::default();
    let configs = image.topic_configs("t", &defaults).unwrap();
    let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(
        (retention.value.as_str(), retention.source),
        ("5", ConfigSource::Topic)
    );
    assert!(image.topic_configs("nope", &defaults).is_none());

    // Deleting the topic drops its overrides: a new topic of the name starts clean.
    image
        .apply(&MetadataRecord::RemoveTopic {
            topic_id: TopicId(1),
        })
        .unwrap();
    assert!(image.topic("t").is_none());
    image.apply(&topic("t", 2)).unwrap();
    assert!(image.topic_overrides("t").is_empty());
    image.apply(&set("t", "segment.ms", Some("9"))).unwrap();
    image.apply(&set("t", "segment.ms", None)).unwrap();
    assert!(image.topic_overrides("t").is_empty());

    // Broker configs are kept as given.
    image
        .apply(&MetadataRecord::Config {
            resource: ConfigResource::Broker(BrokerId(1)),
            key: "anything".into(),
            value: Some("x".into()),
        })
        .unwrap();
    assert_eq!(image.broker_configs(BrokerId(1)).len(), 1);
    assert!(matches!(
        refused(
            &mut image,
            MetadataRecord::RemoveTopic {
                topic_id: TopicId(1)
            }
        ),
        ApplyError::UnknownTopicId(_)
    ));
}

#[test]
fn producer_id_blocks_only_move_forward() {
    let mut image = MetadataImage::new();
    let block = |next| MetadataRecord::ProducerIdsBlock {
        broker_id: BrokerId(1),
        next_producer_id: next,
    };
    image.apply(&block(1000)).unwrap();
    assert_eq!(image.next_producer_id(), 1000);
    assert!(matches!(
        refused(&mut image, block(1000)),
        ApplyError::ProducerIdsBackwards { .. }
    ));
    assert!(matches!(
        refused(&mut image, block(10)),
        ApplyError::ProducerIdsBackwards { .. }
    ));
}
