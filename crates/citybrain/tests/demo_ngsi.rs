//! `citybrain demo` loads the demo city's road network into the NGSI-LD broker (tenant
//! `demo`): one RoadSegment per road and one Junction per intersection of the roadnet file.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The shared data directory (`.../shared`), found upwards from this crate.
fn shared() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared"))
        .find(|p| p.join("data/traffic/jinan_3x4/roadnet_3_4.json").is_file())
        .expect("shared/data/traffic/jinan_3x4/roadnet_3_4.json not found above the crate")
}

fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
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

fn entities(addr: &str, token: &str, ty: &str) -> Vec<serde_json::Value> {
    let (status, body) = http(
        addr,
        "GET",
        &format!("/ngsi-ld/v1/entities?type={ty}&limit=1000"),
        Some(token),
        "",
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(&body)
        .unwrap()
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"))
        .clone()
}

#[test]
fn demo_loads_the_road_network_as_smart_data_model_entities() {
    let shared = shared();
    let net: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared.join("data/traffic/jinan_3x4/roadnet_3_4.json")).unwrap(),
    )
    .unwrap();
    let roads = net["roads"].as_array().unwrap();
    let intersections = net["intersections"].as_array().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_citybrain"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CITYBRAIN_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("CITYBRAIN_LOG__LEVEL", "warn")
        // The demo finds shared/data/traffic upwards from its working directory.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let addr = first.rsplit("http://").next().unwrap().trim().to_owned();
    let mut banner = String::new();
    let started = Instant::now();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || started.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        banner.push_str(&line);
        if line.contains("Ctrl-C stops the demo") {
            break;
        }
    }
    assert!(
        banner.contains(&format!(
            "{} RoadSegment and {} Junction entities",
            roads.len(),
            intersections.len()
        )),
        "{banner}"
    );
    assert!(banner.contains(&format!("curl -s 'http://{addr}/ngsi-ld/v1/entities?type=")));

    let credentials =
        std::fs::read_to_string(dir.path().join("demo-admin-credentials.txt")).unwrap();
    let password = credentials
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap();
    let (status, login) = http(
        &addr,
        "POST",
        "/auth/login",
        None,
        &format!(r#"{{"username":"admin","password":"{password}"}}"#),
    );
    assert_eq!(status, 200, "{login}");
    let login: serde_json::Value = serde_json::from_str(&login).unwrap();
    let token = login["access_token"].as_str().unwrap();

    let segments = entities(
        &addr,
        token,
        "https://smartdatamodels.org/dataModel.Transportation/RoadSegment",
    );
    let junctions = entities(&addr, token, "Junction");

    // The demo minted a handle per intersection (issue 6): it resolves publicly to the
    // entity's URL on this platform, the node publishes its did:web document, and the minting
    // is in the audit log under the administrator.
    let minted = banner
        .lines()
        .find_map(|l| {
            let (handle, target) = l.trim().split_once(" -> ")?;
            target
                .starts_with("urn:ngsi-ld:Junction:")
                .then(|| (handle.to_owned(), target.to_owned()))
        })
        .unwrap_or_else(|| panic!("no minted junction handle in the banner:\n{banner}"));
    assert!(
        banner.contains(&format!(
            "{} intersections and the road network have handles",
            intersections.len()
        )),
        "{banner}"
    );
    let (status, record) = http(
        &addr,
        "GET",
        &format!("/api/handles/{}", minted.0),
        None,
        "",
    );
    assert_eq!(status, 200, "{record}");
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let url = record["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["type"] == "URL")
        .unwrap_or_else(|| panic!("no URL value: {record}"));
    let entity_path = format!("/ngsi-ld/v1/entities/{}", minted.1);
    assert_eq!(url["data"]["value"], format!("http://{addr}{entity_path}"));
    let (status, entity) = http(&addr, "GET", &entity_path, Some(token), "");
    assert_eq!(
        status, 200,
        "the minted URL does not lead to the entity: {entity}"
    );
    let (status, did) = http(&addr, "GET", "/.well-known/did.json", None, "");
    assert_eq!(status, 200, "{did}");
    let did: serde_json::Value = serde_json::from_str(&did).unwrap();
    assert_eq!(did["id"], format!("did:web:{}", addr.replace(':', "%3A")));
    let (status, audit) = http(
        &addr,
        "GET",
        "/api/v1/tenants/demo/audit?action=identifier.mint",
        Some(token),
        "",
    );
    assert_eq!(status, 200, "{audit}");
    assert!(audit.contains(&minted.0), "minting not audited: {audit}");
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(segments.len(), roads.len());
    assert_eq!(junctions.len(), intersections.len());
    let first_road = roads[0]["id"].as_str().unwrap();
    let segment = segments
        .iter()
        .find(|e| e["id"] == format!("urn:ngsi-ld:RoadSegment:jinan:{first_road}"))
        .unwrap_or_else(|| panic!("no segment for {first_road}"));
    let line = &segment["location"]["value"];
    assert_eq!(line["type"], "LineString", "{segment}");
    assert_eq!(
        line["coordinates"].as_array().unwrap().len(),
        roads[0]["points"].as_array().unwrap().len()
    );
    let junction = &junctions[0];
    assert_eq!(junction["location"]["value"]["type"], "Point", "{junction}");
}
