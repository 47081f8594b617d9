//! Small value types shared by all stores.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch. Chosen by the caller; stores never read a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// This instant plus `seconds`.
    pub fn plus_secs(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1000)))
    }
    /// Whole seconds since the epoch (rounded down).
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

/// A tenant identifier: 1-63 characters of `[a-z0-9_-]`, starting with a letter or digit.
///
/// The same rule as DNS labels (plus `_`), so a tenant id is safe in URLs, file names,
/// SQL identifiers built by backends and the NGSI-LD `NGSILD-Tenant` header.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// Why a string is not a valid [`TenantId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant id {value:?}: {reason}")]
pub struct TenantIdError {
    value: String,
    reason: &'static str,
}

impl TenantId {
    /// Validates and wraps a tenant id.
    pub fn new(value: impl Into<String>) -> Result<Self, TenantIdError> {
        let value = value.into();
        let fail = |reason| {
            Err(TenantIdError {
                value: value.clone(),
                reason,
            })
        };
        if value.is_empty() {
            return fail("must not be empty");
        }
        if value.len() > 63 {
            return fail("must be at most 63 characters");
        }
        let bytes = value.as_bytes();
        if !bytes[0].is_ascii_lowercase() && !bytes[0].is_ascii_digit() {
            return fail("must start with a lowercase letter or a digit");
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
        {
            return fail("may contain only lowercase letters, digits, '-' and '_'");
        }
        Ok(Self(value))
    }
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = TenantIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Proof that the caller may act inside one tenant.
///
/// Every tenant-scoped store method takes a scope and must confine its reads and writes
/// to `scope.tenant()`. Only the authorization layer (after checking the principal's
/// membership) and trusted operator tools (`citybrain admin`, the demo loader) create scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantScope {
    tenant: TenantId,
}

impl TenantScope {
    /// Creates a scope. Call this only after authorizing the caller for `tenant`.
    pub fn authorized(tenant: TenantId) -> Self {
        Self { tenant }
    }
    /// The tenant this scope confines operations to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_dns_label_rule() {
        for ok in ["default", "city-1", "a", "0x", "traffic_dept"] {
            assert!(TenantId::new(ok).is_ok(), "{ok} should be valid");
        }
        for bad in ["", "-a", "_a", "Upper", "a b", "a/b", "ä", &"x".repeat(64)] {
            assert!(TenantId::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn millis_arithmetic_saturates() {
        assert_eq!(UnixMillis(1_000).plus_secs(2), UnixMillis(3_000));
        assert_eq!(UnixMillis(i64::MAX).plus_secs(1), UnixMillis(i64::MAX));
        assert_eq!(UnixMillis(-1).as_secs(), -1);
    }
}
