//! The environment a group trace drives: one coordinator, the clients that
//! talk to it, the writes waiting for the offsets partition, and the
//! partition's records.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proto_core::group::{
    errors, Action, Coordinator, CoordinatorConfig, Event, Record, ReplyId, Response,
};

use super::render;

/// What a simulated client remembers from the coordinator's answers, as a
/// Kafka client would.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// Its group.
    pub group: String,
    /// Its member id, "" until it has one.
    pub member_id: String,
    /// The generation of its last successful join, or -1.
    pub generation: i32,
    /// Its static instance id, if any.
    pub instance: Option<String>,
    /// It has joined before, so `group` is set (possibly to "").
    pub joined_once: bool,
}

/// The coordinator and everything around it.
pub struct Env {
    /// The configuration new coordinators (and restarts) use.
    pub cfg: CoordinatorConfig,
    /// The coordinator.
    pub coordinator: Coordinator,
    /// The clock, in ms.
    pub now: u64,
    /// The clients, by name; a client's name is its `client.id`.
    pub clients: BTreeMap<String, Client>,
    /// Writes issued and not yet completed, oldest first.
    pub pending: VecDeque<(u64, Vec<Record>)>,
    /// The offsets partition: every completed write's records, encoded.
    pub log: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// The transcript of the current command.
    pub out: String,
    next_reply: u64,
    /// Who is waiting for each unanswered request.
    asked: BTreeMap<ReplyId, String>,
    /// Short names of member ids, and the ids already printed in full.
    aliases: BTreeMap<String, String>,
    shown: BTreeSet<String>,
}

impl Env {
    /// A coordinator with `cfg` and no clients.
    pub fn new(cfg: CoordinatorConfig) -> Env {
        Env {
            coordinator: Coordinator::new(cfg.clone()),
            cfg,
            now: 0,
            clients: BTreeMap::new(),
            pending: VecDeque::new(),
            log: Vec::new(),
            out: String::new(),
            next_reply: 0,
            asked: BTreeMap::new(),
            aliases: BTreeMap::new(),
            shown: BTreeSet::new(),
        }
    }

    /// The defaults traces start from: Kafka's, with no initial rebalance delay.
    pub fn default_config() -> CoordinatorConfig {
        CoordinatorConfig {
            initial_rebalance_delay_ms: 0,
            ..CoordinatorConfig::kafka_defaults(1)
        }
    }

    /// Appends one line at `indent` levels (two spaces each).
    pub fn line(&mut self, indent: usize, text: impl AsRef<str>) {
        for _ in 0..indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text.as_ref());
        self.out.push('\n');
    }

    /// A token for a request from `who` (a client name, or "admin").
    pub fn reply(&mut self, who: &str) -> ReplyId {
        self.next_reply += 1;
        let id = ReplyId(self.next_reply);
        self.asked.insert(id, who.to_string());
        id
    }

    /// Steps the coordinator and prints what it did at `indent`.
    pub fn step(&mut self, event: Event, indent: usize) {
        self.coordinator.step(self.now, event);
        for action in self.coordinator.take_actions() {
            match action {
                Action::Respond { reply, response } => {
                    let Some(who) = self.asked.remove(&reply) else {
                        self.line(
                            indent,
                            format!("!! answer to {} that nobody waits for", reply.0),
                        );
                        continue;
                    };
                    self.learn(&who, &response);
                    let text = render::response(self, &who, &response);
                    self.out_block(indent, &text);
                }
                Action::Persist { token, records } => {
                    self.line(indent, format!("Persist token={token}"));
                    for r in &records {
                        let text = render::record(self, r);
                        self.line(indent + 1, text);
                    }
                    self.pending.push_back((token, records));
                }
            }
        }
    }

    fn out_block(&mut self, indent: usize, text: &str) {
        for l in text.lines() {
            self.line(indent, l);
        }
    }

    /// Completes the oldest `n` writes, each as its own event.
    pub fn complete(&mut self, n: usize, ok: bool) {
        for _ in 0..n {
            let Some((token, records)) = self.pending.pop_front() else {
                return;
            };
            if ok {
                self.line(0, format!("Persisted token={token}"));
                self.log.extend(records.iter().map(Record::encode));
                self.step(Event::Persisted { token }, 1);
            } else {
                self.line(0, format!("PersistFailed token={token}"));
                self.step(Event::PersistFailed { token }, 1);
            }
        }
    }

    /// Fails write `token` wherever it is in the queue, as a broker refusing
    /// a proposal at once does; false if it is not pending.
    pub fn fail(&mut self, token: u64) -> bool {
        let Some(i) = self.pending.iter().position(|(t, _)| *t == token) else {
            return false;
        };
        self.pending.remove(i);
        self.line(0, format!("PersistFailed token={token}"));
        self.step(Event::PersistFailed { token }, 1);
        true
    }

    /// A new coordinator (seeded `seed`) that replays the offsets partition;
    /// writes in flight are lost, and so are unanswered requests.
    pub fn restart(&mut self, seed: u64) {
        self.cfg.seed = seed;
        self.coordinator = Coordinator::new(self.cfg.clone());
        self.pending.clear();
        self.asked.clear();
        let mut replayed = 0;
        for (key, value) in self.log.clone() {
            match Record::decode(&key, value.as_deref()) {
                Ok(r) => {
                    self.coordinator.replay(r);
                    replayed += 1;
                }
                Err(e) => self.line(0, format!("!! undecodable record: {e}")),
            }
        }
        self.line(0, format!("replayed {replayed} records"));
    }

    /// What a client takes from an answer: its member id and generation.
    fn learn(&mut self, who: &str, response: &Response) {
        let Some(client) = self.clients.get_mut(who) else {
            return;
        };
        match response {
            Response::Join(j) => match j.error_code {
                errors::NONE => {
                    client.member_id = j.member_id.clone();
                    client.generation = j.generation_id;
                }
                errors::MEMBER_ID_REQUIRED => client.member_id = j.member_id.clone(),
                errors::UNKNOWN_MEMBER_ID => {
                    client.member_id.clear();
                    client.generation = -1;
                }
                _ => {}
            },
            Response::Leave(l) => {
                let left: Vec<String> = l
                    .members
                    .iter()
                    .filter(|m| m.error_code == errors::NONE)
                    .map(|m| m.member_id.clone())
                    .collect();
                for c in self.clients.values_mut() {
                    if left.contains(&c.member_id) {
                        c.member_id.clear();
                        c.generation = -1;
                    }
                }
            }
            _ => {}
        }
    }

    /// The short name of a member id: `{client}#{n}` for the n-th id of a
    /// client (found by the id's prefix: client id or instance id), printed
    /// in full the first time.
    pub fn alias(&mut self, member_id: &str) -> String {
        if member_id.is_empty() {
            return "\"\"".to_string();
        }
        let alias = match self.aliases.get(member_id) {
            Some(a) => a.clone(),
            None => {
                let prefix = member_id
                    .len()
                    .checked_sub(37)
                    .and_then(|n| member_id.get(..n))
                    .unwrap_or(member_id);
                let owner = self
                    .clients
                    .iter()
                    .find(|(name, c)| {
                        name.as_str() == prefix || c.instance.as_deref() == Some(prefix)
                    })
                    .map(|(name, _)| name.clone());
                // Ids the coordinator did not make (a trace's `member=ghost`)
                // print as they are.
                let Some(owner) = owner else {
                    return member_id.to_string();
                };
                let n = self
                    .aliases
                    .values()
                    .filter(|a| a.split('#').next() == Some(owner.as_str()))
                    .count();
                let a = format!("{owner}#{}", n + 1);
                self.aliases.insert(member_id.to_string(), a.clone());
                a
            }
        };
        if self.shown.insert(member_id.to_string()) {
            format!("{alias}={member_id}")
        } else {
            alias
        }
    }

    /// The member id a trace names: an alias, `none` for "", or a raw id.
    pub fn member_named(&self, name: &str) -> String {
        if name == "none" {
            return String::new();
        }
        self.aliases
            .iter()
            .find(|(_, a)| a.as_str() == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| name.to_string())
    }
}
