//! The shared `NgsiTemporalStore` conformance suite on the embedded store.

use store_sqlite::SqliteStore;

async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open store");
    (dir, store)
}

store::ngsi_temporal_store_test_suite!(fresh());
