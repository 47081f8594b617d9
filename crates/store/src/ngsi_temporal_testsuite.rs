//! The conformance suite every [`NgsiTemporalStore`](crate::NgsiTemporalStore) backend runs, via
//! [`ngsi_temporal_store_test_suite!`](crate::ngsi_temporal_store_test_suite).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use crate::*;

fn scope(id: &str) -> TenantScope {
    TenantScope::authorized(TenantId::new(id).unwrap())
}

fn entity(id: &str, t: &str, at: i64) -> TemporalEntityRecord {
    TemporalEntityRecord {
        id: id.to_owned(),
        types: vec![t.to_owned()],
        scope: Vec::new(),
        created_at: at,
        modified_at: at,
        deleted_at: None,
    }
}

/// A current entity of type `Current`, created and modified at `at`.
fn current_entity(id: &str, doc: &str, at: i64) -> EntityRecord {
    EntityRecord {
        id: id.to_owned(),
        types: vec!["Current".to_owned()],
        doc: doc.to_owned(),
        created_at: UnixMillis(at),
        modified_at: UnixMillis(at),
    }
}

fn inst(e: &str, attr: &str, n: i64, observed: Option<i64>) -> TemporalInstanceRecord {
    TemporalInstanceRecord {
        entity_id: e.to_owned(),
        attribute: attr.to_owned(),
        instance_id: Some(format!("urn:i:{attr}:{n}")),
        dataset_id: None,
        observed_at: observed,
        created_at: 1000 + n,
        modified_at: 1000 + n,
        deleted_at: None,
        doc: format!("{{\"v\":{n}}}"),
    }
}

fn ids(rows: &[TemporalInstanceRecord]) -> Vec<String> {
    rows.iter()
        .map(|r| r.instance_id.clone().unwrap_or_default())
        .collect()
}

/// A write of many entities finds the series every one of them already has, whatever the
/// entities' order and however their instances are interleaved: a second write adds to the
/// history of each attribute instead of starting it over.
pub async fn many_entities_in_one_write_keep_their_series(store: &impl NgsiTemporalStore) {
    let s = scope("tmp-many");
    // 70 = 32 + 32 + 4 + 2: lookups of many ids at once come in chunks of those sizes, and the
    // statement of the largest is used for two chunks in a row.
    let entities: Vec<String> = (0..70).map(|n| format!("urn:e:many:{n:02}")).collect();
    let instance = |e: &str, attr: &str, round: i64| TemporalInstanceRecord {
        instance_id: Some(format!("urn:i:{e}:{attr}:{round}")),
        ..inst(e, attr, round, Some(100 + round))
    };
    for round in 0..2 {
        let mut order: Vec<&String> = entities.iter().collect();
        if round == 1 {
            order.reverse();
        }
        let mut instances: Vec<TemporalInstanceRecord> =
            order.iter().map(|e| instance(e, "p", round)).collect();
        // Each entity's second attribute after all the first ones: not next to its first.
        instances.extend(order.iter().map(|e| instance(e, "r", round)));
        store
            .record_temporal(
                &s,
                TemporalWrite {
                    entities: order.iter().map(|e| entity(e, "T", 1)).collect(),
                    instances,
                },
            )
            .await
            .unwrap();
    }
    for e in &entities {
        for attr in ["p", "r"] {
            let q = InstanceQuery {
                attributes: Some(vec![attr.to_owned()]),
                column: TimeColumn::ObservedAt,
                from: None,
                to: None,
                last_n: None,
                first_n: None,
            };
            let got = store.temporal_instances(&s, e, &q).await.unwrap();
            assert_eq!(
                ids(&got),
                [format!("urn:i:{e}:{attr}:0"), format!("urn:i:{e}:{attr}:1")],
                "{e} {attr}"
            );
        }
    }
}

/// History is per tenant: another tenant sees nothing and deletes nothing.
pub async fn history_is_tenant_scoped(store: &impl NgsiTemporalStore) {
    let a = scope("tmp-a");
    let b = scope("tmp-b");
    store
        .record_temporal(
            &a,
            TemporalWrite {
                entities: vec![entity("urn:e:1", "T", 1)],
                instances: vec![inst("urn:e:1", "p", 1, Some(10))],
            },
        )
        .await
        .unwrap();
    assert!(
        store
            .temporal_entity(&a, "urn:e:1")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.temporal_entity(&b, "urn:e:1").await.unwrap(), None);
    assert!(store.temporal_entities(&b, None).await.unwrap().is_empty());
    assert!(
        store
            .temporal_instances(&b, "urn:e:1", &InstanceQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .temporal_attributes(&b, "urn:e:1")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.delete_temporal_entity(&b, "urn:e:1").await.unwrap());
    assert!(
        !store
            .delete_temporal_instance(&b, "urn:e:1", "p", "urn:i:p:1")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .delete_temporal_attribute(&b, "urn:e:1", "p", &DatasetSelector::All)
            .await
            .unwrap(),
        0
    );
    let mut patched = inst("urn:e:1", "p", 1, Some(11));
    patched.doc = "{\"v\":99}".into();
    assert!(!store.update_temporal_instance(&b, &patched).await.unwrap());
    // Still intact for a.
    let rows = store
        .temporal_instances(&a, "urn:e:1", &InstanceQuery::default())
        .await
        .unwrap();
    assert_eq!(rows, vec![inst("urn:e:1", "p", 1, Some(10))]);
    assert!(store.delete_temporal_entity(&a, "urn:e:1").await.unwrap());
    assert_eq!(store.temporal_entity(&a, "urn:e:1").await.unwrap(), None);
    assert!(
        store
            .temporal_instances(&a, "urn:e:1", &InstanceQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Ranges are `[from, to)` on the chosen column; `last_n` keeps the newest N per attribute,
/// oldest first.
pub async fn ranges_and_last_n(store: &impl NgsiTemporalStore) {
    let s = scope("tmp-q");
    let mut instances: Vec<TemporalInstanceRecord> = (0..10)
        .map(|n| inst("urn:e:q", "p", n, Some(100 + 10 * n)))
        .collect();
    instances.extend((0..3).map(|n| inst("urn:e:q", "r", n, Some(500 + n))));
    // No observedAt: only visible without a range, ordered by createdAt.
    instances.push(inst("urn:e:q", "s", 0, None));
    // Inserted out of time order: results are still ordered by time.
    instances.reverse();
    store
        .record_temporal(
            &s,
            TemporalWrite {
                entities: vec![entity("urn:e:q", "T", 1)],
                instances,
            },
        )
        .await
        .unwrap();
    let q = |attrs: Option<&[&str]>, from, to, last_n| InstanceQuery {
        attributes: attrs.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
        column: TimeColumn::ObservedAt,
        from,
        to,
        last_n,
        first_n: None,
    };
    let p = store
        .temporal_instances(&s, "urn:e:q", &q(Some(&["p"]), None, None, None))
        .await
        .unwrap();
    assert_eq!(
        ids(&p),
        (0..10).map(|n| format!("urn:i:p:{n}")).collect::<Vec<_>>()
    );
    let p = store
        .temporal_instances(&s, "urn:e:q", &q(Some(&["p"]), Some(120), Some(150), None))
        .await
        .unwrap();
    assert_eq!(ids(&p), ["urn:i:p:2", "urn:i:p:3", "urn:i:p:4"]);
    let last = store
        .temporal_instances(&s, "urn:e:q", &q(None, None, None, Some(2)))
        .await
        .unwrap();
    let mut got = ids(&last);
    got.sort();
    assert_eq!(
        got,
        [
            "urn:i:p:8",
            "urn:i:p:9",
            "urn:i:r:1",
            "urn:i:r:2",
            "urn:i:s:0"
        ]
    );
    let last_p: Vec<_> = last.iter().filter(|r| r.attribute == "p").collect();
    assert_eq!(last_p[0].instance_id.as_deref(), Some("urn:i:p:8"));
    let last = store
        .temporal_instances(&s, "urn:e:q", &q(Some(&["p"]), None, Some(150), Some(2)))
        .await
        .unwrap();
    assert_eq!(ids(&last), ["urn:i:p:3", "urn:i:p:4"]);
    // With a range, instances without observedAt are out.
    let ranged = store
        .temporal_instances(&s, "urn:e:q", &q(Some(&["s"]), Some(0), None, None))
        .await
        .unwrap();
    assert!(ranged.is_empty());
    // Other columns.
    let created = store
        .temporal_instances(
            &s,
            "urn:e:q",
            &InstanceQuery {
                attributes: Some(vec!["r".into()]),
                column: TimeColumn::CreatedAt,
                from: Some(1001),
                to: None,
                last_n: None,
                first_n: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&created), ["urn:i:r:1"]);
    let deleted = store
        .temporal_instances(
            &s,
            "urn:e:q",
            &InstanceQuery {
                column: TimeColumn::DeletedAt,
                ..InstanceQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(deleted.is_empty());
    let mut attrs = store.temporal_attributes(&s, "urn:e:q").await.unwrap();
    attrs.sort();
    assert_eq!(attrs, ["p", "r", "s"]);
}

/// Entities are upserted: types, scope and times follow the latest write, `created_at` stays.
pub async fn entities_upsert_and_filter(store: &impl NgsiTemporalStore) {
    let s = scope("tmp-e");
    for (id, t) in [("urn:e:2", "T"), ("urn:e:1", "U")] {
        store
            .record_temporal(
                &s,
                TemporalWrite {
                    entities: vec![entity(id, t, 5)],
                    instances: vec![],
                },
            )
            .await
            .unwrap();
    }
    let mut later = entity("urn:e:1", "V", 9);
    later.scope = vec!["/a".into()];
    later.deleted_at = Some(9);
    store
        .record_temporal(
            &s,
            TemporalWrite {
                entities: vec![later],
                instances: vec![],
            },
        )
        .await
        .unwrap();
    let all = store.temporal_entities(&s, None).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["urn:e:1", "urn:e:2"]
    );
    assert_eq!(all[0].types, ["V"]);
    assert_eq!(all[0].scope, ["/a"]);
    assert_eq!(
        (all[0].created_at, all[0].modified_at, all[0].deleted_at),
        (5, 9, Some(9))
    );
    let only = store
        .temporal_entities(&s, Some(&["urn:e:2".to_owned(), "urn:e:9".to_owned()]))
        .await
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].id, "urn:e:2");
}

/// Deleting by dataset, patching and deleting single instances, duplicate instance ids.
pub async fn instance_maintenance(store: &impl NgsiTemporalStore) {
    let s = scope("tmp-m");
    let mut with_ds = inst("urn:e:m", "p", 1, Some(20));
    with_ds.dataset_id = Some("urn:ds:1".into());
    store
        .record_temporal(
            &s,
            TemporalWrite {
                entities: vec![entity("urn:e:m", "T", 1)],
                instances: vec![
                    inst("urn:e:m", "p", 0, Some(10)),
                    with_ds,
                    inst("urn:e:m", "p", 2, Some(30)),
                ],
            },
        )
        .await
        .unwrap();
    // A duplicate instance id fails and writes nothing.
    let err = store
        .record_temporal(
            &s,
            TemporalWrite {
                entities: vec![],
                instances: vec![
                    inst("urn:e:m", "p", 7, Some(70)),
                    inst("urn:e:m", "p", 0, Some(10)),
                ],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::AlreadyExists);
    let all = InstanceQuery::default();
    assert_eq!(
        store
            .temporal_instances(&s, "urn:e:m", &all)
            .await
            .unwrap()
            .len(),
        3
    );
    let mut patched = inst("urn:e:m", "p", 2, Some(5));
    patched.doc = "{\"v\":42}".into();
    patched.modified_at = 5000;
    assert!(store.update_temporal_instance(&s, &patched).await.unwrap());
    let rows = store.temporal_instances(&s, "urn:e:m", &all).await.unwrap();
    // Now the oldest by observedAt, with the new document and modifiedAt, createdAt unchanged.
    assert_eq!(rows[0].instance_id.as_deref(), Some("urn:i:p:2"));
    assert_eq!(rows[0].doc, "{\"v\":42}");
    assert_eq!((rows[0].created_at, rows[0].modified_at), (1002, 5000));
    let mut missing = patched.clone();
    missing.instance_id = Some("urn:i:none".into());
    assert!(!store.update_temporal_instance(&s, &missing).await.unwrap());
    assert_eq!(
        store
            .delete_temporal_attribute(&s, "urn:e:m", "p", &DatasetSelector::Id("urn:ds:1".into()))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .delete_temporal_instance(&s, "urn:e:m", "p", "urn:i:p:0")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_temporal_instance(&s, "urn:e:m", "p", "urn:i:p:0")
            .await
            .unwrap()
    );
    assert_eq!(
        ids(&store.temporal_instances(&s, "urn:e:m", &all).await.unwrap()),
        ["urn:i:p:2"]
    );
    assert_eq!(
        store
            .delete_temporal_attribute(&s, "urn:e:m", "p", &DatasetSelector::Default)
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .temporal_instances(&s, "urn:e:m", &all)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Instances written without an id get one from the store: distinct, never handed out again
/// (not even after the newest instance is deleted), and addressing exactly their instance.
pub async fn minted_instance_ids(store: &impl NgsiTemporalStore) {
    let s = scope("tmp-mint");
    let minted = |e: &str, attr: &str, n: i64| TemporalInstanceRecord {
        instance_id: None,
        ..inst(e, attr, n, Some(n))
    };
    let write = |instances| TemporalWrite {
        entities: vec![entity("urn:e:a", "T", 1), entity("urn:e:b", "T", 1)],
        instances,
    };
    store
        .record_temporal(
            &s,
            write(vec![
                inst("urn:e:b", "p", 5, Some(5)),
                minted("urn:e:a", "p", 1),
                minted("urn:e:a", "p", 2),
                minted("urn:e:a", "q", 3),
                minted("urn:e:b", "p", 4),
            ]),
        )
        .await
        .unwrap();
    let all = InstanceQuery::default();
    let a = store.temporal_instances(&s, "urn:e:a", &all).await.unwrap();
    let b = store.temporal_instances(&s, "urn:e:b", &all).await.unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(ids(&b)[1], "urn:i:p:5");
    let mut every: Vec<String> = ids(&a).into_iter().chain(ids(&b)).collect();
    assert!(every.iter().all(|id| id.contains(':')), "{every:?}");
    every.sort();
    every.dedup();
    assert_eq!(every.len(), 5, "minted ids repeat");
    let (a1, a2, b4) = (ids(&a)[0].clone(), ids(&a)[1].clone(), ids(&b)[0].clone());
    // An id addresses its own entity and attribute only.
    assert!(
        !store
            .delete_temporal_instance(&s, "urn:e:b", "p", &a1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_temporal_instance(&s, "urn:e:a", "q", &a1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_temporal_instance(&scope("tmp-mint-other"), "urn:e:a", "p", &a1)
            .await
            .unwrap()
    );
    let mut patched = a
        .iter()
        .find(|r| r.instance_id.as_deref() == Some(a2.as_str()))
        .unwrap()
        .clone();
    patched.doc = "{\"v\":22}".into();
    patched.modified_at = 9000;
    assert!(store.update_temporal_instance(&s, &patched).await.unwrap());
    let mut elsewhere = patched.clone();
    elsewhere.entity_id = "urn:e:b".into();
    assert!(
        !store
            .update_temporal_instance(&s, &elsewhere)
            .await
            .unwrap()
    );
    let a = store.temporal_instances(&s, "urn:e:a", &all).await.unwrap();
    assert_eq!(a[1].doc, "{\"v\":22}");
    assert_eq!(a[1].instance_id.as_deref(), Some(a2.as_str()));
    assert_eq!(
        store.temporal_instances(&s, "urn:e:b", &all).await.unwrap()[0].doc,
        "{\"v\":4}"
    );
    // The last instances written go; their ids are not handed out again.
    assert!(
        store
            .delete_temporal_instance(&s, "urn:e:a", "p", &a2)
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_temporal_instance(&s, "urn:e:b", "p", &b4)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_temporal_instance(&s, "urn:e:a", "p", &a2)
            .await
            .unwrap()
    );
    store
        .record_temporal(
            &s,
            write(vec![minted("urn:e:a", "p", 6), minted("urn:e:b", "p", 7)]),
        )
        .await
        .unwrap();
    let again: Vec<String> = ids(&store.temporal_instances(&s, "urn:e:a", &all).await.unwrap())
        .into_iter()
        .chain(ids(&store
            .temporal_instances(&s, "urn:e:b", &all)
            .await
            .unwrap()))
        .collect();
    assert_eq!(again.len(), 5);
    for old in [&a2, &b4] {
        assert!(
            !again.contains(old),
            "{old} was handed out again: {again:?}"
        );
    }
    assert!(again.contains(&a1));
}

/// Runs the [`NgsiTemporalStore`] conformance checks against a backend. `$make` is an
/// expression yielding a future of `(guard, store)`.
/// An entity write that carries its history (`NgsiStore::modify_entities_blind`) commits both
/// or neither: a history that cannot be written (a repeated instance id) undoes the entity.
pub async fn entity_writes_carry_history(store: &(impl NgsiStore + NgsiTemporalStore)) {
    let s = scope("tmp-carry");
    let record = |id: &str, doc: &str| EntityRecord {
        id: id.to_owned(),
        types: vec!["T".to_owned()],
        doc: doc.to_owned(),
        created_at: UnixMillis(1),
        modified_at: UnixMillis(1),
    };
    let (r1, r2) = (record("urn:e:1", "one"), record("urn:e:1", "two"));
    store
        .modify_entities_blind(
            &s,
            vec!["urn:e:1".into()],
            Box::new(move |_| vec![EntityChange::Put(r1)]),
            TemporalWrite {
                entities: vec![entity("urn:e:1", "T", 1)],
                instances: vec![inst("urn:e:1", "p", 1, Some(10))],
            },
            Box::new(|_| {}),
        )
        .await
        .unwrap();
    assert_eq!(
        store.entity(&s, "urn:e:1").await.unwrap().unwrap().doc,
        "one"
    );
    let all = InstanceQuery::default();
    assert_eq!(
        ids(&store.temporal_instances(&s, "urn:e:1", &all).await.unwrap()),
        ["urn:i:p:1"]
    );
    let fate = std::sync::Arc::new(std::sync::Mutex::new(None));
    let told = fate.clone();
    let err = store
        .modify_entities_blind(
            &s,
            vec!["urn:e:1".into()],
            Box::new(move |_| vec![EntityChange::Put(r2)]),
            TemporalWrite {
                entities: vec![entity("urn:e:1", "T", 2)],
                instances: vec![inst("urn:e:1", "q", 2, None), inst("urn:e:1", "p", 1, None)],
            },
            Box::new(move |ok| *told.lock().unwrap() = Some(ok)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::AlreadyExists);
    assert_eq!(*fate.lock().unwrap(), Some(false));
    assert_eq!(
        store.entity(&s, "urn:e:1").await.unwrap().unwrap().doc,
        "one"
    );
    assert_eq!(
        ids(&store.temporal_instances(&s, "urn:e:1", &all).await.unwrap()),
        ["urn:i:p:1"]
    );
    assert_eq!(
        store.temporal_attributes(&s, "urn:e:1").await.unwrap(),
        ["p"]
    );
}

/// An entity's current state and its temporal entity are independent: deleting one keeps
/// the other, each reads back as written whatever the other does, and once both are gone the
/// id can be used afresh (a backend may keep both in one row).
pub async fn current_and_temporal_entities_are_independent(
    store: &(impl NgsiStore + NgsiTemporalStore),
) {
    let s = scope("tmp-parts");
    let put = |id: &str, doc: &str, at: i64| {
        let change = vec![EntityChange::Put(current_entity(id, doc, at))];
        store.modify_entities_blind(
            &s,
            vec![id.to_owned()],
            Box::new(move |_| change),
            TemporalWrite {
                entities: vec![entity(id, "Temporal", at)],
                instances: vec![inst(id, "p", at, Some(at))],
            },
            Box::new(|_| {}),
        )
    };
    put("urn:e:1", "one", 1).await.unwrap();
    put("urn:e:2", "two", 2).await.unwrap();
    // Only a current entity (no history), and only a temporal entity (no current state).
    let only_current = current_entity("urn:e:3", "three", 3);
    store
        .modify_entities_blind(
            &s,
            vec!["urn:e:3".into()],
            Box::new(move |_| vec![EntityChange::Put(only_current)]),
            TemporalWrite::default(),
            Box::new(|_| {}),
        )
        .await
        .unwrap();
    store
        .record_temporal(
            &s,
            TemporalWrite {
                entities: vec![entity("urn:e:4", "Temporal", 4)],
                instances: vec![inst("urn:e:4", "p", 4, None)],
            },
        )
        .await
        .unwrap();
    let by_ids = |ids: &[&str]| EntityFilter {
        ids: Some(ids.iter().map(|id| (*id).to_owned()).collect()),
        types: None,
    };
    let current_ids = |list: Vec<EntityRecord>| list.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let temporal_ids =
        |list: Vec<TemporalEntityRecord>| list.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        current_ids(store.entities(&s, &EntityFilter::default()).await.unwrap()),
        ["urn:e:1", "urn:e:2", "urn:e:3"]
    );
    let current_type = EntityFilter {
        types: Some(vec!["Current".to_owned()]),
        ..EntityFilter::default()
    };
    assert_eq!(
        current_ids(store.entities(&s, &current_type).await.unwrap()),
        ["urn:e:1", "urn:e:2", "urn:e:3"]
    );
    assert_eq!(
        temporal_ids(store.temporal_entities(&s, None).await.unwrap()),
        ["urn:e:1", "urn:e:2", "urn:e:4"]
    );
    assert!(store.entity(&s, "urn:e:4").await.unwrap().is_none());
    assert!(
        store
            .temporal_entity(&s, "urn:e:3")
            .await
            .unwrap()
            .is_none()
    );
    let temporal = store.temporal_entity(&s, "urn:e:1").await.unwrap().unwrap();
    assert_eq!(temporal.types, ["Temporal"]);
    assert_eq!((temporal.created_at, temporal.modified_at), (1, 1));

    // Deleting the current entity keeps its history, and the other way round.
    assert_eq!(
        store
            .delete_entities(&s, &by_ids(&["urn:e:1", "urn:e:3"]))
            .await
            .unwrap(),
        2
    );
    assert!(store.entity(&s, "urn:e:1").await.unwrap().is_none());
    assert!(
        store
            .temporal_entity(&s, "urn:e:1")
            .await
            .unwrap()
            .is_some()
    );
    let all = InstanceQuery::default();
    assert_eq!(
        ids(&store.temporal_instances(&s, "urn:e:1", &all).await.unwrap()),
        ["urn:i:p:1"]
    );
    assert!(store.delete_temporal_entity(&s, "urn:e:2").await.unwrap());
    assert!(!store.delete_temporal_entity(&s, "urn:e:2").await.unwrap());
    assert!(
        store
            .temporal_entity(&s, "urn:e:2")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.entity(&s, "urn:e:2").await.unwrap().unwrap().doc,
        "two"
    );
    assert_eq!(
        current_ids(store.entities(&s, &EntityFilter::default()).await.unwrap()),
        ["urn:e:2"]
    );
    assert_eq!(
        temporal_ids(store.temporal_entities(&s, None).await.unwrap()),
        ["urn:e:1", "urn:e:4"]
    );

    // Gone in both forms, the id starts afresh: no history, no old times.
    assert!(store.delete_temporal_entity(&s, "urn:e:1").await.unwrap());
    assert_eq!(
        store
            .delete_entities(&s, &by_ids(&["urn:e:1"]))
            .await
            .unwrap(),
        0
    );
    put("urn:e:1", "again", 9).await.unwrap();
    assert_eq!(
        store.entity(&s, "urn:e:1").await.unwrap().unwrap().doc,
        "again"
    );
    let temporal = store.temporal_entity(&s, "urn:e:1").await.unwrap().unwrap();
    assert_eq!((temporal.created_at, temporal.modified_at), (9, 9));
    assert_eq!(
        ids(&store.temporal_instances(&s, "urn:e:1", &all).await.unwrap()),
        ["urn:i:p:9"]
    );
    // One write of two current entities, only one of them with a temporal entity.
    let changes = vec![
        EntityChange::Put(current_entity("urn:e:5", "five", 5)),
        EntityChange::Put(current_entity("urn:e:6", "six", 5)),
    ];
    store
        .modify_entities_blind(
            &s,
            vec!["urn:e:5".into(), "urn:e:6".into()],
            Box::new(move |_| changes),
            TemporalWrite {
                entities: vec![entity("urn:e:6", "Temporal", 5)],
                instances: vec![inst("urn:e:6", "p", 5, None)],
            },
            Box::new(|_| {}),
        )
        .await
        .unwrap();
    assert_eq!(
        store.entity(&s, "urn:e:5").await.unwrap().unwrap().doc,
        "five"
    );
    assert_eq!(
        store.entity(&s, "urn:e:6").await.unwrap().unwrap().doc,
        "six"
    );
    assert!(
        store
            .temporal_entity(&s, "urn:e:5")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .temporal_entity(&s, "urn:e:6")
            .await
            .unwrap()
            .is_some()
    );
    // A current entity written again over a history keeps the history's first time.
    put("urn:e:4", "four", 8).await.unwrap();
    let temporal = store.temporal_entity(&s, "urn:e:4").await.unwrap().unwrap();
    assert_eq!((temporal.created_at, temporal.modified_at), (4, 8));
    assert_eq!(
        store.entity(&s, "urn:e:4").await.unwrap().unwrap().doc,
        "four"
    );
    assert_eq!(
        store.temporal_attributes(&s, "urn:e:4").await.unwrap(),
        ["p"]
    );
}

#[macro_export]
macro_rules! ngsi_temporal_store_test_suite {
    ($make:expr) => {
        mod ngsi_temporal_store_suite {
            #[allow(unused_imports)]
            use super::*;
            $crate::ngsi_temporal_store_test_suite!(@tests $make;
                history_is_tenant_scoped, ranges_and_last_n, entities_upsert_and_filter,
                instance_maintenance, minted_instance_ids, entity_writes_carry_history,
                current_and_temporal_entities_are_independent,
                many_entities_in_one_write_keep_their_series);
        }
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store) = $make.await;
                $crate::ngsi_temporal_testsuite::$name(&store).await;
            }
        )*
    };
}
