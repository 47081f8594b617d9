//! Each loader on arbitrary bytes: must return Ok or a LoadError, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traffic_sim::spec::{parse_config, parse_flows, parse_roadnet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_config("config.json", text);
    let _ = parse_roadnet("roadnet.json", text);
    let _ = parse_flows("flow.json", text);
});
