//! Bearer tokens from an external OpenID Connect provider.
//!
//! The provider's signing keys come as a JWKS document (fetched by the server from the
//! configured URL, or read from a file). Only asymmetric algorithms are accepted, so a
//! token can never be "signed" with a public key used as an HMAC secret. The tenant
//! and role come from configurable claims; a claim may hold a string or an array.

use crate::permissions::BuiltinRole;
use crate::principal::{Grant, Principal, Subject};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::BTreeMap;
use std::sync::RwLock;
use store::{TenantId, UnixMillis};

/// How to trust and map external tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Claim naming the tenant(s) the user belongs to.
    pub tenant_claim: String,
    /// Claim naming the user's role(s); the most powerful built-in role found wins.
    pub role_claim: String,
}

/// Why an external token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// Bad signature, unknown key, wrong issuer or audience, malformed.
    #[error("invalid external token: {0}")]
    Invalid(String),
    /// Past its `exp`.
    #[error("external token expired")]
    Expired,
    /// Valid, but it names no tenant or no known role.
    #[error("external token grants no access: {0}")]
    NoAccess(String),
    /// The JWKS document could not be used.
    #[error("unusable JWKS document: {0}")]
    BadJwks(String),
}

const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Verifies external tokens against the provider's current keys.
#[derive(Debug)]
pub struct OidcVerifier {
    settings: OidcSettings,
    keys: RwLock<JwkSet>,
}

impl OidcVerifier {
    /// A verifier with an initial key set (JSON text of a JWKS document).
    pub fn new(settings: OidcSettings, jwks_json: &str) -> Result<Self, OidcError> {
        let keys = parse_jwks(jwks_json)?;
        Ok(Self {
            settings,
            keys: RwLock::new(keys),
        })
    }

    /// Replaces the key set (key rotation at the provider).
    pub fn replace_keys(&self, jwks_json: &str) -> Result<usize, OidcError> {
        let keys = parse_jwks(jwks_json)?;
        let count = keys.keys.len();
        if let Ok(mut current) = self.keys.write() {
            *current = keys;
        }
        Ok(count)
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// Verifies a token and maps it to a principal.
    pub fn verify(&self, token: &str, now: UnixMillis) -> Result<Principal, OidcError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| OidcError::Invalid(e.to_string()))?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(OidcError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = {
            let keys = self
                .keys
                .read()
                .map_err(|_| OidcError::BadJwks("key set lock poisoned".into()))?;
            let jwk = match &header.kid {
                Some(kid) => keys.find(kid),
                None if keys.keys.len() == 1 => keys.keys.first(),
                None => None,
            }
            .ok_or_else(|| {
                OidcError::Invalid("no matching key in the provider's key set".into())
            })?;
            DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Invalid(e.to_string()))?
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| OidcError::Invalid(e.to_string()))?;
        let claims = data.claims;
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| OidcError::Invalid("exp".into()))?;
        if now.as_secs() >= exp {
            return Err(OidcError::Expired);
        }
        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let role = strings(claims.get(&self.settings.role_claim))
            .iter()
            .filter_map(|name| BuiltinRole::from_name(name))
            .min_by_key(|role| BuiltinRole::ALL.iter().position(|r| r == role))
            .ok_or_else(|| {
                OidcError::NoAccess(format!(
                    "claim {:?} names no known role",
                    self.settings.role_claim
                ))
            })?;
        let tenants: Vec<TenantId> = strings(claims.get(&self.settings.tenant_claim))
            .into_iter()
            .filter_map(|t| TenantId::new(t).ok())
            .collect();
        if tenants.is_empty() {
            return Err(OidcError::NoAccess(format!(
                "claim {:?} names no valid tenant",
                self.settings.tenant_claim
            )));
        }
        let grants: BTreeMap<_, _> = tenants
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    Grant {
                        role: role.as_str().to_owned(),
                        permissions: role.permissions(),
                    },
                )
            })
            .collect();
        Ok(Principal {
            subject: Subject::External {
                issuer: self.settings.issuer.clone(),
                subject,
            },
            superuser: false,
            grants,
            any_tenant: None,
            default_tenant: tenants.first().cloned(),
            expires_at: Some(exp),
        })
    }
}

fn parse_jwks(json: &str) -> Result<JwkSet, OidcError> {
    let keys: JwkSet = serde_json::from_str(json).map_err(|e| OidcError::BadJwks(e.to_string()))?;
    if keys.keys.is_empty() {
        return Err(OidcError::BadJwks("the key set is empty".into()));
    }
    Ok(keys)
}

fn strings(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}
