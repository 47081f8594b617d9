//! `NgsiTemporalStore` on SQLite (migration 0007): one row per attribute instance, indexed by
//! (tenant, entity, attribute, observedAt) so `lastN` reads the newest N index entries of each
//! attribute backwards and stops, whatever the length of the history. Writes go through the
//! writer thread (group commit): an acknowledged write is committed.

use crate::SqliteStore;
use crate::engine::backend;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use store::{
    DatasetSelector, InstanceQuery, NgsiTemporalStore, StoreResult, TemporalEntityRecord,
    TemporalInstanceRecord, TemporalWrite, TenantScope, TimeColumn,
};

fn to_json(items: &[String]) -> String {
    serde_json::Value::Array(
        items
            .iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    )
    .to_string()
}

fn from_json(text: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(text).unwrap_or_default()
}

const ENTITY_COLUMNS: &str = "id, types, scope, created_at, modified_at, deleted_at";

fn entity_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TemporalEntityRecord> {
    Ok(TemporalEntityRecord {
        id: row.get(0)?,
        types: from_json(&row.get::<_, String>(1)?),
        scope: from_json(&row.get::<_, String>(2)?),
        created_at: row.get(3)?,
        modified_at: row.get(4)?,
        deleted_at: row.get(5)?,
    })
}

const INSTANCE_COLUMNS: &str = "entity_id, attribute, instance_id, dataset_id, observed_at, \
     has_observed, created_at, modified_at, deleted_at, doc";

fn instance_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TemporalInstanceRecord> {
    let has_observed: i64 = row.get(5)?;
    Ok(TemporalInstanceRecord {
        entity_id: row.get(0)?,
        attribute: row.get(1)?,
        instance_id: row.get(2)?,
        dataset_id: row.get(3)?,
        observed_at: (has_observed != 0).then(|| row.get(4)).transpose()?,
        created_at: row.get(6)?,
        modified_at: row.get(7)?,
        deleted_at: row.get(8)?,
        doc: row.get(9)?,
    })
}

fn put_entity(conn: &Connection, tenant: &str, e: &TemporalEntityRecord) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO ngsi_temporal_entities (tenant, id, types, scope, created_at, modified_at, deleted_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scope = excluded.scope, \
         created_at = MIN(created_at, excluded.created_at), \
         modified_at = MAX(modified_at, excluded.modified_at), deleted_at = excluded.deleted_at",
    )
    .map_err(backend)?
    .execute(params![
        tenant,
        e.id,
        to_json(&e.types),
        to_json(&e.scope),
        e.created_at,
        e.modified_at,
        e.deleted_at
    ])
    .map_err(backend)?;
    Ok(())
}

const INSTANCE_INSERT: &str = "INSERT INTO ngsi_temporal_instances (tenant, entity_id, attribute, \
     instance_id, dataset_id, observed_at, has_observed, created_at, modified_at, deleted_at, doc) VALUES ";
const INSTANCE_ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Instances inserted by one statement when a write has that many (fewer statements for
/// batch writes); the rest go one by one.
const INSTANCE_CHUNK: usize = 32;

fn bind_instance(
    stmt: &mut rusqlite::CachedStatement<'_>,
    at: usize,
    tenant: &str,
    i: &TemporalInstanceRecord,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at, tenant)?;
    stmt.raw_bind_parameter(at + 1, &i.entity_id)?;
    stmt.raw_bind_parameter(at + 2, &i.attribute)?;
    stmt.raw_bind_parameter(at + 3, &i.instance_id)?;
    stmt.raw_bind_parameter(at + 4, &i.dataset_id)?;
    stmt.raw_bind_parameter(at + 5, i.observed_at.unwrap_or(i.created_at))?;
    stmt.raw_bind_parameter(at + 6, i.observed_at.is_some() as i64)?;
    stmt.raw_bind_parameter(at + 7, i.created_at)?;
    stmt.raw_bind_parameter(at + 8, i.modified_at)?;
    stmt.raw_bind_parameter(at + 9, i.deleted_at)?;
    stmt.raw_bind_parameter(at + 10, &i.doc)
}

/// Inserts `rows` (1 or [`INSTANCE_CHUNK`] of them) with one statement.
fn insert_instances(
    conn: &Connection,
    tenant: &str,
    rows: &[TemporalInstanceRecord],
) -> StoreResult<()> {
    static ONE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{INSTANCE_INSERT}{INSTANCE_ROW}"));
    static CHUNK: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{INSTANCE_INSERT}{}",
            vec![INSTANCE_ROW; INSTANCE_CHUNK].join(", ")
        )
    });
    let sql: &str = if rows.len() == 1 { &ONE } else { &CHUNK };
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    for (n, i) in rows.iter().enumerate() {
        bind_instance(&mut stmt, 1 + n * 11, tenant, i).map_err(backend)?;
    }
    stmt.raw_execute().map_err(backend)?;
    Ok(())
}

/// Registers `attribute` as having instances (in first-recorded order), if it is not yet.
fn put_attribute(
    conn: &Connection,
    tenant: &str,
    entity_id: &str,
    attribute: &str,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO ngsi_temporal_attributes (tenant, entity_id, attribute, seq) \
         SELECT ?1, ?2, ?3, (SELECT COUNT(*) FROM ngsi_temporal_attributes WHERE tenant = ?1 AND entity_id = ?2) \
         WHERE NOT EXISTS (SELECT 1 FROM ngsi_temporal_attributes \
                           WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3)",
    )
    .map_err(backend)?
    .execute(params![tenant, entity_id, attribute])
    .map_err(backend)?;
    Ok(())
}

/// Appends `write` to the history of `tenant` (inside the caller's transaction): the
/// `record_temporal` contract, also used by entity writes that carry their history.
pub(crate) fn record(conn: &Connection, tenant: &str, write: &TemporalWrite) -> StoreResult<()> {
    for e in &write.entities {
        put_entity(conn, tenant, e)?;
    }
    for i in &write.instances {
        put_attribute(conn, tenant, &i.entity_id, &i.attribute)?;
    }
    let mut chunks = write.instances.chunks_exact(INSTANCE_CHUNK);
    for chunk in &mut chunks {
        insert_instances(conn, tenant, chunk)?;
    }
    for i in chunks.remainder() {
        insert_instances(conn, tenant, std::slice::from_ref(i))?;
    }
    Ok(())
}

fn attributes(conn: &Connection, tenant: &str, id: &str) -> StoreResult<Vec<String>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT attribute FROM ngsi_temporal_attributes WHERE tenant = ?1 AND entity_id = ?2 ORDER BY seq",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![tenant, id], |row| row.get::<_, String>(0))
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

/// Instances of one attribute per the query (ascending).
fn attribute_instances(
    conn: &Connection,
    tenant: &str,
    id: &str,
    attribute: &str,
    q: &InstanceQuery,
) -> StoreResult<Vec<TemporalInstanceRecord>> {
    let column = match q.column {
        TimeColumn::ObservedAt => "observed_at",
        TimeColumn::CreatedAt => "created_at",
        TimeColumn::ModifiedAt => "modified_at",
        TimeColumn::DeletedAt => "deleted_at",
    };
    let mut sql = format!(
        "SELECT {INSTANCE_COLUMNS} FROM ngsi_temporal_instances \
         WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3"
    );
    let mut args: Vec<rusqlite::types::Value> = vec![
        tenant.to_owned().into(),
        id.to_owned().into(),
        attribute.to_owned().into(),
    ];
    match q.column {
        TimeColumn::ObservedAt if q.from.is_some() || q.to.is_some() => {
            sql.push_str(" AND has_observed = 1");
        }
        TimeColumn::DeletedAt => sql.push_str(" AND deleted_at IS NOT NULL"),
        _ => {}
    }
    if let Some(from) = q.from {
        args.push(from.into());
        sql.push_str(&format!(" AND {column} >= ?{}", args.len()));
    }
    if let Some(to) = q.to {
        args.push(to.into());
        sql.push_str(&format!(" AND {column} < ?{}", args.len()));
    }
    let rows = if let Some(n) = q.last_n {
        args.push((n.min(i64::MAX as usize) as i64).into());
        sql.push_str(&format!(
            " ORDER BY {column} DESC, seq DESC LIMIT ?{}",
            args.len()
        ));
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), instance_from_row)
            .map_err(backend)?;
        let mut v = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
        v.reverse();
        v
    } else {
        sql.push_str(&format!(" ORDER BY {column}, seq"));
        if let Some(n) = q.first_n {
            args.push((n.min(i64::MAX as usize) as i64).into());
            sql.push_str(&format!(" LIMIT ?{}", args.len()));
        }
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), instance_from_row)
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)?
    };
    Ok(rows)
}

#[async_trait]
impl NgsiTemporalStore for SqliteStore {
    async fn record_temporal(&self, scope: &TenantScope, write: TemporalWrite) -> StoreResult<()> {
        if write.is_empty() {
            return Ok(());
        }
        let tenant = scope.tenant().as_str().to_owned();
        self.write(move |conn| record(conn, &tenant, &write)).await
    }

    async fn temporal_entity(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<TemporalEntityRecord>> {
        let tenant = scope.tenant().as_str().to_owned();
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {ENTITY_COLUMNS} FROM ngsi_temporal_entities WHERE tenant = ?1 AND id = ?2"
            ))
            .map_err(backend)?
            .query_row(params![tenant, id], entity_from_row)
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn temporal_entities(
        &self,
        scope: &TenantScope,
        ids: Option<&[String]>,
    ) -> StoreResult<Vec<TemporalEntityRecord>> {
        let tenant = scope.tenant().as_str().to_owned();
        let ids = ids.map(<[String]>::to_vec);
        self.read(move |conn| {
            let mut sql =
                format!("SELECT {ENTITY_COLUMNS} FROM ngsi_temporal_entities WHERE tenant = ?1");
            let mut args = vec![tenant];
            if let Some(ids) = ids {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                sql.push_str(" AND id IN (");
                for (i, id) in ids.into_iter().enumerate() {
                    if i > 0 {
                        sql.push(',');
                    }
                    args.push(id);
                    sql.push_str(&format!("?{}", args.len()));
                }
                sql.push(')');
            }
            sql.push_str(" ORDER BY id");
            let mut stmt = conn.prepare(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(params_from_iter(args.iter()), entity_from_row)
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn temporal_attributes(&self, scope: &TenantScope, id: &str) -> StoreResult<Vec<String>> {
        let tenant = scope.tenant().as_str().to_owned();
        let id = id.to_owned();
        self.read(move |conn| attributes(conn, &tenant, &id)).await
    }

    async fn temporal_instances(
        &self,
        scope: &TenantScope,
        id: &str,
        query: &InstanceQuery,
    ) -> StoreResult<Vec<TemporalInstanceRecord>> {
        let tenant = scope.tenant().as_str().to_owned();
        let id = id.to_owned();
        let query = query.clone();
        self.read(move |conn| {
            let names = match &query.attributes {
                Some(a) => a.clone(),
                None => attributes(conn, &tenant, &id)?,
            };
            let mut out = Vec::new();
            for name in names {
                out.extend(attribute_instances(conn, &tenant, &id, &name, &query)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_temporal_entity(&self, scope: &TenantScope, id: &str) -> StoreResult<bool> {
        let tenant = scope.tenant().as_str().to_owned();
        let id = id.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(
                "DELETE FROM ngsi_temporal_instances WHERE tenant = ?1 AND entity_id = ?2",
            )
            .map_err(backend)?
            .execute(params![tenant, id])
            .map_err(backend)?;
            conn.prepare_cached(
                "DELETE FROM ngsi_temporal_attributes WHERE tenant = ?1 AND entity_id = ?2",
            )
            .map_err(backend)?
            .execute(params![tenant, id])
            .map_err(backend)?;
            let n = conn
                .prepare_cached("DELETE FROM ngsi_temporal_entities WHERE tenant = ?1 AND id = ?2")
                .map_err(backend)?
                .execute(params![tenant, id])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_temporal_attribute(
        &self,
        scope: &TenantScope,
        id: &str,
        attribute: &str,
        dataset: &DatasetSelector,
    ) -> StoreResult<u64> {
        let tenant = scope.tenant().as_str().to_owned();
        let id = id.to_owned();
        let attribute = attribute.to_owned();
        let dataset = dataset.clone();
        self.write(move |conn| {
            let base = "DELETE FROM ngsi_temporal_instances WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3";
            let n = match &dataset {
                DatasetSelector::All => conn
                    .execute(base, params![tenant, id, attribute])
                    .map_err(backend)?,
                DatasetSelector::Default => conn
                    .execute(
                        &format!("{base} AND dataset_id IS NULL"),
                        params![tenant, id, attribute],
                    )
                    .map_err(backend)?,
                DatasetSelector::Id(d) => conn
                    .execute(
                        &format!("{base} AND dataset_id = ?4"),
                        params![tenant, id, attribute, d],
                    )
                    .map_err(backend)?,
            };
            let left: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM ngsi_temporal_instances \
                     WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3 LIMIT 1)",
                    params![tenant, id, attribute],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if left == 0 {
                conn.execute(
                    "DELETE FROM ngsi_temporal_attributes WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3",
                    params![tenant, id, attribute],
                )
                .map_err(backend)?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn update_temporal_instance(
        &self,
        scope: &TenantScope,
        instance: &TemporalInstanceRecord,
    ) -> StoreResult<bool> {
        let tenant = scope.tenant().as_str().to_owned();
        let i = instance.clone();
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE ngsi_temporal_instances SET doc = ?5, \
                     observed_at = COALESCE(?6, created_at), has_observed = ?7, modified_at = ?8 \
                     WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3 AND instance_id = ?4",
                )
                .map_err(backend)?
                .execute(params![
                    tenant,
                    i.entity_id,
                    i.attribute,
                    i.instance_id,
                    i.doc,
                    i.observed_at,
                    i.observed_at.is_some() as i64,
                    i.modified_at
                ])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_temporal_instance(
        &self,
        scope: &TenantScope,
        id: &str,
        attribute: &str,
        instance_id: &str,
    ) -> StoreResult<bool> {
        let tenant = scope.tenant().as_str().to_owned();
        let (id, attribute, instance_id) =
            (id.to_owned(), attribute.to_owned(), instance_id.to_owned());
        self.write(move |conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM ngsi_temporal_instances \
                     WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3 AND instance_id = ?4",
                )
                .map_err(backend)?
                .execute(params![tenant, id, attribute, instance_id])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }
}
