//! `sim`: the traffic simulator (`traffic-sim`).
//!
//! `sim run` loads a CityFlow `config.json` (its `dir` + file names are read relative to the
//! current directory, as CityFlow does, or else to the config file's directory), runs an episode
//! under the roadnet's plan or a P15 controller, shows a progress bar on stderr and prints a
//! summary table (or one JSON document with `--json`); `--csv` writes the per-intersection
//! series. `sim generate` writes a seeded grid city in the same formats.

use crate::output::outln;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use traffic_sim::control::{FixedTime, MaxPressure, Protocol, SignalController};
use traffic_sim::generate::{GridSpec, generate_grid};
use traffic_sim::spec::flows_to_json;
use traffic_sim::units::Meters;
use traffic_sim::{Scenario, Simulation};

use crate::output::{print_json, table};

/// Arguments of `sim`.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Run one episode of a CityFlow scenario.
    Run(RunArgs),
    /// Write a seeded grid city (config.json, roadnet.json, flow.json).
    Generate(GenerateArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ControllerName {
    /// The roadnet's own signal plan (CityFlow's rlTrafficLight: false).
    Plan,
    /// P15 fixed time: phases 1, 2, 3, 4, 15 s slots with 5 s yellow.
    FixedTime,
    /// P15 max pressure.
    MaxPressure,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// CityFlow config.json.
    #[arg(long)]
    config: PathBuf,
    /// Signal control.
    #[arg(long, value_enum, default_value = "plan")]
    controller: ControllerName,
    /// Steps to simulate.
    #[arg(long, default_value_t = 3600)]
    steps: u64,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Write the per-intersection series (every 60 s) to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Rows of signalised intersections.
    #[arg(long, default_value_t = 12)]
    rows: u32,
    /// Columns of signalised intersections.
    #[arg(long, default_value_t = 20)]
    cols: u32,
    /// Distance between intersections, metres.
    #[arg(long, default_value_t = 400.0)]
    road_length: f64,
    /// Lanes per road and direction.
    #[arg(long, default_value_t = 3)]
    lanes: u32,
    /// Vehicles per hour in the whole city.
    #[arg(long, default_value_t = 30_000.0)]
    vehicles_per_hour: f64,
    /// Relative demand per slice of the hour, comma-separated (default: a morning peak).
    #[arg(long, value_delimiter = ',')]
    profile: Vec<f64>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u32,
}

pub(crate) fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SimCommand::Run(run) => run_episode(run),
        SimCommand::Generate(generate) => generate_city(generate),
    }
}

fn load(config: &Path) -> anyhow::Result<Scenario> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let base = config.parent().map(Path::to_path_buf).unwrap_or_default();
    Scenario::load_with(&config.display().to_string(), &text, |name| {
        let direct = PathBuf::from(name);
        let path = if direct.exists() {
            direct
        } else {
            base.join(name)
        };
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn run_episode(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut scenario = load(&args.config)?;
    // The controller decides whether phases follow the plan or a controller.
    scenario.settings.rl_traffic_light = !matches!(args.controller, ControllerName::Plan);
    let mut sim = Simulation::new(Arc::new(scenario));
    let protocol = Protocol {
        steps: args.steps,
        ..Protocol::p15()
    };
    let mut fixed = FixedTime::new(protocol.phases.clone());
    let mut pressure = MaxPressure;
    let controller: Option<&mut dyn SignalController> = match args.controller {
        ControllerName::Plan => None,
        ControllerName::FixedTime => Some(&mut fixed),
        ControllerName::MaxPressure => Some(&mut pressure),
    };
    let started = std::time::Instant::now();
    // Run in chunks so a progress bar can be drawn between them; the episode is the same as one
    // uninterrupted `run_episode`.
    let report = run_with_progress(&mut sim, controller, &protocol, !args.quiet && !args.json)?;
    let wall = started.elapsed().as_secs_f64();
    if let Some(path) = &args.csv {
        let mut out =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        writeln!(out, "intersection,time_s,vehicles,queue,served")?;
        for (id, series) in &report.intersection_series {
            for s in series {
                writeln!(
                    out,
                    "{id},{},{},{},{}",
                    s.time, s.vehicles, s.queue, s.served
                )?;
            }
        }
    }
    if args.json {
        print_json(&serde_json::json!({
            "config": args.config.display().to_string(),
            "controller": format!("{:?}", args.controller),
            "steps": args.steps,
            "wall_seconds": wall,
            "average_travel_time_s": report.average_travel_time,
            "vehicle_steps": report.vehicle_steps,
            "running_at_end": report.running,
            "waiting_to_enter_at_end": report.waiting_to_enter,
            "trips_finished": report.trips_finished,
            "average_trip_time_finished_s": report.average_trip_time_finished,
            "average_delay_s": report.average_delay,
            "average_stops": report.average_stops,
            "max_queue_per_approach": report.max_queue_per_approach,
        }))?;
    } else {
        let worst = report.max_queue_per_approach.iter().max_by_key(|(_, q)| *q);
        let rows = vec![
            vec![
                "average travel time (CityFlow definition)".to_owned(),
                format!("{:.2} s", report.average_travel_time),
            ],
            vec![
                "trips finished (throughput)".to_owned(),
                report.trips_finished.to_string(),
            ],
            vec!["running at end".to_owned(), report.running.to_string()],
            vec![
                "waiting to enter at end".to_owned(),
                report.waiting_to_enter.to_string(),
            ],
            vec!["vehicle-steps".to_owned(), report.vehicle_steps.to_string()],
            vec![
                "average delay".to_owned(),
                format!("{:.2} s", report.average_delay),
            ],
            vec![
                "average stops".to_owned(),
                format!("{:.2}", report.average_stops),
            ],
            vec![
                "largest queue".to_owned(),
                worst.map_or_else(String::new, |(road, q)| format!("{q} vehicles on {road}")),
            ],
            vec!["wall time".to_owned(), format!("{wall:.3} s")],
        ];
        outln!("{}", table(&["figure", "value"], rows));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_with_progress(
    sim: &mut Simulation,
    mut controller: Option<&mut dyn SignalController>,
    protocol: &Protocol,
    progress: bool,
) -> anyhow::Result<traffic_sim::MetricsReport> {
    // The driver decides by absolute step, so running in chunks gives the same episode.
    if !progress || protocol.steps < 300 {
        return Ok(traffic_sim::control::run_episode(sim, controller, protocol));
    }
    let chunk = (protocol.steps / 20)
        .max(1)
        .div_ceil(protocol.decision_interval.max(1))
        * protocol.decision_interval.max(1);
    let total = protocol.steps;
    let mut driver = traffic_sim::control::EpisodeDriver::new(sim, controller.is_some(), protocol);
    while sim.steps() < total {
        let until = (sim.steps() + chunk).min(total);
        driver.run_until(sim, controller.as_deref_mut(), until);
        let done = sim.steps() as f64 / total as f64;
        let width = 40;
        let filled = (done * width as f64).round() as usize;
        eprint!(
            "\r[{}{}] {:>5.1}%  t={}s  vehicles={}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            done * 100.0,
            sim.time(),
            sim.vehicle_count()
        );
    }
    eprintln!();
    Ok(sim.metrics())
}

fn generate_city(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let mut spec = GridSpec::city_240();
    spec.rows = args.rows;
    spec.cols = args.cols;
    spec.road_length = Meters(args.road_length);
    spec.lanes = args.lanes;
    spec.vehicles_per_hour = args.vehicles_per_hour;
    spec.seed = args.seed;
    if !args.profile.is_empty() {
        spec.profile = args.profile.clone();
    }
    let city = generate_grid(&spec)?;
    if args.out.exists() && !args.out.is_dir() {
        bail!("{} exists and is not a directory", args.out.display());
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, text: String| -> anyhow::Result<()> {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    let mut config = city.config.clone();
    config.dir = String::new();
    write("config.json", config.to_json())?;
    write("roadnet.json", city.roadnet.to_json())?;
    write("flow.json", flows_to_json(&city.flows))?;
    outln!(
        "wrote {} ({} signalised intersections, {} roads, {} vehicles) — run it with: citybrain sim run --config {}",
        args.out.display(),
        spec.rows * spec.cols,
        city.roadnet.roads.len(),
        city.flows.len(),
        args.out.join("config.json").display()
    );
    Ok(ExitCode::SUCCESS)
}
