//! The NGSI-LD temporal API (`/ngsi-ld/v1/temporal/...`) and the history recorded by entity
//! writes, served on a real socket over a real embedded store, with real users and tenants.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn serve(anonymous_role: Option<&str>) -> Server {
    serve_broker(anonymous_role, true).await
}

const T: &str = "/temporal/entities";

fn vehicle(id: &str) -> Value {
    json!({
        "id": id, "type": "Vehicle",
        "speed": [
            {"type": "Property", "value": 120, "observedAt": "2020-08-01T12:03:00Z"},
            {"type": "Property", "value": 80, "observedAt": "2020-08-01T12:05:00Z"},
            {"type": "Property", "value": 100, "observedAt": "2020-08-01T12:07:00Z"}
        ],
        "fuelLevel": [
            {"type": "Property", "value": 67, "observedAt": "2020-08-01T12:03:00Z"},
            {"type": "Property", "value": 53, "observedAt": "2020-08-01T13:05:00Z"},
            {"type": "Property", "value": 40, "observedAt": "2020-08-01T14:07:00Z", "datasetId": "urn:ngsi-ld:Dataset:fuel"}
        ]
    })
}

fn values(body: &Value, attr: &str) -> Vec<Value> {
    body[attr]
        .as_array()
        .unwrap_or_else(|| panic!("{attr} is not an array in {body}"))
        .iter()
        .map(|i| i["value"].clone())
        .collect()
}

/// `record_history = false`: entity writes leave no history, and what the temporal API is given
/// directly is still stored and served (with the entity it brings up to date).
#[tokio::test]
async fn entity_writes_record_nothing_when_history_is_off() {
    let s = serve_broker_with(None, true, false).await;
    let t = s.token("alice").await;
    let id = "urn:ngsi-ld:Car:off1";
    let r = s
        .post(
            "/entities",
            &t,
            json!({"id": id, "type": "Car",
                   "speed": {"type": "Property", "value": 10, "observedAt": "2024-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s
        .patch(
            &format!("/entities/{id}/attrs"),
            &t,
            json!({"speed": {"type": "Property", "value": 20}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s
        .post(
            "/entityOperations/upsert",
            &t,
            json!([{"id": "urn:ngsi-ld:Car:off2", "type": "Car", "speed": 1}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for e in [id, "urn:ngsi-ld:Car:off2"] {
        s.get(&format!("{T}/{e}"), &t)
            .await
            .problem(404, "ResourceNotFound");
    }
    // The entities themselves are written as usual.
    let r = s.get(&format!("/entities/{id}"), &t).await;
    assert_eq!(r.body["speed"]["value"], 20, "{}", r.body);

    // The temporal API still stores what it is given.
    let vid = "urn:ngsi-ld:Vehicle:off3";
    let r = s.post(T, &t, vehicle(vid)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s.get(&format!("{T}/{vid}"), &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(values(&r.body, "speed"), [120, 80, 100]);
    let r = s.get(&format!("/entities/{vid}"), &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn entity_writes_record_instances_and_deletions() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    let id = "urn:ngsi-ld:Car:h1";
    let r = s
        .post(
            "/entities",
            &t,
            json!({"id": id, "type": "Car",
                   "speed": {"type": "Property", "value": 10, "observedAt": "2024-01-01T00:00:00Z"},
                   "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for (n, v) in [20, 30, 40].into_iter().enumerate() {
        let r = s
            .patch(
                &format!("/entities/{id}/attrs"),
                &t,
                json!({"speed": {"type": "Property", "value": v,
                                 "observedAt": format!("2024-01-01T00:0{}:00Z", n + 1)}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    // An update that changes nothing records nothing.
    let r = s.get(&format!("{T}/{id}"), &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(values(&r.body, "speed"), [10, 20, 30, 40]);
    let owner = r.body["owner"].as_array().unwrap();
    assert_eq!(owner.len(), 1);
    assert_eq!(owner[0]["object"], "urn:ngsi-ld:Person:1");
    let ids: Vec<&str> = r.body["speed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|i| i.starts_with("urn:ngsi-ld:Instance:")));
    assert_ne!(ids[0], ids[1]);

    // lastN keeps the newest, oldest first; timerel restricts.
    let r = s.get(&format!("{T}/{id}?lastN=2"), &t).await;
    assert_eq!(values(&r.body, "speed"), [30, 40]);
    let r = s
        .get(
            &format!("{T}/{id}?timerel=between&timeAt=2024-01-01T00:01:00Z&endTimeAt=2024-01-01T00:03:00Z&attrs=speed"),
            &t,
        )
        .await;
    assert_eq!(values(&r.body, "speed"), [20, 30]);
    assert!(r.body.get("owner").is_none());
    let r = s
        .get(
            &format!("{T}/{id}?timerel=before&timeAt=2024-01-01T00:01:00Z"),
            &t,
        )
        .await;
    assert_eq!(values(&r.body, "speed"), [10]);
    // Simplified and aggregated representations.
    let r = s
        .get(&format!("{T}/{id}?options=temporalValues&attrs=speed"), &t)
        .await;
    assert_eq!(
        r.body["speed"],
        json!({"type": "Property", "values": [
            [10, "2024-01-01T00:00:00Z"], [20, "2024-01-01T00:01:00Z"],
            [30, "2024-01-01T00:02:00Z"], [40, "2024-01-01T00:03:00Z"]]})
    );
    let r = s
        .get(
            &format!("{T}/{id}?options=aggregatedValues&aggrMethods=sum,max,totalCount&aggrPeriodDuration=PT2M&attrs=speed"),
            &t,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["speed"]["sum"],
        json!([
            [30.0, "2024-01-01T00:00:00Z", "2024-01-01T00:02:00Z"],
            [70.0, "2024-01-01T00:02:00Z", "2024-01-01T00:04:00Z"]
        ])
    );
    assert_eq!(r.body["speed"]["totalCount"][0][0], 2);

    // Deleting an attribute records a deletion instance with deletedAt.
    let r = s.delete(&format!("/entities/{id}/attrs/owner"), &t).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s.get(&format!("{T}/{id}?timeproperty=deletedAt"), &t).await;
    let owner = r.body["owner"].as_array().unwrap();
    assert_eq!(owner.len(), 1, "{}", r.body);
    assert_eq!(owner[0]["object"], "urn:ngsi-ld:null");
    assert!(owner[0]["deletedAt"].as_str().is_some());
    assert!(r.body.get("speed").is_none());

    // Deleting the entity keeps its history, marked deleted.
    assert_eq!(
        s.delete(&format!("/entities/{id}"), &t).await.status,
        StatusCode::NO_CONTENT
    );
    let r = s.get(&format!("{T}/{id}?options=sysAttrs"), &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["deletedAt"].as_str().is_some());
    assert_eq!(values(&r.body, "speed").len(), 4);

    // Batch upserts record too.
    let r = s
        .post(
            "/entityOperations/upsert",
            &t,
            json!([{"id": "urn:ngsi-ld:Car:b1", "type": "Car", "speed": 1},
                   {"id": "urn:ngsi-ld:Car:b2", "type": "Car", "speed": 2}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    s.post(
        "/entityOperations/upsert?options=update",
        &t,
        json!([{"id": "urn:ngsi-ld:Car:b1", "type": "Car", "speed": 5}]),
    )
    .await;
    let r = s.get(&format!("{T}/urn:ngsi-ld:Car:b1"), &t).await;
    assert_eq!(values(&r.body, "speed"), [1, 5]);

    // Removing the scope is recorded as a deletion of the pseudo-attribute `scope`.
    s.post(
        "/entities",
        &t,
        json!({"id": "urn:ngsi-ld:Car:s1", "type": "Car", "scope": "/a/b", "speed": 1}),
    )
    .await;
    let r = s
        .delete("/entities/urn:ngsi-ld:Car:s1/attrs/scope", &t)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s
        .get(
            &format!("{T}/urn:ngsi-ld:Car:s1?timeproperty=deletedAt"),
            &t,
        )
        .await;
    assert_eq!(r.body["scope"][0]["value"], json!([]), "{}", r.body);
    assert!(r.body["scope"][0]["deletedAt"].is_string());
    assert!(r.body.get("speed").is_none());
}

#[tokio::test]
async fn temporal_create_append_update_and_delete() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    let id = "urn:ngsi-ld:Vehicle:t1";
    let r = s.post(T, &t, vehicle(id)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some("/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Vehicle:t1")
    );
    let r = s.get(&format!("{T}/{id}"), &t).await;
    assert_eq!(values(&r.body, "speed"), [120, 80, 100]);
    assert_eq!(r.body["fuelLevel"].as_array().unwrap().len(), 3);
    // The current entity holds the latest instance of each attribute and dataset.
    let cur = s.get(&format!("/entities/{id}"), &t).await;
    assert_eq!(cur.status, StatusCode::OK, "{}", cur.body);
    assert_eq!(cur.body["speed"]["value"], 100);

    // A second POST adds, replacing the instance with the same observedAt and datasetId.
    let r = s
        .post(
            T,
            &t,
            json!({"id": id, "type": "Vehicle", "speed": [
                {"type": "Property", "value": 121, "observedAt": "2020-08-01T12:03:00Z"},
                {"type": "Property", "value": 90, "observedAt": "2020-08-01T12:09:00Z"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s.get(&format!("{T}/{id}"), &t).await;
    assert_eq!(values(&r.body, "speed"), [121, 80, 100, 90]);

    // Append an attribute.
    let r = s
        .post(
            &format!("{T}/{id}/attrs"),
            &t,
            json!({"brand": [{"type": "Property", "value": "X", "observedAt": "2020-08-01T12:00:00Z"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    s.post(
        &format!("{T}/urn:ngsi-ld:Vehicle:none/attrs"),
        &t,
        json!({"a": 1}),
    )
    .await
    .problem(404, "ResourceNotFound");

    // Patch and delete one instance.
    let r = s.get(&format!("{T}/{id}?attrs=speed"), &t).await;
    let first = r.body["speed"][0]["instanceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .patch(
            &format!("{T}/{id}/attrs/speed/{first}"),
            &t,
            json!({"type": "Property", "value": 7, "observedAt": "2020-08-01T12:03:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s
        .get(&format!("{T}/{id}?attrs=speed&options=sysAttrs"), &t)
        .await;
    assert_eq!(r.body["speed"][0]["value"], 7);
    assert_eq!(r.body["speed"][0]["instanceId"], first.as_str());
    assert_ne!(
        r.body["speed"][0]["createdAt"],
        r.body["speed"][0]["modifiedAt"]
    );
    s.patch(
        &format!("{T}/{id}/attrs/speed/urn:ngsi-ld:Instance:none"),
        &t,
        json!({"type": "Property", "value": 1}),
    )
    .await
    .problem(404, "ResourceNotFound");
    s.patch(
        &format!("{T}/{id}/attrs/speed/notauri"),
        &t,
        json!({"type": "Property", "value": 1}),
    )
    .await
    .problem(400, "BadRequestData");
    let r = s.delete(&format!("{T}/{id}/attrs/speed/{first}"), &t).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    s.delete(&format!("{T}/{id}/attrs/speed/{first}"), &t)
        .await
        .problem(404, "ResourceNotFound");
    let r = s.get(&format!("{T}/{id}?attrs=speed"), &t).await;
    assert_eq!(values(&r.body, "speed"), [80, 100, 90]);

    // Delete one attribute's history by datasetId, the default instance, everything.
    let r = s
        .delete(
            &format!("{T}/{id}/attrs/fuelLevel?datasetId=urn:ngsi-ld:Dataset:fuel"),
            &t,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s.get(&format!("{T}/{id}?attrs=fuelLevel"), &t).await;
    assert_eq!(values(&r.body, "fuelLevel"), [67, 53]);
    s.delete(
        &format!("{T}/{id}/attrs/fuelLevel?datasetId=urn:ngsi-ld:Dataset:fuel"),
        &t,
    )
    .await
    .problem(404, "ResourceNotFound");
    let r = s
        .delete(&format!("{T}/{id}/attrs/speed?deleteAll=true"), &t)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    s.get(&format!("{T}/{id}?attrs=speed"), &t)
        .await
        .problem(404, "ResourceNotFound");

    // Delete the whole history.
    assert_eq!(
        s.delete(&format!("{T}/{id}"), &t).await.status,
        StatusCode::NO_CONTENT
    );
    s.get(&format!("{T}/{id}"), &t)
        .await
        .problem(404, "ResourceNotFound");
    s.delete(&format!("{T}/{id}"), &t)
        .await
        .problem(404, "ResourceNotFound");
}

#[tokio::test]
async fn temporal_errors_are_problem_details() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    s.post(T, &t, json!({"type": "Vehicle"}))
        .await
        .problem(400, "BadRequestData");
    s.post(T, &t, json!({"id": "invalidId", "type": "Vehicle"}))
        .await
        .problem(400, "BadRequestData");
    let r = s
        .call(
            Method::POST,
            T,
            Some(&t),
            &[("content-type", "application/json")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    s.get(&format!("{T}/invalidId"), &t)
        .await
        .problem(400, "BadRequestData");
    s.get(&format!("{T}/urn:ngsi-ld:Vehicle:none"), &t)
        .await
        .problem(404, "ResourceNotFound");
    s.post(T, &t, vehicle("urn:ngsi-ld:Vehicle:e1")).await;
    for bad in [
        "timerel=after",
        "timerel=between&timeAt=2020-08-01T12:00:00Z",
        "timerel=during&timeAt=2020-08-01T12:00:00Z",
        "lastN=0",
        "timeproperty=sometime",
        "options=aggregatedValues",
    ] {
        s.get(&format!("{T}/urn:ngsi-ld:Vehicle:e1?{bad}"), &t)
            .await
            .problem(400, "BadRequestData");
    }
    let ld = s
        .call(
            Method::GET,
            &format!("{T}/urn:ngsi-ld:Vehicle:e1?lastN=1"),
            Some(&t),
            &[("accept", LD)],
            None,
        )
        .await;
    assert_eq!(ld.header("content-type"), Some(LD));
    assert!(ld.body["@context"].is_string());
    assert_eq!(ld.body["speed"].as_array().map(Vec::len), Some(1));
    s.get(&format!("{T}/urn:ngsi-ld:Vehicle:e1?options=bogus"), &t)
        .await
        .problem(400, "InvalidRequest");
    s.get(&format!("{T}/urn:ngsi-ld:Vehicle:e1?attrs=unknown"), &t)
        .await
        .problem(404, "ResourceNotFound");
    s.get(
        &format!("{T}?timerel=after&timeAt=2020-08-01T12:00:00Z"),
        &t,
    )
    .await
    .problem(400, "BadRequestData");
    let r = s
        .call(Method::DELETE, &format!("{T}/"), Some(&t), &[], None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn temporal_queries_by_type_time_and_post() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    for n in 1..=3 {
        let r = s
            .post(T, &t, vehicle(&format!("urn:ngsi-ld:Vehicle:q{n}")))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let mut bus = vehicle("urn:ngsi-ld:Bus:q1");
    bus["type"] = json!("Bus");
    s.post(T, &t, bus).await;
    let r = s
        .get(
            &format!(
                "{T}?type=Vehicle&timerel=after&timeAt=2020-08-01T12:04:00Z&count=true&limit=2"
            ),
            &t,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("ngsild-results-count"), Some("3"));
    let page = r.body.as_array().unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(values(&page[0], "speed"), [80, 100]);
    let r = s
        .get(&format!("{T}?type=Vehicle&orderBy=id;desc"), &t)
        .await;
    let ids: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "urn:ngsi-ld:Vehicle:q3",
            "urn:ngsi-ld:Vehicle:q2",
            "urn:ngsi-ld:Vehicle:q1"
        ]
    );
    let r = s
        .get(&format!("{T}?type=Vehicle&q=speed%3E90&lastN=1"), &t)
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 3, "{}", r.body);
    let r = s
        .get(&format!("{T}?type=Vehicle&q=speed%3E100&lastN=1"), &t)
        .await;
    assert!(r.body.as_array().unwrap().is_empty(), "{}", r.body);
    let r = s
        .get(
            &format!("{T}?type=Bus&datasetId=urn:ngsi-ld:Dataset:fuel"),
            &t,
        )
        .await;
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(values(&list[0], "fuelLevel"), [40]);
    assert!(list[0].get("speed").is_none());
    let r = s
        .post(
            "/temporal/entityOperations/query",
            &t,
            json!({"type": "Query", "entities": [{"type": "Vehicle", "id": "urn:ngsi-ld:Vehicle:q2"}],
                   "attrs": ["fuelLevel"],
                   "temporalQ": {"timerel": "before", "timeAt": "2020-08-01T14:00:00Z"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], "urn:ngsi-ld:Vehicle:q2");
    assert_eq!(values(&list[0], "fuelLevel"), [67, 53]);
}

#[tokio::test]
async fn temporal_history_is_tenant_isolated() {
    let s = serve(None).await;
    let alice = s.token("alice").await;
    let bob = s.token("bob").await;
    let vera = s.token("vera").await;
    let id = "urn:ngsi-ld:Vehicle:secret";
    assert_eq!(
        s.post(T, &alice, vehicle(id)).await.status,
        StatusCode::CREATED
    );
    // bob (tenant beta) does not see alpha's history, cannot touch it, and cannot name alpha.
    s.get(&format!("{T}/{id}"), &bob)
        .await
        .problem(404, "ResourceNotFound");
    let r = s.get(&format!("{T}?type=Vehicle"), &bob).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.as_array().unwrap().is_empty());
    s.delete(&format!("{T}/{id}"), &bob)
        .await
        .problem(404, "ResourceNotFound");
    s.post(&format!("{T}/{id}/attrs"), &bob, json!({"x": 1}))
        .await
        .problem(404, "ResourceNotFound");
    s.call(
        Method::GET,
        &format!("{T}/{id}"),
        Some(&bob),
        &[("NGSILD-Tenant", "alpha")],
        None,
    )
    .await
    .problem(404, "NonexistentTenant");
    // bob's own entity of the same id is a different history.
    let mut other = vehicle(id);
    other["speed"] =
        json!([{"type": "Property", "value": 1, "observedAt": "2021-01-01T00:00:00Z"}]);
    assert_eq!(s.post(T, &bob, other).await.status, StatusCode::CREATED);
    let r = s.get(&format!("{T}/{id}"), &bob).await;
    assert_eq!(values(&r.body, "speed"), [1]);
    let r = s.get(&format!("{T}/{id}"), &alice).await;
    assert_eq!(values(&r.body, "speed"), [120, 80, 100]);
    // vera (viewer in alpha) reads but does not write.
    let r = s.get(&format!("{T}/{id}?lastN=1"), &vera).await;
    assert_eq!(values(&r.body, "speed"), [100]);
    let r = s.delete(&format!("{T}/{id}"), &vera).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        s.get(&format!("{T}/{id}"), &alice).await.status,
        StatusCode::OK
    );
    // Anonymous callers are refused.
    let r = s
        .call(Method::GET, &format!("{T}/{id}"), None, &[], None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn long_histories_are_paged_with_content_range() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    let id = "urn:ngsi-ld:Vehicle:p1";
    let speed: Vec<Value> = (0..8)
        .map(|i| json!({"type": "Property", "value": i, "observedAt": format!("2020-01-01T00:0{i}:00Z")}))
        .collect();
    let fuel: Vec<Value> = (0..3)
        .map(|i| json!({"type": "Property", "value": 10 + i, "observedAt": format!("2020-01-01T00:0{}:30Z", i * 3)}))
        .collect();
    let r = s
        .post(
            T,
            &t,
            json!({"id": id, "type": "Vehicle", "speed": speed, "fuelLevel": fuel}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The page holds 5 instances per attribute: speed is cut at its 5th instance (00:04), and
    // fuelLevel to the same range.
    let r = s.get(&format!("{T}/{id}"), &t).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{}", r.body);
    assert_eq!(
        r.header("content-range"),
        Some("date-time 2020-01-01T00:00:00Z-2020-01-01T00:04:00Z/*")
    );
    assert_eq!(values(&r.body, "speed"), [0, 1, 2, 3, 4]);
    assert_eq!(values(&r.body, "fuelLevel"), [10, 11]);
    // lastN at or over the page: newest first range, size lastN.
    let r = s.get(&format!("{T}/{id}?lastN=6"), &t).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.header("content-range"),
        Some("date-time 2020-01-01T00:07:00Z-2020-01-01T00:03:00Z/6")
    );
    assert_eq!(values(&r.body, "speed"), [3, 4, 5, 6, 7]);
    assert_eq!(values(&r.body, "fuelLevel"), [11, 12]);
    // Within the page: complete, 200.
    let r = s.get(&format!("{T}/{id}?lastN=3"), &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-range").is_none());
    assert_eq!(values(&r.body, "speed"), [5, 6, 7]);
    let r = s
        .get(
            &format!("{T}/{id}?timerel=after&timeAt=2020-01-01T00:05:00Z"),
            &t,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(values(&r.body, "speed"), [5, 6, 7]);
    // Queries page too.
    let r = s.get(&format!("{T}?type=Vehicle"), &t).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert!(r.header("content-range").unwrap().ends_with("/*"));
}
