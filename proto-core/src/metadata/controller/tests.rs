//! The controller's rules, one story each; the trace corpus in
//! `conformance/traces/metadata/` tells the longer ones.

use super::*;
use crate::metadata::errors;
use crate::metadata::placement::{PlacementError, PlacementRequest};
use crate::metadata::record::MetadataRecord;
use crate::metadata::types::{BrokerEpoch, LeaderEpoch, TopicId};

/// Partition `first + i` starts at broker `(first + i) % n`.
fn round_robin(req: &PlacementRequest<'_>) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    let n = req.brokers.len();
    if req.replication_factor > n || n == 0 {
        return Err(PlacementError::NotEnoughBrokers {
            wanted: req.replication_factor,
            available: n,
        });
    }
    Ok((0..req.partitions)
        .map(|i| {
            let start = req.first_partition as usize + i;
            (0..req.replication_factor)
                .map(|k| req.brokers[(start + k) % n].id)
                .collect()
        })
        .collect())
}

/// A controller and the log its proposals go to.
struct Harness {
    c: Controller,
    /// Proposed and not yet committed.
    proposed: u64,
    log: Vec<MetadataRecord>,
    now: u64,
    out: Vec<ControllerAction>,
}

impl Harness {
    fn new() -> Harness {
        Harness::from(MetadataImage::new(), Box::new(round_robin))
    }

    fn from(image: MetadataImage, placement: Box<dyn Placement>) -> Harness {
        let proposed = image.next_offset().0;
        Harness {
            c: Controller::new(ControllerConfig::default(), image, placement),
            proposed,
            log: Vec::new(),
            now: 0,
            out: Vec::new(),
        }
    }

    fn step(&mut self, e: ControllerEvent) -> Vec<ControllerAction> {
        self.c.step(self.now, e).unwrap();
        let actions = self.c.take_actions();
        for a in &actions {
            if let ControllerAction::Propose { records, .. } = a {
                self.log.extend(records.iter().cloned());
                self.proposed += records.len() as u64;
            }
        }
        self.out.extend(actions.clone());
        actions
    }

    /// Steps `e`, then commits everything: what both gave.
    fn settle(&mut self, e: ControllerEvent) -> Vec<ControllerAction> {
        let mut actions = self.step(e);
        actions.extend(self.commit());
        actions
    }

    fn commit(&mut self) -> Vec<ControllerAction> {
        let offset = MetadataOffset(self.proposed);
        self.step(ControllerEvent::Committed { offset })
    }

    /// Registers `ids` and heartbeats them unfenced.
    fn brokers(&mut self, ids: &[i32]) {
        for &id in ids {
            self.step(ControllerEvent::BrokerRegistration(registration(id, 1)));
        }
        self.commit();
        for &id in ids {
            self.heartbeat(id, 1);
        }
        self.commit();
        for &id in ids {
            assert!(self.c.committed_image().is_usable(BrokerId(id)));
        }
    }

    fn heartbeat(&mut self, id: i32, incarnation: u128) -> Vec<ControllerAction> {
        let offset = self.c.committed_image().next_offset();
        self.step(ControllerEvent::BrokerHeartbeat {
            broker_id: BrokerId(id),
            incarnation_id: IncarnationId(incarnation),
            metadata_offset: offset,
            want_fence: false,
        })
    }
}

fn registration(id: i32, incarnation: u128) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest {
        broker_id: BrokerId(id),
        incarnation_id: IncarnationId(incarnation),
        kafka_host: "127.0.0.1".into(),
        kafka_port: 9092,
        raft_addr: "127.0.0.1:9093".into(),
        rack: None,
    }
}

fn create(name: &str, partitions: i32, rf: i16) -> CreatableTopic {
    CreatableTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: rf,
        assignments: Vec::new(),
        configs: Vec::new(),
    }
}

fn create_topics(id: u64, topics: Vec<CreatableTopic>) -> ControllerEvent {
    ControllerEvent::CreateTopics {
        request_id: RequestId(id),
        topics,
        validate_only: false,
    }
}

fn responses(actions: &[ControllerAction]) -> Vec<(RequestId, ControllerResponse)> {
    actions
        .iter()
        .filter_map(|a| match a {
            ControllerAction::Respond {
                request_id,
                response,
            } => Some((*request_id, response.clone())),
            _ => None,
        })
        .collect()
}

fn topic_codes(r: &ControllerResponse) -> Vec<i16> {
    match r {
        ControllerResponse::CreateTopics(v) => v
            .iter()
            .map(|t| t.result.as_ref().map_or_else(|e| e.code, |_| 0))
            .collect(),
        other => panic!("not a CreateTopics answer: {other:?}"),
    }
}

#[test]
fn a_created_topic_is_answered_only_once_committed() {
    let mut h = Harness::new();
    h.brokers(&[1, 2, 3]);
    let actions = h.step(create_topics(7, vec![create("orders", 3, 2)]));
    assert_eq!(actions.len(), 1, "only a proposal: {actions:?}");
    let ControllerAction::Propose {
        records,
        request_id,
        ..
    } = &actions[0]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(*request_id, Some(RequestId(7)));
    assert_eq!(records.len(), 4);
    // Not committed: not in the committed image, but a second create sees it.
    assert!(h.c.committed_image().topic("orders").is_none());
    let again = h.step(create_topics(8, vec![create("orders", 1, 1)]));
    assert!(responses(&again).is_empty(), "the refusal waits too");

    let answers = responses(&h.commit());
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].0, RequestId(7));
    assert_eq!(topic_codes(&answers[0].1), vec![0]);
    assert_eq!(
        topic_codes(&answers[1].1),
        vec![errors::TOPIC_ALREADY_EXISTS]
    );
    let t = h.c.committed_image().topic("orders").unwrap();
    let replicas: Vec<Vec<i32>> = t
        .partitions
        .iter()
        .map(|p| p.replicas.iter().map(|b| b.0).collect())
        .collect();
    assert_eq!(replicas, vec![vec![1, 2], vec![2, 3], vec![3, 1]]);
    let groups: Vec<u64> = t.partitions.iter().map(|p| p.raft_group.0).collect();
    assert_eq!(groups, vec![1, 2, 3]);
}

#[test]
fn validation_follows_the_single_node_broker() {
    let mut h = Harness::new();
    h.brokers(&[1, 2]);
    let mut bad_config = create("c", 1, 1);
    bad_config.configs = vec![("cleanup.policy".into(), Some("compact".into()))];
    let mut assigned = create("d", -1, -1);
    assigned.assignments = vec![ReplicaAssignment {
        partition: 0,
        replicas: vec![BrokerId(1), BrokerId(9)],
    }];
    let answers = responses(&h.settle(create_topics(
        1,
        vec![
            create("bad/name", 1, 1),
            create("zero", 0, 1),
            create("rf", 1, 3),
            create("rf0", 1, 0),
            bad_config,
            assigned,
            create("dup", 1, 1),
            create("dup", 1, 1),
        ],
    )));
    assert_eq!(
        topic_codes(&answers[0].1),
        vec![
            errors::INVALID_TOPIC_EXCEPTION,
            errors::INVALID_PARTITIONS,
            errors::INVALID_REPLICATION_FACTOR,
            errors::INVALID_REPLICATION_FACTOR,
            errors::INVALID_CONFIG,
            errors::INVALID_REPLICA_ASSIGNMENT,
            errors::INVALID_REQUEST,
            errors::INVALID_REQUEST,
        ]
    );
    assert!(
        h.c.latest_image().topics().next().is_none(),
        "nothing was proposed"
    );
}

#[test]
fn fenced_brokers_get_no_replicas() {
    let mut h = Harness::new();
    h.brokers(&[1, 2, 3]);
    h.now = 5000;
    h.heartbeat(1, 1);
    h.heartbeat(2, 1);
    h.now = 9500;
    h.step(ControllerEvent::Tick);
    h.commit();
    assert!(!h.c.committed_image().is_usable(BrokerId(3)));
    h.step(create_topics(1, vec![create("t", 4, 3), create("u", 4, 2)]));
    let answers = responses(&h.commit());
    assert_eq!(
        topic_codes(&answers[0].1),
        vec![errors::INVALID_REPLICATION_FACTOR, 0]
    );
    let u = h.c.committed_image().topic("u").unwrap();
    assert!(u
        .partitions
        .iter()
        .all(|p| !p.replicas.contains(&BrokerId(3))));
}

#[test]
fn a_placement_that_breaks_its_contract_is_refused() {
    let fenced_too = |req: &PlacementRequest<'_>| -> Result<Vec<Vec<BrokerId>>, PlacementError> {
        Ok(vec![
            vec![BrokerId(42); req.replication_factor];
            req.partitions
        ])
    };
    let mut h = Harness::from(MetadataImage::new(), Box::new(fenced_too));
    h.brokers(&[1]);
    let answers = responses(&h.settle(create_topics(1, vec![create("t", 1, 1)])));
    assert_eq!(
        topic_codes(&answers[0].1),
        vec![errors::UNKNOWN_SERVER_ERROR]
    );
}

#[test]
fn sessions_fence_and_heartbeats_unfence_after_catching_up() {
    let mut h = Harness::new();
    h.step(ControllerEvent::BrokerRegistration(registration(1, 1)));
    // Before the registration is committed the broker cannot have caught up.
    let early = h.step(ControllerEvent::BrokerHeartbeat {
        broker_id: BrokerId(1),
        incarnation_id: IncarnationId(1),
        metadata_offset: MetadataOffset(0),
        want_fence: false,
    });
    assert!(early.is_empty(), "the reply waits for the registration");
    let replies = h.commit();
    assert!(replies.iter().any(|a| matches!(
        a,
        ControllerAction::BrokerHeartbeatReply {
            fenced: true,
            error: None,
            ..
        }
    )));
    h.heartbeat(1, 1);
    let replies = h.commit();
    assert!(replies.iter().any(|a| matches!(
        a,
        ControllerAction::BrokerHeartbeatReply { fenced: false, .. }
    )));
    h.now = 9000;
    assert!(
        h.step(ControllerEvent::Tick).is_empty(),
        "9000 ms is within the session"
    );
    h.now = 9001;
    let fence = h.step(ControllerEvent::Tick);
    assert!(matches!(
        &fence[..],
        [ControllerAction::Propose { records, request_id: None, .. }]
            if records == &vec![MetadataRecord::FenceBroker { broker_id: BrokerId(1), epoch: BrokerEpoch(0) }]
    ));
    assert!(h.step(ControllerEvent::Tick).is_empty(), "fenced once");
}

#[test]
fn a_new_incarnation_replaces_the_old() {
    let mut h = Harness::new();
    h.brokers(&[1]);
    let reg = h.step(ControllerEvent::BrokerRegistration(registration(1, 1)));
    assert!(
        matches!(
            &reg[..],
            [ControllerAction::BrokerRegistrationReply {
                result: Ok(BrokerEpoch(0)),
                ..
            }]
        ),
        "a retry writes nothing: {reg:?}"
    );
    h.step(ControllerEvent::BrokerRegistration(registration(1, 2)));
    h.commit();
    let b = h.c.committed_image().broker(BrokerId(1)).unwrap();
    assert_eq!(b.incarnation_id, IncarnationId(2));
    assert!(b.fenced);
    let old = h.heartbeat(1, 1);
    assert!(matches!(
        &old[..],
        [ControllerAction::BrokerHeartbeatReply { error: Some(e), fenced: true, .. }]
            if e.code == errors::STALE_BROKER_EPOCH
    ));
    h.heartbeat(1, 2);
    h.commit();
    assert!(h.c.committed_image().is_usable(BrokerId(1)));
}

#[test]
fn a_rebuilt_controller_gives_every_broker_a_full_session() {
    let mut h = Harness::new();
    h.brokers(&[1, 2]);
    let image = h.c.committed_image().clone();
    let mut next = Harness::from(image, Box::new(round_robin));
    // The new leader's clock is far ahead of the last heartbeats.
    next.now = 1_000_000;
    assert!(next.step(ControllerEvent::Tick).is_empty());
    next.now += 9001;
    let fence = next.step(ControllerEvent::Tick);
    assert!(
        matches!(&fence[..], [ControllerAction::Propose { records, .. }] if records.len() == 2)
    );
}

#[test]
fn committed_past_the_proposals_is_a_contract_error() {
    let mut h = Harness::new();
    let e =
        h.c.step(
            0,
            ControllerEvent::Committed {
                offset: MetadataOffset(1),
            },
        )
        .unwrap_err();
    assert!(matches!(e, StepError::CommittedBeyondProposed { .. }));
}

#[test]
fn resigning_refuses_what_waits_and_what_comes() {
    let mut h = Harness::new();
    h.brokers(&[1]);
    h.step(create_topics(1, vec![create("t", 1, 1)]));
    let refused = responses(&h.step(ControllerEvent::Resign));
    assert_eq!(topic_codes(&refused[0].1), vec![errors::NOT_CONTROLLER]);
    assert!(refused[0].1.is_refused_with(errors::NOT_CONTROLLER));
    assert!(!refused[0].1.is_refused_with(errors::INVALID_REQUEST));
    assert!(
        !ControllerResponse::CreateTopics(Vec::new()).is_refused_with(errors::NOT_CONTROLLER),
        "an answer with no parts refuses nothing"
    );
    let later = responses(&h.step(ControllerEvent::AllocateProducerIds {
        request_id: RequestId(2),
        broker_id: BrokerId(1),
    }));
    assert!(matches!(
        &later[0].1,
        ControllerResponse::AllocateProducerIds(Err(e)) if e.code == errors::NOT_CONTROLLER
    ));
}

#[test]
fn producer_id_blocks_follow_each_other() {
    let mut h = Harness::new();
    h.brokers(&[1, 2]);
    for (i, b) in [1, 2, 1].into_iter().enumerate() {
        h.step(ControllerEvent::AllocateProducerIds {
            request_id: RequestId(i as u64),
            broker_id: BrokerId(b),
        });
    }
    h.step(ControllerEvent::AllocateProducerIds {
        request_id: RequestId(9),
        broker_id: BrokerId(7),
    });
    let blocks: Vec<_> = responses(&h.commit())
        .into_iter()
        .map(|(_, r)| match r {
            ControllerResponse::AllocateProducerIds(r) => r.map(|b| b.first).map_err(|e| e.code),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        blocks,
        vec![
            Ok(0),
            Ok(1000),
            Ok(2000),
            Err(errors::BROKER_ID_NOT_REGISTERED)
        ]
    );
    assert_eq!(h.c.committed_image().next_producer_id(), 3000);
}

#[test]
fn alter_partition_orders_reports_by_leader_epoch() {
    let mut h = Harness::new();
    h.brokers(&[1, 2, 3]);
    h.step(create_topics(1, vec![create("t", 1, 3)]));
    h.commit();
    let id = h.c.committed_image().topic("t").unwrap().id;
    let alter = |req: u64, leader: i32, epoch: i32, isr: &[i32]| ControllerEvent::AlterPartition {
        request_id: RequestId(req),
        topic_id: id,
        partition: 0,
        leader: BrokerId(leader),
        leader_epoch: LeaderEpoch(epoch),
        isr: isr.iter().copied().map(BrokerId).collect(),
    };
    let code = |h: &mut Harness, e: ControllerEvent| -> i16 {
        match &responses(&h.settle(e))[0].1 {
            ControllerResponse::AlterPartition(r) => r.as_ref().map_or_else(|e| e.code, |_| 0),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code(&mut h, alter(2, 2, 5, &[2, 3])), 0);
    assert_eq!(
        code(&mut h, alter(3, 1, 4, &[1, 2])),
        errors::FENCED_LEADER_EPOCH
    );
    assert_eq!(
        code(&mut h, alter(4, 3, 5, &[3])),
        errors::FENCED_LEADER_EPOCH
    );
    assert_eq!(
        code(&mut h, alter(5, 9, 6, &[9])),
        errors::NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(code(&mut h, alter(6, 2, 5, &[3])), errors::INVALID_REQUEST);
    // Broker 1 is fenced: it may not rejoin the ISR, but may stay out of it.
    h.now = 20_000;
    h.heartbeat(2, 1);
    h.heartbeat(3, 1);
    h.step(ControllerEvent::Tick);
    h.commit();
    assert_eq!(
        code(&mut h, alter(7, 2, 5, &[2, 3, 1])),
        errors::INELIGIBLE_REPLICA
    );
    assert_eq!(code(&mut h, alter(8, 3, 6, &[3])), 0);
    let p = h.c.committed_image().partition(id, 0).unwrap();
    assert_eq!(
        (p.leader, p.leader_epoch),
        (Some(BrokerId(3)), LeaderEpoch(6))
    );
    assert_eq!(
        h.step(alter(9, 3, 6, &[3])).len(),
        1,
        "an unchanged report writes nothing"
    );
    let _ = TopicId(0);
}

#[test]
fn configs_change_as_overrides() {
    let mut h = Harness::new();
    h.brokers(&[1]);
    let mut t = create("t", 1, 1);
    t.configs = vec![("retention.ms".into(), Some("100".into()))];
    h.step(create_topics(1, vec![t]));
    h.commit();
    let incremental =
        |ops: Vec<(&str, i8, Option<&str>)>| ControllerEvent::IncrementalAlterConfigs {
            request_id: RequestId(2),
            resources: vec![IncrementalAlterConfigsResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: "t".into(),
                ops: ops
                    .into_iter()
                    .map(|(n, op, v)| ConfigOperation {
                        name: n.into(),
                        op,
                        value: v.map(String::from),
                    })
                    .collect(),
            }],
            validate_only: false,
        };
    let code = |h: &mut Harness, e| -> i16 {
        match &responses(&h.settle(e))[0].1 {
            ControllerResponse::IncrementalAlterConfigs(v)
            | ControllerResponse::AlterConfigs(v) => {
                v[0].result.as_ref().map_or_else(|e| e.code, |_| 0)
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        code(&mut h, incremental(vec![("segment.ms", 0, Some("5"))])),
        0
    );
    assert_eq!(h.c.committed_image().topic_overrides("t").len(), 2);
    assert_eq!(
        code(&mut h, incremental(vec![("segment.ms", 2, Some("5"))])),
        errors::INVALID_CONFIG
    );
    assert_eq!(
        code(&mut h, incremental(vec![("retention.ms", 1, None)])),
        0
    );
    assert_eq!(h.c.committed_image().topic_overrides("t").len(), 1);
    // AlterConfigs replaces the set: segment.ms goes back to its default.
    let alter = ControllerEvent::AlterConfigs {
        request_id: RequestId(3),
        resources: vec![AlterConfigsResource {
            resource_type: RESOURCE_TOPIC,
            resource_name: "t".into(),
            configs: vec![("max.message.bytes".into(), Some("10".into()))],
        }],
        validate_only: false,
    };
    assert_eq!(code(&mut h, alter), 0);
    let overrides = h.c.committed_image().topic_overrides("t");
    assert_eq!(
        overrides.keys().collect::<Vec<_>>(),
        vec!["max.message.bytes"]
    );
    let broker = ControllerEvent::AlterConfigs {
        request_id: RequestId(4),
        resources: vec![AlterConfigsResource {
            resource_type: RESOURCE_BROKER,
            resource_name: "1".into(),
            configs: vec![],
        }],
        validate_only: false,
    };
    assert_eq!(code(&mut h, broker), errors::INVALID_REQUEST);
}
