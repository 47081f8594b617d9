//! `NgsiTemporalStore` on SQLite (migrations 0007, 0009, 0011, 0012 and 0013): every (tenant,
//! entity, attribute) with instances is a *series* with an integer id, listed in the temporal
//! entity (the temporal part of the entity's row in `ngsi_entities`, beside its current state)
//! with the entity's other series in first-recorded order, and one row per attribute
//! instance is indexed by (series, observedAt), so `lastN` reads the newest N index entries of
//! each attribute backwards and stops, whatever the length of the history. Series ids grow
//! (see [`SeriesIds`]): the instances of a new series are appended at the right edge of the
//! instance indexes. An instance written without an id is known by its row number
//! ([`minted_instance_id`]), so it costs no entry in a unique text index; ids given by the
//! writer are kept in a partial unique index. Writes go through the writer thread (group
//! commit): an acknowledged write is committed.

use crate::SqliteStore;
use crate::engine::backend;
use crate::multi_row::{CHUNKS, MultiRow, Statements, chunks};
use async_trait::async_trait;
use foldhash::{HashMapExt, HashSetExt};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use store::{
    DatasetSelector, EntityRecord, InstanceQuery, NgsiTemporalStore, StoreResult,
    TemporalEntityRecord, TemporalInstanceRecord, TemporalWrite, TenantScope, TimeColumn,
};

fn to_json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn from_json(text: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(text).unwrap_or_default()
}

/// A temporal entity is the temporal part of its row in `ngsi_entities` (migration 0013);
/// `temporal_types IS NULL` means the row holds none.
const ENTITY_COLUMNS: &str = "id, temporal_types, temporal_scope, temporal_created_at, \
     temporal_modified_at, temporal_deleted_at";

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

const INSTANCE_COLUMNS: &str = "seq, instance_id, dataset_id, observed_at, has_observed, \
     created_at, modified_at, deleted_at, doc";

/// What the ids the store mints start with; the row number follows in decimal.
const MINTED_PREFIX: &str = "urn:ngsi-ld:Instance:";

/// The id of the instance in row `seq` that was written without one.
fn minted_instance_id(seq: i64) -> String {
    format!("{MINTED_PREFIX}{seq}")
}

/// The row of a minted id (`None`: not of the minted form, exactly as
/// [`minted_instance_id`] writes it).
fn minted_seq(instance_id: &str) -> Option<i64> {
    let digits = instance_id.strip_prefix(MINTED_PREFIX)?;
    let seq: i64 = digits.parse().ok().filter(|&seq| seq > 0)?;
    (seq.to_string() == digits).then_some(seq)
}

/// How a write stores a given instance id: a minted one has no text of its own (`''`).
fn stored_instance_id(instance_id: Option<&str>) -> StoreResult<&str> {
    match instance_id {
        None => Ok(""),
        Some(id) if id.is_empty() || minted_seq(id).is_some() => Err(store::StoreError::new(
            store::StoreErrorKind::InvalidInput,
            format!("instance id `{id}` is reserved for ids the store mints"),
        )),
        Some(id) => Ok(id),
    }
}

fn instance_from_row(
    row: &rusqlite::Row<'_>,
    entity_id: &str,
    attribute: &str,
) -> rusqlite::Result<TemporalInstanceRecord> {
    let has_observed: i64 = row.get(4)?;
    let given: String = row.get(1)?;
    Ok(TemporalInstanceRecord {
        entity_id: entity_id.to_owned(),
        attribute: attribute.to_owned(),
        instance_id: Some(if given.is_empty() {
            minted_instance_id(row.get(0)?)
        } else {
            given
        }),
        dataset_id: row.get(2)?,
        observed_at: (has_observed != 0).then(|| row.get(3)).transpose()?,
        created_at: row.get(5)?,
        modified_at: row.get(6)?,
        deleted_at: row.get(7)?,
        doc: row.get(8)?,
    })
}

/// An entity's series: each attribute with instances and its series id, in first-recorded
/// order (migration 0011: a JSON array of `[attribute, series]` pairs in the temporal entity's
/// row).
type SeriesMap = Vec<(String, i64)>;

fn parse_series(text: Option<String>) -> rusqlite::Result<SeriesMap> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        }),
    }
}

fn series_json(map: &SeriesMap) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "[]".to_owned())
}

/// The series of an entity (`None`: its row holds no temporal entity).
fn series_map(conn: &Connection, tenant: &str, entity_id: &str) -> StoreResult<Option<SeriesMap>> {
    conn.prepare_cached(
        "SELECT series FROM ngsi_entities \
         WHERE tenant = ?1 AND id = ?2 AND temporal_types IS NOT NULL",
    )
    .map_err(backend)?
    .query_row(params![tenant, entity_id], |row| parse_series(row.get(0)?))
    .optional()
    .map_err(backend)
}

/// The series of each of `ids` (distinct) whose row holds a temporal entity, read for many
/// ids per statement: one lookup statement per entity of a batch cost 6-9% of the writer's
/// time in batch upserts, most of it the statement's own cost (binding, the program's
/// prologue, the reset) rather than the B-tree search.
fn series_maps<'a>(
    conn: &Connection,
    tenant: &str,
    ids: &[&'a str],
) -> StoreResult<foldhash::HashMap<&'a str, SeriesMap>> {
    static SQL: std::sync::LazyLock<[String; CHUNKS.len()]> = std::sync::LazyLock::new(|| {
        CHUNKS.map(|n| {
            format!(
                "SELECT id, series FROM ngsi_entities \
                 WHERE tenant = ? AND temporal_types IS NOT NULL AND id IN ({})",
                vec!["?"; n].join(", ")
            )
        })
    });
    let mut out = foldhash::HashMap::with_capacity(ids.len());
    let mut statements = Statements::default();
    for (size, chunk) in chunks(ids) {
        let stmt = statements.get(conn, size, &SQL[size])?;
        stmt.raw_bind_parameter(1, tenant).map_err(backend)?;
        for (n, id) in chunk.iter().enumerate() {
            stmt.raw_bind_parameter(2 + n, id).map_err(backend)?;
        }
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(backend)? {
            let id = row
                .get_ref(0)
                .and_then(|v| Ok(v.as_str()?))
                .map_err(backend)?;
            if let Some(key) = chunk.iter().find(|c| **c == id) {
                out.insert(
                    *key,
                    parse_series(row.get(1).map_err(backend)?).map_err(backend)?,
                );
            }
        }
    }
    Ok(out)
}

/// The series of one attribute, if it has one.
fn series_of(
    conn: &Connection,
    tenant: &str,
    entity_id: &str,
    attribute: &str,
) -> StoreResult<Option<i64>> {
    Ok(series_map(conn, tenant, entity_id)?
        .unwrap_or_default()
        .into_iter()
        .find_map(|(a, series)| (a == attribute).then_some(series)))
}

fn store_series_map(
    conn: &Connection,
    tenant: &str,
    entity_id: &str,
    map: &SeriesMap,
) -> StoreResult<()> {
    let text = (!map.is_empty()).then(|| series_json(map));
    conn.prepare_cached(
        "UPDATE ngsi_entities SET series = ?3 \
         WHERE tenant = ?1 AND id = ?2 AND temporal_types IS NOT NULL",
    )
    .map_err(backend)?
    .execute(params![tenant, entity_id, text])
    .map_err(backend)?;
    Ok(())
}

/// Ids reserved ahead in `ngsi_temporal_counters` at a time: the counter row is written once
/// per this many new series, not in every write.
const SERIES_BLOCK: i64 = 4096;

/// Numbers new series on the writer. Ids grow, so the instances of a new series are appended
/// at the right edge of the instance indexes, and an entity's series in id order are its
/// attributes in first-recorded order.
///
/// The counter row holds a number above every id handed out: each write that needs ids reads
/// it in its own transaction, takes them from the block this writer reserved last if the row
/// still holds that reservation, and otherwise (the first write after a start, a reservation
/// rolled back, or another process writing the same file) from the row's number on, moving the
/// row past them in the same transaction. Ids taken by a write that is rolled back stay taken
/// here (gaps only), so no id is handed out twice.
#[derive(Debug, Default)]
pub(crate) struct SeriesIds {
    /// The next id of this writer's block, and the row's number that reserved the block.
    block: std::sync::Mutex<Option<(i64, i64)>>,
}

impl SeriesIds {
    /// `n` new consecutive ids, the first returned.
    fn take(&self, conn: &Connection, n: usize) -> StoreResult<i64> {
        let reserved: i64 = conn
            .prepare_cached("SELECT next FROM ngsi_temporal_counters WHERE name = 'series'")
            .map_err(backend)?
            .query_row([], |row| row.get(0))
            .optional()
            .map_err(backend)?
            .unwrap_or(1);
        let mut block = self
            .block
            .lock()
            .map_err(|_| store::StoreError::backend("the series counter is poisoned"))?;
        let first = match *block {
            Some((next, end)) if end == reserved => next,
            // Past anything this writer took (a rolled-back reservation leaves the row lower).
            Some((next, _)) => next.max(reserved),
            None => reserved,
        };
        let end = first
            .checked_add(n as i64)
            .ok_or_else(|| store::StoreError::backend("temporal series ids are exhausted"))?;
        // The row covers `first..end` unless they reach past it (always the case when `first`
        // did not come from this writer's block).
        let mut block_end = reserved;
        if end > reserved {
            block_end = end.saturating_add(SERIES_BLOCK);
            conn.prepare_cached(
                "INSERT INTO ngsi_temporal_counters (name, next) VALUES ('series', ?1) \
                 ON CONFLICT (name) DO UPDATE SET next = excluded.next",
            )
            .map_err(backend)?
            .execute(params![block_end])
            .map_err(backend)?;
        }
        *block = Some((end, block_end));
        Ok(first)
    }
}

/// How an upsert updates the temporal part of an existing row: a row's series are replaced
/// only when the write gives them (`NULL` keeps them); a row without a temporal part yet
/// takes the write's times (a comparison with `NULL` is not true).
///
/// The earlier and later times are chosen with `CASE`, not `MIN`/`MAX`: SQLite gives a
/// multi-row statement that calls those functions in its `UPDATE` a statement journal (as it
/// does for a `CHECK` there, see migration 0014), copying every page the statement touches
/// in case it fails halfway; that was a twentieth of the writer's time in batch upserts.
const TEMPORAL_UPDATE: &str = "temporal_types = excluded.temporal_types, \
     temporal_scope = excluded.temporal_scope, \
     temporal_created_at = CASE WHEN temporal_created_at < excluded.temporal_created_at \
         THEN temporal_created_at ELSE excluded.temporal_created_at END, \
     temporal_modified_at = CASE WHEN temporal_modified_at > excluded.temporal_modified_at \
         THEN temporal_modified_at ELSE excluded.temporal_modified_at END, \
     temporal_deleted_at = excluded.temporal_deleted_at, \
     series = COALESCE(excluded.series, series)";

/// The temporal entity parts of a write's rows, in multi-row upserts (the current entity's
/// part of a row is left as it is).
static ENTITY_UPSERT: std::sync::LazyLock<MultiRow> = std::sync::LazyLock::new(|| {
    MultiRow::new(
        "INSERT OR FAIL INTO ngsi_entities (tenant, id, temporal_types, temporal_scope, \
         temporal_created_at, temporal_modified_at, temporal_deleted_at, series) VALUES",
        "(?, ?, ?, ?, ?, ?, ?, ?)",
        &format!("ON CONFLICT (tenant, id) DO UPDATE SET {TEMPORAL_UPDATE}"),
    )
});

/// Rows written with both parts: the current entity and the temporal entity of one id in one
/// statement, so the row is written once (updating it twice, as the two parts grow it, cost
/// more than the two tables before migration 0013).
static BOTH_UPSERT: std::sync::LazyLock<MultiRow> = std::sync::LazyLock::new(|| {
    MultiRow::new(
        "INSERT OR FAIL INTO ngsi_entities (tenant, id, temporal_types, temporal_scope, \
         temporal_created_at, temporal_modified_at, temporal_deleted_at, series, \
         doc, created_at, modified_at, types) VALUES",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &format!(
            "ON CONFLICT (tenant, id) DO UPDATE SET doc = excluded.doc, \
             created_at = excluded.created_at, modified_at = excluded.modified_at, \
             types = excluded.types, {TEMPORAL_UPDATE}"
        ),
    )
});

/// A temporal entity row of a write: its types, scope and series (if they change) as text.
type EntityRow<'a> = (&'a TemporalEntityRecord, String, String, Option<&'a str>);

fn bind_entity_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    at: usize,
    tenant: &str,
    (e, types, scope, series): &EntityRow<'_>,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at, tenant)?;
    stmt.raw_bind_parameter(at + 1, &e.id)?;
    stmt.raw_bind_parameter(at + 2, types)?;
    stmt.raw_bind_parameter(at + 3, scope)?;
    stmt.raw_bind_parameter(at + 4, e.created_at)?;
    stmt.raw_bind_parameter(at + 5, e.modified_at)?;
    stmt.raw_bind_parameter(at + 6, e.deleted_at)?;
    stmt.raw_bind_parameter(at + 7, series)
}

fn put_entities(conn: &Connection, tenant: &str, rows: &[EntityRow<'_>]) -> StoreResult<()> {
    ENTITY_UPSERT.run(conn, rows, |stmt, at, row| {
        bind_entity_row(stmt, at, tenant, row)
    })
}

/// The temporal entity rows of a write that also puts the current entities `current`
/// (distinct ids): a row with both parts is written by one statement, then the rows with
/// only one of them.
fn put_entities_with_current(
    conn: &Connection,
    tenant: &str,
    rows: Vec<EntityRow<'_>>,
    current: &[&EntityRecord],
) -> StoreResult<()> {
    let mut by_id: foldhash::HashMap<&str, &EntityRecord> =
        current.iter().map(|rec| (rec.id.as_str(), *rec)).collect();
    let mut both = Vec::with_capacity(rows.len());
    let mut temporal_only = Vec::new();
    for row in rows {
        // A second temporal record of one id updates the row after the first, as before.
        match by_id.remove(row.0.id.as_str()) {
            // The current types are usually the temporal entity's: their text is made once.
            Some(rec) => {
                let types = (rec.types != row.0.types).then(|| crate::ngsi::types_json(&rec.types));
                both.push((row, rec, types));
            }
            None => temporal_only.push(row),
        }
    }
    let current_only: Vec<&EntityRecord> = current
        .iter()
        .filter(|rec| by_id.contains_key(rec.id.as_str()))
        .copied()
        .collect();
    crate::ngsi::put_current(conn, tenant, &current_only)?;
    BOTH_UPSERT.run(conn, &both, |stmt, at, (row, rec, types)| {
        bind_entity_row(stmt, at, tenant, row)?;
        stmt.raw_bind_parameter(at + 8, &rec.doc)?;
        stmt.raw_bind_parameter(at + 9, rec.created_at.0)?;
        stmt.raw_bind_parameter(at + 10, rec.modified_at.0)?;
        stmt.raw_bind_parameter(at + 11, types.as_deref().unwrap_or(&row.1))
    })?;
    put_entities(conn, tenant, &temporal_only)
}

/// The instance rows of a write, in multi-row statements.
static INSTANCE_INSERT: std::sync::LazyLock<MultiRow> = std::sync::LazyLock::new(|| {
    MultiRow::new(
        "INSERT OR FAIL INTO ngsi_temporal_instances (series, instance_id, dataset_id, \
         observed_at, has_observed, created_at, modified_at, deleted_at, doc) VALUES",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "",
    )
});

/// An instance row of a write: its series, stored id and record.
type InstanceRow<'a> = (i64, &'a str, &'a TemporalInstanceRecord);

// The row number is left to SQLite: naming it in the INSERT would make SQLite keep a
// statement journal for every multi-row insert (it checks that the value is an integer as it
// goes), which copied each page the statement touched.
fn bind_instance(
    stmt: &mut rusqlite::CachedStatement<'_>,
    at: usize,
    (series, instance_id, i): &InstanceRow<'_>,
) -> rusqlite::Result<()> {
    stmt.raw_bind_parameter(at, series)?;
    stmt.raw_bind_parameter(at + 1, instance_id)?;
    stmt.raw_bind_parameter(at + 2, &i.dataset_id)?;
    stmt.raw_bind_parameter(at + 3, i.observed_at.unwrap_or(i.created_at))?;
    stmt.raw_bind_parameter(at + 4, i.observed_at.is_some() as i64)?;
    stmt.raw_bind_parameter(at + 5, i.created_at)?;
    stmt.raw_bind_parameter(at + 6, i.modified_at)?;
    stmt.raw_bind_parameter(at + 7, i.deleted_at)?;
    stmt.raw_bind_parameter(at + 8, &i.doc)
}

/// The series of one entity in a write: read from its row, extended by the write.
struct EntitySeries<'a> {
    entity_id: &'a str,
    map: SeriesMap,
    /// New attributes were added (their ids are assigned once all are known).
    grown: bool,
    /// The write carries a record of this entity (which then stores the series).
    has_record: bool,
}

/// Appends `write` to the history of `tenant` (inside the caller's transaction): the
/// `record_temporal` contract, also used by entity writes that carry their history. Such a
/// write may hand over its current entities (`current_entities`, distinct ids) to be written
/// here, in the same rows as their temporal entities.
pub(crate) fn record(
    conn: &Connection,
    tenant: &str,
    write: &TemporalWrite,
    ids: &SeriesIds,
    current_entities: &[&EntityRecord],
) -> StoreResult<()> {
    // The series of each instance. Each entity's series are read once, from its row (a write
    // lists one entity's instances after another, so the entity is looked up only when it
    // changes); an attribute without one gets a new series, numbered below once all are known,
    // in order of first appearance (so an entity's attributes keep their first-recorded order).
    // Sized for the write's temporal entities, usually one per entity with instances: these
    // maps grew by rehashing, several times per batch.
    let expected = write.entities.len();
    let mut entities: Vec<EntitySeries<'_>> = Vec::with_capacity(expected);
    let mut by_id: foldhash::HashMap<&str, usize> = foldhash::HashMap::with_capacity(expected);
    let mut slots: Vec<(usize, usize)> = Vec::with_capacity(write.instances.len());
    let mut current: Option<usize> = None;
    let mut new_series = 0;
    // The entities in order of first appearance; their instances usually come together.
    let mut seen = foldhash::HashSet::with_capacity(expected);
    let mut distinct: Vec<&str> = Vec::with_capacity(expected);
    for i in &write.instances {
        let id = i.entity_id.as_str();
        if distinct.last() != Some(&id) && seen.insert(id) {
            distinct.push(id);
        }
    }
    let mut stored = series_maps(conn, tenant, &distinct)?;
    for i in &write.instances {
        let e = match current {
            Some(e) if entities[e].entity_id == i.entity_id => e,
            _ => {
                let e = match by_id.get(i.entity_id.as_str()) {
                    Some(&e) => e,
                    None => {
                        entities.push(EntitySeries {
                            entity_id: &i.entity_id,
                            map: stored.remove(i.entity_id.as_str()).unwrap_or_default(),
                            grown: false,
                            has_record: false,
                        });
                        by_id.insert(&i.entity_id, entities.len() - 1);
                        entities.len() - 1
                    }
                };
                current = Some(e);
                e
            }
        };
        let series = &mut entities[e];
        let at = match series.map.iter().position(|(a, _)| *a == i.attribute) {
            Some(at) => at,
            None => {
                series.map.push((i.attribute.clone(), -1));
                series.grown = true;
                new_series += 1;
                series.map.len() - 1
            }
        };
        slots.push((e, at));
    }
    if new_series > 0 {
        let mut next = ids.take(conn, new_series)?;
        for (_, id) in entities.iter_mut().flat_map(|e| e.map.iter_mut()) {
            if *id < 0 {
                *id = next;
                next += 1;
            }
        }
    }
    let grown: Vec<Option<String>> = entities
        .iter()
        .map(|e| e.grown.then(|| series_json(&e.map)))
        .collect();
    let mut rows: Vec<EntityRow<'_>> = Vec::with_capacity(write.entities.len());
    for record in &write.entities {
        let series = match by_id.get(record.id.as_str()) {
            Some(&e) => {
                entities[e].has_record = true;
                grown[e].as_deref()
            }
            None => None,
        };
        rows.push((
            record,
            to_json(&record.types),
            to_json(&record.scope),
            series,
        ));
    }
    if current_entities.is_empty() {
        put_entities(conn, tenant, &rows)?;
    } else {
        put_entities_with_current(conn, tenant, rows, current_entities)?;
    }
    // Instances of an entity the write has no record of: its row stores the new series (a row
    // is made for an entity that has none, so that its history can be found).
    for (e, series) in entities.iter().zip(&grown) {
        if let (false, Some(series)) = (e.has_record, series) {
            let first = write
                .instances
                .iter()
                .find(|i| i.entity_id == e.entity_id)
                .map_or(0, |i| i.created_at);
            conn.prepare_cached(
                "INSERT INTO ngsi_entities (tenant, id, temporal_types, temporal_scope, \
                 temporal_created_at, temporal_modified_at, series) \
                 VALUES (?1, ?2, '[]', '[]', ?3, ?3, ?4) \
                 ON CONFLICT (tenant, id) DO UPDATE SET series = excluded.series, \
                 temporal_types = COALESCE(temporal_types, excluded.temporal_types), \
                 temporal_scope = COALESCE(temporal_scope, excluded.temporal_scope), \
                 temporal_created_at = COALESCE(temporal_created_at, excluded.temporal_created_at), \
                 temporal_modified_at = COALESCE(temporal_modified_at, excluded.temporal_modified_at)",
            )
            .map_err(backend)?
            .execute(params![tenant, e.entity_id, first, series])
            .map_err(backend)?;
        }
    }
    if write.instances.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<InstanceRow<'_>> = Vec::with_capacity(write.instances.len());
    for (&(e, at), i) in slots.iter().zip(&write.instances) {
        let instance_id = stored_instance_id(i.instance_id.as_deref())?;
        rows.push((entities[e].map[at].1, instance_id, i));
    }
    INSTANCE_INSERT.run(conn, &rows, bind_instance)
}

/// The condition (on `?1` = the series, `?2` = the key) that selects the instance with
/// `instance_id` in `series`: a minted id by its row (written without an id of its own), any
/// other through the partial index of given ids.
fn instance_key(instance_id: &str) -> (&'static str, rusqlite::types::Value) {
    match minted_seq(instance_id) {
        Some(seq) => ("seq = ?2 AND series = ?1 AND instance_id = ''", seq.into()),
        None => (
            "series = ?1 AND instance_id = ?2 AND instance_id <> ''",
            instance_id.to_owned().into(),
        ),
    }
}

/// The largest instance row number (0 for none).
fn last_row(conn: &Connection) -> StoreResult<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM ngsi_temporal_instances")
        .map_err(backend)?
        .query_row([], |row| row.get(0))
        .map_err(backend)
}

/// Deletes the instance rows matching `condition` (SQL on `params`); returns how many. Every
/// delete of instances goes through here: SQLite numbers a new row one past the largest, so
/// had the delete taken the largest row, the next instance would get its number, and with it
/// the minted id of a deleted instance. A placeholder row (series 0, which no entity has)
/// keeps that number taken.
fn delete_instances(
    conn: &Connection,
    condition: &str,
    params: impl rusqlite::Params,
) -> StoreResult<usize> {
    let top = last_row(conn)?;
    let n = conn
        .prepare_cached(&format!(
            "DELETE FROM ngsi_temporal_instances WHERE {condition}"
        ))
        .map_err(backend)?
        .execute(params)
        .map_err(backend)?;
    if n > 0 && top > 0 && last_row(conn)? < top {
        conn.prepare_cached(
            "INSERT INTO ngsi_temporal_instances (seq, series, instance_id, observed_at, \
             has_observed, created_at, modified_at, doc) VALUES (?1, 0, '', 0, 0, 0, 0, '')",
        )
        .map_err(backend)?
        .execute(params![top])
        .map_err(backend)?;
    }
    Ok(n)
}

fn attributes(conn: &Connection, tenant: &str, id: &str) -> StoreResult<Vec<String>> {
    Ok(series_map(conn, tenant, id)?
        .unwrap_or_default()
        .into_iter()
        .map(|(attribute, _)| attribute)
        .collect())
}

/// Instances of one attribute per the query (ascending).
fn attribute_instances(
    conn: &Connection,
    id: &str,
    attribute: &str,
    series: i64,
    q: &InstanceQuery,
) -> StoreResult<Vec<TemporalInstanceRecord>> {
    let column = match q.column {
        TimeColumn::ObservedAt => "observed_at",
        TimeColumn::CreatedAt => "created_at",
        TimeColumn::ModifiedAt => "modified_at",
        TimeColumn::DeletedAt => "deleted_at",
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
        let ids = self.series_ids();
        self.write(move |conn| record(conn, &tenant, &write, &ids, &[]))
            .await
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
                "SELECT {ENTITY_COLUMNS} FROM ngsi_entities \
                 WHERE tenant = ?1 AND id = ?2 AND temporal_types IS NOT NULL"
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
            let mut sql = format!(
                "SELECT {ENTITY_COLUMNS} FROM ngsi_entities \
                     WHERE tenant = ?1 AND temporal_types IS NOT NULL"
            );
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
            let map = series_map(conn, &tenant, &id)?.unwrap_or_default();
            let mut out = Vec::new();
            let mut read = |name: &str| match map.iter().find(|(a, _)| a == name) {
                Some(&(_, series)) => {
                    out.extend(attribute_instances(conn, &id, name, series, &query)?);
                    Ok::<_, store::StoreError>(())
                }
                None => Ok(()),
            };
            match &query.attributes {
                Some(names) => names.iter().try_for_each(|name| read(name))?,
                None => map.iter().try_for_each(|(name, _)| read(name))?,
            }
            Ok(out)
        })
        .await
    }

    async fn delete_temporal_entity(&self, scope: &TenantScope, id: &str) -> StoreResult<bool> {
        let tenant = scope.tenant().as_str().to_owned();
        let id = id.to_owned();
        self.write(move |conn| {
            for (_, series) in series_map(conn, &tenant, &id)?.unwrap_or_default() {
                delete_instances(conn, "series = ?1", params![series])?;
            }
            // The whole row if it holds no current entity, else the temporal part of it.
            let deleted = conn
                .prepare_cached(
                    "DELETE FROM ngsi_entities WHERE tenant = ?1 AND id = ?2 \
                     AND temporal_types IS NOT NULL AND doc IS NULL",
                )
                .map_err(backend)?
                .execute(params![tenant, id])
                .map_err(backend)?;
            let cleared = conn
                .prepare_cached(
                    "UPDATE ngsi_entities SET temporal_types = NULL, temporal_scope = NULL, \
                     temporal_created_at = NULL, temporal_modified_at = NULL, \
                     temporal_deleted_at = NULL, series = NULL \
                     WHERE tenant = ?1 AND id = ?2 AND temporal_types IS NOT NULL",
                )
                .map_err(backend)?
                .execute(params![tenant, id])
                .map_err(backend)?;
            Ok(deleted + cleared > 0)
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
            let mut map = series_map(conn, &tenant, &id)?.unwrap_or_default();
            let Some(at) = map.iter().position(|(a, _)| *a == attribute) else {
                return Ok(0);
            };
            let series = map[at].1;
            let n = match &dataset {
                DatasetSelector::All => delete_instances(conn, "series = ?1", params![series])?,
                DatasetSelector::Default => {
                    delete_instances(conn, "series = ?1 AND dataset_id IS NULL", params![series])?
                }
                DatasetSelector::Id(d) => {
                    delete_instances(conn, "series = ?1 AND dataset_id = ?2", params![series, d])?
                }
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
                map.remove(at);
                store_series_map(conn, &tenant, &id, &map)?;
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
        let Some(instance_id) = i.instance_id.clone() else {
            return Ok(false);
        };
        self.write(move |conn| {
            let Some(series) = series_of(conn, &tenant, &i.entity_id, &i.attribute)? else {
                return Ok(false);
            };
            let (by, key) = instance_key(&instance_id);
            let n = conn
                .prepare_cached(&format!(
                    "UPDATE ngsi_temporal_instances SET doc = ?3, \
                     observed_at = COALESCE(?4, created_at), has_observed = ?5, modified_at = ?6 \
                     WHERE {by}"
                ))
                .map_err(backend)?
                .execute(params![
                    series,
                    key,
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
            let Some(series) = series_of(conn, &tenant, &id, &attribute)? else {
                return Ok(false);
            };
            let (by, key) = instance_key(&instance_id);
            Ok(delete_instances(conn, by, params![series, key])? > 0)
        })
        .await
    }
}
