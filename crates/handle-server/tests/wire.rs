//! The node against the CNRI 7.3 captures (byte-for-byte, expiration masked) and end-to-end
//! over real loopback sockets: native challenge-response administration, malformed input.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use handle_proto::auth::secret_key_answer;
use handle_proto::message::{
    Body, ChallengeAnswer, Envelope, HandleValues, Header, Message, Request, Response,
};
use handle_proto::{DigestAlgorithm, HandleValue, OpCode, OpFlags, ResponseCode};
use handle_server::bench::sample_values;
use handle_server::node::{HandleNode, NodeConfig};
use handle_server::server::{AdminKey, ServerConfig, home_prefix_with_admin, start};
use handle_server::site::{SiteParams, generate_site};
use handle_server::store::{CreateMode, HandleStore, MemoryStore};

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!(
            "../../handle-proto/test_data/cnri73/",
            $name,
            ".bin"
        ))
        .as_slice()
    };
}

fn seeded_store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    home_prefix_with_admin(
        store.as_ref(),
        "21.T999",
        AdminKey::Secret(b"secret".to_vec()),
    )
    .unwrap();
    store
        .create("21.T999/3", &sample_values(3), CreateMode::FailIfExists)
        .unwrap();
    store
}

fn masked(mut b: Vec<u8>) -> Vec<u8> {
    // Header expiration (server time + 12 h) differs between any two replies.
    b[36..40].fill(0);
    b
}

#[test]
fn replies_match_cnri_byte_for_byte() {
    let store = seeded_store();
    let site = generate_site(&SiteParams {
        address: "127.0.0.1".parse().unwrap(),
        native_port: 2641,
        http_port: 8000,
        serial: 1,
        description: "t".into(),
        public_key: None,
    });
    let node = HandleNode::new(
        store,
        NodeConfig {
            server_admins: vec![],
            site,
            challenge_timeout_ms: 1000,
        },
    );
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let cases: [(&str, &[u8], &[u8]); 5] = [
        (
            "resolution",
            vector!("resolution.request"),
            vector!("resolution.response.0"),
        ),
        (
            "resolution_index",
            vector!("resolution_index.request"),
            vector!("resolution_index.response.0"),
        ),
        (
            "resolution_rd",
            vector!("resolution_rd.request"),
            vector!("resolution_rd.response.0"),
        ),
        (
            "values_not_found",
            vector!("values_not_found.request"),
            vector!("values_not_found.response.0"),
        ),
        (
            "not_homed",
            vector!("not_homed.request"),
            vector!("not_homed.response.0"),
        ),
    ];
    for (name, request, cnri) in cases {
        let mut out = Vec::new();
        assert!(node.process(request, peer, 0, &mut out), "{name}: no reply");
        assert_eq!(masked(out), masked(cnri.to_vec()), "{name}");
    }
}

fn message(id: u32, op: OpCode, flags: u32, body: Request) -> Vec<u8> {
    Message {
        envelope: Envelope::new(id),
        header: Header::request(op, flags),
        body: Body::Request(body),
        credential: vec![],
    }
    .encode()
}

fn read_message(stream: &mut TcpStream) -> Message {
    let mut env = [0u8; 20];
    stream.read_exact(&mut env).unwrap();
    let len = u32::from_be_bytes(env[16..20].try_into().unwrap()) as usize;
    let mut rest = vec![0u8; len];
    stream.read_exact(&mut rest).unwrap();
    Message::read_bytes(&[env.to_vec(), rest].concat()).unwrap()
}

fn response(m: &Message) -> &Response {
    match &m.body {
        Body::Response { response, .. } => response,
        Body::Request(_) => panic!("expected a response"),
    }
}

/// Sends `request` over TCP and answers the challenge with `secret`.
fn authenticated(addr: SocketAddr, id: u32, request: &[u8], secret: &[u8]) -> Message {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let challenge = read_message(&mut s);
    assert_eq!(
        challenge.header.response_code,
        ResponseCode::AUTHENTICATION_NEEDED
    );
    let Body::Response {
        digest: Some(digest),
        response: Response::Challenge { nonce },
    } = &challenge.body
    else {
        panic!("expected a challenge")
    };
    assert_eq!(nonce.len(), 16);
    let answer = secret_key_answer(secret, nonce, &digest.digest, DigestAlgorithm::Sha1);
    let reply = message(
        id,
        OpCode::CHALLENGE_RESPONSE,
        0,
        Request::ChallengeAnswer(ChallengeAnswer {
            auth_type: "HS_SECKEY".into(),
            key_handle: "21.T999/ADMIN".into(),
            key_index: 300,
            response: answer,
        }),
    );
    s.write_all(&reply).unwrap();
    read_message(&mut s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_admin_with_secret_key_and_malformed_input() {
    let store = seeded_store();
    let config = ServerConfig {
        native_port: 0,
        http_port: None,
        udp_workers: 2,
        ..ServerConfig::default()
    };
    let server = start(config, store.clone() as Arc<dyn HandleStore>)
        .await
        .unwrap();
    let addr = server.native_addr;
    tokio::task::spawn_blocking(move || {
        let create = message(
            41,
            OpCode::CREATE_HANDLE,
            0,
            Request::CreateHandle(HandleValues {
                handle: "21.T999/native-1".into(),
                values: vec![HandleValue::new(
                    1,
                    "URL",
                    b"https://example.org/n".to_vec(),
                )],
            }),
        );
        let wrong = authenticated(addr, 41, &create, b"not the secret");
        assert_eq!(
            wrong.header.response_code,
            ResponseCode::AUTHENTICATION_FAILED
        );
        let ok = authenticated(addr, 41, &create, b"secret");
        assert_eq!(
            (ok.header.op_code, ok.header.response_code),
            (OpCode::CREATE_HANDLE, ResponseCode::SUCCESS)
        );
        let again = authenticated(addr, 41, &create, b"secret");
        assert_eq!(
            again.header.response_code,
            ResponseCode::HANDLE_ALREADY_EXISTS
        );

        // Resolve it over UDP; a malformed datagram first must not disturb the reply.
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let resolve = message(
            42,
            OpCode::RESOLUTION,
            0,
            Request::Resolution {
                handle: "21.T999/native-1".into(),
                indexes: vec![],
                types: vec![],
            },
        );
        let mut broken = resolve.clone();
        broken[45] ^= 0xff; // handle length
        udp.send_to(&broken, addr).unwrap();
        let mut buf = [0u8; 2048];
        let n = udp.recv(&mut buf).unwrap();
        let err = Message::read_bytes(&buf[..n]).unwrap();
        assert_eq!(err.header.response_code, ResponseCode::PROTOCOL_ERROR);
        udp.send_to(&[1, 2, 3], addr).unwrap(); // too short for an envelope: dropped
        udp.send_to(&resolve, addr).unwrap();
        let n = udp.recv(&mut buf).unwrap();
        let reply = Message::read_bytes(&buf[..n]).unwrap();
        let Response::Resolution(hv) = response(&reply) else {
            panic!("expected values")
        };
        assert_eq!(
            hv.values.len(),
            2,
            "URL plus the default HS_ADMIN naming the creator"
        );

        // A bad TCP frame closes that connection only.
        let mut bad = TcpStream::connect(addr).unwrap();
        bad.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        bad.write_all(&[9u8; 40]).unwrap();
        let mut sink = [0u8; 16];
        assert!(matches!(bad.read(&mut sink), Ok(0) | Err(_)));
        let mut good = TcpStream::connect(addr).unwrap();
        good.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let keep = message(
            43,
            OpCode::RESOLUTION,
            OpFlags::KEEP_ALIVE,
            Request::Resolution {
                handle: "21.T999/3".into(),
                indexes: vec![],
                types: vec![],
            },
        );
        for _ in 0..3 {
            good.write_all(&keep).unwrap();
            assert_eq!(
                read_message(&mut good).header.response_code,
                ResponseCode::SUCCESS
            );
        }
    })
    .await
    .unwrap();
    server.stop();
}
