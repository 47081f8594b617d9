//! `NgsiStore` on SQLite: one row per entity (JSON text), a type index table, and the
//! stored `@context` documents. Writes go through the writer thread (group commit), so
//! an acknowledged write is committed.

use crate::SqliteStore;
use crate::engine::backend;
use crate::multi_row::MultiRow;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use store::{
    CommitHook, ContextRecord, EntityChange, EntityFilter, EntityModifier, EntityRecord, IndexSlot,
    NgsiStore, PriorTypes, StoreError, StoreErrorKind, StoreResult, TemporalWrite, TenantScope,
    UnixMillis, WriteFuture,
};

fn load_types(conn: &Connection, tenant: &str, id: &str) -> StoreResult<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT type FROM ngsi_entity_types WHERE tenant = ?1 AND id = ?2")
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![tenant, id], |row| row.get::<_, String>(0))
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

fn load_entity(conn: &Connection, tenant: &str, id: &str) -> StoreResult<Option<EntityRecord>> {
    let row = conn
        .prepare_cached(
            "SELECT doc, created_at, modified_at FROM ngsi_entities WHERE tenant = ?1 AND id = ?2",
        )
        .map_err(backend)?
        .query_row(params![tenant, id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .optional()
        .map_err(backend)?;
    let Some((doc, created, modified)) = row else {
        return Ok(None);
    };
    Ok(Some(EntityRecord {
        id: id.to_owned(),
        types: load_types(conn, tenant, id)?,
        doc,
        created_at: UnixMillis(created),
        modified_at: UnixMillis(modified),
    }))
}

fn delete_entity(conn: &Connection, tenant: &str, id: &str) -> StoreResult<bool> {
    conn.prepare_cached("DELETE FROM ngsi_entity_types WHERE tenant = ?1 AND id = ?2")
        .map_err(backend)?
        .execute(params![tenant, id])
        .map_err(backend)?;
    let n = conn
        .prepare_cached("DELETE FROM ngsi_entities WHERE tenant = ?1 AND id = ?2")
        .map_err(backend)?
        .execute(params![tenant, id])
        .map_err(backend)?;
    Ok(n > 0)
}

fn put_entity(
    conn: &Connection,
    tenant: &str,
    rec: &EntityRecord,
    old_types: Option<&[String]>,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO ngsi_entities (tenant, id, doc, created_at, modified_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, created_at = excluded.created_at, \
         modified_at = excluded.modified_at",
    )
    .map_err(backend)?
    .execute(params![
        tenant,
        rec.id,
        rec.doc,
        rec.created_at.0,
        rec.modified_at.0
    ])
    .map_err(backend)?;
    let unchanged = old_types.is_some_and(|old| same_types(old, &rec.types));
    if !unchanged {
        if old_types.is_some_and(|old| !old.is_empty()) {
            conn.prepare_cached("DELETE FROM ngsi_entity_types WHERE tenant = ?1 AND id = ?2")
                .map_err(backend)?
                .execute(params![tenant, rec.id])
                .map_err(backend)?;
        }
        let mut insert = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO ngsi_entity_types (tenant, type, id) VALUES (?1, ?2, ?3)",
            )
            .map_err(backend)?;
        for t in &rec.types {
            insert
                .execute(params![tenant, t, rec.id])
                .map_err(backend)?;
        }
    }
    Ok(())
}

/// [`put_entity`] without knowing the stored types: reads them, so that the type rows are
/// rewritten only when they changed (a read is cheaper than a delete and a re-insert).
fn put_entity_blind(conn: &Connection, tenant: &str, rec: &EntityRecord) -> StoreResult<()> {
    let old = load_types(conn, tenant, &rec.id)?;
    put_entity(conn, tenant, rec, Some(&old))
}

/// Entity rows of a write, in multi-row upserts.
static ENTITY_UPSERT: std::sync::LazyLock<MultiRow> = std::sync::LazyLock::new(|| {
    MultiRow::new(
        "INSERT INTO ngsi_entities (tenant, id, doc, created_at, modified_at) VALUES",
        "(?, ?, ?, ?, ?)",
        "ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, \
         created_at = excluded.created_at, modified_at = excluded.modified_at",
    )
});

/// Type rows of new entities, in multi-row inserts.
static TYPE_INSERT: std::sync::LazyLock<MultiRow> = std::sync::LazyLock::new(|| {
    MultiRow::new(
        "INSERT OR IGNORE INTO ngsi_entity_types (tenant, type, id) VALUES",
        "(?, ?, ?)",
        "",
    )
});

/// The rows of a run of puts, written together: entity rows and the type rows of entities
/// known to be absent (other type changes are written one by one, in order, after flushing).
#[derive(Default)]
struct PutBuffer<'a> {
    entities: Vec<&'a EntityRecord>,
    types: Vec<(&'a str, &'a str)>,
}

impl<'a> PutBuffer<'a> {
    fn flush(&mut self, conn: &Connection, tenant: &str) -> StoreResult<()> {
        ENTITY_UPSERT.run(conn, &self.entities, |stmt, at, rec| {
            stmt.raw_bind_parameter(at, tenant)?;
            stmt.raw_bind_parameter(at + 1, &rec.id)?;
            stmt.raw_bind_parameter(at + 2, &rec.doc)?;
            stmt.raw_bind_parameter(at + 3, rec.created_at.0)?;
            stmt.raw_bind_parameter(at + 4, rec.modified_at.0)
        })?;
        TYPE_INSERT.run(conn, &self.types, |stmt, at, (t, id)| {
            stmt.raw_bind_parameter(at, tenant)?;
            stmt.raw_bind_parameter(at + 1, *t)?;
            stmt.raw_bind_parameter(at + 2, *id)
        })?;
        self.entities.clear();
        self.types.clear();
        Ok(())
    }
}

/// Applies `changes` to `ids` (same length, checked). `old_types` (when known) lets a put
/// keep the type rows of an entity whose types did not change. Puts are buffered and written
/// in multi-row statements; a delete, or a put whose types must be read or replaced, first
/// flushes the buffer, so every row is written in the order of `changes`.
fn apply_changes(
    conn: &Connection,
    tenant: &str,
    ids: &[String],
    changes: &[EntityChange],
    old_types: &[PriorTypes],
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
    let mut old_types = old_types.iter();
    let mut registered = false;
    let mut buffer = PutBuffer::default();
    for (id, change) in ids.iter().zip(changes) {
        let old = old_types.next();
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
                    conn.prepare_cached(
                        "INSERT OR IGNORE INTO ngsi_tenants (tenant, created_at) VALUES (?1, ?2)",
                    )
                    .map_err(backend)?
                    .execute(params![tenant, rec.created_at.0])
                    .map_err(backend)?;
                    registered = true;
                }
                match old {
                    Some(PriorTypes::Types(old)) if same_types(old, &rec.types) => {
                        buffer.entities.push(rec);
                    }
                    Some(PriorTypes::Absent) => {
                        buffer.entities.push(rec);
                        buffer
                            .types
                            .extend(rec.types.iter().map(|t| (t.as_str(), rec.id.as_str())));
                    }
                    Some(PriorTypes::Types(old)) => {
                        buffer.flush(conn, tenant)?;
                        put_entity(conn, tenant, rec, Some(old))?;
                    }
                    Some(PriorTypes::Unknown) | None => {
                        buffer.flush(conn, tenant)?;
                        put_entity_blind(conn, tenant, rec)?;
                    }
                }
            }
        }
    }
    buffer.flush(conn, tenant)
}

/// Whether two type lists hold the same types (the stored rows come back sorted by type).
fn same_types(old: &[String], new: &[String]) -> bool {
    old.len() == new.len() && new.iter().all(|t| old.contains(t))
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
            sql.push_str(
                "SELECT DISTINCT id FROM ngsi_entity_types WHERE tenant = ?1 AND type IN (",
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
        None => sql.push_str("SELECT id FROM ngsi_entities WHERE tenant = ?1"),
    }
    if let Some(ids) = &filter.ids {
        sql.push_str(" AND id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            args.push(id.clone());
            sql.push_str(&format!("?{}", args.len()));
        }
        sql.push(')');
    }
    sql.push_str(" ORDER BY id");
    let mut stmt = conn.prepare(&sql).map_err(backend)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |row| row.get::<_, String>(0))
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

/// Every entity of `tenant`, ordered by id, in two scans.
fn all_entities(conn: &Connection, tenant: &str) -> StoreResult<Vec<EntityRecord>> {
    let mut types: std::collections::HashMap<String, Vec<String>> = Default::default();
    {
        let mut stmt = conn
            .prepare_cached("SELECT id, type FROM ngsi_entity_types WHERE tenant = ?1")
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![tenant], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(backend)?;
        for row in rows {
            let (id, t) = row.map_err(backend)?;
            types.entry(id).or_default().push(t);
        }
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, doc, created_at, modified_at FROM ngsi_entities WHERE tenant = ?1 ORDER BY id",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![tenant], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, doc, created, modified) = row.map_err(backend)?;
        out.push(EntityRecord {
            types: types.remove(&id).unwrap_or_default(),
            id,
            doc,
            created_at: UnixMillis(created),
            modified_at: UnixMillis(modified),
        });
    }
    Ok(out)
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
            let old_types: Vec<PriorTypes> = current
                .iter()
                .map(|r| match r {
                    Some(r) => PriorTypes::Types(r.types.clone()),
                    None => PriorTypes::Absent,
                })
                .collect();
            let changes = modify(current);
            apply_changes(conn, &tenant, &ids, &changes, &old_types)
        })
        .await
    }

    fn modify_entities_blind(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        modify: EntityModifier,
        prior_types: Vec<PriorTypes>,
        history: TemporalWrite,
        on_commit: CommitHook,
    ) -> WriteFuture {
        let tenant = scope.tenant().as_str().to_owned();
        // The modifier reads nothing, so it runs here, and the write only reads its data:
        // the writer may run it again (see `SqliteStore::queue_rerunnable`).
        let changes = modify(ids.iter().map(|_| None).collect());
        Box::pin(self.queue_rerunnable(
            move |conn| {
                apply_changes(conn, &tenant, &ids, &changes, &prior_types)?;
                crate::ngsi_temporal::record(conn, &tenant, &history)
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
