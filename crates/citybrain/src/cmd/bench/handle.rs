//! The Handle node (issue 6): UDP resolution with 1M stored handles (peak and p99 at half of
//! peak), TCP per connection and keep-alive, REST GET; with `--handle-reference ADDR`, the same
//! load generator against a reference server (CNRI HANDLE.NET 7.3, run separately) in the same run.
//! The node runs on the durable store (`DurableStore` over SQLite in a temporary directory), as
//! `citybrain serve` does; durable creates are measured with concurrent writers, each create
//! returning only after its transaction committed. With `--handle-footprint N`, the resident
//! memory of N handles in the in-memory index is measured first.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use handle_server::bench::{rest_get, sample_values, tcp_resolution, udp_resolution};
use handle_server::durable::DurableStore;
use handle_server::server::{AdminKey, ServerConfig, home_prefix_with_admin, start};
use handle_server::store::{CreateMode, HandleStore, MemoryStore};

use super::{Figure, Report};

fn figure(name: &str, value: f64, unit: &'static str, target: Option<(&str, bool)>) -> Figure {
    Figure {
        name: name.to_owned(),
        value,
        unit,
        target: target.map(|(t, _)| t.to_owned()),
        met: target.map(|(_, m)| m),
    }
}

/// Resident memory of this process in MB (Linux), 0 if unknown.
fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn open_durable(dir: &std::path::Path) -> anyhow::Result<DurableStore> {
    let sqlite = store_sqlite::SqliteStore::open(dir)?;
    DurableStore::open(Arc::new(sqlite))
        .await
        .map_err(|e| anyhow::anyhow!("opening the durable handle store: {e}"))
}

/// `writers` threads create new handles for `d`; each create returns after its commit.
fn durable_creates(store: &DurableStore, writers: usize, d: Duration) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..writers {
            let (stop, done) = (&stop, &done);
            s.spawn(move || {
                let mut k = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("21.T999/created-{t}-{k}");
                    if store
                        .create(&name, &sample_values(k), CreateMode::FailIfExists)
                        .is_ok()
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    k += 1;
                }
            });
        }
        std::thread::sleep(d);
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

pub(crate) fn run(
    handles: u32,
    seconds: u64,
    reference: Option<SocketAddr>,
    footprint: u32,
) -> anyhow::Result<Report> {
    let mut figures = Vec::new();
    if footprint > 0 {
        let before = rss_mb();
        let memory = MemoryStore::new();
        for i in 0..footprint {
            memory.create(
                &format!("21.T999/{i}"),
                &sample_values(i),
                CreateMode::Overwrite,
            )?;
        }
        let used = rss_mb() - before;
        figures.push(figure(
            &format!("memory of {footprint} handles (4 values each)"),
            used,
            "MB",
            Some(("< 2048", used < 2048.0)),
        ));
        drop(memory);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(runtime.block_on(open_durable(dir.path()))?);
    home_prefix_with_admin(
        store.as_ref(),
        "21.T999",
        AdminKey::Secret(b"bench".to_vec()),
    )?;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..handles {
        batch.push((format!("21.T999/{i}"), sample_values(i)));
        if batch.len() == 10_000 || i + 1 == handles {
            store.import(&batch)?;
            batch.clear();
        }
    }
    let config = ServerConfig {
        native_port: 0,
        http_port: Some(0),
        udp_workers: 2,
        ..ServerConfig::default()
    };
    let server = runtime.block_on(start(config, store.clone() as Arc<dyn HandleStore>))?;
    let (native, http) = (
        server.native_addr,
        server
            .http_addr
            .ok_or_else(|| anyhow::anyhow!("no http listener"))?,
    );
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let names: Vec<String> = (0..65_536)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            format!("21.T999/{}", (x >> 33) % u64::from(handles.max(1)))
        })
        .collect();
    let d = Duration::from_secs(seconds);
    udp_resolution(native, &names, 2, 32, Duration::from_secs(2), None)?;
    let peak = udp_resolution(native, &names, 2, 32, d, None)?;
    let half = udp_resolution(native, &names, 2, 32, d, Some(peak.per_second / 2.0))?;
    figures.extend([
        figure(
            "udp resolution peak",
            peak.per_second,
            "replies/s",
            Some((">= 150000", peak.per_second >= 150_000.0)),
        ),
        figure(
            "udp p99 at half peak",
            half.p99_us as f64 / 1000.0,
            "ms",
            Some(("< 1", half.p99_us < 1000)),
        ),
    ]);
    if let Some(r) = reference {
        let unhomed: Vec<String> = (0..1024).map(|i| format!("12345/{i}")).collect();
        udp_resolution(r, &unhomed, 2, 32, Duration::from_secs(3), None)?;
        let anchor = udp_resolution(r, &unhomed, 2, 32, d, None)?;
        figures.push(figure(
            "reference udp (fast path)",
            anchor.per_second,
            "replies/s",
            None,
        ));
        let ratio = peak.per_second / anchor.per_second.max(1.0);
        figures.push(figure(
            "udp ratio to reference",
            ratio,
            "x",
            Some((">= 2", ratio >= 2.0)),
        ));
    }
    let per_conn = tcp_resolution(native, &names, 2, d, false, 1)?;
    figures.push(figure(
        "tcp connection per request",
        per_conn.per_second,
        "replies/s",
        Some((">= 20000", per_conn.per_second >= 20_000.0)),
    ));
    let keep = tcp_resolution(native, &names, 4, d, true, 16)?;
    figures.push(figure(
        "tcp keep-alive (4 conns, pipelined 16)",
        keep.per_second,
        "replies/s",
        Some((">= 100000", keep.per_second >= 100_000.0)),
    ));
    let rest = rest_get(http, &names, 4, d, 16)?;
    figures.push(figure(
        "rest get (4 conns, pipelined 16)",
        rest.per_second,
        "requests/s",
        Some((">= 50000", rest.per_second >= 50_000.0)),
    ));
    server.stop();
    let creates = durable_creates(&store, 64, d);
    figures.push(figure(
        "durable creates (64 writers, acknowledged after commit)",
        creates,
        "creates/s",
        Some((">= 10000", creates >= 10_000.0)),
    ));
    drop(store);
    let restarted = runtime.block_on(open_durable(dir.path()))?;
    figures.push(figure(
        "handles reloaded from the durable store",
        restarted.handle_count() as f64,
        "handles",
        None,
    ));
    Ok(Report {
        benchmark: "handle",
        description: "Handle node on its durable store: native UDP/TCP resolution, REST GET, durable creates",
        figures,
    })
}
