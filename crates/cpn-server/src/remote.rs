//! Remote site agents: the wire protocol between a member site's agent and the coordinator, and
//! the agent loop itself ([`run_agent`]).
//!
//! A member site registered with engine `remote` has no agent inside the coordinator. Instead a
//! `citybrain cpn agent` process at the site runs jobs on its own executor (local processes,
//! Slurm, Kubernetes) and talks to the coordinator over HTTP, authenticated as the site's owner
//! tenant (an API key with `compute` write, sent as a bearer token):
//!
//! * `POST /cpn/v1/agent/heartbeat` ([`AgentHeartbeat`] → [`AgentReply`]): the agent says it is
//!   alive, reports its capacity and the status of every job it runs (with the engine's job id, or
//!   `start-failed`), and receives the jobs assigned to it that it has not reported yet, the jobs
//!   to cancel, and the jobs to forget (ended, or retried elsewhere while it was away).
//!   Assignments are idempotent: a job is offered on every heartbeat until the agent reports it,
//!   so a lost reply loses nothing.
//! * `PUT /cpn/v1/agent/sites/{site}/jobs/{job}/log` (text): the latest output snapshot (the
//!   last MiB), sent before the heartbeat that reports the job's state.
//!
//! Every message carries `protocol` ([`PROTOCOL`]); the coordinator refuses other versions and any
//! malformed field with 400 and the reason. A remote agent that stops heartbeating is treated like
//! an in-process one: after `heartbeat_timeout` its site is down and its jobs are retried elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cpn_exec::{ExecError, ExecId, ExecSpec, Executor, JobState, Limits};
use serde::{Deserialize, Serialize};

/// Version of the agent wire protocol.
pub const PROTOCOL: u32 = 1;

/// Largest log snapshot an agent sends (the tail is kept).
pub const MAX_LOG_BYTES: usize = 1 << 20;

/// Most job reports in one heartbeat.
pub const MAX_REPORTS: usize = 10_000;

/// The site's capacity as the agent sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacityReport {
    /// Cores the site offers to the network.
    pub cpu_cores: f64,
    /// Memory, GiB.
    pub memory_gib: f64,
}

/// The status of one job an agent runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobReport {
    /// The coordinator's job id.
    pub job: String,
    /// The engine's id for it (absent when it could not be started).
    #[serde(default)]
    pub exec_id: Option<String>,
    /// `pending`, `running`, `succeeded`, `failed`, `cancelled`, `lost`, or `start-failed`.
    pub state: String,
    /// Exit code once the job ended normally.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Signal that ended it.
    #[serde(default)]
    pub signal: Option<i32>,
    /// Engine detail (raw state, reason, or why it could not start).
    #[serde(default)]
    pub detail: String,
}

/// Agent → coordinator, every heartbeat interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentHeartbeat {
    /// Wire protocol version ([`PROTOCOL`]).
    pub protocol: u32,
    /// The site this agent serves (registered with engine `remote`, owned by the caller's tenant).
    pub site: String,
    /// Capacity now (optional; replaces the registered cores and memory).
    #[serde(default)]
    pub capacity: Option<CapacityReport>,
    /// Every job the agent runs or has just ended.
    #[serde(default)]
    pub jobs: Vec<JobReport>,
}

/// A job for the agent to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunJob {
    /// The coordinator's job id.
    pub job: String,
    /// Label.
    pub name: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment (includes `CPN_JOB_ID`).
    pub env: BTreeMap<String, String>,
    /// Address-space limit, bytes.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// CPU-time limit, seconds.
    #[serde(default)]
    pub cpu_seconds: Option<u64>,
    /// CPU share, thousandths of a core (container engines).
    #[serde(default)]
    pub cpu_millicores: Option<u64>,
    /// Wall-clock limit, seconds.
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

/// Coordinator → agent, the answer to a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentReply {
    /// Wire protocol version ([`PROTOCOL`]).
    pub protocol: u32,
    /// Heartbeat interval the coordinator expects, ms.
    pub interval_ms: u64,
    /// Jobs assigned to the site and not reported yet: start them (ignore ones already running).
    pub run: Vec<RunJob>,
    /// Jobs to cancel.
    pub cancel: Vec<String>,
    /// Jobs to stop watching (ended, or no longer this site's): cancel them if still running.
    pub forget: Vec<String>,
}

const REPORT_STATES: [&str; 7] = [
    "pending",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "lost",
    "start-failed",
];

/// Why a wire message is invalid.
fn invalid(msg: String) -> crate::CpnError {
    crate::CpnError::Invalid(msg)
}

impl AgentHeartbeat {
    /// Checks the version and every field; the error names the field.
    pub fn validate(&self) -> Result<(), crate::CpnError> {
        if self.protocol != PROTOCOL {
            return Err(invalid(format!(
                "field `protocol` = {}: this coordinator speaks agent protocol {PROTOCOL}",
                self.protocol
            )));
        }
        if self.site.is_empty() || self.site.len() > 63 {
            return Err(invalid("field `site` must name a site".into()));
        }
        if let Some(c) = self.capacity {
            let ok = |v: f64| v.is_finite() && (0.0..=1e7).contains(&v);
            if !ok(c.cpu_cores) || !ok(c.memory_gib) {
                return Err(invalid(format!(
                    "field `capacity`: cpu_cores = {} and memory_gib = {} must be finite numbers in [0, 1e7]",
                    c.cpu_cores, c.memory_gib
                )));
            }
        }
        if self.jobs.len() > MAX_REPORTS {
            return Err(invalid(format!(
                "field `jobs`: {} reports, at most {MAX_REPORTS}",
                self.jobs.len()
            )));
        }
        let mut seen = BTreeSet::new();
        for (i, r) in self.jobs.iter().enumerate() {
            if r.job.is_empty() || r.job.len() > 100 {
                return Err(invalid(format!("field `jobs[{i}].job` must be a job id")));
            }
            if !seen.insert(&r.job) {
                return Err(invalid(format!(
                    "field `jobs[{i}].job`: job {} is reported twice",
                    r.job
                )));
            }
            if !REPORT_STATES.contains(&r.state.as_str()) {
                return Err(invalid(format!(
                    "field `jobs[{i}].state` = {:?}: expected one of {}",
                    r.state,
                    REPORT_STATES.join(", ")
                )));
            }
            if r.state != "start-failed"
                && r.exec_id
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e.len() > 200)
            {
                return Err(invalid(format!(
                    "field `jobs[{i}].exec_id` is required (1-200 bytes) unless the state is start-failed"
                )));
            }
            if r.detail.len() > 4096 {
                return Err(invalid(format!(
                    "field `jobs[{i}].detail` is longer than 4096 bytes"
                )));
            }
        }
        Ok(())
    }
}

impl RunJob {
    /// The executor's job spec, or why it is unusable.
    pub fn exec_spec(&self) -> Result<ExecSpec, String> {
        if self.argv.first().is_none_or(String::is_empty) {
            return Err("`argv` must name a program".into());
        }
        let timeout = match self.timeout_s {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 && t <= 3.2e8 => Some(Duration::from_secs_f64(t)),
            Some(t) => return Err(format!("`timeout_s` = {t} is out of range")),
        };
        Ok(ExecSpec {
            name: self.name.clone(),
            argv: self.argv.clone(),
            env: self.env.clone(),
            workdir: None,
            limits: Limits {
                memory_bytes: self.memory_bytes,
                cpu_seconds: self.cpu_seconds,
                cpu_millicores: self.cpu_millicores,
                ..Limits::default()
            },
            timeout,
        })
    }

    /// The wire form of a spec the coordinator built.
    pub(crate) fn from_spec(job: &str, spec: &ExecSpec) -> Self {
        Self {
            job: job.to_owned(),
            name: spec.name.clone(),
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            memory_bytes: spec.limits.memory_bytes,
            cpu_seconds: spec.limits.cpu_seconds,
            cpu_millicores: spec.limits.cpu_millicores,
            timeout_s: spec.timeout.map(|t| t.as_secs_f64()),
        }
    }
}

/// Keeps the last [`MAX_LOG_BYTES`] of `text` (on a character boundary).
pub fn log_tail(mut text: String) -> String {
    if text.len() > MAX_LOG_BYTES {
        let mut cut = text.len() - MAX_LOG_BYTES;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text.drain(..cut);
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The agent.

/// Agent errors that end the loop (a coordinator that is unreachable is retried, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The configuration is unusable.
    #[error("agent configuration: {0}")]
    Config(String),
    /// The coordinator refused the agent (bad token, no such site, wrong protocol).
    #[error("the coordinator refused the agent ({status}): {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The problem details it sent.
        body: String,
    },
}

/// Where and as whom an agent connects. `Debug` leaves out the token.
#[derive(Clone)]
pub struct AgentConfig {
    /// `host:port` of the coordinator (from an `http://` URL, see [`AgentConfig::new`]).
    authority: String,
    /// Path prefix before `/cpn/v1` (empty or e.g. `/api`).
    prefix: String,
    /// The site this agent serves.
    pub site: String,
    /// The tenant to act in (`X-Tenant`), if not the key's default.
    pub tenant: Option<String>,
    token: String,
    /// Heartbeat interval until the coordinator says otherwise.
    pub interval: Duration,
    /// Capacity reported with every heartbeat.
    pub capacity: Option<CapacityReport>,
    /// Timeout of each HTTP request.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("authority", &self.authority)
            .field("prefix", &self.prefix)
            .field("site", &self.site)
            .field("tenant", &self.tenant)
            .field("interval", &self.interval)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// An agent for `site` talking to the coordinator at `url` (`http://host:port[/prefix]`)
    /// with the bearer `token` (an API key of the site's owner tenant).
    pub fn new(url: &str, site: &str, token: &str) -> Result<Self, AgentError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            AgentError::Config(format!(
                "coordinator URL {url:?} must start with http:// (terminate TLS in a local proxy)"
            ))
        })?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() || !authority.contains(':') {
            return Err(AgentError::Config(format!(
                "coordinator URL {url:?} must name host:port"
            )));
        }
        let token = token.trim();
        if token.is_empty() || token.contains(['\r', '\n', ' ']) {
            return Err(AgentError::Config(
                "the token must be one non-empty line".into(),
            ));
        }
        if site.is_empty() {
            return Err(AgentError::Config("the site id is empty".into()));
        }
        Ok(Self {
            authority: authority.to_owned(),
            prefix: prefix.to_owned(),
            site: site.to_owned(),
            tenant: None,
            token: token.to_owned(),
            interval: Duration::from_secs(1),
            capacity: None,
            request_timeout: Duration::from_secs(10),
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<cpn_exec::http::Response, ExecError> {
        let auth = format!("Bearer {}", self.token);
        let mut headers = vec![("Authorization", auth.as_str())];
        if let Some(t) = &self.tenant {
            headers.push(("X-Tenant", t.as_str()));
        }
        cpn_exec::http::request(
            &self.authority,
            method,
            &format!("{}{path}", self.prefix),
            &headers,
            Some(body),
            self.request_timeout,
        )
    }
}

/// Registers the agent's site with engine `remote` (needs `compute` admin in the owner tenant).
/// A site that already exists is left as it is. Returns whether it was created.
pub fn register_site(
    config: &AgentConfig,
    site: &cpn_core::world::SiteConfig,
) -> Result<bool, AgentError> {
    if site.id != config.site {
        return Err(AgentError::Config(format!(
            "the site file describes {}, the agent serves {}",
            site.id, config.site
        )));
    }
    let body = serde_json::to_vec(&serde_json::json!({"engine": "remote", "site": site}))
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let r = config
        .call("POST", "/cpn/v1/sites", &body)
        .map_err(|e| AgentError::Config(format!("registering the site: {e}")))?;
    match r.status {
        201 => Ok(true),
        409 => Ok(false),
        status => Err(AgentError::Refused {
            status,
            body: String::from_utf8_lossy(&r.body).into_owned(),
        }),
    }
}

struct Held {
    exec: ExecId,
    state: JobState,
    cancelled: bool,
    log_len: Option<usize>,
}

/// Runs a site agent until `stop` is set: heartbeats to the coordinator, starts the jobs it
/// assigns on `executor`, reports their status, uploads their output, cancels on request.
/// Network errors and coordinator 5xx answers are logged and retried on the next beat; a refusal
/// (4xx: bad token, unknown site, wrong protocol) ends the loop with [`AgentError::Refused`].
/// Stopping does not touch running jobs (as if the site vanished).
pub fn run_agent(
    config: &AgentConfig,
    executor: &dyn Executor,
    stop: &AtomicBool,
) -> Result<(), AgentError> {
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut start_failed: Vec<JobReport> = Vec::new();
    let mut interval = config.interval;
    while !stop.load(Ordering::SeqCst) {
        let began = Instant::now();
        // Poll jobs, upload fresh output first (so the final output is in before the final state).
        let mut reports = std::mem::take(&mut start_failed);
        for (job, h) in held.iter_mut() {
            let status = match executor.status(&h.exec) {
                Ok(s) => s,
                Err(ExecError::UnknownJob(_)) => cpn_exec::JobStatus {
                    state: JobState::Lost,
                    exit_code: None,
                    signal: None,
                    detail: "the engine no longer knows the job".into(),
                },
                Err(error) => {
                    tracing::debug!(%job, %error, "status poll failed");
                    continue;
                }
            };
            h.state = status.state;
            if let Ok(text) = executor.logs(&h.exec) {
                let text = log_tail(text);
                if h.log_len != Some(text.len()) || status.state.is_terminal() {
                    let path = format!("/cpn/v1/agent/sites/{}/jobs/{job}/log", config.site);
                    match config.call("PUT", &path, text.as_bytes()) {
                        Ok(r) if r.status < 300 => h.log_len = Some(text.len()),
                        Ok(r) => tracing::debug!(%job, status = r.status, "log upload refused"),
                        Err(error) => tracing::debug!(%job, %error, "log upload failed"),
                    }
                }
            }
            let mut detail = status.detail;
            let mut cut = detail.len().min(4000);
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            reports.push(JobReport {
                job: job.clone(),
                exec_id: Some(h.exec.0.clone()),
                state: status.state.as_str().to_owned(),
                exit_code: status.exit_code,
                signal: status.signal,
                detail,
            });
        }
        let beat = AgentHeartbeat {
            protocol: PROTOCOL,
            site: config.site.clone(),
            capacity: config.capacity,
            jobs: reports.clone(),
        };
        let body = serde_json::to_vec(&beat).unwrap_or_default();
        match config.call("POST", "/cpn/v1/agent/heartbeat", &body) {
            Ok(r) if r.status == 200 => match serde_json::from_slice::<AgentReply>(&r.body) {
                Ok(reply) => {
                    if reply.interval_ms > 0 {
                        interval = Duration::from_millis(reply.interval_ms.clamp(50, 60_000));
                    }
                    apply(executor, &reply, &mut held, &mut start_failed);
                }
                Err(error) => tracing::warn!(%error, "unreadable heartbeat reply"),
            },
            Ok(r) if (400..500).contains(&r.status) => {
                return Err(AgentError::Refused {
                    status: r.status,
                    body: String::from_utf8_lossy(&r.body).into_owned(),
                });
            }
            Ok(r) => {
                // Reports not taken: send the start failures again.
                start_failed.extend(reports.into_iter().filter(|r| r.state == "start-failed"));
                tracing::warn!(
                    status = r.status,
                    "coordinator answered the heartbeat with an error"
                );
            }
            Err(error) => {
                start_failed.extend(reports.into_iter().filter(|r| r.state == "start-failed"));
                tracing::warn!(%error, "coordinator unreachable");
            }
        }
        let until = began + interval;
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now >= until {
                break;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(25)));
        }
    }
    Ok(())
}

fn apply(
    executor: &dyn Executor,
    reply: &AgentReply,
    held: &mut BTreeMap<String, Held>,
    start_failed: &mut Vec<JobReport>,
) {
    for job in &reply.forget {
        if let Some(h) = held.remove(job)
            && !h.state.is_terminal()
            && let Err(error) = executor.cancel(&h.exec)
        {
            tracing::warn!(%job, %error, "could not stop a job the coordinator gave up on");
        }
    }
    for job in &reply.cancel {
        if let Some(h) = held.get_mut(job)
            && !h.cancelled
        {
            h.cancelled = true;
            if let Err(error) = executor.cancel(&h.exec) {
                tracing::warn!(%job, %error, "cancel failed");
            }
        }
    }
    for run in &reply.run {
        if held.contains_key(&run.job) || start_failed.iter().any(|r| r.job == run.job) {
            continue;
        }
        let started = run
            .exec_spec()
            .map_err(|e| format!("invalid job: {e}"))
            .and_then(|spec| executor.submit(&spec).map_err(|e| e.to_string()));
        match started {
            Ok(exec) => {
                tracing::info!(job = %run.job, exec = %exec.0, "started job");
                held.insert(
                    run.job.clone(),
                    Held {
                        exec,
                        state: JobState::Pending,
                        cancelled: false,
                        log_len: None,
                    },
                );
            }
            Err(detail) => start_failed.push(JobReport {
                job: run.job.clone(),
                exec_id: None,
                state: "start-failed".into(),
                exit_code: None,
                signal: None,
                detail,
            }),
        }
    }
}
