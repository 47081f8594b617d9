//! `citybrain psi run` / `psi approve` against two real `citybrain serve` nodes on loopback:
//! the CLI proposes and approves through each node's HTTP API, runs the job, prints exactly the
//! plaintext intersection on the receiver, reports a bad input line before anything is sent,
//! and exits non-zero with the node's reason when the peer refuses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

mod common;

use common::nodes::*;

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

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn psi(args: &[&str]) -> std::process::Output {
    citybrain().arg("psi").args(args).output().unwrap()
}

#[test]
fn psi_cli_runs_a_job_between_two_served_nodes() {
    let (a, _) = node("city-a", None);
    let (b, peer_key) = node("city-b", Some("node-a"));
    let files = tempfile::tempdir().unwrap();
    let dir = files.path();
    let a_token = write(dir, "a.token", &format!("{}\n", a.admin_key));
    let b_token = write(dir, "b.token", &b.admin_key);
    let peer_key = write(dir, "peer.key", &peer_key.unwrap());
    let gov = write(dir, "gov.json", &governance().to_string());
    // Duplicates, CRLF and blank lines in A's file; B's overlaps on 300..600.
    let mut text_a = plates(0..600).join("\r\n");
    text_a.push_str("\n\nplate-00001\n");
    let input_a = write(dir, "a.txt", &text_a);
    let input_b = write(dir, "b.txt", &plates(300..900).join("\n"));
    let (a_url, b_url) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    let a_common = |job: &'static str, input: &str| -> Vec<String> {
        [
            "--server",
            &a_url,
            "--token-file",
            &a_token,
            "--tenant",
            "city-a",
            "--job",
            job,
            "--input",
            input,
            "--governance",
            &gov,
            "--party",
            "node-a",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let run = |job: &'static str, input: &str, mode: &str, extra: &[&str]| {
        let mut args = vec!["run".to_owned(), "--mode".to_owned(), mode.to_owned()];
        args.extend(a_common(job, input));
        args.extend(
            [
                "--peer",
                &b_url,
                "--peer-tenant",
                "city-b",
                "--peer-key-file",
                &peer_key,
            ]
            .map(str::to_owned),
        );
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        psi(&args)
    };
    let approve_b = |job: &str| {
        let out = psi(&[
            "approve",
            "--server",
            &b_url,
            "--token-file",
            &b_token,
            "--tenant",
            "city-b",
            "--job",
            job,
            "--input",
            &input_b,
            "--mode",
            "intersection",
            "--governance",
            &gov,
            "--party",
            "node-b",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // A bad line is reported with its number, before anything reaches the node.
    let bad = write(dir, "bad.txt", "x,1\ny,2\nz\n");
    let out = run("job-bad", &bad, "sum", &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    let (status, _) = a.call("GET", &format!("{}/job-bad", a.jobs()), None);
    assert_eq!(status, 404);

    // A mode that is not the governance's is refused before the approval.
    let out = run("job-mode", &input_a, "size", &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"intersection\", not \"cardinality\""),
        "{stderr}"
    );
    let (_, job) = a.call("GET", &format!("{}/job-mode", a.jobs()), None);
    assert_eq!(job["status"], "proposed", "{job}");

    // The peer has not approved: the job aborts with the peer's reason, exit 1.
    let (_, job) = b.call(
        "POST",
        &b.jobs(),
        Some(serde_json::json!({ "id": "job-1", "local_party": "node-b", "governance": governance() })),
    );
    assert_eq!(job["status"], "proposed", "{job}");
    let out = run("job-1", &input_a, "intersection", &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("aborted"), "{stderr}");
    assert!(
        stderr.contains("approved by this node's administrator"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    // Both data owners approve: the receiver prints exactly the plaintext intersection.
    approve_b("job-2");
    let out = run("job-2", &input_a, "intersection", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got, plates(300..600));
    assert!(stderr.contains("completed"), "{stderr}");
    // The peer's copy completed too, and it released nothing there.
    let (_, job) = b.call("GET", &format!("{}/job-2", b.jobs()), None);
    assert_eq!(job["status"], "completed", "{job}");
    assert!(job["result"].is_null(), "{job}");

    // A completed job is not run again; --out writes the result to a file.
    let out = run("job-2", &input_a, "intersection", &[]);
    assert!(!out.status.success());
    approve_b("job-3");
    let result = dir.join("result.txt");
    let out = run(
        "job-3",
        &input_a,
        "intersection",
        &["--out", result.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&result).unwrap();
    let mut lines: Vec<&str> = written.lines().collect();
    lines.sort_unstable();
    lines.dedup();
    assert_eq!(lines.len(), 300);
    assert_eq!(lines[0], "plate-00300");
}

/// Creates an NGSI-LD entity in the node's tenant (core @context).
fn create_entity(node: &Node, entity: &serde_json::Value) {
    let body = entity.to_string();
    let mut stream = TcpStream::connect(&node.addr).unwrap();
    let request = format!(
        "POST /ngsi-ld/v1/entities HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Authorization: Bearer {}\r\nNGSILD-Tenant: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        node.addr,
        node.admin_key,
        node.tenant,
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}

#[test]
fn psi_input_from_an_ngsi_ld_query_of_the_approving_tenant() {
    let (a, _) = node("city-a", None);
    let (b, peer_key) = node("city-b", Some("node-a"));
    let files = tempfile::tempdir().unwrap();
    let dir = files.path();
    let a_token = write(dir, "a.token", &a.admin_key);
    let b_token = write(dir, "b.token", &b.admin_key);
    let peer_key = write(dir, "peer.key", &peer_key.unwrap());
    let gov = write(dir, "gov.json", &governance().to_string());
    // B observed vehicles 0..60; speed = i. Also a parking spot (another type) whose plate and
    // speed would match the query if the type were ignored.
    for i in 0..60u32 {
        create_entity(
            &b,
            &serde_json::json!({
                "id": format!("urn:ngsi-ld:Vehicle:{i}"), "type": "Vehicle",
                "plate": { "type": "Property", "value": format!("plate-{i:05}") },
                "speed": { "type": "Property", "value": i },
            }),
        );
    }
    create_entity(
        &b,
        &serde_json::json!({
            "id": "urn:ngsi-ld:ParkingSpot:1", "type": "ParkingSpot",
            "plate": { "type": "Property", "value": "plate-00005" },
            "speed": { "type": "Property", "value": 99 },
        }),
    );
    // A holds plates 0..30 and 45..100 in a file.
    let mut a_items = plates(0..30);
    a_items.extend(plates(45..100));
    let input_a = write(dir, "a.txt", &a_items.join("\n"));
    let (a_url, b_url) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    let approve_b = |job: &str, q: &str| {
        psi(&[
            "approve",
            "--server",
            &b_url,
            "--token-file",
            &b_token,
            "--tenant",
            "city-b",
            "--job",
            job,
            "--mode",
            "intersection",
            "--governance",
            &gov,
            "--party",
            "node-b",
            "--ngsi-type",
            "Vehicle",
            "--ngsi-attr",
            "plate",
            "--ngsi-q",
            q,
        ])
    };

    // A bad q is refused at approval with the parser's message; the job stays proposed.
    let out = approve_b("job-bad", "speed>>");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("query.q"), "{stderr}");
    let (_, job) = b.call("GET", &format!("{}/job-bad", b.jobs()), None);
    assert_eq!(job["status"], "proposed", "{job}");

    // B's input: plates of its vehicles faster than 20 (20 < speed < 60).
    let out = approve_b("job-q", "speed>20");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, audit) = b.call("GET", &format!("/api/v1/tenants/{}/audit", b.tenant), None);
    assert!(audit.to_string().contains("speed>20"), "{audit}");
    let out = psi(&[
        "run",
        "--server",
        &a_url,
        "--token-file",
        &a_token,
        "--tenant",
        "city-a",
        "--job",
        "job-q",
        "--input",
        &input_a,
        "--mode",
        "intersection",
        "--governance",
        &gov,
        "--party",
        "node-a",
        "--peer",
        &b_url,
        "--peer-tenant",
        "city-b",
        "--peer-key-file",
        &peer_key,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    got.sort();
    // Plaintext: A's plates ∩ {21..59} = 21..30 and 45..60.
    let mut expected = plates(21..30);
    expected.extend(plates(45..60));
    assert_eq!(got, expected);

    // Neither an upload nor a query, or both: refused by the node.
    let (status, job) = b.call(
        "POST",
        &b.jobs(),
        Some(serde_json::json!({ "id": "job-x", "local_party": "node-b", "governance": governance() })),
    );
    assert_eq!(status, 201, "{job}");
    let digest = job["governance_digest"].as_str().unwrap().to_owned();
    let (status, problem) = b.call(
        "POST",
        &format!("{}/job-x/approve", b.jobs()),
        Some(
            serde_json::json!({ "governance_digest": digest, "items": ["a"],
            "query": { "type": "Vehicle", "attribute": "plate" } }),
        ),
    );
    assert_eq!(status, 400, "{problem}");
    assert!(problem.to_string().contains("exactly one"), "{problem}");
    // The approval's audit entry records the query and how many items it gave.
    let (status, job) = b.call(
        "POST",
        &format!("{}/job-x/approve", b.jobs()),
        Some(serde_json::json!({ "governance_digest": digest,
            "query": { "type": "Vehicle", "attribute": "plate", "q": "speed<5" } })),
    );
    assert_eq!(status, 200, "{job}");
    let (_, audit) = b.call("GET", &format!("/api/v1/tenants/{}/audit", b.tenant), None);
    let approved: Vec<&serde_json::Value> = audit
        .as_array()
        .or_else(|| audit["entries"].as_array())
        .unwrap()
        .iter()
        .filter(|e| e.to_string().contains("speed<5"))
        .collect();
    assert_eq!(approved.len(), 1, "{audit}");
    assert!(
        approved[0].to_string().contains("\"input_items\":5"),
        "{audit}"
    );

    // Sum: A (receiver) holds a value per plate, B's input is its query; A learns the sum of
    // its values over the intersection, and the size.
    let mut gov_sum = governance();
    gov_sum["mode"] = "intersection-sum".into();
    // Values come only from the receiver, one per item, and the receiver must give them.
    for (node, party, body, error) in [
        (
            &b,
            "node-b",
            serde_json::json!({ "items": ["x"], "values": [1] }),
            "only by the receiver",
        ),
        (
            &a,
            "node-a",
            serde_json::json!({ "items": ["x"] }),
            "give values",
        ),
        (
            &a,
            "node-a",
            serde_json::json!({ "items": ["x", "y"], "values": [1] }),
            "1 values for 2 items",
        ),
    ] {
        let (status, job) = node.call(
            "POST",
            &node.jobs(),
            Some(
                serde_json::json!({ "id": format!("v-{error}").replace(' ', "-"),
                "local_party": party, "governance": gov_sum }),
            ),
        );
        assert_eq!(status, 201, "{job}");
        let mut body = body;
        body["governance_digest"] = job["governance_digest"].clone();
        let (status, problem) = node.call(
            "POST",
            &format!("{}/{}/approve", node.jobs(), job["id"].as_str().unwrap()),
            Some(body),
        );
        assert_eq!(status, 400, "{problem}");
        assert!(problem.to_string().contains(error), "{problem}");
    }
    let gov_sum = write(dir, "gov-sum.json", &gov_sum.to_string());
    let out = psi(&[
        "approve",
        "--server",
        &b_url,
        "--token-file",
        &b_token,
        "--tenant",
        "city-b",
        "--job",
        "job-sum",
        "--mode",
        "sum",
        "--governance",
        &gov_sum,
        "--party",
        "node-b",
        "--ngsi-type",
        "Vehicle",
        "--ngsi-attr",
        "plate",
        "--ngsi-q",
        "speed>20",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let valued: Vec<String> = a_items
        .iter()
        .enumerate()
        .map(|(i, plate)| format!("{plate},{}", 1000 + i))
        .collect();
    let input_sum = write(dir, "a-sum.txt", &valued.join("\n"));
    let out = psi(&[
        "run",
        "--server",
        &a_url,
        "--token-file",
        &a_token,
        "--tenant",
        "city-a",
        "--job",
        "job-sum",
        "--input",
        &input_sum,
        "--mode",
        "sum",
        "--governance",
        &gov_sum,
        "--party",
        "node-a",
        "--peer",
        &b_url,
        "--peer-tenant",
        "city-b",
        "--peer-key-file",
        &peer_key,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected_sum: u64 = a_items
        .iter()
        .enumerate()
        .filter(|(_, plate)| expected.contains(plate))
        .map(|(i, _)| 1000 + i as u64)
        .sum();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("size {}\nsum {expected_sum}\n", expected.len())
    );
}
