//! The NGSI-LD broker (issue 3) over loopback HTTP, in-process `serve` on a temporary data
//! directory with the embedded store: single creates, batch upserts, GET by id at 100k
//! entities, a type + `q` query returning 100 of 100k. The load generator is a minimal
//! HTTP/1.1 keep-alive client so the client costs little next to the server.
//! Callers are anonymous with the `admin` role (the bench's private server), so token
//! checks are not measured.

use super::{Figure, Report, percentile};
use crate::platform::Platform;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn figure(name: &str, value: f64, unit: &'static str, target: Option<(&str, bool)>) -> Figure {
    Figure {
        name: name.to_owned(),
        value,
        unit,
        target: target.map(|(t, _)| t.to_owned()),
        met: target.map(|(_, m)| m),
    }
}

/// One keep-alive connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    chunk: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            chunk: vec![0; 16 * 1024],
        })
    }

    /// Sends a request and returns the status.
    async fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<u16> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n");
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(b);
        }
        self.stream.write_all(req.as_bytes()).await?;
        self.buf.clear();
        loop {
            let n = self.stream.read(&mut self.chunk).await?;
            if n == 0 {
                bail!("connection closed");
            }
            self.buf.extend_from_slice(&self.chunk[..n]);
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end])?;
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .context("bad status line")?;
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + len {
                    let n = self.stream.read(&mut self.chunk).await?;
                    if n == 0 {
                        bail!("connection closed in body");
                    }
                    self.buf.extend_from_slice(&self.chunk[..n]);
                }
                return Ok(status);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn entity(i: usize) -> String {
    format!(
        r#"{{"id":"urn:ngsi-ld:Vehicle:{i}","type":"Vehicle","speed":{{"type":"Property","value":{}}},"plate":{{"type":"Property","value":"B-{i}"}},"location":{{"type":"GeoProperty","value":{{"type":"Point","coordinates":[117.0,36.6]}}}}}}"#,
        i % 1000
    )
}

/// Runs `total` requests over `conns` connections; returns (requests/s, sorted latencies in ms).
async fn load<F>(
    addr: SocketAddr,
    conns: usize,
    total: usize,
    make: F,
) -> anyhow::Result<(f64, Vec<f64>)>
where
    F: Fn(usize) -> (&'static str, String, Option<String>, u16) + Send + Sync + Clone + 'static,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut lat = Vec::new();
            let mut i = c;
            while i < total {
                let (method, path, body, expect) = make(i);
                let t = Instant::now();
                let status = conn.call(method, &path, body.as_deref()).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                if status != expect {
                    bail!("{method} {path}: status {status}, expected {expect}");
                }
                i += conns;
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok((rate, all))
}

pub(crate) fn run(entities: usize) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(entities.max(1000)))
}

async fn run_async(entities: usize) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let mut config = settings::Config::default();
    config.store.data_dir = dir.path().to_owned();
    config.auth.anonymous_role = Some("admin".into());
    config.ngsi.max_limit = 1000;
    let platform = Platform::open(config).await?;
    let started = crate::services::start(&platform).await?;
    let app = api_server::app(platform.app_state(), started.modules);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api_server::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    let mut figures = Vec::new();

    // Single creates (16 connections).
    let creates = 20_000.min(entities);
    let (rate, _) = load(addr, 16, creates, |i| {
        (
            "POST",
            "/ngsi-ld/v1/entities".to_owned(),
            Some(entity(i)),
            201,
        )
    })
    .await?;
    figures.push(figure(
        "single creates",
        rate,
        "entities/s",
        Some((">= 20000", rate >= 20_000.0)),
    ));

    // Batch upserts of 1000 entities, up to `entities` in total (overwrites the creates).
    let batch = 1000;
    let batches = entities / batch;
    let bodies: std::sync::Arc<Vec<String>> = std::sync::Arc::new(
        (0..batches)
            .map(|b| {
                let items: Vec<String> = (b * batch..(b + 1) * batch).map(entity).collect();
                format!("[{}]", items.join(","))
            })
            .collect(),
    );
    let t = Instant::now();
    let bodies2 = bodies.clone();
    load(addr, 2, batches, move |i| {
        let status = if i * batch < creates { 204 } else { 201 };
        let status = if (i + 1) * batch > creates && i * batch < creates {
            201
        } else {
            status
        };
        (
            "POST",
            "/ngsi-ld/v1/entityOperations/upsert".to_owned(),
            Some(bodies2[i].clone()),
            status,
        )
    })
    .await?;
    let rate = (batches * batch) as f64 / t.elapsed().as_secs_f64();
    figures.push(figure(
        "batch upsert (1000 per request)",
        rate,
        "entities/s",
        Some((">= 200000", rate >= 200_000.0)),
    ));

    // GET by id at `entities` stored.
    let n = entities;
    let (_, lat) = load(addr, 4, 20_000, move |i| {
        let id = (i * 7919) % n;
        (
            "GET",
            format!("/ngsi-ld/v1/entities/urn:ngsi-ld:Vehicle:{id}"),
            None,
            200,
        )
    })
    .await?;
    let p99 = percentile(&lat, 99.0);
    figures.push(figure(
        &format!("GET by id p99 at {n} entities"),
        p99,
        "ms",
        Some(("< 2", p99 < 2.0)),
    ));

    // type + q returning 100 (plate values are unique; speed is i % 1000).
    let (_, lat) = load(addr, 1, 20, |_| {
        (
            "GET",
            "/ngsi-ld/v1/entities?type=Vehicle&q=speed==7&limit=1000".to_owned(),
            None,
            200,
        )
    })
    .await?;
    let p99 = percentile(&lat, 99.0);
    figures.push(figure(
        &format!("type+q query ({} of {n}) p99", n / 1000),
        p99,
        "ms",
        Some(("< 10", p99 < 10.0)),
    ));

    let _ = stop.send(());
    let _ = server.await;
    platform.store.close();
    Ok(Report {
        benchmark: "ngsi-ld",
        description: "NGSI-LD broker over loopback HTTP/1.1 keep-alive, embedded store",
        figures,
    })
}
