//! `SecureJobStore` on SQLite.

use crate::SqliteStore;
use crate::engine::backend;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use store::{
    SecureJobRecord, SecureJobStatus, SecureJobStore, SecureJobTransition, StoreError,
    StoreErrorKind, StoreResult, TenantScope, UnixMillis,
};

const COLUMNS: &str = "id, governance, governance_digest, local_party, expires_at, status, \
     created_by, created_at, approved_by, approved_at, error, result, updated_at";

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<SecureJobRecord> {
    let status: String = row.get(5)?;
    let status = SecureJobStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            5,
            rusqlite::types::Type::Text,
            format!("unknown secure job status {status:?}").into(),
        )
    })?;
    Ok(SecureJobRecord {
        id: row.get(0)?,
        governance: row.get(1)?,
        governance_digest: row.get(2)?,
        local_party: row.get(3)?,
        expires_at: UnixMillis(row.get(4)?),
        status,
        created_by: row.get(6)?,
        created_at: UnixMillis(row.get(7)?),
        approved_by: row.get(8)?,
        approved_at: row.get::<_, Option<i64>>(9)?.map(UnixMillis),
        error: row.get(10)?,
        result: row.get(11)?,
        updated_at: UnixMillis(row.get(12)?),
    })
}

fn select_one(conn: &Connection, tenant: &str, id: &str) -> StoreResult<Option<SecureJobRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM secure_jobs WHERE tenant = ?1 AND id = ?2"),
        params![tenant, id],
        job_from_row,
    )
    .optional()
    .map_err(backend)
}

#[async_trait]
impl SecureJobStore for SqliteStore {
    async fn create_secure_job(
        &self,
        scope: &TenantScope,
        job: SecureJobRecord,
    ) -> StoreResult<()> {
        let tenant = scope.tenant().clone();
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO secure_jobs (tenant, {COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ),
                params![
                    tenant.as_str(),
                    job.id,
                    job.governance,
                    job.governance_digest,
                    job.local_party,
                    job.expires_at.0,
                    job.status.as_str(),
                    job.created_by,
                    job.created_at.0,
                    job.approved_by,
                    job.approved_at.map(|t| t.0),
                    job.error,
                    job.result,
                    job.updated_at.0,
                ],
            )
            .map_err(|e| match backend(e) {
                e if e.kind() == StoreErrorKind::AlreadyExists => StoreError::already_exists(
                    format!("tenant {tenant} already has a secure job {:?}", job.id),
                ),
                e => e,
            })?;
            Ok(())
        })
        .await
    }

    async fn secure_job(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<SecureJobRecord>> {
        let (tenant, id) = (scope.tenant().clone(), id.to_owned());
        self.read(move |conn| select_one(conn, tenant.as_str(), &id))
            .await
    }

    async fn secure_jobs(&self, scope: &TenantScope) -> StoreResult<Vec<SecureJobRecord>> {
        let tenant = scope.tenant().clone();
        self.read(move |conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM secure_jobs WHERE tenant = ?1 \
                     ORDER BY created_at DESC, id"
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map([tenant.as_str()], job_from_row)
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn transition_secure_job(
        &self,
        scope: &TenantScope,
        change: SecureJobTransition,
    ) -> StoreResult<SecureJobRecord> {
        let tenant = scope.tenant().clone();
        self.write(move |conn| {
            let current = select_one(conn, tenant.as_str(), &change.id)?.ok_or_else(|| {
                StoreError::not_found(format!("tenant {tenant} has no secure job {:?}", change.id))
            })?;
            if !change.from.contains(&current.status) {
                return Err(StoreError::new(
                    StoreErrorKind::InvalidInput,
                    format!(
                        "secure job {:?} is {}, not {}",
                        change.id,
                        current.status.as_str(),
                        change
                            .from
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ));
            }
            let (approved_by, approved_at) = match change.approved_by {
                Some(by) => (Some(by), Some(change.at.0)),
                None => (current.approved_by, current.approved_at.map(|t| t.0)),
            };
            conn.execute(
                "UPDATE secure_jobs SET status = ?3, approved_by = ?4, approved_at = ?5, \
                 error = COALESCE(?6, error), result = COALESCE(?7, result), updated_at = ?8 \
                 WHERE tenant = ?1 AND id = ?2",
                params![
                    tenant.as_str(),
                    change.id,
                    change.to.as_str(),
                    approved_by,
                    approved_at,
                    change.error,
                    change.result,
                    change.at.0,
                ],
            )
            .map_err(backend)?;
            select_one(conn, tenant.as_str(), &change.id)?
                .ok_or_else(|| StoreError::backend("secure job vanished during its update"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::TenantId;

    fn job(id: &str) -> SecureJobRecord {
        SecureJobRecord {
            id: id.to_owned(),
            governance: "{}".to_owned(),
            governance_digest: "00".repeat(32),
            local_party: "a".to_owned(),
            expires_at: UnixMillis(10_000),
            status: SecureJobStatus::Proposed,
            created_by: "usr_1".to_owned(),
            created_at: UnixMillis(1),
            approved_by: None,
            approved_at: None,
            error: None,
            result: None,
            updated_at: UnixMillis(1),
        }
    }

    fn change(id: &str, from: &[SecureJobStatus], to: SecureJobStatus) -> SecureJobTransition {
        SecureJobTransition {
            id: id.to_owned(),
            from: from.to_vec(),
            to,
            approved_by: None,
            error: None,
            result: None,
            at: UnixMillis(5),
        }
    }

    #[tokio::test]
    async fn jobs_are_tenant_scoped_and_transitions_are_compare_and_set() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let a = TenantScope::authorized(TenantId::new("city-a").unwrap());
        let b = TenantScope::authorized(TenantId::new("city-b").unwrap());
        store.create_secure_job(&a, job("j1")).await.unwrap();
        let again = store.create_secure_job(&a, job("j1")).await.unwrap_err();
        assert_eq!(again.kind(), StoreErrorKind::AlreadyExists);
        store.create_secure_job(&b, job("j1")).await.unwrap();
        assert!(store.secure_job(&b, "j2").await.unwrap().is_none());
        assert_eq!(store.secure_jobs(&a).await.unwrap().len(), 1);

        let mut approve = change(
            "j1",
            &[SecureJobStatus::Proposed],
            SecureJobStatus::Approved,
        );
        approve.approved_by = Some("usr_admin".to_owned());
        let approved = store
            .transition_secure_job(&a, approve.clone())
            .await
            .unwrap();
        assert_eq!(approved.status, SecureJobStatus::Approved);
        assert_eq!(approved.approved_by.as_deref(), Some("usr_admin"));
        assert_eq!(approved.approved_at, Some(UnixMillis(5)));
        // The other tenant's copy is untouched.
        let other = store.secure_job(&b, "j1").await.unwrap().unwrap();
        assert_eq!(other.status, SecureJobStatus::Proposed);
        // A second approval is refused, naming the current state.
        let refused = store.transition_secure_job(&a, approve).await.unwrap_err();
        assert_eq!(refused.kind(), StoreErrorKind::InvalidInput);
        assert!(refused.message().contains("is approved"), "{refused:?}");

        let mut abort = change(
            "j1",
            &[SecureJobStatus::Approved, SecureJobStatus::Running],
            SecureJobStatus::Aborted,
        );
        abort.error = Some("tampered".to_owned());
        let aborted = store.transition_secure_job(&a, abort).await.unwrap();
        assert_eq!(aborted.error.as_deref(), Some("tampered"));
        assert_eq!(aborted.approved_by.as_deref(), Some("usr_admin"));
        let missing = store
            .transition_secure_job(&a, change("nope", &[], SecureJobStatus::Aborted))
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), StoreErrorKind::NotFound);
    }
}
