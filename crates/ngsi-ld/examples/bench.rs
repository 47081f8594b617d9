//! Micro-benchmarks of the pure NGSI-LD core (the hot paths of the broker), no criterion needed:
//!
//! ```text
//! cargo run --release -p ngsi-ld --example bench [-- <scale>]
//! ```
//!
//! `scale` (default 1) multiplies the iteration counts. Each line reports operations per second and
//! the mean time per operation, measured over the whole loop with `std::time::Instant` (the library
//! itself never reads a clock).

use std::hint::black_box;
use std::time::Instant;

use ngsi_ld::context::preload::test_suite_urls;
use ngsi_ld::query::parse_q;
use ngsi_ld::query::q::matches;
use ngsi_ld::{
    Context, CoreContext, Format, NoLoader, PreloadMap, Query, QueryParams, RenderOptions,
    parse_entity, render,
};
use serde_json::{Value, json};

const VEHICLE: &str = include_str!("../tests/fixtures/sdm/Vehicle/example-normalized.jsonld");

fn measure(name: &str, iterations: usize, mut f: impl FnMut(usize)) {
    // Warm up caches and lazily built core contexts.
    for i in 0..iterations.min(100) {
        f(i);
    }
    let start = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    let elapsed = start.elapsed();
    let per_op = elapsed.as_secs_f64() / iterations as f64;
    println!(
        "{name:<58} {:>12.0} ops/s {:>10.2} us/op  ({iterations} iterations)",
        1.0 / per_op,
        per_op * 1e6
    );
}

/// The entity shape of Stellio's load tests: 6 properties, 1 relationship, 1 GeoProperty.
fn template(i: usize) -> Value {
    json!({
        "id": format!("urn:ngsi-ld:Vehicle:{i}"),
        "type": if i.is_multiple_of(10) { "Vehicle" } else { "Building" },
        "speed": {"type": "Property", "value": (i % 1000) as f64 / 10.0, "observedAt": "2024-05-01T10:00:00Z"},
        "brandName": {"type": "Property", "value": format!("brand-{}", i % 50)},
        "fuelLevel": {"type": "Property", "value": i % 100},
        "temperature": {"type": "Property", "value": 21.5, "unitCode": "CEL"},
        "status": {"type": "Property", "value": "active"},
        "name": {"type": "Property", "value": format!("vehicle {i}")},
        "isParked": {"type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:Downtown1"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-3.7 + (i % 1000) as f64 * 1e-4, 40.4 + (i / 1000) as f64 * 1e-4]}}
    })
}

fn main() {
    let scale: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let core = Context::core(CoreContext::V1_9);
    let suite = PreloadMap::with_test_suite();
    let compound_url = json!(test_suite_urls()[1].0);
    let suite_ctx = Context::for_request(Some(&compound_url), CoreContext::V1_9, &suite)
        .expect("suite context");

    let vehicle: Value = serde_json::from_str(VEHICLE).expect("fixture is JSON");
    let mut body = vehicle.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("@context");
    }
    let sdm_entity = parse_entity(&body, &core).expect("vehicle parses");
    let template_json = template(1);
    let template_entity = parse_entity(&template_json, &suite_ctx).expect("template parses");

    println!("ngsi-ld core micro-benchmarks (scale {scale})");
    measure("context: core only (no @context)", 200_000 * scale, |_| {
        black_box(Context::for_request(None, CoreContext::V1_9, &NoLoader).expect("ok"));
    });
    measure(
        "context: ETSI suite compound (remote, preloaded)",
        5_000 * scale,
        |_| {
            black_box(
                Context::for_request(Some(&compound_url), CoreContext::V1_9, &suite).expect("ok"),
            );
        },
    );
    measure(
        "parse: Stellio template entity (8 attributes)",
        100_000 * scale,
        |_| {
            black_box(parse_entity(&template_json, &suite_ctx).expect("ok"));
        },
    );
    measure(
        "parse: SDM Vehicle example (36 attributes)",
        20_000 * scale,
        |_| {
            black_box(parse_entity(&body, &core).expect("ok"));
        },
    );
    measure(
        "parse: JSON text + template entity",
        100_000 * scale,
        |_| {
            let text = template_json.to_string();
            let v: Value = serde_json::from_str(&text).expect("ok");
            black_box(parse_entity(&v, &suite_ctx).expect("ok"));
        },
    );
    for (label, format) in [
        ("normalized", Format::Normalized),
        ("concise", Format::Concise),
        ("keyValues", Format::KeyValues),
    ] {
        let opts = RenderOptions {
            format,
            ..Default::default()
        };
        measure(
            &format!("render {label}: template entity"),
            100_000 * scale,
            |_| {
                black_box(render(&template_entity, &opts, &suite_ctx));
            },
        );
    }
    measure("render normalized: SDM Vehicle", 20_000 * scale, |_| {
        black_box(render(&sdm_entity, &RenderOptions::default(), &core));
    });
    measure(
        "q parse: speed>50;brandName==\"brand-7\"",
        200_000 * scale,
        |_| {
            black_box(parse_q("speed>50;brandName==\"brand-7\"", &suite_ctx).expect("ok"));
        },
    );

    // Scan: a type + q query returning 100 of 100k entities (the issue's query shape), evaluated
    // by brute force over parsed entities; a store adds indexes on top.
    let n = 100_000;
    let entities: Vec<_> = (0..n)
        .map(|i| parse_entity(&template(i), &suite_ctx).expect("ok"))
        .collect();
    let query = Query::parse(
        &QueryParams {
            types: Some("Vehicle"),
            q: Some("brandName==\"brand-0\";speed>=0"),
            ..Default::default()
        },
        &suite_ctx,
    )
    .expect("query parses");
    let hits = entities.iter().filter(|e| query.matches(e)).count();
    assert_eq!(hits, 2_000, "the query selects brand-0 Vehicles");
    measure(
        &format!("query scan type+q over {n} entities ({hits} hits)"),
        20 * scale,
        |_| {
            black_box(entities.iter().filter(|e| query.matches(e)).count());
        },
    );
    let q_only = parse_q("fuelLevel==7", &suite_ctx).expect("ok");
    measure(
        "q match: fuelLevel==7 on one entity",
        2_000_000 * scale,
        |i| {
            black_box(matches(&q_only, &entities[i % n]));
        },
    );
    let geo = Query::parse(
        &QueryParams {
            georel: Some("near;maxDistance==500"),
            geometry: Some("Point"),
            coordinates: Some("[-3.65,40.41]"),
            ..Default::default()
        },
        &suite_ctx,
    )
    .expect("geo query parses");
    measure(
        "geo near;maxDistance==500 on one entity",
        1_000_000 * scale,
        |i| {
            black_box(geo.matches(&entities[i % n]));
        },
    );
}
