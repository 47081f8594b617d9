//! Login, token refresh, logout and "who am I".

use crate::{ApiError, AppState, Caller};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use identity::secrets::Secret;
use identity::{Principal, Subject};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    username: String,
    #[schema(value_type = String, format = Password)]
    password: Secret,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Tokens {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
    refresh_expires_in: i64,
}

impl From<identity::TokenPair> for Tokens {
    fn from(pair: identity::TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            token_type: pair.token_type,
            expires_in: pair.expires_in,
            refresh_token: pair.refresh_token,
            refresh_expires_in: pair.refresh_expires_in,
        }
    }
}

/// Our JSON extractor: body problems become ProblemDetails like every other error.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct ApiJson<T>(pub(crate) T);

/// Log in with a username and password; returns an access token and a refresh token.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = Tokens), (status = 401, body = crate::ProblemDetails), (status = 429, body = crate::ProblemDetails)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(
        state
            .identity()
            .login(&body.username, &body.password)
            .await?
            .into(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshRequest {
    #[schema(value_type = String)]
    refresh_token: Secret,
}

/// Exchange a refresh token (single use) for new tokens.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Tokens), (status = 401, body = crate::ProblemDetails)))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    Ok(Json(
        state.identity().refresh(&body.refresh_token).await?.into(),
    ))
}

/// End the session of a refresh token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204), (status = 401, body = crate::ProblemDetails)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    state.identity().logout(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantGrant {
    role: String,
    permissions: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Me {
    actor: String,
    kind: &'static str,
    name: Option<String>,
    superuser: bool,
    default_tenant: Option<String>,
    tenants: BTreeMap<String, TenantGrant>,
    expires_at: Option<i64>,
}

fn describe(principal: &Principal) -> Me {
    let (kind, name) = match &principal.subject {
        Subject::User { username, .. } => ("user", Some(username.clone())),
        Subject::ApiKey { name, .. } => ("api_key", Some(name.clone())),
        Subject::External { subject, .. } => ("external", Some(subject.clone())),
        Subject::Anonymous => ("anonymous", None),
        Subject::System { tool } => ("system", Some(tool.clone())),
    };
    Me {
        actor: principal.actor(),
        kind,
        name,
        superuser: principal.superuser,
        default_tenant: principal.default_tenant.as_ref().map(ToString::to_string),
        tenants: principal
            .grants
            .iter()
            .map(|(t, g)| {
                (
                    t.to_string(),
                    TenantGrant {
                        role: g.role.clone(),
                        permissions: g.permissions.to_strings(),
                    },
                )
            })
            .collect(),
        expires_at: principal.expires_at,
    }
}

/// Who the caller is and what it may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = crate::ProblemDetails)))]
pub(crate) async fn me(Caller(caller): Caller) -> Json<Me> {
    Json(describe(&caller))
}
