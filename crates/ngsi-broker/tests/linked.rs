//! Linked entity retrieval (`join`, `joinLevel`, `containedBy`, `pick`/`omit` with braces) and the
//! other read-side options (`orderBy`, `local=true`, empty projections) on a real socket over a
//! real embedded store.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn setup() -> (Server, String) {
    let s = serve_broker(None, false).await;
    let t = s.token("alice").await;
    for e in [
        json!({"id": "urn:ngsi-ld:Building:1", "type": "Building",
               "name": {"type": "Property", "value": "Tower"},
               "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"}}),
        json!({"id": "urn:ngsi-ld:Building:2", "type": "Building",
               "name": {"type": "Property", "value": "Arch"},
               "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"}}),
        json!({"id": "urn:ngsi-ld:Building:3", "type": "Building",
               "name": {"type": "Property", "value": "Ghost"},
               "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Nowhere"}}),
        json!({"id": "urn:ngsi-ld:City:Paris", "type": "City",
               "name": {"type": "Property", "value": "Paris"},
               "description": {"type": "Property", "value": "capital"},
               "isInCountry": {"type": "Relationship", "object": "urn:ngsi-ld:Country:France"}}),
        json!({"id": "urn:ngsi-ld:Country:France", "type": "Country",
               "name": {"type": "Property", "value": "France"},
               "description": {"type": "Property", "value": "a country"}}),
    ] {
        assert_eq!(s.post("/entities", &t, e).await.status, StatusCode::CREATED);
        // `createdAt` has millisecond resolution and a create can take less than that:
        // distinct creation times keep `orderBy=createdAt` below deterministic.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    (s, t)
}

fn ids(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("an array")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect()
}

#[tokio::test]
async fn retrieve_with_inline_and_flat_linked_entities() {
    let (s, t) = setup().await;
    let b1 = "/entities/urn:ngsi-ld:Building:1";

    let r = s.get(&format!("{b1}?join=inline&joinLevel=1"), &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let city = &r.body["locatedAt"]["entity"];
    assert_eq!(r.body["locatedAt"]["object"], "urn:ngsi-ld:City:Paris");
    assert_eq!(city["id"], "urn:ngsi-ld:City:Paris");
    assert_eq!(city["isInCountry"]["object"], "urn:ngsi-ld:Country:France");
    assert!(city["isInCountry"].get("entity").is_none(), "{city}");

    let r = s
        .get(
            &format!("{b1}?join=inline&joinLevel=2&options=sysAttrs"),
            &t,
        )
        .await;
    let country = &r.body["locatedAt"]["entity"]["isInCountry"]["entity"];
    assert_eq!(country["name"]["value"], "France");
    assert!(country["createdAt"].is_string());

    let r = s
        .get(
            &format!("{b1}?join=inline&joinLevel=2&options=keyValues"),
            &t,
        )
        .await;
    assert_eq!(r.body["locatedAt"]["id"], "urn:ngsi-ld:City:Paris");
    assert_eq!(r.body["locatedAt"]["isInCountry"]["name"], "France");

    let r = s.get(&format!("{b1}?join=flat&joinLevel=2"), &t).await;
    assert_eq!(
        ids(&r.body),
        vec![
            "urn:ngsi-ld:Building:1",
            "urn:ngsi-ld:City:Paris",
            "urn:ngsi-ld:Country:France"
        ]
    );
    assert!(r.body[0]["locatedAt"].get("entity").is_none());

    // A dangling relationship: flat gives the entity alone, inline leaves the relationship as is.
    let ghost = "/entities/urn:ngsi-ld:Building:3";
    let r = s.get(&format!("{ghost}?join=flat"), &t).await;
    assert_eq!(r.body["id"], "urn:ngsi-ld:Building:3");
    let r = s.get(&format!("{ghost}?join=inline"), &t).await;
    assert_eq!(
        r.body["locatedAt"],
        json!({"type": "Relationship", "object": "urn:ngsi-ld:City:Nowhere"})
    );

    // containedBy: the caller already has the city.
    let r = s
        .get(
            &format!("{b1}?join=inline&containedBy=urn:ngsi-ld:City:Paris"),
            &t,
        )
        .await;
    assert!(r.body["locatedAt"].get("entity").is_none());

    for bad in [
        "join=deep",
        "join=flat&joinLevel=0",
        "join=flat&joinLevel=x",
    ] {
        s.get(&format!("{b1}?{bad}"), &t)
            .await
            .problem(400, "BadRequestData");
    }
}

#[tokio::test]
async fn pick_and_omit_reach_into_linked_entities() {
    let (s, t) = setup().await;
    let b1 = "/entities/urn:ngsi-ld:Building:1";
    let r = s
        .get(
            &format!(
                "{b1}?join=inline&joinLevel=2&pick=id,locatedAt%7Bid,name,isInCountry%7Bdescription%7D%7D"
            ),
            &t,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body,
        json!({
            "id": "urn:ngsi-ld:Building:1",
            "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris", "entity": {
                "id": "urn:ngsi-ld:City:Paris",
                "name": {"type": "Property", "value": "Paris"},
                "isInCountry": {"type": "Relationship", "object": "urn:ngsi-ld:Country:France", "entity": {
                    "description": {"type": "Property", "value": "a country"}
                }}
            }}
        })
    );

    // The country is not reached when the city's pick leaves isInCountry out.
    let r = s
        .get(
            &format!("{b1}?join=flat&joinLevel=2&pick=locatedAt%7Bname%7D"),
            &t,
        )
        .await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(2), "{}", r.body);

    // omit=rel{x}: the relationship stays, x goes from the linked entity.
    let r = s
        .get(
            &format!("{b1}?join=flat&joinLevel=2&omit=type,locatedAt%7Bname,isInCountry%7Bdescription%7D%7D"),
            &t,
        )
        .await;
    let list = r.body.as_array().expect("flat array");
    assert!(list[0].get("type").is_none() && list[0].get("locatedAt").is_some());
    assert!(list[1].get("name").is_none() && list[1]["description"]["value"] == "capital");
    assert!(list[2].get("description").is_none() && list[2]["name"]["value"] == "France");

    for bad in ["pick=a%7Bb", "pick=a%7D", "omit=a,,b", "pick=a%7B%7D"] {
        s.get(&format!("{b1}?{bad}"), &t)
            .await
            .problem(400, "BadRequestData");
    }

    // Nothing left after pick/omit: retrieve answers 404, a query leaves the entity out.
    s.get(&format!("{b1}?pick=nosuch"), &t)
        .await
        .problem(404, "ResourceNotFound");
    s.get(&format!("{b1}?omit=id,type,name,locatedAt"), &t)
        .await
        .problem(404, "ResourceNotFound");
    let r = s
        .get("/entities?type=Building,City&pick=description", &t)
        .await;
    assert_eq!(
        r.body,
        json!([{"description": {"type": "Property", "value": "capital"}}])
    );
}

#[tokio::test]
async fn queries_join_order_and_local() {
    let (s, t) = setup().await;
    // Flat: the matched entities, then each linked entity once.
    let r = s
        .get("/entities?type=Building&join=flat&orderBy=id", &t)
        .await;
    assert_eq!(
        ids(&r.body),
        vec![
            "urn:ngsi-ld:Building:1",
            "urn:ngsi-ld:Building:2",
            "urn:ngsi-ld:Building:3",
            "urn:ngsi-ld:City:Paris"
        ]
    );
    let r = s
        .get("/entities?type=Building&join=inline&options=keyValues", &t)
        .await;
    assert_eq!(r.body[0]["locatedAt"]["name"], "Paris");
    assert_eq!(r.body[2]["locatedAt"], "urn:ngsi-ld:City:Nowhere");

    // The same through POST /entityOperations/query, join in the body.
    let r = s
        .post(
            "/entityOperations/query",
            &t,
            json!({"type": "Query", "entities": [{"type": "Building"}], "join": "inline", "joinLevel": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body[0]["locatedAt"]["entity"]["isInCountry"]["entity"]["id"],
        "urn:ngsi-ld:Country:France"
    );

    // orderBy on an attribute, descending, and on createdAt.
    // Tower, Ghost, Arch.
    let r = s.get("/entities?type=Building&orderBy=name;desc", &t).await;
    assert_eq!(
        ids(&r.body),
        vec![
            "urn:ngsi-ld:Building:1",
            "urn:ngsi-ld:Building:3",
            "urn:ngsi-ld:Building:2"
        ]
    );
    let r = s
        .get("/entities?type=Building&orderBy=createdAt;desc&limit=1", &t)
        .await;
    assert_eq!(ids(&r.body), vec!["urn:ngsi-ld:Building:3"]);
    s.get("/entities?type=Building&orderBy=name;sideways", &t)
        .await
        .problem(400, "BadRequestData");

    // local=true needs no other selector.
    let r = s.get("/entities?local=true", &t).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(5), "{}", r.body);
    s.get("/entities", &t).await.problem(400, "BadRequestData");

    // Invalid id patterns and core members as attribute names.
    s.get("/entities?type=Building&idPattern=urn**", &t)
        .await
        .problem(400, "BadRequestData");
    s.get("/entities?attrs=id,type", &t)
        .await
        .problem(400, "BadRequestData");
}

#[tokio::test]
async fn linked_entities_stay_in_their_tenant() {
    let (s, t) = setup().await;
    let bob = s.token("bob").await;
    let b = json!({"id": "urn:ngsi-ld:Building:9", "type": "Building",
                   "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"}});
    assert_eq!(
        s.post("/entities", &bob, b).await.status,
        StatusCode::CREATED
    );
    // Paris exists only in alice's tenant.
    let r = s
        .call(
            Method::GET,
            "/entities/urn:ngsi-ld:Building:9?join=flat",
            Some(&bob),
            &[],
            None,
        )
        .await;
    assert_eq!(r.body["id"], "urn:ngsi-ld:Building:9", "{}", r.body);
    assert!(s.get("/entities/urn:ngsi-ld:City:Paris", &t).await.status == StatusCode::OK);
}
