//! `cpn`: the computing-power network. `cpn simulate` replays a workload over a site set under every
//! placement policy and prints the comparison table, the LP lower bound and the issue-7 goals.

use crate::output::outln;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use cpn_core::bench::{TraceBenchOptions, size_east_west, validate_all};
use cpn_core::chart::comparison_svg;
use cpn_core::sim::Comparison;
use cpn_core::sites::east_west;
use cpn_core::trace::{parse_pods, pods_to_specs};
use cpn_core::world::World;

/// Arguments of `cpn`.
#[derive(Debug, Args)]
pub(crate) struct CpnArgs {
    #[command(subcommand)]
    command: CpnCommand,
}

#[derive(Debug, Subcommand)]
enum CpnCommand {
    /// Replay a trace under every policy; print the comparison and write a chart.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// Alibaba cluster-trace-gpu-v2023 pod list (CSV).
    #[arg(long, value_name = "CSV")]
    trace: PathBuf,
    /// Site set as JSON (cpn-core `WorldConfig`); default: the documented east/west set sized for the trace.
    #[arg(long, value_name = "JSON")]
    sites: Option<PathBuf>,
    /// Seed of the trace augmentation (origins, input sizes, deadlines, sovereignty).
    #[arg(long, default_value_t = 2023)]
    seed: u64,
    /// East/west capacity as a multiple of the trace's peak concurrent demand.
    #[arg(long, default_value_t = 2.5)]
    capacity_factor: f64,
    /// Write the comparison chart (SVG) here.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Write the comparison as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Skip the LP lower bound.
    #[arg(long)]
    no_lp: bool,
}

pub(crate) fn run(args: CpnArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CpnCommand::Simulate(a) => simulate(a),
    }
}

fn simulate(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.trace)
        .with_context(|| format!("reading {}", a.trace.display()))?;
    let pods = parse_pods(&text).with_context(|| format!("parsing {}", a.trace.display()))?;
    let mut opts = TraceBenchOptions {
        capacity_factor: a.capacity_factor,
        with_lp: !a.no_lp,
        ..TraceBenchOptions::default()
    };
    opts.augment.seed = a.seed;
    let (specs, stats) = pods_to_specs(&pods, &opts.augment);
    let world = match &a.sites {
        Some(path) => {
            let json = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            World::from_json(&json).with_context(|| format!("site set {}", path.display()))?
        }
        None => east_west(&size_east_west(&specs, a.capacity_factor)),
    };
    let (jobs, rejected) = validate_all(&world, &specs);
    outln!(
        "{} pods -> {} jobs ({} never scheduled, {} rejected at validation) over {} sites",
        stats.pods,
        stats.jobs,
        stats.never_scheduled,
        rejected,
        world.sites.len()
    );
    let cmp = Comparison::run(&world, &jobs, &opts.sim, opts.with_lp);
    outln!("{}", cmp.table());
    let goals = cmp.goals();
    if let Some(g) = &goals {
        outln!("{}", serde_json::to_string_pretty(g)?);
    }
    if let Some(path) = &a.svg {
        let title = format!(
            "{} over {} sites (karmada-greedy = 100 %)",
            a.trace.display(),
            world.sites.len()
        );
        std::fs::write(path, comparison_svg(&cmp, &title))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &a.json {
        std::fs::write(path, cmp.to_json())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
