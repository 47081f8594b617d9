//! Two-party ECDH-PSI as a sans-IO state machine.
//!
//! Roles (see [`Role`]): the **matcher** M holds X and key `m`; the **helper** H holds Y and
//! key `h`. With `H(·)` the per-job hash to an X25519 u-coordinate, `k·P` the X25519 function
//! of key `k` and u-coordinate `P` (see [`crate::x25519`]) and `T(·)` the truncated comparison
//! tag:
//!
//! ```text
//!  M → H  hello                                  H → M  hello
//!  M → H  Masked  [m·H(x)]            (batches)  H → M  Masked [h·H(y)]   (Valued in sum mode)
//!  H → M  Returned [T(h·m·H(x))]      (batches; in input order, or globally shuffled when only
//!                                      a count or sum is released)
//!  M: matches T(m·h·H(y)) against its table, checks the release minimum
//!  M → H  Outcome                       H → M  Confirm (H's view of the M→H transcript)
//!  M releases its output only after a valid Confirm; H after a valid Outcome.
//! ```
//!
//! Items are pushed in batches as the driver reads them ([`PsiSession::push_items`]), so
//! neither side ever holds its raw input; what stays in memory is one 16-byte entry per item
//! (the matcher's two tag tables, or the helper's shuffle buffer in count/sum modes).
//!
//! Every error kills the session: buffers are dropped, no output is released, and
//! [`PsiSession::take_abort_frame`] yields an abort frame telling the peer why.

use crate::elgamal::{Ciphertext, PublicKey, SecretKey};
use crate::error::{AbortCode, PsiError};
use crate::group::{TAG_MASK, TagHasher};
use crate::manifest::{JobManifest, PsiMode, Role};
use crate::wire::{
    self, Channel, CiphertextBytes, FrameKind, Hello, Outcome, SessionId, VALUE_LIMBS, ValuedPoint,
};
use crate::x25519::{MaskKey, PointHasher, hash_and_mask, remask_to_tags};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// Default number of items per batch message.
pub const DEFAULT_BATCH: usize = 4096;

/// Everything one party needs to start a job.
#[derive(Debug, Clone)]
pub struct PsiConfig {
    /// The approved manifest (identical on both sides).
    pub manifest: JobManifest,
    /// This party's id in the manifest.
    pub local_party: String,
    /// Fresh per run, shared by both parties (e.g. chosen by the proposer).
    pub session_id: SessionId,
    /// Number of items this party will push.
    pub set_size: u64,
    /// All randomness of this party for the job. Draw it from the OS (`OsRng`) in production;
    /// tests pass fixed seeds for reproducibility.
    pub seed: [u8; 32],
    /// Items per batch message (1 ..= 65536).
    pub batch_size: usize,
}

/// What a party learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsiOutput {
    /// Positions (in this party's input order, ascending) of its items in the intersection.
    Intersection {
        /// Matching positions.
        positions: Vec<u64>,
    },
    /// The number of distinct items in the intersection.
    Cardinality {
        /// |set(X) ∩ set(Y)|.
        size: u64,
    },
    /// Intersection size and the sum of this party's values over its matching items.
    Sum {
        /// |set(X) ∩ set(Y)|.
        size: u64,
        /// Σ of values at positions whose item is in the peer's set.
        sum: u64,
    },
    /// The job completed; this party learns nothing else.
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingHello,
    Running,
    AwaitingConfirm,
    Done,
    Failed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            Self::AwaitingHello => "awaiting-hello",
            Self::Running => "running",
            Self::AwaitingConfirm => "awaiting-confirm",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// One party's side of an ECDH-PSI job.
pub struct PsiSession {
    role: Role,
    mode: PsiMode,
    manifest: JobManifest,
    peer_index: usize,
    digest: [u8; 32],
    own_size: u64,
    peer_size: u64,
    batch_size: usize,
    rng: ChaCha20Rng,
    key: MaskKey,
    ephemeral: Scalar,
    own_hello: Vec<u8>,
    channel: Channel,
    hasher: PointHasher,
    tags: TagHasher,
    /// Helper in sum mode: its decryption key. Matcher in sum mode: the helper's public key.
    value_secret: Option<SecretKey>,
    value_public: Option<PublicKey>,
    /// Helper in sum mode: its own public key (with precomputed table) for encrypting values.
    value_own_public: Option<PublicKey>,
    state: State,
    pushed: u64,
    /// Matcher: tags of its own items (tag | position), as returned by the helper.
    own_table: Vec<u128>,
    /// Matcher: tags of the helper's items (tag | position in the helper's stream).
    peer_table: Vec<u128>,
    /// Matcher, sum mode: the helper's encrypted values, by stream position.
    peer_values: Vec<[CiphertextBytes; VALUE_LIMBS]>,
    /// Helper: masked items received from the matcher so far.
    received_masked: u64,
    /// Helper, count/sum modes: tags to return, shuffled once complete.
    return_buffer: Vec<u128>,
    /// Helper, count/sum modes: its own masked items, shuffled once complete.
    own_points: Vec<[u8; 32]>,
    /// Helper, sum mode: encrypted values aligned with `own_points`.
    own_values: Vec<[CiphertextBytes; VALUE_LIMBS]>,
    pending_output: Option<PsiOutput>,
    output: Option<PsiOutput>,
    abort_frame: Option<Vec<u8>>,
    bytes_sent: u64,
    bytes_received: u64,
}

impl std::fmt::Debug for PsiSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PsiSession")
            .field("role", &self.role)
            .field("mode", &self.mode)
            .field("state", &self.state)
            .field("pushed", &self.pushed)
            .finish_non_exhaustive()
    }
}

fn random_scalar(rng: &mut ChaCha20Rng) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    zeroize::Zeroize::zeroize(&mut wide);
    s
}

impl PsiSession {
    /// Checks the job against the manifest and, only if it is allowed, creates the session and
    /// its hello frame (the first message to send).
    pub fn new(config: PsiConfig) -> Result<(Self, Vec<u8>), PsiError> {
        let PsiConfig {
            manifest,
            local_party,
            session_id,
            set_size,
            seed,
            batch_size,
        } = config;
        // Governance first: nothing cryptographic exists until this passes.
        let role = manifest.authorize(&local_party, set_size)?;
        if batch_size == 0 || batch_size as u64 > wire::MAX_BATCH_ITEMS {
            return Err(PsiError::Usage("batch size must be within 1..=65536"));
        }
        let own_index = manifest.party_index(&local_party)?;
        let peer_index = 1 - own_index;
        let digest = manifest.digest();
        let mut rng = ChaCha20Rng::from_seed(seed);
        let key = {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            MaskKey::from_bytes(bytes)
        };
        let ephemeral = random_scalar(&mut rng);
        let (value_secret, value_key) =
            if manifest.mode == PsiMode::IntersectionSum && role == Role::Helper {
                let sk = SecretKey::new(random_scalar(&mut rng));
                let pk = sk.public().to_bytes();
                (Some(sk), Some(pk))
            } else {
                (None, None)
            };
        let hello = Hello {
            manifest_digest: digest,
            role,
            set_size,
            ephemeral: RistrettoPoint::mul_base(&ephemeral).compress().to_bytes(),
            value_key,
        }
        .encode();
        let mut context = session_id.to_vec();
        context.extend_from_slice(&digest);
        let mut channel = Channel::new(session_id);
        let hello_frame = channel.seal(FrameKind::Hello, &hello);
        let session = Self {
            role,
            mode: manifest.mode,
            manifest,
            peer_index,
            digest,
            own_size: set_size,
            peer_size: 0,
            batch_size,
            rng,
            key,
            ephemeral,
            own_hello: hello,
            channel,
            hasher: PointHasher::new(&context),
            tags: TagHasher::new(&context, TagHasher::MAX_LEN),
            value_own_public: value_secret.as_ref().map(SecretKey::public),
            value_secret,
            value_public: None,
            state: State::AwaitingHello,
            pushed: 0,
            own_table: Vec::new(),
            peer_table: Vec::new(),
            peer_values: Vec::new(),
            received_masked: 0,
            return_buffer: Vec::new(),
            own_points: Vec::new(),
            own_values: Vec::new(),
            pending_output: None,
            output: None,
            abort_frame: None,
            bytes_sent: hello_frame.len() as u64,
            bytes_received: 0,
        };
        Ok((session, hello_frame))
    }

    /// This party's protocol role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True while the session can take more local items (after the peer's hello).
    pub fn wants_items(&self) -> bool {
        self.state == State::Running && self.pushed < self.own_size
    }

    /// Number of local items still to push.
    pub fn items_remaining(&self) -> u64 {
        self.own_size - self.pushed
    }

    /// Items per batch this session was configured with.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// True once the output is released (or the job completed for a party that learns nothing).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The released output; `None` until the whole protocol, including confirmation, succeeded.
    pub fn output(&self) -> Option<&PsiOutput> {
        self.output.as_ref()
    }

    /// Progress for a driver's display: (local items pushed, local set size, peer items
    /// processed, peer set size).
    pub fn progress(&self) -> (u64, u64, u64, u64) {
        let peer_done = match self.role {
            Role::Matcher => self.peer_table.len() as u64,
            Role::Helper => self.received_masked,
        };
        (self.pushed, self.own_size, peer_done, self.peer_size)
    }

    /// Bytes of all frames sent and received so far.
    pub fn traffic(&self) -> (u64, u64) {
        (self.bytes_sent, self.bytes_received)
    }

    /// After a local error: the abort frame to send to the peer (once).
    pub fn take_abort_frame(&mut self) -> Option<Vec<u8>> {
        self.abort_frame.take()
    }

    /// Stops the job from the driver's side (e.g. the input could not be read); returns the
    /// abort frame for the peer.
    pub fn cancel(&mut self) -> Option<Vec<u8>> {
        if matches!(self.state, State::Done | State::Failed) {
            return None;
        }
        self.fail(&PsiError::Usage("cancelled"));
        self.abort_frame.take()
    }

    /// Pushes the next local items (not for the helper of `IntersectionSum`, which uses
    /// [`Self::push_valued_items`]). Returns frames to send, in order.
    pub fn push_items<I: AsRef<[u8]> + Sync>(
        &mut self,
        items: &[I],
    ) -> Result<Vec<Vec<u8>>, PsiError> {
        if self.mode == PsiMode::IntersectionSum && self.role == Role::Helper {
            return self.guard(|_| Err(PsiError::Usage("the value holder must push values")));
        }
        self.guard(|s| s.push_inner(items, None))
    }

    /// Pushes local items with their values (helper of `IntersectionSum` only).
    pub fn push_valued_items<I: AsRef<[u8]> + Sync>(
        &mut self,
        items: &[I],
        values: &[u32],
    ) -> Result<Vec<Vec<u8>>, PsiError> {
        if !(self.mode == PsiMode::IntersectionSum && self.role == Role::Helper) {
            return self.guard(|_| Err(PsiError::Usage("only the value holder pushes values")));
        }
        if items.len() != values.len() {
            return self.guard(|_| Err(PsiError::Usage("items and values differ in length")));
        }
        self.guard(|s| s.push_inner(items, Some(values)))
    }

    /// Processes one frame from the peer; returns frames to send, in order.
    pub fn handle_frame(&mut self, frame: &[u8]) -> Result<Vec<Vec<u8>>, PsiError> {
        self.bytes_received += frame.len() as u64;
        self.guard(|s| s.handle_inner(frame))
    }

    fn guard<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, PsiError>,
    ) -> Result<T, PsiError> {
        match self.state {
            State::Failed => return Err(PsiError::Closed("failed")),
            State::Done => return Err(PsiError::Closed("done")),
            _ => {}
        }
        let result = f(self);
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    fn fail(&mut self, error: &PsiError) {
        if !matches!(error, PsiError::PeerAborted(_)) {
            let frame = self
                .channel
                .seal(FrameKind::Abort, &wire::encode_abort(error.abort_code()));
            self.abort_frame = Some(frame);
        }
        self.state = State::Failed;
        self.own_table = Vec::new();
        self.peer_table = Vec::new();
        self.peer_values = Vec::new();
        self.return_buffer = Vec::new();
        self.own_points = Vec::new();
        self.own_values = Vec::new();
        self.pending_output = None;
        self.output = None;
    }

    fn seal(&mut self, kind: FrameKind, payload: &[u8], out: &mut Vec<Vec<u8>>) {
        let frame = self.channel.seal(kind, payload);
        self.bytes_sent += frame.len() as u64;
        out.push(frame);
    }

    fn shuffles(&self) -> bool {
        matches!(self.mode, PsiMode::Cardinality | PsiMode::IntersectionSum)
    }

    fn push_inner<I: AsRef<[u8]> + Sync>(
        &mut self,
        items: &[I],
        values: Option<&[u32]>,
    ) -> Result<Vec<Vec<u8>>, PsiError> {
        if self.state != State::Running {
            return Err(PsiError::Usage("items pushed before the peer's hello"));
        }
        if items.len() as u64 > self.own_size - self.pushed {
            return Err(PsiError::Usage("more items pushed than declared"));
        }
        self.pushed += items.len() as u64;
        let mut out = Vec::new();
        for (i, chunk) in items.chunks(self.batch_size).enumerate() {
            let masked = hash_and_mask(&self.hasher, &self.key, chunk);
            if self.role == Role::Matcher || !self.shuffles() {
                self.seal(FrameKind::Masked, &wire::encode_points(&masked), &mut out);
                continue;
            }
            // Helper in count/sum modes: buffer, shuffle and send once all items are in.
            let start = i * self.batch_size;
            if let Some(values) = values {
                for k in 0..masked.len() {
                    let value = self.encrypt_value(values.get(start + k).copied().unwrap_or(0));
                    self.own_values.push(value);
                }
            }
            self.own_points.extend(masked);
        }
        if self.role == Role::Helper && self.shuffles() && self.pushed == self.own_size {
            self.flush_own_buffer(&mut out);
        }
        self.maybe_finish(&mut out)?;
        Ok(out)
    }

    fn encrypt_value(&mut self, value: u32) -> [CiphertextBytes; VALUE_LIMBS] {
        let r = [random_scalar(&mut self.rng), random_scalar(&mut self.rng)];
        match &self.value_own_public {
            Some(pk) => pk.encrypt_value(value, &r).map(|c| c.to_bytes()),
            None => [[[0u8; 32]; 2]; VALUE_LIMBS],
        }
    }

    fn flush_own_buffer(&mut self, out: &mut Vec<Vec<u8>>) {
        let mut points = std::mem::take(&mut self.own_points);
        let mut values = std::mem::take(&mut self.own_values);
        let with_values = self.mode == PsiMode::IntersectionSum;
        shuffle_with(points.len(), &mut self.rng, |i, j| {
            points.swap(i, j);
            if with_values {
                values.swap(i, j);
            }
        });
        for (k, chunk) in points.chunks(self.batch_size).enumerate() {
            if with_values {
                let start = k * self.batch_size;
                let items: Vec<ValuedPoint> = chunk
                    .iter()
                    .zip(&values[start..start + chunk.len()])
                    .map(|(point, value)| ValuedPoint {
                        point: *point,
                        value: *value,
                    })
                    .collect();
                self.seal(FrameKind::Valued, &wire::encode_valued(&items), out);
            } else {
                self.seal(FrameKind::Masked, &wire::encode_points(chunk), out);
            }
        }
    }

    fn flush_return_buffer(&mut self, out: &mut Vec<Vec<u8>>) {
        let mut buffer = std::mem::take(&mut self.return_buffer);
        shuffle_with(buffer.len(), &mut self.rng, |i, j| buffer.swap(i, j));
        for chunk in buffer.chunks(self.batch_size) {
            self.seal(
                FrameKind::Returned,
                &wire::encode_tags(chunk, self.tags.len()),
                out,
            );
        }
    }

    fn handle_inner(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, PsiError> {
        let frame = self.channel.open(bytes)?;
        let malformed = |kind: FrameKind| {
            move |source| PsiError::Malformed {
                kind: kind.name(),
                source,
            }
        };
        if frame.kind == FrameKind::Abort {
            let code = wire::decode_abort(frame.payload).unwrap_or(AbortCode::Protocol);
            return Err(PsiError::PeerAborted(code));
        }
        let unexpected = |s: &Self| PsiError::Unexpected {
            got: frame.kind.name(),
            state: s.state.name(),
        };
        let mut out = Vec::new();
        match (self.state, frame.kind) {
            (State::AwaitingHello, FrameKind::Hello) => {
                let hello = Hello::decode(frame.payload).map_err(malformed(frame.kind))?;
                self.accept_hello(&hello, frame.payload)?;
            }
            (State::Running, FrameKind::Masked) if self.role == Role::Helper => {
                let points = wire::decode_points(frame.payload).map_err(malformed(frame.kind))?;
                self.received_masked =
                    check_count(self.received_masked, points.len(), self.peer_size)?;
                let tags = remask_to_tags(&self.key, &self.tags, &points).map_err(|e| {
                    PsiError::InvalidPoint {
                        kind: "masked-batch",
                        index: e.index,
                    }
                })?;
                if self.shuffles() {
                    self.return_buffer.extend(tags);
                    if self.received_masked == self.peer_size {
                        self.flush_return_buffer(&mut out);
                    }
                } else {
                    self.seal(
                        FrameKind::Returned,
                        &wire::encode_tags(&tags, self.tags.len()),
                        &mut out,
                    );
                }
            }
            (State::Running, FrameKind::Returned) if self.role == Role::Matcher => {
                let tags = wire::decode_tags(frame.payload, self.tags.len())
                    .map_err(malformed(frame.kind))?;
                let base = self.own_table.len() as u64;
                check_count(base, tags.len(), self.own_size)?;
                self.own_table.extend(
                    tags.iter()
                        .enumerate()
                        .map(|(k, t)| t | u128::from(base as u32 + k as u32)),
                );
            }
            (State::Running, FrameKind::Masked)
                if self.role == Role::Matcher && self.mode != PsiMode::IntersectionSum =>
            {
                let points = wire::decode_points(frame.payload).map_err(malformed(frame.kind))?;
                self.match_peer_points(&points)?;
            }
            (State::Running, FrameKind::Valued)
                if self.role == Role::Matcher && self.mode == PsiMode::IntersectionSum =>
            {
                let items = wire::decode_valued(frame.payload).map_err(malformed(frame.kind))?;
                let points: Vec<[u8; 32]> = items.iter().map(|v| v.point).collect();
                self.match_peer_points(&points)?;
                self.peer_values.extend(items.into_iter().map(|v| v.value));
            }
            (State::Running, FrameKind::Outcome) if self.role == Role::Helper => {
                if self.pushed != self.own_size || self.received_masked != self.peer_size {
                    return Err(unexpected(self));
                }
                let outcome = Outcome::decode(frame.payload).map_err(malformed(frame.kind))?;
                let output = self.accept_outcome(outcome)?;
                // Confirm what we saw; a matcher whose transcript differs refuses to release.
                let chain = self.channel.recv_chain();
                self.seal(FrameKind::Confirm, &chain, &mut out);
                self.output = Some(output);
                self.state = State::Done;
                return Ok(out);
            }
            (State::AwaitingConfirm, FrameKind::Confirm) => {
                let seen = wire::decode_confirm(frame.payload).map_err(malformed(frame.kind))?;
                if seen != self.channel.send_chain() {
                    return Err(PsiError::ConfirmMismatch);
                }
                self.output = self.pending_output.take();
                self.state = State::Done;
                return Ok(out);
            }
            _ => return Err(unexpected(self)),
        }
        self.maybe_finish(&mut out)?;
        Ok(out)
    }

    fn match_peer_points(&mut self, points: &[[u8; 32]]) -> Result<(), PsiError> {
        let base = self.peer_table.len() as u64;
        check_count(base, points.len(), self.peer_size)?;
        let tags =
            remask_to_tags(&self.key, &self.tags, points).map_err(|e| PsiError::InvalidPoint {
                kind: "masked-batch",
                index: e.index,
            })?;
        self.peer_table.extend(
            tags.iter()
                .enumerate()
                .map(|(k, t)| t | u128::from(base as u32 + k as u32)),
        );
        Ok(())
    }

    fn accept_hello(&mut self, hello: &Hello, payload: &[u8]) -> Result<(), PsiError> {
        if hello.manifest_digest != self.digest {
            return Err(PsiError::ManifestMismatch);
        }
        if hello.role != self.role.peer() {
            return Err(PsiError::RoleConflict);
        }
        self.manifest.check_size(self.peer_index, hello.set_size)?;
        let wants_value_key = self.mode == PsiMode::IntersectionSum && self.role == Role::Matcher;
        match (&hello.value_key, wants_value_key) {
            (Some(k), true) => {
                let pk = PublicKey::from_bytes(k).ok_or(PsiError::InvalidPoint {
                    kind: "hello",
                    index: 0,
                })?;
                self.value_public = Some(pk);
            }
            (None, false) => {}
            _ => {
                return Err(PsiError::Malformed {
                    kind: "hello",
                    source: crate::codec::DecodeError::InvalidField {
                        field: "hello.value_key",
                        reason: "present exactly when the peer holds values",
                    },
                });
            }
        }
        let peer_ephemeral =
            CompressedRistretto(hello.ephemeral)
                .decompress()
                .ok_or(PsiError::InvalidPoint {
                    kind: "hello",
                    index: 0,
                })?;
        let shared = (peer_ephemeral * self.ephemeral).compress().to_bytes();
        let (m_hello, h_hello) = match self.role {
            Role::Matcher => (self.own_hello.as_slice(), payload),
            Role::Helper => (payload, self.own_hello.as_slice()),
        };
        let mut context = self.digest.to_vec();
        context.extend_from_slice(m_hello);
        context.extend_from_slice(h_hello);
        self.channel.rekey(self.role, &shared, &context);
        zeroize::Zeroize::zeroize(&mut self.ephemeral);
        self.peer_size = hello.set_size;
        let session_context = self.hasher_context();
        self.tags = TagHasher::new(
            &session_context,
            TagHasher::len_for(self.own_size, self.peer_size),
        );
        // Tables and buffers are sized exactly once, so memory never overshoots by a
        // doubling step (at 2^24 items that is the difference between 256 and 512 MiB).
        let capacity = |n: u64| usize::try_from(n).unwrap_or(0);
        match (self.role, self.shuffles()) {
            (Role::Matcher, _) => {
                self.own_table.reserve_exact(capacity(self.own_size));
                self.peer_table.reserve_exact(capacity(self.peer_size));
                if self.mode == PsiMode::IntersectionSum {
                    self.peer_values.reserve_exact(capacity(self.peer_size));
                }
            }
            (Role::Helper, true) => {
                self.return_buffer.reserve_exact(capacity(self.peer_size));
                self.own_points.reserve_exact(capacity(self.own_size));
                if self.mode == PsiMode::IntersectionSum {
                    self.own_values.reserve_exact(capacity(self.own_size));
                }
            }
            (Role::Helper, false) => {}
        }
        self.state = State::Running;
        Ok(())
    }

    fn hasher_context(&self) -> Vec<u8> {
        // Session id is bound through the channel; the digest and both sizes pin the tag length.
        let mut context = self.digest.to_vec();
        let (m, h) = match self.role {
            Role::Matcher => (self.own_size, self.peer_size),
            Role::Helper => (self.peer_size, self.own_size),
        };
        context.extend_from_slice(&m.to_le_bytes());
        context.extend_from_slice(&h.to_le_bytes());
        context
    }

    /// Matcher: once everything is in, compute the result, apply the release rule and send
    /// the outcome.
    fn maybe_finish(&mut self, out: &mut Vec<Vec<u8>>) -> Result<(), PsiError> {
        let complete = self.role == Role::Matcher
            && self.state == State::Running
            && self.pushed == self.own_size
            && self.own_table.len() as u64 == self.own_size
            && self.peer_table.len() as u64 == self.peer_size;
        if !complete {
            return Ok(());
        }
        let mut own = std::mem::take(&mut self.own_table);
        let mut peer = std::mem::take(&mut self.peer_table);
        sort_entries(&mut own);
        sort_entries(&mut peer);
        let joined = join(&own, &peer);
        drop(own);
        drop(peer);
        self.manifest.check_release(joined.distinct)?;
        let (output, outcome) = match self.mode {
            PsiMode::Intersection => (
                PsiOutput::Intersection {
                    positions: sorted(joined.own_positions),
                },
                Outcome::Completed,
            ),
            PsiMode::IntersectionBoth => (
                PsiOutput::Intersection {
                    positions: sorted(joined.own_positions),
                },
                Outcome::Positions(
                    sorted(joined.peer_positions)
                        .into_iter()
                        .map(|p| p as u32)
                        .collect(),
                ),
            ),
            PsiMode::Cardinality => (
                PsiOutput::Cardinality {
                    size: joined.distinct,
                },
                Outcome::Completed,
            ),
            PsiMode::IntersectionSum => {
                let sum = self.encrypted_sum(&joined.peer_positions)?;
                (
                    PsiOutput::Cardinality {
                        size: joined.distinct,
                    },
                    Outcome::Sum {
                        size: joined.distinct,
                        sum,
                    },
                )
            }
        };
        self.peer_values = Vec::new();
        self.seal(FrameKind::Outcome, &outcome.encode(), out);
        self.pending_output = Some(output);
        self.state = State::AwaitingConfirm;
        Ok(())
    }

    fn encrypted_sum(
        &mut self,
        positions: &[u64],
    ) -> Result<[CiphertextBytes; VALUE_LIMBS], PsiError> {
        let mut sum = [Ciphertext::zero(); VALUE_LIMBS];
        for &p in positions {
            let value = self
                .peer_values
                .get(p as usize)
                .ok_or(PsiError::CountMismatch {
                    what: "values",
                    declared: self.peer_size,
                    got: p,
                })?;
            for (acc, bytes) in sum.iter_mut().zip(value) {
                let c = Ciphertext::from_bytes(bytes).ok_or(PsiError::InvalidPoint {
                    kind: "valued-batch",
                    index: p as usize,
                })?;
                *acc = acc.add(&c);
            }
        }
        let pk = self
            .value_public
            .as_ref()
            .ok_or(PsiError::Usage("missing value key"))?;
        let mut out = [[[0u8; 32]; 2]; VALUE_LIMBS];
        for (slot, c) in out.iter_mut().zip(&sum) {
            let r = random_scalar(&mut self.rng);
            *slot = pk.rerandomize(c, &r).to_bytes();
        }
        Ok(out)
    }

    fn accept_outcome(&mut self, outcome: Outcome) -> Result<PsiOutput, PsiError> {
        let wrong = || PsiError::Unexpected {
            got: "outcome of another mode",
            state: "running",
        };
        Ok(match (self.mode, outcome) {
            (PsiMode::Intersection | PsiMode::Cardinality, Outcome::Completed) => {
                PsiOutput::Completed
            }
            (PsiMode::IntersectionBoth, Outcome::Positions(positions)) => {
                if positions
                    .last()
                    .is_some_and(|&p| u64::from(p) >= self.own_size)
                {
                    return Err(PsiError::CountMismatch {
                        what: "positions",
                        declared: self.own_size,
                        got: positions.len() as u64,
                    });
                }
                // The matcher enforced the minimum on distinct items; with duplicates there are
                // at least as many positions, so fewer means the outcome is not genuine.
                self.manifest.check_release(positions.len() as u64)?;
                PsiOutput::Intersection {
                    positions: positions.into_iter().map(u64::from).collect(),
                }
            }
            (PsiMode::IntersectionSum, Outcome::Sum { size, sum }) => {
                self.manifest.check_release(size)?;
                let sk = self
                    .value_secret
                    .as_ref()
                    .ok_or(PsiError::Usage("missing value key"))?;
                let bound = self
                    .own_size
                    .saturating_mul((1 << crate::elgamal::LIMB_BITS) - 1);
                let mut total = 0u64;
                for (k, bytes) in sum.iter().enumerate() {
                    let c = Ciphertext::from_bytes(bytes).ok_or(PsiError::InvalidPoint {
                        kind: "outcome",
                        index: k,
                    })?;
                    let limb = sk
                        .decrypt_bounded(&c, bound)
                        .ok_or(PsiError::SumOutOfRange)?;
                    total = total
                        .checked_add(limb << (crate::elgamal::LIMB_BITS * k as u32))
                        .ok_or(PsiError::SumOutOfRange)?;
                }
                PsiOutput::Sum { size, sum: total }
            }
            _ => return Err(wrong()),
        })
    }
}

/// Adds `add` received items to `so_far`, refusing more than the peer declared.
fn check_count(so_far: u64, add: usize, declared: u64) -> Result<u64, PsiError> {
    let got = so_far + add as u64;
    if got > declared {
        return Err(PsiError::CountMismatch {
            what: "items",
            declared,
            got,
        });
    }
    Ok(got)
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn sort_entries(v: &mut [u128]) {
    #[cfg(feature = "parallel")]
    {
        use rayon::slice::ParallelSliceMut;
        v.par_sort_unstable();
    }
    #[cfg(not(feature = "parallel"))]
    v.sort_unstable();
}

struct Joined {
    distinct: u64,
    own_positions: Vec<u64>,
    peer_positions: Vec<u64>,
}

/// Merge-join of two sorted (tag | position) tables.
fn join(own: &[u128], peer: &[u128]) -> Joined {
    let mut out = Joined {
        distinct: 0,
        own_positions: Vec::new(),
        peer_positions: Vec::new(),
    };
    let (mut i, mut j) = (0, 0);
    while i < own.len() && j < peer.len() {
        let (a, b) = (own[i] & TAG_MASK, peer[j] & TAG_MASK);
        if a < b {
            i += 1;
        } else if b < a {
            j += 1;
        } else {
            out.distinct += 1;
            while i < own.len() && own[i] & TAG_MASK == a {
                out.own_positions.push((own[i] & 0xffff_ffff) as u64);
                i += 1;
            }
            while j < peer.len() && peer[j] & TAG_MASK == a {
                out.peer_positions.push((peer[j] & 0xffff_ffff) as u64);
                j += 1;
            }
        }
    }
    out
}

/// Fisher–Yates shuffle of `len` positions driven by the session's ChaCha stream; `swap`
/// applies each transposition (to one or several aligned vectors).
fn shuffle_with(len: usize, rng: &mut ChaCha20Rng, mut swap: impl FnMut(usize, usize)) {
    for i in (1..len).rev() {
        // Lemire's unbiased bounded draw.
        let bound = i as u64 + 1;
        let j = loop {
            let x = rng.next_u64();
            let m = u128::from(x) * u128::from(bound);
            if (m as u64) >= bound.wrapping_neg() % bound {
                break (m >> 64) as usize;
            }
        };
        swap(i, j);
    }
}
