//! The [`Controller`]: the pure state machine the metadata group's leader
//! runs (KRaft's `QuorumController`, much simplified).
//!
//! Every input enters through [`Controller::step`]; every output leaves as a
//! [`ControllerAction`] drained with [`Controller::take_actions`]. A decision
//! becomes records, which the driver appends to the metadata Raft log
//! ([`ControllerAction::Propose`]); the answer waits until the driver reports
//! them committed ([`ControllerEvent::Committed`]).
//!
//! The controller keeps two images. `committed` is what the log holds
//! durably; `latest` is `committed` plus every record proposed since, and is
//! what decisions are made against, so a second CreateTopics of a name still
//! in flight is refused (KRaft applies its own records at once for the same
//! reason). Every answer, a refusal included, is held until everything
//! proposed before it is committed: it may depend on that state, and a
//! failover could lose it (KRaft's deferred event queue does the same).
//! Answers therefore leave in the order the requests came.
//!
//! A controller lives for one leadership term. The driver builds it from the
//! node's image once that image holds every entry before the term's first
//! one, appends its proposals in order and nothing else, and on losing the
//! leadership steps [`ControllerEvent::Resign`] and drops it. Broker
//! sessions are soft state, never logged: a new controller gives every
//! registered broker a full session from its first step's `now_ms`, so a
//! failover fences nobody at once (KRaft's grace after activation).

mod configs;
mod io;
mod liveness;
mod partitions;
mod topics;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};

pub use configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
pub use io::{
    AlterConfigsResource, AlterConfigsResult, BrokerRegistrationRequest, ConfigOperation,
    ControllerAction, ControllerConfig, ControllerEvent, ControllerResponse, CreatableTopic,
    CreatePartitionsResult, CreateTopicResult, CreatedTopic, DeleteTopicResult,
    IncrementalAlterConfigsResource, PartitionState, PartitionsIncrease, ProducerIdBlock,
    ReplicaAssignment, StepError, TopicRef,
};

use super::errors::ApiError;
use super::image::MetadataImage;
use super::placement::Placement;
use super::record::MetadataRecord;
use super::types::{BrokerId, IncarnationId, MetadataOffset, RequestId};
use io::err;

/// Most partitions one topic may have: each is a Raft group.
pub const MAX_PARTITIONS: i32 = 10_000;

/// A broker's heartbeat session, which only the controller keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Session {
    /// The incarnation the session belongs to.
    incarnation_id: IncarnationId,
    /// The last heartbeat (or registration, or the controller's start).
    last_contact_ms: u64,
}

/// The cluster metadata controller of one metadata leadership term.
pub struct Controller {
    cfg: ControllerConfig,
    placement: Box<dyn Placement>,
    /// The committed log.
    committed: MetadataImage,
    /// `committed` plus `uncommitted`.
    latest: MetadataImage,
    /// Proposed records not yet committed, from `committed.next_offset()` on.
    uncommitted: VecDeque<MetadataRecord>,
    /// Answers held until the log is committed up to their offset.
    waiting: VecDeque<(MetadataOffset, ControllerAction)>,
    actions: Vec<ControllerAction>,
    sessions: BTreeMap<BrokerId, Session>,
    /// The latest `now_ms`; time never goes back.
    now: u64,
    /// A step has run: sessions have started.
    started: bool,
    /// Leadership is lost: everything is refused.
    resigned: bool,
}

impl Controller {
    /// A controller for a new leadership term over `image`, the node's image
    /// of the committed log. `placement` chooses replicas for new partitions.
    pub fn new(
        cfg: ControllerConfig,
        image: MetadataImage,
        placement: Box<dyn Placement>,
    ) -> Controller {
        Controller {
            cfg,
            placement,
            latest: image.clone(),
            committed: image,
            uncommitted: VecDeque::new(),
            waiting: VecDeque::new(),
            actions: Vec::new(),
            sessions: BTreeMap::new(),
            now: 0,
            started: false,
            resigned: false,
        }
    }

    /// Takes one input at `now_ms` (monotonic milliseconds). The only error
    /// is a driver breaking the contract on `Committed`; the event then
    /// changes nothing.
    pub fn step(&mut self, now_ms: u64, event: ControllerEvent) -> Result<(), StepError> {
        self.now = self.now.max(now_ms);
        if !self.started {
            self.started = true;
            let now = self.now;
            self.sessions = self
                .latest
                .brokers()
                .map(|b| {
                    (
                        b.id,
                        Session {
                            incarnation_id: b.incarnation_id,
                            last_contact_ms: now,
                        },
                    )
                })
                .collect();
        }
        if self.resigned {
            if let Some(a) = refusal(event, &ApiError::not_controller()) {
                self.actions.push(a);
            }
            return Ok(());
        }
        match event {
            ControllerEvent::BrokerRegistration(req) => self.handle_registration(req),
            ControllerEvent::BrokerHeartbeat {
                broker_id,
                incarnation_id,
                metadata_offset,
                want_fence,
            } => self.handle_heartbeat(broker_id, incarnation_id, metadata_offset, want_fence),
            ControllerEvent::UnregisterBroker {
                request_id,
                broker_id,
            } => self.handle_unregister(request_id, broker_id),
            ControllerEvent::CreateTopics {
                request_id,
                topics,
                validate_only,
            } => self.handle_create_topics(request_id, &topics, validate_only),
            ControllerEvent::DeleteTopics { request_id, topics } => {
                self.handle_delete_topics(request_id, &topics)
            }
            ControllerEvent::CreatePartitions {
                request_id,
                topics,
                validate_only,
            } => self.handle_create_partitions(request_id, &topics, validate_only),
            ControllerEvent::AlterConfigs {
                request_id,
                resources,
                validate_only,
            } => self.handle_alter_configs(request_id, &resources, validate_only),
            ControllerEvent::IncrementalAlterConfigs {
                request_id,
                resources,
                validate_only,
            } => self.handle_incremental_alter_configs(request_id, &resources, validate_only),
            ControllerEvent::AllocateProducerIds {
                request_id,
                broker_id,
            } => self.handle_allocate_producer_ids(request_id, broker_id),
            ControllerEvent::AlterPartition {
                request_id,
                topic_id,
                partition,
                leader,
                leader_epoch,
                isr,
            } => self.handle_alter_partition(
                request_id,
                topic_id,
                partition,
                leader,
                leader_epoch,
                isr,
            ),
            ControllerEvent::Committed { offset } => self.handle_committed(offset)?,
            ControllerEvent::Resign => self.handle_resign(),
            ControllerEvent::Tick => self.handle_tick(),
        }
        self.release();
        Ok(())
    }

    /// Every action since the last call, in the order they must be performed.
    pub fn take_actions(&mut self) -> Vec<ControllerAction> {
        std::mem::take(&mut self.actions)
    }

    /// The image of the committed log.
    pub fn committed_image(&self) -> &MetadataImage {
        &self.committed
    }

    /// The committed image plus every record proposed since: what the next
    /// decision is made against.
    pub fn latest_image(&self) -> &MetadataImage {
        &self.latest
    }

    /// The controller's settings.
    pub fn config(&self) -> &ControllerConfig {
        &self.cfg
    }

    /// Appends `records` to the log (through the driver) and to `latest`.
    fn propose(&mut self, records: Vec<MetadataRecord>, request_id: Option<RequestId>) {
        if records.is_empty() {
            return;
        }
        let offset = self.latest.next_offset();
        for r in &records {
            if let Err(e) = self.latest.apply(r) {
                // Every record is checked against `latest` before it is
                // proposed, so this is a controller bug; the log still holds
                // the record and every node skips it alike.
                tracing::error!(error = %e, record = ?r, "the controller proposed a record that does not apply");
                debug_assert!(false, "proposed a record that does not apply: {e}");
            }
        }
        self.uncommitted.extend(records.iter().cloned());
        self.actions.push(ControllerAction::Propose {
            offset,
            records,
            request_id,
        });
    }

    /// Holds `action` until everything proposed so far is committed.
    fn answer(&mut self, action: ControllerAction) {
        self.waiting.push_back((self.latest.next_offset(), action));
    }

    /// Answers `request_id` once everything proposed so far is committed.
    fn respond(&mut self, request_id: RequestId, response: ControllerResponse) {
        self.answer(ControllerAction::Respond {
            request_id,
            response,
        });
    }

    /// Sends the answers whose records are committed.
    fn release(&mut self) {
        let committed = self.committed.next_offset();
        while self.waiting.front().is_some_and(|(at, _)| *at <= committed) {
            if let Some((_, action)) = self.waiting.pop_front() {
                self.actions.push(action);
            }
        }
    }

    fn handle_committed(&mut self, offset: MetadataOffset) -> Result<(), StepError> {
        if offset > self.latest.next_offset() {
            return Err(StepError::CommittedBeyondProposed {
                committed: offset,
                proposed: self.latest.next_offset(),
            });
        }
        while self.committed.next_offset() < offset {
            let Some(r) = self.uncommitted.pop_front() else {
                break;
            };
            if let Err(e) = self.committed.apply(&r) {
                tracing::error!(error = %e, record = ?r, "a committed record does not apply");
            }
        }
        Ok(())
    }

    fn handle_resign(&mut self) {
        self.resigned = true;
        let refused = ApiError::not_controller();
        for (_, action) in std::mem::take(&mut self.waiting) {
            self.actions.push(refuse_action(action, &refused));
        }
        tracing::info!(
            uncommitted = self.uncommitted.len(),
            "the controller resigned; waiting answers refused with NOT_CONTROLLER"
        );
    }
}

/// `action` turned into a refusal with `error`.
fn refuse_action(action: ControllerAction, error: &ApiError) -> ControllerAction {
    match action {
        ControllerAction::Respond {
            request_id,
            response,
        } => ControllerAction::Respond {
            request_id,
            response: response.refused(error),
        },
        ControllerAction::BrokerRegistrationReply {
            broker_id,
            incarnation_id,
            ..
        } => ControllerAction::BrokerRegistrationReply {
            broker_id,
            incarnation_id,
            result: Err(error.clone()),
        },
        ControllerAction::BrokerHeartbeatReply {
            broker_id,
            incarnation_id,
            ..
        } => ControllerAction::BrokerHeartbeatReply {
            broker_id,
            incarnation_id,
            error: Some(error.clone()),
            fenced: true,
        },
        other => other,
    }
}

/// The refusal of a request made to a resigned controller; `None` for the
/// events that are not requests.
fn refusal(event: ControllerEvent, error: &ApiError) -> Option<ControllerAction> {
    let respond = |request_id, response| {
        Some(ControllerAction::Respond {
            request_id,
            response,
        })
    };
    match event {
        ControllerEvent::BrokerRegistration(req) => {
            Some(ControllerAction::BrokerRegistrationReply {
                broker_id: req.broker_id,
                incarnation_id: req.incarnation_id,
                result: err(error),
            })
        }
        ControllerEvent::BrokerHeartbeat {
            broker_id,
            incarnation_id,
            ..
        } => Some(ControllerAction::BrokerHeartbeatReply {
            broker_id,
            incarnation_id,
            error: Some(error.clone()),
            fenced: true,
        }),
        ControllerEvent::UnregisterBroker { request_id, .. } => {
            respond(request_id, ControllerResponse::UnregisterBroker(err(error)))
        }
        ControllerEvent::CreateTopics {
            request_id, topics, ..
        } => respond(
            request_id,
            ControllerResponse::CreateTopics(
                topics
                    .into_iter()
                    .map(|t| CreateTopicResult {
                        name: t.name,
                        result: err(error),
                    })
                    .collect(),
            ),
        ),
        ControllerEvent::DeleteTopics { request_id, topics } => respond(
            request_id,
            ControllerResponse::DeleteTopics(
                topics
                    .into_iter()
                    .map(|t| {
                        let (name, topic_id) = match t {
                            TopicRef::Name(n) => (Some(n), None),
                            TopicRef::Id(id) => (None, Some(id)),
                        };
                        DeleteTopicResult {
                            name,
                            topic_id,
                            result: err(error),
                        }
                    })
                    .collect(),
            ),
        ),
        ControllerEvent::CreatePartitions {
            request_id, topics, ..
        } => respond(
            request_id,
            ControllerResponse::CreatePartitions(
                topics
                    .into_iter()
                    .map(|t| CreatePartitionsResult {
                        name: t.name,
                        result: err(error),
                    })
                    .collect(),
            ),
        ),
        ControllerEvent::AlterConfigs {
            request_id,
            resources,
            ..
        } => respond(
            request_id,
            ControllerResponse::AlterConfigs(
                resources
                    .into_iter()
                    .map(|r| AlterConfigsResult {
                        resource_type: r.resource_type,
                        resource_name: r.resource_name,
                        result: err(error),
                    })
                    .collect(),
            ),
        ),
        ControllerEvent::IncrementalAlterConfigs {
            request_id,
            resources,
            ..
        } => respond(
            request_id,
            ControllerResponse::IncrementalAlterConfigs(
                resources
                    .into_iter()
                    .map(|r| AlterConfigsResult {
                        resource_type: r.resource_type,
                        resource_name: r.resource_name,
                        result: err(error),
                    })
                    .collect(),
            ),
        ),
        ControllerEvent::AllocateProducerIds { request_id, .. } => respond(
            request_id,
            ControllerResponse::AllocateProducerIds(err(error)),
        ),
        ControllerEvent::AlterPartition { request_id, .. } => {
            respond(request_id, ControllerResponse::AlterPartition(err(error)))
        }
        ControllerEvent::Committed { .. } | ControllerEvent::Resign | ControllerEvent::Tick => None,
    }
}
