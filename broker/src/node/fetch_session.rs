//! Incremental fetch sessions (KIP-227) as plain data: the partitions a
//! client's session holds, what the client last asked of each and was last
//! told about it, and the bounded cache of sessions.
//!
//! A session spares a consumer of many partitions from resending all of them
//! on every fetch. A full fetch at epoch 0 creates one and its response carries
//! the session id; each incremental fetch (epoch 1, 2, ...) names only the
//! partitions whose fetch offset or byte limit changed and those to forget,
//! and its response holds only the partitions with something new. The rules
//! are Kafka's (`kafka.server.FetchSession` and `FetchSessionCache`):
//!
//! | session id | epoch | meaning |
//! |---|---|---|
//! | 0 | -1 | full fetch, no session |
//! | 0 | 0 | full fetch that creates a session |
//! | id | -1 | close `id`; full fetch, no session |
//! | id | 0 | close `id`; full fetch that creates a new session |
//! | id | n > 0 | incremental fetch; `n` must be the session's next epoch |
//!
//! The cache holds at most [`MAX_SESSIONS`]; one unused for longer than
//! [`IDLE_EXPIRY_MS`] is dropped. When it is full, a new session replaces the
//! smallest session older than [`IDLE_EXPIRY_MS`] if the new one has more
//! partitions, and otherwise is not created (the response is sessionless):
//! Kafka's `tryEvict`. Both guards stop clients from evicting each other in a
//! cascade, each victim's full fetch evicting the next. (Kafka also protects
//! followers' sessions; no follower fetches yet.)
//!
//! Nothing here reads a clock or draws entropy: time arrives as `now_ms`, and
//! session ids come from a generator seeded with the node's seed.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError;

#[cfg(test)]
mod tests;

/// Sessions one node keeps: Kafka's `max.incremental.fetch.session.cache.slots`
/// default.
pub(super) const MAX_SESSIONS: usize = 1000;

/// A session unused for longer is dropped, and a session no older than this
/// is never evicted to make room: Kafka's `min.incremental.fetch.session.eviction.ms`
/// default.
pub(super) const IDLE_EXPIRY_MS: u64 = 120_000;

/// The session id of a request or response without a session.
pub(super) const NO_SESSION: i32 = 0;

/// The epoch of a full fetch that asks for a new session.
const INITIAL_EPOCH: i32 = 0;

/// The epoch of a full fetch that wants no session.
const FINAL_EPOCH: i32 = -1;

/// Keeps session ids apart from the other values drawn from the node's seed.
const ID_STREAM: u64 = 0x6665_7463_6873_6573; // "fetchses"

/// How a request names a topic: by name before Fetch v13, by id from v13. A
/// session keys its partitions the way its client names them, so that its
/// responses can name them the same way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum TopicRef {
    /// Fetch v7-v12.
    Name(String),
    /// Fetch v13 and later.
    Id(u128),
}

/// A partition as the client names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct SessionPartition {
    /// The topic, by name or id.
    pub(super) topic: TopicRef,
    /// The partition index.
    pub(super) partition: i32,
}

/// What a fetch asks of one partition. A session keeps the last values the
/// client sent: the client names a partition again only when these change, so
/// the fetch offset moves when the client says so, not when records are
/// returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PartitionFetch {
    /// Where to read from.
    pub(super) fetch_offset: i64,
    /// The partition's byte limit.
    pub(super) max_bytes: i32,
}

/// What a response says about one partition, as far as a session cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PartitionAnswer {
    /// The high watermark reported.
    pub(super) high_watermark: i64,
    /// The last stable offset reported.
    pub(super) last_stable_offset: i64,
    /// The log start offset reported.
    pub(super) log_start_offset: i64,
    /// Some records come back.
    pub(super) has_records: bool,
    /// The partition is answered with an error.
    pub(super) error: bool,
}

/// Why a request's session fields cannot be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum SessionError {
    /// No session has the request's id (never created, closed, expired or
    /// evicted): the client starts over with a full fetch.
    #[error("fetch session not found")]
    NotFound,
    /// The request's epoch is not the session's next one (a lost response,
    /// or a duplicate request): the client closes the session and recreates it.
    #[error("wrong fetch session epoch")]
    InvalidEpoch,
    /// The request names topics by name and the session by id, or the other
    /// way round.
    #[error("fetch session topic id usage changed")]
    TopicIdUsage,
}

impl SessionError {
    /// The Kafka error code of the response's top-level `error_code`.
    pub(super) fn code(self) -> i16 {
        match self {
            SessionError::NotFound => ResponseError::FetchSessionIdNotFound.code(),
            SessionError::InvalidEpoch => ResponseError::InvalidFetchSessionEpoch.code(),
            SessionError::TopicIdUsage => ResponseError::FetchSessionTopicIdError.code(),
        }
    }
}

/// A fetch request's session fields and partitions.
#[derive(Clone, Copy, Debug)]
pub(super) struct SessionRequest<'a> {
    /// `session_id`.
    pub(super) id: i32,
    /// `session_epoch`.
    pub(super) epoch: i32,
    /// The request names topics by id (Fetch v13+).
    pub(super) by_id: bool,
    /// `topics`: in an incremental fetch, the partitions added or updated.
    pub(super) partitions: &'a [(SessionPartition, PartitionFetch)],
    /// `forgotten_topics_data`: the partitions an incremental fetch removes.
    pub(super) forgotten: &'a [SessionPartition],
}

/// What a fetch request's session fields ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FetchContext {
    /// A full fetch without a session: answer every partition of the request.
    Sessionless,
    /// A full fetch that asks for a session: answer every partition of the
    /// request, then cache them ([`FetchSessionCache::handle_full_answer`]).
    Full,
    /// An incremental fetch: read the session's partitions and answer those
    /// that changed ([`FetchSessionCache::handle_incremental_answer`]).
    Incremental {
        /// The session.
        id: i32,
        /// The request's epoch. If another request of the session came in
        /// before this one is answered, the answer is an epoch error.
        epoch: i32,
    },
}

/// One partition of a session.
#[derive(Clone, Debug)]
struct CachedPartition {
    /// What the client last asked.
    fetch: PartitionFetch,
    /// The offsets the client was last told; `None` before the first answer
    /// and after an error, so that the next answer is always sent.
    told: Option<Told>,
}

/// The offsets of a partition's last answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Told {
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

impl CachedPartition {
    /// Whether `answer` must be sent (new records, an error, or offsets the
    /// client has not been told), remembering what the client is told.
    fn tell(&mut self, answer: &PartitionAnswer) -> bool {
        let now = Told {
            high_watermark: answer.high_watermark,
            last_stable_offset: answer.last_stable_offset,
            log_start_offset: answer.log_start_offset,
        };
        let send = answer.has_records || answer.error || self.told != Some(now);
        self.told = (!answer.error).then_some(now);
        send
    }
}

/// One client's session.
#[derive(Debug)]
struct FetchSession {
    /// The epoch the next request must carry.
    next_epoch: i32,
    /// The session's requests name topics by id.
    by_id: bool,
    partitions: BTreeMap<SessionPartition, CachedPartition>,
    /// The keys of `partitions` in read order. Partitions answered with
    /// something move to the back, so that a byte limit cannot starve the
    /// others: a client reorders a full request itself, but cannot reorder a
    /// session.
    order: Vec<SessionPartition>,
    created_ms: u64,
    last_used_ms: u64,
}

impl FetchSession {
    /// Takes in an incremental request's added, updated and forgotten
    /// partitions.
    fn update(
        &mut self,
        partitions: &[(SessionPartition, PartitionFetch)],
        forgotten: &[SessionPartition],
    ) {
        for (key, fetch) in partitions {
            match self.partitions.get_mut(key) {
                Some(p) => p.fetch = *fetch,
                None => {
                    self.partitions.insert(
                        key.clone(),
                        CachedPartition {
                            fetch: *fetch,
                            told: None,
                        },
                    );
                    self.order.push(key.clone());
                }
            }
        }
        let before = self.partitions.len();
        for k in forgotten {
            self.partitions.remove(k);
        }
        if self.partitions.len() != before {
            let partitions = &self.partitions;
            self.order.retain(|k| partitions.contains_key(k));
        }
    }
}

/// The node's fetch sessions.
#[derive(Debug)]
pub(super) struct FetchSessionCache {
    max_sessions: usize,
    idle_expiry_ms: u64,
    sessions: BTreeMap<i32, FetchSession>,
    /// `(last_used_ms, id)` of every session, least recently used first.
    by_last_use: BTreeSet<(u64, i32)>,
    /// The session id generator's state (splitmix64).
    id_state: u64,
}

impl FetchSessionCache {
    /// An empty cache with Kafka's default limits, drawing ids from `seed`.
    pub(super) fn new(seed: u64) -> FetchSessionCache {
        FetchSessionCache::with_limits(seed, MAX_SESSIONS, IDLE_EXPIRY_MS)
    }

    /// An empty cache of at most `max_sessions`, dropping sessions unused
    /// for longer than `idle_expiry_ms`.
    fn with_limits(seed: u64, max_sessions: usize, idle_expiry_ms: u64) -> FetchSessionCache {
        FetchSessionCache {
            max_sessions,
            idle_expiry_ms,
            sessions: BTreeMap::new(),
            by_last_use: BTreeSet::new(),
            id_state: seed ^ ID_STREAM,
        }
    }

    /// Takes in a fetch request's session fields at `now_ms`: closes the
    /// session a full fetch names, or checks and updates the session of an
    /// incremental one.
    pub(super) fn handle_request(
        &mut self,
        now_ms: u64,
        req: &SessionRequest<'_>,
    ) -> Result<FetchContext, SessionError> {
        self.expire(now_ms);
        if req.epoch == INITIAL_EPOCH || req.epoch == FINAL_EPOCH {
            if req.id != NO_SESSION && self.remove(req.id) {
                tracing::debug!(session = req.id, "fetch session closed by the client");
            }
            return Ok(if req.epoch == FINAL_EPOCH {
                FetchContext::Sessionless
            } else {
                FetchContext::Full
            });
        }
        let session = self
            .sessions
            .get_mut(&req.id)
            .ok_or(SessionError::NotFound)?;
        if session.next_epoch != req.epoch {
            return Err(SessionError::InvalidEpoch);
        }
        if session.by_id != req.by_id {
            return Err(SessionError::TopicIdUsage);
        }
        session.update(req.partitions, req.forgotten);
        if session.partitions.is_empty() {
            // Kafka's rule: a session left with nothing is closed and the
            // request answered as a sessionless one.
            self.remove(req.id);
            tracing::debug!(session = req.id, "fetch session closed: no partitions left");
            return Ok(FetchContext::Sessionless);
        }
        session.next_epoch = next_epoch(req.epoch);
        tracing::trace!(
            session = req.id,
            epoch = req.epoch,
            partitions = session.partitions.len(),
            named = req.partitions.len(),
            forgotten = req.forgotten.len(),
            "incremental fetch"
        );
        self.touch(req.id, now_ms);
        Ok(FetchContext::Incremental {
            id: req.id,
            epoch: req.epoch,
        })
    }

    /// A [`FetchContext::Full`] fetch is answered with `answers` (every
    /// partition of the request, and what the client asked of it): caches them
    /// as a new session. Returns the id for the response, or [`NO_SESSION`] if
    /// there is no room.
    pub(super) fn handle_full_answer<'a>(
        &mut self,
        now_ms: u64,
        by_id: bool,
        answers: impl IntoIterator<Item = (&'a SessionPartition, PartitionFetch, PartitionAnswer)>,
    ) -> i32 {
        self.expire(now_ms);
        let answers: Vec<_> = answers.into_iter().collect();
        if self.sessions.len() >= self.max_sessions && !self.evict_one(now_ms, answers.len()) {
            tracing::debug!(sessions = self.sessions.len(), "fetch session cache full");
            return NO_SESSION;
        }
        let mut session = FetchSession {
            next_epoch: next_epoch(INITIAL_EPOCH),
            by_id,
            partitions: BTreeMap::new(),
            order: Vec::new(),
            created_ms: now_ms,
            last_used_ms: now_ms,
        };
        for (key, fetch, answer) in answers {
            let mut cached = CachedPartition { fetch, told: None };
            cached.tell(&answer);
            if session.partitions.insert(key.clone(), cached).is_none() {
                session.order.push(key.clone());
            }
        }
        let id = self.draw_id();
        tracing::debug!(
            session = id,
            partitions = session.partitions.len(),
            sessions = self.sessions.len() + 1,
            "fetch session created"
        );
        self.sessions.insert(id, session);
        self.by_last_use.insert((now_ms, id));
        id
    }

    /// The partitions an incremental fetch of session `id` at `epoch` reads,
    /// in read order, with what the client last asked of each.
    pub(super) fn partitions(
        &self,
        id: i32,
        epoch: i32,
    ) -> Result<impl Iterator<Item = (&SessionPartition, PartitionFetch)>, SessionError> {
        let session = self.answerable(id, epoch)?;
        Ok(session
            .order
            .iter()
            .filter_map(|k| session.partitions.get(k).map(|p| (k, p.fetch))))
    }

    /// A [`FetchContext::Incremental`] fetch is answered with `answers` (its
    /// session's partitions, as [`FetchSessionCache::partitions`] listed
    /// them): says which to send, and moves those to the back of the read
    /// order.
    pub(super) fn handle_incremental_answer<'a>(
        &mut self,
        id: i32,
        epoch: i32,
        answers: impl IntoIterator<Item = (&'a SessionPartition, PartitionAnswer)>,
    ) -> Result<Vec<bool>, SessionError> {
        self.answerable(id, epoch)?;
        let Some(session) = self.sessions.get_mut(&id) else {
            return Err(SessionError::NotFound);
        };
        let mut sent = BTreeSet::new();
        let send: Vec<bool> = answers
            .into_iter()
            .map(|(key, answer)| {
                let send = session
                    .partitions
                    .get_mut(key)
                    .is_some_and(|p| p.tell(&answer));
                // Only partitions that returned records go to the back
                // (Kafka's FetchSession): moving those answered for a new
                // high watermark alone would keep a partition that always
                // fills the byte limit in front.
                if send && answer.has_records {
                    sent.insert(key);
                }
                send
            })
            .collect();
        if !sent.is_empty() {
            let (quiet, answered): (Vec<_>, Vec<_>) = std::mem::take(&mut session.order)
                .into_iter()
                .partition(|k| !sent.contains(k));
            session.order = quiet;
            session.order.extend(answered);
        }
        Ok(send)
    }

    /// The session an answer at `epoch` belongs to, unless it is gone or a
    /// later request of it has come in.
    fn answerable(&self, id: i32, epoch: i32) -> Result<&FetchSession, SessionError> {
        let session = self.sessions.get(&id).ok_or(SessionError::NotFound)?;
        if session.next_epoch != next_epoch(epoch) {
            return Err(SessionError::InvalidEpoch);
        }
        Ok(session)
    }

    /// Drops the sessions unused for longer than the idle expiry.
    fn expire(&mut self, now_ms: u64) {
        while let Some(&(used, id)) = self.by_last_use.first() {
            if now_ms.saturating_sub(used) <= self.idle_expiry_ms {
                break;
            }
            tracing::debug!(
                session = id,
                idle_ms = now_ms - used,
                "fetch session expired"
            );
            self.remove(id);
        }
    }

    /// Makes room in a full cache for a session of `size` partitions: among
    /// the sessions old enough to be evicted, the smallest goes, and only if
    /// the newcomer is larger (Kafka's `tryEvict`). Evicting the least
    /// recently used one instead would let one extra client cascade through
    /// every established session, each eviction forcing the victim's full
    /// fetch to evict the next.
    fn evict_one(&mut self, now_ms: u64, size: usize) -> bool {
        let victim = self
            .sessions
            .iter()
            .filter(|(_, s)| now_ms.saturating_sub(s.created_ms) > self.idle_expiry_ms)
            .map(|(&id, s)| (s.partitions.len(), id))
            .min()
            .filter(|&(victim_size, _)| size > victim_size)
            .map(|(_, id)| id);
        match victim {
            Some(id) => {
                tracing::debug!(session = id, "fetch session evicted to make room");
                self.remove(id)
            }
            None => false,
        }
    }

    /// Records that session `id` was used at `now_ms`.
    fn touch(&mut self, id: i32, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            self.by_last_use.remove(&(s.last_used_ms, id));
            s.last_used_ms = now_ms;
            self.by_last_use.insert((now_ms, id));
        }
    }

    /// Drops session `id`; whether there was one.
    fn remove(&mut self, id: i32) -> bool {
        match self.sessions.remove(&id) {
            Some(s) => {
                self.by_last_use.remove(&(s.last_used_ms, id));
                true
            }
            None => false,
        }
    }

    /// A positive id no session has: Kafka's ids are positive, and clients
    /// take 0 as "no session" and -1 as "throttled".
    fn draw_id(&mut self) -> i32 {
        loop {
            self.id_state = self.id_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.id_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let id = (z >> 33) as i32;
            if id != NO_SESSION && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// The epoch after `epoch`: epochs count 1, 2, ... and wrap to 1.
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}
