//! Fuzz @context processing (with a small remote-context map) and term expansion/compaction.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use ngsi_ld::{Context, CoreContext};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    // The input may reference itself under two URLs, which exercises cycle detection.
    let mut remote: HashMap<String, Arc<serde_json::Value>> = HashMap::new();
    remote.insert(
        "https://fuzz.example/a".into(),
        Arc::new(serde_json::json!({ "@context": json.clone() })),
    );
    remote.insert(
        "https://fuzz.example/b".into(),
        Arc::new(serde_json::json!({ "@context": ["https://fuzz.example/a"] })),
    );
    for core in [CoreContext::V1_8, CoreContext::V1_9] {
        if let Ok(ctx) = Context::for_request(Some(&json), core, &remote) {
            for term in ["speed", "type", "ex:foo", "location", "@id"] {
                if let Some(iri) = ctx.expand_term(term) {
                    let _ = ctx.compact_iri(&iri);
                }
            }
        }
    }
});
