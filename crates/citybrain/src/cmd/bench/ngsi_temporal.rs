//! The NGSI-LD temporal API (issue 3): `lastN=100` on an entity with a long history
//! (default 1,000,000 instances), over loopback HTTP against an in-process `serve` on a
//! temporary data directory with the embedded store. The history is loaded through the
//! `NgsiTemporalStore` trait in batches (what entity writes do, minus HTTP), then the
//! retrieval is measured over one keep-alive connection. A 100-instance history is measured
//! in the same run as the anchor (same request, same representation, short history).

use super::{Figure, Report, percentile};
use crate::platform::Platform;
use anyhow::{Context, bail};
use ngsi_ld::Attribute;
use std::net::SocketAddr;
use std::time::Instant;
use store::{NgsiTemporalStore, TemporalEntityRecord, TemporalInstanceRecord, TemporalWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const VEHICLE: &str = "https://uri.etsi.org/ngsi-ld/default-context/Vehicle";
const SPEED: &str = "https://uri.etsi.org/ngsi-ld/default-context/speed";
/// 2024-01-01T00:00:00Z in µs.
const T0: i64 = 1_704_067_200_000_000;

/// GET over one keep-alive connection; returns the status and the body length.
async fn get(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
    path: &str,
) -> anyhow::Result<u16> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    buf.clear();
    loop {
        let n = stream.read(chunk).await?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end])?;
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
            while buf.len() < end + 4 + len {
                let n = stream.read(chunk).await?;
                if n == 0 {
                    bail!("connection closed in body");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
    }
}

/// Writes `count` speed instances (one per second) for entity `id`.
async fn load_history(
    store: &dyn NgsiTemporalStore,
    scope: &store::TenantScope,
    id: &str,
    count: usize,
) -> anyhow::Result<()> {
    let entity = TemporalEntityRecord {
        id: id.to_owned(),
        types: vec![VEHICLE.to_owned()],
        scope: Vec::new(),
        created_at: T0,
        modified_at: T0,
        deleted_at: None,
    };
    let mut first = true;
    let batch = 20_000;
    let mut n = 0;
    while n < count {
        let end = (n + batch).min(count);
        let instances = (n..end)
            .map(|i| {
                let observed = T0 + i as i64 * 1_000_000;
                let at = ngsi_ld::Timestamp::from_timestamp_micros(observed).unwrap_or_default();
                let mut a = Attribute::property(serde_json::json!(i % 130));
                a.observed_at = Some(at);
                a.created_at = Some(at);
                a.modified_at = Some(at);
                TemporalInstanceRecord {
                    entity_id: id.to_owned(),
                    attribute: SPEED.to_owned(),
                    instance_id: None,
                    dataset_id: None,
                    observed_at: Some(observed),
                    created_at: observed,
                    modified_at: observed,
                    deleted_at: None,
                    doc: ngsi_broker::codec::encode_attribute(&a).to_string(),
                }
            })
            .collect();
        let entities = if first {
            vec![entity.clone()]
        } else {
            Vec::new()
        };
        first = false;
        store
            .record_temporal(
                scope,
                TemporalWrite {
                    entities,
                    instances,
                },
            )
            .await?;
        n = end;
    }
    Ok(())
}

/// Sorted latencies (ms) of `requests` GETs of `path`, after a short warm-up.
async fn measure(addr: SocketAddr, path: &str, requests: usize) -> anyhow::Result<Vec<f64>> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    for _ in 0..20 {
        get(&mut stream, &mut buf, &mut chunk, path).await?;
    }
    let mut lat = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        let status = get(&mut stream, &mut buf, &mut chunk, path).await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if status != 200 {
            bail!(
                "GET {path}: status {status}: {}",
                String::from_utf8_lossy(&buf)
            );
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

pub(crate) fn run(instances: usize) -> anyhow::Result<Report> {
    // As `citybrain serve` runs its runtime (see `yield_to_the_store_writer`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(crate::cmd::yield_to_the_store_writer)
        .build()?;
    runtime.block_on(run_async(instances.max(1000)))
}

async fn run_async(instances: usize) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let mut config = settings::Config::default();
    config.store.data_dir = dir.path().to_owned();
    config.auth.anonymous_role = Some("admin".into());
    let tenant = config.ngsi.default_tenant.clone();
    let platform = Platform::open(config).await?;
    let scope = store::TenantScope::authorized(store::TenantId::new(tenant)?);
    let t = Instant::now();
    load_history(
        &platform.store,
        &scope,
        "urn:ngsi-ld:Vehicle:long",
        instances,
    )
    .await?;
    let load_rate = instances as f64 / t.elapsed().as_secs_f64();
    load_history(&platform.store, &scope, "urn:ngsi-ld:Vehicle:short", 100).await?;
    let started = crate::services::start(&platform).await?;
    let app = api_server::app(platform.app_state(), started.modules);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api_server::serve(listener, app, async move {
        let _ = stopped.await;
    }));

    let mut figures = vec![Figure {
        name: format!("history load ({instances} instances, batches of 20000)"),
        value: load_rate,
        unit: "instances/s",
        target: None,
        met: None,
    }];
    let requests = 2000;
    let long = "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Vehicle:long?lastN=100";
    let lat = measure(addr, long, requests).await?;
    let p99 = percentile(&lat, 99.0);
    figures.push(Figure {
        name: format!("temporal lastN=100 p99 at {instances} instances"),
        value: p99,
        unit: "ms",
        target: Some("< 20".into()),
        met: Some(p99 < 20.0),
    });
    figures.push(Figure {
        name: format!("temporal lastN=100 p50 at {instances} instances"),
        value: percentile(&lat, 50.0),
        unit: "ms",
        target: None,
        met: None,
    });
    let windowed =
        format!("{long}&timerel=before&timeAt=2024-01-01T00:10:00Z&options=temporalValues");
    let lat = measure(addr, &windowed, requests).await?;
    figures.push(Figure {
        name: "temporal lastN=100 + timerel + temporalValues p99".into(),
        value: percentile(&lat, 99.0),
        unit: "ms",
        target: None,
        met: None,
    });
    let lat = measure(
        addr,
        "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:Vehicle:short?lastN=100",
        requests,
    )
    .await?;
    figures.push(Figure {
        name: "anchor: the same request on a 100-instance history, p99".into(),
        value: percentile(&lat, 99.0),
        unit: "ms",
        target: None,
        met: None,
    });

    let _ = stop.send(());
    let _ = server.await;
    platform.store.close();
    Ok(Report {
        benchmark: "ngsi-ld-temporal",
        description: "NGSI-LD temporal retrieval over loopback HTTP/1.1 keep-alive, embedded store",
        figures,
    })
}
