//! The node inside the platform: minting identifiers for a tenant's NGSI-LD entities and data
//! sets through the unified user system, public resolution of what was minted, tenant
//! isolation, and every administrative operation (minting, Handle.Net REST writes, refused
//! credentials) in the platform's hash-chained audit log. Real router, real SQLite store,
//! real identity service; requests go through `oneshot`, no socket.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use api_server::{AppState, HttpSettings, app};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use handle_proto::ValueReference;
use handle_server::durable::DurableStore;
use handle_server::identifiers::{self, Identifiers, MintConfig};
use handle_server::node::{HandleNode, NodeConfig};
use handle_server::rest::{RestState, platform_router};
use handle_server::server::{AdminKey, home_prefix_with_admin};
use handle_server::site::{SiteParams, did_web_document_at, generate_site, node_public_key};
use http_body_util::BodyExt as _;
use identity::secrets::Secret;
use identity::{IdentityService, NewUser, Principal, ServiceConfig, SystemClock};
use serde_json::{Value, json};
use store::{
    AuditFilter, AuditScope, EntityChange, EntityRecord, NgsiStore, TenantId, TenantScope,
};
use store_sqlite::SqliteStore;
use tower::ServiceExt as _;

const PASSWORD: &str = "member-password-1";
const SECRET: &str = "handle-admin-secret";
const ENTITY: &str = "urn:ngsi-ld:Junction:jinan:J1";

struct Platform {
    app: Router,
    identity: Arc<IdentityService>,
    root: String,
    vera: String,
    bob: String,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

async fn put_entity(store: &SqliteStore, tenant_id: &str, id: &str) {
    let record = EntityRecord {
        id: id.to_owned(),
        types: vec!["https://smartdatamodels.org/dataModel.Transportation/Junction".into()],
        doc: "{}".into(),
        created_at: store::UnixMillis(0),
        modified_at: store::UnixMillis(0),
    };
    store
        .modify_entities(
            &TenantScope::authorized(tenant(tenant_id)),
            vec![id.to_owned()],
            Box::new(move |_| vec![EntityChange::Put(record)]),
        )
        .await
        .unwrap();
}

impl Platform {
    /// Tenants `alpha` (root: platform admin; vera: viewer) and `beta` (bob: admin); entity
    /// `ENTITY` exists in alpha only; prefix 21.T999 homed with secret `SECRET`.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let identity = Arc::new(
            IdentityService::new(
                Arc::new(store.clone()),
                &[7; 32],
                Arc::new(SystemClock),
                ServiceConfig::default(),
                None,
            )
            .unwrap(),
        );
        identity
            .bootstrap("root", Some(Secret::new(PASSWORD)), tenant("alpha"))
            .await
            .unwrap();
        let system = Principal::system("test");
        identity
            .create_tenant(&system, tenant("beta"), "Beta")
            .await
            .unwrap();
        for (name, t, role) in [("vera", "alpha", "viewer"), ("bob", "beta", "admin")] {
            let user = NewUser {
                username: name.into(),
                password: Secret::new(PASSWORD),
                superuser: false,
            };
            identity
                .create_member(&system, &tenant(t), user, role)
                .await
                .unwrap();
        }
        put_entity(&store, "alpha", ENTITY).await;

        let durable = Arc::new(DurableStore::open(Arc::new(store.clone())).await.unwrap());
        home_prefix_with_admin(
            durable.as_ref(),
            "21.T999",
            AdminKey::Secret(SECRET.as_bytes().to_vec()),
        )
        .unwrap();
        let key = node_public_key(&[9; 32]);
        let node = Arc::new(HandleNode::new(
            durable,
            NodeConfig {
                server_admins: vec![],
                site: generate_site(&SiteParams {
                    address: "127.0.0.1".parse().unwrap(),
                    native_port: 2641,
                    http_port: 8080,
                    serial: 1,
                    description: "t".into(),
                    public_key: Some(key),
                }),
                challenge_timeout_ms: 1000,
            },
        ));
        assert!(node.set_audit_sink(identifiers::audit_sink(identity.clone())));
        let did = did_web_document_at(
            "city.test",
            "https://city.test",
            &key,
            2641,
            &["21.T999".to_owned()],
        );
        let rest = platform_router::<AppState>(Arc::new(RestState {
            node: node.clone(),
            did_document: Some(did),
        }));
        let service = Arc::new(Identifiers::new(
            node,
            identity.clone(),
            Arc::new(store.clone()) as Arc<dyn NgsiStore>,
            MintConfig {
                prefix: "21.T999".into(),
                public_url: "https://city.test/".into(),
                minter: ValueReference::new("21.T999/ADMIN", 300),
            },
        ));
        let modules = vec![
            api_server::Module {
                public: rest.into(),
                protected: utoipa_axum::router::OpenApiRouter::new(),
            },
            identifiers::module(service),
        ];
        let app = app(
            AppState::new(identity.clone(), HttpSettings::default()),
            modules,
        );
        let mut tokens = Vec::new();
        for name in ["root", "vera", "bob"] {
            tokens.push(
                identity
                    .login(name, &Secret::new(PASSWORD))
                    .await
                    .unwrap()
                    .access_token,
            );
        }
        let [root, vera, bob] = <[String; 3]>::try_from(tokens).unwrap();
        Self {
            app,
            identity,
            root,
            vera,
            bob,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Option<String>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => builder.body(Body::empty()).unwrap(),
        };
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn as_user(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call(method, path, Some(format!("Bearer {token}")), body)
            .await
    }

    /// Audit entries (platform-wide and alpha's), waiting up to 5 s for `wanted` actions.
    async fn audit_until(&self, wanted: &[&str]) -> Vec<store::AuditEntry> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let entries = self
                .identity
                .store()
                .audit_entries(
                    &AuditScope::Platform,
                    &AuditFilter {
                        limit: Some(1000),
                        ..AuditFilter::default()
                    },
                )
                .await
                .unwrap();
            let all_there = wanted
                .iter()
                .all(|w| entries.iter().any(|e| e.event.action == *w));
            if all_there || std::time::Instant::now() > deadline {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_and_data_sets_get_resolvable_identifiers_per_tenant() {
    let p = Platform::new().await;
    let mint = "/api/v1/tenants/alpha/identifiers";

    let first = p
        .as_user(&p.root, "POST", mint, Some(json!({ "entity": ENTITY })))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let handle = first.body["handle"].as_str().unwrap().to_owned();
    assert!(handle.starts_with("21.T999/e-"), "{handle}");
    assert_eq!(
        first.body["url"],
        "https://city.test/ngsi-ld/v1/entities/urn:ngsi-ld:Junction:jinan:J1"
    );
    assert_eq!(first.body["kind"], "entity");
    assert_eq!(first.body["target"], ENTITY);

    // Minting again answers the same identifier.
    let again = p
        .as_user(&p.root, "POST", mint, Some(json!({ "entity": ENTITY })))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["handle"], handle.as_str());

    // Anyone resolves it, without seeing which tenant owns it.
    let resolved = p
        .call("GET", &format!("/api/handles/{handle}"), None, None)
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    let values = resolved.body["values"].as_array().unwrap();
    let url = values.iter().find(|v| v["type"] == "URL").unwrap();
    assert_eq!(url["data"]["value"], first.body["url"]);
    assert!(values.iter().any(|v| v["type"] == "NGSI-LD-ENTITY"));
    assert!(
        !values.iter().any(|v| v["type"] == "CITYBRAIN-TENANT"),
        "the owning tenant leaked: {}",
        resolved.body
    );
    let redirect = p.call("GET", &format!("/hdl/{handle}"), None, None).await;
    assert!(redirect.status.is_redirection(), "{}", redirect.status);
    assert_eq!(
        redirect.headers[header::LOCATION],
        first.body["url"].as_str().unwrap()
    );

    // Readers of the tenant see it; other tenants don't, even under their own name.
    let path = format!("/api/v1/tenants/alpha/identifiers/{handle}");
    let read = p.as_user(&p.vera, "GET", &path, None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body, first.body);
    let cross = p.as_user(&p.bob, "GET", &path, None).await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN, "{}", cross.body);
    let own_name = p
        .as_user(
            &p.bob,
            "GET",
            &format!("/api/v1/tenants/beta/identifiers/{handle}"),
            None,
        )
        .await;
    assert_eq!(own_name.status, StatusCode::NOT_FOUND, "{}", own_name.body);
    let cross_delete = p
        .as_user(
            &p.bob,
            "DELETE",
            &format!("/api/v1/tenants/beta/identifiers/{handle}"),
            None,
        )
        .await;
    assert_eq!(cross_delete.status, StatusCode::NOT_FOUND);
    // beta has no such entity: nothing is minted for it.
    let beta_mint = p
        .as_user(
            &p.bob,
            "POST",
            "/api/v1/tenants/beta/identifiers",
            Some(json!({ "entity": ENTITY })),
        )
        .await;
    assert_eq!(
        beta_mint.status,
        StatusCode::NOT_FOUND,
        "{}",
        beta_mint.body
    );
    // A viewer may read but not mint; nobody unauthenticated may mint.
    let viewer = p
        .as_user(
            &p.vera,
            "POST",
            mint,
            Some(json!({ "dataset": "x", "url": "https://x.org/a" })),
        )
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN, "{}", viewer.body);
    let anonymous = p
        .call("POST", mint, None, Some(json!({ "entity": ENTITY })))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // Data sets point wherever they are published.
    let dataset = p
        .as_user(
            &p.root,
            "POST",
            mint,
            Some(json!({ "dataset": "traffic-counts-2026", "url": "https://data.city.test/counts.csv" })),
        )
        .await;
    assert_eq!(dataset.status, StatusCode::CREATED, "{}", dataset.body);
    assert!(
        dataset.body["handle"]
            .as_str()
            .unwrap()
            .starts_with("21.T999/d-")
    );
    let redirect = p
        .call(
            "GET",
            &format!("/hdl/{}", dataset.body["handle"].as_str().unwrap()),
            None,
            None,
        )
        .await;
    assert_eq!(
        redirect.headers[header::LOCATION],
        "https://data.city.test/counts.csv"
    );

    // Withdrawing it makes it unresolvable.
    let deleted = p.as_user(&p.root, "DELETE", &path, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        p.as_user(&p.root, "GET", &path, None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        p.call("GET", &format!("/api/handles/{handle}"), None, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mint_requests_are_refused_and_nothing_is_minted() {
    let p = Platform::new().await;
    let mint = "/api/v1/tenants/alpha/identifiers";
    for (body, why) in [
        (json!({}), "neither target"),
        (
            json!({ "entity": ENTITY, "dataset": "d", "url": "https://x.org" }),
            "both targets",
        ),
        (
            json!({ "entity": ENTITY, "url": "https://x.org" }),
            "url for an entity",
        ),
        (json!({ "entity": "not a uri" }), "entity id not a URI"),
        (
            json!({ "dataset": "has space", "url": "https://x.org" }),
            "bad data set name",
        ),
        (json!({ "dataset": "d" }), "data set without url"),
        (
            json!({ "dataset": "d", "url": "ftp://x.org/a" }),
            "non-http url",
        ),
        (
            json!({ "dataset": "d", "url": "https://x.org", "extra": 1 }),
            "unknown field",
        ),
        (json!({ "entity": 5 }), "wrong type"),
    ] {
        let r = p.as_user(&p.root, "POST", mint, Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.body);
        assert!(
            r.body["detail"].is_string() || r.body["title"].is_string(),
            "{why}: {}",
            r.body
        );
    }
    let missing = p
        .as_user(
            &p.root,
            "POST",
            mint,
            Some(json!({ "entity": "urn:ngsi-ld:X:none" })),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let listed = p
        .call(
            "GET",
            "/api/handles?prefix=21.T999",
            Some(basic("300%3A21.T999/ADMIN", SECRET)),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(
        listed.body["handles"],
        json!(["21.T999/ADMIN"]),
        "a refused request minted something"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_administration_lands_in_the_platform_audit_log() {
    let p = Platform::new().await;
    let minted = p
        .as_user(
            &p.root,
            "POST",
            "/api/v1/tenants/alpha/identifiers",
            Some(json!({ "entity": ENTITY })),
        )
        .await;
    assert_eq!(minted.status, StatusCode::CREATED);
    let body = json!({ "values": [{ "index": 1, "type": "URL", "data": "https://a.test" }] });
    let created = p
        .call(
            "PUT",
            "/api/handles/21.T999/manual-1",
            Some(basic("300%3A21.T999/ADMIN", SECRET)),
            Some(body.clone()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let wrong = p
        .call(
            "PUT",
            "/api/handles/21.T999/manual-2",
            Some(basic("300%3A21.T999/ADMIN", "wrong-secret")),
            Some(body.clone()),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let anonymous = p
        .call("DELETE", "/api/handles/21.T999/manual-1", None, None)
        .await;
    assert!(anonymous.status.is_client_error());

    let entries = p
        .audit_until(&["identifier.mint", "handle.create", "handle.delete"])
        .await;
    let find = |action: &str, target: &str| {
        entries
            .iter()
            .filter(|e| e.event.action == action && e.event.target.as_deref() == Some(target))
            .map(|e| (e.event.actor.clone(), e.event.outcome.as_str()))
            .collect::<Vec<_>>()
    };
    let handle = minted.body["handle"].as_str().unwrap();
    let mint_entries = find("identifier.mint", handle);
    assert_eq!(mint_entries.len(), 1, "{mint_entries:?}");
    assert!(mint_entries[0].0.starts_with("user:"), "{mint_entries:?}");
    assert_eq!(
        find("handle.create", handle),
        [("handle:300:21.T999/ADMIN".to_owned(), "success")]
    );
    assert_eq!(
        find("handle.create", "21.T999/manual-1"),
        [("handle:300:21.T999/ADMIN".to_owned(), "success")]
    );
    assert_eq!(
        find("handle.create", "21.T999/manual-2"),
        [("handle:300:21.T999/ADMIN".to_owned(), "denied")]
    );
    assert_eq!(
        find("handle.delete", "21.T999/manual-1"),
        [("anonymous".to_owned(), "denied")]
    );
    // The chain still verifies with the node's entries in it.
    let entries_len = entries.len();
    let chain = p.identity.store().verify_chain().await.unwrap();
    assert!(
        matches!(chain, store::ChainVerification::Intact { entries } if entries as usize >= entries_len),
        "{chain:?}"
    );
    let secret_in_log = entries
        .iter()
        .any(|e| serde_json::to_string(&e.event).unwrap().contains(SECRET));
    assert!(!secret_in_log, "the admin secret reached the audit log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_publishes_its_did_web_document() {
    let p = Platform::new().await;
    let doc = p.call("GET", "/.well-known/did.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["id"], "did:web:city.test");
    assert_eq!(
        doc.body["service"][0]["serviceEndpoint"],
        "https://city.test/api/handles/"
    );
    assert_eq!(doc.body["handlePrefixes"], json!(["21.T999"]));
    let x = doc.body["verificationMethod"][0]["publicKeyJwk"]["x"]
        .as_str()
        .unwrap();
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(x)
        .unwrap();
    assert_eq!(key, node_public_key(&[9; 32]));
}
