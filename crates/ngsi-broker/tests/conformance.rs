//! Behaviour the ETSI NGSI-LD test suite checks (docs/conformance.md), pinned with our own cases:
//! Update Attributes appends what the entity lacks, a partial attribute update keeps the
//! attribute's type.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

const VEHICLE: &str = "/entities/urn:ngsi-ld:Vehicle:1";

async fn vehicle() -> (Server, String) {
    let s = serve_broker(None, false).await;
    let t = s.token("alice").await;
    let r = s
        .post(
            "/entities",
            &t,
            json!({
                "id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle",
                "isParked": {"type": "Relationship", "object": "urn:ngsi-ld:Parking:1",
                             "observedAt": "2017-07-29T12:00:04Z",
                             "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Person:Bob"}},
                "speed": [{"type": "Property", "value": 55},
                          {"type": "Property", "value": 54.5, "datasetId": "urn:ngsi-ld:ds:gps"}]
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (s, t)
}

/// ETSI GS CIM 009 V1.9.1 clause 5.6.2.4 (suite 011_01_03, and the setup of 046_23-046_30,
/// 046_41): an attribute, or a datasetId instance, the entity does not have is appended; the
/// whole update is a success (204).
#[tokio::test]
async fn update_attributes_appends_missing_attributes_and_instances() {
    let (s, t) = vehicle().await;
    let r = s
        .patch(
            &format!("{VEHICLE}/attrs"),
            &t,
            json!({
                "isParked2": {"type": "Relationship", "object": "urn:ngsi-ld:Parking:2"},
                "speed": {"type": "Property", "value": 99, "datasetId": "urn:ngsi-ld:ds:gps"},
                "brandName": {"type": "Property", "value": "Mercedes", "datasetId": "urn:ngsi-ld:ds:new"}
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let e = s.get(VEHICLE, &t).await.body;
    assert_eq!(e["isParked2"]["object"], "urn:ngsi-ld:Parking:2");
    assert_eq!(e["isParked"]["object"], "urn:ngsi-ld:Parking:1");
    let speeds = e["speed"].as_array().unwrap();
    assert_eq!(speeds.len(), 2);
    assert!(
        speeds
            .iter()
            .any(|i| i["value"] == 55 && i.get("datasetId").is_none())
    );
    assert!(
        speeds
            .iter()
            .any(|i| i["value"] == 99 && i["datasetId"] == "urn:ngsi-ld:ds:gps")
    );
    assert_eq!(e["brandName"]["datasetId"], "urn:ngsi-ld:ds:new");
    // Deleting (NGSI-LD Null) an attribute the entity does not have is reported, not a failure
    // of the request.
    let r = s
        .patch(
            &format!("{VEHICLE}/attrs"),
            &t,
            json!({"wings": {"type": "Property", "value": "urn:ngsi-ld:null"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!(r.body["notUpdated"][0]["attributeName"], "wings");
    // The entity itself must exist.
    s.patch(
        "/entities/urn:ngsi-ld:Vehicle:404/attrs",
        &t,
        json!({"a": 1}),
    )
    .await
    .problem(404, "ResourceNotFound");
}

/// Clause 5.6.4.4 (suite 012_01_01, 012_02_03): a partial attribute update without `type`
/// updates sub-attributes and keeps the attribute's kind and value; one that names (or implies,
/// by its value member) another kind is BadRequestData and changes nothing.
#[tokio::test]
async fn partial_attribute_update_keeps_the_attribute_type() {
    let (s, t) = vehicle().await;
    let r = s
        .patch(
            &format!("{VEHICLE}/attrs/isParked"),
            &t,
            json!({"providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Person:JohnDoe"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let e = s.get(VEHICLE, &t).await.body;
    assert_eq!(
        e["isParked"],
        json!({"type": "Relationship", "object": "urn:ngsi-ld:Parking:1",
               "observedAt": "2017-07-29T12:00:04Z",
               "providedBy": {"type": "Relationship", "object": "urn:ngsi-ld:Person:JohnDoe"}})
    );
    // Another type, named or implied.
    s.patch(
        &format!("{VEHICLE}/attrs/speed"),
        &t,
        json!({"type": "Relationship", "object": "urn:ngsi-ld:Entity:01", "datasetId": "urn:ngsi-ld:ds:gps"}),
    )
    .await
    .problem(400, "BadRequestData");
    s.patch(
        &format!("{VEHICLE}/attrs/isParked"),
        &t,
        json!({"value": 3}),
    )
    .await
    .problem(400, "BadRequestData");
    // The same type, with or without `type`, by datasetId.
    let r = s
        .patch(
            &format!("{VEHICLE}/attrs/speed"),
            &t,
            json!({"value": 56, "datasetId": "urn:ngsi-ld:ds:gps"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s
        .patch(
            &format!("{VEHICLE}/attrs/isParked"),
            &t,
            json!({"type": "Relationship", "object": "urn:ngsi-ld:Parking:9"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let e = s.get(VEHICLE, &t).await.body;
    assert_eq!(e["isParked"]["object"], "urn:ngsi-ld:Parking:9");
    assert_eq!(
        e["isParked"]["providedBy"]["object"],
        "urn:ngsi-ld:Person:JohnDoe"
    );
    let gps = e["speed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["datasetId"] == "urn:ngsi-ld:ds:gps")
        .unwrap()
        .clone();
    assert_eq!(
        (gps["type"].clone(), gps["value"].clone()),
        (json!("Property"), json!(56))
    );
}

/// Clause 5.2.1 (suite 057_03_02): in a batch merge, a JSON `null` value is no NGSI-LD Null
/// (JSON-LD expansion drops it), so the entity is reported as BadRequestData; the NGSI-LD Null
/// deletes.
#[tokio::test]
async fn batch_merge_refuses_a_json_null_value() {
    let (s, t) = vehicle().await;
    let r = s
        .post(
            "/entityOperations/merge",
            &t,
            json!([{"id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle",
                    "isParked": {"type": "Relationship", "object": null}}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!(
        r.body["errors"][0]["error"]["type"],
        "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    );
    assert_eq!(
        s.get(VEHICLE, &t).await.body["isParked"]["object"],
        "urn:ngsi-ld:Parking:1"
    );
    let r = s
        .post(
            "/entityOperations/merge",
            &t,
            json!([{"id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle",
                    "isParked": {"type": "Relationship", "object": "urn:ngsi-ld:null"}}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(s.get(VEHICLE, &t).await.body.get("isParked").is_none());
}

/// Suite 016_02_04 and 016_02_06: `/attrs/{attrId}/` and `/attrs//{instanceId}` address no
/// attribute instance, so modifying through them is 405; deleting through `/attrs//{instanceId}`
/// is a BadRequestData (017_02_05).
#[tokio::test]
async fn temporal_instance_paths_without_an_attribute() {
    let s = serve_broker(None, true).await;
    let t = s.token("alice").await;
    let base = "/temporal/entities/urn:ngsi-ld:Vehicle:1/attrs";
    let instance = "urn:ngsi-ld:Instance:1";
    for path in [format!("{base}//{instance}"), format!("{base}/speed/")] {
        let r = s
            .call(
                reqwest::Method::PATCH,
                &path,
                Some(&t),
                &[],
                Some(json!({"value": 1})),
            )
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "PATCH {path}");
    }
    s.delete(&format!("{base}//{instance}"), &t)
        .await
        .problem(400, "BadRequestData");
}
