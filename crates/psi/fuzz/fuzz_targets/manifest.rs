//! Manifest decoder: decoded manifests are valid and re-encode canonically.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = psi::JobManifest::decode(data) {
        assert!(m.validate().is_ok());
        assert_eq!(m.encode(), data);
    }
});
