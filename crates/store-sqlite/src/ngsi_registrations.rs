//! `NgsiRegistrationStore` on SQLite (migration 0008).

use crate::engine::backend;
use crate::{SqliteStore, tenant_docs};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use store::{
    NgsiRegistrationStore, RegistrationRecord, StoreError, StoreErrorKind, StoreResult,
    TenantScope, UnixMillis,
};

const COLUMNS: &str = "id, doc, created_at, modified_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<RegistrationRecord> {
    Ok(RegistrationRecord {
        id: row.get(0)?,
        doc: row.get(1)?,
        created_at: UnixMillis(row.get(2)?),
        modified_at: UnixMillis(row.get(3)?),
    })
}

#[async_trait]
impl NgsiRegistrationStore for SqliteStore {
    async fn create_registration(
        &self,
        scope: &TenantScope,
        record: RegistrationRecord,
    ) -> StoreResult<()> {
        let tenant = scope.tenant().clone();
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO ngsi_registrations (tenant, {COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
                ),
                params![
                    tenant.as_str(),
                    record.id,
                    record.doc,
                    record.created_at.0,
                    record.modified_at.0,
                ],
            )
            .map_err(|e| match backend(e) {
                e if e.kind() == StoreErrorKind::AlreadyExists => {
                    StoreError::already_exists(format!("registration {} already exists", record.id))
                }
                e => e,
            })?;
            Ok(())
        })
        .await
    }

    async fn registration(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<RegistrationRecord>> {
        let (tenant, id) = (scope.tenant().clone(), id.to_owned());
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM ngsi_registrations WHERE tenant = ?1 AND id = ?2"),
                params![tenant.as_str(), id],
                from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn registrations(&self, scope: &TenantScope) -> StoreResult<Vec<RegistrationRecord>> {
        let tenant = scope.tenant().clone();
        self.read(move |conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM ngsi_registrations WHERE tenant = ?1 \
                     ORDER BY created_at, id"
                ))
                .map_err(backend)?;
            statement
                .query_map(params![tenant.as_str()], from_row)
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)
        })
        .await
    }

    async fn replace_registration(
        &self,
        scope: &TenantScope,
        record: RegistrationRecord,
    ) -> StoreResult<()> {
        let tenant = scope.tenant().clone();
        self.write(move |conn| {
            tenant_docs::replace_doc(
                conn,
                "ngsi_registrations",
                "registration",
                tenant.as_str(),
                &record.id,
                &record.doc,
                record.modified_at.0,
            )
        })
        .await
    }

    async fn delete_registration(&self, scope: &TenantScope, id: &str) -> StoreResult<bool> {
        let (tenant, id) = (scope.tenant().clone(), id.to_owned());
        self.write(move |conn| {
            tenant_docs::delete_doc(conn, "ngsi_registrations", tenant.as_str(), &id)
        })
        .await
    }
}
