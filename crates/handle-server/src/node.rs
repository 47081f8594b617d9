//! The node's operations, shared by every front end (native UDP/TCP and REST): resolution,
//! administration with one authorization function, and the native request processor.
//!
//! **Architecture invariant:** every administrative path (native ops 100–105, REST PUT/DELETE,
//! batch import) goes through [`HandleNode::authorize`], so HS_ADMIN checks are identical
//! everywhere; front ends only authenticate (secret key, Ed25519, Basic) and map errors.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use handle_proto::auth::{self, Denied, Operation};
use handle_proto::codec::{Codec, Reader};
use handle_proto::constants::{MAX_MESSAGE_LENGTH, types};
use handle_proto::data::{AdminPermissions, AdminRecord, PublicKey, SiteInfo, ValueList};
use handle_proto::handle::{homing_prefix, is_valid, prefix_handle, prefix_of};
use handle_proto::message::{
    ChallengeAnswer, Envelope, Header, MessageBuilder, Request, RequestDigest, check_envelope,
    signed_part,
};
use handle_proto::value::TtlType;
use handle_proto::{DigestAlgorithm, HandleValue, OpCode, OpFlags, ResponseCode, ValueReference};

use crate::store::{CreateMode, HandlePage, HandleStore, StoreError, ValueFilter};

/// CNRI's message for an un-homed prefix (captured from HANDLE.NET 7.3).
pub const MSG_NOT_HOMED: &str = "That naming authority doesn't live here";

/// An operation that failed with a protocol response code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OpError {
    /// Response code.
    pub code: ResponseCode,
    /// Message for the error body.
    pub message: String,
}

impl OpError {
    /// Builds an error.
    pub fn new(code: ResponseCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::NotFound => ResponseCode::HANDLE_NOT_FOUND,
            StoreError::AlreadyExists => ResponseCode::HANDLE_ALREADY_EXISTS,
            StoreError::ValueExists(_) => ResponseCode::VALUE_ALREADY_EXISTS,
            StoreError::ValueNotFound(_) => ResponseCode::VALUES_NOT_FOUND,
            StoreError::DuplicateIndex(_) => ResponseCode::INVALID_VALUE,
            _ => ResponseCode::ERROR,
        };
        Self::new(code, e.to_string())
    }
}

impl From<Denied> for OpError {
    fn from(d: Denied) -> Self {
        Self::new(d.response_code(), d.to_string())
    }
}

/// Node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Identities allowed to do everything (CNRI `server_admins`).
    pub server_admins: Vec<ValueReference>,
    /// This node's site information, served for GET_SITEINFO.
    pub site: SiteInfo,
    /// How long a challenge stays valid.
    pub challenge_timeout_ms: u64,
}

/// Who is asking: an authenticated identity or nobody.
pub type Identity<'a> = Option<&'a ValueReference>;

/// One administrative operation on the node, as reported to the [`AuditSink`]: who asked
/// (`None`: unauthenticated), what, on which handle, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminEvent {
    /// The authenticated identity (`300:21.T999/ADMIN`), if any.
    pub identity: Option<String>,
    /// Dotted action name: `handle.create`, `handle.delete`, `handle.values.add`, ...
    pub action: &'static str,
    /// The handle acted on.
    pub handle: String,
    /// `Ok(())`, or the response code and message it failed with.
    pub outcome: Result<(), OpError>,
}

/// Where the node reports administrative operations (the platform appends them to its
/// hash-chained audit log). Called on the request path, so implementations must not block:
/// hand the event to a queue.
pub trait AuditSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: AdminEvent);
}

struct PendingChallenge {
    nonce: Vec<u8>,
    digest: Vec<u8>,
    request: Request,
    header: Header,
    created_ms: u64,
    peer_at_least_2_1: bool,
}

/// The shared node: store, configuration and pending challenges.
pub struct HandleNode {
    store: Arc<dyn HandleStore>,
    config: NodeConfig,
    site_bytes: Vec<u8>,
    challenges: Mutex<HashMap<(SocketAddr, u64, u32), PendingChallenge>>,
    audit: OnceLock<Arc<dyn AuditSink>>,
}

/// Current unix time in seconds.
pub fn now_seconds() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // getrandom only fails when the OS has no entropy source at all; a zero nonce then still
    // gives a working (if weaker) challenge rather than a crash.
    let _ = getrandom::fill(&mut b);
    b
}

fn is_admin_type(v: &HandleValue) -> bool {
    v.value_type.eq_ignore_ascii_case(types::HS_ADMIN)
}

impl HandleNode {
    /// A node over `store`.
    pub fn new(store: Arc<dyn HandleStore>, config: NodeConfig) -> Self {
        let site_bytes = config.site.to_bytes();
        Self {
            store,
            config,
            site_bytes,
            challenges: Mutex::new(HashMap::new()),
            audit: OnceLock::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn HandleStore> {
        &self.store
    }

    /// The configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Reports every later administrative operation (successful or refused) to `sink`.
    /// Only the first sink set counts; returns false if one was already set.
    pub fn set_audit_sink(&self, sink: Arc<dyn AuditSink>) -> bool {
        self.audit.set(sink).is_ok()
    }

    /// Reports an operation refused before it reached the node (bad credentials on the REST
    /// API, a failed challenge on the native path).
    pub fn record_refusal(
        &self,
        action: &'static str,
        handle: &str,
        claimed: Option<String>,
        error: OpError,
    ) {
        if let Some(sink) = self.audit.get() {
            sink.record(AdminEvent {
                identity: claimed,
                action,
                handle: handle.to_owned(),
                outcome: Err(error),
            });
        }
    }

    fn audited<T>(
        &self,
        action: &'static str,
        handle: &str,
        identity: Identity<'_>,
        result: Result<T, OpError>,
    ) -> Result<T, OpError> {
        if let Some(sink) = self.audit.get() {
            sink.record(AdminEvent {
                identity: identity.map(ToString::to_string),
                action,
                handle: handle.to_owned(),
                outcome: result.as_ref().map(|_| ()).map_err(Clone::clone),
            });
        }
        result
    }

    fn check_homed(&self, handle: &str) -> Result<(), OpError> {
        let prefix = homing_prefix(handle)
            .ok_or_else(|| OpError::new(ResponseCode::INVALID_HANDLE, "invalid handle"))?;
        if self.store.is_homed(prefix) {
            Ok(())
        } else {
            Err(OpError::new(ResponseCode::SERVER_NOT_RESP, MSG_NOT_HOMED))
        }
    }

    fn admin_records(&self, handle: &str) -> Result<Vec<AdminRecord>, OpError> {
        let values = self.store.get(handle)?.unwrap_or_default();
        Ok(values
            .iter()
            .filter(|v| is_admin_type(v))
            .filter_map(|v| AdminRecord::read_bytes(&v.data).ok())
            .collect())
    }

    fn lookup_group(&self, r: &ValueReference) -> Option<ValueList> {
        let values = self.store.get(&r.handle).ok()??;
        values
            .iter()
            .find(|v| v.index == r.index && v.value_type.eq_ignore_ascii_case(types::HS_VLIST))
            .and_then(|v| ValueList::read_bytes(&v.data).ok())
    }

    /// The one authorization function: may `identity` perform `op` on `handle`?
    /// Creation and listing are governed by the prefix handle `0.NA/<prefix>`.
    pub fn authorize(
        &self,
        op: Operation,
        handle: &str,
        identity: Identity<'_>,
    ) -> Result<(), OpError> {
        let Some(identity) = identity else {
            return Err(OpError::new(
                ResponseCode::AUTHENTICATION_NEEDED,
                "authentication needed",
            ));
        };
        let governing = match op {
            Operation::CreateHandle | Operation::ListHandles => prefix_of(handle)
                .map(prefix_handle)
                .ok_or_else(|| OpError::new(ResponseCode::INVALID_HANDLE, "invalid handle"))?,
            _ => handle.to_owned(),
        };
        let records = self.admin_records(&governing)?;
        auth::authorize(op, &records, identity, &self.config.server_admins, |r| {
            self.lookup_group(r)
        })
        .map_err(OpError::from)
    }

    /// Resolves `handle`, appending matching encoded values to `out`. Non-public values are
    /// returned only to an identity with READ_VALUE.
    pub fn resolve_into(
        &self,
        handle: &str,
        filter: &ValueFilter<'_>,
        identity: Identity<'_>,
        out: &mut Vec<u8>,
    ) -> Result<u32, OpError> {
        self.check_homed(handle)?;
        let may_read_private = !filter.public_only
            && identity.is_some()
            && self
                .authorize(Operation::ReadValue, handle, identity)
                .is_ok();
        let filter = ValueFilter {
            public_only: !may_read_private,
            ..filter.clone()
        };
        match self.store.read_encoded(handle, &filter, out)? {
            None => Err(OpError::new(
                ResponseCode::HANDLE_NOT_FOUND,
                "handle not found",
            )),
            Some(0) if !filter.indexes.is_empty() || !filter.types.is_empty() => Err(OpError::new(
                ResponseCode::VALUES_NOT_FOUND,
                "values not found",
            )),
            Some(n) => Ok(n),
        }
    }

    /// Resolves to decoded values.
    pub fn resolve(
        &self,
        handle: &str,
        filter: &ValueFilter<'_>,
        identity: Identity<'_>,
    ) -> Result<Vec<HandleValue>, OpError> {
        let mut buf = Vec::new();
        let n = self.resolve_into(handle, filter, identity, &mut buf)?;
        let mut r = Reader::new(&buf);
        (0..n)
            .map(|_| {
                HandleValue::read(&mut r)
                    .map_err(|e| OpError::new(ResponseCode::ERROR, e.to_string()))
            })
            .collect()
    }

    fn stamp(values: &mut [HandleValue]) {
        let now = now_seconds();
        for v in values {
            v.timestamp = now;
        }
    }

    /// Creates a handle. With `overwrite` an existing handle is replaced, which needs the
    /// add/modify/remove permissions for the values that change. Without HS_ADMIN values a
    /// default one naming `identity` is added at index 100 (Handle.Net REST behaviour).
    /// Returns whether the handle was new.
    fn create_handle_unaudited(
        &self,
        identity: Identity<'_>,
        handle: &str,
        mut values: Vec<HandleValue>,
        overwrite: bool,
    ) -> Result<bool, OpError> {
        if !is_valid(handle) {
            return Err(OpError::new(ResponseCode::INVALID_HANDLE, "invalid handle"));
        }
        self.check_homed(handle)?;
        let existing = self.store.get(handle)?;
        match &existing {
            None => self.authorize(Operation::CreateHandle, handle, identity)?,
            Some(_) if !overwrite => {
                return Err(OpError::new(
                    ResponseCode::HANDLE_ALREADY_EXISTS,
                    "handle already exists",
                ));
            }
            Some(old) => {
                for v in &values {
                    let op = match old.iter().find(|o| o.index == v.index) {
                        Some(o) if o == v => continue,
                        Some(o) => Operation::ModifyValue {
                            admin: is_admin_type(o) || is_admin_type(v),
                        },
                        None => Operation::AddValue {
                            admin: is_admin_type(v),
                        },
                    };
                    self.authorize(op, handle, identity)?;
                }
                for o in old
                    .iter()
                    .filter(|o| !values.iter().any(|v| v.index == o.index))
                {
                    self.authorize(
                        Operation::RemoveValue {
                            admin: is_admin_type(o),
                        },
                        handle,
                        identity,
                    )?;
                }
            }
        }
        if existing.is_none()
            && !values.iter().any(is_admin_type)
            && let Some(id) = identity
        {
            let mut perms = AdminPermissions::ALL;
            perms.0 &= !(AdminPermissions::ADD_NA | AdminPermissions::DELETE_NA);
            let data = AdminRecord {
                permissions: perms,
                admin: id.clone(),
            }
            .to_bytes();
            let index = (100..)
                .find(|i| !values.iter().any(|v| v.index == *i))
                .unwrap_or(100);
            values.push(HandleValue::new(index, types::HS_ADMIN, data));
        }
        Self::stamp(&mut values);
        let mode = if overwrite {
            CreateMode::Overwrite
        } else {
            CreateMode::FailIfExists
        };
        Ok(self.store.create(handle, &values, mode)?)
    }

    /// Deletes a handle.
    fn delete_handle_unaudited(&self, identity: Identity<'_>, handle: &str) -> Result<(), OpError> {
        self.check_homed(handle)?;
        if self.store.get(handle)?.is_none() {
            return Err(OpError::new(
                ResponseCode::HANDLE_NOT_FOUND,
                "handle not found",
            ));
        }
        self.authorize(Operation::DeleteHandle, handle, identity)?;
        Ok(self.store.delete(handle)?)
    }

    /// Adds values.
    fn add_values_unaudited(
        &self,
        identity: Identity<'_>,
        handle: &str,
        mut values: Vec<HandleValue>,
    ) -> Result<(), OpError> {
        self.check_homed(handle)?;
        for v in &values {
            self.authorize(
                Operation::AddValue {
                    admin: is_admin_type(v),
                },
                handle,
                identity,
            )?;
        }
        Self::stamp(&mut values);
        Ok(self.store.add_values(handle, &values)?)
    }

    /// Modifies values.
    fn modify_values_unaudited(
        &self,
        identity: Identity<'_>,
        handle: &str,
        mut values: Vec<HandleValue>,
    ) -> Result<(), OpError> {
        self.check_homed(handle)?;
        let old = self
            .store
            .get(handle)?
            .ok_or_else(|| OpError::new(ResponseCode::HANDLE_NOT_FOUND, "handle not found"))?;
        for v in &values {
            let was_admin = old
                .iter()
                .find(|o| o.index == v.index)
                .is_some_and(is_admin_type);
            self.authorize(
                Operation::ModifyValue {
                    admin: was_admin || is_admin_type(v),
                },
                handle,
                identity,
            )?;
        }
        Self::stamp(&mut values);
        Ok(self.store.modify_values(handle, &values)?)
    }

    /// Adds or replaces the given values (REST `PUT ...?index=`); with `overwrite == false` an
    /// existing index is a conflict.
    fn upsert_values_unaudited(
        &self,
        identity: Identity<'_>,
        handle: &str,
        values: Vec<HandleValue>,
        overwrite: bool,
    ) -> Result<(), OpError> {
        let old = self
            .store
            .get(handle)?
            .ok_or_else(|| OpError::new(ResponseCode::HANDLE_NOT_FOUND, "handle not found"))?;
        let (existing, new): (Vec<_>, Vec<_>) = values
            .into_iter()
            .partition(|v| old.iter().any(|o| o.index == v.index));
        if !existing.is_empty() && !overwrite {
            return Err(OpError::new(
                ResponseCode::VALUE_ALREADY_EXISTS,
                "value already exists",
            ));
        }
        if !existing.is_empty() {
            self.modify_values_unaudited(identity, handle, existing)?;
        }
        if !new.is_empty() {
            self.add_values_unaudited(identity, handle, new)?;
        }
        Ok(())
    }

    /// Removes values by index.
    fn remove_values_unaudited(
        &self,
        identity: Identity<'_>,
        handle: &str,
        indexes: &[u32],
    ) -> Result<(), OpError> {
        self.check_homed(handle)?;
        let old = self
            .store
            .get(handle)?
            .ok_or_else(|| OpError::new(ResponseCode::HANDLE_NOT_FOUND, "handle not found"))?;
        for i in indexes {
            let admin = old
                .iter()
                .find(|o| o.index == *i)
                .is_some_and(is_admin_type);
            self.authorize(Operation::RemoveValue { admin }, handle, identity)?;
        }
        Ok(self.store.remove_values(handle, indexes)?)
    }

    // -----------------------------------------------------------------------------------------
    // Administration: every write is reported to the audit sink, whatever its outcome.

    /// Creates a handle. With `overwrite` an existing handle is replaced, which needs the
    /// add/modify/remove permissions for the values that change. Without HS_ADMIN values a
    /// default one naming `identity` is added at index 100 (Handle.Net REST behaviour).
    /// Returns whether the handle was new.
    pub fn create_handle(
        &self,
        identity: Identity<'_>,
        handle: &str,
        values: Vec<HandleValue>,
        overwrite: bool,
    ) -> Result<bool, OpError> {
        let result = self.create_handle_unaudited(identity, handle, values, overwrite);
        self.audited("handle.create", handle, identity, result)
    }

    /// Deletes a handle.
    pub fn delete_handle(&self, identity: Identity<'_>, handle: &str) -> Result<(), OpError> {
        let result = self.delete_handle_unaudited(identity, handle);
        self.audited("handle.delete", handle, identity, result)
    }

    /// Adds values.
    pub fn add_values(
        &self,
        identity: Identity<'_>,
        handle: &str,
        values: Vec<HandleValue>,
    ) -> Result<(), OpError> {
        let result = self.add_values_unaudited(identity, handle, values);
        self.audited("handle.values.add", handle, identity, result)
    }

    /// Modifies values.
    pub fn modify_values(
        &self,
        identity: Identity<'_>,
        handle: &str,
        values: Vec<HandleValue>,
    ) -> Result<(), OpError> {
        let result = self.modify_values_unaudited(identity, handle, values);
        self.audited("handle.values.modify", handle, identity, result)
    }

    /// Adds or replaces the given values (REST `PUT ...?index=`); with `overwrite == false` an
    /// existing index is a conflict.
    pub fn upsert_values(
        &self,
        identity: Identity<'_>,
        handle: &str,
        values: Vec<HandleValue>,
        overwrite: bool,
    ) -> Result<(), OpError> {
        let result = self.upsert_values_unaudited(identity, handle, values, overwrite);
        self.audited("handle.values.upsert", handle, identity, result)
    }

    /// Removes values by index.
    pub fn remove_values(
        &self,
        identity: Identity<'_>,
        handle: &str,
        indexes: &[u32],
    ) -> Result<(), OpError> {
        let result = self.remove_values_unaudited(identity, handle, indexes);
        self.audited("handle.values.remove", handle, identity, result)
    }

    /// Lists handles under `prefix` (needs LIST_HANDLES on `0.NA/<prefix>`).
    pub fn list_handles(
        &self,
        identity: Identity<'_>,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<HandlePage, OpError> {
        if !self.store.is_homed(prefix) {
            return Err(OpError::new(ResponseCode::SERVER_NOT_RESP, MSG_NOT_HOMED));
        }
        self.authorize(Operation::ListHandles, &format!("{prefix}/x"), identity)?;
        Ok(self.store.list(prefix, offset, limit)?)
    }

    /// Checks a secret-key answer against the HS_SECKEY values of `key` (index 0 = any).
    pub fn verify_secret(
        &self,
        key: &ValueReference,
        nonce: &[u8],
        digest: &[u8],
        answer: &[u8],
        at_least_2_1: bool,
    ) -> bool {
        let Ok(Some(values)) = self.store.get(&key.handle) else {
            return false;
        };
        values
            .iter()
            .filter(|v| v.value_type.eq_ignore_ascii_case(types::HS_SECKEY))
            .filter(|v| key.index == 0 || v.index == key.index)
            .any(|v| auth::verify_secret_key_answer(&v.data, nonce, digest, answer, at_least_2_1))
    }

    /// Checks a password (REST Basic auth) against the HS_SECKEY at `key`: equal to the stored
    /// secret, or to its shadow when the stored value is a lower-case hex SHA-1.
    pub fn verify_password(&self, key: &ValueReference, password: &[u8]) -> bool {
        let Ok(Some(values)) = self.store.get(&key.handle) else {
            return false;
        };
        values
            .iter()
            .filter(|v| v.value_type.eq_ignore_ascii_case(types::HS_SECKEY))
            .filter(|v| key.index == 0 || v.index == key.index)
            .any(|v| {
                auth::constant_time_eq(&v.data, password)
                    || auth::constant_time_eq(&v.data, &auth::shadow_secret(password))
            })
    }

    /// Checks an Ed25519 signature by the HS_PUBKEY at `key` over `message`.
    pub fn verify_ed25519(&self, key: &ValueReference, message: &[u8], signature: &[u8]) -> bool {
        let Ok(Some(values)) = self.store.get(&key.handle) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        values
            .iter()
            .filter(|v| v.value_type.eq_ignore_ascii_case(types::HS_PUBKEY) && v.index == key.index)
            .any(|v| {
                let Some(raw) = PublicKey::read_bytes(&v.data)
                    .ok()
                    .and_then(|k| k.as_ed25519())
                else {
                    return false;
                };
                let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&raw) else {
                    return false;
                };
                vk.verify_strict(message, &sig).is_ok()
            })
    }

    // -----------------------------------------------------------------------------------------
    // Native protocol.

    /// Processes one complete native message (envelope included) from `peer` on connection
    /// `conn` (0 for UDP) and writes the encoded response into `out`. Returns `false` when
    /// nothing should be sent (undecodable envelope, or a response message).
    pub fn process(&self, message: &[u8], peer: SocketAddr, conn: u64, out: &mut Vec<u8>) -> bool {
        let mut r = Reader::new(message);
        let Ok(envelope) = Envelope::read(&mut r) else {
            return false;
        };
        let mut reply_env = envelope;
        // Answer in the request's version, capped at what CNRI 7.3 speaks (2.5).
        reply_env.minor = envelope.minor.min(5);
        reply_env.flags.0 = 0;
        reply_env.sequence_number = 0;
        reply_env.suggested_minor = 0;
        if check_envelope(&envelope).is_err()
            || r.left() != envelope.message_length as usize
            || message.len() > MAX_MESSAGE_LENGTH + 20
        {
            return self.protocol_error(reply_env, None, "invalid envelope", out);
        }
        let header_peek = Header::read(&mut r.clone()).ok();
        let (header, request) = match Request::decode_after(&mut r) {
            Ok(x) => x,
            Err(e) => return self.protocol_error(reply_env, header_peek, &e.to_string(), out),
        };
        let Some(request) = request else { return false };
        let digest_alg = if envelope.at_least(2, 1) {
            DigestAlgorithm::Sha1
        } else {
            DigestAlgorithm::Md5OldFormat
        };
        let signed = signed_part(message).unwrap_or_default();
        let ctx = ReplyContext {
            envelope: reply_env,
            request_header: header,
            signed,
            digest_alg,
        };
        match request {
            Request::Resolution {
                handle,
                indexes,
                types,
            } => {
                let filter = ValueFilter {
                    indexes: &indexes,
                    types: &types,
                    public_only: true,
                };
                let mut b = ctx.begin(out, ResponseCode::SUCCESS);
                let at = b.body().len();
                handle_proto::codec::put_bytes(b.body(), handle.as_bytes());
                let count_at = b.body().len();
                b.body().extend_from_slice(&[0; 4]);
                match self.resolve_into(&handle, &filter, None, b.body()) {
                    Ok(n) => {
                        handle_proto::codec::patch_u32(b.body(), count_at, n);
                        *out = b.finish();
                    }
                    Err(e) => {
                        b.body().truncate(at);
                        *out = b.finish();
                        // CNRI sends these two with an empty message (ErrorResponse(req, rc, null)).
                        let quiet = e.code == ResponseCode::HANDLE_NOT_FOUND
                            || e.code == ResponseCode::VALUES_NOT_FOUND;
                        ctx.error(out, e.code, if quiet { "" } else { &e.message });
                    }
                }
            }
            Request::Generic { .. } if header.op_code == OpCode::GET_SITE_INFO => {
                let mut b = ctx.begin(out, ResponseCode::SUCCESS);
                b.body().extend_from_slice(&self.site_bytes);
                *out = b.finish();
            }
            Request::ChallengeAnswer(answer) => {
                self.answer_challenge(&ctx, answer, peer, conn, envelope.request_id, out)
            }
            Request::VerifyAuth(v) => {
                let key = ValueReference::new(v.key_handle.clone(), v.key_index);
                let valid = self.verify_secret(
                    &key,
                    &v.nonce,
                    &v.request_digest.digest,
                    &v.response,
                    envelope.at_least(2, 1),
                );
                let mut b = ctx.begin(out, ResponseCode::SUCCESS);
                b.body().push(u8::from(valid));
                *out = b.finish();
            }
            Request::CreateHandle(_)
            | Request::DeleteHandle { .. }
            | Request::AddValue(_)
            | Request::ModifyValue(_)
            | Request::RemoveValue { .. }
            | Request::ListHandles { .. } => {
                if header.op_flags.has(OpFlags::CERTIFY) {
                    // We do not sign responses yet; say so rather than send an unsigned answer.
                    ctx.error(
                        out,
                        ResponseCode::OPERATION_NOT_SUPPORTED,
                        "signed responses are not supported",
                    );
                    return true;
                }
                self.challenge(&ctx, request, header, peer, conn, envelope, out);
            }
            _ => ctx.error(
                out,
                ResponseCode::OPERATION_NOT_SUPPORTED,
                "operation not supported",
            ),
        }
        true
    }

    fn protocol_error(
        &self,
        env: Envelope,
        header: Option<Header>,
        message: &str,
        out: &mut Vec<u8>,
    ) -> bool {
        let op = header.map_or(OpCode::RESERVED, |h| h.op_code);
        let ctx = ReplyContext {
            envelope: env,
            request_header: header.unwrap_or_else(|| Header::request(op, 0)),
            signed: &[],
            digest_alg: DigestAlgorithm::Sha1,
        };
        let mut ctx = ctx;
        ctx.request_header.op_flags = OpFlags(0);
        ctx.error(out, ResponseCode::PROTOCOL_ERROR, message);
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn challenge(
        &self,
        ctx: &ReplyContext<'_>,
        request: Request,
        header: Header,
        peer: SocketAddr,
        conn: u64,
        envelope: Envelope,
        out: &mut Vec<u8>,
    ) {
        let nonce = random_bytes::<16>().to_vec();
        let digest = ctx.digest_alg.hash(&[ctx.signed]);
        let now = now_ms();
        if let Ok(mut pending) = self.challenges.lock() {
            let timeout = self.config.challenge_timeout_ms;
            if pending.len() > 10_000 {
                pending.retain(|_, p| now.saturating_sub(p.created_ms) <= timeout);
            }
            pending.insert(
                (peer, conn, envelope.request_id),
                PendingChallenge {
                    nonce: nonce.clone(),
                    digest: digest.clone(),
                    request,
                    header,
                    created_ms: now,
                    peer_at_least_2_1: envelope.at_least(2, 1),
                },
            );
        }
        // A challenge always carries the request digest, so the client knows what to sign.
        let mut forced = ctx.clone();
        forced.request_header.op_flags = forced
            .request_header
            .op_flags
            .with(OpFlags::REQUEST_DIGEST, true);
        let mut b = forced.begin(out, ResponseCode::AUTHENTICATION_NEEDED);
        handle_proto::codec::put_bytes(b.body(), &nonce);
        *out = b.finish();
    }

    fn answer_challenge(
        &self,
        ctx: &ReplyContext<'_>,
        answer: ChallengeAnswer,
        peer: SocketAddr,
        conn: u64,
        request_id: u32,
        out: &mut Vec<u8>,
    ) {
        let pending = self
            .challenges
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&(peer, conn, request_id)));
        let Some(pending) = pending else {
            ctx.error(out, ResponseCode::AUTHEN_TIMEOUT, "no pending challenge");
            return;
        };
        let mut ctx = ctx.clone();
        ctx.request_header = pending.header;
        if now_ms().saturating_sub(pending.created_ms) > self.config.challenge_timeout_ms {
            ctx.error(out, ResponseCode::AUTHEN_TIMEOUT, "challenge expired");
            return;
        }
        let key = ValueReference::new(answer.key_handle.clone(), answer.key_index);
        let ok = if answer.auth_type.eq_ignore_ascii_case(types::HS_SECKEY) {
            self.verify_secret(
                &key,
                &pending.nonce,
                &pending.digest,
                &answer.response,
                pending.peer_at_least_2_1,
            )
        } else if answer.auth_type.eq_ignore_ascii_case(types::HS_PUBKEY) {
            // `UTF-8 signature algorithm + bytes signature`, CNRI's layout.
            let mut r = Reader::new(&answer.response);
            let sig = r
                .utf8("signature algorithm")
                .and_then(|_| r.bytes("signature"))
                .ok();
            let signed = auth::public_key_signed_bytes(&pending.nonce, &pending.digest);
            sig.is_some_and(|s| self.verify_ed25519(&key, &signed, s))
        } else {
            false
        };
        if !ok {
            let (action, handle) = match &pending.request {
                Request::CreateHandle(hv) => ("handle.create", hv.handle.as_str()),
                Request::DeleteHandle { handle } => ("handle.delete", handle.as_str()),
                Request::AddValue(hv) => ("handle.values.add", hv.handle.as_str()),
                Request::ModifyValue(hv) => ("handle.values.modify", hv.handle.as_str()),
                Request::RemoveValue { handle, .. } => ("handle.values.remove", handle.as_str()),
                Request::ListHandles { handle } => ("handle.list", handle.as_str()),
                _ => ("handle.other", ""),
            };
            self.record_refusal(
                action,
                handle,
                Some(key.to_string()),
                OpError::new(ResponseCode::AUTHENTICATION_FAILED, "authentication failed"),
            );
            ctx.error(
                out,
                ResponseCode::AUTHENTICATION_FAILED,
                "authentication failed",
            );
            return;
        }
        let id = Some(&key);
        let result = match pending.request {
            Request::CreateHandle(hv) => {
                let overwrite = pending.header.op_flags.has(OpFlags::OVERWRITE);
                self.create_handle(id, &hv.handle, hv.values, overwrite)
                    .map(|_| None)
            }
            Request::DeleteHandle { handle } => self.delete_handle(id, &handle).map(|_| None),
            Request::AddValue(hv) => self.add_values(id, &hv.handle, hv.values).map(|_| None),
            Request::ModifyValue(hv) => self.modify_values(id, &hv.handle, hv.values).map(|_| None),
            Request::RemoveValue { handle, indexes } => {
                self.remove_values(id, &handle, &indexes).map(|_| None)
            }
            Request::ListHandles { handle } => {
                let prefix = handle_proto::handle::described_prefix(&handle)
                    .unwrap_or(&handle)
                    .to_owned();
                self.list_handles(id, &prefix, 0, usize::MAX)
                    .map(|p| Some(p.handles))
            }
            _ => Err(OpError::new(
                ResponseCode::OPERATION_NOT_SUPPORTED,
                "operation not supported",
            )),
        };
        match result {
            Ok(list) => {
                let mut b = ctx.begin(out, ResponseCode::SUCCESS);
                if let Some(handles) = list {
                    handle_proto::codec::put_u32(b.body(), handles.len() as u32);
                    for h in handles {
                        handle_proto::codec::put_bytes(b.body(), h.as_bytes());
                    }
                }
                *out = b.finish();
            }
            Err(e) => ctx.error(out, e.code, &e.message),
        }
    }
}

/// What a reply needs from its request.
#[derive(Clone)]
struct ReplyContext<'a> {
    envelope: Envelope,
    request_header: Header,
    signed: &'a [u8],
    digest_alg: DigestAlgorithm,
}

impl ReplyContext<'_> {
    /// Starts a response: CNRI sets AT and REC, copies CT/CA/ENC/PO/RD from the request and
    /// sets the expiration to now + 12 h; with RD the body starts with the request digest.
    fn begin(&self, out: &mut Vec<u8>, code: ResponseCode) -> MessageBuilder {
        let req = self.request_header.op_flags;
        let copied = req.0
            & (OpFlags::CERTIFY
                | OpFlags::CACHE_CERTIFY
                | OpFlags::ENCRYPT
                | OpFlags::PUBLIC_ONLY
                | OpFlags::REQUEST_DIGEST
                | OpFlags::KEEP_ALIVE);
        let header = Header {
            op_code: self.request_header.op_code,
            response_code: code,
            op_flags: OpFlags(OpFlags::AUTHORITATIVE | OpFlags::RECURSIVE | copied),
            site_info_serial: 1,
            recursion_count: self.request_header.recursion_count,
            expiration: now_seconds().wrapping_add(43_200),
            body_length: 0,
        };
        let mut b = MessageBuilder::start_in(std::mem::take(out), self.envelope, header);
        if req.has(OpFlags::REQUEST_DIGEST) {
            RequestDigest {
                algorithm: self.digest_alg,
                digest: self.digest_alg.hash(&[self.signed]),
            }
            .encode(b.body());
        }
        b
    }

    fn error(&self, out: &mut Vec<u8>, code: ResponseCode, message: &str) {
        let mut b = self.begin(out, code);
        handle_proto::codec::put_bytes(b.body(), message.as_bytes());
        *out = b.finish();
    }
}

/// Extension on [`Request`] for decoding after the envelope.
trait DecodeAfter: Sized {
    fn decode_after(
        r: &mut Reader<'_>,
    ) -> Result<(Header, Option<Self>), handle_proto::InvalidMessage>;
}

impl DecodeAfter for Request {
    /// Decodes header, body and credential; `None` for response messages.
    fn decode_after(
        r: &mut Reader<'_>,
    ) -> Result<(Header, Option<Self>), handle_proto::InvalidMessage> {
        let (header, body, _credential) = handle_proto::Message::read_after_envelope(r)?;
        match body {
            handle_proto::Body::Request(req) => Ok((header, Some(req))),
            handle_proto::Body::Response { .. } => Ok((header, None)),
        }
    }
}

/// A TTL-less helper kept for callers building values in tests and seeds.
pub fn value(
    index: u32,
    value_type: &str,
    data: impl Into<Vec<u8>>,
    permissions: u8,
) -> HandleValue {
    let mut v = HandleValue::new(index, value_type, data);
    v.permissions = handle_proto::ValuePermissions(permissions);
    v.ttl_type = TtlType::Relative;
    v
}
