//! Where the workspace and its target directory are, and the release `chronik`
//! binary built in it: what every task that runs a real broker (`bench`,
//! `cluster`) needs first, kept in one place so the tasks build and find the
//! binary the same way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// The workspace root and the Cargo target directory of this checkout.
pub struct Workspace {
    /// The directory holding the workspace `Cargo.toml`.
    pub root: PathBuf,
    /// `$CARGO_TARGET_DIR`, or `target/` under the root.
    pub target: PathBuf,
}

impl Workspace {
    /// Finds the workspace from where xtask was compiled, not from the current
    /// directory, so `cargo xtask` works from any subdirectory.
    pub fn locate() -> anyhow::Result<Workspace> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        Ok(Workspace { root, target })
    }

    /// `$CHRONIK_BIN`, or the release `chronik` after `cargo build --release`
    /// (progress lines are tagged with `task`). A release build because both
    /// tasks measure or exercise the broker as an operator would run it.
    pub fn chronik_release(&self, task: &str) -> anyhow::Result<PathBuf> {
        self.chronik(task, "release")
    }

    /// `$CHRONIK_BIN`, or `chronik` built with the `profile` profile.
    fn chronik(&self, task: &str, profile: &str) -> anyhow::Result<PathBuf> {
        if let Some(bin) = std::env::var_os("CHRONIK_BIN") {
            let bin = PathBuf::from(bin);
            if !bin.exists() {
                bail!("CHRONIK_BIN={} does not exist", bin.display());
            }
            return Ok(bin);
        }
        let mut args = vec!["build", "-p", "broker", "--bin", "chronik"];
        if profile == "release" {
            args.insert(1, "--release");
        }
        eprintln!("{task}: cargo {}", args.join(" "));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&self.root)
            .args(&args)
            .stdin(Stdio::null())
            .status()
            .context("run cargo build")?;
        if !status.success() {
            bail!("cargo {} failed ({status})", args.join(" "));
        }
        let bin = self.target.join(profile).join("chronik");
        if !bin.exists() {
            bail!("{} missing after the build", bin.display());
        }
        Ok(bin)
    }

    /// `$CHRONIK_BIN`, or the debug `chronik` after `cargo build` (already
    /// built by `cargo test`, so CI's chaos pass compiles nothing new).
    pub fn chronik_debug(&self, task: &str) -> anyhow::Result<PathBuf> {
        self.chronik(task, "debug")
    }
}
