//! The shared store conformance suite, plus checks only this backend can make.

use store::{
    AuditEvent, AuditLog, AuditOutcome, ChainVerification, IdentityStore, StoreErrorKind, TenantId,
    TenantRecord, UnixMillis,
};
use store_sqlite::SqliteStore;

async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open store");
    (dir, store)
}

store::identity_store_test_suite!(fresh());
store::compute_store_test_suite!(fresh());

fn event(n: i64) -> AuditEvent {
    AuditEvent {
        at: UnixMillis(n),
        tenant: None,
        actor: "system".into(),
        action: "test.event".into(),
        outcome: AuditOutcome::Success,
        target: None,
        detail: serde_json::json!({ "n": n }),
    }
}

#[tokio::test]
async fn audit_entries_cannot_be_changed_and_tampering_is_detected() {
    let (dir, store) = fresh().await;
    for n in 1..=3 {
        store.append_audit(event(n)).await.unwrap();
    }
    let raw = rusqlite::Connection::open(store.path()).unwrap();
    let refused = raw.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", []);
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    assert!(
        raw.execute("DELETE FROM audit_log WHERE seq = 3", [])
            .is_err()
    );
    // Someone with file access drops the guard and rewrites history: the chain shows it.
    raw.execute_batch("DROP TRIGGER audit_log_no_update")
        .unwrap();
    raw.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", [])
        .unwrap();
    assert_eq!(
        store.verify_chain().await.unwrap(),
        ChainVerification::Broken { seq: 2 }
    );
    drop(dir);
}

#[tokio::test]
async fn data_survives_reopen_and_migrations_are_idempotent() {
    let (dir, store) = fresh().await;
    let tenant = TenantRecord {
        id: TenantId::new("city").unwrap(),
        display_name: "City".into(),
        created_at: UnixMillis(5),
    };
    store.create_tenant(tenant.clone()).await.unwrap();
    store.close();
    let reopened = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(reopened.tenant(&tenant.id).await.unwrap(), Some(tenant));
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let raw = rusqlite::Connection::open(dir.path().join(store_sqlite::DATABASE_FILE)).unwrap();
    raw.pragma_update(None, "user_version", 999).unwrap();
    drop(raw);
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("schema version 999"), "{err}");
}

#[tokio::test]
async fn concurrent_writes_are_grouped_and_each_is_answered() {
    let (_dir, store) = fresh().await;
    let mut tasks = Vec::new();
    for n in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let id = TenantId::new(format!("t{}", n % 150)).unwrap();
            store
                .create_tenant(TenantRecord {
                    id,
                    display_name: String::new(),
                    created_at: UnixMillis(n),
                })
                .await
        }));
    }
    let mut created = 0;
    let mut duplicates = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(e) if e.kind() == StoreErrorKind::AlreadyExists => duplicates += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    // A failing write inside a batch must not undo its neighbours.
    assert_eq!((created, duplicates), (150, 50));
    assert_eq!(store.tenants().await.unwrap().len(), 150);
}

store::ngsi_store_test_suite!(fresh());
store::ngsi_subscription_store_test_suite!(fresh());
store::ngsi_registration_store_test_suite!(fresh());

fn page_size(path: &std::path::Path) -> i64 {
    let raw = rusqlite::Connection::open(path).unwrap();
    raw.query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn new_databases_get_large_pages_and_existing_ones_keep_theirs() {
    let tenant = TenantRecord {
        id: TenantId::new("city").unwrap(),
        display_name: "City".into(),
        created_at: UnixMillis(5),
    };
    // A new store lays its database down with the large pages.
    let (dir, store) = fresh().await;
    store.create_tenant(tenant.clone()).await.unwrap();
    store.close();
    let path = dir.path().join(store_sqlite::DATABASE_FILE);
    assert_eq!(page_size(&path), store_sqlite::NEW_DATABASE_PAGE_SIZE);
    assert_ne!(store_sqlite::NEW_DATABASE_PAGE_SIZE, 4096);

    // A database made with SQLite's default pages (as every store before this change) is
    // migrated and used as it is: the page size is not changed under existing data.
    let old = tempfile::tempdir().unwrap();
    let old_path = old.path().join(store_sqlite::DATABASE_FILE);
    {
        let raw = rusqlite::Connection::open(&old_path).unwrap();
        raw.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE before_us (x INTEGER)")
            .unwrap();
    }
    assert_eq!(page_size(&old_path), 4096);
    let store = SqliteStore::open(old.path()).unwrap();
    store.create_tenant(tenant.clone()).await.unwrap();
    store.close();
    let reopened = SqliteStore::open(old.path()).unwrap();
    assert_eq!(reopened.tenant(&tenant.id).await.unwrap(), Some(tenant));
    reopened.close();
    assert_eq!(page_size(&old_path), 4096);
}

/// Under writes that never pause, a checkpoint running beside the writer never catches up
/// with it, so SQLite would never start the WAL over and it would grow for as long as the
/// load lasts. Past `wal_restart_bytes` the writer lets it start over and the file is cut
/// back, while the writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_writes_that_never_pause() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 256 * 1024;
    let store = SqliteStore::open_with(
        dir.path(),
        store_sqlite::OpenOptions {
            wal_restart_bytes: limit,
            ..Default::default()
        },
    )
    .unwrap();
    let wal = dir
        .path()
        .join(format!("{}-wal", store_sqlite::DATABASE_FILE));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (store, stop) = (store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.append_audit(event(w * 1_000_000 + n)).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    // Watch the WAL while the writers run: it must shrink at least once under load.
    let (mut largest, mut shrunk, mut previous) = (0, 0, 0);
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(3) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if size < previous {
            shrunk += 1;
        }
        largest = largest.max(size);
        previous = size;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert!(
        written > 1000,
        "the writers kept writing ({written} writes)"
    );
    assert!(
        largest > limit,
        "the WAL outgrew the limit ({largest} bytes)"
    );
    assert!(
        shrunk >= 1,
        "the WAL never started over (largest {largest} bytes)"
    );
    assert!(matches!(
        store.verify_chain().await.unwrap(),
        ChainVerification::Intact { entries } if entries == written as u64
    ));
}
