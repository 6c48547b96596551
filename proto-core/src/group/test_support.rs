//! A small driver for the unit tests: builds requests with sensible
//! defaults, steps the coordinator at a settable time and picks answers out
//! of the actions.

use bytes::Bytes;

use super::*;

/// A consumer subscription to `topics` (consumer protocol v0, no user data).
pub(super) fn subscription(topics: &[&str]) -> Bytes {
    let mut b = 0i16.to_be_bytes().to_vec();
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

pub(super) fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        initial_rebalance_delay_ms: 0,
        offsets_retention_ms: 100_000,
        offsets_retention_check_interval_ms: 1_000,
        ..CoordinatorConfig::kafka_defaults(1)
    }
}

pub(super) struct Harness {
    pub c: Coordinator,
    pub now: u64,
    next_reply: u64,
    /// Every write issued, by token.
    writes: std::collections::BTreeMap<u64, Vec<Record>>,
    /// The offsets partition: the records of completed writes, in order.
    pub log: Vec<Record>,
}

impl Harness {
    pub(super) fn new() -> Harness {
        Harness::with(config())
    }

    pub(super) fn with(cfg: CoordinatorConfig) -> Harness {
        Harness {
            c: Coordinator::new(cfg),
            now: 0,
            next_reply: 0,
            writes: std::collections::BTreeMap::new(),
            log: Vec::new(),
        }
    }

    pub(super) fn reply(&mut self) -> ReplyId {
        self.next_reply += 1;
        ReplyId(self.next_reply)
    }

    pub(super) fn step(&mut self, event: Event) -> Vec<Action> {
        if let Event::Persisted { token } = &event {
            self.log
                .extend(self.writes.remove(token).unwrap_or_default());
        }
        self.c.step(self.now, event);
        let actions = self.c.take_actions();
        for a in &actions {
            if let Action::Persist { token, records } = a {
                self.writes.insert(*token, records.clone());
            }
        }
        actions
    }

    /// Moves the clock to `at` and ticks.
    pub(super) fn tick_at(&mut self, at: u64) -> Vec<Action> {
        self.now = at;
        self.step(Event::Tick)
    }

    pub(super) fn join_request(&mut self, group: &str, member_id: &str) -> JoinRequest {
        JoinRequest {
            reply: self.reply(),
            group_id: group.to_string(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            member_id: member_id.to_string(),
            group_instance_id: None,
            protocol_type: "consumer".to_string(),
            protocols: vec![JoinProtocol {
                name: "range".to_string(),
                metadata: subscription(&["t"]),
            }],
            reason: None,
            client_id: "client".to_string(),
            client_host: "/10.0.0.1".to_string(),
            require_known_member_id: false,
            supports_skip_assignment: true,
        }
    }

    /// Joins a new dynamic member without the KIP-394 round; returns the
    /// actions (the answer comes when the rebalance completes).
    pub(super) fn join(&mut self, group: &str, member_id: &str) -> Vec<Action> {
        let req = self.join_request(group, member_id);
        self.step(Event::Join(req))
    }

    pub(super) fn sync(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: &[(&str, &str)],
    ) -> Vec<Action> {
        let req = SyncRequest {
            reply: self.reply(),
            group_id: group.to_string(),
            generation_id: generation,
            member_id: member_id.to_string(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: assignments
                .iter()
                .map(|(m, a)| SyncAssignment {
                    member_id: m.to_string(),
                    assignment: Bytes::from(a.to_string()),
                })
                .collect(),
        };
        self.step(Event::Sync(req))
    }

    pub(super) fn heartbeat(&mut self, group: &str, member_id: &str, generation: i32) -> i16 {
        let req = HeartbeatRequest {
            reply: self.reply(),
            group_id: group.to_string(),
            generation_id: generation,
            member_id: member_id.to_string(),
            group_instance_id: None,
        };
        let actions = self.step(Event::Heartbeat(req));
        match responses(&actions).as_slice() {
            [Response::Heartbeat(h)] => h.error_code,
            other => panic!("one heartbeat answer expected, got {other:?}"),
        }
    }

    pub(super) fn commit(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        partitions: &[(&str, i32, i64)],
    ) -> Vec<Action> {
        let mut topics: Vec<CommitTopic> = Vec::new();
        for &(t, p, o) in partitions {
            let partition = CommitPartition {
                partition_index: p,
                committed_offset: o,
                committed_leader_epoch: -1,
                committed_metadata: None,
            };
            match topics.iter_mut().find(|x| x.name == t) {
                Some(x) => x.partitions.push(partition),
                None => topics.push(CommitTopic {
                    name: t.to_string(),
                    partitions: vec![partition],
                }),
            }
        }
        let req = OffsetCommitRequest {
            reply: self.reply(),
            group_id: group.to_string(),
            generation_id: generation,
            member_id: member_id.to_string(),
            group_instance_id: None,
            topics,
        };
        self.step(Event::OffsetCommit(req))
    }

    /// Every committed offset of `group` as (topic, partition, offset).
    pub(super) fn fetch(&mut self, group: &str) -> Vec<(String, i32, i64)> {
        let req = OffsetFetchRequest {
            reply: self.reply(),
            groups: vec![FetchGroup {
                group_id: group.to_string(),
                topics: None,
            }],
            require_stable: false,
        };
        let actions = self.step(Event::OffsetFetch(req));
        let answers = responses(&actions);
        let [Response::OffsetFetch(f)] = answers.as_slice() else {
            panic!("one fetch answer expected");
        };
        f.groups[0]
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.clone(), p.partition_index, p.committed_offset))
            })
            .collect()
    }

    pub(super) fn describe(&mut self, group: &str) -> DescribedGroup {
        let req = DescribeGroupsRequest {
            reply: self.reply(),
            groups: vec![group.to_string()],
        };
        let actions = self.step(Event::DescribeGroups(req));
        let answers = responses(&actions);
        let [Response::DescribeGroups(d)] = answers.as_slice() else {
            panic!("one describe answer expected");
        };
        d.groups[0].clone()
    }

    /// Completes the oldest pending write; returns the actions that follow.
    pub(super) fn persist(&mut self, actions: &[Action]) -> Vec<Action> {
        let token = token(actions);
        self.step(Event::Persisted { token })
    }

    pub(super) fn fail_persist(&mut self, actions: &[Action]) -> Vec<Action> {
        let token = token(actions);
        self.step(Event::PersistFailed { token })
    }

    /// A group with `n` members through one rebalance and sync, Stable at
    /// generation 1; returns the member ids, leader first.
    pub(super) fn stable_group(&mut self, group: &str, n: usize) -> Vec<String> {
        for _ in 0..n {
            self.join(group, "");
        }
        // The initial delay (0 here) is extended once because members came
        // after the first; the next tick completes the join.
        let mut joins = Vec::new();
        for _ in 0..3 {
            joins = joins_of(&self.tick_at(self.now));
            if !joins.is_empty() {
                break;
            }
        }
        assert_eq!(joins.len(), n, "every member answered: {joins:?}");
        let leader = joins[0].leader.clone();
        let mut ids: Vec<String> = joins.iter().map(|j| j.member_id.clone()).collect();
        ids.sort_by_key(|id| *id != leader);
        let generation = joins[0].generation_id;
        let assignment: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "a")).collect();
        let actions = self.sync(group, &ids[0], generation, &assignment);
        let actions = self.persist(&actions);
        assert_eq!(responses(&actions).len(), 1);
        for id in &ids[1..] {
            self.sync(group, id, generation, &[]);
        }
        assert_eq!(self.c.group_state(group), Some(GroupState::Stable));
        ids
    }
}

pub(super) fn responses(actions: &[Action]) -> Vec<Response> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Respond { response, .. } => Some(response.clone()),
            Action::Persist { .. } => None,
        })
        .collect()
}

pub(super) fn joins_of(actions: &[Action]) -> Vec<JoinResponse> {
    responses(actions)
        .into_iter()
        .filter_map(|r| match r {
            Response::Join(j) => Some(j),
            _ => None,
        })
        .collect()
}

pub(super) fn syncs(actions: &[Action]) -> Vec<SyncResponse> {
    responses(actions)
        .into_iter()
        .filter_map(|r| match r {
            Response::Sync(s) => Some(s),
            _ => None,
        })
        .collect()
}

pub(super) fn persisted_records(actions: &[Action]) -> Vec<Record> {
    actions
        .iter()
        .flat_map(|a| match a {
            Action::Persist { records, .. } => records.clone(),
            Action::Respond { .. } => Vec::new(),
        })
        .collect()
}

fn token(actions: &[Action]) -> u64 {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Persist { token, .. } => Some(*token),
            Action::Respond { .. } => None,
        })
        .expect("a write")
}
