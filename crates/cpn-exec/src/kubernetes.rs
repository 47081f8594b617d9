//! Kubernetes through the `kube` client (feature `kubernetes`, API types of Kubernetes 1.35).
//!
//! Each job becomes one `batch/v1` Job in the executor's namespace: one container running the
//! job's argv in the configured image, its environment, CPU and memory as requests and limits,
//! `activeDeadlineSeconds` from the timeout, `backoffLimit: 0` (the coordinator retries, not
//! Kubernetes), `restartPolicy: Never`, and labels naming the job. Status comes from the Job's
//! `Complete`/`Failed` conditions and its pod's phase (`state::from_pod_phase`), with the
//! container's exit code; logs from the pod log endpoint; cancel deletes the Job with
//! `propagationPolicy: Background` (its pods go with it).
//!
//! The client speaks plain HTTP to `url` (a `kubectl proxy`, or an API server endpoint behind a
//! TLS-terminating proxy) with an optional bearer token read from a file. The trait is
//! synchronous; the executor owns a one-worker runtime and blocks on it, so it may be called
//! from `spawn_blocking` threads or plain threads, never from inside an async task.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use serde_json::json;

use crate::{ExecError, ExecId, ExecSpec, Executor, JobState, JobStatus, state};

/// Label carrying the coordinator's job id (or the spec's name).
pub const JOB_LABEL: &str = "cpn.citybrain.io/job";
/// Label marking objects this executor created.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "citybrain-cpn");

/// Submits jobs as `batch/v1` Jobs.
pub struct KubeExecutor {
    /// Always `Some` until dropped (taken to shut it down without blocking).
    runtime: Option<tokio::runtime::Runtime>,
    jobs: Api<Job>,
    pods: Api<Pod>,
    image: String,
    /// Jobs this executor deleted (a deleted Job that is gone reads as cancelled, not lost).
    cancelled: Mutex<BTreeSet<String>>,
    counter: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for KubeExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeExecutor")
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

fn engine(context: &str) -> impl FnOnce(kube::Error) -> ExecError + '_ {
    move |e| ExecError::Engine(format!("kubernetes {context}: {e}"))
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// A DNS-1123 label fragment of `text` (lower-case alphanumerics and `-`).
fn dns_fragment(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() { c } else { '-' }
        })
        .take(max)
        .collect();
    while out.ends_with('-') {
        out.pop();
    }
    while out.starts_with('-') {
        out.remove(0);
    }
    out
}

impl KubeExecutor {
    /// An executor submitting to the API server at `url` (`http://host:port`), in `namespace`,
    /// running containers of `image`, authenticated with the bearer token in `token_file` if any.
    pub fn new(
        url: &str,
        namespace: &str,
        image: &str,
        token_file: Option<&str>,
    ) -> Result<Self, ExecError> {
        if namespace.is_empty() || dns_fragment(namespace, 63) != namespace {
            return Err(ExecError::InvalidSpec(format!(
                "kubernetes namespace {namespace:?} is not a DNS-1123 label"
            )));
        }
        if image.is_empty() || image.contains(char::is_whitespace) {
            return Err(ExecError::InvalidSpec(format!(
                "container image {image:?} is not an image reference"
            )));
        }
        let mut config = kube::Config::new(
            url.parse()
                .map_err(|e| ExecError::InvalidSpec(format!("kubernetes URL {url:?}: {e}")))?,
        );
        config.default_namespace = namespace.to_owned();
        config.auth_info.token_file = token_file.map(str::to_owned);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cpn-kube")
            .enable_all()
            .build()
            .map_err(|source| ExecError::Io {
                context: "starting the kubernetes client runtime".into(),
                source,
            })?;
        let client = {
            let _guard = runtime.enter();
            kube::Client::try_from(config).map_err(engine("client"))?
        };
        Ok(Self {
            jobs: Api::namespaced(client.clone(), namespace),
            pods: Api::namespaced(client, namespace),
            runtime: Some(runtime),
            image: image.to_owned(),
            cancelled: Mutex::new(BTreeSet::new()),
            counter: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The `batch/v1` Job for `spec`, named `name`.
    pub fn job_manifest(&self, name: &str, spec: &ExecSpec) -> serde_json::Value {
        let label = spec
            .env
            .get("CPN_JOB_ID")
            .map_or_else(|| dns_fragment(&spec.name, 63), |id| dns_fragment(id, 63));
        let mut quantities = serde_json::Map::new();
        if let Some(m) = spec.limits.cpu_millicores {
            quantities.insert("cpu".into(), json!(format!("{m}m")));
        }
        if let Some(b) = spec.limits.memory_bytes {
            quantities.insert("memory".into(), json!(b.to_string()));
        }
        let env: Vec<_> = spec
            .env
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let mut job_spec = json!({
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {JOB_LABEL: label, MANAGED_BY.0: MANAGED_BY.1}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "job",
                        "image": self.image,
                        "command": spec.argv,
                        "env": env,
                        "resources": {"requests": quantities, "limits": quantities},
                    }],
                },
            },
        });
        if let Some(t) = spec.timeout {
            job_spec["activeDeadlineSeconds"] = json!(t.as_secs().max(1));
        }
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "labels": {JOB_LABEL: label, MANAGED_BY.0: MANAGED_BY.1},
            },
            "spec": job_spec,
        })
    }

    /// The newest pod of Job `name`, if any.
    async fn pod(&self, name: &str) -> Result<Option<Pod>, ExecError> {
        let list = self
            .pods
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
            .await
            .map_err(engine("listing pods"))?;
        Ok(list
            .items
            .into_iter()
            .max_by_key(|p| p.metadata.creation_timestamp.clone()))
    }
}

impl Drop for KubeExecutor {
    fn drop(&mut self) {
        // Dropping a runtime blocks; this may run inside another runtime's task.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl KubeExecutor {
    fn block_on<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, ExecError>>,
    ) -> Result<T, ExecError> {
        match &self.runtime {
            Some(rt) => rt.block_on(fut),
            None => Err(ExecError::Engine(
                "the kubernetes client is shut down".into(),
            )),
        }
    }
}

fn exit_code(pod: &Pod) -> Option<(i32, String)> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    let t = statuses.first()?.state.as_ref()?.terminated.as_ref()?;
    Some((t.exit_code, t.reason.clone().unwrap_or_default()))
}

impl Executor for KubeExecutor {
    fn submit(&self, spec: &ExecSpec) -> Result<ExecId, ExecError> {
        if spec.argv.first().is_none_or(String::is_empty) {
            return Err(ExecError::InvalidSpec("argv must name a program".into()));
        }
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let base = dns_fragment(spec.env.get("CPN_JOB_ID").unwrap_or(&spec.name), 40);
        let name = format!("cpn-{base}-{:x}{n:x}", nanos & 0xff_ffff);
        let job: Job = serde_json::from_value(self.job_manifest(&name, spec))
            .map_err(|e| ExecError::InvalidSpec(format!("job manifest: {e}")))?;
        self.block_on(async {
            self.jobs
                .create(&PostParams::default(), &job)
                .await
                .map_err(engine("creating the job"))
        })?;
        Ok(ExecId(name))
    }

    fn status(&self, id: &ExecId) -> Result<JobStatus, ExecError> {
        let cancelled = self.cancelled.lock().is_ok_and(|c| c.contains(&id.0));
        self.block_on(async {
            let Some(job) = self
                .jobs
                .get_opt(&id.0)
                .await
                .map_err(engine("reading the job"))?
            else {
                if cancelled {
                    return Ok(JobStatus {
                        state: JobState::Cancelled,
                        exit_code: None,
                        signal: None,
                        detail: "job deleted".into(),
                    });
                }
                return Err(ExecError::UnknownJob(id.0.clone()));
            };
            let deleting = cancelled || job.metadata.deletion_timestamp.is_some();
            let conditions: BTreeMap<String, (String, String)> = job
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.status == "True")
                .map(|c| {
                    (
                        c.type_,
                        (c.reason.unwrap_or_default(), c.message.unwrap_or_default()),
                    )
                })
                .collect();
            let pod = self.pod(&id.0).await?;
            let exit = pod.as_ref().and_then(exit_code);
            if conditions.contains_key("Complete") {
                return Ok(JobStatus {
                    state: JobState::Succeeded,
                    exit_code: Some(exit.map_or(0, |e| e.0)),
                    signal: None,
                    detail: "Complete".into(),
                });
            }
            if let Some((reason, message)) = conditions.get("Failed") {
                return Ok(JobStatus {
                    state: if deleting {
                        JobState::Cancelled
                    } else {
                        JobState::Failed
                    },
                    exit_code: exit.as_ref().map(|e| e.0),
                    signal: None,
                    detail: format!("Failed: {reason} {message}").trim().to_owned(),
                });
            }
            let phase = pod
                .as_ref()
                .and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into());
            let state = state::from_pod_phase(&phase, deleting);
            Ok(JobStatus {
                state,
                exit_code: if state.is_terminal() {
                    exit.as_ref().map(|e| e.0)
                } else {
                    None
                },
                signal: None,
                detail: format!("pod {phase}"),
            })
        })
    }

    fn logs(&self, id: &ExecId) -> Result<String, ExecError> {
        self.block_on(async {
            let Some(pod) = self.pod(&id.0).await? else {
                return Ok(String::new());
            };
            let Some(name) = pod.metadata.name else {
                return Ok(String::new());
            };
            match self.pods.logs(&name, &LogParams::default()).await {
                Ok(text) => Ok(text),
                // The container has not started yet.
                Err(kube::Error::Api(s)) if s.code == 400 || s.code == 404 => Ok(String::new()),
                Err(e) => Err(engine("reading pod logs")(e)),
            }
        })
    }

    fn cancel(&self, id: &ExecId) -> Result<(), ExecError> {
        if let Ok(mut c) = self.cancelled.lock() {
            c.insert(id.0.clone());
        }
        self.block_on(async {
            match self.jobs.delete(&id.0, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(e) if not_found(&e) => Ok(()),
                Err(e) => Err(engine("deleting the job")(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::dns_fragment;

    #[test]
    fn names_are_dns_labels() {
        assert_eq!(dns_fragment("job-ABC_1.x", 63), "job-abc-1-x");
        assert_eq!(dns_fragment("--a--", 63), "a");
        assert_eq!(dns_fragment("abcdef", 3), "abc");
    }
}
