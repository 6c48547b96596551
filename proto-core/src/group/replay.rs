//! Loading a group from its last [`Record::GroupMetadata`]: a group with
//! members comes back Stable (members must heartbeat again within their
//! session timeouts), one without comes back Empty, as Kafka loads them, and
//! in its state since the time the record gives.

use super::record::MemberRecord;
use super::requests::JoinProtocol;
use super::state::{Group, GroupState, Member};

/// The fields of a [`Record::GroupMetadata`](super::Record::GroupMetadata).
pub(super) struct Restored {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its state; `None` if the record does not say.
    pub state_since_ms: Option<u64>,
    pub members: Vec<MemberRecord>,
}

impl Group {
    /// Replaces the group's membership with `r`, keeping its offsets.
    /// Sessions start at `now`, and so does the state's clock if the record
    /// does not give it.
    pub(super) fn restore(&mut self, r: Restored, now: u64) {
        let mut fresh = Group::new(&self.id, r.state_since_ms.unwrap_or(now));
        fresh.offsets = std::mem::take(&mut self.offsets);
        fresh.protocol_type = Some(r.protocol_type).filter(|t| !t.is_empty());
        fresh.generation = r.generation;
        *self = fresh;
        // A record with members but no protocol is not one we write; its
        // members could not sync, so it is loaded as empty.
        let Some(protocol) = r.protocol.filter(|_| !r.members.is_empty()) else {
            self.subscribed_topics = self.compute_subscribed_topics();
            return;
        };
        for m in r.members {
            // Later entries win: one member per member id and per instance id.
            if let Some(old) = self.members.remove(&m.member_id) {
                if let Some(i) = old.instance_id {
                    if self.static_members.get(&i) == Some(&old.id) {
                        self.static_members.remove(&i);
                    }
                }
            }
            if let Some(instance) = &m.group_instance_id {
                if let Some(previous) = self
                    .static_members
                    .insert(instance.clone(), m.member_id.clone())
                {
                    self.members.remove(&previous);
                }
            }
            let mut member = Member {
                id: m.member_id,
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocols: vec![JoinProtocol {
                    name: protocol.clone(),
                    metadata: m.subscription,
                }],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                session_deadline: None,
                is_new: false,
            };
            member.reset_session(now);
            self.members.insert(member.id.clone(), member);
        }
        self.leader = r
            .leader
            .filter(|l| self.members.contains_key(l))
            .or_else(|| self.members.keys().next().cloned());
        self.protocol = Some(protocol);
        self.state = GroupState::Stable;
        self.subscribed_topics = self.compute_subscribed_topics();
    }
}
