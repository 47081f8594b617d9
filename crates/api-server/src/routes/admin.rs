//! Tenants, members, roles, API keys and the audit log.
//!
//! Every route that names a tenant in its path passes it to the identity service,
//! which checks the caller's grant in that tenant before anything is read or written.

use super::session::ApiJson;
use crate::{ApiError, AppState, Caller};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use identity::NewUser;
use identity::secrets::Secret;
use serde::{Deserialize, Serialize};
use store::{ApiKeyRecord, AuditEntry, AuditFilter, ChainVerification, TenantId, TenantRecord};
use utoipa::{IntoParams, ToSchema};

fn tenant(raw: &str) -> Result<TenantId, ApiError> {
    Ok(TenantId::new(raw)?)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Tenant {
    id: String,
    display_name: String,
    created_at: i64,
}

impl From<TenantRecord> for Tenant {
    fn from(t: TenantRecord) -> Self {
        Self {
            id: t.id.to_string(),
            display_name: t.display_name,
            created_at: t.created_at.0,
        }
    }
}

/// Tenants visible to the caller (all of them for platform administrators).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "identity", security(("bearer" = [])),
    responses((status = 200, body = Vec<Tenant>)))]
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<Tenant>>, ApiError> {
    Ok(Json(
        state
            .identity()
            .visible_tenants(&caller)
            .await?
            .into_iter()
            .map(Tenant::from)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    id: String,
    display_name: Option<String>,
}

/// Create a tenant (platform administrators).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "identity", security(("bearer" = [])), request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 403, body = crate::ProblemDetails), (status = 409, body = crate::ProblemDetails)))]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    let id = tenant(&body.id)?;
    let name = body.display_name.unwrap_or_else(|| body.id.clone());
    let record = state.identity().create_tenant(&caller, id, &name).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Member {
    user_id: String,
    username: String,
    role: String,
    superuser: bool,
    disabled: bool,
}

/// Members of a tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/members", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path)), responses((status = 200, body = Vec<Member>), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn list_members(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(tenant_id): Path<String>,
) -> Result<Json<Vec<Member>>, ApiError> {
    let members = state
        .identity()
        .members(&caller, &tenant(&tenant_id)?)
        .await?;
    Ok(Json(
        members
            .into_iter()
            .map(|m| Member {
                user_id: m.user.id,
                username: m.user.username,
                role: m.role,
                superuser: m.user.superuser,
                disabled: m.user.disabled,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    username: String,
    #[schema(value_type = String, format = Password)]
    password: Secret,
    role: String,
    #[serde(default)]
    superuser: bool,
}

/// Create a user who is a member of this tenant.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/users", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = CreateUser,
    responses((status = 201, body = Member), (status = 400, body = crate::ProblemDetails), (status = 403, body = crate::ProblemDetails), (status = 409, body = crate::ProblemDetails)))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(tenant_id): Path<String>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<Member>), ApiError> {
    let new = NewUser {
        username: body.username,
        password: body.password,
        superuser: body.superuser,
    };
    let user = state
        .identity()
        .create_member(&caller, &tenant(&tenant_id)?, new, &body.role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Member {
            user_id: user.id,
            username: user.username,
            role: body.role,
            superuser: user.superuser,
            disabled: user.disabled,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberRole {
    role: String,
}

/// Give an existing user a role in this tenant.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/members/{username}", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path), ("username" = String, Path)), request_body = MemberRole,
    responses((status = 200, body = Member), (status = 403, body = crate::ProblemDetails), (status = 404, body = crate::ProblemDetails)))]
pub(crate) async fn set_member(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((tenant_id, username)): Path<(String, String)>,
    ApiJson(body): ApiJson<MemberRole>,
) -> Result<Json<Member>, ApiError> {
    let user = state
        .identity()
        .set_member_role(&caller, &tenant(&tenant_id)?, &username, &body.role)
        .await?;
    Ok(Json(Member {
        user_id: user.id,
        username: user.username,
        role: body.role,
        superuser: user.superuser,
        disabled: user.disabled,
    }))
}

/// Remove a user from this tenant.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/members/{username}", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path), ("username" = String, Path)),
    responses((status = 204), (status = 403, body = crate::ProblemDetails), (status = 404, body = crate::ProblemDetails)))]
pub(crate) async fn remove_member(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((tenant_id, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant(&tenant_id)?;
    // Check the grant before revealing whether the username exists.
    state.identity().members(&caller, &tenant).await?;
    let user = state
        .identity()
        .store()
        .user_by_username(&username)
        .await
        .map_err(identity::AuthError::from)?
        .ok_or_else(|| ApiError::from(identity::AuthError::NotFound(format!("user {username}"))))?;
    state
        .identity()
        .remove_member(&caller, &tenant, &user.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Role {
    name: String,
    permissions: Vec<String>,
}

/// Custom roles of this tenant (the built-in ones are admin, operator, analyst, viewer, device).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/roles", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path)), responses((status = 200, body = Vec<Role>), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn list_roles(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(tenant_id): Path<String>,
) -> Result<Json<Vec<Role>>, ApiError> {
    let roles = state
        .identity()
        .roles(&caller, &tenant(&tenant_id)?)
        .await?;
    Ok(Json(
        roles
            .into_iter()
            .map(|r| Role {
                name: r.name,
                permissions: r.permissions,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolePermissions {
    /// Permission strings `<module>:<read|write|admin>`.
    permissions: Vec<String>,
}

/// Define or replace a custom role.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant}/roles/{name}", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path), ("name" = String, Path)), request_body = RolePermissions,
    responses((status = 200, body = Role), (status = 400, body = crate::ProblemDetails), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn put_role(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((tenant_id, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<RolePermissions>,
) -> Result<Json<Role>, ApiError> {
    let role = state
        .identity()
        .put_role(&caller, &tenant(&tenant_id)?, &name, &body.permissions)
        .await?;
    Ok(Json(Role {
        name: role.name,
        permissions: role.permissions,
    }))
}

/// Delete a custom role.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/roles/{name}", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 403, body = crate::ProblemDetails), (status = 404, body = crate::ProblemDetails)))]
pub(crate) async fn delete_role(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((tenant_id, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .identity()
        .delete_role(&caller, &tenant(&tenant_id)?, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKey {
    id: String,
    name: String,
    role: String,
    created_by: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl From<ApiKeyRecord> for ApiKey {
    fn from(k: ApiKeyRecord) -> Self {
        Self {
            id: k.id,
            name: k.name,
            role: k.role,
            created_by: k.created_by,
            created_at: k.created_at.0,
            expires_at: k.expires_at.map(|t| t.0),
            revoked_at: k.revoked_at.map(|t| t.0),
        }
    }
}

/// API keys of this tenant (never their secrets).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/api-keys", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path)), responses((status = 200, body = Vec<ApiKey>), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(tenant_id): Path<String>,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    Ok(Json(
        state
            .identity()
            .api_keys(&caller, &tenant(&tenant_id)?)
            .await?
            .into_iter()
            .map(ApiKey::from)
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewApiKey {
    name: String,
    role: String,
    expires_in_secs: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    #[serde(flatten)]
    record: ApiKey,
    /// The full key. It is shown only in this response.
    key: String,
}

/// Create an API key for a device or service; the key is shown once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/api-keys", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path)), request_body = NewApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = crate::ProblemDetails), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(tenant_id): Path<String>,
    ApiJson(body): ApiJson<NewApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let issued = state
        .identity()
        .create_api_key(
            &caller,
            &tenant(&tenant_id)?,
            &body.name,
            &body.role,
            body.expires_in_secs,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            record: issued.record.into(),
            key: issued.key.expose().to_owned(),
        }),
    ))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/api-keys/{id}", tag = "identity", security(("bearer" = [])),
    params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = crate::ProblemDetails), (status = 404, body = crate::ProblemDetails)))]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((tenant_id, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .identity()
        .revoke_api_key(&caller, &tenant(&tenant_id)?, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// At most this many entries (default 100, max 1000).
    limit: Option<u32>,
    /// Only entries older than this sequence number (paging).
    before: Option<i64>,
    /// Only this action, e.g. `auth.login`.
    action: Option<String>,
}

impl From<AuditQuery> for AuditFilter {
    fn from(q: AuditQuery) -> Self {
        AuditFilter {
            before_seq: q.before,
            action: q.action,
            limit: q.limit,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditRecord {
    seq: i64,
    at: i64,
    tenant: Option<String>,
    actor: String,
    action: String,
    outcome: String,
    target: Option<String>,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
    hash: String,
}

impl From<AuditEntry> for AuditRecord {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            at: e.event.at.0,
            tenant: e.event.tenant.map(|t| t.to_string()),
            actor: e.event.actor,
            action: e.event.action,
            outcome: e.event.outcome.as_str().to_owned(),
            target: e.event.target,
            detail: e.event.detail,
            hash: e.hash,
        }
    }
}

/// This tenant's audit log, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/audit", tag = "audit", security(("bearer" = [])),
    params(("tenant" = String, Path), AuditQuery),
    responses((status = 200, body = Vec<AuditRecord>), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn tenant_audit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(tenant_id): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let entries = state
        .identity()
        .tenant_audit(&caller, &tenant(&tenant_id)?, &query.into())
        .await?;
    Ok(Json(entries.into_iter().map(AuditRecord::from).collect()))
}

/// The whole audit log, newest first (platform administrators).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = Vec<AuditRecord>), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn platform_audit(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    let entries = state
        .identity()
        .platform_audit(&caller, &query.into())
        .await?;
    Ok(Json(entries.into_iter().map(AuditRecord::from).collect()))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ChainStatus {
    intact: bool,
    entries: Option<u64>,
    broken_at_seq: Option<i64>,
}

/// Re-check the audit log's hash chain (platform administrators).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = ChainStatus), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn verify_audit(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<ChainStatus>, ApiError> {
    Ok(Json(
        match state.identity().verify_audit_chain(&caller).await? {
            ChainVerification::Intact { entries } => ChainStatus {
                intact: true,
                entries: Some(entries),
                broken_at_seq: None,
            },
            ChainVerification::Broken { seq } => ChainStatus {
                intact: false,
                entries: None,
                broken_at_seq: Some(seq),
            },
        },
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    /// Required when changing one's own password.
    #[schema(value_type = Option<String>, format = Password)]
    current_password: Option<Secret>,
    #[schema(value_type = String, format = Password)]
    new_password: Secret,
}

/// Change a password: one's own (with the current password), or anyone's (platform administrators).
#[utoipa::path(put, path = "/api/v1/users/{username}/password", tag = "identity", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = PasswordChange,
    responses((status = 204), (status = 400, body = crate::ProblemDetails), (status = 401, body = crate::ProblemDetails), (status = 403, body = crate::ProblemDetails)))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state
        .identity()
        .change_password(
            &caller,
            &username,
            body.current_password.as_ref(),
            &body.new_password,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Disabled {
    disabled: bool,
}

/// Disable or re-enable a user (platform administrators).
#[utoipa::path(put, path = "/api/v1/users/{username}/disabled", tag = "identity", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = Disabled,
    responses((status = 204), (status = 403, body = crate::ProblemDetails), (status = 404, body = crate::ProblemDetails)))]
pub(crate) async fn set_disabled(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(username): Path<String>,
    ApiJson(body): ApiJson<Disabled>,
) -> Result<StatusCode, ApiError> {
    state
        .identity()
        .set_user_disabled(&caller, &username, body.disabled)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
