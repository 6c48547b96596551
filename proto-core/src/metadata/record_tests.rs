//! The record encoding: every batch reads back as written, and no bytes make
//! decoding panic.

use quickcheck::{Arbitrary, Gen, QuickCheck};

use super::*;
use crate::multiraft::GroupId;

fn brokers(g: &mut Gen) -> Vec<BrokerId> {
    Vec::<i32>::arbitrary(g).into_iter().map(BrokerId).collect()
}

impl Arbitrary for MetadataRecord {
    fn arbitrary(g: &mut Gen) -> MetadataRecord {
        let broker_id = BrokerId(i32::arbitrary(g));
        let topic_id = TopicId(u128::arbitrary(g));
        let epoch = BrokerEpoch(u64::arbitrary(g));
        match u8::arbitrary(g) % 10 {
            0 => MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id: IncarnationId(u128::arbitrary(g)),
                kafka_host: String::arbitrary(g),
                kafka_port: u16::arbitrary(g),
                raft_addr: String::arbitrary(g),
                rack: Option::<String>::arbitrary(g),
            },
            1 => MetadataRecord::UnregisterBroker { broker_id, epoch },
            2 => MetadataRecord::FenceBroker { broker_id, epoch },
            3 => MetadataRecord::UnfenceBroker { broker_id, epoch },
            4 => MetadataRecord::Topic {
                name: String::arbitrary(g),
                topic_id,
            },
            5 => MetadataRecord::Partition {
                topic_id,
                partition: i32::arbitrary(g),
                replicas: brokers(g),
                raft_group: GroupId(u64::arbitrary(g)),
            },
            6 => MetadataRecord::PartitionChange {
                topic_id,
                partition: i32::arbitrary(g),
                replicas: bool::arbitrary(g).then(|| brokers(g)),
                leader: Option::<i32>::arbitrary(g).map(BrokerId),
                leader_epoch: LeaderEpoch(i32::arbitrary(g)),
                isr: bool::arbitrary(g).then(|| brokers(g)),
            },
            7 => MetadataRecord::RemoveTopic { topic_id },
            8 => MetadataRecord::Config {
                resource: if bool::arbitrary(g) {
                    ConfigResource::Topic(String::arbitrary(g))
                } else {
                    ConfigResource::Broker(broker_id)
                },
                key: String::arbitrary(g),
                value: Option::<String>::arbitrary(g),
            },
            _ => MetadataRecord::ProducerIdsBlock {
                broker_id,
                next_producer_id: i64::arbitrary(g),
            },
        }
    }
}

#[test]
fn every_batch_reads_back_as_written() {
    fn prop(batch: Vec<MetadataRecord>) -> bool {
        decode_batch(&encode_batch(&batch)) == Ok(batch)
    }
    QuickCheck::new()
        .tests(1000)
        .quickcheck(prop as fn(Vec<MetadataRecord>) -> bool);
}

#[test]
fn garbage_is_an_error_never_a_panic() {
    fn prop(bytes: Vec<u8>, versioned: bool) -> bool {
        let mut input = Vec::new();
        if versioned {
            input.extend_from_slice(&METADATA_FORMAT_VERSION.to_be_bytes());
        }
        input.extend_from_slice(&bytes);
        // Whatever decodes must encode back to a batch that decodes the same.
        match decode_batch(&input) {
            Ok(records) => decode_batch(&encode_batch(&records)) == Ok(records),
            Err(_) => true,
        }
    }
    QuickCheck::new()
        .tests(3000)
        .quickcheck(prop as fn(Vec<u8>, bool) -> bool);
}

#[test]
fn damaged_batches_are_refused() {
    let batch = vec![MetadataRecord::Topic {
        name: "orders".into(),
        topic_id: TopicId(7),
    }];
    let good = encode_batch(&batch);
    assert_eq!(
        decode_batch(&good[..1]),
        Err(RecordDecodeError::Truncated(1))
    );
    let mut future = good.clone();
    future[1] = 9;
    assert_eq!(
        decode_batch(&future),
        Err(RecordDecodeError::UnknownVersion(9))
    );
    assert!(matches!(
        decode_batch(&good[..good.len() - 3]),
        Err(RecordDecodeError::Invalid(_))
    ));
    // Every truncation and every flipped byte is refused or decodes to
    // something; none panics.
    for cut in 0..good.len() {
        let _ = decode_batch(&good[..cut]);
    }
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0xa5;
        let _ = decode_batch(&bad);
    }
}
