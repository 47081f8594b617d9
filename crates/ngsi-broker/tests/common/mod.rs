//! The NGSI-LD API on a real socket over a real embedded store, with real users and tenants
//! of the unified user system: shared by `api.rs` and `temporal.rs`.

#![allow(dead_code)]

use identity::secrets::Secret;
use identity::{IdentityService, NewUser, Principal, ServiceConfig, SystemClock};
use ngsi_broker::{Broker, BrokerSettings, ContextResolver};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use store::TenantId;
use store_sqlite::SqliteStore;

pub const PASSWORD: &str = "member-password-1";
pub const LD: &str = "application/ld+json";

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub _dir: tempfile::TempDir,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn problem(&self, status: u16, kind: &str) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.body["type"],
            format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"),
            "body: {}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        self
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

/// The API on a free loopback port over a fresh store; with `temporal`, entity writes record
/// their history and the temporal routes serve it (pages of 5 instances).
pub async fn serve_broker(anonymous_role: Option<&str>, temporal: bool) -> Server {
    serve_broker_with(anonymous_role, temporal, true).await
}

/// [`serve_broker`], with `record_history` as `BrokerSettings::record_history`.
pub async fn serve_broker_with(
    anonymous_role: Option<&str>,
    temporal: bool,
    record_history: bool,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let identity = Arc::new(
        IdentityService::new(
            Arc::new(store.clone()),
            &[7; 32],
            Arc::new(SystemClock),
            ServiceConfig {
                anonymous_role: anonymous_role.map(str::to_owned),
                ..ServiceConfig::default()
            },
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
    for (name, t, role) in [
        ("alice", "alpha", "admin"),
        ("bob", "beta", "admin"),
        ("vera", "alpha", "viewer"),
    ] {
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
    let ngsi: Arc<dyn store::NgsiStore> = Arc::new(store.clone());
    // Remote contexts are fetched, but the egress policy refuses private addresses.
    let fetcher = egress::Fetcher::new(egress::EgressPolicy::default()).unwrap();
    let contexts = ContextResolver::new(
        ngsi_ld::PreloadMap::with_test_suite(),
        Some(fetcher),
        Arc::clone(&ngsi),
        16,
    );
    let settings = BrokerSettings {
        max_limit: 50,
        temporal_limit: if temporal {
            5
        } else {
            BrokerSettings::default().temporal_limit
        },
        record_history,
        ..BrokerSettings::default()
    };
    let broker = Broker::new(ngsi, contexts, identity.clone(), settings)
        .with_registrations(Arc::new(store.clone()));
    let broker = Arc::new(if temporal {
        broker.with_temporal(Arc::new(store.clone()))
    } else {
        broker
    });
    let state = api_server::AppState::new(identity, api_server::HttpSettings::default());
    let app = api_server::app(state, vec![ngsi_broker::module(broker)]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api_server::serve(listener, app, std::future::pending()));
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Server {
    pub async fn token(&self, user: &str) -> String {
        let r = self
            .client
            .post(format!("{}/auth/login", self.base))
            .header("content-type", "application/json")
            .body(json!({"username": user, "password": PASSWORD}).to_string())
            .send()
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}/ngsi-ld/v1{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let mut has_ct = false;
        for (k, v) in headers {
            has_ct |= k.eq_ignore_ascii_case("content-type");
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            if !has_ct {
                req = req.header("content-type", "application/json");
            }
            req = req.body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, path: &str, t: &str) -> Resp {
        self.call(Method::GET, path, Some(t), &[], None).await
    }
    pub async fn post(&self, path: &str, t: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(t), &[], Some(body))
            .await
    }
    pub async fn patch(&self, path: &str, t: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(t), &[], Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, t: &str) -> Resp {
        self.call(Method::DELETE, path, Some(t), &[], None).await
    }
}
