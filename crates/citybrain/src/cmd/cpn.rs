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
    /// Run a member site's agent: heartbeat to a coordinator over HTTP and run the jobs it assigns.
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// The coordinator, `http://host:port[/prefix]`.
    #[arg(long, value_name = "URL")]
    coordinator: String,
    /// The site this agent serves (registered with engine `remote`).
    #[arg(long, value_name = "ID")]
    site_id: String,
    /// File holding an API key of the site's owner tenant with compute write (admin to --register).
    #[arg(long, value_name = "FILE")]
    token_file: PathBuf,
    /// Tenant to act in (default: the key's tenant).
    #[arg(long)]
    tenant: Option<String>,
    /// Engine the jobs run on: `local` (processes here), `slurm` (CPN_SLURM_* variables) or
    /// `kubernetes` (CPN_KUBE_* variables; binaries built with `--features kubernetes`).
    #[arg(long, default_value = "local")]
    engine: String,
    /// Job directories and logs of the local engine.
    #[arg(long, value_name = "DIR", default_value = "cpn-agent-jobs")]
    work_dir: PathBuf,
    /// Register the site first from this cpn-core `SiteConfig` JSON (kept if it exists).
    #[arg(long, value_name = "JSON")]
    register: Option<PathBuf>,
    /// Report this many cores as the site's capacity on each heartbeat.
    #[arg(long)]
    cpu_cores: Option<f64>,
    /// Report this much memory (GiB) as the site's capacity.
    #[arg(long, requires = "cpu_cores")]
    memory_gib: Option<f64>,
    /// Heartbeat interval until the coordinator sets one, ms.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
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
        CpnCommand::Agent(a) => agent(a),
    }
}

fn agent(a: AgentArgs) -> anyhow::Result<ExitCode> {
    use cpn_server::remote::{AgentConfig, CapacityReport, register_site, run_agent};
    let token = std::fs::read_to_string(&a.token_file)
        .with_context(|| format!("reading the token file {}", a.token_file.display()))?;
    let mut config = AgentConfig::new(&a.coordinator, &a.site_id, &token)?;
    config.tenant = a.tenant;
    config.interval = std::time::Duration::from_millis(a.interval_ms.clamp(50, 60_000));
    config.capacity = a.cpu_cores.map(|cpu_cores| CapacityReport {
        cpu_cores,
        memory_gib: a.memory_gib.unwrap_or(0.0),
    });
    let executor: Box<dyn cpn_exec::Executor> = match a.engine.as_str() {
        "local" => Box::new(
            cpn_exec::local::LocalExecutor::new(&a.work_dir)
                .with_context(|| format!("preparing {}", a.work_dir.display()))?,
        ),
        "slurm" => Box::new(cpn_exec::slurm::SlurmExecutor::from_env()?),
        #[cfg(feature = "kubernetes")]
        "kubernetes" => {
            let url = std::env::var("CPN_KUBE_URL")
                .context("--engine kubernetes needs CPN_KUBE_URL (and CPN_KUBE_NAMESPACE, CPN_KUBE_IMAGE, CPN_KUBE_TOKEN_FILE)")?;
            let namespace =
                std::env::var("CPN_KUBE_NAMESPACE").unwrap_or_else(|_| "default".into());
            let image = std::env::var("CPN_KUBE_IMAGE").unwrap_or_else(|_| "busybox:1.37".into());
            let token = std::env::var("CPN_KUBE_TOKEN_FILE").ok();
            Box::new(cpn_exec::kubernetes::KubeExecutor::new(
                &url,
                &namespace,
                &image,
                token.as_deref(),
            )?)
        }
        other => anyhow::bail!("unknown engine `{other}` (expected local, slurm or kubernetes)"),
    };
    if let Some(path) = &a.register {
        let json =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let site: cpn_core::world::SiteConfig =
            serde_json::from_str(&json).with_context(|| format!("site file {}", path.display()))?;
        if register_site(&config, &site)? {
            outln!("registered site {} (engine remote)", site.id);
        }
    }
    outln!(
        "cpn agent: site {} -> {} (engine {})",
        a.site_id,
        a.coordinator,
        a.engine
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    run_agent(&config, executor.as_ref(), &stop)?;
    Ok(ExitCode::SUCCESS)
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
