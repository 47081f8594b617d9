//! The binary as users run it: configuration errors, `admin`, `serve` with graceful
//! shutdown, and acknowledged writes surviving kill -9.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn citybrain() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_citybrain"));
    // A clean environment: no CITYBRAIN_* leaking in from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("CITYBRAIN_") {
            command.env_remove(key);
        }
    }
    command
}

fn run(args: &[&str]) -> (i32, String, String) {
    let output = citybrain().args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_is_rejected_with_a_clear_message_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let config = dir.path().join("citybrain.toml");
    std::fs::write(&config, "[http]\nlisten = \"127.0.0.1:0\"\ntimeout = 5\n").unwrap();
    let (code, _, err) = run(&[
        "--config",
        config.to_str().unwrap(),
        "serve",
        "--data-dir",
        data,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("http.timeout") && err.contains("unknown field"),
        "{err}"
    );

    let (code, _, err) = run(&["serve", "--listen", "127.0.0.1:70000", "--data-dir", data]);
    assert_eq!(code, 2);
    assert!(
        err.contains("http.listen") && err.contains("70000"),
        "{err}"
    );

    let (code, _, err) = run(&[
        "--config",
        "/nonexistent/citybrain.toml",
        "serve",
        "--data-dir",
        data,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/citybrain.toml"), "{err}");

    let mut env_typo = citybrain();
    env_typo
        .args(["serve", "--data-dir", data])
        .env("CITYBRAIN_HTTP__LISEN", "x");
    let output = env_typo.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("CITYBRAIN_HTTP__LISEN"));
}

#[test]
fn admin_bootstraps_once_and_manages_users_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, out, err) = run(&["admin", "--data-dir", data, "bootstrap", "--tenant", "city"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("password (shown once): "), "{out}");
    let (code, _, err) = run(&["admin", "--data-dir", data, "bootstrap"]);
    assert_ne!(code, 0);
    assert!(err.contains("already has users"), "{err}");

    let (code, out, err) = run(&[
        "admin",
        "--data-dir",
        data,
        "user",
        "create",
        "traffic-op",
        "--tenant",
        "city",
        "--role",
        "operator",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("traffic-op"));
    let (code, out, _) = run(&[
        "admin",
        "--data-dir",
        data,
        "--json",
        "key",
        "create",
        "--tenant",
        "city",
        "--name",
        "camera 3",
    ]);
    assert_eq!(code, 0);
    let key: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(key["key"].as_str().unwrap().starts_with("cbk_"));
    let (_, out, _) = run(&[
        "admin",
        "--data-dir",
        data,
        "--json",
        "key",
        "list",
        "--tenant",
        "city",
    ]);
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys[0]["name"], "camera 3");
    assert!(
        !out.contains(key["key"].as_str().unwrap()),
        "listing never shows the key"
    );
    let (code, _, err) = run(&[
        "admin",
        "--data-dir",
        data,
        "user",
        "create",
        "x",
        "--tenant",
        "nosuch",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("nosuch"), "{err}");
    let (code, out, _) = run(&["admin", "--data-dir", data, "audit", "--verify"]);
    assert_eq!(code, 0);
    assert!(out.contains("intact"), "{out}");
}

struct Server {
    child: Child,
    addr: String,
}

fn start(data: &Path) -> Server {
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
    assert!(
        addr.starts_with("127.0.0.1:"),
        "unexpected first line {line:?}"
    );
    Server { child, addr }
}

/// A minimal HTTP/1.1 client: one request per connection.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    try_http(addr, method, path, token, body).expect("request failed")
}

/// Like `http`, but `None` when the connection fails or breaks.
fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok())?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn wait_ready(addr: &str) {
    let started = Instant::now();
    while http(addr, "GET", "/ready", None, None).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server not ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_answers_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    wait_ready(&server.addr);
    let (status, body) = http(&server.addr, "GET", "/health", None, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"ok\""));
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let output = citybrain()
        .args(["admin", "--data-dir", data, "bootstrap", "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"bootstrap-password\n")?;
            c.wait_with_output()
        });
    assert!(output.unwrap().status.success());
    let mut server = start(dir.path());
    wait_ready(&server.addr);
    let (_, login) = http(
        &server.addr,
        "POST",
        "/auth/login",
        None,
        Some(r#"{"username":"admin","password":"bootstrap-password"}"#),
    );
    let token = serde_json::from_str::<serde_json::Value>(&login).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A writer thread creates keys until the server dies; every 201 it saw is acknowledged.
    let addr = server.addr.clone();
    let writer_token = token.clone();
    let writer = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for n in 0.. {
            let body = format!(r#"{{"name":"sensor-{n}","role":"device"}}"#);
            let Some((status, _)) = try_http(
                &addr,
                "POST",
                "/api/v1/tenants/default/api-keys",
                Some(&writer_token),
                Some(&body),
            ) else {
                break;
            };
            if status == 201 {
                acknowledged.push(format!("sensor-{n}"));
            }
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(400));
    server.child.kill().unwrap(); // SIGKILL, in the middle of the write load
    server.child.wait().unwrap();
    let acknowledged = writer.join().unwrap();
    assert!(
        acknowledged.len() >= 5,
        "the load ran before the kill ({} writes)",
        acknowledged.len()
    );

    let mut restarted = start(dir.path());
    wait_ready(&restarted.addr);
    let (_, listed) = http(
        &restarted.addr,
        "GET",
        "/api/v1/tenants/default/api-keys",
        Some(&token),
        None,
    );
    for name in &acknowledged {
        assert!(
            listed.contains(&format!("\"{name}\"")),
            "acknowledged write {name} lost after kill -9"
        );
    }
    let _ = restarted.child.kill();
    let _ = restarted.child.wait();
}

/// Serves one JWKS document over HTTP on loopback, forever, from a thread.
fn jwks_server(document: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 2048];
            let _ = stream.read(&mut buffer);
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{document}",
                document.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://{addr}/jwks")
}

#[test]
fn tokens_from_an_external_openid_provider_are_accepted_via_its_jwks_url() {
    use base64::Engine;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    let url = jwks_server(format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"idp-1","x":"{x}"}}]}}"#
    ));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("citybrain.toml");
    std::fs::write(
        &config,
        format!("[auth.oidc]\nissuer = \"https://idp.city\"\naudience = \"citybrain\"\njwks_url = \"{url}\"\njwks_allow_private = true\n"),
    )
    .unwrap();
    let mut child = citybrain()
        .args([
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("CITYBRAIN_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.rsplit("http://").next().unwrap().trim().to_owned();
    wait_ready(&addr);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"iss": "https://idp.city", "aud": "citybrain", "sub": "officer-7", "exp": now + 300,
                                    "tenant": "police", "roles": ["viewer"]});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("idp-1".into());
    let der = key.to_pkcs8_der().unwrap();
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap();
    let (status, body) = http(&addr, "GET", "/api/v1/me", Some(&token), None);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"kind\":\"external\"") && body.contains("\"police\""),
        "{body}"
    );
    // The same claims signed by another key are refused.
    let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32])
        .to_pkcs8_der()
        .unwrap();
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(other.as_bytes()),
    )
    .unwrap();
    assert_eq!(http(&addr, "GET", "/api/v1/me", Some(&forged), None).0, 401);
    let _ = child.kill();
    let _ = child.wait();

    // Without the private-network opt-in, a loopback JWKS URL is refused at start.
    std::fs::write(
        &config,
        format!("[auth.oidc]\nissuer = \"i\"\naudience = \"a\"\njwks_url = \"{url}\"\n"),
    )
    .unwrap();
    let (code, _, err) = run(&[
        "--config",
        config.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("jwks_url") && err.contains("refusing"),
        "{err}"
    );
}

#[test]
fn demo_starts_and_tells_the_user_what_runs_where() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = citybrain()
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("CITYBRAIN_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let addr = first.rsplit("http://").next().unwrap().trim().to_owned();
    let mut banner = String::new();
    for _ in 0..40 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        banner.push_str(&line);
        if line.contains("Ctrl-C stops the demo") {
            break;
        }
    }
    wait_ready(&addr);
    assert_eq!(http(&addr, "GET", "/health", None, None).0, 200);
    assert!(
        banner.contains(&format!("http://{addr}/openapi.json")),
        "{banner}"
    );
    let password = std::fs::read_to_string(dir.path().join("demo-admin-credentials.txt")).unwrap();
    let password = password
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    assert!(
        banner.contains(&password),
        "the banner shows the administrator's login"
    );
    let body = format!(r#"{{"username":"admin","password":"{password}"}}"#);
    assert_eq!(http(&addr, "POST", "/auth/login", None, Some(&body)).0, 200);
    let _ = child.kill();
    let _ = child.wait();
}
