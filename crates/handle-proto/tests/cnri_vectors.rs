//! Byte vectors captured from the CNRI HANDLE.NET 7.3 reference server (UDP, loopback), see
//! `test_data/cnri73/README.md`. Each test decodes CNRI's bytes, checks fields against values
//! known independently (what was seeded, what was asked), and re-encodes to the same bytes.

use handle_proto::codec::Codec;
use handle_proto::data::{AdminRecord, SiteInfo, interface_protocol};
use handle_proto::message::{RequestDigest, signed_part};
use handle_proto::udp::{Reassembler, Reassembly, fragment};
use handle_proto::{Body, DigestAlgorithm, Message, OpCode, OpFlags, Response, ResponseCode};

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!("../test_data/cnri73/", $name, ".bin")).as_slice()
    };
}

fn response_of(msg: &Message) -> (&Option<RequestDigest>, &Response) {
    match &msg.body {
        Body::Response { digest, response } => (digest, response),
        Body::Request(_) => panic!("expected a response"),
    }
}

fn reassemble(parts: &[&[u8]]) -> Vec<u8> {
    let mut r = Reassembler::new(1000, 4);
    let mut done = None;
    for p in parts {
        if let Reassembly::Complete(m) = r.push(0u8, p, 0).unwrap() {
            done = Some(m);
        }
    }
    done.expect("fragments complete the message")
}

#[test]
fn site_info_is_fragmented_without_tc_and_reassembles() {
    let parts = [
        vector!("site_info.response.0"),
        vector!("site_info.response.1"),
    ];
    assert_eq!(parts[0].len(), 512);
    // TC (0x20) is not set on either fragment: reassembly must key on MessageLength.
    assert!(parts.iter().all(|p| p[2] == 0));
    let whole = reassemble(&parts);
    let msg = Message::read_bytes(&whole).unwrap();
    assert_eq!(msg.envelope.request_id, 11);
    assert_eq!(msg.header.op_code, OpCode::GET_SITE_INFO);
    assert_eq!(msg.header.response_code, ResponseCode::SUCCESS);
    assert_eq!(
        msg.header.op_flags.0,
        OpFlags::AUTHORITATIVE | OpFlags::RECURSIVE
    );
    let Response::SiteInfo(site) = response_of(&msg).1 else {
        panic!("expected site info")
    };
    assert_eq!(
        (site.protocol_major, site.protocol_minor, site.primary_mask),
        (2, 5, SiteInfo::PRIMARY)
    );
    let server = &site.servers[0];
    assert_eq!(
        server.ip().to_string(),
        "192.0.2.2",
        "the address given to CNRI's setup"
    );
    let ports: Vec<(u8, u32)> = server
        .interfaces
        .iter()
        .map(|i| (i.protocol, i.port))
        .collect();
    assert_eq!(
        ports,
        vec![
            (interface_protocol::TCP, 2641),
            (interface_protocol::UDP, 2641),
            (interface_protocol::HTTP, 8000)
        ]
    );
    assert!(
        server.public_key.starts_with(&[0, 0, 0, 11])
            && server.public_key[4..15] == *b"DSA_PUB_KEY"
    );
    // Our encoder and fragmenter reproduce CNRI's datagrams exactly.
    assert_eq!(msg.encode(), whole);
    let ours = fragment(&whole).unwrap();
    assert_eq!(ours.iter().map(Vec::as_slice).collect::<Vec<_>>(), parts);
}

#[test]
fn request_digest_is_sha1_of_header_and_body() {
    let request = vector!("site_info_rd.request");
    let whole = reassemble(&[
        vector!("site_info_rd.response.0"),
        vector!("site_info_rd.response.1"),
    ]);
    let msg = Message::read_bytes(&whole).unwrap();
    assert!(msg.header.op_flags.has(OpFlags::REQUEST_DIGEST));
    let (digest, _) = response_of(&msg);
    let expected = RequestDigest::of(DigestAlgorithm::Sha1, signed_part(request).unwrap());
    assert_eq!(digest.as_ref(), Some(&expected));
    let resolution = Message::read_bytes(vector!("resolution_rd.response.0")).unwrap();
    let expected = RequestDigest::of(
        DigestAlgorithm::Sha1,
        signed_part(vector!("resolution_rd.request")).unwrap(),
    );
    assert_eq!(response_of(&resolution).0.as_ref(), Some(&expected));
}

#[test]
fn resolution_returns_the_seeded_values() {
    let bytes = vector!("resolution.response.0");
    let msg = Message::read_bytes(bytes).unwrap();
    let Response::Resolution(hv) = response_of(&msg).1 else {
        panic!("expected values")
    };
    assert_eq!(hv.handle, "21.T999/3");
    let summary: Vec<(u32, &str, u8, u32, i32)> = hv
        .values
        .iter()
        .map(|v| {
            (
                v.index,
                v.value_type.as_str(),
                v.permissions.0,
                v.timestamp,
                v.ttl,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "URL", 0x0e, 1_700_000_000, 86_400),
            (2, "CHECKSUM", 0x0e, 1_700_000_000, 86_400),
            (3, "EMAIL", 0x0e, 1_700_000_000, 86_400),
            (100, "HS_ADMIN", 0x0e, 1_700_000_000, 86_400)
        ]
    );
    assert_eq!(
        hv.values[0].data,
        b"https://data.city.example/entities/urn:ngsi-ld:Device:00000003"
    );
    let admin = AdminRecord::read_bytes(&hv.values[3].data).unwrap();
    assert_eq!(
        (
            admin.admin.handle.as_str(),
            admin.admin.index,
            admin.permissions.0
        ),
        ("0.NA/21.T999", 200, 0x0ff3)
    );
    assert_eq!(msg.encode(), bytes);

    let only_url = Message::read_bytes(vector!("resolution_index.response.0")).unwrap();
    let Response::Resolution(hv) = response_of(&only_url).1 else {
        panic!("expected values")
    };
    assert_eq!(
        hv.values.iter().map(|v| v.index).collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn error_bodies() {
    let msg = Message::read_bytes(vector!("values_not_found.response.0")).unwrap();
    assert_eq!(msg.header.response_code, ResponseCode::VALUES_NOT_FOUND);
    assert_eq!(
        response_of(&msg).1,
        &Response::Error {
            message: String::new(),
            indexes: vec![]
        }
    );
    let msg = Message::read_bytes(vector!("not_homed.response.0")).unwrap();
    assert_eq!(msg.header.response_code, ResponseCode::SERVER_NOT_RESP);
    assert_eq!(
        response_of(&msg).1,
        &Response::Error {
            message: "That naming authority doesn't live here".into(),
            indexes: vec![]
        }
    );
    assert_eq!(msg.encode(), vector!("not_homed.response.0"));
}

#[test]
fn requests_we_sent_decode_and_every_truncation_fails() {
    for req in [
        vector!("resolution.request"),
        vector!("site_info.request"),
        vector!("resolution_index.request"),
    ] {
        let msg = Message::read_bytes(req).unwrap();
        assert!(msg.header.is_request());
        assert_eq!(msg.encode(), req);
        for cut in 0..req.len() {
            assert!(Message::read_bytes(&req[..cut]).is_err());
        }
    }
}
