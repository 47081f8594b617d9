//! `citybrain bench handle` prototype: starts our node in-process with N stored handles and
//! measures UDP resolution, TCP (per connection and keep-alive) and REST GET with the load
//! generator in `handle_server::bench`; optionally measures a reference server (CNRI 7.3, run
//! separately) with the same generator in the same run.
//!
//! ```text
//! cargo run --release -p handle-server --example bench_handle -- \
//!     --handles 1000000 --seconds 10 [--cnri 127.0.0.1:2641] [--footprint 10000000]
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use handle_server::bench::{Report, rest_get, sample_values, tcp_resolution, udp_resolution};
use handle_server::server::{AdminKey, ServerConfig, home_prefix_with_admin, start};
use handle_server::store::{CreateMode, HandleStore, MemoryStore};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

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

fn print(label: &str, r: &Report) {
    println!(
        "{label:<34} {:>10.0} replies/s  ok {:>9}/{:<9} p50 {:>6} us  p99 {:>6} us",
        r.per_second, r.successes, r.replies, r.p50_us, r.p99_us
    );
}

fn fill(store: &MemoryStore, n: u32) {
    for i in 0..n {
        let _ = store.create(
            &format!("21.T999/{i}"),
            &sample_values(i),
            CreateMode::Overwrite,
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = arg(&args, "--handles").unwrap_or(1_000_000);
    let secs: u64 = arg(&args, "--seconds").unwrap_or(10);
    let threads: usize = arg(&args, "--threads").unwrap_or(2);
    let window: usize = arg(&args, "--window").unwrap_or(32);
    let udp_workers: usize = arg(&args, "--udp-workers").unwrap_or(2);
    let cnri: Option<SocketAddr> = arg(&args, "--cnri");
    let footprint: Option<u32> = arg(&args, "--footprint");
    let conns: usize = arg(&args, "--conns").unwrap_or(4);
    let depth: usize = arg(&args, "--depth").unwrap_or(16);
    let duration = Duration::from_secs(secs);

    if let Some(m) = footprint {
        let before = rss_mb();
        let store = MemoryStore::new();
        let t = Instant::now();
        fill(&store, m);
        println!(
            "footprint: {m} handles (4 values, {} wire bytes each on average) inserted in {:.1} s, RSS {:.0} MB (+{:.0} MB), arena {:.0} MB",
            sample_values(m / 2)
                .iter()
                .map(|v| v.encoded_len())
                .sum::<usize>(),
            t.elapsed().as_secs_f64(),
            rss_mb(),
            rss_mb() - before,
            store.arena_bytes() as f64 / 1048576.0
        );
        return Ok(());
    }

    let store = Arc::new(MemoryStore::new());
    home_prefix_with_admin(
        store.as_ref(),
        "21.T999",
        AdminKey::Secret(b"secret".to_vec()),
    )?;
    let t = Instant::now();
    fill(&store, n);
    println!(
        "stored {} handles in {:.1} s, RSS {:.0} MB",
        store.handle_count(),
        t.elapsed().as_secs_f64(),
        rss_mb()
    );
    let config = ServerConfig {
        native_port: 0,
        http_port: Some(0),
        udp_workers,
        ..ServerConfig::default()
    };
    let server = start(config, store.clone() as Arc<dyn HandleStore>).await?;
    let native = server.native_addr;
    let http = server.http_addr.ok_or("no http listener")?;
    // Random sample of stored handles (fixed LCG seed, so runs are comparable).
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let handles: Vec<String> = (0..65_536)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            format!("21.T999/{}", (x >> 33) % u64::from(n.max(1)))
        })
        .collect();
    let unhomed: Vec<String> = (0..1024).map(|i| format!("12345/{i}")).collect();
    let cnri_stored = vec!["21.T999/3".to_string(); 1024];

    let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        println!("== load generator: {threads} UDP threads, window {window}, {conns} keep-alive connections pipelining {depth}, {secs} s per run, {udp_workers} UDP workers");
        let warm = Duration::from_secs(2);
        udp_resolution(native, &handles, threads, window, warm, None)?;
        let ours = udp_resolution(native, &handles, threads, window, duration, None)?;
        print("ours  UDP resolution (1M stored)", &ours);
        let half = udp_resolution(native, &handles, threads, window, duration, Some(ours.per_second / 2.0))?;
        print("ours  UDP at half peak", &half);
        let ours_301 = udp_resolution(native, &unhomed, threads, window, duration, None)?;
        print("ours  UDP un-homed (RC 301)", &ours_301);
        if let Some(c) = cnri {
            udp_resolution(c, &unhomed, threads, window, Duration::from_secs(5), None)?;
            let c301 = udp_resolution(c, &unhomed, threads, window, duration, None)?;
            print("CNRI  UDP un-homed (RC 301, fast)", &c301);
            let cst = udp_resolution(c, &cnri_stored, threads, window, duration, None)?;
            print("CNRI  UDP stored handle", &cst);
            let chalf = udp_resolution(c, &unhomed, threads, window, duration, Some(c301.per_second / 2.0))?;
            print("CNRI  UDP at half its peak", &chalf);
            println!("ratio ours(stored) / CNRI(fast path) = {:.2}x", ours.per_second / c301.per_second.max(1.0));
        }
        let tcp1 = tcp_resolution(native, &handles, threads, duration, false, 1)?;
        print("ours  TCP connection per request", &tcp1);
        let tcpk = tcp_resolution(native, &handles, conns, duration, true, depth)?;
        print("ours  TCP keep-alive (KC)", &tcpk);
        if let Some(c) = cnri {
            let c1 = tcp_resolution(c, &unhomed, threads, duration, false, 1)?;
            print("CNRI  TCP connection per request", &c1);
            let ck = tcp_resolution(c, &unhomed, conns, duration, true, depth)?;
            print("CNRI  TCP keep-alive (KC)", &ck);
        }
        let rest = rest_get(http, &handles, conns, duration, depth)?;
        print("ours  REST GET /api/handles/{h}", &rest);
        Ok(())
    })
    .await?;
    result?;
    println!("RSS at end {:.0} MB", rss_mb());
    server.stop();
    Ok(())
}
