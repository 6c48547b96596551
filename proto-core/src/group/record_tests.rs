//! The record format: every record reads back as written, and no bytes
//! make decoding panic.

use bytes::Bytes;
use quickcheck::{Arbitrary, Gen, QuickCheck};

use super::*;

fn opt(g: &mut Gen) -> Option<String> {
    Option::<String>::arbitrary(g)
}

impl Arbitrary for MemberRecord {
    fn arbitrary(g: &mut Gen) -> MemberRecord {
        MemberRecord {
            member_id: String::arbitrary(g),
            group_instance_id: opt(g),
            client_id: String::arbitrary(g),
            client_host: String::arbitrary(g),
            rebalance_timeout_ms: i32::arbitrary(g),
            session_timeout_ms: i32::arbitrary(g),
            subscription: Bytes::from(Vec::<u8>::arbitrary(g)),
            assignment: Bytes::from(Vec::<u8>::arbitrary(g)),
        }
    }
}

impl Arbitrary for Record {
    fn arbitrary(g: &mut Gen) -> Record {
        let group = String::arbitrary(g);
        match u8::arbitrary(g) % 4 {
            0 => Record::GroupMetadata {
                group,
                protocol_type: String::arbitrary(g),
                generation: i32::arbitrary(g),
                protocol: opt(g),
                leader: opt(g),
                current_state_timestamp_ms: Option::<i64>::arbitrary(g),
                members: Vec::arbitrary(g),
            },
            1 => Record::GroupTombstone { group },
            2 => Record::Offset {
                group,
                topic: String::arbitrary(g),
                partition: i32::arbitrary(g),
                offset: i64::arbitrary(g),
                leader_epoch: i32::arbitrary(g),
                metadata: String::arbitrary(g),
                commit_timestamp_ms: i64::arbitrary(g),
            },
            _ => Record::OffsetTombstone {
                group,
                topic: String::arbitrary(g),
                partition: i32::arbitrary(g),
            },
        }
    }
}

#[test]
fn every_record_reads_back_as_written() {
    fn prop(r: Record) -> bool {
        let (key, value) = r.encode();
        key == r.key() && Record::decode(&key, value.as_deref()) == Ok(r)
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Record) -> bool);
}

#[test]
fn garbage_decodes_to_an_error_or_a_record_never_a_panic() {
    fn prop(key: Vec<u8>, value: Option<Vec<u8>>) -> bool {
        // Whatever comes back, a record must encode to the bytes it came from.
        match Record::decode(&key, value.as_deref()) {
            Ok(r) => r.encode() == (key, value),
            Err(_) => true,
        }
    }
    QuickCheck::new()
        .tests(5000)
        .quickcheck(prop as fn(Vec<u8>, Option<Vec<u8>>) -> bool);
}

#[test]
fn mutated_records_never_panic() {
    fn prop(r: Record, at: usize, byte: u8, cut: usize) -> bool {
        let (mut key, value) = r.encode();
        let mut value = value.unwrap_or_default();
        if !value.is_empty() {
            let i = at % value.len();
            value[i] = byte;
            value.truncate(value.len() - cut % value.len());
        }
        if !key.is_empty() {
            let i = at % key.len();
            key[i] ^= byte;
        }
        let _ = Record::decode(&key, Some(&value));
        true
    }
    QuickCheck::new()
        .tests(5000)
        .quickcheck(prop as fn(Record, usize, u8, usize) -> bool);
}

#[test]
fn forged_counts_and_lengths_are_errors() {
    let key = Record::GroupTombstone {
        group: "g".to_string(),
    }
    .key();
    let mut value = vec![1];
    value.extend_from_slice(&0u32.to_be_bytes()); // protocol type ""
    value.extend_from_slice(&1i32.to_be_bytes()); // generation
    value.extend_from_slice(&[0, 0]); // no protocol, no leader
    value.extend_from_slice(&u32::MAX.to_be_bytes()); // members
    assert_eq!(
        Record::decode(&key, Some(&value)),
        Err(RecordError::Truncated)
    );
    let mut long = vec![2];
    long.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(Record::decode(&long, None), Err(RecordError::Truncated));
    assert_eq!(
        Record::decode(&[9], None),
        Err(RecordError::UnknownKeyKind(9))
    );
    assert_eq!(Record::decode(&[], None), Err(RecordError::Truncated));
    assert_eq!(
        Record::decode(&key, Some(&[7])),
        Err(RecordError::UnknownVersion(7))
    );
    let mut trailing = key.clone();
    trailing.push(0);
    assert_eq!(
        Record::decode(&trailing, None),
        Err(RecordError::TrailingBytes(1))
    );
}

#[test]
fn a_group_value_v1_still_decodes_and_reads_back_as_written() {
    let empty_group = |current_state_timestamp_ms| Record::GroupMetadata {
        group: "g".to_string(),
        protocol_type: "consumer".to_string(),
        generation: 3,
        protocol: None,
        leader: None,
        current_state_timestamp_ms,
        members: Vec::new(),
    };
    let key = empty_group(None).key();
    // As a coordinator before value v2 wrote an empty group.
    let mut v1 = vec![1];
    v1.extend_from_slice(&8u32.to_be_bytes());
    v1.extend_from_slice(b"consumer");
    v1.extend_from_slice(&3i32.to_be_bytes());
    v1.extend_from_slice(&[0, 0]); // no protocol, no leader
    let members = 0u32.to_be_bytes();
    let mut v2 = v1.clone();
    v1.extend_from_slice(&members);
    assert_eq!(Record::decode(&key, Some(&v1)), Ok(empty_group(None)));
    assert_eq!(empty_group(None).encode(), (key.clone(), Some(v1)));

    // v2 carries the state timestamp after the leader.
    v2[0] = 2;
    v2.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    v2.extend_from_slice(&members);
    let timed = empty_group(Some(1_700_000_000_000));
    assert_eq!(Record::decode(&key, Some(&v2)), Ok(timed.clone()));
    assert_eq!(timed.encode(), (key.clone(), Some(v2)));

    // Offsets stay at value v1.
    let offset = Record::Offset {
        group: "g".to_string(),
        topic: "t".to_string(),
        partition: 0,
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 5,
    };
    let (offset_key, value) = offset.encode();
    let mut value = value.expect("an offset has a value");
    assert_eq!(value[0], 1);
    value[0] = 2;
    assert_eq!(
        Record::decode(&offset_key, Some(&value)),
        Err(RecordError::UnknownVersion(2))
    );
}
