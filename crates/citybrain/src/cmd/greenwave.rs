//! `signal greenwave`: arterial coordination on a simulated corridor.
//!
//! Optimises the common cycle and offsets of a corridor (`traffic_signals::greenwave`), prints
//! the plan and its two-way bandwidth, writes the time-space diagram as SVG, and runs the
//! corridor in the simulator under the green wave, under the same cycle with seeded random
//! offsets (uncoordinated) and with every offset 0 (simultaneous), reporting stops per arterial
//! vehicle, arterial travel time and the corridor's ATT.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use traffic_signals::greenwave::{
    CoordinatedFixedTime, CorridorResult, CorridorSpec, GreenWave, Split, corridor_scenario,
    evaluate_corridor, optimise, plan_with, random_offsets, time_space_svg,
};

use crate::output::{outln, print_json, table};

#[derive(Debug, Args)]
pub(crate) struct GreenWaveArgs {
    /// Signals along the arterial.
    #[arg(long, default_value_t = 8)]
    signals: u32,
    /// Distance between neighbouring signals, metres.
    #[arg(long, default_value_t = 300.0)]
    spacing: f64,
    /// Speed limit and progression speed, m/s (11.111 = 40 km/h).
    #[arg(long, default_value_t = 11.111)]
    speed: f64,
    /// Arterial vehicles per hour in each direction.
    #[arg(long, default_value_t = 600.0)]
    arterial_per_hour: f64,
    /// Vehicles per hour on each side-street approach.
    #[arg(long, default_value_t = 60.0)]
    cross_per_hour: f64,
    /// Episode length, seconds.
    #[arg(long, default_value_t = 3600)]
    duration: u32,
    /// Shortest cycle considered, seconds.
    #[arg(long, default_value_t = 40)]
    min_cycle: u32,
    /// Longest cycle considered, seconds.
    #[arg(long, default_value_t = 120)]
    max_cycle: u32,
    /// Seed of the optimiser's random starts and of the uncoordinated offsets.
    #[arg(long, default_value_t = 1)]
    seed: u32,
    /// Uncoordinated runs (different seeded offsets) to compare against.
    #[arg(long, default_value_t = 5)]
    baselines: u32,
    /// Write the time-space diagram here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print one JSON document instead of the tables.
    #[arg(long)]
    json: bool,
}

/// The split every signal runs before scaling to the cycle: arterial-heavy, two phases
/// (the corridor has no left turns), P5's 2 s yellow.
const SPLIT: Split = Split {
    arterial_green: 45.0,
    arterial_left: 0.0,
    cross_green: 25.0,
    cross_left: 0.0,
    yellow: 2.0,
};

fn row(r: &CorridorResult, reference: Option<&CorridorResult>) -> Vec<String> {
    let change = |ours: f64, base: f64| {
        if base > 0.0 {
            format!("{:+.0}%", (ours / base - 1.0) * 100.0)
        } else {
            "-".into()
        }
    };
    vec![
        r.controller.clone(),
        format!("{:.2}", r.arterial_stops),
        reference.map_or_else(String::new, |b| change(r.arterial_stops, b.arterial_stops)),
        format!("{:.1}", r.arterial_travel_time),
        format!("{:.1}", r.average_travel_time),
        r.trips_finished.to_string(),
    ]
}

pub(crate) fn run(args: GreenWaveArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.baselines <= 50,
        "--baselines must be at most 50 (each is a full simulation run)"
    );
    let spec = CorridorSpec {
        signals: args.signals,
        spacing: args.spacing,
        speed: args.speed,
        arterial_per_hour: args.arterial_per_hour,
        cross_per_hour: args.cross_per_hour,
        duration: args.duration,
    };
    let corridor = corridor_scenario(&spec)?;
    let wave = optimise(
        &corridor.corridor,
        &SPLIT,
        args.min_cycle..=args.max_cycle,
        args.seed,
    )?;
    let n = corridor.corridor.signals.len();
    let mut runs: Vec<(GreenWave, CorridorResult)> = Vec::new();
    let mut ours = CoordinatedFixedTime::new("green wave", &corridor.corridor, &wave);
    runs.push((wave.clone(), evaluate_corridor(&corridor, &mut ours)));
    for k in 0..args.baselines {
        let seed = args.seed.wrapping_add(1000 + k);
        let plan = plan_with(
            &corridor.corridor,
            wave.split,
            random_offsets(n, wave.cycle, seed),
        );
        let mut c = CoordinatedFixedTime::new(
            format!("uncoordinated (seed {seed})"),
            &corridor.corridor,
            &plan,
        );
        let r = evaluate_corridor(&corridor, &mut c);
        runs.push((plan, r));
    }
    let zero = plan_with(&corridor.corridor, wave.split, vec![0.0; n]);
    let mut c = CoordinatedFixedTime::new("simultaneous (offsets 0)", &corridor.corridor, &zero);
    let r = evaluate_corridor(&corridor, &mut c);
    runs.push((zero, r));

    if let Some(path) = &args.svg {
        let svg = time_space_svg(
            &corridor.corridor,
            &wave,
            3,
            &format!(
                "Green wave: {} signals, {:.0} m apart, {:.0} km/h",
                args.signals,
                args.spacing,
                args.speed * 3.6
            ),
        );
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    let uncoordinated: Vec<&CorridorResult> = runs
        .iter()
        .filter(|(_, r)| r.controller.starts_with("uncoordinated"))
        .map(|(_, r)| r)
        .collect();
    let mean_uncoordinated = if uncoordinated.is_empty() {
        0.0
    } else {
        uncoordinated.iter().map(|r| r.arterial_stops).sum::<f64>() / uncoordinated.len() as f64
    };
    if args.json {
        print_json(&json!({
            "corridor": {"signals": args.signals, "spacing_m": args.spacing, "speed_mps": args.speed,
                "arterial_per_hour": args.arterial_per_hour, "cross_per_hour": args.cross_per_hour,
                "duration_s": args.duration},
            "plan": {"cycle_s": wave.cycle, "offsets_s": wave.offsets, "arterial_green_s": wave.split.arterial_green,
                "outbound_band_s": wave.outbound_band, "inbound_band_s": wave.inbound_band,
                "efficiency": wave.efficiency()},
            "runs": runs.iter().map(|(p, r)| json!({
                "controller": r.controller, "offsets_s": p.offsets,
                "outbound_band_s": p.outbound_band, "inbound_band_s": p.inbound_band,
                "arterial_stops_per_vehicle": r.arterial_stops, "arterial_vehicles": r.arterial_vehicles,
                "arterial_travel_time_s": r.arterial_travel_time, "average_travel_time_s": r.average_travel_time,
                "trips_finished": r.trips_finished,
            })).collect::<Vec<_>>(),
            "mean_uncoordinated_arterial_stops": mean_uncoordinated,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "green wave: cycle {:.0} s, arterial green {:.1} s, offsets {:?} s",
        wave.cycle,
        wave.split.arterial_green,
        wave.offsets
    );
    outln!(
        "bandwidth: outbound {:.1} s, inbound {:.1} s, efficiency {:.0} % (uncoordinated plans: {})",
        wave.outbound_band,
        wave.inbound_band,
        wave.efficiency() * 100.0,
        runs.iter()
            .filter(|(_, r)| r.controller.starts_with("uncoordinated"))
            .map(|(p, _)| format!("{:.0} %", p.efficiency() * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let reference = &runs[0].1;
    outln!(
        "{}",
        table(
            &[
                "plan",
                "stops / arterial vehicle",
                "vs green wave",
                "arterial travel time (s)",
                "ATT all (s)",
                "trips",
            ],
            runs.iter().map(|(_, r)| row(r, Some(reference))),
        )
    );
    outln!(
        "stops per arterial vehicle: green wave {:.2}, uncoordinated mean {:.2} ({:+.0}%)",
        reference.arterial_stops,
        mean_uncoordinated,
        if mean_uncoordinated > 0.0 {
            (reference.arterial_stops / mean_uncoordinated - 1.0) * 100.0
        } else {
            0.0
        }
    );
    if let Some(path) = &args.svg {
        outln!("time-space diagram: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
