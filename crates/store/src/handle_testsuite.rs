//! The conformance suite of [`HandleStore`] backends (issue 6), instantiated with
//! [`handle_store_test_suite!`](crate::handle_store_test_suite) like the identity suite:
//!
//! ```ignore
//! store::handle_store_test_suite!(async { /* (guard, store) */ });
//! ```

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::{HandleRecord, HandleStore};

// ---------------------------------------------------------------------------------------------
// Handle records (issue 6).

fn handle_record(name: &str, payload: &[u8]) -> HandleRecord {
    HandleRecord {
        name: name.to_owned(),
        value_count: payload.len() as u32,
        values: payload.to_vec(),
    }
}

/// Put, get (case-insensitive), replace keeping the new spelling, delete, count.
pub async fn handle_records<S: HandleStore + ?Sized>(store: &S) {
    assert_eq!(store.handle_count().await.unwrap(), 0);
    assert_eq!(store.get_handle("21.T999/a").await.unwrap(), None);
    store
        .put_handle(handle_record("21.T999/a", b"\x01\x02"))
        .await
        .unwrap();
    assert_eq!(
        store.get_handle("21.t999/A").await.unwrap(),
        Some(handle_record("21.T999/a", b"\x01\x02"))
    );
    store
        .put_handle(handle_record("21.t999/A", b"\x03"))
        .await
        .unwrap();
    assert_eq!(store.handle_count().await.unwrap(), 1);
    assert_eq!(
        store.get_handle("21.T999/a").await.unwrap(),
        Some(handle_record("21.t999/A", b"\x03"))
    );
    store
        .put_handle(handle_record("21.T999/b", b""))
        .await
        .unwrap();
    assert_eq!(store.handle_count().await.unwrap(), 2);
    assert!(store.delete_handle("21.T999/A").await.unwrap());
    assert!(!store.delete_handle("21.T999/a").await.unwrap());
    assert_eq!(store.get_handle("21.T999/a").await.unwrap(), None);
    assert_eq!(
        store.get_handle("21.T999/b").await.unwrap(),
        Some(handle_record("21.T999/b", b""))
    );
    assert_eq!(store.handle_count().await.unwrap(), 1);
}

/// A batch is stored whole; scanning pages in upper-cased name order without gaps or repeats.
pub async fn handle_scan<S: HandleStore + ?Sized>(store: &S) {
    let names: Vec<String> = (0..25).map(|i| format!("21.T999/n{i:02}")).collect();
    // Out of order and mixed case on purpose.
    let batch: Vec<HandleRecord> = names
        .iter()
        .rev()
        .enumerate()
        .map(|(i, n)| {
            let n = if i % 2 == 0 {
                n.to_ascii_lowercase()
            } else {
                n.clone()
            };
            handle_record(&n, &[i as u8])
        })
        .collect();
    store.put_handles(batch).await.unwrap();
    assert_eq!(store.handle_count().await.unwrap(), 25);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.scan_handles(after.as_deref(), 7).await.unwrap();
        assert!(page.len() <= 7);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.name.clone());
        seen.extend(page.into_iter().map(|r| HandleRecord::key(&r.name)));
    }
    let expected: Vec<String> = names.iter().map(|n| HandleRecord::key(n)).collect();
    assert_eq!(seen, expected);
    assert!(
        store
            .scan_handles(Some("21.T999/N24"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .scan_handles(Some("21.T999/n23"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Prefixes: upper-cased, sorted, idempotent homing, unhoming reports whether it was homed.
pub async fn handle_prefixes<S: HandleStore + ?Sized>(store: &S) {
    assert!(store.homed_prefixes().await.unwrap().is_empty());
    store.home_prefix("21.t999").await.unwrap();
    store.home_prefix("21.T999").await.unwrap();
    store.home_prefix("0.NA").await.unwrap();
    assert_eq!(store.homed_prefixes().await.unwrap(), ["0.NA", "21.T999"]);
    assert!(store.unhome_prefix("0.na").await.unwrap());
    assert!(!store.unhome_prefix("0.NA").await.unwrap());
    assert_eq!(store.homed_prefixes().await.unwrap(), ["21.T999"]);
}

/// Generates the handle-store conformance tests; `$make` as for [`identity_store_test_suite!`].
#[macro_export]
macro_rules! handle_store_test_suite {
    ($make:expr) => {
        mod handle_store_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::handle_store_test_suite!(@tests $make; handle_records, handle_scan, handle_prefixes);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $make.await;
                $crate::handle_testsuite::$name(&store).await;
            }
        )*
    };
}
