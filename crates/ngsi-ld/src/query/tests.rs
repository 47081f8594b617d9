//! Data-driven tests of the query language: one entity, many (query, expected) rows.

use serde_json::json;

use super::*;
use crate::context::CoreContext;
use crate::parse::parse_entity;

fn ctx() -> Context {
    Context::core(CoreContext::V1_9)
}

fn car() -> Entity {
    let mut e = parse_entity(
        &json!({
            "id": "urn:ngsi-ld:Vehicle:A4567", "type": ["Vehicle", "Car"],
            "scope": ["/Madrid/Gardens/ParkNorte", "/Spain"],
            "brandName": {"type": "Property", "value": "Mercedes"},
            "speed": {"type": "Property", "value": 80, "observedAt": "2024-05-01T10:00:00Z", "unitCode": "KMH",
                      "accuracy": {"type": "Property", "value": 0.95}},
            "temperature": [{"type": "Property", "value": 20}, {"type": "Property", "value": 35, "datasetId": "urn:ds:engine"}],
            "isParked": {"type": "Relationship", "object": "urn:ngsi-ld:OffStreetParking:Downtown1"},
            "address": {"type": "Property", "value": {"streetAddress": "Main 1", "city": "Madrid", "tags": ["a", "b"]}},
            "dateObserved": {"type": "Property", "value": {"@type": "DateTime", "@value": "2024-05-01T09:00:00Z"}},
            "fuel": {"type": "Property", "value": [10, 40, 70]},
            "name": {"type": "LanguageProperty", "languageMap": {"en": "car", "es": "coche"}},
            "category": {"type": "VocabProperty", "vocab": "sedan"},
            "active": {"type": "Property", "value": true},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-3.69, 40.42]}}
        }),
        &ctx(),
    )
    .expect("valid fixture");
    e.stamp(crate::time::parse_datetime("2024-01-01T00:00:00Z").expect("valid"));
    e
}

#[track_caller]
fn check(rows: &[(&str, bool)]) {
    let c = ctx();
    let e = car();
    for (q, expected) in rows {
        let parsed = parse_q(q, &c).unwrap_or_else(|err| panic!("`{q}` should parse: {err}"));
        assert_eq!(q::matches(&parsed, &e), *expected, "q={q}");
    }
}

#[test]
fn comparisons() {
    check(&[
        ("speed>50", true),
        ("speed>80", false),
        ("speed>=80", true),
        ("speed<80", false),
        ("speed<=80", true),
        ("speed==80", true),
        ("speed!=80", false),
        ("speed==80.0", true),
        ("speed==\"80\"", false),
        ("brandName==\"Mercedes\"", true),
        ("brandName!=\"Mercedes\"", false),
        ("brandName==\"Audi\"", false),
        ("brandName>\"Audi\"", true),
        ("active==true", true),
        ("active==false", false),
        ("nosuch==1", false),
        ("nosuch!=1", false),
    ]);
}

#[test]
fn ranges_lists_and_arrays() {
    check(&[
        ("speed==70..90", true),
        ("speed==81..90", false),
        ("speed!=81..90", true),
        ("brandName==\"Audi\",\"Mercedes\"", true),
        ("brandName!=\"Audi\",\"BMW\"", true),
        ("brandName==\"Audi\",\"BMW\"", false),
        ("fuel==40", true),
        ("fuel>60", true),
        ("fuel>70", false),
        ("fuel!=40", false),
        ("temperature>30", true),
        ("temperature==20", true),
    ]);
}

#[test]
fn logic_and_grouping() {
    check(&[
        ("speed>50;brandName==\"Mercedes\"", true),
        ("speed>50;brandName==\"Audi\"", false),
        ("speed>90|brandName==\"Mercedes\"", true),
        ("(speed>90|brandName==\"Mercedes\");active==true", true),
        ("speed>90|(brandName==\"Mercedes\";active==false)", false),
        ("speed>90;brandName==\"Audi\"|active==true", true),
    ]);
}

#[test]
fn existence_paths_and_members() {
    check(&[
        ("speed", true),
        ("!speed", false),
        ("nosuch", false),
        ("!nosuch", true),
        ("speed.accuracy>0.9", true),
        ("speed.accuracy", true),
        ("speed.nosuch", false),
        ("speed.observedAt>2024-04-01T00:00:00Z", true),
        ("speed.observedAt<2024-04-01T00:00:00Z", false),
        ("speed.unitCode==\"KMH\"", true),
        ("address[city]==\"Madrid\"", true),
        ("address[city]==\"Paris\"", false),
        ("address[tags]==\"b\"", true),
        ("address[nosuch]", false),
        ("address.city==\"Madrid\"", true),
        ("temperature.datasetId==urn:ds:engine", true),
        ("createdAt==2024-01-01T00:00:00Z", true),
        ("modifiedAt>2025-01-01T00:00:00Z", false),
    ]);
}

#[test]
fn kinds_dates_and_patterns() {
    check(&[
        ("isParked==urn:ngsi-ld:OffStreetParking:Downtown1", true),
        ("isParked==\"urn:ngsi-ld:OffStreetParking:Downtown1\"", true),
        ("isParked==urn:ngsi-ld:OffStreetParking:Other", false),
        ("dateObserved>2024-05-01T08:00:00Z", true),
        ("dateObserved>2024-05-01T09:30:00+00:00", false),
        ("dateObserved==2024-05-01T11:00:00+02:00", true),
        ("name==\"coche\"", true),
        ("name==\"auto\"", false),
        ("category==sedan", true),
        (
            "category==\"https://uri.etsi.org/ngsi-ld/default-context/sedan\"",
            true,
        ),
        ("category==suv", false),
        ("brandName~=Merc", true),
        ("brandName~=(?i)^mercedes$", true),
        ("brandName~=^Audi", false),
        ("brandName!~=^Audi", true),
        ("brandName!~=Merc", false),
        ("brandName~=\"ce|Au\"", true),
        ("(brandName~=(e|x)s$)", true),
    ]);
}

#[test]
fn syntax_errors_have_positions() {
    let c = ctx();
    for (q, pos) in [
        ("speed>", 6),
        ("speed>>5", 6),
        ("speed=5", 5),
        ("(speed>5", 8),
        ("speed>5)", 7),
        (";speed", 0),
        ("speed>5;", 8),
        ("brandName==\"abc", 11),
        ("brandName~=(", 11),
        ("speed>1,2", 5),
        ("speed<1..3", 5),
        ("address[city==1", 12),
        ("speed.", 6),
    ] {
        let err = parse_q(q, &c)
            .err()
            .unwrap_or_else(|| panic!("`{q}` should not parse"));
        assert_eq!(err.position, pos, "q={q}: {err}");
    }
    let err = Query::parse(
        &QueryParams {
            q: Some("speed>"),
            ..Default::default()
        },
        &c,
    )
    .unwrap_err();
    assert_eq!(err.kind, crate::ErrorKind::BadRequestData);
    assert!(
        err.detail.contains("invalid q") && err.detail.contains("position 6"),
        "{}",
        err.detail
    );
}

#[test]
fn the_ast_is_translatable() {
    let c = ctx();
    let q = parse_q("speed.accuracy>=0.5;address[city]==\"Madrid\",\"Rome\"", &c).expect("parses");
    let BoolExpr::And(items) = q else {
        panic!("expected And")
    };
    let BoolExpr::Atom(QTerm::Compare { path, op, value }) = &items[0] else {
        panic!("expected Compare")
    };
    assert_eq!(
        path.attribute,
        "https://uri.etsi.org/ngsi-ld/default-context/speed"
    );
    assert_eq!(
        path.sub_attributes[0].expanded,
        "https://uri.etsi.org/ngsi-ld/default-context/accuracy"
    );
    assert_eq!(*op, CompareOp::Ge);
    assert_eq!(*value, QValue::Single(Literal::Number(0.5)));
    let BoolExpr::Atom(QTerm::Compare {
        path,
        value: QValue::List(list),
        ..
    }) = &items[1]
    else {
        panic!("expected list")
    };
    assert_eq!(path.members, vec!["city".to_owned()]);
    assert_eq!(path.written, "address[city]");
    assert_eq!(list.len(), 2);
}

#[test]
fn type_expressions() {
    let c = ctx();
    let e = car();
    for (t, expected) in [
        ("Vehicle", true),
        ("Bus", false),
        ("Bus,Car", true),
        ("Bus|Car", true),
        ("Vehicle;Car", true),
        ("Vehicle;Bus", false),
        ("(Bus|Vehicle);Car", true),
        ("Bus;(Vehicle|Car)", false),
    ] {
        let q = Query::parse(
            &QueryParams {
                types: Some(t),
                ..Default::default()
            },
            &c,
        )
        .expect("parses");
        assert_eq!(q.matches(&e), expected, "type={t}");
    }
    for bad in ["", "Car,", "(Car", "Car;;Bus", "Ca r"] {
        assert!(parse_type_expr(bad, &c).is_err(), "type={bad}");
    }
}

#[test]
fn scope_queries() {
    let e = car();
    for (s, expected) in [
        ("/Madrid/Gardens/ParkNorte", true),
        ("/Madrid/Gardens", false),
        ("/Madrid/#", true),
        ("/Madrid/Gardens/#", true),
        ("/+/Gardens/+", true),
        ("/+/Gardens", false),
        ("/#", true),
        ("/Spain", true),
        ("/France|/Spain", true),
        ("/France,/Spain", true),
        ("/Spain;/Madrid/#", true),
        ("/Spain;/France", false),
    ] {
        let expr = parse_scope_q(s).expect("parses");
        assert_eq!(
            expr.eval(&mut |p: &ScopePattern| e.scope.iter().any(|sc| p.matches(sc))),
            expected,
            "scopeQ={s}"
        );
    }
    for bad in ["Madrid", "/a/#/b", "/a//b", "/a#", "/"] {
        let parsed = parse_scope_q(bad);
        assert!(parsed.is_err() || bad == "/", "scopeQ={bad}");
    }
}

#[test]
fn combined_query() {
    let c = ctx();
    let e = car();
    let mut params = QueryParams {
        ids: Some("urn:ngsi-ld:Vehicle:A4567,urn:x:y"),
        id_pattern: Some("^urn:ngsi-ld:Vehicle:"),
        types: Some("Vehicle"),
        q: Some("speed>50"),
        scope_q: Some("/Madrid/#"),
        attrs: Some("nosuch,speed"),
        georel: Some("near;maxDistance==1000"),
        geometry: Some("Point"),
        coordinates: Some("[-3.69,40.421]"),
        geoproperty: None,
    };
    let q = Query::parse(&params, &c).expect("parses");
    assert!(q.has_selector());
    assert!(q.matches(&e));
    params.coordinates = Some("[-3.69,40.5]");
    assert!(!Query::parse(&params, &c).expect("parses").matches(&e));
    params.coordinates = None;
    assert!(Query::parse(&params, &c).is_err());
    assert!(
        !Query::parse(&QueryParams::default(), &c)
            .expect("parses")
            .has_selector()
    );
    assert!(
        Query::parse(
            &QueryParams {
                ids: Some("not an id"),
                ..Default::default()
            },
            &c
        )
        .is_err()
    );
    assert!(
        Query::parse(
            &QueryParams {
                id_pattern: Some("("),
                ..Default::default()
            },
            &c
        )
        .is_err()
    );
    let only_attrs = Query::parse(
        &QueryParams {
            attrs: Some("nosuch"),
            ..Default::default()
        },
        &c,
    )
    .expect("parses");
    assert!(!only_attrs.matches(&e));
}

#[test]
fn stacked_quantifiers_and_core_member_attrs_are_refused() {
    let c = ctx();
    let pattern = |p: &'static str| {
        Query::parse(
            &QueryParams {
                id_pattern: Some(p),
                ..Default::default()
            },
            &c,
        )
    };
    for bad in ["invalid_entity_id_pattern**", "a+*", "a?+", "a{2}*"] {
        assert!(pattern(bad).is_err(), "{bad} accepted");
    }
    for good in [
        "^urn:.*", "a*?b", "a+?", "(?i)urn", r"a\**", "[*+]+", "x{1,2}?",
    ] {
        assert!(pattern(good).is_ok(), "{good} refused");
    }
    for bad in ["id", "type,speed"] {
        let q = Query::parse(
            &QueryParams {
                attrs: Some(bad),
                ..Default::default()
            },
            &c,
        );
        assert!(q.is_err(), "attrs={bad} accepted");
    }
}
