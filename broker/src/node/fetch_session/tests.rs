//! The session rules on their own: contexts, epochs, what an incremental
//! answer sends, the read order, the cache's bounds.

use super::*;

fn tp(topic: &str, partition: i32) -> SessionPartition {
    SessionPartition {
        topic: TopicRef::Name(topic.to_string()),
        partition,
    }
}

fn at(fetch_offset: i64) -> PartitionFetch {
    PartitionFetch {
        fetch_offset,
        max_bytes: 1 << 20,
    }
}

/// A quiet answer: no records, no error, these offsets.
fn quiet(high_watermark: i64) -> PartitionAnswer {
    PartitionAnswer {
        high_watermark,
        last_stable_offset: high_watermark,
        log_start_offset: 0,
        has_records: false,
        error: false,
    }
}

fn with_records(high_watermark: i64) -> PartitionAnswer {
    PartitionAnswer {
        has_records: true,
        ..quiet(high_watermark)
    }
}

fn failed() -> PartitionAnswer {
    PartitionAnswer {
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        has_records: false,
        error: true,
    }
}

fn request<'a>(
    id: i32,
    epoch: i32,
    partitions: &'a [(SessionPartition, PartitionFetch)],
    forgotten: &'a [SessionPartition],
) -> SessionRequest<'a> {
    SessionRequest {
        id,
        epoch,
        by_id: false,
        partitions,
        forgotten,
    }
}

/// A full fetch at epoch 0 of `parts`, every one answered quietly at
/// high watermark 10; the new session's id.
fn create(
    cache: &mut FetchSessionCache,
    now_ms: u64,
    parts: &[(SessionPartition, PartitionFetch)],
) -> i32 {
    let ctx = cache.handle_request(now_ms, &request(0, 0, parts, &[]));
    assert_eq!(ctx, Ok(FetchContext::Full));
    cache.handle_full_answer(now_ms, false, parts.iter().map(|(k, f)| (k, *f, quiet(10))))
}

/// An incremental fetch naming nothing.
fn poll(
    cache: &mut FetchSessionCache,
    now_ms: u64,
    id: i32,
    epoch: i32,
) -> Result<FetchContext, SessionError> {
    cache.handle_request(now_ms, &request(id, epoch, &[], &[]))
}

fn read_order(cache: &FetchSessionCache, id: i32, epoch: i32) -> Vec<(SessionPartition, i64)> {
    cache
        .partitions(id, epoch)
        .expect("the session")
        .map(|(k, f)| (k.clone(), f.fetch_offset))
        .collect()
}

#[test]
fn a_full_fetch_at_epoch_zero_creates_a_session_and_epochs_count_from_one() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(&mut cache, 0, &[(tp("a", 0), at(5)), (tp("a", 1), at(7))]);
    assert_ne!(id, NO_SESSION);
    assert!(id > 0, "Kafka's session ids are positive: {id}");
    for epoch in 1..=3 {
        assert_eq!(
            poll(&mut cache, epoch as u64, id, epoch),
            Ok(FetchContext::Incremental { id, epoch })
        );
    }
    assert_eq!(
        read_order(&cache, id, 3),
        vec![(tp("a", 0), 5), (tp("a", 1), 7)]
    );
}

#[test]
fn a_sessionless_fetch_creates_nothing() {
    let mut cache = FetchSessionCache::new(1);
    let parts = [(tp("a", 0), at(0))];
    assert_eq!(
        cache.handle_request(0, &request(0, -1, &parts, &[])),
        Ok(FetchContext::Sessionless)
    );
    assert!(cache.sessions.is_empty());
}

#[test]
fn an_incremental_fetch_adds_updates_and_forgets_partitions() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(&mut cache, 0, &[(tp("a", 0), at(0)), (tp("a", 1), at(0))]);
    // Update a/1's offset, add b/0.
    let named = [(tp("a", 1), at(40)), (tp("b", 0), at(3))];
    assert!(cache
        .handle_request(1, &request(id, 1, &named, &[]))
        .is_ok());
    assert_eq!(
        read_order(&cache, id, 1),
        vec![(tp("a", 0), 0), (tp("a", 1), 40), (tp("b", 0), 3)]
    );
    // Forget a/0 (and a partition the session never had).
    let forgotten = [tp("a", 0), tp("zzz", 9)];
    assert!(cache
        .handle_request(2, &request(id, 2, &[], &forgotten))
        .is_ok());
    assert_eq!(
        read_order(&cache, id, 2),
        vec![(tp("a", 1), 40), (tp("b", 0), 3)]
    );
}

#[test]
fn the_fetch_offset_moves_only_when_the_client_sends_one() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(&mut cache, 0, &[(tp("a", 0), at(0))]);
    poll(&mut cache, 1, id, 1).unwrap();
    let answers = [(tp("a", 0), with_records(20))];
    let send = cache.handle_incremental_answer(id, 1, answers.iter().map(|(k, a)| (k, *a)));
    assert_eq!(send, Ok(vec![true]));
    poll(&mut cache, 2, id, 2).unwrap();
    assert_eq!(
        read_order(&cache, id, 2),
        vec![(tp("a", 0), 0)],
        "records returned do not move it"
    );
}

#[test]
fn an_incremental_answer_sends_only_what_changed() {
    let mut cache = FetchSessionCache::new(1);
    let parts = [
        (tp("a", 0), at(10)),
        (tp("a", 1), at(10)),
        (tp("a", 2), at(10)),
    ];
    let id = create(&mut cache, 0, &parts);
    let mut epoch = 0;
    let mut answer = |cache: &mut FetchSessionCache, answers: [PartitionAnswer; 3]| {
        epoch += 1;
        poll(cache, epoch as u64, id, epoch).unwrap();
        let keys: Vec<SessionPartition> = cache
            .partitions(id, epoch)
            .unwrap()
            .map(|(k, _)| k.clone())
            .collect();
        let send = cache
            .handle_incremental_answer(id, epoch, keys.iter().zip(answers))
            .unwrap();
        keys.into_iter()
            .zip(send)
            .filter(|(_, s)| *s)
            .map(|(k, _)| k.partition)
            .collect::<Vec<_>>()
    };
    // The full answer told the client high watermark 10 everywhere.
    assert_eq!(
        answer(&mut cache, [quiet(10), quiet(10), quiet(10)]),
        Vec::<i32>::new()
    );
    // New records; a high watermark change alone; a log start change alone.
    let mut moved_start = quiet(10);
    moved_start.log_start_offset = 4;
    assert_eq!(
        answer(&mut cache, [with_records(12), quiet(11), moved_start]),
        vec![0, 1, 2]
    );
    // Only partition 0 returned records, so it alone moved to the back: the
    // read order is now 1, 2, 0. Nothing changed since.
    assert_eq!(
        answer(&mut cache, [quiet(11), moved_start, quiet(12)]),
        Vec::<i32>::new()
    );
    // A last stable offset change alone counts too.
    let mut lso = quiet(12);
    lso.last_stable_offset = 11;
    assert_eq!(answer(&mut cache, [quiet(11), moved_start, lso]), vec![0]);
}

#[test]
fn an_error_is_always_sent_and_so_is_the_first_answer_after_it() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(&mut cache, 0, &[(tp("a", 0), at(0))]);
    let key = tp("a", 0);
    let mut send = |epoch: i32, a: PartitionAnswer| {
        poll(&mut cache, epoch as u64, id, epoch).unwrap();
        cache
            .handle_incremental_answer(id, epoch, [(&key, a)])
            .unwrap()[0]
    };
    assert!(send(1, failed()));
    assert!(send(2, failed()), "a lasting error is sent every time");
    assert!(
        send(3, quiet(10)),
        "the partition recovered at the offsets the client last saw"
    );
    assert!(!send(4, quiet(10)));
}

#[test]
fn answered_partitions_move_to_the_back_of_the_read_order() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(
        &mut cache,
        0,
        &[
            (tp("a", 0), at(0)),
            (tp("a", 1), at(0)),
            (tp("a", 2), at(0)),
        ],
    );
    poll(&mut cache, 1, id, 1).unwrap();
    let (a0, a1, a2) = (tp("a", 0), tp("a", 1), tp("a", 2));
    let answers = [(&a0, with_records(10)), (&a1, quiet(10)), (&a2, quiet(10))];
    assert_eq!(
        cache.handle_incremental_answer(id, 1, answers),
        Ok(vec![true, false, false])
    );
    poll(&mut cache, 2, id, 2).unwrap();
    let order: Vec<i32> = read_order(&cache, id, 2)
        .into_iter()
        .map(|(k, _)| k.partition)
        .collect();
    assert_eq!(order, vec![1, 2, 0]);
}

#[test]
fn a_wrong_epoch_and_an_unknown_session_are_refused_with_their_codes() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(&mut cache, 0, &[(tp("a", 0), at(0))]);
    assert_eq!(poll(&mut cache, 1, id, 2), Err(SessionError::InvalidEpoch));
    assert_eq!(SessionError::InvalidEpoch.code(), 71);
    assert_eq!(
        poll(&mut cache, 1, id.wrapping_add(1), 1),
        Err(SessionError::NotFound)
    );
    assert_eq!(
        poll(&mut cache, 1, NO_SESSION, 1),
        Err(SessionError::NotFound)
    );
    assert_eq!(SessionError::NotFound.code(), 70);
    // The refusals changed nothing: epoch 1 is still the next one.
    assert!(poll(&mut cache, 1, id, 1).is_ok());
    // A duplicate of that request is refused.
    assert_eq!(poll(&mut cache, 1, id, 1), Err(SessionError::InvalidEpoch));
}

#[test]
fn an_answer_overtaken_by_a_later_request_of_its_session_is_refused() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(&mut cache, 0, &[(tp("a", 0), at(0))]);
    poll(&mut cache, 1, id, 1).unwrap();
    poll(&mut cache, 2, id, 2).unwrap();
    assert!(matches!(
        cache.partitions(id, 1),
        Err(SessionError::InvalidEpoch)
    ));
    let key = tp("a", 0);
    assert_eq!(
        cache.handle_incremental_answer(id, 1, [(&key, quiet(10))]),
        Err(SessionError::InvalidEpoch)
    );
    assert!(cache.partitions(id, 2).is_ok());
}

#[test]
fn switching_between_topic_names_and_ids_is_refused() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(&mut cache, 0, &[(tp("a", 0), at(0))]);
    let mut by_id = request(id, 1, &[], &[]);
    by_id.by_id = true;
    assert_eq!(
        cache.handle_request(1, &by_id),
        Err(SessionError::TopicIdUsage)
    );
    assert_eq!(SessionError::TopicIdUsage.code(), 106);
}

#[test]
fn epoch_minus_one_closes_the_session_and_epoch_zero_replaces_it() {
    let mut cache = FetchSessionCache::new(1);
    let parts = [(tp("a", 0), at(0))];
    let id = create(&mut cache, 0, &parts);
    assert_eq!(
        cache.handle_request(1, &request(id, -1, &parts, &[])),
        Ok(FetchContext::Sessionless)
    );
    assert_eq!(poll(&mut cache, 2, id, 1), Err(SessionError::NotFound));

    let old = create(&mut cache, 3, &parts);
    assert_eq!(
        cache.handle_request(4, &request(old, 0, &parts, &[])),
        Ok(FetchContext::Full)
    );
    let new = cache.handle_full_answer(4, false, parts.iter().map(|(k, f)| (k, *f, quiet(10))));
    assert_ne!(new, NO_SESSION);
    assert_ne!(new, old);
    assert_eq!(cache.sessions.len(), 1);
    assert_eq!(poll(&mut cache, 5, old, 1), Err(SessionError::NotFound));
    assert!(poll(&mut cache, 5, new, 1).is_ok());
}

#[test]
fn a_session_left_without_partitions_is_closed() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(&mut cache, 0, &[(tp("a", 0), at(0))]);
    assert_eq!(
        cache.handle_request(1, &request(id, 1, &[], &[tp("a", 0)])),
        Ok(FetchContext::Sessionless)
    );
    assert!(cache.sessions.is_empty());
}

#[test]
fn an_idle_session_expires() {
    let mut cache = FetchSessionCache::new(1);
    let id = create(&mut cache, 0, &[(tp("a", 0), at(0))]);
    // Used just in time, twice: each use restarts the clock.
    assert!(poll(&mut cache, IDLE_EXPIRY_MS, id, 1).is_ok());
    assert!(poll(&mut cache, 2 * IDLE_EXPIRY_MS, id, 2).is_ok());
    assert_eq!(
        poll(&mut cache, 3 * IDLE_EXPIRY_MS + 1, id, 3),
        Err(SessionError::NotFound)
    );
    assert!(cache.sessions.is_empty() && cache.by_last_use.is_empty());
}

#[test]
fn a_full_cache_evicts_a_smaller_old_session_only_for_a_larger_newcomer() {
    let mut cache = FetchSessionCache::with_limits(1, 2, IDLE_EXPIRY_MS);
    let one = [(tp("a", 0), at(0))];
    let two = [(tp("a", 0), at(0)), (tp("a", 1), at(0))];
    let a = create(&mut cache, 0, &one);
    let b = create(&mut cache, 1, &two);
    // Both young: a third client gets no session, and nobody loses theirs.
    assert_eq!(create(&mut cache, 2, &two), NO_SESSION);
    // Keep both alive past the age guard.
    let half = IDLE_EXPIRY_MS / 2;
    assert!(poll(&mut cache, half, a, 1).is_ok());
    assert!(poll(&mut cache, half, b, 1).is_ok());
    let t = IDLE_EXPIRY_MS + 10;
    assert!(poll(&mut cache, t, a, 2).is_ok());
    assert!(poll(&mut cache, t + 1, b, 2).is_ok());
    // A newcomer no larger than the smallest old session evicts nobody, so
    // clients cannot push each other out in a cascade.
    assert_eq!(create(&mut cache, t + 2, &one), NO_SESSION);
    assert!(poll(&mut cache, t + 3, a, 3).is_ok());
    // A larger one evicts the smallest old session.
    let c = create(&mut cache, t + 4, &two);
    assert_ne!(c, NO_SESSION);
    assert_eq!(poll(&mut cache, t + 5, a, 4), Err(SessionError::NotFound));
    assert!(poll(&mut cache, t + 5, b, 3).is_ok());
    assert!(poll(&mut cache, t + 5, c, 1).is_ok());
    assert_eq!(cache.sessions.len(), 2);
}

#[test]
fn session_ids_are_nonzero_distinct_and_follow_the_seed() {
    let draw = |seed: u64| {
        let mut cache = FetchSessionCache::new(seed);
        (0..50)
            .map(|i| create(&mut cache, i, &[(tp("a", 0), at(0))]))
            .collect::<Vec<_>>()
    };
    let ids = draw(7);
    assert!(ids.iter().all(|&id| id > 0));
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
    assert_eq!(draw(7), ids, "the same seed draws the same ids");
    assert_ne!(draw(8), ids);
}

#[test]
fn epochs_wrap_to_one() {
    assert_eq!(next_epoch(1), 2);
    assert_eq!(next_epoch(i32::MAX), 1);
}
