//! `HandleStore` on SQLite: table `handle_records` (migration 0003). Writes go through the
//! shared writer thread, so concurrent creates are group-committed and each is acknowledged
//! only after its transaction committed.

use crate::SqliteStore;
use crate::engine::backend;
use async_trait::async_trait;
use rusqlite::{OptionalExtension, Row, params};
use store::{HandleRecord, HandleStore, StoreResult};

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<HandleRecord> {
    Ok(HandleRecord {
        name: row.get(0)?,
        value_count: row.get(1)?,
        values: row.get(2)?,
    })
}

#[async_trait]
impl HandleStore for SqliteStore {
    async fn put_handles(&self, records: Vec<HandleRecord>) -> StoreResult<()> {
        self.write(move |conn| {
            let mut put = conn
                .prepare_cached(
                    "INSERT INTO handle_records (name_key, name, value_count, value_bytes) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (name_key) DO UPDATE SET \
                     name = excluded.name, value_count = excluded.value_count, \
                     value_bytes = excluded.value_bytes",
                )
                .map_err(backend)?;
            for r in &records {
                put.execute(params![
                    HandleRecord::key(&r.name),
                    r.name,
                    r.value_count,
                    r.values
                ])
                .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_handle(&self, name: &str) -> StoreResult<bool> {
        let key = HandleRecord::key(name);
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM handle_records WHERE name_key = ?1")
                .and_then(|mut s| s.execute([key]))
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn get_handle(&self, name: &str) -> StoreResult<Option<HandleRecord>> {
        let key = HandleRecord::key(name);
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT name, value_count, value_bytes FROM handle_records WHERE name_key = ?1",
            )
            .and_then(|mut s| s.query_row([key], record_from_row).optional())
            .map_err(backend)
        })
        .await
    }

    async fn scan_handles(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<HandleRecord>> {
        let after = after.map(HandleRecord::key);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name, value_count, value_bytes FROM handle_records \
                     WHERE ?1 IS NULL OR name_key > ?1 ORDER BY name_key LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after, limit], record_from_row)
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(backend)
        })
        .await
    }

    async fn handle_count(&self) -> StoreResult<u64> {
        self.read(|conn| {
            conn.query_row("SELECT count(*) FROM handle_records", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(backend)
        })
        .await
    }

    async fn home_prefix(&self, prefix: &str) -> StoreResult<()> {
        let prefix = prefix.to_ascii_uppercase();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO handle_prefixes (prefix) VALUES (?1) ON CONFLICT DO NOTHING",
                [prefix],
            )
            .map(|_| ())
            .map_err(backend)
        })
        .await
    }

    async fn unhome_prefix(&self, prefix: &str) -> StoreResult<bool> {
        let prefix = prefix.to_ascii_uppercase();
        self.write(move |conn| {
            conn.execute("DELETE FROM handle_prefixes WHERE prefix = ?1", [prefix])
                .map(|n| n > 0)
                .map_err(backend)
        })
        .await
    }

    async fn homed_prefixes(&self) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT prefix FROM handle_prefixes ORDER BY prefix")
                .map_err(backend)?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(backend)
        })
        .await
    }
}
