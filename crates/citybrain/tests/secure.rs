//! Secure computation between two real `citybrain serve` nodes on loopback: governance
//! (nothing runs before each node's administrator approved the same record), a PSI job whose
//! result equals the plaintext intersection and reaches only the receiver, and a tampered
//! message on the wire that aborts the job on both nodes with nothing released.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::nodes::*;

impl Node {
    fn propose(&self, id: &str, party: &str, governance: &serde_json::Value) -> String {
        let (status, job) = self.call(
            "POST",
            &self.jobs(),
            Some(serde_json::json!({ "id": id, "local_party": party, "governance": governance })),
        );
        assert_eq!(status, 201, "{job}");
        assert_eq!(job["status"], "proposed");
        job["governance_digest"].as_str().unwrap().to_owned()
    }

    fn approve(&self, id: &str, digest: &str, items: &[String]) {
        let (status, job) = self.call(
            "POST",
            &format!("{}/{id}/approve", self.jobs()),
            Some(serde_json::json!({ "governance_digest": digest, "items": items })),
        );
        assert_eq!(status, 200, "{job}");
        assert_eq!(job["status"], "approved");
    }

    fn run(
        &self,
        id: &str,
        peer_url: &str,
        peer: &Node,
        peer_key: &str,
    ) -> (u16, serde_json::Value) {
        self.call(
            "POST",
            &format!("{}/{id}/run", self.jobs()),
            Some(serde_json::json!({
                "peer_url": peer_url, "peer_tenant": peer.tenant, "peer_api_key": peer_key,
            })),
        )
    }

    /// Waits until the job is completed or aborted.
    fn settled(&self, id: &str) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let (status, job) = self.call("GET", &format!("{}/{id}", self.jobs()), None);
            assert_eq!(status, 200, "{job}");
            if job["status"] == "completed" || job["status"] == "aborted" {
                return job;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "job {id} did not finish: {job}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn governance() -> serde_json::Value {
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    serde_json::json!({
        "kind": "psi",
        "purpose": "vehicles seen by both agencies in March",
        "parties": [
            { "id": "node-a", "max_set_size": 1000 },
            { "id": "node-b", "max_set_size": 1000 }
        ],
        "receiver": "node-a",
        "mode": "intersection",
        "columns": ["plate"],
        "min_release_size": 1,
        "expires_at": expires,
    })
}

fn plates(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("plate-{i:05}")).collect()
}

/// A TCP proxy to `target` that flips one byte of the client-to-server stream once, at
/// `offset` counted over all connections (inside a protocol body, past the first request).
fn tampering_proxy(target: String, offset: usize) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(AtomicUsize::new(0));
    let flipped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&flipped);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&target) else {
                return;
            };
            let (seen, flag) = (Arc::clone(&seen), Arc::clone(&flag));
            let (mut client_read, mut server_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 8192];
                loop {
                    let n = match client_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let start = seen.fetch_add(n, Ordering::SeqCst);
                    if start <= offset && offset < start + n && !flag.swap(true, Ordering::SeqCst) {
                        buf[offset - start] ^= 0x01;
                    }
                    if server_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut server_read, mut client_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server_read, &mut client_write);
                let _ = client_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (format!("http://{addr}"), flipped)
}

#[test]
fn psi_between_two_served_nodes_runs_only_when_approved_and_aborts_on_tampering() {
    let (a, _) = node("city-a", None);
    let (b, peer_key) = node("city-b", Some("node-a"));
    let peer_key = peer_key.unwrap();
    let b_url = format!("http://{}", b.addr);
    let gov = governance();
    let items_a = plates(0..600);
    let items_b = plates(300..900);

    // Governance: both nodes record the same document and get the same digest.
    let digest = a.propose("job-ok", "node-a", &gov);
    assert_eq!(b.propose("job-ok", "node-b", &gov), digest);
    // A job that breaks the governance is refused when it is recorded.
    let mut bad = gov.clone();
    bad["receiver"] = "someone-else".into();
    let (status, problem) = a.call(
        "POST",
        &a.jobs(),
        Some(serde_json::json!({ "id": "bad", "local_party": "node-a", "governance": bad })),
    );
    assert_eq!(status, 400, "{problem}");
    assert!(problem.to_string().contains("receiver"), "{problem}");
    // Nothing runs before this node's administrator approved it.
    let (status, problem) = a.run("job-ok", &b_url, &b, &peer_key);
    assert_eq!(status, 409, "{problem}");
    assert!(problem.to_string().contains("proposed"), "{problem}");
    // Approval must name the reviewed digest, and the input must respect the cap.
    let (status, _) = a.call(
        "POST",
        &format!("{}/job-ok/approve", a.jobs()),
        Some(serde_json::json!({ "governance_digest": "00", "items": items_a })),
    );
    assert_eq!(status, 409);
    let (status, problem) = a.call(
        "POST",
        &format!("{}/job-ok/approve", a.jobs()),
        Some(serde_json::json!({ "governance_digest": digest, "items": plates(0..1001) })),
    );
    assert_eq!(status, 400, "{problem}");
    a.approve("job-ok", &digest, &items_a);

    // The peer has not approved yet: it refuses, and the initiator aborts with its reason.
    let (status, job) = a.run("job-ok", &b_url, &b, &peer_key);
    assert_eq!(status, 202, "{job}");
    let job = a.settled("job-ok");
    assert_eq!(job["status"], "aborted", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("approved by this node's administrator"),
        "{job}"
    );
    assert!(job["result"].is_null());

    // Both approve a fresh job: it completes, and only the receiver holds the result.
    let digest = a.propose("job-2", "node-a", &gov);
    b.propose("job-2", "node-b", &gov);
    a.approve("job-2", &digest, &items_a);
    b.approve("job-2", &digest, &items_b);
    // The peer's key must be valid for the peer's tenant.
    let (status, _) = a.run("job-2", &b_url, &b, "cbk_not-a-key");
    assert_eq!(status, 202);
    let job = a.settled("job-2");
    assert_eq!(job["status"], "aborted", "{job}");
    assert!(job["error"].as_str().unwrap().contains("401"), "{job}");

    let digest = a.propose("job-3", "node-a", &gov);
    b.propose("job-3", "node-b", &gov);
    a.approve("job-3", &digest, &items_a);
    b.approve("job-3", &digest, &items_b);
    let (status, job) = a.run("job-3", &b_url, &b, &peer_key);
    assert_eq!(status, 202, "{job}");
    let done_a = a.settled("job-3");
    let done_b = b.settled("job-3");
    assert_eq!(done_a["status"], "completed", "{done_a}");
    assert_eq!(done_b["status"], "completed", "{done_b}");
    let mut found: Vec<String> = done_a["result"]["intersection"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    found.sort();
    assert_eq!(found, plates(300..600), "equals the plaintext intersection");
    assert!(
        done_b["result"].is_null(),
        "the helper learns nothing: {done_b}"
    );
    // A completed job does not run again.
    let (status, _) = a.run("job-3", &b_url, &b, &peer_key);
    assert_eq!(status, 409);

    // A man in the middle flips one bit of a protocol message: both sides abort, nothing is
    // released.
    let (proxy_url, flipped) = tampering_proxy(b.addr.clone(), 6000);
    let digest = a.propose("job-4", "node-a", &gov);
    b.propose("job-4", "node-b", &gov);
    a.approve("job-4", &digest, &items_a);
    b.approve("job-4", &digest, &items_b);
    let (status, _) = a.run("job-4", &proxy_url, &b, &peer_key);
    assert_eq!(status, 202);
    let aborted_a = a.settled("job-4");
    let aborted_b = b.settled("job-4");
    assert!(flipped.load(Ordering::SeqCst), "the proxy tampered");
    assert_eq!(aborted_a["status"], "aborted", "{aborted_a}");
    assert_eq!(aborted_b["status"], "aborted", "{aborted_b}");
    assert!(
        aborted_b["error"]
            .as_str()
            .unwrap()
            .contains("message authentication failed"),
        "{aborted_b}"
    );
    assert!(
        aborted_a["error"].as_str().unwrap().contains("aborted"),
        "{aborted_a}"
    );
    assert!(aborted_a["result"].is_null() && aborted_b["result"].is_null());

    // A truncated message (half a frame) aborts the job on the reading node, and a replay of
    // a message of that session afterwards is refused.
    let digest = b.propose("job-5", "node-b", &gov);
    b.approve("job-5", &digest, &items_b);
    let truncated = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    let exchange = |body: &[u8]| {
        let mut stream = TcpStream::connect(&b.addr).unwrap();
        let head = format!(
            "POST /api/v1/tenants/city-b/secure/jobs/job-5/exchange HTTP/1.1\r\nHost: x\r\n\
             Connection: close\r\nAuthorization: Bearer {peer_key}\r\n\
             x-citybrain-governance: {digest}\r\n\
             x-citybrain-session: 000102030405060708090a0b0c0d0e0f\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        String::from_utf8_lossy(&response).into_owned()
    };
    let answer = exchange(&truncated);
    assert!(answer.contains("x-citybrain-psi-state: failed"), "{answer}");
    let job = b.settled("job-5");
    assert_eq!(job["status"], "aborted");
    assert!(
        job["error"].as_str().unwrap().contains("truncated message"),
        "{job}"
    );
    let answer = exchange(&truncated);
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");

    // Every step is in the hash-chained audit log of each node.
    let (status, audit) = a.call(
        "GET",
        &format!("/api/v1/tenants/{}/audit?limit=200", a.tenant),
        None,
    );
    assert_eq!(status, 200, "{audit}");
    let text = audit.to_string();
    for action in [
        "secure.job.proposed",
        "secure.job.approved",
        "secure.job.completed",
        "secure.job.aborted",
    ] {
        assert!(text.contains(action), "{action} missing from the audit log");
    }
}

/// The secure-computation routes are tenant-scoped: an administrator of one tenant reaches
/// none of another tenant's jobs on the same node, and its own tenant works (positive control).
#[test]
fn secure_jobs_are_refused_across_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    run_ok(&[
        "admin",
        "--data-dir",
        &data,
        "bootstrap",
        "--tenant",
        "city-x",
    ]);
    run_ok(&["admin", "--data-dir", &data, "tenant", "create", "city-y"]);
    let x_admin = key(&data, "city-x", "x-admin", "admin");
    let y_admin = key(&data, "city-y", "y-admin", "admin");
    let (child, addr) = start(dir.path());
    let node = Node {
        child,
        addr,
        tenant: "city-x",
        admin_key: x_admin,
        _dir: dir,
    };
    wait_ready(&node.addr);
    let (own, _) = http(
        &node.addr,
        "GET",
        "/api/v1/tenants/city-x/secure/jobs",
        &node.admin_key,
        None,
    );
    assert_eq!(own, 200, "positive control: own tenant");
    for (method, path, body) in [
        ("GET", "/api/v1/tenants/city-y/secure/jobs", None),
        ("GET", "/api/v1/tenants/city-y/secure/jobs/j1", None),
        (
            "POST",
            "/api/v1/tenants/city-y/secure/jobs",
            Some(governance().to_string()),
        ),
    ] {
        let (status, body) = http(&node.addr, method, path, &node.admin_key, body.as_deref());
        assert_eq!(
            status, 403,
            "{method} {path} with another tenant's key: {body}"
        );
    }
    let (theirs, _) = http(
        &node.addr,
        "GET",
        "/api/v1/tenants/city-y/secure/jobs",
        &y_admin,
        None,
    );
    assert_eq!(
        theirs, 200,
        "positive control: the other tenant's own administrator"
    );
}
