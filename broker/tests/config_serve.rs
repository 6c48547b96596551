//! `chronik serve` configuration: defaults, the flag > env > file > default
//! precedence, and the errors a bad value gets. The environment is injected, so
//! these tests never touch the process environment.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use broker::config::{Cli, ConfigError, FsyncPolicy, HostPort, IoDriver, ServeConfig};
use proto_core::raft::NodeId;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

/// The required flags plus `extra`.
fn serve(extra: &[&str]) -> Result<ServeConfig, ConfigError> {
    serve_env(extra, no_env)
}

fn serve_env(
    extra: &[&str],
    env: impl Fn(&str) -> Option<String>,
) -> Result<ServeConfig, ConfigError> {
    let mut list = vec!["--node-id", "1", "--data-dir", "/var/lib/chronik"];
    list.extend_from_slice(extra);
    ServeConfig::from_args_env(args(&list), env)
}

/// The error message of a refused configuration.
fn refused(result: Result<ServeConfig, ConfigError>) -> String {
    match result {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn write_toml(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chronik.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.to_str().unwrap().to_string())
}

#[test]
fn defaults_bind_loopback_and_match_the_documented_values() {
    let c = serve(&[]).unwrap();
    assert_eq!(c.node_id, NodeId(1));
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/chronik"));
    assert_eq!(c.kafka_listen, addr("127.0.0.1:9092"));
    assert_eq!(c.raft_listen, addr("127.0.0.1:19092"));
    assert_eq!(c.admin_listen, addr("127.0.0.1:9644"));
    assert_eq!(c.advertised_listener.to_string(), "127.0.0.1:9092");
    assert_eq!(
        c.peers,
        BTreeMap::from([(NodeId(1), HostPort::from(addr("127.0.0.1:19092")))])
    );
    assert_eq!(c.io, IoDriver::Tokio);
    assert_eq!(c.config_file, None);
    assert_eq!(c.cluster_id, "chronik");
    assert!(c.auto_create_topics);
    assert_eq!(c.default_partitions, 1);
    assert_eq!(c.max_frame_bytes, 104_857_600);
    assert_eq!(c.fsync, FsyncPolicy::Always);
    assert_eq!(c.segment_bytes, 1_073_741_824);
    assert_eq!(c.retention_ms, Some(604_800_000));
    assert_eq!(c.retention_bytes, None);
    assert_eq!(c.log_level, "info");
    assert_eq!(c.tick, Duration::from_millis(100));
    assert_eq!(c.rack, None);
    assert_eq!(c.record_trace, None);
    assert!(c.warnings().is_empty());
}

#[test]
fn every_flag_is_read() {
    let c = serve(&[
        "--kafka-listen",
        "127.0.0.2:9093",
        "--advertised-listener",
        "kafka-1.example.com:19093",
        "--raft-listen=127.0.0.2:19093",
        "--admin-listen",
        "[::1]:9645",
        "--peers",
        "1@127.0.0.2:19093, 2@kafka-2.example.com:19093,3@[::1]:19094",
        "--io",
        "sync",
        "--cluster-id",
        "prod-eu_1",
        "--auto-create-topics=false",
        "--default-partitions",
        "6",
        "--max-frame-bytes",
        "2048",
        "--fsync",
        "never",
        "--segment-bytes",
        "1048576",
        "--retention-ms",
        "-1",
        "--retention-bytes",
        "5000000",
        "--log-level",
        "warn,broker=debug",
        "--tick-ms",
        "50",
        "--rack",
        "eu-west-1a",
        "--record-trace",
        "/tmp/node.trace",
    ])
    .unwrap();
    assert_eq!(c.kafka_listen, addr("127.0.0.2:9093"));
    assert_eq!(
        c.advertised_listener,
        HostPort {
            host: "kafka-1.example.com".into(),
            port: 19093
        }
    );
    assert_eq!(c.raft_listen, addr("127.0.0.2:19093"));
    assert_eq!(c.admin_listen, addr("[::1]:9645"));
    let peers: Vec<String> = c.peers.iter().map(|(id, a)| format!("{id}@{a}")).collect();
    assert_eq!(
        peers,
        [
            "1@127.0.0.2:19093",
            "2@kafka-2.example.com:19093",
            "3@[::1]:19094"
        ]
    );
    assert_eq!(c.io, IoDriver::Sync);
    assert_eq!(c.cluster_id, "prod-eu_1");
    assert!(!c.auto_create_topics);
    assert_eq!(c.default_partitions, 6);
    assert_eq!(c.max_frame_bytes, 2048);
    assert_eq!(c.fsync, FsyncPolicy::Never);
    assert_eq!(c.segment_bytes, 1_048_576);
    assert_eq!(c.retention_ms, None);
    assert_eq!(c.retention_bytes, Some(5_000_000));
    assert_eq!(c.log_level, "warn,broker=debug");
    assert_eq!(c.tick, Duration::from_millis(50));
    assert_eq!(c.rack.as_deref(), Some("eu-west-1a"));
    assert_eq!(c.record_trace, Some(PathBuf::from("/tmp/node.trace")));
}

#[test]
fn fsync_never_comes_with_a_warning() {
    let c = serve(&["--fsync", "never"]).unwrap();
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("acks=all"), "{warnings:?}");
}

#[test]
fn a_bare_boolean_flag_means_true() {
    let env = env_of(&[("CHRONIK_AUTO_CREATE_TOPICS", "false")]);
    let c = serve_env(&["--auto-create-topics"], env).unwrap();
    assert!(c.auto_create_topics);
    let c = serve(&["--auto-create-topics", "--io", "sync"]).unwrap();
    assert!(
        c.auto_create_topics,
        "a following flag is not taken as the value"
    );
    assert_eq!(c.io, IoDriver::Sync);
    let c = serve(&["--auto-create-topics", "false"]).unwrap();
    assert!(!c.auto_create_topics, "the value may follow after a space");
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let (_dir, path) = write_toml(
        r#"
        kafka_listen = "127.0.0.1:1001"
        raft_listen = "127.0.0.1:1002"
        admin_listen = "127.0.0.1:1003"
        default_partitions = 4
        "#,
    );
    let env = env_of(&[
        ("CHRONIK_KAFKA_LISTEN", "127.0.0.1:2001"),
        ("CHRONIK_RAFT_LISTEN", "127.0.0.1:2002"),
    ]);
    let c = serve_env(
        &["--config", &path, "--kafka-listen", "127.0.0.1:3001"],
        env,
    )
    .unwrap();
    assert_eq!(
        c.kafka_listen,
        addr("127.0.0.1:3001"),
        "flag beats env and file"
    );
    assert_eq!(c.raft_listen, addr("127.0.0.1:2002"), "env beats file");
    assert_eq!(c.admin_listen, addr("127.0.0.1:1003"), "file beats default");
    assert_eq!(c.default_partitions, 4, "TOML integers are read");
    assert_eq!(c.tick, Duration::from_millis(100), "default when unset");
    assert_eq!(c.config_file, Some(PathBuf::from(&path)));
}

#[test]
fn required_values_can_come_from_env_or_file() {
    let env = env_of(&[("CHRONIK_NODE_ID", "7"), ("CHRONIK_DATA_DIR", "/data")]);
    let c = ServeConfig::from_args_env(Vec::<String>::new(), env).unwrap();
    assert_eq!(c.node_id, NodeId(7));
    assert_eq!(c.data_dir, PathBuf::from("/data"));

    let (_dir, path) = write_toml("node_id = 3\ndata_dir = \"/srv\"\nauto_create_topics = false\n");
    let env = env_of(&[("CHRONIK_CONFIG", path.as_str())]);
    let c = ServeConfig::from_args_env(Vec::<String>::new(), env).unwrap();
    assert_eq!(c.node_id, NodeId(3));
    assert_eq!(c.data_dir, PathBuf::from("/srv"));
    assert!(!c.auto_create_topics, "TOML booleans are read");
}

#[test]
fn empty_env_vars_count_as_unset() {
    let env = env_of(&[("CHRONIK_RACK", ""), ("CHRONIK_KAFKA_LISTEN", "")]);
    let c = serve_env(&[], env).unwrap();
    assert_eq!(c.rack, None);
    assert_eq!(c.kafka_listen, addr("127.0.0.1:9092"));
}

#[test]
fn peers_can_be_a_toml_array() {
    let (_dir, path) = write_toml(
        "node_id = 2\ndata_dir = \"d\"\npeers = [\"1@10.0.0.1:19092\", \"2@10.0.0.2:19092\"]\n",
    );
    let c = ServeConfig::from_args_env(args(&["--config", &path]), no_env).unwrap();
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[&NodeId(2)].to_string(), "10.0.0.2:19092");
}

#[test]
fn missing_required_settings_are_named() {
    let e = refused(ServeConfig::from_args_env(
        args(&["--data-dir", "d"]),
        no_env,
    ));
    assert!(e.starts_with("--node-id: required"), "{e}");
    assert!(
        e.contains("CHRONIK_NODE_ID") && e.contains("node_id"),
        "{e}"
    );
    let e = refused(ServeConfig::from_args_env(
        args(&["--node-id", "1"]),
        no_env,
    ));
    assert!(e.starts_with("--data-dir: required"), "{e}");
    let e = refused(ServeConfig::from_args_env(
        args(&["--node-id", "1", "--data-dir", ""]),
        no_env,
    ));
    assert!(e.starts_with("--data-dir: must not be empty"), "{e}");
}

#[test]
fn bad_values_name_the_flag_and_the_reason() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--kafka-listen", "abc"],
            r#"--kafka-listen: "abc" is not HOST:PORT"#,
        ),
        (&["--kafka-listen", "127.0.0.1:99999"], "--kafka-listen: "),
        (
            &["--raft-listen", "example.com:1"],
            "--raft-listen: \"example.com:1\": a listen address needs an IP",
        ),
        (&["--admin-listen", "127.0.0.1"], "--admin-listen: "),
        (
            &["--io", "epoll"],
            r#"--io: "epoll" is not one of tokio, sync"#,
        ),
        (&["--fsync", "sometimes"], "--fsync: "),
        (
            &["--default-partitions", "0"],
            "--default-partitions: must be ≥ 1",
        ),
        (
            &["--default-partitions", "2147483648"],
            "--default-partitions: must be ≤ 2147483647",
        ),
        (
            &["--max-frame-bytes", "12"],
            "--max-frame-bytes: must be ≥ 1024",
        ),
        (&["--segment-bytes", "-5"], "--segment-bytes: must be ≥ 14"),
        (
            &["--retention-ms", "0"],
            "--retention-ms: must be ≥ 1, not 0 (use -1 for no limit)",
        ),
        (&["--retention-bytes", "lots"], "--retention-bytes: "),
        (&["--tick-ms", "0"], "--tick-ms: must be ≥ 1"),
        (&["--tick-ms", "3600000"], "--tick-ms: must be ≤ 60000"),
        (
            &["--log-level", "chatty"],
            "--log-level: \"chatty\" is not a level",
        ),
        (&["--cluster-id", "a b"], "--cluster-id: "),
        (
            &["--auto-create-topics=maybe"],
            "--auto-create-topics: \"maybe\" is not true or false",
        ),
        (&["--rack", "\u{7}"], "--rack: "),
        (
            &["--advertised-listener", "host:0"],
            "--advertised-listener: \"host:0\": port 0",
        ),
    ];
    for (extra, expected) in cases {
        let e = refused(serve(extra));
        assert!(e.starts_with(expected), "{extra:?}: {e}");
    }
}

#[test]
fn node_id_must_be_a_positive_int32() {
    for (id, expected) in [
        ("0", "--node-id: must be ≥ 1"),
        ("2147483648", "--node-id: must be ≤ 2147483647"),
        ("-3", "--node-id: \"-3\" is not a whole number"),
        ("one", "--node-id: \"one\" is not a whole number"),
    ] {
        let e = refused(ServeConfig::from_args_env(
            args(&["--node-id", id, "--data-dir", "d"]),
            no_env,
        ));
        assert!(e.starts_with(expected), "{id}: {e}");
    }
}

#[test]
fn peers_must_parse_and_include_this_node_once() {
    let cases: &[(&str, &str)] = &[
        (
            "2@127.0.0.1:19092",
            "--peers: must include this node (--node-id 1)",
        ),
        (
            "1@127.0.0.1:19092,1@127.0.0.1:19093",
            "--peers: node 1 is listed twice",
        ),
        (
            "1@127.0.0.1:19092,2@127.0.0.1:19092",
            "--peers: 127.0.0.1:19092 is listed twice",
        ),
        (
            "1:127.0.0.1:19092",
            r#"--peers: "1:127.0.0.1:19092" is not ID@HOST:PORT"#,
        ),
        (
            "0@127.0.0.1:19092",
            r#"--peers: "0@127.0.0.1:19092": node id must be ≥ 1"#,
        ),
        (
            "1@127.0.0.1",
            r#"--peers: "1@127.0.0.1": "127.0.0.1" is not HOST:PORT"#,
        ),
        ("1@127.0.0.1:0", "--peers: \"1@127.0.0.1:0\": port 0"),
        ("1@127.0.0.1:19092,", r#"--peers: "" is not ID@HOST:PORT"#),
    ];
    for (peers, expected) in cases {
        let e = refused(serve(&["--peers", peers]));
        assert!(e.starts_with(expected), "{peers}: {e}");
    }
}

#[test]
fn errors_say_where_a_bad_value_came_from() {
    let env = env_of(&[("CHRONIK_KAFKA_LISTEN", "abc")]);
    let e = refused(serve_env(&[], env));
    assert_eq!(
        e,
        r#"--kafka-listen: "abc" is not HOST:PORT (from CHRONIK_KAFKA_LISTEN)"#
    );

    let (_dir, path) = write_toml("tick_ms = 0\n");
    let e = refused(serve(&["--config", &path]));
    assert!(e.starts_with("--tick-ms: must be ≥ 1, not 0 (from "), "{e}");
    assert!(e.ends_with("chronik.toml key tick_ms)"), "{e}");
}

#[test]
fn listeners_must_not_collide() {
    let e = refused(serve(&["--raft-listen", "127.0.0.1:9092"]));
    assert_eq!(
        e,
        "--raft-listen: 127.0.0.1:9092 is already used by --kafka-listen"
    );
    // Port 0 lets the OS pick, so it never collides.
    let c = serve(&[
        "--kafka-listen",
        "127.0.0.1:0",
        "--raft-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .unwrap();
    assert_eq!(
        c.advertised_listener.port, 0,
        "the driver substitutes the bound port"
    );
}

#[test]
fn wildcard_kafka_listen_needs_an_advertised_listener() {
    let e = refused(serve(&["--kafka-listen", "0.0.0.0:9092"]));
    assert!(
        e.starts_with("--advertised-listener: required when --kafka-listen is 0.0.0.0:9092"),
        "{e}"
    );
    let c = serve(&[
        "--kafka-listen",
        "0.0.0.0:9092",
        "--advertised-listener",
        "10.1.2.3:9092",
    ])
    .unwrap();
    assert_eq!(c.advertised_listener.to_string(), "10.1.2.3:9092");
}

#[test]
fn localhost_is_a_valid_listen_host() {
    let c = serve(&["--admin-listen", "localhost:9700"]).unwrap();
    assert_eq!(c.admin_listen, addr("127.0.0.1:9700"));
}

#[test]
fn file_errors_name_the_file_and_the_key() {
    let (_dir, path) = write_toml("node_id = 1\nkafka_listn = \"127.0.0.1:1\"\n");
    let e = refused(serve(&["--config", &path]));
    assert!(
        e.ends_with("chronik.toml: unknown key `kafka_listn`"),
        "{e}"
    );
    assert!(e.starts_with(&path), "{e}");

    let (_dir, path) = write_toml("config = \"other.toml\"\n");
    let e = refused(serve(&["--config", &path]));
    assert!(e.ends_with("unknown key `config`"), "{e}");

    let (_dir, path) = write_toml("node_id = [1, 2]\n");
    let e = refused(serve(&["--config", &path]));
    assert!(e.ends_with("key `node_id`: expected a single value"), "{e}");

    let (_dir, path) = write_toml("tick_ms = 1.5\n");
    let e = refused(serve(&["--config", &path]));
    assert!(
        e.contains("key `tick_ms`: expected a string, integer or boolean"),
        "{e}"
    );

    let (_dir, path) = write_toml("node_id = \n");
    let e = refused(serve(&["--config", &path]));
    assert!(e.contains("not valid TOML"), "{e}");

    let e = refused(serve(&["--config", "/nonexistent/chronik.toml"]));
    assert!(
        e.starts_with("/nonexistent/chronik.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn unknown_flags_are_usage_errors_with_a_suggestion() {
    match serve(&["--kafka-listn", "127.0.0.1:1"]) {
        Err(ConfigError::Usage(text)) => {
            assert!(text.contains("--kafka-listn"), "{text}");
            assert!(
                text.contains("--kafka-listen"),
                "suggests the right flag: {text}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cli_dispatches_serve_version_and_help() {
    let cli = Cli::parse_from(
        args(&["chronik", "serve", "--node-id", "4", "--data-dir", "d"]),
        no_env,
    )
    .unwrap();
    match cli {
        Cli::Serve(config) => assert_eq!(config.node_id, NodeId(4)),
        Cli::Version => panic!("parsed as version"),
    }
    assert_eq!(
        Cli::parse_from(args(&["chronik", "version"]), no_env).unwrap(),
        Cli::Version
    );

    match Cli::parse_from(args(&["chronik", "serve", "--help"]), no_env) {
        Err(ConfigError::Help(text)) => {
            assert!(text.contains("--kafka-listen"), "{text}");
            assert!(
                text.contains("CHRONIK_KAFKA_LISTEN"),
                "help names env vars: {text}"
            );
            assert!(text.contains("[default: 127.0.0.1:9092]"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    match Cli::parse_from(args(&["chronik", "--version"]), no_env) {
        Err(ConfigError::Help(text)) => assert!(text.contains(env!("CARGO_PKG_VERSION"))),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Cli::parse_from(args(&["chronik"]), no_env),
        Err(ConfigError::Usage(_))
    ));
}
