//! `citybrain cpn agent` as a member site runs it: a real `citybrain serve` coordinator, the agent
//! binary registering its `remote` site with an API key from a token file, a job submitted
//! through `/cpn/v1` running at that site, and the site going down when the agent is killed.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn citybrain() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_citybrain"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CITYBRAIN_") {
            command.env_remove(key);
        }
    }
    command
}

fn run_ok(args: &[&str]) -> String {
    let output = citybrain().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "citybrain {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(addr: &str, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let text = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn serve(data: &Path) -> (Killed, String) {
    let mut child = citybrain()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("CITYBRAIN_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.rsplit("http://").next().unwrap().trim().to_owned();
    (Killed(child), addr)
}

#[test]
fn the_agent_binary_serves_a_remote_site_for_a_real_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coordinator");
    let data_s = data.to_str().unwrap();
    run_ok(&[
        "admin",
        "--data-dir",
        data_s,
        "bootstrap",
        "--tenant",
        "alliance",
    ]);
    let created = run_ok(&[
        "admin",
        "--data-dir",
        data_s,
        "--json",
        "key",
        "create",
        "--tenant",
        "alliance",
        "--name",
        "edge-agent",
        "--role",
        "admin",
    ]);
    let key = serde_json::from_str::<Value>(&created).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{key}\n")).unwrap();
    let site = cpn_server::coordinator::local_site("edge-nx", "ningxia", "CN-NX", 2.0, 4.0);
    let site_file = dir.path().join("site.json");
    std::fs::write(&site_file, serde_json::to_string(&site).unwrap()).unwrap();

    let (_server, addr) = serve(&data);
    wait_until("the coordinator", Duration::from_secs(30), || {
        TcpStream::connect(&addr).is_ok()
    });
    let agent = citybrain()
        .args(["cpn", "agent", "--coordinator", &format!("http://{addr}")])
        .args(["--site-id", "edge-nx", "--token-file"])
        .arg(&token_file)
        .arg("--register")
        .arg(&site_file)
        .arg("--work-dir")
        .arg(dir.path().join("edge-jobs"))
        .args(["--interval-ms", "200"])
        .env("CITYBRAIN_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent = Killed(agent);
    wait_until(
        "the remote site to come up",
        Duration::from_secs(30),
        || {
            let (status, body) = http(&addr, "GET", "/cpn/v1/sites/edge-nx", &key, None);
            status == 200 && body["status"] == "up"
        },
    );
    let (_, body) = http(&addr, "GET", "/cpn/v1/sites/edge-nx", &key, None);
    assert_eq!(body["engine"], "remote");

    // A job confined to the site's zone runs there, through the agent binary.
    let job = json!({
        "command": ["/bin/sh", "-c", "echo ran at the edge $CPN_JOB_ID"],
        "resources": {"cpu": 1.0, "memory_gib": 0.5},
        "duration_s": 1.0,
        "allowed_zones": ["CN-NX"],
    });
    let (status, body) = http(&addr, "POST", "/cpn/v1/jobs", &key, Some(&job));
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let mut last = Value::Null;
    wait_until("the job to succeed", Duration::from_secs(30), || {
        last = http(&addr, "GET", &format!("/cpn/v1/jobs/{id}"), &key, None).1;
        last["state"] == "succeeded" || last["state"] == "failed"
    });
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_eq!(last["site"], "edge-nx");
    let (_, logs) = http(&addr, "GET", &format!("/cpn/v1/jobs/{id}/logs"), &key, None);
    assert!(
        logs.as_str()
            .unwrap()
            .contains(&format!("ran at the edge {id}")),
        "{logs}"
    );
    // The token never shows up in what the agent printed.
    agent.0.kill().unwrap();
    let mut out = String::new();
    agent
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    agent
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("cpn agent: site edge-nx"), "{out}");
    assert!(!out.contains(&key), "the agent printed its token");
    // Killed: the coordinator marks the site down after its heartbeat timeout.
    wait_until("the site to go down", Duration::from_secs(30), || {
        http(&addr, "GET", "/cpn/v1/sites/edge-nx", &key, None).1["status"] == "down"
    });
}
