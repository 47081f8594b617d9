//! `NgsiSubscriptionStore` on SQLite (migration 0006).

use crate::engine::backend;
use crate::{SqliteStore, tenant_docs};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use store::{
    NgsiSubscriptionStore, StoreError, StoreErrorKind, StoreResult, SubscriptionPage,
    SubscriptionRecord, SubscriptionStatusRecord, TenantId, TenantScope, UnixMillis,
};

const COLUMNS: &str = "id, doc, created_at, modified_at, times_sent, times_failed, \
     last_notification, last_success, last_failure";

fn from_row(row: &Row<'_>) -> rusqlite::Result<SubscriptionRecord> {
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    let at = |i: usize| -> rusqlite::Result<Option<UnixMillis>> {
        Ok(row.get::<_, Option<i64>>(i)?.map(UnixMillis))
    };
    Ok(SubscriptionRecord {
        id: row.get(0)?,
        doc: row.get(1)?,
        created_at: UnixMillis(row.get(2)?),
        modified_at: UnixMillis(row.get(3)?),
        status: SubscriptionStatusRecord {
            times_sent: count(4)?,
            times_failed: count(5)?,
            last_notification: at(6)?,
            last_success: at(7)?,
            last_failure: at(8)?,
        },
    })
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl NgsiSubscriptionStore for SqliteStore {
    async fn create_subscription(
        &self,
        scope: &TenantScope,
        record: SubscriptionRecord,
    ) -> StoreResult<()> {
        let tenant = scope.tenant().clone();
        self.write(move |conn| {
            let s = record.status;
            conn.execute(
                &format!(
                    "INSERT INTO ngsi_subscriptions (tenant, {COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    tenant.as_str(),
                    record.id,
                    record.doc,
                    record.created_at.0,
                    record.modified_at.0,
                    clamp(s.times_sent),
                    clamp(s.times_failed),
                    s.last_notification.map(|t| t.0),
                    s.last_success.map(|t| t.0),
                    s.last_failure.map(|t| t.0),
                ],
            )
            .map_err(|e| match backend(e) {
                e if e.kind() == StoreErrorKind::AlreadyExists => {
                    StoreError::already_exists(format!("subscription {} already exists", record.id))
                }
                e => e,
            })?;
            Ok(())
        })
        .await
    }

    async fn subscription(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<SubscriptionRecord>> {
        let (tenant, id) = (scope.tenant().clone(), id.to_owned());
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {COLUMNS} FROM ngsi_subscriptions WHERE tenant = ?1 AND id = ?2"),
                params![tenant.as_str(), id],
                from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn subscriptions(
        &self,
        scope: &TenantScope,
        offset: u64,
        limit: u64,
    ) -> StoreResult<SubscriptionPage> {
        let tenant = scope.tenant().clone();
        self.read(move |conn| {
            let total: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM ngsi_subscriptions WHERE tenant = ?1",
                    [tenant.as_str()],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM ngsi_subscriptions WHERE tenant = ?1 \
                     ORDER BY created_at, id LIMIT ?2 OFFSET ?3"
                ))
                .map_err(backend)?;
            let items = statement
                .query_map(
                    params![tenant.as_str(), clamp(limit), clamp(offset)],
                    from_row,
                )
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            Ok(SubscriptionPage {
                items,
                total: total.max(0) as u64,
            })
        })
        .await
    }

    async fn replace_subscription(
        &self,
        scope: &TenantScope,
        record: SubscriptionRecord,
    ) -> StoreResult<()> {
        let tenant = scope.tenant().clone();
        self.write(move |conn| {
            tenant_docs::replace_doc(
                conn,
                "ngsi_subscriptions",
                "subscription",
                tenant.as_str(),
                &record.id,
                &record.doc,
                record.modified_at.0,
            )
        })
        .await
    }

    async fn delete_subscription(&self, scope: &TenantScope, id: &str) -> StoreResult<bool> {
        let (tenant, id) = (scope.tenant().clone(), id.to_owned());
        self.write(move |conn| {
            tenant_docs::delete_doc(conn, "ngsi_subscriptions", tenant.as_str(), &id)
        })
        .await
    }

    async fn set_subscription_status(
        &self,
        scope: &TenantScope,
        id: &str,
        status: SubscriptionStatusRecord,
    ) -> StoreResult<()> {
        let (tenant, id) = (scope.tenant().clone(), id.to_owned());
        self.write(move |conn| {
            conn.execute(
                "UPDATE ngsi_subscriptions SET times_sent = ?3, times_failed = ?4, \
                 last_notification = ?5, last_success = ?6, last_failure = ?7 \
                 WHERE tenant = ?1 AND id = ?2",
                params![
                    tenant.as_str(),
                    id,
                    clamp(status.times_sent),
                    clamp(status.times_failed),
                    status.last_notification.map(|t| t.0),
                    status.last_success.map(|t| t.0),
                    status.last_failure.map(|t| t.0),
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn all_subscriptions(&self) -> StoreResult<Vec<(TenantId, SubscriptionRecord)>> {
        self.read(move |conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT tenant, {COLUMNS} FROM ngsi_subscriptions ORDER BY tenant, created_at, id"
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map([], |row| {
                    let tenant: String = row.get(0)?;
                    let record = SubscriptionRecord {
                        id: row.get(1)?,
                        doc: row.get(2)?,
                        created_at: UnixMillis(row.get(3)?),
                        modified_at: UnixMillis(row.get(4)?),
                        status: SubscriptionStatusRecord {
                            times_sent: row.get::<_, i64>(5)?.max(0) as u64,
                            times_failed: row.get::<_, i64>(6)?.max(0) as u64,
                            last_notification: row.get::<_, Option<i64>>(7)?.map(UnixMillis),
                            last_success: row.get::<_, Option<i64>>(8)?.map(UnixMillis),
                            last_failure: row.get::<_, Option<i64>>(9)?.map(UnixMillis),
                        },
                    };
                    Ok((tenant, record))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (tenant, record) = row.map_err(backend)?;
                let tenant = TenantId::new(tenant)
                    .map_err(|e| StoreError::backend(format!("stored tenant id: {e}")))?;
                out.push((tenant, record));
            }
            Ok(out)
        })
        .await
    }
}
