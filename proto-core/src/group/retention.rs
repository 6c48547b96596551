//! Offset retention (Kafka's `cleanupGroupMetadata`), run every
//! `offsets_retention_check_interval_ms`: offsets of empty groups expire
//! `offsets_retention_ms` after the group became empty, a standalone
//! consumer's `offsets_retention_ms` after their commit, and a stable consumer
//! group's offsets of topics nobody subscribes to likewise. An empty group
//! left without offsets is removed.

use std::collections::BTreeMap;

use super::admin::remove_groups;
use super::outbox::Ctx;
use super::state::{Group, GroupState, Partition, CONSUMER_PROTOCOL_TYPE};

/// Expires what is due in every group, in one write.
pub(super) fn expire(groups: &mut BTreeMap<String, Group>, cx: &mut Ctx) {
    let retention = cx.cfg.offsets_retention_ms;
    let mut removed = Vec::new();
    let mut trimmed = Vec::new();
    let mut records = Vec::new();
    for g in groups.values() {
        if g.is(GroupState::Dead) || g.expiry_in_flight {
            continue;
        }
        let expired = g.expired_offsets(cx.now, retention);
        let left_empty = g.is(GroupState::Empty)
            && g.members.is_empty()
            && g.pending_members.is_empty()
            && g.pending_commits.is_empty()
            && expired.len() == g.offsets.len();
        if left_empty {
            removed.push(g.id.clone());
        } else if !expired.is_empty() {
            records.extend(g.offset_tombstones(&expired));
            trimmed.push(g.id.clone());
        }
    }
    if removed.is_empty() && trimmed.is_empty() {
        return;
    }
    remove_groups(groups, cx, removed, trimmed, records, None);
}

impl Group {
    /// The offsets due to expire at `now`; never one with a commit in flight.
    fn expired_offsets(&self, now: u64, retention: u64) -> Vec<Partition> {
        let old = |since: u64| now.saturating_sub(since) >= retention;
        let due = |p: &Partition, since: u64| !self.pending_commits.contains_key(p) && old(since);
        let consumer = self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
        self.offsets
            .iter()
            .filter(|(p, c)| match (&self.protocol_type, self.state) {
                (Some(_), GroupState::Empty) => due(p, self.state_since_ms),
                (Some(_), GroupState::Stable) if consumer => match &self.subscribed_topics {
                    Some(topics) => !topics.contains(&p.0) && due(p, c.committed_at_ms),
                    None => false,
                },
                (None, _) => due(p, c.committed_at_ms),
                _ => false,
            })
            .map(|(p, _)| p.clone())
            .collect()
    }
}
