//! The ECDH-PSI group: X25519 (x-only Montgomery ladder on Curve25519, RFC 7748), as SecretFlow
//! `spu` and the PSI interop suite use it.
//!
//! * **Hash to group** is BLAKE3 keyed per job, 32 bytes with bit 255 cleared, read as a
//!   u-coordinate. No square root: every u is a point of Curve25519 or of its quadratic twist,
//!   and both are safe for Diffie-Hellman (Curve25519 is twist-secure). Clamped scalars are
//!   multiples of 8, so masked values lie in the prime-order subgroups, and the x-only ladder
//!   commutes: `X(a, X(b, u)) = X(b, X(a, u))`. The argument is in `docs/psi-security.md`.
//! * **Masking** runs eight ladders at once with AVX-512 IFMA when the CPU has it
//!   ([`backend`]), else curve25519-dalek's `MontgomeryPoint::mul_clamped`. Both compute the
//!   RFC 7748 function bit for bit; the tests compare them on random and edge inputs.
//! * **Received values are checked**: a u-coordinate must be canonical (below p, bit 255
//!   clear, which is all an honest peer ever sends) and its masked value non-zero (zero means
//!   a low-order input).
//!
//! Batches are split across threads (feature `parallel`) like the ristretto pipeline in
//! [`crate::group`], which the OPRF still uses (it needs scalar inversion, which clamping rules
//! out).

#[cfg(target_arch = "x86_64")]
mod ifma;

use crate::group::{InvalidPoint, TagHasher, map_chunks, try_map_chunks};
use curve25519_dalek::montgomery::MontgomeryPoint;
use zeroize::Zeroize;

pub(crate) const MASK51: u64 = (1 << 51) - 1;

/// Which ladder [`MaskKey::mask`] uses on this CPU.
pub fn backend() -> &'static str {
    if dispatch::ifma_available() {
        "avx512-ifma-x8"
    } else {
        "portable"
    }
}

/// A clamped X25519 scalar.
#[derive(Clone)]
pub struct MaskKey {
    clamped: [u8; 32],
}

impl MaskKey {
    /// A key from 32 uniformly random bytes (clamped as in RFC 7748).
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        let mut clamped = bytes;
        bytes.zeroize();
        clamped[0] &= 248;
        clamped[31] &= 127;
        clamped[31] |= 64;
        Self { clamped }
    }

    /// X25519 of this key with every u-coordinate (one thread).
    pub fn mask(&self, inputs: &[[u8; 32]]) -> Vec<[u8; 32]> {
        let mut out = vec![[0u8; 32]; inputs.len()];
        if !dispatch::run_ifma(&self.clamped, inputs, &mut out) {
            ladder_portable(&self.clamped, inputs, &mut out);
        }
        out
    }

    /// The same with curve25519-dalek's ladder, whatever the CPU (tests and benchmarks).
    pub fn mask_portable(&self, inputs: &[[u8; 32]]) -> Vec<[u8; 32]> {
        let mut out = vec![[0u8; 32]; inputs.len()];
        ladder_portable(&self.clamped, inputs, &mut out);
        out
    }
}

impl Drop for MaskKey {
    fn drop(&mut self) {
        self.clamped.zeroize();
    }
}

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("x25519::MaskKey(..)")
    }
}

fn ladder_portable(clamped: &[u8; 32], inputs: &[[u8; 32]], out: &mut [[u8; 32]]) {
    for (u, o) in inputs.iter().zip(out.iter_mut()) {
        *o = MontgomeryPoint(*u).mul_clamped(*clamped).to_bytes();
    }
}

/// Hashes items to u-coordinates under a per-job key.
#[derive(Clone, Debug)]
pub struct PointHasher {
    key: [u8; 32],
}

impl PointHasher {
    /// A hasher whose outputs are independent for each `context` (a job's session id).
    pub fn new(context: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key("citybrain-psi v2 hash-to-x25519");
        h.update(context);
        Self {
            key: *h.finalize().as_bytes(),
        }
    }

    /// The u-coordinate of one item (uniform below 2^255, statistically 2^-250-close to
    /// uniform in the field).
    pub fn hash(&self, item: &[u8]) -> [u8; 32] {
        let mut u = *blake3::keyed_hash(&self.key, item).as_bytes();
        u[31] &= 0x7f;
        u
    }
}

/// True when `u` is the canonical encoding of a field element (below p = 2^255 - 19).
pub fn is_canonical(u: &[u8; 32]) -> bool {
    if u[31] & 0x80 != 0 {
        return false;
    }
    // u >= p exactly when u is one of p..2^255-1: bytes 1..31 all 0xff (top 0x7f) and u[0] >= 0xed.
    let top_ones = u[31] == 0x7f && u[1..31].iter().all(|&b| b == 0xff);
    !(top_ones && u[0] >= 0xed)
}

/// First round: `X(k, H(item))` for each item.
pub fn hash_and_mask<I: AsRef<[u8]> + Sync>(
    hasher: &PointHasher,
    key: &MaskKey,
    items: &[I],
) -> Vec<[u8; 32]> {
    map_chunks(items, |chunk| {
        let us: Vec<[u8; 32]> = chunk.iter().map(|x| hasher.hash(x.as_ref())).collect();
        key.mask(&us)
    })
}

fn check_and_mask(key: &MaskKey, chunk: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, InvalidPoint> {
    if let Some(index) = chunk.iter().position(|u| !is_canonical(u)) {
        return Err(InvalidPoint { index });
    }
    let out = key.mask(chunk);
    if let Some(index) = out.iter().position(|v| v == &[0u8; 32]) {
        return Err(InvalidPoint { index });
    }
    Ok(out)
}

/// Second round: `X(k, u)` for each received u-coordinate, refusing non-canonical encodings
/// and low-order inputs.
pub fn remask(key: &MaskKey, encoded: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, InvalidPoint> {
    try_map_chunks(encoded, |chunk| check_and_mask(key, chunk))
}

/// Second round with the comparison tag computed in the same pass.
pub fn remask_to_tags(
    key: &MaskKey,
    tags: &TagHasher,
    encoded: &[[u8; 32]],
) -> Result<Vec<u128>, InvalidPoint> {
    try_map_chunks(encoded, |chunk| {
        Ok(check_and_mask(key, chunk)?
            .iter()
            .map(|p| tags.tag(p))
            .collect())
    })
}

/// Little-endian bytes (bit 255 ignored) to five 51-bit limbs.
pub(crate) fn bytes_to_limbs(b: &[u8; 32]) -> [u64; 5] {
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[8 * i..8 * i + 8]);
        u64::from_le_bytes(x)
    };
    let (w0, w1, w2, w3) = (w(0), w(1), w(2), w(3));
    [
        w0 & MASK51,
        ((w0 >> 51) | (w1 << 13)) & MASK51,
        ((w1 >> 38) | (w2 << 26)) & MASK51,
        ((w2 >> 25) | (w3 << 39)) & MASK51,
        (w3 >> 12) & MASK51,
    ]
}

/// Five limbs (each below 2^62) to the canonical little-endian encoding mod p.
pub(crate) fn limbs_to_bytes(mut l: [u64; 5]) -> [u8; 32] {
    let carry = |l: &mut [u64; 5]| {
        for i in 0..4 {
            l[i + 1] += l[i] >> 51;
            l[i] &= MASK51;
        }
        l[0] += 19 * (l[4] >> 51);
        l[4] &= MASK51;
    };
    carry(&mut l);
    carry(&mut l);
    // Now l < 2^255 + 19 < 2p; q = 1 exactly when l >= p.
    let mut q = (l[0] + 19) >> 51;
    for limb in &l[1..] {
        q = (limb + q) >> 51;
    }
    l[0] += 19 * q;
    for i in 0..4 {
        l[i + 1] += l[i] >> 51;
        l[i] &= MASK51;
    }
    l[4] &= MASK51;
    let w0 = l[0] | (l[1] << 51);
    let w1 = (l[1] >> 13) | (l[2] << 38);
    let w2 = (l[2] >> 26) | (l[3] << 25);
    let w3 = (l[3] >> 39) | (l[4] << 12);
    let mut out = [0u8; 32];
    for (i, w) in [w0, w1, w2, w3].into_iter().enumerate() {
        out[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Run-time selection of the IFMA ladder: the one place in this crate that needs `unsafe`.
#[cfg(target_arch = "x86_64")]
mod dispatch {
    pub(super) fn ifma_available() -> bool {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512ifma")
    }

    /// Runs the 8-lane IFMA ladder if this CPU has it; false (and `out` untouched) otherwise.
    pub(super) fn run_ifma(clamped: &[u8; 32], inputs: &[[u8; 32]], out: &mut [[u8; 32]]) -> bool {
        if !ifma_available() {
            return false;
        }
        // SAFETY: `x25519_batch` is a safe function whose only requirement is that the CPU
        // supports the target features it is compiled with (`avx512f`, `avx512ifma`), which
        // was checked just above by CPUID (cached by std). It takes no raw pointers.
        #[allow(unsafe_code)]
        unsafe {
            super::ifma::x25519_batch(clamped, inputs, out)
        };
        true
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod dispatch {
    pub(super) fn ifma_available() -> bool {
        false
    }

    pub(super) fn run_ifma(_: &[u8; 32], _: &[[u8; 32]], _: &mut [[u8; 32]]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests;
