//! How long `citybrain serve` takes from process start to answering `/ready` with 200
//! on an empty data directory (target: under 1 s).

use super::{Figure, Report, percentile};
use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ready(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

fn one_start() -> anyhow::Result<f64> {
    let data = tempfile::tempdir()?;
    let exe = std::env::current_exe().context("locating the citybrain binary")?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("CITYBRAIN_LOG__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting citybrain serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .rsplit("http://")
        .next()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    let result = loop {
        if ready(&addr) {
            break Ok(started.elapsed().as_secs_f64() * 1000.0);
        }
        if started.elapsed() > Duration::from_secs(30) {
            break Err(anyhow::anyhow!(
                "serve was not ready within 30 s (stdout: {line:?})"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

pub(crate) fn run(runs: usize) -> anyhow::Result<Report> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        times.push(one_start()?);
    }
    times.sort_by(f64::total_cmp);
    if times.is_empty() {
        bail!("no runs");
    }
    let median = percentile(&times, 50.0);
    let worst = times[times.len() - 1];
    Ok(Report {
        benchmark: "startup",
        description: "citybrain serve: process start to /ready = 200 on an empty data directory",
        figures: vec![
            Figure {
                name: "runs".into(),
                value: runs as f64,
                unit: "count",
                target: None,
                met: None,
            },
            Figure {
                name: "median time to ready".into(),
                value: median,
                unit: "ms",
                target: Some("< 1000 ms".into()),
                met: Some(median < 1000.0),
            },
            Figure {
                name: "slowest time to ready".into(),
                value: worst,
                unit: "ms",
                target: Some("< 1000 ms".into()),
                met: Some(worst < 1000.0),
            },
            Figure {
                name: "fastest time to ready".into(),
                value: times[0],
                unit: "ms",
                target: None,
                met: None,
            },
        ],
    })
}
