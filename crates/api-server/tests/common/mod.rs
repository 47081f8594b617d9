//! A test platform: the real router over a real embedded store in a temporary directory,
//! with a manual clock. Requests go through `oneshot`, no socket.

#![allow(dead_code)]

use api_server::{AppState, HttpSettings, app};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use identity::secrets::Secret;
use identity::{IdentityService, ManualClock, NewUser, Principal, ServiceConfig};
use serde_json::Value;
use std::sync::Arc;
use store::{TenantId, UnixMillis};
use store_sqlite::SqliteStore;
use tower::ServiceExt;

pub const ROOT_PASSWORD: &str = "root-password-1";
pub const PASSWORD: &str = "member-password-1";

pub struct Platform {
    pub app: Router,
    pub identity: Arc<IdentityService>,
    pub clock: Arc<ManualClock>,
    pub store: SqliteStore,
    _dir: tempfile::TempDir,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

impl Platform {
    /// Tenants `alpha` and `beta`; `root` is a platform administrator (admin in alpha);
    /// `alice` is admin of alpha, `bob` admin of beta, `vera` viewer of alpha,
    /// `otto` operator of alpha.
    pub async fn new() -> Self {
        Self::with(ServiceConfig::default(), HttpSettings::default()).await
    }

    pub async fn with(config: ServiceConfig, http: HttpSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let clock = Arc::new(ManualClock::new(UnixMillis(1_800_000_000_000)));
        let identity = Arc::new(
            IdentityService::new(
                Arc::new(store.clone()),
                &[42; 32],
                clock.clone(),
                config,
                None,
            )
            .unwrap(),
        );
        identity
            .bootstrap("root", Some(Secret::new(ROOT_PASSWORD)), tenant("alpha"))
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
            ("otto", "alpha", "operator"),
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
        let app = app(AppState::new(identity.clone(), http), Vec::new());
        Self {
            app,
            identity,
            clock,
            store,
            _dir: dir,
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
        self.send(request).await
    }

    pub async fn send(&self, request: Request<Body>) -> Response {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// Logs in and returns (access token, refresh token).
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let response = self
            .post(
                "/auth/login",
                None,
                serde_json::json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "login of {username}: {}",
            response.text
        );
        (
            response.body["access_token"].as_str().unwrap().to_owned(),
            response.body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn token(&self, username: &str) -> String {
        let password = if username == "root" {
            ROOT_PASSWORD
        } else {
            PASSWORD
        };
        self.login(username, password).await.0
    }
}

impl Response {
    /// Asserts a ProblemDetails body of the given status.
    pub fn assert_problem(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "problem responses carry application/problem+json"
        );
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["type"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(self.body["detail"].as_str().is_some_and(|t| !t.is_empty()));
        self
    }
}
