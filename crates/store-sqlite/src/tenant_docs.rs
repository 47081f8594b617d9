//! Rows of per-tenant JSON documents keyed by `(tenant, id)` with `doc` and `modified_at`
//! columns: the shape the NGSI-LD subscription and registration tables share, so their
//! replace and delete statements are written once.

use crate::engine::backend;
use rusqlite::{Connection, params};
use store::{StoreError, StoreResult};

/// Replaces the document of `id` in `table`; `kind` names the record in the not-found error.
pub(crate) fn replace_doc(
    conn: &Connection,
    table: &str,
    kind: &str,
    tenant: &str,
    id: &str,
    doc: &str,
    modified_at: i64,
) -> StoreResult<()> {
    let changed = conn
        .execute(
            &format!("UPDATE {table} SET doc = ?3, modified_at = ?4 WHERE tenant = ?1 AND id = ?2"),
            params![tenant, id, doc, modified_at],
        )
        .map_err(backend)?;
    if changed == 0 {
        return Err(StoreError::not_found(format!("{kind} {id} not found")));
    }
    Ok(())
}

/// Deletes `id` from `table`; whether it was there.
pub(crate) fn delete_doc(
    conn: &Connection,
    table: &str,
    tenant: &str,
    id: &str,
) -> StoreResult<bool> {
    let n = conn
        .execute(
            &format!("DELETE FROM {table} WHERE tenant = ?1 AND id = ?2"),
            params![tenant, id],
        )
        .map_err(backend)?;
    Ok(n > 0)
}
