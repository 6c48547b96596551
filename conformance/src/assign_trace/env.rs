//! The environment an assignment trace drives: live brokers, the
//! assignment, current leaders, and what each command does to them.

use std::collections::BTreeMap;

use proto_core::assign::{
    leader_transfers, place_partitions, rebalance, Assignment, Cluster, NewPartitions,
    TopicPartition,
};
use proto_core::metadata::BrokerId;

use super::{check, render};
use crate::datadriven::{Command, CommandError};

/// The cluster as the metadata group would hold it.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// The live brokers and their racks.
    pub brokers: BTreeMap<BrokerId, Option<String>>,
    /// Every partition's replica list, preferred leader first.
    pub assignment: Assignment,
    /// Every partition's current leader, if it has one.
    pub leaders: BTreeMap<TopicPartition, BrokerId>,
    /// The transcript of the current command.
    pub out: String,
}

impl Env {
    /// The live brokers as the assigner sees them.
    pub fn cluster(&self) -> Cluster {
        Cluster::new(self.brokers.clone())
    }

    /// Runs one command, writing its output to `out`.
    pub fn run(&mut self, cmd: &Command) -> Result<(), CommandError> {
        match cmd.name.as_str() {
            "brokers" => self.set_brokers(cmd),
            "add-broker" => {
                cmd.only_args(&["rack"])?;
                let id = broker(cmd, 0)?;
                self.brokers.insert(id, cmd.arg("rack").map(str::to_string));
                Ok(())
            }
            "remove-broker" => self.remove_brokers(cmd),
            "create" => {
                cmd.only_args(&["partitions", "rf", "seed"])?;
                let topic = cmd.pos(0, "topic")?.to_string();
                let partitions = int(cmd, "partitions", 1)?;
                let rf = int(cmd, "rf", 1)?;
                self.place(cmd, topic, 0..partitions, rf)
            }
            "add-partitions" => {
                cmd.only_args(&["total", "seed"])?;
                let topic = cmd.pos(0, "topic")?.to_string();
                let total = int(cmd, "total", 0)?;
                let existing: Vec<&Vec<BrokerId>> = self
                    .assignment
                    .iter()
                    .filter(|(tp, _)| tp.topic == topic)
                    .map(|(_, r)| r)
                    .collect();
                let Some(first) = existing.first() else {
                    return Err(cmd.error(format!("no topic {topic}")));
                };
                let rf = first.len() as i32;
                let from = existing.len() as i32;
                self.place(cmd, topic, from..total, rf)
            }
            "rebalance" => {
                cmd.only_args(&[])?;
                let plan = rebalance(&self.cluster(), &self.assignment);
                self.out.push_str(&render::plan(&plan));
                plan.apply(&mut self.assignment);
                self.check(&self.assignment.clone());
                for r in &plan.reassignments {
                    let leader = self.leaders.get(&r.partition).copied();
                    if leader.is_none_or(|l| !r.to.contains(&l)) {
                        self.elect(r.partition.clone());
                    }
                }
                let counts = render::counts(self);
                self.out.push_str(&counts);
                Ok(())
            }
            "transfer-leaders" => {
                cmd.only_args(&["max"])?;
                let max = cmd.num("max", u64::MAX)? as usize;
                let transfers =
                    leader_transfers(&self.cluster(), &self.assignment, &self.leaders, max);
                if transfers.is_empty() {
                    self.out.push_str("no transfers\n");
                }
                for t in transfers {
                    self.out
                        .push_str(&format!("{}: leader {} -> {}\n", t.partition, t.from, t.to));
                    self.leaders.insert(t.partition, t.to);
                }
                let counts = render::counts(self);
                self.out.push_str(&counts);
                Ok(())
            }
            "show" => {
                cmd.only_args(&[])?;
                let table = render::table(self, None);
                self.out.push_str(&table);
                let counts = render::counts(self);
                self.out.push_str(&counts);
                Ok(())
            }
            other => Err(cmd.error(format!("unknown command {other}"))),
        }
    }

    /// Prints `!! ` lines for every hard rule `assignment` breaks.
    fn check(&mut self, assignment: &Assignment) {
        for v in check::violations(&self.cluster(), assignment) {
            self.out.push_str(&format!("!! {v}\n"));
        }
    }

    fn set_brokers(&mut self, cmd: &Command) -> Result<(), CommandError> {
        cmd.only_args(&["racks"])?;
        let ids = (0..cmd.pos.len())
            .map(|i| broker(cmd, i))
            .collect::<Result<Vec<_>, _>>()?;
        let racks: Vec<Option<String>> = match cmd.arg("racks") {
            None => vec![None; ids.len()],
            Some(list) => list
                .split(',')
                .map(|r| (r != "-").then(|| r.to_string()))
                .collect(),
        };
        if racks.len() != ids.len() {
            return Err(cmd.error("racks= needs one entry per broker"));
        }
        self.brokers = ids.into_iter().zip(racks).collect();
        Ok(())
    }

    fn remove_brokers(&mut self, cmd: &Command) -> Result<(), CommandError> {
        cmd.only_args(&[])?;
        for i in 0..cmd.pos.len() {
            let id = broker(cmd, i)?;
            if self.brokers.remove(&id).is_none() {
                return Err(cmd.error(format!("broker {id} is not live")));
            }
        }
        let orphaned: Vec<TopicPartition> = self
            .leaders
            .iter()
            .filter(|(_, l)| !self.brokers.contains_key(l))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in orphaned {
            self.elect(tp);
        }
        Ok(())
    }

    /// The partition's first live replica becomes its leader (or it has none).
    fn elect(&mut self, tp: TopicPartition) {
        let next = self
            .assignment
            .get(&tp)
            .and_then(|r| r.iter().copied().find(|b| self.brokers.contains_key(b)));
        match next {
            Some(b) => self.leaders.insert(tp, b),
            None => self.leaders.remove(&tp),
        };
    }

    fn place(
        &mut self,
        cmd: &Command,
        topic: String,
        partitions: std::ops::Range<i32>,
        rf: i32,
    ) -> Result<(), CommandError> {
        let request = NewPartitions {
            topic: topic.clone(),
            partitions,
            replication_factor: i16::try_from(rf).map_err(|_| cmd.error("rf= is too big"))?,
            seed: cmd.num("seed", 0)?,
        };
        match place_partitions(&self.cluster(), &self.assignment, &request) {
            Err(e) => {
                self.out
                    .push_str(&format!("error {}: {e}\n", e.error_code()));
            }
            Ok(placed) => {
                self.check(&placed);
                for (tp, replicas) in placed {
                    if let Some(first) = replicas.first() {
                        self.leaders.insert(tp.clone(), *first);
                    }
                    self.assignment.insert(tp, replicas);
                }
                let table = render::table(self, Some(&topic));
                self.out.push_str(&table);
                let counts = render::counts(self);
                self.out.push_str(&counts);
            }
        }
        Ok(())
    }
}

/// The positional argument at `i` as a broker id.
fn broker(cmd: &Command, i: usize) -> Result<BrokerId, CommandError> {
    let n = cmd.pos_num(i, "broker id")?;
    i32::try_from(n)
        .map(BrokerId)
        .map_err(|_| cmd.error(format!("broker id {n} is too big")))
}

/// `key=N` as an i32 (negative allowed, so refusals can be traced).
fn int(cmd: &Command, key: &str, default: i32) -> Result<i32, CommandError> {
    Ok(cmd.value(key, "a number")?.unwrap_or(default))
}
