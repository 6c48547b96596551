//! The tracker's rules one by one: shrink after the lag bound, expand at the
//! high watermark, the leader, removals, and the pending-change protocol.

use std::collections::BTreeSet;

use super::*;

const LAG: u64 = 10_000;

fn ids(v: &[u64]) -> BTreeSet<NodeId> {
    v.iter().map(|&i| NodeId(i)).collect()
}

/// Node 1 leading replicas 1, 2, 3 with ISR 1, 2, 3 at epoch 1, log end 10, at 0 ms.
fn leader() -> IsrTracker {
    leader_with(&[1, 2, 3], &[1, 2, 3])
}

fn leader_with(replicas: &[u64], isr: &[u64]) -> IsrTracker {
    let mut t = IsrTracker::new(
        IsrConfig {
            lag_time_max_ms: LAG,
        },
        NodeId(1),
    );
    step(
        &mut t,
        Event::BecameLeader {
            replicas: ids(replicas),
            initial_isr: ids(isr),
            isr_epoch: IsrEpoch(1),
            log_end: LogIndex(10),
            now_ms: 0,
        },
    );
    t
}

fn step(t: &mut IsrTracker, e: Event) -> Vec<Action> {
    t.step(e).expect("accepted");
    t.take_actions()
}

fn progress(t: &mut IsrTracker, replica: u64, m: u64, now_ms: u64) -> Vec<Action> {
    step(
        t,
        Event::FollowerProgress {
            replica: NodeId(replica),
            match_index: LogIndex(m),
            now_ms,
        },
    )
}

fn append(t: &mut IsrTracker, end: u64, now_ms: u64) {
    assert!(step(
        t,
        Event::LeaderLogEnd {
            log_end: LogIndex(end),
            now_ms
        }
    )
    .is_empty());
}

fn tick(t: &mut IsrTracker, now_ms: u64) -> Vec<Action> {
    step(t, Event::Tick { now_ms })
}

fn hw(t: &mut IsrTracker, hw: u64) {
    step(t, Event::HighWatermark { hw: LogIndex(hw) });
}

fn commit_pending(t: &mut IsrTracker) {
    let (_, isr) = t.pending().expect("a pending change");
    let isr = isr.clone();
    let epoch = IsrEpoch(t.epoch().expect("leading").0 + 1);
    step(t, Event::IsrCommitted { isr, epoch });
}

fn changes(actions: &[Action]) -> Vec<IsrChange> {
    match actions {
        [Action::IsrChanged { changes, .. }] => changes.clone(),
        [] => Vec::new(),
        more => panic!("one change at a time: {more:?}"),
    }
}

#[test]
fn a_follower_that_stops_leaves_after_the_lag_bound() {
    let mut t = leader();
    progress(&mut t, 2, 10, 100);
    progress(&mut t, 3, 10, 100);
    append(&mut t, 20, 200);
    progress(&mut t, 2, 20, 300);
    assert!(tick(&mut t, 200 + LAG).is_empty(), "3 was caught up at 200");
    progress(&mut t, 2, 20, 200 + LAG);
    let a = tick(&mut t, 201 + LAG);
    assert_eq!(
        changes(&a),
        vec![IsrChange::Shrink {
            replica: NodeId(3),
            lag_ms: LAG + 1
        }]
    );
    match &a[0] {
        Action::IsrChanged { isr, based_on, .. } => {
            assert_eq!(*isr, ids(&[1, 2]));
            assert_eq!(*based_on, IsrEpoch(1));
        }
    }
    assert_eq!(t.isr(), ids(&[1, 2, 3]), "recorded until committed");
    commit_pending(&mut t);
    assert_eq!(t.isr(), ids(&[1, 2]));
}

#[test]
fn a_follower_at_the_log_end_of_an_idle_partition_stays_in() {
    let mut t = leader();
    progress(&mut t, 2, 10, 100);
    progress(&mut t, 3, 10, 100);
    assert!(tick(&mut t, 10 * LAG).is_empty());
    assert!(t.is_caught_up(NodeId(2)));
}

#[test]
fn a_settled_partition_needs_no_polls_until_an_input_moves() {
    let mut t = leader();
    hw(&mut t, 10);
    progress(&mut t, 2, 10, 100);
    progress(&mut t, 3, 10, 100);
    assert!(t.is_settled(LogIndex(10), LogIndex(10)));
    assert!(!t.is_settled(LogIndex(11), LogIndex(10)), "the log grew");
    assert!(
        !t.is_settled(LogIndex(10), LogIndex(9)),
        "another high watermark"
    );
    // No polls for a long while; then the log grows and 3 stops answering.
    let later = 50 * LAG;
    append(&mut t, 20, later);
    progress(&mut t, 2, 20, later + 10);
    assert!(
        tick(&mut t, later + LAG).is_empty(),
        "3 was caught up until the log grew"
    );
    assert_eq!(
        changes(&tick(&mut t, later + LAG + 1)),
        vec![IsrChange::Shrink {
            replica: NodeId(3),
            lag_ms: LAG + 1
        }]
    );
    assert!(
        !t.is_settled(LogIndex(20), LogIndex(10)),
        "a change pending"
    );
    assert!(!leader_with(&[1, 2, 3], &[1, 2]).is_settled(LogIndex(10), LogIndex(0)));
}

#[test]
fn a_follower_one_append_behind_under_constant_load_stays_in() {
    let mut t = leader();
    for i in 1..200u64 {
        let now = i * 100;
        append(&mut t, 10 + i, now);
        // Each answer holds what the leader had at the previous answer.
        progress(&mut t, 2, 10 + i - 1, now + 50);
        assert!(changes(&tick(&mut t, now + 60))
            .iter()
            .all(|c| !matches!(c, IsrChange::Shrink { replica, .. } if *replica == NodeId(2))));
        if t.pending().is_some() {
            commit_pending(&mut t);
        }
    }
    assert!(t.isr().contains(&NodeId(2)));
    assert!(!t.isr().contains(&NodeId(3)), "3 never answered");
}

#[test]
fn initial_isr_members_get_one_lag_window() {
    let mut t = leader();
    assert!(tick(&mut t, LAG).is_empty());
    let a = tick(&mut t, LAG + 1);
    assert_eq!(
        changes(&a),
        vec![
            IsrChange::Shrink {
                replica: NodeId(2),
                lag_ms: LAG + 1
            },
            IsrChange::Shrink {
                replica: NodeId(3),
                lag_ms: LAG + 1
            },
        ]
    );
}

#[test]
fn a_returning_follower_joins_only_at_the_high_watermark_and_caught_up() {
    let mut t = leader_with(&[1, 2, 3], &[1, 2]);
    append(&mut t, 30, 100);
    hw(&mut t, 25);
    let back = 100 + LAG + 1;
    progress(&mut t, 2, 30, back);
    assert!(progress(&mut t, 3, 20, back).is_empty(), "below the hw");
    assert!(
        progress(&mut t, 3, 26, back).is_empty(),
        "the log ended at 26 or less more than the lag bound ago"
    );
    assert!(!t.is_caught_up(NodeId(3)));
    let a = progress(&mut t, 3, 30, back + 1);
    assert_eq!(changes(&a), vec![IsrChange::Expand { replica: NodeId(3) }]);
    assert_eq!(t.isr(), ids(&[1, 2]), "not counted until recorded");
    assert_eq!(t.maximal_isr(), ids(&[1, 2, 3]));
    commit_pending(&mut t);
    assert_eq!(t.isr(), ids(&[1, 2, 3]));
}

#[test]
fn a_follower_must_hold_the_leaders_epoch_start_to_join() {
    // The high watermark (0 here) lags the log end at election (10).
    let mut t = leader_with(&[1, 2], &[1]);
    assert!(progress(&mut t, 2, 9, 100).is_empty());
    assert_eq!(changes(&progress(&mut t, 2, 10, 200)).len(), 1);
}

#[test]
fn the_leader_proposes_itself_into_a_record_that_lacks_it() {
    let mut t = IsrTracker::new(IsrConfig::default(), NodeId(1));
    t.step(Event::BecameLeader {
        replicas: ids(&[1, 2, 3]),
        initial_isr: ids(&[2, 7]),
        isr_epoch: IsrEpoch(4),
        log_end: LogIndex(0),
        now_ms: 0,
    })
    .expect("accepted");
    assert_eq!(
        t.isr(),
        ids(&[1, 2]),
        "the leader is in, the non-replica out"
    );
    let a = t.take_actions();
    assert_eq!(changes(&a), vec![IsrChange::Expand { replica: NodeId(1) }]);
}

#[test]
fn the_leader_is_never_shrunk_and_must_be_a_replica() {
    let mut t = leader();
    append(&mut t, 100, 0);
    let a = tick(&mut t, 100 * LAG);
    let shrunk: Vec<_> = changes(&a)
        .into_iter()
        .map(|c| match c {
            IsrChange::Shrink { replica, .. } => replica,
            IsrChange::Expand { replica } => panic!("expanded {replica}"),
        })
        .collect();
    assert_eq!(shrunk, vec![NodeId(2), NodeId(3)]);
    let mut other = IsrTracker::new(IsrConfig::default(), NodeId(9));
    assert_eq!(
        other.step(Event::BecameLeader {
            replicas: ids(&[1, 2, 3]),
            initial_isr: ids(&[1, 2, 3]),
            isr_epoch: IsrEpoch(0),
            log_end: LogIndex(0),
            now_ms: 0,
        }),
        Err(Refused::LeaderNotAReplica(NodeId(9)))
    );
}

#[test]
fn a_removed_replica_leaves_at_once_even_from_a_pending_change() {
    let mut t = leader_with(&[1, 2, 3], &[1, 2]);
    progress(&mut t, 2, 10, 100);
    assert_eq!(changes(&progress(&mut t, 3, 10, 100)).len(), 1);
    step(
        &mut t,
        Event::ReplicasChanged {
            replicas: ids(&[1, 2]),
        },
    );
    assert_eq!(t.maximal_isr(), ids(&[1, 2]));
    // The metadata log answers with the proposal made before the removal.
    step(
        &mut t,
        Event::IsrCommitted {
            isr: ids(&[1, 2, 3]),
            epoch: IsrEpoch(2),
        },
    );
    assert_eq!(t.isr(), ids(&[1, 2]));
    assert!(!t.is_caught_up(NodeId(3)));
    assert!(progress(&mut t, 3, 10, 200).is_empty(), "not a replica");
}

#[test]
fn removing_the_leader_ends_the_leadership() {
    let mut t = leader();
    step(
        &mut t,
        Event::ReplicasChanged {
            replicas: ids(&[2, 3]),
        },
    );
    assert!(!t.is_leader());
    assert!(t.isr().is_empty());
    assert!(tick(&mut t, 10 * LAG).is_empty());
}

#[test]
fn nothing_is_proposed_while_a_change_is_pending() {
    let mut t = leader();
    progress(&mut t, 2, 10, 100);
    append(&mut t, 20, 200);
    progress(&mut t, 2, 20, 300);
    assert_eq!(changes(&tick(&mut t, LAG + 1)).len(), 1, "3 leaves");
    // 2 stops too: no second proposal until the first is answered.
    append(&mut t, 30, LAG + 2);
    assert!(tick(&mut t, 3 * LAG).is_empty());
    assert!(progress(&mut t, 3, 30, 3 * LAG).is_empty());
    commit_pending(&mut t);
    // Now 2 leaves and 3, caught up again, joins, in one proposal.
    let a = tick(&mut t, 3 * LAG + 1);
    assert_eq!(
        changes(&a),
        vec![
            IsrChange::Shrink {
                replica: NodeId(2),
                lag_ms: 3 * LAG + 1 - (LAG + 2)
            },
            IsrChange::Expand { replica: NodeId(3) },
        ]
    );
}

#[test]
fn a_rejected_change_leaves_the_recorded_isr_and_is_retried_later() {
    let mut t = leader();
    progress(&mut t, 2, 10, 100);
    append(&mut t, 20, 200);
    progress(&mut t, 2, 20, 300);
    let a = tick(&mut t, LAG + 1);
    let Action::IsrChanged { proposal, .. } = a[0].clone();
    step(
        &mut t,
        Event::IsrRejected {
            proposal: ProposalId(proposal.0 + 100),
        },
    );
    assert!(t.pending().is_some(), "a stray rejection changes nothing");
    assert!(step(&mut t, Event::IsrRejected { proposal }).is_empty());
    assert_eq!(t.pending(), None);
    assert_eq!(t.isr(), ids(&[1, 2, 3]));
    let again = tick(&mut t, LAG + 2);
    let Action::IsrChanged {
        proposal: second, ..
    } = &again[0];
    assert!(*second > proposal, "never reused");
}

#[test]
fn a_newer_record_from_another_writer_replaces_the_pending_change() {
    let mut t = leader();
    progress(&mut t, 2, 10, 100);
    progress(&mut t, 3, 10, 100);
    append(&mut t, 20, 200);
    progress(&mut t, 2, 20, 300);
    assert_eq!(changes(&tick(&mut t, LAG + 201)).len(), 1);
    step(
        &mut t,
        Event::IsrCommitted {
            isr: ids(&[1, 2, 3]),
            epoch: IsrEpoch(1),
        },
    );
    assert!(t.pending().is_some(), "a stale record is ignored");
    step(
        &mut t,
        Event::IsrCommitted {
            isr: ids(&[1, 3]),
            epoch: IsrEpoch(5),
        },
    );
    assert_eq!(t.pending(), None);
    assert_eq!(t.isr(), ids(&[1, 3]));
    assert_eq!(t.epoch(), Some(IsrEpoch(5)));
}

#[test]
fn acks_all_waits_for_the_maximal_isr_and_counts_the_recorded_one() {
    let mut t = leader_with(&[1, 2, 3], &[1, 2]);
    append(&mut t, 20, 100);
    progress(&mut t, 2, 20, 150);
    hw(&mut t, 20);
    assert_eq!(t.acks_all(LogIndex(20), 2), AcksAll::Ack);
    assert_eq!(t.acks_all(LogIndex(21), 2), AcksAll::Wait, "not committed");
    assert_eq!(
        t.acks_all(LogIndex(20), 3),
        AcksAll::NotEnoughReplicasAfterAppend
    );
    assert!(t.under_min_isr(3));
    assert!(!t.under_min_isr(2));
    // 3 catches up and is proposed: acks now wait for it, min ISR does not
    // count it yet.
    assert_eq!(changes(&progress(&mut t, 3, 20, 200)).len(), 1);
    append(&mut t, 30, 300);
    progress(&mut t, 2, 30, 300);
    hw(&mut t, 30);
    assert_eq!(t.acks_all(LogIndex(30), 2), AcksAll::Wait);
    assert!(t.under_min_isr(3));
    progress(&mut t, 3, 30, 310);
    assert_eq!(t.acks_all(LogIndex(30), 2), AcksAll::Ack);
    commit_pending(&mut t);
    assert!(!t.under_min_isr(3));
}

#[test]
fn acks_all_waits_for_a_shrinking_member_until_the_shrink_is_recorded() {
    let mut t = leader();
    progress(&mut t, 2, 10, 100);
    append(&mut t, 20, 200);
    progress(&mut t, 2, 20, 300);
    hw(&mut t, 20);
    assert_eq!(changes(&tick(&mut t, LAG + 1)).len(), 1, "3 leaves");
    assert_eq!(t.acks_all(LogIndex(20), 1), AcksAll::Wait, "3 lacks 20");
    commit_pending(&mut t);
    assert_eq!(t.acks_all(LogIndex(20), 2), AcksAll::Ack);
}

#[test]
fn a_new_leadership_forgets_the_followers() {
    let mut t = leader();
    progress(&mut t, 2, 10, 100);
    step(&mut t, Event::SteppedDown);
    assert!(progress(&mut t, 2, 10, 200).is_empty());
    assert_eq!(t.match_index(NodeId(2)), None);
    step(
        &mut t,
        Event::BecameLeader {
            replicas: ids(&[1, 2, 3]),
            initial_isr: ids(&[1, 2]),
            isr_epoch: IsrEpoch(3),
            log_end: LogIndex(12),
            now_ms: 500,
        },
    );
    assert_eq!(t.match_index(NodeId(2)), None);
    assert_eq!(t.last_caught_up_ms(NodeId(2)), Some(500));
    assert_eq!(t.last_caught_up_ms(NodeId(3)), None);
}

#[test]
fn the_same_events_give_the_same_actions() {
    let run = || {
        let mut t = leader();
        let mut out = Vec::new();
        for i in 0..50u64 {
            append(&mut t, 10 + i * 3, i * 700);
            out.extend(progress(&mut t, 2 + i % 2, 10 + i * 2, i * 700 + 5));
            out.extend(tick(&mut t, i * 700 + 10));
            if i % 7 == 0 && t.pending().is_some() {
                commit_pending(&mut t);
            }
        }
        (out, t.isr())
    };
    assert_eq!(run(), run());
}
