//! Group-coordinator traces: scripted clients against one
//! [`Coordinator`](proto_core::group::Coordinator), rendered as one stable
//! transcript per trace in the [`crate::datadriven`] form.
//!
//! Nothing happens behind the trace's back: writes wait until `persist` or
//! `fail-persist` completes them, and time moves only with `tick`. A client
//! is named by its `client.id` and remembers its group, member id and
//! generation from its answers; member ids print as `c1#1` (the first id of
//! client `c1`), in full the first time.
//!
//! Commands (`[..]` is optional):
//!
//! - `config [seed=N] [delay=MS] [retention=MS] [retention-check=MS]
//!   [max-size=N] [max-metadata=N] [min-session=MS] [max-session=MS]`: the
//!   coordinator's settings; first in a trace. Defaults are Kafka's with no
//!   initial rebalance delay.
//! - `join CLIENT [group=G] [session=MS] [rebalance=MS] [type=consumer]
//!   [protocols=range,roundrobin] [topics=t,u] [metadata=TEXT] [instance=I]
//!   [member=ALIAS|none] [require-known=true] [skip=true]`: a JoinGroup; the
//!   subscription to `topics` (default `t`) is every protocol's metadata
//!   unless `metadata=` gives raw text.
//! - `sync CLIENT [gen=N] [member=..] [assign=c1:TEXT;c2:TEXT] [type=T]
//!   [protocol=P]`, `heartbeat CLIENT [gen=N] [member=..] [instance=I|none]`.
//! - `leave CLIENT... [by-instance=true] [member=..] [instance=I|none]`: one
//!   LeaveGroup for the clients (`member=`/`instance=` override each one's).
//! - `commit [CLIENT] [group=G] [gen=N] [member=..] [metadata=TEXT]
//!   [epoch=E] topic-P=OFFSET...`: without a client, a standalone commit
//!   (generation -1, no member id) to `group=`.
//! - `fetch GROUP... [partitions=t-0,t-1] [stable=true]`, `describe GROUP...`,
//!   `list [states=Empty,Stable] [types=classic]`, `delete GROUP...`,
//!   `offset-delete GROUP topic-P...`: the other requests.
//! - `tick MS`: time passes, then a tick.
//! - `persist [n=K]`, `fail-persist [n=K]`: the oldest K (default all)
//!   pending writes complete or fail; what each caused prints below it.
//!   `fail-persist token=T` fails write T even if older ones are pending
//!   (successes always come in the order writes were issued, as the log's).
//! - `restart [seed=N]`: a new coordinator replays the offsets partition
//!   (records encoded and decoded); writes in flight are lost.
//! - `log`: the offsets partition's records, in order.

mod commands;
mod env;
mod render;

pub use commands::subscription;
pub use env::{Client, Env};

use crate::datadriven::{run_transcript, CommandError};

/// Runs a group trace and returns its transcript.
pub fn run(text: &str) -> Result<String, CommandError> {
    let mut env = Env::new(Env::default_config());
    run_transcript(text, |cmd| {
        commands::run(&mut env, cmd)?;
        Ok(std::mem::take(&mut env.out))
    })
}
