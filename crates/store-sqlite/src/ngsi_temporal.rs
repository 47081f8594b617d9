//! `NgsiTemporalStore` on SQLite (migrations 0007 and 0009): every (tenant, entity, attribute)
//! with instances is a *series* with an integer id (`ngsi_temporal_series`), and one row per
//! attribute instance is indexed by (series, observedAt), so `lastN` reads the newest N index
//! entries of each attribute backwards and stops, whatever the length of the history. Series
//! ids grow: an entity's attributes in first-recorded order are its series in id order, and
//! the instances of a new series are appended at the right edge of the instance indexes.
//! Writes go through the writer thread (group commit): an acknowledged write is committed.

use crate::SqliteStore;
use crate::engine::backend;
use crate::multi_row::MultiRow;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use store::{
    DatasetSelector, InstanceQuery, NgsiTemporalStore, StoreResult, TemporalEntityRecord,
    TemporalInstanceRecord, TemporalWrite, TenantScope, TimeColumn,
};

fn to_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
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

const INSTANCE_COLUMNS: &str = "instance_id, dataset_id, observed_at, has_observed, created_at, \
     modified_at, deleted_at, doc";

fn instance_from_row(
    row: &rusqlite::Row<'_>,
    entity_id: &str,
    attribute: &str,
) -> rusqlite::Result<TemporalInstanceRecord> {
    let has_observed: i64 = row.get(3)?;
    Ok(TemporalInstanceRecord {
        entity_id: entity_id.to_owned(),
        attribute: attribute.to_owned(),
        instance_id: row.get(0)?,
        dataset_id: row.get(1)?,
        observed_at: (has_observed != 0).then(|| row.get(2)).transpose()?,
        created_at: row.get(4)?,
        modified_at: row.get(5)?,
        deleted_at: row.get(6)?,
        doc: row.get(7)?,
    })
}

/// The series of one attribute, if it has one.
fn series_of(
    conn: &Connection,
    tenant: &str,
    entity_id: &str,
    attribute: &str,
) -> StoreResult<Option<i64>> {
    conn.prepare_cached(
        "SELECT series FROM ngsi_temporal_series WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3",
    )
    .map_err(backend)?
    .query_row(params![tenant, entity_id, attribute], |row| row.get(0))
    .optional()
    .map_err(backend)
}

/// New series, in multi-row statements: `ON CONFLICT DO NOTHING` skips those that exist.
static SERIES_INSERT: std::sync::LazyLock<MultiRow> = std::sync::LazyLock::new(|| {
    MultiRow::new(
        "INSERT OR FAIL INTO ngsi_temporal_series (tenant, entity_id, attribute) VALUES",
        "(?, ?, ?)",
        "ON CONFLICT DO NOTHING",
    )
});

/// The series of each (entity id, attribute) of `keys`, created in that order where missing
/// (so an entity's attributes keep their first-recorded order).
///
/// Keys marked `existing` (their entity had history before this write, as far as the caller
/// can tell) are looked up first, and only those not found are inserted: for an entity that
/// is written again, a failed insert and then a lookup per attribute was a quarter of the
/// writer's time in batches of updates (profiled). The mark is a hint; either way every key
/// ends with its series.
fn series_for(
    conn: &Connection,
    tenant: &str,
    keys: &[(&str, &str)],
    existing: &[bool],
) -> StoreResult<Vec<i64>> {
    let mut ids = vec![0; keys.len()];
    // The keys to insert, in order (so that an entity's new attributes keep their order).
    let mut missing: Vec<usize> = Vec::with_capacity(keys.len());
    for (k, &(entity_id, attribute)) in keys.iter().enumerate() {
        match existing[k]
            .then(|| series_of(conn, tenant, entity_id, attribute))
            .transpose()?
            .flatten()
        {
            Some(id) => ids[k] = id,
            None => missing.push(k),
        }
    }
    if missing.len() < keys.len() {
        let subset: Vec<(&str, &str)> = missing.iter().map(|&k| keys[k]).collect();
        let found = insert_series(conn, tenant, &subset)?;
        for (k, id) in missing.into_iter().zip(found) {
            ids[k] = id;
        }
        return Ok(ids);
    }
    insert_series(conn, tenant, keys)
}

/// The series of `keys`, created in that order where missing; their ids in order.
///
/// The keys go in multi-row inserts (a batch of new entities creates thousands of series;
/// one statement each was 13% of the writer's time). When a statement inserted all of its
/// rows, they received consecutive rowids in `VALUES` order ending at `last_insert_rowid()`:
/// without `AUTOINCREMENT`, SQLite gives each new row one more than the table's largest
/// rowid, and only picks at random once that largest is `i64::MAX` (checked). Otherwise (some
/// existed) each key of the statement is looked up: all exist by then.
fn insert_series(conn: &Connection, tenant: &str, keys: &[(&str, &str)]) -> StoreResult<Vec<i64>> {
    let mut ids = vec![0; keys.len()];
    let look_up = |conn: &Connection, (entity_id, attribute): (&str, &str)| {
        series_of(conn, tenant, entity_id, attribute)?.ok_or_else(|| {
            store::StoreError::backend(format!(
                "temporal series of {entity_id} {attribute} vanished"
            ))
        })
    };
    SERIES_INSERT.run_then(
        conn,
        keys,
        |stmt, at, (entity_id, attribute)| {
            stmt.raw_bind_parameter(at, tenant)?;
            stmt.raw_bind_parameter(at + 1, entity_id)?;
            stmt.raw_bind_parameter(at + 2, attribute)
        },
        |conn, range| {
            let n = range.len() as i64;
            let last = conn.last_insert_rowid();
            if conn.changes() == range.len() as u64 && last < i64::MAX {
                for (k, id) in range.zip(last - n + 1..) {
                    ids[k] = id;
                }
            } else {
                for k in range {
                    ids[k] = look_up(conn, keys[k])?;
                }
            }
            Ok(())
        },
    )?;
    Ok(ids)
}

/// The temporal entity rows of a write, in multi-row upserts.
static ENTITY_UPSERT: std::sync::LazyLock<MultiRow> = std::sync::LazyLock::new(|| {
    MultiRow::new(
        "INSERT OR FAIL INTO ngsi_temporal_entities (tenant, id, types, scope, created_at, modified_at, \
         deleted_at) VALUES",
        "(?, ?, ?, ?, ?, ?, ?)",
        "ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scope = excluded.scope, \
         created_at = MIN(created_at, excluded.created_at), \
         modified_at = MAX(modified_at, excluded.modified_at), deleted_at = excluded.deleted_at",
    )
});

fn put_entities(
    conn: &Connection,
    tenant: &str,
    entities: &[TemporalEntityRecord],
) -> StoreResult<()> {
    let rows: Vec<(&TemporalEntityRecord, String, String)> = entities
        .iter()
        .map(|e| (e, to_json(&e.types), to_json(&e.scope)))
        .collect();
    ENTITY_UPSERT.run(conn, &rows, |stmt, at, (e, types, scope)| {
        stmt.raw_bind_parameter(at, tenant)?;
        stmt.raw_bind_parameter(at + 1, &e.id)?;
        stmt.raw_bind_parameter(at + 2, types)?;
        stmt.raw_bind_parameter(at + 3, scope)?;
        stmt.raw_bind_parameter(at + 4, e.created_at)?;
        stmt.raw_bind_parameter(at + 5, e.modified_at)?;
        stmt.raw_bind_parameter(at + 6, e.deleted_at)
    })
}

/// The instance rows of a write, in multi-row statements.
static INSTANCE_INSERT: std::sync::LazyLock<MultiRow> = std::sync::LazyLock::new(|| {
    MultiRow::new(
        "INSERT OR FAIL INTO ngsi_temporal_instances (series, instance_id, dataset_id, observed_at, \
         has_observed, created_at, modified_at, deleted_at, doc) VALUES",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "",
    )
});

fn bind_instance(
    stmt: &mut rusqlite::CachedStatement<'_>,
    at: usize,
    (series, i): &(i64, &TemporalInstanceRecord),
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at, series)?;
    stmt.raw_bind_parameter(at + 1, &i.instance_id)?;
    stmt.raw_bind_parameter(at + 2, &i.dataset_id)?;
    stmt.raw_bind_parameter(at + 3, i.observed_at.unwrap_or(i.created_at))?;
    stmt.raw_bind_parameter(at + 4, i.observed_at.is_some() as i64)?;
    stmt.raw_bind_parameter(at + 5, i.created_at)?;
    stmt.raw_bind_parameter(at + 6, i.modified_at)?;
    stmt.raw_bind_parameter(at + 7, i.deleted_at)?;
    stmt.raw_bind_parameter(at + 8, &i.doc)
}

/// Appends `write` to the history of `tenant` (inside the caller's transaction): the
/// `record_temporal` contract, also used by entity writes that carry their history.
pub(crate) fn record(conn: &Connection, tenant: &str, write: &TemporalWrite) -> StoreResult<()> {
    put_entities(conn, tenant, &write.entities)?;
    // The series of each instance, in order (an attribute's series is created at its first
    // instance, so attributes keep their first-recorded order). A write lists one entity's
    // instances after another, so its distinct (entity, attribute) keys are collected with a
    // short list of the current entity's attributes: no hash of (entity id, attribute IRI) per
    // instance, which profiling showed to be 8% of the writer's time in batches. An entity that
    // comes back later in the write adds its keys again; `series_for` resolves the repeats.
    //
    // An entity whose record in this write was created before it is modified here existed
    // before the write (a new entity is created and modified at once), so its series are
    // probably there: `series_for` looks those up first. The entity records of a write usually
    // come in the order of its instances; a cursor finds them without hashing, and an entity
    // it does not find gets no mark.
    let mut keys: Vec<(&str, &str)> = Vec::with_capacity(write.instances.len());
    let mut existing: Vec<bool> = Vec::with_capacity(write.instances.len());
    let mut slots: Vec<usize> = Vec::with_capacity(write.instances.len());
    let mut entity: Option<&str> = None;
    let mut entity_existed = false;
    let mut next_record = 0;
    let mut known: Vec<(&str, usize)> = Vec::new();
    for i in &write.instances {
        if entity != Some(i.entity_id.as_str()) {
            entity = Some(i.entity_id.as_str());
            known.clear();
            // A few records may come first that have no instances (an entity deleted, or
            // written again unchanged): look past up to four of them.
            let mut ahead = write.entities.iter().enumerate().skip(next_record).take(5);
            entity_existed = match ahead.find(|(_, r)| r.id == i.entity_id) {
                Some((at, r)) => {
                    next_record = at + 1;
                    r.created_at < r.modified_at
                }
                None => false,
            };
        }
        let slot = match known.iter().find(|(a, _)| *a == i.attribute) {
            Some(&(_, slot)) => slot,
            None => {
                keys.push((&i.entity_id, &i.attribute));
                existing.push(entity_existed);
                known.push((&i.attribute, keys.len() - 1));
                keys.len() - 1
            }
        };
        slots.push(slot);
    }
    let series = series_for(conn, tenant, &keys, &existing)?;
    let rows: Vec<(i64, &TemporalInstanceRecord)> = slots
        .iter()
        .zip(&write.instances)
        .map(|(&slot, i)| (series[slot], i))
        .collect();
    INSTANCE_INSERT.run(conn, &rows, bind_instance)
}

fn attributes(conn: &Connection, tenant: &str, id: &str) -> StoreResult<Vec<String>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT attribute FROM ngsi_temporal_series WHERE tenant = ?1 AND entity_id = ?2 ORDER BY series",
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
    let Some(series) = series_of(conn, tenant, id, attribute)? else {
        return Ok(Vec::new());
    };
    let mut sql =
        format!("SELECT {INSTANCE_COLUMNS} FROM ngsi_temporal_instances WHERE series = ?1");
    let mut args: Vec<rusqlite::types::Value> = vec![series.into()];
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
            .query_map(params_from_iter(args.iter()), |row| {
                instance_from_row(row, id, attribute)
            })
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
            .query_map(params_from_iter(args.iter()), |row| {
                instance_from_row(row, id, attribute)
            })
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
                "DELETE FROM ngsi_temporal_instances WHERE series IN \
                 (SELECT series FROM ngsi_temporal_series WHERE tenant = ?1 AND entity_id = ?2)",
            )
            .map_err(backend)?
            .execute(params![tenant, id])
            .map_err(backend)?;
            conn.prepare_cached(
                "DELETE FROM ngsi_temporal_series WHERE tenant = ?1 AND entity_id = ?2",
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
            let Some(series) = series_of(conn, &tenant, &id, &attribute)? else {
                return Ok(0);
            };
            let base = "DELETE FROM ngsi_temporal_instances WHERE series = ?1";
            let n = match &dataset {
                DatasetSelector::All => conn.execute(base, params![series]).map_err(backend)?,
                DatasetSelector::Default => conn
                    .execute(&format!("{base} AND dataset_id IS NULL"), params![series])
                    .map_err(backend)?,
                DatasetSelector::Id(d) => conn
                    .execute(&format!("{base} AND dataset_id = ?2"), params![series, d])
                    .map_err(backend)?,
            };
            let left: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM ngsi_temporal_instances \
                     WHERE series = ?1 LIMIT 1)",
                    params![series],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if left == 0 {
                conn.execute(
                    "DELETE FROM ngsi_temporal_series WHERE series = ?1",
                    params![series],
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
                     WHERE series = (SELECT series FROM ngsi_temporal_series \
                     WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3) AND instance_id = ?4",
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
                     WHERE series = (SELECT series FROM ngsi_temporal_series \
                     WHERE tenant = ?1 AND entity_id = ?2 AND attribute = ?3) AND instance_id = ?4",
                )
                .map_err(backend)?
                .execute(params![tenant, id, attribute, instance_id])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }
}
