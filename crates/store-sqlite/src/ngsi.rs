//! `NgsiStore` on SQLite: one row per entity (JSON text, with its types as a JSON array in
//! the same row since migration 0010, and since migration 0013 its temporal entity beside it:
//! rows whose `doc` is NULL hold only a temporal entity and are not current entities), and the
//! stored `@context` documents. A write is one row per entity and reads nothing; the store's
//! own type filter scans the tenant's rows (the broker answers type queries from its in-memory
//! index). Writes go through the writer thread (group commit), so an acknowledged write is
//! committed.

use crate::SqliteStore;
use crate::engine::backend;
use crate::multi_row::MultiRow;
use async_trait::async_trait;
use foldhash::HashSetExt;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use store::{
    CommitHook, ContextRecord, EntityChange, EntityFilter, EntityModifier, EntityRecord, IndexSlot,
    NgsiStore, StoreError, StoreErrorKind, StoreResult, TemporalWrite, TenantScope, UnixMillis,
    WriteFuture,
};

/// An entity's types as stored in its row (migration 0010): a JSON array.
pub(crate) fn types_json(types: &[String]) -> String {
    serde_json::to_string(types).unwrap_or_else(|_| "[]".to_owned())
}

fn types_from_json(text: &str) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn load_entity(conn: &Connection, tenant: &str, id: &str) -> StoreResult<Option<EntityRecord>> {
    conn.prepare_cached(
        "SELECT doc, created_at, modified_at, types FROM ngsi_entities \
         WHERE tenant = ?1 AND id = ?2 AND doc IS NOT NULL",
    )
    .map_err(backend)?
    .query_row(params![tenant, id], |row| {
        Ok(EntityRecord {
            id: id.to_owned(),
            types: types_from_json(&row.get::<_, String>(3)?)?,
            doc: row.get(0)?,
            created_at: UnixMillis(row.get(1)?),
            modified_at: UnixMillis(row.get(2)?),
        })
    })
    .optional()
    .map_err(backend)
}

/// Removes the current entity: the whole row if it holds no temporal entity, else the
/// current entity's part of it (migration 0013).
fn delete_entity(conn: &Connection, tenant: &str, id: &str) -> StoreResult<bool> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM ngsi_entities WHERE tenant = ?1 AND id = ?2 AND doc IS NOT NULL \
             AND temporal_types IS NULL",
        )
        .map_err(backend)?
        .execute(params![tenant, id])
        .map_err(backend)?;
    let cleared = conn
        .prepare_cached(
            "UPDATE ngsi_entities SET doc = NULL, types = NULL, created_at = NULL, \
             modified_at = NULL WHERE tenant = ?1 AND id = ?2 AND doc IS NOT NULL",
        )
        .map_err(backend)?
        .execute(params![tenant, id])
        .map_err(backend)?;
    Ok(deleted + cleared > 0)
}

/// Entity rows of a write, in multi-row upserts (the types are in the row, so a put never
/// reads or deletes anything first). A row's temporal entity columns are left as they are.
static ENTITY_UPSERT: std::sync::LazyLock<MultiRow> = std::sync::LazyLock::new(|| {
    MultiRow::new(
        "INSERT OR FAIL INTO ngsi_entities (tenant, id, doc, created_at, modified_at, types) VALUES",
        "(?, ?, ?, ?, ?, ?)",
        "ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, \
         created_at = excluded.created_at, modified_at = excluded.modified_at, \
         types = excluded.types",
    )
});

/// The entity rows of a run of puts, written together.
#[derive(Default)]
struct PutBuffer<'a> {
    entities: Vec<(&'a EntityRecord, String)>,
}

impl<'a> PutBuffer<'a> {
    fn push(&mut self, rec: &'a EntityRecord) {
        self.entities.push((rec, types_json(&rec.types)));
    }

    fn flush(&mut self, conn: &Connection, tenant: &str) -> StoreResult<()> {
        ENTITY_UPSERT.run(conn, &self.entities, |stmt, at, (rec, types)| {
            stmt.raw_bind_parameter(at, tenant)?;
            stmt.raw_bind_parameter(at + 1, &rec.id)?;
            stmt.raw_bind_parameter(at + 2, &rec.doc)?;
            stmt.raw_bind_parameter(at + 3, rec.created_at.0)?;
            stmt.raw_bind_parameter(at + 4, rec.modified_at.0)?;
            stmt.raw_bind_parameter(at + 5, types)
        })?;
        self.entities.clear();
        Ok(())
    }
}

/// Applies `changes` to `ids` (same length, checked). Puts are buffered and written in
/// multi-row statements; a delete first flushes the buffer, so every row is written in the
/// order of `changes`. The caller's knowledge of the prior types is not needed here: the
/// types are part of the entity row.
fn apply_changes(
    conn: &Connection,
    tenant: &str,
    ids: &[String],
    changes: &[EntityChange],
) -> StoreResult<()> {
    if changes.len() != ids.len() {
        return Err(StoreError::new(
            StoreErrorKind::InvalidInput,
            format!(
                "modify_entities: {} changes for {} ids",
                changes.len(),
                ids.len()
            ),
        ));
    }
    let mut registered = false;
    let mut buffer = PutBuffer::default();
    for (id, change) in ids.iter().zip(changes) {
        match change {
            EntityChange::Keep => {}
            EntityChange::Delete => {
                buffer.flush(conn, tenant)?;
                delete_entity(conn, tenant, id)?;
            }
            EntityChange::Put(rec) => {
                if &rec.id != id {
                    return Err(StoreError::new(
                        StoreErrorKind::InvalidInput,
                        format!("modify_entities: record {} answered for {id}", rec.id),
                    ));
                }
                if !registered {
                    register_tenant(conn, tenant, rec.created_at)?;
                    registered = true;
                }
                buffer.push(rec);
            }
        }
    }
    buffer.flush(conn, tenant)
}

/// The tenants whose `ngsi_tenants` row is known to be committed, so that their writes need
/// not insert it again: that statement was about 4% of the writer's instructions per single
/// create, where every write is its own job. A tenant is added only once a write that
/// registered it has committed (a rolled-back registration leaves no row), and never removed:
/// nothing deletes these rows.
#[derive(Debug, Default)]
pub(crate) struct RegisteredTenants {
    known: std::sync::RwLock<std::collections::HashSet<String>>,
}

impl RegisteredTenants {
    fn contains(&self, tenant: &str) -> bool {
        self.known.read().is_ok_and(|known| known.contains(tenant))
    }

    fn insert(&self, tenant: String) {
        if let Ok(mut known) = self.known.write() {
            known.insert(tenant);
        }
    }
}

/// Notes that `tenant` holds NGSI-LD data (first at `at`).
fn register_tenant(conn: &Connection, tenant: &str, at: UnixMillis) -> StoreResult<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO ngsi_tenants (tenant, created_at) VALUES (?1, ?2)")
        .map_err(backend)?
        .execute(params![tenant, at.0])
        .map_err(backend)?;
    Ok(())
}

/// Writes the current entities `puts` (distinct ids), leaving their rows' temporal parts as
/// they are.
pub(crate) fn put_current(
    conn: &Connection,
    tenant: &str,
    puts: &[&EntityRecord],
) -> StoreResult<()> {
    let mut buffer = PutBuffer::default();
    for rec in puts {
        buffer.push(rec);
    }
    buffer.flush(conn, tenant)
}

/// The positions of the puts of a write that consists of puts (and keeps) of distinct ids
/// only, each put under its own id: these can be written in one statement per row with the
/// write's history (see `ngsi_temporal::record`). `None`: the write takes the general path.
/// Worked out by the caller, once, not on the writer at every attempt.
fn distinct_puts(ids: &[String], changes: &[EntityChange]) -> Option<Vec<usize>> {
    if ids.len() != changes.len() {
        return None;
    }
    let mut seen = foldhash::HashSet::with_capacity(ids.len());
    let mut puts = Vec::with_capacity(changes.len());
    for (at, (id, change)) in ids.iter().zip(changes).enumerate() {
        if !seen.insert(id.as_str()) {
            return None;
        }
        match change {
            EntityChange::Keep => {}
            EntityChange::Delete => return None,
            EntityChange::Put(rec) if &rec.id == id => puts.push(at),
            EntityChange::Put(_) => return None,
        }
    }
    Some(puts)
}

/// Ids matching `filter`, ordered.
fn matching_ids(
    conn: &Connection,
    tenant: &str,
    filter: &EntityFilter,
) -> StoreResult<Vec<String>> {
    let mut sql = String::new();
    let mut args: Vec<String> = vec![tenant.to_owned()];
    match &filter.types {
        Some(types) => {
            // The types are a JSON array in the row: a scan of the tenant's rows (the broker
            // answers type queries from its in-memory index, not from here).
            sql.push_str(
                "SELECT DISTINCT e.id FROM ngsi_entities e, json_each(e.types) t \
                 WHERE e.tenant = ?1 AND e.doc IS NOT NULL AND t.value IN (",
            );
            for (i, t) in types.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                args.push(t.clone());
                sql.push_str(&format!("?{}", args.len()));
            }
            sql.push(')');
        }
        None => sql
            .push_str("SELECT e.id FROM ngsi_entities e WHERE e.tenant = ?1 AND e.doc IS NOT NULL"),
    }
    if let Some(ids) = &filter.ids {
        sql.push_str(" AND e.id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            args.push(id.clone());
            sql.push_str(&format!("?{}", args.len()));
        }
        sql.push(')');
    }
    sql.push_str(" ORDER BY e.id");
    let mut stmt = conn.prepare(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |row| row.get::<_, String>(0))
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

/// Every entity of `tenant`, ordered by id, in one scan.
fn all_entities(conn: &Connection, tenant: &str) -> StoreResult<Vec<EntityRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, doc, created_at, modified_at, types FROM ngsi_entities \
             WHERE tenant = ?1 AND doc IS NOT NULL ORDER BY id",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![tenant], |row| {
            Ok(EntityRecord {
                id: row.get(0)?,
                doc: row.get(1)?,
                created_at: UnixMillis(row.get(2)?),
                modified_at: UnixMillis(row.get(3)?),
                types: types_from_json(&row.get::<_, String>(4)?)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

fn context_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ContextRecord> {
    Ok(ContextRecord {
        id: row.get(0)?,
        url: row.get(1)?,
        kind: row.get(2)?,
        doc: row.get(3)?,
        created_at: UnixMillis(row.get(4)?),
    })
}

#[async_trait]
impl NgsiStore for SqliteStore {
    async fn entity(&self, scope: &TenantScope, id: &str) -> StoreResult<Option<EntityRecord>> {
        let tenant = scope.tenant().as_str().to_owned();
        let id = id.to_owned();
        self.read(move |conn| load_entity(conn, &tenant, &id)).await
    }

    async fn entities(
        &self,
        scope: &TenantScope,
        filter: &EntityFilter,
    ) -> StoreResult<Vec<EntityRecord>> {
        let tenant = scope.tenant().as_str().to_owned();
        let filter = filter.clone();
        self.read(move |conn| {
            if filter == EntityFilter::default() {
                return all_entities(conn, &tenant);
            }
            let ids = matching_ids(conn, &tenant, &filter)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(rec) = load_entity(conn, &tenant, &id)? {
                    out.push(rec);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn modify_entities(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        modify: EntityModifier,
    ) -> StoreResult<()> {
        let tenant = scope.tenant().as_str().to_owned();
        self.write(move |conn| {
            let mut current = Vec::with_capacity(ids.len());
            for id in &ids {
                current.push(load_entity(conn, &tenant, id)?);
            }
            let changes = modify(current);
            apply_changes(conn, &tenant, &ids, &changes)
        })
        .await
    }

    fn modify_entities_blind(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        modify: EntityModifier,
        history: TemporalWrite,
        on_commit: CommitHook,
    ) -> WriteFuture {
        let tenant = scope.tenant().as_str().to_owned();
        // The modifier reads nothing, so it runs here, and the write only reads its data:
        // the writer may run it again (see `SqliteStore::queue_rerunnable`).
        let changes = modify(ids.iter().map(|_| None).collect());
        let series_ids = self.series_ids();
        let tenants = self.ngsi_tenants();
        // A write that puts an entity registers its tenant unless a committed one did (a stale
        // answer only costs an `INSERT OR IGNORE`); once such a write commits, the tenant is
        // known. A write without a put registers nothing and teaches nothing.
        let register =
            changes.iter().any(|c| matches!(c, EntityChange::Put(_))) && !tenants.contains(&tenant);
        let on_commit: CommitHook = if register {
            let tenant = tenant.clone();
            Box::new(move |committed| {
                if committed {
                    tenants.insert(tenant);
                }
                on_commit(committed);
            })
        } else {
            on_commit
        };
        // Each row's current entity and temporal entity in one statement, where the write allows.
        let combined = distinct_puts(&ids, &changes)
            .filter(|puts| !puts.is_empty() && !history.entities.is_empty());
        Box::pin(self.queue_rerunnable(
            move |conn| match &combined {
                Some(at) => {
                    let puts: Vec<&EntityRecord> = at
                        .iter()
                        .filter_map(|&i| match &changes[i] {
                            EntityChange::Put(rec) => Some(rec),
                            _ => None,
                        })
                        .collect();
                    if let Some(first) = puts.first()
                        && register
                    {
                        register_tenant(conn, &tenant, first.created_at)?;
                    }
                    crate::ngsi_temporal::record(conn, &tenant, &history, &series_ids, &puts)
                }
                None => {
                    apply_changes(conn, &tenant, &ids, &changes)?;
                    crate::ngsi_temporal::record(conn, &tenant, &history, &series_ids, &[])
                }
            },
            on_commit,
        ))
    }

    fn index_slot(&self) -> &IndexSlot {
        self.ngsi_index_slot()
    }

    async fn delete_entities(
        &self,
        scope: &TenantScope,
        filter: &EntityFilter,
    ) -> StoreResult<u64> {
        let tenant = scope.tenant().as_str().to_owned();
        let filter = filter.clone();
        self.write(move |conn| {
            let ids = matching_ids(conn, &tenant, &filter)?;
            let mut n = 0;
            for id in ids {
                if delete_entity(conn, &tenant, &id)? {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
    }

    async fn tenant_exists(&self, scope: &TenantScope) -> StoreResult<bool> {
        let tenant = scope.tenant().as_str().to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT 1 FROM ngsi_tenants WHERE tenant = ?1")
                .map_err(backend)?
                .query_row(params![tenant], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
                .map_err(backend)
        })
        .await
    }

    async fn put_context(&self, record: ContextRecord) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO ngsi_contexts (id, url, kind, doc, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.id, record.url, record.kind, record.doc, record.created_at.0],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn context(&self, id: &str) -> StoreResult<Option<ContextRecord>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, url, kind, doc, created_at FROM ngsi_contexts WHERE id = ?1",
                params![id],
                context_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn contexts(&self) -> StoreResult<Vec<ContextRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare("SELECT id, url, kind, doc, created_at FROM ngsi_contexts ORDER BY id")
                .map_err(backend)?;
            let rows = stmt.query_map([], context_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn delete_context(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |conn| {
            let n = conn
                .execute("DELETE FROM ngsi_contexts WHERE id = ?1", params![id])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }
}
