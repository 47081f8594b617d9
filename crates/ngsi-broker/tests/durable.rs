//! NGSI-LD writes acknowledged by the broker survive a kill -9 of the process: a child
//! process writes entities (single creates and batch upserts, concurrently, so writes are
//! group-committed) and prints each acknowledgement; the parent kills it with SIGKILL,
//! reopens the store with a fresh broker (whose index is loaded from SQLite) and checks
//! that every acknowledged write is there.

use identity::{IdentityService, ServiceConfig, SystemClock};
use ngsi_broker::{Broker, BrokerSettings, ContextResolver};
use ngsi_ld::{Attribute, AttributeValue, Entity};
use serde_json::json;
use std::io::Write as _;
use std::sync::Arc;
use store::{TenantId, TenantScope};
use store_sqlite::SqliteStore;

/// One batch step (the broker's `BatchItem`).
type BatchItem = Box<
    dyn FnOnce(
            Option<std::sync::Arc<Entity>>,
            ngsi_ld::Timestamp,
        ) -> Result<Option<Entity>, ngsi_ld::NgsiError>
        + Send,
>;

const TYPE: &str = "https://example.org/Counter";
const VALUE: &str = "https://example.org/value";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn broker(dir: &std::path::Path) -> Broker {
    let store = SqliteStore::open(dir).unwrap();
    let identity = Arc::new(
        IdentityService::new(
            Arc::new(store.clone()),
            &[7; 32],
            Arc::new(SystemClock),
            ServiceConfig::default(),
            None,
        )
        .unwrap(),
    );
    let ngsi: Arc<dyn store::NgsiStore> = Arc::new(store);
    let contexts = ContextResolver::new(ngsi_ld::PreloadMap::new(), None, Arc::clone(&ngsi), 4);
    Broker::new(ngsi, contexts, identity, BrokerSettings::default())
}

fn scope() -> TenantScope {
    TenantScope::authorized(TenantId::new("durable").unwrap())
}

fn entity(id: &str, value: u64) -> Entity {
    let mut e = Entity::new(id, TYPE);
    e.attributes.insert(
        VALUE.into(),
        vec![Attribute::new(AttributeValue::Property(json!(value)))],
    );
    e
}

/// The child half: writes until it is killed, printing `ack <id> <value>` per write.
#[test]
#[ignore = "run by acknowledged_ngsi_writes_survive_kill_9 as a child process"]
fn child_writes_until_killed() {
    let Ok(dir) = std::env::var("NGSI_DURABLE_CHILD_DIR") else {
        return;
    };
    let rt = runtime();
    rt.block_on(async {
        let broker = Arc::new(broker(std::path::Path::new(&dir)));
        let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<String>();
        for w in 0..8u64 {
            let broker = broker.clone();
            let acks = acks.clone();
            tokio::spawn(async move {
                for i in 0u64.. {
                    if w % 2 == 0 {
                        // Single creates.
                        let id = format!("urn:ngsi-ld:Counter:w{w}-{i}");
                        broker.create(&scope(), entity(&id, i)).await.unwrap();
                        if acks.send(format!("ack {id} {i}")).is_err() {
                            return;
                        }
                    } else {
                        // Batch upserts of 20 entities, overwriting earlier values.
                        let items: Vec<(String, BatchItem)> = (0..20)
                            .map(|k| {
                                let id = format!("urn:ngsi-ld:Counter:w{w}-b{k}");
                                let e = entity(&id, i);
                                let item: BatchItem = Box::new(move |_, _| Ok(Some(e)));
                                (id, item)
                            })
                            .collect();
                        let outcome = broker.batch(&scope(), items).await.unwrap();
                        assert!(outcome.errors.is_empty());
                        for k in 0..20 {
                            let line = format!("ack urn:ngsi-ld:Counter:w{w}-b{k} {i}");
                            if acks.send(line).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
        drop(acks);
        let mut out = std::io::stdout();
        while let Some(line) = acked.recv().await {
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[test]
fn acknowledged_ngsi_writes_survive_kill_9() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_writes_until_killed",
            "--nocapture",
        ])
        .env("NGSI_DURABLE_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // id -> highest acknowledged value
    let mut acked: std::collections::HashMap<String, u64> = Default::default();
    let mut count = 0;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ack ") {
            let (id, v) = rest.split_once(' ').unwrap();
            let v: u64 = v.parse().unwrap();
            let e = acked.entry(id.to_owned()).or_insert(v);
            *e = (*e).max(v);
            count += 1;
            if count >= 3000 {
                break;
            }
        }
    }
    // SIGKILL while the child is still writing: no destructor, no graceful close.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(count >= 3000, "the child acknowledged only {count} writes");
    let rt = runtime();
    rt.block_on(async {
        let broker = broker(dir.path());
        for (id, value) in &acked {
            let e = broker
                .get(&scope(), id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("acknowledged write of {id} was lost"));
            let stored = e.attributes[VALUE][0].value.clone();
            let AttributeValue::Property(v) = stored else {
                panic!("{id}: not a Property");
            };
            assert!(
                v.as_u64().unwrap() >= *value,
                "{id}: stored value {v} is older than the acknowledged {value}"
            );
        }
    });
}
