//! The one error type every store backend returns.

use std::fmt;

/// What went wrong, as something callers can branch on (and map to HTTP statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The record does not exist (in this tenant).
    NotFound,
    /// A record with the same key already exists.
    AlreadyExists,
    /// The caller passed a value the store cannot hold (e.g. a reference to a missing row).
    InvalidInput,
    /// The backend failed: I/O error, corrupt file, lost connection. Usually not the caller's fault.
    Backend,
    /// The store is shutting down or its worker is gone.
    Unavailable,
}

/// An error from a store backend: a kind to branch on plus a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

/// Result alias used by every store trait.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Builds an error of the given kind.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    /// Shorthand for [`StoreErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::NotFound, message)
    }
    /// Shorthand for [`StoreErrorKind::AlreadyExists`].
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::AlreadyExists, message)
    }
    /// Shorthand for [`StoreErrorKind::Backend`].
    pub fn backend(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Backend, message)
    }
    /// The kind, for branching.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
    /// The message (lowercase, no trailing period).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            StoreErrorKind::NotFound => "not found",
            StoreErrorKind::AlreadyExists => "already exists",
            StoreErrorKind::InvalidInput => "invalid input",
            StoreErrorKind::Backend => "storage backend error",
            StoreErrorKind::Unavailable => "store unavailable",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for StoreError {}
