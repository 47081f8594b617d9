//! Two real `citybrain serve` nodes on loopback, each with a tenant and an administrator API
//! key, for the secure-computation tests (`secure.rs`, `psi_cli.rs`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn citybrain() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_citybrain"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CITYBRAIN_") {
            command.env_remove(key);
        }
    }
    command
}

pub fn run_ok(args: &[&str]) -> String {
    let output = citybrain().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "citybrain {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub struct Node {
    pub child: Child,
    pub addr: String,
    pub tenant: &'static str,
    pub admin_key: String,
    pub _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn key(data: &str, tenant: &str, name: &str, role: &str) -> String {
    let out = run_ok(&[
        "admin",
        "--data-dir",
        data,
        "--json",
        "key",
        "create",
        "--tenant",
        tenant,
        "--name",
        name,
        "--role",
        role,
    ]);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    value["key"].as_str().unwrap().to_owned()
}

/// Bootstraps a node with one tenant, issues keys, starts `serve`. Returns the node and a key
/// of the given role for each extra name.
pub fn node(tenant: &'static str, peer_key_for: Option<&str>) -> (Node, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    run_ok(&[
        "admin",
        "--data-dir",
        &data,
        "bootstrap",
        "--tenant",
        tenant,
    ]);
    let admin_key = key(&data, tenant, "administrator", "admin");
    let peer_key = peer_key_for.map(|name| key(&data, tenant, name, "operator"));
    let child = start(dir.path());
    let node = Node {
        addr: child.1,
        child: child.0,
        tenant,
        admin_key,
        _dir: dir,
    };
    wait_ready(&node.addr);
    (node, peer_key)
}

pub fn start(data: &Path) -> (Child, String) {
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
    (child, addr)
}

pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.unwrap_or("");
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
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub fn wait_ready(addr: &str) {
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.write_all(
                format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server not ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Node {
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let body = body.map(|b| b.to_string());
        let (status, text) = http(&self.addr, method, path, &self.admin_key, body.as_deref());
        let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, value)
    }

    pub fn jobs(&self) -> String {
        format!("/api/v1/tenants/{}/secure/jobs", self.tenant)
    }
}
