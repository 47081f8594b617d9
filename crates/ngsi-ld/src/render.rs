//! Rendering entities as JSON: normalized, concise and simplified (keyValues) representations,
//! `sysAttrs`, `lang` filtering of LanguageProperties, `attrs` projection, `pick`/`omit`, `datasetId`
//! selection, and GeoJSON (`application/geo+json`) features.
//!
//! Names are compacted against the caller's context with [`Context::compact_iri`]; the reserved members
//! (`value`, `object`, `observedAt`, ...) are written as-is because the core context is protected.

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::error::{NgsiError, Result};
use crate::geospatial::looks_like_geometry;
use crate::model::{Attribute, AttributeKind, AttributeValue, Entity, LOCATION};
use crate::time::format_datetime;

/// The representation to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Every attribute as an object with its `type` (the default).
    #[default]
    Normalized,
    /// Attribute objects without inferable `type`; bare values where nothing else is present.
    Concise,
    /// Values only (`options=keyValues`, `format=simplified`).
    KeyValues,
}

impl Format {
    /// Parse a `format=` value (`normalized`, `concise`, `simplified`, `keyValues`).
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "normalized" => Ok(Format::Normalized),
            "concise" => Ok(Format::Concise),
            "simplified" | "keyValues" => Ok(Format::KeyValues),
            other => Err(NgsiError::bad_data(format!("unknown format `{other}`"))),
        }
    }
}

/// A `lang` preference: tags in order (from `en`, `fr,en`, `en;q=0.5,fr` or `*`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LangFilter {
    tags: Vec<String>,
}

impl LangFilter {
    /// Parse a `lang` parameter: comma-separated tags with optional `;q=` weights, or `*`.
    pub fn parse(s: &str) -> Result<LangFilter> {
        let mut weighted: Vec<(f64, usize, String)> = Vec::new();
        for (i, part) in s.split(',').enumerate() {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or_default().trim();
            if tag.is_empty()
                || !(tag == "*" || tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            {
                return Err(NgsiError::bad_data(format!(
                    "lang: invalid language tag `{tag}`"
                )));
            }
            let mut q = 1.0;
            for p in pieces {
                let value = p
                    .trim()
                    .strip_prefix("q=")
                    .ok_or_else(|| NgsiError::bad_data(format!("lang: invalid parameter `{p}`")))?;
                q = value
                    .parse()
                    .ok()
                    .filter(|q: &f64| (0.0..=1.0).contains(q))
                    .ok_or_else(|| {
                        NgsiError::bad_data(format!("lang: invalid weight `{value}`"))
                    })?;
            }
            weighted.push((q, i, tag.to_ascii_lowercase()));
        }
        weighted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(LangFilter {
            tags: weighted.into_iter().map(|(_, _, t)| t).collect(),
        })
    }

    /// The (tag, text) chosen from `map`: the first preferred tag present (`*` takes any), else the
    /// `@none` entry, else the first entry.
    pub fn select<'a>(&self, map: &'a IndexMap<String, Value>) -> Option<(&'a str, &'a Value)> {
        for tag in &self.tags {
            if tag == "*" {
                return map.iter().next().map(|(k, v)| (k.as_str(), v));
            }
            if let Some((k, v)) = map.iter().find(|(k, _)| k.eq_ignore_ascii_case(tag)) {
                return Some((k.as_str(), v));
            }
        }
        map.get_key_value("@none")
            .or_else(|| map.iter().next())
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// What to render and how.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RenderOptions {
    /// Representation.
    pub format: Format,
    /// Include `createdAt`/`modifiedAt` (`options=sysAttrs`).
    pub sys_attrs: bool,
    /// Reduce LanguageProperties to one language (`lang=`).
    pub lang: Option<LangFilter>,
    /// Only these attributes (expanded names; `attrs=`).
    pub attrs: Option<Vec<String>>,
    /// Only these members (expanded attribute names, or `id`, `type`, `scope`; `pick=`).
    pub pick: Option<Vec<String>>,
    /// Never these members (same names as `pick`; `omit=`).
    pub omit: Option<Vec<String>>,
    /// Only instances with these dataset ids (`None` = the default instance; `datasetId=`).
    pub dataset_ids: Option<Vec<Option<String>>>,
    /// If set, written as the `@context` member (responses for `application/ld+json`).
    pub context: Option<Value>,
}

impl RenderOptions {
    fn member_wanted(&self, name: &str) -> bool {
        if let Some(pick) = &self.pick
            && !pick.iter().any(|p| p == name)
        {
            return false;
        }
        !self
            .omit
            .as_ref()
            .is_some_and(|omit| omit.iter().any(|o| o == name))
    }

    pub(crate) fn attribute_wanted(&self, expanded: &str) -> bool {
        self.attrs
            .as_ref()
            .is_none_or(|a| a.iter().any(|x| x == expanded))
            && self.member_wanted(expanded)
    }

    pub(crate) fn instance_wanted(&self, attr: &Attribute) -> bool {
        self.dataset_ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&attr.dataset_id))
    }
}

/// Parse a comma-separated list of attribute names (`attrs`, `pick`, `omit`) and expand each against
/// `ctx`; `id`, `type` and `scope` stay as they are.
pub fn parse_name_list(s: &str, ctx: &Context) -> Result<Vec<String>> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| match n {
            "id" | "type" | "scope" => Ok(n.to_owned()),
            _ => {
                crate::parse::validate_name("attribute", n)?;
                ctx.expand_term(n).ok_or_else(|| {
                    NgsiError::bad_data(format!("`{n}` is mapped to null by the @context"))
                })
            }
        })
        .collect()
}

/// Render `entity` as a JSON object.
pub fn render(entity: &Entity, opts: &RenderOptions, ctx: &Context) -> Value {
    let mut out = Map::new();
    if opts.member_wanted("id") {
        out.insert("id".into(), Value::String(entity.id.clone()));
    }
    if opts.member_wanted("type") {
        out.insert(
            "type".into(),
            one_or_many(
                entity
                    .types
                    .iter()
                    .map(|t| Value::String(ctx.compact_iri(t)))
                    .collect(),
            ),
        );
    }
    if !entity.scope.is_empty() && opts.member_wanted("scope") {
        out.insert(
            "scope".into(),
            one_or_many(entity.scope.iter().cloned().map(Value::String).collect()),
        );
    }
    for (name, instances) in &entity.attributes {
        if !opts.attribute_wanted(name) {
            continue;
        }
        if let Some(v) = render_attribute(instances, opts, ctx) {
            out.insert(ctx.compact_iri(name), v);
        }
    }
    if opts.sys_attrs {
        insert_time(&mut out, "createdAt", entity.created_at.as_ref());
        insert_time(&mut out, "modifiedAt", entity.modified_at.as_ref());
        insert_time(&mut out, "deletedAt", entity.deleted_at.as_ref());
    }
    if let Some(c) = &opts.context {
        out.insert("@context".into(), c.clone());
    }
    Value::Object(out)
}

/// Render the instances of one attribute (or `None` if every instance was filtered out).
pub fn render_attribute(
    instances: &[Attribute],
    opts: &RenderOptions,
    ctx: &Context,
) -> Option<Value> {
    let selected: Vec<&Attribute> = instances
        .iter()
        .filter(|a| opts.instance_wanted(a))
        .collect();
    match (opts.format, selected.as_slice()) {
        (_, []) => None,
        (_, [one]) => Some(render_instance(one, opts, ctx)),
        (Format::KeyValues, many) => {
            let mut dataset = Map::new();
            for a in many {
                dataset.insert(
                    a.dataset_id.clone().unwrap_or_else(|| "@none".into()),
                    render_instance(a, opts, ctx),
                );
            }
            Some(json!({ "dataset": dataset }))
        }
        // Bare concise values are never used inside a multi-attribute array: the array would no
        // longer read back as a list of instances.
        (_, many) => Some(Value::Array(
            many.iter()
                .map(|a| render_instance_with(a, opts, ctx, false))
                .collect(),
        )),
    }
}

fn one_or_many(mut items: Vec<Value>) -> Value {
    if items.len() == 1 {
        items.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(items)
    }
}

fn insert_time(out: &mut Map<String, Value>, key: &str, t: Option<&crate::model::Timestamp>) {
    if let Some(t) = t {
        out.insert(key.into(), Value::String(format_datetime(t)));
    }
}

fn object_list(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|id| json!({ "object": id })).collect())
}

/// Render one attribute instance.
pub fn render_instance(attr: &Attribute, opts: &RenderOptions, ctx: &Context) -> Value {
    render_instance_with(attr, opts, ctx, true)
}

fn render_instance_with(
    attr: &Attribute,
    opts: &RenderOptions,
    ctx: &Context,
    allow_bare: bool,
) -> Value {
    let mut kind = attr.kind();
    let mut lang_tag: Option<String> = attr.lang().map(str::to_owned);
    // The value member and its value, after `lang` filtering turns a LanguageProperty into a Property.
    let value: Value = match &attr.value {
        AttributeValue::Property(v)
        | AttributeValue::GeoProperty(v)
        | AttributeValue::JsonProperty(v) => v.clone(),
        AttributeValue::Relationship(o) => {
            one_or_many(o.iter().cloned().map(Value::String).collect())
        }
        AttributeValue::LanguageProperty(map) => match &opts.lang {
            Some(filter) => match filter.select(map) {
                Some((tag, text)) => {
                    kind = AttributeKind::Property;
                    lang_tag = Some(tag.to_owned());
                    text.clone()
                }
                None => Value::Object(Map::new()),
            },
            None => Value::Object(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        },
        AttributeValue::VocabProperty(v) => one_or_many(
            v.iter()
                .map(|i| Value::String(ctx.compact_iri(i)))
                .collect(),
        ),
        AttributeValue::ListProperty(items) => Value::Array(items.clone()),
        AttributeValue::ListRelationship(ids) => match opts.format {
            Format::KeyValues => Value::Array(ids.iter().cloned().map(Value::String).collect()),
            _ => object_list(ids),
        },
    };
    if opts.format == Format::KeyValues {
        return value;
    }
    let mut out = Map::new();
    if opts.format == Format::Normalized {
        out.insert("type".into(), Value::String(kind.name().into()));
    }
    out.insert(kind.value_member().into(), value);
    if let Some(tag) = lang_tag {
        out.insert("lang".into(), Value::String(tag));
    }
    if !attr.object_type().is_empty() {
        out.insert(
            "objectType".into(),
            one_or_many(
                attr.object_type()
                    .iter()
                    .map(|t| Value::String(ctx.compact_iri(t)))
                    .collect(),
            ),
        );
    }
    if let Some(d) = &attr.dataset_id {
        out.insert("datasetId".into(), Value::String(d.clone()));
    }
    insert_time(&mut out, "observedAt", attr.observed_at.as_ref());
    if let Some(u) = attr.unit_code() {
        out.insert("unitCode".into(), Value::String(u.to_owned()));
    }
    if let Some(i) = attr.instance_id() {
        out.insert("instanceId".into(), Value::String(i.to_owned()));
    }
    let sub_opts = RenderOptions {
        attrs: None,
        pick: None,
        omit: None,
        dataset_ids: None,
        context: None,
        ..opts.clone()
    };
    for (name, sub) in &attr.sub_attributes {
        out.insert(ctx.compact_iri(name), render_instance(sub, &sub_opts, ctx));
    }
    if opts.sys_attrs {
        insert_time(&mut out, "createdAt", attr.created_at.as_ref());
        insert_time(&mut out, "modifiedAt", attr.modified_at.as_ref());
        insert_time(&mut out, "deletedAt", attr.deleted_at.as_ref());
    }
    if opts.format == Format::Concise
        && allow_bare
        && out.len() == 1
        && matches!(kind, AttributeKind::Property | AttributeKind::GeoProperty)
    {
        // A bare value is only written when reading it back infers the same attribute: a plain
        // Property value must not look like a geometry or an attribute object.
        if let Some(v) = out.get("value") {
            let bare_ok = match kind {
                AttributeKind::GeoProperty => true,
                _ => !looks_like_geometry(v) && !looks_like_attribute(v),
            };
            if bare_ok {
                return v.clone();
            }
        }
    }
    Value::Object(out)
}

fn looks_like_attribute(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.contains_key("type")
                || [
                    "value",
                    "object",
                    "objectList",
                    "languageMap",
                    "vocab",
                    "json",
                    "valueList",
                ]
                .iter()
                .any(|k| m.contains_key(*k))
        }
        Value::Array(items) => items.iter().any(looks_like_attribute),
        _ => false,
    }
}

/// Render `entity` as a GeoJSON Feature; the geometry comes from GeoProperty `geometry_property`
/// (expanded name; `None` means `location`), `null` if the entity has none.
pub fn render_geojson(
    entity: &Entity,
    opts: &RenderOptions,
    ctx: &Context,
    geometry_property: Option<&str>,
) -> Value {
    let geometry = entity
        .geometry(geometry_property.unwrap_or(LOCATION))
        .cloned()
        .unwrap_or(Value::Null);
    let inner = RenderOptions {
        context: None,
        ..opts.clone()
    };
    let mut properties = match render(entity, &inner, ctx) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    properties.shift_remove("id");
    let mut feature = Map::new();
    feature.insert("id".into(), Value::String(entity.id.clone()));
    feature.insert("type".into(), Value::String("Feature".into()));
    feature.insert("geometry".into(), geometry);
    feature.insert("properties".into(), Value::Object(properties));
    if let Some(c) = &opts.context {
        feature.insert("@context".into(), c.clone());
    }
    Value::Object(feature)
}

/// Wrap features in a GeoJSON FeatureCollection (with `@context` if given).
pub fn feature_collection(features: Vec<Value>, context: Option<Value>) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), Value::String("FeatureCollection".into()));
    out.insert("features".into(), Value::Array(features));
    if let Some(c) = context {
        out.insert("@context".into(), c);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::CoreContext;
    use crate::parse::parse_entity;

    fn core() -> Context {
        Context::core(CoreContext::V1_9)
    }

    fn sample() -> Entity {
        parse_entity(
            &json!({
                "id": "urn:ngsi-ld:Car:1", "type": "Car",
                "speed": {"type": "Property", "value": 50, "unitCode": "KMH"},
                "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
                "name": {"type": "LanguageProperty", "languageMap": {"en": "car", "fr": "voiture"}},
                "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
                "temp": [{"type": "Property", "value": 1}, {"type": "Property", "value": 2, "datasetId": "urn:ds:1"}]
            }),
            &core(),
        )
        .expect("valid")
    }

    #[test]
    fn key_values() {
        let v = render(
            &sample(),
            &RenderOptions {
                format: Format::KeyValues,
                ..Default::default()
            },
            &core(),
        );
        assert_eq!(v["speed"], 50);
        assert_eq!(v["owner"], "urn:ngsi-ld:Person:1");
        assert_eq!(v["name"], json!({"en": "car", "fr": "voiture"}));
        assert_eq!(
            v["location"],
            json!({"type": "Point", "coordinates": [1, 2]})
        );
        assert_eq!(v["temp"], json!({"dataset": {"@none": 1, "urn:ds:1": 2}}));
        assert_eq!(v["type"], "Car");
    }

    #[test]
    fn concise_drops_inferable_types() {
        let v = render(
            &sample(),
            &RenderOptions {
                format: Format::Concise,
                ..Default::default()
            },
            &core(),
        );
        assert_eq!(v["speed"], json!({"value": 50, "unitCode": "KMH"}));
        assert_eq!(v["owner"], json!({"object": "urn:ngsi-ld:Person:1"}));
        assert_eq!(
            v["location"],
            json!({"type": "Point", "coordinates": [1, 2]})
        );
        assert_eq!(v["temp"][1], json!({"value": 2, "datasetId": "urn:ds:1"}));
    }

    #[test]
    fn lang_filter_turns_language_properties_into_properties() {
        let opts = RenderOptions {
            lang: Some(LangFilter::parse("de,fr;q=0.9").expect("valid")),
            ..Default::default()
        };
        let v = render(&sample(), &opts, &core());
        assert_eq!(
            v["name"],
            json!({"type": "Property", "value": "voiture", "lang": "fr"})
        );
        let kv = render(
            &sample(),
            &RenderOptions {
                format: Format::KeyValues,
                ..opts
            },
            &core(),
        );
        assert_eq!(kv["name"], "voiture");
        assert!(LangFilter::parse("en;q=2").is_err());
    }

    #[test]
    fn projection_pick_omit_and_sys_attrs() {
        let c = core();
        let mut e = sample();
        e.stamp(crate::time::parse_datetime("2024-01-01T00:00:00Z").expect("valid"));
        let opts = RenderOptions {
            attrs: Some(parse_name_list("speed,owner", &c).expect("valid")),
            omit: Some(parse_name_list("owner,type", &c).expect("valid")),
            sys_attrs: true,
            ..Default::default()
        };
        let v = render(&e, &opts, &c);
        let keys: Vec<&str> = v
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["id", "speed", "createdAt", "modifiedAt"]);
        assert_eq!(v["speed"]["createdAt"], "2024-01-01T00:00:00Z");
        let picked = render(
            &e,
            &RenderOptions {
                pick: Some(parse_name_list("id,speed", &c).expect("valid")),
                ..Default::default()
            },
            &c,
        );
        assert_eq!(picked.as_object().map(|m| m.len()), Some(2));
    }

    #[test]
    fn geojson_feature() {
        let f = render_geojson(&sample(), &RenderOptions::default(), &core(), None);
        assert_eq!(f["type"], "Feature");
        assert_eq!(
            f["geometry"],
            json!({"type": "Point", "coordinates": [1, 2]})
        );
        assert_eq!(f["properties"]["type"], "Car");
        assert!(f["properties"].get("id").is_none());
        let fc = feature_collection(vec![f], Some(json!("https://x.org/ctx")));
        assert_eq!(fc["features"].as_array().map(Vec::len), Some(1));
    }
}
