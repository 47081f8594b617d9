#![no_main]
//! Handle values and the raw (undecoded) value iterator must agree on what is valid.
use handle_proto::HandleValue;
use handle_proto::codec::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = HandleValue::read_bytes(data);
    let raw: Vec<_> = handle_proto::value::raw_values(data).collect();
    if let Ok(v) = decoded {
        assert_eq!(v.to_bytes(), data);
        assert!(raw.len() == 1 && raw[0].is_ok());
    }
});
