//! Group requests between the Kafka wire and the coordinators.
//!
//! A Kafka request (any version) is widened to the coordinator's newest-version
//! form and split into one coordinator request per group, each sent to the
//! coordinator of that group's offsets partition (ListGroups goes to every
//! coordinator). The answers are gathered in request order and encoded in the
//! newest layout; `protocol::fit` narrows them for older versions.
//!
//! A part whose coordinator is not on this node, or goes away before it
//! answers, gets NOT_COORDINATOR, so the client looks the coordinator up
//! again, as it does with Kafka.

use std::collections::BTreeMap;

use kafka_protocol::messages::{self as kp, GroupId as KafkaGroupId, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use proto_core::group::{self as g, Event, ReplyId as PartId, Response};

use super::{Node, ReplyId};
use crate::protocol::RequestHeader;
use crate::store::TopicPartition;

/// JoinGroup v4 introduced the member-id-required round (KIP-394).
const FIRST_JOIN_WITH_KNOWN_MEMBER_ID: i16 = 4;
/// JoinGroup v9 introduced `skip_assignment` (KIP-814).
const FIRST_JOIN_WITH_SKIP_ASSIGNMENT: i16 = 9;
/// JoinGroup v1 introduced the rebalance timeout; v0 uses the session timeout.
const FIRST_JOIN_WITH_REBALANCE_TIMEOUT: i16 = 1;
/// LeaveGroup v3 made the request a member list.
const FIRST_LEAVE_WITH_MEMBERS: i16 = 3;
/// OffsetFetch v8 made the request a group list.
const FIRST_FETCH_WITH_GROUPS: i16 = 8;

/// A group's authorized operations when DescribeGroups asks: READ (3),
/// DELETE (6) and DESCRIBE (8), every operation a group has, as Kafka
/// reports them without an authorizer.
const GROUP_AUTHORIZED_OPERATIONS: i32 = 1 << 3 | 1 << 6 | 1 << 8;

/// Which Kafka request a gather answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Join,
    Sync,
    Heartbeat,
    Leave,
    OffsetCommit,
    OffsetFetch,
    ListGroups,
    DescribeGroups {
        /// The request asked for each group's authorized operations.
        include_operations: bool,
    },
    DeleteGroups,
    OffsetDelete,
}

/// One Kafka request waiting for its parts.
#[derive(Debug)]
struct Gather {
    reply: ReplyId,
    header: RequestHeader,
    kind: Kind,
    slots: Vec<Option<Response>>,
    /// OffsetCommit results decided before the coordinator (unknown partitions).
    commit_results: Vec<g::CommitTopicResponse>,
}

/// One coordinator request of a gather.
#[derive(Debug)]
struct Part {
    gather: u64,
    slot: usize,
    partition: i32,
    /// The answer if the coordinator cannot give one.
    fallback: Response,
}

/// The gathers in flight.
#[derive(Debug, Default)]
pub(super) struct GroupRequests {
    next_id: u64,
    gathers: BTreeMap<u64, Gather>,
    parts: BTreeMap<PartId, Part>,
}

impl GroupRequests {
    fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

fn text(s: &StrBytes) -> String {
    s.as_str().to_string()
}

fn opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(text)
}

/// One topic of an OffsetFetch, from either request layout (v1-7 and v8+
/// name the same fields with different types).
fn fetch_topic(name: &kp::TopicName, partitions: &[i32]) -> g::FetchTopic {
    g::FetchTopic {
        name: text(&name.0),
        partition_indexes: partitions.to_vec(),
    }
}

fn sb(s: String) -> StrBytes {
    StrBytes::from_string(s)
}

/// A coordinator request for one group (or for a whole partition, for
/// ListGroups), before its reply id is known.
type Build = Box<dyn FnOnce(PartId) -> Event>;

/// Which coordinator a part goes to.
enum Target {
    /// The coordinator of this group's offsets partition.
    Group(String),
    /// The coordinator of this offsets partition.
    Partition(i32),
}

impl Node {
    /// Starts answering a group request.
    pub(super) fn group_request(
        &mut self,
        reply: ReplyId,
        header: &RequestHeader,
        body: RequestKind,
    ) {
        let v = header.api_version;
        let client_id = header.client_id.as_ref().map(text).unwrap_or_default();
        let client_host = self
            .client_hosts
            .get(&reply.conn)
            .cloned()
            .unwrap_or_default();
        // OffsetCommit results for partitions that do not exist.
        let mut unknown: Vec<g::CommitTopicResponse> = Vec::new();
        // (group id, request builder, fallback) per part, in answer order.
        let (kind, parts): (Kind, Vec<(Target, Build, Response)>) = match body {
            RequestKind::JoinGroup(r) => {
                let group_id = text(&r.group_id.0);
                let member_id = text(&r.member_id);
                let fallback = |error: i16| {
                    Response::Join(g::JoinResponse {
                        error_code: error,
                        generation_id: -1,
                        protocol_type: None,
                        protocol_name: None,
                        leader: String::new(),
                        skip_assignment: false,
                        member_id: member_id.clone(),
                        members: Vec::new(),
                    })
                };
                let fb = fallback(ResponseError::NotCoordinator.code());
                let gid = group_id.clone();
                let build: Build = Box::new(move |reply| {
                    Event::Join(g::JoinRequest {
                        reply,
                        group_id: gid,
                        session_timeout_ms: r.session_timeout_ms,
                        rebalance_timeout_ms: if v >= FIRST_JOIN_WITH_REBALANCE_TIMEOUT {
                            r.rebalance_timeout_ms
                        } else {
                            r.session_timeout_ms
                        },
                        member_id: text(&r.member_id),
                        group_instance_id: opt(&r.group_instance_id),
                        protocol_type: text(&r.protocol_type),
                        protocols: r
                            .protocols
                            .iter()
                            .map(|p| g::JoinProtocol {
                                name: text(&p.name),
                                metadata: p.metadata.clone(),
                            })
                            .collect(),
                        reason: opt(&r.reason),
                        client_id,
                        client_host,
                        require_known_member_id: v >= FIRST_JOIN_WITH_KNOWN_MEMBER_ID,
                        supports_skip_assignment: v >= FIRST_JOIN_WITH_SKIP_ASSIGNMENT,
                    })
                });
                (Kind::Join, vec![(Target::Group(group_id), build, fb)])
            }
            RequestKind::SyncGroup(r) => {
                let group_id = text(&r.group_id.0);
                let fb = Response::Sync(g::SyncResponse {
                    error_code: ResponseError::NotCoordinator.code(),
                    protocol_type: None,
                    protocol_name: None,
                    assignment: Default::default(),
                });
                let gid = group_id.clone();
                let build: Build = Box::new(move |reply| {
                    Event::Sync(g::SyncRequest {
                        reply,
                        group_id: gid,
                        generation_id: r.generation_id,
                        member_id: text(&r.member_id),
                        group_instance_id: opt(&r.group_instance_id),
                        protocol_type: opt(&r.protocol_type),
                        protocol_name: opt(&r.protocol_name),
                        assignments: r
                            .assignments
                            .iter()
                            .map(|a| g::SyncAssignment {
                                member_id: text(&a.member_id),
                                assignment: a.assignment.clone(),
                            })
                            .collect(),
                    })
                });
                (Kind::Sync, vec![(Target::Group(group_id), build, fb)])
            }
            RequestKind::Heartbeat(r) => {
                let group_id = text(&r.group_id.0);
                let fb = Response::Heartbeat(g::HeartbeatResponse {
                    error_code: ResponseError::NotCoordinator.code(),
                });
                let gid = group_id.clone();
                let build: Build = Box::new(move |reply| {
                    Event::Heartbeat(g::HeartbeatRequest {
                        reply,
                        group_id: gid,
                        generation_id: r.generation_id,
                        member_id: text(&r.member_id),
                        group_instance_id: opt(&r.group_instance_id),
                    })
                });
                (Kind::Heartbeat, vec![(Target::Group(group_id), build, fb)])
            }
            RequestKind::LeaveGroup(r) => {
                let group_id = text(&r.group_id.0);
                let members: Vec<g::LeavingMember> = if v >= FIRST_LEAVE_WITH_MEMBERS {
                    r.members
                        .iter()
                        .map(|m| g::LeavingMember {
                            member_id: text(&m.member_id),
                            group_instance_id: opt(&m.group_instance_id),
                            reason: opt(&m.reason),
                        })
                        .collect()
                } else {
                    vec![g::LeavingMember {
                        member_id: text(&r.member_id),
                        group_instance_id: None,
                        reason: None,
                    }]
                };
                let fb = Response::Leave(g::LeaveResponse {
                    error_code: ResponseError::NotCoordinator.code(),
                    members: Vec::new(),
                });
                let gid = group_id.clone();
                let build: Build = Box::new(move |reply| {
                    Event::Leave(g::LeaveRequest {
                        reply,
                        group_id: gid,
                        members,
                    })
                });
                (Kind::Leave, vec![(Target::Group(group_id), build, fb)])
            }
            RequestKind::OffsetCommit(r) => {
                let group_id = text(&r.group_id.0);
                // Partitions that do not exist are answered here, as Kafka's
                // request handler does; only the rest reach the coordinator.
                let mut known: Vec<g::CommitTopic> = Vec::new();
                for t in &r.topics {
                    let name = text(&t.name.0);
                    // Existence is cluster-wide: the coordinator need not
                    // host a replica of the partitions its group commits.
                    let (here, missing): (Vec<_>, Vec<_>) = t.partitions.iter().partition(|p| {
                        self.partition_exists(&TopicPartition {
                            topic: name.clone(),
                            partition: p.partition_index,
                        })
                    });
                    if !missing.is_empty() {
                        unknown.push(g::CommitTopicResponse {
                            name: name.clone(),
                            partitions: missing
                                .iter()
                                .map(|p| g::CommitPartitionResponse {
                                    partition_index: p.partition_index,
                                    error_code: ResponseError::UnknownTopicOrPartition.code(),
                                })
                                .collect(),
                        });
                    }
                    if !here.is_empty() {
                        known.push(g::CommitTopic {
                            name,
                            partitions: here
                                .iter()
                                .map(|p| g::CommitPartition {
                                    partition_index: p.partition_index,
                                    committed_offset: p.committed_offset,
                                    committed_leader_epoch: p.committed_leader_epoch,
                                    committed_metadata: opt(&p.committed_metadata),
                                })
                                .collect(),
                        });
                    }
                }
                if known.is_empty() {
                    (Kind::OffsetCommit, Vec::new())
                } else {
                    let fb = Response::OffsetCommit(g::OffsetCommitResponse {
                        topics: known
                            .iter()
                            .map(|t| g::CommitTopicResponse {
                                name: t.name.clone(),
                                partitions: t
                                    .partitions
                                    .iter()
                                    .map(|p| g::CommitPartitionResponse {
                                        partition_index: p.partition_index,
                                        error_code: ResponseError::NotCoordinator.code(),
                                    })
                                    .collect(),
                            })
                            .collect(),
                    });
                    let gid = group_id.clone();
                    let build: Build = Box::new(move |reply| {
                        Event::OffsetCommit(g::OffsetCommitRequest {
                            reply,
                            group_id: gid,
                            generation_id: r.generation_id_or_member_epoch,
                            member_id: text(&r.member_id),
                            group_instance_id: opt(&r.group_instance_id),
                            topics: known,
                        })
                    });
                    (
                        Kind::OffsetCommit,
                        vec![(Target::Group(group_id), build, fb)],
                    )
                }
            }
            RequestKind::OffsetFetch(r) => {
                let groups: Vec<g::FetchGroup> = if v >= FIRST_FETCH_WITH_GROUPS {
                    r.groups
                        .iter()
                        .map(|grp| g::FetchGroup {
                            group_id: text(&grp.group_id.0),
                            topics: grp.topics.as_ref().map(|ts| {
                                ts.iter()
                                    .map(|t| fetch_topic(&t.name, &t.partition_indexes))
                                    .collect()
                            }),
                        })
                        .collect()
                } else {
                    vec![g::FetchGroup {
                        group_id: text(&r.group_id.0),
                        topics: r.topics.as_ref().map(|ts| {
                            ts.iter()
                                .map(|t| fetch_topic(&t.name, &t.partition_indexes))
                                .collect()
                        }),
                    }]
                };
                let require_stable = r.require_stable;
                let parts = groups
                    .into_iter()
                    .map(|grp| {
                        // The requested partitions are named too: OffsetFetch
                        // v1 can carry the error only on them.
                        let topics = grp
                            .topics
                            .iter()
                            .flatten()
                            .map(|t| g::FetchTopicResponse {
                                name: t.name.clone(),
                                partitions: t
                                    .partition_indexes
                                    .iter()
                                    .map(|&p| g::FetchPartitionResponse {
                                        partition_index: p,
                                        committed_offset: -1,
                                        committed_leader_epoch: -1,
                                        metadata: String::new(),
                                        error_code: 0,
                                    })
                                    .collect(),
                            })
                            .collect();
                        let fb = Response::OffsetFetch(g::OffsetFetchResponse {
                            groups: vec![g::FetchGroupResponse {
                                group_id: grp.group_id.clone(),
                                topics,
                                error_code: ResponseError::NotCoordinator.code(),
                            }],
                        });
                        let id = grp.group_id.clone();
                        let build: Build = Box::new(move |reply| {
                            Event::OffsetFetch(g::OffsetFetchRequest {
                                reply,
                                groups: vec![grp],
                                require_stable,
                            })
                        });
                        (Target::Group(id), build, fb)
                    })
                    .collect();
                (Kind::OffsetFetch, parts)
            }
            RequestKind::ListGroups(r) => {
                let states: Vec<String> = r.states_filter.iter().map(text).collect();
                let types: Vec<String> = r.types_filter.iter().map(text).collect();
                let parts = self
                    .groups
                    .led_partitions()
                    .into_iter()
                    .map(|partition| {
                        let fb = Response::ListGroups(g::ListGroupsResponse {
                            error_code: ResponseError::CoordinatorNotAvailable.code(),
                            groups: Vec::new(),
                        });
                        let (states, types) = (states.clone(), types.clone());
                        let build: Build = Box::new(move |reply| {
                            Event::ListGroups(g::ListGroupsRequest {
                                reply,
                                states_filter: states,
                                types_filter: types,
                            })
                        });
                        (Target::Partition(partition), build, fb)
                    })
                    .collect();
                (Kind::ListGroups, parts)
            }
            RequestKind::DescribeGroups(r) => {
                let parts = r
                    .groups
                    .iter()
                    .map(|grp| {
                        let id = text(&grp.0);
                        let fb = Response::DescribeGroups(g::DescribeGroupsResponse {
                            groups: vec![g::DescribedGroup {
                                error_code: ResponseError::NotCoordinator.code(),
                                group_id: id.clone(),
                                group_state: String::new(),
                                protocol_type: String::new(),
                                protocol_data: String::new(),
                                members: Vec::new(),
                            }],
                        });
                        let gid = id.clone();
                        let build: Build = Box::new(move |reply| {
                            Event::DescribeGroups(g::DescribeGroupsRequest {
                                reply,
                                groups: vec![gid],
                            })
                        });
                        (Target::Group(id), build, fb)
                    })
                    .collect();
                let include_operations = r.include_authorized_operations;
                (Kind::DescribeGroups { include_operations }, parts)
            }
            RequestKind::DeleteGroups(r) => {
                let mut seen = std::collections::BTreeSet::new();
                let parts = r
                    .groups_names
                    .iter()
                    .map(|grp| text(&grp.0))
                    .filter(|id| seen.insert(id.clone()))
                    .map(|id| {
                        let fb = Response::DeleteGroups(g::DeleteGroupsResponse {
                            results: vec![g::DeletedGroup {
                                group_id: id.clone(),
                                error_code: ResponseError::NotCoordinator.code(),
                            }],
                        });
                        let gid = id.clone();
                        let build: Build = Box::new(move |reply| {
                            Event::DeleteGroups(g::DeleteGroupsRequest {
                                reply,
                                groups_names: vec![gid],
                            })
                        });
                        (Target::Group(id), build, fb)
                    })
                    .collect();
                (Kind::DeleteGroups, parts)
            }
            RequestKind::OffsetDelete(r) => {
                let group_id = text(&r.group_id.0);
                let fb = Response::OffsetDelete(g::OffsetDeleteResponse {
                    error_code: ResponseError::NotCoordinator.code(),
                    topics: Vec::new(),
                });
                let gid = group_id.clone();
                let build: Build = Box::new(move |reply| {
                    Event::OffsetDelete(g::OffsetDeleteRequest {
                        reply,
                        group_id: gid,
                        topics: r
                            .topics
                            .iter()
                            .map(|t| g::OffsetDeleteTopic {
                                name: text(&t.name.0),
                                partitions: t
                                    .partitions
                                    .iter()
                                    .map(|p| p.partition_index)
                                    .collect(),
                            })
                            .collect(),
                    })
                });
                (
                    Kind::OffsetDelete,
                    vec![(Target::Group(group_id), build, fb)],
                )
            }
            other => {
                tracing::error!(api = ?other, "not a group request");
                self.outputs.push(super::Output::Close { conn: reply.conn });
                return;
            }
        };
        let gather = self.group_requests.next();
        self.group_requests.gathers.insert(
            gather,
            Gather {
                reply,
                header: header.clone(),
                kind,
                slots: vec![None; parts.len()],
                commit_results: unknown,
            },
        );
        let loading = self.group_now().is_none();
        for (slot, (target, build, mut fallback)) in parts.into_iter().enumerate() {
            let partition = match target {
                Target::Group(id) => self.groups.partition_of(&id),
                Target::Partition(p) => p,
            };
            if loading {
                // The first tick has not come: the clock coordinators time
                // sessions with is unknown. Clients retry this error.
                set_error(
                    &mut fallback,
                    ResponseError::CoordinatorLoadInProgress.code(),
                );
                self.fill_slot(gather, slot, fallback);
                continue;
            }
            if !self.groups.leads(partition) {
                self.fill_slot(gather, slot, fallback);
                continue;
            }
            let id = PartId(self.group_requests.next());
            self.group_requests.parts.insert(
                id,
                Part {
                    gather,
                    slot,
                    partition,
                    fallback,
                },
            );
            self.group_step(partition, build(id));
        }
        self.finish_gather(gather);
    }

    /// A coordinator answered one part.
    pub(super) fn group_response(&mut self, partition: i32, reply: PartId, response: Response) {
        let Some(part) = self.group_requests.parts.remove(&reply) else {
            tracing::error!(
                partition,
                reply = reply.0,
                "a coordinator answered a request it was not asked"
            );
            return;
        };
        self.fill_slot(part.gather, part.slot, response);
        self.finish_gather(part.gather);
    }

    /// Every part still waiting on `partition`'s coordinator gets its fallback
    /// answer with `error`.
    pub(super) fn abandon_group_requests(&mut self, partition: i32, error: ResponseError) {
        let ids: Vec<PartId> = self
            .group_requests
            .parts
            .iter()
            .filter(|(_, p)| p.partition == partition)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(part) = self.group_requests.parts.remove(&id) {
                let mut fallback = part.fallback;
                set_error(&mut fallback, error.code());
                self.fill_slot(part.gather, part.slot, fallback);
                self.finish_gather(part.gather);
            }
        }
    }

    fn fill_slot(&mut self, gather: u64, slot: usize, response: Response) {
        if let Some(s) = self
            .group_requests
            .gathers
            .get_mut(&gather)
            .and_then(|g| g.slots.get_mut(slot))
        {
            *s = Some(response);
        }
    }

    /// Answers `gather` if every part is in.
    fn finish_gather(&mut self, gather: u64) {
        let complete = self
            .group_requests
            .gathers
            .get(&gather)
            .is_some_and(|g| g.slots.iter().all(Option::is_some));
        if !complete {
            return;
        }
        let Some(g) = self.group_requests.gathers.remove(&gather) else {
            return;
        };
        let mut responses: Vec<Response> = g.slots.into_iter().flatten().collect();
        if g.kind == Kind::OffsetCommit {
            let mut all = match responses.pop() {
                Some(Response::OffsetCommit(c)) => c,
                _ => g::OffsetCommitResponse { topics: Vec::new() },
            };
            all.topics.extend(g.commit_results);
            responses = vec![Response::OffsetCommit(all)];
        }
        match to_kafka(g.kind, responses) {
            Some(body) => self.respond(g.reply, &g.header, body),
            None => {
                tracing::error!(kind = ?g.kind, "a coordinator answered with the wrong kind; closing the connection");
                self.outputs
                    .push(super::Output::Close { conn: g.reply.conn });
            }
        }
    }
}

/// Puts `code` where a fallback answer carries its error.
fn set_error(r: &mut Response, code: i16) {
    match r {
        Response::Join(x) => x.error_code = code,
        Response::Sync(x) => x.error_code = code,
        Response::Heartbeat(x) => x.error_code = code,
        Response::Leave(x) => x.error_code = code,
        Response::OffsetCommit(x) => x
            .topics
            .iter_mut()
            .flat_map(|t| t.partitions.iter_mut())
            .for_each(|p| p.error_code = code),
        Response::OffsetFetch(x) => x.groups.iter_mut().for_each(|g| g.error_code = code),
        Response::ListGroups(x) => x.error_code = code,
        Response::DescribeGroups(x) => x.groups.iter_mut().for_each(|g| g.error_code = code),
        Response::DeleteGroups(x) => x.results.iter_mut().for_each(|g| g.error_code = code),
        Response::OffsetDelete(x) => x.error_code = code,
    }
}

/// The Kafka response (newest layout) for the gathered answers of one
/// request; `None` if they do not fit the request (a coordinator bug).
fn to_kafka(kind: Kind, responses: Vec<Response>) -> Option<ResponseKind> {
    let body = match kind {
        Kind::Join
        | Kind::Sync
        | Kind::Heartbeat
        | Kind::Leave
        | Kind::OffsetCommit
        | Kind::OffsetDelete => return single(kind, responses.into_iter().next()?),
        Kind::OffsetFetch => {
            let groups = responses
                .into_iter()
                .flat_map(|r| match r {
                    Response::OffsetFetch(f) => f.groups,
                    _ => Vec::new(),
                })
                .map(fetch_group)
                .collect();
            ResponseKind::OffsetFetch(kp::OffsetFetchResponse::default().with_groups(groups))
        }
        Kind::ListGroups => {
            let mut error_code = 0;
            let mut groups: Vec<kp::list_groups_response::ListedGroup> = Vec::new();
            for r in responses {
                if let Response::ListGroups(l) = r {
                    if l.error_code != 0 {
                        error_code = l.error_code;
                    }
                    groups.extend(l.groups.into_iter().map(|x| {
                        kp::list_groups_response::ListedGroup::default()
                            .with_group_id(KafkaGroupId(sb(x.group_id)))
                            .with_protocol_type(sb(x.protocol_type))
                            .with_group_state(sb(x.group_state))
                            .with_group_type(sb(x.group_type))
                    }));
                }
            }
            ResponseKind::ListGroups(
                kp::ListGroupsResponse::default()
                    .with_error_code(error_code)
                    .with_groups(groups),
            )
        }
        Kind::DescribeGroups { include_operations } => {
            let groups = responses
                .into_iter()
                .flat_map(|r| match r {
                    Response::DescribeGroups(d) => d.groups,
                    _ => Vec::new(),
                })
                .map(described_group)
                .map(|g| {
                    // No authorizer: every group operation, as Kafka answers.
                    g.with_authorized_operations(if include_operations {
                        GROUP_AUTHORIZED_OPERATIONS
                    } else {
                        i32::MIN
                    })
                })
                .collect();
            ResponseKind::DescribeGroups(kp::DescribeGroupsResponse::default().with_groups(groups))
        }
        Kind::DeleteGroups => {
            let results = responses
                .into_iter()
                .flat_map(|r| match r {
                    Response::DeleteGroups(d) => d.results,
                    _ => Vec::new(),
                })
                .map(|d| {
                    kp::delete_groups_response::DeletableGroupResult::default()
                        .with_group_id(KafkaGroupId(sb(d.group_id)))
                        .with_error_code(d.error_code)
                })
                .collect();
            ResponseKind::DeleteGroups(kp::DeleteGroupsResponse::default().with_results(results))
        }
    };
    Some(body)
}

/// The Kafka response of a single-group request of kind `kind`.
fn single(kind: Kind, r: Response) -> Option<ResponseKind> {
    let body = match (kind, r) {
        (Kind::Join, Response::Join(j)) => ResponseKind::JoinGroup(
            kp::JoinGroupResponse::default()
                .with_error_code(j.error_code)
                .with_generation_id(j.generation_id)
                .with_protocol_type(j.protocol_type.map(sb))
                .with_protocol_name(j.protocol_name.map(sb))
                .with_leader(sb(j.leader))
                .with_skip_assignment(j.skip_assignment)
                .with_member_id(sb(j.member_id))
                .with_members(
                    j.members
                        .into_iter()
                        .map(|m| {
                            kp::join_group_response::JoinGroupResponseMember::default()
                                .with_member_id(sb(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(sb))
                                .with_metadata(m.metadata)
                        })
                        .collect(),
                ),
        ),
        (Kind::Sync, Response::Sync(s)) => ResponseKind::SyncGroup(
            kp::SyncGroupResponse::default()
                .with_error_code(s.error_code)
                .with_protocol_type(s.protocol_type.map(sb))
                .with_protocol_name(s.protocol_name.map(sb))
                .with_assignment(s.assignment),
        ),
        (Kind::Heartbeat, Response::Heartbeat(h)) => {
            ResponseKind::Heartbeat(kp::HeartbeatResponse::default().with_error_code(h.error_code))
        }
        (Kind::Leave, Response::Leave(l)) => ResponseKind::LeaveGroup(
            kp::LeaveGroupResponse::default()
                .with_error_code(l.error_code)
                .with_members(
                    l.members
                        .into_iter()
                        .map(|m| {
                            kp::leave_group_response::MemberResponse::default()
                                .with_member_id(sb(m.member_id))
                                .with_group_instance_id(m.group_instance_id.map(sb))
                                .with_error_code(m.error_code)
                        })
                        .collect(),
                ),
        ),
        (Kind::OffsetCommit, Response::OffsetCommit(c)) => ResponseKind::OffsetCommit(
            kp::OffsetCommitResponse::default().with_topics(
                c.topics
                    .into_iter()
                    .map(|t| {
                        kp::offset_commit_response::OffsetCommitResponseTopic::default()
                            .with_name(kp::TopicName(sb(t.name)))
                            .with_partitions(
                                t.partitions
                                    .into_iter()
                                    .map(|p| {
                                        kp::offset_commit_response::OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(p.error_code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        ),
        (Kind::OffsetDelete, Response::OffsetDelete(d)) => ResponseKind::OffsetDelete(
            kp::OffsetDeleteResponse::default()
                .with_error_code(d.error_code)
                .with_topics(
                    d.topics
                        .into_iter()
                        .map(|t| {
                            kp::offset_delete_response::OffsetDeleteResponseTopic::default()
                                .with_name(kp::TopicName(sb(t.name)))
                                .with_partitions(
                                    t.partitions
                                        .into_iter()
                                        .map(|p| {
                                            kp::offset_delete_response::OffsetDeleteResponsePartition::default()
                                                .with_partition_index(p.partition_index)
                                                .with_error_code(p.error_code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
        ),
        _ => return None,
    };
    Some(body)
}

fn fetch_group(grp: g::FetchGroupResponse) -> kp::offset_fetch_response::OffsetFetchResponseGroup {
    use kp::offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
    };
    OffsetFetchResponseGroup::default()
        .with_group_id(KafkaGroupId(sb(grp.group_id)))
        .with_error_code(grp.error_code)
        .with_topics(
            grp.topics
                .into_iter()
                .map(|t| {
                    OffsetFetchResponseTopics::default()
                        .with_name(kp::TopicName(sb(t.name)))
                        .with_partitions(
                            t.partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p.partition_index)
                                        .with_committed_offset(p.committed_offset)
                                        .with_committed_leader_epoch(p.committed_leader_epoch)
                                        .with_metadata(Some(sb(p.metadata)))
                                        .with_error_code(p.error_code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

fn described_group(d: g::DescribedGroup) -> kp::describe_groups_response::DescribedGroup {
    use kp::describe_groups_response::{DescribedGroup, DescribedGroupMember};
    DescribedGroup::default()
        .with_error_code(d.error_code)
        .with_group_id(KafkaGroupId(sb(d.group_id)))
        .with_group_state(sb(d.group_state))
        .with_protocol_type(sb(d.protocol_type))
        .with_protocol_data(sb(d.protocol_data))
        .with_members(
            d.members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(sb))
                        .with_client_id(sb(m.client_id))
                        .with_client_host(sb(m.client_host))
                        .with_member_metadata(m.member_metadata)
                        .with_member_assignment(m.member_assignment)
                })
                .collect(),
        )
}
