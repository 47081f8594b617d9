//! Records and trait of the computing-power network (issue 7): member sites, jobs, job
//! events, job logs and per-tenant quotas.
//!
//! The store holds data only. What a site's capacity or a job's resources mean, and where a
//! job runs, is decided by `cpn-core`; here site configurations and job specifications are
//! opaque JSON values written and read back unchanged.
//!
//! Sites are registered by a member tenant (their owner) but form one alliance-wide catalogue:
//! every tenant's jobs may run on any site. Reading the catalogue and recording heartbeats are
//! therefore not tenant-scoped ([`ComputeStore::sites`], [`ComputeStore::set_site_status`]);
//! registering and removing a site is, and only the owner's scope can remove it. Jobs, events,
//! logs and quotas are tenant data: every method takes a [`TenantScope`], except
//! [`ComputeStore::active_jobs`], which the coordinator (a trusted system component) uses to
//! resume work after a restart.

use crate::{StoreResult, TenantId, TenantScope, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A member site (a data centre or cluster) in the alliance's catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRecord {
    /// Identifier, unique across the alliance.
    pub id: String,
    /// The tenant that registered it.
    pub owner: TenantId,
    /// Engine kind (`local`, `slurm`, `simulated`).
    pub engine: String,
    /// The site's configuration (a `cpn-core` `SiteConfig` as JSON).
    pub config: serde_json::Value,
    /// `up` or `down` (as last decided by the coordinator).
    pub status: String,
    /// Last heartbeat from the site's agent, if any.
    pub last_heartbeat: Option<UnixMillis>,
    /// When it was registered.
    pub registered_at: UnixMillis,
}

/// A submitted job and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Identifier, unique across the platform.
    pub id: String,
    /// The tenant that submitted it.
    pub tenant: TenantId,
    /// The job as submitted (JSON), including what to run.
    pub spec: serde_json::Value,
    /// `pending`, `running`, `succeeded`, `failed`, `cancelled` (`lost` only per attempt).
    pub state: String,
    /// Site of the current (or last) attempt.
    pub site: Option<String>,
    /// Engine job id of the current (or last) attempt.
    pub exec_id: Option<String>,
    /// Attempts started so far (a retry after a lost site starts a new one).
    pub attempts: u32,
    /// Exit code, once it ended normally.
    pub exit_code: Option<i32>,
    /// Human-readable detail (reason for waiting, failure, engine state).
    pub detail: String,
    /// When it was submitted.
    pub submitted_at: UnixMillis,
    /// When it last changed.
    pub updated_at: UnixMillis,
}

/// One entry of a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEventRecord {
    /// Position in the job's history, from 1.
    pub seq: i64,
    /// The job.
    pub job_id: String,
    /// When it happened.
    pub at: UnixMillis,
    /// What happened (`submitted`, `placed`, `running`, `lost`, `retried`, `succeeded`, ...).
    pub kind: String,
    /// Details (site, cost, exit code, ...).
    pub detail: serde_json::Value,
}

/// A tenant's limits on what it may have queued or running at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuotaRecord {
    /// Jobs not yet ended (pending or running).
    pub max_active_jobs: u32,
    /// Cores summed over active jobs.
    pub max_cpu_cores: f64,
    /// GPUs summed over active jobs.
    pub max_gpus: f64,
}

/// Storage of the computing-power network.
#[async_trait]
pub trait ComputeStore: Send + Sync {
    /// Registers a site owned by the scope's tenant. `AlreadyExists` if the id is taken
    /// (by any tenant). The record's `owner` is replaced by the scope's tenant.
    async fn create_site(&self, scope: &TenantScope, site: SiteRecord) -> StoreResult<()>;
    /// Removes a site. `NotFound` if it does not exist or belongs to another tenant.
    async fn delete_site(&self, scope: &TenantScope, id: &str) -> StoreResult<()>;
    /// One site of the catalogue.
    async fn site(&self, id: &str) -> StoreResult<Option<SiteRecord>>;
    /// The whole catalogue, by id.
    async fn sites(&self) -> StoreResult<Vec<SiteRecord>>;
    /// Records a site's status and last heartbeat (coordinator only). `NotFound` if missing.
    async fn set_site_status(
        &self,
        id: &str,
        status: &str,
        last_heartbeat: Option<UnixMillis>,
    ) -> StoreResult<()>;

    /// Stores a new job of the scope's tenant (`tenant` is replaced by the scope's).
    /// `AlreadyExists` if the id is taken.
    async fn create_job(&self, scope: &TenantScope, job: JobRecord) -> StoreResult<()>;
    /// Replaces a job's mutable fields (state, site, exec id, attempts, exit code, detail,
    /// updated_at). `NotFound` if missing or another tenant's.
    async fn update_job(&self, scope: &TenantScope, job: &JobRecord) -> StoreResult<()>;
    /// One job of the scope's tenant.
    async fn job(&self, scope: &TenantScope, id: &str) -> StoreResult<Option<JobRecord>>;
    /// The tenant's jobs, newest first, at most `limit`.
    async fn jobs(&self, scope: &TenantScope, limit: usize) -> StoreResult<Vec<JobRecord>>;
    /// Jobs of every tenant that have not ended (`pending` or `running`), oldest first.
    /// For the coordinator only (resuming after a restart).
    async fn active_jobs(&self) -> StoreResult<Vec<JobRecord>>;

    /// Appends an event to a job's history; returns its `seq`. `NotFound` if the job is
    /// missing or another tenant's.
    async fn append_job_event(
        &self,
        scope: &TenantScope,
        job_id: &str,
        at: UnixMillis,
        kind: &str,
        detail: serde_json::Value,
    ) -> StoreResult<i64>;
    /// A job's history in order. `NotFound` if the job is missing or another tenant's.
    async fn job_events(
        &self,
        scope: &TenantScope,
        job_id: &str,
    ) -> StoreResult<Vec<JobEventRecord>>;

    /// Replaces the stored output of a job (the latest snapshot of its combined
    /// stdout/stderr). `NotFound` if the job is missing or another tenant's.
    async fn set_job_log(&self, scope: &TenantScope, job_id: &str, text: &str) -> StoreResult<()>;
    /// The stored output of a job (empty if none yet). `NotFound` if the job is missing or
    /// another tenant's.
    async fn job_log(&self, scope: &TenantScope, job_id: &str) -> StoreResult<String>;

    /// Sets the tenant's quota.
    async fn set_quota(&self, scope: &TenantScope, quota: QuotaRecord) -> StoreResult<()>;
    /// The tenant's quota, if one was set.
    async fn quota(&self, scope: &TenantScope) -> StoreResult<Option<QuotaRecord>>;
}
