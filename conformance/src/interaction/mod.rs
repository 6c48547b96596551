//! etcd-style interaction traces: scripted scenarios against a small in-memory
//! cluster, rendered as one stable transcript per trace.
//!
//! A trace file is in the [`crate::datadriven`] form: stanzas of `#` comments
//! and commands. [`run`] executes the commands in order and renders every
//! command with its output (`ok` when it printed nothing). The tests compare
//! the transcript with an insta snapshot, so trace files hold no expected output.
//!
//! Nothing happens behind the trace's back: messages wait in one network queue
//! until `deliver` or `stabilize` moves them, writes wait in each node's disk
//! queue until `persist` or `stabilize` makes them durable, and time moves only
//! with `tick`. Election timeouts are randomized from a fixed per-node seed, so
//! every run prints the same bytes.
//!
//! Commands (ids are node ids; `[..]` is optional):
//!
//! - `add-nodes N [voters=(1,2,3)] [learners=(4)] [prevote=B] [checkquorum=B]
//!   [lease-drift=K] [quiesce=B] [election=T] [heartbeat=T] [max-inflight=N]
//!   [max-inflight-bytes=N] [max-msg-bytes=N] [chunk=N] [catchup-lag=N]
//!   [load-compacted=B]`: adds N
//!   nodes numbered after the existing ones. Without `voters=` the new nodes are
//!   the voters. A node that joins later gets the group's founding voters (e.g.
//!   `voters=(1,2,3)`), which it is not part of, as `Restored` requires;
//!   `voters=()` starts it with no membership at all.
//!   Defaults are `Config::new`'s (PreVote and CheckQuorum on).
//! - `campaign ID`, `unquiesce ID`, `transfer-leader FROM TO`, `read-index ID CTX`,
//!   `unreachable ID PEER`, `propose ID DATA...`,
//!   `propose-conf-change ID add-learner|promote|remove N`: one event.
//! - `tick ID... [n=K]`: K ticks on each node. `tick-election ID`: ticks until the
//!   node's role or term changes.
//! - `persist ID [n=K]`: makes the oldest K (default all) pending writes durable.
//! - `deliver [from=A] [to=B] [type=Kind] [n=K] [drop=true]`: delivers (or drops)
//!   the queued messages that match, oldest first. `Kind` is the message name
//!   as printed (`Append`, `HeartbeatResponse`, ...).
//! - `stabilize [ID...]`: persists and delivers until nothing moves, printing
//!   `> N handling actions` (writes made durable) and `> N receiving messages`.
//! - `crash ID`: loses unsynced writes and restarts from the disk.
//! - `restore ID [term=T] [vote=V] [commit=K] log=(1,1,4)`: replaces the node's
//!   disk with entries of those terms (from index 1) and restarts it; how
//!   traces build the divergent logs of the Raft paper's figures.
//! - `compact ID`: snapshots the state machine at the applied index.
//! - `drop-compacted ID [upto=N]`: deletes the disk's entries the snapshot
//!   covers (kept with `load-compacted`), or those up to N, as retention
//!   deletes old segments; a load before them is answered with the storage
//!   start (`LogStartLoaded`).
//! - `hold-loads ID`, `answer-loads ID`: the node keeps the entry loads its
//!   Raft asks for instead of answering them at once, until `answer-loads`
//!   answers them (oldest first) and stops holding.
//! - `partition 1 / 2 3`, `isolate ID`, `heal`: cut and restore links.
//! - `status ID`, `raft-log ID`, `raft-state`, `state-machine ID`, `network`: print state.
//!
//! After every command the environment checks safety (one leader per term,
//! committed entries agree, state machines are prefixes of one another) and
//! prints `!! INVARIANT VIOLATED` lines if not.

mod commands;
mod env;
mod render;

pub use env::Env;

use crate::datadriven::{run_transcript, CommandError};

/// Runs a trace file and returns its transcript. A Raft refusal is not an
/// error; it is printed as `error: <reason>`.
pub fn run(text: &str) -> Result<String, CommandError> {
    let mut env = Env::new();
    run_transcript(text, |cmd| {
        commands::run(&mut env, cmd)?;
        env.check_invariants();
        Ok(env.take_output())
    })
}
