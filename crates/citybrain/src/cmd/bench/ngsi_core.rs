//! `bench ngsi-core`: throughput of the pure NGSI-LD core on one thread (context compilation,
//! entity parsing and rendering, `q` parsing and matching, geo matching, a brute-force type + `q`
//! scan over 100,000 entities). These bound what the broker can do per core before storage and HTTP;
//! the end-to-end targets of issue 3 are measured by the broker benchmark.

use super::{Figure, Report};
use ngsi_ld::context::preload::test_suite_urls;
use ngsi_ld::query::parse_q;
use ngsi_ld::{
    Context, CoreContext, Format, PreloadMap, Query, QueryParams, RenderOptions, parse_entity,
    render,
};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::Instant;

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

/// Operations per second of `f` over `iterations` calls (after a short warm-up).
fn rate(iterations: usize, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..iterations.min(100) {
        f(i);
    }
    let start = Instant::now();
    for i in 0..iterations {
        f(i);
    }
    iterations as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

fn figure(name: &str, value: f64, unit: &'static str) -> Figure {
    Figure {
        name: name.to_owned(),
        value,
        unit,
        target: None,
        met: None,
    }
}

pub(crate) fn run(scale: usize) -> anyhow::Result<Report> {
    let suite = PreloadMap::with_test_suite();
    let compound = json!(test_suite_urls()[1].0);
    let ctx = Context::for_request(Some(&compound), CoreContext::V1_9, &suite)?;
    let body = template(1);
    let entity = parse_entity(&body, &ctx)?;
    let mut figures = vec![
        figure(
            "compile ETSI suite @context (remote + core v1.8)",
            rate(500 * scale, |_| {
                black_box(Context::for_request(Some(&compound), CoreContext::V1_9, &suite).ok());
            }),
            "ops/s",
        ),
        figure(
            "parse template entity (8 attributes)",
            rate(20_000 * scale, |_| {
                black_box(parse_entity(&body, &ctx).ok());
            }),
            "ops/s",
        ),
    ];
    // A batch body of 1000 template entities read from its text (what a batch upsert parses).
    let text = serde_json::to_string(&(0..1000).map(template).collect::<Vec<_>>())?;
    figures.push(figure(
        "batch body of 1000 template entities to entities",
        1000.0
            * rate(20 * scale, |_| {
                let items: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
                black_box(
                    items
                        .iter()
                        .filter_map(|v| parse_entity(v, &ctx).ok())
                        .count(),
                );
            }),
        "entities/s",
    ));
    for (label, format) in [
        ("normalized", Format::Normalized),
        ("keyValues", Format::KeyValues),
    ] {
        let opts = RenderOptions {
            format,
            ..Default::default()
        };
        figures.push(figure(
            &format!("render template entity, {label}"),
            rate(20_000 * scale, |_| {
                black_box(render(&entity, &opts, &ctx));
            }),
            "ops/s",
        ));
    }
    figures.push(figure(
        "parse q `speed>50;brandName==\"brand-7\"`",
        rate(50_000 * scale, |_| {
            black_box(parse_q("speed>50;brandName==\"brand-7\"", &ctx).ok());
        }),
        "ops/s",
    ));
    let n = 100_000;
    let entities = (0..n)
        .map(|i| parse_entity(&template(i), &ctx))
        .collect::<Result<Vec<_>, _>>()?;
    let query = Query::parse(
        &QueryParams {
            types: Some("Vehicle"),
            q: Some("brandName==\"brand-0\";speed>=0"),
            ..Default::default()
        },
        &ctx,
    )?;
    let per_scan = 1.0
        / rate(3 * scale, |_| {
            black_box(entities.iter().filter(|e| query.matches(e)).count());
        });
    figures.push(figure(
        "brute-force type + q scan of 100,000 entities",
        per_scan * 1000.0,
        "ms",
    ));
    let geo = Query::parse(
        &QueryParams {
            georel: Some("near;maxDistance==500"),
            geometry: Some("Point"),
            coordinates: Some("[-3.65,40.41]"),
            ..Default::default()
        },
        &ctx,
    )?;
    figures.push(figure(
        "geo near;maxDistance==500 match",
        rate(200_000 * scale, |i| {
            black_box(entities.get(i % n).map(|e| geo.matches(e)));
        }),
        "ops/s",
    ));
    Ok(Report {
        benchmark: "ngsi-core",
        description: "pure NGSI-LD core throughput on one thread (parse, render, @context, q, geo)",
        figures,
    })
}
