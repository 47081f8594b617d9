//! Durable storage of a Handle System node (issue 6): handle records and homed prefixes.
//!
//! The node keeps its working set in memory (the resolution fast path never waits on a
//! database); this trait is what makes that set survive a restart or a crash. The node
//! writes every change through it *before* acknowledging the change to its client and
//! loads everything back at start with [`HandleStore::scan_handles`].
//!
//! Records are opaque to the store: `values` is the protocol's wire encoding of the
//! handle's values (RFC 3651 §3, concatenated `HandleValue`s sorted by index), produced and
//! checked by `handle-proto`. The store only keys it by name.
//!
//! Contracts (every implementation, checked by [`handle_store_test_suite!`](crate::handle_store_test_suite)):
//! - Names compare ASCII case-insensitively (`21.T999/abc` and `21.t999/ABC` are one
//!   handle); the spelling of the last `put` is kept.
//! - `put_handles` is atomic: all of its records are stored, or none.
//! - A write that returned `Ok` is committed (survives a crash of the process).
//! - `scan_handles` pages in ascending order of the upper-cased name.
//! - Prefixes are kept upper-cased; homing twice is not an error.

use crate::StoreResult;
use async_trait::async_trait;

/// One handle as stored: its name and its values in wire encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleRecord {
    /// The handle, as last written (e.g. `21.T999/abc`).
    pub name: String,
    /// How many values `values` holds.
    pub value_count: u32,
    /// The values' wire encoding (concatenated, sorted by index). Opaque to the store.
    pub values: Vec<u8>,
}

impl HandleRecord {
    /// The key the store compares names by: the ASCII upper-cased name.
    pub fn key(name: &str) -> String {
        name.to_ascii_uppercase()
    }
}

/// Durable handle records and homed prefixes.
#[async_trait]
pub trait HandleStore: Send + Sync {
    /// Inserts or replaces each record, all in one transaction.
    async fn put_handles(&self, records: Vec<HandleRecord>) -> StoreResult<()>;

    /// Inserts or replaces one record.
    async fn put_handle(&self, record: HandleRecord) -> StoreResult<()> {
        self.put_handles(vec![record]).await
    }

    /// Deletes a handle; `true` if it existed.
    async fn delete_handle(&self, name: &str) -> StoreResult<bool>;

    /// One handle, if stored.
    async fn get_handle(&self, name: &str) -> StoreResult<Option<HandleRecord>>;

    /// Up to `limit` records whose upper-cased name sorts after `after`'s (from the start
    /// with `None`), in ascending order: pass the last name of a page to get the next.
    async fn scan_handles(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<HandleRecord>>;

    /// How many handles are stored.
    async fn handle_count(&self) -> StoreResult<u64>;

    /// Marks a prefix (e.g. `21.T999`) as homed on this node.
    async fn home_prefix(&self, prefix: &str) -> StoreResult<()>;

    /// Removes a prefix from the homed set; `true` if it was homed.
    async fn unhome_prefix(&self, prefix: &str) -> StoreResult<bool>;

    /// The homed prefixes, upper-cased, sorted.
    async fn homed_prefixes(&self) -> StoreResult<Vec<String>>;
}
