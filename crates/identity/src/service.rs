//! The identity operations, shared by the HTTP API and `citybrain admin`.
//!
//! Every operation takes the acting [`Principal`], checks its permission here (so the
//! HTTP layer and the CLI cannot disagree), performs the change through a tenant scope,
//! and appends an audit entry.

use crate::clock::Clock;
use crate::oidc::{OidcError, OidcVerifier};
use crate::permissions::{Access, BuiltinRole, Module, Permission, PermissionSet};
use crate::principal::{Denied, Grant, Principal, Subject};
use crate::secrets::{self, CredentialKind, PasswordError, Secret};
use crate::tokens::{TokenError, TokenSigner, looks_like_jwt};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use store::{
    ApiKeyRecord, AuditEntry, AuditEvent, AuditFilter, AuditLog, AuditOutcome, AuditScope,
    ChainVerification, CustomRoleRecord, IdentityStore, MemberRecord, RefreshTokenRecord,
    StoreError, StoreErrorKind, TenantId, TenantRecord, TenantScope, UnixMillis, UserRecord,
};

/// Everything the identity service needs from a store.
pub trait IdentityBackend: IdentityStore + AuditLog {}
impl<T: IdentityStore + AuditLog> IdentityBackend for T {}

/// Tunables of the identity service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Lifetime of access tokens.
    pub access_token_ttl_secs: i64,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl_secs: i64,
    /// Failed logins for one username, within the lockout window, before further
    /// attempts are refused.
    pub max_failed_logins: u32,
    /// Length of the lockout window.
    pub lockout_secs: i64,
    /// Opt-in: unauthenticated callers act with this role in every tenant. Never the
    /// default; the server logs a warning at start when it is set.
    pub anonymous_role: Option<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_failed_logins: 10,
            lockout_secs: 5 * 60,
            anonymous_role: None,
        }
    }
}

/// Why an identity operation failed. The HTTP layer maps these to statuses.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials where they are required.
    #[error("authentication is required")]
    MissingCredentials,
    /// Wrong username or password (deliberately not saying which).
    #[error("invalid username or password")]
    InvalidLogin,
    /// A token or key that is malformed, unknown, tampered with or revoked.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A token or key past its expiry.
    #[error("credentials have expired")]
    Expired,
    /// Too many failed logins for this username recently.
    #[error("too many failed login attempts; try again later")]
    TooManyAttempts,
    /// Authenticated, but not allowed.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A request that makes no sense (bad role name, weak password...).
    #[error("{0}")]
    BadRequest(String),
    /// The thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// The thing already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// `bootstrap` on a store that already has users.
    #[error("the store already has users; bootstrap only works on an empty store")]
    AlreadyBootstrapped,
    /// The store failed.
    #[error("storage error: {0}")]
    Store(StoreError),
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        match error.kind() {
            StoreErrorKind::NotFound => AuthError::NotFound(error.message().to_owned()),
            StoreErrorKind::AlreadyExists => AuthError::Conflict(error.message().to_owned()),
            _ => AuthError::Store(error),
        }
    }
}

impl From<PasswordError> for AuthError {
    fn from(error: PasswordError) -> Self {
        match error {
            PasswordError::BadLength => AuthError::BadRequest(error.to_string()),
            other => AuthError::Store(StoreError::backend(other.to_string())),
        }
    }
}

/// Tokens handed out by login and refresh.
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque, single-use token for `/auth/refresh`.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
}

/// What `bootstrap` created.
#[derive(Debug, Clone)]
pub struct BootstrapReport {
    /// The admin's username.
    pub username: String,
    /// The generated password, if none was given (show it once).
    pub generated_password: Option<Secret>,
    /// The first tenant.
    pub tenant: TenantId,
}

/// A freshly created API key: the full key is shown once and never again.
#[derive(Debug, Clone)]
pub struct IssuedApiKey {
    /// The stored record (without the secret).
    pub record: ApiKeyRecord,
    /// The full key for the client.
    pub key: Secret,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name: 1-64 characters of letters, digits, `.`, `_`, `-`, `@`.
    pub username: String,
    /// Initial password.
    pub password: Secret,
    /// Platform administrator (only superusers may create one).
    pub superuser: bool,
}

/// The unified user system's operations.
pub struct IdentityService {
    store: Arc<dyn IdentityBackend>,
    signer: TokenSigner,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    oidc: Option<Arc<OidcVerifier>>,
    failed_logins: Mutex<HashMap<String, (u32, UnixMillis)>>,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn validate_username(username: &str) -> Result<(), AuthError> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadRequest(
            "usernames are 1-64 characters of letters, digits, '.', '_', '-' and '@'".to_owned(),
        ))
    }
}

fn validate_label(what: &str, value: &str) -> Result<(), AuthError> {
    if value.trim().is_empty() || value.chars().count() > 128 || value.chars().any(char::is_control)
    {
        return Err(AuthError::BadRequest(format!(
            "{what} must be 1-128 printable characters"
        )));
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AuthError::Store(StoreError::backend(e.to_string())))
}

impl IdentityService {
    /// Builds the service.
    pub fn new(
        store: Arc<dyn IdentityBackend>,
        signing_key: &[u8],
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
        oidc: Option<Arc<OidcVerifier>>,
    ) -> Result<Self, AuthError> {
        if let Some(role) = &config.anonymous_role
            && BuiltinRole::from_name(role).is_none()
        {
            return Err(AuthError::BadRequest(format!(
                "anonymous role {role:?} is not a built-in role"
            )));
        }
        Ok(Self {
            store,
            signer: TokenSigner::new(signing_key),
            clock,
            config,
            oidc,
            failed_logins: Mutex::new(HashMap::new()),
        })
    }

    /// The store behind the service.
    pub fn store(&self) -> &Arc<dyn IdentityBackend> {
        &self.store
    }

    /// Current time from the injected clock.
    pub fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    /// The service's configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Appends an audit entry; a failure to audit is logged, not returned, because the
    /// audited action has already happened.
    pub async fn audit(
        &self,
        tenant: Option<&TenantId>,
        actor: String,
        action: &str,
        outcome: AuditOutcome,
        target: Option<String>,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            at: self.now(),
            tenant: tenant.cloned(),
            actor,
            action: action.to_owned(),
            outcome,
            target,
            detail,
        };
        if let Err(error) = self.store.append_audit(event).await {
            tracing::error!(%error, action, "could not append to the audit log");
        }
    }

    /// Records a refused authorization.
    pub async fn audit_denied(
        &self,
        principal: &Principal,
        tenant: Option<&TenantId>,
        what: &str,
        denied: &Denied,
    ) {
        self.audit(
            tenant,
            principal.actor(),
            "authz.denied",
            AuditOutcome::Denied,
            Some(what.to_owned()),
            json!({ "reason": denied.to_string() }),
        )
        .await;
    }

    /// Checks a permission, auditing a refusal.
    pub async fn authorize(
        &self,
        principal: &Principal,
        tenant: &TenantId,
        permission: Permission,
        what: &str,
    ) -> Result<TenantScope, AuthError> {
        match principal.authorize(tenant, permission) {
            Ok(scope) => Ok(scope),
            Err(denied) => {
                self.audit_denied(principal, Some(tenant), what, &denied)
                    .await;
                Err(denied.into())
            }
        }
    }

    /// Checks an access level on the tenant's identity data (members, roles, keys).
    async fn identity_scope(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        access: Access,
        what: &str,
    ) -> Result<TenantScope, AuthError> {
        self.authorize(
            actor,
            tenant,
            Permission::new(Module::Identity, access),
            what,
        )
        .await
    }

    async fn authorize_platform(&self, principal: &Principal, what: &str) -> Result<(), AuthError> {
        if let Err(denied) = principal.authorize_platform() {
            self.audit_denied(principal, None, what, &denied).await;
            return Err(denied.into());
        }
        Ok(())
    }

    // ----- bootstrap, login, tokens -----

    /// Creates the first tenant and a superuser admin on an empty store.
    pub async fn bootstrap(
        &self,
        username: &str,
        password: Option<Secret>,
        tenant: TenantId,
    ) -> Result<BootstrapReport, AuthError> {
        validate_username(username)?;
        if self.store.user_count().await? > 0 {
            return Err(AuthError::AlreadyBootstrapped);
        }
        let generated = password.is_none();
        let password = password.unwrap_or_else(|| Secret::new(secrets::random_token(18)));
        let hash = {
            let password = password.clone();
            blocking(move || secrets::hash_password(&password)).await??
        };
        let now = self.now();
        if self.store.tenant(&tenant).await?.is_none() {
            self.store
                .create_tenant(TenantRecord {
                    id: tenant.clone(),
                    display_name: tenant.to_string(),
                    created_at: now,
                })
                .await?;
        }
        let user_id = format!("usr_{}", hex::encode(secrets::random_bytes(8)));
        self.store
            .create_user(UserRecord {
                id: user_id.clone(),
                username: username.to_owned(),
                password_hash: hash,
                superuser: true,
                disabled: false,
                created_at: now,
            })
            .await?;
        self.store
            .set_membership(
                &TenantScope::authorized(tenant.clone()),
                &user_id,
                BuiltinRole::Admin.as_str(),
            )
            .await?;
        self.audit(
            Some(&tenant),
            "system:bootstrap".into(),
            "bootstrap",
            AuditOutcome::Success,
            Some(format!("user:{user_id}")),
            json!({ "username": username }),
        )
        .await;
        Ok(BootstrapReport {
            username: username.to_owned(),
            generated_password: generated.then_some(password),
            tenant,
        })
    }

    fn throttled(&self, username: &str, now: UnixMillis) -> bool {
        let Ok(failures) = self.failed_logins.lock() else {
            return false;
        };
        failures.get(username).is_some_and(|(count, since)| {
            *count >= self.config.max_failed_logins
                && now.0 < since.plus_secs(self.config.lockout_secs).0
        })
    }

    fn note_login_result(&self, username: &str, success: bool, now: UnixMillis) {
        let Ok(mut failures) = self.failed_logins.lock() else {
            return;
        };
        if success {
            failures.remove(username);
            return;
        }
        // Keep the table bounded: forget windows that have passed.
        if failures.len() > 10_000 {
            let lockout = self.config.lockout_secs;
            failures.retain(|_, (_, since)| now.0 < since.plus_secs(lockout).0);
        }
        let entry = failures.entry(username.to_owned()).or_insert((0, now));
        if now.0 >= entry.1.plus_secs(self.config.lockout_secs).0 {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Checks a username and password and issues tokens.
    pub async fn login(&self, username: &str, password: &Secret) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let claimed = format!("login:{}", username.chars().take(64).collect::<String>());
        if self.throttled(username, now) {
            self.audit(
                None,
                claimed,
                "auth.login",
                AuditOutcome::Denied,
                None,
                json!({ "reason": "locked out" }),
            )
            .await;
            return Err(AuthError::TooManyAttempts);
        }
        let user = self.store.user_by_username(username).await?;
        let stored_hash = user.as_ref().map_or_else(
            || secrets::decoy_hash().to_owned(),
            |u| u.password_hash.clone(),
        );
        let presented = password.clone();
        let matches =
            blocking(move || secrets::verify_password(&presented, &stored_hash).unwrap_or(false))
                .await?;
        let user = match user {
            Some(user) if matches && !user.disabled => user,
            found => {
                self.note_login_result(username, false, now);
                let reason = match found {
                    None => "unknown user",
                    Some(u) if u.disabled => "user disabled",
                    Some(_) => "wrong password",
                };
                self.audit(
                    None,
                    claimed,
                    "auth.login",
                    AuditOutcome::Failure,
                    None,
                    json!({ "reason": reason }),
                )
                .await;
                return Err(AuthError::InvalidLogin);
            }
        };
        self.note_login_result(username, true, now);
        let family = secrets::random_token(12);
        let pair = self.issue_tokens(&user, &family, now).await?;
        self.audit(
            None,
            format!("user:{}", user.id),
            "auth.login",
            AuditOutcome::Success,
            None,
            json!({}),
        )
        .await;
        Ok(pair)
    }

    async fn principal_for_user(&self, user: &UserRecord) -> Result<Principal, AuthError> {
        let mut grants = BTreeMap::new();
        for membership in self.store.memberships_of_user(&user.id).await? {
            let permissions = self
                .role_permissions(&membership.tenant, &membership.role)
                .await?;
            grants.insert(
                membership.tenant,
                Grant {
                    role: membership.role,
                    permissions,
                },
            );
        }
        Ok(Principal {
            subject: Subject::User {
                id: user.id.clone(),
                username: user.username.clone(),
            },
            superuser: user.superuser,
            default_tenant: grants.keys().next().cloned(),
            grants,
            any_tenant: None,
            expires_at: None,
        })
    }

    /// Permissions of a role name in a tenant: built-in, else the tenant's custom role,
    /// else none (a deleted custom role grants nothing).
    async fn role_permissions(
        &self,
        tenant: &TenantId,
        role: &str,
    ) -> Result<PermissionSet, AuthError> {
        if let Some(builtin) = BuiltinRole::from_name(role) {
            return Ok(builtin.permissions());
        }
        let scope = TenantScope::authorized(tenant.clone());
        let custom = self
            .store
            .roles(&scope)
            .await?
            .into_iter()
            .find(|r| r.name == role);
        Ok(custom
            .map(|r| {
                PermissionSet::parse(r.permissions.iter().map(String::as_str)).unwrap_or_default()
            })
            .unwrap_or_default())
    }

    async fn issue_tokens(
        &self,
        user: &UserRecord,
        family: &str,
        now: UnixMillis,
    ) -> Result<TokenPair, AuthError> {
        let principal = self.principal_for_user(user).await?;
        let access_token = self
            .signer
            .issue(&principal, now, self.config.access_token_ttl_secs)
            .map_err(|e| AuthError::Store(StoreError::backend(e.to_string())))?;
        let refresh = secrets::new_credential(CredentialKind::RefreshToken);
        self.store
            .insert_refresh_token(RefreshTokenRecord {
                id: refresh.id.clone(),
                family: family.to_owned(),
                user_id: user.id.clone(),
                secret_hash: refresh.secret_hash.clone(),
                issued_at: now,
                expires_at: now.plus_secs(self.config.refresh_token_ttl_secs),
                used_at: None,
            })
            .await?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl_secs,
            refresh_token: refresh.full.expose().to_owned(),
            refresh_expires_in: self.config.refresh_token_ttl_secs,
        })
    }

    /// Exchanges a refresh token for new tokens. Each refresh token works once; using
    /// one a second time revokes its whole family (it was probably stolen).
    pub async fn refresh(&self, presented: &Secret) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let (id, secret) =
            secrets::parse_credential(CredentialKind::RefreshToken, presented.expose())
                .ok_or(AuthError::InvalidCredentials)?;
        let record = self
            .store
            .take_refresh_token(id, now)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if !secrets::secret_matches(secret, &record.secret_hash) {
            return Err(AuthError::InvalidCredentials);
        }
        let actor = format!("user:{}", record.user_id);
        if record.used_at.is_some() {
            self.store
                .revoke_refresh_family(&record.family, now)
                .await?;
            self.audit(
                None,
                actor,
                "auth.refresh",
                AuditOutcome::Denied,
                None,
                json!({ "reason": "refresh token reused; family revoked" }),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        }
        if now >= record.expires_at {
            return Err(AuthError::Expired);
        }
        let user = self
            .store
            .user(&record.user_id)
            .await?
            .filter(|u| !u.disabled);
        let Some(user) = user else {
            self.store
                .revoke_refresh_family(&record.family, now)
                .await?;
            return Err(AuthError::InvalidCredentials);
        };
        self.issue_tokens(&user, &record.family, now).await
    }

    /// Ends a session: revokes the refresh token's family.
    pub async fn logout(&self, presented: &Secret) -> Result<(), AuthError> {
        let now = self.now();
        let (id, secret) =
            secrets::parse_credential(CredentialKind::RefreshToken, presented.expose())
                .ok_or(AuthError::InvalidCredentials)?;
        let record = self
            .store
            .take_refresh_token(id, now)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if !secrets::secret_matches(secret, &record.secret_hash) {
            return Err(AuthError::InvalidCredentials);
        }
        self.store
            .revoke_refresh_family(&record.family, now)
            .await?;
        self.audit(
            None,
            format!("user:{}", record.user_id),
            "auth.logout",
            AuditOutcome::Success,
            None,
            json!({}),
        )
        .await;
        Ok(())
    }

    /// The principal for an unauthenticated request, if the operator opted in.
    pub fn anonymous(&self) -> Option<Principal> {
        let role = BuiltinRole::from_name(self.config.anonymous_role.as_deref()?)?;
        Some(Principal {
            subject: Subject::Anonymous,
            superuser: false,
            grants: BTreeMap::new(),
            any_tenant: Some(Grant {
                role: role.as_str().to_owned(),
                permissions: role.permissions(),
            }),
            default_tenant: None,
            expires_at: None,
        })
    }

    /// Authenticates a bearer credential: an API key, one of our access tokens, or an
    /// external OpenID Connect token.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, AuthError> {
        let now = self.now();
        if credential.starts_with("cbk_") {
            return self.authenticate_api_key(credential, now).await;
        }
        if !looks_like_jwt(credential) {
            return Err(AuthError::InvalidCredentials);
        }
        match self.signer.verify(credential, now) {
            Ok(principal) => Ok(principal),
            Err(TokenError::Expired) => Err(AuthError::Expired),
            Err(_) => match &self.oidc {
                Some(oidc) => oidc.verify(credential, now).map_err(|e| match e {
                    OidcError::Expired => AuthError::Expired,
                    _ => AuthError::InvalidCredentials,
                }),
                None => Err(AuthError::InvalidCredentials),
            },
        }
    }

    async fn authenticate_api_key(
        &self,
        presented: &str,
        now: UnixMillis,
    ) -> Result<Principal, AuthError> {
        let (id, secret) = secrets::parse_credential(CredentialKind::ApiKey, presented)
            .ok_or(AuthError::InvalidCredentials)?;
        let key = self
            .store
            .api_key(id)
            .await?
            .ok_or(AuthError::InvalidCredentials)?;
        if !secrets::secret_matches(secret, &key.secret_hash) || key.revoked_at.is_some() {
            return Err(AuthError::InvalidCredentials);
        }
        if key.expires_at.is_some_and(|t| now >= t) {
            return Err(AuthError::Expired);
        }
        let permissions = self.role_permissions(&key.tenant, &key.role).await?;
        Ok(Principal {
            subject: Subject::ApiKey {
                id: key.id.clone(),
                name: key.name.clone(),
            },
            superuser: false,
            grants: [(
                key.tenant.clone(),
                Grant {
                    role: key.role.clone(),
                    permissions,
                },
            )]
            .into(),
            any_tenant: None,
            default_tenant: Some(key.tenant),
            expires_at: key.expires_at.map(UnixMillis::as_secs),
        })
    }

    // ----- tenants -----

    /// Creates a tenant (platform administrators only).
    pub async fn create_tenant(
        &self,
        actor: &Principal,
        id: TenantId,
        display_name: &str,
    ) -> Result<TenantRecord, AuthError> {
        self.authorize_platform(actor, "tenant.create").await?;
        validate_label("display name", display_name)?;
        let record = TenantRecord {
            id: id.clone(),
            display_name: display_name.to_owned(),
            created_at: self.now(),
        };
        self.store.create_tenant(record.clone()).await?;
        self.audit(
            Some(&id),
            actor.actor(),
            "tenant.create",
            AuditOutcome::Success,
            Some(id.to_string()),
            json!({}),
        )
        .await;
        Ok(record)
    }

    /// Tenants the caller may see: all for platform administrators, else its own.
    pub async fn visible_tenants(&self, actor: &Principal) -> Result<Vec<TenantRecord>, AuthError> {
        let all = self.store.tenants().await?;
        Ok(all
            .into_iter()
            .filter(|t| actor.superuser || actor.grants.contains_key(&t.id))
            .collect())
    }

    // ----- users and memberships -----

    /// Creates a user and makes it a member of the scope's tenant with `role`.
    pub async fn create_member(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        user: NewUser,
        role: &str,
    ) -> Result<UserRecord, AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Admin, "user.create")
            .await?;
        if user.superuser {
            self.authorize_platform(actor, "user.create superuser")
                .await?;
        }
        validate_username(&user.username)?;
        self.check_role_exists(&scope, role).await?;
        let password = user.password.clone();
        let hash = blocking(move || secrets::hash_password(&password)).await??;
        let record = UserRecord {
            id: format!("usr_{}", hex::encode(secrets::random_bytes(8))),
            username: user.username,
            password_hash: hash,
            superuser: user.superuser,
            disabled: false,
            created_at: self.now(),
        };
        self.store.create_user(record.clone()).await?;
        self.store.set_membership(&scope, &record.id, role).await?;
        self.audit(
            Some(tenant),
            actor.actor(),
            "user.create",
            AuditOutcome::Success,
            Some(format!("user:{}", record.id)),
            json!({ "username": record.username, "role": role, "superuser": record.superuser }),
        )
        .await;
        Ok(record)
    }

    /// Gives an existing user (by username) a role in the tenant.
    pub async fn set_member_role(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        username: &str,
        role: &str,
    ) -> Result<UserRecord, AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Admin, "member.set")
            .await?;
        self.check_role_exists(&scope, role).await?;
        let user = self
            .store
            .user_by_username(username)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {username}")))?;
        self.store.set_membership(&scope, &user.id, role).await?;
        self.audit(
            Some(tenant),
            actor.actor(),
            "member.set",
            AuditOutcome::Success,
            Some(format!("user:{}", user.id)),
            json!({ "role": role }),
        )
        .await;
        Ok(user)
    }

    /// Removes a user from the tenant.
    pub async fn remove_member(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<(), AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Admin, "member.remove")
            .await?;
        self.store.remove_membership(&scope, user_id).await?;
        self.audit(
            Some(tenant),
            actor.actor(),
            "member.remove",
            AuditOutcome::Success,
            Some(format!("user:{user_id}")),
            json!({}),
        )
        .await;
        Ok(())
    }

    /// Members of the tenant.
    pub async fn members(
        &self,
        actor: &Principal,
        tenant: &TenantId,
    ) -> Result<Vec<MemberRecord>, AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Read, "member.list")
            .await?;
        Ok(self.store.members(&scope).await?)
    }

    /// Disables or re-enables a user (platform administrators only: users span tenants).
    pub async fn set_user_disabled(
        &self,
        actor: &Principal,
        username: &str,
        disabled: bool,
    ) -> Result<(), AuthError> {
        self.authorize_platform(actor, "user.disable").await?;
        let user = self
            .store
            .user_by_username(username)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {username}")))?;
        self.store.set_disabled(&user.id, disabled).await?;
        self.audit(
            None,
            actor.actor(),
            if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            AuditOutcome::Success,
            Some(format!("user:{}", user.id)),
            json!({}),
        )
        .await;
        Ok(())
    }

    /// Changes the caller's own password (needs the current one), or any user's password
    /// for platform administrators (`current` = None).
    pub async fn change_password(
        &self,
        actor: &Principal,
        username: &str,
        current: Option<&Secret>,
        new: &Secret,
    ) -> Result<(), AuthError> {
        secrets::check_password_policy(new)?;
        let user = self
            .store
            .user_by_username(username)
            .await?
            .ok_or_else(|| AuthError::NotFound(format!("user {username}")))?;
        let own = actor.user_id() == Some(user.id.as_str());
        match current {
            Some(current) if own => {
                let (presented, stored) = (current.clone(), user.password_hash.clone());
                if !blocking(move || secrets::verify_password(&presented, &stored).unwrap_or(false))
                    .await?
                {
                    self.audit(
                        None,
                        actor.actor(),
                        "user.password",
                        AuditOutcome::Failure,
                        Some(format!("user:{}", user.id)),
                        json!({}),
                    )
                    .await;
                    return Err(AuthError::InvalidLogin);
                }
            }
            _ => self.authorize_platform(actor, "user.password").await?,
        }
        let new = new.clone();
        let hash = blocking(move || secrets::hash_password(&new)).await??;
        self.store.set_password_hash(&user.id, &hash).await?;
        self.audit(
            None,
            actor.actor(),
            "user.password",
            AuditOutcome::Success,
            Some(format!("user:{}", user.id)),
            json!({}),
        )
        .await;
        Ok(())
    }

    // ----- roles -----

    async fn check_role_exists(&self, scope: &TenantScope, role: &str) -> Result<(), AuthError> {
        if BuiltinRole::from_name(role).is_some()
            || self
                .store
                .roles(scope)
                .await?
                .iter()
                .any(|r| r.name == role)
        {
            Ok(())
        } else {
            Err(AuthError::BadRequest(format!(
                "unknown role {role:?}: use admin, operator, analyst, viewer, device or a custom role of the tenant"
            )))
        }
    }

    /// Defines or replaces a custom role.
    pub async fn put_role(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        name: &str,
        permissions: &[String],
    ) -> Result<CustomRoleRecord, AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Admin, "role.put")
            .await?;
        validate_username(name).map_err(|_| {
            AuthError::BadRequest(
                "role names are 1-64 characters of letters, digits, '.', '_', '-'".into(),
            )
        })?;
        if BuiltinRole::from_name(name).is_some() {
            return Err(AuthError::BadRequest(format!(
                "{name} is a built-in role and cannot be redefined"
            )));
        }
        let set = PermissionSet::parse(permissions.iter().map(String::as_str))
            .map_err(|e| AuthError::BadRequest(e.to_string()))?;
        let record = CustomRoleRecord {
            name: name.to_owned(),
            permissions: set.to_strings(),
        };
        self.store.put_role(&scope, record.clone()).await?;
        self.audit(
            Some(tenant),
            actor.actor(),
            "role.put",
            AuditOutcome::Success,
            Some(name.to_owned()),
            json!({ "permissions": record.permissions }),
        )
        .await;
        Ok(record)
    }

    /// Custom roles of a tenant.
    pub async fn roles(
        &self,
        actor: &Principal,
        tenant: &TenantId,
    ) -> Result<Vec<CustomRoleRecord>, AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Read, "role.list")
            .await?;
        Ok(self.store.roles(&scope).await?)
    }

    /// Deletes a custom role.
    pub async fn delete_role(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        name: &str,
    ) -> Result<(), AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Admin, "role.delete")
            .await?;
        self.store.delete_role(&scope, name).await?;
        self.audit(
            Some(tenant),
            actor.actor(),
            "role.delete",
            AuditOutcome::Success,
            Some(name.to_owned()),
            json!({}),
        )
        .await;
        Ok(())
    }

    // ----- API keys -----

    /// Creates an API key acting with `role` in the tenant; the full key is returned once.
    pub async fn create_api_key(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        name: &str,
        role: &str,
        ttl_secs: Option<i64>,
    ) -> Result<IssuedApiKey, AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Admin, "apikey.create")
            .await?;
        validate_label("key name", name)?;
        self.check_role_exists(&scope, role).await?;
        if ttl_secs.is_some_and(|t| t <= 0) {
            return Err(AuthError::BadRequest(
                "expires_in_secs must be positive".into(),
            ));
        }
        let now = self.now();
        let credential = secrets::new_credential(CredentialKind::ApiKey);
        let record = ApiKeyRecord {
            id: credential.id.clone(),
            tenant: tenant.clone(),
            name: name.to_owned(),
            role: role.to_owned(),
            secret_hash: credential.secret_hash.clone(),
            created_by: actor.actor(),
            created_at: now,
            expires_at: ttl_secs.map(|t| now.plus_secs(t)),
            revoked_at: None,
        };
        self.store.create_api_key(&scope, record.clone()).await?;
        self.audit(
            Some(tenant),
            actor.actor(),
            "apikey.create",
            AuditOutcome::Success,
            Some(format!("key:{}", record.id)),
            json!({ "name": name, "role": role }),
        )
        .await;
        Ok(IssuedApiKey {
            record,
            key: credential.full,
        })
    }

    /// API keys of a tenant (never their secrets).
    pub async fn api_keys(
        &self,
        actor: &Principal,
        tenant: &TenantId,
    ) -> Result<Vec<ApiKeyRecord>, AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Read, "apikey.list")
            .await?;
        Ok(self.store.api_keys(&scope).await?)
    }

    /// Revokes a key: it stops working immediately.
    pub async fn revoke_api_key(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        id: &str,
    ) -> Result<(), AuthError> {
        let scope = self
            .identity_scope(actor, tenant, Access::Admin, "apikey.revoke")
            .await?;
        self.store.revoke_api_key(&scope, id, self.now()).await?;
        self.audit(
            Some(tenant),
            actor.actor(),
            "apikey.revoke",
            AuditOutcome::Success,
            Some(format!("key:{id}")),
            json!({}),
        )
        .await;
        Ok(())
    }

    // ----- audit log -----

    /// Reads a tenant's audit entries (needs `audit:read` there).
    pub async fn tenant_audit(
        &self,
        actor: &Principal,
        tenant: &TenantId,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, AuthError> {
        let scope = self
            .authorize(
                actor,
                tenant,
                Permission::new(Module::Audit, Access::Read),
                "audit.read",
            )
            .await?;
        Ok(self
            .store
            .audit_entries(&AuditScope::Tenant(scope), filter)
            .await?)
    }

    /// Reads the whole audit log (platform administrators).
    pub async fn platform_audit(
        &self,
        actor: &Principal,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEntry>, AuthError> {
        self.authorize_platform(actor, "audit.read platform")
            .await?;
        Ok(self
            .store
            .audit_entries(&AuditScope::Platform, filter)
            .await?)
    }

    /// Checks the audit log's hash chain (platform administrators).
    pub async fn verify_audit_chain(
        &self,
        actor: &Principal,
    ) -> Result<ChainVerification, AuthError> {
        self.authorize_platform(actor, "audit.verify").await?;
        Ok(self.store.verify_chain().await?)
    }
}
