//! The command line of `cargo xtask cluster`, parsed into a [`Command`] before
//! anything runs, so a typo fails before a two-minute release build does.

use anyhow::{bail, Context};

use super::layout::{IoChoice, NodeId, MAX_NODES};

/// What `cargo xtask cluster --help` prints.
pub const USAGE: &str = "\
usage: cargo xtask cluster [--nodes N] [--io tokio|sync|mixed] [--port-offset K]
                           [--keep-data] [-- CHRONIK-SERVE-FLAGS...]
       cargo xtask cluster status | stop | kill N | restart N

  (no subcommand)  build the release `chronik`, start N nodes (default 3, at most 9)
                   on 127.0.0.1 and show a live table until Ctrl-C, which stops them
  --io             driver of every node (default tokio); mixed: odd nodes tokio,
                   even nodes sync
  --port-offset K  add K to every port of the fixed scheme (default 0):
                   node N: kafka 9092+K+N-1, raft 19092+K+N-1, admin 9644+K+N-1
  --keep-data      keep target/cluster/node-N from the last run (default: wiped)
  -- FLAGS         passed to every `chronik serve` (e.g. -- --default-partitions 6)
  status           print the table of the running cluster once
  stop             SIGTERM every node, SIGKILL what is left after 10 s
  kill N           SIGKILL node N
  restart N        start node N again with the same flags (SIGTERM it first if it runs)";

/// One invocation of `cargo xtask cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Start a cluster and supervise it in the foreground.
    Up(UpArgs),
    /// Print the running cluster's table once.
    Status,
    /// SIGKILL one node.
    Kill(NodeId),
    /// Start one node again with the flags it was first started with.
    Restart(NodeId),
    /// Stop every node.
    Stop,
    /// Print [`USAGE`].
    Help,
}

/// The options of [`Command::Up`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpArgs {
    /// How many nodes, `1..=MAX_NODES`.
    pub nodes: u32,
    /// Which driver each node runs.
    pub io: IoChoice,
    /// Added to every port of the fixed scheme, to dodge a port that is taken.
    pub port_offset: u16,
    /// Reuse the data directories of the previous run instead of wiping them.
    pub keep_data: bool,
    /// Extra `chronik serve` flags for every node (everything after `--`).
    pub serve_flags: Vec<String>,
}

impl Default for UpArgs {
    fn default() -> UpArgs {
        UpArgs {
            nodes: 3,
            io: IoChoice::Tokio,
            port_offset: 0,
            keep_data: false,
            serve_flags: Vec::new(),
        }
    }
}

/// Parses the arguments after `cluster`.
pub fn parse(args: &[String]) -> anyhow::Result<Command> {
    let Some(first) = args.first() else {
        return Ok(Command::Up(UpArgs::default()));
    };
    let rest = &args[1..];
    match first.as_str() {
        "status" => no_more(rest, "status").map(|()| Command::Status),
        "stop" => no_more(rest, "stop").map(|()| Command::Stop),
        "kill" => node_arg(rest, "kill").map(Command::Kill),
        "restart" => node_arg(rest, "restart").map(Command::Restart),
        "help" | "-h" | "--help" => Ok(Command::Help),
        _ => parse_up(args).map(Command::Up),
    }
}

fn parse_up(args: &[String]) -> anyhow::Result<UpArgs> {
    let mut up = UpArgs::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value"))
                .cloned()
        };
        match flag.as_str() {
            "--nodes" => {
                let v = value()?;
                up.nodes = match v.parse() {
                    Ok(n) if (1..=MAX_NODES).contains(&n) => n,
                    _ => bail!("--nodes must be a number from 1 to {MAX_NODES}, not `{v}`"),
                };
            }
            "--io" => {
                let v = value()?;
                up.io = IoChoice::parse(&v)
                    .with_context(|| format!("--io must be tokio, sync or mixed, not `{v}`"))?;
            }
            "--port-offset" => {
                let v = value()?;
                up.port_offset = v
                    .parse()
                    .with_context(|| format!("--port-offset must be 0..=65535, not `{v}`"))?;
            }
            "--keep-data" => up.keep_data = true,
            "--" => {
                up.serve_flags = it.by_ref().cloned().collect();
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    Ok(up)
}

fn no_more(rest: &[String], command: &str) -> anyhow::Result<()> {
    match rest.first() {
        None => Ok(()),
        Some(extra) => bail!("`cluster {command}` takes no arguments, got `{extra}`"),
    }
}

fn node_arg(rest: &[String], command: &str) -> anyhow::Result<NodeId> {
    let [n] = rest else {
        bail!("usage: cargo xtask cluster {command} N (a node number, 1 for the first)");
    };
    match n.parse::<u32>() {
        Ok(id) if id >= 1 => Ok(NodeId(id)),
        _ => bail!("`cluster {command}`: `{n}` is not a node number (1, 2, ...)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> anyhow::Result<Command> {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        parse(&args)
    }

    #[test]
    fn no_arguments_start_three_tokio_nodes() {
        assert_eq!(
            parse_str("").unwrap(),
            Command::Up(UpArgs {
                nodes: 3,
                io: IoChoice::Tokio,
                port_offset: 0,
                keep_data: false,
                serve_flags: vec![],
            })
        );
    }

    #[test]
    fn every_up_flag() {
        assert_eq!(
            parse_str("--nodes 5 --io mixed --port-offset 100 --keep-data -- --log-level debug")
                .unwrap(),
            Command::Up(UpArgs {
                nodes: 5,
                io: IoChoice::Mixed,
                port_offset: 100,
                keep_data: true,
                serve_flags: vec!["--log-level".into(), "debug".into()],
            })
        );
    }

    #[test]
    fn subcommands() {
        assert_eq!(parse_str("status").unwrap(), Command::Status);
        assert_eq!(parse_str("stop").unwrap(), Command::Stop);
        assert_eq!(parse_str("kill 2").unwrap(), Command::Kill(NodeId(2)));
        assert_eq!(parse_str("restart 3").unwrap(), Command::Restart(NodeId(3)));
        assert_eq!(parse_str("--help").unwrap(), Command::Help);
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let err = |line: &str| format!("{:#}", parse_str(line).unwrap_err());
        assert!(err("--nodes 0").contains("from 1 to 9"));
        assert!(err("--nodes 10").contains("from 1 to 9"));
        assert!(err("--nodes").contains("--nodes needs a value"));
        assert!(err("--io both").contains("tokio, sync or mixed"));
        assert!(err("--port-offset -1").contains("--port-offset"));
        assert!(err("--bogus").contains("unknown argument `--bogus`"));
        assert!(err("kill").contains("cluster kill N"));
        assert!(err("kill 0").contains("not a node number"));
        assert!(err("restart 1 2").contains("cluster restart N"));
        assert!(err("status now").contains("takes no arguments"));
    }
}
