//! `bench sim`: the traffic simulator's speed (issue 4).
//!
//! - A full Jinan (JN1) FixedTime P15 episode: CPU time (median of `runs`, calling thread's
//!   CPU clock) and vehicle-updates per CPU second; with `CITYBRAIN_CITYFLOW_PYTHON` set to a
//!   Python that can `import cityflow`, CityFlow runs the same episode in the same run
//!   (`scripts/cityflow_bench.py`), once as it runs by default and once pinned to one CPU
//!   (its best case), and both CPU-time ratios are reported (target ≥ 10x).
//! - The generated 240-intersection city (~30,000 vehicles in the hour), one episode (target
//!   < 2 s CPU).
//! - Four JN1 episodes on one thread, then on two (`run_parallel_cpu`): wall-time speed-up, CPU
//!   time per episode on each thread count, and bit-identical results.
//!
//! Data: `$CITYBRAIN_SHARED/data/traffic`, else `shared/data/traffic` or
//! `../shared/data/traffic` from the current directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use traffic_sim::bench::{Control, ParallelCpuRun, run_parallel_cpu, run_timed};
use traffic_sim::control::Protocol;
use traffic_sim::generate::{GridSpec, generate_grid};
use traffic_sim::spec::{ConfigSpec, parse_flows, parse_roadnet};
use traffic_sim::{EngineSettings, Scenario};

use super::{Figure, Report};

fn thread_cpu_seconds() -> f64 {
    // "run_time_ns wait_ns timeslices" of the calling thread.
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
        })
        .map_or(0.0, |ns| ns / 1e9)
}

fn data_dir() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(shared) = std::env::var("CITYBRAIN_SHARED") {
        candidates.push(PathBuf::from(shared).join("data/traffic"));
    }
    candidates.push(PathBuf::from("shared/data/traffic"));
    candidates.push(PathBuf::from("../shared/data/traffic"));
    for c in &candidates {
        if c.join("jinan_3x4/roadnet_3_4.json").is_file() {
            return Ok(c.clone());
        }
    }
    bail!("traffic data not found (set CITYBRAIN_SHARED to the shared/ directory)")
}

fn settings(rl_traffic_light: bool) -> EngineSettings {
    EngineSettings::from_config(&ConfigSpec {
        interval: 1.0,
        seed: 0,
        dir: String::new(),
        roadnet_file: String::new(),
        flow_file: String::new(),
        rl_traffic_light,
        lane_change: true,
        save_replay: false,
    })
}

fn figure(name: &str, value: f64, unit: &'static str, target: Option<(&str, bool)>) -> Figure {
    Figure {
        name: name.to_owned(),
        value,
        unit,
        target: target.map(|(t, _)| t.to_owned()),
        met: target.map(|(_, m)| m),
    }
}

pub(crate) fn run(runs: usize) -> anyhow::Result<Report> {
    let data = data_dir()?;
    let jn1_dir = data.join("jinan_3x4");
    let read = |name: &str| {
        std::fs::read_to_string(jn1_dir.join(name)).with_context(|| format!("reading {name}"))
    };
    let roadnet = parse_roadnet("roadnet_3_4.json", &read("roadnet_3_4.json")?)?;
    let flows = parse_flows(
        "anon_3_4_jinan_real.json",
        &read("anon_3_4_jinan_real.json")?,
    )?;
    let jn1 = Arc::new(Scenario::from_specs(
        settings(true),
        "roadnet_3_4.json",
        &roadnet,
        "anon_3_4_jinan_real.json",
        flows,
    )?);
    let protocol = Protocol::p15();
    let mut cpu = Vec::new();
    let mut first = None;
    for _ in 0..runs.clamp(1, 20) {
        let run = run_timed(
            Arc::clone(&jn1),
            Control::FixedTime,
            &protocol,
            &thread_cpu_seconds,
        );
        cpu.push(run.cpu_seconds);
        first.get_or_insert(run);
    }
    let first = first.context("no run")?;
    cpu.sort_by(f64::total_cmp);
    let median = cpu[cpu.len() / 2];
    let mut figures = vec![
        figure(
            "JN1 FixedTime P15 ATT",
            first.metrics.average_travel_time,
            "s",
            None,
        ),
        figure(
            "JN1 vehicle-steps",
            first.metrics.vehicle_steps as f64,
            "vehicle-steps",
            None,
        ),
        figure("JN1 episode CPU time (median)", median, "s", None),
        figure(
            "JN1 vehicle-updates per CPU second",
            first.metrics.vehicle_steps as f64 / median / 1e6,
            "M/s",
            None,
        ),
    ];

    if let Ok(python) = std::env::var("CITYBRAIN_CITYFLOW_PYTHON") {
        let script = std::env::var("CITYBRAIN_CITYFLOW_SCRIPT")
            .unwrap_or_else(|_| "scripts/cityflow_bench.py".into());
        // CityFlow as it runs by default, then pinned to one CPU: its engine wakes a worker
        // thread ~15 times per step, which costs CPU time when the two threads sit on different
        // CPUs (docs/bench-sim.md); pinned is its best case.
        let cityflow_cpu = |pin: Option<&str>| -> anyhow::Result<f64> {
            let mut cmd = Command::new(&python);
            cmd.arg(&script).arg("--dir").arg(&jn1_dir).args([
                "--roadnet",
                "roadnet_3_4.json",
                "--flow",
                "anon_3_4_jinan_real.json",
                "--mode",
                "fixed15",
            ]);
            if let Some(cpu) = pin {
                cmd.args(["--pin-cpu", cpu]);
            }
            let out = cmd
                .output()
                .with_context(|| format!("running {python} {script}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let json: serde_json::Value = serde_json::from_str(text.trim()).with_context(|| {
                format!(
                    "cityflow_bench.py printed no JSON: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
            Ok(json["sim_cpu_seconds"].as_f64().unwrap_or(f64::NAN))
        };
        let unpinned = cityflow_cpu(None)?;
        figures.push(figure(
            "CityFlow JN1 episode CPU time (same run)",
            unpinned,
            "s",
            None,
        ));
        let ratio = unpinned / median;
        figures.push(figure(
            "speed-up over CityFlow (CPU time)",
            ratio,
            "x",
            Some((">= 10x", ratio >= 10.0)),
        ));
        let pinned = cityflow_cpu(Some("0"))?;
        figures.push(figure(
            "CityFlow JN1 CPU time, pinned to one CPU (same run)",
            pinned,
            "s",
            None,
        ));
        let ratio = pinned / median;
        figures.push(figure(
            "speed-up over CityFlow pinned to one CPU",
            ratio,
            "x",
            Some((">= 10x", ratio >= 10.0)),
        ));
    }

    let spec = GridSpec::city_240();
    let city = generate_grid(&spec)?;
    let city = Arc::new(Scenario::from_specs(
        settings(false),
        "city.roadnet",
        &city.roadnet,
        "city.flow",
        city.flows,
    )?);
    let city_run = run_timed(city, Control::RoadnetPlan, &protocol, &thread_cpu_seconds);
    figures.push(figure(
        "240-intersection city episode CPU time",
        city_run.cpu_seconds,
        "s",
        Some(("< 2 s", city_run.cpu_seconds < 2.0)),
    ));
    figures.push(figure(
        "240-intersection city vehicle-steps",
        city_run.metrics.vehicle_steps as f64,
        "vehicle-steps",
        None,
    ));

    let origin = Instant::now();
    let wall = move || origin.elapsed().as_secs_f64();
    let one_cpu = run_parallel_cpu(
        Arc::clone(&jn1),
        Control::FixedTime,
        &protocol,
        4,
        1,
        &wall,
        &thread_cpu_seconds,
    );
    let two_cpu = run_parallel_cpu(
        jn1,
        Control::FixedTime,
        &protocol,
        4,
        2,
        &wall,
        &thread_cpu_seconds,
    );
    let (one, two) = (&one_cpu.run, &two_cpu.run);
    let identical = one.all_identical
        && two.all_identical
        && one.fingerprints.first() == two.fingerprints.first()
        && one.fingerprints.first() == Some(&first.fingerprint);
    let speedup = one.wall_seconds / two.wall_seconds;
    figures.push(figure(
        "parallel episodes speed-up, 2 threads",
        speedup,
        "x",
        Some((">= 1.8x", speedup >= 1.8)),
    ));
    // CPU time per episode on 1 and on 2 threads: equal figures mean the episodes do not
    // slow each other down, whatever the wall-clock speed-up on a shared machine.
    let per_episode = |r: &ParallelCpuRun| {
        r.thread_cpu_seconds.iter().sum::<f64>() / r.run.episodes.max(1) as f64
    };
    figures.push(figure(
        "CPU per episode, 4 episodes on 1 thread",
        per_episode(&one_cpu),
        "s",
        None,
    ));
    figures.push(figure(
        "CPU per episode, 4 episodes on 2 threads",
        per_episode(&two_cpu),
        "s",
        None,
    ));
    figures.push(figure(
        "bit-identical across runs and thread counts",
        if identical { 1.0 } else { 0.0 },
        "bool",
        Some(("1", identical)),
    ));
    Ok(Report {
        benchmark: "sim",
        description: "traffic simulator: JN1 FixedTime P15 episode vs CityFlow, 240-intersection city, parallel episodes",
        figures,
    })
}
