//! The NGSI-LD error kinds (ETSI GS CIM 009, clause 5.5.2) and the one error type of this crate.
//!
//! Every fallible function returns [`NgsiError`], which carries an [`ErrorKind`] and a human-readable
//! `detail` naming the offending element. The HTTP layer maps an error to a response with one table
//! lookup: [`ErrorKind::status`] and [`ErrorKind::type_uri`] are plain data, listed in [`ERROR_TABLE`],
//! and [`NgsiError::to_problem_details`] builds the RFC 7807 body.

use serde_json::{Value, json};

/// The base of every NGSI-LD ProblemDetails `type` URI.
pub const ERROR_TYPE_BASE: &str = "https://uri.etsi.org/ngsi-ld/errors/";

/// The error kinds of the NGSI-LD API (clause 5.5.2, plus the federation kinds of 1.6+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed at the HTTP or JSON level (bad JSON, bad query parameter syntax, mixed contexts).
    InvalidRequest,
    /// The request is well formed but its data is not acceptable (bad entity id, bad attribute, bad `q`).
    BadRequestData,
    /// The entity (or attribute instance) to create exists already.
    AlreadyExists,
    /// The operation is understood but not supported by this implementation or on this resource.
    OperationNotSupported,
    /// The target entity, attribute or subscription does not exist.
    ResourceNotFound,
    /// A bug or an unexpected storage failure.
    InternalError,
    /// The query is too complex to be evaluated.
    TooComplexQuery,
    /// The query would return more results than the broker is willing to return.
    TooManyResults,
    /// A remote `@context` could not be retrieved or is not a valid JSON-LD context.
    LdContextNotAvailable,
    /// A tenant was requested from a broker that has no multi-tenancy.
    NoMultiTenantSupport,
    /// The requested tenant does not exist.
    NonexistentTenant,
    /// The request conflicts with the state of the resource (federation, 1.6+).
    Conflict,
    /// A context source answered with an error (federation).
    BadGateway,
    /// A context source did not answer in time (federation).
    GatewayTimeout,
    /// A distributed operation came back to this broker (`Via` loop detection, 1.8+).
    LoopDetected,
}

/// Every kind with its HTTP status and the last segment of its `type` URI: the single table the
/// HTTP layer needs.
pub const ERROR_TABLE: &[(ErrorKind, u16, &str)] = &[
    (ErrorKind::InvalidRequest, 400, "InvalidRequest"),
    (ErrorKind::BadRequestData, 400, "BadRequestData"),
    (ErrorKind::AlreadyExists, 409, "AlreadyExists"),
    (
        ErrorKind::OperationNotSupported,
        422,
        "OperationNotSupported",
    ),
    (ErrorKind::ResourceNotFound, 404, "ResourceNotFound"),
    (ErrorKind::InternalError, 500, "InternalError"),
    (ErrorKind::TooComplexQuery, 403, "TooComplexQuery"),
    (ErrorKind::TooManyResults, 403, "TooManyResults"),
    (
        ErrorKind::LdContextNotAvailable,
        503,
        "LdContextNotAvailable",
    ),
    (ErrorKind::NoMultiTenantSupport, 501, "NoMultiTenantSupport"),
    (ErrorKind::NonexistentTenant, 404, "NonexistentTenant"),
    (ErrorKind::Conflict, 409, "Conflict"),
    (ErrorKind::BadGateway, 502, "BadGateway"),
    (ErrorKind::GatewayTimeout, 504, "GatewayTimeout"),
    (ErrorKind::LoopDetected, 508, "LoopDetected"),
];

impl ErrorKind {
    fn row(self) -> (u16, &'static str) {
        ERROR_TABLE
            .iter()
            .find(|(kind, _, _)| *kind == self)
            .map(|(_, status, name)| (*status, *name))
            .unwrap_or((500, "InternalError"))
    }

    /// The HTTP status code the spec assigns to this kind.
    pub fn status(self) -> u16 {
        self.row().0
    }

    /// The short name, e.g. `BadRequestData`; also the ProblemDetails `title`.
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The full ProblemDetails `type` URI, e.g. `https://uri.etsi.org/ngsi-ld/errors/BadRequestData`.
    pub fn type_uri(self) -> String {
        format!("{ERROR_TYPE_BASE}{}", self.name())
    }

    /// The kind whose `type` URI (or short name) is `uri`.
    pub fn from_type_uri(uri: &str) -> Option<ErrorKind> {
        let name = uri.strip_prefix(ERROR_TYPE_BASE).unwrap_or(uri);
        ERROR_TABLE
            .iter()
            .find(|(_, _, n)| *n == name)
            .map(|(kind, _, _)| *kind)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An NGSI-LD error: a kind plus a detail message that names the offending element.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct NgsiError {
    /// What went wrong, in the spec's terms.
    pub kind: ErrorKind,
    /// Why, naming the element or field (lowercase, no trailing period).
    pub detail: String,
}

impl NgsiError {
    /// An error of `kind` with `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        NgsiError {
            kind,
            detail: detail.into(),
        }
    }

    /// `InvalidRequest` with `detail`.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, detail)
    }

    /// `BadRequestData` with `detail`.
    pub fn bad_data(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequestData, detail)
    }

    /// `LdContextNotAvailable` with `detail`.
    pub fn context_not_available(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::LdContextNotAvailable, detail)
    }

    /// `OperationNotSupported` with `detail`.
    pub fn not_supported(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::OperationNotSupported, detail)
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The RFC 7807 ProblemDetails body (`type`, `title`, `status`, `detail`).
    pub fn to_problem_details(&self) -> Value {
        json!({
            "type": self.kind.type_uri(),
            "title": self.kind.name(),
            "status": self.kind.status(),
            "detail": self.detail,
        })
    }
}

/// The crate's result type.
pub type Result<T, E = NgsiError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_type_uri() {
        for (kind, status, name) in ERROR_TABLE {
            assert_eq!(ErrorKind::from_type_uri(&kind.type_uri()), Some(*kind));
            assert_eq!(kind.status(), *status);
            assert_eq!(kind.name(), *name);
            assert!(kind.type_uri().starts_with(ERROR_TYPE_BASE));
        }
    }

    #[test]
    fn problem_details_carry_the_spec_fields() {
        let err = NgsiError::bad_data("entity id `x` is not a URI");
        let body = err.to_problem_details();
        assert_eq!(
            body["type"],
            "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
        );
        assert_eq!(body["status"], 400);
        assert_eq!(body["detail"], "entity id `x` is not a URI");
        assert_eq!(NgsiError::context_not_available("x").status(), 503);
    }
}
