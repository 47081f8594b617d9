//! The NGSI-LD API served on a real socket over a real embedded store, with real users
//! and tenants of the unified user system.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn serve(anonymous_role: Option<&str>) -> Server {
    serve_broker(anonymous_role, false).await
}

fn car(n: u32, speed: i64) -> Value {
    json!({
        "id": format!("urn:ngsi-ld:Car:{n}"), "type": "Car",
        "speed": {"type": "Property", "value": speed, "unitCode": "KMH"},
        "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [117.0, 36.6 + f64::from(n) * 0.001]}}
    })
}

#[tokio::test]
async fn entity_lifecycle_create_retrieve_query_replace_merge_delete() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    let r = s.post("/entities", &t, car(1, 50)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.header("location"),
        Some("/ngsi-ld/v1/entities/urn:ngsi-ld:Car:1")
    );
    s.post("/entities", &t, car(1, 50))
        .await
        .problem(409, "AlreadyExists");
    s.post("/entities", &t, json!({"id": "not a uri", "type": "Car"}))
        .await
        .problem(400, "BadRequestData");

    let r = s.get("/entities/urn:ngsi-ld:Car:1", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.body["speed"],
        json!({"type": "Property", "value": 50, "unitCode": "KMH"})
    );
    assert!(r.header("link").unwrap().contains("ngsi-ld-core-context"));
    let kv = s
        .get("/entities/urn:ngsi-ld:Car:1?options=keyValues", &t)
        .await;
    assert_eq!(kv.body["speed"], 50);
    assert_eq!(kv.body["owner"], "urn:ngsi-ld:Person:1");
    let sys = s
        .get("/entities/urn:ngsi-ld:Car:1?options=sysAttrs", &t)
        .await;
    assert!(sys.body["createdAt"].as_str().is_some());
    let ld = s
        .call(
            Method::GET,
            "/entities/urn:ngsi-ld:Car:1",
            Some(&t),
            &[("accept", LD)],
            None,
        )
        .await;
    assert_eq!(ld.header("content-type"), Some(LD));
    assert!(ld.body["@context"].is_string());
    s.get("/entities/urn:ngsi-ld:Car:404", &t)
        .await
        .problem(404, "ResourceNotFound");
    s.get("/entities/urn:ngsi-ld:Car:1?type=Bike", &t)
        .await
        .problem(404, "ResourceNotFound");

    // Queries with q, pagination and count.
    for n in 2..=6 {
        s.post("/entities", &t, car(n, i64::from(n) * 10)).await;
    }
    let r = s
        .get("/entities?type=Car&q=speed%3E30&count=true&limit=2", &t)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("ngsild-results-count"), Some("4"));
    let ids: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:4"]);
    let r = s
        .get("/entities?type=Car&q=speed%3E30&limit=2&offset=2", &t)
        .await;
    let ids: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["urn:ngsi-ld:Car:5", "urn:ngsi-ld:Car:6"]);
    s.get("/entities", &t).await.problem(400, "BadRequestData");
    s.get("/entities?type=Car&limit=51", &t)
        .await
        .problem(403, "TooManyResults");
    s.get("/entities?type=Car&q=speed%3E%3E1", &t)
        .await
        .problem(400, "BadRequestData");
    let geo = s
        .get("/entities?type=Car&georel=near;maxDistance==300&geometry=Point&coordinates=%5B117.0,36.6%5D", &t)
        .await;
    assert_eq!(geo.status, StatusCode::OK, "{}", geo.body);
    assert_eq!(
        geo.body.as_array().unwrap().len(),
        2,
        "cars 1 and 2 are within 300 m"
    );

    // Replace keeps nothing of the old attributes.
    let r = s
        .call(
            Method::PUT,
            "/entities/urn:ngsi-ld:Car:1",
            Some(&t),
            &[],
            Some(json!({"type": "Car", "colour": {"type": "Property", "value": "red"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s.get("/entities/urn:ngsi-ld:Car:1", &t).await;
    assert!(r.body.get("speed").is_none());
    assert_eq!(r.body["colour"]["value"], "red");

    // Merge-patch: changes a value, adds one, deletes with the null literal.
    let r = s
        .patch(
            "/entities/urn:ngsi-ld:Car:1",
            &t,
            json!({"colour": "blue", "doors": 4, "owner": "urn:ngsi-ld:null"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s
        .get("/entities/urn:ngsi-ld:Car:1?options=keyValues", &t)
        .await;
    assert_eq!(
        r.body,
        json!({"id": "urn:ngsi-ld:Car:1", "type": "Car", "colour": "blue", "doors": 4})
    );
    s.patch("/entities/urn:ngsi-ld:Car:404", &t, json!({"a": 1}))
        .await
        .problem(404, "ResourceNotFound");

    assert_eq!(
        s.delete("/entities/urn:ngsi-ld:Car:1", &t).await.status,
        StatusCode::NO_CONTENT
    );
    s.delete("/entities/urn:ngsi-ld:Car:1", &t)
        .await
        .problem(404, "ResourceNotFound");

    // Purge by type.
    assert_eq!(
        s.delete("/entities?type=Car", &t).await.status,
        StatusCode::NO_CONTENT
    );
    let r = s.get("/entities?type=Car", &t).await;
    assert_eq!(r.body, json!([]));
}

/// Writes to one entity from many requests at once, on a runtime with two worker threads:
/// each read-modify-write sees the previous one's result, so no appended attribute is lost
/// and the history holds one instance per append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_entity_lose_nothing() {
    let s = std::sync::Arc::new(serve_broker(None, true).await);
    let t = s.token("alice").await;
    s.post("/entities", &t, car(1, 50)).await;
    let writers: Vec<_> = (0..48)
        .map(|i| {
            let (s, t) = (s.clone(), t.clone());
            tokio::spawn(async move {
                let r = s
                    .post(
                        "/entities/urn:ngsi-ld:Car:1/attrs",
                        &t,
                        json!({format!("a{i}"): i}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let r = s
        .get("/entities/urn:ngsi-ld:Car:1?options=keyValues", &t)
        .await;
    for i in 0..48 {
        assert_eq!(r.body[format!("a{i}")], i, "a{i} lost: {}", r.body);
    }
    let r = s
        .get("/temporal/entities/urn:ngsi-ld:Car:1?attrs=a7,a31", &t)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for (name, value) in [("a7", 7), ("a31", 31)] {
        let instances = r.body[name].as_array().unwrap();
        assert_eq!(instances.len(), 1, "{}", r.body);
        assert_eq!(instances[0]["value"], value, "{}", r.body);
    }
}

/// Long writes (batches of 64 entities, which waiting writers await rather than block on)
/// and short ones (single appends) to the same entities at once: none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_and_appends_lose_nothing() {
    let s = std::sync::Arc::new(serve_broker(None, false).await);
    let t = s.token("alice").await;
    let batch = |k: usize| -> Value {
        Value::Array(
            (0..64)
                .map(|n| json!({"id": format!("urn:ngsi-ld:Car:{n}"), "type": "Car", format!("b{k}"): k}))
                .collect(),
        )
    };
    let mut tasks = Vec::new();
    for k in 0..8 {
        let (s, t, body) = (s.clone(), t.clone(), batch(k));
        tasks.push(tokio::spawn(async move {
            let r = s
                .post("/entityOperations/upsert?options=update", &t, body)
                .await;
            assert!(r.status.is_success(), "{}", r.body);
        }));
    }
    for i in 0..16 {
        let (s, t) = (s.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            // The entity may not exist yet: retry until a batch has created it.
            loop {
                let r = s
                    .post(
                        "/entities/urn:ngsi-ld:Car:0/attrs",
                        &t,
                        json!({format!("a{i}"): i}),
                    )
                    .await;
                if r.status == StatusCode::NO_CONTENT {
                    break;
                }
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for n in [0, 63] {
        let r = s
            .get(
                &format!("/entities/urn:ngsi-ld:Car:{n}?options=keyValues"),
                &t,
            )
            .await;
        for k in 0..8 {
            assert_eq!(r.body[format!("b{k}")], k, "b{k} lost on {n}: {}", r.body);
        }
        if n == 0 {
            for i in 0..16 {
                assert_eq!(r.body[format!("a{i}")], i, "a{i} lost: {}", r.body);
            }
        }
    }
}

#[tokio::test]
async fn attribute_operations_append_update_partial_update_delete() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    s.post("/entities", &t, car(1, 50)).await;
    let path = "/entities/urn:ngsi-ld:Car:1/attrs";
    // Append: new attribute and a second instance with a datasetId.
    let r = s
        .post(path, &t, json!({"fuel": 20, "speed": {"type": "Property", "value": 51, "datasetId": "urn:ngsi-ld:ds:gps"}}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s.get("/entities/urn:ngsi-ld:Car:1", &t).await;
    assert_eq!(r.body["speed"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["fuel"]["value"], 20);
    // noOverwrite reports what it did not touch.
    let r = s
        .post(
            &format!("{path}?options=noOverwrite"),
            &t,
            json!({"fuel": 99, "seats": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(r.body["updated"], json!(["seats"]));
    assert_eq!(r.body["notUpdated"][0]["attributeName"], "fuel");
    // Update replaces existing attributes and appends missing ones (clause 5.6.2.4, V1.9.1).
    let r = s.patch(path, &t, json!({"fuel": 10, "wings": 2})).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s
        .get("/entities/urn:ngsi-ld:Car:1?options=keyValues", &t)
        .await;
    assert_eq!(
        (r.body["fuel"].clone(), r.body["wings"].clone()),
        (json!(10), json!(2))
    );
    // Partial update of one attribute keeps its sub-attributes.
    let r = s
        .patch(&format!("{path}/speed"), &t, json!({"value": 60}))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s.get("/entities/urn:ngsi-ld:Car:1", &t).await;
    let default = r.body["speed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i.get("datasetId").is_none())
        .unwrap()
        .clone();
    assert_eq!(default["value"], 60);
    assert_eq!(default["unitCode"], "KMH");
    s.patch(&format!("{path}/nothing"), &t, json!({"value": 1}))
        .await
        .problem(404, "ResourceNotFound");
    // Delete one instance by datasetId, then the attribute.
    let r = s
        .delete(&format!("{path}/speed?datasetId=urn:ngsi-ld:ds:gps"), &t)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = s.get("/entities/urn:ngsi-ld:Car:1", &t).await;
    assert_eq!(r.body["speed"]["value"], 60);
    assert_eq!(
        s.delete(&format!("{path}/speed"), &t).await.status,
        StatusCode::NO_CONTENT
    );
    s.delete(&format!("{path}/speed"), &t)
        .await
        .problem(404, "ResourceNotFound");
}

#[tokio::test]
async fn batch_operations_report_per_entity_results() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    let r = s
        .post(
            "/entityOperations/create",
            &t,
            json!([car(1, 10), car(2, 20)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body, json!(["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2"]));
    let r = s
        .post(
            "/entityOperations/create",
            &t,
            json!([car(2, 20), car(3, 30), {"id": "bad", "type": "Car"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(r.body["success"], json!(["urn:ngsi-ld:Car:3"]));
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    let dup = errors
        .iter()
        .find(|e| e["entityId"] == "urn:ngsi-ld:Car:2")
        .unwrap();
    assert_eq!(
        dup["error"]["type"],
        "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"
    );
    let bad = errors.iter().find(|e| e["entityId"] == "bad").unwrap();
    assert_eq!(
        bad["error"]["type"],
        "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    );
    // Upsert: 201 with the created ids, 204 when all existed.
    let r = s
        .post(
            "/entityOperations/upsert",
            &t,
            json!([car(3, 31), car(4, 40)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body, json!(["urn:ngsi-ld:Car:4"]));
    let r = s
        .post("/entityOperations/upsert", &t, json!([car(3, 32)]))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Update and merge.
    let r = s
        .post("/entityOperations/update", &t, json!([{"id": "urn:ngsi-ld:Car:3", "type": "Car", "speed": 33}, {"id": "urn:ngsi-ld:Car:9", "type": "Car", "speed": 1}]))
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(
        r.body["errors"][0]["error"]["type"],
        "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"
    );
    let r = s
        .post(
            "/entityOperations/merge",
            &t,
            json!([{"id": "urn:ngsi-ld:Car:4", "type": "Car", "colour": "green"}]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s
        .get("/entities/urn:ngsi-ld:Car:4?options=keyValues", &t)
        .await;
    assert_eq!(r.body["colour"], "green");
    assert_eq!(r.body["speed"], 40);
    let r = s
        .get("/entities/urn:ngsi-ld:Car:3?options=keyValues", &t)
        .await;
    assert_eq!(r.body["speed"], 33);
    // Query.
    let r = s
        .post(
            "/entityOperations/query?count=true",
            &t,
            json!({"type": "Query", "entities": [{"type": "Car"}], "q": "speed>=33"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("ngsild-results-count"), Some("2"));
    // Delete.
    let r = s
        .post(
            "/entityOperations/delete",
            &t,
            json!(["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:77"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert_eq!(r.body["success"], json!(["urn:ngsi-ld:Car:1"]));
    s.post("/entityOperations/create", &t, json!({"id": "urn:x"}))
        .await
        .problem(400, "BadRequestData");
}

#[tokio::test]
async fn types_attributes_and_contexts() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    s.post("/entities", &t, car(1, 10)).await;
    s.post(
        "/entities",
        &t,
        json!({"id": "urn:ngsi-ld:Bike:1", "type": "Bike", "speed": 5}),
    )
    .await;
    let r = s.get("/types", &t).await;
    assert_eq!(r.body["typeList"], json!(["Bike", "Car"]));
    let r = s.get("/types/Car", &t).await;
    assert_eq!(r.body["entityCount"], 1);
    let r = s.get("/attributes", &t).await;
    assert_eq!(
        r.body["attributeList"],
        json!(["location", "owner", "speed"])
    );
    let r = s.get("/attributes/speed", &t).await;
    assert_eq!(r.body["typeNames"], json!(["Bike", "Car"]));
    s.get("/types/Plane", &t)
        .await
        .problem(404, "ResourceNotFound");

    // A hosted context, then used through the Link header.
    let r = s
        .post("/jsonldContexts", &t, json!({"@context": {"Auto": "https://example.org/Auto", "tempo": "https://example.org/tempo"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let location = r.header("location").unwrap().to_owned();
    let url = format!("{}{location}", s.base);
    let link = format!(
        "<{url}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""
    );
    let r = s
        .call(
            Method::POST,
            "/entities",
            Some(&t),
            &[("link", &link)],
            Some(json!({"id": "urn:ngsi-ld:Auto:1", "type": "Auto", "tempo": 3})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Without the context the names come back expanded; with it, compacted.
    let r = s.get("/entities/urn:ngsi-ld:Auto:1", &t).await;
    assert_eq!(r.body["type"], "https://example.org/Auto");
    assert_eq!(r.body["https://example.org/tempo"]["value"], 3);
    let r = s
        .call(
            Method::GET,
            "/entities?type=Auto",
            Some(&t),
            &[("link", &link)],
            None,
        )
        .await;
    assert_eq!(r.body[0]["tempo"]["value"], 3);
    let list = s.get("/jsonldContexts", &t).await;
    assert!(
        list.body
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u.as_str().unwrap().ends_with(&location))
    );
    let id = location.rsplit('/').next().unwrap();
    assert_eq!(
        s.delete(&format!("/jsonldContexts/{id}"), &t).await.status,
        StatusCode::NO_CONTENT
    );
    s.get(&format!("/jsonldContexts/{id}"), &t)
        .await
        .problem(404, "ResourceNotFound");

    // A context on a private address is refused by the egress policy.
    let bad = "<http://127.0.0.1:9/ctx.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"";
    s.call(
        Method::GET,
        "/entities?type=Car",
        Some(&t),
        &[("link", bad)],
        None,
    )
    .await
    .problem(503, "LdContextNotAvailable");
}

#[tokio::test]
async fn malformed_requests_get_precise_errors() {
    let s = serve(None).await;
    let t = s.token("alice").await;
    let r = s
        .call(
            Method::POST,
            "/entities",
            Some(&t),
            &[("content-type", "text/plain")],
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = s
        .client
        .post(format!("{}/ngsi-ld/v1/entities", s.base))
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body["type"],
        "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"
    );
    // @context in an application/json body, or missing from an ld+json body.
    s.post(
        "/entities",
        &t,
        json!({"id": "urn:a", "type": "A", "@context": "https://x.org/c"}),
    )
    .await
    .problem(400, "BadRequestData");
    s.call(
        Method::POST,
        "/entities",
        Some(&t),
        &[("content-type", LD)],
        Some(json!({"id": "urn:a", "type": "A"})),
    )
    .await
    .problem(400, "BadRequestData");
    let r = s
        .call(
            Method::GET,
            "/entities?type=A",
            Some(&t),
            &[("accept", "text/html")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn tenants_are_isolated_and_follow_memberships() {
    let s = serve(None).await;
    let alice = s.token("alice").await;
    let bob = s.token("bob").await;
    let vera = s.token("vera").await;
    let root = s.token("root").await;
    // Unauthenticated callers are refused.
    let r = s
        .call(Method::GET, "/entities?type=Car", None, &[], None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // alice writes into alpha (her default tenant) and names it explicitly too.
    assert_eq!(
        s.post("/entities", &alice, car(1, 1)).await.status,
        StatusCode::CREATED
    );
    let r = s
        .call(
            Method::GET,
            "/entities/urn:ngsi-ld:Car:1",
            Some(&alice),
            &[("NGSILD-Tenant", "alpha")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // bob (beta only) cannot reach alpha, and his own tenant does not have the entity.
    s.call(
        Method::GET,
        "/entities/urn:ngsi-ld:Car:1",
        Some(&bob),
        &[("NGSILD-Tenant", "alpha")],
        None,
    )
    .await
    .problem(404, "NonexistentTenant");
    s.call(
        Method::DELETE,
        "/entities/urn:ngsi-ld:Car:1",
        Some(&bob),
        &[("NGSILD-Tenant", "alpha")],
        None,
    )
    .await
    .problem(404, "NonexistentTenant");
    s.get("/entities/urn:ngsi-ld:Car:1", &bob)
        .await
        .problem(404, "ResourceNotFound");
    let r = s.get("/entities?type=Car", &bob).await;
    assert_eq!(r.body, json!([]));
    // The same id in beta is a different entity.
    assert_eq!(
        s.post("/entities", &bob, car(1, 99)).await.status,
        StatusCode::CREATED
    );
    let r = s
        .get("/entities/urn:ngsi-ld:Car:1?options=keyValues", &alice)
        .await;
    assert_eq!(r.body["speed"], 1);
    // vera (viewer of alpha) reads but does not write.
    assert_eq!(
        s.get("/entities/urn:ngsi-ld:Car:1", &vera).await.status,
        StatusCode::OK
    );
    let r = s.post("/entities", &vera, car(2, 2)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A platform administrator reaches any tenant; an unknown tenant with no data is 404.
    let r = s
        .call(
            Method::GET,
            "/entities/urn:ngsi-ld:Car:1",
            Some(&root),
            &[("NGSILD-Tenant", "beta")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    s.call(
        Method::GET,
        "/entities?type=Car",
        Some(&root),
        &[("NGSILD-Tenant", "gamma")],
        None,
    )
    .await
    .problem(404, "NonexistentTenant");
    s.call(
        Method::GET,
        "/entities?type=Car",
        Some(&root),
        &[("NGSILD-Tenant", "Not A Tenant")],
        None,
    )
    .await
    .problem(404, "NonexistentTenant");
}

#[tokio::test]
async fn anonymous_access_works_only_when_opted_in() {
    let s = serve(Some("operator")).await;
    let r = s
        .call(Method::POST, "/entities", None, &[], Some(car(1, 1)))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s
        .call(Method::GET, "/entities/urn:ngsi-ld:Car:1", None, &[], None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Anonymous callers use ngsi's default tenant, which alice's alpha is not.
    let alice = s.token("alice").await;
    s.get("/entities/urn:ngsi-ld:Car:1", &alice)
        .await
        .problem(404, "ResourceNotFound");
}
