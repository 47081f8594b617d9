//! The conformance suite every [`NgsiStore`](crate::NgsiStore) backend runs, via
//! [`ngsi_store_test_suite!`](crate::ngsi_store_test_suite).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::*;

fn scope(id: &str) -> TenantScope {
    TenantScope::authorized(TenantId::new(id).unwrap())
}

fn record(id: &str, types: &[&str], doc: &str) -> EntityRecord {
    EntityRecord {
        id: id.to_owned(),
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        doc: doc.to_owned(),
        created_at: UnixMillis(10),
        modified_at: UnixMillis(20),
    }
}

async fn put(store: &impl NgsiStore, scope: &TenantScope, rec: EntityRecord) {
    store
        .modify_entities(
            scope,
            vec![rec.id.clone()],
            Box::new(move |_| vec![EntityChange::Put(rec)]),
        )
        .await
        .unwrap();
}

/// Put, get, overwrite, delete; tenants see only their own entities.
pub async fn entities_are_tenant_scoped(store: &impl NgsiStore) {
    let a = scope("ngsi-a");
    let b = scope("ngsi-b");
    assert!(!store.tenant_exists(&a).await.unwrap());
    put(store, &a, record("urn:e:1", &["T"], "{\"v\":1}")).await;
    assert!(store.tenant_exists(&a).await.unwrap());
    assert!(!store.tenant_exists(&b).await.unwrap());
    assert_eq!(
        store.entity(&a, "urn:e:1").await.unwrap(),
        Some(record("urn:e:1", &["T"], "{\"v\":1}"))
    );
    assert_eq!(store.entity(&b, "urn:e:1").await.unwrap(), None);
    assert!(
        store
            .entities(&b, &EntityFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    // The same id in another tenant is a different entity.
    put(store, &b, record("urn:e:1", &["U"], "{\"v\":2}")).await;
    assert_eq!(
        store.entity(&a, "urn:e:1").await.unwrap().unwrap().doc,
        "{\"v\":1}"
    );
    // Deleting through b leaves a's entity alone.
    let deleted = store
        .delete_entities(&b, &EntityFilter::default())
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(store.entity(&a, "urn:e:1").await.unwrap().is_some());
    // The tenant stays known after its last entity is gone.
    assert!(store.tenant_exists(&b).await.unwrap());
}

/// The modifier sees current records and its answer is applied atomically.
pub async fn modify_is_read_modify_write(store: &impl NgsiStore) {
    let s = scope("ngsi-rmw");
    put(store, &s, record("urn:e:1", &["T"], "1")).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    store
        .modify_entities(
            &s,
            vec!["urn:e:1".into(), "urn:e:2".into()],
            Box::new(move |current| {
                seen2
                    .lock()
                    .unwrap()
                    .extend(current.iter().map(|r| r.as_ref().map(|r| r.doc.clone())));
                vec![
                    EntityChange::Delete,
                    EntityChange::Put(record("urn:e:2", &["T", "U"], "2")),
                ]
            }),
        )
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![Some("1".to_owned()), None]);
    assert_eq!(store.entity(&s, "urn:e:1").await.unwrap(), None);
    assert_eq!(
        store.entity(&s, "urn:e:2").await.unwrap().unwrap().types,
        vec!["T".to_owned(), "U".to_owned()]
    );
    // A wrong number of answers writes nothing.
    let err = store
        .modify_entities(
            &s,
            vec!["urn:e:3".into()],
            Box::new(|_| {
                vec![
                    EntityChange::Put(record("urn:e:3", &["T"], "3")),
                    EntityChange::Keep,
                ]
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InvalidInput);
    assert_eq!(store.entity(&s, "urn:e:3").await.unwrap(), None);
}

/// Listing by type and id; types are re-indexed when an entity changes.
pub async fn entities_filter_by_type_and_id(store: &impl NgsiStore) {
    let s = scope("ngsi-filter");
    put(store, &s, record("urn:e:b", &["T"], "b")).await;
    put(store, &s, record("urn:e:a", &["T", "U"], "a")).await;
    put(store, &s, record("urn:e:c", &["V"], "c")).await;
    let ids = |v: Vec<EntityRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = store.entities(&s, &EntityFilter::default()).await.unwrap();
    assert_eq!(ids(all), ["urn:e:a", "urn:e:b", "urn:e:c"]);
    let t = EntityFilter {
        types: Some(vec!["T".into()]),
        ..Default::default()
    };
    assert_eq!(
        ids(store.entities(&s, &t).await.unwrap()),
        ["urn:e:a", "urn:e:b"]
    );
    let uv = EntityFilter {
        types: Some(vec!["U".into(), "V".into()]),
        ..Default::default()
    };
    assert_eq!(
        ids(store.entities(&s, &uv).await.unwrap()),
        ["urn:e:a", "urn:e:c"]
    );
    let by_id = EntityFilter {
        ids: Some(vec!["urn:e:c".into(), "urn:e:b".into()]),
        types: Some(vec!["T".into()]),
    };
    assert_eq!(ids(store.entities(&s, &by_id).await.unwrap()), ["urn:e:b"]);
    // Changing a's types moves it out of U.
    put(store, &s, record("urn:e:a", &["T"], "a2")).await;
    assert_eq!(ids(store.entities(&s, &uv).await.unwrap()), ["urn:e:c"]);
    assert_eq!(store.delete_entities(&s, &t).await.unwrap(), 2);
    assert_eq!(
        ids(store.entities(&s, &EntityFilter::default()).await.unwrap()),
        ["urn:e:c"]
    );
}

/// Blind writes: the modifier sees no records, types are replaced, and the commit hook
/// tells each write's fate exactly once, in order, before the call resolves.
pub async fn blind_modify_reports_commits(store: &impl NgsiStore) {
    let s = scope("ngsi-blind");
    put(store, &s, record("urn:e:1", &["T", "U"], "1")).await;
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (seen, hooks) = (log.clone(), log.clone());
    store
        .modify_entities_blind(
            &s,
            vec!["urn:e:1".into(), "urn:e:2".into()],
            Box::new(move |current| {
                seen.lock()
                    .unwrap()
                    .push(format!("seen {}", current.iter().flatten().count()));
                vec![
                    EntityChange::Put(record("urn:e:1", &["V"], "1b")),
                    EntityChange::Put(record("urn:e:2", &["T"], "2")),
                ]
            }),
            crate::TemporalWrite::default(),
            Box::new(move |ok| hooks.lock().unwrap().push(format!("hook {ok}"))),
        )
        .await
        .unwrap();
    assert_eq!(*log.lock().unwrap(), ["seen 0", "hook true"]);
    let one = store.entity(&s, "urn:e:1").await.unwrap().unwrap();
    assert_eq!((one.doc.as_str(), one.types), ("1b", vec!["V".to_owned()]));
    let t = EntityFilter {
        types: Some(vec!["T".into()]),
        ..Default::default()
    };
    let ids: Vec<String> = store
        .entities(&s, &t)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["urn:e:2"]);
    // A failed write reports `false` and writes nothing.
    let hooks = log.clone();
    let err = store
        .modify_entities_blind(
            &s,
            vec!["urn:e:3".into()],
            Box::new(|_| vec![EntityChange::Keep, EntityChange::Keep]),
            crate::TemporalWrite::default(),
            Box::new(move |ok| hooks.lock().unwrap().push(format!("hook {ok}"))),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::InvalidInput);
    assert_eq!(log.lock().unwrap().last().unwrap(), "hook false");
    // Writes are queued when called (before being awaited): they run, and their hooks
    // report, in that order, once each.
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writes = Vec::new();
    for i in 0..20 {
        let order = order.clone();
        let id = format!("urn:e:c{i}");
        writes.push(store.modify_entities_blind(
            &s,
            vec![id.clone()],
            Box::new(move |_| vec![EntityChange::Put(record(&id, &["T"], "c"))]),
            crate::TemporalWrite::default(),
            Box::new(move |ok| order.lock().unwrap().push((i, ok))),
        ));
    }
    for w in writes.into_iter().rev() {
        w.await.unwrap();
    }
    let expected: Vec<(i32, bool)> = (0..20).map(|i| (i, true)).collect();
    assert_eq!(*order.lock().unwrap(), expected);
    // A write failing half-way among others queued with it is undone alone, also when
    // the store groups them into one transaction.
    let mut writes = Vec::new();
    for i in 0..12 {
        let (id, other) = (format!("urn:e:f{i}"), format!("urn:e:g{i}"));
        let second = if i % 5 == 3 {
            record("urn:e:wrong", &["T"], "x")
        } else {
            record(&other, &["T"], "g")
        };
        writes.push(store.modify_entities_blind(
            &s,
            vec![id.clone(), other],
            Box::new(move |_| {
                vec![
                    EntityChange::Put(record(&id, &["T"], "f")),
                    EntityChange::Put(second),
                ]
            }),
            crate::TemporalWrite::default(),
            Box::new(|_| {}),
        ));
    }
    for (i, w) in writes.into_iter().enumerate() {
        assert_eq!(w.await.is_ok(), i % 5 != 3, "write {i}");
    }
    for i in 0..12 {
        let f = store.entity(&s, &format!("urn:e:f{i}")).await.unwrap();
        let g = store.entity(&s, &format!("urn:e:g{i}")).await.unwrap();
        assert_eq!(
            (f.is_some(), g.is_some()),
            (i % 5 != 3, i % 5 != 3),
            "write {i}"
        );
    }
    assert!(store.entity(&s, "urn:e:wrong").await.unwrap().is_none());
    // Changed types: the type filter follows the written types.
    store
        .modify_entities_blind(
            &s,
            vec!["urn:e:f0".into(), "urn:e:new".into()],
            Box::new(|_| {
                vec![
                    EntityChange::Put(record("urn:e:f0", &["W"], "f0")),
                    EntityChange::Put(record("urn:e:new", &["W"], "n")),
                ]
            }),
            crate::TemporalWrite::default(),
            Box::new(|_| {}),
        )
        .await
        .unwrap();
    let of_type = |t: &str| EntityFilter {
        types: Some(vec![t.to_owned()]),
        ..Default::default()
    };
    let w: Vec<String> = store
        .entities(&s, &of_type("W"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(w, ["urn:e:f0", "urn:e:new"]);
    let t = store.entities(&s, &of_type("T")).await.unwrap();
    assert!(t.iter().all(|r| r.id != "urn:e:f0"));
    // The index slot is one per store.
    assert!(std::ptr::eq(store.index_slot(), store.index_slot()));
}

/// Stored `@context` documents.
pub async fn contexts(store: &impl NgsiStore) {
    let rec = ContextRecord {
        id: "urn:ctx:1".into(),
        url: None,
        kind: "hosted".into(),
        doc: "{\"@context\":{}}".into(),
        created_at: UnixMillis(5),
    };
    store.put_context(rec.clone()).await.unwrap();
    assert_eq!(
        store.put_context(rec.clone()).await.unwrap_err().kind(),
        StoreErrorKind::AlreadyExists
    );
    assert_eq!(store.context("urn:ctx:1").await.unwrap(), Some(rec.clone()));
    assert_eq!(store.contexts().await.unwrap(), vec![rec]);
    assert!(store.delete_context("urn:ctx:1").await.unwrap());
    assert!(!store.delete_context("urn:ctx:1").await.unwrap());
    assert_eq!(store.context("urn:ctx:1").await.unwrap(), None);
}

/// A blind write that puts an entity registers its tenant, with or without history, and
/// only once it commits; a write that puts nothing registers nothing, and a failed one
/// leaves the tenant to the next write (a backend that remembers registered tenants must
/// remember only committed registrations).
pub async fn blind_writes_register_their_tenant(store: &impl NgsiStore) {
    async fn blind(
        store: &impl NgsiStore,
        s: &TenantScope,
        ids: &[&str],
        changes: Vec<EntityChange>,
        with_history: bool,
    ) -> StoreResult<()> {
        let history = crate::TemporalWrite {
            entities: if with_history {
                ids.iter()
                    .map(|id| crate::TemporalEntityRecord {
                        id: (*id).to_owned(),
                        types: vec!["T".into()],
                        scope: Vec::new(),
                        created_at: 10_000,
                        modified_at: 20_000,
                        deleted_at: None,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            instances: Vec::new(),
        };
        store
            .modify_entities_blind(
                s,
                ids.iter().map(|id| (*id).to_owned()).collect(),
                Box::new(move |_| changes),
                history,
                Box::new(|_| {}),
            )
            .await
    }
    for with_history in [false, true] {
        let s = scope(if with_history {
            "ngsi-reg-h"
        } else {
            "ngsi-reg"
        });
        // Nothing put: committed, but no data and no tenant.
        blind(
            store,
            &s,
            &["urn:e:gone"],
            vec![EntityChange::Delete],
            with_history,
        )
        .await
        .unwrap();
        assert!(!store.tenant_exists(&s).await.unwrap(), "{with_history}");
        // A put that fails (its record answers for another id) registers nothing.
        let err = blind(
            store,
            &s,
            &["urn:e:1"],
            vec![EntityChange::Put(record("urn:e:other", &["T"], "x"))],
            with_history,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::InvalidInput);
        assert!(!store.tenant_exists(&s).await.unwrap(), "{with_history}");
        // The first put that commits registers the tenant; later ones find it registered.
        for n in 1..=2 {
            let id = format!("urn:e:{n}");
            blind(
                store,
                &s,
                &[id.as_str()],
                vec![EntityChange::Put(record(&id, &["T"], "x"))],
                with_history,
            )
            .await
            .unwrap();
            assert!(store.tenant_exists(&s).await.unwrap(), "{with_history} {n}");
            assert!(store.entity(&s, &id).await.unwrap().is_some());
        }
    }
}

/// Runs the [`NgsiStore`] conformance checks against a backend. `$make` is an
/// expression yielding a future of `(guard, store)`.
#[macro_export]
macro_rules! ngsi_store_test_suite {
    ($make:expr) => {
        mod ngsi_store_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::ngsi_store_test_suite!(@tests $make;
                entities_are_tenant_scoped, modify_is_read_modify_write,
                entities_filter_by_type_and_id, contexts, blind_modify_reports_commits,
                blind_writes_register_their_tenant);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $make.await;
                $crate::ngsi_testsuite::$name(&store).await;
            }
        )*
    };
}
