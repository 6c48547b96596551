//! `chronik serve`: start-up and shutdown of one node.
//!
//! Order matters and each step fails with a message naming what went wrong:
//! logging, the data directory (locked against a second process), storage
//! recovery, the listeners (bound to exactly the addresses given), then the
//! driver until SIGINT or SIGTERM. Shutdown syncs every log before exit.
//!
//! With `--record-trace FILE` the node's configuration (its seed included)
//! and every input go to FILE for `cargo xtask replay` (see [`crate::trace`]).
//! Recording needs an empty data directory: the trace then holds everything
//! the node's state came from.

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context};
use io_sync::host;
use proto_core::group::CoordinatorConfig;

use crate::admin::spawn_admin;
use crate::config::{FsyncPolicy, IoDriver, ServeConfig};
use crate::disk_store::DiskStore;
use crate::metrics::Metrics;
use crate::node::topics::TopicConfig;
use crate::node::{Node, NodeConfig};
use crate::server::BrokerHost;
use crate::trace::{Recorder, TraceStart};

/// Runs a node until it is told to stop.
pub fn run(cfg: ServeConfig) -> anyhow::Result<()> {
    init_logging(&cfg.log_level)?;
    for w in cfg.warnings() {
        tracing::warn!("{w}");
    }
    let clustered = cfg.peers.keys().any(|&id| id != cfg.node_id);
    raise_open_file_limit();
    if cfg.record_trace.is_some() {
        refuse_restored_state(&cfg.data_dir)?;
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("--data-dir {}: cannot create it", cfg.data_dir.display()))?;
    let listener = TcpListener::bind(cfg.kafka_listen)
        .with_context(|| format!("--kafka-listen {}: cannot bind", cfg.kafka_listen))?;
    let bound = listener.local_addr()?;
    let mut advertised = cfg.advertised_listener.clone();
    if advertised.port == 0 {
        advertised.port = bound.port();
    }

    let (handle, events) = host::channel();
    let (store, persister, restored) = DiskStore::open(
        &cfg.data_dir,
        cfg.fsync == FsyncPolicy::Always,
        handle.waker(),
    )
    .with_context(|| {
        format!(
            "--data-dir {}: cannot open the logs",
            cfg.data_dir.display()
        )
    })?;
    let defaults = TopicConfig::defaults(
        cfg.retention_ms.map_or(-1, |v| v as i64),
        cfg.retention_bytes.map_or(-1, |v| v as i64),
        cfg.segment_bytes as i64,
    );
    let seed = seed();
    let node_cfg = NodeConfig {
        node_id: cfg.node_id.0 as i32,
        advertised_host: advertised.host.clone(),
        advertised_port: i32::from(advertised.port),
        rack: cfg.rack.clone(),
        cluster_id: cfg.cluster_id.clone(),
        auto_create_topics: cfg.auto_create_topics,
        default_partitions: cfg.default_partitions,
        topic_defaults: defaults,
        tick_ms: cfg.tick.as_millis() as u64,
        seed,
        offsets_partitions: cfg.offsets_partitions,
        coordinator: CoordinatorConfig {
            min_session_timeout_ms: cfg.group_min_session_timeout_ms,
            max_session_timeout_ms: cfg.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: cfg.group_initial_rebalance_delay.as_millis() as u64,
            ..CoordinatorConfig::kafka_defaults(seed)
        },
        peers: cfg
            .peers
            .iter()
            .map(|(id, addr)| (id.0, addr.to_string()))
            .collect(),
        default_replication_factor: cfg.peers.len().min(3) as i16,
    };
    let recorder = match &cfg.record_trace {
        Some(path) => Some(
            Recorder::create(path, TraceStart::new(node_cfg.clone()))
                .with_context(|| format!("--record-trace {}: cannot create it", path.display()))?,
        ),
        None => None,
    };
    let node = Node::new(
        node_cfg,
        Box::new(store.clone()),
        restored.table,
        restored.groups,
    )
    .map_err(anyhow::Error::msg)
    .context("restoring the partitions' Raft state")?;

    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let admin = spawn_admin(cfg.admin_listen, ready.clone(), metrics.clone())
        .with_context(|| format!("--admin-listen {}: cannot bind", cfg.admin_listen))?;
    let mut host = BrokerHost::new(
        node,
        persister,
        store,
        metrics,
        ready,
        cfg.max_frame_bytes as usize,
        recorder,
    );
    if clustered {
        host = host.with_peers(start_peers(&cfg, &handle)?);
    }
    tracing::info!(
        node = cfg.node_id.0,
        kafka = %bound,
        advertised = %advertised,
        admin = %admin.local_addr(),
        io = ?cfg.io,
        data = %cfg.data_dir.display(),
        trace = cfg.record_trace.as_ref().map(|p| p.display().to_string()),
        seed,
        "chronik is serving"
    );
    match cfg.io {
        IoDriver::Tokio => io_tokio::serve(host, handle, events, listener, shutdown_signal_async())
            .context("the tokio driver failed")?,
        IoDriver::Sync => {
            let stop = shutdown_flag()?;
            io_sync::net::serve(host, handle, events, listener, stop)
                .context("the sync driver failed")?
        }
    }
    admin.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files to the hard limit, as Go programs
/// and Redpanda do: each partition keeps about four files open (segment log,
/// offset and time indexes, Raft index), so 10,000 partitions need 40,000
/// descriptors, far above the usual soft limit of 1024. Failing to raise it
/// only costs partitions later, so it is logged, not fatal.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if got != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-file limit");
        return;
    }
    let soft = limit.rlim_cur;
    if soft < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), soft,
                "cannot raise the open-file limit");
            return;
        }
    }
    tracing::info!(
        open_files = limit.rlim_cur,
        "open-file limit (each partition keeps about 4 files open)"
    );
}

/// Starts the inter-broker transport of the configured driver, delivering
/// into the node loop.
fn start_peers(
    cfg: &ServeConfig,
    handle: &host::LoopHandle,
) -> anyhow::Result<Box<dyn io_sync::peer::PeerSend>> {
    use std::net::ToSocketAddrs;
    let mut peers = std::collections::BTreeMap::new();
    for (id, addr) in &cfg.peers {
        let resolved = (addr.host.as_str(), addr.port)
            .to_socket_addrs()
            .with_context(|| format!("--peers: cannot resolve {addr}"))?
            .next()
            .with_context(|| format!("--peers: {addr} resolves to nothing"))?;
        peers.insert(*id, resolved);
    }
    let cluster_id = proto_core::transport::ClusterId::new(cfg.cluster_id.clone())
        .map_err(|e| anyhow::anyhow!("--cluster-id {}: {e}", cfg.cluster_id))?;
    let config = io_sync::peer::PeerConfig::new(cfg.raft_listen, cluster_id, cfg.node_id, peers);
    let loop_handle = handle.clone();
    let deliver = move |event| {
        loop_handle.send(host::LoopEvent::Peer(event));
    };
    let listen = cfg.raft_listen;
    Ok(match cfg.io {
        IoDriver::Tokio => Box::new(
            io_tokio::peer::PeerTransport::start(config, deliver)
                .with_context(|| format!("--raft-listen {listen}"))?,
        ),
        IoDriver::Sync => Box::new(
            io_sync::peer::PeerTransport::start(config, deliver)
                .with_context(|| format!("--raft-listen {listen}"))?,
        ),
    })
}

/// A trace holds inputs, not state: it can only be replayed if the node
/// started from nothing. Refuses a data directory that holds anything.
fn refuse_restored_state(data_dir: &Path) -> anyhow::Result<()> {
    let mut entries = match std::fs::read_dir(data_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("--data-dir {}: cannot read it", data_dir.display()))
        }
    };
    if entries.next().is_some() {
        bail!(
            "--record-trace needs an empty --data-dir, and {} is not empty: a trace records \
             inputs, not the state a node restores, so a replay could not rebuild it \
             (start with a new --data-dir, or serve this one without --record-trace)",
            data_dir.display()
        );
    }
    Ok(())
}

fn init_logging(filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("--log-level {filter}: not a valid filter"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// The seed for Raft's election timeouts and topic ids: different per start,
/// so two nodes never share one; recorded traces carry it.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal_async() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// A flag set on SIGINT or SIGTERM, for the blocking driver.
fn shutdown_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).context("cannot watch signals")?;
    }
    Ok(flag)
}
