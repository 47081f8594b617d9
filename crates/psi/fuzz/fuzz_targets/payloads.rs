//! Every PSI payload decoder; whatever decodes must re-encode to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use psi::wire;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 7 {
        0 => {
            if let Ok(h) = wire::Hello::decode(body) {
                assert_eq!(h.encode(), body);
            }
        }
        1 => {
            if let Ok(p) = wire::decode_points(body) {
                assert_eq!(wire::encode_points(&p), body);
            }
        }
        2 => {
            if let Ok(v) = wire::decode_valued(body) {
                assert_eq!(wire::encode_valued(&v), body);
            }
        }
        3 => {
            let len = 8 + usize::from(selector / 7 % 5);
            if let Ok(t) = wire::decode_tags(body, len) {
                assert_eq!(wire::encode_tags(&t, len), body);
            }
        }
        4 => {
            if let Ok(o) = wire::Outcome::decode(body) {
                assert_eq!(o.encode(), body);
            }
        }
        5 => {
            let _ = wire::decode_confirm(body);
        }
        _ => {
            if let Ok(code) = wire::decode_abort(body) {
                assert_eq!(wire::encode_abort(code), body);
            }
        }
    }
});
