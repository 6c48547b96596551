//! The coordinator on hostile input: requests with any field (empty and
//! non-UTF-8-looking ids, extreme timeouts and generations, duplicate and
//! unknown members, huge metadata counts), replayed records that no
//! coordinator wrote, and completions of writes in any order. It must never
//! panic, answer every request exactly once, and keep every group within
//! `max_group_size` members and pending members.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto_core::group::*;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const MAX_GROUP_SIZE: usize = 3;

/// Indexes into pools of values, so that requests often hit real members.
#[derive(Clone, Debug)]
enum Wild {
    Replay(Vec<u8>, u8, i32, Vec<(u8, Option<u8>, i32)>, bool),
    Join(u8, u8, Option<u8>, u8, u8, Vec<u8>, bool),
    Sync(u8, u8, u8, Vec<(u8, u8)>),
    Heartbeat(u8, u8, u8, Option<u8>),
    Leave(u8, Vec<(u8, Option<u8>)>),
    Commit(u8, u8, u8, Vec<(u8, i32, i64, u8)>),
    Fetch(Vec<u8>, bool),
    Describe(Vec<u8>),
    List(Vec<u8>),
    Delete(Vec<u8>),
    OffsetDelete(u8, Vec<(u8, i32)>),
    Tick(u8),
    Complete(u8, bool),
}

impl Arbitrary for Wild {
    fn arbitrary(g: &mut Gen) -> Wild {
        let a = u8::arbitrary(g);
        let b = u8::arbitrary(g);
        let c = u8::arbitrary(g);
        match u8::arbitrary(g) % 14 {
            0 => Wild::Replay(
                Vec::arbitrary(g),
                a,
                *g.choose(&[0, 1, -1, i32::MAX, i32::MIN]).unwrap_or(&0),
                Vec::arbitrary(g),
                bool::arbitrary(g),
            ),
            1..=3 => Wild::Join(
                a,
                b,
                Option::arbitrary(g),
                c,
                u8::arbitrary(g),
                Vec::arbitrary(g),
                bool::arbitrary(g),
            ),
            4 | 5 => Wild::Sync(a, b, c, Vec::arbitrary(g)),
            6 => Wild::Heartbeat(a, b, c, Option::arbitrary(g)),
            7 => Wild::Leave(a, Vec::arbitrary(g)),
            8 => Wild::Commit(a, b, c, Vec::arbitrary(g)),
            9 => match b % 3 {
                0 => Wild::Fetch(Vec::arbitrary(g), bool::arbitrary(g)),
                1 => Wild::Describe(Vec::arbitrary(g)),
                _ => Wild::List(Vec::arbitrary(g)),
            },
            10 => match b % 2 {
                0 => Wild::Delete(Vec::arbitrary(g)),
                _ => Wild::OffsetDelete(a, Vec::arbitrary(g)),
            },
            11 => Wild::Tick(a),
            _ => Wild::Complete(a, bool::arbitrary(g)),
        }
    }
}

const GROUPS: [&str; 4] = ["g", "h", "", "\u{1F600}\u{0}"];
const TIMEOUTS: [i32; 6] = [10_000, 6_000, 0, -1, i32::MAX, 1_800_000];
const GENERATIONS: [i32; 5] = [-1, 0, 1, 2, i32::MAX];
const STATE_TIMESTAMPS: [Option<i64>; 5] =
    [None, Some(-1), Some(0), Some(1_000_000), Some(i64::MAX)];

struct World {
    c: Coordinator,
    now: u64,
    next_reply: u64,
    asked: BTreeMap<u64, ()>,
    members: Vec<String>,
    pending: Vec<u64>,
}

fn pick<T: Copy>(pool: &[T], i: u8) -> T {
    pool[usize::from(i) % pool.len()]
}

impl World {
    fn reply(&mut self) -> ReplyId {
        self.next_reply += 1;
        self.asked.insert(self.next_reply, ());
        ReplyId(self.next_reply)
    }

    fn group(i: u8) -> String {
        pick(&GROUPS, i).to_string()
    }

    /// A member id: a real one if any were handed out, else a made-up one.
    fn member(&self, i: u8) -> String {
        match usize::from(i) % (self.members.len() + 2) {
            0 => String::new(),
            1 => "nobody".to_string(),
            k => self.members[k - 2].clone(),
        }
    }

    fn instance(i: Option<u8>) -> Option<String> {
        i.map(|i| format!("i{}", i % 3))
    }

    fn step(&mut self, event: Event) -> Result<(), String> {
        self.c.step(self.now, event);
        for a in self.c.take_actions() {
            match a {
                Action::Persist { token, .. } => self.pending.push(token),
                Action::Respond { reply, response } => {
                    if self.asked.remove(&reply.0).is_none() {
                        return Err(format!("{reply:?} answered twice"));
                    }
                    if let Response::Join(j) = &response {
                        if !j.member_id.is_empty()
                            && !self.members.contains(&j.member_id)
                            && self.members.len() < 16
                        {
                            self.members.push(j.member_id.clone());
                        }
                    }
                    if let Response::DescribeGroups(d) = &response {
                        for g in &d.groups {
                            if g.members.len() > MAX_GROUP_SIZE {
                                return Err(format!(
                                    "{} has {} members",
                                    g.group_id,
                                    g.members.len()
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, op: &Wild) -> Result<(), String> {
        let event = match op {
            Wild::Replay(group, generation_pick, generation, members, with_protocol) => {
                let record = Record::GroupMetadata {
                    group: Self::group(group.first().copied().unwrap_or(0)),
                    protocol_type: if *generation_pick % 2 == 0 {
                        "consumer".into()
                    } else {
                        String::new()
                    },
                    generation: *generation,
                    protocol: with_protocol.then(|| "range".to_string()),
                    leader: Some(self.member(*generation_pick)),
                    current_state_timestamp_ms: pick(&STATE_TIMESTAMPS, *generation_pick),
                    members: members
                        .iter()
                        .map(|&(m, i, t)| MemberRecord {
                            member_id: format!("r{}", m % 3),
                            group_instance_id: Self::instance(i),
                            client_id: String::new(),
                            client_host: String::new(),
                            rebalance_timeout_ms: t,
                            session_timeout_ms: t,
                            subscription: Bytes::from(vec![0, 0, 0x7f, 0xff, 0xff, 0xff]),
                            assignment: Bytes::new(),
                        })
                        .collect(),
                };
                // Replay is for before the first step; a driver bug may do it later.
                self.c.replay(record);
                return Ok(());
            }
            Wild::Join(g, m, i, t, p, protocols, require) => Event::Join(JoinRequest {
                reply: self.reply(),
                group_id: Self::group(*g),
                session_timeout_ms: pick(&TIMEOUTS, *t),
                rebalance_timeout_ms: pick(&TIMEOUTS, *p),
                member_id: self.member(*m),
                group_instance_id: Self::instance(*i),
                protocol_type: if p % 5 == 0 {
                    "connect".into()
                } else {
                    "consumer".into()
                },
                protocols: protocols
                    .iter()
                    .take(4)
                    .map(|x| JoinProtocol {
                        name: format!("p{}", x % 3),
                        metadata: Bytes::from(vec![*x; usize::from(*x % 8)]),
                    })
                    .collect(),
                reason: None,
                client_id: "c".into(),
                client_host: String::new(),
                require_known_member_id: *require,
                supports_skip_assignment: *require,
            }),
            Wild::Sync(g, m, gen, assignments) => Event::Sync(SyncRequest {
                reply: self.reply(),
                group_id: Self::group(*g),
                generation_id: pick(&GENERATIONS, *gen),
                member_id: self.member(*m),
                group_instance_id: None,
                protocol_type: (gen % 3 == 0).then(|| "consumer".into()),
                protocol_name: (gen % 5 == 0).then(|| "p0".into()),
                assignments: assignments
                    .iter()
                    .map(|&(m, a)| SyncAssignment {
                        member_id: self.member(m),
                        assignment: Bytes::from(vec![a]),
                    })
                    .collect(),
            }),
            Wild::Heartbeat(g, m, gen, i) => Event::Heartbeat(HeartbeatRequest {
                reply: self.reply(),
                group_id: Self::group(*g),
                generation_id: pick(&GENERATIONS, *gen),
                member_id: self.member(*m),
                group_instance_id: Self::instance(*i),
            }),
            Wild::Leave(g, members) => Event::Leave(LeaveRequest {
                reply: self.reply(),
                group_id: Self::group(*g),
                members: members
                    .iter()
                    .map(|&(m, i)| LeavingMember {
                        member_id: self.member(m),
                        group_instance_id: Self::instance(i),
                        reason: None,
                    })
                    .collect(),
            }),
            Wild::Commit(g, m, gen, parts) => Event::OffsetCommit(OffsetCommitRequest {
                reply: self.reply(),
                group_id: Self::group(*g),
                generation_id: pick(&GENERATIONS, *gen),
                member_id: self.member(*m),
                group_instance_id: None,
                topics: parts
                    .iter()
                    .map(|&(t, p, o, meta)| CommitTopic {
                        name: format!("t{}", t % 2),
                        partitions: vec![CommitPartition {
                            partition_index: p,
                            committed_offset: o,
                            committed_leader_epoch: p,
                            committed_metadata: (meta % 2 == 0)
                                .then(|| "m".repeat(usize::from(meta))),
                        }],
                    })
                    .collect(),
            }),
            Wild::Fetch(groups, stable) => Event::OffsetFetch(OffsetFetchRequest {
                reply: self.reply(),
                groups: groups
                    .iter()
                    .map(|&g| FetchGroup {
                        group_id: Self::group(g),
                        topics: (g % 2 == 0).then(|| {
                            vec![FetchTopic {
                                name: "t0".into(),
                                partition_indexes: vec![i32::from(g), -1],
                            }]
                        }),
                    })
                    .collect(),
                require_stable: *stable,
            }),
            Wild::Describe(groups) => Event::DescribeGroups(DescribeGroupsRequest {
                reply: self.reply(),
                groups: groups.iter().map(|&g| Self::group(g)).collect(),
            }),
            Wild::List(states) => Event::ListGroups(ListGroupsRequest {
                reply: self.reply(),
                states_filter: states
                    .iter()
                    .map(|&s| pick(&["stable", "Empty", "dead", "x"], s).to_string())
                    .collect(),
                types_filter: Vec::new(),
            }),
            Wild::Delete(groups) => Event::DeleteGroups(DeleteGroupsRequest {
                reply: self.reply(),
                groups_names: groups.iter().map(|&g| Self::group(g)).collect(),
            }),
            Wild::OffsetDelete(g, parts) => Event::OffsetDelete(OffsetDeleteRequest {
                reply: self.reply(),
                group_id: Self::group(*g),
                topics: parts
                    .iter()
                    .map(|&(t, p)| OffsetDeleteTopic {
                        name: format!("t{}", t % 2),
                        partitions: vec![p],
                    })
                    .collect(),
            }),
            Wild::Tick(s) => {
                self.now += u64::from(*s) * 997;
                Event::Tick
            }
            Wild::Complete(i, ok) => {
                if self.pending.is_empty() {
                    return Ok(());
                }
                // Any order: a driver bug must not break the coordinator either.
                let token = self.pending.remove(usize::from(*i) % self.pending.len());
                if *ok {
                    Event::Persisted { token }
                } else {
                    Event::PersistFailed { token }
                }
            }
        };
        self.step(event)
    }
}

#[test]
fn hostile_input_never_panics_and_every_request_is_answered() {
    fn prop(ops: Vec<Wild>) -> TestResult {
        let cfg = CoordinatorConfig {
            max_group_size: MAX_GROUP_SIZE,
            max_metadata_bytes: 100,
            offsets_retention_ms: 60_000,
            offsets_retention_check_interval_ms: 5_000,
            ..CoordinatorConfig::kafka_defaults(3)
        };
        let mut w = World {
            c: Coordinator::new(cfg),
            now: 0,
            next_reply: 0,
            asked: BTreeMap::new(),
            members: Vec::new(),
            pending: Vec::new(),
        };
        for op in &ops {
            if let Err(e) = w.apply(op) {
                return TestResult::error(e);
            }
        }
        // With time and completed writes every waiting request is answered.
        for _ in 0..12 {
            while let Some(token) = w.pending.pop() {
                if let Err(e) = w.step(Event::Persisted { token }) {
                    return TestResult::error(e);
                }
            }
            w.now += 1_000_000;
            if let Err(e) = w.step(Event::Tick) {
                return TestResult::error(e);
            }
        }
        let groups: Vec<String> = GROUPS.iter().map(|g| g.to_string()).collect();
        let reply = w.reply();
        if let Err(e) = w.step(Event::DescribeGroups(DescribeGroupsRequest {
            reply,
            groups,
        })) {
            return TestResult::error(e);
        }
        if w.asked.is_empty() {
            TestResult::passed()
        } else {
            TestResult::error(format!("never answered: {:?}", w.asked.keys()))
        }
    }
    QuickCheck::new()
        .tests(500)
        .rng(Gen::new(120))
        .quickcheck(prop as fn(Vec<Wild>) -> TestResult);
}
