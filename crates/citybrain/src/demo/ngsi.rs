//! Demo component: the city's roads and intersections as Smart Data Model entities.
//!
//! Reads the demo city's CityFlow road network (Jinan 3x4, `jinan_3x4/roadnet_3_4.json`,
//! found like `signal eval` finds it) and loads, in one atomic batch through the broker, into
//! tenant `demo`:
//! - one `RoadSegment` (Smart Data Models, dataModel.Transportation) per CityFlow road (a
//!   directed, one-way carriageway): `location` (LineString), `startPoint`, `endPoint`,
//!   `length` (m), `totalLaneNumber`, `laneUsage`, `width` (m), `maximumAllowedSpeed` (km/h),
//!   `category` `oneway`, `name`, plus the relationships `refStartJunction`/`refEndJunction`;
//! - one `Junction` per CityFlow intersection: `location` (Point), `name`, `isVirtual` (a
//!   boundary node without a signal) and `refRoadSegment` (the segments meeting there).
//!   Smart Data Models has no intersection type, so `Junction` and the two `ref*Junction`
//!   relationships are terms of the NGSI-LD default context (`type=Junction` needs no Link).
//!
//! Attribute IRIs are those of the Transportation model's `context.jsonld` (a copy is in
//! `shared/data/smart-data-models/_contexts`). The data set is anonymised: its coordinates are
//! metres on a local plane. We place that plane at a fixed, documented origin, [`ORIGIN_LON`],
//! [`ORIGIN_LAT`] (Quancheng Square, Jinan), with x east and y north, by an equirectangular
//! projection (exact to well under a metre over the few kilometres of the grid).
//!
//! Loading replaces earlier copies, so a restarted demo on the same data directory is fine.

use super::{DEMO_TENANT, DemoContext, DemoPart};
use anyhow::Context as _;
use ngsi_broker::{Broker, BrokerSettings, ContextResolver};
use ngsi_ld::{
    Context, CoreContext, Entity, NgsiError, ParseOptions, PreloadMap, parse_entity_with,
};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use store::{TenantId, TenantScope};

/// Longitude of the road network's (0, 0) point (degrees east).
pub(crate) const ORIGIN_LON: f64 = 117.0194;
/// Latitude of the road network's (0, 0) point (degrees north).
pub(crate) const ORIGIN_LAT: f64 = 36.6626;
/// Mean Earth radius (m), as in WGS 84's authalic sphere.
const EARTH_RADIUS_M: f64 = 6_371_007.2;

const SDM: &str = "https://smartdatamodels.org/dataModel.Transportation/";
const SDM_COMMON: &str = "https://smartdatamodels.org/";
/// The type IRI of road segments (for `?type=`).
pub(crate) const ROAD_SEGMENT_TYPE: &str =
    "https://smartdatamodels.org/dataModel.Transportation/RoadSegment";

/// One batch step (the broker's `BatchItem`): replace whatever is there by the entity.
type Replace = dyn FnOnce(Option<std::sync::Arc<Entity>>, ngsi_ld::Timestamp) -> Result<Option<Entity>, NgsiError>
    + Send;

/// Starts this component; returns its part of the banner, if any.
pub(crate) async fn start(context: &DemoContext<'_>) -> anyhow::Result<Option<DemoPart>> {
    let part = |lines| {
        Some(DemoPart {
            title: "NGSI-LD city model (Smart Data Models, tenant 'demo')",
            lines,
        })
    };
    let file = match crate::cmd::signal_data_dir() {
        Ok(d) => d.join("jinan_3x4/roadnet_3_4.json"),
        Err(e) => return Ok(part(vec![format!("road network not loaded: {e}")])),
    };
    let entities = match read_roadnet(&file) {
        Ok(e) => e,
        Err(e) => return Ok(part(vec![format!("road network not loaded: {e:#}")])),
    };
    let roads = entities
        .iter()
        .filter(|e| e.types.iter().any(|t| t == ROAD_SEGMENT_TYPE))
        .count();
    let junctions = entities.len() - roads;
    // The broker's entity operations over the platform's store (the HTTP routes use the
    // same store); the entities are fully expanded, so no @context resolution is needed.
    let store: Arc<dyn store::NgsiStore> = Arc::new(context.platform.store.clone());
    let contexts = ContextResolver::new(PreloadMap::new(), None, Arc::clone(&store), 1);
    let broker = Broker::new(
        store,
        contexts,
        Arc::clone(&context.platform.identity),
        BrokerSettings::default(),
    );
    let scope = TenantScope::authorized(TenantId::new(DEMO_TENANT).context("demo tenant id")?);
    let items = entities
        .into_iter()
        .map(|entity| {
            let id = entity.id.clone();
            let item: Box<Replace> = Box::new(move |_, _| Ok(Some(entity)));
            (id, item)
        })
        .collect();
    let outcome = broker
        .batch(&scope, items)
        .await
        .map_err(|e| anyhow::anyhow!("loading the demo road network into the broker: {e}"))?;
    if let Some((id, e)) = outcome.errors.first() {
        anyhow::bail!("loading the demo road network: entity {id}: {e}");
    }
    let base = &context.base_url;
    Ok(part(vec![
        format!(
            "{roads} RoadSegment and {junctions} Junction entities from {} (origin {ORIGIN_LON} E, {ORIGIN_LAT} N)",
            file.display()
        ),
        format!(
            "roads:     curl -s '{base}/ngsi-ld/v1/entities?type={ROAD_SEGMENT_TYPE}&limit=100' -H 'authorization: Bearer <access_token>'"
        ),
        format!(
            "junctions: curl -s '{base}/ngsi-ld/v1/entities?type=Junction&limit=100' -H 'authorization: Bearer <access_token>'"
        ),
    ]))
}

/// (lon, lat) of a point `x` m east and `y` m north of the origin.
fn lon_lat(x: f64, y: f64) -> [f64; 2] {
    let lat = ORIGIN_LAT + (y / EARTH_RADIUS_M).to_degrees();
    let lon = ORIGIN_LON + (x / (EARTH_RADIUS_M * ORIGIN_LAT.to_radians().cos())).to_degrees();
    [lon, lat]
}

fn point(v: &Value) -> anyhow::Result<(f64, f64)> {
    let x = v["x"].as_f64().context("a point without a numeric x")?;
    let y = v["y"].as_f64().context("a point without a numeric y")?;
    Ok((x, y))
}

fn id_part(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn segment_id(road: &str) -> String {
    format!("urn:ngsi-ld:RoadSegment:jinan:{}", id_part(road))
}

fn junction_id(intersection: &str) -> String {
    format!("urn:ngsi-ld:Junction:jinan:{}", id_part(intersection))
}

/// The road network file as entities (road segments first).
fn read_roadnet(file: &Path) -> anyhow::Result<Vec<Entity>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let net: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let ctx = Context::core(CoreContext::V1_9);
    let parse = |doc: Value| -> anyhow::Result<Entity> {
        Ok(parse_entity_with(&doc, &ctx, ParseOptions::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .entity)
    };
    let roads = net["roads"]
        .as_array()
        .with_context(|| format!("{}: no `roads` array", file.display()))?;
    let intersections = net["intersections"]
        .as_array()
        .with_context(|| format!("{}: no `intersections` array", file.display()))?;
    let mut out = Vec::with_capacity(roads.len() + intersections.len());
    for road in roads {
        let name = road["id"].as_str().context("a road without an id")?;
        let pts = road["points"]
            .as_array()
            .with_context(|| format!("road {name}: no points"))?
            .iter()
            .map(point)
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("road {name}"))?;
        anyhow::ensure!(pts.len() >= 2, "road {name}: fewer than two points");
        let length: f64 = pts
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).hypot(w[1].1 - w[0].1))
            .sum();
        let coords: Vec<[f64; 2]> = pts.iter().map(|&(x, y)| lon_lat(x, y)).collect();
        let lanes = road["lanes"]
            .as_array()
            .with_context(|| format!("road {name}: no lanes"))?;
        let width: f64 = lanes.iter().filter_map(|l| l["width"].as_f64()).sum();
        let max_speed = lanes
            .iter()
            .filter_map(|l| l["maxSpeed"].as_f64())
            .fold(0.0_f64, f64::max);
        let mut doc = json!({
            "id": segment_id(name),
            "type": ROAD_SEGMENT_TYPE,
            "location": {"type": "GeoProperty", "value": {"type": "LineString", "coordinates": coords}},
            format!("{SDM}startPoint"): {"type": "Property", "value": {"type": "Point", "coordinates": coords[0]}},
            format!("{SDM}endPoint"): {"type": "Property", "value": {"type": "Point", "coordinates": coords[coords.len() - 1]}},
            format!("{SDM}length"): {"type": "Property", "value": (length * 100.0).round() / 100.0, "unitCode": "MTR"},
            format!("{SDM}totalLaneNumber"): {"type": "Property", "value": lanes.len()},
            format!("{SDM}laneUsage"): {"type": "Property", "value": vec!["forward"; lanes.len()]},
            format!("{SDM}width"): {"type": "Property", "value": width, "unitCode": "MTR"},
            format!("{SDM}maximumAllowedSpeed"): {"type": "Property", "value": (max_speed * 3.6 * 10.0).round() / 10.0, "unitCode": "KMH"},
            format!("{SDM}category"): {"type": "Property", "value": ["oneway"]},
            format!("{SDM_COMMON}name"): {"type": "Property", "value": name},
            format!("{SDM_COMMON}source"): {"type": "Property", "value": "CityFlow benchmark Jinan 3x4 (roadnet_3_4.json)"},
        });
        for (key, end) in [
            ("refStartJunction", "startIntersection"),
            ("refEndJunction", "endIntersection"),
        ] {
            if let Some(j) = road[end].as_str() {
                doc[key] = json!({"type": "Relationship", "object": junction_id(j)});
            }
        }
        out.push(parse(doc).with_context(|| format!("road {name}"))?);
    }
    for node in intersections {
        let name = node["id"]
            .as_str()
            .context("an intersection without an id")?;
        let (x, y) = point(&node["point"]).with_context(|| format!("intersection {name}"))?;
        let mut doc = json!({
            "id": junction_id(name),
            "type": "Junction",
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": lon_lat(x, y)}},
            format!("{SDM_COMMON}name"): {"type": "Property", "value": name},
            "isVirtual": {"type": "Property", "value": node["virtual"].as_bool().unwrap_or(false)},
        });
        let segments: Vec<String> = node["roads"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).map(segment_id).collect())
            .unwrap_or_default();
        if !segments.is_empty() {
            doc[format!("{SDM}refRoadSegment")] =
                json!({"type": "Relationship", "object": segments});
        }
        out.push(parse(doc).with_context(|| format!("intersection {name}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_maps_to_itself_and_a_kilometre_north_is_about_0_009_degrees() {
        assert_eq!(lon_lat(0.0, 0.0), [ORIGIN_LON, ORIGIN_LAT]);
        let [lon, lat] = lon_lat(0.0, 1000.0);
        assert_eq!(lon, ORIGIN_LON);
        assert!((lat - ORIGIN_LAT - 0.008_993).abs() < 1e-5, "{lat}");
    }
}
