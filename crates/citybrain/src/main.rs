//! `citybrain`: one binary for the city's data, traffic and compute.
//!
//! Subcommands live in `cmd/`, one module each; this file only parses the command line,
//! sets up logging and maps errors to exit codes (2 for usage and configuration errors,
//! 1 for everything else).

mod cmd;
mod demo;
mod output;
mod platform;
mod services;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    match cmd::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // The whole chain, one cause per line; configuration errors are the user's to fix.
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if error.downcast_ref::<settings::ConfigError>().is_some()
                || error.downcast_ref::<cmd::UsageError>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
