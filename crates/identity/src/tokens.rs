//! Signed access tokens (JWT, HS256).
//!
//! Claims: `iss` (`citybrain`), `sub` (user id), `name` (username), `su` (superuser),
//! `ten` (tenant → role and permission bits), `dt` (default tenant), `iat`, `exp`, `jti`.
//! Expiry is checked against the injected clock (not the library's system clock), so
//! tests can move time.

use crate::permissions::PermissionSet;
use crate::principal::{Grant, Principal, Subject};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use store::{TenantId, UnixMillis};

/// Issuer name in every token this platform signs.
pub const ISSUER: &str = "citybrain";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TenantClaim {
    role: String,
    perms: PermissionSet,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    name: String,
    su: bool,
    ten: BTreeMap<TenantId, TenantClaim>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dt: Option<TenantId>,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Signature, format or claims are wrong.
    #[error("invalid access token")]
    Invalid,
    /// The token is past its expiry.
    #[error("access token expired")]
    Expired,
    /// Signing failed (bad key).
    #[error("could not sign token: {0}")]
    Signing(String),
}

/// Signs and verifies access tokens with one HMAC key.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner([redacted])")
    }
}

impl TokenSigner {
    /// A signer using `key` (at least 32 bytes of randomness).
    pub fn new(key: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_exp = false; // checked against our clock in `verify`
        validation.validate_aud = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
        }
    }

    /// Signs a token for `principal`, a user, valid for `ttl_secs` from `now`.
    pub fn issue(
        &self,
        principal: &Principal,
        now: UnixMillis,
        ttl_secs: i64,
    ) -> Result<String, TokenError> {
        let Subject::User { id, username } = &principal.subject else {
            return Err(TokenError::Signing(
                "access tokens are issued to users only".into(),
            ));
        };
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: id.clone(),
            name: username.clone(),
            su: principal.superuser,
            ten: principal
                .grants
                .iter()
                .map(|(t, g)| {
                    (
                        t.clone(),
                        TenantClaim {
                            role: g.role.clone(),
                            perms: g.permissions,
                        },
                    )
                })
                .collect(),
            dt: principal.default_tenant.clone(),
            iat: now.as_secs(),
            exp: now.as_secs() + ttl_secs,
            jti: crate::secrets::random_token(12),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Verifies a token and rebuilds its principal.
    pub fn verify(&self, token: &str, now: UnixMillis) -> Result<Principal, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if now.as_secs() >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(Principal {
            subject: Subject::User {
                id: claims.sub,
                username: claims.name,
            },
            superuser: claims.su,
            grants: claims
                .ten
                .into_iter()
                .map(|(t, c)| {
                    (
                        t,
                        Grant {
                            role: c.role,
                            permissions: c.perms,
                        },
                    )
                })
                .collect(),
            any_tenant: None,
            default_tenant: claims.dt,
            expires_at: Some(claims.exp),
        })
    }
}

/// Whether a bearer value looks like a JWT (three base64url parts).
pub fn looks_like_jwt(value: &str) -> bool {
    value.split('.').count() == 3
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BuiltinRole;

    fn principal() -> Principal {
        let tenant = TenantId::new("city").unwrap();
        Principal {
            subject: Subject::User {
                id: "usr_1".into(),
                username: "ada".into(),
            },
            superuser: false,
            grants: [(
                tenant.clone(),
                Grant {
                    role: "operator".into(),
                    permissions: BuiltinRole::Operator.permissions(),
                },
            )]
            .into(),
            any_tenant: None,
            default_tenant: Some(tenant),
            expires_at: None,
        }
    }

    #[test]
    fn a_token_round_trips_until_it_expires() {
        let signer = TokenSigner::new(&[7; 32]);
        let token = signer
            .issue(&principal(), UnixMillis(1_000_000), 60)
            .unwrap();
        let back = signer.verify(&token, UnixMillis(1_059_999)).unwrap();
        assert_eq!(back.grants, principal().grants);
        assert_eq!(back.expires_at, Some(1_060));
        assert_eq!(
            signer.verify(&token, UnixMillis(1_060_000)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_invalid() {
        let signer = TokenSigner::new(&[7; 32]);
        let token = signer.issue(&principal(), UnixMillis(0), 60).unwrap();
        let other = TokenSigner::new(&[8; 32]);
        assert_eq!(
            other.verify(&token, UnixMillis(0)),
            Err(TokenError::Invalid)
        );
        // Flip one character of the payload: the signature no longer matches.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload = parts[1].clone().into_bytes();
        payload[5] = if payload[5] == b'A' { b'B' } else { b'A' };
        parts[1] = String::from_utf8(payload).unwrap();
        assert_eq!(
            signer.verify(&parts.join("."), UnixMillis(0)),
            Err(TokenError::Invalid)
        );
        // "alg": "none" is never accepted.
        let unsigned = format!("{}.{}.", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", parts[1]);
        assert_eq!(
            signer.verify(&unsigned, UnixMillis(0)),
            Err(TokenError::Invalid)
        );
    }
}
