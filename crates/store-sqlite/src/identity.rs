//! `IdentityStore` and `AuditLog` on SQLite.

use crate::SqliteStore;
use crate::engine::backend;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use store::{
    AUDIT_GENESIS_HASH, ApiKeyRecord, AuditEntry, AuditEvent, AuditFilter, AuditLog, AuditOutcome,
    AuditScope, ChainVerification, CustomRoleRecord, IdentityStore, MemberRecord, MembershipRecord,
    RefreshTokenRecord, StoreError, StoreErrorKind, StoreResult, TenantId, TenantRecord,
    TenantScope, UnixMillis, UserRecord, audit_entry_hash,
};

fn tenant_id(value: String) -> rusqlite::Result<TenantId> {
    TenantId::new(value).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn millis(value: Option<i64>) -> Option<UnixMillis> {
    value.map(UnixMillis)
}

const USER_COLUMNS: &str = "id, username, password_hash, superuser, disabled, created_at";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        username: row.get(1)?,
        password_hash: row.get(2)?,
        superuser: row.get(3)?,
        disabled: row.get(4)?,
        created_at: UnixMillis(row.get(5)?),
    })
}

const KEY_COLUMNS: &str =
    "id, tenant, name, role, secret_hash, created_by, created_at, expires_at, revoked_at";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.get(0)?,
        tenant: tenant_id(row.get(1)?)?,
        name: row.get(2)?,
        role: row.get(3)?,
        secret_hash: row.get(4)?,
        created_by: row.get(5)?,
        created_at: UnixMillis(row.get(6)?),
        expires_at: millis(row.get(7)?),
        revoked_at: millis(row.get(8)?),
    })
}

const TOKEN_COLUMNS: &str = "id, family, user_id, secret_hash, issued_at, expires_at, used_at";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        id: row.get(0)?,
        family: row.get(1)?,
        user_id: row.get(2)?,
        secret_hash: row.get(3)?,
        issued_at: UnixMillis(row.get(4)?),
        expires_at: UnixMillis(row.get(5)?),
        used_at: millis(row.get(6)?),
    })
}

const AUDIT_COLUMNS: &str =
    "seq, at, tenant, actor, action, outcome, target, detail, prev_hash, hash";

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let conversion = |e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e)
    };
    let outcome: String = row.get(5)?;
    let detail: String = row.get(7)?;
    Ok(AuditEntry {
        seq: row.get(0)?,
        event: AuditEvent {
            at: UnixMillis(row.get(1)?),
            tenant: row
                .get::<_, Option<String>>(2)?
                .map(tenant_id)
                .transpose()?,
            actor: row.get(3)?,
            action: row.get(4)?,
            outcome: AuditOutcome::parse(&outcome)
                .ok_or_else(|| conversion(format!("unknown outcome {outcome}").into()))?,
            target: row.get(6)?,
            detail: serde_json::from_str(&detail).map_err(|e| conversion(Box::new(e)))?,
        },
        prev_hash: row.get(8)?,
        hash: row.get(9)?,
    })
}

fn exists(conn: &Connection, sql: &str, key: &str) -> StoreResult<bool> {
    conn.query_row(sql, [key], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(backend)
}

fn require_changed(changed: usize, what: impl FnOnce() -> String) -> StoreResult<()> {
    if changed == 0 {
        Err(StoreError::not_found(what()))
    } else {
        Ok(())
    }
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn create_tenant(&self, tenant: TenantRecord) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO tenants (id, display_name, created_at) VALUES (?1, ?2, ?3)",
                params![tenant.id.as_str(), tenant.display_name, tenant.created_at.0],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRecord>> {
        let id = id.clone();
        self.read(move |conn| {
            conn.query_row(
                "SELECT display_name, created_at FROM tenants WHERE id = ?1",
                [id.as_str()],
                |row| {
                    Ok(TenantRecord {
                        id: id.clone(),
                        display_name: row.get(0)?,
                        created_at: UnixMillis(row.get(1)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn tenants(&self) -> StoreResult<Vec<TenantRecord>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, display_name, created_at FROM tenants ORDER BY id")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |row| {
                    Ok(TenantRecord {
                        id: tenant_id(row.get(0)?)?,
                        display_name: row.get(1)?,
                        created_at: UnixMillis(row.get(2)?),
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn create_user(&self, user: UserRecord) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                &format!("INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![
                    user.id,
                    user.username,
                    user.password_hash,
                    user.superuser,
                    user.disabled,
                    user.created_at.0
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn user(&self, id: &str) -> StoreResult<Option<UserRecord>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                [id],
                user_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let username = username.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
                [username],
                user_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn user_count(&self) -> StoreResult<u64> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM users", [], |row| row.get::<_, i64>(0))
                .map_err(backend)
        })
        .await
        .map(|n| n.max(0) as u64)
    }

    async fn set_password_hash(&self, user_id: &str, password_hash: &str) -> StoreResult<()> {
        let (user_id, password_hash) = (user_id.to_owned(), password_hash.to_owned());
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![user_id, password_hash],
                )
                .map_err(backend)?;
            require_changed(changed, || format!("user {user_id}"))
        })
        .await
    }

    async fn set_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<()> {
        let user_id = user_id.to_owned();
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE users SET disabled = ?2 WHERE id = ?1",
                    params![user_id, disabled],
                )
                .map_err(backend)?;
            require_changed(changed, || format!("user {user_id}"))
        })
        .await
    }

    async fn set_membership(
        &self,
        scope: &TenantScope,
        user_id: &str,
        role: &str,
    ) -> StoreResult<()> {
        let (tenant, user_id, role) = (scope.tenant().clone(), user_id.to_owned(), role.to_owned());
        self.write(move |conn| {
            if !exists(conn, "SELECT 1 FROM tenants WHERE id = ?1", tenant.as_str())? {
                return Err(StoreError::not_found(format!("tenant {tenant}")));
            }
            if !exists(conn, "SELECT 1 FROM users WHERE id = ?1", &user_id)? {
                return Err(StoreError::not_found(format!("user {user_id}")));
            }
            conn.execute(
                "INSERT INTO memberships (tenant, user_id, role) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, user_id) DO UPDATE SET role = excluded.role",
                params![tenant.as_str(), user_id, role],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn remove_membership(&self, scope: &TenantScope, user_id: &str) -> StoreResult<()> {
        let (tenant, user_id) = (scope.tenant().clone(), user_id.to_owned());
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "DELETE FROM memberships WHERE tenant = ?1 AND user_id = ?2",
                    params![tenant.as_str(), user_id],
                )
                .map_err(backend)?;
            require_changed(changed, || format!("member {user_id} of tenant {tenant}"))
        })
        .await
    }

    async fn membership(&self, scope: &TenantScope, user_id: &str) -> StoreResult<Option<String>> {
        let (tenant, user_id) = (scope.tenant().clone(), user_id.to_owned());
        self.read(move |conn| {
            conn.query_row(
                "SELECT role FROM memberships WHERE tenant = ?1 AND user_id = ?2",
                params![tenant.as_str(), user_id],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn memberships_of_user(&self, user_id: &str) -> StoreResult<Vec<MembershipRecord>> {
        let user_id = user_id.to_owned();
        self.read(move |conn| {
            let mut stmt =
                conn.prepare("SELECT tenant, user_id, role FROM memberships WHERE user_id = ?1 ORDER BY tenant").map_err(backend)?;
            let rows = stmt
                .query_map([user_id], |row| {
                    Ok(MembershipRecord { tenant: tenant_id(row.get(0)?)?, user_id: row.get(1)?, role: row.get(2)? })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn members(&self, scope: &TenantScope) -> StoreResult<Vec<MemberRecord>> {
        let tenant = scope.tenant().clone();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {}, m.role FROM memberships m JOIN users u ON u.id = m.user_id
                 WHERE m.tenant = ?1 ORDER BY u.username",
                USER_COLUMNS
                    .split(", ")
                    .map(|c| format!("u.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut stmt = conn.prepare(&sql).map_err(backend)?;
            let rows = stmt
                .query_map([tenant.as_str()], |row| {
                    Ok(MemberRecord {
                        user: user_from_row(row)?,
                        role: row.get(6)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn put_role(&self, scope: &TenantScope, role: CustomRoleRecord) -> StoreResult<()> {
        let tenant = scope.tenant().clone();
        let permissions = serde_json::to_string(&role.permissions)
            .map_err(|e| StoreError::backend(e.to_string()))?;
        self.write(move |conn| {
            if !exists(conn, "SELECT 1 FROM tenants WHERE id = ?1", tenant.as_str())? {
                return Err(StoreError::not_found(format!("tenant {tenant}")));
            }
            conn.execute(
                "INSERT INTO custom_roles (tenant, name, permissions) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, name) DO UPDATE SET permissions = excluded.permissions",
                params![tenant.as_str(), role.name, permissions],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn roles(&self, scope: &TenantScope) -> StoreResult<Vec<CustomRoleRecord>> {
        let tenant = scope.tenant().clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT name, permissions FROM custom_roles WHERE tenant = ?1 ORDER BY name",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([tenant.as_str()], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (name, permissions) = row.map_err(backend)?;
                let permissions = serde_json::from_str(&permissions).map_err(|e| {
                    StoreError::backend(format!("role {name}: corrupt permissions: {e}"))
                })?;
                Ok(CustomRoleRecord { name, permissions })
            })
            .collect()
        })
        .await
    }

    async fn delete_role(&self, scope: &TenantScope, name: &str) -> StoreResult<()> {
        let (tenant, name) = (scope.tenant().clone(), name.to_owned());
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "DELETE FROM custom_roles WHERE tenant = ?1 AND name = ?2",
                    params![tenant.as_str(), name],
                )
                .map_err(backend)?;
            require_changed(changed, || format!("role {name} in tenant {tenant}"))
        })
        .await
    }

    async fn create_api_key(&self, scope: &TenantScope, key: ApiKeyRecord) -> StoreResult<()> {
        if &key.tenant != scope.tenant() {
            return Err(StoreError::new(
                StoreErrorKind::InvalidInput,
                format!(
                    "key for tenant {} created through a scope of tenant {}",
                    key.tenant,
                    scope.tenant()
                ),
            ));
        }
        self.write(move |conn| {
            conn.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    key.id,
                    key.tenant.as_str(),
                    key.name,
                    key.role,
                    key.secret_hash,
                    key.created_by,
                    key.created_at.0,
                    key.expires_at.map(|t| t.0),
                    key.revoked_at.map(|t| t.0)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
                [id],
                key_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn api_keys(&self, scope: &TenantScope) -> StoreResult<Vec<ApiKeyRecord>> {
        let tenant = scope.tenant().clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE tenant = ?1 ORDER BY created_at, id"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map([tenant.as_str()], key_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        scope: &TenantScope,
        id: &str,
        at: UnixMillis,
    ) -> StoreResult<()> {
        let (tenant, id) = (scope.tenant().clone(), id.to_owned());
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE tenant = ?1 AND id = ?2",
                    params![tenant.as_str(), id, at.0],
                )
                .map_err(backend)?;
            require_changed(changed, || format!("api key {id} in tenant {tenant}"))
        })
        .await
    }

    async fn insert_refresh_token(&self, token: RefreshTokenRecord) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                &format!("INSERT INTO refresh_tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    token.id,
                    token.family,
                    token.user_id,
                    token.secret_hash,
                    token.issued_at.0,
                    token.expires_at.0,
                    token.used_at.map(|t| t.0)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn take_refresh_token(
        &self,
        id: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<RefreshTokenRecord>> {
        let id = id.to_owned();
        // A write, so that reading and marking happen in one serialised step.
        self.write(move |conn| {
            let before = conn
                .query_row(
                    &format!("SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE id = ?1"),
                    [&id],
                    token_from_row,
                )
                .optional()
                .map_err(backend)?;
            if before.as_ref().is_some_and(|t| t.used_at.is_none()) {
                conn.execute(
                    "UPDATE refresh_tokens SET used_at = ?2 WHERE id = ?1",
                    params![id, at.0],
                )
                .map_err(backend)?;
            }
            Ok(before)
        })
        .await
    }

    async fn revoke_refresh_family(&self, family: &str, at: UnixMillis) -> StoreResult<()> {
        let family = family.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE refresh_tokens SET used_at = ?2 WHERE family = ?1 AND used_at IS NULL",
                params![family, at.0],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append_audit(&self, event: AuditEvent) -> StoreResult<AuditEntry> {
        self.write(move |conn| {
            let last: Option<(i64, String)> = conn
                .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .map_err(backend)?;
            let (seq, prev_hash) = match last {
                Some((seq, hash)) => (seq + 1, hash),
                None => (1, AUDIT_GENESIS_HASH.to_owned()),
            };
            let hash = audit_entry_hash(seq, &event, &prev_hash);
            conn.execute(
                &format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    seq,
                    event.at.0,
                    event.tenant.as_ref().map(TenantId::as_str),
                    event.actor,
                    event.action,
                    event.outcome.as_str(),
                    event.target,
                    event.detail.to_string(),
                    prev_hash,
                    hash
                ],
            )
            .map_err(backend)?;
            Ok(AuditEntry { seq, event, prev_hash, hash })
        })
        .await
    }

    async fn audit_entries(
        &self,
        scope: &AuditScope,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEntry>> {
        let tenant = match scope {
            AuditScope::Tenant(scope) => Some(scope.tenant().as_str().to_owned()),
            AuditScope::Platform => None,
        };
        let filter = filter.clone();
        self.read(move |conn| {
            let limit = i64::from(filter.limit.unwrap_or(100).min(1000));
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log
                     WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR seq < ?2) AND (?3 IS NULL OR action = ?3)
                     ORDER BY seq DESC LIMIT ?4"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map(params![tenant, filter.before_seq, filter.action, limit], audit_from_row).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn verify_chain(&self) -> StoreResult<ChainVerification> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq"
                ))
                .map_err(backend)?;
            let mut rows = stmt.query([]).map_err(backend)?;
            let mut expected_prev = AUDIT_GENESIS_HASH.to_owned();
            let mut expected_seq = 1;
            let mut entries = 0u64;
            while let Some(row) = rows.next().map_err(backend)? {
                let seq: i64 = row.get(0).map_err(backend)?;
                let entry = match audit_from_row(row) {
                    Ok(entry) => entry,
                    Err(_) => return Ok(ChainVerification::Broken { seq }),
                };
                if entry.seq != expected_seq
                    || entry.prev_hash != expected_prev
                    || entry.hash != audit_entry_hash(entry.seq, &entry.event, &entry.prev_hash)
                {
                    return Ok(ChainVerification::Broken { seq: entry.seq });
                }
                expected_prev = entry.hash;
                expected_seq += 1;
                entries += 1;
            }
            Ok(ChainVerification::Intact { entries })
        })
        .await
    }
}
