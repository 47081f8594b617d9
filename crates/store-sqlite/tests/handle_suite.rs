//! The shared handle-store conformance suite on SQLite, plus durability across reopen.

use store::{HandleRecord, HandleStore};
use store_sqlite::SqliteStore;

async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open store");
    (dir, store)
}

store::handle_store_test_suite!(fresh());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_reopen_and_concurrent_puts_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.put_handle(HandleRecord {
                name: format!("21.T999/{i}"),
                value_count: 1,
                values: i.to_be_bytes().to_vec(),
            })
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    store.home_prefix("21.T999").await.unwrap();
    assert!(store.delete_handle("21.T999/7").await.unwrap());
    store.close();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.handle_count().await.unwrap(), 199);
    assert_eq!(store.get_handle("21.T999/7").await.unwrap(), None);
    assert_eq!(
        store
            .get_handle("21.t999/199")
            .await
            .unwrap()
            .unwrap()
            .values,
        199u32.to_be_bytes()
    );
    assert_eq!(store.homed_prefixes().await.unwrap(), ["21.T999"]);
}
