//! Speed benchmark: a full Jinan (JN1) FixedTime P15 episode, the 240-intersection generated
//! city, and parallel episodes; optionally CityFlow on the same JN1 episode in the same run.
//!
//! usage:
//!   cargo run --release -p traffic-sim --example bench_sim -- \
//!       [--data ../shared/data/traffic] [--python /path/to/python-with-cityflow] [--repeat 5]
//!       [--quick]   (JN1 only)
//!
//! CPU time is the calling thread's (`/proc/thread-self/schedstat`, nanoseconds). CityFlow's
//! side is measured by `scripts/cityflow_bench.py` (Python `time.process_time` around
//! `next_step` only).

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use traffic_sim::bench::{Control, run_parallel_cpu, run_timed};
use traffic_sim::control::Protocol;
use traffic_sim::generate::{GridSpec, generate_grid};
use traffic_sim::spec::{ConfigSpec, parse_flows, parse_roadnet};
use traffic_sim::{EngineSettings, Scenario};

fn thread_cpu_seconds() -> f64 {
    // "run_time_ns wait_ns timeslices" for the calling thread.
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
        })
        .map_or(0.0, |ns| ns / 1e9)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn settings(rl: bool) -> EngineSettings {
    EngineSettings::from_config(&ConfigSpec {
        interval: 1.0,
        seed: 0,
        dir: String::new(),
        roadnet_file: String::new(),
        flow_file: String::new(),
        rl_traffic_light: rl,
        lane_change: true,
        save_replay: false,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let data = arg(&args, "--data").unwrap_or_else(|| "../shared/data/traffic".into());
    let python = arg(&args, "--python");
    let repeat: usize = arg(&args, "--repeat")
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let script = arg(&args, "--script").unwrap_or_else(|| "scripts/cityflow_bench.py".into());

    let dir = format!("{data}/jinan_3x4");
    let roadnet = parse_roadnet(
        "roadnet_3_4.json",
        &std::fs::read_to_string(format!("{dir}/roadnet_3_4.json"))?,
    )?;
    let flows = parse_flows(
        "anon_3_4_jinan_real.json",
        &std::fs::read_to_string(format!("{dir}/anon_3_4_jinan_real.json"))?,
    )?;
    let jn1 = Arc::new(Scenario::from_specs(
        settings(true),
        "roadnet_3_4.json",
        &roadnet,
        "anon_3_4_jinan_real.json",
        flows,
    )?);
    let protocol = Protocol::p15();

    // Ours, JN1 FixedTime P15.
    let mut runs = Vec::new();
    let city_only = args.iter().any(|a| a == "--city-only");
    for _ in 0..if city_only { 1 } else { repeat.max(1) } {
        runs.push(run_timed(
            Arc::clone(&jn1),
            Control::FixedTime,
            &protocol,
            &thread_cpu_seconds,
        ));
    }
    let mut cpu: Vec<f64> = runs.iter().map(|r| r.cpu_seconds).collect();
    cpu.sort_by(f64::total_cmp);
    let median = cpu[cpu.len() / 2];
    let first = &runs[0];
    let identical = runs.iter().all(|r| r.fingerprint == first.fingerprint);
    println!(
        "JN1 FixedTime P15 (traffic-sim, 1 thread, {} runs)",
        runs.len()
    );
    println!(
        "  ATT {:.2} s, vehicle-steps {}, running at end {}, CPU median {:.4} s (min {:.4}), {:.1} M vehicle-updates/CPU-s, runs identical: {}, fingerprint {:016x}",
        first.metrics.average_travel_time,
        first.metrics.vehicle_steps,
        first.metrics.running,
        median,
        cpu[0],
        first.metrics.vehicle_steps as f64 / median / 1e6,
        identical,
        first.fingerprint
    );

    let mut cityflow_cpu = None;
    if let Some(python) = python {
        let out = Command::new(&python)
            .args([
                &script,
                "--dir",
                &dir,
                "--roadnet",
                "roadnet_3_4.json",
                "--flow",
                "anon_3_4_jinan_real.json",
                "--mode",
                "fixed15",
            ])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let json: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
            format!(
                "cityflow_bench.py printed no JSON ({e}): {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        let c = json["sim_cpu_seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "  CityFlow (same run, 1 thread): ATT {:.2} s, vehicle-steps {}, CPU {:.3} s -> speed-up {:.1}x CPU time",
            json["average_travel_time"].as_f64().unwrap_or(f64::NAN),
            json["vehicle_steps"],
            c,
            c / median
        );
        cityflow_cpu = Some(c);
    }

    if args.iter().any(|a| a == "--quick") {
        return Ok(());
    }

    // The generated 240-intersection city, roadnet plan.
    let spec = GridSpec::city_240();
    let city = generate_grid(&spec)?;
    let vehicles = city.flows.len();
    let city = Arc::new(Scenario::from_specs(
        settings(false),
        "city.roadnet",
        &city.roadnet,
        "city.flow",
        city.flows,
    )?);
    let city_run = run_timed(
        Arc::clone(&city),
        Control::RoadnetPlan,
        &protocol,
        &thread_cpu_seconds,
    );
    println!(
        "Generated city {}x{} ({} signalised intersections, {} vehicles/h)",
        spec.rows,
        spec.cols,
        spec.rows * spec.cols,
        vehicles
    );
    println!(
        "  CPU {:.3} s, vehicle-steps {}, {:.1} M vehicle-updates/CPU-s, ATT {:.1} s, trips {}, running at end {}, fingerprint {:016x}",
        city_run.cpu_seconds,
        city_run.metrics.vehicle_steps,
        city_run.vehicle_updates_per_cpu_second / 1e6,
        city_run.metrics.average_travel_time,
        city_run.metrics.trips_finished,
        city_run.metrics.running,
        city_run.fingerprint
    );

    // Parallel episodes: 4 JN1 episodes on 1 thread, then on 2.
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
        Arc::clone(&jn1),
        Control::FixedTime,
        &protocol,
        4,
        2,
        &wall,
        &thread_cpu_seconds,
    );
    let (one, two) = (&one_cpu.run, &two_cpu.run);
    let cpu_per_episode =
        |r: &traffic_sim::bench::ParallelCpuRun| r.thread_cpu_seconds.iter().sum::<f64>() / 4.0;
    println!(
        "Parallel JN1 episodes, CPU per episode: {:.3} s on 1 thread, {:.3} s on 2 threads (threads: {:?}); load average at start {}",
        cpu_per_episode(&one_cpu),
        cpu_per_episode(&two_cpu),
        two_cpu.thread_cpu_seconds,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "Parallel JN1 episodes: 4 on 1 thread {:.3} s wall, 4 on 2 threads {:.3} s wall -> {:.2}x; identical across runs and thread counts: {}",
        one.wall_seconds,
        two.wall_seconds,
        one.wall_seconds / two.wall_seconds,
        one.all_identical
            && two.all_identical
            && one.fingerprints[0] == two.fingerprints[0]
            && one.fingerprints[0] == first.fingerprint
    );
    println!(
        "JSON {}",
        serde_json::json!({
            "jn1_fixed_time": {
                "average_travel_time": first.metrics.average_travel_time,
                "vehicle_steps": first.metrics.vehicle_steps,
                "running_at_end": first.metrics.running,
                "cpu_seconds_median": median,
                "cpu_seconds_min": cpu[0],
                "vehicle_updates_per_cpu_second": first.metrics.vehicle_steps as f64 / median,
                "cityflow_cpu_seconds": cityflow_cpu,
                "speedup_cpu": cityflow_cpu.map(|c| c / median),
            },
            "city_240": {
                "vehicles": vehicles,
                "cpu_seconds": city_run.cpu_seconds,
                "vehicle_steps": city_run.metrics.vehicle_steps,
            },
            "parallel": {
                "one_thread_wall": one.wall_seconds,
                "two_threads_wall": two.wall_seconds,
                "speedup": one.wall_seconds / two.wall_seconds,
                "cpu_per_episode_one_thread": cpu_per_episode(&one_cpu),
                "cpu_per_episode_two_threads": cpu_per_episode(&two_cpu),
                "identical": one.all_identical && two.all_identical && one.fingerprints[0] == two.fingerprints[0],
            }
        })
    );
    Ok(())
}
