#![no_main]
//! World (site set) JSON: parse and validate; never panics.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cpn_core::world::World::from_json(text);
    }
});
