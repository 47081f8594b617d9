//! The HTTP API of the unified user system, through the real router and store.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::*;
use identity::ServiceConfig;
use serde_json::{Value, json};

#[tokio::test]
async fn health_ready_and_openapi_are_public_everything_else_is_not() {
    let p = Platform::new().await;
    assert_eq!(
        p.request(Method::GET, "/health", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        p.request(Method::GET, "/ready", None, None).await.body["status"],
        "ready"
    );
    let openapi = p.request(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(openapi.status, StatusCode::OK);
    let paths = openapi.body["paths"].as_object().unwrap().clone();
    assert!(
        paths.len() >= 15,
        "the OpenAPI document lists the routes: {:?}",
        paths.keys()
    );
    let public = [
        "/health",
        "/ready",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
    ];
    for (path, item) in &paths {
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let concrete = path
                .replace("{tenant}", "alpha")
                .replace("{username}", "alice")
                .replace("{name}", "r")
                .replace("{id}", "x");
            let response = p
                .request(method.clone(), &concrete, None, Some(json!({})))
                .await;
            if public.contains(&path.as_str()) {
                assert_ne!(
                    response.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} is public"
                );
            } else {
                response.assert_problem(StatusCode::UNAUTHORIZED);
                assert!(
                    response.headers.contains_key("www-authenticate"),
                    "{method} {path}"
                );
            }
        }
    }
    // Unknown routes answer with a problem too, never an empty body.
    p.request(Method::GET, "/nope", None, None)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn login_succeeds_with_the_right_password_only_and_is_audited() {
    let p = Platform::new().await;
    let (token, _) = p.login("alice", PASSWORD).await;
    let me = p.get("/api/v1/me", &token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["name"], "alice");
    assert_eq!(me.body["tenants"]["alpha"]["role"], "admin");
    assert!(me.body["tenants"].get("beta").is_none());

    let wrong = p
        .post(
            "/auth/login",
            None,
            json!({"username": "alice", "password": "wrong-password"}),
        )
        .await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED);
    let unknown = p
        .post(
            "/auth/login",
            None,
            json!({"username": "mallory", "password": "wrong-password"}),
        )
        .await;
    unknown.assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body["detail"], unknown.body["detail"],
        "failures do not reveal whether the user exists"
    );

    let root = p.token("root").await;
    let audit = p.get("/api/v1/audit?action=auth.login", &root).await;
    let outcomes: Vec<&str> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes[..3],
        ["success", "failure", "failure"][..],
        "newest first: root's login, mallory, alice's failure"
    );
    assert!(outcomes.contains(&"success"));
}

#[tokio::test]
async fn repeated_failures_lock_the_username_out() {
    let config = ServiceConfig {
        max_failed_logins: 3,
        lockout_secs: 60,
        ..Default::default()
    };
    let p = Platform::with(config, Default::default()).await;
    for _ in 0..3 {
        p.post(
            "/auth/login",
            None,
            json!({"username": "vera", "password": "guess-guess"}),
        )
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    }
    // Even the right password is refused during the lockout...
    p.post(
        "/auth/login",
        None,
        json!({"username": "vera", "password": PASSWORD}),
    )
    .await
    .assert_problem(StatusCode::TOO_MANY_REQUESTS);
    // ...and accepted after it.
    p.clock.advance_secs(61);
    p.login("vera", PASSWORD).await;
}

#[tokio::test]
async fn expired_and_tampered_tokens_are_refused() {
    let p = Platform::new().await;
    let (token, _) = p.login("alice", PASSWORD).await;
    assert_eq!(p.get("/api/v1/me", &token).await.status, StatusCode::OK);

    let mut tampered: Vec<String> = token.split('.').map(str::to_owned).collect();
    // Re-encode the payload with a different tenant claim but keep the old signature.
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(engine.decode(&tampered[1]).unwrap())
        .unwrap()
        .replace("alpha", "beta");
    tampered[1] = engine.encode(payload);
    let forged = tampered.join(".");
    p.get("/api/v1/me", &forged)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    p.get("/api/v1/me", "not-a-token")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    let basic = p
        .send(
            Request::get("/api/v1/me")
                .header("authorization", "Basic YWxpY2U6cGFzcw==")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    basic.assert_problem(StatusCode::UNAUTHORIZED);

    p.clock.advance_secs(15 * 60);
    let expired = p.get("/api/v1/me", &token).await;
    expired.assert_problem(StatusCode::UNAUTHORIZED);
    assert!(expired.body["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_session() {
    let p = Platform::new().await;
    let (_, refresh) = p.login("alice", PASSWORD).await;
    let first = p
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let rotated = first.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated, refresh);
    assert_eq!(
        p.get("/api/v1/me", first.body["access_token"].as_str().unwrap())
            .await
            .status,
        StatusCode::OK
    );
    // Replaying the old token is refused and kills the rotated one too.
    p.post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    p.post("/auth/refresh", None, json!({"refresh_token": rotated}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    // Logout ends a fresh session.
    let (_, refresh) = p.login("alice", PASSWORD).await;
    assert_eq!(
        p.post("/auth/logout", None, json!({"refresh_token": refresh}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    p.post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_keys_work_until_revoked_or_expired_and_are_shown_once() {
    let p = Platform::new().await;
    let alice = p.token("alice").await;
    let created = p
        .post(
            "/api/v1/tenants/alpha/api-keys",
            Some(&alice),
            json!({"name": "loop detector 7", "role": "device"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("cbk_"));

    let me = p.get("/api/v1/me", &key).await;
    assert_eq!(me.body["kind"], "api_key");
    assert_eq!(me.body["tenants"]["alpha"]["role"], "device");
    // X-API-Key works too.
    let via_header = p
        .send(
            Request::get("/api/v1/me")
                .header("x-api-key", &key)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(via_header.status, StatusCode::OK);

    let listed = p.get("/api/v1/tenants/alpha/api-keys", &alice).await;
    assert!(
        !listed.text.contains(&key[key.find('.').unwrap() + 1..]),
        "the secret is never listed"
    );
    // A device may not manage keys.
    p.get("/api/v1/tenants/alpha/api-keys", &key)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    // A wrong secret for a real id is refused.
    let forged = format!(
        "{}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &key[..key.find('.').unwrap()]
    );
    p.get("/api/v1/me", &forged)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);

    let revoked = p
        .request(
            Method::DELETE,
            &format!("/api/v1/tenants/alpha/api-keys/{id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    p.get("/api/v1/me", &key)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);

    let short = p
        .post(
            "/api/v1/tenants/alpha/api-keys",
            Some(&alice),
            json!({"name": "temp", "role": "viewer", "expires_in_secs": 60}),
        )
        .await;
    let short_key = short.body["key"].as_str().unwrap().to_owned();
    assert_eq!(p.get("/api/v1/me", &short_key).await.status, StatusCode::OK);
    p.clock.advance_secs(61);
    p.get("/api/v1/me", &short_key)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn roles_decide_what_members_may_do() {
    let p = Platform::new().await;
    let (alice, vera, otto) = (
        p.token("alice").await,
        p.token("vera").await,
        p.token("otto").await,
    );
    // Viewers see no identity data; operators read it but cannot change it.
    p.get("/api/v1/tenants/alpha/members", &vera)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    assert_eq!(
        p.get("/api/v1/tenants/alpha/members", &otto).await.status,
        StatusCode::OK
    );
    let new_user = json!({"username": "nina", "password": "long-enough-1", "role": "viewer"});
    p.post("/api/v1/tenants/alpha/users", Some(&otto), new_user.clone())
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    assert_eq!(
        p.post("/api/v1/tenants/alpha/users", Some(&alice), new_user)
            .await
            .status,
        StatusCode::CREATED
    );
    // Only platform administrators create tenants or superusers.
    p.post("/api/v1/tenants", Some(&alice), json!({"id": "gamma"}))
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    let superuser =
        json!({"username": "sam", "password": "long-enough-1", "role": "admin", "superuser": true});
    p.post("/api/v1/tenants/alpha/users", Some(&alice), superuser)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    let root = p.token("root").await;
    assert_eq!(
        p.post("/api/v1/tenants", Some(&root), json!({"id": "gamma"}))
            .await
            .status,
        StatusCode::CREATED
    );
    // Custom roles grant exactly their permissions, at the next login.
    let role = p
        .request(
            Method::PUT,
            "/api/v1/tenants/alpha/roles/auditor",
            Some(&alice),
            Some(json!({"permissions": ["audit:read"]})),
        )
        .await;
    assert_eq!(role.status, StatusCode::OK, "{}", role.text);
    let grant = p
        .request(
            Method::PUT,
            "/api/v1/tenants/alpha/members/vera",
            Some(&alice),
            Some(json!({"role": "auditor"})),
        )
        .await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.text);
    let vera = p.token("vera").await;
    assert_eq!(
        p.get("/api/v1/tenants/alpha/audit", &vera).await.status,
        StatusCode::OK
    );
    p.get("/api/v1/tenants/alpha/members", &vera)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    // Bad input is explained.
    let bad = p
        .request(
            Method::PUT,
            "/api/v1/tenants/alpha/roles/x",
            Some(&alice),
            Some(json!({"permissions": ["data:delete"]})),
        )
        .await;
    bad.assert_problem(StatusCode::BAD_REQUEST);
    assert!(bad.body["detail"].as_str().unwrap().contains("data:delete"));
    p.post(
        "/api/v1/tenants/alpha/users",
        Some(&alice),
        json!({"username": "x", "password": "short", "role": "viewer"}),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST);
    p.post(
        "/api/v1/tenants/alpha/users",
        Some(&alice),
        json!({"username": "y", "password": "long-enough-1", "role": "wizard"}),
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST);
}

/// A body that the route would accept from an authorised caller.
fn valid_body(method: &Method, path: &str) -> Option<Value> {
    match (method.as_str(), path) {
        ("POST", "/api/v1/tenants/{tenant}/users") => {
            Some(json!({"username": "newcomer", "password": "long-enough-1", "role": "viewer"}))
        }
        ("PUT", "/api/v1/tenants/{tenant}/members/{username}") => Some(json!({"role": "viewer"})),
        ("PUT", "/api/v1/tenants/{tenant}/roles/{name}") => {
            Some(json!({"permissions": ["data:read"]}))
        }
        ("POST", "/api/v1/tenants/{tenant}/api-keys") => {
            Some(json!({"name": "k", "role": "device"}))
        }
        ("POST", "/api/v1/tenants") => Some(json!({"id": "delta"})),
        ("PUT", "/api/v1/users/{username}/password") => {
            Some(json!({"new_password": "long-enough-2"}))
        }
        ("PUT", "/api/v1/users/{username}/disabled") => Some(json!({"disabled": false})),
        _ => None,
    }
}

#[tokio::test]
async fn cross_tenant_access_is_refused_on_every_route() {
    let p = Platform::new().await;
    let alice = p.token("alice").await;
    let bob = p.token("bob").await;
    let alice_key = p
        .post(
            "/api/v1/tenants/alpha/api-keys",
            Some(&alice),
            json!({"name": "k", "role": "admin"}),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Objects that exist in beta, so a leak would show as success rather than 404.
    let bob_key = p
        .post(
            "/api/v1/tenants/beta/api-keys",
            Some(&bob),
            json!({"name": "k", "role": "device"}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    p.request(
        Method::PUT,
        "/api/v1/tenants/beta/roles/beta-role",
        Some(&bob),
        Some(json!({"permissions": ["data:read"]})),
    )
    .await;

    let openapi = p
        .request(Method::GET, "/openapi.json", None, None)
        .await
        .body;
    let mut checked = 0;
    for (path, item) in openapi["paths"].as_object().unwrap() {
        if !path.contains("{tenant}") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let concrete = path
                .replace("{tenant}", "beta")
                .replace("{username}", "bob")
                .replace("{name}", "beta-role")
                .replace("{id}", &bob_key);
            for credential in [&alice, &alice_key] {
                let response = p
                    .request(
                        method.clone(),
                        &concrete,
                        Some(credential),
                        valid_body(&method, path),
                    )
                    .await;
                response.assert_problem(StatusCode::FORBIDDEN);
            }
            // Positive control: beta's own admin is allowed the same request.
            let own = p
                .request(
                    method.clone(),
                    &concrete,
                    Some(&bob),
                    valid_body(&method, path),
                )
                .await;
            assert!(
                own.status.is_success(),
                "{method} {concrete} as bob: {} {}",
                own.status,
                own.text
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} tenant routes found");

    // Routes without a tenant in the path: confined to the caller's tenants, or platform-only.
    let tenants = p.get("/api/v1/tenants", &alice).await;
    let ids: Vec<&str> = tenants
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alpha"]);
    for path in ["/api/v1/audit", "/api/v1/audit/verify", "/metrics"] {
        p.get(path, &alice)
            .await
            .assert_problem(StatusCode::FORBIDDEN);
    }
    for (path, body) in [
        ("/api/v1/users/bob/disabled", json!({"disabled": true})),
        (
            "/api/v1/users/bob/password",
            json!({"new_password": "hijacked-password"}),
        ),
        (
            "/api/v1/users/bob/password",
            json!({"current_password": "guess-guess", "new_password": "hijacked-password"}),
        ),
    ] {
        let response = p.request(Method::PUT, path, Some(&alice), Some(body)).await;
        assert!(
            response.status == StatusCode::FORBIDDEN || response.status == StatusCode::UNAUTHORIZED,
            "{path}: {}",
            response.text
        );
    }
    p.login("bob", PASSWORD).await;
}

#[tokio::test]
async fn security_events_are_in_the_audit_log_and_the_chain_verifies() {
    let p = Platform::new().await;
    let alice = p.token("alice").await;
    let vera = p.token("vera").await;
    let key = p
        .post(
            "/api/v1/tenants/alpha/api-keys",
            Some(&alice),
            json!({"name": "k", "role": "device"}),
        )
        .await;
    let id = key.body["id"].as_str().unwrap();
    p.request(
        Method::DELETE,
        &format!("/api/v1/tenants/alpha/api-keys/{id}"),
        Some(&alice),
        None,
    )
    .await;
    p.get("/api/v1/tenants/alpha/api-keys", &vera)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    p.get("/api/v1/tenants/beta/members", &alice)
        .await
        .assert_problem(StatusCode::FORBIDDEN);

    let audit = p.get("/api/v1/tenants/alpha/audit", &alice).await;
    assert_eq!(audit.status, StatusCode::OK);
    let actions: Vec<(String, String)> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("apikey.create", "success"),
        ("apikey.revoke", "success"),
        ("authz.denied", "denied"),
    ] {
        assert!(
            actions.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {actions:?}"
        );
    }
    // alpha's log shows nothing of beta: alice's denied attempt on beta is filed under beta.
    assert!(
        audit
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == "alpha")
    );
    let root = p.token("root").await;
    let beta = p.get("/api/v1/tenants/beta/audit", &root).await;
    assert!(beta.body.as_array().unwrap().iter().any(
        |e| e["action"] == "authz.denied" && e["actor"].as_str().unwrap().starts_with("user:")
    ));
    let verify = p.get("/api/v1/audit/verify", &root).await;
    assert_eq!(verify.body["intact"], true, "{}", verify.text);
}

#[tokio::test]
async fn bad_bodies_get_problem_details_and_request_ids_are_echoed() {
    let http = api_server::HttpSettings {
        body_limit_bytes: 2048,
        ..Default::default()
    };
    let p = Platform::with(ServiceConfig::default(), http).await;
    let malformed = p
        .send(
            Request::post("/auth/login")
                .header("content-type", "application/json")
                .body(Body::from("{nope"))
                .unwrap(),
        )
        .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST);
    let wrong_type = p
        .send(
            Request::post("/auth/login")
                .header("content-type", "text/plain")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    wrong_type.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let unknown_field = p
        .post(
            "/auth/login",
            None,
            json!({"username": "a", "password": "b", "extra": 1}),
        )
        .await;
    unknown_field.assert_problem(StatusCode::BAD_REQUEST);
    assert!(
        unknown_field.body["detail"]
            .as_str()
            .unwrap()
            .contains("extra")
    );
    let huge = json!({"username": "a".repeat(5000), "password": "b"});
    p.post("/auth/login", None, huge)
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE);
    let with_id = p
        .send(
            Request::get("/health")
                .header("x-request-id", "trace-me-42")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(with_id.headers.get("x-request-id").unwrap(), "trace-me-42");
    let generated = p
        .send(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert!(
        generated
            .headers
            .get("x-request-id")
            .is_some_and(|v| v.len() >= 32)
    );
}

#[tokio::test]
async fn metrics_count_requests_and_need_a_platform_administrator() {
    let p = Platform::new().await;
    p.request(Method::GET, "/health", None, None).await;
    let root = p.token("root").await;
    let metrics = p.get("/metrics", &root).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.text.contains("citybrain_http_requests_total"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("route=\"/health\""));
    let open = Platform::with(
        ServiceConfig::default(),
        api_server::HttpSettings {
            metrics_public: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        open.request(Method::GET, "/metrics", None, None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn anonymous_access_exists_only_when_opted_in() {
    let p = Platform::with(
        ServiceConfig {
            anonymous_role: Some("viewer".into()),
            ..Default::default()
        },
        Default::default(),
    )
    .await;
    let me = p.request(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(me.body["kind"], "anonymous");
    // The opted-in role still limits what anonymous callers may do.
    p.request(Method::GET, "/api/v1/tenants/alpha/members", None, None)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_dashboard_is_served_with_strict_headers_and_holds_no_data() {
    let p = Platform::new().await;
    let root = p.request(Method::GET, "/", None, None).await;
    assert!(root.status.is_redirection());
    assert_eq!(root.headers.get("location").unwrap(), "/ui/");
    let page = p.request(Method::GET, "/ui/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("<script src=\"/ui/app.js\">"));
    assert!(
        page.headers
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("default-src 'self'")
    );
    let script = p.request(Method::GET, "/ui/app.js", None, None).await;
    assert_eq!(script.status, StatusCode::OK);
    // The script only talks to the authenticated API.
    assert!(script.text.contains("authorization") && script.text.contains("/api/v1/me"));
}
