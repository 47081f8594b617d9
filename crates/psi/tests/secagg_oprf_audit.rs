//! Secure aggregation, OPRF lookup and audit log against their plaintext meaning.

use proptest::prelude::*;
use psi::audit::{AuditError, AuditEvent, AuditLog};
use psi::oprf::{OprfClient, OprfServer, PointBatch, PublishedSet};
use psi::secagg::{
    AggClient, AggError, AggServer, AggregationJob, MaskedInput, RecoveryRequest, Roster,
};
use std::collections::HashSet;

fn job(parties: u32, len: usize, min: u32) -> AggregationJob {
    AggregationJob {
        session_id: [3; 16],
        parties,
        vector_len: len,
        min_survivors: min,
    }
}

/// Runs an aggregation in which the parties in `dropped` vanish after round 0; messages go
/// through their byte encodings.
fn aggregate(
    job: &AggregationJob,
    inputs: &[Vec<u64>],
    dropped: &[u32],
) -> Result<psi::secagg::Aggregate, AggError> {
    let mut server = AggServer::new(job.clone())?;
    let mut clients = Vec::new();
    for p in 0..job.parties {
        let (client, key) = AggClient::new(job.clone(), p, [p as u8 + 1; 32])?;
        server.receive_key(&psi::secagg::ClientKey::decode(&key.encode())?)?;
        clients.push(client);
    }
    let roster = Roster::decode(&server.roster()?.encode())?;
    for (p, client) in clients.iter_mut().enumerate() {
        if dropped.contains(&(p as u32)) {
            continue;
        }
        let masked = client.mask(&roster, &inputs[p])?;
        server.receive_input(&MaskedInput::decode(&masked.encode())?)?;
    }
    if !server.missing().is_empty() {
        let request = RecoveryRequest::decode(&server.start_recovery()?.encode())?;
        for (p, client) in clients.iter_mut().enumerate() {
            if !dropped.contains(&(p as u32)) {
                let shares = client.recover(&request)?;
                server.receive_recovery(&psi::secagg::RecoveryShares::decode(&shares.encode())?)?;
            }
        }
    }
    server.finish()
}

fn plain_sum(inputs: &[Vec<u64>], skip: &[u32], len: usize) -> Vec<u64> {
    let mut sum = vec![0u64; len];
    for (p, v) in inputs.iter().enumerate() {
        if !skip.contains(&(p as u32)) {
            for (s, x) in sum.iter_mut().zip(v) {
                *s = s.wrapping_add(*x);
            }
        }
    }
    sum
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn aggregation_equals_plaintext_sum(
        parties in 2u32..7,
        len in 0usize..40,
        raw in prop::collection::vec(any::<u64>(), 7 * 40),
        drop_mask in any::<u8>(),
    ) {
        let inputs: Vec<Vec<u64>> =
            (0..parties as usize).map(|p| raw[p * 40..p * 40 + len].to_vec()).collect();
        let mut dropped: Vec<u32> = (0..parties).filter(|p| drop_mask >> p & 1 == 1).collect();
        dropped.truncate((parties as usize).saturating_sub(2));
        let result = aggregate(&job(parties, len, 2), &inputs, &dropped).unwrap();
        prop_assert_eq!(result.contributors, parties - dropped.len() as u32);
        prop_assert_eq!(result.sum, plain_sum(&inputs, &dropped, len));
    }
}

#[test]
fn masked_vectors_hide_inputs_and_mean_is_exact() {
    let j = job(3, 4, 2);
    let inputs = vec![
        vec![10, 20, 30, 40],
        vec![1, 2, 3, 4],
        vec![100, 200, 300, 400],
    ];
    let result = aggregate(&j, &inputs, &[]).unwrap();
    assert_eq!(result.sum, vec![111, 222, 333, 444]);
    assert_eq!(result.mean(), vec![37.0, 74.0, 111.0, 148.0]);
    // A single masked vector is not the input.
    let mut server = AggServer::new(j.clone()).unwrap();
    let mut clients: Vec<AggClient> = (0..3)
        .map(|p| {
            let (c, k) = AggClient::new(j.clone(), p, [p as u8 + 1; 32]).unwrap();
            server.receive_key(&k).unwrap();
            c
        })
        .collect();
    let roster = server.roster().unwrap();
    assert_ne!(
        clients[0].mask(&roster, &inputs[0]).unwrap().values,
        inputs[0]
    );
}

#[test]
fn too_many_dropouts_release_nothing() {
    let inputs = vec![vec![1], vec![2], vec![3]];
    assert_eq!(
        aggregate(&job(3, 1, 2), &inputs, &[0, 1]).unwrap_err(),
        AggError::TooFewSurvivors {
            survivors: 1,
            min: 2
        }
    );
}

#[test]
fn client_refuses_recovery_naming_itself_or_the_wrong_session() {
    let j = job(3, 1, 2);
    let mut server = AggServer::new(j.clone()).unwrap();
    let mut clients: Vec<AggClient> = (0..3)
        .map(|p| {
            let (c, k) = AggClient::new(j.clone(), p, [9 + p as u8; 32]).unwrap();
            server.receive_key(&k).unwrap();
            c
        })
        .collect();
    let roster = server.roster().unwrap();
    clients[0].mask(&roster, &[5]).unwrap();
    let lying = RecoveryRequest {
        session_id: j.session_id,
        dropped: vec![0],
        survivors: 2,
    };
    assert!(matches!(
        clients[0].recover(&lying),
        Err(AggError::RecoveryRefused(_))
    ));
    let other = RecoveryRequest {
        session_id: [0; 16],
        dropped: vec![2],
        survivors: 2,
    };
    assert_eq!(
        clients[0].recover(&other).unwrap_err(),
        AggError::WrongSession
    );
}

#[test]
fn aggregation_decoders_reject_trailing_and_truncated_bytes() {
    let msg = MaskedInput {
        session_id: [1; 16],
        party: 2,
        values: vec![7, 8],
    };
    let mut bytes = msg.encode();
    assert_eq!(MaskedInput::decode(&bytes).unwrap(), msg);
    bytes.push(0);
    assert!(matches!(
        MaskedInput::decode(&bytes),
        Err(AggError::Malformed { .. })
    ));
    bytes.truncate(bytes.len() - 2);
    assert!(matches!(
        MaskedInput::decode(&bytes),
        Err(AggError::Malformed { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn oprf_lookup_equals_plaintext_membership(
        small in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3), 0..20),
        large in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3), 0..200),
    ) {
        let server = OprfServer::new(b"dataset-1", [4; 32], 1000);
        let published = PublishedSet::decode(&server.publish(&large).encode()).unwrap();
        let (client, query) = OprfClient::blind(b"dataset-1", [5; 16], &small, [6; 32]);
        let evaluation = server.evaluate(&PointBatch::decode(&query.encode()).unwrap()).unwrap();
        let outputs = client.finalize(&small, &PointBatch::decode(&evaluation.encode()).unwrap()).unwrap();
        let set: HashSet<&Vec<u8>> = large.iter().collect();
        let expected: Vec<usize> =
            small.iter().enumerate().filter(|(_, x)| set.contains(x)).map(|(i, _)| i).collect();
        prop_assert_eq!(OprfClient::lookup(&outputs, &published), expected);
    }
}

#[test]
fn oprf_query_over_allowance_is_refused() {
    let server = OprfServer::new(b"d", [1; 32], 2);
    let (_, query) = OprfClient::blind(b"d", [0; 16], &[b"a", b"b", b"c"], [2; 32]);
    assert!(matches!(
        server.evaluate(&query),
        Err(psi::oprf::OprfError::QueryTooLarge { got: 3, max: 2 })
    ));
}

#[test]
fn audit_log_detects_any_change() {
    let mut log = AuditLog::new();
    log.append(
        1,
        AuditEvent::Proposed {
            job_id: "j".into(),
            manifest_digest: [1; 32],
        },
    );
    log.append(
        2,
        AuditEvent::Approved {
            party: "alice".into(),
            manifest_digest: [1; 32],
        },
    );
    log.append(
        3,
        AuditEvent::Released {
            job_id: "j".into(),
            recipient: "alice".into(),
            size: 12,
        },
    );
    let decoded = AuditLog::decode(&log.encode()).unwrap();
    assert_eq!(decoded, log);
    assert_eq!(AuditLog::verify(log.entries()), Ok(()));

    let mut altered = log.entries().to_vec();
    altered[1].time = 99;
    assert_eq!(AuditLog::verify(&altered), Err(AuditError::Altered(1)));

    let mut removed = log.entries().to_vec();
    removed.remove(1);
    assert_eq!(
        AuditLog::verify(&removed),
        Err(AuditError::Sequence { index: 1, seq: 2 })
    );

    let mut swapped = log.entries().to_vec();
    swapped[2].prev = [0; 32];
    assert_eq!(AuditLog::verify(&swapped), Err(AuditError::BrokenLink(2)));
}
