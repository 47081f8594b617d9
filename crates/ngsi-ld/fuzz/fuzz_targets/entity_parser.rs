//! Fuzz the entity parser (all input modes) and the renderer on whatever it accepts; a parse
//! through a name memo (as batches parse) must give what a parse without one gives, twice; an
//! entity read as `RawJson` turns into the same `Value`, and its raw parse, where it takes it,
//! gives what the `Value` parse gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngsi_ld::raw::RawJson;
use ngsi_ld::{
    Context, CoreContext, Format, NameMemo, ParseOptions, RenderOptions, parse_entity_memo,
    parse_entity_raw, parse_entity_with, render,
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
    let raw = serde_json::from_slice::<RawJson<'_>>(data).expect("read as a Value, so as raw");
    assert_eq!(raw.to_value().to_string(), json.to_string());
    let mut raw_memo = NameMemo::default();
    for _ in 0..2 {
        let fast = parse_entity_raw(&raw, &ctx, opts, Some(&mut raw_memo));
        assert_eq!(fast, parse_entity_raw(&raw, &ctx, opts, None));
        if let Some(fast) = fast {
            match &alone {
                Ok(slow) => assert_eq!(slow, &fast),
                Err(e) => panic!("the raw parse took what the Value parse refused: {e:?}"),
            }
        }
    }
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
