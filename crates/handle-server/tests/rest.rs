//! REST API through the router without a socket: the status/responseCode mapping pyhandle relies on.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use handle_server::node::{HandleNode, NodeConfig};
use handle_server::rest::{RestState, router};
use handle_server::server::{AdminKey, home_prefix_with_admin};
use handle_server::site::{SiteParams, generate_site};
use handle_server::store::{HandleStore, MemoryStore};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

fn app() -> axum::Router {
    let store = Arc::new(MemoryStore::new());
    home_prefix_with_admin(
        store.as_ref(),
        "21.T999",
        AdminKey::Secret(b"secret".to_vec()),
    )
    .unwrap();
    let site = generate_site(&SiteParams {
        address: "127.0.0.1".parse().unwrap(),
        native_port: 2641,
        http_port: 8000,
        serial: 1,
        description: "t".into(),
        public_key: None,
    });
    let node = Arc::new(HandleNode::new(
        store as Arc<dyn HandleStore>,
        NodeConfig {
            server_admins: vec![],
            site,
            challenge_timeout_ms: 1000,
        },
    ));
    router(Arc::new(RestState {
        node,
        did_document: None,
    }))
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn handle_lifecycle_and_status_codes() {
    let app = app();
    let admin = basic("300%3A21.T999/ADMIN", "secret");
    let (s, v) = call(&app, "GET", "/api/handles/21.T999/ADMIN", None, "").await;
    assert_eq!((s, v["responseCode"].as_u64()), (StatusCode::OK, Some(1)));
    assert!(
        v["values"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["type"] != "HS_SECKEY"),
        "secret is not public"
    );
    assert!(v["values"][0]["timestamp"].is_string());
    let (s, v) = call(&app, "GET", "/api/handles/21.T999/missing", None, "").await;
    assert_eq!(
        (s, v["responseCode"].as_u64()),
        (StatusCode::NOT_FOUND, Some(100))
    );
    let (s, v) = call(&app, "GET", "/api/handles/99999/x", None, "").await;
    assert_eq!(
        (s, v["responseCode"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(301))
    );

    let body = r#"{"values":[{"index":1,"type":"URL","data":"https://example.org/a"}]}"#;
    let (s, v) = call(
        &app,
        "PUT",
        "/api/handles/21.T999/a?overwrite=false",
        None,
        body,
    )
    .await;
    assert_eq!(
        (s, v["responseCode"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(402))
    );
    let (s, _) = call(
        &app,
        "PUT",
        "/api/handles/21.T999/a",
        Some(&basic("300%3A21.T999/ADMIN", "wrong")),
        body,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = call(
        &app,
        "PUT",
        "/api/handles/21.T999/a?overwrite=false",
        Some(&admin),
        body,
    )
    .await;
    assert_eq!(
        (s, v["handle"].as_str()),
        (StatusCode::CREATED, Some("21.T999/a"))
    );
    let (s, v) = call(
        &app,
        "PUT",
        "/api/handles/21.T999/a?overwrite=false",
        Some(&admin),
        body,
    )
    .await;
    assert_eq!(
        (s, v["responseCode"].as_u64()),
        (StatusCode::CONFLICT, Some(101))
    );
    let two = r#"[{"index":2,"type":"CHECKSUM","data":{"format":"string","value":"abc"}}]"#;
    let (s, _) = call(
        &app,
        "PUT",
        "/api/handles/21.T999/a?index=2",
        Some(&admin),
        two,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(
        &app,
        "GET",
        "/api/handles/21.T999/a?type=CHECKSUM",
        None,
        "",
    )
    .await;
    assert_eq!(v["values"][0]["data"]["value"], "abc");
    let (_, v) = call(
        &app,
        "GET",
        "/api/handles?prefix=21.T999&page=0&pageSize=10",
        Some(&admin),
        "",
    )
    .await;
    assert_eq!(v["totalCount"], "2", "21.T999/ADMIN and 21.T999/a");
    let (s, _) = call(
        &app,
        "DELETE",
        "/api/handles/21.T999/a?index=2",
        Some(&admin),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&app, "DELETE", "/api/handles/21.T999/a", None, "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(&app, "DELETE", "/api/handles/21.T999/a", Some(&admin), "").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(&app, "GET", "/api/handles/21.T999/a", None, "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = call(&app, "GET", "/api/prefixes", None, "").await;
    assert_eq!(v["prefixes"][0], "21.T999");
}
