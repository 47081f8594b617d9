//! Additively homomorphic encryption for the intersection-sum mode: exponential ("lifted")
//! ElGamal on ristretto255.
//!
//! Why not Paillier (as Google's Private Join and Compute uses)? It needs a big-integer crate
//! and 2048-bit exponentiations (milliseconds each), whereas lifted ElGamal reuses the group we
//! already depend on and costs a few fixed-base multiplications. Its drawback is that
//! decryption yields `m·G` and needs a discrete logarithm, so plaintexts must stay small: a
//! `u32` value is split into two 16-bit limbs, each encrypted separately, and a limb sum over
//! at most 2^24 items is below 2^40, which baby-step giant-step recovers with a 2^20 table.

use crate::wire::{CiphertextBytes, VALUE_LIMBS};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use std::collections::HashMap;

/// Bits per limb.
pub const LIMB_BITS: u32 = 16;

/// An ElGamal ciphertext `(r·G, m·G + r·K)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ciphertext {
    c1: RistrettoPoint,
    c2: RistrettoPoint,
}

impl Ciphertext {
    /// The encryption of zero with zero randomness (the sum's neutral element).
    pub fn zero() -> Self {
        Self {
            c1: RistrettoPoint::identity(),
            c2: RistrettoPoint::identity(),
        }
    }

    /// Homomorphic addition.
    pub fn add(&self, other: &Self) -> Self {
        Self {
            c1: self.c1 + other.c1,
            c2: self.c2 + other.c2,
        }
    }

    /// Compressed encoding.
    pub fn to_bytes(&self) -> CiphertextBytes {
        [self.c1.compress().to_bytes(), self.c2.compress().to_bytes()]
    }

    /// Decodes, refusing invalid points.
    pub fn from_bytes(bytes: &CiphertextBytes) -> Option<Self> {
        let c1 = CompressedRistretto(bytes[0]).decompress()?;
        let c2 = CompressedRistretto(bytes[1]).decompress()?;
        Some(Self { c1, c2 })
    }
}

/// A public encryption key with its precomputed table.
pub struct PublicKey {
    point: RistrettoPoint,
    table: RistrettoBasepointTable,
}

impl PublicKey {
    /// Wraps a public point.
    pub fn new(point: RistrettoPoint) -> Self {
        Self {
            table: RistrettoBasepointTable::create(&point),
            point,
        }
    }

    /// Decodes a compressed public key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Self> {
        CompressedRistretto(*bytes).decompress().map(Self::new)
    }

    /// Encrypts `m` with randomness `r`.
    pub fn encrypt(&self, m: u64, r: &Scalar) -> Ciphertext {
        let c1 = RISTRETTO_BASEPOINT_TABLE * r;
        let c2 = RISTRETTO_BASEPOINT_TABLE * &Scalar::from(m) + &self.table * r;
        Ciphertext { c1, c2 }
    }

    /// Encrypts the limbs of a `u32`, each with its own randomness.
    pub fn encrypt_value(
        &self,
        value: u32,
        r: &[Scalar; VALUE_LIMBS],
    ) -> [Ciphertext; VALUE_LIMBS] {
        std::array::from_fn(|i| {
            let limb = (u64::from(value) >> (LIMB_BITS * i as u32)) & ((1 << LIMB_BITS) - 1);
            self.encrypt(limb, &r[i])
        })
    }

    /// Re-randomises a ciphertext (adds an encryption of zero), so the holder of the secret key
    /// cannot tell which ciphertexts were summed.
    pub fn rerandomize(&self, c: &Ciphertext, r: &Scalar) -> Ciphertext {
        c.add(&self.encrypt(0, r))
    }

    /// Compressed encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.point.compress().to_bytes()
    }
}

/// A secret decryption key.
pub struct SecretKey {
    scalar: Scalar,
}

impl SecretKey {
    /// Key from a scalar.
    pub fn new(scalar: Scalar) -> Self {
        Self { scalar }
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey::new(RISTRETTO_BASEPOINT_TABLE * &self.scalar)
    }

    /// Decrypts to `m` if `m ≤ bound`, by baby-step giant-step.
    pub fn decrypt_bounded(&self, c: &Ciphertext, bound: u64) -> Option<u64> {
        let target = c.c2 - c.c1 * self.scalar;
        discrete_log_bounded(&target, bound)
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.scalar);
    }
}

/// Finds `m ∈ [0, bound]` with `m·G = target`, in O(√bound) group operations.
pub fn discrete_log_bounded(target: &RistrettoPoint, bound: u64) -> Option<u64> {
    let steps = (bound as f64).sqrt() as u64 + 1;
    let g = RISTRETTO_BASEPOINT_TABLE.basepoint();
    let half = Scalar::from(2u8).invert();
    let g_half = g * half;
    // Baby steps j·G for j < steps, compressed in batches (points are kept halved so
    // double_and_compress_batch yields the encoding of j·G).
    let mut baby: HashMap<[u8; 32], u64> = HashMap::with_capacity(steps as usize);
    let mut acc = RistrettoPoint::identity();
    let mut j = 0u64;
    while j < steps {
        let n = (steps - j).min(1024);
        let mut halves = Vec::with_capacity(n as usize);
        for _ in 0..n {
            halves.push(acc);
            acc += g_half;
        }
        for (k, enc) in RistrettoPoint::double_and_compress_batch(&halves)
            .into_iter()
            .enumerate()
        {
            baby.entry(enc.to_bytes()).or_insert(j + k as u64);
        }
        j += n;
    }
    // Giant steps: target − i·steps·G.
    let giant_half = g_half * Scalar::from(steps);
    let mut acc = target * half;
    let mut i = 0u64;
    while i <= steps {
        let n = (steps + 1 - i).min(1024);
        let mut halves = Vec::with_capacity(n as usize);
        for _ in 0..n {
            halves.push(acc);
            acc -= giant_half;
        }
        for (k, enc) in RistrettoPoint::double_and_compress_batch(&halves)
            .into_iter()
            .enumerate()
        {
            if let Some(&j) = baby.get(enc.as_bytes()) {
                let m = (i + k as u64).checked_mul(steps)?.checked_add(j)?;
                return (m <= bound).then_some(m);
            }
        }
        i += n;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homomorphic_sum_decrypts() {
        let sk = SecretKey::new(Scalar::from(123_456_789u64));
        let pk = sk.public();
        let values = [7u32, 65_535, 65_536, u32::MAX, 0, 1_000_000];
        let mut sum = [Ciphertext::zero(); VALUE_LIMBS];
        for (i, v) in values.iter().enumerate() {
            let r = [Scalar::from(i as u64 + 11), Scalar::from(i as u64 + 97)];
            let c = pk.encrypt_value(*v, &r);
            for k in 0..VALUE_LIMBS {
                sum[k] = sum[k].add(&c[k]);
            }
        }
        let bound = values.len() as u64 * 65_535;
        let limbs: Vec<u64> = sum
            .iter()
            .map(|c| sk.decrypt_bounded(c, bound).unwrap())
            .collect();
        let total = limbs[0] + (limbs[1] << 16);
        assert_eq!(total, values.iter().map(|&v| u64::from(v)).sum::<u64>());
    }

    #[test]
    fn out_of_bound_plaintext_is_not_recovered() {
        let sk = SecretKey::new(Scalar::from(5u64));
        let c = sk.public().encrypt(5000, &Scalar::from(3u64));
        assert_eq!(sk.decrypt_bounded(&c, 4999), None);
        assert_eq!(sk.decrypt_bounded(&c, 5000), Some(5000));
    }
}
