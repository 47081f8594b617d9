//! Property tests: representations round-trip.
//!
//! - normalized and concise output parse back to the same entity (both are lossless);
//! - keyValues output parses back (in keyValues mode) to the same plain values;
//! - term expansion then compaction gives the term back, for user-defined and default-context terms.

use indexmap::IndexMap;
use ngsi_ld::model::LOCATION;
use ngsi_ld::query::q::attribute_value;
use ngsi_ld::{
    Attribute, AttributeValue, Context, CoreContext, Entity, Format, NoLoader, ParseOptions,
    RenderOptions, parse_entity, parse_entity_with, render,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const DC: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(|n| json!(n)),
        (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
        any::<bool>().prop_map(|b| json!(b)),
        "[a-zA-Z0-9 :/._-]{0,12}".prop_map(|s| json!(s)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            // Member names include the attribute keywords, to check that values that look like
            // attribute objects survive concise rendering.
            prop::collection::btree_map(
                prop_oneof![
                    Just("value".to_owned()),
                    Just("type".to_owned()),
                    Just("object".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn point() -> impl Strategy<Value = Value> {
    (-180.0f64..180.0, -90.0f64..90.0)
        .prop_map(|(x, y)| json!({"type": "Point", "coordinates": [x, y]}))
}

fn attribute() -> impl Strategy<Value = Attribute> {
    let value = prop_oneof![
        json_value().prop_map(AttributeValue::Property),
        "[a-z]{1,8}"
            .prop_map(|id| AttributeValue::Relationship(vec![format!("urn:ngsi-ld:Thing:{id}")])),
        point().prop_map(AttributeValue::GeoProperty),
        prop::collection::vec(scalar(), 0..4).prop_map(AttributeValue::ListProperty),
        json_value().prop_map(AttributeValue::JsonProperty),
        prop::collection::btree_map("[a-z]{2}", "[a-z ]{0,8}", 1..3).prop_map(|m| {
            AttributeValue::LanguageProperty(
                m.into_iter()
                    .map(|(k, v)| (k, json!(v)))
                    .collect::<IndexMap<_, _>>(),
            )
        }),
    ];
    (
        value,
        proptest::option::of("[A-Z]{3}"),
        proptest::option::of(json_value()),
    )
        .prop_map(|(v, unit, sub)| {
            let mut a = Attribute::new(v);
            a.set_unit_code(unit);
            if let Some(sub) = sub {
                a.sub_attributes
                    .insert(format!("{DC}accuracy"), Attribute::property(sub));
            }
            a
        })
}

fn attr_name() -> impl Strategy<Value = String> {
    "[a-z][a-zA-Z0-9]{0,8}".prop_filter("not an entity member", |n| {
        !matches!(n.as_str(), "id" | "type" | "scope")
    })
}

fn entity() -> impl Strategy<Value = Entity> {
    (
        prop::collection::btree_map(
            attr_name(),
            (attribute(), proptest::option::of(attribute())),
            0..6,
        ),
        proptest::option::of(point()),
    )
        .prop_map(|(attrs, location)| {
            let mut e = Entity::new("urn:ngsi-ld:Thing:1", format!("{DC}Thing"));
            for (name, (first, second)) in attrs {
                let key = format!("{DC}{name}");
                e.attributes.insert(key.clone(), vec![first]);
                if let Some(second) = second {
                    e.attributes
                        .entry(key)
                        .or_default()
                        .push(second.with_dataset_id("urn:ngsi-ld:dataset:2"));
                }
            }
            if let Some(l) = location {
                e.attributes
                    .insert(LOCATION.to_owned(), vec![Attribute::geo(l)]);
            }
            e
        })
}

fn core() -> Context {
    Context::core(CoreContext::V1_9)
}

proptest! {
    #[test]
    fn normalized_round_trips(e in entity()) {
        let ctx = core();
        let out = render(&e, &RenderOptions::default(), &ctx);
        prop_assert_eq!(parse_entity(&out, &ctx).expect("normalized output parses"), e);
    }

    #[test]
    fn concise_round_trips(e in entity()) {
        let ctx = core();
        let out = render(&e, &RenderOptions { format: Format::Concise, ..Default::default() }, &ctx);
        let back = parse_entity(&out, &ctx).map_err(|err| TestCaseError::fail(format!("{err}: {out}")))?;
        prop_assert_eq!(back, e, "{}", out);
    }

    #[test]
    fn key_values_keep_the_values(e in entity()) {
        let ctx = core();
        // Multi-attributes become a `dataset` map in keyValues; compare single-instance attributes.
        let out = render(&e, &RenderOptions { format: Format::KeyValues, ..Default::default() }, &ctx);
        let back = parse_entity_with(&out, &ctx, ParseOptions { key_values: true, ..Default::default() })
            .expect("keyValues output parses").entity;
        for (name, instances) in &e.attributes {
            let [only] = instances.as_slice() else { continue };
            let expected = match &only.value {
                AttributeValue::LanguageProperty(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                _ => attribute_value(only),
            };
            let got = back.first_attribute(name).map(attribute_value);
            prop_assert_eq!(got.as_ref(), Some(&expected), "{}", name);
        }
    }

    #[test]
    fn expansion_then_compaction_is_identity(
        user_terms in prop::collection::btree_map("[a-z][a-zA-Z]{0,7}", "[a-z]{1,8}", 0..8),
        probes in prop::collection::vec("[a-z][a-zA-Z0-9]{0,7}", 1..8),
    ) {
        prop_assume!(!user_terms.contains_key("ex"));
        let core_ctx = core();
        let mut local = serde_json::Map::new();
        local.insert("ex".into(), json!("https://example.org/ns/"));
        for (term, local_name) in user_terms.iter().filter(|(t, _)| core_ctx.term(t).is_none()) {
            // Distinct IRIs per term, so compaction has a unique answer.
            local.insert(term.clone(), json!(format!("ex:{local_name}/{term}")));
        }
        let ctx = Context::for_request(Some(&Value::Object(local)), CoreContext::V1_9, &NoLoader).expect("context processes");
        // Core terms always win (and some are typed, so never chosen for a node value): skip them.
        for term in user_terms.keys().chain(probes.iter()).filter(|t| core_ctx.term(t).is_none()) {
            let iri = ctx.expand_term(term).expect("expands");
            prop_assert_eq!(&ctx.compact_iri(&iri), term, "<{}>", iri);
        }
    }
}
