//! Load generator for `citybrain bench handle`: UDP resolution, TCP per-connection and
//! keep-alive, REST GET, all against a running node (ours or the CNRI reference) on loopback.
//!
//! Every run is bounded in time and request count and stops by itself. Latency is measured per
//! request from send to matching reply (request id), so the figures are end-to-end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use handle_proto::codec::Codec;
use handle_proto::constants::types;
use handle_proto::data::{AdminPermissions, AdminRecord};
use handle_proto::message::{Body, Envelope, Header, Message, Request};
use handle_proto::{HandleValue, OpCode, OpFlags, ValueReference};

/// The values of stored benchmark handle `i`: URL, CHECKSUM, EMAIL and HS_ADMIN (4 values,
/// about 190 bytes on the wire), like a typical PID record.
pub fn sample_values(i: u32) -> Vec<HandleValue> {
    let admin = AdminRecord {
        permissions: AdminPermissions(0x0ff3),
        admin: ValueReference::new("0.NA/21.T999", 200),
    };
    let mut values = vec![
        HandleValue::new(
            1,
            types::URL,
            format!("https://data.city.example/entities/urn:ngsi-ld:Device:{i:08}").into_bytes(),
        ),
        HandleValue::new(
            2,
            "CHECKSUM",
            format!("{:016x}", u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15)).into_bytes(),
        ),
        HandleValue::new(3, types::EMAIL, b"ops@city.example".to_vec()),
        HandleValue::new(100, types::HS_ADMIN, admin.to_bytes()),
    ];
    for v in &mut values {
        v.timestamp = 1_700_000_000;
    }
    values
}

/// A resolution request for `handle` with request id `id` (protocol 2.1, no flags).
pub fn resolution_request(handle: &str, id: u32, flags: u32) -> Vec<u8> {
    Message {
        envelope: Envelope::new(id),
        header: Header::request(OpCode::RESOLUTION, flags),
        body: Body::Request(Request::Resolution {
            handle: handle.to_owned(),
            indexes: vec![],
            types: vec![],
        }),
        credential: vec![],
    }
    .encode()
}

/// Measured figures of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// What was measured.
    pub name: String,
    /// Requests sent.
    pub sent: u64,
    /// Replies received.
    pub replies: u64,
    /// Replies whose response code was SUCCESS (or HTTP 200).
    pub successes: u64,
    /// Measurement time in seconds.
    pub seconds: f64,
    /// Replies per second.
    pub per_second: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
}

fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    u64::from(sorted[idx.min(sorted.len() - 1)])
}

fn finish(
    name: &str,
    sent: u64,
    replies: u64,
    successes: u64,
    seconds: f64,
    mut lat: Vec<u32>,
) -> Report {
    lat.sort_unstable();
    Report {
        name: name.to_owned(),
        sent,
        replies,
        successes,
        seconds,
        per_second: replies as f64 / seconds.max(1e-9),
        p50_us: percentile(&lat, 0.5),
        p99_us: percentile(&lat, 0.99),
    }
}

fn merge(name: &str, parts: Vec<(u64, u64, u64, Vec<u32>)>, seconds: f64) -> Report {
    let (mut sent, mut replies, mut ok, mut lat) = (0, 0, 0, Vec::new());
    for (s, r, o, l) in parts {
        sent += s;
        replies += r;
        ok += o;
        lat.extend(l);
    }
    finish(name, sent, replies, ok, seconds, lat)
}

/// UDP resolution load: `threads` sockets, each keeping `window` requests in flight over
/// `handles`, for `duration`. With `rate` (requests/s in total) requests are paced instead, to
/// measure latency below saturation.
pub fn udp_resolution(
    target: SocketAddr,
    handles: &[String],
    threads: usize,
    window: usize,
    duration: Duration,
    rate: Option<f64>,
) -> std::io::Result<Report> {
    let per_thread_rate = rate.map(|r| r / threads as f64);
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> std::io::Result<(u64, u64, u64, Vec<u32>)> {
                    let sock = UdpSocket::bind("127.0.0.1:0")?;
                    sock.connect(target)?;
                    sock.set_read_timeout(Some(Duration::from_millis(2)))?;
                    let requests: Vec<Vec<u8>> = handles
                        .iter()
                        .skip(t)
                        .step_by(threads.max(1))
                        .take(4096)
                        .enumerate()
                        .map(|(i, h)| resolution_request(h, i as u32, 0))
                        .collect();
                    if requests.is_empty() {
                        return Ok((0, 0, 0, vec![]));
                    }
                    let mut sent_at = vec![None::<Instant>; requests.len()];
                    let (mut sent, mut replies, mut ok) = (0u64, 0u64, 0u64);
                    let mut lat = Vec::with_capacity(1 << 16);
                    let mut next = 0usize;
                    let mut in_flight = 0usize;
                    let mut buf = [0u8; 2048];
                    let start = Instant::now();
                    let mut last_progress = Instant::now();
                    while start.elapsed() < duration {
                        let allowed = match per_thread_rate {
                            Some(r) => (start.elapsed().as_secs_f64() * r) as u64 > sent,
                            None => true,
                        };
                        while allowed && in_flight < window {
                            let slot = next % requests.len();
                            next += 1;
                            if sent_at[slot].is_some() {
                                continue;
                            }
                            sock.send(&requests[slot])?;
                            sent_at[slot] = Some(Instant::now());
                            sent += 1;
                            in_flight += 1;
                            if per_thread_rate.is_some() {
                                break;
                            }
                        }
                        match sock.recv(&mut buf) {
                            Ok(n) if n >= 44 => {
                                let id =
                                    u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
                                let seq = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]);
                                if seq != 0 {
                                    continue;
                                }
                                if let Some(Some(at)) = sent_at.get(id).copied() {
                                    sent_at[id] = None;
                                    in_flight -= 1;
                                    replies += 1;
                                    lat.push(
                                        at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
                                    );
                                    if buf[24..28] == [0, 0, 0, 1] {
                                        ok += 1;
                                    }
                                    last_progress = Instant::now();
                                }
                            }
                            Ok(_) => {}
                            Err(_) => {
                                // Losses: after 200 ms without progress, forget what is in flight.
                                if last_progress.elapsed() > Duration::from_millis(200) {
                                    sent_at.iter_mut().for_each(|s| *s = None);
                                    in_flight = 0;
                                    last_progress = Instant::now();
                                }
                            }
                        }
                    }
                    Ok((sent, replies, ok, lat))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("worker panicked")))
            })
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    Ok(merge("udp-resolution", results, duration.as_secs_f64()))
}

fn read_tcp_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    buf.clear();
    let mut env = [0u8; 20];
    stream.read_exact(&mut env)?;
    let len = u32::from_be_bytes([env[16], env[17], env[18], env[19]]) as usize;
    buf.resize(len, 0);
    stream.read_exact(buf)?;
    Ok(buf.len() >= 8 && buf[4..8] == [0, 0, 0, 1])
}

/// TCP resolution load, one connection per request (`keep_alive == false`) or one persistent
/// connection per thread with KC set (`keep_alive == true`), pipelining `depth` requests.
pub fn tcp_resolution(
    target: SocketAddr,
    handles: &[String],
    threads: usize,
    duration: Duration,
    keep_alive: bool,
    depth: usize,
) -> std::io::Result<Report> {
    let depth = if keep_alive { depth.max(1) } else { 1 };
    let flags = if keep_alive { OpFlags::KEEP_ALIVE } else { 0 };
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> std::io::Result<(u64, u64, u64, Vec<u32>)> {
                    let requests: Vec<Vec<u8>> = handles
                        .iter()
                        .skip(t)
                        .step_by(threads.max(1))
                        .take(4096)
                        .enumerate()
                        .map(|(i, h)| resolution_request(h, i as u32, flags))
                        .collect();
                    let (mut sent, mut replies, mut ok) = (0u64, 0u64, 0u64);
                    let mut lat = Vec::new();
                    let mut buf = Vec::new();
                    let start = Instant::now();
                    let mut conn: Option<TcpStream> = None;
                    let mut i = 0;
                    while start.elapsed() < duration && !requests.is_empty() {
                        let req = &requests[i % requests.len()];
                        i += 1;
                        let at = Instant::now();
                        let stream = match conn.as_mut() {
                            Some(s) if keep_alive => s,
                            _ => {
                                let s = TcpStream::connect(target)?;
                                s.set_nodelay(true)?;
                                conn.insert(s)
                            }
                        };
                        let mut batch = Vec::with_capacity(req.len() * depth);
                        for k in 0..depth {
                            batch.extend_from_slice(&requests[(i + k) % requests.len()]);
                        }
                        i += depth - 1;
                        stream.write_all(if depth == 1 { req } else { &batch })?;
                        sent += depth as u64;
                        for _ in 0..depth {
                            match read_tcp_response(stream, &mut buf) {
                                Ok(success) => {
                                    replies += 1;
                                    ok += u64::from(success);
                                    lat.push(
                                        at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
                                    );
                                }
                                Err(_) => {
                                    conn = None;
                                    break;
                                }
                            }
                        }
                        if !keep_alive {
                            conn = None;
                        }
                    }
                    Ok((sent, replies, ok, lat))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("worker panicked")))
            })
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    let name = if keep_alive {
        "tcp-keepalive"
    } else {
        "tcp-per-connection"
    };
    Ok(merge(name, results, duration.as_secs_f64()))
}

/// REST `GET /api/handles/{h}` load over HTTP/1.1 keep-alive connections (`threads` of them),
/// each pipelining `depth` requests before reading the replies.
pub fn rest_get(
    target: SocketAddr,
    handles: &[String],
    threads: usize,
    duration: Duration,
    depth: usize,
) -> std::io::Result<Report> {
    let depth = depth.max(1);
    let results = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> std::io::Result<(u64, u64, u64, Vec<u32>)> {
                    let mut stream = TcpStream::connect(target)?;
                    stream.set_nodelay(true)?;
                    let requests: Vec<Vec<u8>> = handles
                        .iter()
                        .skip(t)
                        .step_by(threads.max(1))
                        .take(4096)
                        .map(|h| {
                            format!("GET /api/handles/{h} HTTP/1.1\r\nHost: bench\r\n\r\n")
                                .into_bytes()
                        })
                        .collect();
                    let (mut sent, mut replies, mut ok) = (0u64, 0u64, 0u64);
                    let mut lat = Vec::new();
                    let mut buf = vec![0u8; 64 * 1024];
                    let start = Instant::now();
                    let mut i = 0;
                    while start.elapsed() < duration && !requests.is_empty() {
                        let at = Instant::now();
                        let mut batch = Vec::new();
                        for _ in 0..depth {
                            batch.extend_from_slice(&requests[i % requests.len()]);
                            i += 1;
                        }
                        stream.write_all(&batch)?;
                        sent += depth as u64;
                        let mut have = 0;
                        for _ in 0..depth {
                            // Read one response: headers, then Content-Length bytes.
                            let head_start = 0;
                            let (head_end, body_len) = loop {
                                if let Some(pos) =
                                    buf[..have].windows(4).position(|w| w == b"\r\n\r\n")
                                {
                                    let head =
                                        String::from_utf8_lossy(&buf[..pos]).to_ascii_lowercase();
                                    let len = head
                                        .lines()
                                        .find_map(|l| l.strip_prefix("content-length:"))
                                        .and_then(|v| v.trim().parse::<usize>().ok())
                                        .unwrap_or(0);
                                    break (pos + 4, len);
                                }
                                let n = stream.read(&mut buf[have..])?;
                                if n == 0 {
                                    return Ok((sent, replies, ok, lat));
                                }
                                have += n;
                            };
                            while have < head_end + body_len {
                                let n = stream.read(&mut buf[have..])?;
                                if n == 0 {
                                    break;
                                }
                                have += n;
                            }
                            replies += 1;
                            ok += u64::from(buf[head_start..].starts_with(b"HTTP/1.1 200"));
                            lat.push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                            // Keep whatever belongs to the next pipelined response.
                            buf.copy_within(head_end + body_len..have, 0);
                            have -= head_end + body_len;
                        }
                    }
                    Ok((sent, replies, ok, lat))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("worker panicked")))
            })
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    Ok(merge("rest-get", results, duration.as_secs_f64()))
}
