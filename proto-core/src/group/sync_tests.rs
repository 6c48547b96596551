//! SyncGroup, Heartbeat and LeaveGroup rules, and the member timers.

use bytes::Bytes;

use super::test_support::*;
use super::*;

/// Two members through a join, generation 1, CompletingRebalance; leader first.
fn completing(h: &mut Harness) -> (String, String) {
    h.join("g", "");
    h.join("g", "");
    h.tick_at(h.now);
    let done = joins_of(&h.tick_at(h.now));
    assert_eq!(done.len(), 2);
    let leader = done[0].leader.clone();
    let follower = done
        .iter()
        .map(|j| j.member_id.clone())
        .find(|m| *m != leader)
        .expect("a follower");
    assert_eq!(h.c.group_state("g"), Some(GroupState::CompletingRebalance));
    (leader, follower)
}

#[test]
fn syncs_are_answered_once_the_leader_assignment_is_written() {
    let mut h = Harness::new();
    let (leader, follower) = completing(&mut h);
    assert!(
        syncs(&h.sync("g", &follower, 1, &[])).is_empty(),
        "the follower waits"
    );
    let actions = h.sync("g", &leader, 1, &[(&leader, "p0"), (&follower, "p1")]);
    assert!(
        syncs(&actions).is_empty(),
        "nobody is answered before the write"
    );
    let written = persisted_records(&actions);
    let [Record::GroupMetadata { members, .. }] = written.as_slice() else {
        panic!("one group record: {written:?}");
    };
    assert_eq!(members.len(), 2);
    assert_eq!(h.c.group_state("g"), Some(GroupState::CompletingRebalance));

    let answers = syncs(&h.persist(&actions));
    let mut got: Vec<Bytes> = answers.iter().map(|s| s.assignment.clone()).collect();
    got.sort();
    assert_eq!(got, vec![Bytes::from("p0"), Bytes::from("p1")]);
    assert!(answers
        .iter()
        .all(|s| s.protocol_name.as_deref() == Some("range")));
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    // In Stable a sync is answered at once.
    assert_eq!(
        syncs(&h.sync("g", &follower, 1, &[]))[0].assignment,
        Bytes::from("p1")
    );
}

#[test]
fn a_failed_assignment_write_fails_the_syncs_and_rebalances() {
    let mut h = Harness::new();
    let (leader, follower) = completing(&mut h);
    h.sync("g", &follower, 1, &[]);
    let actions = h.sync("g", &leader, 1, &[(&leader, "p0"), (&follower, "p1")]);
    let answers = syncs(&h.fail_persist(&actions));
    assert_eq!(answers.len(), 2);
    assert!(answers
        .iter()
        .all(|s| s.error_code == errors::COORDINATOR_NOT_AVAILABLE && s.assignment.is_empty()));
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.heartbeat("g", &follower, 1),
        errors::REBALANCE_IN_PROGRESS
    );
}

#[test]
fn invalid_syncs_are_refused() {
    let mut h = Harness::new();
    let (leader, _) = completing(&mut h);
    let codes: Vec<i16> = [
        h.sync("g", &leader, 2, &[]),
        h.sync("g", "stranger", 1, &[]),
        h.sync("nope", &leader, 1, &[]),
        h.sync("", &leader, 1, &[]),
    ]
    .iter()
    .map(|a| syncs(a)[0].error_code)
    .collect();
    assert_eq!(
        codes,
        vec![
            errors::ILLEGAL_GENERATION,
            errors::UNKNOWN_MEMBER_ID,
            errors::UNKNOWN_MEMBER_ID,
            errors::INVALID_GROUP_ID
        ]
    );
    let req = SyncRequest {
        reply: h.reply(),
        group_id: "g".to_string(),
        generation_id: 1,
        member_id: leader.clone(),
        group_instance_id: None,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("roundrobin".to_string()),
        assignments: Vec::new(),
    };
    let a = h.step(Event::Sync(req));
    assert_eq!(syncs(&a)[0].error_code, errors::INCONSISTENT_GROUP_PROTOCOL);
    assert!(persisted_records(&a).is_empty());
    // Rebalancing: syncs are told to rejoin.
    h.join("g", "");
    let a = h.sync("g", &leader, 1, &[]);
    assert_eq!(syncs(&a)[0].error_code, errors::REBALANCE_IN_PROGRESS);
}

#[test]
fn a_member_that_never_syncs_is_dropped_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    let (leader, follower) = completing(&mut h);
    let actions = h.sync("g", &leader, 1, &[(&leader, "p0"), (&follower, "p1")]);
    h.persist(&actions);
    // The follower keeps its session alive but never syncs.
    h.now = 9_000;
    assert_eq!(h.heartbeat("g", &follower, 1), errors::NONE);
    h.now = 18_000;
    assert_eq!(h.heartbeat("g", &follower, 1), errors::NONE);
    h.now = 27_000;
    assert_eq!(h.heartbeat("g", &leader, 1), errors::NONE);
    assert_eq!(h.heartbeat("g", &follower, 1), errors::NONE);
    h.tick_at(29_999);
    assert_eq!(h.describe("g").members.len(), 2);
    h.tick_at(30_000);
    assert_eq!(h.describe("g").members.len(), 1);
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn heartbeats_report_the_rebalance_and_keep_the_session() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2);
    assert_eq!(h.heartbeat("g", &ids[1], 0), errors::ILLEGAL_GENERATION);
    assert_eq!(h.heartbeat("g", "stranger", 1), errors::UNKNOWN_MEMBER_ID);
    assert_eq!(h.heartbeat("other", &ids[1], 1), errors::UNKNOWN_MEMBER_ID);
    assert_eq!(h.heartbeat("", &ids[1], 1), errors::INVALID_GROUP_ID);
    h.now = 6_000;
    assert_eq!(h.heartbeat("g", &ids[1], 1), errors::NONE);
    h.tick_at(10_000);
    // The leader's session expired, the follower's did not.
    let d = h.describe("g");
    assert_eq!(d.group_state, "PreparingRebalance");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, ids[1]);
    assert_eq!(h.heartbeat("g", &ids[1], 1), errors::REBALANCE_IN_PROGRESS);
}

#[test]
fn a_member_waiting_in_a_rebalance_outlives_its_session() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2);
    h.now = 5_000;
    h.join("g", &ids[0]);
    // The follower's session ends at 10s; the leader waits in the join.
    h.tick_at(10_000);
    let d = h.describe("g");
    assert_eq!(d.members.len(), 1, "the silent follower is gone");
    assert_eq!(d.group_state, "CompletingRebalance");
    assert_eq!(h.c.generation("g"), Some(2));
}

#[test]
fn the_last_member_leaving_empties_the_group_with_a_new_generation() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2);
    let req = LeaveRequest {
        reply: h.reply(),
        group_id: "g".to_string(),
        members: vec![
            LeavingMember {
                member_id: ids[0].clone(),
                group_instance_id: None,
                reason: Some("bye".to_string()),
            },
            LeavingMember {
                member_id: "stranger".to_string(),
                group_instance_id: None,
                reason: None,
            },
            LeavingMember {
                member_id: ids[1].clone(),
                group_instance_id: Some("not-mine".to_string()),
                reason: None,
            },
        ],
    };
    let actions = h.step(Event::Leave(req));
    let answers = responses(&actions);
    let [Response::Leave(l)] = answers.as_slice() else {
        panic!("a leave answer");
    };
    let codes: Vec<i16> = l.members.iter().map(|m| m.error_code).collect();
    assert_eq!(
        codes,
        vec![
            errors::NONE,
            errors::UNKNOWN_MEMBER_ID,
            errors::UNKNOWN_MEMBER_ID
        ]
    );
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));

    let req = LeaveRequest {
        reply: h.reply(),
        group_id: "g".to_string(),
        members: vec![LeavingMember {
            member_id: ids[1].clone(),
            group_instance_id: None,
            reason: None,
        }],
    };
    let actions = h.step(Event::Leave(req));
    assert_eq!(h.c.group_state("g"), Some(GroupState::Empty));
    assert_eq!(h.c.generation("g"), Some(2));
    let written = persisted_records(&actions);
    assert!(
        matches!(&written[..], [Record::GroupMetadata { generation: 2, members, .. }] if members.is_empty())
    );
}
