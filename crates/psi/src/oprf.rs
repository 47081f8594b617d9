//! Unbalanced PSI / keyword lookup: a small set queried against a large one through an
//! oblivious PRF (2HashDH, the construction RFC 9497 standardises, here on ristretto255 with
//! BLAKE3 as both hashes).
//!
//! ```text
//!  F_k(y) = BLAKE3(ctx, y || enc(k·H(y)))[..16]
//!  server: publishes { F_k(y) : y ∈ Y } once (16 bytes per item, sorted), keeps k
//!  client: sends r_i·H(x_i) for fresh blinds r_i            (BlindedQuery)
//!  server: returns k·(r_i·H(x_i))                            (Evaluation)
//!  client: unblinds with r_i^-1, gets F_k(x_i), looks it up in the published set
//! ```
//!
//! The client learns which of its queries are in Y (and |Y|) and nothing about other items;
//! the server learns how many items were queried and nothing about them. The published set is
//! reusable across clients as long as `k` is kept; a server limits how many evaluations each
//! client may ask for, since every evaluation is one membership probe.
//!
//! `voprf` (the RFC 9497 crate) was considered: its current release is a pre-release pinned to
//! curve25519-dalek 4, which would put a second copy of the curve arithmetic (without the
//! AVX-512 backend) into the build, so the construction is written directly on dalek 5.

use crate::codec::{DecodeError, Reader, put_len_u32};
use crate::group::{ItemHasher, MaskKey, decompress_all};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use thiserror::Error;

/// Most items in one query.
pub const MAX_QUERY: u64 = 1 << 20;
const VERSION: u8 = 1;

/// Errors of the OPRF lookup.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OprfError {
    /// A message could not be decoded.
    #[error("malformed {kind} message: {source}")]
    Malformed {
        /// Message kind.
        kind: &'static str,
        /// What was wrong.
        source: DecodeError,
    },
    /// A point is not a valid ristretto255 encoding.
    #[error("invalid group element at position {0}")]
    InvalidPoint(usize),
    /// The evaluation does not answer our query.
    #[error("evaluation has {got} elements for a query of {expected}")]
    CountMismatch {
        /// Query size.
        expected: usize,
        /// Evaluation size.
        got: usize,
    },
    /// A message belongs to another session.
    #[error("message belongs to another session")]
    WrongSession,
    /// A query exceeds the size the server allows this client.
    #[error("query of {got} items exceeds the allowance of {max}")]
    QueryTooLarge {
        /// Items asked.
        got: u64,
        /// Allowance.
        max: u64,
    },
}

/// The published OPRF outputs of the large set, sorted for lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedSet {
    outputs: Vec<u128>,
}

impl PublishedSet {
    /// Builds from outputs in any order (duplicate items publish one output).
    pub fn new(mut outputs: Vec<u128>) -> Self {
        outputs.sort_unstable();
        outputs.dedup();
        Self { outputs }
    }

    /// Number of published outputs.
    pub fn len(&self) -> usize {
        self.outputs.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.outputs.is_empty()
    }

    /// Membership of one output.
    pub fn contains(&self, output: u128) -> bool {
        self.outputs.binary_search(&output).is_ok()
    }

    /// Encodes (16 bytes per output).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + self.outputs.len() * 16);
        out.push(VERSION);
        out.extend_from_slice(&(self.outputs.len() as u64).to_le_bytes());
        for o in &self.outputs {
            out.extend_from_slice(&o.to_le_bytes());
        }
        out
    }

    /// Decodes; outputs must be strictly ascending (as encoded).
    pub fn decode(bytes: &[u8]) -> Result<Self, OprfError> {
        let m = |source| OprfError::Malformed {
            kind: "published-set",
            source,
        };
        let mut r = Reader::new(bytes);
        if r.u8("version").map_err(m)? != VERSION {
            return Err(m(DecodeError::InvalidField {
                field: "version",
                reason: "unsupported",
            }));
        }
        let n = r.u64("count").map_err(m)?;
        if n.saturating_mul(16) != r.remaining() as u64 {
            return Err(m(DecodeError::InvalidField {
                field: "count",
                reason: "does not match the data",
            }));
        }
        let mut outputs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let o = u128::from_le_bytes(r.array("output").map_err(m)?);
            if outputs.last().is_some_and(|&last| last >= o) {
                return Err(m(DecodeError::InvalidField {
                    field: "output",
                    reason: "not strictly ascending",
                }));
            }
            outputs.push(o);
        }
        r.finish("published-set").map_err(m)?;
        Ok(Self { outputs })
    }
}

/// A batch of points tagged with a session (used for both the query and the evaluation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointBatch {
    /// Session.
    pub session_id: [u8; 16],
    /// Compressed points.
    pub points: Vec<[u8; 32]>,
}

impl PointBatch {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21 + self.points.len() * 32);
        out.push(VERSION);
        out.extend_from_slice(&self.session_id);
        put_len_u32(&mut out, self.points.len());
        for p in &self.points {
            out.extend_from_slice(p);
        }
        out
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, OprfError> {
        let m = |source| OprfError::Malformed {
            kind: "oprf-batch",
            source,
        };
        let mut r = Reader::new(bytes);
        if r.u8("version").map_err(m)? != VERSION {
            return Err(m(DecodeError::InvalidField {
                field: "version",
                reason: "unsupported",
            }));
        }
        let session_id = r.array("session").map_err(m)?;
        let n = r.count("count", MAX_QUERY, 32).map_err(m)?;
        let mut points = Vec::with_capacity(n);
        for _ in 0..n {
            points.push(r.array("point").map_err(m)?);
        }
        r.finish("oprf-batch").map_err(m)?;
        Ok(Self { session_id, points })
    }
}

fn output(ctx: &[u8; 32], item: &[u8], point: &[u8; 32]) -> u128 {
    let mut h = blake3::Hasher::new_keyed(ctx);
    h.update(&(item.len() as u64).to_le_bytes())
        .update(item)
        .update(point);
    let mut first = [0u8; 16];
    first.copy_from_slice(&h.finalize().as_bytes()[..16]);
    u128::from_le_bytes(first)
}

fn output_key(context: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("citybrain-oprf v1 output");
    h.update(context);
    *h.finalize().as_bytes()
}

/// The large side: holds the OPRF key.
pub struct OprfServer {
    key: MaskKey,
    hasher: ItemHasher,
    out_key: [u8; 32],
    allowance: u64,
}

impl std::fmt::Debug for OprfServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OprfServer")
            .field("allowance", &self.allowance)
            .finish_non_exhaustive()
    }
}

impl OprfServer {
    /// A server for one published set. `context` names the data set and key epoch (both sides
    /// must use the same); `allowance` caps the items any one query may ask for.
    pub fn new(context: &[u8], seed: [u8; 32], allowance: u64) -> Self {
        let mut wide = [0u8; 64];
        ChaCha20Rng::from_seed(seed).fill_bytes(&mut wide);
        Self {
            key: MaskKey::from_wide_bytes(wide),
            hasher: ItemHasher::new(context),
            out_key: output_key(context),
            allowance,
        }
    }

    /// OPRF outputs of the server's own items (computed once, published).
    pub fn publish<I: AsRef<[u8]> + Sync>(&self, items: &[I]) -> PublishedSet {
        let masked = crate::group::hash_and_mask(&self.hasher, &self.key, items);
        PublishedSet::new(
            items
                .iter()
                .zip(&masked)
                .map(|(y, p)| output(&self.out_key, y.as_ref(), p))
                .collect(),
        )
    }

    /// Evaluates a blinded query.
    pub fn evaluate(&self, query: &PointBatch) -> Result<PointBatch, OprfError> {
        if query.points.len() as u64 > self.allowance {
            return Err(OprfError::QueryTooLarge {
                got: query.points.len() as u64,
                max: self.allowance,
            });
        }
        let points = crate::group::remask(&self.key, &query.points)
            .map_err(|e| OprfError::InvalidPoint(e.index))?;
        Ok(PointBatch {
            session_id: query.session_id,
            points,
        })
    }
}

/// The small side: keeps its blinds between query and evaluation.
pub struct OprfClient {
    session_id: [u8; 16],
    unblind: Vec<Scalar>,
    out_key: [u8; 32],
}

impl std::fmt::Debug for OprfClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OprfClient")
            .field("items", &self.unblind.len())
            .finish_non_exhaustive()
    }
}

impl OprfClient {
    /// Blinds `items` (each with a fresh scalar) and returns the query to send.
    pub fn blind<I: AsRef<[u8]>>(
        context: &[u8],
        session_id: [u8; 16],
        items: &[I],
        seed: [u8; 32],
    ) -> (Self, PointBatch) {
        let hasher = ItemHasher::new(context);
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut blinds = Vec::with_capacity(items.len());
        let mut points = Vec::with_capacity(items.len());
        for item in items {
            let mut wide = [0u8; 64];
            rng.fill_bytes(&mut wide);
            let r = Scalar::from_bytes_mod_order_wide(&wide);
            points.push((hasher.hash(item.as_ref()) * r).compress().to_bytes());
            blinds.push(r);
        }
        Scalar::invert_batch_alloc(&mut blinds);
        (
            Self {
                session_id,
                unblind: blinds,
                out_key: output_key(context),
            },
            PointBatch { session_id, points },
        )
    }

    /// Unblinds the evaluation and returns the OPRF output of each queried item.
    pub fn finalize<I: AsRef<[u8]>>(
        self,
        items: &[I],
        evaluation: &PointBatch,
    ) -> Result<Vec<u128>, OprfError> {
        if evaluation.session_id != self.session_id {
            return Err(OprfError::WrongSession);
        }
        if evaluation.points.len() != self.unblind.len() || items.len() != self.unblind.len() {
            return Err(OprfError::CountMismatch {
                expected: self.unblind.len(),
                got: evaluation.points.len(),
            });
        }
        let points: Vec<RistrettoPoint> =
            decompress_all(&evaluation.points).map_err(|e| OprfError::InvalidPoint(e.index))?;
        Ok(items
            .iter()
            .zip(points.iter().zip(&self.unblind))
            .map(|(x, (p, r))| output(&self.out_key, x.as_ref(), &(p * r).compress().to_bytes()))
            .collect())
    }

    /// Convenience: positions of queried items found in `published`.
    pub fn lookup(outputs: &[u128], published: &PublishedSet) -> Vec<usize> {
        outputs
            .iter()
            .enumerate()
            .filter(|(_, o)| published.contains(**o))
            .map(|(i, _)| i)
            .collect()
    }
}
