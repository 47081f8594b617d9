//! The Handle node (issue 6): UDP resolution with 1M stored handles (peak and p99 at half of
//! peak), TCP per connection and keep-alive, REST GET; with `--handle-reference ADDR`, the same
//! load generator against a reference server (CNRI HANDLE.NET 7.3, run separately) in the same run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use handle_server::bench::{rest_get, sample_values, tcp_resolution, udp_resolution};
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

pub(crate) fn run(
    handles: u32,
    seconds: u64,
    reference: Option<SocketAddr>,
) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let store = Arc::new(MemoryStore::new());
    home_prefix_with_admin(
        store.as_ref(),
        "21.T999",
        AdminKey::Secret(b"bench".to_vec()),
    )?;
    for i in 0..handles {
        store.create(
            &format!("21.T999/{i}"),
            &sample_values(i),
            CreateMode::Overwrite,
        )?;
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
    let mut figures = vec![
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
    ];
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
    Ok(Report {
        benchmark: "handle",
        description: "Handle node: native UDP/TCP resolution and REST GET on loopback",
        figures,
    })
}
