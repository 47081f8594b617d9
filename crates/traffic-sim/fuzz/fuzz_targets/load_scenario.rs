//! A whole scenario from arbitrary bytes: the input is split at the first two NUL bytes into
//! config, roadnet and flow texts; whatever loads is simulated for a few steps. Loading must
//! fail with a LoadError or produce a scenario the simulator runs without panicking.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use traffic_sim::{Scenario, Simulation};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (Some(config), Some(roadnet), Some(flow)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(config), Ok(roadnet), Ok(flow)) =
        (std::str::from_utf8(config), std::str::from_utf8(roadnet), std::str::from_utf8(flow))
    else {
        return;
    };
    let Ok(config) = traffic_sim::spec::parse_config("config.json", config) else { return };
    let Ok(scenario) = Scenario::load(&config, "roadnet.json", roadnet, "flow.json", flow) else { return };
    // Bound the work: tiny steps or huge networks are legal but slow.
    if scenario.network.drivable_count() > 2_000 || scenario.flows.len() > 2_000 {
        return;
    }
    let mut sim = Simulation::new(Arc::new(scenario));
    for _ in 0..30 {
        sim.step();
    }
    let _ = sim.metrics();
});
