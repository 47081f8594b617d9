//! Remote site agents over real HTTP: the coordinator's router listens on a TCP port, an agent
//! (`cpn_server::remote::run_agent`, the loop `citybrain cpn agent` runs) serves a `remote` site
//! with its own local executor, authenticated by an API key of the site's owner tenant.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{Platform, sh, site, tenant};
use cpn_exec::local::LocalExecutor;
use cpn_server::remote::{AgentConfig, AgentError, run_agent};
use identity::Principal;
use serde_json::json;

struct RunningAgent {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), AgentError>>>,
}

impl RunningAgent {
    fn start(config: AgentConfig, dir: &std::path::Path) -> Self {
        let executor = LocalExecutor::new(dir).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || run_agent(&config, &executor, &flag));
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops heartbeating at once, as if the site's host vanished.
    fn kill(&mut self) -> Result<(), AgentError> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Serves the platform's router on a real port; returns `http://127.0.0.1:PORT`.
async fn serve(p: &Platform) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = p.app.clone();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

async fn api_key(p: &Platform, tenant_id: &str, role: &str) -> String {
    p.identity
        .create_api_key(
            &Principal::system("test"),
            &tenant(tenant_id),
            "site-agent",
            role,
            None,
        )
        .await
        .unwrap()
        .key
        .expose()
        .to_owned()
}

async fn wait_site(p: &Platform, id: &str, status: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let r = p.get(&format!("/cpn/v1/sites/{id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if r.body["status"] == status {
            return;
        }
        assert!(
            Instant::now() < until,
            "site {id} never became {status}: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remote_agent_runs_jobs_over_http_with_status_logs_and_cancel() {
    let p = Platform::new(|_| {}).await;
    let url = serve(&p).await;
    // A remote site is registered and down until its agent heartbeats.
    let r = p
        .register("remote", site("edge-sh", "yrd", "CN-SH", 4.0, 0.05))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "down");
    let refused = p.submit_raw(sh("true", 1.0, 1.0)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);

    let key = api_key(&p, "alpha", "operator").await;
    let mut config = AgentConfig::new(&url, "edge-sh", &key).unwrap();
    config.interval = Duration::from_millis(100);
    assert!(
        !format!("{config:?}").contains(&key),
        "the token is never printed"
    );
    let jobs_dir = p.dir.path().join("agent-jobs");
    let _agent = RunningAgent::start(config, &jobs_dir);
    wait_site(&p, "edge-sh", "up").await;

    // A job runs at the remote site: state, exit code, output and environment come back.
    let id = p
        .submit(sh(
            "echo hello from the edge; echo job=$CPN_JOB_ID",
            1.0,
            1.0,
        ))
        .await;
    let job = p
        .wait_state(&id, "succeeded", Duration::from_secs(15))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["site"], "edge-sh");
    assert_eq!(job["exit_code"], 0);
    let logs = p.get(&format!("/cpn/v1/jobs/{id}/logs")).await;
    assert!(logs.text.contains("hello from the edge"), "{}", logs.text);
    assert!(logs.text.contains(&format!("job={id}")), "{}", logs.text);
    // The job really ran in the agent's executor directory.
    assert!(std::fs::read_dir(&jobs_dir).unwrap().count() > 0);
    let kinds = p.event_kinds(&id).await;
    assert_eq!(kinds, ["submitted", "placed", "running", "succeeded"]);

    // A failing job reports its exit code.
    let id = p.submit(sh("echo oops >&2; exit 3", 1.0, 1.0)).await;
    let job = p.wait_state(&id, "failed", Duration::from_secs(15)).await;
    assert_eq!(job["exit_code"], 3, "{job}");
    let logs = p.get(&format!("/cpn/v1/jobs/{id}/logs")).await;
    assert!(logs.text.contains("oops"), "{}", logs.text);

    // Cancel a running remote job: the agent kills it and reports it cancelled.
    let id = p
        .submit(sh("echo started; sleep 60; echo never", 1.0, 60.0))
        .await;
    let until = Instant::now() + Duration::from_secs(15);
    while !p.event_kinds(&id).await.contains(&"running".to_owned()) {
        assert!(Instant::now() < until, "the job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = p
        .request(
            Method::POST,
            &format!("/cpn/v1/jobs/{id}/cancel"),
            Some(&p.root),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let job = p
        .wait_state(&id, "cancelled", Duration::from_secs(15))
        .await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert_eq!(job["site"], "edge-sh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_routes_validate_authenticate_and_scope() {
    let p = Platform::new(|_| {}).await;
    let r = p
        .register("remote", site("edge-sh", "yrd", "CN-SH", 4.0, 0.05))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let key = api_key(&p, "alpha", "operator").await;
    let beat = |body: serde_json::Value, token: Option<&str>| {
        let token = token.map(str::to_owned);
        let p = &p;
        async move {
            p.request(
                Method::POST,
                "/cpn/v1/agent/heartbeat",
                token.as_deref(),
                Some(body),
            )
            .await
        }
    };
    // A good heartbeat with the API key: the site comes up, nothing to do yet.
    let ok = beat(
        json!({"protocol": 1, "site": "edge-sh", "capacity": {"cpu_cores": 2.0, "memory_gib": 4.0}}),
        Some(&key),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["protocol"], 1);
    assert_eq!(ok.body["run"], json!([]));
    wait_site(&p, "edge-sh", "up").await;
    let view = p.get("/cpn/v1/sites/edge-sh").await;
    assert_eq!(view.body["cpu_free"], 2.0, "capacity reported by the agent");

    // Bad input: 400 with the field.
    for (body, needle) in [
        (json!({"protocol": 2, "site": "edge-sh"}), "protocol"),
        (json!({"protocol": 1, "site": ""}), "site"),
        (
            json!({"protocol": 1, "site": "edge-sh", "capacity": {"cpu_cores": -1.0, "memory_gib": 1.0}}),
            "capacity",
        ),
        (
            json!({"protocol": 1, "site": "edge-sh", "jobs": [{"job": "j", "exec_id": "1", "state": "exploded"}]}),
            "jobs[0].state",
        ),
        (
            json!({"protocol": 1, "site": "edge-sh", "jobs": [{"job": "j", "state": "running"}]}),
            "exec_id",
        ),
        (
            json!({"protocol": 1, "site": "edge-sh", "bogus": 1}),
            "bogus",
        ),
    ] {
        let r = beat(body.clone(), Some(&key)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert!(r.text.contains(needle), "{body}: {}", r.text);
    }
    // Unauthenticated, another tenant's key, a viewer, a non-remote site.
    let r = beat(json!({"protocol": 1, "site": "edge-sh"}), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let beta = api_key(&p, "beta", "operator").await;
    let r = beat(json!({"protocol": 1, "site": "edge-sh"}), Some(&beta)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let viewer = api_key(&p, "alpha", "viewer").await;
    let r = beat(json!({"protocol": 1, "site": "edge-sh"}), Some(&viewer)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    let r = p
        .register("local", site("sh-local", "yrd", "CN-SH", 1.0, 0.5))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = beat(json!({"protocol": 1, "site": "sh-local"}), Some(&key)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("only `remote` sites"), "{}", r.text);

    // Jobs are offered until reported, and a report for a job of another site is forgotten.
    let id = p.submit(sh("true", 1.0, 1.0)).await;
    let until = Instant::now() + Duration::from_secs(10);
    let offered = loop {
        let r = beat(json!({"protocol": 1, "site": "edge-sh"}), Some(&key)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        if let Some(run) = r.body["run"].as_array().and_then(|a| a.first()).cloned() {
            break run;
        }
        assert!(Instant::now() < until, "the job was never offered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(offered["job"], id.as_str());
    assert_eq!(offered["argv"], json!(["/bin/sh", "-c", "true"]));
    assert_eq!(offered["env"]["CPN_JOB_ID"], id.as_str());
    let again = beat(json!({"protocol": 1, "site": "edge-sh"}), Some(&key)).await;
    assert_eq!(
        again.body["run"][0]["job"],
        id.as_str(),
        "offered again until reported"
    );
    // The log route refuses a job that is not this site's.
    let r = p
        .request(
            Method::PUT,
            "/cpn/v1/agent/sites/edge-sh/jobs/job-unknown/log",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let done = beat(
        json!({"protocol": 1, "site": "edge-sh", "jobs": [
            {"job": id, "exec_id": "77", "state": "succeeded", "exit_code": 0},
            {"job": "job-elsewhere", "exec_id": "78", "state": "running"}
        ]}),
        Some(&key),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert_eq!(done.body["run"], json!([]));
    let forget = done.body["forget"].as_array().unwrap();
    assert!(forget.contains(&json!(id)) && forget.contains(&json!("job-elsewhere")));
    let job = p.wait_state(&id, "succeeded", Duration::from_secs(5)).await;
    assert_eq!(job["exit_code"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_remote_agent_has_its_job_retried_on_another_site() {
    let p = Platform::new(|_| {}).await;
    let url = serve(&p).await;
    let r = p
        .register("remote", site("edge-nx", "ningxia", "CN-NX", 4.0, 0.02))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let key = api_key(&p, "alpha", "operator").await;
    let mut config = AgentConfig::new(&url, "edge-nx", &key).unwrap();
    config.interval = Duration::from_millis(100);
    let mut agent = RunningAgent::start(config, &p.dir.path().join("agent-jobs"));
    wait_site(&p, "edge-nx", "up").await;

    let id = p
        .submit(sh(
            "echo attempt $CPN_JOB_ID; sleep 2; echo finished",
            1.0,
            2.0,
        ))
        .await;
    let until = Instant::now() + Duration::from_secs(15);
    while !p.event_kinds(&id).await.contains(&"running".to_owned()) {
        assert!(Instant::now() < until, "the job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let job = p.get(&format!("/cpn/v1/jobs/{id}")).await.body;
    assert_eq!(job["site"], "edge-nx");
    // The remote site vanishes; another member site joins.
    agent.kill().unwrap();
    let r = p
        .register("local", site("sh-city", "yrd", "CN-SH", 4.0, 0.09))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let job = p
        .wait_state(&id, "succeeded", Duration::from_secs(20))
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["site"], "sh-city");
    assert_eq!(job["attempts"], 2);
    wait_site(&p, "edge-nx", "down").await;
    let kinds = p.event_kinds(&id).await;
    assert!(kinds.contains(&"lost".to_owned()), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| *k == "placed").count(),
        2,
        "{kinds:?}"
    );
}
