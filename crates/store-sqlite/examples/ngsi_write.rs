//! The NGSI-LD write path of the store alone (no HTTP, no broker): the entity writes of
//! `citybrain bench ngsi-ld` as the broker hands them to the store, each a created 3-attribute
//! entity with its history (one temporal entity, three instances).
//!
//! `cargo run --release -p store-sqlite --example ngsi_write [entities]`: single-entity writes
//! (16 in flight), then batches of 1000 (4 in flight; the first ones overwrite the entities of
//! the single writes, as in the bench). Prints entities per second of each phase.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;
use store::{
    EntityChange, EntityRecord, NgsiStore, TemporalEntityRecord, TemporalInstanceRecord,
    TemporalWrite, TenantId, TenantScope, UnixMillis,
};
use store_sqlite::SqliteStore;

const CTX: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

fn id(i: usize) -> String {
    format!("urn:ngsi-ld:Vehicle:{i}")
}

fn record(i: usize) -> EntityRecord {
    EntityRecord {
        id: id(i),
        types: vec![format!("{CTX}Vehicle")],
        doc: format!(
            r#"{{"id":"urn:ngsi-ld:Vehicle:{i}","type":["{CTX}Vehicle"],"attributes":{{"{CTX}speed":[{{"type":"Property","value":{}}}],"{CTX}plate":[{{"type":"Property","value":"B-{i}"}}],"https://uri.etsi.org/ngsi-ld/location":[{{"type":"GeoProperty","value":{{"type":"Point","coordinates":[117.0,36.6]}}}}]}},"createdAt":"2026-11-27T23:00:00.000000Z","modifiedAt":"2026-11-27T23:00:00.000000Z"}}"#,
            i % 1000
        ),
        created_at: UnixMillis(1_800_000_000_000),
        modified_at: UnixMillis(1_800_000_000_000),
    }
}

fn history(i: usize) -> TemporalWrite {
    let at = 1_800_000_000_000_000 + i as i64;
    let mut w = TemporalWrite::default();
    w.entities.push(TemporalEntityRecord {
        id: id(i),
        types: vec![format!("{CTX}Vehicle")],
        scope: Vec::new(),
        created_at: at,
        modified_at: at,
        deleted_at: None,
    });
    for (name, doc) in [
        (
            format!("{CTX}speed"),
            format!(r#"{{"type":"Property","value":{}}}"#, i % 1000),
        ),
        (
            format!("{CTX}plate"),
            format!(r#"{{"type":"Property","value":"B-{i}"}}"#),
        ),
        (
            "https://uri.etsi.org/ngsi-ld/location".to_owned(),
            r#"{"type":"GeoProperty","value":{"type":"Point","coordinates":[117.0,36.6]}}"#
                .to_owned(),
        ),
    ] {
        w.instances.push(TemporalInstanceRecord {
            entity_id: id(i),
            attribute: name,
            instance_id: None,
            dataset_id: None,
            observed_at: None,
            created_at: at,
            modified_at: at,
            deleted_at: None,
            doc,
        });
    }
    w
}

async fn write(
    store: &SqliteStore,
    scope: &TenantScope,
    range: std::ops::Range<usize>,
    overwrite: bool,
) {
    let ids: Vec<String> = range.clone().map(id).collect();
    let records: Vec<EntityRecord> = range.clone().map(record).collect();
    let mut all = TemporalWrite::default();
    for i in range.clone() {
        let w = history(i);
        all.entities.extend(w.entities);
        if !overwrite {
            all.instances.extend(w.instances);
        }
    }
    store
        .modify_entities_blind(
            scope,
            ids,
            Box::new(move |_| records.into_iter().map(EntityChange::Put).collect()),
            all,
            Box::new(|_| {}),
        )
        .await
        .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let entities: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("entities"))
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let scope = Arc::new(TenantScope::authorized(TenantId::new("bench").unwrap()));
    let creates = 20_000.min(entities);

    let t = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (store, scope) = (store.clone(), scope.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while i < creates {
                write(&store, &scope, i..i + 1, false).await;
                i += 16;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let single = creates as f64 / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let batches = entities / 1000;
    let mut tasks = Vec::new();
    for c in 0..4 {
        let (store, scope) = (store.clone(), scope.clone());
        tasks.push(tokio::spawn(async move {
            let mut b = c;
            while b < batches {
                let range = b * 1000..(b + 1) * 1000;
                write(&store, &scope, range.clone(), range.end <= creates).await;
                b += 4;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let batch = (batches * 1000) as f64 / t.elapsed().as_secs_f64();
    println!("single writes: {single:.0} entities/s");
    println!("batch writes (1000 per write): {batch:.0} entities/s");
    store.close();
}
