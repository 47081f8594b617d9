#![no_main]
//! Typed data (HS_ADMIN, HS_SITE, HS_VLIST, HS_PUBKEY, ...): decode then re-encode identically.
use handle_proto::data::TypedData;
use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 9] = ["HS_ADMIN", "HS_SITE", "HS_VLIST", "HS_SERV", "HS_ALIAS", "HS_SECKEY", "HS_PUBKEY", "URL", "OTHER"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let t = TYPES[selector as usize % TYPES.len()];
    if let Ok(typed) = TypedData::decode(t, rest) {
        assert_eq!(typed.encode(), rest);
    }
});
