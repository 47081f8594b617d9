//! GeoJSON geometries and NGSI-LD geo-queries (spec 4.10): `georel`, `geometry`, `coordinates`,
//! `geoproperty`.
//!
//! Coordinates are WGS 84 longitude/latitude. Topological relations (`within`, `contains`, `intersects`,
//! `disjoint`, `overlaps`, `equals`) use the DE-9IM relate of the `geo` crate on plain lon/lat
//! coordinates, which is what PostGIS does for `geometry` columns. `near` uses great-circle (haversine)
//! distance in metres from the query point to the closest point of the entity geometry (zero inside
//! a polygon).
//!
//! For indexing, [`bounding_box`] gives an entity geometry's envelope and [`GeoQuery::prefilter`] the
//! envelope any matching entity's envelope must intersect (or `None` when no envelope test is valid,
//! as for `disjoint` or a bare `minDistance`), so a store can pre-filter with an R-tree and then call
//! [`GeoQuery::matches_geometry`] on the candidates.

use geo::{
    BoundingRect, Closest, Coord, Distance, Geometry, Haversine, HaversineClosestPoint, LineString,
    MultiLineString, MultiPoint, MultiPolygon, Point, Polygon, Relate,
};
use serde_json::Value;

use crate::error::{NgsiError, Result};

/// Mean Earth radius used by the haversine formula of the `geo` crate, in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The GeoJSON geometry types NGSI-LD queries accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeometryType {
    /// `Point`.
    Point,
    /// `MultiPoint`.
    MultiPoint,
    /// `LineString`.
    LineString,
    /// `MultiLineString`.
    MultiLineString,
    /// `Polygon`.
    Polygon,
    /// `MultiPolygon`.
    MultiPolygon,
}

impl GeometryType {
    /// The type named `name` (GeoJSON spelling).
    pub fn from_name(name: &str) -> Option<GeometryType> {
        Some(match name {
            "Point" => GeometryType::Point,
            "MultiPoint" => GeometryType::MultiPoint,
            "LineString" => GeometryType::LineString,
            "MultiLineString" => GeometryType::MultiLineString,
            "Polygon" => GeometryType::Polygon,
            "MultiPolygon" => GeometryType::MultiPolygon,
            _ => return None,
        })
    }
}

/// An axis-aligned lon/lat box: `[min_lon, min_lat, max_lon, max_lat]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    /// West edge (degrees).
    pub min_lon: f64,
    /// South edge (degrees).
    pub min_lat: f64,
    /// East edge (degrees).
    pub max_lon: f64,
    /// North edge (degrees).
    pub max_lat: f64,
}

impl BBox {
    /// True if the two boxes share at least one point.
    pub fn intersects(&self, other: &BBox) -> bool {
        self.min_lon <= other.max_lon
            && other.min_lon <= self.max_lon
            && self.min_lat <= other.max_lat
            && other.min_lat <= self.max_lat
    }

    /// As a GeoJSON `bbox` array.
    pub fn to_array(&self) -> [f64; 4] {
        [self.min_lon, self.min_lat, self.max_lon, self.max_lat]
    }
}

/// True if `v` looks like a GeoJSON geometry (a known `type` and a `coordinates` member): the test the
/// concise and keyValues input rules use to infer a GeoProperty.
pub fn looks_like_geometry(v: &Value) -> bool {
    v.get("type")
        .and_then(Value::as_str)
        .and_then(GeometryType::from_name)
        .is_some()
        && v.get("coordinates").is_some()
}

/// Parse a GeoJSON geometry object into a `geo` geometry, validating positions (two or three finite
/// numbers; the altitude is ignored), line strings (at least two positions) and polygon rings (closed,
/// at least four positions). Stored data is not range-checked, because real payloads (including a
/// Smart Data Models example) swap latitude and longitude and brokers accept them; query geometries
/// are, see [`check_wgs84`].
pub fn parse_geojson(v: &Value) -> Result<Geometry<f64>> {
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| NgsiError::bad_data("GeoJSON geometry has no `type` string"))?;
    let ty = GeometryType::from_name(ty)
        .ok_or_else(|| NgsiError::bad_data(format!("unsupported GeoJSON geometry type `{ty}`")))?;
    let coords = v
        .get("coordinates")
        .ok_or_else(|| NgsiError::bad_data("GeoJSON geometry has no `coordinates`"))?;
    parse_coordinates(ty, coords)
}

/// Parse `coordinates` of geometry type `ty`.
pub fn parse_coordinates(ty: GeometryType, coords: &Value) -> Result<Geometry<f64>> {
    Ok(match ty {
        GeometryType::Point => Geometry::Point(Point(position(coords)?)),
        GeometryType::MultiPoint => Geometry::MultiPoint(MultiPoint(
            array(coords)?
                .iter()
                .map(|p| position(p).map(Point))
                .collect::<Result<_>>()?,
        )),
        GeometryType::LineString => Geometry::LineString(line_string(coords)?),
        GeometryType::MultiLineString => Geometry::MultiLineString(MultiLineString(
            array(coords)?
                .iter()
                .map(line_string)
                .collect::<Result<_>>()?,
        )),
        GeometryType::Polygon => Geometry::Polygon(polygon(coords)?),
        GeometryType::MultiPolygon => Geometry::MultiPolygon(MultiPolygon(
            array(coords)?.iter().map(polygon).collect::<Result<_>>()?,
        )),
    })
}

fn array(v: &Value) -> Result<&Vec<Value>> {
    v.as_array().ok_or_else(|| {
        NgsiError::bad_data(format!("GeoJSON coordinates: expected an array, found {v}"))
    })
}

fn position(v: &Value) -> Result<Coord<f64>> {
    let items = array(v)?;
    if !(2..=3).contains(&items.len()) {
        return Err(NgsiError::bad_data(format!(
            "GeoJSON position must have 2 or 3 numbers, found {v}"
        )));
    }
    let num = |i: usize| -> Result<f64> {
        items
            .get(i)
            .and_then(Value::as_f64)
            .filter(|f| f.is_finite())
            .ok_or_else(|| {
                NgsiError::bad_data(format!("GeoJSON position member is not a number: {v}"))
            })
    };
    let (x, y) = (num(0)?, num(1)?);
    if items.len() == 3 {
        num(2)?;
    }
    Ok(Coord { x, y })
}

fn line_string(v: &Value) -> Result<LineString<f64>> {
    let coords: Vec<Coord<f64>> = array(v)?.iter().map(position).collect::<Result<_>>()?;
    if coords.len() < 2 {
        return Err(NgsiError::bad_data(
            "GeoJSON LineString needs at least two positions",
        ));
    }
    Ok(LineString(coords))
}

fn polygon(v: &Value) -> Result<Polygon<f64>> {
    let mut rings = Vec::new();
    for ring in array(v)? {
        let coords: Vec<Coord<f64>> = array(ring)?.iter().map(position).collect::<Result<_>>()?;
        if coords.len() < 4 || coords.first() != coords.last() {
            return Err(NgsiError::bad_data(
                "GeoJSON Polygon ring must be closed and have at least four positions",
            ));
        }
        rings.push(LineString(coords));
    }
    let mut rings = rings.into_iter();
    let exterior = rings
        .next()
        .ok_or_else(|| NgsiError::bad_data("GeoJSON Polygon has no ring"))?;
    Ok(Polygon::new(exterior, rings.collect()))
}

/// Check that every position of a query geometry is a WGS 84 longitude/latitude.
pub fn check_wgs84(g: &Geometry<f64>) -> Result<()> {
    match bounding_box(g) {
        Some(b)
            if b.min_lon >= -180.0
                && b.max_lon <= 180.0
                && b.min_lat >= -90.0
                && b.max_lat <= 90.0 =>
        {
            Ok(())
        }
        Some(_) => Err(NgsiError::bad_data(
            "geometry coordinates out of range (longitude, latitude)",
        )),
        None => Err(NgsiError::bad_data("geometry has no positions")),
    }
}

/// The envelope of `g`, if it has one (empty multi-geometries have none).
pub fn bounding_box(g: &Geometry<f64>) -> Option<BBox> {
    g.bounding_rect().map(|r| BBox {
        min_lon: r.min().x,
        min_lat: r.min().y,
        max_lon: r.max().x,
        max_lat: r.max().y,
    })
}

/// The `georel` of a geo-query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeoRel {
    /// `near;maxDistance==d` and/or `near;minDistance==d` (metres).
    Near {
        /// Upper bound on the distance, inclusive.
        max_distance: Option<f64>,
        /// Lower bound on the distance, inclusive.
        min_distance: Option<f64>,
    },
    /// The entity geometry is within the query geometry.
    Within,
    /// The entity geometry contains the query geometry.
    Contains,
    /// The geometries share at least one point.
    Intersects,
    /// The geometries share no point.
    Disjoint,
    /// The geometries overlap (same dimension, interiors intersect, neither contains the other).
    Overlaps,
    /// The geometries are topologically equal.
    Equals,
}

impl GeoRel {
    /// Parse a `georel` parameter value.
    pub fn parse(s: &str) -> Result<GeoRel> {
        let mut parts = s.split(';');
        let head = parts.next().unwrap_or_default();
        let rel = match head {
            "near" => {
                let (mut max_distance, mut min_distance) = (None, None);
                for modifier in parts.by_ref() {
                    let (name, value) = modifier.split_once("==").ok_or_else(|| {
                        NgsiError::bad_data(format!(
                            "georel modifier `{modifier}` is not name==value"
                        ))
                    })?;
                    let d: f64 = value
                        .parse()
                        .ok()
                        .filter(|d: &f64| d.is_finite() && *d >= 0.0)
                        .ok_or_else(|| {
                            NgsiError::bad_data(format!(
                                "georel distance `{value}` is not a non-negative number"
                            ))
                        })?;
                    match name {
                        "maxDistance" => max_distance = Some(d),
                        "minDistance" => min_distance = Some(d),
                        other => {
                            return Err(NgsiError::bad_data(format!(
                                "unknown georel modifier `{other}`"
                            )));
                        }
                    }
                }
                if max_distance.is_none() && min_distance.is_none() {
                    return Err(NgsiError::bad_data(
                        "georel near needs maxDistance or minDistance",
                    ));
                }
                return Ok(GeoRel::Near {
                    max_distance,
                    min_distance,
                });
            }
            "within" => GeoRel::Within,
            "contains" => GeoRel::Contains,
            "intersects" => GeoRel::Intersects,
            "disjoint" => GeoRel::Disjoint,
            "overlaps" => GeoRel::Overlaps,
            "equals" => GeoRel::Equals,
            other => return Err(NgsiError::bad_data(format!("unknown georel `{other}`"))),
        };
        if parts.next().is_some() {
            return Err(NgsiError::bad_data(format!(
                "georel `{head}` takes no modifiers"
            )));
        }
        Ok(rel)
    }
}

/// A parsed geo-query.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoQuery {
    /// The relation.
    pub georel: GeoRel,
    /// The query geometry.
    pub geometry: Geometry<f64>,
    /// The GeoJSON of the query geometry, as given (for a SQL backend to hand to PostGIS).
    pub geojson: Value,
    /// The expanded name of the GeoProperty to test (default `location`).
    pub geoproperty: String,
}

impl GeoQuery {
    /// Build from the HTTP parameters: `georel`, `geometry` (type name), `coordinates` (a JSON array
    /// as text), and the already expanded `geoproperty` (`None` means `location`).
    pub fn from_params(
        georel: &str,
        geometry: &str,
        coordinates: &str,
        geoproperty: Option<String>,
    ) -> Result<GeoQuery> {
        let coords: Value = serde_json::from_str(coordinates).map_err(|e| {
            NgsiError::bad_data(format!(
                "coordinates `{coordinates}` is not a JSON array: {e}"
            ))
        })?;
        Self::build(georel, geometry, coords, geoproperty)
    }

    /// Build from a `geoQ` JSON object (subscriptions, `POST /entityOperations/query`); `coordinates`
    /// may be an array or a string holding one. `geoproperty` is expanded with `expand`.
    pub fn from_json(v: &Value, expand: impl Fn(&str) -> Option<String>) -> Result<GeoQuery> {
        let field = |name: &str| v.get(name).and_then(Value::as_str);
        let georel = field("georel").ok_or_else(|| NgsiError::bad_data("geoQ: missing georel"))?;
        let geometry =
            field("geometry").ok_or_else(|| NgsiError::bad_data("geoQ: missing geometry"))?;
        let coords = match v.get("coordinates") {
            Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                NgsiError::bad_data(format!("geoQ coordinates `{s}` is not a JSON array: {e}"))
            })?,
            Some(other) => other.clone(),
            None => return Err(NgsiError::bad_data("geoQ: missing coordinates")),
        };
        let geoproperty = match field("geoproperty") {
            Some(name) => Some(expand(name).ok_or_else(|| {
                NgsiError::bad_data(format!("geoproperty `{name}` does not expand"))
            })?),
            None => None,
        };
        Self::build(georel, geometry, coords, geoproperty)
    }

    fn build(
        georel: &str,
        geometry: &str,
        coords: Value,
        geoproperty: Option<String>,
    ) -> Result<GeoQuery> {
        let georel = GeoRel::parse(georel)?;
        let ty = GeometryType::from_name(geometry)
            .ok_or_else(|| NgsiError::bad_data(format!("unsupported geometry `{geometry}`")))?;
        let parsed = parse_coordinates(ty, &coords)?;
        check_wgs84(&parsed)?;
        if matches!(georel, GeoRel::Near { .. }) && ty != GeometryType::Point {
            return Err(NgsiError::bad_data("georel near needs a Point geometry"));
        }
        Ok(GeoQuery {
            georel,
            geometry: parsed,
            geojson: serde_json::json!({"type": geometry, "coordinates": coords}),
            geoproperty: geoproperty.unwrap_or_else(|| crate::model::LOCATION.to_owned()),
        })
    }

    /// Evaluate the relation against an entity geometry.
    pub fn matches_geometry(&self, entity_geometry: &Geometry<f64>) -> bool {
        match self.georel {
            GeoRel::Near {
                max_distance,
                min_distance,
            } => {
                let Geometry::Point(center) = self.geometry else {
                    return false;
                };
                let Some(d) = distance_m(entity_geometry, &center) else {
                    return false;
                };
                max_distance.is_none_or(|max| d <= max) && min_distance.is_none_or(|min| d >= min)
            }
            GeoRel::Within => entity_geometry.relate(&self.geometry).is_within(),
            GeoRel::Contains => entity_geometry.relate(&self.geometry).is_contains(),
            GeoRel::Intersects => entity_geometry.relate(&self.geometry).is_intersects(),
            GeoRel::Disjoint => entity_geometry.relate(&self.geometry).is_disjoint(),
            GeoRel::Overlaps => entity_geometry.relate(&self.geometry).is_overlaps(),
            GeoRel::Equals => {
                // The exact same coordinates are equal even when the polygon is not valid
                // (self-intersecting), where the DE-9IM relate gives no answer.
                *entity_geometry == self.geometry
                    || entity_geometry.relate(&self.geometry).is_equal_topo()
            }
        }
    }

    /// Evaluate against a GeoJSON value (an entity's GeoProperty value); invalid GeoJSON never matches.
    pub fn matches_geojson(&self, geojson: &Value) -> bool {
        parse_geojson(geojson).is_ok_and(|g| self.matches_geometry(&g))
    }

    /// The envelope that the envelope of every matching entity geometry intersects, for an R-tree
    /// pre-filter; `None` if no such envelope exists (`disjoint`, `near` with only `minDistance`).
    pub fn prefilter(&self) -> Option<BBox> {
        match self.georel {
            GeoRel::Disjoint => None,
            GeoRel::Near {
                max_distance: None, ..
            } => None,
            GeoRel::Near {
                max_distance: Some(d),
                ..
            } => {
                let Geometry::Point(p) = self.geometry else {
                    return None;
                };
                Some(circle_envelope(p, d))
            }
            _ => bounding_box(&self.geometry),
        }
    }
}

/// Great-circle distance in metres from `center` to the closest point of `g` (0 if `center` lies on or
/// inside it); `None` if the closest point is indeterminate (empty geometry).
pub fn distance_m(g: &Geometry<f64>, center: &Point<f64>) -> Option<f64> {
    match g.haversine_closest_point(center) {
        Closest::Intersection(_) => Some(0.0),
        Closest::SinglePoint(p) => Some(Haversine::distance(p, *center)),
        Closest::Indeterminate => match g {
            Geometry::Point(p) => Some(Haversine::distance(*p, *center)),
            _ => None,
        },
    }
}

/// A lon/lat box that contains every point within `meters` of `p` (conservative near the poles and
/// the antimeridian, where it widens to the full longitude range).
pub fn circle_envelope(p: Point<f64>, meters: f64) -> BBox {
    let dlat = (meters / EARTH_RADIUS_M).to_degrees() * 1.0001;
    let min_lat = (p.y() - dlat).max(-90.0);
    let max_lat = (p.y() + dlat).min(90.0);
    let widest_lat = min_lat.abs().max(max_lat.abs());
    let (min_lon, max_lon) = if widest_lat >= 89.9 {
        (-180.0, 180.0)
    } else {
        let dlon = dlat / widest_lat.to_radians().cos();
        if p.x() - dlon < -180.0 || p.x() + dlon > 180.0 {
            (-180.0, 180.0)
        } else {
            (p.x() - dlon, p.x() + dlon)
        }
    };
    BBox {
        min_lon,
        min_lat,
        max_lon,
        max_lat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(georel: &str, geometry: &str, coords: &str) -> GeoQuery {
        GeoQuery::from_params(georel, geometry, coords, None).expect("valid geo-query")
    }

    const SQUARE: &str = "[[[0,0],[10,0],[10,10],[0,10],[0,0]]]";

    #[test]
    fn topological_relations() {
        let inside = json!({"type": "Point", "coordinates": [5, 5]});
        let outside = json!({"type": "Point", "coordinates": [20, 5]});
        assert!(q("within", "Polygon", SQUARE).matches_geojson(&inside));
        assert!(!q("within", "Polygon", SQUARE).matches_geojson(&outside));
        assert!(q("disjoint", "Polygon", SQUARE).matches_geojson(&outside));
        assert!(q("intersects", "Polygon", SQUARE).matches_geojson(&inside));
        let big =
            json!({"type": "Polygon", "coordinates": [[[-1,-1],[11,-1],[11,11],[-1,11],[-1,-1]]]});
        assert!(q("contains", "Polygon", SQUARE).matches_geojson(&big));
        let shifted =
            json!({"type": "Polygon", "coordinates": [[[5,5],[15,5],[15,15],[5,15],[5,5]]]});
        assert!(q("overlaps", "Polygon", SQUARE).matches_geojson(&shifted));
        assert!(!q("overlaps", "Polygon", SQUARE).matches_geojson(&inside));
        let same = json!({"type": "Polygon", "coordinates": [[[0,0],[0,10],[10,10],[10,0],[0,0]]]});
        assert!(q("equals", "Polygon", SQUARE).matches_geojson(&same));
        let line = json!({"type": "LineString", "coordinates": [[-5, 5], [15, 5]]});
        assert!(q("intersects", "Polygon", SQUARE).matches_geojson(&line));
        assert!(!q("within", "Polygon", SQUARE).matches_geojson(&line));
    }

    #[test]
    fn near_uses_haversine_metres() {
        // One degree of latitude is about 111.2 km on the mean sphere.
        let p = json!({"type": "Point", "coordinates": [0.0, 1.0]});
        assert!(q("near;maxDistance==112000", "Point", "[0,0]").matches_geojson(&p));
        assert!(!q("near;maxDistance==111000", "Point", "[0,0]").matches_geojson(&p));
        assert!(q("near;minDistance==111000", "Point", "[0,0]").matches_geojson(&p));
        let poly =
            json!({"type": "Polygon", "coordinates": [[[-1,-1],[1,-1],[1,1],[-1,1],[-1,-1]]]});
        assert!(q("near;maxDistance==1", "Point", "[0,0]").matches_geojson(&poly));
    }

    #[test]
    fn prefilter_envelopes_contain_every_match() {
        let near = q("near;maxDistance==2000", "Point", "[-3.7,40.4]");
        let bbox = near.prefilter().expect("near has an envelope");
        let edge = Point::new(-3.7, 40.4 + (1999.0 / EARTH_RADIUS_M).to_degrees());
        assert!(bbox.min_lat <= edge.y() && edge.y() <= bbox.max_lat);
        assert!(q("disjoint", "Polygon", SQUARE).prefilter().is_none());
        assert_eq!(
            q("within", "Polygon", SQUARE)
                .prefilter()
                .map(|b| b.to_array()),
            Some([0.0, 0.0, 10.0, 10.0])
        );
    }

    #[test]
    fn invalid_queries_name_the_problem() {
        for (rel, geom, coords) in [
            ("near", "Point", "[0,0]"),
            ("near;maxDistance==-1", "Point", "[0,0]"),
            ("near;maxDistance==5", "Polygon", SQUARE),
            ("inside", "Point", "[0,0]"),
            ("within", "Circle", "[0,0]"),
            ("within", "Point", "[0]"),
            ("within", "Point", "[200,0]"),
            ("within", "Polygon", "[[[0,0],[1,0],[0,1]]]"),
            ("within", "Point", "not json"),
        ] {
            assert!(
                GeoQuery::from_params(rel, geom, coords, None).is_err(),
                "{rel} {geom} {coords}"
            );
        }
    }
}
