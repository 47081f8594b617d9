//! The coordinator: site catalogue, job queue, placement and site agents.
//!
//! * **Sites** are loaded from the store at start and registered at run time; each site that is
//!   up has one **agent**, a task that owns the site's executor, sends heartbeats and reports the
//!   status and output of the jobs it runs.
//! * **Jobs** are validated against the catalogue when submitted (`cpn-core` `JobSpec::validate`),
//!   stored, then placed by the monitor loop: every tick it builds a `cpn-core` world of the sites
//!   that are up with their *free* capacity now and asks the cost-aware engine for the cheapest
//!   option (money, carbon, data moved, lateness). A job that fits nowhere now waits and is tried
//!   again on the next tick.
//! * **Failures**: a site whose agent missed heartbeats for `heartbeat_timeout` is marked down;
//!   every job running there is recorded as lost on that site and placed again elsewhere (up to
//!   `max_attempts` attempts).
//!
//! Locking: one `std` mutex over the in-memory state, never held across an `.await`; store
//! writes happen after it is released.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cpn_core::engine::{Engine, EngineConfig, Policy};
use cpn_core::job::{DataRef, JobSpec};
use cpn_core::world::{SiteConfig, World, WorldConfig};
use cpn_exec::local::LocalExecutor;
use cpn_exec::slurm::SlurmExecutor;
use cpn_exec::{ExecId, ExecSpec, Executor, JobState, JobStatus, Limits};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{
    ComputeStore, JobRecord, QuotaRecord, SiteRecord, StoreError, StoreErrorKind, TenantId,
    TenantScope, UnixMillis,
};
use tokio::sync::mpsc;

/// Engines a site may use.
pub const ENGINES: [&str; 5] = ["local", "slurm", "simulated", "remote", "kubernetes"];

/// Coordinator errors, each mapped to one HTTP status by the API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CpnError {
    /// The request is invalid (bad job, bad site); the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    /// No such site or job (in the caller's tenant).
    #[error("{0}")]
    NotFound(String),
    /// The id is taken.
    #[error("{0}")]
    Conflict(String),
    /// The tenant's quota does not allow this job now.
    #[error("{0}")]
    Quota(String),
    /// The store failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Coordinator settings. `Debug` leaves out the Slurm token.
#[derive(Clone)]
pub struct CoordinatorConfig {
    /// Where local and simulated sites keep job directories and logs.
    pub work_dir: PathBuf,
    /// How often agents send heartbeats and poll their jobs; also the monitor's tick.
    pub heartbeat_interval: Duration,
    /// A site whose agent was silent this long is down.
    pub heartbeat_timeout: Duration,
    /// Attempts per job before it fails for good (a lost site starts a new attempt).
    pub max_attempts: u32,
    /// Quota of a tenant that has none set.
    pub default_quota: QuotaRecord,
    /// The Slurm cluster `slurm` sites submit to, if any.
    pub slurm: Option<SlurmExecutor>,
    /// Further engines by name (e.g. `kubernetes`: a `cpn_exec::kubernetes::KubeExecutor`, built
    /// by the binary when compiled with that feature and configured), shared by their sites.
    pub engines: BTreeMap<String, Arc<dyn Executor + Send + Sync>>,
}

impl std::fmt::Debug for CoordinatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorConfig")
            .field("work_dir", &self.work_dir)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("heartbeat_timeout", &self.heartbeat_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("default_quota", &self.default_quota)
            .field(
                "slurm",
                &self.slurm.as_ref().map(|s| (&s.authority, &s.user)),
            )
            .field("engines", &self.engines.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl CoordinatorConfig {
    /// Defaults with `work_dir` for local job directories.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        Self {
            work_dir: work_dir.into(),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            max_attempts: 3,
            default_quota: QuotaRecord {
                max_active_jobs: 100,
                max_cpu_cores: 256.0,
                max_gpus: 64.0,
            },
            slurm: None,
            engines: BTreeMap::new(),
        }
    }
}

/// A site registration as the API receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteRegistration {
    /// `local`, `slurm`, `simulated` (runs on this machine, reported as a remote site) or
    /// `remote` (served by a `citybrain cpn agent` at the site over HTTP; down until it heartbeats).
    pub engine: String,
    /// The site: id, region, zone, coordinates, capacity, price book, carbon, PUE,
    /// availability (the `cpn-core` `SiteConfig`).
    #[schema(value_type = Object)]
    pub site: SiteConfig,
}

/// A job as the API receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// A label.
    #[serde(default)]
    pub name: String,
    /// Program and arguments (no shell unless given one).
    pub command: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Resources: `cpu`, `memory_gib`, `gpu`, `gpu:<MODEL>`.
    pub resources: BTreeMap<String, f64>,
    /// Acceptable GPU models for `gpu` (empty: any).
    #[serde(default)]
    pub gpu_models: Vec<String>,
    /// Estimated run time, seconds.
    pub duration_s: f64,
    /// Deadline, seconds after submission.
    #[serde(default)]
    pub deadline_s: Option<f64>,
    /// Priority weight (default 1).
    #[serde(default)]
    pub priority: Option<u32>,
    /// Input data location and size.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input: Option<DataRef>,
    /// Zones the job may run in (empty: anywhere).
    #[serde(default)]
    pub allowed_zones: Vec<String>,
    /// Wall-clock limit, seconds (default: 2 × duration + 60 s).
    #[serde(default)]
    pub timeout_s: Option<f64>,
}

impl JobRequest {
    fn spec(&self, id: &str, tenant: &str, now_s: i64) -> Result<JobSpec, CpnError> {
        let deadline_s = match self.deadline_s {
            None => None,
            Some(d) if d.is_finite() && d > 0.0 && d < 3.2e8 => Some(now_s + d.ceil() as i64),
            Some(d) => {
                return Err(CpnError::Invalid(format!(
                    "job {id}: field `deadline_s` = {d} must be a number of seconds in (0, 3.2e8]"
                )));
            }
        };
        Ok(JobSpec {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            submit_s: now_s,
            duration_s: self.duration_s,
            deadline_s,
            priority: self.priority.unwrap_or(1),
            resources: self.resources.clone(),
            gpu_models: self.gpu_models.clone(),
            input: self.input.clone(),
            allowed_zones: self.allowed_zones.clone(),
        })
    }

    fn check_command(&self, id: &str) -> Result<(), CpnError> {
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(CpnError::Invalid(format!(
                "job {id}: field `command` must name a program"
            )));
        }
        if let Some(t) = self.timeout_s
            && !(t.is_finite() && t > 0.0 && t <= 3.2e8)
        {
            return Err(CpnError::Invalid(format!(
                "job {id}: field `timeout_s` = {t} must be a number of seconds in (0, 3.2e8]"
            )));
        }
        if self.name.len() > 200 {
            return Err(CpnError::Invalid(format!(
                "job {id}: field `name` is longer than 200 bytes"
            )));
        }
        Ok(())
    }

    fn cores(&self) -> f64 {
        self.resources.get("cpu").copied().unwrap_or(0.0)
    }

    fn gpus(&self) -> f64 {
        self.resources
            .iter()
            .filter(|(k, _)| *k == "gpu" || k.starts_with("gpu:"))
            .map(|(_, v)| *v)
            .sum()
    }

    fn exec_spec(&self, id: &str) -> ExecSpec {
        let timeout = self
            .timeout_s
            .unwrap_or(self.duration_s * 2.0 + 60.0)
            .clamp(1.0, 3.2e8);
        let mut env = self.env.clone();
        env.insert("CPN_JOB_ID".into(), id.to_owned());
        ExecSpec {
            name: if self.name.is_empty() {
                id.to_owned()
            } else {
                self.name.clone()
            },
            argv: self.command.clone(),
            env,
            workdir: None,
            limits: Limits {
                memory_bytes: self
                    .resources
                    .get("memory_gib")
                    .filter(|g| **g > 0.0)
                    .map(|g| ((g * 1_073_741_824.0) as u64).max(256 << 20)),
                cpu_millicores: Some(self.cores())
                    .filter(|c| *c > 0.0)
                    .map(|c| (c * 1000.0).ceil() as u64),
                ..Limits::default()
            },
            timeout: Some(Duration::from_secs_f64(timeout)),
        }
    }
}

/// What the store keeps in a job's `spec`: the request and the validated `cpn-core` spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSpec {
    request: JobRequest,
    placement: JobSpec,
}

/// Messages from the coordinator to an agent.
enum AgentCmd {
    Run { job: String, spec: ExecSpec },
    Cancel { job: String },
}

enum Agent {
    /// A task in this process owning the site's executor.
    InProcess {
        tx: mpsc::UnboundedSender<AgentCmd>,
        task: tokio::task::JoinHandle<()>,
    },
    /// An agent at the site, heartbeating over HTTP (`remote` engine): commands are derived from
    /// the job table on each heartbeat, so nothing is queued here.
    Remote,
}

impl Agent {
    /// Hands a command to an in-process agent; remote agents pick work up on their heartbeat.
    fn send(&self, cmd: AgentCmd) -> bool {
        match self {
            Self::InProcess { tx, .. } => tx.send(cmd).is_ok(),
            Self::Remote => true,
        }
    }

    fn stop(self) {
        if let Self::InProcess { task, .. } = self {
            task.abort();
        }
    }
}

struct SiteRt {
    record: SiteRecord,
    config: SiteConfig,
    agent: Option<Agent>,
    last_seen: Instant,
    up: bool,
}

struct Active {
    record: JobRecord,
    request: JobRequest,
    spec: JobSpec,
    scope: TenantScope,
    cancel_requested: bool,
    /// Whether its site has been told to run its current attempt (or, for a remote agent, may
    /// fetch it). A placement is dispatched only after its `placed` event is logged, so the
    /// site's `running` report can never come first.
    dispatched: bool,
    /// Last reason the job waits, to log an event only when it changes.
    waiting: String,
}

#[derive(Default)]
struct State {
    sites: BTreeMap<String, SiteRt>,
    jobs: BTreeMap<String, Active>,
}

struct Inner {
    store: Arc<dyn ComputeStore>,
    config: CoordinatorConfig,
    base: WorldConfig,
    state: Mutex<State>,
    clock_origin: (Instant, UnixMillis),
}

/// The coordinator. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

fn now_millis() -> UnixMillis {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    UnixMillis(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
}

/// The job's view for the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    /// Job id.
    pub id: String,
    /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Site of the current or last attempt.
    pub site: Option<String>,
    /// Attempts started.
    pub attempts: u32,
    /// Exit code once ended normally.
    pub exit_code: Option<i32>,
    /// Why it waits, failed, or what the engine says.
    pub detail: String,
    /// Submission time, Unix ms.
    pub submitted_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
    /// The job as submitted.
    #[schema(value_type = Object)]
    pub request: Value,
}

impl From<&JobRecord> for JobView {
    fn from(r: &JobRecord) -> Self {
        Self {
            id: r.id.clone(),
            state: r.state.clone(),
            site: r.site.clone(),
            attempts: r.attempts,
            exit_code: r.exit_code,
            detail: r.detail.clone(),
            submitted_at: r.submitted_at.0,
            updated_at: r.updated_at.0,
            request: r.spec.get("request").cloned().unwrap_or(Value::Null),
        }
    }
}

/// A site's view for the API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteView {
    /// Site id.
    pub id: String,
    /// Owner tenant.
    pub owner: String,
    /// Engine.
    pub engine: String,
    /// `up` or `down`.
    pub status: String,
    /// Last heartbeat, Unix ms.
    pub last_heartbeat: Option<i64>,
    /// Jobs placed there now.
    pub active_jobs: usize,
    /// Free cores now.
    pub cpu_free: f64,
    /// The site's configuration.
    #[schema(value_type = Object)]
    pub site: Value,
    /// Its IETF CATS-style advert (L0/L1/L2), if the site is up.
    #[schema(value_type = Option<Object>)]
    pub advert: Option<Value>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn job_id() -> String {
    format!("job-{}", hex::encode(identity::secrets::random_bytes(8)))
}

fn terminal(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

impl Coordinator {
    /// Opens the coordinator over `store`: loads the site catalogue (starting agents for the
    /// sites this coordinator can run) and requeues jobs that were active when it last stopped.
    /// Call [`Coordinator::spawn_monitor`] to start placing jobs.
    pub async fn open(
        store: Arc<dyn ComputeStore>,
        config: CoordinatorConfig,
    ) -> Result<Self, CpnError> {
        let mut base = cpn_core::sites::east_west_config(&Default::default());
        base.sites.clear();
        let now = now_millis();
        let inner = Arc::new(Inner {
            store,
            config,
            base,
            state: Mutex::new(State::default()),
            clock_origin: (Instant::now(), now),
        });
        let this = Self { inner };
        for record in this.inner.store.sites().await? {
            let config: SiteConfig = match serde_json::from_value(record.config.clone()) {
                Ok(c) => c,
                Err(error) => {
                    tracing::warn!(site = %record.id, %error, "stored site configuration is unreadable; skipping it");
                    continue;
                }
            };
            this.add_site(record, config);
        }
        // Jobs that were pending or running when the coordinator stopped start a new attempt.
        for mut record in this.inner.store.active_jobs().await? {
            let Ok(stored) = serde_json::from_value::<StoredSpec>(record.spec.clone()) else {
                continue;
            };
            let scope = TenantScope::authorized(record.tenant.clone());
            let was_running = record.state == "running";
            record.state = "pending".into();
            record.site = None;
            record.exec_id = None;
            record.detail = "requeued after a coordinator restart".into();
            record.updated_at = now;
            this.inner.store.update_job(&scope, &record).await?;
            if was_running {
                this.event(
                    &scope,
                    &record.id,
                    "lost",
                    json!({"reason": "coordinator restart"}),
                )
                .await;
            }
            lock(&this.inner.state).jobs.insert(
                record.id.clone(),
                Active {
                    record,
                    request: stored.request,
                    spec: stored.placement,
                    scope,
                    cancel_requested: false,
                    dispatched: false,
                    waiting: String::new(),
                },
            );
        }
        Ok(this)
    }

    /// Starts the monitor loop (placement, heartbeat checks). Runs until the runtime stops.
    pub fn spawn_monitor(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.inner.config.heartbeat_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.check_heartbeats().await;
                this.place_pending().await;
            }
        })
    }

    fn now(&self) -> UnixMillis {
        let (origin, at) = self.inner.clock_origin;
        UnixMillis(at.0 + i64::try_from(origin.elapsed().as_millis()).unwrap_or(0))
    }

    async fn event(&self, scope: &TenantScope, job: &str, kind: &str, detail: Value) {
        if let Err(error) = self
            .inner
            .store
            .append_job_event(scope, job, self.now(), kind, detail)
            .await
        {
            tracing::warn!(job, kind, %error, "could not record a job event");
        }
    }

    /// Stores a job's changed record. Callers log the change's event first: whoever then reads
    /// the record's new state (a client waiting for a job to end) finds its event too.
    async fn save(&self, scope: &TenantScope, record: &JobRecord) {
        if let Err(error) = self.inner.store.update_job(scope, record).await {
            tracing::warn!(job = %record.id, %error, "could not store a job update");
        }
    }

    fn executor_for(
        &self,
        record: &SiteRecord,
    ) -> Result<Arc<dyn Executor + Send + Sync>, CpnError> {
        match record.engine.as_str() {
            "local" | "simulated" => {
                let dir = self.inner.config.work_dir.join(&record.id);
                let ex = LocalExecutor::new(&dir).map_err(|e| {
                    CpnError::Invalid(format!(
                        "site {}: cannot prepare {}: {e}",
                        record.id,
                        dir.display()
                    ))
                })?;
                Ok(Arc::new(ex))
            }
            "slurm" => match &self.inner.config.slurm {
                Some(slurm) => Ok(Arc::new(slurm.clone())),
                None => Err(CpnError::Invalid(format!(
                    "site {}: engine `slurm` is not configured on this coordinator (set [compute] slurm_url, slurm_user, slurm_token_file, slurm_workdir)",
                    record.id
                ))),
            },
            other if self.inner.config.engines.contains_key(other) => {
                Ok(Arc::clone(&self.inner.config.engines[other]))
            }
            "kubernetes" => Err(CpnError::Invalid(format!(
                "site {}: engine `kubernetes` is not configured on this coordinator (build with --features kubernetes and set [compute] kube_url, kube_namespace, kube_image)",
                record.id
            ))),
            other => Err(CpnError::Invalid(format!(
                "site {}: unknown engine `{other}` (expected one of {})",
                record.id,
                ENGINES.join(", ")
            ))),
        }
    }

    fn add_site(&self, record: SiteRecord, config: SiteConfig) {
        if record.engine == "remote" {
            // Down until its agent heartbeats.
            lock(&self.inner.state).sites.insert(
                record.id.clone(),
                SiteRt {
                    record,
                    config,
                    agent: None,
                    last_seen: Instant::now(),
                    up: false,
                },
            );
            return;
        }
        let agent = match self.executor_for(&record) {
            Ok(executor) => Some(self.start_agent(&record.id, executor)),
            Err(error) => {
                tracing::warn!(site = %record.id, %error, "no agent for this site");
                None
            }
        };
        let up = agent.is_some();
        lock(&self.inner.state).sites.insert(
            record.id.clone(),
            SiteRt {
                record,
                config,
                agent,
                last_seen: Instant::now(),
                up,
            },
        );
    }

    /// Validates a world made of the base catalogue and `sites`.
    fn world(&self, sites: Vec<SiteConfig>) -> Result<World, cpn_core::WorldError> {
        let mut config = self.inner.base.clone();
        config.sites = sites;
        World::from_config(config)
    }

    /// Registers a site owned by `scope`'s tenant and starts its agent.
    pub async fn register_site(
        &self,
        scope: &TenantScope,
        registration: SiteRegistration,
    ) -> Result<SiteView, CpnError> {
        let SiteRegistration { engine, site } = registration;
        let id = site.id.clone();
        if id.is_empty()
            || id.len() > 63
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(CpnError::Invalid(format!(
                "site id {id:?} must be 1-63 characters of [a-z0-9_-]"
            )));
        }
        if !ENGINES.contains(&engine.as_str()) {
            return Err(CpnError::Invalid(format!(
                "site {id}: unknown engine `{engine}` (expected one of {})",
                ENGINES.join(", ")
            )));
        }
        {
            let state = lock(&self.inner.state);
            if state.sites.contains_key(&id) {
                return Err(CpnError::Conflict(format!(
                    "site {id} is already registered"
                )));
            }
            let mut all: Vec<SiteConfig> = state.sites.values().map(|s| s.config.clone()).collect();
            all.push(site.clone());
            self.world(all)
                .map_err(|e| CpnError::Invalid(format!("site {id}: {e}")))?;
        }
        let remote = engine == "remote";
        let record = SiteRecord {
            id: id.clone(),
            owner: scope.tenant().clone(),
            engine,
            config: serde_json::to_value(&site).unwrap_or(Value::Null),
            status: if remote { "down" } else { "up" }.into(),
            last_heartbeat: Some(self.now()),
            registered_at: self.now(),
        };
        // Refuse engines this coordinator cannot run before anything is stored.
        let executor = if remote {
            None
        } else {
            Some(self.executor_for(&record)?)
        };
        self.inner
            .store
            .create_site(scope, record.clone())
            .await
            .map_err(|e| match e.kind() {
                StoreErrorKind::AlreadyExists => {
                    CpnError::Conflict(format!("site {id} is already registered"))
                }
                _ => CpnError::Store(e),
            })?;
        let agent = executor.map(|ex| self.start_agent(&id, ex));
        let up = agent.is_some();
        lock(&self.inner.state).sites.insert(
            id.clone(),
            SiteRt {
                record,
                config: site,
                agent,
                last_seen: Instant::now(),
                up,
            },
        );
        tracing::info!(site = %id, "registered site");
        self.site(&id)
            .ok_or_else(|| CpnError::NotFound(format!("no site {id}")))
    }

    /// The site catalogue with live figures.
    pub fn sites(&self) -> Vec<SiteView> {
        let ids: Vec<String> = lock(&self.inner.state).sites.keys().cloned().collect();
        ids.iter().filter_map(|id| self.site(id)).collect()
    }

    /// One site with live figures.
    pub fn site(&self, id: &str) -> Option<SiteView> {
        let state = lock(&self.inner.state);
        let site = state.sites.get(id)?;
        let used = usage(&state, id);
        let cpu_free = (site.config.capacity.cpu_cores - used.0).max(0.0);
        let advert = if site.up {
            let free = free_config(&site.config, used);
            self.world(vec![free.clone()]).ok().and_then(|world| {
                let live = cpn_core::cats::LiveLoad {
                    cpu_free,
                    memory_free: free.capacity.memory_gib,
                    gpu_free: free.capacity.gpus.values().sum(),
                };
                cpn_core::cats::advertise(&world, 0, &live, self.now().as_secs())
                    .and_then(|a| serde_json::to_value(a).ok())
            })
        } else {
            None
        };
        Some(SiteView {
            id: site.record.id.clone(),
            owner: site.record.owner.to_string(),
            engine: site.record.engine.clone(),
            status: if site.up { "up" } else { "down" }.into(),
            last_heartbeat: site.record.last_heartbeat.map(|t| t.0),
            active_jobs: state
                .jobs
                .values()
                .filter(|j| j.record.site.as_deref() == Some(id))
                .count(),
            cpu_free,
            site: serde_json::to_value(&site.config).unwrap_or(Value::Null),
            advert,
        })
    }

    /// Submits a job for `scope`'s tenant: validated against the catalogue and the tenant's
    /// quota, stored, then placed by the monitor.
    pub async fn submit(
        &self,
        scope: &TenantScope,
        request: JobRequest,
    ) -> Result<JobView, CpnError> {
        let id = job_id();
        request.check_command(&id)?;
        let now = self.now();
        let spec = request.spec(&id, scope.tenant().as_str(), now.as_secs())?;
        let quota = self
            .inner
            .store
            .quota(scope)
            .await?
            .unwrap_or(self.inner.config.default_quota);
        {
            let state = lock(&self.inner.state);
            let sites: Vec<SiteConfig> = state
                .sites
                .values()
                .filter(|s| s.up)
                .map(|s| s.config.clone())
                .collect();
            if sites.is_empty() {
                return Err(CpnError::Invalid(format!(
                    "job {id}: no site is up in the computing-power network"
                )));
            }
            let world = self.world(sites).map_err(|e| {
                CpnError::Invalid(format!("the site catalogue is inconsistent: {e}"))
            })?;
            spec.validate(&world)
                .map_err(|e| CpnError::Invalid(e.to_string()))?;
            let mine: Vec<&Active> = state
                .jobs
                .values()
                .filter(|j| j.scope.tenant() == scope.tenant())
                .collect();
            let count = mine.len() as u32;
            let cores: f64 = mine.iter().map(|j| j.request.cores()).sum();
            let gpus: f64 = mine.iter().map(|j| j.request.gpus()).sum();
            if count + 1 > quota.max_active_jobs {
                return Err(CpnError::Quota(format!(
                    "quota exceeded: tenant {} has {count} active jobs, limit {}",
                    scope.tenant(),
                    quota.max_active_jobs
                )));
            }
            if cores + request.cores() > quota.max_cpu_cores + 1e-9 {
                return Err(CpnError::Quota(format!(
                    "quota exceeded: tenant {} would use {} cores, limit {}",
                    scope.tenant(),
                    cores + request.cores(),
                    quota.max_cpu_cores
                )));
            }
            if gpus + request.gpus() > quota.max_gpus + 1e-9 {
                return Err(CpnError::Quota(format!(
                    "quota exceeded: tenant {} would use {} GPUs, limit {}",
                    scope.tenant(),
                    gpus + request.gpus(),
                    quota.max_gpus
                )));
            }
        }
        let stored = StoredSpec {
            request: request.clone(),
            placement: spec.clone(),
        };
        let record = JobRecord {
            id: id.clone(),
            tenant: scope.tenant().clone(),
            spec: serde_json::to_value(&stored).unwrap_or(Value::Null),
            state: "pending".into(),
            site: None,
            exec_id: None,
            attempts: 0,
            exit_code: None,
            detail: "queued".into(),
            submitted_at: now,
            updated_at: now,
        };
        self.inner.store.create_job(scope, record.clone()).await?;
        self.event(scope, &id, "submitted", json!({})).await;
        let view = JobView::from(&record);
        lock(&self.inner.state).jobs.insert(
            id,
            Active {
                record,
                request,
                spec,
                scope: scope.clone(),
                cancel_requested: false,
                dispatched: false,
                waiting: String::new(),
            },
        );
        Ok(view)
    }

    /// One job of the tenant.
    pub async fn job(&self, scope: &TenantScope, id: &str) -> Result<JobView, CpnError> {
        self.inner
            .store
            .job(scope, id)
            .await?
            .map(|r| JobView::from(&r))
            .ok_or_else(|| CpnError::NotFound(format!("no job {id}")))
    }

    /// The tenant's jobs, newest first.
    pub async fn jobs(&self, scope: &TenantScope, limit: usize) -> Result<Vec<JobView>, CpnError> {
        Ok(self
            .inner
            .store
            .jobs(scope, limit)
            .await?
            .iter()
            .map(JobView::from)
            .collect())
    }

    /// A job's output so far.
    pub async fn logs(&self, scope: &TenantScope, id: &str) -> Result<String, CpnError> {
        self.inner.store.job_log(scope, id).await.map_err(not_found)
    }

    /// A job's history.
    pub async fn events(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Vec<store::JobEventRecord>, CpnError> {
        self.inner
            .store
            .job_events(scope, id)
            .await
            .map_err(not_found)
    }

    /// The tenant's quota (the default if none was set).
    pub async fn quota(&self, scope: &TenantScope) -> Result<QuotaRecord, CpnError> {
        Ok(self
            .inner
            .store
            .quota(scope)
            .await?
            .unwrap_or(self.inner.config.default_quota))
    }

    /// Sets the tenant's quota.
    pub async fn set_quota(&self, scope: &TenantScope, quota: QuotaRecord) -> Result<(), CpnError> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(quota.max_cpu_cores) || !ok(quota.max_gpus) {
            return Err(CpnError::Invalid(
                "quota: max_cpu_cores and max_gpus must be finite numbers >= 0".into(),
            ));
        }
        Ok(self.inner.store.set_quota(scope, quota).await?)
    }

    /// Cancels a job: a waiting job ends at once; a running one is cancelled on its engine and
    /// ends when the engine confirms.
    pub async fn cancel(&self, scope: &TenantScope, id: &str) -> Result<JobView, CpnError> {
        let now = self.now();
        let outcome = {
            let mut state = lock(&self.inner.state);
            let State { sites, jobs } = &mut *state;
            match jobs.get_mut(id) {
                Some(job) if job.scope.tenant() == scope.tenant() => {
                    job.cancel_requested = true;
                    if job.record.state == "pending" {
                        let mut record = job.record.clone();
                        record.state = "cancelled".into();
                        record.detail = "cancelled before it started".into();
                        record.updated_at = now;
                        jobs.remove(id);
                        Some((record, true))
                    } else {
                        if let Some(agent) = job
                            .record
                            .site
                            .as_ref()
                            .and_then(|s| sites.get(s))
                            .and_then(|s| s.agent.as_ref())
                        {
                            let _ = agent.send(AgentCmd::Cancel { job: id.to_owned() });
                        }
                        job.record.detail = "cancel requested".into();
                        Some((job.record.clone(), false))
                    }
                }
                _ => None,
            }
        };
        match outcome {
            Some((record, done)) => {
                self.event(
                    scope,
                    id,
                    if done {
                        "cancelled"
                    } else {
                        "cancel-requested"
                    },
                    json!({}),
                )
                .await;
                self.save(scope, &record).await;
                Ok(JobView::from(&record))
            }
            None => {
                // Not active: an ended job (cancelling it changes nothing) or none at all.
                self.job(scope, id).await
            }
        }
    }

    /// Stops a site's agent abruptly, as if its host died (its local jobs die with it). The
    /// monitor notices the missing heartbeats and retries the site's jobs elsewhere.
    pub fn kill_agent(&self, site: &str) -> bool {
        let agent = lock(&self.inner.state)
            .sites
            .get_mut(site)
            .and_then(|s| s.agent.take());
        match agent {
            Some(agent) => {
                agent.stop();
                true
            }
            None => false,
        }
    }

    fn start_agent(&self, site: &str, executor: Arc<dyn Executor + Send + Sync>) -> Agent {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(agent_loop(self.clone(), site.to_owned(), executor, rx));
        Agent::InProcess { tx, task }
    }

    fn heartbeat(&self, site: &str) {
        let mut state = lock(&self.inner.state);
        if let Some(s) = state.sites.get_mut(site) {
            s.last_seen = Instant::now();
            s.record.last_heartbeat = Some(self.now());
        }
    }

    async fn check_heartbeats(&self) {
        let timeout = self.inner.config.heartbeat_timeout;
        let now = self.now();
        let mut lost_sites = Vec::new();
        let mut lost_jobs = Vec::new();
        let mut came_back = Vec::new();
        {
            let mut state = lock(&self.inner.state);
            let State { sites, jobs } = &mut *state;
            for (id, site) in sites.iter_mut() {
                let silent = site.last_seen.elapsed() > timeout || site.agent.is_none();
                if site.up && silent {
                    site.up = false;
                    if let Some(agent) = site.agent.take() {
                        agent.stop();
                    }
                    lost_sites.push((id.clone(), site.record.last_heartbeat));
                    for job in jobs.values_mut() {
                        if job.record.site.as_deref() == Some(id.as_str()) {
                            job.record.state = "pending".into();
                            job.record.detail = format!("site {id} lost; waiting to be retried");
                            job.record.exec_id = None;
                            job.record.updated_at = now;
                            job.waiting.clear();
                            lost_jobs.push((job.scope.clone(), job.record.clone(), id.clone()));
                        }
                    }
                } else if !site.up && !silent {
                    site.up = true;
                    came_back.push((id.clone(), site.record.last_heartbeat));
                }
            }
        }
        for (id, heartbeat) in lost_sites {
            tracing::warn!(site = %id, "site agent missed its heartbeats; site is down");
            if let Err(error) = self
                .inner
                .store
                .set_site_status(&id, "down", heartbeat)
                .await
            {
                tracing::warn!(site = %id, %error, "could not record the site as down");
            }
        }
        for (id, heartbeat) in came_back {
            let _ = self.inner.store.set_site_status(&id, "up", heartbeat).await;
        }
        for (scope, record, site) in lost_jobs {
            self.event(
                &scope,
                &record.id,
                "lost",
                json!({"site": site, "attempt": record.attempts}),
            )
            .await;
            self.save(&scope, &record).await;
        }
    }

    /// Places every waiting job it can, highest priority and oldest first.
    async fn place_pending(&self) {
        let now = self.now();
        let mut placed = Vec::new();
        let mut waiting = Vec::new();
        let mut failed = Vec::new();
        {
            let mut state = lock(&self.inner.state);
            let mut order: Vec<(u32, i64, String)> = state
                .jobs
                .values()
                .filter(|j| j.record.state == "pending")
                .map(|j| {
                    (
                        j.spec.priority,
                        j.record.submitted_at.0,
                        j.record.id.clone(),
                    )
                })
                .collect();
            order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            for (_, _, id) in order {
                let attempts = state.jobs.get(&id).map_or(0, |j| j.record.attempts);
                if state.jobs.get(&id).is_some_and(|j| j.cancel_requested) {
                    if let Some(job) = state.jobs.remove(&id) {
                        let mut record = job.record;
                        record.state = "cancelled".into();
                        record.detail = "cancelled".into();
                        record.updated_at = now;
                        failed.push((job.scope, record));
                    }
                    continue;
                }
                if attempts >= self.inner.config.max_attempts {
                    if let Some(job) = state.jobs.remove(&id) {
                        let mut record = job.record;
                        record.state = "failed".into();
                        record.detail = format!("gave up after {attempts} attempts on lost sites");
                        record.updated_at = now;
                        failed.push((job.scope, record));
                    }
                    continue;
                }
                match decide(&self.inner.base, &state, &id, now.as_secs()) {
                    Ok((site, cost)) => {
                        let Some(job) = state.jobs.get_mut(&id) else {
                            continue;
                        };
                        job.record.state = "running".into();
                        job.record.site = Some(site.clone());
                        job.record.exec_id = None;
                        job.record.attempts += 1;
                        job.record.detail = format!("dispatched to {site}");
                        job.record.updated_at = now;
                        job.waiting.clear();
                        // Dispatched below, once the placement is logged.
                        job.dispatched = false;
                        placed.push((job.scope.clone(), job.record.clone(), site, cost));
                    }
                    Err(reason) => {
                        if let Some(job) = state.jobs.get_mut(&id)
                            && job.waiting != reason
                        {
                            job.waiting = reason.clone();
                            job.record.detail = reason.clone();
                            job.record.updated_at = now;
                            waiting.push((job.scope.clone(), job.record.clone(), reason));
                        }
                    }
                }
            }
        }
        for (scope, record, site, cost) in placed {
            tracing::info!(job = %record.id, tenant = %scope.tenant(), %site, attempt = record.attempts, "placed job");
            self.event(
                &scope,
                &record.id,
                "placed",
                json!({"site": site, "attempt": record.attempts, "cost": cost}),
            )
            .await;
            self.save(&scope, &record).await;
            self.dispatch(&scope, &record.id, &site, record.attempts)
                .await;
        }
        for (scope, record, reason) in waiting {
            self.event(&scope, &record.id, "waiting", json!({"reason": reason}))
                .await;
            self.save(&scope, &record).await;
        }
        for (scope, record) in failed {
            self.event(
                &scope,
                &record.id,
                &record.state,
                json!({"reason": record.detail}),
            )
            .await;
            self.save(&scope, &record).await;
        }
    }

    /// Tells `site` to run attempt `attempt` of job `id`, now that its placement is logged: a
    /// local agent gets the job; a remote one may fetch it at its next heartbeat. A job
    /// cancelled meanwhile ends here without starting; one retried or ended meanwhile is left
    /// alone.
    async fn dispatch(&self, scope: &TenantScope, id: &str, site: &str, attempt: u32) {
        let now = self.now();
        let changed = {
            let mut state = lock(&self.inner.state);
            let State { sites, jobs } = &mut *state;
            let Some(job) = jobs.get_mut(id) else {
                return;
            };
            if job.dispatched
                || job.record.state != "running"
                || job.record.site.as_deref() != Some(site)
                || job.record.attempts != attempt
            {
                return;
            }
            if job.cancel_requested {
                let mut record = job.record.clone();
                record.state = "cancelled".into();
                record.detail = "cancelled before it started".into();
                record.updated_at = now;
                jobs.remove(id);
                Some((record, Some("cancelled")))
            } else {
                job.dispatched = true;
                // A remote agent fetches it at its next heartbeat (`send` is then true).
                let sent = sites
                    .get(site)
                    .and_then(|s| s.agent.as_ref())
                    .is_some_and(|a| {
                        a.send(AgentCmd::Run {
                            job: id.to_owned(),
                            spec: job.request.exec_spec(id),
                        })
                    });
                if sent {
                    None
                } else {
                    // The agent is gone; the heartbeat check will requeue it.
                    job.record.detail = format!("site {site} did not take the job");
                    job.record.updated_at = now;
                    Some((job.record.clone(), None))
                }
            }
        };
        if let Some((record, event)) = changed {
            if let Some(event) = event {
                self.event(scope, id, event, json!({})).await;
            }
            self.save(scope, &record).await;
        }
    }

    /// An agent reports that it started (or could not start) a job.
    async fn report_started(&self, site: &str, job: &str, result: Result<ExecId, String>) {
        let now = self.now();
        let update = {
            let mut state = lock(&self.inner.state);
            match state.jobs.get_mut(job) {
                Some(j) if j.record.site.as_deref() == Some(site) => {
                    match &result {
                        Ok(exec) => {
                            j.record.exec_id = Some(exec.0.clone());
                            j.record.detail = format!("running on {site}");
                        }
                        Err(error) => {
                            j.record.state = "failed".into();
                            j.record.detail = format!("{site} could not start it: {error}");
                        }
                    }
                    j.record.updated_at = now;
                    let record = j.record.clone();
                    let scope = j.scope.clone();
                    if result.is_err() {
                        state.jobs.remove(job);
                    }
                    Some((scope, record))
                }
                _ => None,
            }
        };
        if let Some((scope, record)) = update {
            let detail = match &result {
                Ok(exec) => json!({"site": site, "exec_id": exec.0}),
                Err(error) => json!({"site": site, "error": error}),
            };
            self.event(
                &scope,
                job,
                if result.is_ok() { "running" } else { "failed" },
                detail,
            )
            .await;
            self.save(&scope, &record).await;
        }
    }

    /// An agent reports a job's status and output. Returns whether the agent should keep
    /// watching it.
    async fn report_status(
        &self,
        site: &str,
        job: &str,
        status: &JobStatus,
        log: Option<String>,
    ) -> bool {
        enum Outcome {
            Stale,
            Unchanged(TenantScope),
            Changed(TenantScope, Box<JobRecord>),
        }
        let now = self.now();
        let outcome = {
            let mut state = lock(&self.inner.state);
            match state.jobs.get_mut(job) {
                // Unknown, or retried elsewhere meanwhile: this attempt is stale.
                None => Outcome::Stale,
                Some(j) if j.record.site.as_deref() != Some(site) => Outcome::Stale,
                Some(j) => {
                    let new_state = match status.state {
                        JobState::Pending | JobState::Running => "running",
                        JobState::Succeeded => "succeeded",
                        JobState::Failed => "failed",
                        JobState::Cancelled => "cancelled",
                        JobState::Lost => "pending",
                    };
                    let changed = j.record.state != new_state
                        || j.record.exit_code != status.exit_code
                        || status.state == JobState::Lost;
                    if changed {
                        j.record.state = new_state.into();
                        j.record.exit_code = status.exit_code;
                        j.record.detail = if status.state == JobState::Lost {
                            j.record.exec_id = None;
                            format!(
                                "{site} lost the job ({}); waiting to be retried",
                                status.detail
                            )
                        } else {
                            status.detail.clone()
                        };
                        j.record.updated_at = now;
                        let out = Outcome::Changed(j.scope.clone(), Box::new(j.record.clone()));
                        if terminal(new_state) {
                            state.jobs.remove(job);
                        }
                        out
                    } else {
                        Outcome::Unchanged(j.scope.clone())
                    }
                }
            }
        };
        match outcome {
            Outcome::Stale => false,
            Outcome::Unchanged(scope) => {
                if let Some(text) = &log {
                    let _ = self.inner.store.set_job_log(&scope, job, text).await;
                }
                true
            }
            Outcome::Changed(scope, record) => {
                if let Some(text) = &log {
                    let _ = self.inner.store.set_job_log(&scope, job, text).await;
                }
                if status.state == JobState::Lost {
                    self.event(
                        &scope,
                        job,
                        "lost",
                        json!({"site": site, "detail": status.detail}),
                    )
                    .await;
                    self.save(&scope, &record).await;
                    return false;
                }
                let ended = terminal(&record.state);
                if ended {
                    self.event(
                        &scope,
                        job,
                        &record.state,
                        json!({"site": site, "exit_code": status.exit_code, "signal": status.signal, "detail": status.detail}),
                    )
                    .await;
                }
                self.save(&scope, &record).await;
                !ended
            }
        }
    }
}

fn not_found(e: StoreError) -> CpnError {
    if e.kind() == StoreErrorKind::NotFound {
        CpnError::NotFound(e.message().to_owned())
    } else {
        CpnError::Store(e)
    }
}

/// (cores, GiB, GPUs per model) used by the jobs placed at `site`.
fn usage(state: &State, site: &str) -> (f64, f64, BTreeMap<String, f64>) {
    let mut used = (0.0, 0.0, BTreeMap::new());
    for j in state.jobs.values() {
        if j.record.site.as_deref() == Some(site) && j.record.state == "running" {
            used.0 += j.request.cores();
            used.1 += j
                .request
                .resources
                .get("memory_gib")
                .copied()
                .unwrap_or(0.0);
            for (k, v) in &j.request.resources {
                if let Some(model) = k.strip_prefix("gpu:") {
                    *used.2.entry(model.to_owned()).or_insert(0.0) += v;
                } else if k == "gpu" {
                    // Charged to the first acceptable model the site has (a coarse view).
                    let model = j.request.gpu_models.first().cloned().unwrap_or_default();
                    *used.2.entry(model).or_insert(0.0) += v;
                }
            }
        }
    }
    used
}

fn free_config(config: &SiteConfig, used: (f64, f64, BTreeMap<String, f64>)) -> SiteConfig {
    let mut free = config.clone();
    free.capacity.cpu_cores = (free.capacity.cpu_cores - used.0).max(0.0);
    free.capacity.memory_gib = (free.capacity.memory_gib - used.1).max(0.0);
    let unmodelled: f64 = used
        .2
        .iter()
        .filter(|(m, _)| !config.capacity.gpus.contains_key(*m))
        .map(|(_, v)| v)
        .sum();
    let mut unmodelled = unmodelled;
    for (model, cap) in free.capacity.gpus.iter_mut() {
        let mut left = *cap - used.2.get(model).copied().unwrap_or(0.0);
        let take = unmodelled.min(left.max(0.0));
        left -= take;
        unmodelled -= take;
        *cap = left.max(0.0);
    }
    free
}

/// Chooses a site for job `id` now: a `cpn-core` world of the sites that are up, each with its
/// free capacity, and the cost-aware engine's online decision. Returns the site and the cost
/// breakdown, or why the job waits.
fn decide(
    base: &WorldConfig,
    state: &State,
    id: &str,
    now_s: i64,
) -> Result<(String, Value), String> {
    let job = state.jobs.get(id).ok_or("job vanished")?;
    let mut config = base.clone();
    config.sites = state
        .sites
        .iter()
        .filter(|(_, s)| s.up && s.agent.is_some())
        .map(|(sid, s)| free_config(&s.config, usage(state, sid)))
        .collect();
    if config.sites.is_empty() {
        return Err("waiting: no site is up".into());
    }
    let world = World::from_config(config).map_err(|e| format!("waiting: catalogue: {e}"))?;
    let mut spec = job.spec.clone();
    spec.submit_s = now_s;
    let validated = match spec.validate(&world) {
        Ok(v) => v,
        Err(cpn_core::JobError::ImpossibleDeadline { .. }) => {
            // It waited past the point of meeting its deadline: run it late rather than never.
            spec.deadline_s = None;
            spec.validate(&world)
                .map_err(|e| format!("waiting for capacity: {e}"))?
        }
        Err(e) => return Err(format!("waiting for capacity: {e}")),
    };
    let horizon = now_s + validated.duration_s.saturating_mul(4) + 7 * 86_400;
    let mut engine = Engine::new(
        &world,
        EngineConfig::covering(now_s, horizon, 1024, Policy::CostAware),
    );
    let (_, placement) = engine
        .place(validated, now_s)
        .map_err(|e| format!("waiting for capacity: {e}"))?;
    let site = world
        .sites
        .get(placement.site)
        .map(|s| s.id.clone())
        .ok_or("engine chose an unknown site")?;
    let c = placement.cost;
    Ok((
        site,
        json!({
            "total": c.total,
            "compute_cny": c.fixed.compute_cny,
            "transfer_cny": c.fixed.transfer_cny,
            "carbon_kg": c.fixed.carbon_kg,
            "bytes_moved": c.fixed.bytes_moved,
            "late_s": c.late_s,
        }),
    ))
}

fn tail(text: String) -> String {
    crate::remote::log_tail(text)
}

/// A site agent: heartbeats, runs what the coordinator sends, reports status and output.
async fn agent_loop(
    coordinator: Coordinator,
    site: String,
    executor: Arc<dyn Executor + Send + Sync>,
    mut rx: mpsc::UnboundedReceiver<AgentCmd>,
) {
    let mut tick = tokio::time::interval(coordinator.inner.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running: BTreeMap<String, ExecId> = BTreeMap::new();
    let mut last_log: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                coordinator.heartbeat(&site);
                let ids: Vec<(String, ExecId)> = running.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                let mut done = BTreeSet::new();
                for (job, exec) in ids {
                    let ex = Arc::clone(&executor);
                    let polled = tokio::task::spawn_blocking(move || {
                        let status = ex.status(&exec);
                        let logs = ex.logs(&exec).ok();
                        (status, logs)
                    })
                    .await;
                    let Ok((status, logs)) = polled else { continue };
                    let status = match status {
                        Ok(s) => s,
                        Err(cpn_exec::ExecError::UnknownJob(_)) => JobStatus {
                            state: JobState::Lost,
                            exit_code: None,
                            signal: None,
                            detail: "the engine no longer knows the job".into(),
                        },
                        Err(error) => {
                            tracing::debug!(%site, %job, %error, "status poll failed");
                            continue;
                        }
                    };
                    let logs = logs.map(tail);
                    let fresh = logs.filter(|l| last_log.get(&job) != Some(&l.len()) || status.state.is_terminal());
                    if let Some(l) = &fresh {
                        last_log.insert(job.clone(), l.len());
                    }
                    if !coordinator.report_status(&site, &job, &status, fresh).await {
                        done.insert(job);
                    }
                }
                for job in done {
                    running.remove(&job);
                    last_log.remove(&job);
                }
            }
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    AgentCmd::Run { job, spec } => {
                        let ex = Arc::clone(&executor);
                        let submitted = tokio::task::spawn_blocking(move || ex.submit(&spec)).await;
                        let result = match submitted {
                            Ok(Ok(exec)) => Ok(exec),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        if let Ok(exec) = &result {
                            running.insert(job.clone(), exec.clone());
                        }
                        coordinator.report_started(&site, &job, result).await;
                    }
                    AgentCmd::Cancel { job } => {
                        if let Some(exec) = running.get(&job).cloned() {
                            let ex = Arc::clone(&executor);
                            let cancelled = tokio::task::spawn_blocking(move || ex.cancel(&exec)).await;
                            if let Ok(Err(error)) = cancelled {
                                tracing::warn!(%site, %job, %error, "cancel failed");
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Builds the `[compute]`-style local site: this machine, in `region`/`zone`.
pub fn local_site(
    id: &str,
    region: &str,
    zone: &str,
    cpu_cores: f64,
    memory_gib: f64,
) -> SiteConfig {
    let (lat, lon) = cpn_core::sites::EAST_WEST_REGIONS
        .iter()
        .find(|r| r.0 == region)
        .map_or((31.2304, 121.4737), |r| (r.1, r.2));
    SiteConfig {
        id: id.to_owned(),
        region: region.to_owned(),
        zone: zone.to_owned(),
        lat,
        lon,
        capacity: cpn_core::world::CapacityConfig {
            cpu_cores,
            memory_gib,
            gpus: BTreeMap::new(),
        },
        price: cpn_core::world::PriceConfig {
            cpu_core_hour: 0.06,
            memory_gib_hour: 0.006,
            gpu_hour: BTreeMap::new(),
        },
        electricity_cny_per_kwh: 0.8,
        grid_kg_per_kwh: 0.5617,
        green_share: 0.1,
        pue: 1.4,
        availability: 0.99,
    }
}

/// Registers `site` under `owner` unless a site with its id exists (idempotent start-up).
pub async fn ensure_site(
    coordinator: &Coordinator,
    owner: &TenantId,
    engine: &str,
    site: SiteConfig,
) -> Result<(), CpnError> {
    if coordinator.site(&site.id).is_some() {
        return Ok(());
    }
    coordinator
        .register_site(
            &TenantScope::authorized(owner.clone()),
            SiteRegistration {
                engine: engine.to_owned(),
                site,
            },
        )
        .await
        .map(|_| ())
}

/// Remote site agents (`remote` engine): the coordinator's side of the HTTP protocol in
/// [`crate::remote`].
impl Coordinator {
    /// Checks that `site` exists in `scope`'s tenant and is served by a remote agent.
    fn remote_site<'a>(
        state: &'a mut State,
        scope: &TenantScope,
        site: &str,
    ) -> Result<&'a mut SiteRt, CpnError> {
        let rt = state
            .sites
            .get_mut(site)
            .filter(|s| s.record.owner == *scope.tenant())
            .ok_or_else(|| {
                CpnError::NotFound(format!("no site {site} in tenant {}", scope.tenant()))
            })?;
        if rt.record.engine != "remote" {
            return Err(CpnError::Invalid(format!(
                "site {site} uses engine `{}` inside the coordinator; only `remote` sites take agents",
                rt.record.engine
            )));
        }
        Ok(rt)
    }

    /// A remote agent's heartbeat: marks the site alive (and up again after an outage), takes
    /// its capacity and job reports, and answers with the work for it.
    pub async fn agent_heartbeat(
        &self,
        scope: &TenantScope,
        beat: crate::remote::AgentHeartbeat,
    ) -> Result<crate::remote::AgentReply, CpnError> {
        beat.validate()?;
        let site = beat.site.clone();
        let now = self.now();
        // Which reported jobs the coordinator has not seen started yet.
        let unstarted: BTreeSet<String> = {
            let mut state = lock(&self.inner.state);
            let rt = Self::remote_site(&mut state, scope, &site)?;
            rt.last_seen = Instant::now();
            rt.record.last_heartbeat = Some(now);
            if rt.agent.is_none() {
                rt.agent = Some(Agent::Remote);
            }
            if let Some(c) = beat.capacity {
                rt.config.capacity.cpu_cores = c.cpu_cores;
                rt.config.capacity.memory_gib = c.memory_gib;
            }
            beat.jobs
                .iter()
                .filter(|r| {
                    state.jobs.get(&r.job).is_some_and(|j| {
                        j.record.site.as_deref() == Some(site.as_str())
                            && j.record.exec_id.is_none()
                    })
                })
                .map(|r| r.job.clone())
                .collect()
        };
        let mut reply = crate::remote::AgentReply {
            protocol: crate::remote::PROTOCOL,
            interval_ms: u64::try_from(self.inner.config.heartbeat_interval.as_millis())
                .unwrap_or(1000),
            ..Default::default()
        };
        let mut reported = BTreeSet::new();
        for r in beat.jobs {
            reported.insert(r.job.clone());
            if r.state == "start-failed" {
                if unstarted.contains(&r.job) {
                    self.report_started(&site, &r.job, Err(r.detail.clone()))
                        .await;
                }
                reply.forget.push(r.job);
                continue;
            }
            if unstarted.contains(&r.job)
                && let Some(exec) = &r.exec_id
            {
                self.report_started(&site, &r.job, Ok(ExecId(exec.clone())))
                    .await;
            }
            let status = JobStatus {
                state: match r.state.as_str() {
                    "pending" => JobState::Pending,
                    "running" => JobState::Running,
                    "succeeded" => JobState::Succeeded,
                    "failed" => JobState::Failed,
                    "cancelled" => JobState::Cancelled,
                    _ => JobState::Lost,
                },
                exit_code: r.exit_code,
                signal: r.signal,
                detail: r.detail,
            };
            if !self.report_status(&site, &r.job, &status, None).await {
                reply.forget.push(r.job);
            }
        }
        let state = lock(&self.inner.state);
        for (id, j) in &state.jobs {
            if j.record.site.as_deref() != Some(site.as_str()) || j.record.state != "running" {
                continue;
            }
            if j.cancel_requested {
                reply.cancel.push(id.clone());
            }
            if j.dispatched && j.record.exec_id.is_none() && !reported.contains(id) {
                reply.run.push(crate::remote::RunJob::from_spec(
                    id,
                    &j.request.exec_spec(id),
                ));
            }
        }
        Ok(reply)
    }

    /// A remote agent's output snapshot of a job it runs.
    pub async fn agent_log(
        &self,
        scope: &TenantScope,
        site: &str,
        job: &str,
        text: String,
    ) -> Result<(), CpnError> {
        let job_scope = {
            let mut state = lock(&self.inner.state);
            Self::remote_site(&mut state, scope, site)?;
            state
                .jobs
                .get(job)
                .filter(|j| j.record.site.as_deref() == Some(site))
                .map(|j| j.scope.clone())
                .ok_or_else(|| {
                    CpnError::NotFound(format!("job {job} is not running on site {site}"))
                })?
        };
        self.inner
            .store
            .set_job_log(&job_scope, job, &tail(text))
            .await?;
        Ok(())
    }
}
