//! One group's state: its members, generation, protocol, timers and offsets,
//! and the bookkeeping rules every handler shares (Kafka's `GroupMetadata`).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::consumer_protocol::subscription_topics;
use super::errors;
use super::outbox::Ctx;
use super::record::{MemberRecord, Record};
use super::requests::{JoinProtocol, ReplyId};
use super::responses::{JoinResponse, JoinResponseMember, Response, SyncResponse};

/// Kafka's protocol type of consumer groups; only their subscriptions are read.
pub(super) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// How long a new member's first JoinGroup may wait before the member is
/// dropped (Kafka's `NewMemberJoinTimeoutMs`): it cannot heartbeat yet, and a
/// client that gave up and retried would otherwise leave defunct members.
pub(super) const NEW_MEMBER_JOIN_TIMEOUT_MS: u64 = 300_000;

/// A group's place in the rebalance protocol, named as Kafka names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupState {
    /// No members; the group may still hold offsets.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// The generation is chosen; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has (or can fetch) its assignment.
    Stable,
    /// Being removed: nothing is accepted until its tombstones are written.
    Dead,
}

impl GroupState {
    /// Kafka's name, as ListGroups and DescribeGroups report it.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One member.
pub(super) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocols: Vec<JoinProtocol>,
    pub assignment: Bytes,
    /// A JoinGroup waiting for the rebalance to complete.
    pub awaiting_join: Option<ReplyId>,
    /// A SyncGroup waiting for the leader's assignment to be written.
    pub awaiting_sync: Option<ReplyId>,
    /// When the member is dropped unless it is heard from; `None` while its
    /// deadline passed as it waited in a join or sync (Kafka does not expire
    /// those; the rebalance and sync timeouts do). Whatever answers that
    /// wait starts the session again, so a member waiting for nothing always
    /// has a deadline.
    pub session_deadline: Option<u64>,
    /// Not yet through its first rebalance: its deadline is the new-member
    /// join timeout, and waiting does not protect it.
    pub is_new: bool,
}

impl Member {
    /// The member's metadata for `protocol`.
    pub(super) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    pub(super) fn reset_session(&mut self, now: u64) {
        self.session_deadline = Some(now.saturating_add(timeout(self.session_timeout_ms)));
    }
}

/// A timeout from a request field; negative ones count as zero.
pub(super) fn timeout(ms: i32) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// The wait for members to join, while PreparingRebalance.
#[derive(Clone, Copy, Debug)]
pub(super) struct JoinPhase {
    pub deadline: u64,
    /// Kafka's `InitialDelayedJoin` for a rebalance that started in an empty
    /// group: it never completes early, and each expiry that saw a new member
    /// waits again, up to the rebalance timeout.
    pub initial: Option<InitialDelay>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct InitialDelay {
    pub delay_ms: u64,
    pub remaining_ms: u64,
}

/// A committed offset, visible to OffsetFetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// The retention clock of a standalone consumer's offset (and of a
    /// stable group's offsets of topics nobody subscribes to): the record's
    /// commit timestamp.
    pub committed_at_ms: u64,
}

/// A topic partition.
pub(super) type Partition = (String, i32);

/// One group.
pub(super) struct Group {
    pub id: String,
    pub state: GroupState,
    /// When `state` was entered: the retention clock of an empty group,
    /// written in every [`Record::GroupMetadata`] so that a replay restores it.
    pub state_since_ms: u64,
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Instance id to member id, for every static member.
    pub static_members: BTreeMap<String, String>,
    /// KIP-394 member ids handed out but not yet joined with, and their expiry.
    pub pending_members: BTreeMap<String, u64>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub pending_sync: BTreeSet<String>,
    /// When the members in `pending_sync` are dropped.
    pub sync_deadline: Option<u64>,
    pub join: Option<JoinPhase>,
    /// A member joined during the initial delay, so it is extended.
    pub new_member_added: bool,
    /// What a consumer group's members subscribe to; `None` if unknown.
    pub subscribed_topics: Option<BTreeSet<String>>,
    pub offsets: BTreeMap<Partition, CommittedOffset>,
    /// Commits in flight per partition.
    pub pending_commits: BTreeMap<Partition, usize>,
    /// Expired offsets' tombstones are being written.
    pub expiry_in_flight: bool,
}

impl Group {
    pub(super) fn new(id: &str, now: u64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now,
            protocol_type: None,
            generation: 0,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            join: None,
            new_member_added: false,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
            pending_commits: BTreeMap::new(),
            expiry_in_flight: false,
        }
    }

    pub(super) fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub(super) fn transition(&mut self, state: GroupState, now: u64) {
        self.state = state;
        self.state_since_ms = now;
    }

    /// Holds nothing anyone could observe: a group created by a request that
    /// was then refused, or whose only commit failed.
    pub(super) fn is_vacant(&self) -> bool {
        self.is(GroupState::Empty)
            && self.generation == 0
            && self.protocol_type.is_none()
            && self.members.is_empty()
            && self.pending_members.is_empty()
            && self.offsets.is_empty()
            && self.pending_commits.is_empty()
            && !self.expiry_in_flight
    }

    /// Whether `member_id` is a member or a KIP-394 pending member.
    pub(super) fn knows(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id) || self.pending_members.contains_key(member_id)
    }

    pub(super) fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// The longest rebalance timeout of the members.
    pub(super) fn rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| timeout(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Every member rejoined and no KIP-394 member is still expected.
    pub(super) fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// How many members list each protocol.
    fn protocol_support(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for m in self.members.values() {
            let names: BTreeSet<&str> = m.protocols.iter().map(|p| p.name.as_str()).collect();
            for name in names {
                *counts.entry(name).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Whether a member with these protocols may join: an empty group takes
    /// any non-empty protocol type and list; otherwise the type must match and
    /// one protocol must be supported by every current member.
    pub(super) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[JoinProtocol],
    ) -> bool {
        if self.is(GroupState::Empty) {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let support = self.protocol_support();
        let size = self.members.len();
        protocols
            .iter()
            .any(|p| support.get(p.name.as_str()) == Some(&size))
    }

    /// Kafka's vote: each member votes for its most preferred protocol that
    /// every member supports; the most votes win, ties go to the first name.
    /// Joins keep one protocol supported by all, so the vote always has
    /// candidates; a member without one votes its first choice.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let size = self.members.len();
        let candidates: BTreeSet<&str> = self
            .protocol_support()
            .into_iter()
            .filter(|&(_, n)| n == size)
            .map(|(p, _)| p)
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            let choice = m
                .protocols
                .iter()
                .find(|p| candidates.contains(p.name.as_str()))
                .or_else(|| m.protocols.first());
            if let Some(p) = choice {
                *votes.entry(p.name.as_str()).or_insert(0) += 1;
            }
        }
        let most = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|&(_, n)| n == most)
            .map(|(p, _)| p.to_string())
    }

    /// Kafka's `validateCurrentMember`: a static member's instance id must map
    /// to its member id, and the member id must be a member.
    pub(super) fn validate_current_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<i16> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => return Some(errors::FENCED_INSTANCE_ID),
                Some(_) => {}
                None => return Some(errors::UNKNOWN_MEMBER_ID),
            }
        }
        if self.members.contains_key(member_id) {
            None
        } else {
            Some(errors::UNKNOWN_MEMBER_ID)
        }
    }

    /// The instance id is held by another member id.
    pub(super) fn is_static_member_fenced(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|current| current != member_id)
    }

    /// Adds a member; the first one sets the protocol type and leads.
    pub(super) fn add(&mut self, member: Member, protocol_type: &str) {
        if self.members.is_empty() {
            self.protocol_type = Some(protocol_type.to_string());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.id.clone());
        }
        self.pending_members.remove(&member.id);
        self.members.insert(member.id.clone(), member);
    }

    /// Removes a member and answers its waiting requests with `error`
    /// (Kafka's `GroupMetadata.remove` plus the join callback; a waiting sync
    /// is answered too, so that no request goes unanswered).
    pub(super) fn remove(&mut self, cx: &mut Ctx, member_id: &str, error: i16) -> Option<Member> {
        let mut member = self.members.remove(member_id)?;
        answer_waiting(cx, &mut member, error, "");
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
        Some(member)
    }

    /// Answers every waiting join and sync with `error`: the group's state
    /// is about to be replaced (a replay after the first step).
    pub(super) fn abandon_waiting(&mut self, cx: &mut Ctx, error: i16) {
        for m in self.members.values_mut() {
            answer_waiting(cx, m, error, "");
        }
    }

    /// Moves a static member to a new member id; requests waiting under the
    /// old id are fenced.
    pub(super) fn replace_static_member(
        &mut self,
        cx: &mut Ctx,
        instance_id: &str,
        old_id: &str,
        new_id: &str,
    ) {
        let Some(mut member) = self.members.remove(old_id) else {
            return;
        };
        answer_waiting(cx, &mut member, errors::FENCED_INSTANCE_ID, old_id);
        member.id = new_id.to_string();
        self.members.insert(new_id.to_string(), member);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
        self.static_members
            .insert(instance_id.to_string(), new_id.to_string());
    }

    /// Every member with its metadata for the current protocol: the leader's
    /// JoinGroup answer.
    pub(super) fn member_metadata(&self) -> Vec<JoinResponseMember> {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinResponseMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    /// The JoinGroup answer for the current generation.
    pub(super) fn join_response(
        &self,
        member_id: &str,
        leader: Option<&str>,
        members: Vec<JoinResponseMember>,
        skip_assignment: bool,
    ) -> Response {
        Response::Join(JoinResponse {
            error_code: errors::NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: leader.unwrap_or_default().to_string(),
            skip_assignment,
            member_id: member_id.to_string(),
            members,
        })
    }

    /// The group as a [`Record::GroupMetadata`], with each member's assignment
    /// taken from `assignment`.
    pub(super) fn metadata_record(&self, assignment: impl Fn(&Member) -> Bytes) -> Record {
        let protocol = self.protocol.as_deref().unwrap_or_default();
        Record::GroupMetadata {
            group: self.id.clone(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: Some(
                i64::try_from(self.state_since_ms).unwrap_or(i64::MAX),
            ),
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol),
                    assignment: assignment(m),
                })
                .collect(),
        }
    }

    /// What a consumer group's members subscribe to: `None` if this is not a
    /// consumer group or a subscription cannot be read. Kafka is then not
    /// aware of the topics, so any of them may be consumed: OffsetDelete
    /// keeps them all and retention expires none while the group has members.
    pub(super) fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol.as_deref()?;
        let mut all = BTreeSet::new();
        for m in self.members.values() {
            all.extend(subscription_topics(&m.metadata(protocol))?);
        }
        Some(all)
    }

    /// Whether a member may be consuming `topic` (Kafka's
    /// `isSubscribedToTopic`): the subscriptions include it, or they are not
    /// known (a member's metadata is not the consumer protocol, or no join
    /// has completed since the group was created), in which case any
    /// topic may be consumed and the safe answer is yes. Retention reads
    /// `subscribed_topics` itself and keeps offsets while it is unknown.
    pub(super) fn is_subscribed_to(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => true,
        }
    }
}

/// Answers a member's waiting join and sync with `error`.
fn answer_waiting(cx: &mut Ctx, member: &mut Member, error: i16, echo_member_id: &str) {
    if let Some(reply) = member.awaiting_join.take() {
        cx.out.respond(reply, join_error(echo_member_id, error));
    }
    if let Some(reply) = member.awaiting_sync.take() {
        cx.out.respond(reply, sync_error(error));
    }
}

/// A JoinGroup answer that carries only an error (and the member id to use).
pub(super) fn join_error(member_id: &str, error: i16) -> Response {
    Response::Join(JoinResponse {
        error_code: error,
        generation_id: -1,
        protocol_type: None,
        protocol_name: None,
        leader: String::new(),
        skip_assignment: false,
        member_id: member_id.to_string(),
        members: Vec::new(),
    })
}

/// A SyncGroup answer that carries only an error.
pub(super) fn sync_error(error: i16) -> Response {
    Response::Sync(SyncResponse {
        error_code: error,
        protocol_type: None,
        protocol_name: None,
        assignment: Bytes::new(),
    })
}

/// The generation after `g`. Generations stay positive: -1 means "none" in
/// the protocol, so a (replayed, absurd) maximum wraps to 1.
pub(super) fn next_generation(g: i32) -> i32 {
    if g == i32::MAX {
        1
    } else {
        g.max(0) + 1
    }
}
