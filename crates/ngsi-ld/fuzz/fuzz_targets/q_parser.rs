//! Fuzz the `q`, `scopeQ`, `type` and geo-query parsers, and evaluate what parses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngsi_ld::query::{parse_q, parse_scope_q, parse_type_expr, q};
use ngsi_ld::{Context, CoreContext, Entity, GeoQuery};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ctx = Context::core(CoreContext::V1_9);
    if let Ok(expr) = parse_q(text, &ctx) {
        let entity = Entity::new("urn:x", "https://uri.etsi.org/ngsi-ld/default-context/T");
        let _ = q::matches(&expr, &entity);
    }
    let _ = parse_scope_q(text);
    let _ = parse_type_expr(text, &ctx);
    if let Some((rel, coords)) = text.split_once('\n') {
        let _ = GeoQuery::from_params(rel, "Polygon", coords, None);
        let _ = GeoQuery::from_params(rel, "Point", coords, None);
    }
});
