//! Native protocol listeners: UDP on one SO_REUSEPORT socket per worker thread, TCP on tokio.
//!
//! UDP is the resolution fast path: each worker owns a blocking socket bound to the same port
//! (the kernel spreads datagrams by 4-tuple, so all fragments of a peer's message reach the same
//! worker and its own reassembler), decodes in place, copies stored value bytes into a reused
//! buffer and sends. Malformed datagrams get a PROTOCOL_ERROR reply when their envelope is
//! readable and are dropped otherwise.
//!
//! TCP follows mini-redis: read into a buffer, `check` that a whole frame is there (envelope +
//! `message_length`), then parse. A frame with a bad envelope or an oversize length closes only
//! that connection. The connection stays open after a response when the request set KC, or
//! while a challenge is outstanding.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use handle_proto::codec::{Codec, Reader};
use handle_proto::constants::{ENVELOPE_SIZE, HEADER_SIZE, MAX_MESSAGE_LENGTH};
use handle_proto::message::{Envelope, check_envelope};
use handle_proto::udp::{Reassembler, Reassembly, fragment};
use handle_proto::{OpFlags, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::node::HandleNode;

/// Binds `workers` UDP sockets to `addr` with SO_REUSEPORT.
pub fn bind_udp(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<UdpSocket>> {
    (0..workers.max(1))
        .map(|_| {
            let domain = if addr.is_ipv4() {
                socket2::Domain::IPV4
            } else {
                socket2::Domain::IPV6
            };
            let s =
                socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.set_recv_buffer_size(4 << 20)?;
            s.set_send_buffer_size(4 << 20)?;
            s.bind(&addr.into())?;
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            Ok(s.into())
        })
        .collect()
}

/// Runs a UDP worker until `stop` is set.
pub fn run_udp_worker(node: Arc<HandleNode>, socket: UdpSocket, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::with_capacity(2048);
    let mut reassembler: Reassembler<SocketAddr> = Reassembler::new(5_000, 1024);
    let start = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "udp receive failed");
                continue;
            }
        };
        let datagram = &buf[..len];
        // Fast path: a whole message in one datagram (every resolution request in practice).
        let whole = datagram.len() >= ENVELOPE_SIZE
            && u32::from_be_bytes([datagram[16], datagram[17], datagram[18], datagram[19]])
                as usize
                == len - ENVELOPE_SIZE
            && datagram[12..16] == [0, 0, 0, 0];
        let replied = if whole {
            node.process(datagram, peer, 0, &mut out)
        } else {
            match reassembler.push(peer, datagram, start.elapsed().as_millis() as u64) {
                Ok(Reassembly::Complete(msg)) => node.process(&msg, peer, 0, &mut out),
                Ok(Reassembly::Pending) => false,
                // The envelope was readable but the fragment is inconsistent: answer like any
                // malformed message (process() builds the PROTOCOL_ERROR from the envelope).
                Err(_) if datagram.len() >= ENVELOPE_SIZE => {
                    node.process(&datagram[..ENVELOPE_SIZE], peer, 0, &mut out)
                }
                Err(_) => false,
            }
        };
        if !replied {
            continue;
        }
        if out.len() <= handle_proto::constants::MAX_UDP_PACKET_SIZE {
            let _ = socket.send_to(&out, peer);
        } else if let Ok(parts) = fragment(&out) {
            for p in parts {
                let _ = socket.send_to(&p, peer);
            }
        }
    }
}

static CONNECTION_IDS: AtomicU64 = AtomicU64::new(1);

/// Accepts TCP connections until the task is dropped.
pub async fn run_tcp(node: Arc<HandleNode>, listener: TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        tokio::spawn(async move {
            let conn = CONNECTION_IDS.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = serve_connection(&node, stream, peer, conn).await {
                tracing::debug!(%peer, error = %e, "tcp connection closed");
            }
        });
    }
}

/// Why a TCP frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Envelope unreadable or unsupported.
    #[error("bad envelope: {0}")]
    Envelope(#[from] handle_proto::InvalidMessage),
    /// Socket failure.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks whether `buf` starts with a whole frame; returns its length. `Ok(None)` means "read
/// more" (not an error); `Err` means the connection must be closed.
pub fn check_frame(buf: &[u8]) -> Result<Option<usize>, handle_proto::InvalidMessage> {
    if buf.len() < ENVELOPE_SIZE {
        return Ok(None);
    }
    let envelope = Envelope::read(&mut Reader::new(&buf[..ENVELOPE_SIZE]))?;
    check_envelope(&envelope)?;
    let len = envelope.message_length as usize;
    if !(HEADER_SIZE..=MAX_MESSAGE_LENGTH).contains(&len) {
        return Err(handle_proto::InvalidMessage::TooLong {
            field: "envelope message length",
            len,
            max: MAX_MESSAGE_LENGTH,
        });
    }
    Ok((buf.len() >= ENVELOPE_SIZE + len).then_some(ENVELOPE_SIZE + len))
}

async fn serve_connection(
    node: &HandleNode,
    mut stream: TcpStream,
    peer: SocketAddr,
    conn: u64,
) -> Result<(), FrameError> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(2048);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let frame_len = loop {
            if let Some(n) = check_frame(&buf)? {
                break n;
            }
            let n = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let replied = node.process(&buf[..frame_len], peer, conn, &mut out);
        let keep_alive = frame_len >= ENVELOPE_SIZE + 12
            && OpFlags(u32::from_be_bytes([buf[28], buf[29], buf[30], buf[31]]))
                .has(OpFlags::KEEP_ALIVE);
        buf.drain(..frame_len);
        if replied {
            stream.write_all(&out).await?;
        }
        let challenged = replied
            && out.len() >= 32
            && u32::from_be_bytes([out[24], out[25], out[26], out[27]])
                == ResponseCode::AUTHENTICATION_NEEDED.0;
        if !(keep_alive || challenged) {
            stream.shutdown().await?;
            return Ok(());
        }
    }
}

/// Re-export for load generators and tests.
pub fn encode_envelope(e: &Envelope) -> Vec<u8> {
    e.to_bytes()
}
