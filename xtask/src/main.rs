//! Chronik's developer tasks, run as `cargo xtask <command>` (the alias lives in
//! `.cargo/config.toml`).
//!
//! Every task the project needs beyond plain `cargo` lives here, in Rust, so it runs
//! the same on a laptop and in CI: `ci` is exactly what `.ci/run` checks, and a
//! simulator failure prints the `cargo xtask sim --seed S` that replays it.

mod bench;
mod ci;
mod cluster;
mod replay;
mod sim;
mod table;
mod workspace;

use std::process::ExitCode;

use anyhow::bail;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  ci                 install what the tests need, then fmt, clippy, test and 300 sim seeds
  sim --seeds N      run the deterministic simulator on seeds 0..N (--start S shifts them)
  sim --seed S       replay one seed (the one a failure printed) with its event log
  sim --trace FILE   replay a minimized trace file
  replay FILE        feed a trace from `chronik serve --record-trace FILE` to a fresh
                     node and compare every input's outputs (--verbose: each input)
  cluster            start a local cluster (--nodes N, --io tokio|sync|mixed) and watch
                     it until Ctrl-C; `cluster status|stop|kill N|restart N` act on it
                     from another shell (`cluster --help` for the rest)
  chaos              fault-injection runs against real processes (not built yet)
  bench              end-to-end benchmarks against a release broker with librdkafka
                     (--duration SECS, --quick, --io tokio|sync|both)
  bench --cluster N  the same against N nodes (default 3): acks=all throughput, leader
                     failover time and idle CPU with 10,000 partitions, beside the
                     targets (--io tokio|sync|mixed, --duration SECS, --quick)";

/// Tasks that are planned but do not exist yet: (command, the issue that builds it,
/// what it will do). They fail loudly rather than pretend: a green
/// `cargo xtask chaos` that did nothing would be worse than none.
const NOT_BUILT_YET: &[(&str, &str, &str)] = &[(
    "chaos",
    "chaos testing",
    "kill -9, SIGSTOP and network partitions against a real cluster, checked by a \
         Jepsen-style history checker",
)];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the cause chain on one line; anyhow's Debug form would
            // add a backtrace whenever RUST_BACKTRACE is set, burying the message.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> anyhow::Result<()> {
    let Some(command) = args.first() else {
        eprintln!("{USAGE}");
        bail!("no command given");
    };
    match command.as_str() {
        "ci" => ci::run(&args[1..]),
        "sim" => sim::run(&args[1..]),
        "bench" => bench::run(&args[1..]),
        "cluster" => cluster::run(&args[1..]),
        "replay" => replay::run(&args[1..]),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => match NOT_BUILT_YET.iter().find(|(name, ..)| *name == other) {
            Some((name, issue, what)) => {
                bail!("`cargo xtask {name}` is not built yet: the \"{issue}\" issue builds it ({what})")
            }
            None => {
                eprintln!("{USAGE}");
                bail!("unknown command `{other}`")
            }
        },
    }
}
