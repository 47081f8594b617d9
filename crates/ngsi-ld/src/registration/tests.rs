#![allow(clippy::unwrap_used)]

use super::*;
use crate::context::{CoreContext, NoLoader};
use crate::query::parse_type_expr;

fn ctx() -> Context {
    Context::for_request(None, CoreContext::V1_9, &NoLoader).unwrap()
}

fn vocab_ctx() -> Context {
    Context::for_request(
        Some(&json!({"Vehicle": "https://example.org/ns#Vehicle", "speed": "https://example.org/ns#speed"})),
        CoreContext::V1_9,
        &NoLoader,
    )
    .unwrap()
}

fn base() -> Value {
    json!({
        "id": "urn:ngsi-ld:ContextSourceRegistration:1",
        "type": "ContextSourceRegistration",
        "information": [
            {
                "entities": [{"id": "urn:ngsi-ld:Vehicle:A456", "type": "Vehicle"}],
                "propertyNames": ["brandName", "speed"],
                "relationshipNames": ["isParked"]
            },
            {
                "entities": [{"idPattern": ".*downtown$", "type": "OffStreetParking"}],
                "propertyNames": ["availableSpotNumber"]
            }
        ],
        "endpoint": "http://my.csource.org:1026",
        "expiresAt": "2035-11-29T14:53:15Z",
        "contextSourceInfo": [{"key": "k", "value": "v"}]
    })
}

fn reg(v: Value) -> Result<Registration> {
    Registration::parse(&v, &ctx(), "urn:ngsi-ld:ContextSourceRegistration:default")
}

fn filter(types: Option<&str>, ids: Option<&[&str]>, attrs: Option<&[&str]>) -> RegistrationFilter {
    let c = ctx();
    RegistrationFilter {
        ids: ids.map(|i| i.iter().map(|s| (*s).to_owned()).collect()),
        id_pattern: None,
        types: types.map(|t| parse_type_expr(t, &c).unwrap()),
        attrs: attrs.map(|a| a.iter().map(|n| c.expand_term(n).unwrap()).collect()),
    }
}

#[test]
fn parse_and_render_round_trip() {
    let r = reg(base()).unwrap();
    assert_eq!(r.information.len(), 2);
    assert_eq!(r.endpoint, "http://my.csource.org:1026");
    let out = Value::Object(r.render(&ctx()));
    let mut expected = base();
    expected["expiresAt"] = json!("2035-11-29T14:53:15Z");
    assert_eq!(out, expected);
}

#[test]
fn names_are_expanded_with_the_request_context() {
    let r = Registration::parse(&base(), &vocab_ctx(), "urn:x:1").unwrap();
    assert_eq!(
        r.information[0].entities[0].types.atoms(),
        vec!["https://example.org/ns#Vehicle"]
    );
    assert!(
        r.information[0]
            .property_names
            .as_ref()
            .unwrap()
            .contains(&"https://example.org/ns#speed".to_owned())
    );
    // Rendered with another context, the expanded names show.
    let out = r.render(&ctx());
    assert_eq!(
        out["information"][0]["entities"][0]["type"],
        json!("https://example.org/ns#Vehicle")
    );
}

#[test]
fn invalid_registrations_are_refused() {
    let cases = [
        json!({"type": "Subscription", "information": [{"entities": [{"type": "T"}]}], "endpoint": "http://x"}),
        json!({"type": "ContextSourceRegistration", "information": [], "endpoint": "http://x"}),
        json!({"type": "ContextSourceRegistration", "information": [{"entities": [{"type": "T"}]}]}),
        json!({"type": "ContextSourceRegistration", "information": [{"entities": [{"type": "T"}]}], "endpoint": "not a uri"}),
        json!({"type": "ContextSourceRegistration", "information": [{}], "endpoint": "http://x"}),
        json!({"type": "ContextSourceRegistration", "information": [{"entities": [{"id": "urn:x:1"}]}], "endpoint": "http://x"}),
        json!({"type": "ContextSourceRegistration", "information": [{"entities": [{"type": "T"}]}], "endpoint": "http://x", "expiresAt": "tomorrow"}),
        json!({"type": "ContextSourceRegistration", "information": [{"entities": [{"type": "T"}]}], "endpoint": "http://x", "mode": "sometimes"}),
        json!({"id": "nota uri", "type": "ContextSourceRegistration", "information": [{"entities": [{"type": "T"}]}], "endpoint": "http://x"}),
    ];
    for case in cases {
        let e = reg(case.clone()).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::BadRequestData, "{case}");
    }
}

#[test]
fn filter_by_type_id_and_attrs() {
    let r = reg(base()).unwrap();
    assert!(filter(Some("Vehicle"), None, None).matches(&r));
    assert!(filter(Some("OffStreetParking"), None, None).matches(&r));
    assert!(!filter(Some("Building"), None, None).matches(&r));
    assert!(filter(Some("Vehicle"), Some(&["urn:ngsi-ld:Vehicle:A456"]), None).matches(&r));
    assert!(!filter(Some("Vehicle"), Some(&["urn:ngsi-ld:Vehicle:B1"]), None).matches(&r));
    // The id pattern of the second entry covers this id.
    assert!(filter(None, Some(&["urn:ngsi-ld:OffStreetParking:downtown"]), None).matches(&r));
    assert!(filter(Some("Vehicle"), None, Some(&["speed"])).matches(&r));
    // speed is registered for vehicles only.
    assert!(!filter(Some("OffStreetParking"), None, Some(&["speed"])).matches(&r));
    assert!(!filter(None, None, Some(&["colour"])).matches(&r));
}

#[test]
fn merge_replaces_members_and_keeps_the_rest() {
    let r = reg(base()).unwrap();
    let m = r
        .merge(
            &json!({"endpoint": "http://other.example", "registrationName": "n", "contextSourceInfo": null}),
            &ctx(),
        )
        .unwrap();
    assert_eq!(m.endpoint, "http://other.example");
    assert_eq!(m.name.as_deref(), Some("n"));
    assert!(m.other.is_empty());
    assert_eq!(m.information.len(), 2);
    assert!(r.merge(&json!({"id": "urn:x:other"}), &ctx()).is_err());
    assert!(r.merge(&json!({"endpoint": null}), &ctx()).is_err());
}

#[test]
fn expiry_is_decided_by_the_given_time() {
    let r = reg(base()).unwrap();
    assert!(!r.is_expired(crate::time::parse_datetime("2030-01-01T00:00:00Z").unwrap()));
    assert!(r.is_expired(crate::time::parse_datetime("2036-01-01T00:00:00Z").unwrap()));
}
