//! Configuration: command-line flags, TOML keys and CHRONIK_ environment variables.
//!
//! Every setting of `chronik serve` can come from four places; the first one that
//! has it wins:
//!
//! 1. the command-line flag (`--kafka-listen 127.0.0.1:9092`),
//! 2. the environment variable, `CHRONIK_` + the flag in upper snake case
//!    (`CHRONIK_KAFKA_LISTEN`); an empty variable counts as unset,
//! 3. the TOML file named by `--config` / `CHRONIK_CONFIG`, with the flag in snake
//!    case as key (`kafka_listen = "127.0.0.1:9092"`),
//! 4. the built-in default (which binds 127.0.0.1 only).
//!
//! Values from all four go through the same parser, so a bad value is refused the
//! same way wherever it came from, with the flag's name, the reason and the source
//! in the message (`--kafka-listen: "abc" is not HOST:PORT (from CHRONIK_KAFKA_LISTEN)`).
//!
//! Why `clap` (builder API) and `toml` rather than a hand-rolled parser: both are
//! the well-kept standard crates for the job, and clap gives GNU-style parsing
//! (`--flag v`, `--flag=v`), `--help`, usage errors and "did you mean" suggestions
//! for free. Why clap's builder and not its derive + `env` feature: clap reads the
//! environment of the process itself, which tests cannot inject, and its derive
//! would type-check values before we know where they came from. Here clap only
//! collects raw strings; one table (`FLAGS`) drives clap, the environment, the
//! TOML keys and the defaults, so the four can never drift apart.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use proto_core::raft::NodeId;

/// One setting of `chronik serve`: the single source of its flag, environment
/// variable, TOML key, default and help text.
struct Flag {
    /// The long flag without `--`, in kebab case.
    name: &'static str,
    /// The placeholder `--help` shows for the value.
    value_name: &'static str,
    /// The built-in default, as it would be typed on the command line.
    default: Option<&'static str>,
    /// One line for `--help`.
    help: &'static str,
}

/// Every setting `chronik serve` reads, in `--help` order.
const FLAGS: &[Flag] = &[
    Flag {
        name: "node-id",
        value_name: "ID",
        default: None,
        help: "This node's id, 1..=2147483647 (it is the Kafka broker id); required",
    },
    Flag {
        name: "data-dir",
        value_name: "DIR",
        default: None,
        help: "Directory for logs and Raft state; required",
    },
    Flag {
        name: "kafka-listen",
        value_name: "IP:PORT",
        default: Some("127.0.0.1:9092"),
        help: "Address the Kafka protocol listens on",
    },
    Flag {
        name: "advertised-listener",
        value_name: "HOST:PORT",
        default: None,
        help: "Address clients are told to connect to [default: the --kafka-listen address]",
    },
    Flag {
        name: "raft-listen",
        value_name: "IP:PORT",
        default: Some("127.0.0.1:19092"),
        help: "Address the inter-broker (Raft) transport listens on",
    },
    Flag {
        name: "admin-listen",
        value_name: "IP:PORT",
        default: Some("127.0.0.1:9644"),
        help: "Address the admin HTTP endpoint (/health, /metrics) listens on",
    },
    Flag {
        name: "peers",
        value_name: "ID@HOST:PORT,...",
        default: None,
        help: "Every voter's Raft address, this node included [default: this node alone]",
    },
    Flag {
        name: "io",
        value_name: "tokio|sync",
        default: Some("tokio"),
        help: "Which IO driver runs the node",
    },
    Flag {
        name: "cluster-id",
        value_name: "ID",
        default: Some("chronik"),
        help: "Cluster id; peers with another id are refused",
    },
    Flag {
        name: "auto-create-topics",
        value_name: "BOOL",
        default: Some("true"),
        help: "Create a topic when a client asks for one that does not exist",
    },
    Flag {
        name: "default-partitions",
        value_name: "N",
        default: Some("1"),
        help: "Partitions of an auto-created topic",
    },
    Flag {
        name: "max-frame-bytes",
        value_name: "BYTES",
        default: Some("104857600"),
        help: "Largest Kafka request accepted; larger frames close the connection",
    },
    Flag {
        name: "fsync",
        value_name: "always|never",
        default: Some("always"),
        help: "`never` breaks the acks=all durability promise (a warning is logged at start)",
    },
    Flag {
        name: "segment-bytes",
        value_name: "BYTES",
        default: Some("1073741824"),
        help: "Default segment size of a partition log (topic config segment.bytes)",
    },
    Flag {
        name: "retention-ms",
        value_name: "MS",
        default: Some("604800000"),
        help: "Default time retention, -1 for forever (topic config retention.ms)",
    },
    Flag {
        name: "retention-bytes",
        value_name: "BYTES",
        default: Some("-1"),
        help: "Default size retention per partition, -1 for unlimited (retention.bytes)",
    },
    Flag {
        name: "log-level",
        value_name: "FILTER",
        default: Some("info"),
        help: "Log filter: a level, or TARGET=LEVEL directives separated by commas",
    },
    Flag {
        name: "tick-ms",
        value_name: "MS",
        default: Some("100"),
        help: "Length of one logical tick (Raft timeouts are counted in ticks)",
    },
    Flag {
        name: "rack",
        value_name: "RACK",
        default: None,
        help: "This node's rack, for rack-aware replica placement",
    },
    Flag {
        name: "offsets-partitions",
        value_name: "N",
        default: Some("50"),
        help: "Partitions of __consumer_offsets, fixed when it is first created (Kafka's offsets.topic.num.partitions)",
    },
    Flag {
        name: "group-initial-rebalance-delay-ms",
        value_name: "MS",
        default: Some("3000"),
        help: "How long the first rebalance of an empty group waits for more members (group.initial.rebalance.delay.ms)",
    },
    Flag {
        name: "group-min-session-timeout-ms",
        value_name: "MS",
        default: Some("6000"),
        help: "Shortest session timeout a group member may ask for (group.min.session.timeout.ms)",
    },
    Flag {
        name: "group-max-session-timeout-ms",
        value_name: "MS",
        default: Some("1800000"),
        help: "Longest session timeout a group member may ask for (group.max.session.timeout.ms)",
    },
    Flag {
        name: "record-trace",
        value_name: "FILE",
        default: None,
        help: "Record every input the node steps to FILE, for `cargo xtask replay FILE`; needs an empty --data-dir",
    },
];

/// The flag that names the config file. It has an environment variable but no TOML
/// key: a file cannot name itself.
const CONFIG_FLAG: &str = "config";

/// Largest node id: Kafka carries broker ids as INT32.
const MAX_NODE_ID: u64 = i32::MAX as u64;

/// The smallest `--segment-bytes`, the same floor `segment.bytes` has per topic.
const MIN_SEGMENT_BYTES: u64 = 14;

/// The smallest `--max-frame-bytes`: below this not even ApiVersions fits.
const MIN_FRAME_BYTES: u64 = 1024;

/// The longest `--tick-ms`: a minute-long tick means elections take hours.
const MAX_TICK_MS: u64 = 60_000;

/// Most `__consumer_offsets` partitions: each is a Raft group and a directory.
const MAX_OFFSETS_PARTITIONS: u64 = 1000;

/// The longest group timeout, a day (Kafka's own cap on session timeouts
/// is half an hour by default).
const MAX_SESSION_TIMEOUT_MS: u64 = 86_400_000;

/// The log levels `--log-level` understands.
const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// What `chronik` was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cli {
    /// `chronik serve ...`: run a node.
    Serve(Box<ServeConfig>),
    /// `chronik version`: print the version and exit.
    Version,
}

impl Cli {
    /// Parses a whole command line (`args` starts with the program name, as
    /// `std::env::args()` does), reading environment variables through `env` so
    /// tests need not touch the process environment.
    pub fn parse_from(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Cli, ConfigError> {
        let command = Command::new("chronik")
            .about("A Kafka-compatible streaming broker replicated by Raft")
            .version(env!("CARGO_PKG_VERSION"))
            .subcommand_required(true)
            .subcommand(serve_command())
            .subcommand(Command::new("version").about("Print the version"));
        let matches = command
            .try_get_matches_from(args)
            .map_err(ConfigError::from)?;
        match matches.subcommand() {
            Some(("serve", serve)) => Ok(Cli::Serve(Box::new(ServeConfig::resolve(serve, &env)?))),
            _ => Ok(Cli::Version),
        }
    }
}

/// Which IO driver runs the node (`--io`). Both run the same proto-core state
/// machines; they differ only in how sockets, timers and threads are driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDriver {
    /// The async driver in `io-tokio`.
    Tokio,
    /// The blocking driver in `io-sync` (mio poll loop and worker threads).
    Sync,
}

/// When appended data is fsynced (`--fsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before Raft counts an append as persisted: acks=all means on a quorum's disks.
    Always,
    /// Never explicitly: faster, but a power loss on a quorum can lose
    /// acknowledged writes. [`ServeConfig::warnings`] reports it.
    Never,
}

/// A host name or IP address with a port, as clients or peers dial it. Unlike a
/// listen address it may be a DNS name, which is resolved when dialling.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// A DNS name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> HostPort {
        HostPort {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

/// The validated settings of `chronik serve`: everything a node needs to start.
/// Build it with [`ServeConfig::from_args_env`] (or [`Cli::parse_from`]); the
/// module documentation lists where each value may come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    /// `--node-id`: this node's id, also its Kafka broker id.
    pub node_id: NodeId,
    /// `--data-dir`: where logs and Raft state live.
    pub data_dir: PathBuf,
    /// `--kafka-listen`: the Kafka protocol's listen address.
    pub kafka_listen: SocketAddr,
    /// `--advertised-listener`: the address put in Metadata responses. When it was
    /// defaulted from a `--kafka-listen` with port 0, the driver must substitute
    /// the port it actually bound.
    pub advertised_listener: HostPort,
    /// `--raft-listen`: the inter-broker transport's listen address.
    pub raft_listen: SocketAddr,
    /// `--admin-listen`: the admin HTTP endpoint's listen address.
    pub admin_listen: SocketAddr,
    /// `--peers`: every voter and its Raft address, this node included.
    pub peers: BTreeMap<NodeId, HostPort>,
    /// `--io`: which driver runs the node.
    pub io: IoDriver,
    /// `--config`: the TOML file that was read, if any (for the start-up log).
    pub config_file: Option<PathBuf>,
    /// `--cluster-id`: checked in the inter-broker handshake.
    pub cluster_id: String,
    /// `--auto-create-topics`: create unknown topics on Metadata/Produce.
    pub auto_create_topics: bool,
    /// `--default-partitions`: partitions of an auto-created topic.
    pub default_partitions: i32,
    /// `--max-frame-bytes`: the largest Kafka request frame accepted.
    pub max_frame_bytes: u32,
    /// `--fsync`: the durability policy of appends.
    pub fsync: FsyncPolicy,
    /// `--segment-bytes`: default `segment.bytes` of new topics.
    pub segment_bytes: u64,
    /// `--retention-ms`: default `retention.ms` of new topics (`None`: forever).
    pub retention_ms: Option<u64>,
    /// `--retention-bytes`: default `retention.bytes` of new topics (`None`: unlimited).
    pub retention_bytes: Option<u64>,
    /// `--log-level`: the tracing filter (a level or `target=level` directives).
    pub log_level: String,
    /// `--tick-ms`: the length of one logical tick.
    pub tick: Duration,
    /// `--rack`: this node's rack, if racks are used.
    pub rack: Option<String>,
    /// `--offsets-partitions`: partitions of `__consumer_offsets`.
    pub offsets_partitions: i32,
    /// `--group-initial-rebalance-delay-ms`: the first rebalance's wait.
    pub group_initial_rebalance_delay: Duration,
    /// `--group-min-session-timeout-ms`: the shortest member session timeout.
    pub group_min_session_timeout_ms: i32,
    /// `--group-max-session-timeout-ms`: the longest member session timeout.
    pub group_max_session_timeout_ms: i32,
    /// `--record-trace`: the trace file to record into, if any.
    pub record_trace: Option<PathBuf>,
}

impl ServeConfig {
    /// Parses the arguments of `chronik serve` (without the program name and
    /// without `serve`), reading environment variables through `env` and the TOML
    /// file `--config` names, and validates the result.
    pub fn from_args_env(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ServeConfig, ConfigError> {
        let matches = serve_command()
            .no_binary_name(true)
            .try_get_matches_from(args)
            .map_err(ConfigError::from)?;
        ServeConfig::resolve(&matches, &env)
    }

    /// Refuses a session timeout range that no member could satisfy.
    fn check_group_timeouts(self) -> Result<ServeConfig, ConfigError> {
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(ConfigError::Invalid {
                flag: "group-min-session-timeout-ms",
                reason: format!(
                    "{} is above --group-max-session-timeout-ms {}",
                    self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
                ),
            });
        }
        Ok(self)
    }

    /// Things an operator should be warned about at start. They are returned, not
    /// logged, because the logger is set up from this very configuration.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.fsync == FsyncPolicy::Never {
            warnings.push(
                "--fsync never: appends are not fsynced, so acks=all no longer means \
                 durable; a power loss on a quorum can lose acknowledged writes"
                    .to_string(),
            );
        }
        warnings
    }

    /// Layers flag > env > file > default over the parsed command line and
    /// validates every value.
    fn resolve(
        matches: &ArgMatches,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServeConfig, ConfigError> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let config_file = matches
            .get_one::<String>(CONFIG_FLAG)
            .cloned()
            .or_else(|| env(&env_name(CONFIG_FLAG)))
            .map(PathBuf::from);
        let file = match &config_file {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let sources = Sources {
            matches,
            env: &env,
            file: file.as_ref().zip(config_file.as_ref()),
        };

        let node_id = sources.required("node-id", |s| {
            let id = parse_int::<u64>(s)?;
            check_node_id(id).map(NodeId)
        })?;
        let data_dir = sources.required("data-dir", |s| match s {
            "" => Err("must not be empty".to_string()),
            s => Ok(PathBuf::from(s)),
        })?;
        let kafka_listen = sources.required("kafka-listen", parse_listen)?;
        let raft_listen = sources.required("raft-listen", parse_listen)?;
        let admin_listen = sources.required("admin-listen", parse_listen)?;
        let advertised_listener = sources
            .optional("advertised-listener", |s| {
                let hp = parse_host_port(s)?;
                if hp.port == 0 {
                    return Err(format!("{s:?}: port 0 cannot be dialled"));
                }
                Ok(hp)
            })?
            .map_or_else(|| advertise_default(kafka_listen), Ok)?;
        let peers = match sources.optional("peers", |s| parse_peers(s, node_id))? {
            Some(peers) => peers,
            None => BTreeMap::from([(node_id, HostPort::from(raft_listen))]),
        };
        check_distinct(&[
            ("--kafka-listen", kafka_listen),
            ("--raft-listen", raft_listen),
            ("--admin-listen", admin_listen),
        ])?;

        Ok(ServeConfig {
            node_id,
            data_dir,
            kafka_listen,
            advertised_listener,
            raft_listen,
            admin_listen,
            peers,
            io: sources.required("io", |s| match s {
                "tokio" => Ok(IoDriver::Tokio),
                "sync" => Ok(IoDriver::Sync),
                _ => Err(format!("{s:?} is not one of tokio, sync")),
            })?,
            config_file: config_file.clone(),
            cluster_id: sources.required("cluster-id", parse_cluster_id)?,
            auto_create_topics: sources.required("auto-create-topics", parse_bool)?,
            default_partitions: sources.required("default-partitions", |s| {
                parse_range(s, 1, i32::MAX as u64).map(|n| n as i32)
            })?,
            max_frame_bytes: sources.required("max-frame-bytes", |s| {
                parse_range(s, MIN_FRAME_BYTES, i32::MAX as u64).map(|n| n as u32)
            })?,
            fsync: sources.required("fsync", |s| match s {
                "always" => Ok(FsyncPolicy::Always),
                "never" => Ok(FsyncPolicy::Never),
                _ => Err(format!("{s:?} is not one of always, never")),
            })?,
            segment_bytes: sources.required("segment-bytes", |s| {
                parse_range(s, MIN_SEGMENT_BYTES, i64::MAX as u64)
            })?,
            retention_ms: sources.required("retention-ms", parse_limit)?,
            retention_bytes: sources.required("retention-bytes", parse_limit)?,
            log_level: sources.required("log-level", parse_log_level)?,
            tick: sources.required("tick-ms", |s| {
                parse_range(s, 1, MAX_TICK_MS).map(Duration::from_millis)
            })?,
            rack: sources.optional("rack", parse_rack)?,
            offsets_partitions: sources.required("offsets-partitions", |s| {
                parse_range(s, 1, MAX_OFFSETS_PARTITIONS).map(|n| n as i32)
            })?,
            group_initial_rebalance_delay: sources
                .required("group-initial-rebalance-delay-ms", |s| {
                    parse_range(s, 0, MAX_SESSION_TIMEOUT_MS).map(Duration::from_millis)
                })?,
            group_min_session_timeout_ms: sources
                .required("group-min-session-timeout-ms", |s| {
                    parse_range(s, 1, MAX_SESSION_TIMEOUT_MS).map(|n| n as i32)
                })?,
            group_max_session_timeout_ms: sources
                .required("group-max-session-timeout-ms", |s| {
                    parse_range(s, 1, MAX_SESSION_TIMEOUT_MS).map(|n| n as i32)
                })?,
            record_trace: sources.optional("record-trace", |s| match s {
                "" => Err("must not be empty".to_string()),
                s => Ok(PathBuf::from(s)),
            })?,
        })
        .and_then(ServeConfig::check_group_timeouts)
    }
}

/// Why `chronik` refused to start (or, for [`ConfigError::Help`], why it stops
/// before starting).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--help` or `--version` was asked for: not a failure. Print the text to
    /// stdout and exit 0.
    #[error("{0}")]
    Help(String),
    /// The command line cannot be parsed (unknown flag, missing value, no
    /// subcommand); the text is clap's message with the usage line.
    #[error("{0}")]
    Usage(String),
    /// A setting has a value that cannot be used.
    #[error("--{flag}: {reason}")]
    Invalid {
        /// The flag's name without `--`, whichever source the value came from.
        flag: &'static str,
        /// What is wrong, with the value and where it came from.
        reason: String,
    },
    /// The config file cannot be read or parsed, or holds an unknown key.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file `--config` named.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl From<clap::Error> for ConfigError {
    fn from(e: clap::Error) -> ConfigError {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                ConfigError::Help(e.render().to_string())
            }
            _ => ConfigError::Usage(e.render().to_string()),
        }
    }
}

/// The `serve` subcommand, built from [`FLAGS`].
fn serve_command() -> Command {
    let mut command = Command::new("serve").about("Run a Chronik node").arg(
        Arg::new(CONFIG_FLAG)
            .long(CONFIG_FLAG)
            .value_name("FILE")
            .help(format!(
                "TOML file with settings (keys are flag names in snake case) [env: {}]",
                env_name(CONFIG_FLAG)
            )),
    );
    for flag in FLAGS {
        let default = flag
            .default
            .map(|d| format!(" [default: {d}]"))
            .unwrap_or_default();
        let mut arg = Arg::new(flag.name)
            .long(flag.name)
            .value_name(flag.value_name)
            .action(ArgAction::Set)
            // `--retention-ms -1` is a value, not a flag.
            .allow_negative_numbers(true)
            .help(format!(
                "{}{default} [env: {}]",
                flag.help,
                env_name(flag.name)
            ));
        if flag.value_name == "BOOL" {
            // A bare `--auto-create-topics` means true; `--auto-create-topics false`
            // and `--auto-create-topics=false` both work (there are no positionals).
            arg = arg.num_args(0..=1).default_missing_value("true");
        }
        command = command.arg(arg);
    }
    command
}

/// `CHRONIK_` + the flag in upper snake case.
fn env_name(flag: &str) -> String {
    format!("CHRONIK_{}", flag.replace('-', "_").to_uppercase())
}

/// The flag in snake case: its key in the TOML file.
fn toml_key(flag: &str) -> String {
    flag.replace('-', "_")
}

/// Where a raw value came from, for error messages.
enum Source {
    Flag,
    Env(String),
    File(PathBuf, String),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => Ok(()),
            Source::Env(var) => write!(f, " (from {var})"),
            Source::File(path, key) => write!(f, " (from {} key {key})", path.display()),
            Source::Default => write!(f, " (the default)"),
        }
    }
}

/// The four layers a setting is looked up in.
struct Sources<'a> {
    matches: &'a ArgMatches,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<(&'a BTreeMap<String, String>, &'a PathBuf)>,
}

impl Sources<'_> {
    /// The raw value of `flag` from the first layer that has one.
    fn raw(&self, flag: &'static str) -> Option<(String, Source)> {
        if let Some(v) = self.matches.get_one::<String>(flag) {
            return Some((v.clone(), Source::Flag));
        }
        let var = env_name(flag);
        if let Some(v) = (self.env)(&var) {
            return Some((v, Source::Env(var)));
        }
        if let Some((table, path)) = self.file {
            let key = toml_key(flag);
            if let Some(v) = table.get(&key) {
                return Some((v.clone(), Source::File(path.clone(), key)));
            }
        }
        let default = FLAGS.iter().find(|f| f.name == flag)?.default?;
        Some((default.to_string(), Source::Default))
    }

    /// The parsed value of `flag`, if any layer has one.
    fn optional<T>(
        &self,
        flag: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((raw, source)) = self.raw(flag) else {
            return Ok(None);
        };
        parse(raw.trim())
            .map(Some)
            .map_err(|reason| ConfigError::Invalid {
                flag,
                reason: format!("{reason}{source}"),
            })
    }

    /// The parsed value of `flag`, refusing to start without one.
    fn required<T>(
        &self,
        flag: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.optional(flag, parse)?
            .ok_or_else(|| ConfigError::Invalid {
                flag,
                reason: format!(
                    "required: set --{flag}, {} or `{}` in the config file",
                    env_name(flag),
                    toml_key(flag)
                ),
            })
    }
}

/// Reads the TOML file into raw strings per key, refusing unknown keys and values
/// that are neither scalars nor (for `peers`) arrays of strings.
fn read_file(path: &PathBuf) -> Result<BTreeMap<String, String>, ConfigError> {
    let err = |reason: String| ConfigError::File {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| err(format!("not valid TOML: {e}")))?;
    let mut raw = BTreeMap::new();
    for (key, value) in table {
        if !FLAGS.iter().any(|f| toml_key(f.name) == key) {
            return Err(err(format!("unknown key `{key}`")));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let strings: Option<Vec<String>> = items
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                match strings {
                    Some(strings) if key == "peers" => strings.join(","),
                    _ => return Err(err(format!("key `{key}`: expected a single value"))),
                }
            }
            other => {
                return Err(err(format!(
                    "key `{key}`: expected a string, integer or boolean, not {}",
                    other.type_str()
                )))
            }
        };
        raw.insert(key, text);
    }
    Ok(raw)
}

/// An integer, with a message that quotes the value.
fn parse_int<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a whole number in range"))
}

/// An integer within `min..=max`.
fn parse_range(s: &str, min: u64, max: u64) -> Result<u64, String> {
    if s.starts_with('-') {
        return Err(format!("must be ≥ {min}, not {s}"));
    }
    let n: u64 = parse_int(s)?;
    if n < min {
        return Err(format!("must be ≥ {min}, not {n}"));
    }
    if n > max {
        return Err(format!("must be ≤ {max}, not {n}"));
    }
    Ok(n)
}

/// A retention limit: -1 for none, otherwise at least 1.
fn parse_limit(s: &str) -> Result<Option<u64>, String> {
    if s == "-1" {
        return Ok(None);
    }
    parse_range(s, 1, i64::MAX as u64)
        .map(Some)
        .map_err(|e| format!("{e} (use -1 for no limit)"))
}

/// Node ids start at 1 and must fit Kafka's INT32 broker id.
fn check_node_id(id: u64) -> Result<u64, String> {
    match id {
        0 => Err("must be ≥ 1".to_string()),
        id if id > MAX_NODE_ID => Err(format!("must be ≤ {MAX_NODE_ID}, not {id}")),
        id => Ok(id),
    }
}

/// `true`/`false` and the usual spellings of them.
fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not true or false")),
    }
}

/// `HOST:PORT` where HOST is a DNS name, an IPv4 address or a bracketed IPv6
/// address.
fn parse_host_port(s: &str) -> Result<HostPort, String> {
    let bad = || format!("{s:?} is not HOST:PORT");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(bad)?;
        inner.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        inner.to_string()
    } else {
        let is_name = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !is_name {
            return Err(bad());
        }
        host.to_string()
    };
    Ok(HostPort { host, port })
}

/// A listen address: an IP (or `localhost`) and a port; port 0 asks the OS for one.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let hp = parse_host_port(s)?;
    if hp.host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), hp.port));
    }
    Err(format!(
        "{s:?}: a listen address needs an IP address (or localhost), not a host name"
    ))
}

/// `--advertised-listener` defaults to the Kafka listen address, which only works
/// if that is an address clients can dial.
fn advertise_default(kafka_listen: SocketAddr) -> Result<HostPort, ConfigError> {
    if kafka_listen.ip().is_unspecified() {
        return Err(ConfigError::Invalid {
            flag: "advertised-listener",
            reason: format!(
                "required when --kafka-listen is {kafka_listen}: clients cannot dial {}",
                kafka_listen.ip()
            ),
        });
    }
    Ok(HostPort::from(kafka_listen))
}

/// `ID@HOST:PORT,...`: distinct ids and addresses, this node's id exactly once.
fn parse_peers(s: &str, me: NodeId) -> Result<BTreeMap<NodeId, HostPort>, String> {
    let mut peers = BTreeMap::new();
    for entry in s.split(',').map(str::trim) {
        let (id, addr) = entry
            .split_once('@')
            .ok_or_else(|| format!("{entry:?} is not ID@HOST:PORT"))?;
        let id = parse_int::<u64>(id)
            .and_then(check_node_id)
            .map_err(|e| format!("{entry:?}: node id {e}"))?;
        let addr = parse_host_port(addr).map_err(|e| format!("{entry:?}: {e}"))?;
        if addr.port == 0 {
            return Err(format!("{entry:?}: port 0 cannot be dialled"));
        }
        if peers.values().any(|a| *a == addr) {
            return Err(format!("{addr} is listed twice"));
        }
        if peers.insert(NodeId(id), addr).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    if !peers.contains_key(&me) {
        return Err(format!("must include this node (--node-id {me})"));
    }
    Ok(peers)
}

/// The three listeners must not collide (port 0 is always distinct).
fn check_distinct(listeners: &[(&'static str, SocketAddr)]) -> Result<(), ConfigError> {
    for (i, (name, addr)) in listeners.iter().enumerate() {
        if addr.port() == 0 {
            continue;
        }
        if let Some((other, _)) = listeners[..i].iter().find(|(_, a)| a == addr) {
            return Err(ConfigError::Invalid {
                flag: &name[2..],
                reason: format!("{addr} is already used by {other}"),
            });
        }
    }
    Ok(())
}

/// Cluster ids travel in handshakes and logs: a short plain token.
fn parse_cluster_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} must be 1..=64 characters of A-Z, a-z, 0-9, '-', '_', '.'"
        ))
    }
}

/// A level, or comma-separated `target=level` directives (tracing's `EnvFilter`
/// syntax without spans or fields).
fn parse_log_level(s: &str) -> Result<String, String> {
    for directive in s.split(',') {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LOG_LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} is not a level ({}) or TARGET=LEVEL",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    Ok(s.to_string())
}

/// A rack name: anything printable, not empty.
fn parse_rack(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
        return Err(format!("{s:?} must be 1..=255 printable characters"));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_a_distinct_name_and_env_var() {
        let mut names: Vec<_> = FLAGS.iter().map(|f| f.name).collect();
        names.push(CONFIG_FLAG);
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
        assert_eq!(env_name("max-frame-bytes"), "CHRONIK_MAX_FRAME_BYTES");
        assert_eq!(toml_key("max-frame-bytes"), "max_frame_bytes");
    }

    #[test]
    fn every_default_parses() {
        // The defaults go through the same parsers as user values: a typo in the
        // table would otherwise only show when someone omits the flag.
        let config = ServeConfig::from_args_env(
            ["--node-id", "1", "--data-dir", "d"].map(String::from),
            |_| None,
        )
        .expect("defaults are valid");
        assert_eq!(config.kafka_listen.to_string(), "127.0.0.1:9092");
        assert!(FLAGS.iter().filter(|f| f.default.is_some()).count() >= 14);
    }

    #[test]
    fn host_port_parses_names_ipv4_and_bracketed_ipv6() {
        assert_eq!(
            parse_host_port("kafka-1.example.com:9092").unwrap(),
            HostPort {
                host: "kafka-1.example.com".into(),
                port: 9092
            }
        );
        let v6 = parse_host_port("[::1]:9092").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:9092");
        for bad in [
            "abc",
            ":9092",
            "host:",
            "host:70000",
            "[::1:9092",
            "a b:1",
            "-a:1",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn log_level_accepts_levels_and_directives_only() {
        assert!(parse_log_level("debug").is_ok());
        assert!(parse_log_level("info,broker=trace").is_ok());
        assert!(parse_log_level("verbose").is_err());
        assert!(parse_log_level("broker=loud").is_err());
    }
}
