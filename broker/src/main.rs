//! `chronik`: the broker binary.
//!
//! `chronik serve --node-id 1 --data-dir DIR` runs one node; `chronik version`
//! prints the version. Every setting and where it may come from is in
//! [`broker::config`].

use std::process::ExitCode;

use broker::config::{Cli, ConfigError};

fn main() -> ExitCode {
    let cli = match Cli::parse_from(std::env::args(), |k| std::env::var(k).ok()) {
        Ok(cli) => cli,
        Err(ConfigError::Help(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("chronik: {e}");
            return ExitCode::from(2);
        }
    };
    match cli {
        Cli::Version => {
            println!("chronik {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Cli::Serve(cfg) => match broker::serve::run(*cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chronik: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}
