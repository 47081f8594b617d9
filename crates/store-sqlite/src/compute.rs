//! `ComputeStore` on SQLite (tables `cpn_*`, migration 0004).

use crate::SqliteStore;
use crate::engine::backend;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use store::{
    ComputeStore, JobEventRecord, JobRecord, QuotaRecord, SiteRecord, StoreError, StoreErrorKind,
    StoreResult, TenantId, TenantScope, UnixMillis,
};

fn conversion(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
}

fn tenant_id(value: String) -> rusqlite::Result<TenantId> {
    TenantId::new(value).map_err(conversion)
}

fn json(value: String) -> rusqlite::Result<serde_json::Value> {
    serde_json::from_str(&value).map_err(conversion)
}

const SITE_COLUMNS: &str = "id, owner, engine, config, status, last_heartbeat, registered_at";

fn site_from_row(row: &Row<'_>) -> rusqlite::Result<SiteRecord> {
    Ok(SiteRecord {
        id: row.get(0)?,
        owner: tenant_id(row.get(1)?)?,
        engine: row.get(2)?,
        config: json(row.get(3)?)?,
        status: row.get(4)?,
        last_heartbeat: row.get::<_, Option<i64>>(5)?.map(UnixMillis),
        registered_at: UnixMillis(row.get(6)?),
    })
}

const JOB_COLUMNS: &str = "id, tenant, spec, state, site, exec_id, attempts, exit_code, detail, \
                           submitted_at, updated_at";

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: row.get(0)?,
        tenant: tenant_id(row.get(1)?)?,
        spec: json(row.get(2)?)?,
        state: row.get(3)?,
        site: row.get(4)?,
        exec_id: row.get(5)?,
        attempts: row.get(6)?,
        exit_code: row.get(7)?,
        detail: row.get(8)?,
        submitted_at: UnixMillis(row.get(9)?),
        updated_at: UnixMillis(row.get(10)?),
    })
}

fn not_found_job(id: &str) -> StoreError {
    StoreError::not_found(format!("no job {id:?}"))
}

/// Whether `job_id` exists in `tenant`.
fn job_in_tenant(conn: &Connection, tenant: &str, job_id: &str) -> StoreResult<bool> {
    conn.query_row(
        "SELECT 1 FROM cpn_jobs WHERE id = ?1 AND tenant = ?2",
        params![job_id, tenant],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
    .map_err(backend)
}

#[async_trait]
impl ComputeStore for SqliteStore {
    async fn create_site(&self, scope: &TenantScope, site: SiteRecord) -> StoreResult<()> {
        let owner = scope.tenant().to_string();
        let config = site.config.to_string();
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO cpn_sites ({SITE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    site.id,
                    owner,
                    site.engine,
                    config,
                    site.status,
                    site.last_heartbeat.map(|t| t.0),
                    site.registered_at.0
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_site(&self, scope: &TenantScope, id: &str) -> StoreResult<()> {
        let (owner, id) = (scope.tenant().to_string(), id.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM cpn_sites WHERE id = ?1 AND owner = ?2",
                    params![id, owner],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::not_found(format!("no site {id:?}")));
            }
            Ok(())
        })
        .await
    }

    async fn site(&self, id: &str) -> StoreResult<Option<SiteRecord>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {SITE_COLUMNS} FROM cpn_sites WHERE id = ?1"),
                params![id],
                site_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn sites(&self) -> StoreResult<Vec<SiteRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {SITE_COLUMNS} FROM cpn_sites ORDER BY id"))
                .map_err(backend)?;
            let rows = stmt.query_map([], site_from_row).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn set_site_status(
        &self,
        id: &str,
        status: &str,
        last_heartbeat: Option<UnixMillis>,
    ) -> StoreResult<()> {
        let (id, status) = (id.to_owned(), status.to_owned());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE cpn_sites SET status = ?2, last_heartbeat = ?3 WHERE id = ?1",
                    params![id, status, last_heartbeat.map(|t| t.0)],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::not_found(format!("no site {id:?}")));
            }
            Ok(())
        })
        .await
    }

    async fn create_job(&self, scope: &TenantScope, job: JobRecord) -> StoreResult<()> {
        let tenant = scope.tenant().to_string();
        let spec = job.spec.to_string();
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO cpn_jobs ({JOB_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    job.id,
                    tenant,
                    spec,
                    job.state,
                    job.site,
                    job.exec_id,
                    job.attempts,
                    job.exit_code,
                    job.detail,
                    job.submitted_at.0,
                    job.updated_at.0
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn update_job(&self, scope: &TenantScope, job: &JobRecord) -> StoreResult<()> {
        let tenant = scope.tenant().to_string();
        let job = job.clone();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE cpn_jobs SET state = ?3, site = ?4, exec_id = ?5, attempts = ?6, \
                     exit_code = ?7, detail = ?8, updated_at = ?9 WHERE id = ?1 AND tenant = ?2",
                    params![
                        job.id,
                        tenant,
                        job.state,
                        job.site,
                        job.exec_id,
                        job.attempts,
                        job.exit_code,
                        job.detail,
                        job.updated_at.0
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(not_found_job(&job.id));
            }
            Ok(())
        })
        .await
    }

    async fn job(&self, scope: &TenantScope, id: &str) -> StoreResult<Option<JobRecord>> {
        let (tenant, id) = (scope.tenant().to_string(), id.to_owned());
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {JOB_COLUMNS} FROM cpn_jobs WHERE id = ?1 AND tenant = ?2"),
                params![id, tenant],
                job_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn jobs(&self, scope: &TenantScope, limit: usize) -> StoreResult<Vec<JobRecord>> {
        let tenant = scope.tenant().to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM cpn_jobs WHERE tenant = ?1 \
                     ORDER BY submitted_at DESC, rowid DESC LIMIT ?2"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![tenant, limit], job_from_row)
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn active_jobs(&self) -> StoreResult<Vec<JobRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM cpn_jobs WHERE state IN ('pending', 'running') \
                     ORDER BY submitted_at, rowid"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([], job_from_row).map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn append_job_event(
        &self,
        scope: &TenantScope,
        job_id: &str,
        at: UnixMillis,
        kind: &str,
        detail: serde_json::Value,
    ) -> StoreResult<i64> {
        let (tenant, job_id, kind) = (
            scope.tenant().to_string(),
            job_id.to_owned(),
            kind.to_owned(),
        );
        let detail = detail.to_string();
        self.write(move |conn| {
            if !job_in_tenant(conn, &tenant, &job_id)? {
                return Err(not_found_job(&job_id));
            }
            let seq: i64 = conn
                .query_row(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM cpn_job_events WHERE job_id = ?1",
                    params![job_id],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            conn.execute(
                "INSERT INTO cpn_job_events (job_id, seq, at, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![job_id, seq, at.0, kind, detail],
            )
            .map_err(backend)?;
            Ok(seq)
        })
        .await
    }

    async fn job_events(
        &self,
        scope: &TenantScope,
        job_id: &str,
    ) -> StoreResult<Vec<JobEventRecord>> {
        let (tenant, job_id) = (scope.tenant().to_string(), job_id.to_owned());
        self.read(move |conn| {
            if !job_in_tenant(conn, &tenant, &job_id)? {
                return Err(not_found_job(&job_id));
            }
            let mut stmt = conn
                .prepare(
                    "SELECT job_id, seq, at, kind, detail FROM cpn_job_events \
                     WHERE job_id = ?1 ORDER BY seq",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![job_id], |row| {
                    Ok(JobEventRecord {
                        job_id: row.get(0)?,
                        seq: row.get(1)?,
                        at: UnixMillis(row.get(2)?),
                        kind: row.get(3)?,
                        detail: json(row.get(4)?)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)
        })
        .await
    }

    async fn set_job_log(&self, scope: &TenantScope, job_id: &str, text: &str) -> StoreResult<()> {
        let (tenant, job_id, text) = (
            scope.tenant().to_string(),
            job_id.to_owned(),
            text.to_owned(),
        );
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE cpn_jobs SET log = ?3 WHERE id = ?1 AND tenant = ?2",
                    params![job_id, tenant, text],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(not_found_job(&job_id));
            }
            Ok(())
        })
        .await
    }

    async fn job_log(&self, scope: &TenantScope, job_id: &str) -> StoreResult<String> {
        let (tenant, job_id) = (scope.tenant().to_string(), job_id.to_owned());
        self.read(move |conn| {
            conn.query_row(
                "SELECT log FROM cpn_jobs WHERE id = ?1 AND tenant = ?2",
                params![job_id, tenant],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)?
            .ok_or_else(|| not_found_job(&job_id))
        })
        .await
    }

    async fn set_quota(&self, scope: &TenantScope, quota: QuotaRecord) -> StoreResult<()> {
        let tenant = scope.tenant().to_string();
        if !quota.max_cpu_cores.is_finite() || !quota.max_gpus.is_finite() {
            return Err(StoreError::new(
                StoreErrorKind::InvalidInput,
                "quota limits must be finite",
            ));
        }
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO cpn_quotas (tenant, max_active_jobs, max_cpu_cores, max_gpus) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT(tenant) DO UPDATE SET \
                 max_active_jobs = excluded.max_active_jobs, max_cpu_cores = excluded.max_cpu_cores, \
                 max_gpus = excluded.max_gpus",
                params![tenant, quota.max_active_jobs, quota.max_cpu_cores, quota.max_gpus],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn quota(&self, scope: &TenantScope) -> StoreResult<Option<QuotaRecord>> {
        let tenant = scope.tenant().to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT max_active_jobs, max_cpu_cores, max_gpus FROM cpn_quotas WHERE tenant = ?1",
                params![tenant],
                |row| {
                    Ok(QuotaRecord {
                        max_active_jobs: row.get(0)?,
                        max_cpu_cores: row.get(1)?,
                        max_gpus: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
}
