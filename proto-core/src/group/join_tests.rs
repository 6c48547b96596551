//! JoinGroup rules: the KIP-394 round, the initial delay, validation,
//! protocol choice, group size, static members and new-member expiry.

use bytes::Bytes;

use super::test_support::*;
use super::*;

fn protocols(names: &[&str]) -> Vec<JoinProtocol> {
    names
        .iter()
        .map(|n| JoinProtocol {
            name: n.to_string(),
            metadata: subscription(&["t"]),
        })
        .collect()
}

#[test]
fn a_new_member_gets_its_id_first_and_joins_with_it() {
    let mut h = Harness::with(CoordinatorConfig {
        initial_rebalance_delay_ms: 3_000,
        ..config()
    });
    let mut req = h.join_request("g", "");
    req.require_known_member_id = true;
    let first = joins_of(&h.step(Event::Join(req)));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].error_code, errors::MEMBER_ID_REQUIRED);
    assert_eq!(first[0].generation_id, -1);
    let id = first[0].member_id.clone();
    assert!(id.starts_with("client-"), "{id}");
    assert!(h.describe("g").members.is_empty());

    assert!(joins_of(&h.join("g", &id)).is_empty());
    assert!(
        joins_of(&h.tick_at(2_999)).is_empty(),
        "the initial delay holds the join"
    );
    let done = joins_of(&h.tick_at(3_000));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].error_code, errors::NONE);
    assert_eq!(done[0].generation_id, 1);
    assert_eq!(done[0].leader, id);
    assert_eq!(done[0].protocol_name.as_deref(), Some("range"));
    assert_eq!(done[0].members.len(), 1);
    assert_eq!(done[0].members[0].metadata, subscription(&["t"]));
}

#[test]
fn a_pending_member_is_forgotten_after_its_session_timeout() {
    let mut h = Harness::new();
    let mut req = h.join_request("g", "");
    req.require_known_member_id = true;
    let id = joins_of(&h.step(Event::Join(req)))[0].member_id.clone();
    h.tick_at(9_999);
    h.tick_at(10_000);
    let late = joins_of(&h.join("g", &id));
    assert_eq!(late[0].error_code, errors::UNKNOWN_MEMBER_ID);
}

#[test]
fn a_pending_member_holds_a_rebalance_until_it_joins() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 1);
    let mut req = h.join_request("g", "");
    req.require_known_member_id = true;
    let pending = joins_of(&h.step(Event::Join(req)))[0].member_id.clone();
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    // The leader rejoining starts a rebalance, which waits for the pending member.
    assert!(joins_of(&h.join("g", &ids[0])).is_empty());
    let done = joins_of(&h.join("g", &pending));
    assert_eq!(done.len(), 2);
    assert!(done.iter().all(|j| j.generation_id == 2));
}

#[test]
fn the_initial_delay_is_extended_by_new_members_up_to_the_rebalance_timeout() {
    let mut h = Harness::with(CoordinatorConfig {
        initial_rebalance_delay_ms: 3_000,
        ..config()
    });
    let mut a = h.join_request("g", "");
    a.rebalance_timeout_ms = 5_000;
    h.step(Event::Join(a));
    h.now = 1_000;
    h.join("g", "");
    assert!(joins_of(&h.tick_at(3_000)).is_empty(), "extended by 2000");
    h.now = 4_000;
    h.join("g", "");
    assert!(joins_of(&h.tick_at(4_999)).is_empty());
    let done = joins_of(&h.tick_at(5_000));
    assert_eq!(done.len(), 3, "the rebalance timeout ends the delay");
}

#[test]
fn refused_joins_create_no_group() {
    let mut h = Harness::new();
    let mut short = h.join_request("g", "");
    short.session_timeout_ms = 5_999;
    let mut long = h.join_request("g", "");
    long.session_timeout_ms = 1_800_001;
    let mut no_protocols = h.join_request("g", "");
    no_protocols.protocols.clear();
    let unnamed = h.join_request("", "");
    let unknown = h.join_request("g", "someone");
    let mut answers = Vec::new();
    for req in [short, long, no_protocols, unnamed, unknown] {
        answers.extend(joins_of(&h.step(Event::Join(req))));
    }
    let codes: Vec<i16> = answers.iter().map(|j| j.error_code).collect();
    assert_eq!(
        codes,
        vec![
            errors::INVALID_SESSION_TIMEOUT,
            errors::INVALID_SESSION_TIMEOUT,
            errors::INCONSISTENT_GROUP_PROTOCOL,
            errors::INVALID_GROUP_ID,
            errors::UNKNOWN_MEMBER_ID,
        ]
    );
    assert_eq!(h.c.group_state("g"), None);
}

#[test]
fn joins_must_share_the_protocol_type_and_a_protocol() {
    let mut h = Harness::new();
    h.stable_group("g", 1);
    let mut other = h.join_request("g", "");
    other.protocols = protocols(&["roundrobin"]);
    let mut connect = h.join_request("g", "");
    connect.protocol_type = "connect".to_string();
    for req in [other, connect] {
        let j = joins_of(&h.step(Event::Join(req)));
        assert_eq!(j[0].error_code, errors::INCONSISTENT_GROUP_PROTOCOL);
    }
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    let mut both = h.join_request("g", "");
    both.protocols = protocols(&["roundrobin", "range"]);
    h.step(Event::Join(both));
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn the_protocol_is_chosen_by_vote_among_those_all_support() {
    let mut h = Harness::new();
    for names in [&["a", "b", "c"][..], &["b", "a"], &["b", "a", "c"]] {
        let mut req = h.join_request("g", "");
        req.protocols = protocols(names);
        h.step(Event::Join(req));
    }
    h.tick_at(0);
    let done = joins_of(&h.tick_at(0));
    assert_eq!(done.len(), 3);
    assert!(done.iter().all(|j| j.protocol_name.as_deref() == Some("b")));
}

#[test]
fn a_full_group_refuses_new_members_and_pending_ones() {
    let mut h = Harness::with(CoordinatorConfig {
        max_group_size: 2,
        ..config()
    });
    h.join("g", "");
    h.join("g", "");
    let third = joins_of(&h.join("g", ""));
    assert_eq!(third[0].error_code, errors::GROUP_MAX_SIZE_REACHED);

    let mut codes = Vec::new();
    for _ in 0..3 {
        let mut req = h.join_request("p", "");
        req.require_known_member_id = true;
        codes.push(joins_of(&h.step(Event::Join(req)))[0].error_code);
    }
    assert_eq!(
        codes,
        vec![
            errors::MEMBER_ID_REQUIRED,
            errors::MEMBER_ID_REQUIRED,
            errors::GROUP_MAX_SIZE_REACHED
        ]
    );
}

#[test]
fn a_follower_rejoining_a_stable_group_gets_the_current_generation() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2);
    let same = joins_of(&h.join("g", &ids[1]));
    assert_eq!(same.len(), 1);
    assert_eq!(same[0].generation_id, 1);
    assert_eq!(same[0].leader, ids[0]);
    assert!(same[0].members.is_empty());
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    // The leader rejoining asks for a rebalance.
    assert!(joins_of(&h.join("g", &ids[0])).is_empty());
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
}

/// Static member "ia" (the leader) and a dynamic member, Stable at generation 1.
fn static_group(h: &mut Harness) -> (String, String) {
    let mut a = h.join_request("g", "");
    a.group_instance_id = Some("ia".to_string());
    h.step(Event::Join(a));
    h.join("g", "");
    h.tick_at(0);
    let done = joins_of(&h.tick_at(0));
    let leader = done[0].leader.clone();
    assert!(leader.starts_with("ia-"), "{leader}");
    let other = done
        .iter()
        .map(|j| j.member_id.clone())
        .find(|m| *m != leader)
        .expect("two members");
    let actions = h.sync("g", &leader, 1, &[(&leader, "pa"), (&other, "pb")]);
    h.persist(&actions);
    h.sync("g", &other, 1, &[]);
    (leader, other)
}

fn heartbeat_as(h: &mut Harness, member_id: &str, instance: &str) -> i16 {
    let req = HeartbeatRequest {
        reply: h.reply(),
        group_id: "g".to_string(),
        generation_id: 1,
        member_id: member_id.to_string(),
        group_instance_id: Some(instance.to_string()),
    };
    match responses(&h.step(Event::Heartbeat(req))).as_slice() {
        [Response::Heartbeat(r)] => r.error_code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_static_member_rejoins_a_stable_group_without_a_rebalance() {
    let mut h = Harness::new();
    let (old, other) = static_group(&mut h);
    let mut back = h.join_request("g", "");
    back.group_instance_id = Some("ia".to_string());
    let actions = h.step(Event::Join(back));
    assert!(joins_of(&actions).is_empty(), "answered once written");
    let written = persisted_records(&actions);
    assert!(matches!(
        &written[..],
        [Record::GroupMetadata { generation: 1, .. }]
    ));
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));

    let answer = joins_of(&h.persist(&actions));
    assert_eq!(answer.len(), 1);
    let new = answer[0].member_id.clone();
    assert_ne!(new, old);
    assert_eq!(answer[0].generation_id, 1);
    assert_eq!(answer[0].leader, new);
    assert!(answer[0].skip_assignment);
    assert_eq!(answer[0].members.len(), 2);

    let sync = syncs(&h.sync("g", &new, 1, &[]));
    assert_eq!(sync[0].assignment, Bytes::from("pa"));
    assert_eq!(heartbeat_as(&mut h, &old, "ia"), errors::FENCED_INSTANCE_ID);
    assert_eq!(h.heartbeat("g", &other, 1), errors::NONE);
    assert_eq!(h.c.generation("g"), Some(1));
}

#[test]
fn before_join_v9_a_static_leader_is_given_the_old_leader() {
    let mut h = Harness::new();
    let (old, _) = static_group(&mut h);
    let mut back = h.join_request("g", "");
    back.group_instance_id = Some("ia".to_string());
    back.supports_skip_assignment = false;
    let actions = h.step(Event::Join(back));
    let answer = joins_of(&h.persist(&actions));
    assert_eq!(answer[0].leader, old);
    assert!(!answer[0].skip_assignment);
    assert!(answer[0].members.is_empty());
}

#[test]
fn a_failed_write_restores_the_static_member_old_id() {
    let mut h = Harness::new();
    let (old, _) = static_group(&mut h);
    let mut back = h.join_request("g", "");
    back.group_instance_id = Some("ia".to_string());
    let actions = h.step(Event::Join(back));
    let answer = joins_of(&h.fail_persist(&actions));
    assert_eq!(answer[0].error_code, errors::COORDINATOR_NOT_AVAILABLE);
    assert_eq!(answer[0].member_id, "");
    assert_eq!(heartbeat_as(&mut h, &old, "ia"), errors::NONE);
}

/// A static rejoin of "ia" at 1 s whose write is still in flight when the
/// member's session (10 s) ends; the other member keeps heartbeating.
fn static_rejoin_outliving_its_session(h: &mut Harness, other: &str) -> Vec<Action> {
    h.now = 1_000;
    let mut back = h.join_request("g", "");
    back.group_instance_id = Some("ia".to_string());
    let actions = h.step(Event::Join(back));
    h.now = 9_000;
    assert_eq!(h.heartbeat("g", other, 1), errors::NONE);
    // Waiting in its join, the member is not expired; its timer stops.
    h.tick_at(11_000);
    assert_eq!(h.describe("g").members.len(), 2);
    h.now = 12_000;
    actions
}

#[test]
fn a_static_member_whose_session_ends_during_its_rejoin_write_still_expires() {
    let mut h = Harness::new();
    let (_, other) = static_group(&mut h);
    let actions = static_rejoin_outliving_its_session(&mut h, &other);
    let answer = joins_of(&h.persist(&actions));
    assert_eq!(answer[0].error_code, errors::NONE);
    // Answered at 12 s, the member must be heard from by 22 s.
    h.now = 18_000;
    assert_eq!(h.heartbeat("g", &other, 1), errors::NONE);
    h.tick_at(21_999);
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
    h.tick_at(22_000);
    assert_eq!(h.c.group_state("g"), Some(GroupState::PreparingRebalance));
    let d = h.describe("g");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, other);
}

#[test]
fn a_static_member_whose_rejoin_write_fails_after_its_session_ended_still_expires() {
    let mut h = Harness::new();
    let (_, other) = static_group(&mut h);
    let actions = static_rejoin_outliving_its_session(&mut h, &other);
    let answer = joins_of(&h.fail_persist(&actions));
    assert_eq!(answer[0].error_code, errors::COORDINATOR_NOT_AVAILABLE);
    h.now = 18_000;
    assert_eq!(h.heartbeat("g", &other, 1), errors::NONE);
    h.tick_at(21_999);
    assert_eq!(h.describe("g").members.len(), 2);
    // The old id is back, and its session runs from the failure.
    h.tick_at(22_000);
    let d = h.describe("g");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, other);
}

#[test]
fn a_new_member_stuck_in_a_long_rebalance_expires_after_five_minutes() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 1);
    let mut slow = h.join_request("g", "");
    slow.rebalance_timeout_ms = 600_000;
    h.step(Event::Join(slow));
    // The old member keeps heartbeating but never rejoins.
    let mut t = 0;
    while t < 295_000 {
        t += 5_000;
        h.now = t;
        assert_eq!(h.heartbeat("g", &ids[0], 1), errors::REBALANCE_IN_PROGRESS);
        h.tick_at(t);
    }
    let expired = joins_of(&h.tick_at(300_000));
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].error_code, errors::UNKNOWN_MEMBER_ID);
    assert_eq!(h.describe("g").members.len(), 1);
}

#[test]
fn a_superseded_join_is_answered_so_no_request_hangs() {
    let mut h = Harness::new();
    let ids = h.stable_group("g", 2);
    let first = h.join_request("g", &ids[0]);
    let first_reply = first.reply;
    assert!(joins_of(&h.step(Event::Join(first))).is_empty());
    let actions = h.join("g", &ids[0]);
    let answered: Vec<ReplyId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Respond { reply, .. } => Some(*reply),
            Action::Persist { .. } => None,
        })
        .collect();
    assert_eq!(answered, vec![first_reply]);
    assert_eq!(
        joins_of(&actions)[0].error_code,
        errors::REBALANCE_IN_PROGRESS
    );
    // The second join completes the rebalance once the follower rejoins.
    assert_eq!(joins_of(&h.join("g", &ids[1])).len(), 2);
}

#[test]
fn a_static_member_rejoining_a_completing_group_restarts_the_rebalance() {
    let mut h = Harness::new();
    let mut a = h.join_request("g", "");
    a.group_instance_id = Some("ia".to_string());
    h.step(Event::Join(a));
    h.tick_at(0);
    assert_eq!(h.c.group_state("g"), Some(GroupState::CompletingRebalance));
    let mut back = h.join_request("g", "");
    back.group_instance_id = Some("ia".to_string());
    // Its old id may be in the leader's assignment: a new generation is
    // needed, and with everyone rejoined it starts at once.
    let done = joins_of(&h.step(Event::Join(back)));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].generation_id, 2);
}

#[test]
fn a_later_static_rejoin_failing_first_leaves_the_group_as_the_log_has_it() {
    let mut h = Harness::new();
    static_group(&mut h);
    let rejoin = |h: &mut Harness| {
        let mut back = h.join_request("g", "");
        back.group_instance_id = Some("ia".to_string());
        h.step(Event::Join(back))
    };
    let first = rejoin(&mut h);
    let second = rejoin(&mut h);
    assert_eq!(
        joins_of(&second)[0].error_code,
        errors::FENCED_INSTANCE_ID,
        "the second replacement fences the first one's join"
    );
    // The broker fails the second write at once; the first is then written.
    let failed = joins_of(&h.fail_persist(&second));
    assert_eq!(failed[0].error_code, errors::COORDINATOR_NOT_AVAILABLE);
    assert!(joins_of(&h.persist(&first)).is_empty());

    let mut r = Harness::new();
    for record in h.log.clone() {
        r.c.replay(record);
    }
    let ids = |d: DescribedGroup| -> Vec<String> {
        d.members.iter().map(|m| m.member_id.clone()).collect()
    };
    assert_eq!(ids(h.describe("g")), ids(r.describe("g")));
    assert_eq!(h.c.group_state("g"), Some(GroupState::Stable));
}
