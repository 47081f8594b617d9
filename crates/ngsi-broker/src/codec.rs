//! The storage encoding of an entity: compact JSON with expanded names and every field,
//! system attributes included, so a stored entity decodes to exactly what was written.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use ngsi_ld::{Attribute, AttributeValue, Entity};
use serde_json::{Map, Value};

fn time(t: &Option<DateTime<Utc>>) -> Option<Value> {
    t.map(|t| Value::from(t.timestamp_micros()))
}

fn put_time(m: &mut Map<String, Value>, key: &str, t: &Option<DateTime<Utc>>) {
    if let Some(v) = time(t) {
        m.insert(key.into(), v);
    }
}

fn get_time(m: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    m.get(key)
        .and_then(Value::as_i64)
        .and_then(DateTime::from_timestamp_micros)
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

fn get_strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Encodes one attribute instance.
pub fn encode_attribute(a: &Attribute) -> Value {
    let mut m = Map::new();
    let (k, v) = match &a.value {
        AttributeValue::Property(v) => ("P", v.clone()),
        AttributeValue::Relationship(o) => ("R", strings(o)),
        AttributeValue::GeoProperty(g) => ("G", g.clone()),
        AttributeValue::LanguageProperty(map) => (
            "L",
            Value::Object(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        ),
        AttributeValue::VocabProperty(v) => ("V", strings(v)),
        AttributeValue::JsonProperty(v) => ("J", v.clone()),
        AttributeValue::ListProperty(v) => ("LP", Value::Array(v.clone())),
        AttributeValue::ListRelationship(v) => ("LR", strings(v)),
    };
    m.insert("k".into(), Value::from(k));
    m.insert("v".into(), v);
    if let Some(d) = &a.dataset_id {
        m.insert("d".into(), Value::from(d.as_str()));
    }
    put_time(&mut m, "o", &a.observed_at);
    if let Some(u) = &a.unit_code {
        m.insert("u".into(), Value::from(u.as_str()));
    }
    if !a.object_type.is_empty() {
        m.insert("ot".into(), strings(&a.object_type));
    }
    put_time(&mut m, "c", &a.created_at);
    put_time(&mut m, "m", &a.modified_at);
    put_time(&mut m, "x", &a.deleted_at);
    if let Some(i) = &a.instance_id {
        m.insert("i".into(), Value::from(i.as_str()));
    }
    if !a.sub_attributes.is_empty() {
        m.insert(
            "s".into(),
            Value::Object(
                a.sub_attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), encode_attribute(v)))
                    .collect(),
            ),
        );
    }
    Value::Object(m)
}

/// Decodes one attribute instance; `None` if the document is not ours.
pub fn decode_attribute(v: &Value) -> Option<Attribute> {
    let m = v.as_object()?;
    let raw = m.get("v").cloned().unwrap_or(Value::Null);
    let value = match m.get("k")?.as_str()? {
        "P" => AttributeValue::Property(raw),
        "R" => AttributeValue::Relationship(get_strings(Some(&raw))),
        "G" => AttributeValue::GeoProperty(raw),
        "L" => AttributeValue::LanguageProperty(
            raw.as_object()?
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<IndexMap<_, _>>(),
        ),
        "V" => AttributeValue::VocabProperty(get_strings(Some(&raw))),
        "J" => AttributeValue::JsonProperty(raw),
        "LP" => AttributeValue::ListProperty(raw.as_array().cloned().unwrap_or_default()),
        "LR" => AttributeValue::ListRelationship(get_strings(Some(&raw))),
        _ => return None,
    };
    let mut a = Attribute::new(value);
    a.dataset_id = m.get("d").and_then(Value::as_str).map(str::to_owned);
    a.observed_at = get_time(m, "o");
    a.unit_code = m.get("u").and_then(Value::as_str).map(str::to_owned);
    a.object_type = get_strings(m.get("ot"));
    a.created_at = get_time(m, "c");
    a.modified_at = get_time(m, "m");
    a.deleted_at = get_time(m, "x");
    a.instance_id = m.get("i").and_then(Value::as_str).map(str::to_owned);
    if let Some(Value::Object(subs)) = m.get("s") {
        for (k, v) in subs {
            a.sub_attributes.insert(k.clone(), decode_attribute(v)?);
        }
    }
    Some(a)
}

/// Encodes an entity as JSON text.
pub fn encode(e: &Entity) -> String {
    let mut m = Map::new();
    m.insert("id".into(), Value::from(e.id.as_str()));
    m.insert("t".into(), strings(&e.types));
    if !e.scope.is_empty() {
        m.insert("sc".into(), strings(&e.scope));
    }
    m.insert(
        "a".into(),
        Value::Object(
            e.attributes
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value::Array(v.iter().map(encode_attribute).collect()),
                    )
                })
                .collect(),
        ),
    );
    put_time(&mut m, "c", &e.created_at);
    put_time(&mut m, "m", &e.modified_at);
    Value::Object(m).to_string()
}

/// Decodes an entity from [`encode`]'s text.
pub fn decode(text: &str) -> Option<Entity> {
    let v: Value = serde_json::from_str(text).ok()?;
    let m = v.as_object()?;
    let mut e = Entity {
        id: m.get("id")?.as_str()?.to_owned(),
        types: get_strings(m.get("t")),
        scope: get_strings(m.get("sc")),
        ..Entity::default()
    };
    if let Some(Value::Object(attrs)) = m.get("a") {
        for (k, list) in attrs {
            let instances = list
                .as_array()?
                .iter()
                .map(decode_attribute)
                .collect::<Option<Vec<_>>>()?;
            e.attributes.insert(k.clone(), instances);
        }
    }
    e.created_at = get_time(m, "c");
    e.modified_at = get_time(m, "m");
    Some(e)
}

/// A tiny self-check used by tests.
#[cfg(test)]
mod tests {
    use super::*;
    use ngsi_ld::{Context, CoreContext, parse_entity};
    use serde_json::json;

    #[test]
    fn every_kind_round_trips() {
        let ctx = Context::core(CoreContext::V1_9);
        let mut e = parse_entity(
            &json!({
                "id": "urn:ngsi-ld:T:1", "type": "T", "scope": "/a/b",
                "p": {"type": "Property", "value": {"x": [1, 2]}, "observedAt": "2024-01-01T00:00:00Z", "unitCode": "KMH",
                      "sub": {"type": "Relationship", "object": "urn:x"}},
                "p2": [{"type": "Property", "value": 1}, {"type": "Property", "value": 2, "datasetId": "urn:d:1"}],
                "r": {"type": "Relationship", "object": ["urn:a", "urn:b"], "objectType": "T"},
                "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1.0, 2.0]}},
                "l": {"type": "LanguageProperty", "languageMap": {"en": "x", "fr": "y"}},
                "v": {"type": "VocabProperty", "vocab": "T"},
                "j": {"type": "JsonProperty", "json": {"a": null}},
                "lp": {"type": "ListProperty", "valueList": [1, "a"]},
                "lr": {"type": "ListRelationship", "objectList": [{"object": "urn:a"}]}
            }),
            &ctx,
        )
        .unwrap();
        e.stamp(DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap());
        assert_eq!(decode(&encode(&e)), Some(e));
        assert_eq!(decode("{\"id\": 1}"), None);
        assert_eq!(decode("not json"), None);
    }
}
