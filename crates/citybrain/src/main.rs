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

/// mimalloc instead of glibc's allocator: the servers allocate many small, short-lived
/// objects per request (JSON values, entities, SQL parameters); measured in
/// docs/bench-ngsi-ld.md. Built without transparent huge pages (`no_thp`): with them, the
/// kernel zeroing fresh 2 MiB pages as the heap grew took about a sixth of the request
/// workers' time under write load; without, less system time and RSS, and batch upserts +23%.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
