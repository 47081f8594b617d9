use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// p - d, little-endian.
fn p_minus(d: u8) -> [u8; 32] {
    let mut p = [0xffu8; 32];
    p[31] = 0x7f;
    p[0] = 0xed - d;
    p
}

/// p + d (non-canonical, below 2^255) for d < 18.
fn p_plus(d: u8) -> [u8; 32] {
    let mut p = p_minus(0);
    p[0] += d;
    p
}

fn small(v: u8) -> [u8; 32] {
    let mut u = [0u8; 32];
    u[0] = v;
    u
}

/// Inputs where a vector ladder would most likely go wrong.
fn edge_inputs() -> Vec<[u8; 32]> {
    let mut v = vec![
        small(0),
        small(1),
        small(9),
        p_minus(1),
        p_minus(0), // p (≡ 0)
        p_plus(1),  // p + 1 (≡ 1)
        p_plus(9),
        p_plus(18), // 2^255 - 1
        [0xff; 32], // bit 255 set: ignored by RFC 7748
        [0x7f; 32],
        [0x80; 32],
        // The other low-order points of Curve25519 (libsodium's blocklist).
        hex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        hex32("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    ];
    // Every limb at its maximum 2^51 - 1 or 0, alternating.
    let mut alt = [0u8; 32];
    for (i, b) in alt.iter_mut().enumerate() {
        *b = if (i / 6) % 2 == 0 { 0xff } else { 0 };
    }
    alt[31] &= 0x7f;
    v.push(alt);
    v
}

fn random_inputs(n: usize, seed: u64) -> Vec<[u8; 32]> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut u = [0u8; 32];
            rng.fill_bytes(&mut u);
            u
        })
        .collect()
}

#[test]
fn rfc7748_vectors() {
    let k = MaskKey::from_bytes(hex32(
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
    ));
    let u = hex32("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    let want = hex32("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    assert_eq!(k.mask(&[u]), vec![want]);
    assert_eq!(k.mask_portable(&[u]), vec![want]);

    let k = MaskKey::from_bytes(hex32(
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
    ));
    let u = hex32("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493");
    let want = hex32("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957");
    assert_eq!(k.mask(&[u]), vec![want]);
}

#[test]
fn rfc7748_iterated_100_times() {
    // RFC 7748 §5.2: k = u = 9; repeat (k, u) = (X25519(k, u), k). The scalar changes each
    // round, so this also exercises many different keys through the vector ladder.
    let (mut k, mut u) = (small(9), small(9));
    for i in 1..=100 {
        let out = MaskKey::from_bytes(k).mask(&[u])[0];
        u = k;
        k = out;
        if i == 1 {
            assert_eq!(
                k,
                hex32("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
            );
        }
    }
    // Cross-check the end of the chain with the portable ladder.
    let mut k2 = small(9);
    let mut u2 = small(9);
    for _ in 0..100 {
        let out = MaskKey::from_bytes(k2).mask_portable(&[u2])[0];
        u2 = k2;
        k2 = out;
    }
    assert_eq!(k, k2);
}

#[test]
fn vector_ladder_equals_portable_on_random_and_edge_inputs() {
    let mut inputs = edge_inputs();
    inputs.extend(random_inputs(77, 1)); // not a multiple of 8: exercises a partial last group
    let mut keys: Vec<[u8; 32]> = vec![[0; 32], [0xff; 32], small(1)];
    keys.extend(random_inputs(3, 2));
    for key in keys {
        let k = MaskKey::from_bytes(key);
        let fast = k.mask(&inputs);
        let slow = k.mask_portable(&inputs);
        for (i, (f, s)) in fast.iter().zip(&slow).enumerate() {
            assert_eq!(f, s, "input {i} {:02x?}", inputs[i]);
        }
        // Every group size 1..=8 of a tail.
        for n in 1..=9 {
            assert_eq!(k.mask(&inputs[..n]), slow[..n].to_vec());
        }
    }
}

#[test]
fn low_order_inputs_mask_to_zero_and_are_refused() {
    let k = MaskKey::from_bytes([7; 32]);
    for u in [small(0), small(1), p_minus(1)] {
        assert_eq!(k.mask(&[u]), vec![[0u8; 32]]);
    }
    let good = hash_and_mask(&PointHasher::new(b"j"), &k, &[b"x"; 1])[0];
    let mut batch = vec![good; 20];
    batch[13] = small(1);
    assert_eq!(remask(&k, &batch), Err(InvalidPoint { index: 13 }));
    batch[13] = good;
    batch[5] = p_minus(0);
    assert_eq!(remask(&k, &batch), Err(InvalidPoint { index: 5 }));
    batch[5] = [0xff; 32];
    assert_eq!(remask(&k, &batch), Err(InvalidPoint { index: 5 }));
}

#[test]
fn canonical_encodings() {
    assert!(is_canonical(&small(0)));
    assert!(is_canonical(&p_minus(1)));
    assert!(!is_canonical(&p_minus(0)));
    assert!(!is_canonical(&p_plus(18)));
    assert!(!is_canonical(&[0xff; 32]));
    let mut x = p_minus(1);
    x[17] = 0xfe;
    assert!(is_canonical(&x));
}

#[test]
fn limb_conversion_reduces_mod_p() {
    for u in random_inputs(50, 3).iter().chain(&edge_inputs()) {
        let mut masked = *u;
        masked[31] &= 0x7f;
        let back = limbs_to_bytes(bytes_to_limbs(u));
        if is_canonical(&masked) {
            assert_eq!(back, masked);
        } else {
            // u in [p, 2^255): u - p = u[0] - 0xed in the low byte, zero elsewhere.
            assert_eq!(back, small(masked[0] - 0xed));
        }
    }
}

#[test]
fn masking_commutes_and_matches_across_threads() {
    let hasher = PointHasher::new(b"job");
    let items: Vec<Vec<u8>> = (0..1500u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let (a, b) = (MaskKey::from_bytes([1; 32]), MaskKey::from_bytes([2; 32]));
    let ab = remask(&b, &hash_and_mask(&hasher, &a, &items)).unwrap();
    let ba = remask(&a, &hash_and_mask(&hasher, &b, &items)).unwrap();
    assert_eq!(ab, ba);
    let direct: Vec<[u8; 32]> = items
        .iter()
        .map(|x| {
            let once = a.mask_portable(&[hasher.hash(x)]);
            b.mask_portable(&once)[0]
        })
        .collect();
    assert_eq!(ab, direct);
    // Distinct items give distinct doubly-masked values.
    let mut sorted = ab.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), items.len());
}

#[test]
fn different_jobs_hash_differently() {
    assert_ne!(
        PointHasher::new(b"a").hash(b"x"),
        PointHasher::new(b"b").hash(b"x")
    );
    assert_eq!(PointHasher::new(b"a").hash(b"x")[31] & 0x80, 0);
}

#[test]
fn batched_inversion_is_not_poisoned_by_low_order_lanes() {
    // Several inversion batches (256 items each), with low-order and padding lanes at group and
    // batch boundaries: each of them must give 0 without disturbing the other lanes.
    let mut inputs = random_inputs(601, 4);
    for (pos, u) in [0usize, 7, 8, 255, 256, 300, 511, 600].into_iter().zip([
        small(0),
        small(1),
        p_minus(1),
        p_minus(0),
        small(0),
        p_plus(1),
        small(1),
        small(0),
    ]) {
        inputs[pos] = u;
    }
    let k = MaskKey::from_bytes([0x42; 32]);
    let fast = k.mask(&inputs);
    assert_eq!(fast, k.mask_portable(&inputs));
    assert_eq!(fast[256], [0u8; 32]);
    assert_ne!(fast[257], [0u8; 32]);
}
