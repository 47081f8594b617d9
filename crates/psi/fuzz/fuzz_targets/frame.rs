//! Frame layout decoder: never panics; a decoded frame re-serialises to its input length.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = psi::wire::Frame::decode(data) {
        assert_eq!(frame.authenticated.len() + psi::wire::TAG_LEN, data.len());
    }
    if let Some(Ok(len)) = psi::wire::frame_len(data) {
        assert!(len >= psi::wire::HEADER_LEN + psi::wire::TAG_LEN);
    }
});
