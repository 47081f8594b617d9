//! `signal`: adaptive signal control (`traffic-signals`) evaluated in the simulator.
//!
//! `signal eval` runs every (scenario, controller) pair under protocol P15 or P5 and prints
//! ATT, throughput and the vehicles still running / waiting to enter at the end, with the change
//! against FixedTime; `--json` prints one JSON document instead. Scenarios are the six benchmark
//! demand files by name (`jn1 jn2 jn3 hz1 hz5734 hz5816`, read from `--data`), `city240` (the
//! generator's 240-intersection rush-hour city, built in memory), or a path to a CityFlow
//! `config.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use traffic_signals::chart::grouped_bar_svg;
use traffic_signals::preemption::{
    EvTrip, JINAN_CORRIDORS, JINAN_DEPARTURES, PreemptionParams, PreemptionSummary,
    evaluate_preemption,
};
use traffic_signals::protocol::{
    CONTROLLERS, EpisodeResult, NO_SIGNAL_BOUND, ProtocolKind, controllable, controller_by_name,
    evaluate, evaluate_without_signals,
};
use traffic_sim::generate::{GridSpec, generate_grid};
use traffic_sim::spec::{ConfigSpec, parse_flows, parse_roadnet};
use traffic_sim::{EngineSettings, Scenario};

use crate::output::{outln, print_json, table};

/// Arguments of `signal`.
#[derive(Debug, Args)]
pub(crate) struct SignalArgs {
    #[command(subcommand)]
    command: SignalCommand,
}

#[derive(Debug, Subcommand)]
enum SignalCommand {
    /// Compare signal controllers on benchmark scenarios.
    Eval(EvalArgs),
    /// Coordinate an arterial (green wave): optimise cycle and offsets, draw the time-space
    /// diagram, and compare stops per vehicle in the simulator against uncoordinated offsets.
    Greenwave(super::greenwave::GreenWaveArgs),
    /// Emergency-vehicle preemption on Jinan corridors: EV travel time and the other vehicles'
    /// ATT, without and with a green corridor ahead of the EV.
    Preempt(PreemptArgs),
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// Protocol: p15 (decision every 15 s, 5 s yellow) or p5 (every 5 s, 2 s yellow).
    #[arg(long, default_value = "p15")]
    protocol: String,
    /// Controllers (fixed-time, webster, actuated, sotl, max-pressure, adaptive; also rollout,
    /// the simulator-as-twin look-ahead, minutes per episode); repeat or separate with commas.
    #[arg(long = "controller", visible_alias = "controllers", value_delimiter = ',', default_values_t = CONTROLLERS.map(String::from))]
    controllers: Vec<String>,
    /// Scenarios: jn1 jn2 jn3 hz1 hz5734 hz5816, city240, or a path to config.json; repeat or
    /// separate with commas (default: the six benchmark files).
    #[arg(long = "scenario", value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Directory holding jinan_3x4/ and hangzhou_4x4/ (default: $CITYBRAIN_SHARED/data/traffic
    /// or shared/data/traffic beside the checkout).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// Also write an SVG grouped bar chart of ATT per scenario per controller to FILE.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
    /// Also run each scenario with signal control relaxed away (every movement green, no
    /// conflicts inside intersections): the "no-signal bound" row, an ATT that no controller
    /// is expected to beat.
    #[arg(long)]
    bound: bool,
}

#[derive(Debug, Args)]
struct PreemptArgs {
    /// Protocol of the inner controller: p15 or p5.
    #[arg(long, default_value = "p15")]
    protocol: String,
    /// Inner (normal) controller.
    #[arg(long, default_value = "adaptive")]
    controller: String,
    /// Scenario: a Jinan benchmark file (jn1, jn2, jn3).
    #[arg(long, default_value = "jn1")]
    scenario: String,
    /// EV departure times, seconds (default 600,1200,1800,2400,3000).
    #[arg(long, value_delimiter = ',')]
    depart: Vec<i64>,
    /// Preempt a signal once the EV is this close to its stop line, metres.
    #[arg(long, default_value_t = PreemptionParams::default().lead_distance)]
    lead: f64,
    /// At most this many signals ahead at once.
    #[arg(long, default_value_t = PreemptionParams::default().max_ahead)]
    max_ahead: usize,
    /// Queue look-ahead: seconds per vehicle queued on the EV's approach lane (0: off). A signal
    /// further than --lead is preempted once the EV's free-flow arrival time is within its
    /// switch time + queue x headway + --clear-margin.
    #[arg(long, default_value_t = PreemptionParams::default().headway)]
    headway: f64,
    /// Extra seconds in the queue look-ahead.
    #[arg(long, default_value_t = PreemptionParams::default().clear_margin)]
    clear_margin: f64,
    /// Fairness guard: never preempt a signal the EV is more than this many seconds away from.
    #[arg(long, default_value_t = PreemptionParams::default().max_lead_time)]
    max_lead_time: f64,
    /// Weight, in the look-ahead, of the vehicles ahead of the EV at the signals before a signal
    /// on its route (they reach it first; 0: only the signal's own queue).
    #[arg(long, default_value_t = PreemptionParams::default().carry)]
    carry: f64,
    /// Directory holding jinan_3x4/ (see `signal eval --data`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

/// The benchmark demand files: name, directory, roadnet, flow.
const BENCHMARKS: [(&str, &str, &str, &str); 6] = [
    (
        "jn1",
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real.json",
    ),
    (
        "jn2",
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real_2000.json",
    ),
    (
        "jn3",
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real_2500.json",
    ),
    (
        "hz1",
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real.json",
    ),
    (
        "hz5734",
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real_5734.json",
    ),
    (
        "hz5816",
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real_5816.json",
    ),
];

pub(crate) fn run(args: SignalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SignalCommand::Eval(eval) => run_eval(eval),
        SignalCommand::Greenwave(args) => super::greenwave::run(args),
        SignalCommand::Preempt(args) => run_preempt(args),
    }
}

/// Where the benchmark data lives.
pub(crate) fn data_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    if let Ok(dir) = std::env::var("CITYBRAIN_SHARED") {
        return Ok(PathBuf::from(dir).join("data/traffic"));
    }
    let mut candidates = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        for up in cwd.ancestors().take(6) {
            candidates.push(up.join("shared/data/traffic"));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.join("jinan_3x4").is_dir())
        .context("benchmark data not found: pass --data DIR (holding jinan_3x4/ and hangzhou_4x4/) or set CITYBRAIN_SHARED")
}

/// Loads a benchmark file pair as a P15/P5 scenario (seed 0, lane changing on).
pub(crate) fn load_benchmark(
    data: &Path,
    dir: &str,
    roadnet: &str,
    flow: &str,
) -> anyhow::Result<Arc<Scenario>> {
    let rpath = data.join(dir).join(roadnet);
    let fpath = data.join(dir).join(flow);
    let rtext =
        std::fs::read_to_string(&rpath).with_context(|| format!("reading {}", rpath.display()))?;
    let ftext =
        std::fs::read_to_string(&fpath).with_context(|| format!("reading {}", fpath.display()))?;
    let config = ConfigSpec::benchmark(roadnet, flow);
    let roadnet_spec = parse_roadnet(&rpath.display().to_string(), &rtext)?;
    let flows = parse_flows(&fpath.display().to_string(), &ftext)?;
    let scenario = Scenario::from_specs(
        EngineSettings::from_config(&config),
        &rpath.display().to_string(),
        &roadnet_spec,
        &fpath.display().to_string(),
        flows,
    )?;
    Ok(controllable(&scenario))
}

/// The generator's 240-intersection rush-hour city (12 x 20, about 30,000 vehicles/hour).
pub(crate) fn city240() -> anyhow::Result<Arc<Scenario>> {
    let g = generate_grid(&GridSpec::city_240())?;
    let mut settings = EngineSettings::from_config(&g.config);
    settings.rl_traffic_light = true;
    Ok(Arc::new(Scenario::from_specs(
        settings,
        "city240/roadnet.json",
        &g.roadnet,
        "city240/flow.json",
        g.flows,
    )?))
}

fn load_config(path: &Path) -> anyhow::Result<Arc<Scenario>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let scenario = Scenario::load_with(&path.display().to_string(), &text, |name| {
        let direct = PathBuf::from(name);
        let p = if direct.exists() {
            direct
        } else {
            base.join(name)
        };
        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(controllable(&scenario))
}

fn resolve(
    name: &str,
    data: &mut Option<PathBuf>,
    flag: Option<&Path>,
) -> anyhow::Result<Arc<Scenario>> {
    let lower = name.to_ascii_lowercase();
    if let Some((_, dir, roadnet, flow)) = BENCHMARKS.iter().find(|b| b.0 == lower) {
        if data.is_none() {
            *data = Some(data_dir(flag)?);
        }
        let d = data.as_deref().unwrap_or(Path::new("."));
        return load_benchmark(d, dir, roadnet, flow);
    }
    if lower == "city240" {
        return city240();
    }
    let path = Path::new(name);
    if path.is_file() {
        return load_config(path);
    }
    bail!(
        "unknown scenario `{name}`: expected one of {}, city240, or a path to a CityFlow config.json",
        BENCHMARKS.map(|b| b.0).join(", ")
    )
}

fn run_eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let protocol = ProtocolKind::parse(&args.protocol)?;
    let controllers: Vec<String> = args
        .controllers
        .iter()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    for c in &controllers {
        controller_by_name(c, protocol)?;
    }
    let names: Vec<String> = if args.scenarios.is_empty() {
        BENCHMARKS.iter().map(|b| b.0.to_owned()).collect()
    } else {
        args.scenarios.clone()
    };
    let mut data = None;
    let mut scenarios = Vec::new();
    for name in &names {
        scenarios.push((
            name.clone(),
            resolve(name, &mut data, args.data.as_deref())?,
        ));
    }
    let total = (scenarios.len() * controllers.len()) as u64;
    let progress = !args.quiet && !args.json;
    let mut results: Vec<(String, EpisodeResult)> = Vec::new();
    for (name, scenario) in &scenarios {
        for c in &controllers {
            let mut ctrl = controller_by_name(c, protocol)?;
            let done = results.len() as u64;
            let steps = protocol.protocol().steps;
            let r = evaluate(scenario.clone(), ctrl.as_mut(), protocol, |step| {
                if progress {
                    let frac = (done as f64 + step as f64 / steps as f64) / total as f64;
                    let filled = (frac * 30.0).round() as usize;
                    eprint!(
                        "\r[{}{}] {:>5.1}%  {name} {c} t={step}s   ",
                        "#".repeat(filled),
                        " ".repeat(30 - filled.min(30)),
                        frac * 100.0
                    );
                }
            });
            results.push((name.clone(), r));
        }
        if args.bound {
            let r = evaluate_without_signals(scenario, protocol, |step| {
                if progress {
                    eprint!("\r{name} {NO_SIGNAL_BOUND} t={step}s   ");
                }
            });
            results.push((name.clone(), r));
        }
    }
    if progress {
        eprintln!();
    }
    let fixed_att = |scenario: &str| {
        results
            .iter()
            .find(|(s, r)| s == scenario && r.controller == "fixed-time")
            .map(|(_, r)| r.average_travel_time)
    };
    if args.json {
        let rows: Vec<_> = results
            .iter()
            .map(|(s, r)| {
                serde_json::json!({
                    "scenario": s,
                    "controller": r.controller,
                    "protocol": protocol.name(),
                    "average_travel_time_s": r.average_travel_time,
                    "vs_fixed_time": fixed_att(s).map(|f| r.average_travel_time / f - 1.0),
                    "trips_finished": r.trips_finished,
                    "running_at_end": r.running,
                    "waiting_to_enter_at_end": r.waiting_to_enter,
                    "average_delay_s": r.average_delay,
                    "average_stops": r.average_stops,
                })
            })
            .collect();
        print_json(&serde_json::json!({ "protocol": protocol.name(), "results": rows }))?;
    } else {
        let rows = results.iter().map(|(s, r)| {
            vec![
                s.clone(),
                r.controller.clone(),
                format!("{:.2}", r.average_travel_time),
                fixed_att(s).map_or_else(String::new, |f| {
                    format!("{:+.1}%", (r.average_travel_time / f - 1.0) * 100.0)
                }),
                r.trips_finished.to_string(),
                r.running.to_string(),
                r.waiting_to_enter.to_string(),
                format!("{:.2}", r.average_stops),
            ]
        });
        outln!("protocol {}", protocol.name().to_uppercase());
        outln!(
            "{}",
            table(
                &[
                    "scenario",
                    "controller",
                    "ATT (s)",
                    "vs fixed-time",
                    "trips finished",
                    "running at end",
                    "waiting to enter",
                    "stops/veh",
                ],
                rows
            )
        );
    }
    if let Some(path) = &args.chart {
        let mut labels: Vec<String> = controllers
            .iter()
            .map(|c| {
                controller_by_name(c, protocol).map_or_else(|_| c.clone(), |x| x.name().to_owned())
            })
            .collect();
        if args.bound {
            labels.push(NO_SIGNAL_BOUND.to_owned());
        }
        let values: Vec<Vec<Option<f64>>> = names
            .iter()
            .map(|n| {
                labels
                    .iter()
                    .map(|label| {
                        results
                            .iter()
                            .find(|(s, r)| s == n && &r.controller == label)
                            .map(|(_, r)| r.average_travel_time)
                    })
                    .collect()
            })
            .collect();
        let svg = grouped_bar_svg(
            &format!(
                "Average travel time by controller, protocol {}",
                protocol.name().to_uppercase()
            ),
            "ATT (s)",
            &names,
            &labels,
            &values,
        );
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
        if !args.json {
            outln!("chart written to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_preempt(args: PreemptArgs) -> anyhow::Result<ExitCode> {
    let protocol = ProtocolKind::parse(&args.protocol)?;
    controller_by_name(&args.controller, protocol)?;
    let lower = args.scenario.to_ascii_lowercase();
    let Some((_, dir, roadnet, flow)) = BENCHMARKS
        .iter()
        .find(|b| b.0 == lower && b.1 == "jinan_3x4")
    else {
        bail!("preemption runs on the Jinan files: jn1, jn2 or jn3");
    };
    let data = data_dir(args.data.as_deref())?;
    let scenario = load_benchmark(&data, dir, roadnet, flow)?;
    let params = PreemptionParams {
        lead_distance: args.lead,
        max_ahead: args.max_ahead,
        headway: args.headway,
        clear_margin: args.clear_margin,
        max_lead_time: args.max_lead_time,
        carry: args.carry,
    };
    let departures = if args.depart.is_empty() {
        JINAN_DEPARTURES.to_vec()
    } else {
        args.depart.clone()
    };
    let mut results = Vec::new();
    let mut rows = Vec::new();
    for (name, from, to) in JINAN_CORRIDORS {
        for &depart in &departures {
            let trip = EvTrip {
                route: vec![from.to_owned(), to.to_owned()],
                depart,
            };
            let r = evaluate_preemption(&scenario, &trip, protocol, &params, || {
                controller_by_name(&args.controller, protocol).expect("checked above")
            })?;
            let fmt =
                |t: Option<f64>| t.map_or_else(|| "not out".to_owned(), |t| format!("{t:.0}"));
            rows.push(vec![
                name.to_owned(),
                depart.to_string(),
                r.signals_on_route.to_string(),
                fmt(r.without.ev_travel_time),
                fmt(r.with.ev_travel_time),
                match (r.without.ev_travel_time, r.with.ev_travel_time) {
                    (Some(a), Some(b)) => format!("{:+.1}%", (b / a - 1.0) * 100.0),
                    _ => String::new(),
                },
                format!("{:.2}", r.without.others_att),
                format!("{:.2}", r.with.others_att),
                r.with.preempted_seconds.to_string(),
            ]);
            results.push((name, r));
        }
    }
    let all: Vec<_> = results.iter().map(|(_, r)| r.clone()).collect();
    let sum = PreemptionSummary::of(&all);
    if args.json {
        let trips: Vec<_> = results
            .iter()
            .map(|(name, r)| {
                serde_json::json!({
                    "corridor": name,
                    "route": r.trip.route,
                    "depart_s": r.trip.depart,
                    "signals_on_route": r.signals_on_route,
                    "ev_travel_time_without_s": r.without.ev_travel_time,
                    "ev_travel_time_with_s": r.with.ev_travel_time,
                    "others_att_without_s": r.without.others_att,
                    "others_att_with_s": r.with.others_att,
                    "preempted_seconds": r.with.preempted_seconds,
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "scenario": lower,
            "protocol": protocol.name(),
            "controller": args.controller,
            "lead_distance_m": params.lead_distance,
            "max_ahead": params.max_ahead,
            "headway_s": params.headway,
            "clear_margin_s": params.clear_margin,
            "max_lead_time_s": params.max_lead_time,
            "trips": trips,
            "ev_mean_without_s": sum.ev_mean_without,
            "ev_mean_with_s": sum.ev_mean_with,
            "ev_change": sum.ev_change(),
            "others_att_without_s": sum.others_att_without,
            "others_att_with_s": sum.others_att_with,
        }))?;
    } else {
        outln!(
            "{} {} under {}, preempting up to {} signal(s) within {:.0} m of the EV, or earlier \
             to clear their queues ({:.1} s per queued vehicle + {:.0} s, at most {:.0} s ahead)",
            lower,
            protocol.name().to_uppercase(),
            args.controller,
            params.max_ahead,
            params.lead_distance,
            params.headway,
            params.clear_margin,
            params.max_lead_time
        );
        outln!(
            "{}",
            table(
                &[
                    "corridor",
                    "depart (s)",
                    "signals",
                    "EV time without (s)",
                    "EV time with (s)",
                    "change",
                    "others' ATT without (s)",
                    "others' ATT with (s)",
                    "preempted (s)",
                ],
                rows.into_iter()
            )
        );
        for (name, _, _) in JINAN_CORRIDORS {
            let of: Vec<_> = results
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, r)| r.clone())
                .collect();
            let c = PreemptionSummary::of(&of);
            outln!(
                "{name}: EV {:.1} s without, {:.1} s with ({:+.1}%); others' ATT {:.2} -> {:.2} s",
                c.ev_mean_without,
                c.ev_mean_with,
                c.ev_change() * 100.0,
                c.others_att_without,
                c.others_att_with
            );
        }
        outln!(
            "EV travel time: mean {:.1} s without, {:.1} s with preemption ({:+.1}%) over {} trips",
            sum.ev_mean_without,
            sum.ev_mean_with,
            sum.ev_change() * 100.0,
            sum.trips
        );
        outln!(
            "other vehicles' ATT: mean {:.2} s without, {:.2} s with ({:+.2}%, {:+.2} s per vehicle)",
            sum.others_att_without,
            sum.others_att_with,
            (sum.others_att_with / sum.others_att_without - 1.0) * 100.0,
            sum.others_att_with - sum.others_att_without
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The benchmark data directory as `signal eval` finds it without flags (for the demo).
pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    data_dir(None)
}

/// JN1 as a controllable P15 scenario (for the demo).
pub(crate) fn load_jn1(data: &Path) -> anyhow::Result<Arc<Scenario>> {
    let (_, dir, roadnet, flow) = BENCHMARKS[0];
    load_benchmark(data, dir, roadnet, flow)
}
