//! Secure aggregation (sum / mean / count) across N parties by pairwise masking.
//!
//! Every party `i` draws a ristretto255 key pair and publishes its public key through the
//! aggregator. For each other party `j` it derives a pair seed from the Diffie-Hellman point
//! `x_i·X_j` (so `i` and `j` get the same seed and nobody else can), expands it with ChaCha12
//! into a vector of `u64` masks, and adds the masks when `i < j` or subtracts them when `i > j`.
//! The aggregator sums the masked vectors in the ring ℤ/2^64; all masks cancel and only the sum
//! remains. No single masked vector tells the aggregator anything.
//!
//! **Dropouts.** If party `d` published a key but never sent its masked vector, the masks the
//! survivors share with `d` do not cancel. The aggregator then runs a recovery round: it names
//! the dropped set, and every survivor reveals its pair seeds with the dropped parties only, so
//! the aggregator can regenerate and remove those masks. This is the simpler recovery the
//! design allows instead of Bonawitz et al.'s double masking with Shamir shares; its price is
//! written down in `docs/psi-security.md`: a dishonest aggregator that calls a party dropped
//! although it holds that party's vector could unmask it. Survivors refuse a recovery request
//! that would leave fewer than `min_survivors` contributors (a sum over one party is that
//! party's input), and they reveal each seed at most once.
//!
//! Values are `u64` in the ring ℤ/2^64 (wrapping). Fixed-point encodings and counts (vectors of
//! 0/1 indicators) are the caller's choice; [`Aggregate::mean`] divides by the contributors.

use crate::codec::{DecodeError, Reader, put_len_u32};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha12Rng;
use rand_core::{Rng, SeedableRng};
use thiserror::Error;

/// Most parties in one aggregation.
pub const MAX_PARTIES: u64 = 1024;
/// Longest vector one aggregation carries.
pub const MAX_VECTOR_LEN: u64 = 1 << 26;
const VERSION: u8 = 1;

/// Public parameters of one aggregation, known to every party and the aggregator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationJob {
    /// Fresh per run.
    pub session_id: [u8; 16],
    /// Number of parties (indices `0..parties`).
    pub parties: u32,
    /// Length of every party's vector.
    pub vector_len: usize,
    /// The sum is released only if at least this many parties contributed (≥ 2).
    pub min_survivors: u32,
}

/// Errors of secure aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AggError {
    /// A message could not be decoded.
    #[error("malformed {kind} message: {source}")]
    Malformed {
        /// Message kind.
        kind: &'static str,
        /// What was wrong.
        source: DecodeError,
    },
    /// The job parameters are unusable.
    #[error("invalid aggregation job: {0}")]
    InvalidJob(&'static str),
    /// A message belongs to another session.
    #[error("message belongs to another session")]
    WrongSession,
    /// A party index outside the job, or a message from a party that is not in the roster.
    #[error("party {0} is not part of this round")]
    UnknownParty(u32),
    /// A second message from the same party in the same round.
    #[error("party {0} already sent this message")]
    Duplicate(u32),
    /// A vector of the wrong length.
    #[error("vector of party {party} has {got} values, expected {expected}")]
    WrongLength {
        /// Sender.
        party: u32,
        /// Length expected.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// A public key is not a valid group element.
    #[error("public key of party {0} is invalid")]
    InvalidKey(u32),
    /// Too few parties remain to release a sum.
    #[error("only {survivors} parties contributed; at least {min} are required")]
    TooFewSurvivors {
        /// Contributors.
        survivors: u32,
        /// Minimum.
        min: u32,
    },
    /// The operation is not allowed in the current round.
    #[error("not allowed now: {0}")]
    OutOfOrder(&'static str),
    /// A recovery request asks for something a client must refuse.
    #[error("recovery request refused: {0}")]
    RecoveryRefused(&'static str),
    /// A survivor's recovery seeds are missing.
    #[error("recovery seeds of party {0} are missing")]
    MissingRecovery(u32),
}

impl AggregationJob {
    fn validate(&self) -> Result<(), AggError> {
        if self.parties < 2 || u64::from(self.parties) > MAX_PARTIES {
            return Err(AggError::InvalidJob("parties must be within 2..=1024"));
        }
        if self.vector_len as u64 > MAX_VECTOR_LEN {
            return Err(AggError::InvalidJob("vector too long"));
        }
        if self.min_survivors < 2 || self.min_survivors > self.parties {
            return Err(AggError::InvalidJob(
                "min_survivors must be within 2..=parties",
            ));
        }
        Ok(())
    }
}

/// Round 0, client → aggregator: the client's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// Session.
    pub session_id: [u8; 16],
    /// Sender.
    pub party: u32,
    /// Compressed ristretto255 public key.
    pub public: [u8; 32],
}

/// Aggregator → clients: the parties taking part and their public keys, by ascending index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// Session.
    pub session_id: [u8; 16],
    /// (party, public key), strictly ascending by party.
    pub keys: Vec<(u32, [u8; 32])>,
}

/// Round 1, client → aggregator: the masked vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedInput {
    /// Session.
    pub session_id: [u8; 16],
    /// Sender.
    pub party: u32,
    /// `x_i + Σ_j ±mask_ij` (wrapping).
    pub values: Vec<u64>,
}

/// Aggregator → survivors: who dropped out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRequest {
    /// Session.
    pub session_id: [u8; 16],
    /// Parties in the roster whose masked vector never arrived (strictly ascending).
    pub dropped: Vec<u32>,
    /// Number of parties whose masked vector arrived.
    pub survivors: u32,
}

/// Round 2, survivor → aggregator: pair seeds with the dropped parties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryShares {
    /// Session.
    pub session_id: [u8; 16],
    /// Sender.
    pub party: u32,
    /// (dropped party, pair seed), ascending.
    pub seeds: Vec<(u32, [u8; 32])>,
}

/// The released result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    /// Element-wise sum over the contributors (wrapping in ℤ/2^64).
    pub sum: Vec<u64>,
    /// Number of parties whose vector is in the sum.
    pub contributors: u32,
}

impl Aggregate {
    /// Element-wise mean (sum / contributors).
    pub fn mean(&self) -> Vec<f64> {
        let n = f64::from(self.contributors.max(1));
        self.sum.iter().map(|&s| s as f64 / n).collect()
    }
}

fn pair_seed(
    job: &AggregationJob,
    secret: &Scalar,
    peer: &RistrettoPoint,
    a: u32,
    b: u32,
) -> [u8; 32] {
    let shared = (peer * secret).compress();
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let mut h = blake3::Hasher::new_derive_key("citybrain-secagg v1 pair seed");
    h.update(shared.as_bytes()).update(&job.session_id);
    h.update(&lo.to_le_bytes()).update(&hi.to_le_bytes());
    *h.finalize().as_bytes()
}

/// Adds (`sign = +1`) or subtracts the mask expanded from `seed` to `values`.
fn apply_mask(values: &mut [u64], seed: &[u8; 32], add: bool) {
    let mut rng = ChaCha12Rng::from_seed(*seed);
    let mut block = [0u8; 8 * 512];
    for chunk in values.chunks_mut(512) {
        let bytes = &mut block[..chunk.len() * 8];
        rng.fill_bytes(bytes);
        for (v, m) in chunk.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(m);
            let m = u64::from_le_bytes(word);
            *v = if add {
                v.wrapping_add(m)
            } else {
                v.wrapping_sub(m)
            };
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    KeySent,
    InputSent,
    Recovered,
}

/// One data owner's side.
pub struct AggClient {
    job: AggregationJob,
    party: u32,
    secret: Scalar,
    roster: Vec<(u32, RistrettoPoint)>,
    state: ClientState,
}

impl std::fmt::Debug for AggClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggClient")
            .field("party", &self.party)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl AggClient {
    /// Creates the client and its round-0 message. `seed` is the client's randomness (OsRng in
    /// production).
    pub fn new(
        job: AggregationJob,
        party: u32,
        seed: [u8; 32],
    ) -> Result<(Self, ClientKey), AggError> {
        job.validate()?;
        if party >= job.parties {
            return Err(AggError::UnknownParty(party));
        }
        let mut wide = [0u8; 64];
        ChaCha12Rng::from_seed(seed).fill_bytes(&mut wide);
        let secret = Scalar::from_bytes_mod_order_wide(&wide);
        let public = RistrettoPoint::mul_base(&secret).compress().to_bytes();
        let msg = ClientKey {
            session_id: job.session_id,
            party,
            public,
        };
        Ok((
            Self {
                job,
                party,
                secret,
                roster: Vec::new(),
                state: ClientState::KeySent,
            },
            msg,
        ))
    }

    /// Round 1: masks `values` for the parties in `roster`.
    pub fn mask(&mut self, roster: &Roster, values: &[u64]) -> Result<MaskedInput, AggError> {
        if self.state != ClientState::KeySent {
            return Err(AggError::OutOfOrder("input already sent"));
        }
        if roster.session_id != self.job.session_id {
            return Err(AggError::WrongSession);
        }
        if values.len() != self.job.vector_len {
            return Err(AggError::WrongLength {
                party: self.party,
                expected: self.job.vector_len,
                got: values.len(),
            });
        }
        if !roster.keys.iter().any(|(p, _)| *p == self.party) {
            return Err(AggError::UnknownParty(self.party));
        }
        if (roster.keys.len() as u32) < self.job.min_survivors {
            return Err(AggError::TooFewSurvivors {
                survivors: roster.keys.len() as u32,
                min: self.job.min_survivors,
            });
        }
        let mut peers = Vec::with_capacity(roster.keys.len());
        for (p, key) in &roster.keys {
            if *p >= self.job.parties {
                return Err(AggError::UnknownParty(*p));
            }
            let point = CompressedRistretto(*key)
                .decompress()
                .ok_or(AggError::InvalidKey(*p))?;
            peers.push((*p, point));
        }
        let mut out = values.to_vec();
        for (p, point) in &peers {
            if *p == self.party {
                continue;
            }
            let seed = pair_seed(&self.job, &self.secret, point, self.party, *p);
            apply_mask(&mut out, &seed, self.party < *p);
        }
        self.roster = peers;
        self.state = ClientState::InputSent;
        Ok(MaskedInput {
            session_id: self.job.session_id,
            party: self.party,
            values: out,
        })
    }

    /// Round 2: reveals the pair seeds with the dropped parties, after checking the request.
    pub fn recover(&mut self, request: &RecoveryRequest) -> Result<RecoveryShares, AggError> {
        if self.state != ClientState::InputSent {
            return Err(AggError::OutOfOrder(
                "recovery before input, or answered already",
            ));
        }
        if request.session_id != self.job.session_id {
            return Err(AggError::WrongSession);
        }
        if request.survivors < self.job.min_survivors {
            return Err(AggError::TooFewSurvivors {
                survivors: request.survivors,
                min: self.job.min_survivors,
            });
        }
        if request.dropped.len() as u64 + u64::from(request.survivors) != self.roster.len() as u64 {
            return Err(AggError::RecoveryRefused(
                "dropped and survivors do not add up to the roster",
            ));
        }
        let mut seeds = Vec::with_capacity(request.dropped.len());
        for d in &request.dropped {
            if *d == self.party {
                return Err(AggError::RecoveryRefused(
                    "we are named as dropped but sent our input",
                ));
            }
            let (_, point) = self
                .roster
                .iter()
                .find(|(p, _)| p == d)
                .ok_or(AggError::RecoveryRefused("dropped party not in the roster"))?;
            seeds.push((
                *d,
                pair_seed(&self.job, &self.secret, point, self.party, *d),
            ));
        }
        self.state = ClientState::Recovered;
        Ok(RecoveryShares {
            session_id: self.job.session_id,
            party: self.party,
            seeds,
        })
    }
}

impl Drop for AggClient {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

/// The aggregator (may be one of the parties' nodes or a coordinator).
#[derive(Debug)]
pub struct AggServer {
    job: AggregationJob,
    keys: Vec<Option<[u8; 32]>>,
    roster: Option<Vec<u32>>,
    sum: Vec<u64>,
    received: Vec<bool>,
    request: Option<RecoveryRequest>,
    recovered: Vec<bool>,
}

impl AggServer {
    /// Starts an aggregation.
    pub fn new(job: AggregationJob) -> Result<Self, AggError> {
        job.validate()?;
        let n = job.parties as usize;
        Ok(Self {
            sum: vec![0; job.vector_len],
            keys: vec![None; n],
            roster: None,
            received: vec![false; n],
            request: None,
            recovered: vec![false; n],
            job,
        })
    }

    /// Round 0: records a client's public key.
    pub fn receive_key(&mut self, msg: &ClientKey) -> Result<(), AggError> {
        self.check_session(&msg.session_id)?;
        if self.roster.is_some() {
            return Err(AggError::OutOfOrder("roster already published"));
        }
        let slot = self
            .keys
            .get_mut(msg.party as usize)
            .ok_or(AggError::UnknownParty(msg.party))?;
        if slot.is_some() {
            return Err(AggError::Duplicate(msg.party));
        }
        CompressedRistretto(msg.public)
            .decompress()
            .ok_or(AggError::InvalidKey(msg.party))?;
        *slot = Some(msg.public);
        Ok(())
    }

    /// Closes round 0 (parties without a key are left out) and returns the roster to broadcast.
    pub fn roster(&mut self) -> Result<Roster, AggError> {
        let keys: Vec<(u32, [u8; 32])> = self
            .keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.map(|k| (i as u32, k)))
            .collect();
        if (keys.len() as u32) < self.job.min_survivors {
            return Err(AggError::TooFewSurvivors {
                survivors: keys.len() as u32,
                min: self.job.min_survivors,
            });
        }
        self.roster = Some(keys.iter().map(|(p, _)| *p).collect());
        Ok(Roster {
            session_id: self.job.session_id,
            keys,
        })
    }

    /// Round 1: adds a masked vector to the running sum (nothing else is kept).
    pub fn receive_input(&mut self, msg: &MaskedInput) -> Result<(), AggError> {
        self.check_session(&msg.session_id)?;
        let roster = self
            .roster
            .as_ref()
            .ok_or(AggError::OutOfOrder("roster not published"))?;
        if self.request.is_some() {
            return Err(AggError::OutOfOrder("recovery already started"));
        }
        if !roster.contains(&msg.party) {
            return Err(AggError::UnknownParty(msg.party));
        }
        if msg.values.len() != self.job.vector_len {
            return Err(AggError::WrongLength {
                party: msg.party,
                expected: self.job.vector_len,
                got: msg.values.len(),
            });
        }
        let seen = self
            .received
            .get_mut(msg.party as usize)
            .ok_or(AggError::UnknownParty(msg.party))?;
        if *seen {
            return Err(AggError::Duplicate(msg.party));
        }
        *seen = true;
        for (s, v) in self.sum.iter_mut().zip(&msg.values) {
            *s = s.wrapping_add(*v);
        }
        Ok(())
    }

    /// Parties in the roster whose input has not arrived.
    pub fn missing(&self) -> Vec<u32> {
        self.roster
            .iter()
            .flatten()
            .copied()
            .filter(|p| !self.received.get(*p as usize).copied().unwrap_or(false))
            .collect()
    }

    /// Ends round 1 when some parties dropped: the request to send to every survivor.
    pub fn start_recovery(&mut self) -> Result<RecoveryRequest, AggError> {
        let roster = self
            .roster
            .as_ref()
            .ok_or(AggError::OutOfOrder("roster not published"))?;
        let dropped = self.missing();
        let survivors = (roster.len() - dropped.len()) as u32;
        if survivors < self.job.min_survivors {
            return Err(AggError::TooFewSurvivors {
                survivors,
                min: self.job.min_survivors,
            });
        }
        let request = RecoveryRequest {
            session_id: self.job.session_id,
            dropped,
            survivors,
        };
        self.request = Some(request.clone());
        Ok(request)
    }

    /// Round 2: removes the masks a survivor shared with the dropped parties.
    pub fn receive_recovery(&mut self, msg: &RecoveryShares) -> Result<(), AggError> {
        self.check_session(&msg.session_id)?;
        let request = self
            .request
            .as_ref()
            .ok_or(AggError::OutOfOrder("no recovery requested"))?;
        if !self
            .received
            .get(msg.party as usize)
            .copied()
            .unwrap_or(false)
        {
            return Err(AggError::UnknownParty(msg.party));
        }
        let done = self
            .recovered
            .get_mut(msg.party as usize)
            .ok_or(AggError::UnknownParty(msg.party))?;
        if *done {
            return Err(AggError::Duplicate(msg.party));
        }
        let named: Vec<u32> = msg.seeds.iter().map(|(d, _)| *d).collect();
        if named != request.dropped {
            return Err(AggError::RecoveryRefused(
                "seeds do not cover exactly the dropped parties",
            ));
        }
        *done = true;
        for (d, seed) in &msg.seeds {
            // The survivor added the mask if its index is lower; undo that.
            apply_mask(&mut self.sum, seed, msg.party > *d);
        }
        Ok(())
    }

    /// Releases the aggregate once every contributor's masks are accounted for.
    pub fn finish(self) -> Result<Aggregate, AggError> {
        let contributors = self.received.iter().filter(|r| **r).count() as u32;
        if contributors < self.job.min_survivors {
            return Err(AggError::TooFewSurvivors {
                survivors: contributors,
                min: self.job.min_survivors,
            });
        }
        let dropped = self.missing();
        if !dropped.is_empty() {
            let request = self
                .request
                .as_ref()
                .ok_or(AggError::OutOfOrder("parties dropped; run recovery first"))?;
            if request.dropped != dropped {
                return Err(AggError::OutOfOrder(
                    "inputs changed after recovery started",
                ));
            }
            for (p, got) in self.received.iter().enumerate() {
                if *got && !self.recovered[p] {
                    return Err(AggError::MissingRecovery(p as u32));
                }
            }
        }
        Ok(Aggregate {
            sum: self.sum,
            contributors,
        })
    }

    fn check_session(&self, id: &[u8; 16]) -> Result<(), AggError> {
        if *id != self.job.session_id {
            return Err(AggError::WrongSession);
        }
        Ok(())
    }
}

// ----- wire encodings (version byte, session id, then the fields; trailing data refused) -----

fn header(out: &mut Vec<u8>, kind: u8, session: &[u8; 16]) {
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(session);
}

fn read_header(r: &mut Reader<'_>, kind: u8, name: &'static str) -> Result<[u8; 16], AggError> {
    let m = |source| AggError::Malformed { kind: name, source };
    if r.u8("version").map_err(m)? != VERSION {
        return Err(m(DecodeError::InvalidField {
            field: "version",
            reason: "unsupported",
        }));
    }
    if r.u8("kind").map_err(m)? != kind {
        return Err(m(DecodeError::InvalidField {
            field: "kind",
            reason: "wrong message kind",
        }));
    }
    r.array("session").map_err(m)
}

fn ascending(items: &[u32], field: &'static str) -> Result<(), DecodeError> {
    if items.windows(2).any(|w| w[0] >= w[1]) {
        return Err(DecodeError::InvalidField {
            field,
            reason: "must be strictly ascending",
        });
    }
    Ok(())
}

macro_rules! decoder {
    ($name:literal, $kind:expr, $bytes:ident, |$r:ident, $session:ident| $body:expr) => {{
        let mut $r = Reader::new($bytes);
        let $session = read_header(&mut $r, $kind, $name)?;
        let m = |source| AggError::Malformed {
            kind: $name,
            source,
        };
        let value = (|| -> Result<_, DecodeError> { $body })().map_err(m)?;
        $r.finish($name).map_err(m)?;
        Ok(value)
    }};
}

impl ClientKey {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(56);
        header(&mut out, 1, &self.session_id);
        out.extend_from_slice(&self.party.to_le_bytes());
        out.extend_from_slice(&self.public);
        out
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AggError> {
        decoder!("client-key", 1, bytes, |r, session_id| {
            Ok(Self {
                session_id,
                party: r.u32("party")?,
                public: r.array("public")?,
            })
        })
    }
}

impl Roster {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        header(&mut out, 2, &self.session_id);
        put_len_u32(&mut out, self.keys.len());
        for (p, k) in &self.keys {
            out.extend_from_slice(&p.to_le_bytes());
            out.extend_from_slice(k);
        }
        out
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AggError> {
        decoder!("roster", 2, bytes, |r, session_id| {
            let n = r.count("roster.count", MAX_PARTIES, 36)?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push((r.u32("roster.party")?, r.array("roster.public")?));
            }
            let parties: Vec<u32> = keys.iter().map(|(p, _)| *p).collect();
            ascending(&parties, "roster.party")?;
            Ok(Self { session_id, keys })
        })
    }
}

impl MaskedInput {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(26 + self.values.len() * 8);
        header(&mut out, 3, &self.session_id);
        out.extend_from_slice(&self.party.to_le_bytes());
        put_len_u32(&mut out, self.values.len());
        for v in &self.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AggError> {
        decoder!("masked-input", 3, bytes, |r, session_id| {
            let party = r.u32("party")?;
            let n = r.count("values.count", MAX_VECTOR_LEN, 8)?;
            let raw = r.take(n * 8, "values")?;
            let values = raw
                .chunks_exact(8)
                .map(|c| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(c);
                    u64::from_le_bytes(w)
                })
                .collect();
            Ok(Self {
                session_id,
                party,
                values,
            })
        })
    }
}

impl RecoveryRequest {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        header(&mut out, 4, &self.session_id);
        put_len_u32(&mut out, self.dropped.len());
        for d in &self.dropped {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&self.survivors.to_le_bytes());
        out
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AggError> {
        decoder!("recovery-request", 4, bytes, |r, session_id| {
            let n = r.count("dropped.count", MAX_PARTIES, 4)?;
            let mut dropped = Vec::with_capacity(n);
            for _ in 0..n {
                dropped.push(r.u32("dropped")?);
            }
            ascending(&dropped, "dropped")?;
            Ok(Self {
                session_id,
                dropped,
                survivors: r.u32("survivors")?,
            })
        })
    }
}

impl RecoveryShares {
    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        header(&mut out, 5, &self.session_id);
        out.extend_from_slice(&self.party.to_le_bytes());
        put_len_u32(&mut out, self.seeds.len());
        for (d, s) in &self.seeds {
            out.extend_from_slice(&d.to_le_bytes());
            out.extend_from_slice(s);
        }
        out
    }

    /// Decodes.
    pub fn decode(bytes: &[u8]) -> Result<Self, AggError> {
        decoder!("recovery-shares", 5, bytes, |r, session_id| {
            let party = r.u32("party")?;
            let n = r.count("seeds.count", MAX_PARTIES, 36)?;
            let mut seeds = Vec::with_capacity(n);
            for _ in 0..n {
                seeds.push((r.u32("seeds.party")?, r.array("seeds.seed")?));
            }
            let parties: Vec<u32> = seeds.iter().map(|(p, _)| *p).collect();
            ascending(&parties, "seeds.party")?;
            Ok(Self {
                session_id,
                party,
                seeds,
            })
        })
    }
}
