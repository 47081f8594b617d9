//! Differential tests of our JSON-LD term handling against pyld, a reference JSON-LD processor.
//!
//! The fixtures in `tests/fixtures/pyld/` were produced by `tests/oracle/gen_pyld_fixtures.py` (pyld
//! 3.3.0, offline, same effective contexts). Each fixture holds a document (every Smart Data Models
//! example in `tests/fixtures/sdm/`, the ETSI test-suite context, each pinned core context, inline
//! prefixes), pyld's expansion and compaction of every name in it plus probe strings, and pyld's full
//! expansion of the document. We check that our compiled context gives the same IRIs and terms, and
//! that our parsed entity has exactly the types, attributes, kinds and sub-attributes pyld found.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ngsi_ld::context::preload::{PreloadMap, smart_data_models_preload};
use ngsi_ld::model::AttributeKind;
use ngsi_ld::{
    Context, CoreContext, Entity, ParseOptions, RenderOptions, parse_entity_with, render,
};
use serde_json::Value;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn loader() -> PreloadMap {
    let mut map = PreloadMap::with_test_suite();
    let dir = crate_dir().join("tests/fixtures/sdm/_contexts");
    for (url, file) in smart_data_models_preload() {
        let text =
            std::fs::read_to_string(dir.join(file)).expect("SDM context fixture is readable");
        map.insert_source(&url, &text)
            .expect("SDM context is valid");
    }
    map
}

fn fixtures() -> Vec<(String, Value)> {
    let dir = crate_dir().join("tests/fixtures/pyld");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("fixture dir exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p: PathBuf| {
            let text = std::fs::read_to_string(&p).expect("readable fixture");
            (
                name_of(&p),
                serde_json::from_str(&text).expect("fixture is JSON"),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 20,
        "expected the generated fixtures, found {}",
        out.len()
    );
    out
}

fn name_of(p: &Path) -> String {
    p.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned()
}

fn context_for(fixture: &Value, map: &PreloadMap) -> Context {
    let user = fixture["document"].get("@context");
    Context::for_request(user, CoreContext::V1_9, map).expect("context processes")
}

#[test]
fn term_expansion_matches_pyld() {
    let map = loader();
    let mut checked = 0;
    for (name, fixture) in fixtures() {
        let ctx = context_for(&fixture, &map);
        for (term, expected) in fixture["terms"].as_object().expect("terms map") {
            let ours = ctx.expand_term(term);
            assert_eq!(
                ours.as_deref(),
                expected.as_str(),
                "{name}: expansion of `{term}`"
            );
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} terms checked");
}

#[test]
fn iri_compaction_matches_pyld() {
    let map = loader();
    let mut checked = 0;
    for (name, fixture) in fixtures() {
        let ctx = context_for(&fixture, &map);
        for (iri, expected) in fixture["compact"].as_object().expect("compact map") {
            assert_eq!(
                Some(ctx.compact_iri(iri).as_str()),
                expected.as_str(),
                "{name}: compaction of <{iri}>"
            );
            checked += 1;
        }
    }
    assert!(checked > 400, "only {checked} IRIs checked");
}

/// Core members of an expanded attribute node that are not sub-attributes.
const CORE_MEMBERS: &[&str] = &[
    "@type",
    "https://uri.etsi.org/ngsi-ld/hasValue",
    "https://uri.etsi.org/ngsi-ld/hasObject",
    "https://uri.etsi.org/ngsi-ld/hasObjectList",
    "https://uri.etsi.org/ngsi-ld/hasLanguageMap",
    "https://uri.etsi.org/ngsi-ld/hasVocab",
    "https://uri.etsi.org/ngsi-ld/hasJSON",
    "https://uri.etsi.org/ngsi-ld/hasValueList",
    "https://uri.etsi.org/ngsi-ld/observedAt",
    "https://uri.etsi.org/ngsi-ld/unitCode",
    "https://uri.etsi.org/ngsi-ld/datasetId",
    "https://uri.etsi.org/ngsi-ld/hasObjectType",
];

fn parse_fixture(fixture: &Value, ctx: &Context, key_values: bool) -> Entity {
    let opts = ParseOptions {
        key_values,
        ..Default::default()
    };
    parse_entity_with(&fixture["document"], ctx, opts)
        .expect("fixture document parses")
        .entity
}

#[test]
fn parsed_entities_match_pyld_expansion() {
    let map = loader();
    for (name, fixture) in fixtures() {
        let ctx = context_for(&fixture, &map);
        let key_values = name.ends_with("-keyvalues");
        let entity = parse_fixture(&fixture, &ctx, key_values);
        let expanded = &fixture["expanded"][0];
        let types: Vec<&str> = expanded["@type"]
            .as_array()
            .expect("@type")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(entity.types, types, "{name}: types");
        assert_eq!(
            entity.id,
            expanded["@id"].as_str().unwrap_or_default(),
            "{name}: id"
        );
        let pyld_attrs: BTreeSet<&str> = expanded
            .as_object()
            .expect("node")
            .keys()
            .map(String::as_str)
            .filter(|k| !k.starts_with('@'))
            .collect();
        let ours: BTreeSet<&str> = entity.attributes.keys().map(String::as_str).collect();
        assert_eq!(ours, pyld_attrs, "{name}: attribute names");
        if key_values {
            continue;
        }
        for (attr_name, instances) in &entity.attributes {
            let nodes = expanded[attr_name.as_str()]
                .as_array()
                .expect("attribute instances");
            assert_eq!(
                nodes.len(),
                instances.len(),
                "{name}: instances of {attr_name}"
            );
            for (node, instance) in nodes.iter().zip(instances) {
                let kind_iri = node["@type"][0].as_str().unwrap_or_default();
                assert_eq!(
                    AttributeKind::from_name(kind_iri),
                    Some(instance.kind()),
                    "{name}: kind of {attr_name}"
                );
                let pyld_subs: BTreeSet<&str> = node
                    .as_object()
                    .expect("attribute node")
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !CORE_MEMBERS.contains(k))
                    .collect();
                let our_subs: BTreeSet<&str> =
                    instance.sub_attributes.keys().map(String::as_str).collect();
                assert_eq!(our_subs, pyld_subs, "{name}: sub-attributes of {attr_name}");
            }
        }
    }
}

#[test]
fn normalized_examples_round_trip_through_compaction() {
    let map = loader();
    for (name, fixture) in fixtures() {
        if name.ends_with("-keyvalues") {
            continue;
        }
        let ctx = context_for(&fixture, &map);
        let entity = parse_fixture(&fixture, &ctx, false);
        let rendered = render(&entity, &RenderOptions::default(), &ctx);
        let mut original: Vec<&String> = fixture["document"]
            .as_object()
            .expect("doc")
            .keys()
            .filter(|k| *k != "@context")
            .collect();
        let mut ours: Vec<&String> = rendered.as_object().expect("rendered").keys().collect();
        original.sort();
        ours.sort();
        assert_eq!(
            ours, original,
            "{name}: member names after expand + compact"
        );
        // Re-parsing our own output gives the same entity.
        let again = ngsi_ld::parse_entity(&rendered, &ctx).expect("rendered entity re-parses");
        assert_eq!(again, entity, "{name}: render -> parse round trip");
    }
}
