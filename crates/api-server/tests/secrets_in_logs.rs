//! Secrets never reach the logs: every log line of this test binary (at TRACE level,
//! from every crate) is captured while passwords, tokens and keys are used, and none of
//! them may appear. Its own test binary, because the subscriber is process-global.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_token_or_key_is_ever_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let p = Platform::new().await;
    let (access, refresh) = p.login("alice", PASSWORD).await;
    p.post(
        "/auth/login",
        None,
        json!({"username": "alice", "password": "wrong-secret-xyz"}),
    )
    .await;
    let refreshed = p
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let new_refresh = refreshed.body["refresh_token"].as_str().unwrap().to_owned();
    let key = p
        .post(
            "/api/v1/tenants/alpha/api-keys",
            Some(&access),
            json!({"name": "k", "role": "device"}),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    p.get("/api/v1/me", &key).await;
    p.get("/api/v1/me", &format!("{key}tampered")).await;
    p.request(
        Method::PUT,
        "/api/v1/users/alice/password",
        Some(&access),
        Some(json!({"current_password": PASSWORD, "new_password": "brand-new-secret-1"})),
    )
    .await;
    p.request(Method::GET, "/api/v1/nope", Some(&access), None)
        .await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/auth/login"),
        "the capture works: requests are logged\n{logs}"
    );
    let key_secret = &key[key.find('.').unwrap() + 1..];
    for secret in [
        PASSWORD,
        ROOT_PASSWORD,
        "wrong-secret-xyz",
        "brand-new-secret-1",
        &access,
        &refresh,
        &new_refresh,
        key_secret,
    ] {
        assert!(
            !logs.contains(secret),
            "a secret leaked into the logs: {secret}"
        );
    }
    // Nor the stored forms.
    assert!(
        !logs.contains("$argon2id$"),
        "password hashes leaked into the logs"
    );
}
