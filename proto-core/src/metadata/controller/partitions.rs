//! AlterPartition (partition leaders report leadership and ISR) and producer
//! id blocks.
//!
//! Partition leadership is decided by each partition's Raft group, not by
//! the controller: the controller records what the group's leader reports,
//! and the leader epoch (the Raft term) orders the reports. A report from an
//! older epoch, or from another leader in the recorded epoch, is
//! FENCED_LEADER_EPOCH: it comes from a deposed leader. A broker may not
//! join the ISR while it is fenced or unregistered (KIP-841,
//! INELIGIBLE_REPLICA); the leader itself is exempt, because Raft elected it
//! and the metadata must say so.

use std::collections::BTreeSet;

use super::{Controller, ControllerResponse, PartitionState, ProducerIdBlock};
use crate::metadata::errors::{self, ApiError};
use crate::metadata::record::MetadataRecord;
use crate::metadata::types::{id_list, BrokerId, LeaderEpoch, RequestId, TopicId};

impl Controller {
    /// The record for an AlterPartition (none if nothing changes) and the
    /// state it leaves, or why not.
    fn check_alter_partition(
        &self,
        topic_id: TopicId,
        partition: i32,
        leader: BrokerId,
        leader_epoch: LeaderEpoch,
        isr: &[BrokerId],
    ) -> Result<(Option<MetadataRecord>, PartitionState), ApiError> {
        let Some(p) = self.latest.partition(topic_id, partition) else {
            return Err(ApiError::new(
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {topic_id} has no partition {partition}"),
            ));
        };
        if !p.replicas.contains(&leader) {
            return Err(ApiError::new(
                errors::NOT_LEADER_OR_FOLLOWER,
                format!("broker {leader} is not a replica of partition {partition}"),
            ));
        }
        if leader_epoch < p.leader_epoch
            || (leader_epoch == p.leader_epoch && Some(leader) != p.leader)
        {
            return Err(ApiError::new(
                errors::FENCED_LEADER_EPOCH,
                format!(
                    "leader {leader} at epoch {leader_epoch}; the partition's leader is {} at epoch {}",
                    p.leader.map_or("none".to_string(), |b| b.to_string()),
                    p.leader_epoch
                ),
            ));
        }
        if isr.iter().collect::<BTreeSet<_>>().len() != isr.len() {
            return Err(ApiError::new(
                errors::INVALID_REQUEST,
                format!("the ISR {} repeats a broker", id_list(isr)),
            ));
        }
        if !isr.contains(&leader) {
            return Err(ApiError::new(
                errors::INVALID_REQUEST,
                format!("the ISR {} leaves out the leader {leader}", id_list(isr)),
            ));
        }
        if let Some(b) = isr.iter().find(|b| !p.replicas.contains(b)) {
            return Err(ApiError::new(
                errors::INVALID_REQUEST,
                format!("ISR member {b} is not a replica"),
            ));
        }
        if let Some(b) = isr
            .iter()
            .find(|b| **b != leader && !p.isr.contains(b) && !self.latest.is_usable(**b))
        {
            return Err(ApiError::new(
                errors::INELIGIBLE_REPLICA,
                format!("broker {b} is fenced or unregistered and may not join the ISR"),
            ));
        }
        let state = PartitionState {
            leader: Some(leader),
            leader_epoch,
            isr: isr.to_vec(),
        };
        if leader_epoch == p.leader_epoch && p.isr == isr {
            return Ok((None, state));
        }
        let record = MetadataRecord::PartitionChange {
            topic_id,
            partition,
            replicas: None,
            leader: Some(leader),
            leader_epoch,
            isr: Some(isr.to_vec()),
        };
        Ok((Some(record), state))
    }

    pub(super) fn handle_alter_partition(
        &mut self,
        request_id: RequestId,
        topic_id: TopicId,
        partition: i32,
        leader: BrokerId,
        leader_epoch: LeaderEpoch,
        isr: Vec<BrokerId>,
    ) {
        let result = self
            .check_alter_partition(topic_id, partition, leader, leader_epoch, &isr)
            .map(|(record, state)| {
                if let Some(r) = record {
                    self.propose(vec![r], Some(request_id));
                }
                state
            });
        self.respond(request_id, ControllerResponse::AlterPartition(result));
    }

    pub(super) fn handle_allocate_producer_ids(
        &mut self,
        request_id: RequestId,
        broker_id: BrokerId,
    ) {
        let first = self.latest.next_producer_id();
        let len = self.cfg.producer_id_block_size.max(1);
        let result = if self.latest.broker(broker_id).is_none() {
            Err(ApiError::new(
                errors::BROKER_ID_NOT_REGISTERED,
                format!("broker {broker_id} is not registered"),
            ))
        } else {
            match first.checked_add(len) {
                None => Err(ApiError::new(
                    errors::UNKNOWN_SERVER_ERROR,
                    "the producer id space is exhausted",
                )),
                Some(next) => {
                    self.propose(
                        vec![MetadataRecord::ProducerIdsBlock {
                            broker_id,
                            next_producer_id: next,
                        }],
                        Some(request_id),
                    );
                    Ok(ProducerIdBlock { first, len })
                }
            }
        };
        self.respond(request_id, ControllerResponse::AllocateProducerIds(result));
    }
}
