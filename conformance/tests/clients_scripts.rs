//! External clients against a real `chronik` process, once per I/O driver:
//! `conformance/clients/python_clients.py` and `python_groups.py`
//! (confluent-kafka, kafka-python), `conformance/clients/kcat.sh` (kcat) and
//! `conformance/clients/kafkajs/clients.js` (kafkajs, pinned in its
//! `package-lock.json`).
//!
//! The tools must be installed (`cargo xtask ci` installs them: Debian `kcat`,
//! `nodejs` and `npm`; `pip install confluent-kafka kafka-python lz4
//! python-snappy zstandard`; `npm ci` in `conformance/clients/kafkajs`). If
//! they are missing the tests fail, unless `CHRONIK_SKIP_EXTERNAL_CLIENTS=1`.

mod clients;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use clients::broker::{workspace_root, Broker, DRIVERS};

fn scripts_dir() -> PathBuf {
    workspace_root().join("conformance").join("clients")
}

/// Whether `cmd args` runs and exits 0; otherwise fails the test (or, with
/// `CHRONIK_SKIP_EXTERNAL_CLIENTS=1`, says it skips and returns false).
fn tool_available(what: &str, cmd: &str, args: &[&str]) -> bool {
    let ok = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("CHRONIK_SKIP_EXTERNAL_CLIENTS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {what} not available and CHRONIK_SKIP_EXTERNAL_CLIENTS=1");
        return false;
    }
    panic!(
        "{what} is not available (`{cmd} {}` failed). Run `cargo xtask ci`, which installs \
         the external clients (apt: kcat python3-pip nodejs npm; pip: confluent-kafka \
         kafka-python lz4 python-snappy zstandard; npm ci in conformance/clients/kafkajs), \
         or set CHRONIK_SKIP_EXTERNAL_CLIENTS=1 to skip.",
        args.join(" ")
    );
}

/// Runs `cmd args bootstrap` against a fresh broker per driver; on failure
/// shows the script's output (the broker log follows from `Broker`'s drop).
fn run_per_driver(name: &str, cmd: &str, args: &[&str]) {
    run_per_driver_with(name, &[], cmd, args)
}

/// [`run_per_driver`] with extra `chronik serve` arguments.
fn run_per_driver_with(name: &str, serve_args: &[&str], cmd: &str, args: &[&str]) {
    for io in DRIVERS {
        let b = Broker::start_with(io, serve_args);
        let out = Command::new(cmd)
            .args(args)
            .arg(b.bootstrap())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("----- {name} --io {io} -----\n{stdout}");
        assert!(
            out.status.success(),
            "[{io}] {name} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            out.status
        );
    }
}

#[test]
fn python_clients() {
    if !tool_available(
        "confluent-kafka and kafka-python",
        "python3",
        &["-c", "import confluent_kafka, kafka"],
    ) {
        return;
    }
    let script = scripts_dir().join("python_clients.py");
    run_per_driver("python_clients.py", "python3", &[script.to_str().unwrap()]);
}

#[test]
fn python_groups() {
    if !tool_available(
        "confluent-kafka and kafka-python",
        "python3",
        &["-c", "import confluent_kafka, kafka"],
    ) {
        return;
    }
    let script = scripts_dir().join("python_groups.py");
    run_per_driver_with(
        "python_groups.py",
        // The script's groups form at once instead of after 3 s.
        &["--group-initial-rebalance-delay-ms", "0"],
        "python3",
        &[script.to_str().unwrap()],
    );
}

#[test]
fn kcat() {
    if !tool_available("kcat", "kcat", &["-V"]) {
        return;
    }
    let script = scripts_dir().join("kcat.sh");
    run_per_driver("kcat.sh", "bash", &[script.to_str().unwrap()]);
}

#[test]
fn kafkajs() {
    let project = scripts_dir().join("kafkajs");
    let dir = project.to_str().unwrap();
    // `npm ls` fails unless node_modules holds exactly what package-lock.json pins.
    if !tool_available("node", "node", &["--version"])
        || !tool_available(
            "kafkajs (npm ci in conformance/clients/kafkajs)",
            "npm",
            &["ls", "--prefix", dir],
        )
    {
        return;
    }
    let script = project.join("clients.js");
    run_per_driver_with(
        "kafkajs/clients.js",
        // The script's groups form at once instead of after 3 s.
        &["--group-initial-rebalance-delay-ms", "0"],
        "node",
        &[script.to_str().unwrap()],
    );
}
