//! Context source registrations (`/csourceRegistrations`), the `/csourceSubscriptions`
//! answers, purge with `keep`/`drop` and the `/jsonldContexts` kinds, on a real socket over
//! a real embedded store, with real users and tenants.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SUITE_CONTEXT: &str = "https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/ngsi-ld-test-suite-compound.jsonld";

fn suite_link() -> String {
    format!(
        "<{SUITE_CONTEXT}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""
    )
}

fn registration(id: &str) -> Value {
    json!({
        "id": id,
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
        "@context": [SUITE_CONTEXT]
    })
}

fn ids(r: &Resp) -> Vec<String> {
    r.body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {}", r.body))
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn registrations_are_created_queried_updated_and_deleted_per_tenant() {
    let s = serve_broker(None, false).await;
    let alice = s.token("alice").await;
    let bob = s.token("bob").await;
    let vera = s.token("vera").await;
    let ld = [("content-type", LD)];
    let id = "urn:ngsi-ld:ContextSourceRegistration:1";
    let r = s
        .call(
            Method::POST,
            "/csourceRegistrations",
            Some(&alice),
            &ld,
            Some(registration(id)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some("/ngsi-ld/v1/csourceRegistrations/urn:ngsi-ld:ContextSourceRegistration:1")
    );
    s.call(
        Method::POST,
        "/csourceRegistrations",
        Some(&alice),
        &ld,
        Some(registration(id)),
    )
    .await
    .problem(409, "AlreadyExists");

    // Retrieved with the registering context, names come back compacted.
    let link = suite_link();
    let with_link = [("link", link.as_str())];
    let r = s
        .call(
            Method::GET,
            &format!("/csourceRegistrations/{id}"),
            Some(&alice),
            &with_link,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["information"][0]["entities"][0]["type"], "Vehicle");
    assert_eq!(
        r.body["information"][0]["propertyNames"],
        json!(["brandName", "speed"])
    );
    assert_eq!(r.body["endpoint"], "http://my.csource.org:1026");
    assert_eq!(r.body["expiresAt"], "2035-11-29T14:53:15Z");
    // Without it, the expanded names show.
    let r = s.get(&format!("/csourceRegistrations/{id}"), &alice).await;
    assert_eq!(
        r.body["information"][0]["entities"][0]["type"],
        "https://ngsi-ld-test-suite/context#Vehicle"
    );

    // Query: by type, id, attrs; Accept */* gives JSON with a Link header.
    let query = |q: &str| format!("/csourceRegistrations?{q}");
    let r = s
        .call(
            Method::GET,
            &query("id=urn:ngsi-ld:Vehicle:A456&type=Vehicle"),
            Some(&alice),
            &[("link", link.as_str()), ("accept", "*/*")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(ids(&r), [id]);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("link").is_some_and(|l| l.contains(SUITE_CONTEXT)));
    for (q, hits) in [
        ("type=Vehicle", 1),
        ("type=Building", 0),
        ("type=OffStreetParking&attrs=availableSpotNumber", 1),
        ("type=OffStreetParking&attrs=speed", 0),
        ("id=urn:ngsi-ld:OffStreetParking:downtown", 1),
        ("id=urn:ngsi-ld:Vehicle:other&type=Vehicle", 0),
    ] {
        let r = s
            .call(Method::GET, &query(q), Some(&alice), &with_link, None)
            .await;
        assert_eq!(ids(&r).len(), hits, "{q}: {}", r.body);
    }
    for accept in ["application/xml", "application/geo+json"] {
        let r = s
            .call(
                Method::GET,
                &query("type=Building"),
                Some(&alice),
                &[("accept", accept)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{accept}");
    }
    s.get(&query("type=Vehicle&bogus=1"), &alice)
        .await
        .problem(400, "InvalidRequest");

    // Another tenant sees nothing; a viewer reads but cannot write; no token, no access.
    assert_eq!(
        ids(&s.get(&query("type=Vehicle"), &bob).await),
        Vec::<String>::new()
    );
    s.get(&format!("/csourceRegistrations/{id}"), &bob)
        .await
        .problem(404, "ResourceNotFound");
    s.delete(&format!("/csourceRegistrations/{id}"), &bob)
        .await
        .problem(404, "ResourceNotFound");
    assert_eq!(
        s.get(&format!("/csourceRegistrations/{id}"), &vera)
            .await
            .status,
        StatusCode::OK
    );
    let r = s
        .patch(
            &format!("/csourceRegistrations/{id}"),
            &vera,
            json!({"endpoint": "http://x.example"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s
        .call(Method::GET, &query("type=Vehicle"), None, &[], None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Update: members replace, the rest stays; sysAttrs show the times.
    let r = s
        .patch(
            &format!("/csourceRegistrations/{id}"),
            &alice,
            json!({"endpoint": "http://other.example:1026", "registrationName": "parking"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s
        .get(
            &format!("/csourceRegistrations/{id}?options=sysAttrs"),
            &alice,
        )
        .await;
    assert_eq!(r.body["endpoint"], "http://other.example:1026");
    assert_eq!(r.body["registrationName"], "parking");
    assert_eq!(r.body["information"].as_array().unwrap().len(), 2);
    assert!(r.body["createdAt"].is_string() && r.body["modifiedAt"].is_string());
    s.patch(
        &format!("/csourceRegistrations/{id}"),
        &alice,
        json!({"information": []}),
    )
    .await
    .problem(400, "BadRequestData");

    // Delete.
    assert_eq!(
        s.delete(&format!("/csourceRegistrations/{id}"), &alice)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    s.delete(&format!("/csourceRegistrations/{id}"), &alice)
        .await
        .problem(404, "ResourceNotFound");
}

#[tokio::test]
async fn invalid_registrations_and_unavailable_contexts_are_refused() {
    let s = serve_broker(None, false).await;
    let t = s.token("alice").await;
    let ld = [("content-type", LD)];
    let mut no_endpoint = registration("urn:ngsi-ld:ContextSourceRegistration:2");
    no_endpoint.as_object_mut().unwrap().remove("endpoint");
    s.call(
        Method::POST,
        "/csourceRegistrations",
        Some(&t),
        &ld,
        Some(no_endpoint),
    )
    .await
    .problem(400, "BadRequestData");
    let mut wrong_type = registration("urn:ngsi-ld:ContextSourceRegistration:2");
    wrong_type["type"] = json!("Registration");
    s.call(
        Method::POST,
        "/csourceRegistrations",
        Some(&t),
        &ld,
        Some(wrong_type),
    )
    .await
    .problem(400, "BadRequestData");
    // A remote @context that cannot be retrieved: 503.
    let mut unretrievable = registration("urn:ngsi-ld:ContextSourceRegistration:3");
    unretrievable["@context"] =
        json!(["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-non-existing.jsonld"]);
    s.call(
        Method::POST,
        "/csourceRegistrations",
        Some(&t),
        &ld,
        Some(unretrievable),
    )
    .await
    .problem(503, "LdContextNotAvailable");
    s.get("/csourceRegistrations/not-a-uri", &t)
        .await
        .problem(400, "BadRequestData");
}

#[tokio::test]
async fn registration_subscriptions_negotiate_then_report_unsupported() {
    let s = serve_broker(None, false).await;
    let t = s.token("alice").await;
    let r = s
        .call(
            Method::GET,
            "/csourceSubscriptions",
            Some(&t),
            &[("accept", "application/xml")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    s.get("/csourceSubscriptions", &t)
        .await
        .problem(422, "OperationNotSupported");
    let r = s
        .call(Method::GET, "/csourceSubscriptions", None, &[], None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn purge_keeps_or_drops_attributes() {
    let s = serve_broker(None, false).await;
    let t = s.token("alice").await;
    for n in 1..=2 {
        let r = s
            .post(
                "/entities",
                &t,
                json!({"id": format!("urn:ngsi-ld:Building:{n}"), "type": "Building",
                       "name": {"type": "Property", "value": "b"},
                       "height": {"type": "Property", "value": n},
                       "colour": {"type": "Property", "value": "red"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    s.call(
        Method::DELETE,
        "/entities?type=Building&keep=name&drop=height",
        Some(&t),
        &[],
        None,
    )
    .await
    .problem(400, "BadRequestData");
    let r = s
        .call(
            Method::DELETE,
            "/entities?type=Building&drop=height",
            Some(&t),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = s
        .call(
            Method::DELETE,
            "/entities?id=urn:ngsi-ld:Building:1&keep=name",
            Some(&t),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let one = s.get("/entities/urn:ngsi-ld:Building:1", &t).await.body;
    assert!(
        one.get("name").is_some() && one.get("colour").is_none() && one.get("height").is_none()
    );
    let two = s.get("/entities/urn:ngsi-ld:Building:2", &t).await.body;
    assert!(
        two.get("name").is_some() && two.get("colour").is_some() && two.get("height").is_none()
    );
}

#[tokio::test]
async fn context_kinds_cached_core_and_errors() {
    let s = serve_broker(None, false).await;
    let t = s.token("alice").await;
    // A preloaded remote context is listed as Cached once a request used it.
    assert_eq!(
        s.get("/jsonldContexts?kind=Cached", &t).await.body,
        json!([])
    );
    let link = suite_link();
    let r = s
        .call(
            Method::GET,
            "/entities?type=Vehicle",
            Some(&t),
            &[("link", link.as_str())],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s.get("/jsonldContexts?kind=Cached&details=true", &t).await;
    let cached = r.body.as_array().unwrap();
    let entry = cached
        .iter()
        .find(|c| c["URL"] == SUITE_CONTEXT)
        .unwrap_or_else(|| panic!("not cached: {}", r.body));
    assert_eq!(entry["kind"], "Cached");
    assert!(entry["numberOfHits"].as_u64().unwrap() >= 1);
    let encoded: String = url_encode(SUITE_CONTEXT);
    let r = s
        .get(&format!("/jsonldContexts/{encoded}?details=true"), &t)
        .await;
    assert_eq!(r.body["kind"], "Cached", "{}", r.body);
    // Serving counts as a use.
    let hits = r.body["numberOfHits"].as_u64().unwrap();
    let r = s
        .get(&format!("/jsonldContexts/{encoded}?details=true"), &t)
        .await;
    assert_eq!(r.body["numberOfHits"].as_u64().unwrap(), hits + 1);
    // Deleting it drops it from the list (the preload map still serves it); the context it
    // references stays listed.
    assert_eq!(
        s.delete(&format!("/jsonldContexts/{encoded}"), &t)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let listed = s.get("/jsonldContexts?kind=Cached", &t).await.body;
    let listed = listed.as_array().unwrap();
    assert!(!listed.iter().any(|u| u == SUITE_CONTEXT), "{listed:?}");
    assert_eq!(listed.len(), 1, "{listed:?}");

    // The core context: served, reloadable (a no-op), not deletable.
    let core = url_encode("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld");
    let r = s
        .get(&format!("/jsonldContexts/{core}?details=true"), &t)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["kind"], "Cached");
    assert!(s.get(&format!("/jsonldContexts/{core}"), &t).await.body["@context"].is_object());
    s.delete(&format!("/jsonldContexts/{core}"), &t)
        .await
        .problem(400, "BadRequestData");
    assert_eq!(
        s.delete(&format!("/jsonldContexts/{core}?reload=true"), &t)
            .await
            .status,
        StatusCode::NO_CONTENT
    );

    // Unknown ids: 404, or 400 when asked to reload.
    s.get("/jsonldContexts/wrong_id_context?details=true", &t)
        .await
        .problem(404, "ResourceNotFound");
    s.delete("/jsonldContexts/wrong_id_context", &t)
        .await
        .problem(404, "ResourceNotFound");
    s.delete("/jsonldContexts/wrong_id_context?reload=true", &t)
        .await
        .problem(400, "BadRequestData");
    // A body without @context is an invalid request; a hosted context cannot be reloaded.
    s.post("/jsonldContexts", &t, json!({"A1": "urn:a1"}))
        .await
        .problem(400, "InvalidRequest");
    let r = s
        .post("/jsonldContexts", &t, json!({"@context": {"A1": "urn:a1"}}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r
        .header("location")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let r = s
        .get(&format!("/jsonldContexts/{id}?details=true"), &t)
        .await;
    assert_eq!(r.body["kind"], "Hosted");
    s.delete(&format!("/jsonldContexts/{id}?reload=true"), &t)
        .await
        .problem(400, "BadRequestData");
    assert_eq!(
        s.get(&format!("/jsonldContexts/{id}"), &t).await.status,
        StatusCode::OK
    );
    // An unknown parameter on subscription creation is an invalid request.
    s.post(
        "/subscriptions?invalidParams=invalidValue",
        &t,
        json!({"type": "Subscription"}),
    )
    .await
    .problem(400, "InvalidRequest");
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
