//! Stories of three nodes sharing many groups: batching, coalesced heartbeats,
//! quiescence, node liveness, determinism and the wire form.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::wire::{decode_batch, encode_batch};
use super::{Action, Batch, Event, GroupId, MultiConfig, MultiRaft, Refused};
use crate::raft::{self, ConfChange, Config, Message, MessageBody, NodeId, Restored, Role, Term};

/// Nodes 1..=n, each hosting a replica of every group, in one thread. Writes are
/// durable at once; batches are delivered only when a test says so.
struct Cluster {
    nodes: BTreeMap<NodeId, MultiRaft>,
    /// Nodes that are dead: not ticked, their traffic dropped both ways.
    down: BTreeSet<NodeId>,
    /// Every action performed, rendered, for determinism checks.
    log: Vec<String>,
}

fn node(n: u64) -> NodeId {
    NodeId(n)
}

fn group(g: u64) -> GroupId {
    GroupId(g)
}

impl Cluster {
    fn new(
        nodes: u64,
        groups: u64,
        quiesce: bool,
        mcfg: impl Fn(NodeId) -> MultiConfig,
    ) -> Cluster {
        let ids: Vec<NodeId> = (1..=nodes).map(node).collect();
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            down: BTreeSet::new(),
            log: Vec::new(),
        };
        for &id in &ids {
            let mr = MultiRaft::new(mcfg(id)).expect("valid node config");
            c.nodes.insert(id, mr);
            for g in 1..=groups {
                let mut config = Config::new(id);
                config.quiesce = quiesce;
                config.seed = id.0 * 1_000_003 + g;
                let restored = Box::new(Restored::fresh(ids.iter().copied()));
                c.step(
                    id,
                    Event::CreateGroup {
                        group: group(g),
                        config,
                        restored,
                    },
                )
                .expect("group created");
            }
        }
        c
    }

    fn mr(&self, n: u64) -> &MultiRaft {
        &self.nodes[&node(n)]
    }

    /// Steps one node and performs what it asks, except sending: persists
    /// complete at once; other actions are logged.
    fn step(&mut self, id: NodeId, event: Event) -> Result<(), Refused> {
        let mr = self.nodes.get_mut(&id).expect("node exists");
        let result = mr.step(event);
        self.settle_local(id);
        result
    }

    /// Completes every write the node asked for until it asks for none.
    fn settle_local(&mut self, id: NodeId) -> Vec<(NodeId, Batch)> {
        let mut sends = Vec::new();
        let mr = self.nodes.get_mut(&id).expect("node exists");
        loop {
            let actions = mr.take_actions();
            if actions.is_empty() {
                return sends;
            }
            for a in actions {
                self.log.push(format!("{id}: {a}"));
                match a {
                    Action::Persist { group, write } => {
                        mr.step(Event::Persisted {
                            group,
                            seq: write.seq,
                        })
                        .expect("persisted is never refused");
                    }
                    Action::Send { to, batch } => sends.push((to, batch)),
                    _ => {}
                }
            }
        }
    }

    /// Flushes one node and returns its batches, undelivered.
    fn flush(&mut self, id: NodeId) -> Vec<(NodeId, Batch)> {
        let mr = self.nodes.get_mut(&id).expect("node exists");
        mr.step(Event::Flush).expect("flush is never refused");
        self.settle_local(id)
    }

    fn deliver(&mut self, batches: Vec<(NodeId, Batch)>) {
        for (to, batch) in batches {
            let from = batch.from;
            if self.down.contains(&to) || self.down.contains(&from) {
                continue;
            }
            self.step(to, Event::Receive { from, batch })
                .expect("receive is never refused");
        }
    }

    /// Flushes and delivers until no group traffic is left (liveness heartbeats
    /// alone do not count). Bounded, so a livelock fails instead of hanging.
    fn settle(&mut self) {
        for _ in 0..200 {
            let mut all = Vec::new();
            let live: Vec<NodeId> = self.live();
            for id in live {
                all.extend(self.flush(id));
            }
            let busy = all.iter().any(|(_, b)| !b.is_empty());
            self.deliver(all);
            if !busy {
                return;
            }
        }
        panic!("cluster did not settle");
    }

    fn live(&self) -> Vec<NodeId> {
        self.nodes
            .keys()
            .copied()
            .filter(|n| !self.down.contains(n))
            .collect()
    }

    /// One tick on every live node, then settle.
    fn tick_all(&mut self) {
        for id in self.live() {
            self.step(id, Event::Tick).expect("tick is never refused");
        }
        self.settle();
    }

    /// Makes node `leader` campaign in every group and settles.
    fn elect(&mut self, leader: u64, groups: u64) {
        for g in 1..=groups {
            self.step(
                node(leader),
                Event::Group {
                    group: group(g),
                    event: raft::Event::Campaign,
                },
            )
            .expect("campaign accepted");
        }
        self.settle();
        for g in 1..=groups {
            let r = self.mr(leader).group(group(g)).expect("group hosted");
            assert_eq!(r.role(), Role::Leader, "{g} has no leader");
        }
    }

    /// Ticks until every group on every live node sleeps.
    fn quiesce_all(&mut self) {
        for _ in 0..100 {
            if self
                .live()
                .iter()
                .all(|n| self.nodes[n].active_count() == 0)
            {
                return;
            }
            self.tick_all();
        }
        panic!("groups did not quiesce");
    }
}

fn defaults(id: NodeId) -> MultiConfig {
    MultiConfig::new(id)
}

const GROUPS: u64 = 50;

#[test]
fn messages_of_all_groups_leave_as_one_batch_per_peer_per_flush() {
    let mut c = Cluster::new(3, GROUPS, false, defaults);
    c.elect(1, GROUPS);
    for g in 1..=GROUPS {
        let data = vec![Bytes::from_static(b"x")];
        c.step(
            node(1),
            Event::Propose {
                group: group(g),
                data,
            },
        )
        .expect("leader accepts");
    }
    let sends = c.flush(node(1));
    let dests: Vec<NodeId> = sends.iter().map(|(to, _)| *to).collect();
    assert_eq!(dests, vec![node(2), node(3)]);
    for (to, batch) in &sends {
        assert_eq!((batch.from, batch.to), (node(1), *to));
        let groups: Vec<GroupId> = batch.messages.iter().map(|(g, _)| *g).collect();
        assert_eq!(groups, (1..=GROUPS).map(group).collect::<Vec<_>>());
        assert!(batch.messages.iter().all(
            |(_, m)| matches!(&m.body, MessageBody::Append { entries, .. } if entries.len() == 1)
        ));
    }
    assert!(
        c.flush(node(1)).is_empty(),
        "a second flush has nothing to send"
    );
    c.deliver(sends);
    let answers = c.flush(node(2));
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].1.messages.len(), GROUPS as usize);
}

#[test]
fn group_heartbeats_are_coalesced_per_node_pair() {
    let mut c = Cluster::new(3, GROUPS, false, defaults);
    c.elect(1, GROUPS);
    c.step(node(1), Event::Tick).expect("tick");
    let sends = c.flush(node(1));
    assert_eq!(sends.len(), 2);
    for (_, batch) in &sends {
        assert!(
            batch.messages.is_empty(),
            "heartbeats travel compact: {batch}"
        );
        assert_eq!(batch.heartbeats.len(), GROUPS as usize);
        assert!(batch.heartbeats.iter().all(|h| !h.quiesce));
    }
    c.deliver(sends);
    let answers = c.flush(node(2));
    assert_eq!(answers.len(), 1);
    let batch = &answers[0].1;
    assert!(batch.messages.is_empty());
    assert_eq!(batch.heartbeat_responses.len(), GROUPS as usize);
}

#[test]
fn quiesced_groups_are_not_ticked_but_the_node_stays_heard() {
    let mut c = Cluster::new(3, GROUPS, true, |id| MultiConfig {
        heartbeat_ticks: 2,
        ..MultiConfig::new(id)
    });
    c.elect(1, GROUPS);
    c.quiesce_all();
    let terms: Vec<Term> = c.mr(1).groups().map(|(_, r)| r.term()).collect();
    let before = c.log.len();
    let mut heartbeat_rounds = Vec::new();
    for round in 0..30 {
        for n in 1..=3 {
            c.step(node(n), Event::Tick).expect("tick");
        }
        let sends = c.flush(node(1));
        let others = [c.flush(node(2)), c.flush(node(3))].concat();
        c.deliver([sends.clone(), others].concat());
        if !sends.is_empty() {
            heartbeat_rounds.push(round);
            let dests: Vec<NodeId> = sends.iter().map(|(to, _)| *to).collect();
            assert_eq!(
                dests,
                vec![node(2), node(3)],
                "one liveness heartbeat per peer"
            );
            assert!(sends.iter().all(|(_, b)| b.is_empty()));
        }
    }
    assert_eq!(
        heartbeat_rounds.len(),
        15,
        "one per interval: {heartbeat_rounds:?}"
    );
    assert!(heartbeat_rounds.windows(2).all(|w| w[1] - w[0] == 2));
    let sent = c.log.len() - before;
    let only_liveness = c.log[before..]
        .iter()
        .all(|l| l.ends_with("Batch liveness"));
    assert!(only_liveness, "{:?}", &c.log[before..]);
    assert_eq!(sent, 90, "3 nodes x 2 peers x 15 intervals");
    for n in 1..=3 {
        assert_eq!(c.mr(n).active_count(), 0);
    }
    let after: Vec<Term> = c.mr(1).groups().map(|(_, r)| r.term()).collect();
    assert_eq!(terms, after);

    // A proposal wakes its group alone; once replicated it sleeps again.
    let data = vec![Bytes::from_static(b"wake")];
    c.step(
        node(1),
        Event::Propose {
            group: group(7),
            data,
        },
    )
    .expect("leader accepts");
    assert_eq!(c.mr(1).active_count(), 1);
    c.settle();
    c.quiesce_all();
    let r = c.mr(2).group(group(7)).expect("hosted");
    assert_eq!(r.log().applied(), r.log().last_index());
}

#[test]
fn silent_leader_node_wakes_its_followers_who_elect_anew() {
    let mut c = Cluster::new(3, GROUPS, true, defaults);
    c.elect(1, GROUPS);
    c.quiesce_all();
    let old_term = c.mr(2).group(group(1)).expect("hosted").term();
    c.down.insert(node(1));

    let timeout = u64::from(MultiConfig::new(node(2)).liveness_timeout_ticks);
    for _ in 0..timeout - 1 {
        c.tick_all();
    }
    assert_eq!(c.mr(2).peer_alive(node(1)), Some(true));
    assert_eq!(c.mr(2).active_count(), 0, "still asleep before the timeout");
    c.tick_all();
    assert_eq!(c.mr(2).peer_alive(node(1)), Some(false));
    assert!(c.log.iter().any(|l| l == "2: PeerLiveness 1 down"));

    for _ in 0..100 {
        let elected = (1..=GROUPS).all(|g| {
            let leader = c.mr(2).group(group(g)).and_then(|r| r.leader());
            leader.is_some_and(|l| l != node(1))
                && c.mr(3).group(group(g)).and_then(|r| r.leader()) == leader
        });
        if elected {
            break;
        }
        c.tick_all();
    }
    for g in 1..=GROUPS {
        let r = c.mr(2).group(group(g)).expect("hosted");
        assert!(r.term() > old_term, "{g} kept term {}", r.term());
        let leader = r.leader().expect("a new leader");
        assert_ne!(leader, node(1));
        assert_eq!(
            c.mr(3).group(group(g)).and_then(|r| r.leader()),
            Some(leader)
        );
    }

    // Node 1 returns: heard again, and its groups follow the new leaders.
    c.down.remove(&node(1));
    for _ in 0..30 {
        c.tick_all();
    }
    assert_eq!(c.mr(2).peer_alive(node(1)), Some(true));
    assert!(c.log.iter().any(|l| l == "2: PeerLiveness 1 alive"));
    for g in 1..=GROUPS {
        let r = c.mr(1).group(group(g)).expect("hosted");
        assert_ne!(r.role(), Role::Leader, "{g}");
    }
}

#[test]
fn a_dropped_link_wakes_the_quiesced_groups_led_over_it_at_once() {
    let mut c = Cluster::new(3, GROUPS, true, defaults);
    c.elect(1, GROUPS);
    c.quiesce_all();
    assert_eq!(c.mr(2).active_count(), 0);
    c.step(node(2), Event::PeerUnreachable { peer: node(3) })
        .unwrap();
    assert_eq!(c.mr(2).active_count(), 0, "node 3 leads nothing");
    c.step(node(2), Event::PeerUnreachable { peer: node(1) })
        .unwrap();
    assert_eq!(
        c.mr(2).active_count(),
        GROUPS as usize,
        "every group led by node 1 wakes before any liveness timeout"
    );
}

#[test]
fn a_live_leader_node_keeps_quiesced_followers_asleep() {
    let mut c = Cluster::new(3, 5, true, defaults);
    c.elect(1, 5);
    c.quiesce_all();
    for _ in 0..50 {
        c.tick_all();
    }
    for n in 1..=3 {
        assert_eq!(c.mr(n).active_count(), 0);
        assert_eq!(c.mr(n).peers().filter(|(_, alive)| !alive).count(), 0);
    }
}

fn scenario() -> Vec<String> {
    let mut c = Cluster::new(3, 8, true, defaults);
    c.elect(2, 8);
    for g in 1..=8 {
        let data = vec![Bytes::from(format!("v{g}"))];
        c.step(
            node(2),
            Event::Propose {
                group: group(g),
                data,
            },
        )
        .expect("leader accepts");
    }
    c.quiesce_all();
    c.down.insert(node(2));
    for _ in 0..60 {
        c.tick_all();
    }
    c.log
}

#[test]
fn same_events_give_the_same_actions() {
    let first = scenario();
    assert!(first.len() > 100);
    assert_eq!(first, scenario());
}

#[test]
fn membership_changes_update_the_peer_set() {
    let mut c = Cluster::new(3, 2, false, defaults);
    c.elect(1, 2);
    assert_eq!(c.mr(1).peer_alive(node(4)), None);
    c.step(
        node(1),
        Event::Group {
            group: group(1),
            event: raft::Event::ProposeConfChange(ConfChange::AddLearner(node(4))),
        },
    )
    .expect("accepted");
    c.settle();
    assert_eq!(c.mr(1).peer_alive(node(4)), Some(true));
    c.step(node(1), Event::Tick).expect("tick");
    let dests: Vec<NodeId> = c.flush(node(1)).iter().map(|(to, _)| *to).collect();
    assert!(
        dests.contains(&node(4)),
        "the learner is sent to: {dests:?}"
    );
    c.step(node(1), Event::RemoveGroup { group: group(1) })
        .expect("removed");
    assert_eq!(c.mr(1).peer_alive(node(4)), None);
    assert_eq!(
        c.mr(1).peer_alive(node(2)),
        Some(true),
        "group 2 still has it"
    );
}

#[test]
fn refusals_name_the_group_and_change_nothing() {
    let mut c = Cluster::new(3, 1, false, defaults);
    let data = vec![Bytes::from_static(b"x")];
    assert_eq!(
        c.step(
            node(1),
            Event::Propose {
                group: group(9),
                data: data.clone()
            }
        ),
        Err(Refused::UnknownGroup(group(9)))
    );
    assert!(matches!(
        c.step(
            node(2),
            Event::Propose {
                group: group(1),
                data
            }
        ),
        Err(Refused::Group {
            reason: raft::Refused::NotLeader { .. },
            ..
        })
    ));
    let create = |cfg: Config| Event::CreateGroup {
        group: group(1),
        config: cfg,
        restored: Box::new(Restored::fresh([node(1)])),
    };
    assert_eq!(
        c.step(node(1), create(Config::new(node(1)))),
        Err(Refused::GroupExists(group(1)))
    );
    let other = Event::CreateGroup {
        group: group(2),
        config: Config::new(node(5)),
        restored: Box::new(Restored::fresh([node(1)])),
    };
    assert!(matches!(
        c.step(node(1), other),
        Err(Refused::WrongNode { .. })
    ));
    let mut bad = Config::new(node(1));
    bad.heartbeat_ticks = 0;
    let invalid = Event::CreateGroup {
        group: group(2),
        config: bad,
        restored: Box::new(Restored::fresh([node(1)])),
    };
    assert!(matches!(
        c.step(node(1), invalid),
        Err(Refused::InvalidConfig { .. })
    ));
    assert_eq!(c.mr(1).group_count(), 1);
    assert!(MultiRaft::new(MultiConfig {
        liveness_timeout_ticks: 1,
        ..MultiConfig::new(node(1))
    })
    .is_err());
}

fn campaign_batch(from: u64, to: u64) -> Batch {
    let mut batch = Batch::new(node(from), node(to));
    batch.push(
        group(1),
        Message {
            from: node(from),
            to: node(to),
            term: Term(5),
            body: MessageBody::Vote {
                last: raft::LogId::new(0, 0),
                transfer: false,
            },
        },
    );
    batch
}

#[test]
fn misaddressed_or_forged_traffic_is_dropped() {
    let mut c = Cluster::new(3, 1, false, defaults);
    let wrong_dest = campaign_batch(2, 3);
    c.step(
        node(1),
        Event::Receive {
            from: node(2),
            batch: wrong_dest,
        },
    )
    .expect("never refused");
    let spoofed = campaign_batch(2, 1);
    c.step(
        node(1),
        Event::Receive {
            from: node(3),
            batch: spoofed,
        },
    )
    .expect("never refused");
    let mut forged = Batch::new(node(3), node(1));
    forged.messages = campaign_batch(2, 1).messages;
    c.step(
        node(1),
        Event::Receive {
            from: node(3),
            batch: forged,
        },
    )
    .expect("never refused");
    assert_eq!(c.mr(1).group(group(1)).expect("hosted").term(), Term(0));

    let genuine = campaign_batch(2, 1);
    c.step(
        node(1),
        Event::Receive {
            from: node(2),
            batch: genuine,
        },
    )
    .expect("never refused");
    assert_eq!(c.mr(1).group(group(1)).expect("hosted").term(), Term(5));
}

#[test]
fn batches_round_trip_through_the_wire_form() {
    let mut c = Cluster::new(3, 4, false, defaults);
    c.elect(1, 4);
    for g in 1..=4 {
        let data = vec![Bytes::from_static(b"payload"); 3];
        c.step(
            node(1),
            Event::Propose {
                group: group(g),
                data,
            },
        )
        .expect("leader accepts");
    }
    c.step(node(1), Event::Tick).expect("tick");
    for (_, batch) in c.flush(node(1)) {
        assert!(!batch.messages.is_empty() && !batch.heartbeats.is_empty());
        let bytes = encode_batch(&batch);
        assert_eq!(decode_batch(&bytes).expect("valid"), batch);
        assert!(decode_batch(&bytes[..bytes.len() / 2]).is_err());
    }
    assert!(decode_batch(b"not a batch").is_err());
}

#[test]
fn compact_heartbeats_expand_to_the_messages_the_group_sent() {
    let hb = Message {
        from: node(1),
        to: node(2),
        term: Term(3),
        body: MessageBody::Heartbeat {
            commit: raft::LogIndex(4),
            round: 9,
            quiesce: true,
        },
    };
    let resp = Message {
        from: node(1),
        to: node(2),
        term: Term(3),
        body: MessageBody::HeartbeatResponse { round: 8 },
    };
    let append = Message {
        from: node(1),
        to: node(2),
        term: Term(3),
        body: MessageBody::TimeoutNow,
    };
    let mut batch = Batch::new(node(1), node(2));
    batch.push(group(1), hb.clone());
    batch.push(group(2), resp.clone());
    batch.push(group(3), append.clone());
    assert_eq!(batch.len(), 3);
    let out: Vec<(GroupId, Message)> = batch.into_messages().collect();
    assert_eq!(
        out,
        vec![(group(3), append), (group(1), hb), (group(2), resp)]
    );
}
