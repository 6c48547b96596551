//! Kafka's admin requests as controller events, and the controller's answers
//! as Kafka responses: a field-for-field copy both ways (the controller keeps
//! Kafka's shapes and codes). Also the refusal of each API, for a request
//! that cannot reach a controller.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsResponse,
    CreatePartitionsResponse, CreateTopicsResponse, DeleteTopicsResponse,
    IncrementalAlterConfigsResponse, InitProducerIdResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use proto_core::metadata::{
    AlterConfigsResource, AlterConfigsResult, ApiError, BrokerId, ConfigOperation, ControllerEvent,
    ControllerResponse, CreatableTopic, IncrementalAlterConfigsResource, PartitionsIncrease,
    ReplicaAssignment, RequestId, TopicId, TopicRef,
};
use uuid::Uuid;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn code_and_message<T>(r: &Result<T, ApiError>) -> (i16, Option<StrBytes>) {
    match r {
        Ok(_) => (0, None),
        Err(e) => (e.code, Some(s(e.message.clone()))),
    }
}

/// The controller event of an admin request, or `None` for a request that
/// is not one of the controller's.
pub(super) fn to_event(request_id: RequestId, body: &RequestKind) -> Option<ControllerEvent> {
    Some(match body {
        RequestKind::CreateTopics(r) => ControllerEvent::CreateTopics {
            request_id,
            validate_only: r.validate_only,
            topics: r
                .topics
                .iter()
                .map(|t| CreatableTopic {
                    name: t.name.0.to_string(),
                    num_partitions: t.num_partitions,
                    replication_factor: t.replication_factor,
                    assignments: t
                        .assignments
                        .iter()
                        .map(|a| ReplicaAssignment {
                            partition: a.partition_index,
                            replicas: a.broker_ids.iter().map(|b| BrokerId(b.0)).collect(),
                        })
                        .collect(),
                    configs: t
                        .configs
                        .iter()
                        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                        .collect(),
                })
                .collect(),
        },
        RequestKind::DeleteTopics(r) => {
            // v6 names topics in `topics` (by name or id); earlier versions in `topic_names`.
            let mut topics: Vec<TopicRef> = r
                .topic_names
                .iter()
                .map(|n| TopicRef::Name(n.0.to_string()))
                .collect();
            topics.extend(r.topics.iter().map(|t| match &t.name {
                Some(n) => TopicRef::Name(n.0.to_string()),
                None => TopicRef::Id(TopicId(t.topic_id.as_u128())),
            }));
            ControllerEvent::DeleteTopics { request_id, topics }
        }
        RequestKind::CreatePartitions(r) => ControllerEvent::CreatePartitions {
            request_id,
            validate_only: r.validate_only,
            topics: r
                .topics
                .iter()
                .map(|t| PartitionsIncrease {
                    name: t.name.0.to_string(),
                    count: t.count,
                    assignments: t.assignments.as_ref().map(|a| {
                        a.iter()
                            .map(|p| p.broker_ids.iter().map(|b| BrokerId(b.0)).collect())
                            .collect()
                    }),
                })
                .collect(),
        },
        RequestKind::AlterConfigs(r) => ControllerEvent::AlterConfigs {
            request_id,
            validate_only: r.validate_only,
            resources: r
                .resources
                .iter()
                .map(|r| AlterConfigsResource {
                    resource_type: r.resource_type,
                    resource_name: r.resource_name.to_string(),
                    configs: r
                        .configs
                        .iter()
                        .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                        .collect(),
                })
                .collect(),
        },
        RequestKind::IncrementalAlterConfigs(r) => ControllerEvent::IncrementalAlterConfigs {
            request_id,
            validate_only: r.validate_only,
            resources: r
                .resources
                .iter()
                .map(|r| IncrementalAlterConfigsResource {
                    resource_type: r.resource_type,
                    resource_name: r.resource_name.to_string(),
                    ops: r
                        .configs
                        .iter()
                        .map(|c| ConfigOperation {
                            name: c.name.to_string(),
                            op: c.config_operation,
                            value: c.value.as_ref().map(|v| v.to_string()),
                        })
                        .collect(),
                })
                .collect(),
        },
        _ => return None,
    })
}

/// The Kafka response of a controller answer.
pub(super) fn to_response(response: ControllerResponse) -> Option<ResponseKind> {
    Some(match response {
        ControllerResponse::CreateTopics(results) => ResponseKind::CreateTopics(
            CreateTopicsResponse::default().with_topics(
                results
                    .into_iter()
                    .map(|r| {
                        let base = CreatableTopicResult::default().with_name(TopicName(s(r.name)));
                        match r.result {
                            Ok(t) => base
                                .with_topic_id(Uuid::from_u128(t.topic_id.0))
                                .with_num_partitions(t.partitions)
                                .with_replication_factor(t.replication_factor),
                            Err(e) => base
                                .with_error_code(e.code)
                                .with_error_message(Some(s(e.message)))
                                .with_num_partitions(-1)
                                .with_replication_factor(-1),
                        }
                    })
                    .collect(),
            ),
        ),
        ControllerResponse::DeleteTopics(results) => ResponseKind::DeleteTopics(
            DeleteTopicsResponse::default().with_responses(
                results
                    .into_iter()
                    .map(|r| {
                        let (code, message) = code_and_message(&r.result);
                        DeletableTopicResult::default()
                            .with_name(r.name.map(|n| TopicName(s(n))))
                            .with_topic_id(r.topic_id.map_or(Uuid::nil(), |t| Uuid::from_u128(t.0)))
                            .with_error_code(code)
                            .with_error_message(message)
                    })
                    .collect(),
            ),
        ),
        ControllerResponse::CreatePartitions(results) => ResponseKind::CreatePartitions(
            CreatePartitionsResponse::default().with_results(
                results
                    .into_iter()
                    .map(|r| {
                        let (code, message) = code_and_message(&r.result);
                        CreatePartitionsTopicResult::default()
                            .with_name(TopicName(s(r.name)))
                            .with_error_code(code)
                            .with_error_message(message)
                    })
                    .collect(),
            ),
        ),
        ControllerResponse::AlterConfigs(results) => ResponseKind::AlterConfigs(
            AlterConfigsResponse::default().with_responses(
                results
                    .into_iter()
                    .map(|r| {
                        let (code, message) = code_and_message(&r.result);
                        alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(r.resource_type)
                            .with_resource_name(s(r.resource_name))
                            .with_error_code(code)
                            .with_error_message(message)
                    })
                    .collect(),
            ),
        ),
        ControllerResponse::IncrementalAlterConfigs(results) => {
            ResponseKind::IncrementalAlterConfigs(incremental(results))
        }
        ControllerResponse::AllocateProducerIds(_)
        | ControllerResponse::AlterPartition(_)
        | ControllerResponse::UnregisterBroker(_) => return None,
    })
}

fn incremental(results: Vec<AlterConfigsResult>) -> IncrementalAlterConfigsResponse {
    IncrementalAlterConfigsResponse::default().with_responses(
        results
            .into_iter()
            .map(|r| {
                let (code, message) = code_and_message(&r.result);
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(s(r.resource_name))
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect(),
    )
}

/// The answer to `body` when no controller can take it: every part refused
/// with `error` (NOT_CONTROLLER or REQUEST_TIMED_OUT, both retriable), in the
/// request's shape. `None` for a request that is not an admin request.
pub(super) fn refusal(body: &RequestKind, error: &ApiError) -> Option<ResponseKind> {
    if let RequestKind::InitProducerId(_) = body {
        return Some(ResponseKind::InitProducerId(
            InitProducerIdResponse::default()
                .with_error_code(error.code)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        ));
    }
    let event = to_event(RequestId(0), body)?;
    let refused = |topics: Vec<String>| {
        ControllerResponse::CreateTopics(
            topics
                .into_iter()
                .map(|name| proto_core::metadata::CreateTopicResult {
                    name,
                    result: Err(error.clone()),
                })
                .collect(),
        )
    };
    let response = match event {
        ControllerEvent::CreateTopics { topics, .. } => {
            refused(topics.into_iter().map(|t| t.name).collect())
        }
        ControllerEvent::DeleteTopics { topics, .. } => ControllerResponse::DeleteTopics(
            topics
                .into_iter()
                .map(|t| {
                    let (name, topic_id) = match t {
                        TopicRef::Name(n) => (Some(n), None),
                        TopicRef::Id(id) => (None, Some(id)),
                    };
                    proto_core::metadata::DeleteTopicResult {
                        name,
                        topic_id,
                        result: Err(error.clone()),
                    }
                })
                .collect(),
        ),
        ControllerEvent::CreatePartitions { topics, .. } => ControllerResponse::CreatePartitions(
            topics
                .into_iter()
                .map(|t| proto_core::metadata::CreatePartitionsResult {
                    name: t.name,
                    result: Err(error.clone()),
                })
                .collect(),
        ),
        ControllerEvent::AlterConfigs { resources, .. } => ControllerResponse::AlterConfigs(
            resources
                .into_iter()
                .map(|r| AlterConfigsResult {
                    resource_type: r.resource_type,
                    resource_name: r.resource_name,
                    result: Err(error.clone()),
                })
                .collect(),
        ),
        ControllerEvent::IncrementalAlterConfigs { resources, .. } => {
            ControllerResponse::IncrementalAlterConfigs(
                resources
                    .into_iter()
                    .map(|r| AlterConfigsResult {
                        resource_type: r.resource_type,
                        resource_name: r.resource_name,
                        result: Err(error.clone()),
                    })
                    .collect(),
            )
        }
        _ => return None,
    };
    to_response(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_topics_request::CreatableTopic as KafkaTopic;
    use kafka_protocol::messages::CreateTopicsRequest;

    #[test]
    fn a_refused_create_names_every_topic_with_the_error() {
        let body = RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(vec![
            KafkaTopic::default().with_name(TopicName(s("a"))),
            KafkaTopic::default().with_name(TopicName(s("b"))),
        ]));
        let Some(ResponseKind::CreateTopics(r)) = refusal(&body, &ApiError::not_controller())
        else {
            panic!("not a CreateTopics answer");
        };
        assert_eq!(r.topics.len(), 2);
        assert!(r.topics.iter().all(|t| t.error_code == 41));
        assert_eq!(r.topics[1].name.0.as_str(), "b");
    }
}
