//! Chronik's developer tasks, run as `cargo xtask <command>` (the alias lives in
//! `.cargo/config.toml`).
//!
//! Every task the project needs beyond plain `cargo` lives here, in Rust, so it runs
//! the same on a laptop and in CI: `ci` is exactly what `.ci/run` checks, and a
//! simulator failure prints the `cargo xtask sim --seed S` that replays it.

mod bench;
mod chaos;
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
  ci                 install what the tests need, then fmt, clippy, test, 1000 sim seeds
                     and a 90 s chaos run
  sim --seeds N      run the deterministic simulator on seeds 0..N (--start S shifts them)
  sim --seed S       replay one seed (the one a failure printed) with its event log
  sim --trace FILE   replay a minimized trace file
  replay FILE        feed a trace from `chronik serve --record-trace FILE` to a fresh
                     node and compare every input's outputs (--verbose: each input)
  cluster            start a local cluster (--nodes N, --io tokio|sync|mixed) and watch
                     it until Ctrl-C; `cluster status|stop|kill N|restart N` act on it
                     from another shell (`cluster --help` for the rest)
  chaos              Jepsen-style faults against a real cluster with real clients, checked
                     by a history checker (--nodes N, --duration 60s, --nemesis LIST|all,
                     --seed S, --io tokio|sync|mixed; `chaos --help` for the rest)
  bench              end-to-end benchmarks against a release broker with librdkafka
                     (--duration SECS, --quick, --io tokio|sync|both)
  bench --cluster N  the same against N nodes (default 3): acks=all throughput, leader
                     failover time and idle CPU with 10,000 partitions, beside the
                     targets (--io tokio|sync|mixed, --duration SECS, --quick)";

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
        "chaos" => chaos::run(&args[1..]),
        "bench" => bench::run(&args[1..]),
        "cluster" => cluster::run(&args[1..]),
        "replay" => replay::run(&args[1..]),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("{USAGE}");
            bail!("unknown command `{other}`")
        }
    }
}
