//! A test platform: the real router (platform auth layer + the `/cpn/v1` module) over a real
//! embedded store, a real identity service and a coordinator with fast heartbeats. Requests go
//! through `oneshot`, no socket.

#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_server::{AppState, HttpSettings, app};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cpn_server::coordinator::local_site;
use cpn_server::{Coordinator, CoordinatorConfig};
use http_body_util::BodyExt;
use identity::secrets::Secret;
use identity::{IdentityService, NewUser, Principal, ServiceConfig, SystemClock};
use serde_json::{Value, json};
use store::TenantId;
use store_sqlite::SqliteStore;
use tower::ServiceExt;

pub const PASSWORD: &str = "member-password-1";

pub struct Platform {
    pub app: Router,
    pub coordinator: Coordinator,
    pub root: String,
    pub vera: String,
    pub bob: String,
    pub dir: tempfile::TempDir,
    pub identity: Arc<IdentityService>,
}

pub struct Response {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

impl Platform {
    /// Tenants `alpha` (root: platform admin; vera: viewer) and `beta` (bob: admin).
    pub async fn new(configure: impl FnOnce(&mut CoordinatorConfig)) -> Self {
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
        let mut config = CoordinatorConfig::new(dir.path().join("jobs"));
        config.heartbeat_interval = Duration::from_millis(100);
        config.heartbeat_timeout = Duration::from_millis(800);
        configure(&mut config);
        let coordinator = Coordinator::open(Arc::new(store.clone()), config)
            .await
            .unwrap();
        coordinator.spawn_monitor();
        let module = cpn_server::api::module(coordinator.clone(), identity.clone());
        let app = app(
            AppState::new(identity.clone(), HttpSettings::default()),
            vec![module],
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
            coordinator,
            root,
            vera,
            bob,
            dir,
            identity,
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
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
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response { status, body, text }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, Some(&self.root), None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(&self.root), Some(body))
            .await
    }

    /// Registers a site through the API (as root, in alpha).
    pub async fn register(&self, engine: &str, site: Value) -> Response {
        self.post("/cpn/v1/sites", json!({"engine": engine, "site": site}))
            .await
    }

    /// Submits a job through the API; panics unless it is accepted.
    pub async fn submit(&self, job: Value) -> String {
        let r = self.post("/cpn/v1/jobs", job).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Submits a job through the API and returns the answer as it is.
    pub async fn submit_raw(&self, job: Value) -> Response {
        self.post("/cpn/v1/jobs", job).await
    }

    /// Polls a job until `done(job)` holds or `limit` passes; returns the last view.
    pub async fn wait_for(
        &self,
        id: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let until = Instant::now() + limit;
        loop {
            let r = self.get(&format!("/cpn/v1/jobs/{id}")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            if done(&r.body) || Instant::now() > until {
                return r.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_state(&self, id: &str, state: &str, limit: Duration) -> Value {
        self.wait_for(id, limit, |j| j["state"] == state).await
    }

    pub async fn event_kinds(&self, id: &str) -> Vec<String> {
        let r = self.get(&format!("/cpn/v1/jobs/{id}/events")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A site config as JSON: this machine, priced per core-hour at `price`.
pub fn site(id: &str, region: &str, zone: &str, cores: f64, price: f64) -> Value {
    let mut s = local_site(id, region, zone, cores, 8.0);
    s.price.cpu_core_hour = price;
    serde_json::to_value(s).unwrap()
}

pub fn sh(script: &str, cores: f64, duration_s: f64) -> Value {
    json!({
        "name": "test",
        "command": ["/bin/sh", "-c", script],
        "resources": {"cpu": cores, "memory_gib": 0.5},
        "duration_s": duration_s,
    })
}
