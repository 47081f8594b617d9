//! The conformance suite every [`NgsiRegistrationStore`](crate::NgsiRegistrationStore)
//! backend runs, via [`ngsi_registration_store_test_suite!`](crate::ngsi_registration_store_test_suite).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::*;

fn scope(id: &str) -> TenantScope {
    TenantScope::authorized(TenantId::new(id).unwrap())
}

fn record(id: &str, doc: &str, created: i64) -> RegistrationRecord {
    RegistrationRecord {
        id: id.to_owned(),
        doc: doc.to_owned(),
        created_at: UnixMillis(created),
        modified_at: UnixMillis(created),
    }
}

/// Create, read, replace, delete; another tenant sees none of it.
pub async fn registrations_are_tenant_scoped(store: &impl NgsiRegistrationStore) {
    let a = scope("regs-a");
    let b = scope("regs-b");
    store
        .create_registration(&a, record("urn:r:1", "{\"v\":1}", 10))
        .await
        .unwrap();
    assert_eq!(
        store
            .create_registration(&a, record("urn:r:1", "{}", 11))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::AlreadyExists
    );
    assert_eq!(
        store.registration(&a, "urn:r:1").await.unwrap(),
        Some(record("urn:r:1", "{\"v\":1}", 10))
    );
    assert_eq!(store.registration(&b, "urn:r:1").await.unwrap(), None);
    assert!(store.registrations(&b).await.unwrap().is_empty());
    assert_eq!(
        store
            .replace_registration(&b, record("urn:r:1", "{\"v\":9}", 10))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    assert!(!store.delete_registration(&b, "urn:r:1").await.unwrap());
    // The same id in b is another registration.
    store
        .create_registration(&b, record("urn:r:1", "{\"b\":1}", 12))
        .await
        .unwrap();
    assert_eq!(
        store
            .registration(&a, "urn:r:1")
            .await
            .unwrap()
            .unwrap()
            .doc,
        "{\"v\":1}"
    );
    // Replace keeps created_at.
    let mut changed = record("urn:r:1", "{\"v\":2}", 99);
    changed.modified_at = UnixMillis(50);
    store.replace_registration(&a, changed).await.unwrap();
    let now = store.registration(&a, "urn:r:1").await.unwrap().unwrap();
    assert_eq!(now.doc, "{\"v\":2}");
    assert_eq!(now.created_at, UnixMillis(10));
    assert_eq!(now.modified_at, UnixMillis(50));
    assert!(store.delete_registration(&a, "urn:r:1").await.unwrap());
    assert!(!store.delete_registration(&a, "urn:r:1").await.unwrap());
    assert_eq!(store.registration(&a, "urn:r:1").await.unwrap(), None);
    assert!(store.registration(&b, "urn:r:1").await.unwrap().is_some());
}

/// Listing is by creation order, ties by id, and only the tenant's own.
pub async fn listing_is_ordered_by_creation(store: &impl NgsiRegistrationStore) {
    let a = scope("regs-list-a");
    let b = scope("regs-list-b");
    for (id, at) in [("urn:r:c", 30), ("urn:r:b", 20), ("urn:r:a", 20)] {
        store
            .create_registration(&a, record(id, "{}", at))
            .await
            .unwrap();
    }
    store
        .create_registration(&b, record("urn:r:z", "{}", 1))
        .await
        .unwrap();
    let ids: Vec<String> = store
        .registrations(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["urn:r:a", "urn:r:b", "urn:r:c"]);
}

/// Runs the [`NgsiRegistrationStore`] conformance checks against a backend. `$make` is an
/// expression yielding a future of `(guard, store)`.
#[macro_export]
macro_rules! ngsi_registration_store_test_suite {
    ($make:expr) => {
        mod ngsi_registration_store_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::ngsi_registration_store_test_suite!(@tests $make;
                registrations_are_tenant_scoped, listing_is_ordered_by_creation);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $make.await;
                $crate::ngsi_registrations_testsuite::$name(&store).await;
            }
        )*
    };
}
