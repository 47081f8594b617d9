#![no_main]
//! Job JSON: parse, then validate against the east/west world; never panics.
use cpn_core::job::JobSpec;
use cpn_core::sites::{EastWestOptions, east_west};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(spec) = JobSpec::from_json(text) {
            let _ = spec.validate(&east_west(&EastWestOptions::default()));
        }
    }
});
