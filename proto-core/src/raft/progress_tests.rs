//! Unit tests for the leader's flow control: the in-flight window and how a
//! follower's progress moves on acknowledgements and rejections.

use super::progress::{Inflights, Progress, ReplicationState};
use super::types::LogIndex;

fn probing(matched: u64, next: u64) -> Progress {
    let mut p = Progress::new(LogIndex(next));
    p.matched = LogIndex(matched);
    p
}

fn replicating(matched: u64, next: u64) -> Progress {
    let mut p = probing(matched, next);
    p.state = ReplicationState::Replicate;
    p
}

#[test]
fn inflights_fill_up_by_message_count() {
    let mut inf = Inflights::default();
    for last in 1..=3 {
        assert!(!inf.full(3, 0));
        inf.add(LogIndex(last), 10);
    }
    assert!(inf.full(3, 0));
    assert_eq!(inf.len(), 3);

    inf.free_to(LogIndex(1));
    assert!(!inf.full(3, 0), "an acknowledgement frees a slot");
    assert_eq!(inf.len(), 2);
}

#[test]
fn inflights_fill_up_by_bytes() {
    let mut inf = Inflights::default();
    inf.add(LogIndex(1), 60);
    assert!(!inf.full(100, 100));
    inf.add(LogIndex(2), 40);
    assert!(inf.full(100, 100), "the byte limit is reached at equality");
    inf.free_to(LogIndex(1));
    assert!(!inf.full(100, 100));
}

#[test]
fn inflights_without_a_byte_limit_count_messages_only() {
    let mut inf = Inflights::default();
    inf.add(LogIndex(1), usize::MAX / 2);
    assert!(!inf.full(2, 0));
    inf.add(LogIndex(2), 1);
    assert!(inf.full(2, 0));
}

#[test]
fn inflights_free_in_order_up_to_the_acknowledged_index() {
    let mut inf = Inflights::default();
    inf.add(LogIndex(3), 10);
    inf.add(LogIndex(5), 10);
    inf.add(LogIndex(9), 10);

    inf.free_to(LogIndex(2));
    assert_eq!(inf.len(), 3, "an index before the oldest frees nothing");
    inf.free_to(LogIndex(6));
    assert_eq!(inf.len(), 1, "frees every append ending at or before 6");
    inf.free_to(LogIndex(100));
    assert!(inf.is_empty());
    assert!(!inf.full(1, 1), "the byte count returned to zero");
}

#[test]
fn inflights_reset_forgets_everything() {
    let mut inf = Inflights::default();
    inf.add(LogIndex(1), 50);
    inf.add(LogIndex(2), 50);
    inf.reset();
    assert!(inf.is_empty());
    assert!(!inf.full(1, 1));
}

#[test]
fn paused_depends_on_the_state() {
    let mut p = probing(0, 1);
    assert!(!p.is_paused(1, 0));
    p.state = ReplicationState::Probe { paused: true };
    assert!(p.is_paused(1, 0));

    let mut p = replicating(0, 1);
    assert!(!p.is_paused(1, 0));
    p.inflights.add(LogIndex(1), 10);
    assert!(p.is_paused(1, 0), "a full window pauses replication");
    assert!(!p.is_paused(2, 0));

    p.become_snapshot(LogIndex(10));
    assert!(p.is_paused(100, 0), "no appends while a snapshot is sent");
}

#[test]
fn maybe_update_raises_matched_and_unpauses_a_probe() {
    let mut p = probing(0, 4);
    p.state = ReplicationState::Probe { paused: true };
    assert!(p.maybe_update(LogIndex(5)));
    assert_eq!(p.matched, LogIndex(5));
    assert_eq!(p.next, LogIndex(6));
    assert_eq!(p.state, ReplicationState::Probe { paused: false });

    assert!(!p.maybe_update(LogIndex(3)), "a stale acknowledgement");
    assert_eq!(p.matched, LogIndex(5));
    assert_eq!(p.next, LogIndex(6), "next never moves back on an ack");
}

#[test]
fn maybe_update_keeps_next_ahead_when_replicating() {
    let mut p = replicating(2, 10);
    assert!(p.maybe_update(LogIndex(4)));
    assert_eq!(p.next, LogIndex(10), "appends up to 9 are still in flight");
}

#[test]
fn maybe_decrease_to_while_replicating_falls_back_to_matched() {
    let mut p = replicating(5, 10);
    assert!(
        !p.maybe_decrease_to(LogIndex(5), LogIndex(5)),
        "a rejection at or below matched is stale"
    );
    assert!(!p.maybe_decrease_to(LogIndex(3), LogIndex(0)));
    assert_eq!(p.next, LogIndex(10));

    assert!(p.maybe_decrease_to(LogIndex(7), LogIndex(2)));
    assert_eq!(p.next, LogIndex(6), "restart right after matched");
    assert_eq!(p.state, ReplicationState::Replicate);
}

#[test]
fn maybe_decrease_to_while_probing_uses_the_hint() {
    // (matched, next, rejected, hint) -> next, in the spirit of etcd's
    // TestProgressMaybeDecr.
    let cases = [
        ((0, 10, 9, 9), 9),  // hint at the rejected index: step back one
        ((0, 10, 9, 3), 4),  // hint jumps back over a whole term
        ((0, 10, 9, 0), 1),  // the logs share nothing
        ((5, 10, 9, 2), 6),  // never below matched + 1
        ((0, 10, 9, 20), 9), // a hint past the rejection does not move next forward
        ((0, 1, 0, 0), 1),   // rejecting the empty prefix keeps next at 1
    ];
    for ((matched, next, rejected, hint), want) in cases {
        let mut p = probing(matched, next);
        p.state = ReplicationState::Probe { paused: true };
        assert!(
            p.maybe_decrease_to(LogIndex(rejected), LogIndex(hint)),
            "case {:?}",
            (matched, next, rejected, hint)
        );
        assert_eq!(
            p.next,
            LogIndex(want),
            "case {:?}",
            (matched, next, rejected, hint)
        );
        assert_eq!(
            p.state,
            ReplicationState::Probe { paused: false },
            "a rejection answers the probe"
        );
    }
}

#[test]
fn maybe_decrease_to_while_probing_ignores_answers_to_older_probes() {
    let mut p = probing(0, 10);
    assert!(!p.maybe_decrease_to(LogIndex(7), LogIndex(3)));
    assert_eq!(p.next, LogIndex(10));
}

#[test]
fn become_probe_restarts_after_matched_or_the_snapshot() {
    let mut p = replicating(5, 20);
    p.inflights.add(LogIndex(19), 10);
    p.become_probe();
    assert_eq!(p.next, LogIndex(6));
    assert_eq!(p.state, ReplicationState::Probe { paused: false });
    assert!(p.inflights.is_empty());

    let mut p = probing(5, 6);
    p.become_snapshot(LogIndex(30));
    p.become_probe();
    assert_eq!(
        p.next,
        LogIndex(31),
        "after a snapshot, probe past what it covered"
    );
}

#[test]
fn become_replicate_streams_from_matched() {
    let mut p = probing(7, 3);
    p.inflights.add(LogIndex(2), 1);
    p.become_replicate();
    assert_eq!(p.next, LogIndex(8));
    assert_eq!(p.state, ReplicationState::Replicate);
    assert!(p.inflights.is_empty());
}
