#![no_main]
//! REST JSON values: anything accepted converts back to JSON that is accepted again.
use handle_proto::json::{value_from_json, value_to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(v) = value_from_json(&json, 0) {
        let back = value_from_json(&value_to_json(&v), 0).expect("our own JSON decodes");
        assert_eq!(back.data, v.data);
    }
});
