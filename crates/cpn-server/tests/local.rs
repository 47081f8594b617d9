//! Jobs submitted through `/cpn/v1` run for real on the local executor: status, logs, exit
//! codes, cancellation, validation at submission, tenant isolation, quotas, and a killed site
//! agent whose job is retried on another site.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Platform, sh, site};
use serde_json::json;

const LONG: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_run_report_logs_and_cancel_on_the_local_executor() {
    let p = Platform::new(|_| {}).await;
    let r = p
        .register("local", site("sh-local", "yrd", "CN-SH", 4.0, 0.06))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "up");
    assert!(
        r.body["advert"]["l0"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
            && r.body["advert"]["l2"].as_u64().is_some(),
        "{}",
        r.text
    );

    let mut job = sh(
        "echo hello from $CPN_JOB_ID $GREETING; echo to-stderr >&2",
        1.0,
        5.0,
    );
    job["env"] = json!({"GREETING": "east-data-west-compute"});
    let id = p.submit(job).await;
    let done = p.wait_state(&id, "succeeded", LONG).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["exit_code"], 0);
    assert_eq!(done["site"], "sh-local");
    assert_eq!(done["attempts"], 1);
    let logs = p.get(&format!("/cpn/v1/jobs/{id}/logs")).await;
    assert_eq!(logs.status, StatusCode::OK);
    assert!(
        logs.text
            .contains(&format!("hello from {id} east-data-west-compute")),
        "{}",
        logs.text
    );
    assert!(logs.text.contains("to-stderr"), "{}", logs.text);
    assert_eq!(
        p.event_kinds(&id).await,
        ["submitted", "placed", "running", "succeeded"]
    );
    let events = p.get(&format!("/cpn/v1/jobs/{id}/events")).await;
    assert_eq!(events.body[1]["detail"]["site"], "sh-local");
    assert!(events.body[1]["detail"]["cost"]["total"].as_f64().unwrap() > 0.0);

    let id = p.submit(sh("echo failing; exit 3", 1.0, 5.0)).await;
    let failed = p.wait_state(&id, "failed", LONG).await;
    assert_eq!(
        (failed["state"].as_str(), failed["exit_code"].as_i64()),
        (Some("failed"), Some(3)),
        "{failed}"
    );

    let id = p
        .submit(sh("echo started; sleep 60; echo never", 1.0, 60.0))
        .await;
    let running = p
        .wait_for(&id, LONG, |j| {
            j["state"] == "running" && j["detail"].as_str().unwrap_or("").contains("running")
        })
        .await;
    assert_eq!(running["state"], "running", "{running}");
    let r = p
        .request(
            Method::POST,
            &format!("/cpn/v1/jobs/{id}/cancel"),
            Some(&p.root),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    let cancelled = p.wait_state(&id, "cancelled", LONG).await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    let logs = p.get(&format!("/cpn/v1/jobs/{id}/logs")).await;
    assert!(
        logs.text.contains("started") && !logs.text.contains("never"),
        "{}",
        logs.text
    );
    let kinds = p.event_kinds(&id).await;
    assert_eq!(kinds.last().unwrap(), "cancelled", "{kinds:?}");

    let list = p.get("/cpn/v1/jobs").await;
    assert_eq!(list.body.as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_jobs_are_refused_at_submission_with_the_reason() {
    let p = Platform::new(|_| {}).await;
    let r = p
        .register("local", site("sh-local", "yrd", "CN-SH", 4.0, 0.06))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let base = sh("true", 1.0, 10.0);
    let cases = [
        (json!({"resources": {"tpu": 1.0}}), "unknown resource `tpu`"),
        (
            json!({"resources": {"cpu": -2.0}}),
            "must be a finite number >= 0",
        ),
        (
            json!({"input": {"region": "yrd", "size_gb": -1.0}}),
            "must be a finite number >= 0",
        ),
        (json!({"allowed_zones": ["CN-XX"]}), "CN-XX"),
        (
            json!({"duration_s": 3600.0, "deadline_s": 60.0}),
            "impossible deadline",
        ),
        (json!({"resources": {"cpu": 64.0}}), "job-"),
        (json!({"command": []}), "`command`"),
        (json!({"deadline_s": -5.0}), "`deadline_s`"),
        (
            json!({"gpu_models": ["H100"], "resources": {"gpu": 1.0}}),
            "H100",
        ),
    ];
    for (patch, expected) in cases {
        let mut job = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            job[k] = v.clone();
        }
        let r = p.post("/cpn/v1/jobs", job.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{job} -> {}", r.text);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains(expected),
            "{job}: {detail:?} lacks {expected:?}"
        );
    }
    let r = p
        .post(
            "/cpn/v1/jobs",
            json!({"command": ["true"], "resources": {}, "duration_s": 1, "colour": "red"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("colour"), "{}", r.text);
    // Nothing refused was stored.
    assert_eq!(p.get("/cpn/v1/jobs").await.body, json!([]));

    // Bad sites are refused too.
    let r = p
        .register("kubernetes", site("k", "yrd", "CN-SH", 1.0, 0.1))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let r = p
        .register("local", site("nowhere", "atlantis", "CN-SH", 1.0, 0.1))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("atlantis"), "{}", r.text);
    let r = p
        .register("local", site("sh-local", "yrd", "CN-SH", 1.0, 0.1))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let r = p
        .register("slurm", site("hpc", "yrd", "CN-SH", 1.0, 0.1))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.text.contains("not configured"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_is_authenticated_and_tenant_scoped_and_quotas_hold() {
    let p = Platform::new(|_| {}).await;
    assert_eq!(
        p.request(Method::GET, "/cpn/v1/sites", None, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        p.request(Method::GET, "/cpn/v1/jobs", None, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // A viewer may look but not register or submit.
    let body = json!({"engine": "local", "site": site("v", "yrd", "CN-SH", 1.0, 0.1)});
    let r = p
        .request(Method::POST, "/cpn/v1/sites", Some(&p.vera), Some(body))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    p.register("local", site("sh-local", "yrd", "CN-SH", 4.0, 0.06))
        .await;
    let r = p
        .request(
            Method::POST,
            "/cpn/v1/jobs",
            Some(&p.vera),
            Some(sh("true", 1.0, 1.0)),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(
        p.request(Method::GET, "/cpn/v1/sites", Some(&p.vera), None)
            .await
            .status,
        StatusCode::OK
    );

    let id = p.submit(sh("sleep 30", 1.0, 30.0)).await;
    // Another tenant's admin sees nothing of it.
    for path in [
        format!("/cpn/v1/jobs/{id}"),
        format!("/cpn/v1/jobs/{id}/logs"),
        format!("/cpn/v1/jobs/{id}/events"),
    ] {
        let r = p.request(Method::GET, &path, Some(&p.bob), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
    }
    let r = p
        .request(
            Method::POST,
            &format!("/cpn/v1/jobs/{id}/cancel"),
            Some(&p.bob),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let r = p
        .request(Method::GET, "/cpn/v1/jobs", Some(&p.bob), None)
        .await;
    assert_eq!(r.body, json!([]));
    // Naming a tenant one is not a member of is refused.
    let mut req = axum::http::Request::builder()
        .uri("/cpn/v1/jobs")
        .header("authorization", format!("Bearer {}", p.bob))
        .header("x-tenant", "alpha");
    let _ = &mut req;
    let resp =
        tower::ServiceExt::oneshot(p.app.clone(), req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // Quotas: alpha may have one active job; the running one uses it up.
    let r = p
        .request(
            Method::PUT,
            "/cpn/v1/quota",
            Some(&p.root),
            Some(json!({"max_active_jobs": 1, "max_cpu_cores": 2.0, "max_gpus": 0.0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = p.post("/cpn/v1/jobs", sh("true", 1.0, 1.0)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.text.contains("quota exceeded"), "{}", r.text);
    let r = p
        .request(
            Method::PUT,
            "/cpn/v1/quota",
            Some(&p.vera),
            Some(json!({"max_active_jobs": 9, "max_cpu_cores": 9.0, "max_gpus": 0.0})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    p.request(
        Method::POST,
        &format!("/cpn/v1/jobs/{id}/cancel"),
        Some(&p.root),
        None,
    )
    .await;
    p.wait_state(&id, "cancelled", LONG).await;
    // Room again.
    let id2 = p.submit(sh("true", 1.0, 1.0)).await;
    assert_eq!(
        p.wait_state(&id2, "succeeded", LONG).await["state"],
        "succeeded"
    );
    let r = p.post("/cpn/v1/jobs", sh("true", 3.0, 1.0)).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "cores over quota: {}",
        r.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_site_agent_has_its_job_retried_on_another_site() {
    let p = Platform::new(|_| {}).await;
    // The western site is cheaper and greener, so jobs go there first.
    let r = p
        .register("local", site("zhongwei-sim", "ningxia", "CN-NX", 4.0, 0.03))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = p
        .register("local", site("sh-city", "yrd", "CN-SH", 4.0, 0.09))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    let id = p
        .submit(sh(
            "echo attempt on $(pwd); sleep 2; echo finished",
            1.0,
            10.0,
        ))
        .await;
    let running = p
        .wait_for(&id, LONG, |j| {
            j["state"] == "running" && j["detail"].as_str().unwrap_or("").starts_with("running")
        })
        .await;
    assert_eq!(running["site"], "zhongwei-sim", "{running}");
    assert!(p.coordinator.kill_agent("zhongwei-sim"));

    let done = p.wait_state(&id, "succeeded", LONG).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["site"], "sh-city");
    assert_eq!(done["attempts"], 2);
    let kinds = p.event_kinds(&id).await;
    assert_eq!(
        kinds,
        [
            "submitted",
            "placed",
            "running",
            "lost",
            "placed",
            "running",
            "succeeded"
        ],
    );
    let logs = p.get(&format!("/cpn/v1/jobs/{id}/logs")).await;
    assert!(
        logs.text.contains("sh-city") && logs.text.contains("finished"),
        "{}",
        logs.text
    );
    let site = p.get("/cpn/v1/sites/zhongwei-sim").await;
    assert_eq!(site.body["status"], "down", "{}", site.text);
    // New work avoids the dead site.
    let id = p.submit(sh("true", 1.0, 1.0)).await;
    let done = p.wait_state(&id, "succeeded", LONG).await;
    assert_eq!(done["site"], "sh-city");
}
