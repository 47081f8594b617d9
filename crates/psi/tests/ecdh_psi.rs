//! End-to-end properties of the ECDH-PSI state machines: results equal the plaintext
//! computation, and a job that breaks its manifest or whose traffic is tampered with releases
//! nothing on either side.

use proptest::prelude::*;
use psi::local::{Delivery, PartyInput, run_pair, run_pair_with};
use psi::{
    AbortCode, GovernanceError, JobManifest, PartySpec, PsiConfig, PsiError, PsiMode, PsiOutput,
};
use std::collections::{BTreeSet, HashSet};

fn manifest(mode: PsiMode, cap_a: u64, cap_b: u64, min_release: u64) -> JobManifest {
    JobManifest {
        job_id: "job-1".into(),
        parties: [
            PartySpec {
                id: "alice".into(),
                max_set_size: cap_a,
            },
            PartySpec {
                id: "bob".into(),
                max_set_size: cap_b,
            },
        ],
        receiver: "alice".into(),
        mode,
        min_release_size: min_release,
    }
}

fn config(manifest: &JobManifest, party: &str, size: usize, seed: u8, batch: usize) -> PsiConfig {
    PsiConfig {
        manifest: manifest.clone(),
        local_party: party.into(),
        session_id: [7; 16],
        set_size: size as u64,
        seed: [seed; 32],
        batch_size: batch,
    }
}

/// Plaintext reference: positions of `xs` whose item is in `ys`.
fn positions_in(xs: &[Vec<u8>], ys: &[Vec<u8>]) -> Vec<u64> {
    let set: HashSet<&Vec<u8>> = ys.iter().collect();
    xs.iter()
        .enumerate()
        .filter(|(_, x)| set.contains(x))
        .map(|(i, _)| i as u64)
        .collect()
}

fn distinct_common(xs: &[Vec<u8>], ys: &[Vec<u8>]) -> u64 {
    let a: BTreeSet<&Vec<u8>> = xs.iter().collect();
    let b: BTreeSet<&Vec<u8>> = ys.iter().collect();
    a.intersection(&b).count() as u64
}

fn run(
    mode: PsiMode,
    xs: &[Vec<u8>],
    ys: &[Vec<u8>],
    values: Option<&[u32]>,
    batch: usize,
) -> (Result<PsiOutput, PsiError>, Result<PsiOutput, PsiError>) {
    let m = manifest(mode, 1 << 20, 1 << 20, 0);
    // In sum mode the receiver (alice) holds the values; otherwise alice only has items.
    run_pair(
        config(&m, "alice", xs.len(), 1, batch),
        PartyInput { items: xs, values },
        config(&m, "bob", ys.len(), 2, batch),
        PartyInput {
            items: ys,
            values: None,
        },
    )
}

/// Sets drawn from a small alphabet so that intersections and duplicates are common, with
/// arbitrary (non-UTF-8) bytes and an empty item possible.
fn item_set(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop::collection::vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 0..3),
        0..max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn intersection_matches_plaintext(xs in item_set(60), ys in item_set(60), batch in 1usize..20) {
        let (a, b) = run(PsiMode::Intersection, &xs, &ys, None, batch);
        prop_assert_eq!(a.unwrap(), PsiOutput::Intersection { positions: positions_in(&xs, &ys) });
        prop_assert_eq!(b.unwrap(), PsiOutput::Completed);
    }

    #[test]
    fn intersection_both_matches_plaintext(xs in item_set(60), ys in item_set(60)) {
        let (a, b) = run(PsiMode::IntersectionBoth, &xs, &ys, None, 7);
        prop_assert_eq!(a.unwrap(), PsiOutput::Intersection { positions: positions_in(&xs, &ys) });
        prop_assert_eq!(b.unwrap(), PsiOutput::Intersection { positions: positions_in(&ys, &xs) });
    }

    #[test]
    fn cardinality_matches_plaintext(xs in item_set(60), ys in item_set(60)) {
        let (a, b) = run(PsiMode::Cardinality, &xs, &ys, None, 5);
        prop_assert_eq!(a.unwrap(), PsiOutput::Cardinality { size: distinct_common(&xs, &ys) });
        prop_assert_eq!(b.unwrap(), PsiOutput::Completed);
    }

    #[test]
    fn sum_matches_plaintext(
        pairs in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..2), any::<u32>()), 0..25),
        ys in item_set(25),
    ) {
        let xs: Vec<Vec<u8>> = pairs.iter().map(|(k, _)| k.clone()).collect();
        let values: Vec<u32> = pairs.iter().map(|(_, v)| *v).collect();
        let (a, b) = run(PsiMode::IntersectionSum, &xs, &ys, Some(&values), 4);
        let expected_sum: u64 =
            positions_in(&xs, &ys).iter().map(|&i| u64::from(values[i as usize])).sum();
        let size = distinct_common(&xs, &ys);
        prop_assert_eq!(a.unwrap(), PsiOutput::Sum { size, sum: expected_sum });
        prop_assert_eq!(b.unwrap(), PsiOutput::Cardinality { size });
    }
}

fn items(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("user{i:012}").into_bytes()).collect()
}

#[test]
fn very_unbalanced_sets() {
    let xs = items(0..5);
    let ys = items(3..3000);
    let (a, _) = run(PsiMode::Intersection, &xs, &ys, None, 512);
    assert_eq!(
        a.unwrap(),
        PsiOutput::Intersection {
            positions: vec![3, 4]
        }
    );
    let (a, _) = run(PsiMode::Intersection, &ys, &xs, None, 512);
    assert_eq!(
        a.unwrap(),
        PsiOutput::Intersection {
            positions: vec![0, 1]
        }
    );
}

#[test]
fn empty_sets() {
    let (a, b) = run(PsiMode::Intersection, &[], &items(0..10), None, 4);
    assert_eq!(a.unwrap(), PsiOutput::Intersection { positions: vec![] });
    assert_eq!(b.unwrap(), PsiOutput::Completed);
    let (a, _) = run(PsiMode::Cardinality, &[], &[], None, 4);
    assert_eq!(a.unwrap(), PsiOutput::Cardinality { size: 0 });
}

#[test]
fn over_cap_set_is_refused_before_any_message() {
    let m = manifest(PsiMode::Intersection, 10, 3, 0);
    let refused = psi::PsiSession::new(config(&m, "bob", 4, 2, 4));
    assert_eq!(
        refused.unwrap_err(),
        PsiError::Governance(GovernanceError::SetTooLarge {
            party: "bob".into(),
            size: 4,
            cap: 3
        })
    );
    // The peer's declared size is checked against the manifest too, on the other side.
    let loose = manifest(PsiMode::Intersection, 10, 100, 0);
    let xs = items(0..5);
    let ys = items(0..4);
    let (a, b) = run_pair(
        config(&m, "alice", 5, 1, 4),
        PartyInput {
            items: &xs,
            values: None,
        },
        config(&loose, "bob", 4, 2, 4),
        PartyInput {
            items: &ys,
            values: None,
        },
    );
    // Both sides see the other's digest at the same step; each refuses on its own.
    for result in [a, b] {
        let e = result.unwrap_err();
        assert!(
            matches!(
                e,
                PsiError::ManifestMismatch | PsiError::PeerAborted(AbortCode::Governance)
            ),
            "{e:?}"
        );
    }
}

#[test]
fn below_release_minimum_releases_nothing_on_both_sides() {
    let m = manifest(PsiMode::IntersectionBoth, 100, 100, 3);
    let xs = items(0..10);
    let ys = items(8..20);
    let (a, b) = run_pair(
        config(&m, "alice", xs.len(), 1, 4),
        PartyInput {
            items: &xs,
            values: None,
        },
        config(&m, "bob", ys.len(), 2, 4),
        PartyInput {
            items: &ys,
            values: None,
        },
    );
    assert_eq!(
        a.unwrap_err(),
        PsiError::Governance(GovernanceError::BelowReleaseMinimum { size: 2, min: 3 })
    );
    assert_eq!(
        b.unwrap_err(),
        PsiError::PeerAborted(AbortCode::BelowReleaseMinimum)
    );
}

/// Runs a 40 × 40 job in which `network` interferes, and returns both results.
fn run_attacked(
    network: impl FnMut(usize, usize, &mut Vec<u8>) -> Delivery,
) -> (Result<PsiOutput, PsiError>, Result<PsiOutput, PsiError>) {
    let m = manifest(PsiMode::IntersectionBoth, 100, 100, 0);
    let xs = items(0..40);
    let ys = items(20..60);
    run_pair_with(
        config(&m, "alice", xs.len(), 1, 8),
        PartyInput {
            items: &xs,
            values: None,
        },
        config(&m, "bob", ys.len(), 2, 8),
        PartyInput {
            items: &ys,
            values: None,
        },
        network,
    )
}

#[test]
fn honest_network_baseline() {
    let (a, b) = run_attacked(|_, _, _| Delivery::Deliver);
    assert_eq!(
        a.unwrap(),
        PsiOutput::Intersection {
            positions: (20..40).collect()
        }
    );
    assert_eq!(
        b.unwrap(),
        PsiOutput::Intersection {
            positions: (0..20).collect()
        }
    );
}

#[test]
fn any_flipped_bit_aborts_both_sides() {
    // Flip one bit in every frame position of every sender in turn (header, payload, tag).
    for sender in 0..2 {
        for index in 0..8 {
            for byte in [0usize, 1, 5, 20, 27, 40, usize::MAX] {
                let mut tampered = false;
                let (a, b) = run_attacked(|from, i, frame| {
                    if from == sender && i == index {
                        let at = byte.min(frame.len() - 1);
                        frame[at] ^= 0x04;
                        tampered = true;
                    }
                    Delivery::Deliver
                });
                if !tampered {
                    continue; // this sender has fewer frames
                }
                assert!(
                    a.is_err() && b.is_err(),
                    "sender {sender} frame {index} byte {byte}: {a:?} / {b:?}"
                );
            }
        }
    }
}

#[test]
fn truncated_dropped_or_replayed_frames_abort_both_sides() {
    for sender in 0..2 {
        // Alice sends 7 frames and Bob 11 in this job; every one of the first 7 matters.
        for index in 0..7 {
            let truncated = run_attacked(|from, i, frame| {
                if from == sender && i == index {
                    frame.truncate(frame.len() - 1);
                }
                Delivery::Deliver
            });
            let dropped = run_attacked(|from, i, _| {
                if from == sender && i == index {
                    Delivery::Drop
                } else {
                    Delivery::Deliver
                }
            });
            let replayed = run_attacked(|from, i, _| {
                if from == sender && i == index {
                    Delivery::Duplicate
                } else {
                    Delivery::Deliver
                }
            });
            let mut cases = vec![("truncated", truncated), ("dropped", dropped)];
            // Alice's frame 6 is the final outcome: its duplicate reaches Bob only after he has
            // completed, where a closed session ignores it; every earlier replay must abort.
            if (sender, index) != (0, 6) {
                cases.push(("replayed", replayed));
            }
            for (what, (a, b)) in cases {
                // A dropped frame stalls the protocol; neither side may release an output.
                assert!(
                    a.is_err() && b.is_err(),
                    "{what} sender {sender} frame {index}: {a:?} / {b:?}"
                );
            }
        }
    }
}

#[test]
fn frame_from_another_session_is_refused() {
    let (a, b) = run_attacked(|from, i, frame| {
        if from == 1 && i == 2 {
            frame[2] ^= 1; // first byte of the session id
        }
        Delivery::Deliver
    });
    assert_eq!(a.unwrap_err(), PsiError::WrongSession);
    assert!(b.is_err());
}

#[test]
fn sum_mode_caps_are_bounded_and_manifest_round_trips() {
    let m = manifest(PsiMode::IntersectionSum, 1 << 23, 10, 0);
    assert!(matches!(
        m.validate(),
        Err(GovernanceError::InvalidManifest(_))
    ));
    let ok = manifest(PsiMode::IntersectionSum, 1 << 22, 10, 5);
    assert_eq!(JobManifest::decode(&ok.encode()).unwrap(), ok);
    assert_ne!(
        ok.digest(),
        manifest(PsiMode::IntersectionSum, 1 << 22, 10, 6).digest()
    );
}

#[test]
fn frames_split_from_a_byte_stream_and_closed_sessions_refuse_frames() {
    let m = manifest(PsiMode::Intersection, 10, 10, 0);
    let (mut a, hello_a) = psi::PsiSession::new(config(&m, "alice", 3, 1, 2)).unwrap();
    let (mut b, hello_b) = psi::PsiSession::new(config(&m, "bob", 3, 2, 2)).unwrap();
    // Two hellos concatenated and cut at odd places come out as the two frames.
    let stream = [hello_a.clone(), hello_b.clone()].concat();
    let mut splitter = psi::wire::FrameSplitter::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(7) {
        splitter.extend(piece);
        while let Some(f) = splitter.next_frame().unwrap() {
            frames.push(f);
        }
    }
    assert_eq!(frames, vec![hello_a.clone(), hello_b.clone()]);
    assert_eq!(splitter.buffered(), 0);

    assert!(b.handle_frame(&hello_a).unwrap().is_empty());
    assert!(a.handle_frame(&hello_b).unwrap().is_empty());
    // Pushing more than declared is a local usage error that kills the session and yields an
    // abort frame for the peer; the peer then fails with the reason.
    let err = a.push_items(&[b"1", b"2", b"3", b"4"]).unwrap_err();
    assert!(matches!(err, PsiError::Usage(_)));
    let abort = a.take_abort_frame().expect("abort frame for the peer");
    assert_eq!(
        b.handle_frame(&abort).unwrap_err(),
        PsiError::PeerAborted(AbortCode::Cancelled)
    );
    assert_eq!(
        a.handle_frame(&hello_b).unwrap_err(),
        PsiError::Closed("failed")
    );
    assert!(a.output().is_none() && b.output().is_none());
}
