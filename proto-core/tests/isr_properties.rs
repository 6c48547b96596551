//! ISR tracker properties over generated schedules of appends, follower
//! answers, ticks, metadata-log answers, membership changes and re-elections.
//!
//! A reference model dates every follower by the definition (Kafka's "the
//! largest time t such that its acknowledged index >= the leader's log end at
//! time t", over the full log-end history) and checks after every step: the
//! leader is in the ISR, the ISR holds only replicas, a replica leaves only
//! once the lag bound passed without it catching up, joins only caught up and
//! holding the high watermark, one change is in flight at a time, every member
//! of the maximal ISR holds every write acknowledged under `acks=all`, and the
//! same schedule gives the same actions.

use std::collections::{BTreeMap, BTreeSet};

use proto_core::isr::{AcksAll, Action, Event, IsrChange, IsrConfig, IsrEpoch, IsrTracker};
use proto_core::raft::{LogIndex, NodeId};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const LAG: u64 = 1_000;
const LEADER: NodeId = NodeId(1);

#[derive(Clone, Debug)]
enum Op {
    /// The leader appends `n` entries after `dt` ms.
    Append { dt: u64, n: u64 },
    /// `follower` answers after `dt` ms, having closed `catch` quarters of its
    /// gap to the log end.
    Progress { follower: u64, dt: u64, catch: u64 },
    /// Time passes.
    Tick { dt: u64 },
    /// The metadata log records the pending proposal.
    Commit,
    /// The metadata log refuses the pending proposal.
    Reject,
    /// A record no newer than the one held arrives.
    StaleRecord { members: Vec<u64> },
    /// A replica joins the voters.
    AddReplica(u64),
    /// A replica leaves the voters.
    RemoveReplica(u64),
    /// Node 1 is elected again after `dt` ms, from the recorded ISR.
    Reelect { dt: u64 },
}

fn dt(g: &mut Gen) -> u64 {
    let base = *g
        .choose(&[0, 10, 50, 100, 200, 300, 500, 900, LAG, 2 * LAG, 3 * LAG])
        .unwrap_or(&0);
    base + u64::arbitrary(g) % 40
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let follower = *g.choose(&[2, 3, 4, 5]).unwrap_or(&2);
        match u8::arbitrary(g) % 100 {
            0..=24 => Op::Append {
                dt: dt(g),
                n: 1 + u64::arbitrary(g) % 5,
            },
            25..=59 => Op::Progress {
                follower,
                dt: dt(g),
                catch: u64::arbitrary(g) % 5,
            },
            60..=71 => Op::Tick { dt: dt(g) },
            72..=81 => Op::Commit,
            82..=85 => Op::Reject,
            86..=87 => Op::StaleRecord {
                members: (1..=5).filter(|_| bool::arbitrary(g)).collect(),
            },
            88..=92 => Op::AddReplica(follower),
            93..=97 => Op::RemoveReplica(follower),
            _ => Op::Reelect { dt: dt(g) },
        }
    }
}

/// What the generated schedules reached, so the properties are known to bite.
#[derive(Debug, Default)]
struct Seen {
    shrinks: usize,
    expands: usize,
    commits: usize,
    rejections: usize,
    acked: usize,
    not_enough_after_append: usize,
    blocked_by_pending: usize,
    /// Steps at which answering `acks=all` against the recorded ISR alone
    /// would have acknowledged a write a maximal-ISR member lacks.
    naive_unsafe: usize,
}

/// The tracker and the reference model of one leadership.
struct World {
    t: IsrTracker,
    now: u64,
    end: u64,
    hw: u64,
    replicas: BTreeSet<NodeId>,
    /// Each follower's real log end; survives elections.
    log: BTreeMap<NodeId, u64>,
    /// The highest index each follower acknowledged in this leadership.
    reported: BTreeMap<NodeId, u64>,
    /// Lag-clock start of the members of the ISR at election.
    grace: BTreeMap<NodeId, u64>,
    /// `(since_ms, end)`: the leader's log end from then on, this leadership.
    timeline: Vec<(u64, u64)>,
    epoch_start: u64,
    /// The highest index acknowledged under `acks=all` this leadership.
    acked: u64,
    naive_acked: u64,
    actions: Vec<Action>,
    seen: Seen,
}

fn ids(v: impl IntoIterator<Item = u64>) -> BTreeSet<NodeId> {
    v.into_iter().map(NodeId).collect()
}

impl World {
    fn new() -> World {
        let mut w = World {
            t: IsrTracker::new(
                IsrConfig {
                    lag_time_max_ms: LAG,
                },
                LEADER,
            ),
            now: 0,
            end: 10,
            hw: 0,
            replicas: ids([1, 2, 3]),
            log: BTreeMap::new(),
            reported: BTreeMap::new(),
            grace: BTreeMap::new(),
            timeline: Vec::new(),
            epoch_start: 0,
            acked: 0,
            naive_acked: 0,
            actions: Vec::new(),
            seen: Seen::default(),
        };
        w.elect(ids([1, 2, 3]), IsrEpoch(1))
            .expect("the first election is sound");
        w
    }

    fn elect(&mut self, isr: BTreeSet<NodeId>, epoch: IsrEpoch) -> Result<(), String> {
        self.reported.clear();
        self.grace = isr
            .iter()
            .filter(|&&r| r != LEADER && self.replicas.contains(&r))
            .map(|&r| (r, self.now))
            .collect();
        self.timeline = vec![(self.now, self.end)];
        self.epoch_start = self.end;
        self.acked = 0;
        self.naive_acked = 0;
        self.step(Event::BecameLeader {
            replicas: self.replicas.clone(),
            initial_isr: isr,
            isr_epoch: epoch,
            log_end: LogIndex(self.end),
            now_ms: self.now,
        })?;
        // The driver reports the commit index it already had.
        self.step(Event::HighWatermark {
            hw: LogIndex(self.hw),
        })
    }

    /// When the leader's log end first grew past `m` in this leadership;
    /// `None` if it was already past `m` at election.
    fn grew_past(&self, m: u64) -> Option<u64> {
        if self.timeline.first().is_some_and(|&(_, e)| e > m) {
            return None;
        }
        self.timeline.iter().find(|&&(_, e)| e > m).map(|&(t, _)| t)
    }

    /// The reference answer: `None` if the follower holds the log end (caught
    /// up whatever the time), else when it was last caught up, if ever.
    fn reference_caught_up_at(&self, r: NodeId) -> Result<Option<u64>, ()> {
        let m = self.reported.get(&r).copied();
        if m.is_some_and(|m| m >= self.end) {
            return Err(());
        }
        let dated = m.and_then(|m| self.grew_past(m));
        Ok(dated.max(self.grace.get(&r).copied()))
    }

    fn reference_caught_up(&self, r: NodeId) -> bool {
        match self.reference_caught_up_at(r) {
            Err(()) => true,
            Ok(t) => t.is_some_and(|t| self.now - t <= LAG),
        }
    }

    fn step(&mut self, e: Event) -> Result<(), String> {
        let pending_before = self.t.pending().is_some();
        let isr_before = self.t.isr();
        self.t.step(e.clone()).map_err(|r| format!("{e:?}: {r}"))?;
        let new = self.t.take_actions();
        if !new.is_empty() && pending_before {
            return Err(format!(
                "{e:?} proposed while a change was pending: {new:?}"
            ));
        }
        if new.len() > 1 {
            return Err(format!("{e:?} proposed more than one change: {new:?}"));
        }
        if pending_before && matches!(e, Event::Tick { .. }) {
            self.seen.blocked_by_pending += 1;
        }
        for a in &new {
            let Action::IsrChanged { changes, isr, .. } = a;
            if !isr.contains(&LEADER) || !isr.is_subset(&self.replicas) {
                return Err(format!(
                    "proposed ISR {isr:?} of replicas {:?}",
                    self.replicas
                ));
            }
            for c in changes {
                self.check_change(c, &isr_before)?;
            }
        }
        self.actions.extend(new);
        self.check_state()
    }

    fn check_change(&mut self, c: &IsrChange, isr_before: &BTreeSet<NodeId>) -> Result<(), String> {
        let resolution = IsrConfig {
            lag_time_max_ms: LAG,
        }
        .history_resolution_ms();
        match *c {
            IsrChange::Shrink { replica, lag_ms } => {
                self.seen.shrinks += 1;
                if replica == LEADER || !isr_before.contains(&replica) {
                    return Err(format!("shrank {replica} out of {isr_before:?}"));
                }
                let since = self
                    .reference_caught_up_at(replica)
                    .map_err(|()| format!("shrank {replica}, which holds the log end"))?;
                if since.is_some_and(|t| self.now - t <= LAG - resolution) || lag_ms <= LAG {
                    return Err(format!(
                        "shrank {replica} at {} (lag {lag_ms}), caught up at {since:?}",
                        self.now
                    ));
                }
            }
            IsrChange::Expand { replica } if replica == LEADER => {
                return Err("the leader was proposed back into a record holding it".into());
            }
            IsrChange::Expand { replica } => {
                self.seen.expands += 1;
                let m = self.reported.get(&replica).copied().unwrap_or(0);
                let floor = self.hw.max(self.epoch_start);
                if isr_before.contains(&replica)
                    || !self.reported.contains_key(&replica)
                    || m < floor
                    || !self.reference_caught_up(replica)
                {
                    return Err(format!(
                        "expanded {replica} at {} with match {m}, floor {floor}",
                        self.now
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_state(&mut self) -> Result<(), String> {
        let isr = self.t.isr();
        let maximal = self.t.maximal_isr();
        if !isr.contains(&LEADER) || !maximal.contains(&LEADER) {
            return Err(format!("leader missing from {isr:?} / {maximal:?}"));
        }
        if !maximal.is_subset(&self.replicas) || !isr.is_subset(&maximal) {
            return Err(format!(
                "ISR {isr:?}, maximal {maximal:?}, replicas {:?}",
                self.replicas
            ));
        }
        for &r in self.replicas.iter().filter(|&&r| r != LEADER) {
            if let (Some(got), Ok(Some(truth))) =
                (self.t.last_caught_up_ms(r), self.reference_caught_up_at(r))
            {
                if got > truth {
                    return Err(format!("{r} dated {got}, later than the truth {truth}"));
                }
            }
        }
        // Ask about the writes that could be answered now.
        for last in [self.hw.saturating_sub(2), self.hw, self.end] {
            match self.t.acks_all(LogIndex(last), 2) {
                AcksAll::Ack => {
                    self.seen.acked += 1;
                    self.acked = self.acked.max(last);
                }
                AcksAll::NotEnoughReplicasAfterAppend => {
                    self.seen.not_enough_after_append += 1;
                    self.acked = self.acked.max(last);
                }
                AcksAll::Wait => {}
            }
            let holds =
                |r: &NodeId| *r == LEADER || self.reported.get(r).is_some_and(|&m| m >= last);
            if self.hw >= last && isr.iter().all(holds) {
                self.naive_acked = self.naive_acked.max(last);
            }
        }
        for r in maximal.iter().filter(|&&r| r != LEADER) {
            let m = self.reported.get(r).copied().unwrap_or(0);
            if m < self.acked {
                return Err(format!(
                    "{r} in {maximal:?} lacks acknowledged {}",
                    self.acked
                ));
            }
            if m < self.naive_acked {
                self.seen.naive_unsafe += 1;
            }
        }
        Ok(())
    }

    fn advance(&mut self, dt: u64) {
        self.now += dt;
    }

    /// The Raft commit index: the highest index a majority of replicas hold.
    fn update_hw(&mut self) -> Result<(), String> {
        let mut held: Vec<u64> = self
            .replicas
            .iter()
            .map(|r| {
                if *r == LEADER {
                    self.end
                } else {
                    self.reported.get(r).copied().unwrap_or(0)
                }
            })
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        let quorum = held[self.replicas.len() / 2];
        if quorum > self.hw {
            self.hw = quorum;
            self.step(Event::HighWatermark {
                hw: LogIndex(quorum),
            })?;
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Append { dt, n } => {
                self.advance(*dt);
                self.end += n;
                self.timeline.push((self.now, self.end));
                self.step(Event::LeaderLogEnd {
                    log_end: LogIndex(self.end),
                    now_ms: self.now,
                })?;
                self.update_hw()
            }
            Op::Progress {
                follower,
                dt,
                catch,
            } => {
                self.advance(*dt);
                let r = NodeId(*follower);
                let from = self.log.get(&r).copied().unwrap_or(0);
                let m = from + self.end.saturating_sub(from) * catch / 4;
                if self.replicas.contains(&r) {
                    self.log.insert(r, m);
                    self.reported.insert(r, m);
                }
                self.step(Event::FollowerProgress {
                    replica: r,
                    match_index: LogIndex(m),
                    now_ms: self.now,
                })?;
                self.update_hw()
            }
            Op::Tick { dt } => {
                self.advance(*dt);
                self.step(Event::Tick { now_ms: self.now })
            }
            Op::Commit => {
                let Some((_, isr)) = self.t.pending() else {
                    return Ok(());
                };
                let isr = isr.clone();
                let epoch = IsrEpoch(self.t.epoch().map_or(0, |e| e.0) + 1);
                self.seen.commits += 1;
                self.step(Event::IsrCommitted { isr, epoch })?;
                if self.t.pending().is_some() || self.t.epoch() != Some(epoch) {
                    return Err("a newer record did not settle the pending change".into());
                }
                Ok(())
            }
            Op::Reject => {
                let Some((proposal, _)) = self.t.pending() else {
                    return Ok(());
                };
                let isr = self.t.isr();
                self.seen.rejections += 1;
                self.step(Event::IsrRejected { proposal })?;
                if self.t.pending().is_some() || self.t.isr() != isr {
                    return Err("a rejection did not restore the recorded ISR".into());
                }
                Ok(())
            }
            Op::StaleRecord { members } => {
                let before = (self.t.isr(), self.t.pending().map(|(p, _)| p));
                let epoch = self.t.epoch().unwrap_or_default();
                self.step(Event::IsrCommitted {
                    isr: ids(members.iter().copied()),
                    epoch,
                })?;
                if (self.t.isr(), self.t.pending().map(|(p, _)| p)) != before {
                    return Err("a stale record changed the ISR".into());
                }
                Ok(())
            }
            Op::AddReplica(r) => {
                let r = NodeId(*r);
                if self.replicas.insert(r) {
                    self.log.insert(r, 0);
                    self.reported.remove(&r);
                    self.grace.remove(&r);
                    self.step(Event::ReplicasChanged {
                        replicas: self.replicas.clone(),
                    })?;
                }
                Ok(())
            }
            Op::RemoveReplica(r) => {
                let r = NodeId(*r);
                if self.replicas.remove(&r) {
                    self.reported.remove(&r);
                    self.grace.remove(&r);
                    self.step(Event::ReplicasChanged {
                        replicas: self.replicas.clone(),
                    })?;
                    if self.t.isr().contains(&r) || self.t.maximal_isr().contains(&r) {
                        return Err(format!("removed {r} is still in the ISR"));
                    }
                }
                Ok(())
            }
            Op::Reelect { dt } => {
                self.advance(*dt);
                let isr = self.t.isr();
                let epoch = self.t.epoch().unwrap_or_default();
                self.elect(isr, epoch)
            }
        }
    }
}

fn run(schedule: &[Op]) -> Result<World, String> {
    let mut w = World::new();
    for (i, op) in schedule.iter().enumerate() {
        w.apply(op).map_err(|e| format!("op {i} {op:?}: {e}"))?;
    }
    Ok(w)
}

fn quickcheck() -> QuickCheck {
    QuickCheck::new().tests(500).rng(Gen::new(200))
}

#[test]
fn any_schedule_keeps_the_isr_rules() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        match run(&schedule) {
            Ok(_) => TestResult::passed(),
            Err(e) => TestResult::error(e),
        }
    }
    quickcheck().quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

#[test]
fn the_same_schedule_gives_the_same_actions() {
    fn prop(schedule: Vec<Op>) -> TestResult {
        match (run(&schedule), run(&schedule)) {
            (Ok(a), Ok(b)) => TestResult::from_bool(
                a.actions == b.actions && a.t.isr() == b.t.isr() && a.t.pending() == b.t.pending(),
            ),
            (Err(e), _) | (_, Err(e)) => TestResult::error(e),
        }
    }
    QuickCheck::new()
        .tests(200)
        .rng(Gen::new(200))
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

/// The properties are only worth something if the schedules reach the
/// interesting states, and the pending rule only if dropping it would break
/// one: answering `acks=all` against the recorded ISR alone must, somewhere,
/// acknowledge a write a member of the maximal ISR lacks.
#[test]
fn generated_schedules_shrink_expand_and_need_the_pending_rule() {
    let mut g = Gen::from_size_and_seed(200, 7);
    let mut total = Seen::default();
    for _ in 0..300 {
        let schedule = Vec::<Op>::arbitrary(&mut g);
        let w = run(&schedule).expect("a sound run");
        total.shrinks += w.seen.shrinks;
        total.expands += w.seen.expands;
        total.commits += w.seen.commits;
        total.rejections += w.seen.rejections;
        total.acked += w.seen.acked;
        total.not_enough_after_append += w.seen.not_enough_after_append;
        total.blocked_by_pending += w.seen.blocked_by_pending;
        total.naive_unsafe += usize::from(w.seen.naive_unsafe > 0);
    }
    assert!(total.shrinks >= 500, "{total:?}");
    assert!(total.expands >= 300, "{total:?}");
    assert!(total.commits >= 400, "{total:?}");
    assert!(total.rejections >= 150, "{total:?}");
    assert!(total.acked >= 5000, "{total:?}");
    assert!(total.not_enough_after_append >= 1000, "{total:?}");
    assert!(total.blocked_by_pending >= 400, "{total:?}");
    assert!(total.naive_unsafe >= 20, "{total:?}");
}
