//! Loopback benchmark of ECDH-PSI: two processes (matcher and helper) connected by TCP on
//! 127.0.0.1, each driving a [`PsiSession`]. All socket and process code lives here; the
//! library stays pure.
//!
//! ```text
//! cargo run --release -p psi --example psi_loopback -- --log2 20 [--mode intersection]
//!     [--batch 4096] [--seed 1]
//! ```
//!
//! Items are `user%012d` ids generated batch by batch (never the whole set in memory): the
//! matcher holds ids 0..n, the helper ids n/2..3n/2, so the intersection has n/2 items. Each
//! process reports wall time, CPU seconds (user+sys, from /proc/self/stat), peak RSS (VmHWM)
//! and bytes sent/received; the parent prints one summary line per run.

use psi::{JobManifest, PartySpec, PsiConfig, PsiMode, PsiOutput, PsiSession};
use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

struct Args {
    log2: u32,
    mode: PsiMode,
    batch: usize,
    seed: u8,
    role: Option<(String, String)>, // (party, address) when running as the child helper
}

fn parse_args() -> Args {
    let mut args = Args {
        log2: 16,
        mode: PsiMode::Intersection,
        batch: 4096,
        seed: 1,
        role: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--log2" => args.log2 = value.parse().expect("--log2 N"),
            "--batch" => args.batch = value.parse().expect("--batch N"),
            "--seed" => args.seed = value.parse().expect("--seed N"),
            "--mode" => {
                args.mode = match value.as_str() {
                    "intersection" => PsiMode::Intersection,
                    "both" => PsiMode::IntersectionBoth,
                    "cardinality" => PsiMode::Cardinality,
                    other => panic!("unknown mode {other}"),
                }
            }
            "--child" => {
                args.role = Some((value, argv.get(i + 2).cloned().expect("--child PARTY ADDR")));
                i += 1;
            }
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    args
}

fn manifest(n: u64, mode: PsiMode) -> JobManifest {
    JobManifest {
        job_id: "bench".into(),
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
        mode,
        min_release_size: 0,
    }
}

/// CPU seconds (user + system) of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
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

/// Peak resident set size in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn spawn_reader(mut stream: TcpStream) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut splitter = psi::wire::FrameSplitter::new();
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            loop {
                match splitter.next_frame() {
                    Ok(Some(frame)) => {
                        if tx.send(frame).is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => panic!("unframeable stream: {e}"),
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => splitter.extend(&chunk[..n]),
            }
        }
    });
    rx
}

struct Report {
    wall: f64,
    cpu: f64,
    rss: f64,
    sent: u64,
    received: u64,
    output: String,
}

fn run_party(party: &str, stream: TcpStream, args: &Args) -> Report {
    let start = Instant::now();
    let n = 1u64 << args.log2;
    let (first, set_size) = if party == "matcher" {
        (0, n)
    } else {
        (n / 2, n)
    };
    let mut seed = [args.seed; 32];
    seed[0] = u8::from(party == "helper");
    let config = PsiConfig {
        manifest: manifest(n, args.mode),
        local_party: party.into(),
        session_id: [args.seed; 16],
        set_size,
        seed,
        batch_size: args.batch,
    };
    let incoming = spawn_reader(stream.try_clone().expect("clone stream"));
    let mut out = BufWriter::with_capacity(1 << 20, stream);
    let (mut session, hello) = PsiSession::new(config).expect("manifest allows the job");
    out.write_all(&hello).expect("send hello");
    out.flush().expect("flush");
    let mut next = first;
    let end = first + set_size;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(args.batch);
    let send = |out: &mut BufWriter<TcpStream>, frames: Vec<Vec<u8>>| {
        for f in frames {
            out.write_all(&f).expect("send frame");
        }
        out.flush().expect("flush");
    };
    let handle = |session: &mut PsiSession, frame: Vec<u8>| match session.handle_frame(&frame) {
        Ok(frames) => frames,
        Err(e) => panic!("{party}: {e}"),
    };
    while !session.is_done() {
        while let Ok(frame) = incoming.try_recv() {
            let frames = handle(&mut session, frame);
            send(&mut out, frames);
        }
        if session.is_done() {
            break;
        }
        if session.wants_items() {
            batch.clear();
            let upto = (next + args.batch as u64).min(end);
            batch.extend((next..upto).map(|i| format!("user{i:012}").into_bytes()));
            next = upto;
            let frames = session.push_items(&batch).expect("push items");
            send(&mut out, frames);
            continue;
        }
        let frame = incoming
            .recv()
            .unwrap_or_else(|_| panic!("{party}: peer closed early"));
        let frames = handle(&mut session, frame);
        send(&mut out, frames);
    }
    let output = match session.output() {
        Some(PsiOutput::Intersection { positions }) => format!("intersection={}", positions.len()),
        Some(PsiOutput::Cardinality { size }) => format!("cardinality={size}"),
        Some(PsiOutput::Sum { size, sum }) => format!("size={size} sum={sum}"),
        Some(PsiOutput::Completed) | None => "completed".into(),
    };
    let (sent, received) = session.traffic();
    Report {
        wall: start.elapsed().as_secs_f64(),
        cpu: cpu_seconds(),
        rss: peak_rss_mib(),
        sent,
        received,
        output,
    }
}

fn main() {
    let args = parse_args();
    if let Some((party, addr)) = &args.role {
        let stream = TcpStream::connect(addr).expect("connect to matcher");
        stream.set_nodelay(true).ok();
        let r = run_party(party, stream, &args);
        println!(
            "REPORT {} {:.3} {:.2} {:.1} {} {} {}",
            party, r.wall, r.cpu, r.rss, r.sent, r.received, r.output
        );
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("address").to_string();
    let exe = std::env::current_exe().expect("own path");
    let start = Instant::now();
    let mode = match args.mode {
        PsiMode::Intersection => "intersection",
        PsiMode::IntersectionBoth => "both",
        PsiMode::Cardinality => "cardinality",
        PsiMode::IntersectionSum => "sum",
    };
    let child = Command::new(exe)
        .args([
            "--log2",
            &args.log2.to_string(),
            "--batch",
            &args.batch.to_string(),
        ])
        .args([
            "--seed",
            &args.seed.to_string(),
            "--mode",
            mode,
            "--child",
            "helper",
            &addr,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn helper");
    let (stream, _) = listener.accept().expect("helper connects");
    stream.set_nodelay(true).ok();
    let m = run_party("matcher", stream, &args);
    let child_out = child.wait_with_output().expect("helper finishes");
    let wall = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&child_out.stdout);
    let h: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("REPORT "))
        .expect("helper report")
        .split_whitespace()
        .collect();
    let h_cpu: f64 = h[2].parse().unwrap_or(0.0);
    let h_rss: f64 = h[3].parse().unwrap_or(0.0);
    let n = 1u64 << args.log2;
    let total_bytes = m.sent + m.received;
    println!(
        "ecdh-psi n=2^{} mode={} wall={:.2}s cpu_total={:.2}s (matcher {:.2} + helper {:.2}) \
         bytes={} bytes/element={:.1} peak_rss_mib matcher={:.0} helper={:.0} result: {}",
        args.log2,
        mode,
        wall,
        m.cpu + h_cpu,
        m.cpu,
        h_cpu,
        total_bytes,
        total_bytes as f64 / n as f64,
        m.rss,
        h_rss,
        m.output
    );
    let _ = m.wall;
}
