//! What the experiment examples share: loading a benchmark scenario from the data directory.

use std::sync::Arc;
use traffic_signals::protocol::controllable;
use traffic_sim::Scenario;
use traffic_sim::spec::ConfigSpec;

/// The scenario `DATA/DIR/{ROADNET,FLOW}` as the protocols run it: 1 s steps, seed 0, lane
/// changes on, every signal under the controller's command. Panics with the file's name on
/// an unreadable or invalid file (these are experiment tools).
pub fn load(data: &str, dir: &str, roadnet: &str, flow: &str) -> Arc<Scenario> {
    let read = |name: &str| {
        let path = format!("{data}/{dir}/{name}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let config = ConfigSpec::benchmark(roadnet, flow);
    let scenario = Scenario::load(&config, roadnet, &read(roadnet), flow, &read(flow))
        .unwrap_or_else(|e| panic!("{data}/{dir}: {e}"));
    controllable(&scenario)
}
