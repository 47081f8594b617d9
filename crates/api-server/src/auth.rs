//! The authentication layer: turns credentials into a [`Principal`] for every protected
//! route, and the [`Caller`] extractor that hands it to handlers.

use crate::{ApiError, AppState, ErrorKind};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use identity::Principal;

/// The authenticated caller of a protected route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::new(ErrorKind::Unauthenticated, "authentication is required"))
    }
}

/// Where a request carries its credential.
enum Credential<'a> {
    None,
    Bearer(&'a str),
    Unsupported,
}

fn credential(headers: &HeaderMap) -> Credential<'_> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else {
            return Credential::Unsupported;
        };
        return match value.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                Credential::Bearer(token.trim())
            }
            _ => Credential::Unsupported,
        };
    }
    if let Some(value) = headers.get("x-api-key") {
        return value
            .to_str()
            .map_or(Credential::Unsupported, Credential::Bearer);
    }
    Credential::None
}

/// Middleware on the protected router: authenticate or answer 401.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let identity = state.identity();
    let principal = match credential(request.headers()) {
        Credential::Bearer(token) => match identity.authenticate(token).await {
            Ok(principal) => principal,
            Err(error) => return ApiError::from(error).into_response(),
        },
        Credential::Unsupported => {
            return ApiError::new(
                ErrorKind::Unauthenticated,
                "use `Authorization: Bearer <token or API key>`",
            )
            .into_response();
        }
        Credential::None => match identity.anonymous() {
            Some(anonymous) => anonymous,
            None => {
                return ApiError::new(ErrorKind::Unauthenticated, "authentication is required")
                    .into_response();
            }
        },
    };
    request.extensions_mut().insert(principal);
    next.run(request).await
}
