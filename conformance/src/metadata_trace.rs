//! Cluster-metadata traces: scripted brokers and admin clients against one
//! [`Controller`](proto_core::metadata::Controller), rendered as one stable
//! transcript per trace in the [`crate::datadriven`] form.
//!
//! The environment plays the metadata Raft group: a proposal waits in the
//! log (encoded, as a Raft entry would hold it) until `commit`, which decodes
//! it, applies it to a follower's image and tells the controller. Time moves
//! only with `tick`. After every command the controller's committed image
//! must equal the follower's, or a `!!` line says otherwise.
//!
//! Commands (`[..]` is optional; request ids `#N` count from 1):
//!
//! - `config [session=MS] [partitions=N] [rf=N] [block=N] [seed=N]`: a fresh
//!   cluster with these controller settings; first in a trace.
//! - `register B [incarnation=N] [rack=R] [host=H]`: broker B's process
//!   (incarnation 1 unless given; a new one is a restart) registers.
//! - `heartbeat B... [incarnation=N] [offset=N] [want-fence=true]`: each
//!   broker heartbeats with its current incarnation, caught up with the
//!   committed log unless `offset=` says how far it applied.
//! - `unregister B`, `allocate-producer-ids B`: those requests.
//! - `create-topics NAME[:PARTITIONS[:RF]]... [assign=(1,2;2,3)]
//!   [configs=(k=v,...)] [validate=true]`: one CreateTopics (-1 when not given).
//! - `delete-topics NAME|id:NAME|id:unknown...`: by name, or by the id the
//!   named topic has (or last had).
//! - `create-partitions NAME:COUNT... [assign=(1,2;2,3)] [validate=true]`.
//! - `alter-configs RES... [set=(k=v,...)] [reset=(k,...)] [validate=true]`,
//!   `incremental-alter-configs RES... [set=(k=v,...)] [delete=(k,...)]
//!   [append=(k=v,...)] [validate=true]`: RES is `topic:NAME` or `broker:ID`.
//! - `alter-partition NAME P leader=B epoch=E isr=(1,2)`.
//! - `commit [n=K]`: the oldest K (default all) proposals commit.
//! - `tick MS`: time passes, then a tick.
//! - `failover [lose=true]`: the controller resigns; its uncommitted
//!   proposals commit under the next leader, or are lost with `lose=true`;
//!   a new controller starts from the follower's image.
//! - `brokers`, `topics`, `describe-configs NAME`, `log`: the committed state.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use proto_core::metadata::{
    decode_batch, encode_batch, errors, AlterConfigsResource, ApiError, BrokerId, BrokerInfo,
    BrokerRegistrationRequest, ConfigOperation, ConfigResource, Controller, ControllerAction,
    ControllerConfig, ControllerEvent, ControllerResponse, CreatableTopic, IncarnationId,
    IncrementalAlterConfigsResource, LeaderEpoch, MetadataImage, MetadataOffset, MetadataRecord,
    PartitionsIncrease, PlacementError, PlacementRequest, ReplicaAssignment, RequestId,
    TopicConfigDefaults, TopicId, TopicRef, RESOURCE_BROKER, RESOURCE_TOPIC,
};

use crate::datadriven::{run_transcript, Command, CommandError};

/// The test placement: partition `first + i` gets the usable brokers from
/// index `(first + i) % n` on, in id order.
pub fn round_robin(req: &PlacementRequest<'_>) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
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

/// A new controller over `image` with the round-robin placement.
pub fn controller(cfg: &ControllerConfig, image: MetadataImage) -> Controller {
    Controller::new(cfg.clone(), image, Box::new(round_robin))
}

/// Runs a metadata trace and returns its transcript.
pub fn run(text: &str) -> Result<String, CommandError> {
    let mut env = Env::new(ControllerConfig::default());
    run_transcript(text, |cmd| {
        env.run(cmd)?;
        env.check();
        Ok(std::mem::take(&mut env.out))
    })
}

/// The metadata group, its follower and the brokers' processes.
pub struct Env {
    cfg: ControllerConfig,
    c: Controller,
    now: u64,
    /// Proposed entries not yet committed, encoded as the Raft log holds them.
    pending: VecDeque<Vec<u8>>,
    /// A follower's image of the committed log.
    replica: MetadataImage,
    log: Vec<MetadataRecord>,
    /// Each broker process's current incarnation.
    incarnations: BTreeMap<i32, u128>,
    /// Every topic id ever proposed, by name, and back.
    ids: BTreeMap<String, TopicId>,
    names: BTreeMap<TopicId, String>,
    next_request: u64,
    /// The transcript of the current command.
    pub out: String,
}

impl Env {
    /// A cluster with no brokers.
    pub fn new(cfg: ControllerConfig) -> Env {
        Env {
            c: controller(&cfg, MetadataImage::new()),
            cfg,
            now: 0,
            pending: VecDeque::new(),
            replica: MetadataImage::new(),
            log: Vec::new(),
            incarnations: BTreeMap::new(),
            ids: BTreeMap::new(),
            names: BTreeMap::new(),
            next_request: 0,
            out: String::new(),
        }
    }

    fn line(&mut self, indent: usize, text: impl AsRef<str>) {
        let _ = writeln!(self.out, "{:indent$}{}", "", text.as_ref());
    }

    fn request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Steps the controller and renders what it did.
    fn step(&mut self, event: ControllerEvent) {
        if let Err(e) = self.c.step(self.now, event) {
            self.line(0, format!("error: {e}"));
        }
        for a in self.c.take_actions() {
            self.render_action(a);
        }
    }

    /// Runs one command.
    pub fn run(&mut self, cmd: &Command) -> Result<(), CommandError> {
        match cmd.name.as_str() {
            "config" => {
                cmd.only_args(&["session", "partitions", "rf", "block", "seed"])?;
                let d = ControllerConfig::default();
                let cfg = ControllerConfig {
                    broker_session_timeout_ms: cmd.num("session", d.broker_session_timeout_ms)?,
                    default_partitions: cmd.num("partitions", d.default_partitions as u64)? as i32,
                    default_replication_factor: cmd
                        .num("rf", d.default_replication_factor as u64)?
                        as i16,
                    producer_id_block_size: cmd.num("block", d.producer_id_block_size as u64)?
                        as i64,
                    topic_id_seed: cmd.num("seed", d.topic_id_seed)?,
                };
                *self = Env::new(cfg);
            }
            "register" => {
                cmd.only_args(&["incarnation", "rack", "host"])?;
                let id = cmd.pos_num(0, "broker id")? as i32;
                let inc = cmd.num(
                    "incarnation",
                    *self.incarnations.get(&id).unwrap_or(&1) as u64,
                )?;
                self.incarnations.insert(id, u128::from(inc));
                self.step(ControllerEvent::BrokerRegistration(
                    BrokerRegistrationRequest {
                        broker_id: BrokerId(id),
                        incarnation_id: IncarnationId(u128::from(inc)),
                        kafka_host: cmd.arg("host").unwrap_or("127.0.0.1").to_string(),
                        kafka_port: 9092 + id as u16,
                        raft_addr: format!("127.0.0.1:{}", 19092 + id),
                        rack: cmd.arg("rack").map(String::from),
                    },
                ));
            }
            "heartbeat" => {
                cmd.only_args(&["incarnation", "offset", "want-fence"])?;
                for p in &cmd.pos {
                    let id: i32 = cmd.parse(p, "a broker id")?;
                    let own = *self.incarnations.get(&id).unwrap_or(&1) as u64;
                    self.step(ControllerEvent::BrokerHeartbeat {
                        broker_id: BrokerId(id),
                        incarnation_id: IncarnationId(u128::from(cmd.num("incarnation", own)?)),
                        metadata_offset: MetadataOffset(
                            cmd.num("offset", self.replica.next_offset().0)?,
                        ),
                        want_fence: cmd.flag("want-fence", false)?,
                    });
                }
            }
            "unregister" => {
                let broker_id = BrokerId(cmd.pos_num(0, "broker id")? as i32);
                let request_id = self.request();
                self.step(ControllerEvent::UnregisterBroker {
                    request_id,
                    broker_id,
                });
            }
            "allocate-producer-ids" => {
                let broker_id = BrokerId(cmd.pos_num(0, "broker id")? as i32);
                let request_id = self.request();
                self.step(ControllerEvent::AllocateProducerIds {
                    request_id,
                    broker_id,
                });
            }
            "create-topics" => self.create_topics(cmd)?,
            "delete-topics" => {
                let topics = cmd
                    .pos
                    .iter()
                    .map(|p| match p.strip_prefix("id:") {
                        Some("unknown") => TopicRef::Id(TopicId(0xdead)),
                        Some(n) => TopicRef::Id(self.ids.get(n).copied().unwrap_or(TopicId(0))),
                        None => TopicRef::Name(p.clone()),
                    })
                    .collect();
                let request_id = self.request();
                self.step(ControllerEvent::DeleteTopics { request_id, topics });
            }
            "create-partitions" => {
                cmd.only_args(&["assign", "validate"])?;
                let assignments = cmd.arg("assign").map(|a| assignment(cmd, a)).transpose()?;
                let topics = cmd
                    .pos
                    .iter()
                    .map(|p| {
                        let (name, count) = p
                            .split_once(':')
                            .ok_or_else(|| cmd.error(format!("{p}: want NAME:COUNT")))?;
                        Ok(PartitionsIncrease {
                            name: name.to_string(),
                            count: cmd.parse::<i64>(count, "a number")? as i32,
                            assignments: assignments.clone(),
                        })
                    })
                    .collect::<Result<_, CommandError>>()?;
                let request_id = self.request();
                let validate_only = cmd.flag("validate", false)?;
                self.step(ControllerEvent::CreatePartitions {
                    request_id,
                    topics,
                    validate_only,
                });
            }
            "alter-configs" | "incremental-alter-configs" => self.alter_configs(cmd)?,
            "alter-partition" => {
                cmd.only_args(&["leader", "epoch", "isr"])?;
                let name = cmd.pos(0, "topic")?;
                let topic_id = self.ids.get(name).copied().unwrap_or(TopicId(0));
                let isr = list(cmd, cmd.arg("isr").unwrap_or("()"))?;
                let request_id = self.request();
                self.step(ControllerEvent::AlterPartition {
                    request_id,
                    topic_id,
                    partition: cmd.pos_num(1, "partition")? as i32,
                    leader: BrokerId(cmd.num("leader", 0)? as i32),
                    leader_epoch: LeaderEpoch(cmd.num("epoch", 0)? as i32),
                    isr: isr.into_iter().map(BrokerId).collect(),
                });
            }
            "commit" => {
                cmd.only_args(&["n"])?;
                let n = cmd.num("n", self.pending.len() as u64)? as usize;
                self.commit(n);
                let offset = self.replica.next_offset();
                self.line(0, format!("committed up to {offset}"));
                self.step(ControllerEvent::Committed { offset });
            }
            "tick" => {
                self.now += cmd.pos_num(0, "milliseconds")?;
                self.line(0, format!("now={}", self.now));
                self.step(ControllerEvent::Tick);
            }
            "failover" => {
                cmd.only_args(&["lose"])?;
                self.step(ControllerEvent::Resign);
                if cmd.flag("lose", false)? {
                    let lost = self.pending.len();
                    self.pending.clear();
                    self.line(0, format!("{lost} uncommitted proposals lost"));
                } else {
                    let n = self.pending.len();
                    self.commit(n);
                    self.line(
                        0,
                        format!("{n} uncommitted proposals committed by the next leader"),
                    );
                }
                self.c = controller(&self.cfg, self.replica.clone());
                let at = self.replica.next_offset();
                self.line(0, format!("new controller from the image at offset {at}"));
            }
            "brokers" => self.show_brokers(),
            "topics" => self.show_topics(),
            "describe-configs" => {
                let name = cmd.pos(0, "topic")?;
                match self
                    .replica
                    .topic_configs(name, &TopicConfigDefaults::default())
                {
                    None => self.line(0, format!("no topic `{name}`")),
                    Some(entries) => {
                        for e in entries {
                            self.line(0, format!("{}={} ({:?})", e.name, e.value, e.source));
                        }
                    }
                }
            }
            "log" => {
                for (i, r) in self.log.clone().iter().enumerate() {
                    let text = self.record(r);
                    self.line(0, format!("{i}: {text}"));
                }
            }
            other => return Err(cmd.error(format!("unknown command {other}"))),
        }
        Ok(())
    }

    /// The oldest `n` proposals commit: decoded, applied to the follower.
    fn commit(&mut self, n: usize) {
        for _ in 0..n.min(self.pending.len()) {
            let Some(bytes) = self.pending.pop_front() else {
                break;
            };
            match decode_batch(&bytes) {
                Err(e) => self.line(0, format!("!! a proposal does not decode: {e}")),
                Ok(records) => {
                    for r in records {
                        if let Err(e) = self.replica.apply(&r) {
                            self.line(0, format!("skipped at {}: {e}", self.log.len()));
                        }
                        self.log.push(r);
                    }
                }
            }
        }
    }

    /// The controller's committed image must be what the log replays to.
    fn check(&mut self) {
        let theirs = self.c.committed_image();
        if theirs != &self.replica {
            let _ = writeln!(
                self.out,
                "!! the controller's committed image (offset {}) is not the replayed log's (offset {})",
                theirs.next_offset(),
                self.replica.next_offset()
            );
        }
    }

    fn create_topics(&mut self, cmd: &Command) -> Result<(), CommandError> {
        cmd.only_args(&["assign", "configs", "validate"])?;
        let assignments: Vec<ReplicaAssignment> = match cmd.arg("assign") {
            None => Vec::new(),
            Some(a) => assignment(cmd, a)?
                .into_iter()
                .enumerate()
                .map(|(i, replicas)| ReplicaAssignment {
                    partition: i as i32,
                    replicas,
                })
                .collect(),
        };
        let configs: Vec<(String, Option<String>)> = items(cmd.arg("configs").unwrap_or("()"))
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (kv, None),
            })
            .collect();
        let topics = cmd
            .pos
            .iter()
            .map(|spec| {
                let mut parts = spec.split(':');
                let name = parts.next().unwrap_or_default().to_string();
                let mut num = |what: &str| -> Result<i64, CommandError> {
                    match parts.next() {
                        None => Ok(-1),
                        Some(v) => v
                            .parse()
                            .map_err(|_| cmd.error(format!("{spec}: {what} {v} is not a number"))),
                    }
                };
                Ok(CreatableTopic {
                    name,
                    num_partitions: num("partitions")? as i32,
                    replication_factor: num("replication factor")? as i16,
                    assignments: assignments.clone(),
                    configs: configs.clone(),
                })
            })
            .collect::<Result<_, CommandError>>()?;
        let request_id = self.request();
        let validate_only = cmd.flag("validate", false)?;
        self.step(ControllerEvent::CreateTopics {
            request_id,
            topics,
            validate_only,
        });
        Ok(())
    }

    fn alter_configs(&mut self, cmd: &Command) -> Result<(), CommandError> {
        cmd.only_args(&["set", "reset", "delete", "append", "validate"])?;
        let validate_only = cmd.flag("validate", false)?;
        let pairs = |key: &str| -> Vec<(String, Option<String>)> {
            items(cmd.arg(key).unwrap_or("()"))
                .into_iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (kv, None),
                })
                .collect()
        };
        let mut resources = Vec::new();
        for r in &cmd.pos {
            let (kind, name) = r
                .split_once(':')
                .ok_or_else(|| cmd.error(format!("{r}: want topic:NAME or broker:ID")))?;
            let kind = match kind {
                "topic" => RESOURCE_TOPIC,
                "broker" => RESOURCE_BROKER,
                other => other
                    .parse()
                    .map_err(|_| cmd.error(format!("resource type {other}")))?,
            };
            resources.push((kind, name.to_string()));
        }
        let request_id = self.request();
        let event = if cmd.name == "alter-configs" {
            let mut configs = pairs("set");
            configs.extend(pairs("reset").into_iter().map(|(k, _)| (k, None)));
            ControllerEvent::AlterConfigs {
                request_id,
                resources: resources
                    .into_iter()
                    .map(|(resource_type, resource_name)| AlterConfigsResource {
                        resource_type,
                        resource_name,
                        configs: configs.clone(),
                    })
                    .collect(),
                validate_only,
            }
        } else {
            let ops: Vec<ConfigOperation> = [("set", 0), ("delete", 1), ("append", 2)]
                .into_iter()
                .flat_map(|(key, op)| {
                    pairs(key)
                        .into_iter()
                        .map(move |(name, value)| ConfigOperation { name, op, value })
                })
                .collect();
            ControllerEvent::IncrementalAlterConfigs {
                request_id,
                resources: resources
                    .into_iter()
                    .map(
                        |(resource_type, resource_name)| IncrementalAlterConfigsResource {
                            resource_type,
                            resource_name,
                            ops: ops.clone(),
                        },
                    )
                    .collect(),
                validate_only,
            }
        };
        self.step(event);
        Ok(())
    }

    fn topic_name(&self, id: TopicId) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("id:{id}"))
    }

    fn record(&self, r: &MetadataRecord) -> String {
        match r {
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                kafka_host,
                kafka_port,
                raft_addr,
                rack,
            } => format!(
                "RegisterBroker {broker_id} incarnation={incarnation_id} kafka={kafka_host}:{kafka_port} raft={raft_addr} rack={}",
                rack.as_deref().unwrap_or("-")
            ),
            MetadataRecord::UnregisterBroker { broker_id, epoch } => {
                format!("UnregisterBroker {broker_id} epoch={epoch}")
            }
            MetadataRecord::FenceBroker { broker_id, epoch } => {
                format!("FenceBroker {broker_id} epoch={epoch}")
            }
            MetadataRecord::UnfenceBroker { broker_id, epoch } => {
                format!("UnfenceBroker {broker_id} epoch={epoch}")
            }
            MetadataRecord::Topic { name, topic_id } => format!("Topic {name} id={topic_id}"),
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                raft_group,
            } => format!(
                "Partition {}-{partition} replicas={} group={raft_group}",
                self.topic_name(*topic_id),
                brokers(replicas)
            ),
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                replicas,
                leader,
                leader_epoch,
                isr,
            } => {
                let mut s = format!(
                    "PartitionChange {}-{partition} leader={} epoch={leader_epoch}",
                    self.topic_name(*topic_id),
                    leader.map_or("-".to_string(), |b| b.to_string())
                );
                if let Some(isr) = isr {
                    let _ = write!(s, " isr={}", brokers(isr));
                }
                if let Some(r) = replicas {
                    let _ = write!(s, " replicas={}", brokers(r));
                }
                s
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                format!("RemoveTopic {}", self.topic_name(*topic_id))
            }
            MetadataRecord::Config {
                resource,
                key,
                value,
            } => {
                let res = match resource {
                    ConfigResource::Topic(n) => format!("topic:{n}"),
                    ConfigResource::Broker(b) => format!("broker:{b}"),
                };
                match value {
                    Some(v) => format!("Config {res} {key}={v}"),
                    None => format!("Config {res} {key} (default)"),
                }
            }
            MetadataRecord::ProducerIdsBlock {
                broker_id,
                next_producer_id,
            } => format!("ProducerIdsBlock broker={broker_id} next={next_producer_id}"),
        }
    }

    fn render_action(&mut self, a: ControllerAction) {
        match a {
            ControllerAction::Propose {
                offset,
                records,
                request_id,
            } => {
                for r in &records {
                    if let MetadataRecord::Topic { name, topic_id } = r {
                        self.ids.insert(name.clone(), *topic_id);
                        self.names.insert(*topic_id, name.clone());
                    }
                }
                let why = request_id.map_or(String::new(), |r| format!(" for {r}"));
                self.line(0, format!("Propose @{offset}{why}"));
                for r in &records {
                    let text = self.record(r);
                    self.line(2, text);
                }
                self.pending.push_back(encode_batch(&records));
            }
            ControllerAction::BrokerRegistrationReply {
                broker_id,
                incarnation_id,
                result,
            } => {
                let r = match result {
                    Ok(epoch) => format!("epoch={epoch}"),
                    Err(e) => error(&e),
                };
                self.line(
                    0,
                    format!("broker {broker_id} <- Registration incarnation={incarnation_id} {r}"),
                );
            }
            ControllerAction::BrokerHeartbeatReply {
                broker_id,
                incarnation_id,
                error: e,
                fenced,
            } => {
                let r = e.map_or(String::new(), |e| format!(" {}", error(&e)));
                self.line(
                    0,
                    format!(
                        "broker {broker_id} <- Heartbeat incarnation={incarnation_id} fenced={fenced}{r}"
                    ),
                );
            }
            ControllerAction::Respond {
                request_id,
                response,
            } => self.render_response(request_id, response),
        }
    }

    fn render_response(&mut self, request_id: RequestId, response: ControllerResponse) {
        let outcome = |r: &Result<(), ApiError>| r.as_ref().map_or_else(error, |_| "NONE".into());
        let incremental = matches!(response, ControllerResponse::IncrementalAlterConfigs(_));
        let (kind, lines): (&str, Vec<String>) = match response {
            ControllerResponse::CreateTopics(v) => (
                "CreateTopics",
                v.iter()
                    .map(|t| match &t.result {
                        Ok(c) => format!(
                            "{} NONE id={} partitions={} rf={}",
                            t.name, c.topic_id, c.partitions, c.replication_factor
                        ),
                        Err(e) => format!("{} {}", t.name, error(e)),
                    })
                    .collect(),
            ),
            ControllerResponse::DeleteTopics(v) => (
                "DeleteTopics",
                v.iter()
                    .map(|t| {
                        let name = t.name.clone().unwrap_or_else(|| {
                            t.topic_id.map_or("?".into(), |id| self.topic_name(id))
                        });
                        format!("{name} {}", outcome(&t.result))
                    })
                    .collect(),
            ),
            ControllerResponse::CreatePartitions(v) => (
                "CreatePartitions",
                v.iter()
                    .map(|t| format!("{} {}", t.name, outcome(&t.result)))
                    .collect(),
            ),
            ControllerResponse::AlterConfigs(v)
            | ControllerResponse::IncrementalAlterConfigs(v) => (
                if incremental {
                    "IncrementalAlterConfigs"
                } else {
                    "AlterConfigs"
                },
                v.iter()
                    .map(|r| {
                        format!(
                            "type={} {} {}",
                            r.resource_type,
                            r.resource_name,
                            outcome(&r.result)
                        )
                    })
                    .collect(),
            ),
            ControllerResponse::AllocateProducerIds(r) => (
                "AllocateProducerIds",
                vec![r.map_or_else(
                    |e| error(&e),
                    |b| format!("NONE ids {}..{}", b.first, b.first + b.len - 1),
                )],
            ),
            ControllerResponse::AlterPartition(r) => (
                "AlterPartition",
                vec![r.map_or_else(
                    |e| error(&e),
                    |s| {
                        format!(
                            "NONE leader={} epoch={} isr={}",
                            s.leader.map_or("-".to_string(), |b| b.to_string()),
                            s.leader_epoch,
                            brokers(&s.isr)
                        )
                    },
                )],
            ),
            ControllerResponse::UnregisterBroker(r) => ("UnregisterBroker", vec![outcome(&r)]),
        };
        if let [one] = &lines[..] {
            self.line(0, format!("{request_id} <- {kind} {one}"));
        } else {
            self.line(0, format!("{request_id} <- {kind}"));
            for l in lines {
                self.line(2, l);
            }
        }
    }

    fn show_brokers(&mut self) {
        let lines: Vec<String> = self
            .replica
            .brokers()
            .map(|b| {
                format!(
                    "broker {} incarnation={} epoch={} {} rack={}",
                    b.id,
                    b.incarnation_id,
                    b.epoch,
                    if b.fenced { "fenced" } else { "unfenced" },
                    b.rack.as_deref().unwrap_or("-")
                )
            })
            .collect();
        if lines.is_empty() {
            self.line(0, "no brokers");
        }
        for l in lines {
            self.line(0, l);
        }
        let usable: Vec<BrokerInfo> = self.replica.usable_brokers();
        let ids: Vec<BrokerId> = usable.iter().map(|b| b.id).collect();
        self.line(0, format!("usable={}", brokers(&ids)));
    }

    fn show_topics(&mut self) {
        let mut lines = Vec::new();
        for t in self.replica.topics() {
            lines.push(format!("{} id={}", t.name, t.id));
            for p in &t.partitions {
                lines.push(format!(
                    "  {}-{} group={} replicas={} leader={} epoch={} isr={}",
                    t.name,
                    p.partition,
                    p.raft_group,
                    brokers(&p.replicas),
                    p.leader.map_or("-".to_string(), |b| b.to_string()),
                    p.leader_epoch,
                    brokers(&p.isr)
                ));
            }
        }
        if lines.is_empty() {
            lines.push("no topics".into());
        }
        lines.push(format!(
            "next raft group={} next producer id={}",
            self.replica.next_raft_group(),
            self.replica.next_producer_id()
        ));
        for l in lines {
            self.line(0, l);
        }
    }
}

fn error(e: &ApiError) -> String {
    format!("{} \"{}\"", errors::name(e.code), e.message)
}

fn brokers(ids: &[BrokerId]) -> String {
    let inner: Vec<String> = ids.iter().map(|b| b.to_string()).collect();
    format!("[{}]", inner.join(","))
}

/// The items of `(a,b,c)`.
fn items(v: &str) -> Vec<String> {
    v.trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// `(1,2,3)` as numbers.
fn list(cmd: &Command, v: &str) -> Result<Vec<i32>, CommandError> {
    items(v)
        .iter()
        .map(|s| cmd.parse::<i64>(s, "a number").map(|n| n as i32))
        .collect()
}

/// `(1,2;2,3)`: one replica list per partition.
fn assignment(cmd: &Command, v: &str) -> Result<Vec<Vec<BrokerId>>, CommandError> {
    v.trim_start_matches('(')
        .trim_end_matches(')')
        .split(';')
        .map(|p| list(cmd, p).map(|ids| ids.into_iter().map(BrokerId).collect()))
        .collect()
}
