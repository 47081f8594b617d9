//! Passwords, API keys and refresh tokens.
//!
//! API keys look like `cbk_<id>.<secret>` and refresh tokens `cbr_<id>.<secret>`: the
//! id is 16 hex digits (public, used for lookup and in audit entries), the secret 32
//! random bytes in base64url. Only SHA-256 of the secret is stored, and comparison is
//! constant-time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// A string that must never be printed: its `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself, for the one place that needs it (hashing, showing once).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (bounds the hashing work an attacker can request).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Why a password or hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short or too long.
    #[error("passwords must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long")]
    BadLength,
    /// The stored hash is not a valid PHC string.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

fn argon2() -> argon2::Argon2<'static> {
    // OWASP's first recommended argon2id setting: 19 MiB, 2 passes, 1 lane.
    let params = argon2::Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Checks a new password against the length policy.
pub fn check_password_policy(password: &Secret) -> Result<(), PasswordError> {
    let len = password.expose().chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        Ok(())
    } else {
        Err(PasswordError::BadLength)
    }
}

/// Hashes a password with argon2id and a random salt (slow on purpose: run it off the
/// async threads).
pub fn hash_password(password: &Secret) -> Result<String, PasswordError> {
    check_password_policy(password)?;
    use argon2::PasswordHasher;
    argon2()
        .hash_password(password.expose().as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &Secret, stored_hash: &str) -> Result<bool, PasswordError> {
    use argon2::PasswordVerifier;
    if password.expose().len() > MAX_PASSWORD_LEN * 4 {
        return Ok(false);
    }
    match argon2().verify_password(password.expose().as_bytes(), stored_hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(_) => Err(PasswordError::MalformedHash),
    }
}

/// A valid argon2id hash of a random password, verified against when the username does
/// not exist so that a failed login takes the same time either way.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&Secret::new(random_token(24))).unwrap_or_default())
}

/// Fresh random bytes from the thread-local CSPRNG (seeded by the OS).
pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut buffer = vec![0u8; count];
    rand::fill(&mut buffer[..]);
    buffer
}

/// Fresh random bytes, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    URL_SAFE_NO_PAD.encode(buffer)
}

fn random_id() -> String {
    let mut buffer = [0u8; 8];
    rand::fill(&mut buffer);
    hex::encode(buffer)
}

/// Hex SHA-256 of a secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time check of a presented secret against a stored hash.
pub fn secret_matches(presented: &str, stored_hash: &str) -> bool {
    secret_hash(presented)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// The kinds of opaque credentials the platform issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// `cbk_...`: an API key.
    ApiKey,
    /// `cbr_...`: a refresh token.
    RefreshToken,
}

impl CredentialKind {
    fn prefix(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "cbk_",
            CredentialKind::RefreshToken => "cbr_",
        }
    }
}

/// A freshly generated opaque credential: the full string is shown once.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// Public id.
    pub id: String,
    /// The full credential `<prefix><id>.<secret>`, to hand to the client once.
    pub full: Secret,
    /// SHA-256 of the secret part, to store.
    pub secret_hash: String,
}

/// Generates a new API key or refresh token.
pub fn new_credential(kind: CredentialKind) -> NewCredential {
    let id = random_id();
    let secret = random_token(32);
    NewCredential {
        full: Secret::new(format!("{}{id}.{secret}", kind.prefix())),
        secret_hash: secret_hash(&secret),
        id,
    }
}

/// Splits a presented credential of the given kind into id and secret.
pub fn parse_credential(kind: CredentialKind, presented: &str) -> Option<(&str, &str)> {
    let rest = presented.strip_prefix(kind.prefix())?;
    let (id, secret) = rest.split_once('.')?;
    let well_formed = id.len() == 16
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && !secret.is_empty()
        && secret.len() <= 64
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    well_formed.then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_wrong_ones_do_not() {
        let hash = hash_password(&Secret::new("correct horse")).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&Secret::new("correct horse"), &hash).unwrap());
        assert!(!verify_password(&Secret::new("correct horsE"), &hash).unwrap());
        assert_eq!(
            verify_password(&Secret::new("x"), "not a hash"),
            Err(PasswordError::MalformedHash)
        );
        assert_eq!(
            hash_password(&Secret::new("short")),
            Err(PasswordError::BadLength)
        );
    }

    #[test]
    fn credentials_parse_back_and_match_only_their_own_secret() {
        let key = new_credential(CredentialKind::ApiKey);
        let (id, secret) = parse_credential(CredentialKind::ApiKey, key.full.expose()).unwrap();
        assert_eq!(id, key.id);
        assert!(secret_matches(secret, &key.secret_hash));
        assert!(!secret_matches("other", &key.secret_hash));
        assert!(parse_credential(CredentialKind::RefreshToken, key.full.expose()).is_none());
        for bad in [
            "cbk_",
            "cbk_zz.abc",
            "cbk_0123456789abcdef.",
            "cbk_0123456789abcdef.a b",
            "Bearer x",
        ] {
            assert!(
                parse_credential(CredentialKind::ApiKey, bad).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted_when_formatted() {
        let secret = Secret::new("hunter2-hunter2");
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
    }
}
