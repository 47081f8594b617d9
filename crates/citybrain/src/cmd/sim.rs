//! `sim`: the traffic simulator (arrives with the simulator issue).

use clap::Args;
use std::process::ExitCode;

/// Arguments of `sim` (subcommands arrive with the simulator).
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// Everything after `sim`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub(crate) fn run(_args: SimArgs) -> anyhow::Result<ExitCode> {
    eprintln!("citybrain sim: the traffic simulator is not part of this build yet");
    Ok(ExitCode::from(2))
}
