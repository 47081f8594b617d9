//! `bench psi`: ECDH-PSI between two parties on this machine, each driving its
//! `psi::PsiSession` over its own TCP connection on 127.0.0.1 (issue 8 target: 2^20 × 2^20 in
//! ≤ 45 s wall and ≤ 40 CPU-s for both parties), and secure aggregation of 10^6 values across
//! 5 parties with one dropout (target: < 5 s).
//!
//! Both parties run as threads of this process, so CPU-seconds (from /proc/self/stat) are
//! the sum over both parties, and peak memory (VmHWM) covers both as well. Per-party memory
//! and the SecretFlow spu anchor come from `crates/psi/examples/psi_loopback.rs` and
//! `crates/psi/bench/spu_psi.py` (see docs/bench-psi.md). If `CITYBRAIN_SPU_PYTHON` names a
//! Python that has `spu` 0.9.5 installed, the spu ECDH and RR22 anchors run here too.

use super::{Figure, Report};
use anyhow::{Context, bail};
use psi::secagg::{AggClient, AggServer, AggregationJob};
use psi::{JobManifest, PartySpec, PsiConfig, PsiMode, PsiOutput, PsiSession};
use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn figure(name: &str, value: f64, unit: &'static str, target: Option<(&str, bool)>) -> Figure {
    Figure {
        name: name.to_owned(),
        value,
        unit,
        target: target.map(|(t, _)| t.to_owned()),
        met: target.map(|(_, met)| met),
    }
}

/// Drives one party to completion over `stream`; items are `user%012d` for `first..first+n`.
fn drive(config: PsiConfig, stream: TcpStream, first: u64) -> anyhow::Result<(PsiOutput, u64)> {
    let n = config.set_size;
    let batch_size = config.batch_size;
    let (tx, incoming) = mpsc::channel::<Vec<u8>>();
    let mut reader = stream.try_clone()?;
    std::thread::spawn(move || {
        let mut splitter = psi::wire::FrameSplitter::new();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            while let Ok(Some(frame)) = splitter.next_frame() {
                if tx.send(frame).is_err() {
                    return;
                }
            }
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => splitter.extend(&chunk[..k]),
            }
        }
    });
    let mut out = BufWriter::with_capacity(1 << 20, stream);
    let (mut session, hello) = PsiSession::new(config)?;
    out.write_all(&hello)?;
    out.flush()?;
    let mut next = first;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(batch_size);
    let send = |frames: Vec<Vec<u8>>, out: &mut BufWriter<TcpStream>| -> anyhow::Result<()> {
        for f in frames {
            out.write_all(&f)?;
        }
        Ok(out.flush()?)
    };
    while !session.is_done() {
        while let Ok(frame) = incoming.try_recv() {
            let frames = session.handle_frame(&frame)?;
            send(frames, &mut out)?;
        }
        if session.is_done() {
            break;
        }
        if session.wants_items() {
            batch.clear();
            let upto = (next + batch_size as u64).min(first + n);
            batch.extend((next..upto).map(|i| format!("user{i:012}").into_bytes()));
            next = upto;
            let frames = session.push_items(&batch)?;
            send(frames, &mut out)?;
            continue;
        }
        let frame = incoming
            .recv()
            .context("peer closed the connection early")?;
        let frames = session.handle_frame(&frame)?;
        send(frames, &mut out)?;
    }
    let (sent, received) = session.traffic();
    let output = session
        .output()
        .cloned()
        .context("session finished without output")?;
    Ok((output, sent + received))
}

fn ecdh(log2: u32) -> anyhow::Result<Vec<Figure>> {
    let n = 1u64 << log2;
    let manifest = JobManifest {
        job_id: "bench-psi".into(),
        parties: [
            PartySpec {
                id: "matcher".into(),
                max_set_size: n,
            },
            PartySpec {
                id: "helper".into(),
                max_set_size: n,
            },
        ],
        receiver: "matcher".into(),
        mode: PsiMode::Intersection,
        min_release_size: 0,
    };
    let config = |party: &str, seed: u8| PsiConfig {
        manifest: manifest.clone(),
        local_party: party.into(),
        session_id: [9; 16],
        set_size: n,
        // Fixed seeds keep the benchmark reproducible; jobs draw them from the OS.
        seed: [seed; 32],
        batch_size: 4096,
    };
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let helper_config = config("helper", 2);
    let helper = std::thread::spawn(move || -> anyhow::Result<(PsiOutput, u64)> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        drive(helper_config, stream, n / 2)
    });
    let (stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let (matcher_output, bytes) = drive(config("matcher", 1), stream, 0)?;
    let helper_result = helper
        .join()
        .map_err(|_| anyhow::anyhow!("helper thread panicked"))?;
    helper_result?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let matched = match matcher_output {
        PsiOutput::Intersection { positions } => positions.len() as u64,
        other => bail!("unexpected output {other:?}"),
    };
    let at_target_size = log2 >= 20;
    Ok(vec![
        figure(
            &format!("ecdh-psi 2^{log2} wall"),
            wall,
            "s",
            at_target_size.then_some(("≤ 45", wall <= 45.0)),
        ),
        figure(
            &format!("ecdh-psi 2^{log2} cpu, both parties"),
            cpu,
            "s",
            at_target_size.then_some(("≤ 40", cpu <= 40.0)),
        ),
        figure(
            "ecdh-psi bytes per element",
            bytes as f64 / n as f64,
            "B",
            None,
        ),
        figure(
            "ecdh-psi peak memory, both parties",
            peak_rss_mib(),
            "MiB",
            None,
        ),
        figure(
            "ecdh-psi result equals plaintext",
            f64::from(u8::from(matched == n / 2)),
            "bool",
            Some(("1", matched == n / 2)),
        ),
    ])
}

fn spu_anchor(log2: u32) -> Vec<Figure> {
    let Ok(python) = std::env::var("CITYBRAIN_SPU_PYTHON") else {
        return Vec::new();
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../psi/bench/spu_psi.py");
    let mut figures = Vec::new();
    for protocol in ["ECDH", "RR22"] {
        let output = std::process::Command::new(&python)
            .args([script, "--log2", &log2.to_string(), "--protocol", protocol])
            .stderr(std::process::Stdio::null())
            .output();
        let Ok(output) = output else { continue };
        let text = String::from_utf8_lossy(&output.stdout);
        let field = |key: &str| {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|v| v.trim_end_matches('s').parse::<f64>().ok())
        };
        if let (Some(wall), Some(cpu)) =
            (field("psi_execute_wall="), field("cpu_total_psi_execute="))
        {
            figures.push(figure(
                &format!("anchor spu {protocol} 2^{log2} wall"),
                wall,
                "s",
                None,
            ));
            figures.push(figure(
                &format!("anchor spu {protocol} 2^{log2} cpu"),
                cpu,
                "s",
                None,
            ));
        }
    }
    figures
}

fn secagg() -> anyhow::Result<Figure> {
    let (parties, len) = (5u32, 1_000_000usize);
    let job = AggregationJob {
        session_id: [4; 16],
        parties,
        vector_len: len,
        min_survivors: 2,
    };
    let inputs: Vec<Vec<u64>> = (0..u64::from(parties))
        .map(|p| (0..len as u64).map(|i| (i + p) % 1000).collect())
        .collect();
    let started = Instant::now();
    let mut server = AggServer::new(job.clone())?;
    let mut clients = Vec::new();
    for p in 0..parties {
        let (client, key) = AggClient::new(job.clone(), p, [p as u8 + 1; 32])?;
        server.receive_key(&key)?;
        clients.push(client);
    }
    let roster = server.roster()?;
    // The last party drops out after publishing its key.
    for (p, client) in clients.iter_mut().enumerate().take(parties as usize - 1) {
        server.receive_input(&client.mask(&roster, &inputs[p])?)?;
    }
    let request = server.start_recovery()?;
    for client in clients.iter_mut().take(parties as usize - 1) {
        server.receive_recovery(&client.recover(&request)?)?;
    }
    let result = server.finish()?;
    let wall = started.elapsed().as_secs_f64();
    let correct = (0..len).all(|i| {
        result.sum[i]
            == inputs
                .iter()
                .take(parties as usize - 1)
                .map(|v| v[i])
                .sum::<u64>()
    });
    if !correct {
        bail!("secure aggregation differs from the plaintext sum");
    }
    Ok(figure(
        "secagg 5 parties × 10^6 values, 1 dropout",
        wall,
        "s",
        Some(("< 5", wall < 5.0)),
    ))
}

pub(crate) fn run(log2: u32) -> anyhow::Result<Report> {
    let mut figures = ecdh(log2)?;
    figures.extend(spu_anchor(log2));
    figures.push(secagg()?);
    Ok(Report {
        benchmark: "psi",
        description: "ECDH-PSI over TCP loopback (both parties on this machine) and secure aggregation",
        figures,
    })
}
