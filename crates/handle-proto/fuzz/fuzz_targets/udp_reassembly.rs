#![no_main]
//! A stream of datagrams (split on a 2-byte length prefix) fed to the reassembler: never panics,
//! never holds more partial messages than its cap.
use handle_proto::udp::Reassembler;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::new(100, 8);
    let mut rest = data;
    let mut now = 0;
    while rest.len() >= 3 {
        let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let peer = rest[2] % 4;
        let datagram = &rest[2..2 + len];
        let _ = r.push(peer, datagram, now);
        assert!(r.in_flight() <= 8);
        now += 7;
        rest = &rest[2 + len..];
    }
});
