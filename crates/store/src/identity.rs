//! Records and traits of the unified user system: tenants, users, memberships, roles,
//! API keys, refresh tokens and the audit log.
//!
//! The store holds data only. What a role may do, how passwords and keys are hashed and
//! how tokens are signed is decided by the `identity` crate; here roles and permissions
//! are opaque strings.

use crate::{StoreResult, TenantId, TenantScope, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A tenant: an isolated space of data and members (a city, a department, an alliance member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// The tenant's id.
    pub id: TenantId,
    /// A human-readable name.
    pub display_name: String,
    /// When it was created.
    pub created_at: UnixMillis,
}

/// A user: one identity across every module of the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Opaque, immutable id (e.g. `usr_...`).
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// PHC string of the password hash (argon2id). Never logged, never returned by APIs.
    pub password_hash: String,
    /// Platform administrator: may manage tenants and act in every tenant.
    pub superuser: bool,
    /// A disabled user cannot log in and its tokens stop working at their next use.
    pub disabled: bool,
    /// When it was created.
    pub created_at: UnixMillis,
}

/// A user's role in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user_id: String,
    /// The role name (built-in or custom to the tenant).
    pub role: String,
}

/// A member of a tenant as listed to the tenant's admins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// The user.
    pub user: UserRecord,
    /// Its role in the tenant.
    pub role: String,
}

/// A role defined by a tenant, on top of the built-in roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomRoleRecord {
    /// The role name, unique within the tenant.
    pub name: String,
    /// Permission strings such as `data:write`.
    pub permissions: Vec<String>,
}

/// An API key for a device or service. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// Public key id (the part of the key before the secret); unique across tenants.
    pub id: String,
    /// The tenant the key acts in.
    pub tenant: TenantId,
    /// A label chosen by whoever created it.
    pub name: String,
    /// The role the key acts with.
    pub role: String,
    /// Hex SHA-256 of the secret part of the key.
    pub secret_hash: String,
    /// Who created it (a user id).
    pub created_by: String,
    /// When it was created.
    pub created_at: UnixMillis,
    /// When it stops working, if ever.
    pub expires_at: Option<UnixMillis>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixMillis>,
}

/// A refresh token, single use: taking it marks it used (token rotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    /// Public token id.
    pub id: String,
    /// The token family: every rotation keeps the family, so reuse of an old token can
    /// revoke the whole family.
    pub family: String,
    /// The user it belongs to.
    pub user_id: String,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    /// When it was issued.
    pub issued_at: UnixMillis,
    /// When it expires.
    pub expires_at: UnixMillis,
    /// When it was used (rotated) or revoked, if it was.
    pub used_at: Option<UnixMillis>,
}

/// Whether an audited action succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// The action was carried out.
    Success,
    /// The action failed (e.g. wrong password).
    Failure,
    /// The action was refused by an authorization check.
    Denied,
}

impl AuditOutcome {
    /// The stable string form used in storage and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Denied => "denied",
        }
    }
    /// Parses [`AuditOutcome::as_str`] output.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }
}

/// A security-relevant event to append to the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened.
    pub at: UnixMillis,
    /// The tenant it concerns, if any (platform events such as tenant creation have none).
    pub tenant: Option<TenantId>,
    /// Who acted: `user:<id>`, `key:<id>`, `anonymous`, `system`, or a claimed username
    /// for failed logins.
    pub actor: String,
    /// What was attempted, dotted: `auth.login`, `apikey.create`, `authz.denied`...
    pub action: String,
    /// Whether it worked.
    pub outcome: AuditOutcome,
    /// What it acted on, if anything (a user id, a key id, a route).
    pub target: Option<String>,
    /// Extra structured detail. Never contains secrets.
    pub detail: serde_json::Value,
}

/// An event as stored: numbered and hash-chained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: i64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hex SHA-256 of the previous entry (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 over `prev_hash` and this entry's canonical content.
    pub hash: String,
}

/// Which part of the audit log a query may see.
#[derive(Debug, Clone)]
pub enum AuditScope {
    /// One tenant's events.
    Tenant(TenantScope),
    /// Everything (platform administrators).
    Platform,
}

/// Filters for reading the audit log; newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries with `seq` below this (for paging backwards).
    pub before_seq: Option<i64>,
    /// Only this action (exact match).
    pub action: Option<String>,
    /// At most this many entries (backends cap it at 1000).
    pub limit: Option<u32>,
}

/// Result of checking the audit hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerification {
    /// Every entry links to its predecessor and its hash matches its content.
    Intact {
        /// Number of entries checked.
        entries: u64,
    },
    /// The first entry whose link or hash does not match.
    Broken {
        /// Its sequence number.
        seq: i64,
    },
}

/// Tenants, users, memberships, roles, API keys and refresh tokens.
///
/// Contracts every backend keeps (checked by the shared suite):
/// - Creating a record whose key exists fails with `AlreadyExists` and changes nothing.
/// - Scoped reads and writes see only the scope's tenant; touching another tenant's
///   record through a scope fails with `NotFound`, exactly as if it did not exist.
/// - Lookups of a missing record return `Ok(None)`; updates of one return `NotFound`.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    /// Creates a tenant.
    async fn create_tenant(&self, tenant: TenantRecord) -> StoreResult<()>;
    /// Reads a tenant.
    async fn tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRecord>>;
    /// Lists all tenants, ordered by id.
    async fn tenants(&self) -> StoreResult<Vec<TenantRecord>>;

    /// Creates a user (username and id must both be new).
    async fn create_user(&self, user: UserRecord) -> StoreResult<()>;
    /// Reads a user by id.
    async fn user(&self, id: &str) -> StoreResult<Option<UserRecord>>;
    /// Reads a user by username.
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    /// Number of users (zero means the store needs bootstrapping).
    async fn user_count(&self) -> StoreResult<u64>;
    /// Replaces a user's password hash.
    async fn set_password_hash(&self, user_id: &str, password_hash: &str) -> StoreResult<()>;
    /// Enables or disables a user.
    async fn set_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<()>;

    /// Gives a user a role in the scope's tenant (replacing any previous role there).
    /// Fails with `NotFound` if the user or tenant does not exist.
    async fn set_membership(
        &self,
        scope: &TenantScope,
        user_id: &str,
        role: &str,
    ) -> StoreResult<()>;
    /// Removes a user from the scope's tenant.
    async fn remove_membership(&self, scope: &TenantScope, user_id: &str) -> StoreResult<()>;
    /// The user's role in the scope's tenant, if a member.
    async fn membership(&self, scope: &TenantScope, user_id: &str) -> StoreResult<Option<String>>;
    /// All memberships of one user (used at login to build the token), ordered by tenant.
    async fn memberships_of_user(&self, user_id: &str) -> StoreResult<Vec<MembershipRecord>>;
    /// Members of the scope's tenant, ordered by username.
    async fn members(&self, scope: &TenantScope) -> StoreResult<Vec<MemberRecord>>;

    /// Creates or replaces a custom role in the scope's tenant.
    async fn put_role(&self, scope: &TenantScope, role: CustomRoleRecord) -> StoreResult<()>;
    /// Custom roles of the scope's tenant, ordered by name.
    async fn roles(&self, scope: &TenantScope) -> StoreResult<Vec<CustomRoleRecord>>;
    /// Deletes a custom role.
    async fn delete_role(&self, scope: &TenantScope, name: &str) -> StoreResult<()>;

    /// Stores a new API key; `key.tenant` must equal the scope's tenant (else `InvalidInput`).
    async fn create_api_key(&self, scope: &TenantScope, key: ApiKeyRecord) -> StoreResult<()>;
    /// Reads a key by id across tenants: authentication learns the tenant from the key.
    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Keys of the scope's tenant, ordered by creation time then id.
    async fn api_keys(&self, scope: &TenantScope) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Marks a key revoked (idempotent: revoking twice keeps the first time).
    async fn revoke_api_key(
        &self,
        scope: &TenantScope,
        id: &str,
        at: UnixMillis,
    ) -> StoreResult<()>;

    /// Stores a new refresh token.
    async fn insert_refresh_token(&self, token: RefreshTokenRecord) -> StoreResult<()>;
    /// Atomically reads a refresh token and marks it used. Returns the record as it was
    /// before (so `used_at` tells the caller whether it had already been used).
    async fn take_refresh_token(
        &self,
        id: &str,
        at: UnixMillis,
    ) -> StoreResult<Option<RefreshTokenRecord>>;
    /// Marks every token of a family used (reuse detected, or logout).
    async fn revoke_refresh_family(&self, family: &str, at: UnixMillis) -> StoreResult<()>;
}

/// The append-only, hash-chained audit log.
///
/// Contracts: entries are numbered from 1 without gaps; an entry never changes once
/// appended; `verify_chain` detects any change to stored entries.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends an event and returns it as stored.
    async fn append_audit(&self, event: AuditEvent) -> StoreResult<AuditEntry>;
    /// Reads entries, newest first.
    async fn audit_entries(
        &self,
        scope: &AuditScope,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// Re-computes the whole chain.
    async fn verify_chain(&self) -> StoreResult<ChainVerification>;
}

/// The canonical bytes hashed for an audit entry: stable across backends.
pub fn audit_entry_digest_input(seq: i64, event: &AuditEvent, prev_hash: &str) -> Vec<u8> {
    // serde_json::Value objects keep keys sorted (no `preserve_order` feature), so this
    // serialisation is canonical for the detail object too.
    let canonical = serde_json::json!({
        "seq": seq,
        "at": event.at.0,
        "tenant": event.tenant.as_ref().map(TenantId::as_str),
        "actor": event.actor,
        "action": event.action,
        "outcome": event.outcome.as_str(),
        "target": event.target,
        "detail": event.detail,
        "prev_hash": prev_hash,
    });
    canonical.to_string().into_bytes()
}

/// Hex SHA-256 of an audit entry: `sha256(canonical content including prev_hash)`.
/// Every backend uses this one function, so chains verify across backends.
pub fn audit_entry_hash(seq: i64, event: &AuditEvent, prev_hash: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(audit_entry_digest_input(
        seq, event, prev_hash,
    )))
}

/// The `prev_hash` of the first entry.
pub const AUDIT_GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";
