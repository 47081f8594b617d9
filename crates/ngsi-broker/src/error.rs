//! Errors of the broker's HTTP API, answered as ProblemDetails with the spec's
//! `https://uri.etsi.org/ngsi-ld/errors/...` types.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ngsi_ld::{ErrorKind, NgsiError};
use serde_json::json;
use store::{StoreError, StoreErrorKind};

/// An error answered to a client of the NGSI-LD API.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// An error in the spec's terms.
    #[error(transparent)]
    Ngsi(#[from] NgsiError),
    /// The caller is authenticated but lacks the permission in the tenant.
    #[error("{0}")]
    Forbidden(String),
    /// The media type of the body is not accepted.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// No representation the client accepts.
    #[error("{0}")]
    NotAcceptable(String),
    /// A storage failure (details are logged, not sent).
    #[error("storage failure: {0}")]
    Store(StoreError),
}

impl From<StoreError> for BrokerError {
    fn from(e: StoreError) -> Self {
        match e.kind() {
            StoreErrorKind::AlreadyExists => {
                BrokerError::Ngsi(NgsiError::new(ErrorKind::AlreadyExists, e.message()))
            }
            StoreErrorKind::NotFound => {
                BrokerError::Ngsi(NgsiError::new(ErrorKind::ResourceNotFound, e.message()))
            }
            _ => BrokerError::Store(e),
        }
    }
}

/// Shorthand constructors.
pub fn bad_data(detail: impl Into<String>) -> BrokerError {
    BrokerError::Ngsi(NgsiError::bad_data(detail))
}
/// `InvalidRequest`.
pub fn invalid(detail: impl Into<String>) -> BrokerError {
    BrokerError::Ngsi(NgsiError::invalid_request(detail))
}
/// `ResourceNotFound`.
pub fn not_found(detail: impl Into<String>) -> BrokerError {
    BrokerError::Ngsi(NgsiError::new(ErrorKind::ResourceNotFound, detail))
}
/// `AlreadyExists`.
pub fn already_exists(detail: impl Into<String>) -> BrokerError {
    BrokerError::Ngsi(NgsiError::new(ErrorKind::AlreadyExists, detail))
}

impl BrokerError {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            BrokerError::Ngsi(e) => {
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            BrokerError::Forbidden(_) => StatusCode::FORBIDDEN,
            BrokerError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BrokerError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            BrokerError::Store(e) if e.kind() == StoreErrorKind::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            BrokerError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The ProblemDetails body.
    pub fn problem(&self) -> serde_json::Value {
        match self {
            BrokerError::Ngsi(e) => e.to_problem_details(),
            BrokerError::Forbidden(d) => json!({
                "type": "urn:citybrain:problem:forbidden", "title": "Forbidden", "status": 403, "detail": d
            }),
            BrokerError::UnsupportedMediaType(d) => json!({
                "type": "urn:citybrain:problem:unsupported-media-type", "title": "Unsupported media type",
                "status": 415, "detail": d
            }),
            BrokerError::NotAcceptable(d) => json!({
                "type": "urn:citybrain:problem:not-acceptable", "title": "Not acceptable", "status": 406, "detail": d
            }),
            BrokerError::Store(_) => NgsiError::new(
                ErrorKind::InternalError,
                "an internal error occurred; see the server log",
            )
            .to_problem_details(),
        }
    }
}

impl IntoResponse for BrokerError {
    fn into_response(self) -> Response {
        if let BrokerError::Store(e) = &self {
            tracing::error!(error = %e, "NGSI-LD store failure");
        }
        let status = self.status();
        let mut response = (status, self.problem().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Result alias for handlers.
pub type BrokerResult<T> = Result<T, BrokerError>;
