#![allow(clippy::unwrap_used)]

use super::*;
use crate::context::{CoreContext, NoLoader};
use crate::parse::parse_entity;

fn ctx() -> Context {
    Context::for_request(None, CoreContext::V1_9, &NoLoader).unwrap()
}

fn t(s: &str) -> Timestamp {
    parse_datetime(s).unwrap()
}

fn sub(v: Value) -> Result<Subscription> {
    Subscription::parse(&v, &ctx(), "urn:ngsi-ld:Subscription:default")
}

fn base() -> Value {
    json!({
        "type": "Subscription",
        "entities": [{"type": "Car"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}
    })
}

fn car(speed: i64) -> Entity {
    parse_entity(
        &json!({"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": speed, "brand": "x"}),
        &ctx(),
    )
    .unwrap()
}

#[test]
fn parse_applies_defaults_and_renders_back() {
    let s = sub(base()).unwrap();
    assert_eq!(s.id, "urn:ngsi-ld:Subscription:default");
    assert_eq!(
        s.triggers,
        vec![Trigger::AttributeCreated, Trigger::AttributeUpdated]
    );
    let out = s.render(&ctx(), t("2030-01-01T00:00:00Z"));
    assert_eq!(out["entities"], json!([{"type": "Car"}]));
    assert_eq!(out["status"], json!("active"));
    assert_eq!(
        out["notificationTrigger"],
        json!(["attributeCreated", "attributeUpdated"])
    );
    // Parsing the rendering gives the same rendering.
    let again = Subscription::parse(&Value::Object(out.clone()), &ctx(), "x").unwrap();
    assert_eq!(again.render(&ctx(), t("2030-01-01T00:00:00Z")), out);
}

#[test]
fn invalid_subscriptions_are_bad_request_data_naming_the_member() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "empty"),
        (
            json!({"type": "Subscription"}),
            "entities or watchedAttributes",
        ),
        (
            {
                let mut v = base();
                v["throttling"] = json!(-1);
                v
            },
            "throttling",
        ),
        (
            {
                let mut v = base();
                v["throttling"] = json!(5);
                v["timeInterval"] = json!(5);
                v
            },
            "together",
        ),
        (
            {
                let mut v = base();
                v["notification"]["endpoint"]["uri"] = json!("not a uri");
                v
            },
            "endpoint.uri",
        ),
        (
            {
                let mut v = base();
                v["notificationTrigger"] = json!(["entityExploded"]);
                v
            },
            "notificationTrigger",
        ),
        (
            {
                let mut v = base();
                v["q"] = json!("speed>>");
                v
            },
            "q",
        ),
        (
            {
                let mut v = base();
                v["notification"]["attributes"] = json!(["a"]);
                v["notification"]["pick"] = json!(["a"]);
                v
            },
            "pick",
        ),
        (
            {
                let mut v = base();
                v["entities"] = json!([{"id": "urn:x:1"}]);
                v
            },
            "type",
        ),
        (
            {
                let mut v = base();
                v["type"] = json!("Entity");
                v
            },
            "Subscription",
        ),
    ];
    for (body, needle) in cases {
        let e = sub(body.clone()).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::BadRequestData, "{body}");
        assert!(e.detail.contains(needle), "{body}: {}", e.detail);
    }
}

#[test]
fn triggers_follow_the_change_and_watched_attributes() {
    let mut v = base();
    v["watchedAttributes"] = json!(["speed"]);
    let s = sub(v).unwrap();
    let (a, b) = (car(10), car(20));
    assert_eq!(s.on_change(None, Some(&a)), Some(Trigger::AttributeCreated));
    // speed changed: attributeUpdated.
    let mut b2 = b.clone();
    b2.attributes["https://uri.etsi.org/ngsi-ld/default-context/speed"][0].modified_at =
        Some(t("2030-01-01T00:00:00Z"));
    assert_eq!(
        s.on_change(Some(&a), Some(&b2)),
        Some(Trigger::AttributeUpdated)
    );
    // Only brand changed: not watched.
    let mut c = a.clone();
    c.attributes["https://uri.etsi.org/ngsi-ld/default-context/brand"][0].value =
        AttributeValue::Property(json!("y"));
    assert_eq!(s.on_change(Some(&a), Some(&c)), None);
    // Deletion is not among the default triggers.
    assert_eq!(s.on_change(Some(&a), None), None);
    let mut v = base();
    v["notificationTrigger"] = json!(["entityDeleted"]);
    let d = sub(v).unwrap();
    assert_eq!(d.on_change(Some(&a), None), Some(Trigger::EntityDeleted));
    assert_eq!(d.on_change(None, Some(&a)), None);
}

#[test]
fn q_type_and_id_pattern_select_entities() {
    let mut v = base();
    v["q"] = json!("speed>15");
    v["entities"] = json!([{"idPattern": "^urn:ngsi-ld:Car:", "type": "Car"}]);
    let s = sub(v).unwrap();
    assert!(s.selects(&car(20)));
    assert!(!s.selects(&car(10)));
    // A percent-encoded q (as the conformance suite sends) is decoded.
    let mut v = base();
    v["q"] = json!("brand==%22x%22");
    assert!(sub(v).unwrap().selects(&car(1)));
    let mut other = car(20);
    other.types = vec!["https://uri.etsi.org/ngsi-ld/default-context/Bus".into()];
    assert!(!s.selects(&other));
}

#[test]
fn notification_data_formats_show_changes_and_deletions() {
    let mut v = base();
    v["notification"]["showChanges"] = json!(true);
    let s = sub(v).unwrap();
    let (a, b) = (car(10), car(20));
    let data = s.notification_entity(
        Some(&a),
        Some(&b),
        Some(Trigger::AttributeUpdated),
        &ctx(),
        t("2030-01-01T00:00:00Z"),
    );
    assert_eq!(data["speed"]["value"], json!(20));
    assert_eq!(data["speed"]["previousValue"], json!(10));
    assert!(data["brand"].get("previousValue").is_none());
    // Attribute deleted: shown as urn:ngsi-ld:null with its previous value.
    let mut gone = a.clone();
    gone.attributes
        .shift_remove("https://uri.etsi.org/ngsi-ld/default-context/brand");
    let data = s.notification_entity(
        Some(&a),
        Some(&gone),
        Some(Trigger::AttributeDeleted),
        &ctx(),
        t("2030-01-01T00:00:00Z"),
    );
    assert_eq!(data["brand"]["value"], json!("urn:ngsi-ld:null"));
    assert_eq!(data["brand"]["previousValue"], json!("x"));
    // Entity deleted.
    let data = s.notification_entity(
        Some(&a),
        None,
        Some(Trigger::EntityDeleted),
        &ctx(),
        t("2030-01-01T00:00:00Z"),
    );
    assert_eq!(data["id"], json!("urn:ngsi-ld:Car:1"));
    assert_eq!(data["speed"]["value"], json!("urn:ngsi-ld:null"));
    assert_eq!(data["deletedAt"], json!("2030-01-01T00:00:00Z"));
    // keyValues with attributes.
    let mut v = base();
    v["notification"]["format"] = json!("keyValues");
    v["notification"]["attributes"] = json!(["speed"]);
    let s = sub(v).unwrap();
    let data = s.notification_entity(
        None,
        Some(&b),
        Some(Trigger::EntityCreated),
        &ctx(),
        t("2030-01-01T00:00:00Z"),
    );
    assert_eq!(
        data,
        json!({"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 20})
    );
}

#[test]
fn state_throttling_and_patch() {
    let mut v = base();
    v["expiresAt"] = json!("2030-01-01T00:00:00Z");
    let s = sub(v).unwrap();
    assert_eq!(
        s.state(t("2029-12-31T00:00:00Z")),
        SubscriptionState::Active
    );
    assert_eq!(
        s.state(t("2030-01-02T00:00:00Z")),
        SubscriptionState::Expired
    );
    let paused = s
        .patch(
            &json!({"isActive": false}),
            &ctx(),
            t("2029-01-01T00:00:00Z"),
        )
        .unwrap();
    assert_eq!(
        paused.state(t("2029-12-31T00:00:00Z")),
        SubscriptionState::Paused
    );
    assert!(!paused.wants_changes(t("2029-12-31T00:00:00Z")));
    // `notification` is replaced as a whole: without an endpoint it is invalid.
    assert!(
        s.patch(
            &json!({"notification": {"format": "keyValues"}}),
            &ctx(),
            t("2029-01-01T00:00:00Z")
        )
        .is_err()
    );
    let thr = s
        .patch(
            &json!({"throttling": 5, "notification": {"format": "keyValues", "endpoint": {"uri": "http://127.0.0.1:9/notify"}}}),
            &ctx(),
            t("2029-01-01T00:00:00Z"),
        )
        .unwrap();
    assert_eq!(thr.throttling, Some(5.0));
    assert_eq!(thr.notification.format, Format::KeyValues);
    assert_eq!(thr.notification.endpoint.uri, "http://127.0.0.1:9/notify");
    assert!(
        s.patch(
            &json!({"notification": null}),
            &ctx(),
            t("2029-01-01T00:00:00Z")
        )
        .is_err()
    );
    assert!(
        s.patch(
            &json!({"throttling": -3}),
            &ctx(),
            t("2029-01-01T00:00:00Z")
        )
        .is_err()
    );
    let now = t("2030-01-01T00:00:10Z");
    assert!(throttled(Some(5.0), Some(t("2030-01-01T00:00:07Z")), now));
    assert!(!throttled(Some(5.0), Some(t("2030-01-01T00:00:04Z")), now));
    assert!(!throttled(None, Some(now), now));
}

#[test]
fn a_deleted_instance_is_notified_as_null_beside_the_remaining_ones() {
    let s = sub(base()).unwrap();
    let name = "https://uri.etsi.org/ngsi-ld/default-context/name";
    let mut a = car(1);
    a.upsert_attribute(name.to_owned(), Attribute::property(json!("A")));
    a.upsert_attribute(
        name.to_owned(),
        Attribute::property(json!("B")).with_dataset_id("urn:ds:b"),
    );
    let mut b = a.clone();
    b.remove_attribute(name, Some("urn:ds:b"), false);
    assert_eq!(
        s.on_change(Some(&a), Some(&b)),
        Some(Trigger::AttributeUpdated)
    );
    let data = s.notification_entity(
        Some(&a),
        Some(&b),
        Some(Trigger::AttributeUpdated),
        &ctx(),
        t("2030-01-01T00:00:00Z"),
    );
    assert_eq!(
        data["name"],
        json!([{"type": "Property", "value": "A"}, {"type": "Property", "value": "urn:ngsi-ld:null", "datasetId": "urn:ds:b"}])
    );
    let mut v = base();
    v["notification"]["format"] = json!("keyValues");
    let kv = sub(v).unwrap();
    let data = kv.notification_entity(
        Some(&a),
        Some(&b),
        Some(Trigger::AttributeUpdated),
        &ctx(),
        t("2030-01-01T00:00:00Z"),
    );
    assert_eq!(
        data["name"],
        json!({"dataset": {"@none": "A", "urn:ds:b": "urn:ngsi-ld:null"}})
    );
}

#[test]
fn join_adds_linked_entities_flat_or_inline_and_asks_for_missing_ones() {
    let building = parse_entity(
        &json!({"id": "urn:ngsi-ld:Building:1", "type": "Building",
                "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"}}),
        &ctx(),
    )
    .unwrap();
    let city = parse_entity(
        &json!({"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": "Paris"}),
        &ctx(),
    )
    .unwrap();
    let mut v = base();
    v["entities"] = json!([{"type": "Building"}]);
    v["notification"]["join"] = json!("flat");
    v["notification"]["joinLevel"] = json!(1);
    let flat = sub(v.clone()).unwrap();
    let rendered = flat.render(&ctx(), t("2030-01-01T00:00:00Z"));
    assert_eq!(rendered["notification"]["join"], "flat");
    assert_eq!(rendered["notification"]["joinLevel"], 1);
    let data = flat.notification_entity(
        None,
        Some(&building),
        None,
        &ctx(),
        t("2030-01-01T00:00:00Z"),
    );
    // Nothing fetched yet: the data is the entity alone and the city is asked for.
    let joined = flat.notification_data(data.clone(), &building, &|_| None, &ctx());
    assert_eq!(joined.values, vec![data.clone()]);
    assert_eq!(joined.missing, vec!["urn:ngsi-ld:City:Paris".to_owned()]);
    let lookup = |id: &str| (id == city.id).then_some(&city);
    let joined = flat.notification_data(data.clone(), &building, &lookup, &ctx());
    assert_eq!(joined.values.len(), 2);
    assert_eq!(joined.values[0], data);
    assert_eq!(joined.values[1]["name"]["value"], "Paris");

    v["notification"]["join"] = json!("inline");
    v["notification"]["format"] = json!("keyValues");
    let inline = sub(v.clone()).unwrap();
    let data = inline.notification_entity(
        None,
        Some(&building),
        None,
        &ctx(),
        t("2030-01-01T00:00:00Z"),
    );
    let joined = inline.notification_data(data, &building, &lookup, &ctx());
    assert_eq!(
        joined.values,
        vec![json!({"id": "urn:ngsi-ld:Building:1", "type": "Building",
                    "locatedAt": {"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": "Paris"}})]
    );

    v["notification"]["join"] = json!("around");
    assert!(sub(v.clone()).is_err());
    v["notification"]["join"] = json!("flat");
    v["notification"]["joinLevel"] = json!(0);
    assert!(sub(v).is_err());
}
