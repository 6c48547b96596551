//! Clears response fields the request's version cannot carry.
//!
//! `kafka-protocol` refuses to encode a field that is set (not at its default)
//! at a version without it. Handlers fill in everything they know, and this
//! module, one place with one rule per field (from Kafka's message schemas),
//! resets what an older client's version has no room for.

use kafka_protocol::messages::ResponseKind;

/// Resets the fields of `body` that version `v` does not have.
pub fn fit_to_version(body: &mut ResponseKind, v: i16) {
    match body {
        ResponseKind::Produce(r) => {
            if v < 10 {
                r.node_endpoints.clear();
            }
            for t in &mut r.responses {
                for p in &mut t.partition_responses {
                    if v < 5 {
                        p.log_start_offset = -1;
                    }
                    if v < 8 {
                        p.record_errors.clear();
                        p.error_message = None;
                    }
                    if v < 10 {
                        p.current_leader = Default::default();
                    }
                }
            }
        }
        ResponseKind::Fetch(r) => {
            if v < 7 {
                r.error_code = 0;
                r.session_id = 0;
            }
            if v < 16 {
                r.node_endpoints.clear();
            }
            for t in &mut r.responses {
                if v < 13 {
                    t.topic_id = Default::default();
                } else {
                    t.topic = Default::default();
                }
                for p in &mut t.partitions {
                    if v < 5 {
                        p.log_start_offset = -1;
                    }
                    if v < 11 {
                        p.preferred_read_replica = (-1).into();
                    }
                    if v < 12 {
                        p.diverging_epoch = Default::default();
                        p.current_leader = Default::default();
                        p.snapshot_id = Default::default();
                    }
                }
            }
        }
        ResponseKind::ListOffsets(r) => {
            for t in &mut r.topics {
                for p in &mut t.partitions {
                    if v < 4 {
                        p.leader_epoch = -1;
                    }
                }
            }
        }
        ResponseKind::Metadata(r) => {
            if v < 1 {
                r.controller_id = (-1).into();
                for b in &mut r.brokers {
                    b.rack = None;
                }
            }
            if v < 2 {
                r.cluster_id = None;
            }
            if !(8..=10).contains(&v) {
                r.cluster_authorized_operations = i32::MIN;
            }
            for t in &mut r.topics {
                if v < 1 {
                    t.is_internal = false;
                }
                if v < 8 {
                    t.topic_authorized_operations = i32::MIN;
                }
                if v < 10 {
                    t.topic_id = Default::default();
                }
                for p in &mut t.partitions {
                    if v < 5 {
                        p.offline_replicas.clear();
                    }
                    if v < 7 {
                        p.leader_epoch = -1;
                    }
                }
            }
        }
        ResponseKind::CreateTopics(r) => {
            for t in &mut r.topics {
                if v < 1 {
                    t.error_message = None;
                }
                if v < 5 {
                    t.num_partitions = -1;
                    t.replication_factor = -1;
                    t.configs = None;
                    t.topic_config_error_code = 0;
                }
                if v < 7 {
                    t.topic_id = Default::default();
                }
            }
        }
        ResponseKind::DeleteTopics(r) => {
            for t in &mut r.responses {
                if v < 5 {
                    t.error_message = None;
                }
                if v < 6 {
                    t.topic_id = Default::default();
                }
            }
        }
        ResponseKind::DescribeConfigs(r) => {
            for res in &mut r.results {
                for c in &mut res.configs {
                    if v < 1 {
                        c.synonyms.clear();
                    }
                    if v < 3 {
                        c.config_type = 0;
                        c.documentation = None;
                    }
                }
            }
        }
        _ => {}
    }
}
