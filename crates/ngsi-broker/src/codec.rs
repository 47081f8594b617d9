//! The storage encoding of an entity: compact JSON with expanded names and every field,
//! system attributes included, so a stored entity decodes to exactly what was written.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use ngsi_ld::{Attribute, AttributeValue, Entity};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

fn get_time(m: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    m.get(key)
        .and_then(Value::as_i64)
        .and_then(DateTime::from_timestamp_micros)
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
    // Through the same serializer as the text forms, so the two never disagree.
    serde_json::to_value(EncodedAttribute::new(a)).unwrap_or(Value::Null)
}

/// The text of [`encode_attribute`], without building the JSON tree first.
pub fn encode_attribute_text(a: &Attribute) -> String {
    EncodedAttribute::new(a).to_text()
}

/// One attribute instance as stored: keys `k`, `v`, `d`, `o`, `u`, `ot`, `c`, `m`, `x`, `i`,
/// `s` in that order (the order of the former `Map`-building encoder, so stored documents
/// are byte for byte what they were). Serialised straight to text: building a
/// `serde_json::Value` tree first cost an allocation per member on every write.
pub(crate) struct EncodedAttribute<'a> {
    attr: &'a Attribute,
    /// `createdAt`/`modifiedAt` to store instead of the attribute's own (history instances).
    stamped: Option<DateTime<Utc>>,
    /// Leave `instanceId` out (history instances keep it in their own column).
    without_instance_id: bool,
}

impl<'a> EncodedAttribute<'a> {
    pub(crate) fn new(attr: &'a Attribute) -> Self {
        EncodedAttribute {
            attr,
            stamped: None,
            without_instance_id: false,
        }
    }

    /// The attribute as a history instance recorded at `at`: both system times `at`, no
    /// `instanceId` member.
    pub(crate) fn instance(attr: &'a Attribute, at: DateTime<Utc>) -> Self {
        EncodedAttribute {
            attr,
            stamped: Some(at),
            without_instance_id: true,
        }
    }

    pub(crate) fn to_text(&self) -> String {
        to_text(self, ATTRIBUTE_TEXT_ESTIMATE)
    }
}

/// Writes `s` as a JSON string, byte for byte as `serde_json` does. Names, ids and types
/// nearly never hold a character to escape, and such a string is copied as it is:
/// `serde_json` looks every byte up in its escape table.
fn write_str(out: &mut Vec<u8>, s: &str) {
    // Every byte is looked at (no early exit), which compiles to vector compares.
    let escapes = s.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if escapes {
        // Writing to a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// A list of strings as a JSON array, as `serde_json` writes it.
fn write_strs(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, item);
    }
    out.push(b']');
}

/// A list of strings for the attribute encoding, which goes through `serde_json`'s serializer;
/// the entity's own lists are written straight to the text by [`write_strs`].
struct Strings<'a>(&'a [String]);

impl Serialize for Strings<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(String::as_str))
    }
}

struct LanguageMap<'a>(&'a IndexMap<String, Value>);

impl Serialize for LanguageMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

struct SubAttributes<'a>(&'a ngsi_ld::NameMap<Attribute>);

impl Serialize for SubAttributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, EncodedAttribute::new(v))))
    }
}

fn micros_of(t: &Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_micros())
}

impl Serialize for EncodedAttribute<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.attr;
        let mut m = s.serialize_map(None)?;
        match &a.value {
            AttributeValue::Property(v) => {
                m.serialize_entry("k", "P")?;
                m.serialize_entry("v", v)?;
            }
            AttributeValue::Relationship(o) => {
                m.serialize_entry("k", "R")?;
                m.serialize_entry("v", &Strings(o))?;
            }
            AttributeValue::GeoProperty(g) => {
                m.serialize_entry("k", "G")?;
                m.serialize_entry("v", g)?;
            }
            AttributeValue::LanguageProperty(map) => {
                m.serialize_entry("k", "L")?;
                m.serialize_entry("v", &LanguageMap(map))?;
            }
            AttributeValue::VocabProperty(v) => {
                m.serialize_entry("k", "V")?;
                m.serialize_entry("v", &Strings(v))?;
            }
            AttributeValue::JsonProperty(v) => {
                m.serialize_entry("k", "J")?;
                m.serialize_entry("v", v)?;
            }
            AttributeValue::ListProperty(v) => {
                m.serialize_entry("k", "LP")?;
                m.serialize_entry("v", v)?;
            }
            AttributeValue::ListRelationship(v) => {
                m.serialize_entry("k", "LR")?;
                m.serialize_entry("v", &Strings(v))?;
            }
        }
        if let Some(d) = &a.dataset_id {
            m.serialize_entry("d", d)?;
        }
        if let Some(o) = micros_of(&a.observed_at) {
            m.serialize_entry("o", &o)?;
        }
        if let Some(u) = a.unit_code() {
            m.serialize_entry("u", u)?;
        }
        if !a.object_type().is_empty() {
            m.serialize_entry("ot", &Strings(a.object_type()))?;
        }
        let (created, modified) = match self.stamped {
            Some(at) => (Some(at), Some(at)),
            None => (a.created_at, a.modified_at),
        };
        if let Some(c) = micros_of(&created) {
            m.serialize_entry("c", &c)?;
        }
        if let Some(t) = micros_of(&modified) {
            m.serialize_entry("m", &t)?;
        }
        if let Some(x) = micros_of(&a.deleted_at) {
            m.serialize_entry("x", &x)?;
        }
        if !self.without_instance_id
            && let Some(i) = a.instance_id()
        {
            m.serialize_entry("i", i)?;
        }
        if !a.sub_attributes.is_empty() {
            m.serialize_entry("s", &SubAttributes(&a.sub_attributes))?;
        }
        m.end()
    }
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
    a.set_unit_code(m.get("u").and_then(Value::as_str).map(str::to_owned));
    a.set_object_type(get_strings(m.get("ot")));
    a.created_at = get_time(m, "c");
    a.modified_at = get_time(m, "m");
    a.deleted_at = get_time(m, "x");
    a.set_instance_id(m.get("i").and_then(Value::as_str).map(str::to_owned));
    if let Some(Value::Object(subs)) = m.get("s") {
        for (k, v) in subs {
            a.sub_attributes.insert(k.clone(), decode_attribute(v)?);
        }
    }
    Some(a)
}

/// Encodes an entity as JSON text: keys `id`, `t`, `sc`, `a`, `c`, `m` (see
/// [`EncodedAttribute`] for why it is serialised directly).
pub fn encode(e: &Entity) -> String {
    encode_with_spans(e).text
}

/// An entity's [`encode`]d text, and where in it each attribute instance's encoding
/// ([`EncodedAttribute::new`]) lies, in the order of the entity's attributes and their
/// instances. A history instance whose own encoding would be the same bytes is copied from
/// the entity's text instead of being encoded a second time ([`EncodedEntity::instance_text`]).
pub(crate) struct EncodedEntity {
    pub(crate) text: String,
    instances: Vec<std::ops::Range<usize>>,
}

impl EncodedEntity {
    /// The text of `attr`, the `n`th instance of the entity (counted as in
    /// [`EncodedEntity`]), as a history instance recorded at `at`: the bytes of the entity's
    /// text when they are what [`EncodedAttribute::instance`] writes (both system times `at`,
    /// no `instanceId`: an instance written by this change), else encoded afresh.
    pub(crate) fn instance_text(&self, n: usize, attr: &Attribute, at: DateTime<Utc>) -> String {
        let same = attr.instance_id().is_none()
            && attr.created_at == Some(at)
            && attr.modified_at == Some(at);
        match self
            .instances
            .get(n)
            .and_then(|span| self.text.get(span.clone()))
        {
            Some(text) if same => text.to_owned(),
            _ => EncodedAttribute::instance(attr, at).to_text(),
        }
    }
}

/// [`encode`], noting where each instance lies. Written member by member as `serde_json`
/// writes a map (compact, no spaces), which the tests hold byte for byte to the encoding
/// built as a `Value` tree.
pub(crate) fn encode_with_spans(e: &Entity) -> EncodedEntity {
    let count: usize = e.attributes.values().map(Vec::len).sum();
    let mut out = Vec::with_capacity(ENTITY_TEXT_ESTIMATE + count * ATTRIBUTE_TEXT_ESTIMATE);
    let mut instances = Vec::with_capacity(count);
    let written = (|| -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"id\":");
        write_str(&mut out, &e.id);
        out.extend_from_slice(b",\"t\":");
        write_strs(&mut out, &e.types);
        if !e.scope.is_empty() {
            out.extend_from_slice(b",\"sc\":");
            write_strs(&mut out, &e.scope);
        }
        out.extend_from_slice(b",\"a\":{");
        for (i, (name, list)) in e.attributes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(&mut out, name);
            out.extend_from_slice(b":[");
            for (j, a) in list.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                let start = out.len();
                serde_json::to_writer(&mut out, &EncodedAttribute::new(a))?;
                instances.push(start..out.len());
            }
            out.push(b']');
        }
        out.push(b'}');
        if let Some(c) = micros_of(&e.created_at) {
            out.extend_from_slice(b",\"c\":");
            serde_json::to_writer(&mut out, &c)?;
        }
        if let Some(m) = micros_of(&e.modified_at) {
            out.extend_from_slice(b",\"m\":");
            serde_json::to_writer(&mut out, &m)?;
        }
        out.push(b'}');
        Ok(())
    })();
    // Serialising plain data cannot fail; an empty document would not decode, so it could
    // not pass for a stored one.
    match written.map(|()| String::from_utf8(out)) {
        Ok(Ok(text)) => EncodedEntity { text, instances },
        _ => EncodedEntity {
            text: String::new(),
            instances: Vec::new(),
        },
    }
}

/// Bytes reserved up front for an encoded attribute instance, and for the rest of an encoded
/// entity: a typical document then fits at once (`serde_json::to_string` starts at 128 bytes
/// and doubles, which was a tenth of a batch worker's time, copies included).
const ATTRIBUTE_TEXT_ESTIMATE: usize = 256;
const ENTITY_TEXT_ESTIMATE: usize = 192;

/// `value` as compact JSON text, written into a buffer of `capacity` bytes. Serialising plain
/// data cannot fail; an empty document would not decode, so it could not pass for a stored one.
fn to_text(value: &impl Serialize, capacity: usize) -> String {
    let mut text = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut text, value) {
        Ok(()) => String::from_utf8(text).unwrap_or_default(),
        Err(_) => String::new(),
    }
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

    fn put_time(m: &mut Map<String, Value>, key: &str, t: &Option<DateTime<Utc>>) {
        if let Some(t) = t {
            m.insert(key.into(), Value::from(t.timestamp_micros()));
        }
    }

    #[test]
    fn strings_are_written_byte_for_byte_as_serde_json_writes_them() {
        let mut cases: Vec<String> = (0u32..=0x7f)
            .filter_map(char::from_u32)
            .map(|c| format!("urn:ngsi-ld:{c}:x"))
            .collect();
        cases.extend(
            [
                "",
                "https://uri.etsi.org/ngsi-ld/default-context/speed",
                "say \"hi\"",
                "back\\slash",
                "tab\there",
                "line\nbreak",
                "nul\u{0}",
                "del\u{7f}",
                "ü€😀 and /slash/",
                "\u{1f}\u{20}",
            ]
            .map(String::from),
        );
        for s in &cases {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).expect("a string"), "{s:?}");
        }
        let mut out = Vec::new();
        write_strs(&mut out, &cases);
        assert_eq!(out, serde_json::to_vec(&cases).expect("strings"));
        let mut out = Vec::new();
        write_strs(&mut out, &[]);
        assert_eq!(out, b"[]");
    }

    fn strings(v: &[String]) -> Value {
        Value::Array(v.iter().cloned().map(Value::String).collect())
    }

    /// The encoder before the direct serialiser, building a `Value` tree.
    fn tree_encode_attribute(a: &Attribute) -> Value {
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
        if let Some(u) = a.unit_code() {
            m.insert("u".into(), Value::from(u));
        }
        if !a.object_type().is_empty() {
            m.insert("ot".into(), strings(a.object_type()));
        }
        put_time(&mut m, "c", &a.created_at);
        put_time(&mut m, "m", &a.modified_at);
        put_time(&mut m, "x", &a.deleted_at);
        if let Some(i) = a.instance_id() {
            m.insert("i".into(), Value::from(i));
        }
        if !a.sub_attributes.is_empty() {
            m.insert(
                "s".into(),
                Value::Object(
                    a.sub_attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), tree_encode_attribute(v)))
                        .collect(),
                ),
            );
        }
        Value::Object(m)
    }

    fn tree_encode(e: &Entity) -> String {
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
                            Value::Array(v.iter().map(tree_encode_attribute).collect()),
                        )
                    })
                    .collect(),
            ),
        );
        put_time(&mut m, "c", &e.created_at);
        put_time(&mut m, "m", &e.modified_at);
        Value::Object(m).to_string()
    }

    #[test]
    fn history_instance_encoding_matches_a_stamped_copy() {
        let ctx = Context::core(CoreContext::V1_9);
        let e = parse_entity(
            &json!({"id": "urn:ngsi-ld:T:1", "type": "T",
                    "p": {"type": "Property", "value": 3, "instanceId": "urn:i:1", "datasetId": "urn:d:1",
                          "sub": {"type": "Property", "value": "s"}}}),
            &ctx,
        )
        .unwrap();
        let a = &e.attributes.values().next().unwrap()[0];
        let at = DateTime::from_timestamp_micros(1_700_000_000_000_001).unwrap();
        let mut copy = a.clone();
        copy.set_instance_id(None);
        copy.created_at = Some(at);
        copy.modified_at = Some(at);
        assert_eq!(
            EncodedAttribute::instance(a, at).to_text(),
            tree_encode_attribute(&copy).to_string()
        );
    }

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
        assert_eq!(decode(&encode(&e)), Some(e.clone()));
        // The direct serialiser writes exactly what the earlier tree-building encoder wrote,
        // so documents stored by either read back the same.
        assert_eq!(encode(&e), tree_encode(&e));
        for instances in e.attributes.values() {
            for a in instances {
                assert_eq!(
                    encode_attribute_text(a),
                    tree_encode_attribute(a).to_string()
                );
                assert_eq!(encode_attribute(a), tree_encode_attribute(a));
            }
        }
        // The spans of the instances are their encodings, in order, and a history instance
        // taken from the entity's text is what encoding it afresh writes, whether the bytes
        // are copied (its own times, no instance id) or not (another time, an instance id).
        let encoded = encode_with_spans(&e);
        assert_eq!(encoded.text, encode(&e));
        let mut n = 0;
        let elsewhen = DateTime::from_timestamp_micros(1_800_000_000_000_000).unwrap();
        for instances in e.attributes.values() {
            for a in instances {
                assert_eq!(
                    encoded.text[encoded.instances[n].clone()],
                    encode_attribute_text(a)
                );
                let own = a.modified_at.unwrap();
                for at in [own, elsewhen] {
                    assert_eq!(
                        encoded.instance_text(n, a, at),
                        EncodedAttribute::instance(a, at).to_text()
                    );
                    let mut with_id = a.clone();
                    with_id.set_instance_id(Some("urn:i:9".to_owned()));
                    assert_eq!(
                        encoded.instance_text(n, &with_id, at),
                        EncodedAttribute::instance(&with_id, at).to_text()
                    );
                }
                n += 1;
            }
        }
        assert_eq!(n, encoded.instances.len());
        assert_eq!(decode("{\"id\": 1}"), None);
        assert_eq!(decode("not json"), None);
    }
}
