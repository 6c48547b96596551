//! Broker membership and liveness (KRaft's `ClusterControlManager` and
//! `BrokerHeartbeatManager`): registration, heartbeats, fencing on a missed
//! session, unfencing once a broker has caught up, unregistration.
//!
//! - A registration with a new incarnation (or new addresses) writes a
//!   `RegisterBroker` record; the registration starts fenced, and its epoch
//!   is the record's offset. It replaces any earlier registration of the id,
//!   so the old incarnation's heartbeats get STALE_BROKER_EPOCH from then on.
//!   (KRaft refuses the new incarnation with DUPLICATE_BROKER_REGISTRATION
//!   while the old one's session lasts; Chronik's ids come from static
//!   configuration, so a new incarnation is a restart and should not wait out
//!   the session.) A retry of the same registration writes nothing.
//! - A fenced broker is unfenced by its first heartbeat whose metadata offset
//!   is past its registration record: it has seen itself registered.
//! - A broker that asks to be fenced (shutting down) is fenced.
//! - An unfenced broker not heard from for more than
//!   `broker_session_timeout_ms` is fenced at the next tick.

use super::{Controller, ControllerAction, ControllerResponse, Session};
use crate::metadata::controller::io::BrokerRegistrationRequest;
use crate::metadata::errors::{self, ApiError};
use crate::metadata::record::MetadataRecord;
use crate::metadata::types::{BrokerEpoch, BrokerId, IncarnationId, MetadataOffset, RequestId};

impl Controller {
    pub(super) fn handle_registration(&mut self, req: BrokerRegistrationRequest) {
        let reply = |result| ControllerAction::BrokerRegistrationReply {
            broker_id: req.broker_id,
            incarnation_id: req.incarnation_id,
            result,
        };
        if req.broker_id.0 < 0 {
            let e = ApiError::new(
                errors::INVALID_REQUEST,
                format!("broker id {} is negative", req.broker_id),
            );
            self.answer(reply(Err(e)));
            return;
        }
        self.sessions.insert(
            req.broker_id,
            Session {
                incarnation_id: req.incarnation_id,
                last_contact_ms: self.now,
            },
        );
        if let Some(b) = self.latest.broker(req.broker_id) {
            let same = b.incarnation_id == req.incarnation_id
                && b.kafka_host == req.kafka_host
                && b.kafka_port == req.kafka_port
                && b.raft_addr == req.raft_addr
                && b.rack == req.rack;
            if same {
                let epoch = b.epoch;
                self.answer(reply(Ok(epoch)));
                return;
            }
            if b.incarnation_id != req.incarnation_id {
                tracing::info!(
                    broker = %req.broker_id,
                    old_incarnation = %b.incarnation_id,
                    new_incarnation = %req.incarnation_id,
                    "a new incarnation replaces the broker's registration"
                );
            }
        }
        let epoch = BrokerEpoch(self.latest.next_offset().0);
        self.propose(
            vec![MetadataRecord::RegisterBroker {
                broker_id: req.broker_id,
                incarnation_id: req.incarnation_id,
                kafka_host: req.kafka_host.clone(),
                kafka_port: req.kafka_port,
                raft_addr: req.raft_addr.clone(),
                rack: req.rack.clone(),
            }],
            None,
        );
        self.answer(reply(Ok(epoch)));
    }

    pub(super) fn handle_heartbeat(
        &mut self,
        broker_id: BrokerId,
        incarnation_id: IncarnationId,
        metadata_offset: MetadataOffset,
        want_fence: bool,
    ) {
        let refuse = |code, message: String| ControllerAction::BrokerHeartbeatReply {
            broker_id,
            incarnation_id,
            error: Some(ApiError::new(code, message)),
            fenced: true,
        };
        let Some(b) = self.latest.broker(broker_id) else {
            let a = refuse(
                errors::BROKER_ID_NOT_REGISTERED,
                format!("broker {broker_id} is not registered"),
            );
            self.answer(a);
            return;
        };
        if b.incarnation_id != incarnation_id {
            let a = refuse(
                errors::STALE_BROKER_EPOCH,
                format!(
                    "broker {broker_id} is registered by incarnation {}, not {incarnation_id}",
                    b.incarnation_id
                ),
            );
            self.answer(a);
            return;
        }
        let (epoch, was_fenced) = (b.epoch, b.fenced);
        self.sessions.insert(
            broker_id,
            Session {
                incarnation_id,
                last_contact_ms: self.now,
            },
        );
        let fenced = if want_fence && !was_fenced {
            tracing::info!(broker = %broker_id, "fencing a broker at its request");
            self.propose(vec![MetadataRecord::FenceBroker { broker_id, epoch }], None);
            true
        } else if !want_fence && was_fenced && metadata_offset.0 > epoch.0 {
            tracing::info!(broker = %broker_id, %metadata_offset, "unfencing a broker that caught up");
            self.propose(
                vec![MetadataRecord::UnfenceBroker { broker_id, epoch }],
                None,
            );
            false
        } else {
            was_fenced
        };
        self.answer(ControllerAction::BrokerHeartbeatReply {
            broker_id,
            incarnation_id,
            error: None,
            fenced,
        });
    }

    pub(super) fn handle_unregister(&mut self, request_id: RequestId, broker_id: BrokerId) {
        let result = match self.latest.broker(broker_id) {
            None => Err(ApiError::new(
                errors::BROKER_ID_NOT_REGISTERED,
                format!("broker {broker_id} is not registered"),
            )),
            Some(b) => {
                let epoch = b.epoch;
                self.sessions.remove(&broker_id);
                self.propose(
                    vec![MetadataRecord::UnregisterBroker { broker_id, epoch }],
                    Some(request_id),
                );
                Ok(())
            }
        };
        self.respond(request_id, ControllerResponse::UnregisterBroker(result));
    }

    /// Fences every unfenced broker whose session ran out, in one batch.
    pub(super) fn handle_tick(&mut self) {
        let timeout = self.cfg.broker_session_timeout_ms;
        let now = self.now;
        let expired: Vec<MetadataRecord> = self
            .latest
            .brokers()
            .filter(|b| !b.fenced)
            .filter(|b| {
                self.sessions.get(&b.id).is_none_or(|s| {
                    s.incarnation_id != b.incarnation_id
                        || now.saturating_sub(s.last_contact_ms) > timeout
                })
            })
            .map(|b| {
                tracing::info!(broker = %b.id, timeout_ms = timeout, "fencing a broker whose session expired");
                MetadataRecord::FenceBroker {
                    broker_id: b.id,
                    epoch: b.epoch,
                }
            })
            .collect();
        self.propose(expired, None);
    }
}
