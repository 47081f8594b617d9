//! The conformance suite every [`NgsiSubscriptionStore`](crate::NgsiSubscriptionStore)
//! backend runs, via [`ngsi_subscription_store_test_suite!`](crate::ngsi_subscription_store_test_suite).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::*;

fn scope(id: &str) -> TenantScope {
    TenantScope::authorized(TenantId::new(id).unwrap())
}

fn record(id: &str, doc: &str, created: i64) -> SubscriptionRecord {
    SubscriptionRecord {
        id: id.to_owned(),
        doc: doc.to_owned(),
        status: SubscriptionStatusRecord::default(),
        created_at: UnixMillis(created),
        modified_at: UnixMillis(created),
    }
}

/// Create, read, replace, delete; another tenant sees none of it.
pub async fn subscriptions_are_tenant_scoped(store: &impl NgsiSubscriptionStore) {
    let a = scope("subs-a");
    let b = scope("subs-b");
    store
        .create_subscription(&a, record("urn:s:1", "{\"v\":1}", 10))
        .await
        .unwrap();
    assert_eq!(
        store
            .create_subscription(&a, record("urn:s:1", "{}", 11))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::AlreadyExists
    );
    assert_eq!(
        store.subscription(&a, "urn:s:1").await.unwrap(),
        Some(record("urn:s:1", "{\"v\":1}", 10))
    );
    assert_eq!(store.subscription(&b, "urn:s:1").await.unwrap(), None);
    assert_eq!(store.subscriptions(&b, 0, 10).await.unwrap().total, 0);
    // b cannot replace, delete or count on a's subscription.
    assert_eq!(
        store
            .replace_subscription(&b, record("urn:s:1", "{\"v\":9}", 10))
            .await
            .unwrap_err()
            .kind(),
        StoreErrorKind::NotFound
    );
    assert!(!store.delete_subscription(&b, "urn:s:1").await.unwrap());
    let sent = SubscriptionStatusRecord {
        times_sent: 7,
        ..Default::default()
    };
    store
        .set_subscription_status(&b, "urn:s:1", sent)
        .await
        .unwrap();
    let kept = store.subscription(&a, "urn:s:1").await.unwrap().unwrap();
    assert_eq!(kept.doc, "{\"v\":1}");
    assert_eq!(kept.status.times_sent, 0);
    // The same id in b is another subscription.
    store
        .create_subscription(&b, record("urn:s:1", "{\"b\":1}", 12))
        .await
        .unwrap();
    assert_eq!(
        store
            .subscription(&a, "urn:s:1")
            .await
            .unwrap()
            .unwrap()
            .doc,
        "{\"v\":1}"
    );
    // Replace keeps counters and created_at.
    store
        .set_subscription_status(&a, "urn:s:1", sent)
        .await
        .unwrap();
    let mut changed = record("urn:s:1", "{\"v\":2}", 99);
    changed.modified_at = UnixMillis(50);
    store.replace_subscription(&a, changed).await.unwrap();
    let now = store.subscription(&a, "urn:s:1").await.unwrap().unwrap();
    assert_eq!(now.doc, "{\"v\":2}");
    assert_eq!(now.created_at, UnixMillis(10));
    assert_eq!(now.modified_at, UnixMillis(50));
    assert_eq!(now.status.times_sent, 7);
    assert!(store.delete_subscription(&a, "urn:s:1").await.unwrap());
    assert!(!store.delete_subscription(&a, "urn:s:1").await.unwrap());
    assert_eq!(store.subscription(&a, "urn:s:1").await.unwrap(), None);
    assert!(store.subscription(&b, "urn:s:1").await.unwrap().is_some());
}

/// Paging is by creation order with a total; counters round-trip; all_subscriptions
/// names each record's tenant.
pub async fn paging_status_and_all(store: &impl NgsiSubscriptionStore) {
    let a = scope("page-a");
    let b = scope("page-b");
    for (i, id) in ["urn:s:c", "urn:s:a", "urn:s:b"].iter().enumerate() {
        store
            .create_subscription(&a, record(id, "{}", 100 + i as i64))
            .await
            .unwrap();
    }
    store
        .create_subscription(&b, record("urn:s:z", "{}", 1))
        .await
        .unwrap();
    let page = store.subscriptions(&a, 1, 1).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(
        page.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["urn:s:a"]
    );
    let all = store.subscriptions(&a, 0, 100).await.unwrap();
    assert_eq!(
        all.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["urn:s:c", "urn:s:a", "urn:s:b"]
    );
    assert!(
        store
            .subscriptions(&a, 5, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let status = SubscriptionStatusRecord {
        times_sent: 3,
        times_failed: 1,
        last_notification: Some(UnixMillis(500)),
        last_success: Some(UnixMillis(400)),
        last_failure: Some(UnixMillis(500)),
    };
    store
        .set_subscription_status(&a, "urn:s:b", status)
        .await
        .unwrap();
    assert_eq!(
        store
            .subscription(&a, "urn:s:b")
            .await
            .unwrap()
            .unwrap()
            .status,
        status
    );
    // A deleted subscription's late status write is ignored.
    store
        .set_subscription_status(&a, "urn:s:gone", status)
        .await
        .unwrap();
    let every = store.all_subscriptions().await.unwrap();
    let mine: Vec<(String, String)> = every
        .iter()
        .filter(|(t, _)| t.as_str().starts_with("page-"))
        .map(|(t, r)| (t.as_str().to_owned(), r.id.clone()))
        .collect();
    assert_eq!(mine.len(), 4);
    assert!(mine.contains(&("page-b".to_owned(), "urn:s:z".to_owned())));
    assert!(mine.contains(&("page-a".to_owned(), "urn:s:b".to_owned())));
}

/// Runs the [`NgsiSubscriptionStore`] conformance checks against a backend. `$make` is an
/// expression yielding a future of `(guard, store)`.
#[macro_export]
macro_rules! ngsi_subscription_store_test_suite {
    ($make:expr) => {
        mod ngsi_subscription_store_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::ngsi_subscription_store_test_suite!(@tests $make;
                subscriptions_are_tenant_scoped, paging_status_and_all);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $make.await;
                $crate::ngsi_subscriptions_testsuite::$name(&store).await;
            }
        )*
    };
}
