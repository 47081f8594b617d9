//! Secure aggregation benchmark: 5 parties, 10^6 values each, one party drops out after
//! publishing its key, so the recovery round runs. All parties and the aggregator run in this
//! process; messages go through their byte encodings.
//!
//! `cargo run --release -p psi --example secagg_bench [-- PARTIES VALUES]`

use psi::secagg::{
    AggClient, AggServer, AggregationJob, ClientKey, MaskedInput, RecoveryRequest, RecoveryShares,
    Roster,
};
use std::time::Instant;

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let parties: u32 = argv.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let len: usize = argv
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let job = AggregationJob {
        session_id: [1; 16],
        parties,
        vector_len: len,
        min_survivors: 2,
    };
    let inputs: Vec<Vec<u64>> = (0..parties as u64)
        .map(|p| (0..len as u64).map(|i| (i * 31 + p * 7) % 1000).collect())
        .collect();
    let dropped = parties - 1;
    let start = Instant::now();
    let mut server = AggServer::new(job.clone()).expect("job");
    let mut clients = Vec::new();
    for p in 0..parties {
        let (c, key) = AggClient::new(job.clone(), p, [p as u8 + 1; 32]).expect("client");
        server
            .receive_key(&ClientKey::decode(&key.encode()).expect("key"))
            .expect("key accepted");
        clients.push(c);
    }
    let roster = Roster::decode(&server.roster().expect("roster").encode()).expect("roster");
    let mut bytes = 0usize;
    for (p, c) in clients.iter_mut().enumerate() {
        if p as u32 == dropped {
            continue;
        }
        let masked = c.mask(&roster, &inputs[p]).expect("mask").encode();
        bytes += masked.len();
        server
            .receive_input(&MaskedInput::decode(&masked).expect("decode"))
            .expect("input");
    }
    let request =
        RecoveryRequest::decode(&server.start_recovery().expect("recovery").encode()).expect("req");
    for (p, c) in clients.iter_mut().enumerate() {
        if p as u32 != dropped {
            let shares = c.recover(&request).expect("shares").encode();
            server
                .receive_recovery(&RecoveryShares::decode(&shares).expect("decode"))
                .expect("recover");
        }
    }
    let result = server.finish().expect("aggregate");
    let elapsed = start.elapsed().as_secs_f64();
    let expected: Vec<u64> = (0..len)
        .map(|i| inputs.iter().take(dropped as usize).map(|v| v[i]).sum())
        .collect();
    assert_eq!(
        result.sum, expected,
        "aggregate differs from the plaintext sum"
    );
    println!(
        "secagg parties={parties} values={len} dropped=1 contributors={} wall={elapsed:.3}s \
         upload_bytes_per_party={} correct=true",
        result.contributors,
        bytes / (parties as usize - 1)
    );
}
