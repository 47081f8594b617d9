//! Eight X25519 ladders at once with AVX-512 IFMA (`vpmadd52luq`/`vpmadd52huq`).
//!
//! Each `__m512i` holds one limb of eight independent field elements ("multi-buffer", as in
//! ipp-crypto's `mbx_x25519`). Field elements use five limbs in radix 2^51; a *reduced*
//! element has every limb below 2^52, which is what the 52-bit multipliers read. The
//! multiplication and squaring follow the structure of curve25519-dalek's IFMA backend
//! (products accumulated with coefficient 1, 2 or 4, the top half folded back with ×19 through
//! the multipliers themselves), widened from 4 to 8 lanes.
//!
//! Every function here is safe Rust: since Rust 1.87 the value intrinsics of `core::arch` are
//! safe inside functions that enable their target features. Only the entry point
//! [`x25519_batch`] has to be *called* through `unsafe`, after run-time detection (see
//! `super::ladder_batch`).
//!
//! All lanes share the scalar: the conditional swaps depend on the secret scalar only through
//! a broadcast all-zeros/all-ones mask (no branch, no secret-dependent index), so the ladder
//! runs in constant time with respect to the key. The inputs are public.

use core::arch::x86_64::{
    __m512i, __mmask8, _mm256_extract_epi64, _mm512_add_epi64, _mm512_and_si512,
    _mm512_castsi512_si256, _mm512_extracti64x4_epi64, _mm512_madd52hi_epu64,
    _mm512_madd52lo_epu64, _mm512_mask_blend_epi64, _mm512_set_epi64, _mm512_set1_epi64,
    _mm512_setzero_si512, _mm512_slli_epi64, _mm512_srli_epi64, _mm512_sub_epi64, _mm512_xor_si512,
};

use super::{MASK51, bytes_to_limbs, limbs_to_bytes};

/// Five limbs of eight field elements, each limb below 2^52.
#[derive(Clone, Copy)]
struct Fe([__m512i; 5]);

/// Five limbs of eight field elements, each limb below 2^62 (a sum or product before the
/// carry pass).
type Wide = [__m512i; 5];

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn splat(x: u64) -> __m512i {
    _mm512_set1_epi64(x as i64)
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn add(a: __m512i, b: __m512i) -> __m512i {
    _mm512_add_epi64(a, b)
}

/// `z + lo52(x·y)` lane-wise, reading the low 52 bits of `x` and `y`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn madd_lo(z: __m512i, x: __m512i, y: __m512i) -> __m512i {
    _mm512_madd52lo_epu64(z, x, y)
}

/// `z + hi52(x·y)` lane-wise (bits 52..104 of the product).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn madd_hi(z: __m512i, x: __m512i, y: __m512i) -> __m512i {
    _mm512_madd52hi_epu64(z, x, y)
}

/// `a + 2·b`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn add_twice(a: __m512i, b: __m512i) -> __m512i {
    add(a, _mm512_slli_epi64::<1>(b))
}

/// One parallel carry pass: limbs below 2^62 in, limbs below 2^52 out (same value mod p).
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn reduce(z: Wide) -> Fe {
    let mask = splat(MASK51);
    let c0 = _mm512_srli_epi64::<51>(z[0]);
    let c1 = _mm512_srli_epi64::<51>(z[1]);
    let c2 = _mm512_srli_epi64::<51>(z[2]);
    let c3 = _mm512_srli_epi64::<51>(z[3]);
    let c4 = _mm512_srli_epi64::<51>(z[4]);
    Fe([
        // c4 < 2^11, so 19·c4 is exact in the low half.
        madd_lo(_mm512_and_si512(z[0], mask), c4, splat(19)),
        add(_mm512_and_si512(z[1], mask), c0),
        add(_mm512_and_si512(z[2], mask), c1),
        add(_mm512_and_si512(z[3], mask), c2),
        add(_mm512_and_si512(z[4], mask), c3),
    ])
}

/// Folds the upper positions 5..9 (`high[m]` is the full coefficient at position 5+m, below
/// 2^57) into positions 0..4, where `one` and `two` hold the coefficient-1 and coefficient-2
/// accumulators. 2^255 ≡ 19, so position 5+m is 19 times position m.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn fold(mut one: Wide, mut two: Wide, high: Wide) -> Wide {
    let r19 = splat(19);
    // high[m] = L + 2^52·T with L < 2^52, T < 2^5:
    //   19·L = lo52 + 2^52·hi52, and 2^52 at position m is 2 at position m+1.
    let mut top = _mm512_setzero_si512();
    for m in 0..5 {
        one[m] = madd_lo(one[m], r19, high[m]);
        let t = _mm512_srli_epi64::<52>(high[m]);
        if m < 4 {
            two[m + 1] = madd_hi(two[m + 1], r19, high[m]);
            two[m + 1] = madd_lo(two[m + 1], r19, t);
        } else {
            // Position 5 again: one more ×19 into position 0.
            top = madd_hi(top, r19, high[m]);
            top = madd_lo(top, r19, t);
        }
    }
    two[0] = madd_lo(two[0], r19, top);
    [
        add_twice(one[0], two[0]),
        add_twice(one[1], two[1]),
        add_twice(one[2], two[2]),
        add_twice(one[3], two[3]),
        add_twice(one[4], two[4]),
    ]
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul(x: &Fe, y: &Fe) -> Fe {
    let (x, y) = (&x.0, &y.0);
    let zero = _mm512_setzero_si512();
    // Product a_i·b_j = lo + 2^52·hi lands at position i+j (coefficient 1) and i+j+1
    // (coefficient 2).
    let mut one = [zero; 10];
    let mut two = [zero; 10];
    for i in 0..5 {
        for j in 0..5 {
            one[i + j] = madd_lo(one[i + j], x[i], y[j]);
            two[i + j + 1] = madd_hi(two[i + j + 1], x[i], y[j]);
        }
    }
    let high = [
        add_twice(one[5], two[5]),
        add_twice(one[6], two[6]),
        add_twice(one[7], two[7]),
        add_twice(one[8], two[8]),
        add_twice(one[9], two[9]),
    ];
    reduce(fold(
        [one[0], one[1], one[2], one[3], one[4]],
        [two[0], two[1], two[2], two[3], two[4]],
        high,
    ))
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn square(x: &Fe) -> Fe {
    let x = &x.0;
    let zero = _mm512_setzero_si512();
    // Diagonal a_i²: lo at 2i (coefficient 1), hi at 2i+1 (coefficient 2).
    // Cross 2·a_i·a_j (i<j): lo at i+j (coefficient 2), hi at i+j+1 (coefficient 4).
    let mut one = [zero; 10];
    let mut two = [zero; 10];
    let mut four = [zero; 10];
    for i in 0..5 {
        one[2 * i] = madd_lo(one[2 * i], x[i], x[i]);
        two[2 * i + 1] = madd_hi(two[2 * i + 1], x[i], x[i]);
        for j in i + 1..5 {
            two[i + j] = madd_lo(two[i + j], x[i], x[j]);
            four[i + j + 1] = madd_hi(four[i + j + 1], x[i], x[j]);
        }
    }
    let mut two_all = [zero; 10];
    for k in 0..10 {
        two_all[k] = add_twice(two[k], four[k]);
    }
    let high = [
        add_twice(one[5], two_all[5]),
        add_twice(one[6], two_all[6]),
        add_twice(one[7], two_all[7]),
        add_twice(one[8], two_all[8]),
        add_twice(one[9], two_all[9]),
    ];
    reduce(fold(
        [one[0], one[1], one[2], one[3], one[4]],
        [two_all[0], two_all[1], two_all[2], two_all[3], two_all[4]],
        high,
    ))
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn add_fe(a: &Fe, b: &Fe) -> Fe {
    reduce([
        add(a.0[0], b.0[0]),
        add(a.0[1], b.0[1]),
        add(a.0[2], b.0[2]),
        add(a.0[3], b.0[3]),
        add(a.0[4], b.0[4]),
    ])
}

/// 4p in radix 2^51: every limb is at least 2^52, so `a + 4p - b` never goes negative.
const FOUR_P: [u64; 5] = [
    4 * ((1 << 51) - 19),
    4 * MASK51,
    4 * MASK51,
    4 * MASK51,
    4 * MASK51,
];

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn sub_fe(a: &Fe, b: &Fe) -> Fe {
    let mut z = [_mm512_setzero_si512(); 5];
    for i in 0..5 {
        z[i] = _mm512_sub_epi64(add(a.0[i], splat(FOUR_P[i])), b.0[i]);
    }
    reduce(z)
}

/// `a·c` for a small constant `c < 2^20`.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn mul_small(a: &Fe, c: u64) -> Wide {
    let c = splat(c);
    let zero = _mm512_setzero_si512();
    let mut one = [zero; 5];
    let mut two = [zero; 6];
    for i in 0..5 {
        one[i] = madd_lo(one[i], a.0[i], c);
        two[i + 1] = madd_hi(two[i + 1], a.0[i], c);
    }
    // Position 5 (below 2^21) is 19 times position 0.
    two[0] = madd_lo(two[0], two[5], splat(19));
    [
        add_twice(one[0], two[0]),
        add_twice(one[1], two[1]),
        add_twice(one[2], two[2]),
        add_twice(one[3], two[3]),
        add_twice(one[4], two[4]),
    ]
}

/// Swaps `a` and `b` where `mask` is all ones, keeps them where it is zero.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn cswap(a: &mut Fe, b: &mut Fe, mask: __m512i) {
    for i in 0..5 {
        let t = _mm512_and_si512(_mm512_xor_si512(a.0[i], b.0[i]), mask);
        a.0[i] = _mm512_xor_si512(a.0[i], t);
        b.0[i] = _mm512_xor_si512(b.0[i], t);
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn square_n(x: &Fe, n: u32) -> Fe {
    let mut y = *x;
    for _ in 0..n {
        y = square(&y);
    }
    y
}

/// `z^(p-2)`, the inverse (0 for 0), by the usual addition chain.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn invert(z: &Fe) -> Fe {
    let t0 = square(z); // 2
    let t1 = square_n(&t0, 2); // 8
    let t2 = mul(z, &t1); // 9
    let t3 = mul(&t0, &t2); // 11
    let t4 = square(&t3); // 22
    let t5 = mul(&t2, &t4); // 2^5 - 1
    let t6 = square_n(&t5, 5);
    let t7 = mul(&t6, &t5); // 2^10 - 1
    let t8 = square_n(&t7, 10);
    let t9 = mul(&t8, &t7); // 2^20 - 1
    let t10 = square_n(&t9, 20);
    let t11 = mul(&t10, &t9); // 2^40 - 1
    let t12 = square_n(&t11, 10);
    let t13 = mul(&t12, &t7); // 2^50 - 1
    let t14 = square_n(&t13, 50);
    let t15 = mul(&t14, &t13); // 2^100 - 1
    let t16 = square_n(&t15, 100);
    let t17 = mul(&t16, &t15); // 2^200 - 1
    let t18 = square_n(&t17, 50);
    let t19 = mul(&t18, &t13); // 2^250 - 1
    let t20 = square_n(&t19, 5); // 2^255 - 32
    mul(&t20, &t3) // 2^255 - 21 = p - 2
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn lanes(v: __m512i) -> [u64; 8] {
    let lo = _mm512_castsi512_si256(v);
    let hi = _mm512_extracti64x4_epi64::<1>(v);
    [
        _mm256_extract_epi64::<0>(lo) as u64,
        _mm256_extract_epi64::<1>(lo) as u64,
        _mm256_extract_epi64::<2>(lo) as u64,
        _mm256_extract_epi64::<3>(lo) as u64,
        _mm256_extract_epi64::<0>(hi) as u64,
        _mm256_extract_epi64::<1>(hi) as u64,
        _mm256_extract_epi64::<2>(hi) as u64,
        _mm256_extract_epi64::<3>(hi) as u64,
    ]
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn load(us: &[[u8; 32]; 8]) -> Fe {
    let l: [[u64; 5]; 8] = core::array::from_fn(|k| bytes_to_limbs(&us[k]));
    let limb = |i: usize| {
        _mm512_set_epi64(
            l[7][i] as i64,
            l[6][i] as i64,
            l[5][i] as i64,
            l[4][i] as i64,
            l[3][i] as i64,
            l[2][i] as i64,
            l[1][i] as i64,
            l[0][i] as i64,
        )
    };
    Fe([limb(0), limb(1), limb(2), limb(3), limb(4)])
}

#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn store(x: &Fe) -> [[u8; 32]; 8] {
    let l = [
        lanes(x.0[0]),
        lanes(x.0[1]),
        lanes(x.0[2]),
        lanes(x.0[3]),
        lanes(x.0[4]),
    ];
    core::array::from_fn(|k| limbs_to_bytes([l[0][k], l[1][k], l[2][k], l[3][k], l[4][k]]))
}

/// The Montgomery ladder of RFC 7748 §5 for eight u-coordinates: the projective result
/// `(x2 : z2)` before the final inversion.
#[target_feature(enable = "avx512f,avx512ifma")]
fn ladder_x8(clamped: &[u8; 32], us: &[[u8; 32]; 8]) -> (Fe, Fe) {
    let zero = _mm512_setzero_si512();
    let x1 = load(us);
    let mut x2 = Fe([splat(1), zero, zero, zero, zero]);
    let mut z2 = Fe([zero; 5]);
    let mut x3 = x1;
    let mut z3 = Fe([splat(1), zero, zero, zero, zero]);
    let mut swap = 0u64;
    for t in (0..255).rev() {
        let bit = u64::from((clamped[t >> 3] >> (t & 7)) & 1);
        swap ^= bit;
        let mask = splat(swap.wrapping_neg());
        cswap(&mut x2, &mut x3, mask);
        cswap(&mut z2, &mut z3, mask);
        swap = bit;
        let a = add_fe(&x2, &z2);
        let aa = square(&a);
        let b = sub_fe(&x2, &z2);
        let bb = square(&b);
        let e = sub_fe(&aa, &bb);
        let c = add_fe(&x3, &z3);
        let d = sub_fe(&x3, &z3);
        let da = mul(&d, &a);
        let cb = mul(&c, &b);
        x3 = square(&add_fe(&da, &cb));
        z3 = mul(&x1, &square(&sub_fe(&da, &cb)));
        x2 = mul(&aa, &bb);
        let e24 = mul_small(&e, 121_665);
        let t = reduce([
            add(aa.0[0], e24[0]),
            add(aa.0[1], e24[1]),
            add(aa.0[2], e24[2]),
            add(aa.0[3], e24[3]),
            add(aa.0[4], e24[4]),
        ]);
        z2 = mul(&e, &t);
    }
    let mask = splat(swap.wrapping_neg());
    cswap(&mut x2, &mut x3, mask);
    cswap(&mut z2, &mut z3, mask);
    (x2, z2)
}

/// Where `z ≡ 0` (a low-order input, or a padding lane) the result is 0 = 0·0^(p-2). To keep
/// such a lane from zeroing the shared product of the batched inversion, it becomes
/// `(0 : 1)`, which still yields 0.
#[inline]
#[target_feature(enable = "avx512f,avx512ifma")]
fn neutralise_zero_lanes(x: &Fe, z: &Fe) -> (Fe, Fe) {
    let encoded = store(z);
    let mut zero_lanes: __mmask8 = 0;
    for (k, e) in encoded.iter().enumerate() {
        // z depends on the key: OR every byte instead of an early-exit comparison.
        let any = e.iter().fold(0u8, |acc, b| acc | b);
        zero_lanes |= u8::from(any == 0) << k;
    }
    let zero = _mm512_setzero_si512();
    let one = splat(1);
    let mut x2 = *x;
    let mut z2 = *z;
    for i in 0..5 {
        x2.0[i] = _mm512_mask_blend_epi64(zero_lanes, x.0[i], zero);
        z2.0[i] = _mm512_mask_blend_epi64(zero_lanes, z.0[i], if i == 0 { one } else { zero });
    }
    (x2, z2)
}

/// Groups of eight whose final inversions share one field inversion (Montgomery's trick).
const GROUPS: usize = 32;

/// X25519 of one clamped scalar with every u-coordinate of `inputs`, into `out` (same length).
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) fn x25519_batch(clamped: &[u8; 32], inputs: &[[u8; 32]], out: &mut [[u8; 32]]) {
    let mut xs: Vec<Fe> = Vec::with_capacity(GROUPS);
    let mut zs: Vec<Fe> = Vec::with_capacity(GROUPS);
    let mut prefix: Vec<Fe> = Vec::with_capacity(GROUPS);
    for (inp, outp) in inputs.chunks(8 * GROUPS).zip(out.chunks_mut(8 * GROUPS)) {
        xs.clear();
        zs.clear();
        prefix.clear();
        for group in inp.chunks(8) {
            let mut buf = [[0u8; 32]; 8];
            buf[..group.len()].copy_from_slice(group);
            let (x, z) = ladder_x8(clamped, &buf);
            let (x, z) = neutralise_zero_lanes(&x, &z);
            xs.push(x);
            zs.push(z);
        }
        // prefix[i] = z_0 · … · z_i
        let mut acc = zs[0];
        prefix.push(acc);
        for z in &zs[1..] {
            acc = mul(&acc, z);
            prefix.push(acc);
        }
        // inv = (z_0 · … · z_i)^-1, walking i down.
        let mut inv = invert(&acc);
        for i in (0..zs.len()).rev() {
            let z_inv = if i > 0 {
                let z_inv = mul(&inv, &prefix[i - 1]);
                inv = mul(&inv, &zs[i]);
                z_inv
            } else {
                inv
            };
            let res = store(&mul(&xs[i], &z_inv));
            let dst = &mut outp[8 * i..];
            let n = dst.len().min(8);
            dst[..n].copy_from_slice(&res[..n]);
        }
    }
}
