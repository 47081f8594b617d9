//! The durable store: the node's conformance suite over SQLite, and changes surviving a
//! restart (reopen of the same database) and a kill -9 of a process that acknowledged them.

use std::sync::Arc;

use handle_proto::HandleValue;
use handle_server::durable::DurableStore;
use handle_server::store::{CreateMode, HandleStore, StoreError};
use store_sqlite::SqliteStore;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fresh() -> DurableStore {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path()).unwrap();
    runtime()
        .block_on(DurableStore::open(Arc::new(sqlite)))
        .unwrap()
        .with_guard(dir)
}

handle_server::handle_store_test_suite!(fresh());

fn url(index: u32, u: &str) -> HandleValue {
    HandleValue::new(index, "URL", u.as_bytes().to_vec())
}

async fn open(dir: &std::path::Path) -> DurableStore {
    DurableStore::open(Arc::new(SqliteStore::open(dir).unwrap()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_change_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path()).await;
        s.home_prefix("21.T999").unwrap();
        s.home_prefix("21.T998").unwrap();
        s.unhome_prefix("21.T998").unwrap();
        s.create(
            "21.T999/Kept",
            &[url(1, "http://a"), url(2, "http://b")],
            CreateMode::FailIfExists,
        )
        .unwrap();
        s.add_values("21.T999/kept", &[url(3, "http://c")]).unwrap();
        s.modify_values("21.T999/KEPT", &[url(1, "http://a2")])
            .unwrap();
        s.remove_values("21.T999/kept", &[2]).unwrap();
        s.create(
            "21.T999/gone",
            &[url(1, "http://x")],
            CreateMode::FailIfExists,
        )
        .unwrap();
        s.delete("21.T999/gone").unwrap();
        // A refused change leaves nothing behind.
        assert_eq!(
            s.add_values("21.T999/kept", &[url(3, "http://dup")]),
            Err(StoreError::ValueExists(3))
        );
        let imported: Vec<_> = (0..50)
            .map(|i| {
                (
                    format!("21.T999/bulk{i}"),
                    vec![url(1, &format!("http://{i}"))],
                )
            })
            .collect();
        assert_eq!(s.import(&imported).unwrap(), 50);
    }
    let s = open(dir.path()).await;
    assert_eq!(s.homed_prefixes().unwrap(), ["21.T999"]);
    assert!(s.is_homed("21.T999"));
    assert_eq!(
        s.get("21.t999/kept").unwrap().unwrap(),
        vec![url(1, "http://a2"), url(3, "http://c")]
    );
    assert_eq!(s.get("21.T999/gone").unwrap(), None);
    assert_eq!(s.handle_count(), 51);
    assert_eq!(
        s.get("21.T999/bulk49").unwrap().unwrap(),
        vec![url(1, "http://49")]
    );
    assert_eq!(s.list("21.T999", 0, 1).unwrap().handles, ["21.T999/Kept"]);
}

/// The child half of the kill -9 test: acknowledges creates on stdout until it is killed.
#[test]
#[ignore = "run by acknowledged_creates_survive_kill_9 as a child process"]
fn child_creates_until_killed() {
    let Ok(dir) = std::env::var("HANDLE_DURABLE_CHILD_DIR") else {
        return;
    };
    let rt = runtime();
    let s = rt.block_on(open(std::path::Path::new(&dir)));
    use std::io::Write as _;
    let mut out = std::io::stdout();
    for i in 0.. {
        s.create(
            &format!("21.T999/k{i}"),
            &[url(1, &format!("http://k/{i}"))],
            CreateMode::FailIfExists,
        )
        .unwrap();
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_creates_survive_kill_9() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_creates_until_killed",
            "--nocapture",
        ])
        .env("HANDLE_DURABLE_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ack ") {
            let n: u64 = n.parse().unwrap();
            acked = Some(n);
            if n >= 300 {
                break;
            }
        }
    }
    // SIGKILL: no destructor, no flush, no graceful close of the database.
    child.kill().unwrap();
    child.wait().unwrap();
    let acked = acked.expect("the child acknowledged creates");
    let rt = runtime();
    let s = rt.block_on(open(dir.path()));
    for i in 0..=acked {
        assert_eq!(
            s.get(&format!("21.T999/k{i}")).unwrap(),
            Some(vec![url(1, &format!("http://k/{i}"))]),
            "acknowledged create {i} of {acked} was lost"
        );
    }
}
