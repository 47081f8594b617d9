//! The shared `NgsiTemporalStore` conformance suite on the embedded store.

use store_sqlite::SqliteStore;

async fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open store");
    (dir, store)
}

store::ngsi_temporal_store_test_suite!(fresh());

/// A database written with the 0007 history schema (schema version 8) is converted by
/// migration 0009: its history reads back the same (attributes in recorded order, instances in
/// time then insertion order, `observedAt` kept apart from `createdAt`, tenants apart), and new
/// writes extend it (a new attribute comes after the old ones; an old instance id still counts).
#[tokio::test]
async fn history_written_with_the_0007_schema_reads_back_after_migration() {
    use store::{
        InstanceQuery, NgsiStore, NgsiTemporalStore, StoreErrorKind, TemporalEntityRecord,
        TemporalInstanceRecord, TemporalWrite, TenantId, TenantScope,
    };
    const OLD: [&str; 8] = [
        include_str!("../migrations/0001_identity.sql"),
        include_str!("../migrations/0002_ngsi.sql"),
        include_str!("../migrations/0003_handle.sql"),
        include_str!("../migrations/0004_compute.sql"),
        include_str!("../migrations/0005_secure.sql"),
        include_str!("../migrations/0006_ngsi_subscriptions.sql"),
        include_str!("../migrations/0007_ngsi_temporal.sql"),
        include_str!("../migrations/0008_ngsi_registrations.sql"),
    ];
    let dir = tempfile::tempdir().unwrap();
    {
        let raw = rusqlite::Connection::open(dir.path().join(store_sqlite::DATABASE_FILE)).unwrap();
        for sql in OLD {
            raw.execute_batch(sql).unwrap();
        }
        raw.pragma_update(None, "user_version", OLD.len() as i64)
            .unwrap();
        raw.execute_batch(
            "INSERT INTO ngsi_temporal_entities VALUES
                 ('city', 'urn:e:1', '[\"T\"]', '[\"/a\"]', 5, 50, NULL),
                 ('other', 'urn:e:1', '[\"U\"]', '[]', 7, 7, 70);
             -- Recorded order: speed first, although 'plate' sorts before it.
             INSERT INTO ngsi_temporal_attributes VALUES
                 ('city', 'urn:e:1', 'speed', 0),
                 ('city', 'urn:e:1', 'plate', 1),
                 ('other', 'urn:e:1', 'speed', 0);
             INSERT INTO ngsi_temporal_instances (seq, tenant, entity_id, attribute, instance_id,
                     dataset_id, observed_at, has_observed, created_at, modified_at, deleted_at, doc)
             VALUES
                 (1, 'city', 'urn:e:1', 'speed', 'urn:i:s1', NULL, 300, 1, 10, 10, NULL, '{\"v\":1}'),
                 (2, 'city', 'urn:e:1', 'speed', 'urn:i:s2', 'urn:d:1', 100, 1, 20, 25, NULL, '{\"v\":2}'),
                 (3, 'city', 'urn:e:1', 'plate', 'urn:i:p1', NULL, 30, 0, 30, 30, NULL, '{\"v\":3}'),
                 (4, 'city', 'urn:e:1', 'speed', 'urn:i:s3', NULL, 300, 1, 40, 40, 40, '{\"v\":4}'),
                 (5, 'other', 'urn:e:1', 'speed', 'urn:i:o1', NULL, 50, 0, 50, 50, NULL, '{\"v\":5}');
             -- Current entities: one with a history, one without (migration 0013 merges the
             -- first with its temporal entity into one row).
             INSERT INTO ngsi_entities (tenant, id, doc, created_at, modified_at) VALUES
                 ('city', 'urn:e:1', 'current one', 5, 60),
                 ('city', 'urn:e:2', 'current two', 6, 6);
             INSERT INTO ngsi_entity_types (tenant, type, id) VALUES
                 ('city', 'T', 'urn:e:1'),
                 ('city', 'U', 'urn:e:2');",
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let city = TenantScope::authorized(TenantId::new("city").unwrap());
    let other = TenantScope::authorized(TenantId::new("other").unwrap());
    let instance = |attribute: &str, id: &str, observed: Option<i64>, times: (i64, i64)| {
        TemporalInstanceRecord {
            entity_id: "urn:e:1".into(),
            attribute: attribute.into(),
            instance_id: Some(id.into()),
            dataset_id: None,
            observed_at: observed,
            created_at: times.0,
            modified_at: times.1,
            deleted_at: None,
            doc: String::new(),
        }
    };

    assert_eq!(
        store.temporal_entity(&city, "urn:e:1").await.unwrap(),
        Some(TemporalEntityRecord {
            id: "urn:e:1".into(),
            types: vec!["T".into()],
            scope: vec!["/a".into()],
            created_at: 5,
            modified_at: 50,
            deleted_at: None,
        })
    );
    assert_eq!(
        store.temporal_attributes(&city, "urn:e:1").await.unwrap(),
        vec!["speed".to_owned(), "plate".to_owned()]
    );
    // Current entities and temporal entities, each as they were (migration 0013).
    let current = store.entity(&city, "urn:e:1").await.unwrap().unwrap();
    assert_eq!(
        (current.doc.as_str(), current.types, current.modified_at.0),
        ("current one", vec!["T".to_owned()], 60)
    );
    let current = store.entity(&city, "urn:e:2").await.unwrap().unwrap();
    assert_eq!(current.types, ["U"]);
    assert!(
        store
            .temporal_entity(&city, "urn:e:2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.entity(&other, "urn:e:1").await.unwrap().is_none());
    assert_eq!(
        store
            .temporal_entity(&other, "urn:e:1")
            .await
            .unwrap()
            .and_then(|e| e.deleted_at),
        Some(70)
    );
    assert_eq!(
        store
            .temporal_entities(&city, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        ["urn:e:1"]
    );
    let all = store
        .temporal_instances(&city, "urn:e:1", &InstanceQuery::default())
        .await
        .unwrap();
    let expected = vec![
        TemporalInstanceRecord {
            dataset_id: Some("urn:d:1".into()),
            doc: "{\"v\":2}".into(),
            ..instance("speed", "urn:i:s2", Some(100), (20, 25))
        },
        TemporalInstanceRecord {
            doc: "{\"v\":1}".into(),
            ..instance("speed", "urn:i:s1", Some(300), (10, 10))
        },
        TemporalInstanceRecord {
            deleted_at: Some(40),
            doc: "{\"v\":4}".into(),
            ..instance("speed", "urn:i:s3", Some(300), (40, 40))
        },
        TemporalInstanceRecord {
            doc: "{\"v\":3}".into(),
            ..instance("plate", "urn:i:p1", None, (30, 30))
        },
    ];
    assert_eq!(all, expected);
    let last = store
        .temporal_instances(
            &city,
            "urn:e:1",
            &InstanceQuery {
                attributes: Some(vec!["speed".into()]),
                last_n: Some(1),
                ..InstanceQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(last, expected[2..3]);
    let other_all = store
        .temporal_instances(&other, "urn:e:1", &InstanceQuery::default())
        .await
        .unwrap();
    assert_eq!(
        other_all
            .iter()
            .map(|i| i.instance_id.as_deref().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["urn:i:o1"]
    );
    assert_eq!(
        store
            .temporal_entity(&other, "urn:e:1")
            .await
            .unwrap()
            .unwrap()
            .deleted_at,
        Some(70)
    );

    // Old instance ids are still unique per attribute; a new attribute comes last.
    let duplicate = store
        .record_temporal(
            &city,
            TemporalWrite {
                entities: Vec::new(),
                instances: vec![instance("speed", "urn:i:s1", None, (60, 60))],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(duplicate.kind(), StoreErrorKind::AlreadyExists);
    store
        .record_temporal(
            &city,
            TemporalWrite {
                entities: Vec::new(),
                instances: vec![
                    instance("color", "urn:i:c1", None, (70, 70)),
                    instance("speed", "urn:i:s4", Some(500), (70, 70)),
                ],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.temporal_attributes(&city, "urn:e:1").await.unwrap(),
        vec!["speed".to_owned(), "plate".to_owned(), "color".to_owned()]
    );
    assert!(
        store
            .delete_temporal_instance(&city, "urn:e:1", "plate", "urn:i:p1")
            .await
            .unwrap()
    );
    let speed = store
        .temporal_instances(
            &city,
            "urn:e:1",
            &InstanceQuery {
                attributes: Some(vec!["speed".into()]),
                ..InstanceQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        speed
            .iter()
            .map(|i| i.instance_id.as_deref().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["urn:i:s2", "urn:i:s1", "urn:i:s3", "urn:i:s4"]
    );
    // Instances written without an id after the migration are numbered past the old rows
    // (numbering from 1 would collide with them), and their minted id finds them.
    store
        .record_temporal(
            &city,
            TemporalWrite {
                entities: Vec::new(),
                instances: vec![TemporalInstanceRecord {
                    instance_id: None,
                    ..instance("speed", "", Some(600), (80, 80))
                }],
            },
        )
        .await
        .unwrap();
    let of_speed = InstanceQuery {
        attributes: Some(vec!["speed".into()]),
        ..InstanceQuery::default()
    };
    let speed = store
        .temporal_instances(&city, "urn:e:1", &of_speed)
        .await
        .unwrap();
    assert_eq!(speed.len(), 5);
    let minted = speed.last().unwrap().instance_id.clone().unwrap();
    assert!(!minted.starts_with("urn:i:"), "{minted}");
    assert!(
        store
            .delete_temporal_instance(&city, "urn:e:1", "speed", &minted)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .temporal_instances(&city, "urn:e:1", &of_speed)
            .await
            .unwrap(),
        speed[..speed.len() - 1]
    );
    drop(dir);
}

/// Series are created in multi-row statements: a write that mixes existing and new series,
/// spans more than one statement (40 entities × 2 attributes) and names one entity twice
/// apart still files every instance under its own attribute, and keeps each entity's
/// attributes in first-recorded order.
#[tokio::test]
async fn series_created_in_bulk_keep_instances_and_order() {
    series_keep_instances_and_order(false).await;
}

/// The same writes with entity records that mark every entity as written before (created
/// before this write modifies it), so the store looks series up before inserting: found for
/// e0's `b`, not found for e0's new attributes and for the 40 entities.
#[tokio::test]
async fn series_looked_up_first_keep_instances_and_order() {
    series_keep_instances_and_order(true).await;
}

async fn series_keep_instances_and_order(marked: bool) {
    use store::{InstanceQuery, NgsiTemporalStore, TemporalInstanceRecord, TemporalWrite};
    use store::{TemporalEntityRecord, TenantId, TenantScope};
    let (_dir, store) = fresh().await;
    let record = |e: &str| TemporalEntityRecord {
        id: e.into(),
        types: vec!["T".into()],
        scope: vec![],
        created_at: 0,
        modified_at: 1_000,
        deleted_at: None,
    };
    let records = |ids: &[String]| -> Vec<TemporalEntityRecord> {
        if marked {
            ids.iter().map(|id| record(id)).collect()
        } else {
            vec![]
        }
    };
    let s = TenantScope::authorized(TenantId::new("city").unwrap());
    let inst = |e: &str, a: &str, n: i64| TemporalInstanceRecord {
        entity_id: e.into(),
        attribute: a.into(),
        instance_id: Some(format!("urn:i:{e}:{a}:{n}")),
        dataset_id: None,
        observed_at: Some(n),
        created_at: n,
        modified_at: n,
        deleted_at: None,
        doc: format!("{{\"v\":{n}}}"),
    };
    // First write: e0 has `b`.
    store
        .record_temporal(
            &s,
            TemporalWrite {
                entities: records(&["urn:e:0".to_owned()]),
                instances: vec![inst("urn:e:0", "b", 1)],
            },
        )
        .await
        .unwrap();
    // Second write: e0 gets `c` (new) and `b` (existing) in one run, 40 more entities get
    // `x` and `y`, then e0 comes back with `a` (new) and `b` again.
    let mut instances = vec![inst("urn:e:0", "c", 2), inst("urn:e:0", "b", 3)];
    for k in 1..=40 {
        instances.push(inst(&format!("urn:e:{k}"), "x", 10 + k));
        instances.push(inst(&format!("urn:e:{k}"), "y", 100 + k));
    }
    instances.push(inst("urn:e:0", "a", 4));
    instances.push(inst("urn:e:0", "b", 5));
    let mut ids = vec!["urn:e:0".to_owned()];
    ids.extend((1..=40).map(|k| format!("urn:e:{k}")));
    store
        .record_temporal(
            &s,
            TemporalWrite {
                entities: records(&ids),
                instances,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.temporal_attributes(&s, "urn:e:0").await.unwrap(),
        ["b", "c", "a"]
    );
    let of = |attribute: &str| InstanceQuery {
        attributes: Some(vec![attribute.into()]),
        ..InstanceQuery::default()
    };
    let docs = |rows: Vec<TemporalInstanceRecord>| -> Vec<String> {
        rows.into_iter()
            .map(|r| format!("{}={}", r.attribute, r.doc))
            .collect()
    };
    assert_eq!(
        docs(
            store
                .temporal_instances(&s, "urn:e:0", &of("b"))
                .await
                .unwrap()
        ),
        ["b={\"v\":1}", "b={\"v\":3}", "b={\"v\":5}"]
    );
    assert_eq!(
        docs(
            store
                .temporal_instances(&s, "urn:e:0", &of("a"))
                .await
                .unwrap()
        ),
        ["a={\"v\":4}"]
    );
    for k in 1..=40 {
        let id = format!("urn:e:{k}");
        assert_eq!(
            store.temporal_attributes(&s, &id).await.unwrap(),
            ["x", "y"]
        );
        let all = store
            .temporal_instances(&s, &id, &InstanceQuery::default())
            .await
            .unwrap();
        assert_eq!(
            docs(all),
            [
                format!("x={{\"v\":{}}}", 10 + k),
                format!("y={{\"v\":{}}}", 100 + k)
            ]
        );
    }
}

/// Series ids are numbered by the writer from a counter in the database (migration 0011): a
/// write that fails after taking new series, and a reopened store, never hand out an id that
/// an attribute already has, so no two attributes ever share a history.
#[tokio::test]
async fn series_ids_are_never_reused_after_a_failed_write_or_a_reopen() {
    use store::{
        InstanceQuery, NgsiTemporalStore, StoreErrorKind, TemporalEntityRecord,
        TemporalInstanceRecord, TemporalWrite, TenantId, TenantScope,
    };
    let entity = |id: &str| TemporalEntityRecord {
        id: id.into(),
        types: vec!["T".into()],
        scope: Vec::new(),
        created_at: 1,
        modified_at: 1,
        deleted_at: None,
    };
    let instance = |entity: &str, attribute: &str, id: &str| TemporalInstanceRecord {
        entity_id: entity.into(),
        attribute: attribute.into(),
        instance_id: Some(id.into()),
        dataset_id: None,
        observed_at: Some(10),
        created_at: 10,
        modified_at: 10,
        deleted_at: None,
        doc: format!("{{\"v\":\"{id}\"}}"),
    };
    let write = |entity_id: &str, instances: Vec<TemporalInstanceRecord>| TemporalWrite {
        entities: vec![entity(entity_id)],
        instances,
    };
    let city = TenantScope::authorized(TenantId::new("city").unwrap());
    let history = |store: SqliteStore, id: &'static str| {
        let city = city.clone();
        async move {
            store
                .temporal_instances(&city, id, &InstanceQuery::default())
                .await
                .unwrap()
                .into_iter()
                .map(|i| (i.attribute, i.instance_id.unwrap_or_default()))
                .collect::<Vec<_>>()
        }
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store
            .record_temporal(
                &city,
                write("urn:e:1", vec![instance("urn:e:1", "a", "urn:i:1")]),
            )
            .await
            .unwrap();
        // Takes new series for b and c, then fails on a repeated instance id: nothing stays.
        let failed = store
            .record_temporal(
                &city,
                write(
                    "urn:e:2",
                    vec![
                        instance("urn:e:2", "b", "urn:i:2"),
                        instance("urn:e:2", "c", "urn:i:3"),
                        instance("urn:e:2", "c", "urn:i:3"),
                    ],
                ),
            )
            .await
            .unwrap_err();
        assert_eq!(failed.kind(), StoreErrorKind::AlreadyExists);
        assert!(
            store
                .temporal_entity(&city, "urn:e:2")
                .await
                .unwrap()
                .is_none()
        );
        store
            .record_temporal(
                &city,
                write("urn:e:3", vec![instance("urn:e:3", "d", "urn:i:4")]),
            )
            .await
            .unwrap();
        store.close();
    }
    // After a reopen, new series (here many, past the writer's reserved block) are still new.
    let store = SqliteStore::open(dir.path()).unwrap();
    let many: Vec<TemporalInstanceRecord> = (0..5000)
        .map(|n| instance("urn:e:4", &format!("x{n}"), &format!("urn:i:x{n}")))
        .collect();
    store
        .record_temporal(&city, write("urn:e:4", many))
        .await
        .unwrap();
    store
        .record_temporal(
            &city,
            write("urn:e:5", vec![instance("urn:e:5", "e", "urn:i:5")]),
        )
        .await
        .unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    store
        .record_temporal(
            &city,
            write("urn:e:6", vec![instance("urn:e:6", "f", "urn:i:6")]),
        )
        .await
        .unwrap();
    assert_eq!(
        history(store.clone(), "urn:e:1").await,
        [("a".to_owned(), "urn:i:1".to_owned())]
    );
    assert_eq!(
        history(store.clone(), "urn:e:3").await,
        [("d".to_owned(), "urn:i:4".to_owned())]
    );
    assert_eq!(history(store.clone(), "urn:e:4").await.len(), 5000);
    assert_eq!(
        history(store.clone(), "urn:e:5").await,
        [("e".to_owned(), "urn:i:5".to_owned())]
    );
    assert_eq!(
        history(store.clone(), "urn:e:6").await,
        [("f".to_owned(), "urn:i:6".to_owned())]
    );
}

/// Two stores writing the same database file (two processes, say `serve` and an admin tool)
/// each number new series: one never hands out an id the other has taken, also when its own
/// reserved block of ids runs out.
#[tokio::test]
async fn two_writers_of_one_file_never_share_a_series() {
    use store::{
        InstanceQuery, NgsiTemporalStore, TemporalEntityRecord, TemporalInstanceRecord,
        TemporalWrite, TenantId, TenantScope,
    };
    let write = |entity: &str, attributes: usize| TemporalWrite {
        entities: vec![TemporalEntityRecord {
            id: entity.into(),
            types: vec!["T".into()],
            scope: Vec::new(),
            created_at: 1,
            modified_at: 1,
            deleted_at: None,
        }],
        instances: (0..attributes)
            .map(|n| TemporalInstanceRecord {
                entity_id: entity.into(),
                attribute: format!("{entity}-a{n}"),
                instance_id: Some(format!("urn:i:{entity}:{n}")),
                dataset_id: None,
                observed_at: Some(10),
                created_at: 10,
                modified_at: 10,
                deleted_at: None,
                doc: "{}".into(),
            })
            .collect(),
    };
    let city = TenantScope::authorized(TenantId::new("city").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let first = SqliteStore::open(dir.path()).unwrap();
    let second = SqliteStore::open(dir.path()).unwrap();
    first
        .record_temporal(&city, write("urn:e:1", 1))
        .await
        .unwrap();
    second
        .record_temporal(&city, write("urn:e:2", 1))
        .await
        .unwrap();
    // More new series than the first store's reserved block holds.
    first
        .record_temporal(&city, write("urn:e:3", 5000))
        .await
        .unwrap();
    second
        .record_temporal(&city, write("urn:e:4", 1))
        .await
        .unwrap();
    for (entity, attributes) in [
        ("urn:e:1", 1),
        ("urn:e:2", 1),
        ("urn:e:3", 5000),
        ("urn:e:4", 1),
    ] {
        let history = first
            .temporal_instances(&city, entity, &InstanceQuery::default())
            .await
            .unwrap();
        assert_eq!(history.len(), attributes, "{entity}");
        assert!(
            history.iter().all(|i| i.attribute.starts_with(entity)),
            "{entity}"
        );
    }
}

/// Migration 0014 took away the CHECK that an entity row holds a current entity or a temporal
/// entity; the deletes keep it. An entity deleted in both forms, in either order, and one
/// written and deleted without history, leave no row behind, and no row is ever empty.
#[tokio::test]
async fn entity_rows_deleted_in_both_forms_leave_nothing_behind() {
    use store::{
        EntityChange, EntityFilter, EntityRecord, NgsiStore, NgsiTemporalStore,
        TemporalEntityRecord, TemporalInstanceRecord, TemporalWrite, TenantId, TenantScope,
        UnixMillis,
    };
    let (dir, store) = fresh().await;
    let s = TenantScope::authorized(TenantId::new("rows").unwrap());
    let put = |id: &'static str, history: bool| {
        let record = EntityRecord {
            id: id.to_owned(),
            types: vec!["T".to_owned()],
            doc: "{}".to_owned(),
            created_at: UnixMillis(1),
            modified_at: UnixMillis(1),
        };
        let write = if history {
            TemporalWrite {
                entities: vec![TemporalEntityRecord {
                    id: id.to_owned(),
                    types: vec!["T".to_owned()],
                    scope: Vec::new(),
                    created_at: 1,
                    modified_at: 1,
                    deleted_at: None,
                }],
                instances: vec![TemporalInstanceRecord {
                    entity_id: id.to_owned(),
                    attribute: "p".to_owned(),
                    instance_id: None,
                    dataset_id: None,
                    observed_at: None,
                    created_at: 1,
                    modified_at: 1,
                    deleted_at: None,
                    doc: "{}".to_owned(),
                }],
            }
        } else {
            TemporalWrite::default()
        };
        store.modify_entities_blind(
            &s,
            vec![id.to_owned()],
            Box::new(move |_| vec![EntityChange::Put(record)]),
            write,
            Box::new(|_| {}),
        )
    };
    let by_id = |id: &str| EntityFilter {
        ids: Some(vec![id.to_owned()]),
        ..EntityFilter::default()
    };
    let rows = |condition: &str| -> i64 {
        let raw = rusqlite::Connection::open(dir.path().join(store_sqlite::DATABASE_FILE)).unwrap();
        raw.query_row(
            &format!("SELECT count(*) FROM ngsi_entities WHERE {condition}"),
            [],
            |row| row.get(0),
        )
        .unwrap()
    };
    put("urn:e:current-first", true).await.unwrap();
    put("urn:e:temporal-first", true).await.unwrap();
    put("urn:e:plain", false).await.unwrap();
    assert_eq!(rows("true"), 3);

    assert_eq!(
        store
            .delete_entities(&s, &by_id("urn:e:current-first"))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .delete_temporal_entity(&s, "urn:e:temporal-first")
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_temporal_entity(&s, "urn:e:plain")
            .await
            .is_ok()
    );
    // Each of the first two keeps the part not deleted.
    assert_eq!(rows("true"), 3);
    assert_eq!(rows("doc IS NULL AND temporal_types IS NULL"), 0);

    assert!(
        store
            .delete_temporal_entity(&s, "urn:e:current-first")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .delete_entities(&s, &by_id("urn:e:temporal-first"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .delete_entities(&s, &by_id("urn:e:plain"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(rows("true"), 0);
}
