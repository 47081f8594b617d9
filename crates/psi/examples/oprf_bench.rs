//! Unbalanced lookup benchmark: a server publishes OPRF outputs of 2^LARGE items once, then a
//! client looks up 2^SMALL items (half of them present). Reports the one-off publishing cost,
//! the online cost and the bytes each way.
//!
//! `cargo run --release -p psi --example oprf_bench [-- LARGE_LOG2 SMALL_LOG2]`

use psi::oprf::{OprfClient, OprfServer, PointBatch, PublishedSet};
use std::time::Instant;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let large: u32 = argv.first().and_then(|a| a.parse().ok()).unwrap_or(20);
    let small: u32 = argv.get(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let ys: Vec<Vec<u8>> = (0..1u64 << large)
        .map(|i| format!("user{i:012}").into_bytes())
        .collect();
    let first = (1u64 << large) - (1u64 << (small - 1));
    let xs: Vec<Vec<u8>> = (first..first + (1u64 << small))
        .map(|i| format!("user{i:012}").into_bytes())
        .collect();

    let t = Instant::now();
    let server = OprfServer::new(b"bench-dataset", [1; 32], 1 << 16);
    let published = server.publish(&ys).encode();
    let publish_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let set = PublishedSet::decode(&published).expect("published set");
    let (client, query) = OprfClient::blind(b"bench-dataset", [2; 16], &xs, [3; 32]);
    let query_bytes = query.encode();
    let evaluation = server
        .evaluate(&PointBatch::decode(&query_bytes).expect("query"))
        .expect("evaluate");
    let evaluation_bytes = evaluation.encode();
    let outputs = client
        .finalize(
            &xs,
            &PointBatch::decode(&evaluation_bytes).expect("evaluation"),
        )
        .expect("finalize");
    let found = OprfClient::lookup(&outputs, &set).len();
    let online_s = t.elapsed().as_secs_f64();
    assert_eq!(
        found,
        1 << (small - 1),
        "lookup differs from the plaintext membership"
    );
    println!(
        "oprf large=2^{large} small=2^{small} publish={publish_s:.2}s published_bytes={} \
         online={online_s:.3}s (incl. decoding the published set) query_bytes={} \
         evaluation_bytes={} found={found}",
        published.len(),
        query_bytes.len(),
        evaluation_bytes.len()
    );
}
