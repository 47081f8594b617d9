//! Secure-aggregation message decoders; whatever decodes re-encodes identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use psi::secagg::{ClientKey, MaskedInput, RecoveryRequest, RecoveryShares, Roster};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ClientKey::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = Roster::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = MaskedInput::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = RecoveryRequest::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(m) = RecoveryShares::decode(data) {
        assert_eq!(m.encode(), data);
    }
});
