//! Captures request/response byte vectors from a Handle server over UDP (used once against the
//! CNRI HANDLE.NET 7.3 reference server, run outside the repository; the captured bytes live in
//! `crates/handle-proto/test_data/cnri73/`).
//!
//! `cargo run -p handle-server --example capture_vectors -- 127.0.0.1:2641 OUT_DIR`
//!
//! The server must have `0.NA/21.T999` homed and `21.T999/3` holding
//! `handle_server::bench::sample_values(3)`.

use std::net::UdpSocket;
use std::time::Duration;

use handle_proto::message::{Body, Envelope, Header, Message, Request};
use handle_proto::{OpCode, OpFlags};

fn request(id: u32, op: OpCode, flags: u32, body: Request) -> Vec<u8> {
    Message {
        envelope: Envelope::new(id),
        header: Header::request(op, flags),
        body: Body::Request(body),
        credential: vec![],
    }
    .encode()
}

fn resolution(handle: &str, indexes: Vec<u32>) -> Request {
    Request::Resolution {
        handle: handle.into(),
        indexes,
        types: vec![],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map_or("127.0.0.1:2641", String::as_str);
    let out = std::path::PathBuf::from(args.get(2).map_or("captured", String::as_str));
    std::fs::create_dir_all(&out)?;
    let cases = [
        (
            "site_info",
            request(
                11,
                OpCode::GET_SITE_INFO,
                0,
                Request::Generic {
                    handle: String::new(),
                },
            ),
        ),
        (
            "site_info_rd",
            request(
                12,
                OpCode::GET_SITE_INFO,
                OpFlags::REQUEST_DIGEST,
                Request::Generic {
                    handle: String::new(),
                },
            ),
        ),
        (
            "resolution",
            request(13, OpCode::RESOLUTION, 0, resolution("21.T999/3", vec![])),
        ),
        (
            "resolution_index",
            request(14, OpCode::RESOLUTION, 0, resolution("21.T999/3", vec![1])),
        ),
        (
            "resolution_rd",
            request(
                15,
                OpCode::RESOLUTION,
                OpFlags::REQUEST_DIGEST,
                resolution("21.T999/3", vec![]),
            ),
        ),
        (
            "values_not_found",
            request(16, OpCode::RESOLUTION, 0, resolution("21.T999/3", vec![77])),
        ),
        (
            "not_homed",
            request(17, OpCode::RESOLUTION, 0, resolution("12345/abc", vec![])),
        ),
    ];
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(1500)))?;
    for (name, req) in cases {
        std::fs::write(out.join(format!("{name}.request.bin")), &req)?;
        sock.send_to(&req, target)?;
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while let Ok(len) = sock.recv(&mut buf) {
            std::fs::write(out.join(format!("{name}.response.{n}.bin")), &buf[..len])?;
            n += 1;
        }
        println!("{name}: {n} datagram(s)");
    }
    Ok(())
}
