//! Messages: `Envelope | Header | Body | Credential` (RFC 3652 §2.2), all big-endian.
//!
//! ```text
//! Envelope (20): major u8 | minor u8 | flags u8 | suggested-minor u8 | session u32 | request u32
//!                | sequence u32 | message length u32 (header + body + credential)
//! Header (24):   op code u32 | response code u32 | op flags u32 | site serial u16
//!                | recursion u8 | reserved u8 | expiration u32 | body length u32
//! Credential:    u32 length (0 = none) + bytes; may be absent altogether (CNRI tolerates that)
//! ```
//!
//! The body layout depends on the op code, on the response code (0 = request) and, for
//! responses, on the RD flag: a response with RD set starts with `u8 algorithm + digest`.

use crate::codec::{Codec, MAX_FIELD_LENGTH, Reader, patch_u32, put_bytes, put_u16, put_u32};
use crate::constants::{
    DigestAlgorithm, ENVELOPE_SIZE, EnvelopeFlags, HEADER_SIZE, MAX_HANDLE_LENGTH,
    MAX_MESSAGE_LENGTH, OpCode, OpFlags, ResponseCode,
};
use crate::data::SiteInfo;
use crate::error::InvalidMessage;
use crate::value::{HandleValue, MIN_VALUE_SIZE};

/// The 20-byte envelope, outside the signed part of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// Protocol major version (2).
    pub major: u8,
    /// Protocol minor version.
    pub minor: u8,
    /// CP/EC/TC bits.
    pub flags: EnvelopeFlags,
    /// Octet 3: zero in CNRI 7.3; DO-IRP uses it for a suggested minor version.
    pub suggested_minor: u8,
    /// Session id (0 = none).
    pub session_id: u32,
    /// Request id, echoed in the response.
    pub request_id: u32,
    /// UDP fragment number (0, 1, 2, …).
    pub sequence_number: u32,
    /// Length of header + body + credential (the whole message, not this fragment).
    pub message_length: u32,
}

impl Envelope {
    /// An envelope for protocol 2.1 (what CNRI 7.3 answered a 2.1 probe with).
    pub fn new(request_id: u32) -> Self {
        Self {
            major: 2,
            minor: 1,
            flags: EnvelopeFlags(0),
            suggested_minor: 0,
            session_id: 0,
            request_id,
            sequence_number: 0,
            message_length: 0,
        }
    }

    /// Whether the peer speaks at least `major.minor`.
    pub fn at_least(&self, major: u8, minor: u8) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl Codec for Envelope {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.major, self.minor, self.flags.0, self.suggested_minor]);
        put_u32(out, self.session_id);
        put_u32(out, self.request_id);
        put_u32(out, self.sequence_number);
        put_u32(out, self.message_length);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let major = r.u8("envelope major version")?;
        let minor = r.u8("envelope minor version")?;
        let flags = EnvelopeFlags(r.u8("envelope flags")?);
        let suggested_minor = r.u8("envelope suggested minor")?;
        let session_id = r.u32("envelope session id")?;
        let request_id = r.u32("envelope request id")?;
        let sequence_number = r.u32("envelope sequence number")?;
        let message_length = r.u32("envelope message length")?;
        if message_length as usize > MAX_MESSAGE_LENGTH {
            return Err(InvalidMessage::TooLong {
                field: "envelope message length",
                len: message_length as usize,
                max: MAX_MESSAGE_LENGTH,
            });
        }
        Ok(Self {
            major,
            minor,
            flags,
            suggested_minor,
            session_id,
            request_id,
            sequence_number,
            message_length,
        })
    }
}

/// The 24-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Operation.
    pub op_code: OpCode,
    /// Response code (RESERVED in requests).
    pub response_code: ResponseCode,
    /// Flag bits.
    pub op_flags: OpFlags,
    /// Site info serial number the sender knows.
    pub site_info_serial: u16,
    /// Recursion count.
    pub recursion_count: u8,
    /// Expiration, unix seconds.
    pub expiration: u32,
    /// Body length in bytes.
    pub body_length: u32,
}

impl Header {
    /// A request header for `op_code` with `flags`.
    pub fn request(op_code: OpCode, flags: u32) -> Self {
        Self {
            op_code,
            response_code: ResponseCode::RESERVED,
            op_flags: OpFlags(flags),
            site_info_serial: 0,
            recursion_count: 0,
            expiration: 0,
            body_length: 0,
        }
    }

    /// Whether this is a request (response code 0).
    pub fn is_request(&self) -> bool {
        self.response_code == ResponseCode::RESERVED
    }
}

impl Codec for Header {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u32(out, self.op_code.0);
        put_u32(out, self.response_code.0);
        put_u32(out, self.op_flags.0);
        put_u16(out, self.site_info_serial);
        out.push(self.recursion_count);
        out.push(0);
        put_u32(out, self.expiration);
        put_u32(out, self.body_length);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let op_code = OpCode(r.u32("header op code")?);
        let response_code = ResponseCode(r.u32("header response code")?);
        let op_flags = OpFlags(r.u32("header op flags")?);
        let site_info_serial = r.u16("header site info serial")?;
        let recursion_count = r.u8("header recursion count")?;
        r.u8("header reserved")?;
        let expiration = r.u32("header expiration")?;
        let body_length = r.u32("header body length")?;
        Ok(Self {
            op_code,
            response_code,
            op_flags,
            site_info_serial,
            recursion_count,
            expiration,
            body_length,
        })
    }
}

/// A digest of the request, echoed at the start of a response body when RD is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDigest {
    /// Hash algorithm.
    pub algorithm: DigestAlgorithm,
    /// Digest bytes.
    pub digest: Vec<u8>,
}

impl RequestDigest {
    /// Digests the request's header and body (the `messageBody` CNRI hashes; no envelope,
    /// no credential).
    pub fn of(algorithm: DigestAlgorithm, header_and_body: &[u8]) -> Self {
        Self {
            algorithm,
            digest: algorithm.hash(&[header_and_body]),
        }
    }
}

impl Codec for RequestDigest {
    fn encode(&self, out: &mut Vec<u8>) {
        match self.algorithm {
            DigestAlgorithm::Md5OldFormat => put_bytes(out, &self.digest),
            alg => {
                debug_assert_eq!(self.digest.len(), alg.len());
                out.push(alg.code());
                out.extend_from_slice(&self.digest);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let code = r.u8("request digest algorithm")?;
        let algorithm =
            DigestAlgorithm::from_code(code).ok_or(InvalidMessage::UnknownDigestAlgorithm(code))?;
        let digest = if algorithm == DigestAlgorithm::Md5OldFormat {
            // The old format has no algorithm byte: the 0 we read is the top of a u32 length.
            let rest = r.take(3, "request digest length")?;
            let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            r.take(len, "request digest")?.to_vec()
        } else {
            r.take(algorithm.len(), "request digest")?.to_vec()
        };
        Ok(Self { algorithm, digest })
    }
}

/// A handle and a list of values (CREATE_HANDLE, ADD_VALUE, MODIFY_VALUE requests;
/// RESOLUTION responses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandleValues {
    /// Handle name.
    pub handle: String,
    /// Values.
    pub values: Vec<HandleValue>,
}

/// OC_CHALLENGE_RESPONSE body: the client's answer to a 402 challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeAnswer {
    /// `HS_SECKEY` or `HS_PUBKEY`.
    pub auth_type: String,
    /// Handle holding the key.
    pub key_handle: String,
    /// Index of the key value.
    pub key_index: u32,
    /// For HS_SECKEY: `alg u8 + H(secret ‖ nonce ‖ digest ‖ secret)`; for HS_PUBKEY:
    /// `UTF-8 hash algorithm + bytes signature` over `nonce ‖ digest`.
    pub response: Vec<u8>,
}

/// OC_VERIFY_RESPONSE body: ask the server holding a secret key whether an answer is right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyAuth {
    /// Handle holding the key.
    pub key_handle: String,
    /// Index of the key value (0 = any HS_SECKEY).
    pub key_index: u32,
    /// The challenge nonce.
    pub nonce: Vec<u8>,
    /// Digest of the original request.
    pub request_digest: RequestDigest,
    /// The client's answer.
    pub response: Vec<u8>,
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// OC_RESOLUTION: empty lists mean "all".
    Resolution {
        /// Handle to resolve.
        handle: String,
        /// Requested indices.
        indexes: Vec<u32>,
        /// Requested types (`X.` selects a type hierarchy).
        types: Vec<String>,
    },
    /// OC_GET_SITE_INFO and the other bodies that hold only a handle (home/unhome NA,
    /// session terminate, list homed NAs): CNRI's `GenericRequest`.
    Generic {
        /// The handle field (may be empty).
        handle: String,
    },
    /// OC_CREATE_HANDLE.
    CreateHandle(HandleValues),
    /// OC_DELETE_HANDLE.
    DeleteHandle {
        /// Handle to delete.
        handle: String,
    },
    /// OC_ADD_VALUE.
    AddValue(HandleValues),
    /// OC_MODIFY_VALUE.
    ModifyValue(HandleValues),
    /// OC_REMOVE_VALUE.
    RemoveValue {
        /// Handle.
        handle: String,
        /// Indices to remove.
        indexes: Vec<u32>,
    },
    /// OC_LIST_HANDLES / OC_LIST_NAS: the prefix handle `0.NA/<prefix>`.
    ListHandles {
        /// Prefix handle.
        handle: String,
    },
    /// OC_CHALLENGE_RESPONSE.
    ChallengeAnswer(ChallengeAnswer),
    /// OC_VERIFY_RESPONSE.
    VerifyAuth(VerifyAuth),
    /// An op code whose body we do not model; kept raw.
    Unknown(Vec<u8>),
}

/// A response body (after the optional request digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// SUCCESS to OC_RESOLUTION.
    Resolution(HandleValues),
    /// SUCCESS to OC_GET_SITE_INFO.
    SiteInfo(SiteInfo),
    /// SUCCESS to OC_LIST_HANDLES / OC_LIST_NAS / OC_LIST_HOMED_NAS.
    HandleList(Vec<String>),
    /// SUCCESS to OC_VERIFY_RESPONSE.
    VerifyAuth {
        /// Whether the answer matched.
        valid: bool,
    },
    /// SUCCESS with no payload (create, delete, add/modify/remove value, home/unhome).
    Empty,
    /// AUTHENTICATION_NEEDED: the challenge.
    Challenge {
        /// Server nonce (CNRI: 16 bytes).
        nonce: Vec<u8>,
    },
    /// SERVICE_REFERRAL / NA_DELEGATE.
    Referral {
        /// Referral handle; when empty the values carry the service info.
        handle: String,
        /// Inline values (HS_SITE / HS_SERV).
        values: Option<Vec<HandleValue>>,
    },
    /// Any error code: a message and, in DO-IRP, the offending value indices.
    Error {
        /// Human-readable message (UTF-8 as sent; lossily decoded if not).
        message: String,
        /// Indices of offending values (DO-IRP; CNRI 7.3 never sends them).
        indexes: Vec<u32>,
    },
    /// A success payload for an op code we do not model; kept raw.
    Unknown(Vec<u8>),
}

/// A decoded message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A request.
    Request(Request),
    /// A response, with its request digest when RD was set.
    Response {
        /// Echoed digest.
        digest: Option<RequestDigest>,
        /// Payload.
        response: Response,
    },
}

/// A complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Envelope (its `message_length` is recomputed on encode).
    pub envelope: Envelope,
    /// Header (its `body_length` is recomputed on encode).
    pub header: Header,
    /// Body.
    pub body: Body,
    /// Credential bytes (empty = `00 00 00 00`, i.e. unsigned).
    pub credential: Vec<u8>,
}

fn handle_field<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<&'a str, InvalidMessage> {
    let len = r.length(field, MAX_HANDLE_LENGTH)?;
    let raw = r.take(len, field)?;
    std::str::from_utf8(raw).map_err(|_| InvalidMessage::InvalidUtf8(field))
}

fn read_values(r: &mut Reader<'_>) -> Result<Vec<HandleValue>, InvalidMessage> {
    let n = r.count("value count", MIN_VALUE_SIZE)?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(HandleValue::read(r)?);
    }
    Ok(values)
}

fn read_handle_values(r: &mut Reader<'_>) -> Result<HandleValues, InvalidMessage> {
    let handle = handle_field(r, "handle")?.to_owned();
    let values = read_values(r)?;
    Ok(HandleValues { handle, values })
}

fn read_index_list(r: &mut Reader<'_>, field: &'static str) -> Result<Vec<u32>, InvalidMessage> {
    let n = r.count(field, 4)?;
    (0..n).map(|_| r.u32(field)).collect()
}

fn put_values(out: &mut Vec<u8>, hv: &HandleValues) {
    put_bytes(out, hv.handle.as_bytes());
    put_u32(out, hv.values.len() as u32);
    for v in &hv.values {
        v.encode(out);
    }
}

fn put_index_list(out: &mut Vec<u8>, indexes: &[u32]) {
    put_u32(out, indexes.len() as u32);
    for i in indexes {
        put_u32(out, *i);
    }
}

impl Request {
    /// Decodes a request body for `op_code`; the reader must hold exactly the body.
    pub fn read(op_code: OpCode, r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        Ok(match op_code {
            OpCode::RESOLUTION => {
                let handle = handle_field(r, "handle")?.to_owned();
                let indexes = read_index_list(r, "index list")?;
                let n = r.count("type list", 4)?;
                let mut types = Vec::with_capacity(n);
                for _ in 0..n {
                    types.push(r.utf8("type")?.to_owned());
                }
                Self::Resolution {
                    handle,
                    indexes,
                    types,
                }
            }
            OpCode::GET_SITE_INFO
            | OpCode::HOME_NA
            | OpCode::UNHOME_NA
            | OpCode::LIST_HOMED_NAS
            | OpCode::SESSION_TERMINATE => {
                // CNRI sends GET_SITE_INFO with an empty handle; some clients send no body at all.
                let handle = if r.any_left() {
                    handle_field(r, "handle")?.to_owned()
                } else {
                    String::new()
                };
                Self::Generic { handle }
            }
            OpCode::CREATE_HANDLE => Self::CreateHandle(read_handle_values(r)?),
            OpCode::ADD_VALUE => Self::AddValue(read_handle_values(r)?),
            OpCode::MODIFY_VALUE => Self::ModifyValue(read_handle_values(r)?),
            OpCode::DELETE_HANDLE => Self::DeleteHandle {
                handle: handle_field(r, "handle")?.to_owned(),
            },
            OpCode::REMOVE_VALUE => {
                let handle = handle_field(r, "handle")?.to_owned();
                Self::RemoveValue {
                    handle,
                    indexes: read_index_list(r, "index list")?,
                }
            }
            OpCode::LIST_HANDLES | OpCode::LIST_NAS => Self::ListHandles {
                handle: handle_field(r, "handle")?.to_owned(),
            },
            OpCode::CHALLENGE_RESPONSE => Self::ChallengeAnswer(ChallengeAnswer {
                auth_type: r.utf8("auth type")?.to_owned(),
                key_handle: handle_field(r, "key handle")?.to_owned(),
                key_index: r.u32("key index")?,
                response: r.bytes("challenge response")?.to_vec(),
            }),
            OpCode::VERIFY_RESPONSE => Self::VerifyAuth(VerifyAuth {
                key_handle: handle_field(r, "key handle")?.to_owned(),
                key_index: r.u32("key index")?,
                nonce: r.bytes("nonce")?.to_vec(),
                request_digest: RequestDigest::read(r)?,
                response: r.bytes("challenge response")?.to_vec(),
            }),
            _ => Self::Unknown(r.rest().to_vec()),
        })
    }

    /// Appends the body.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Resolution {
                handle,
                indexes,
                types,
            } => {
                put_bytes(out, handle.as_bytes());
                put_index_list(out, indexes);
                put_u32(out, types.len() as u32);
                for t in types {
                    put_bytes(out, t.as_bytes());
                }
            }
            Self::Generic { handle }
            | Self::DeleteHandle { handle }
            | Self::ListHandles { handle } => put_bytes(out, handle.as_bytes()),
            Self::CreateHandle(hv) | Self::AddValue(hv) | Self::ModifyValue(hv) => {
                put_values(out, hv)
            }
            Self::RemoveValue { handle, indexes } => {
                put_bytes(out, handle.as_bytes());
                put_index_list(out, indexes);
            }
            Self::ChallengeAnswer(a) => {
                put_bytes(out, a.auth_type.as_bytes());
                put_bytes(out, a.key_handle.as_bytes());
                put_u32(out, a.key_index);
                put_bytes(out, &a.response);
            }
            Self::VerifyAuth(v) => {
                put_bytes(out, v.key_handle.as_bytes());
                put_u32(out, v.key_index);
                put_bytes(out, &v.nonce);
                v.request_digest.encode(out);
                put_bytes(out, &v.response);
            }
            Self::Unknown(raw) => out.extend_from_slice(raw),
        }
    }

    /// The handle the request is about, if any.
    pub fn handle(&self) -> Option<&str> {
        match self {
            Self::Resolution { handle, .. }
            | Self::Generic { handle }
            | Self::DeleteHandle { handle }
            | Self::RemoveValue { handle, .. }
            | Self::ListHandles { handle } => Some(handle),
            Self::CreateHandle(hv) | Self::AddValue(hv) | Self::ModifyValue(hv) => Some(&hv.handle),
            Self::ChallengeAnswer(a) => Some(&a.key_handle),
            Self::VerifyAuth(v) => Some(&v.key_handle),
            Self::Unknown(_) => None,
        }
    }
}

impl Response {
    /// Decodes a response payload (after the digest) for `op_code` and `code`.
    pub fn read(
        op_code: OpCode,
        code: ResponseCode,
        r: &mut Reader<'_>,
    ) -> Result<Self, InvalidMessage> {
        Ok(match code {
            ResponseCode::SUCCESS => match op_code {
                OpCode::RESOLUTION => Self::Resolution(read_handle_values(r)?),
                OpCode::GET_SITE_INFO => Self::SiteInfo(SiteInfo::read(r)?),
                OpCode::LIST_HANDLES | OpCode::LIST_NAS | OpCode::LIST_HOMED_NAS => {
                    let n = r.count("handle count", 4)?;
                    let mut handles = Vec::with_capacity(n);
                    for _ in 0..n {
                        handles.push(handle_field(r, "listed handle")?.to_owned());
                    }
                    Self::HandleList(handles)
                }
                OpCode::VERIFY_RESPONSE => Self::VerifyAuth {
                    valid: r.u8("verify result")? & 1 == 1,
                },
                OpCode::CREATE_HANDLE
                | OpCode::DELETE_HANDLE
                | OpCode::ADD_VALUE
                | OpCode::MODIFY_VALUE
                | OpCode::REMOVE_VALUE
                | OpCode::HOME_NA
                | OpCode::UNHOME_NA
                | OpCode::SESSION_TERMINATE
                    if !r.any_left() =>
                {
                    Self::Empty
                }
                _ => Self::Unknown(r.rest().to_vec()),
            },
            ResponseCode::AUTHENTICATION_NEEDED => Self::Challenge {
                nonce: r.bytes("nonce")?.to_vec(),
            },
            ResponseCode::SERVICE_REFERRAL | ResponseCode::NA_DELEGATE => {
                let handle = handle_field(r, "referral handle")?.to_owned();
                let values = if r.any_left() {
                    Some(read_values(r)?)
                } else {
                    None
                };
                Self::Referral { handle, values }
            }
            _ => {
                // CNRI 2.0 peers may omit the message entirely; DO-IRP may append indices.
                let message = if r.any_left() {
                    String::from_utf8_lossy(r.bytes("error message")?).into_owned()
                } else {
                    String::new()
                };
                let indexes = if r.any_left() {
                    read_index_list(r, "error index list")?
                } else {
                    Vec::new()
                };
                Self::Error { message, indexes }
            }
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Resolution(hv) => put_values(out, hv),
            Self::SiteInfo(site) => site.encode(out),
            Self::HandleList(handles) => {
                put_u32(out, handles.len() as u32);
                for h in handles {
                    put_bytes(out, h.as_bytes());
                }
            }
            Self::VerifyAuth { valid } => out.push(u8::from(*valid)),
            Self::Empty => {}
            Self::Challenge { nonce } => put_bytes(out, nonce),
            Self::Referral { handle, values } => {
                put_bytes(out, handle.as_bytes());
                if let Some(values) = values {
                    put_u32(out, values.len() as u32);
                    for v in values {
                        v.encode(out);
                    }
                }
            }
            Self::Error { message, indexes } => {
                put_bytes(out, message.as_bytes());
                if !indexes.is_empty() {
                    put_index_list(out, indexes);
                }
            }
            Self::Unknown(raw) => out.extend_from_slice(raw),
        }
    }
}

impl Message {
    /// Decodes one complete message (envelope included, all fragments already joined).
    /// The envelope's `message_length` and the header's `body_length` must agree with the bytes.
    pub fn read_bytes(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let envelope = Envelope::read(&mut r)?;
        check_envelope(&envelope)?;
        if r.left() != envelope.message_length as usize {
            return Err(InvalidMessage::LengthMismatch {
                field: "envelope message length",
                declared: envelope.message_length as usize,
                actual: r.left(),
            });
        }
        let (header, body, credential) = Self::read_after_envelope(&mut r)?;
        Ok(Self {
            envelope,
            header,
            body,
            credential,
        })
    }

    /// Decodes header, body and credential from a reader holding exactly those bytes.
    pub fn read_after_envelope(
        r: &mut Reader<'_>,
    ) -> Result<(Header, Body, Vec<u8>), InvalidMessage> {
        let header = Header::read(r)?;
        if header.body_length as usize > r.left() {
            return Err(InvalidMessage::LengthMismatch {
                field: "header body length",
                declared: header.body_length as usize,
                actual: r.left(),
            });
        }
        let mut body_reader = r.sub(header.body_length as usize, "body")?;
        let body = if header.is_request() {
            Body::Request(
                body_reader
                    .clone()
                    .all("request body", |br| Request::read(header.op_code, br))?,
            )
        } else {
            let digest = if header.op_flags.has(OpFlags::REQUEST_DIGEST) {
                Some(RequestDigest::read(&mut body_reader)?)
            } else {
                None
            };
            let response = body_reader.all("response body", |br| {
                Response::read(header.op_code, header.response_code, br)
            })?;
            Body::Response { digest, response }
        };
        let credential = if r.any_left() {
            let len = r.length("credential length", MAX_FIELD_LENGTH)?;
            r.take(len, "credential")?.to_vec()
        } else {
            Vec::new()
        };
        r.expect_empty("credential")?;
        Ok((header, body, credential))
    }

    /// Encodes the whole message, fixing up `body_length` and `message_length`.
    pub fn encode(&self) -> Vec<u8> {
        let mut builder = MessageBuilder::start(self.envelope, self.header);
        match &self.body {
            Body::Request(req) => req.encode(builder.body()),
            Body::Response { digest, response } => {
                if let Some(d) = digest {
                    d.encode(builder.body());
                }
                response.encode(builder.body());
            }
        }
        builder.finish_with_credential(&self.credential)
    }
}

/// Rejects envelopes we cannot process: unknown major version, compression, encryption.
pub fn check_envelope(envelope: &Envelope) -> Result<(), InvalidMessage> {
    if envelope.major != 2 {
        return Err(InvalidMessage::UnsupportedVersion {
            major: envelope.major,
            minor: envelope.minor,
        });
    }
    if envelope.flags.0 & (EnvelopeFlags::COMPRESSED | EnvelopeFlags::ENCRYPTED) != 0 {
        return Err(InvalidMessage::UnsupportedEnvelope(envelope.flags.0));
    }
    Ok(())
}

/// Writes a message in place: envelope and header first, body appended by the caller, then
/// lengths back-patched. Lets a server copy stored value bytes straight into a response.
#[derive(Debug)]
pub struct MessageBuilder {
    out: Vec<u8>,
}

impl MessageBuilder {
    /// Starts a message in a fresh buffer.
    pub fn start(envelope: Envelope, header: Header) -> Self {
        Self::start_in(Vec::with_capacity(256), envelope, header)
    }

    /// Starts a message in `buf` (cleared first), reusing its allocation.
    pub fn start_in(mut buf: Vec<u8>, envelope: Envelope, header: Header) -> Self {
        buf.clear();
        envelope.encode(&mut buf);
        header.encode(&mut buf);
        Self { out: buf }
    }

    /// The body buffer to append to.
    pub fn body(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Closes the message with an empty credential (`00 00 00 00`).
    pub fn finish(self) -> Vec<u8> {
        self.finish_with_credential(&[])
    }

    /// Closes the message with `credential`.
    pub fn finish_with_credential(mut self, credential: &[u8]) -> Vec<u8> {
        let body_len = self.out.len() - ENVELOPE_SIZE - HEADER_SIZE;
        put_bytes(&mut self.out, credential);
        let message_len = self.out.len() - ENVELOPE_SIZE;
        patch_u32(
            &mut self.out,
            ENVELOPE_SIZE + HEADER_SIZE - 4,
            body_len as u32,
        );
        patch_u32(&mut self.out, 16, message_len as u32);
        self.out
    }
}

/// The bytes a request digest covers: header and body, i.e. `message[20 .. 44 + body_length]`.
pub fn signed_part(message: &[u8]) -> Option<&[u8]> {
    let body_len = u32::from_be_bytes(message.get(40..44)?.try_into().ok()?) as usize;
    message.get(ENVELOPE_SIZE..ENVELOPE_SIZE + HEADER_SIZE + body_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolution_request() -> Message {
        Message {
            envelope: Envelope::new(0x1234),
            header: Header::request(OpCode::RESOLUTION, OpFlags::REQUEST_DIGEST),
            body: Body::Request(Request::Resolution {
                handle: "21.T999/abc".into(),
                indexes: vec![1, 2],
                types: vec!["URL".into()],
            }),
            credential: vec![],
        }
    }

    #[test]
    fn request_round_trip_fixes_lengths() {
        let msg = resolution_request();
        let bytes = msg.encode();
        let body_len = 4 + 11 + 4 + 8 + 4 + 4 + 3;
        assert_eq!(
            u32::from_be_bytes(bytes[40..44].try_into().unwrap()) as usize,
            body_len
        );
        assert_eq!(
            u32::from_be_bytes(bytes[16..20].try_into().unwrap()) as usize,
            24 + body_len + 4
        );
        let back = Message::read_bytes(&bytes).unwrap();
        assert_eq!(back.body, msg.body);
        assert_eq!(back.envelope.request_id, 0x1234);
        assert_eq!(signed_part(&bytes).unwrap().len(), 24 + body_len);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = resolution_request().encode();
        for cut in 0..bytes.len() {
            assert!(Message::read_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Message::read_bytes(&longer).is_err());
    }

    #[test]
    fn response_with_digest_round_trip() {
        let req = resolution_request().encode();
        let digest = RequestDigest::of(DigestAlgorithm::Sha1, signed_part(&req).unwrap());
        let mut header = Header::request(OpCode::RESOLUTION, OpFlags::REQUEST_DIGEST);
        header.response_code = ResponseCode::HANDLE_NOT_FOUND;
        let msg = Message {
            envelope: Envelope::new(7),
            header,
            body: Body::Response {
                digest: Some(digest),
                response: Response::Error {
                    message: "not found".into(),
                    indexes: vec![],
                },
            },
            credential: vec![],
        };
        let bytes = msg.encode();
        let back = Message::read_bytes(&bytes).unwrap();
        assert_eq!(back.body, msg.body);
        assert_eq!(back.header.response_code, ResponseCode::HANDLE_NOT_FOUND);
        assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn wrong_version_and_flags_rejected() {
        let mut bytes = resolution_request().encode();
        bytes[0] = 5;
        assert!(matches!(
            Message::read_bytes(&bytes),
            Err(InvalidMessage::UnsupportedVersion { major: 5, .. })
        ));
        bytes[0] = 2;
        bytes[2] = EnvelopeFlags::ENCRYPTED;
        assert!(matches!(
            Message::read_bytes(&bytes),
            Err(InvalidMessage::UnsupportedEnvelope(_))
        ));
    }

    #[test]
    fn old_format_digest() {
        let d = RequestDigest {
            algorithm: DigestAlgorithm::Md5OldFormat,
            digest: vec![9; 16],
        };
        let bytes = d.to_bytes();
        assert_eq!(&bytes[..4], &[0, 0, 0, 16]);
        assert_eq!(RequestDigest::read_bytes(&bytes).unwrap(), d);
    }
}
