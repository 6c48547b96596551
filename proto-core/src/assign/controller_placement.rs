//! The assigner as the metadata controller's [`Placement`]: the adapter
//! between the controller's request (usable brokers, existing replica sets)
//! and [`place_partitions`].

use crate::metadata::{
    BrokerId, Placement, PlacementError as ControllerPlacementError, PlacementRequest,
};

use super::{place_partitions, Assignment, Cluster, NewPartitions, PlacementError, TopicPartition};

/// Places new partitions with [`place_partitions`]. `seed` plays the part of
/// Kafka's random start index; it is mixed with the topic's name so topics
/// created in a row do not all start on the same broker, while a rebuilt
/// controller still decides exactly as the old one did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssignerPlacement {
    /// The cluster's placement seed.
    pub seed: u64,
}

/// FNV-1a of `s`: a stable, platform-independent hash of a topic name.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Placement for AssignerPlacement {
    fn place(
        &self,
        request: &PlacementRequest<'_>,
    ) -> Result<Vec<Vec<BrokerId>>, ControllerPlacementError> {
        let cluster = Cluster::new(request.brokers.iter().map(|b| (b.id, b.rack.clone())));
        let existing: Assignment = request
            .existing
            .iter()
            .map(|((topic, partition), replicas)| {
                (
                    TopicPartition {
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    replicas.clone(),
                )
            })
            .collect();
        let count = i32::try_from(request.partitions).map_err(|_| {
            ControllerPlacementError::Unsatisfiable(format!(
                "{} partitions is more than a topic can have",
                request.partitions
            ))
        })?;
        let end = request.first_partition.checked_add(count).ok_or_else(|| {
            ControllerPlacementError::Unsatisfiable("partition numbers overflow".to_string())
        })?;
        let new = NewPartitions {
            topic: request.topic.to_string(),
            partitions: request.first_partition..end,
            replication_factor: i16::try_from(request.replication_factor).unwrap_or(i16::MAX),
            seed: self.seed ^ fnv1a(request.topic),
        };
        let placed = place_partitions(&cluster, &existing, &new).map_err(|e| match e {
            PlacementError::TooFewBrokers { brokers, .. } => {
                ControllerPlacementError::NotEnoughBrokers {
                    wanted: request.replication_factor,
                    available: brokers,
                }
            }
            PlacementError::NoBrokers => ControllerPlacementError::NotEnoughBrokers {
                wanted: request.replication_factor,
                available: 0,
            },
            other => ControllerPlacementError::Unsatisfiable(other.to_string()),
        })?;
        Ok(placed.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::metadata::{BrokerInfo, ExistingAssignment};

    fn brokers(n: i32) -> Vec<BrokerInfo> {
        (1..=n)
            .map(|id| BrokerInfo {
                id: BrokerId(id),
                rack: None,
            })
            .collect()
    }

    fn request<'a>(
        brokers: &'a [BrokerInfo],
        existing: &'a ExistingAssignment,
        partitions: usize,
        rf: usize,
    ) -> PlacementRequest<'a> {
        PlacementRequest {
            brokers,
            existing,
            topic: "orders",
            first_partition: 0,
            partitions,
            replication_factor: rf,
        }
    }

    #[test]
    fn places_distinct_replicas_with_leaders_spread() {
        let b = brokers(3);
        let existing = ExistingAssignment::new();
        let placed = AssignerPlacement { seed: 7 }
            .place(&request(&b, &existing, 6, 3))
            .unwrap();
        assert_eq!(placed.len(), 6);
        for replicas in &placed {
            let distinct: BTreeSet<_> = replicas.iter().collect();
            assert_eq!(distinct.len(), 3, "{replicas:?}");
        }
        let mut leaders = [0; 3];
        for replicas in &placed {
            leaders[(replicas[0].0 - 1) as usize] += 1;
        }
        assert_eq!(leaders, [2, 2, 2]);
    }

    #[test]
    fn too_few_brokers_is_the_controllers_not_enough_brokers() {
        let b = brokers(2);
        let existing = ExistingAssignment::new();
        assert_eq!(
            AssignerPlacement { seed: 0 }.place(&request(&b, &existing, 1, 3)),
            Err(ControllerPlacementError::NotEnoughBrokers {
                wanted: 3,
                available: 2
            })
        );
    }

    #[test]
    fn the_same_request_places_the_same_way() {
        let b = brokers(5);
        let existing = ExistingAssignment::new();
        let p = AssignerPlacement { seed: 42 };
        assert_eq!(
            p.place(&request(&b, &existing, 10, 3)),
            p.place(&request(&b, &existing, 10, 3))
        );
    }
}
