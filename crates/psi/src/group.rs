//! Group operations on ristretto255, arranged for throughput.
//!
//! The cost of ECDH-PSI is almost entirely scalar multiplications, hash-to-group and point
//! (de)compression, so this module is where the speed is won:
//!
//! * **Hash-to-group** is BLAKE3 in XOF mode (keyed per job, so different jobs hash into
//!   unrelated points) feeding 64 uniform bytes to `RistrettoPoint::from_uniform_bytes`, the
//!   two-Elligator random-oracle map of RFC 9496 §4.3.4. A single Elligator map would be
//!   cheaper but is not indistinguishable from a random oracle, which the DH-PSI proof needs.
//! * **Compression is batched.** A [`MaskKey`] stores `k/2` next to `k`; multiplying by `k/2`
//!   and then calling `double_and_compress_batch` yields the encoding of `k·P` while sharing a
//!   single field inversion across the batch (Montgomery's trick) instead of one inverse
//!   square root per point.
//! * **Batches are split across threads** (feature `parallel`), each chunk running the whole
//!   hash → multiply → compress pipeline so no intermediate vectors cross threads.
//!
//! Multiplication is curve25519-dalek's constant-time variable-base ladder; the crate picks its
//! AVX-512 IFMA, AVX2 or serial backend at run time (see `docs/bench-psi.md` for how to build
//! the IFMA backend in).

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use zeroize::Zeroize;

/// Items per parallel work unit. Large enough to amortise the batch inversion, small enough to
/// balance two cores.
const CHUNK: usize = 512;

/// A secret exponent together with its half, so products can be compressed in batches.
#[derive(Clone)]
pub struct MaskKey {
    half: Scalar,
}

impl MaskKey {
    /// Derives a key from 64 uniformly random bytes (reduced mod ℓ, bias below 2^-250).
    pub fn from_wide_bytes(mut bytes: [u8; 64]) -> Self {
        let key = Scalar::from_bytes_mod_order_wide(&bytes);
        bytes.zeroize();
        Self::from_scalar(key)
    }

    /// Wraps an existing scalar.
    pub fn from_scalar(key: Scalar) -> Self {
        let half = key * Scalar::from(2u8).invert();
        Self { half }
    }

    /// `k·P` for every point, compressed.
    pub fn mul_compress(&self, points: &[RistrettoPoint]) -> Vec<[u8; 32]> {
        let halves: Vec<RistrettoPoint> = points.iter().map(|p| p * self.half).collect();
        RistrettoPoint::double_and_compress_batch(&halves)
            .iter()
            .map(|c| c.to_bytes())
            .collect()
    }
}

impl Drop for MaskKey {
    fn drop(&mut self) {
        self.half.zeroize();
    }
}

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskKey(..)")
    }
}

/// Hashes items into ristretto255 under a per-job key.
#[derive(Clone, Debug)]
pub struct ItemHasher {
    key: [u8; 32],
}

impl ItemHasher {
    /// A hasher whose outputs are independent for each `context` (a job's session id).
    pub fn new(context: &[u8]) -> Self {
        let mut h = blake3::Hasher::new_derive_key("citybrain-psi v1 hash-to-group");
        h.update(context);
        Self {
            key: *h.finalize().as_bytes(),
        }
    }

    /// The random-oracle point of one item.
    pub fn hash(&self, item: &[u8]) -> RistrettoPoint {
        let mut wide = [0u8; 64];
        blake3::Hasher::new_keyed(&self.key)
            .update(item)
            .finalize_xof()
            .fill(&mut wide);
        RistrettoPoint::from_uniform_bytes(&wide)
    }
}

/// Why a received point was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidPoint {
    /// Position of the point in its batch.
    pub index: usize,
}

/// Runs `f` over chunks of `items` (in parallel with feature `parallel`) and concatenates the
/// results in order.
pub(crate) fn map_chunks<T, U, F>(items: &[T], f: F) -> Vec<U>
where
    T: Sync,
    U: Send,
    F: Fn(&[T]) -> Vec<U> + Sync + Send,
{
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        if items.len() > CHUNK {
            let parts: Vec<Vec<U>> = items.par_chunks(CHUNK).map(&f).collect();
            return parts.into_iter().flatten().collect();
        }
    }
    items.chunks(CHUNK.max(1)).flat_map(f).collect()
}

/// Fallible variant of [`map_chunks`]; each chunk reports an error with its in-chunk index.
pub(crate) fn try_map_chunks<T, U, F>(items: &[T], f: F) -> Result<Vec<U>, InvalidPoint>
where
    T: Sync,
    U: Send,
    F: Fn(&[T]) -> Result<Vec<U>, InvalidPoint> + Sync + Send,
{
    let with_offset = |offset: usize, chunk: &[T]| {
        f(chunk).map_err(|e| InvalidPoint {
            index: offset + e.index,
        })
    };
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        if items.len() > CHUNK {
            let parts: Result<Vec<Vec<U>>, InvalidPoint> = items
                .par_chunks(CHUNK)
                .enumerate()
                .map(|(i, c)| with_offset(i * CHUNK, c))
                .collect();
            return Ok(parts?.into_iter().flatten().collect());
        }
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, chunk) in items.chunks(CHUNK).enumerate() {
        out.extend(with_offset(i * CHUNK, chunk)?);
    }
    Ok(out)
}

/// First round: `k·H(item)` for each item, compressed.
pub fn hash_and_mask<I: AsRef<[u8]> + Sync>(
    hasher: &ItemHasher,
    key: &MaskKey,
    items: &[I],
) -> Vec<[u8; 32]> {
    map_chunks(items, |chunk| {
        let points: Vec<RistrettoPoint> = chunk
            .iter()
            .map(|item| hasher.hash(item.as_ref()))
            .collect();
        key.mul_compress(&points)
    })
}

/// Decompresses a batch, refusing non-canonical or off-group encodings.
pub fn decompress_all(encoded: &[[u8; 32]]) -> Result<Vec<RistrettoPoint>, InvalidPoint> {
    try_map_chunks(encoded, |chunk| {
        chunk
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                CompressedRistretto(*bytes)
                    .decompress()
                    .ok_or(InvalidPoint { index })
            })
            .collect()
    })
}

/// Second round: `k·P` for each received encoded point, compressed.
pub fn remask(key: &MaskKey, encoded: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, InvalidPoint> {
    try_map_chunks(encoded, |chunk| {
        let mut points = Vec::with_capacity(chunk.len());
        for (index, bytes) in chunk.iter().enumerate() {
            points.push(
                CompressedRistretto(*bytes)
                    .decompress()
                    .ok_or(InvalidPoint { index })?,
            );
        }
        Ok(key.mul_compress(&points))
    })
}

/// Second round with the comparison tag computed in the same pass (see [`TagHasher`]).
pub fn remask_to_tags(
    key: &MaskKey,
    tags: &TagHasher,
    encoded: &[[u8; 32]],
) -> Result<Vec<u128>, InvalidPoint> {
    try_map_chunks(encoded, |chunk| {
        let mut points = Vec::with_capacity(chunk.len());
        for (index, bytes) in chunk.iter().enumerate() {
            points.push(
                CompressedRistretto(*bytes)
                    .decompress()
                    .ok_or(InvalidPoint { index })?,
            );
        }
        Ok(key
            .mul_compress(&points)
            .iter()
            .map(|p| tags.tag(p))
            .collect())
    })
}

/// Turns a doubly-masked point into a short comparison tag.
///
/// Comparing full 32-byte encodings wastes bandwidth: with `n_a·n_b` candidate pairs a tag of
/// `log2(n_a·n_b) + 40` bits keeps the chance of any false match below 2^-40. Hashing (rather
/// than slicing the encoding, whose low bit is always zero) keeps all tag bits uniform.
#[derive(Clone, Debug)]
pub struct TagHasher {
    key: [u8; 32],
    len: usize,
}

impl TagHasher {
    /// Longest tag: 12 bytes, so a tag and a 32-bit position pack into one `u128`.
    pub const MAX_LEN: usize = 12;
    /// Shortest tag.
    pub const MIN_LEN: usize = 8;

    /// Tag length in bytes for sets of the given sizes (false-match probability ≤ 2^-40).
    pub fn len_for(size_a: u64, size_b: u64) -> usize {
        let bits = |n: u64| 64 - n.max(1).leading_zeros() as usize;
        let needed_bits = bits(size_a) + bits(size_b) + 40;
        needed_bits.div_ceil(8).clamp(Self::MIN_LEN, Self::MAX_LEN)
    }

    /// A tag hasher for one job.
    pub fn new(context: &[u8], len: usize) -> Self {
        let mut h = blake3::Hasher::new_derive_key("citybrain-psi v1 comparison tag");
        h.update(context);
        Self {
            key: *h.finalize().as_bytes(),
            len: len.clamp(Self::MIN_LEN, Self::MAX_LEN),
        }
    }

    /// Tag length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false; a tag has at least [`Self::MIN_LEN`] bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The tag of an encoded point, as the top `8·len` bits of a `u128` whose low 32 bits are
    /// zero (room for a position).
    pub fn tag(&self, encoded: &[u8; 32]) -> u128 {
        let digest = blake3::keyed_hash(&self.key, encoded);
        Self::pack(&digest.as_bytes()[..self.len])
    }

    /// Packs tag bytes into the top bits of a `u128`.
    pub fn pack(bytes: &[u8]) -> u128 {
        let mut wide = [0u8; 16];
        let n = bytes.len().min(Self::MAX_LEN);
        wide[..n].copy_from_slice(&bytes[..n]);
        u128::from_be_bytes(wide)
    }

    /// The wire bytes of a packed tag.
    pub fn unpack(&self, tag: u128, out: &mut Vec<u8>) {
        out.extend_from_slice(&tag.to_be_bytes()[..self.len]);
    }
}

/// Mask selecting the tag bits of a packed entry.
pub const TAG_MASK: u128 = !0xffff_ffffu128;

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> MaskKey {
        MaskKey::from_wide_bytes([seed; 64])
    }

    #[test]
    fn masking_commutes() {
        let hasher = ItemHasher::new(b"job");
        let items: Vec<Vec<u8>> = (0..1500u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let (a, b) = (key(1), key(2));
        let ab = remask(&b, &hash_and_mask(&hasher, &a, &items)).unwrap();
        let ba = remask(&a, &hash_and_mask(&hasher, &b, &items)).unwrap();
        assert_eq!(ab, ba);
        let direct: Vec<[u8; 32]> = items
            .iter()
            .map(|x| {
                let s = Scalar::from_bytes_mod_order_wide(&[1; 64])
                    * Scalar::from_bytes_mod_order_wide(&[2; 64]);
                (hasher.hash(x) * s).compress().to_bytes()
            })
            .collect();
        assert_eq!(ab, direct);
    }

    #[test]
    fn different_jobs_hash_differently() {
        assert_ne!(
            ItemHasher::new(b"a").hash(b"x"),
            ItemHasher::new(b"b").hash(b"x")
        );
    }

    #[test]
    fn invalid_point_index_is_reported_across_chunks() {
        let good = hash_and_mask(&ItemHasher::new(b"j"), &key(3), &[b"x"; 1])[0];
        let mut encoded = vec![good; 1200];
        encoded[1100] = [0xff; 32];
        assert_eq!(remask(&key(4), &encoded), Err(InvalidPoint { index: 1100 }));
    }

    #[test]
    fn tag_length_grows_with_set_sizes() {
        assert_eq!(TagHasher::len_for(1, 1), 8);
        assert_eq!(TagHasher::len_for(1 << 20, 1 << 20), 11);
        assert_eq!(TagHasher::len_for(1 << 24, 1 << 24), 12);
    }
}
