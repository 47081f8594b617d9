#![no_main]
//! Whole messages: decode, and anything that decodes must re-encode and decode to the same value.
use handle_proto::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::read_bytes(data) {
        let again = Message::read_bytes(&msg.encode()).expect("re-encoded message decodes");
        assert_eq!(again.body, msg.body);
    }
});
