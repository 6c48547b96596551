//! `cargo xtask ci`: everything CI checks, in the order a developer would run it.
//!
//! First it installs what the steps need and is missing, so a clean clone on a
//! Debian machine with only the Rust toolchain passes. Then it runs every step even
//! after one fails (one run shows every problem), prints a table of steps with their
//! durations, and fails if any step failed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Debian packages the steps need, as (a command that proves the package is
/// installed, the package): kcat for the command-line client tests, make and
/// perl to build librdkafka (the `rdkafka` crate compiles it from source),
/// python3 and pip for the Python client tests, Node.js and npm for the kafkajs
/// test (kafkajs 2.2 needs Node.js 14 or later; Debian 12 ships 18), and procps
/// for `kill`, which the cluster tests and `chaos` signal nodes with.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("kill", "procps"),
    ("kcat", "kcat"),
    ("make", "make"),
    ("perl", "perl"),
    ("python3", "python3"),
    ("pip3", "python3-pip"),
    ("node", "nodejs"),
    ("npm", "npm"),
];

/// Python packages the client tests import, as (module, PyPI package).
/// lz4, snappy and zstandard give kafka-python its compression codecs.
const PIP_PACKAGES: &[(&str, &str)] = &[
    ("confluent_kafka", "confluent-kafka"),
    ("kafka", "kafka-python"),
    ("lz4", "lz4"),
    ("snappy", "python-snappy"),
    ("zstandard", "zstandard"),
];

/// npm projects the client tests run, as directories under the workspace root
/// whose `package-lock.json` pins the client (kafkajs for `clients_scripts.rs`).
const NPM_PROJECTS: &[&str] = &["conformance/clients/kafkajs"];

/// Rust toolchain components the steps run, as (cargo subcommand, rustup component).
const RUST_COMPONENTS: &[(&str, &str)] = &[("fmt", "rustfmt"), ("clippy", "clippy")];

/// The simulator seeds CI runs: enough to cover the fault schedules, cheap enough
/// for every push.
const CI_SIM_SEEDS: &str = "1000";

/// CI's chaos pass: a fixed seed whose 90 s schedule holds every nemesis at
/// least once, on the debug broker `cargo test` built, about 2 minutes.
const CI_CHAOS: &[&str] = &[
    "xtask",
    "chaos",
    "--nodes",
    "3",
    "--duration",
    "90s",
    "--nemesis",
    "all",
    "--seed",
    "1",
    "--debug-build",
];

/// One command CI runs.
struct Step {
    name: &'static str,
    args: Vec<&'static str>,
}

/// How a step went.
struct Outcome {
    step: Step,
    took: Duration,
    result: Result<(), String>,
}

/// Runs CI; `args` must be empty.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    if !args.is_empty() {
        bail!("`cargo xtask ci` takes no arguments, got {args:?}");
    }
    let root = workspace_root();
    install_missing(&root)?;

    let steps = [
        Step {
            name: "fmt",
            args: vec!["fmt", "--all", "--", "--check"],
        },
        Step {
            name: "clippy",
            args: vec![
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        },
        Step {
            name: "test",
            args: vec!["test", "--workspace", "--no-fail-fast"],
        },
        Step {
            name: "sim",
            args: vec!["xtask", "sim", "--seeds", CI_SIM_SEEDS],
        },
        Step {
            name: "chaos",
            args: CI_CHAOS.to_vec(),
        },
    ];

    let mut outcomes = Vec::new();
    for step in steps {
        println!("\n==> {}: cargo {}", step.name, step.args.join(" "));
        let start = Instant::now();
        let result = run_cargo(&root, &step.args);
        outcomes.push(Outcome {
            step,
            took: start.elapsed(),
            result,
        });
    }

    print_summary(&outcomes);
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if failed > 0 {
        bail!("{failed} of {} CI steps failed", outcomes.len());
    }
    Ok(())
}

/// The workspace root: xtask's own manifest sits one level below it.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo that started us (so CI uses the same toolchain), or the one on PATH.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn run_cargo(root: &Path, args: &[&str]) -> Result<(), String> {
    let status = Command::new(cargo())
        .args(args)
        .current_dir(root)
        .status()
        .map_err(|e| format!("could not start cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(match status.code() {
            Some(code) => format!("exit {code}"),
            None => "killed by a signal".to_string(),
        })
    }
}

fn print_summary(outcomes: &[Outcome]) {
    let commands: Vec<String> = outcomes
        .iter()
        .map(|o| format!("cargo {}", o.step.args.join(" ")))
        .collect();
    let width = commands.iter().map(String::len).max().unwrap_or(0);
    println!("\nCI summary");
    println!("{:<8} {:<width$} {:>9}  result", "step", "command", "time");
    let mut total = Duration::ZERO;
    for (o, command) in outcomes.iter().zip(&commands) {
        total += o.took;
        let result = match &o.result {
            Ok(()) => "ok".to_string(),
            Err(why) => format!("FAILED ({why})"),
        };
        println!(
            "{:<8} {:<width$} {:>8.1}s  {result}",
            o.step.name,
            command,
            o.took.as_secs_f64()
        );
    }
    println!(
        "{:<8} {:<width$} {:>8.1}s",
        "total",
        "",
        total.as_secs_f64()
    );
}

/// Installs every missing tool the steps need.
fn install_missing(root: &Path) -> anyhow::Result<()> {
    for (subcommand, component) in RUST_COMPONENTS {
        ensure_rust_component(subcommand, component)?;
    }
    let mut apt = Apt::default();
    for (command, package) in APT_PACKAGES {
        apt.ensure(command, package)?;
    }
    for (module, package) in PIP_PACKAGES {
        ensure_python_module(module, package)?;
    }
    for project in NPM_PROJECTS {
        ensure_npm_project(&root.join(project))?;
    }
    Ok(())
}

/// Runs `npm ci` in `dir` unless its `node_modules` already holds what its
/// `package-lock.json` pins (`npm ls` says so without touching the network).
fn ensure_npm_project(dir: &Path) -> anyhow::Result<()> {
    let npm = |args: &[&str]| {
        Command::new("npm")
            .args(args)
            .current_dir(dir)
            .output()
            .with_context(|| format!("could not run npm in {}", dir.display()))
    };
    if npm(&["ls"])?.status.success() {
        return Ok(());
    }
    println!(
        "==> npm ci in {} (node_modules is missing or stale)",
        dir.display()
    );
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
        .current_dir(dir)
        .status()
        .with_context(|| format!("could not run npm ci in {}", dir.display()))?;
    if !status.success() {
        bail!("npm ci in {} failed ({status})", dir.display());
    }
    let ls = npm(&["ls"])?;
    if !ls.status.success() {
        bail!(
            "npm ci in {} succeeded but `npm ls` still fails:\n{}",
            dir.display(),
            String::from_utf8_lossy(&ls.stderr)
        );
    }
    Ok(())
}

/// Installs `package` from PyPI unless `import module` already works.
fn ensure_python_module(module: &str, package: &str) -> anyhow::Result<()> {
    let importable = |m: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if importable(module) {
        return Ok(());
    }
    println!("==> installing {package} from PyPI (`import {module}` fails)");
    let pip = |extra: &[&str]| {
        Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg(package)
            .status()
            .is_ok_and(|s| s.success())
    };
    // Debian's Python refuses system-wide pip installs unless told otherwise.
    if !(pip(&[]) || pip(&["--break-system-packages"])) {
        bail!("pip could not install {package}");
    }
    if !importable(module) {
        bail!("installed {package} but `import {module}` still fails");
    }
    Ok(())
}

/// Adds a rustup component if `cargo <subcommand>` does not run.
fn ensure_rust_component(subcommand: &str, component: &str) -> anyhow::Result<()> {
    let present = Command::new(cargo())
        .args([subcommand, "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if present {
        return Ok(());
    }
    println!("==> installing rustup component {component} (cargo {subcommand} is missing)");
    let status = Command::new("rustup")
        .args(["component", "add", component])
        .status()
        .with_context(|| format!("cargo {subcommand} is missing and rustup could not run"))?;
    if !status.success() {
        bail!("rustup component add {component} failed ({status})");
    }
    Ok(())
}

/// Installs Debian packages on demand, refreshing the package index once.
#[derive(Default)]
struct Apt {
    updated: bool,
}

impl Apt {
    /// Installs `package` unless `command` is already on the PATH.
    fn ensure(&mut self, command: &str, package: &str) -> anyhow::Result<()> {
        if on_path(command) {
            return Ok(());
        }
        if !is_root() {
            bail!("`{command}` is missing: install the Debian package `{package}` (apt-get needs root)");
        }
        if !self.updated {
            apt_get(&["update"])?;
            self.updated = true;
        }
        println!("==> installing {package} (`{command}` is missing)");
        apt_get(&["install", "-y", "--no-install-recommends", package])?;
        if !on_path(command) {
            bail!("installed {package} but `{command}` is still not on the PATH");
        }
        Ok(())
    }
}

fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("could not run apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}
