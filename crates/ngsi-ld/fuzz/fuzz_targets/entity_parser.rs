//! Fuzz the entity parser (all input modes) and the renderer on whatever it accepts; a parse
//! through a name memo (as batches parse) must give what a parse without one gives, twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngsi_ld::{
    Context, CoreContext, Format, NameMemo, ParseOptions, RenderOptions, parse_entity_memo,
    parse_entity_with, render,
};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let ctx = Context::core(CoreContext::V1_9);
    let flags = data.first().copied().unwrap_or(0);
    let opts = ParseOptions {
        key_values: flags & 1 != 0,
        fragment: flags & 2 != 0,
        allow_null: flags & 4 != 0,
    };
    let alone = parse_entity_with(&json, &ctx, opts);
    let mut memo = NameMemo::default();
    for _ in 0..2 {
        match (&alone, parse_entity_memo(&json, &ctx, opts, &mut memo)) {
            (Ok(a), Ok(b)) => assert_eq!(a, &b),
            (Err(a), Err(b)) => assert_eq!(a.detail, b.detail),
            (a, b) => panic!("without a memo {a:?}, with one {b:?}"),
        }
    }
    if let Ok(parsed) = alone {
        for format in [Format::Normalized, Format::Concise, Format::KeyValues] {
            let _ = render(
                &parsed.entity,
                &RenderOptions {
                    format,
                    sys_attrs: true,
                    ..Default::default()
                },
                &ctx,
            );
        }
    }
});
