//! `bench`: the benchmarks the issues name, with their figures printed as a table or,
//! with `--json`, as one JSON document.
//!
//! Each benchmark reports figures with units and, where an issue sets one, the target,
//! so a reader sees at once whether it was met. Anchors (reference systems measured in
//! the same run) are figures too.

use crate::output::outln;
mod cpn;
mod handle;
mod ngsi;
mod ngsi_core;
mod ngsi_temporal;
mod psi;
mod signals;
mod sim;
mod startup;

use crate::output::{print_json, table};
use clap::Args;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Which benchmarks to run (default: all). Known: startup, handle, ngsi-core, ngsi-ld, cpn, psi, sim,
    /// ngsi-ld-temporal, signals.
    names: Vec<String>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Repetitions where a benchmark repeats a measurement.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Handles stored for the `handle` benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    handle_count: u32,
    /// Seconds per `handle` measurement.
    #[arg(long, default_value_t = 10)]
    handle_seconds: u64,
    /// A reference Handle server (e.g. CNRI 7.3 on 127.0.0.1:2641) to measure in the same run.
    #[arg(long)]
    handle_reference: Option<std::net::SocketAddr>,
    /// Entities stored for the `ngsi-ld` benchmark.
    #[arg(long, default_value_t = 100_000)]
    ngsi_entities: usize,
    /// Connections sending the `ngsi-ld` benchmark's batch upserts (each keeps one request in
    /// flight).
    #[arg(long, default_value_t = 4)]
    ngsi_batch_connections: usize,
    /// Connections sending the `ngsi-ld` benchmark's single creates (each keeps one request in
    /// flight).
    #[arg(long, default_value_t = 16)]
    ngsi_create_connections: usize,
    /// Run the `ngsi-ld` benchmark with `ngsi.record_history = false` (entity writes record no
    /// history). Its figures are then named so and carry no targets: the targets are
    /// for the default configuration.
    #[arg(long)]
    ngsi_without_history: bool,
    /// Instances in the history of the `ngsi-ld-temporal` benchmark's entity.
    #[arg(long, default_value_t = 1_000_000)]
    ngsi_temporal_instances: usize,
    /// Also measure the memory of this many handles in the in-memory index (e.g. 10000000).
    #[arg(long, default_value_t = 0)]
    handle_footprint: u32,
    /// Set size of the PSI benchmark, as log2 (20 is the target size).
    #[arg(long, default_value_t = 20)]
    psi_log2: u32,
}

/// One measured number.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    /// The goal, as text (e.g. "< 1000 ms").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target: Option<String>,
    /// Whether the goal was met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) met: Option<bool>,
}

/// The result of one benchmark.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) benchmark: &'static str,
    pub(crate) description: &'static str,
    pub(crate) figures: Vec<Figure>,
}

#[derive(Debug, Serialize)]
struct Machine {
    os: &'static str,
    arch: &'static str,
    cpus: usize,
    citybrain_version: &'static str,
}

const ALL: &[&str] = &[
    "startup",
    "handle",
    "ngsi-core",
    "ngsi-ld",
    "cpn",
    "psi",
    "sim",
    "ngsi-ld-temporal",
    "signals",
];

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = if args.names.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.names.clone()
    };
    for name in &names {
        if !ALL.contains(&name.as_str()) {
            eprintln!("unknown benchmark {name:?}; known: {}", ALL.join(", "));
            return Ok(ExitCode::from(2));
        }
    }
    let mut reports = Vec::new();
    for name in &names {
        let report = match name.as_str() {
            "startup" => startup::run(args.runs.max(1))?,
            "handle" => handle::run(
                args.handle_count,
                args.handle_seconds,
                args.handle_reference,
                args.handle_footprint,
            )?,
            "ngsi-core" => ngsi_core::run(args.runs.max(1).div_ceil(10))?,
            "ngsi-ld" => ngsi::run(
                args.ngsi_entities,
                args.ngsi_create_connections.max(1),
                args.ngsi_batch_connections.max(1),
                !args.ngsi_without_history,
            )?,
            "cpn" => cpn::run()?,
            "psi" => psi::run(args.psi_log2.clamp(4, 24))?,
            "sim" => sim::run(args.runs.max(1))?,
            "ngsi-ld-temporal" => ngsi_temporal::run(args.ngsi_temporal_instances)?,
            "signals" => signals::run()?,
            _ => unreachable!("checked above"),
        };
        if !args.json {
            print_report(&report);
        }
        reports.push(report);
    }
    if args.json {
        let machine = Machine {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            citybrain_version: env!("CARGO_PKG_VERSION"),
        };
        print_json(&serde_json::json!({ "machine": machine, "reports": reports }))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &Report) {
    outln!("{} — {}", report.benchmark, report.description);
    let rows = report.figures.iter().map(|f| {
        vec![
            f.name.clone(),
            format!("{:.3}", f.value),
            f.unit.to_owned(),
            f.target.clone().unwrap_or_default(),
            match f.met {
                Some(true) => "yes".to_owned(),
                Some(false) => "NO".to_owned(),
                None => String::new(),
            },
        ]
    });
    outln!(
        "{}",
        table(&["figure", "value", "unit", "target", "met"], rows)
    );
}

/// Percentile (nearest rank) of a sorted slice.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}
