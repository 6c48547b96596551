//! Offset rules: who may commit, visibility after the write, fetch,
//! OffsetDelete, retention, DeleteGroups and replay.

use bytes::Bytes;

use super::test_support::*;
use super::*;

fn commit_codes(actions: &[Action]) -> Vec<i16> {
    responses(actions)
        .iter()
        .flat_map(|r| match r {
            Response::OffsetCommit(c) => c
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_standalone_commit_is_visible_once_written() {
    let mut h = Harness::new();
    let actions = h.commit("solo", "", -1, &[("t", 0, 5), ("t", 1, 7)]);
    assert!(
        commit_codes(&actions).is_empty(),
        "answered after the write"
    );
    assert!(h.fetch("solo").is_empty());
    let req = OffsetFetchRequest {
        reply: h.reply(),
        groups: vec![FetchGroup {
            group_id: "solo".to_string(),
            topics: Some(vec![FetchTopic {
                name: "t".to_string(),
                partition_indexes: vec![0, 9],
            }]),
        }],
        require_stable: true,
    };
    let fetched = responses(&h.step(Event::OffsetFetch(req.clone())));
    let [Response::OffsetFetch(f)] = fetched.as_slice() else {
        panic!("a fetch answer");
    };
    let p = &f.groups[0].topics[0].partitions;
    assert_eq!(p[0].error_code, errors::UNSTABLE_OFFSET_COMMIT);
    assert_eq!((p[1].committed_offset, p[1].error_code), (-1, errors::NONE));

    assert_eq!(commit_codes(&h.persist(&actions)), vec![errors::NONE; 2]);
    assert_eq!(
        h.fetch("solo"),
        vec![("t".to_string(), 0, 5), ("t".to_string(), 1, 7)]
    );
    assert_eq!(h.c.group_state("solo"), Some(GroupState::Empty));
}

#[test]
fn a_failed_commit_write_changes_nothing() {
    let mut h = Harness::new();
    let actions = h.commit("solo", "", -1, &[("t", 0, 5)]);
    assert_eq!(
        commit_codes(&h.fail_persist(&actions)),
        vec![errors::COORDINATOR_NOT_AVAILABLE]
    );
    assert!(h.fetch("solo").is_empty());
    assert_eq!(h.c.group_state("solo"), None);
}

#[test]
fn only_the_current_generation_commits_for_a_group_with_members() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2);
    let stale = h.commit("g", &ids[0], 0, &[("t", 0, 1)]);
    let stranger = h.commit("g", "stranger", 1, &[("t", 0, 1)]);
    let simple = h.commit("g", "", -1, &[("t", 0, 1)]);
    let unknown = h.commit("nope", &ids[0], 1, &[("t", 0, 1)]);
    for (actions, code) in [
        (stale, errors::ILLEGAL_GENERATION),
        (stranger, errors::UNKNOWN_MEMBER_ID),
        (simple, errors::UNKNOWN_MEMBER_ID),
        (unknown, errors::ILLEGAL_GENERATION),
    ] {
        assert!(persisted_records(&actions).is_empty());
        assert_eq!(commit_codes(&actions), vec![code]);
    }
    let ok = h.commit("g", &ids[1], 1, &[("t", 0, 3)]);
    assert_eq!(commit_codes(&h.persist(&ok)), vec![errors::NONE]);
    assert_eq!(h.fetch("g"), vec![("t".to_string(), 0, 3)]);

    // Preparing: still accepted (members commit before rejoining).
    h.join("g", &ids[0]);
    let preparing = h.commit("g", &ids[1], 1, &[("t", 0, 4)]);
    assert_eq!(commit_codes(&h.persist(&preparing)), vec![errors::NONE]);
    // Completing: refused.
    h.join("g", &ids[1]);
    assert_eq!(h.c.group_state("g"), Some(GroupState::CompletingRebalance));
    let completing = h.commit("g", &ids[1], 2, &[("t", 0, 9)]);
    assert_eq!(
        commit_codes(&completing),
        vec![errors::REBALANCE_IN_PROGRESS]
    );
    assert_eq!(h.fetch("g"), vec![("t".to_string(), 0, 4)]);
}

#[test]
fn oversized_metadata_refuses_only_its_partition() {
    let mut h = Harness::with(CoordinatorConfig {
        max_metadata_bytes: 3,
        ..config()
    });
    let req = OffsetCommitRequest {
        reply: h.reply(),
        group_id: "solo".to_string(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: vec![CommitTopic {
            name: "t".to_string(),
            partitions: vec![
                CommitPartition {
                    partition_index: 0,
                    committed_offset: 1,
                    committed_leader_epoch: 4,
                    committed_metadata: Some("long".to_string()),
                },
                CommitPartition {
                    partition_index: 1,
                    committed_offset: 2,
                    committed_leader_epoch: 4,
                    committed_metadata: Some("abc".to_string()),
                },
            ],
        }],
    };
    let actions = h.step(Event::OffsetCommit(req));
    assert_eq!(persisted_records(&actions).len(), 1);
    assert_eq!(
        commit_codes(&h.persist(&actions)),
        vec![errors::OFFSET_METADATA_TOO_LARGE, errors::NONE]
    );
    assert_eq!(h.fetch("solo"), vec![("t".to_string(), 1, 2)]);
}

fn offset_delete(h: &mut Harness, group: &str, topic: &str) -> Vec<Action> {
    let req = OffsetDeleteRequest {
        reply: h.reply(),
        group_id: group.to_string(),
        topics: vec![OffsetDeleteTopic {
            name: topic.to_string(),
            partitions: vec![0],
        }],
    };
    h.step(Event::OffsetDelete(req))
}

fn offset_delete_codes(actions: &[Action]) -> (i16, Vec<i16>) {
    match responses(actions).as_slice() {
        [Response::OffsetDelete(d)] => (
            d.error_code,
            d.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect(),
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn offset_delete_keeps_subscribed_topics_of_a_live_consumer_group() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 1);
    for t in ["t", "u"] {
        let a = h.commit("g", &ids[0], 1, &[(t, 0, 1)]);
        h.persist(&a);
    }
    let subscribed = offset_delete(&mut h, "g", "t");
    assert_eq!(
        offset_delete_codes(&subscribed),
        (errors::NONE, vec![errors::GROUP_SUBSCRIBED_TO_TOPIC])
    );
    let other = offset_delete(&mut h, "g", "u");
    assert!(
        responses(&other).is_empty(),
        "answered once the tombstone is written"
    );
    assert_eq!(
        offset_delete_codes(&h.persist(&other)),
        (errors::NONE, vec![errors::NONE])
    );
    assert_eq!(h.fetch("g"), vec![("t".to_string(), 0, 1)]);
    assert_eq!(
        offset_delete_codes(&offset_delete(&mut h, "nope", "t")).0,
        errors::GROUP_ID_NOT_FOUND
    );
}

#[test]
fn offset_delete_keeps_every_topic_while_subscriptions_are_unknown() {
    // A member whose metadata is not the consumer protocol: Kafka cannot
    // tell what it consumes, so it may consume anything.
    let mut h = Harness::new();
    let mut req = h.join_request("g", "");
    req.protocols[0].metadata = Bytes::from_static(b"not a subscription");
    h.step(Event::Join(req));
    let joined = joins_of(&h.tick_at(0));
    let member = joined[0].member_id.clone();
    let assigned = h.sync("g", &member, 1, &[]);
    h.persist(&assigned);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    let a = h.commit("g", &member, 1, &[("t", 0, 1)]);
    h.persist(&a);
    let refused = offset_delete(&mut h, "g", "t");
    assert!(persisted_records(&refused).is_empty());
    assert_eq!(
        offset_delete_codes(&refused),
        (errors::NONE, vec![errors::GROUP_SUBSCRIBED_TO_TOPIC])
    );

    // A group that has not completed a join yet (generation 0, preparing
    // its first rebalance) has no known subscriptions either.
    let a = h.commit("solo", "", -1, &[("t", 0, 1)]);
    h.persist(&a);
    h.join("solo", "");
    assert_eq!(
        h.c.group_state("solo"),
        Some(GroupState::PreparingRebalance)
    );
    let refused = offset_delete(&mut h, "solo", "t");
    assert!(persisted_records(&refused).is_empty());
    assert_eq!(
        offset_delete_codes(&refused),
        (errors::NONE, vec![errors::GROUP_SUBSCRIBED_TO_TOPIC])
    );
    assert_eq!(h.fetch("g"), vec![("t".to_string(), 0, 1)]);
    assert_eq!(h.fetch("solo"), vec![("t".to_string(), 0, 1)]);
}

fn delete_groups(h: &mut Harness, names: &[&str]) -> Vec<Action> {
    let req = DeleteGroupsRequest {
        reply: h.reply(),
        groups_names: names.iter().map(|n| n.to_string()).collect(),
    };
    h.step(Event::DeleteGroups(req))
}

fn delete_codes(actions: &[Action]) -> Vec<(String, i16)> {
    match responses(actions).as_slice() {
        [Response::DeleteGroups(d)] => d
            .results
            .iter()
            .map(|r| (r.group_id.clone(), r.error_code))
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_empty_groups_are_deleted_and_only_once_written() {
    let mut h = Harness::new();
    h.stable_group("busy", 1);
    let a = h.commit("idle", "", -1, &[("t", 0, 1)]);
    h.persist(&a);
    let actions = delete_groups(&mut h, &["busy", "idle", "nope", "idle"]);
    let written = persisted_records(&actions);
    assert!(matches!(&written[..], [Record::OffsetTombstone { .. }]));
    assert_eq!(h.describe("idle").group_state, "Dead");
    let failed = delete_codes(&h.fail_persist(&actions));
    assert_eq!(
        failed[1],
        ("idle".to_string(), errors::COORDINATOR_NOT_AVAILABLE)
    );
    assert_eq!(h.fetch("idle").len(), 1, "a failed delete keeps the group");

    let actions = delete_groups(&mut h, &["busy", "idle", "nope"]);
    assert_eq!(
        delete_codes(&h.persist(&actions)),
        vec![
            ("busy".to_string(), errors::NON_EMPTY_GROUP),
            ("idle".to_string(), errors::NONE),
            ("nope".to_string(), errors::GROUP_ID_NOT_FOUND)
        ]
    );
    assert_eq!(h.c.group_state("idle"), None);
    assert!(h.fetch("idle").is_empty());
}

#[test]
fn offsets_of_an_empty_group_expire_after_the_retention_since_it_emptied() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 1);
    let a = h.commit("g", &ids[0], 1, &[("t", 0, 1)]);
    h.persist(&a);
    h.now = 50_000;
    let req = LeaveRequest {
        reply: h.reply(),
        group_id: "g".to_string(),
        members: vec![LeavingMember {
            member_id: ids[0].clone(),
            group_instance_id: None,
            reason: None,
        }],
    };
    h.step(Event::Leave(req));
    assert_eq!(h.c.group_state("g"), Some(GroupState::Empty));
    assert!(persisted_records(&h.tick_at(149_999)).is_empty());
    // Checked every second: the next check after 149.999 s is at 150.999 s.
    assert!(persisted_records(&h.tick_at(150_998)).is_empty());
    let actions = h.tick_at(150_999);
    let written = persisted_records(&actions);
    assert!(
        matches!(
            &written[..],
            [
                Record::OffsetTombstone { .. },
                Record::GroupTombstone { .. }
            ]
        ),
        "{written:?}"
    );
    assert_eq!(h.c.group_state("g"), Some(GroupState::Dead));
    h.persist(&actions);
    assert_eq!(h.c.group_state("g"), None);
}

#[test]
fn a_standalone_consumer_offsets_expire_after_the_retention_since_their_commit() {
    let mut h = Harness::new();
    let a = h.commit("solo", "", -1, &[("t", 0, 1)]);
    h.persist(&a);
    h.now = 60_000;
    let b = h.commit("solo", "", -1, &[("t", 1, 1)]);
    h.persist(&b);
    let actions = h.tick_at(100_000);
    assert!(matches!(
        persisted_records(&actions).as_slice(),
        [Record::OffsetTombstone { partition: 0, .. }]
    ));
    h.persist(&actions);
    assert_eq!(h.fetch("solo"), vec![("t".to_string(), 1, 1)]);
    // Nothing left and never a member: removed without a group tombstone.
    let actions = h.tick_at(160_000);
    assert!(matches!(
        persisted_records(&actions).as_slice(),
        [Record::OffsetTombstone { partition: 1, .. }]
    ));
    h.persist(&actions);
    assert_eq!(h.c.group_state("solo"), None);
}

#[test]
fn replayed_records_restore_a_stable_group_and_its_offsets() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2);
    let a = h.commit("g", &ids[0], 1, &[("t", 0, 42)]);
    h.persist(&a);
    // A write that never completed is not in the log.
    h.commit("g", &ids[0], 1, &[("t", 0, 43)]);

    let mut r = Harness::new();
    for record in h.log.clone() {
        r.c.replay(record);
    }
    r.now = 1_000_000;
    assert_eq!(r.fetch("g"), vec![("t".to_string(), 0, 42)]);
    let d = r.describe("g");
    assert_eq!(d.group_state, "Stable");
    assert_eq!(d.members.len(), 2);
    assert!(d.members.iter().all(|m| m.member_assignment == "a"));
    assert_eq!(r.c.generation("g"), Some(1));
    // Sessions start at the first step: members must heartbeat again.
    r.now = 1_009_999;
    assert_eq!(r.heartbeat("g", &ids[1], 1), errors::NONE);
    r.tick_at(1_010_000);
    let d = r.describe("g");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, ids[1]);
}

#[test]
fn a_group_tombstone_keeps_offsets_not_tombstoned() {
    let mut h = Harness::new();
    let offset = |partition, offset| Record::Offset {
        group: "g".to_string(),
        topic: "t".to_string(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 0,
    };
    h.c.replay(Record::GroupMetadata {
        group: "g".to_string(),
        protocol_type: "consumer".to_string(),
        generation: 3,
        protocol: None,
        leader: None,
        current_state_timestamp_ms: Some(0),
        members: Vec::new(),
    });
    h.c.replay(offset(0, 5));
    h.c.replay(Record::GroupTombstone {
        group: "g".to_string(),
    });
    h.c.replay(offset(1, 6));
    assert_eq!(
        h.fetch("g"),
        vec![("t".to_string(), 0, 5), ("t".to_string(), 1, 6)]
    );
    assert_eq!(h.c.generation("g"), Some(0));
    assert_eq!(h.describe("g").protocol_type, "");
}

#[test]
fn a_replay_after_steps_answers_the_requests_it_displaces() {
    let mut h = Harness::new();
    h.join("g", "");
    h.c.replay(Record::GroupTombstone {
        group: "g".to_string(),
    });
    let answers = joins_of(&h.c.take_actions());
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].error_code, errors::COORDINATOR_NOT_AVAILABLE);
    assert_eq!(h.c.group_state("g"), None);
}

fn leave(h: &mut Harness, group: &str, member_id: &str) -> Vec<Action> {
    let req = LeaveRequest {
        reply: h.reply(),
        group_id: group.to_string(),
        members: vec![LeavingMember {
            member_id: member_id.to_string(),
            group_instance_id: None,
            reason: None,
        }],
    };
    h.step(Event::Leave(req))
}

/// The groups that `actions` write anything for, in order, once each.
fn groups_written(actions: &[Action]) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for r in persisted_records(actions) {
        if groups.last().map(String::as_str) != Some(r.group()) {
            groups.push(r.group().to_string());
        }
    }
    groups
}

#[test]
fn retention_goes_on_from_the_recorded_times_after_a_restart() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 1);
    let a = h.commit("g", &ids[0], 1, &[("t", 0, 1)]);
    h.persist(&a);
    h.now = 10_000;
    let a = h.commit("solo", "", -1, &[("t", 0, 1)]);
    h.persist(&a);
    h.now = 20_000;
    let emptied = leave(&mut h, "g", &ids[0]);
    h.persist(&emptied);
    assert!(matches!(
        h.log.last(),
        Some(Record::GroupMetadata {
            current_state_timestamp_ms: Some(20_000),
            ..
        })
    ));

    // The broker restarts; its clock (wall-anchored) goes on.
    let mut r = Harness::new();
    for record in h.log.clone() {
        r.c.replay(record);
    }
    assert!(persisted_records(&r.tick_at(95_000)).is_empty());
    assert!(persisted_records(&r.tick_at(109_999)).is_empty());
    // Retention (100 s) runs from the commit for the standalone offset...
    let actions = r.tick_at(111_000);
    assert_eq!(groups_written(&actions), vec!["solo"]);
    r.persist(&actions);
    // ... and from when the group became empty for the group's.
    assert!(persisted_records(&r.tick_at(119_999)).is_empty());
    let actions = r.tick_at(121_000);
    assert!(
        matches!(
            persisted_records(&actions).as_slice(),
            [
                Record::OffsetTombstone { .. },
                Record::GroupTombstone { .. }
            ]
        ),
        "{actions:?}"
    );
}

#[test]
fn replayed_records_without_their_time_start_retention_at_the_first_step() {
    let mut h = Harness::new();
    let offset = |group: &str, commit_timestamp_ms| Record::Offset {
        group: group.to_string(),
        topic: "t".to_string(),
        partition: 0,
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms,
    };
    // "old" comes from a group value v1, which has no state timestamp.
    for (group, since) in [("old", None), ("new", Some(10_000))] {
        h.c.replay(Record::GroupMetadata {
            group: group.to_string(),
            protocol_type: "consumer".to_string(),
            generation: 2,
            protocol: None,
            leader: None,
            current_state_timestamp_ms: since,
            members: Vec::new(),
        });
        h.c.replay(offset(group, 0));
    }
    // No coordinator writes a negative commit timestamp; it is no time.
    h.c.replay(offset("solo", -1));
    h.tick_at(50_000);
    let actions = h.tick_at(111_000);
    assert_eq!(groups_written(&actions), vec!["new"]);
    h.persist(&actions);
    assert!(persisted_records(&h.tick_at(149_999)).is_empty());
    assert_eq!(groups_written(&h.tick_at(151_000)), vec!["old", "solo"]);
}

#[test]
fn a_later_write_may_fail_before_an_earlier_one_completes() {
    let mut h = Harness::new();
    // A commit in flight, then a delete of its group that the broker fails
    // at once (a proposal refused during a leader transfer).
    let commit = h.commit("solo", "", -1, &[("t", 0, 1)]);
    let delete = delete_groups(&mut h, &["solo"]);
    assert_eq!(
        delete_codes(&h.fail_persist(&delete)),
        vec![("solo".to_string(), errors::COORDINATOR_NOT_AVAILABLE)]
    );
    assert_eq!(h.c.group_state("solo"), Some(GroupState::Empty));
    assert_eq!(commit_codes(&h.persist(&commit)), vec![errors::NONE]);
    assert_eq!(h.fetch("solo"), vec![("t".to_string(), 0, 1)]);

    // Two commits of one partition: the later fails first, the earlier lands.
    let earlier = h.commit("solo", "", -1, &[("t", 0, 2)]);
    let later = h.commit("solo", "", -1, &[("t", 0, 3), ("t", 1, 3)]);
    assert_eq!(
        commit_codes(&h.fail_persist(&later)),
        vec![errors::COORDINATOR_NOT_AVAILABLE; 2]
    );
    assert_eq!(commit_codes(&h.persist(&earlier)), vec![errors::NONE]);
    assert_eq!(h.fetch("solo"), vec![("t".to_string(), 0, 2)]);

    // The coordinator shows what the log holds.
    let mut r = Harness::new();
    for record in h.log.clone() {
        r.c.replay(record);
    }
    assert_eq!(r.fetch("solo"), h.fetch("solo"));
    let delete = delete_groups(&mut h, &["solo"]);
    assert_eq!(
        delete_codes(&h.persist(&delete)),
        vec![("solo".to_string(), errors::NONE)]
    );
}
