//! Runs the fidelity protocol (P15 FixedTime, the roadnet's plan, P15 MaxPressure) on the
//! benchmark demand files and prints one JSON line per run.
//!
//! usage: cargo run --release -p traffic-sim --example fidelity -- [DATA_DIR] [FLOW_FILTER]

use std::sync::Arc;
use std::time::Instant;

use traffic_sim::control::{FixedTime, MaxPressure, Protocol, run_episode};
use traffic_sim::spec::{ConfigSpec, parse_flows, parse_roadnet};
use traffic_sim::{EngineSettings, Scenario, Simulation};

const FILES: [(&str, &str, &str); 6] = [
    ("jinan_3x4", "roadnet_3_4.json", "anon_3_4_jinan_real.json"),
    (
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real_2000.json",
    ),
    (
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real_2500.json",
    ),
    (
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real.json",
    ),
    (
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real_5734.json",
    ),
    (
        "hangzhou_4x4",
        "roadnet_4_4.json",
        "anon_4_4_hangzhou_real_5816.json",
    ),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let data = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "../shared/data/traffic".into());
    let filter = args.get(2).cloned().unwrap_or_default();
    let modes = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "fixed15,default,maxpressure".into());
    for (dir, roadnet_file, flow_file) in FILES {
        if !flow_file.contains(&filter) {
            continue;
        }
        let roadnet_text = std::fs::read_to_string(format!("{data}/{dir}/{roadnet_file}"))?;
        let flow_text = std::fs::read_to_string(format!("{data}/{dir}/{flow_file}"))?;
        let roadnet = parse_roadnet(roadnet_file, &roadnet_text)?;
        let flows = parse_flows(flow_file, &flow_text)?;
        for mode in modes.split(',') {
            let config = ConfigSpec {
                interval: 1.0,
                seed: 0,
                dir: String::new(),
                roadnet_file: roadnet_file.into(),
                flow_file: flow_file.into(),
                rl_traffic_light: mode != "default",
                lane_change: true,
                save_replay: false,
            };
            let scenario = Arc::new(Scenario::from_specs(
                EngineSettings::from_config(&config),
                roadnet_file,
                &roadnet,
                flow_file,
                flows.clone(),
            )?);
            let mut sim = Simulation::new(scenario);
            let protocol = Protocol::p15();
            let start = Instant::now();
            let report = match mode {
                "fixed15" => run_episode(
                    &mut sim,
                    Some(&mut FixedTime::new(vec![1, 2, 3, 4])),
                    &protocol,
                ),
                "maxpressure" => run_episode(&mut sim, Some(&mut MaxPressure), &protocol),
                _ => run_episode(&mut sim, None, &protocol),
            };
            println!(
                "{{\"flow\": \"{flow_file}\", \"mode\": \"{mode}\", \"average_travel_time\": {:.4}, \"vehicle_steps\": {}, \"running_at_end\": {}, \"waiting_at_end\": {}, \"trips\": {}, \"seconds\": {:.3}}}",
                report.average_travel_time,
                report.vehicle_steps,
                report.running,
                report.waiting_to_enter,
                report.trips_finished,
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
