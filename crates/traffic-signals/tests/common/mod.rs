//! Test helpers: locating `shared/` and loading the benchmark scenarios.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use traffic_sim::spec::{ConfigSpec, parse_flows, parse_roadnet};
use traffic_sim::{EngineSettings, Scenario};

/// The project's `shared/` directory: `$CITYBRAIN_SHARED`, or `shared/` beside the checkout
/// (CI), or beside the directory holding the checkout (developer worktrees).
pub fn shared_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CITYBRAIN_SHARED") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for up in [3, 4] {
        let mut p = manifest.clone();
        for _ in 0..up {
            p.pop();
        }
        p.push("shared");
        if p.join("data/traffic").is_dir() {
            return p;
        }
    }
    panic!("shared/data/traffic not found next to the checkout; set CITYBRAIN_SHARED");
}

pub fn read(rel: &str) -> String {
    let path = shared_dir().join("data/traffic").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

pub fn settings(rl_traffic_light: bool, lane_change: bool) -> EngineSettings {
    EngineSettings::from_config(&ConfigSpec {
        interval: 1.0,
        seed: 0,
        dir: String::new(),
        roadnet_file: String::new(),
        flow_file: String::new(),
        rl_traffic_light,
        lane_change,
        save_replay: false,
    })
}

/// Loads `<dir>/<roadnet>` with `<dir>/<flow>`.
pub fn scenario(dir: &str, roadnet: &str, flow: &str, rl_traffic_light: bool) -> Arc<Scenario> {
    let r = parse_roadnet(roadnet, &read(&format!("{dir}/{roadnet}"))).expect("roadnet parses");
    let f = parse_flows(flow, &read(&format!("{dir}/{flow}"))).expect("flows parse");
    Arc::new(
        Scenario::from_specs(settings(rl_traffic_light, true), roadnet, &r, flow, f)
            .expect("scenario builds"),
    )
}

pub fn jn1(rl_traffic_light: bool) -> Arc<Scenario> {
    scenario(
        "jinan_3x4",
        "roadnet_3_4.json",
        "anon_3_4_jinan_real.json",
        rl_traffic_light,
    )
}
