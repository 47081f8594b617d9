//! The Kubernetes executor against a fake API server: an axum app implementing the endpoints the
//! executor calls (create/get/delete `batch/v1` Jobs, list pods by the job-name label, pod logs)
//! with the Kubernetes API's JSON shapes. The test drives the job through pod phases and asserts
//! both the executor's answers and the requests the server received.

#![cfg(feature = "kubernetes")]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cpn_exec::kubernetes::KubeExecutor;
use cpn_exec::{ExecError, ExecId, ExecSpec, Executor, JobState, Limits};
use serde_json::{Value, json};

/// One pod's scripted state.
#[derive(Clone, Default)]
struct PodScript {
    phase: String,
    exit_code: Option<i32>,
    log: String,
    /// `Complete` or `Failed` condition on the Job.
    condition: Option<(&'static str, &'static str)>,
}

#[derive(Default)]
struct Fake {
    jobs: BTreeMap<String, Value>,
    pods: BTreeMap<String, PodScript>,
    requests: Vec<(String, String, Value)>,
}

type Shared = Arc<Mutex<Fake>>;

fn status_404(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("jobs.batch \"{name}\" not found"), "reason": "NotFound",
            "details": {"name": name, "group": "batch", "kind": "jobs"}, "code": 404
        })),
    )
        .into_response()
}

fn record(fake: &Shared, method: &Method, uri: &Uri, body: &Bytes) {
    let body = serde_json::from_slice(body).unwrap_or(Value::Null);
    fake.lock()
        .unwrap()
        .requests
        .push((method.to_string(), uri.to_string(), body));
}

async fn jobs(
    State(fake): State<Shared>,
    Path(ns): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    record(&fake, &method, &uri, &body);
    let mut job: Value = serde_json::from_slice(&body).unwrap();
    let name = job["metadata"]["name"].as_str().unwrap().to_owned();
    job["metadata"]["namespace"] = json!(ns);
    job["metadata"]["uid"] = json!("5f1d3a0e-8c1b-4f7e-9a55-1c2b3d4e5f60");
    job["metadata"]["resourceVersion"] = json!("1001");
    job["metadata"]["creationTimestamp"] = json!("2026-11-27T16:00:00Z");
    job["status"] = json!({});
    let mut f = fake.lock().unwrap();
    f.jobs.insert(name.clone(), job.clone());
    f.pods.insert(
        name,
        PodScript {
            phase: "Pending".into(),
            ..PodScript::default()
        },
    );
    (StatusCode::CREATED, axum::Json(job)).into_response()
}

async fn job(
    State(fake): State<Shared>,
    Path((_ns, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    record(&fake, &method, &uri, &body);
    let mut f = fake.lock().unwrap();
    if method == Method::DELETE {
        return match f.jobs.remove(&name) {
            Some(_) => axum::Json(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": "batch", "kind": "jobs", "uid": "5f1d3a0e-8c1b-4f7e-9a55-1c2b3d4e5f60"}
            }))
            .into_response(),
            None => status_404(&name),
        };
    }
    let Some(mut job) = f.jobs.get(&name).cloned() else {
        return status_404(&name);
    };
    let pod = f.pods.get(&name).cloned().unwrap_or_default();
    let mut status = json!({"startTime": "2026-11-27T16:00:01Z"});
    match (pod.phase.as_str(), pod.condition) {
        (_, Some((kind, reason))) => {
            status["conditions"] = json!([{
                "type": kind, "status": "True", "reason": reason,
                "lastProbeTime": "2026-11-27T16:00:09Z", "lastTransitionTime": "2026-11-27T16:00:09Z"
            }]);
            status[if kind == "Complete" {
                "succeeded"
            } else {
                "failed"
            }] = json!(1);
        }
        ("Running", None) => status["active"] = json!(1),
        _ => {}
    }
    job["status"] = status;
    axum::Json(job).into_response()
}

async fn pods(State(fake): State<Shared>, RawQuery(query): RawQuery, uri: Uri) -> Response {
    record(&fake, &Method::GET, &uri, &Bytes::new());
    let query = query.unwrap_or_default();
    let f = fake.lock().unwrap();
    let items: Vec<Value> = f
        .pods
        .iter()
        .filter(|(job, _)| query.contains(&format!("job-name%3D{job}")))
        .map(|(job, pod)| {
            let state = match pod.exit_code {
                Some(code) => json!({"terminated": {"exitCode": code, "reason": if code == 0 {"Completed"} else {"Error"},
                    "startedAt": "2026-11-27T16:00:02Z", "finishedAt": "2026-11-27T16:00:08Z", "containerID": "containerd://ab12"}}),
                None if pod.phase == "Running" => json!({"running": {"startedAt": "2026-11-27T16:00:02Z"}}),
                None => json!({"waiting": {"reason": "ContainerCreating"}}),
            };
            json!({
                "metadata": {"name": format!("{job}-x7k2p"), "namespace": "cpn",
                    "labels": {"batch.kubernetes.io/job-name": job, "job-name": job},
                    "creationTimestamp": "2026-11-27T16:00:01Z"},
                "spec": {"containers": [{"name": "job", "image": "busybox:1.37"}], "restartPolicy": "Never"},
                "status": {"phase": pod.phase, "containerStatuses": [{
                    "name": "job", "ready": false, "restartCount": 0, "image": "busybox:1.37",
                    "imageID": "docker.io/library/busybox@sha256:00", "state": state}]}
            })
        })
        .collect();
    axum::Json(json!({
        "kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": "2002"}, "items": items
    }))
    .into_response()
}

async fn pod_log(
    State(fake): State<Shared>,
    Path((_ns, pod)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    record(&fake, &Method::GET, &uri, &Bytes::new());
    let f = fake.lock().unwrap();
    let job = pod.trim_end_matches("-x7k2p");
    match f.pods.get(job) {
        Some(p) if p.phase != "Pending" => p.log.clone().into_response(),
        _ => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("container \"job\" in pod \"{pod}\" is waiting to start: ContainerCreating"),
                "reason": "BadRequest", "code": 400})),
        )
            .into_response(),
    }
}

/// Starts the fake API server on its own runtime thread; returns its URL and state.
fn fake_api_server() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs",
            axum::routing::post(jobs),
        )
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
            get(job).delete(job),
        )
        .route("/api/v1/namespaces/{ns}/pods", get(pods))
        .route("/api/v1/namespaces/{ns}/pods/{pod}/log", get(pod_log))
        .with_state(Arc::clone(&fake));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    (format!("http://{addr}"), fake)
}

fn spec() -> ExecSpec {
    ExecSpec {
        name: "train".into(),
        argv: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
        env: BTreeMap::from([
            ("CPN_JOB_ID".into(), "job-00aa11bb".into()),
            ("MODE".into(), "fast".into()),
        ]),
        workdir: None,
        limits: Limits {
            memory_bytes: Some(512 << 20),
            cpu_millicores: Some(1500),
            ..Limits::default()
        },
        timeout: Some(Duration::from_secs(120)),
    }
}

fn set(fake: &Shared, name: &str, f: impl FnOnce(&mut PodScript)) {
    f(fake.lock().unwrap().pods.get_mut(name).unwrap());
}

#[test]
fn a_job_becomes_a_batch_v1_job_and_follows_its_pod() {
    let (url, fake) = fake_api_server();
    let ex = KubeExecutor::new(&url, "cpn", "busybox:1.37", None).unwrap();
    let id = ex.submit(&spec()).unwrap();
    assert!(id.0.starts_with("cpn-job-00aa11bb-"), "{}", id.0);

    // The manifest the API server received.
    let (method, path, body) = fake.lock().unwrap().requests[0].clone();
    assert_eq!(method, "POST");
    assert!(
        path.starts_with("/apis/batch/v1/namespaces/cpn/jobs"),
        "{path}"
    );
    assert_eq!(body["apiVersion"], "batch/v1");
    assert_eq!(body["kind"], "Job");
    assert_eq!(body["metadata"]["name"], id.0.as_str());
    assert_eq!(
        body["metadata"]["labels"]["cpn.citybrain.io/job"],
        "job-00aa11bb"
    );
    assert_eq!(body["spec"]["backoffLimit"], 0);
    assert_eq!(body["spec"]["activeDeadlineSeconds"], 120);
    let pod = &body["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "busybox:1.37");
    assert_eq!(c["command"], json!(["/bin/sh", "-c", "echo hi"]));
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "MODE", "value": "fast"}))
    );
    assert_eq!(c["resources"]["requests"]["cpu"], "1500m");
    assert_eq!(c["resources"]["limits"]["memory"], "536870912");

    // Pending (container creating: no logs yet) → Running → Complete.
    assert_eq!(ex.status(&id).unwrap().state, JobState::Pending);
    assert_eq!(ex.logs(&id).unwrap(), "");
    set(&fake, &id.0, |p| {
        p.phase = "Running".into();
        p.log = "hi\n".into();
    });
    assert_eq!(ex.status(&id).unwrap().state, JobState::Running);
    assert_eq!(ex.logs(&id).unwrap(), "hi\n");
    set(&fake, &id.0, |p| {
        p.phase = "Succeeded".into();
        p.exit_code = Some(0);
        p.condition = Some(("Complete", "CompletionsReached"));
    });
    let st = ex.status(&id).unwrap();
    assert_eq!((st.state, st.exit_code), (JobState::Succeeded, Some(0)));
    let requests = fake.lock().unwrap().requests.clone();
    assert!(requests.iter().any(|(m, p, _)| m == "GET"
        && p.starts_with("/api/v1/namespaces/cpn/pods?")
        && p.contains(&format!(
            "labelSelector=batch.kubernetes.io%2Fjob-name%3D{}",
            id.0
        ))));
    assert!(requests.iter().any(|(_, p, _)| {
        p.starts_with(&format!("/api/v1/namespaces/cpn/pods/{}-x7k2p/log", id.0))
    }));
}

#[test]
fn failures_exit_codes_cancellation_and_unknown_jobs() {
    let (url, fake) = fake_api_server();
    let ex = KubeExecutor::new(&url, "cpn", "busybox:1.37", None).unwrap();
    // A failing container: Failed with its exit code.
    let failing = ex.submit(&spec()).unwrap();
    set(&fake, &failing.0, |p| {
        p.phase = "Failed".into();
        p.exit_code = Some(3);
        p.condition = Some(("Failed", "BackoffLimitExceeded"));
    });
    let st = ex.status(&failing).unwrap();
    assert_eq!(
        (st.state, st.exit_code),
        (JobState::Failed, Some(3)),
        "{st:?}"
    );
    assert!(st.detail.contains("BackoffLimitExceeded"), "{st:?}");

    // Cancel: DELETE with propagationPolicy Background; the job then reads as cancelled.
    let running = ex.submit(&spec()).unwrap();
    set(&fake, &running.0, |p| p.phase = "Running".into());
    assert_eq!(ex.status(&running).unwrap().state, JobState::Running);
    ex.cancel(&running).unwrap();
    let delete = fake
        .lock()
        .unwrap()
        .requests
        .iter()
        .find(|(m, _, _)| m == "DELETE")
        .cloned()
        .unwrap();
    assert!(
        delete
            .1
            .starts_with(&format!("/apis/batch/v1/namespaces/cpn/jobs/{}", running.0)),
        "{delete:?}"
    );
    assert_eq!(delete.2["propagationPolicy"], "Background");
    assert_eq!(ex.status(&running).unwrap().state, JobState::Cancelled);
    ex.cancel(&running).unwrap();

    // A job the cluster never had.
    match ex.status(&ExecId("cpn-nobody".into())) {
        Err(ExecError::UnknownJob(name)) => assert_eq!(name, "cpn-nobody"),
        other => panic!("{other:?}"),
    }
    // Bad configuration is refused up front.
    assert!(KubeExecutor::new(&url, "Bad_NS", "busybox", None).is_err());
    assert!(KubeExecutor::new(&url, "cpn", "", None).is_err());
    assert!(matches!(
        ex.submit(&ExecSpec::default()),
        Err(ExecError::InvalidSpec(_))
    ));
}
