//! The one text form of answers and records in group traces. Member ids are
//! shown by alias (`c1#1`), error codes by Kafka name, consumer subscriptions
//! as their topic lists, other bytes as text.

use bytes::Bytes;
use proto_core::group::{errors, Record, Response};

use super::env::Env;

/// Renders bytes: a consumer subscription as `[topics]`, text as a quoted
/// string, anything else as hex.
pub fn bytes(b: &Bytes) -> String {
    if let Some(topics) = subscription(b) {
        return format!("[{}]", topics.join(","));
    }
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// The topics of a consumer subscription written by
/// [`super::commands::subscription`]: version 0, topics, null user data.
fn subscription(b: &[u8]) -> Option<Vec<String>> {
    let mut buf = b;
    if take(&mut buf, 2)? != [0, 0] {
        return None;
    }
    let count = i32::from_be_bytes(take(&mut buf, 4)?.try_into().ok()?);
    let mut topics = Vec::new();
    for _ in 0..count {
        let len = i16::from_be_bytes(take(&mut buf, 2)?.try_into().ok()?);
        let name = take(&mut buf, usize::try_from(len).ok()?)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
    }
    (take(&mut buf, 4)? == [0xff; 4] && buf.is_empty()).then_some(topics)
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".to_string())
}

/// One answer, as `who <- Kind ...`, possibly over several lines.
pub fn response(env: &mut Env, who: &str, response: &Response) -> String {
    let head = format!("{who} <-");
    match response {
        Response::Join(j) => {
            let mut s = format!(
                "{head} Join {} gen={} member={}",
                errors::name(j.error_code),
                j.generation_id,
                env.alias(&j.member_id)
            );
            if !j.leader.is_empty() {
                s += &format!(" leader={}", env.alias(&j.leader));
            }
            if j.protocol_type.is_some() || j.protocol_name.is_some() {
                s += &format!(
                    " protocol={}/{}",
                    opt(&j.protocol_type),
                    opt(&j.protocol_name)
                );
            }
            if j.skip_assignment {
                s += " skip-assignment";
            }
            if !j.members.is_empty() {
                let members: Vec<String> = j
                    .members
                    .iter()
                    .map(|m| {
                        let instance = m
                            .group_instance_id
                            .as_ref()
                            .map(|i| format!(" instance={i}"))
                            .unwrap_or_default();
                        format!(
                            "{}{instance} {}",
                            env.alias(&m.member_id),
                            bytes(&m.metadata)
                        )
                    })
                    .collect();
                s += &format!(" members=({})", members.join(", "));
            }
            s
        }
        Response::Sync(r) => {
            let mut s = format!("{head} Sync {}", errors::name(r.error_code));
            if r.error_code == errors::NONE {
                s += &format!(
                    " assignment={} protocol={}/{}",
                    bytes(&r.assignment),
                    opt(&r.protocol_type),
                    opt(&r.protocol_name)
                );
            }
            s
        }
        Response::Heartbeat(r) => format!("{head} Heartbeat {}", errors::name(r.error_code)),
        Response::Leave(r) => {
            let members: Vec<String> = r
                .members
                .iter()
                .map(|m| {
                    let id = if m.member_id.is_empty() {
                        format!("instance={}", opt(&m.group_instance_id))
                    } else {
                        env.alias(&m.member_id)
                    };
                    format!("{id} {}", errors::name(m.error_code))
                })
                .collect();
            format!(
                "{head} Leave {} members=({})",
                errors::name(r.error_code),
                members.join(", ")
            )
        }
        Response::OffsetCommit(r) => {
            let parts: Vec<String> = r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| {
                        format!(
                            "{}-{} {}",
                            t.name,
                            p.partition_index,
                            errors::name(p.error_code)
                        )
                    })
                })
                .collect();
            format!("{head} OffsetCommit {}", parts.join(", "))
        }
        Response::OffsetFetch(r) => {
            let mut s = format!("{head} OffsetFetch");
            for g in &r.groups {
                let parts: Vec<String> = g
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(move |p| {
                            let mut x =
                                format!("{}-{}={}", t.name, p.partition_index, p.committed_offset);
                            if p.committed_leader_epoch != -1 {
                                x += &format!(" epoch={}", p.committed_leader_epoch);
                            }
                            if !p.metadata.is_empty() {
                                x += &format!(" metadata={:?}", p.metadata);
                            }
                            if p.error_code != errors::NONE {
                                x += &format!(" {}", errors::name(p.error_code));
                            }
                            x
                        })
                    })
                    .collect();
                s += &format!(
                    "\n  {} {}: {}",
                    g.group_id,
                    errors::name(g.error_code),
                    if parts.is_empty() {
                        "(none)".to_string()
                    } else {
                        parts.join(", ")
                    }
                );
            }
            s
        }
        Response::ListGroups(r) => {
            let groups: Vec<String> = r
                .groups
                .iter()
                .map(|g| {
                    let ty = if g.protocol_type.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", g.protocol_type)
                    };
                    format!("{}({}{ty})", g.group_id, g.group_state)
                })
                .collect();
            let mut s = format!("{head} ListGroups {}", errors::name(r.error_code));
            for g in groups {
                s += &format!(" {g}");
            }
            s
        }
        Response::DescribeGroups(r) => {
            let mut s = format!("{head} DescribeGroups");
            for g in &r.groups {
                s += &format!(
                    "\n  {} {} {} type={:?} protocol={:?}",
                    g.group_id,
                    errors::name(g.error_code),
                    g.group_state,
                    g.protocol_type,
                    g.protocol_data
                );
                for m in &g.members {
                    let instance = m
                        .group_instance_id
                        .as_ref()
                        .map(|i| format!(" instance={i}"))
                        .unwrap_or_default();
                    s += &format!(
                        "\n    {}{instance} client={} host={} metadata={} assignment={}",
                        env.alias(&m.member_id),
                        m.client_id,
                        m.client_host,
                        bytes(&m.member_metadata),
                        bytes(&m.member_assignment)
                    );
                }
            }
            s
        }
        Response::DeleteGroups(r) => {
            let results: Vec<String> = r
                .results
                .iter()
                .map(|g| format!("{} {}", g.group_id, errors::name(g.error_code)))
                .collect();
            format!("{head} DeleteGroups {}", results.join(", "))
        }
        Response::OffsetDelete(r) => {
            let parts: Vec<String> = r
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| {
                        format!(
                            "{}-{} {}",
                            t.name,
                            p.partition_index,
                            errors::name(p.error_code)
                        )
                    })
                })
                .collect();
            let mut s = format!("{head} OffsetDelete {}", errors::name(r.error_code));
            if !parts.is_empty() {
                s += &format!(" {}", parts.join(", "));
            }
            s
        }
    }
}

/// One record of the offsets partition.
pub fn record(env: &mut Env, r: &Record) -> String {
    match r {
        Record::GroupMetadata {
            group,
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        } => {
            let leader = leader.as_ref().map(|l| env.alias(l)).unwrap_or_else(|| "-".to_string());
            let since = current_state_timestamp_ms
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".to_string());
            let members: Vec<String> = members
                .iter()
                .map(|m| {
                    let instance = m
                        .group_instance_id
                        .as_ref()
                        .map(|i| format!(" instance={i}"))
                        .unwrap_or_default();
                    format!(
                        "{}{instance} session={} rebalance={} subscription={} assignment={}",
                        env.alias(&m.member_id),
                        m.session_timeout_ms,
                        m.rebalance_timeout_ms,
                        bytes(&m.subscription),
                        bytes(&m.assignment)
                    )
                })
                .collect();
            format!(
                "GroupMetadata {group} gen={generation} protocol={protocol_type:?}/{} leader={leader} since={since} members=({})",
                opt(protocol),
                members.join(", ")
            )
        }
        Record::GroupTombstone { group } => format!("GroupTombstone {group}"),
        Record::Offset {
            group,
            topic,
            partition,
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        } => format!(
            "Offset {group} {topic}-{partition}={offset} epoch={leader_epoch} metadata={metadata:?} at={commit_timestamp_ms}"
        ),
        Record::OffsetTombstone {
            group,
            topic,
            partition,
        } => format!("OffsetTombstone {group} {topic}-{partition}"),
    }
}
