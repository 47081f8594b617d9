//! Subscriptions end to end: a real broker on a socket over the embedded store, real users
//! and tenants, notifications to a real HTTP receiver (an axum server in the test) and
//! through the local Mosquitto (127.0.0.1:1883).

use axum::http::HeaderMap;
use identity::secrets::Secret;
use identity::{IdentityService, NewUser, Principal, ServiceConfig, SystemClock};
use ngsi_broker::subscriptions::NotifierSettings;
use ngsi_broker::{Broker, BrokerSettings, ContextResolver};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::TenantId;
use store_sqlite::SqliteStore;
use tokio::sync::mpsc;

const PASSWORD: &str = "member-password-1";

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

struct Server {
    base: String,
    client: reqwest::Client,
    broker: Arc<Broker>,
}

struct Resp {
    status: StatusCode,
    count: Option<String>,
    body: Value,
}

impl Resp {
    fn problem(&self, status: u16, kind: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.body["type"],
            format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"),
            "body: {}",
            self.body
        );
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

fn settings(timeout_ms: u64) -> NotifierSettings {
    NotifierSettings {
        allow_private: true,
        timeout: Duration::from_millis(timeout_ms),
        retries: 1,
        backoff: Duration::from_millis(50),
        flush_every: Duration::from_millis(100),
        ..NotifierSettings::default()
    }
}

async fn serve_at(dir: &Path, fresh: bool, notifier: NotifierSettings) -> Server {
    let store = SqliteStore::open(dir).unwrap();
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
    if fresh {
        identity
            .bootstrap("root", Some(Secret::new(PASSWORD)), tenant("alpha"))
            .await
            .unwrap();
        let system = Principal::system("test");
        identity
            .create_tenant(&system, tenant("beta"), "Beta")
            .await
            .unwrap();
        for (name, t, role) in [("alice", "alpha", "admin"), ("bob", "beta", "admin")] {
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
    }
    let ngsi: Arc<dyn store::NgsiStore> = Arc::new(store.clone());
    let contexts = ContextResolver::new(
        ngsi_ld::PreloadMap::with_test_suite(),
        None,
        Arc::clone(&ngsi),
        16,
    );
    let broker = Arc::new(Broker::new(
        ngsi,
        contexts,
        identity.clone(),
        BrokerSettings::default(),
    ));
    broker
        .enable_subscriptions(Arc::new(store.clone()), notifier)
        .await
        .unwrap();
    let state = api_server::AppState::new(identity, api_server::HttpSettings::default());
    let app = api_server::app(state, vec![ngsi_broker::module(broker.clone())]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(api_server::serve(listener, app, std::future::pending()));
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        broker,
    }
}

impl Server {
    async fn token(&self, user: &str) -> String {
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

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}/ngsi-ld/v1{path}", self.base))
            .header("authorization", format!("Bearer {token}"));
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
        let count = r
            .headers()
            .get("NGSILD-Results-Count")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = r.bytes().await.unwrap();
        Resp {
            status,
            count,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn post(&self, path: &str, t: &str, body: Value) -> Resp {
        self.call(Method::POST, path, t, &[], Some(body)).await
    }
    async fn patch(&self, path: &str, t: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, t, &[], Some(body)).await
    }
    async fn get(&self, path: &str, t: &str) -> Resp {
        self.call(Method::GET, path, t, &[], None).await
    }
    async fn delete(&self, path: &str, t: &str) -> Resp {
        self.call(Method::DELETE, path, t, &[], None).await
    }
}

/// A received notification: body, headers and when it arrived.
struct Received {
    body: Value,
    headers: HeaderMap,
    at: Instant,
}

/// A real HTTP receiver on a loopback port; every POST /notify is forwarded to the test.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send(Received {
                    body,
                    headers,
                    at: Instant::now(),
                });
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/notify"), rx)
}

/// An endpoint that accepts connections and never answers.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    format!("http://{addr}/notify")
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>, within: Duration) -> Received {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("no notification in time")
        .expect("receiver closed")
}

async fn none_within(rx: &mut mpsc::UnboundedReceiver<Received>, within: Duration) {
    if let Ok(Some(r)) = tokio::time::timeout(within, rx.recv()).await {
        panic!("unexpected notification: {}", r.body);
    }
}

fn car(id: &str, speed: i64) -> Value {
    json!({"id": id, "type": "Car", "speed": {"type": "Property", "value": speed}, "brand": {"type": "Property", "value": "x"}})
}

fn subscription(id: &str, uri: &str) -> Value {
    json!({
        "id": id,
        "type": "Subscription",
        "entities": [{"type": "Car"}],
        "notification": {"endpoint": {"uri": uri}}
    })
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn http_notifications_follow_q_attributes_format_and_receiver_info() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_at(dir.path(), true, settings(2_000)).await;
    let t = s.token("alice").await;
    let (uri, mut rx) = receiver().await;
    let mut sub = subscription("urn:ngsi-ld:Subscription:q", &uri);
    sub["q"] = json!("speed>40");
    sub["notification"]["attributes"] = json!(["speed"]);
    sub["notification"]["format"] = json!("keyValues");
    sub["notification"]["endpoint"]["receiverInfo"] = json!([{"key": "X-Auth", "value": "s3cret"}]);
    assert_eq!(
        s.post("/subscriptions", &t, sub).await.status,
        StatusCode::CREATED
    );

    assert_eq!(
        s.post("/entities", &t, car("urn:ngsi-ld:Car:1", 50))
            .await
            .status,
        StatusCode::CREATED
    );
    let n = next(&mut rx, WAIT).await;
    assert_eq!(n.body["type"], "Notification");
    assert_eq!(n.body["subscriptionId"], "urn:ngsi-ld:Subscription:q");
    assert_eq!(
        n.body["data"],
        json!([{"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 50}])
    );
    assert_eq!(n.headers["x-auth"], "s3cret");
    assert!(
        n.headers["link"]
            .to_str()
            .unwrap()
            .contains("json-ld#context")
    );
    // The alpha tenant is not the broker's default tenant: the header names it.
    assert_eq!(n.headers["ngsild-tenant"], "alpha");

    // speed 30 fails q: nothing; speed 70 passes.
    let r = s
        .patch(
            "/entities/urn:ngsi-ld:Car:1/attrs",
            &t,
            json!({"speed": {"type": "Property", "value": 30}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    none_within(&mut rx, Duration::from_millis(500)).await;
    s.patch(
        "/entities/urn:ngsi-ld:Car:1/attrs",
        &t,
        json!({"speed": {"type": "Property", "value": 70}}),
    )
    .await;
    let n = next(&mut rx, WAIT).await;
    assert_eq!(n.body["data"][0]["speed"], 70);

    // Counters: two notifications sent, none failed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = s.get("/subscriptions/urn:ngsi-ld:Subscription:q", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    let n = &r.body["notification"];
    assert_eq!(n["timesSent"], 2, "{}", r.body);
    assert!(n.get("timesFailed").is_none());
    assert_eq!(n["status"], "ok");
    assert!(n["lastSuccess"].is_string());
    assert_eq!(r.body["status"], "active");
    drop(s);
}

#[tokio::test]
async fn triggers_show_changes_pause_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_at(dir.path(), true, settings(2_000)).await;
    let t = s.token("alice").await;
    let (uri, mut rx) = receiver().await;
    let mut sub = subscription("urn:ngsi-ld:Subscription:tr", &uri);
    sub["notificationTrigger"] = json!(["attributeUpdated", "attributeDeleted", "entityDeleted"]);
    sub["notification"]["showChanges"] = json!(true);
    assert_eq!(
        s.post("/subscriptions", &t, sub).await.status,
        StatusCode::CREATED
    );
    s.post("/entities", &t, car("urn:ngsi-ld:Car:7", 10)).await;
    // Creation is not among the triggers.
    none_within(&mut rx, Duration::from_millis(400)).await;
    s.patch(
        "/entities/urn:ngsi-ld:Car:7/attrs",
        &t,
        json!({"speed": {"type": "Property", "value": 11}}),
    )
    .await;
    let n = next(&mut rx, WAIT).await;
    assert_eq!(n.body["data"][0]["speed"]["value"], 11);
    assert_eq!(n.body["data"][0]["speed"]["previousValue"], 10);
    let r = s
        .call(
            Method::DELETE,
            "/entities/urn:ngsi-ld:Car:7/attrs/brand",
            &t,
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let n = next(&mut rx, WAIT).await;
    assert_eq!(n.body["data"][0]["brand"]["value"], "urn:ngsi-ld:null");
    assert_eq!(n.body["data"][0]["brand"]["previousValue"], "x");

    // Paused: nothing is sent, status says so.
    let r = s
        .patch(
            "/subscriptions/urn:ngsi-ld:Subscription:tr",
            &t,
            json!({"isActive": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        s.get("/subscriptions/urn:ngsi-ld:Subscription:tr", &t)
            .await
            .body["status"],
        "paused"
    );
    s.patch(
        "/entities/urn:ngsi-ld:Car:7/attrs",
        &t,
        json!({"speed": {"type": "Property", "value": 12}}),
    )
    .await;
    none_within(&mut rx, Duration::from_millis(400)).await;
    s.patch(
        "/subscriptions/urn:ngsi-ld:Subscription:tr",
        &t,
        json!({"isActive": true}),
    )
    .await;
    assert_eq!(
        s.delete("/entities/urn:ngsi-ld:Car:7", &t).await.status,
        StatusCode::NO_CONTENT
    );
    let n = next(&mut rx, WAIT).await;
    assert_eq!(n.body["data"][0]["id"], "urn:ngsi-ld:Car:7");
    assert_eq!(n.body["data"][0]["speed"]["value"], "urn:ngsi-ld:null");

    assert_eq!(
        s.delete("/subscriptions/urn:ngsi-ld:Subscription:tr", &t)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    s.get("/subscriptions/urn:ngsi-ld:Subscription:tr", &t)
        .await
        .problem(404, "ResourceNotFound");
    s.post("/entities", &t, car("urn:ngsi-ld:Car:8", 1)).await;
    s.patch(
        "/entities/urn:ngsi-ld:Car:8/attrs",
        &t,
        json!({"speed": {"type": "Property", "value": 2}}),
    )
    .await;
    none_within(&mut rx, Duration::from_millis(400)).await;
}

#[tokio::test]
async fn validation_errors_are_problem_details() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_at(dir.path(), true, settings(2_000)).await;
    let t = s.token("alice").await;
    let ok = subscription("urn:ngsi-ld:Subscription:v", "http://127.0.0.1:9/notify");
    let mut cases = Vec::new();
    cases.push(json!({}));
    let mut v = ok.clone();
    v["throttling"] = json!(-5);
    cases.push(v);
    let mut v = ok.clone();
    v["timeInterval"] = json!(5);
    v["throttling"] = json!(5);
    cases.push(v);
    let mut v = ok.clone();
    v["notification"]["endpoint"]["uri"] = json!("nota uri");
    cases.push(v);
    let mut v = ok.clone();
    v["q"] = json!("speed>>1");
    cases.push(v);
    let mut v = ok.clone();
    v["expiresAt"] = json!("2001-01-01T00:00:00Z");
    cases.push(v);
    let mut v = ok.clone();
    v["notificationTrigger"] = json!(["entityExploded"]);
    cases.push(v);
    for body in cases {
        s.post("/subscriptions", &t, body)
            .await
            .problem(400, "BadRequestData");
    }
    let r = s
        .call(
            Method::POST,
            "/subscriptions",
            &t,
            &[("content-type", "application/json")],
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 400);
    assert_eq!(
        s.post("/subscriptions", &t, ok.clone()).await.status,
        StatusCode::CREATED
    );
    s.post("/subscriptions", &t, ok)
        .await
        .problem(409, "AlreadyExists");
    s.get("/subscriptions/urn:ngsi-ld:Subscription:none", &t)
        .await
        .problem(404, "ResourceNotFound");
    s.get("/subscriptions/not-a-uri", &t)
        .await
        .problem(400, "BadRequestData");
    s.patch(
        "/subscriptions/urn:ngsi-ld:Subscription:v",
        &t,
        json!({"notification": null}),
    )
    .await
    .problem(400, "BadRequestData");
    s.patch(
        "/subscriptions/urn:ngsi-ld:Subscription:v",
        &t,
        json!({"expiresAt": "2001-01-01T00:00:00Z"}),
    )
    .await
    .problem(400, "BadRequestData");
    // Listing pages with a count.
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut v = subscription(
            &format!("urn:ngsi-ld:Subscription:p{i}"),
            "http://127.0.0.1:9/n",
        );
        v["isActive"] = json!(false);
        assert_eq!(
            s.post("/subscriptions", &t, v).await.status,
            StatusCode::CREATED
        );
    }
    let r = s
        .get("/subscriptions?limit=2&offset=1&count=true", &t)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.count.as_deref(), Some("4"));
    let ids: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["urn:ngsi-ld:Subscription:p0", "urn:ngsi-ld:Subscription:p1"]
    );
}

#[tokio::test]
async fn a_tenants_subscription_never_sees_another_tenants_entities() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_at(dir.path(), true, settings(2_000)).await;
    let alice = s.token("alice").await;
    let bob = s.token("bob").await;
    let (uri, mut rx) = receiver().await;
    let sub = subscription("urn:ngsi-ld:Subscription:iso", &uri);
    assert_eq!(
        s.post("/subscriptions", &alice, sub).await.status,
        StatusCode::CREATED
    );
    // Bob (tenant beta) writes a matching entity: alice's subscription is not told.
    assert_eq!(
        s.post("/entities", &bob, car("urn:ngsi-ld:Car:b", 1))
            .await
            .status,
        StatusCode::CREATED
    );
    none_within(&mut rx, Duration::from_millis(600)).await;
    // Bob cannot see, change or delete alice's subscription, nor list it.
    s.get("/subscriptions/urn:ngsi-ld:Subscription:iso", &bob)
        .await
        .problem(404, "ResourceNotFound");
    s.patch(
        "/subscriptions/urn:ngsi-ld:Subscription:iso",
        &bob,
        json!({"isActive": false}),
    )
    .await
    .problem(404, "ResourceNotFound");
    s.delete("/subscriptions/urn:ngsi-ld:Subscription:iso", &bob)
        .await
        .problem(404, "ResourceNotFound");
    assert_eq!(s.get("/subscriptions", &bob).await.body, json!([]));
    // Bob naming alice's tenant is refused like a nonexistent tenant.
    s.call(
        Method::GET,
        "/subscriptions",
        &bob,
        &[("NGSILD-Tenant", "alpha")],
        None,
    )
    .await
    .problem(404, "NonexistentTenant");
    // Positive control: alice's own entity is notified.
    s.post("/entities", &alice, car("urn:ngsi-ld:Car:a", 1))
        .await;
    let n = next(&mut rx, WAIT).await;
    assert_eq!(n.body["data"][0]["id"], "urn:ngsi-ld:Car:a");
    none_within(&mut rx, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_dead_endpoint_does_not_delay_another_subscription() {
    let dir = tempfile::tempdir().unwrap();
    // Each attempt on the dead endpoint takes the full 3 s timeout, twice.
    let s = serve_at(dir.path(), true, settings(3_000)).await;
    let t = s.token("alice").await;
    let dead = black_hole().await;
    let (uri, mut rx) = receiver().await;
    let mut a = subscription("urn:ngsi-ld:Subscription:dead", &dead);
    a["notificationTrigger"] = json!(["attributeCreated", "attributeUpdated"]);
    assert_eq!(
        s.post("/subscriptions", &t, a).await.status,
        StatusCode::CREATED
    );
    let b = subscription("urn:ngsi-ld:Subscription:live", &uri);
    assert_eq!(
        s.post("/subscriptions", &t, b).await.status,
        StatusCode::CREATED
    );
    s.post("/entities", &t, car("urn:ngsi-ld:Car:d", 0)).await;
    next(&mut rx, WAIT).await;
    // Five more writes while the dead endpoint's queue backs up: each reaches the live
    // receiver long before a single attempt on the dead one could time out.
    for i in 1..=5 {
        let sent = Instant::now();
        let r = s
            .patch(
                "/entities/urn:ngsi-ld:Car:d/attrs",
                &t,
                json!({"speed": {"type": "Property", "value": i}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let n = next(&mut rx, WAIT).await;
        assert_eq!(n.body["data"][0]["speed"]["value"], i);
        let waited = n.at.duration_since(sent);
        assert!(
            waited < Duration::from_millis(1_500),
            "live subscription waited {waited:?} behind the dead endpoint"
        );
    }
    // The dead endpoint's failures are counted once its attempts time out.
    tokio::time::sleep(Duration::from_millis(7_000)).await;
    let r = s
        .get("/subscriptions/urn:ngsi-ld:Subscription:dead", &t)
        .await;
    let n = &r.body["notification"];
    assert!(n["timesFailed"].as_u64().unwrap() >= 1, "{}", r.body);
    assert!(n["lastFailure"].is_string());
    assert_eq!(n["status"], "failed");
    let r = s
        .get("/subscriptions/urn:ngsi-ld:Subscription:live", &t)
        .await;
    assert!(r.body["notification"].get("timesFailed").is_none());
    assert!(r.body["notification"]["timesSent"].as_u64().unwrap() >= 6);
}

#[tokio::test]
async fn throttling_holds_back_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_at(dir.path(), true, settings(2_000)).await;
    let t = s.token("alice").await;
    let (uri, mut rx) = receiver().await;
    let mut sub = subscription("urn:ngsi-ld:Subscription:thr", &uri);
    sub["throttling"] = json!(2);
    assert_eq!(
        s.post("/subscriptions", &t, sub).await.status,
        StatusCode::CREATED
    );
    s.post("/entities", &t, car("urn:ngsi-ld:Car:t", 0)).await;
    next(&mut rx, WAIT).await;
    for i in 1..=3 {
        s.patch(
            "/entities/urn:ngsi-ld:Car:t/attrs",
            &t,
            json!({"speed": {"type": "Property", "value": i}}),
        )
        .await;
    }
    none_within(&mut rx, Duration::from_millis(1_000)).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    s.patch(
        "/entities/urn:ngsi-ld:Car:t/attrs",
        &t,
        json!({"speed": {"type": "Property", "value": 9}}),
    )
    .await;
    let n = next(&mut rx, WAIT).await;
    assert_eq!(n.body["data"][0]["speed"]["value"], 9);
}

#[tokio::test]
async fn periodic_subscriptions_and_restart_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let (uri, mut rx) = receiver().await;
    {
        let s = serve_at(dir.path(), true, settings(2_000)).await;
        let t = s.token("alice").await;
        s.post("/entities", &t, car("urn:ngsi-ld:Car:p", 5)).await;
        let mut sub = subscription("urn:ngsi-ld:Subscription:per", &uri);
        sub["timeInterval"] = json!(1);
        assert_eq!(
            s.post("/subscriptions", &t, sub).await.status,
            StatusCode::CREATED
        );
        let n = next(&mut rx, WAIT).await;
        assert_eq!(n.body["data"][0]["id"], "urn:ngsi-ld:Car:p");
        // A change does not notify a periodic subscription by itself; the next tick does.
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(s.broker.clone());
    }
    // A second broker on the same store loads the subscription and keeps notifying.
    let s = serve_at(dir.path(), false, settings(2_000)).await;
    let t = s.token("alice").await;
    let r = s
        .get("/subscriptions/urn:ngsi-ld:Subscription:per", &t)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["timeInterval"], 1);
    let n = next(&mut rx, WAIT).await;
    assert_eq!(n.body["subscriptionId"], "urn:ngsi-ld:Subscription:per");
}

#[tokio::test]
async fn mqtt_notifications_reach_mosquitto() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let dir = tempfile::tempdir().unwrap();
    let s = serve_at(dir.path(), true, settings(2_000)).await;
    let t = s.token("alice").await;
    let topic = format!("citybrain/test/{}", uuid::Uuid::new_v4().simple());
    let mut options = MqttOptions::new(
        format!("sub-{}", uuid::Uuid::new_v4().simple()),
        "127.0.0.1",
        1883,
    );
    options.set_keep_alive(Duration::from_secs(10));
    let (client, mut events) = AsyncClient::new(options, 10);
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    // Wait for the subscription to be acknowledged.
    loop {
        match tokio::time::timeout(WAIT, events.poll())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Incoming(Packet::SubAck(_)) => break,
            _ => continue,
        }
    }
    let mut sub = subscription(
        "urn:ngsi-ld:Subscription:mqtt",
        &format!("mqtt://127.0.0.1:1883/{topic}"),
    );
    sub["notification"]["endpoint"]["notifierInfo"] = json!([{"key": "MQTT-QoS", "value": "1"}]);
    sub["notification"]["format"] = json!("keyValues");
    assert_eq!(
        s.post("/subscriptions", &t, sub).await.status,
        StatusCode::CREATED
    );
    s.post("/entities", &t, car("urn:ngsi-ld:Car:m", 42)).await;
    let payload = loop {
        match tokio::time::timeout(WAIT, events.poll())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Incoming(Packet::Publish(p)) => break p,
            _ => continue,
        }
    };
    assert_eq!(payload.topic, topic);
    let message: Value = serde_json::from_slice(&payload.payload).unwrap();
    assert_eq!(message["metadata"]["Content-Type"], "application/json");
    assert_eq!(
        message["body"]["subscriptionId"],
        "urn:ngsi-ld:Subscription:mqtt"
    );
    assert_eq!(message["body"]["data"][0]["speed"], 42);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = s
        .get("/subscriptions/urn:ngsi-ld:Subscription:mqtt", &t)
        .await;
    assert_eq!(r.body["notification"]["timesSent"], 1);
    assert_eq!(r.body["notification"]["status"], "ok");
}

#[tokio::test]
async fn an_inline_context_becomes_an_implicitly_created_context() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_at(dir.path(), true, settings(2_000)).await;
    let t = s.token("alice").await;
    let (uri, mut rx) = receiver().await;
    let inline =
        json!([{"Auto": "https://example.org/Auto", "tempo": "https://example.org/tempo"}]);
    let mut sub = subscription("urn:ngsi-ld:Subscription:implicit", &uri);
    sub["entities"] = json!([{"type": "Auto"}]);
    sub["notification"]["attributes"] = json!(["tempo"]);
    sub["notification"]["format"] = json!("keyValues");
    sub["@context"] = inline.clone();
    let ld = [("content-type", "application/ld+json")];
    let r = s
        .call(Method::POST, "/subscriptions", &t, &ld, Some(sub.clone()))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // The subscription names the kept context in jsonldContext ...
    let r = s
        .get("/subscriptions/urn:ngsi-ld:Subscription:implicit", &t)
        .await;
    let url = r.body["jsonldContext"].as_str().unwrap().to_owned();
    assert!(url.contains("/ngsi-ld/v1/jsonldContexts/urn:"), "{url}");
    let local_id = url.rsplit('/').next().unwrap().to_owned();
    // ... which is listed as ImplicitlyCreated and serves the inline context.
    let r = s
        .get("/jsonldContexts?kind=ImplicitlyCreated&details=true", &t)
        .await;
    let list = r.body.as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", r.body);
    assert_eq!(list[0]["kind"], "ImplicitlyCreated");
    assert_eq!(list[0]["URL"], url.as_str());
    assert_eq!(list[0]["localId"], local_id.as_str());
    let hosted = s.get("/jsonldContexts?kind=Hosted", &t).await;
    assert_eq!(hosted.body, json!([]));
    let r = s.get(&format!("/jsonldContexts/{local_id}"), &t).await;
    assert_eq!(r.body, json!({"@context": inline}));

    // Notifications are compacted with it.
    let mut auto = json!({"id": "urn:ngsi-ld:Auto:1", "type": "Auto", "tempo": {"type": "Property", "value": 5}});
    auto["@context"] = inline.clone();
    let r = s.call(Method::POST, "/entities", &t, &ld, Some(auto)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let n = next(&mut rx, WAIT).await;
    assert_eq!(
        n.body["data"],
        json!([{"id": "urn:ngsi-ld:Auto:1", "type": "Auto", "tempo": 5}])
    );
    assert!(
        n.headers["link"].to_str().unwrap().contains(&local_id),
        "{:?}",
        n.headers["link"]
    );

    // The same inline context again reuses the kept one.
    sub["id"] = json!("urn:ngsi-ld:Subscription:implicit2");
    let r = s
        .call(Method::POST, "/subscriptions", &t, &ld, Some(sub))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s
        .get("/subscriptions/urn:ngsi-ld:Subscription:implicit2", &t)
        .await;
    assert_eq!(r.body["jsonldContext"], url.as_str());

    // One context URL, even in an array, is used as it is.
    let mut plain = subscription("urn:ngsi-ld:Subscription:plain", &uri);
    plain["@context"] = json!([
        "https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/ngsi-ld-test-suite-compound.jsonld"
    ]);
    let r = s
        .call(Method::POST, "/subscriptions", &t, &ld, Some(plain))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s
        .get("/subscriptions/urn:ngsi-ld:Subscription:plain", &t)
        .await;
    assert!(r.body.get("jsonldContext").is_none(), "{}", r.body);

    // Reloading applies to cached contexts only; a plain delete removes it.
    s.call(
        Method::DELETE,
        &format!("/jsonldContexts/{local_id}?reload=true"),
        &t,
        &[],
        None,
    )
    .await
    .problem(400, "BadRequestData");
    assert_eq!(
        s.delete(&format!("/jsonldContexts/{local_id}"), &t)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    s.get(&format!("/jsonldContexts/{local_id}"), &t)
        .await
        .problem(404, "ResourceNotFound");
}

/// `notification.join` (clause 4.5.23; suite 046_23-046_30): the linking entity is notified with
/// the entities its relationships point to, after it (`flat`) or inside the relationship
/// (`inline`), in the subscription's format; `joinLevel` bounds the hops; the subscription
/// renders both members back.
#[tokio::test]
async fn notifications_carry_linked_entities_with_join() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_at(dir.path(), true, settings(2_000)).await;
    let t = s.token("alice").await;
    for e in [
        json!({"id": "urn:ngsi-ld:City:Paris", "type": "City",
               "name": {"type": "Property", "value": "Paris"},
               "isInCountry": {"type": "Relationship", "object": "urn:ngsi-ld:Country:France"}}),
        json!({"id": "urn:ngsi-ld:Country:France", "type": "Country",
               "name": {"type": "Property", "value": "France"}}),
        json!({"id": "urn:ngsi-ld:Building:1", "type": "Building",
               "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"}}),
    ] {
        assert_eq!(s.post("/entities", &t, e).await.status, StatusCode::CREATED);
    }
    let (flat_uri, mut flat) = receiver().await;
    let (inline_uri, mut inline) = receiver().await;
    let sub = |id: &str, uri: &str, extra: Value| {
        let mut n = json!({"endpoint": {"uri": uri}});
        for (k, v) in extra.as_object().unwrap() {
            n[k] = v.clone();
        }
        json!({"id": id, "type": "Subscription", "entities": [{"type": "Building"}], "notification": n})
    };
    let r = s
        .post(
            "/subscriptions",
            &t,
            sub(
                "urn:ngsi-ld:Subscription:flat",
                &flat_uri,
                json!({"join": "flat", "joinLevel": 1}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s
        .post(
            "/subscriptions",
            &t,
            sub(
                "urn:ngsi-ld:Subscription:inline",
                &inline_uri,
                json!({"join": "inline", "joinLevel": 2, "format": "keyValues"}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = s
        .get("/subscriptions/urn:ngsi-ld:Subscription:inline", &t)
        .await;
    assert_eq!(r.body["notification"]["join"], "inline");
    assert_eq!(r.body["notification"]["joinLevel"], 2);
    s.post(
        "/subscriptions",
        &t,
        sub(
            "urn:ngsi-ld:Subscription:bad",
            &flat_uri,
            json!({"join": "sideways"}),
        ),
    )
    .await
    .problem(400, "BadRequestData");

    // The setup of 046_23: a name the building does not have yet, through Update Attributes.
    let r = s
        .patch(
            "/entities/urn:ngsi-ld:Building:1/attrs",
            &t,
            json!({"name": {"type": "Property", "value": "Tour Eiffel"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    let n = next(&mut flat, WAIT).await;
    assert_eq!(
        n.body["data"],
        json!([
            {"id": "urn:ngsi-ld:Building:1", "type": "Building",
             "name": {"type": "Property", "value": "Tour Eiffel"},
             "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"}},
            {"id": "urn:ngsi-ld:City:Paris", "type": "City",
             "name": {"type": "Property", "value": "Paris"},
             "isInCountry": {"type": "Relationship", "object": "urn:ngsi-ld:Country:France"}}
        ])
    );
    let n = next(&mut inline, WAIT).await;
    assert_eq!(
        n.body["data"],
        json!([
            {"id": "urn:ngsi-ld:Building:1", "type": "Building", "name": "Tour Eiffel",
             "locatedAt": {"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": "Paris",
                           "isInCountry": {"id": "urn:ngsi-ld:Country:France", "type": "Country",
                                           "name": "France"}}}
        ])
    );
    drop(s);
}

/// A periodic (`timeInterval`) notification with `join=flat` sends every matching entity and each
/// linked entity once, even when several notified entities link to it.
#[tokio::test]
async fn periodic_notifications_join_linked_entities_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve_at(dir.path(), true, settings(2_000)).await;
    let t = s.token("alice").await;
    for e in [
        json!({"id": "urn:ngsi-ld:City:Paris", "type": "City", "name": "Paris"}),
        json!({"id": "urn:ngsi-ld:Building:1", "type": "Building",
               "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"}}),
        json!({"id": "urn:ngsi-ld:Building:2", "type": "Building",
               "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"}}),
    ] {
        assert_eq!(s.post("/entities", &t, e).await.status, StatusCode::CREATED);
    }
    let (uri, mut rx) = receiver().await;
    let sub = json!({"id": "urn:ngsi-ld:Subscription:pj", "type": "Subscription",
                     "entities": [{"type": "Building"}], "timeInterval": 1,
                     "notification": {"endpoint": {"uri": uri}, "join": "flat", "format": "keyValues"}});
    let r = s.post("/subscriptions", &t, sub).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let n = next(&mut rx, WAIT).await;
    let mut ids: Vec<&str> = n.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "urn:ngsi-ld:Building:1",
            "urn:ngsi-ld:Building:2",
            "urn:ngsi-ld:City:Paris"
        ]
    );
    drop(s);
}
