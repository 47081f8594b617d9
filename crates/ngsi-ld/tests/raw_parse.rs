//! Property test: an entity read from its text as `RawJson` (as batches read them) parses to what
//! the `Value` parse gives, whenever the raw parse takes it; and it takes the usual shapes.

use ngsi_ld::raw::RawJson;
use ngsi_ld::{
    Context, CoreContext, NameMemo, NoLoader, ParseOptions, parse_entity_raw, parse_entity_with,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn context() -> Context {
    Context::core(CoreContext::V1_9)
        .process(
            &json!({"speed": "urn:x:speed", "nothing": null, "Vehicle": "urn:x:Vehicle", "rel": "urn:x:rel"}),
            &NoLoader,
        )
        .expect("context")
}

/// Member names: the entity's own, attributes (some invalid, one mapped to null, one the IRI
/// of another), and the attribute members.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("id"),
        3 => Just("type"),
        1 => Just("@id"),
        1 => Just("@type"),
        1 => Just("scope"),
        1 => Just("@context"),
        1 => Just("createdAt"),
        4 => Just("speed"),
        3 => Just("plate"),
        2 => Just("location"),
        2 => Just("rel"),
        1 => Just("urn:x:speed"),
        1 => Just("nothing"),
        1 => Just("bad name"),
        1 => Just("es\\\"caped"),
        1 => Just("value"),
        1 => Just("object"),
        1 => Just("observedAt"),
        1 => Just("datasetId"),
        1 => Just("unitCode"),
        1 => Just("objectType"),
        1 => Just("accuracy"),
    ]
    .prop_map(str::to_owned)
}

/// Texts of values: valid and broken attribute objects of each kind, and plain values.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(r#""urn:ngsi-ld:Vehicle:1""#.to_owned()),
        Just(r#""Vehicle""#.to_owned()),
        Just(r#"["Vehicle", "T", "Vehicle"]"#.to_owned()),
        Just(r#"[]"#.to_owned()),
        Just(r#""not a uri""#.to_owned()),
        Just(r#""/a/b""#.to_owned()),
        Just(r#"["/a", "/b#"]"#.to_owned()),
        Just(r#""esc\"aped \u00e9""#.to_owned()),
        Just(r#""2026-11-29T10:00:00Z""#.to_owned()),
        Just(r#""yesterday""#.to_owned()),
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i32>().prop_map(|n| n.to_string()),
        (-1.0e6f64..1.0e6).prop_map(|f| format!("{f:?}")),
        Just("1e400".to_owned()),
        Just(r#"{"type": "Point", "coordinates": [117.0, 36.6]}"#.to_owned()),
        Just(r#"{"type": "Point", "coordinates": [117.0]}"#.to_owned()),
        Just(r#"[1, "two", {"three": 3}]"#.to_owned()),
    ];
    leaf.prop_recursive(2, 24, 5, |inner| {
        let kind = prop_oneof![
            4 => Just("Property"),
            2 => Just("GeoProperty"),
            2 => Just("Relationship"),
            1 => Just("ListRelationship"),
            1 => Just("LanguageProperty"),
            1 => Just("VocabProperty"),
            1 => Just("JsonProperty"),
            1 => Just("ListProperty"),
            1 => Just("Point"),
            1 => Just("Unknown"),
        ];
        prop_oneof![
            // An attribute object with its type, some members and a value member.
            (
                kind,
                prop::collection::vec((key(), inner.clone()), 0..3),
                inner.clone()
            )
                .prop_map(|(kind, members, value)| {
                    let value_member = match kind {
                        "Relationship" => "object",
                        "ListRelationship" => "objectList",
                        "LanguageProperty" => "languageMap",
                        "VocabProperty" => "vocab",
                        "JsonProperty" => "json",
                        "ListProperty" => "valueList",
                        _ => "value",
                    };
                    let mut text = format!(r#"{{"type": "{kind}", "{value_member}": {value}"#);
                    for (k, v) in members {
                        text.push_str(&format!(r#", "{k}": {v}"#));
                    }
                    text.push('}');
                    text
                }),
            // Any object or array.
            prop::collection::vec((key(), inner.clone()), 0..3).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!(r#""{k}": {v}"#))
                    .collect();
                format!("{{{}}}", members.join(", "))
            }),
            prop::collection::vec(inner, 0..3).prop_map(|items| format!("[{}]", items.join(", "))),
        ]
    })
}

/// An entity's text: usually a valid id and type first, then members.
fn entity() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec((key(), value()), 0..6)).prop_map(|(head, members)| {
        let mut parts = Vec::new();
        if head {
            parts.push(r#""id": "urn:ngsi-ld:Vehicle:7", "type": "Vehicle""#.to_owned());
        }
        parts.extend(members.into_iter().map(|(k, v)| format!(r#""{k}": {v}"#)));
        format!("{{{}}}", parts.join(", "))
    })
}

/// What the `Value` parse gives, for every options the raw parse is asked with.
fn check(text: &str, ctx: &Context, memo: &mut NameMemo) -> Result<bool, TestCaseError> {
    let Ok(raw) = serde_json::from_str::<RawJson<'_>>(text) else {
        prop_assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
        return Ok(false);
    };
    let value: Value = serde_json::from_str(text).expect("the same text");
    prop_assert_eq!(raw.to_value().to_string(), value.to_string());
    let mut taken = false;
    for bits in 0..8u8 {
        let opts = ParseOptions {
            key_values: bits & 1 != 0,
            fragment: bits & 2 != 0,
            allow_null: bits & 4 != 0,
        };
        let alone = parse_entity_raw(&raw, ctx, opts, None);
        let through_memo = parse_entity_raw(&raw, ctx, opts, Some(&mut *memo));
        prop_assert_eq!(&alone, &through_memo, "{}", text);
        if let Some(fast) = through_memo {
            match parse_entity_with(&value, ctx, opts) {
                Ok(slow) => prop_assert_eq!(slow, fast, "{}", text),
                Err(e) => {
                    prop_assert!(false, "{text}: raw parse gave an entity, Value parse {e:?}")
                }
            }
            taken = true;
        }
    }
    Ok(taken)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn raw_parse_gives_what_the_value_parse_gives(texts in prop::collection::vec(entity(), 1..4)) {
        let ctx = context();
        // One memo across the texts, as a batch shares one.
        let mut memo = NameMemo::default();
        for text in &texts {
            check(text, &ctx, &mut memo)?;
        }
    }
}

/// The shapes a batch usually carries are taken by the raw parse (so that the property above
/// is not satisfied by a raw parse that takes nothing).
#[test]
fn raw_parse_takes_normalized_and_concise_entities() {
    let ctx = context();
    let mut memo = NameMemo::default();
    let texts = [
        r#"{"id":"urn:ngsi-ld:Vehicle:1","type":"Vehicle","speed":{"type":"Property","value":1},"plate":{"type":"Property","value":"B-1"},"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[117.0,36.6]}}}"#,
        r#"{"id":"urn:ngsi-ld:Vehicle:2","type":["Vehicle","T"],"scope":"/a/b","speed":{"type":"Property","value":2,"observedAt":"2026-11-29T10:00:00Z","unitCode":"KMH","datasetId":"urn:d:1","accuracy":{"type":"Property","value":0.5}},"rel":{"type":"Relationship","object":"urn:ngsi-ld:Road:1"}}"#,
        r#"{"id":"urn:ngsi-ld:Vehicle:3","type":"Vehicle","speed":3,"plate":"B-3","esc\u0061ped":"a\tb"}"#,
    ];
    for text in texts {
        let raw: RawJson<'_> = serde_json::from_str(text).expect("JSON");
        let fast = parse_entity_raw(&raw, &ctx, ParseOptions::default(), Some(&mut memo));
        assert!(fast.is_some(), "{text}");
        assert!(check(text, &ctx, &mut memo).expect("same results"));
    }
}

/// The generated entities exercise both paths: a good share is taken by the raw parse (and so
/// compared above), the rest left to the `Value` parse.
#[test]
fn generated_entities_exercise_both_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let ctx = context();
    let mut memo = NameMemo::default();
    let mut runner = TestRunner::deterministic();
    let strategy = entity();
    let (mut taken, total) = (0, 2000);
    for _ in 0..total {
        let text = strategy.new_tree(&mut runner).expect("a case").current();
        if check(&text, &ctx, &mut memo).expect("same results") {
            taken += 1;
        }
    }
    eprintln!("raw parse took {taken} of {total} generated entities");
    assert!(taken >= total / 20 && taken < total, "{taken} of {total}");
}
