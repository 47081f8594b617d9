//! Versioned schema migrations, applied in order at open.

use rusqlite::Connection;
use store::{StoreError, StoreResult};

/// Every migration, in order. The position (from 1) is the schema version it produces.
/// Never edit a released migration; add a new one.
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    ("identity", include_str!("../migrations/0001_identity.sql")),
    ("ngsi", include_str!("../migrations/0002_ngsi.sql")),
    ("handle", include_str!("../migrations/0003_handle.sql")),
    ("compute", include_str!("../migrations/0004_compute.sql")),
    ("secure", include_str!("../migrations/0005_secure.sql")),
    (
        "ngsi_subscriptions",
        include_str!("../migrations/0006_ngsi_subscriptions.sql"),
    ),
    (
        "ngsi_temporal",
        include_str!("../migrations/0007_ngsi_temporal.sql"),
    ),
    (
        "ngsi_registrations",
        include_str!("../migrations/0008_ngsi_registrations.sql"),
    ),
    (
        "ngsi_temporal_series",
        include_str!("../migrations/0009_ngsi_temporal_series.sql"),
    ),
    (
        "ngsi_entity_types_inline",
        include_str!("../migrations/0010_ngsi_entity_types_inline.sql"),
    ),
    (
        "ngsi_temporal_series_inline",
        include_str!("../migrations/0011_ngsi_temporal_series_inline.sql"),
    ),
    (
        "ngsi_temporal_minted_instance_ids",
        include_str!("../migrations/0012_ngsi_temporal_minted_instance_ids.sql"),
    ),
    (
        "ngsi_entity_rows_merged",
        include_str!("../migrations/0013_ngsi_entity_rows_merged.sql"),
    ),
    (
        "ngsi_entity_rows_unchecked",
        include_str!("../migrations/0014_ngsi_entity_rows_unchecked.sql"),
    ),
    (
        "ngsi_entity_rows_by_rowid",
        include_str!("../migrations/0015_ngsi_entity_rows_by_rowid.sql"),
    ),
];

/// Brings the schema up to date. Refuses a database written by a newer citybrain.
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| StoreError::backend(format!("reading schema version: {e}")))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::backend(format!(
            "the database has schema version {current} but this citybrain knows only up to {known}; \
             use a newer citybrain"
        )));
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let tx = conn
            .transaction()
            .map_err(|e| StoreError::backend(format!("migration {version}: {e}")))?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::backend(format!("migration {version} ({name}): {e}")))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(|e| StoreError::backend(format!("migration {version}: {e}")))?;
        tx.commit()
            .map_err(|e| StoreError::backend(format!("migration {version}: {e}")))?;
        tracing::info!(version, name, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migration 0010 moves each entity's type rows into its own row, sorted, and keeps
    /// entities without type rows valid (an empty array).
    #[test]
    fn entity_type_rows_move_into_the_entity_row() {
        let mut conn = Connection::open_in_memory().expect("open");
        for (sql_name, sql) in &MIGRATIONS[..9] {
            conn.execute_batch(sql).expect(sql_name);
        }
        conn.pragma_update(None, "user_version", 9)
            .expect("version");
        conn.execute_batch(
            "INSERT INTO ngsi_entities (tenant, id, doc, created_at, modified_at) VALUES
                 ('t1', 'urn:a', '{}', 1, 1), ('t1', 'urn:b', '{}', 1, 1), ('t2', 'urn:a', '{}', 1, 1);
             INSERT INTO ngsi_entity_types (tenant, type, id) VALUES
                 ('t1', 'https://x/Z', 'urn:a'), ('t1', 'https://x/A', 'urn:a'),
                 ('t2', 'https://x/Other', 'urn:a');",
        )
        .expect("0009 rows");
        migrate(&mut conn).expect("migrate");
        let types = |tenant: &str, id: &str| -> String {
            conn.query_row(
                "SELECT types FROM ngsi_entities WHERE tenant = ?1 AND id = ?2",
                [tenant, id],
                |row| row.get(0),
            )
            .expect("row")
        };
        assert_eq!(types("t1", "urn:a"), r#"["https://x/A","https://x/Z"]"#);
        assert_eq!(types("t1", "urn:b"), "[]");
        assert_eq!(types("t2", "urn:a"), r#"["https://x/Other"]"#);
        let gone: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'ngsi_entity_types'",
                [],
                |row| row.get(0),
            )
            .expect("master");
        assert_eq!(gone, 0);
    }
}
