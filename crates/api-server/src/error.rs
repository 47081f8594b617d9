//! One error type for every HTTP route, rendered as RFC 7807 ProblemDetails from one
//! table (kind → status, type URI, title).
//!
//! Converting an error to a response has no side effects. Details of internal errors
//! are not sent to the client; they travel in a response extension that the
//! `log_internal_errors` middleware logs together with the request id.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use identity::AuthError;
use serde::Serialize;
use utoipa::ToSchema;

/// The kinds of errors the API reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or its values are invalid.
    BadRequest,
    /// No valid credentials.
    Unauthenticated,
    /// Valid credentials, not allowed.
    Forbidden,
    /// No such resource (or not visible to the caller).
    NotFound,
    /// The resource exists and the request conflicts with it.
    Conflict,
    /// The body is larger than `http.body_limit_bytes`.
    PayloadTooLarge,
    /// The body's media type is not accepted.
    UnsupportedMediaType,
    /// Too many attempts; slow down.
    TooManyRequests,
    /// A bug or a storage failure.
    Internal,
    /// A dependency is down (e.g. the store is closing).
    Unavailable,
}

struct KindInfo {
    status: StatusCode,
    type_uri: &'static str,
    title: &'static str,
}

/// The one table from error kind to HTTP status, problem type and title.
const fn info(kind: ErrorKind) -> KindInfo {
    use ErrorKind::*;
    let (status, type_uri, title) = match kind {
        BadRequest => (
            StatusCode::BAD_REQUEST,
            "urn:citybrain:problem:bad-request",
            "Bad request",
        ),
        Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "urn:citybrain:problem:unauthenticated",
            "Authentication required",
        ),
        Forbidden => (
            StatusCode::FORBIDDEN,
            "urn:citybrain:problem:forbidden",
            "Forbidden",
        ),
        NotFound => (
            StatusCode::NOT_FOUND,
            "urn:citybrain:problem:not-found",
            "Not found",
        ),
        Conflict => (
            StatusCode::CONFLICT,
            "urn:citybrain:problem:conflict",
            "Conflict",
        ),
        PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:citybrain:problem:payload-too-large",
            "Request body too large",
        ),
        UnsupportedMediaType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "urn:citybrain:problem:unsupported-media-type",
            "Unsupported media type",
        ),
        TooManyRequests => (
            StatusCode::TOO_MANY_REQUESTS,
            "urn:citybrain:problem:too-many-requests",
            "Too many requests",
        ),
        Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "urn:citybrain:problem:internal",
            "Internal error",
        ),
        Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "urn:citybrain:problem:unavailable",
            "Service unavailable",
        ),
    };
    KindInfo {
        status,
        type_uri,
        title,
    }
}

/// RFC 7807 problem details, as sent on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDetails {
    /// A URI identifying the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
}

/// An error answered to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    kind: ErrorKind,
    detail: String,
    internal: Option<String>,
}

/// Carries an internal error's real message to the logging middleware.
#[derive(Debug, Clone)]
pub(crate) struct InternalErrorDetail(pub(crate) String);

impl ApiError {
    /// An error of `kind` whose `detail` is shown to the client.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            internal: None,
        }
    }
    /// A bad request.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, detail)
    }
    /// An internal error: the client sees a generic message, the log the real one.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            detail: "an internal error occurred; see the server log".into(),
            internal: Some(message.into()),
        }
    }
    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let info = info(self.kind);
        let body = ProblemDetails {
            problem_type: info.type_uri.to_owned(),
            title: info.title.to_owned(),
            status: info.status.as_u16(),
            detail: self.detail,
        };
        let mut response = (info.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.kind == ErrorKind::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"citybrain\""),
            );
        }
        if let Some(internal) = self.internal {
            response
                .extensions_mut()
                .insert(InternalErrorDetail(internal));
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let kind = match &error {
            AuthError::MissingCredentials
            | AuthError::InvalidLogin
            | AuthError::InvalidCredentials
            | AuthError::Expired => ErrorKind::Unauthenticated,
            AuthError::TooManyAttempts => ErrorKind::TooManyRequests,
            AuthError::Denied(_) => ErrorKind::Forbidden,
            AuthError::BadRequest(_) => ErrorKind::BadRequest,
            AuthError::NotFound(_) => ErrorKind::NotFound,
            AuthError::Conflict(_) | AuthError::AlreadyBootstrapped => ErrorKind::Conflict,
            AuthError::Store(store) if store.kind() == store::StoreErrorKind::Unavailable => {
                ErrorKind::Unavailable
            }
            AuthError::Store(store) => return ApiError::internal(store.to_string()),
        };
        ApiError::new(kind, error.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let kind = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorKind::UnsupportedMediaType,
            _ => ErrorKind::BadRequest,
        };
        ApiError::new(kind, rejection.body_text())
    }
}

impl From<store::TenantIdError> for ApiError {
    fn from(error: store::TenantIdError) -> Self {
        ApiError::bad_request(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_type_and_an_error_status() {
        use ErrorKind::*;
        let kinds = [
            BadRequest,
            Unauthenticated,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            TooManyRequests,
            Internal,
            Unavailable,
        ];
        let mut types = std::collections::HashSet::new();
        for kind in kinds {
            let info = info(kind);
            assert!(info.status.is_client_error() || info.status.is_server_error());
            assert!(types.insert(info.type_uri), "duplicate type for {kind:?}");
        }
    }
}
