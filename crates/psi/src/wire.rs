//! PSI wire format: authenticated, sequenced frames and their payloads.
//!
//! ```text
//! frame   = version:u8  kind:u8  session:[16]  seq:u32  len:u32  payload:[len]  tag:[16]
//! tag     = BLAKE3-keyed(K_dir, chain_dir || frame-without-tag)[..16]
//! chain'  = BLAKE3-keyed(K_dir, chain_dir || frame-without-tag)      (full 32 bytes)
//! ```
//!
//! Each direction keeps its own sequence counter and hash chain, so a replayed, dropped,
//! reordered or cross-session frame is refused by the sequence or session check, and a frame
//! altered anywhere (or any earlier frame altered) fails its tag. Until both hellos are known
//! `K_dir` is a public per-session constant (the tag is then only a checksum); afterwards it is
//! derived from an ephemeral ristretto255 Diffie-Hellman between the hellos plus both hello
//! payloads and the manifest digest, so a hello changed in transit breaks every later tag.
//! Against an active man-in-the-middle the transport must authenticate the peers (mutual TLS);
//! see `docs/psi-security.md`.

use crate::codec::{DecodeError, Reader, put_len_u32};
use crate::error::{AbortCode, PsiError};
use crate::manifest::Role;

/// Version byte of every frame.
/// Version 2: the masked values are X25519 u-coordinates (version 1 used ristretto255).
pub const PROTOCOL_VERSION: u8 = 2;
/// Bytes of a frame's authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 1 + 1 + 16 + 4 + 4;
/// Largest payload accepted (bounds the memory a forged length can claim).
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Most items in one batch message.
pub const MAX_BATCH_ITEMS: u64 = 1 << 16;
/// Ciphertexts per value in `IntersectionSum` (a `u32` split into two 16-bit limbs).
pub const VALUE_LIMBS: usize = 2;

/// A session identifier, fresh for every job run.
pub type SessionId = [u8; 16];

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Opening message of each party.
    Hello,
    /// A batch of singly-masked points.
    Masked,
    /// A batch of singly-masked points with encrypted values (`IntersectionSum`).
    Valued,
    /// A batch of comparison tags of doubly-masked points.
    Returned,
    /// The matcher's outcome message.
    Outcome,
    /// The helper's transcript confirmation.
    Confirm,
    /// The job stops.
    Abort,
}

impl FrameKind {
    fn code(self) -> u8 {
        match self {
            Self::Hello => 1,
            Self::Masked => 2,
            Self::Valued => 3,
            Self::Returned => 4,
            Self::Outcome => 5,
            Self::Confirm => 6,
            Self::Abort => 7,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            1 => Self::Hello,
            2 => Self::Masked,
            3 => Self::Valued,
            4 => Self::Returned,
            5 => Self::Outcome,
            6 => Self::Confirm,
            7 => Self::Abort,
            _ => {
                return Err(DecodeError::InvalidField {
                    field: "frame.kind",
                    reason: "unknown kind",
                });
            }
        })
    }

    /// Name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::Masked => "masked-batch",
            Self::Valued => "valued-batch",
            Self::Returned => "returned-tags",
            Self::Outcome => "outcome",
            Self::Confirm => "confirm",
            Self::Abort => "abort",
        }
    }
}

/// A decoded (not yet authenticated) frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Kind of payload.
    pub kind: FrameKind,
    /// Session the frame belongs to.
    pub session: SessionId,
    /// Per-direction sequence number.
    pub seq: u32,
    /// Payload bytes.
    pub payload: &'a [u8],
    /// Authentication tag.
    pub tag: [u8; TAG_LEN],
    /// The bytes the tag covers (header and payload).
    pub authenticated: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Parses the frame layout; rejects unknown versions, oversize and trailing data.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, PsiError> {
        let malformed = |source| PsiError::Malformed {
            kind: "frame",
            source,
        };
        let mut r = Reader::new(bytes);
        let version = r.u8("frame.version").map_err(malformed)?;
        if version != PROTOCOL_VERSION {
            return Err(PsiError::Version(version));
        }
        let kind =
            FrameKind::from_code(r.u8("frame.kind").map_err(malformed)?).map_err(malformed)?;
        let session = r.array("frame.session").map_err(malformed)?;
        let seq = r.u32("frame.seq").map_err(malformed)?;
        let len = r.u32("frame.len").map_err(malformed)? as usize;
        if len > MAX_PAYLOAD {
            return Err(malformed(DecodeError::TooMany {
                field: "frame.len",
                count: len as u64,
                max: MAX_PAYLOAD as u64,
            }));
        }
        let payload = r.take(len, "frame.payload").map_err(malformed)?;
        let tag = r.array("frame.tag").map_err(malformed)?;
        r.finish("frame").map_err(malformed)?;
        let authenticated = &bytes[..HEADER_LEN + len];
        Ok(Self {
            kind,
            session,
            seq,
            payload,
            tag,
            authenticated,
        })
    }
}

/// Length of the frame starting at `buf`, once its header is available: lets a stream transport
/// split frames without understanding them. `None` if fewer than [`HEADER_LEN`] bytes are there.
pub fn frame_len(buf: &[u8]) -> Option<Result<usize, PsiError>> {
    let header = buf.get(..HEADER_LEN)?;
    let mut len = [0u8; 4];
    len.copy_from_slice(&header[HEADER_LEN - 4..]);
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_PAYLOAD {
        return Some(Err(PsiError::Malformed {
            kind: "frame",
            source: DecodeError::TooMany {
                field: "frame.len",
                count: len as u64,
                max: MAX_PAYLOAD as u64,
            },
        }));
    }
    Some(Ok(HEADER_LEN + len + TAG_LEN))
}

#[derive(Clone)]
struct Direction {
    key: [u8; 32],
    chain: [u8; 32],
    next_seq: u32,
}

impl Direction {
    fn mac(&self, authenticated: &[u8]) -> [u8; 32] {
        *blake3::Hasher::new_keyed(&self.key)
            .update(&self.chain)
            .update(authenticated)
            .finalize()
            .as_bytes()
    }
}

/// Sequencing and authentication state of one session, both directions.
#[derive(Clone)]
pub(crate) struct Channel {
    session: SessionId,
    send: Direction,
    recv: Direction,
}

impl Channel {
    pub(crate) fn new(session: SessionId) -> Self {
        let mut h = blake3::Hasher::new_derive_key("citybrain-psi v1 hello checksum");
        h.update(&session);
        let key = *h.finalize().as_bytes();
        let dir = Direction {
            key,
            chain: [0; 32],
            next_seq: 0,
        };
        Self {
            session,
            send: dir.clone(),
            recv: dir,
        }
    }

    /// Switches both directions to keys derived from the hello exchange.
    pub(crate) fn rekey(&mut self, own_role: Role, shared: &[u8; 32], context: &[u8]) {
        let derive = |label: &str| {
            let mut h = blake3::Hasher::new_derive_key(label);
            h.update(shared).update(&self.session).update(context);
            *h.finalize().as_bytes()
        };
        let m2h = derive("citybrain-psi v1 frame key matcher->helper");
        let h2m = derive("citybrain-psi v1 frame key helper->matcher");
        let (send, recv) = match own_role {
            Role::Matcher => (m2h, h2m),
            Role::Helper => (h2m, m2h),
        };
        self.send.key = send;
        self.recv.key = recv;
    }

    pub(crate) fn send_chain(&self) -> [u8; 32] {
        self.send.chain
    }

    pub(crate) fn recv_chain(&self) -> [u8; 32] {
        self.recv.chain
    }

    /// Builds, tags and sequences an outgoing frame.
    pub(crate) fn seal(&mut self, kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
        out.push(PROTOCOL_VERSION);
        out.push(kind.code());
        out.extend_from_slice(&self.session);
        out.extend_from_slice(&self.send.next_seq.to_le_bytes());
        put_len_u32(&mut out, payload.len());
        out.extend_from_slice(payload);
        let mac = self.send.mac(&out);
        out.extend_from_slice(&mac[..TAG_LEN]);
        self.send.chain = mac;
        self.send.next_seq = self.send.next_seq.wrapping_add(1);
        out
    }

    /// Checks session, sequence and tag of an incoming frame and advances the chain.
    ///
    /// An abort frame is accepted when its session matches even if its tag does not verify: a
    /// party that detected tampering may no longer share our chain, and an attacker able to
    /// inject frames can stop the job by dropping traffic anyway.
    pub(crate) fn open<'a>(&mut self, bytes: &'a [u8]) -> Result<Frame<'a>, PsiError> {
        let frame = Frame::decode(bytes)?;
        if frame.session != self.session {
            return Err(PsiError::WrongSession);
        }
        if frame.kind == FrameKind::Abort {
            return Ok(frame);
        }
        if frame.seq != self.recv.next_seq {
            return Err(PsiError::Sequence {
                expected: self.recv.next_seq,
                got: frame.seq,
            });
        }
        let mac = self.recv.mac(frame.authenticated);
        if !constant_time_eq(&mac[..TAG_LEN], &frame.tag) {
            return Err(PsiError::Authentication);
        }
        self.recv.chain = mac;
        self.recv.next_seq = self.recv.next_seq.wrapping_add(1);
        Ok(frame)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The hello each party sends first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Digest of the manifest the sender approved.
    pub manifest_digest: [u8; 32],
    /// Sender's role.
    pub role: Role,
    /// Number of items the sender will bring.
    pub set_size: u64,
    /// Sender's ephemeral Diffie-Hellman point (frame keys).
    pub ephemeral: [u8; 32],
    /// `IntersectionSum` only: the helper's ElGamal public key for its values.
    pub value_key: Option<[u8; 32]>,
}

impl Hello {
    /// Encodes the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 1 + 8 + 32 + 33);
        out.extend_from_slice(&self.manifest_digest);
        out.push(self.role.code());
        out.extend_from_slice(&self.set_size.to_le_bytes());
        out.extend_from_slice(&self.ephemeral);
        match &self.value_key {
            None => out.push(0),
            Some(k) => {
                out.push(1);
                out.extend_from_slice(k);
            }
        }
        out
    }

    /// Decodes the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let manifest_digest = r.array("hello.manifest_digest")?;
        let role = match r.u8("hello.role")? {
            1 => Role::Matcher,
            2 => Role::Helper,
            _ => {
                return Err(DecodeError::InvalidField {
                    field: "hello.role",
                    reason: "unknown",
                });
            }
        };
        let set_size = r.u64("hello.set_size")?;
        let ephemeral = r.array("hello.ephemeral")?;
        let value_key = match r.u8("hello.value_key.present")? {
            0 => None,
            1 => Some(r.array("hello.value_key")?),
            _ => {
                return Err(DecodeError::InvalidField {
                    field: "hello.value_key.present",
                    reason: "must be 0 or 1",
                });
            }
        };
        r.finish("hello")?;
        Ok(Self {
            manifest_digest,
            role,
            set_size,
            ephemeral,
            value_key,
        })
    }
}

/// Encodes a batch of points.
pub fn encode_points(points: &[[u8; 32]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + points.len() * 32);
    put_len_u32(&mut out, points.len());
    for p in points {
        out.extend_from_slice(p);
    }
    out
}

/// Decodes a batch of points (encodings only; group membership is checked on use).
pub fn decode_points(payload: &[u8]) -> Result<Vec<[u8; 32]>, DecodeError> {
    let mut r = Reader::new(payload);
    let n = r.count("masked.count", MAX_BATCH_ITEMS, 32)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(r.array("masked.point")?);
    }
    r.finish("masked-batch")?;
    Ok(out)
}

/// One ElGamal ciphertext, compressed: `(r·G, v·G + r·K)`.
pub type CiphertextBytes = [[u8; 32]; 2];

/// A masked point with the encrypted limbs of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuedPoint {
    /// Singly-masked item.
    pub point: [u8; 32],
    /// Encrypted value limbs, least significant first.
    pub value: [CiphertextBytes; VALUE_LIMBS],
}

const VALUED_LEN: usize = 32 + VALUE_LIMBS * 64;

/// Encodes a valued batch.
pub fn encode_valued(items: &[ValuedPoint]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + items.len() * VALUED_LEN);
    put_len_u32(&mut out, items.len());
    for item in items {
        out.extend_from_slice(&item.point);
        for [a, b] in &item.value {
            out.extend_from_slice(a);
            out.extend_from_slice(b);
        }
    }
    out
}

/// Decodes a valued batch.
pub fn decode_valued(payload: &[u8]) -> Result<Vec<ValuedPoint>, DecodeError> {
    let mut r = Reader::new(payload);
    let n = r.count("valued.count", MAX_BATCH_ITEMS, VALUED_LEN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let point = r.array("valued.point")?;
        let mut value = [[[0u8; 32]; 2]; VALUE_LIMBS];
        for limb in &mut value {
            *limb = [r.array("valued.c1")?, r.array("valued.c2")?];
        }
        out.push(ValuedPoint { point, value });
    }
    r.finish("valued-batch")?;
    Ok(out)
}

/// Encodes comparison tags of `tag_len` bytes each (packed in the top bits of `u128`s).
pub fn encode_tags(tags: &[u128], tag_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + tags.len() * tag_len);
    put_len_u32(&mut out, tags.len());
    for t in tags {
        out.extend_from_slice(&t.to_be_bytes()[..tag_len]);
    }
    out
}

/// Decodes comparison tags of `tag_len` bytes each.
pub fn decode_tags(payload: &[u8], tag_len: usize) -> Result<Vec<u128>, DecodeError> {
    if !(crate::group::TagHasher::MIN_LEN..=crate::group::TagHasher::MAX_LEN).contains(&tag_len) {
        return Err(DecodeError::InvalidField {
            field: "tag_len",
            reason: "out of range",
        });
    }
    let mut r = Reader::new(payload);
    let n = r.count("returned.count", MAX_BATCH_ITEMS, tag_len)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(crate::group::TagHasher::pack(
            r.take(tag_len, "returned.tag")?,
        ));
    }
    r.finish("returned-tags")?;
    Ok(out)
}

/// What the matcher tells the helper at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The job completed; the helper learns nothing more.
    Completed,
    /// Positions (in the helper's input order) of the helper's items in the intersection.
    Positions(Vec<u32>),
    /// Intersection size and the re-randomised encrypted sum of the helper's values over it.
    Sum {
        /// Intersection size.
        size: u64,
        /// Encrypted limb sums.
        sum: [CiphertextBytes; VALUE_LIMBS],
    },
}

impl Outcome {
    /// Encodes the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Completed => out.push(1),
            Self::Positions(positions) => {
                out.push(2);
                out.extend_from_slice(&(positions.len() as u64).to_le_bytes());
                for p in positions {
                    out.extend_from_slice(&p.to_le_bytes());
                }
            }
            Self::Sum { size, sum } => {
                out.push(3);
                out.extend_from_slice(&size.to_le_bytes());
                for [a, b] in sum {
                    out.extend_from_slice(a);
                    out.extend_from_slice(b);
                }
            }
        }
        out
    }

    /// Decodes the payload; positions must be strictly increasing.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        let outcome = match r.u8("outcome.kind")? {
            1 => Self::Completed,
            2 => {
                let n = r.u64("outcome.positions.count")?;
                if n.saturating_mul(4) > r.remaining() as u64 {
                    return Err(DecodeError::Truncated {
                        field: "outcome.positions",
                        needed: usize::try_from(n.saturating_mul(4)).unwrap_or(usize::MAX),
                        available: r.remaining(),
                    });
                }
                let mut positions = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let p = r.u32("outcome.position")?;
                    if positions.last().is_some_and(|&last| last >= p) {
                        return Err(DecodeError::InvalidField {
                            field: "outcome.position",
                            reason: "positions must be strictly increasing",
                        });
                    }
                    positions.push(p);
                }
                Self::Positions(positions)
            }
            3 => {
                let size = r.u64("outcome.size")?;
                let mut sum = [[[0u8; 32]; 2]; VALUE_LIMBS];
                for limb in &mut sum {
                    *limb = [r.array("outcome.sum.c1")?, r.array("outcome.sum.c2")?];
                }
                Self::Sum { size, sum }
            }
            _ => {
                return Err(DecodeError::InvalidField {
                    field: "outcome.kind",
                    reason: "unknown outcome",
                });
            }
        };
        r.finish("outcome")?;
        Ok(outcome)
    }
}

/// Decodes a confirm payload: the helper's view of the matcher→helper chain.
pub fn decode_confirm(payload: &[u8]) -> Result<[u8; 32], DecodeError> {
    let mut r = Reader::new(payload);
    let chain = r.array("confirm.chain")?;
    r.finish("confirm")?;
    Ok(chain)
}

/// Decodes an abort payload.
pub fn decode_abort(payload: &[u8]) -> Result<AbortCode, DecodeError> {
    let mut r = Reader::new(payload);
    let code = AbortCode::from_code(r.u8("abort.code")?)?;
    r.finish("abort")?;
    Ok(code)
}

/// Encodes an abort payload.
pub fn encode_abort(code: AbortCode) -> Vec<u8> {
    vec![code.code()]
}

/// Splits a byte stream (a TCP connection, or an HTTP body carrying several frames) into
/// frames without interpreting them. Pure: the caller feeds whatever bytes it read.
#[derive(Debug, Default)]
pub struct FrameSplitter {
    buf: Vec<u8>,
    start: usize,
}

impl FrameSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if one is buffered. An impossible length (over
    /// [`MAX_PAYLOAD`]) is an error: the stream cannot be resynchronised and must be dropped.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, PsiError> {
        let pending = &self.buf[self.start..];
        match frame_len(pending) {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok(len)) if pending.len() < len => Ok(None),
            Some(Ok(len)) => {
                let frame = pending[..len].to_vec();
                self.start += len;
                Ok(Some(frame))
            }
        }
    }

    /// Bytes buffered but not yet returned as frames (non-zero at the end of a stream means
    /// the last frame was truncated).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}
