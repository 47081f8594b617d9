#![no_main]
//! Alibaba trace CSV: parse, map to jobs; never panics.
use cpn_core::trace::{Augment, parse_pods, pods_to_specs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(pods) = parse_pods(text) {
            let _ = pods_to_specs(&pods, &Augment::default());
        }
    }
});
