//! External OpenID Connect tokens: verified with the provider's JWKS, mapped to tenants
//! and roles by configurable claims, refused when anything is off.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use identity::oidc::{OidcError, OidcSettings, OidcVerifier};
use identity::{Access, Module, Permission, Subject};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use store::{TenantId, UnixMillis};

const NOW: i64 = 1_800_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn jwks(keys: &[(&str, &SigningKey)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, k)| json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": kid, "x": URL_SAFE_NO_PAD.encode(k.verifying_key().to_bytes())}))
        .collect();
    json!({ "keys": keys }).to_string()
}

fn sign(key: &SigningKey, kid: &str, claims: Value) -> String {
    let der = key.to_pkcs8_der().unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

fn claims() -> Value {
    json!({"iss": "https://idp.city.example", "aud": "citybrain", "sub": "u-17", "exp": NOW + 300,
           "tenant": ["traffic-dept", "Not Valid!"], "roles": ["viewer", "operator", "unknown"]})
}

fn verifier() -> OidcVerifier {
    let settings = OidcSettings {
        issuer: "https://idp.city.example".into(),
        audience: "citybrain".into(),
        tenant_claim: "tenant".into(),
        role_claim: "roles".into(),
    };
    OidcVerifier::new(settings, &jwks(&[("k1", &key(1))])).unwrap()
}

fn now() -> UnixMillis {
    UnixMillis(NOW * 1000)
}

#[test]
fn a_valid_token_maps_to_the_strongest_known_role_in_its_valid_tenants() {
    let principal = verifier()
        .verify(&sign(&key(1), "k1", claims()), now())
        .unwrap();
    assert_eq!(
        principal.subject,
        Subject::External {
            issuer: "https://idp.city.example".into(),
            subject: "u-17".into()
        }
    );
    let tenant = TenantId::new("traffic-dept").unwrap();
    assert_eq!(principal.grants.keys().collect::<Vec<_>>(), [&tenant]);
    assert_eq!(principal.grants[&tenant].role, "operator");
    assert!(
        principal
            .authorize(&tenant, Permission::new(Module::Data, Access::Write))
            .is_ok()
    );
    assert!(!principal.superuser);
}

#[test]
fn wrong_key_issuer_audience_expiry_or_claims_are_refused() {
    let verifier = verifier();
    let refuse = |token: String| verifier.verify(&token, now()).unwrap_err();
    assert!(
        matches!(refuse(sign(&key(2), "k1", claims())), OidcError::Invalid(_)),
        "signed by another key"
    );
    assert!(
        matches!(refuse(sign(&key(1), "k9", claims())), OidcError::Invalid(_)),
        "unknown kid"
    );
    let mut c = claims();
    c["iss"] = json!("https://evil.example");
    assert!(matches!(
        refuse(sign(&key(1), "k1", c)),
        OidcError::Invalid(_)
    ));
    let mut c = claims();
    c["aud"] = json!("someone-else");
    assert!(matches!(
        refuse(sign(&key(1), "k1", c)),
        OidcError::Invalid(_)
    ));
    let mut c = claims();
    c["exp"] = json!(NOW);
    assert_eq!(refuse(sign(&key(1), "k1", c)), OidcError::Expired);
    let mut c = claims();
    c["roles"] = json!(["superhero"]);
    assert!(matches!(
        refuse(sign(&key(1), "k1", c)),
        OidcError::NoAccess(_)
    ));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("tenant");
    assert!(matches!(
        refuse(sign(&key(1), "k1", c)),
        OidcError::NoAccess(_)
    ));
    // An HMAC token is never accepted, whatever its key.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"k1"),
    )
    .unwrap();
    assert!(matches!(refuse(hs), OidcError::Invalid(_)));
}

#[test]
fn key_rotation_replaces_the_trusted_keys() {
    let verifier = verifier();
    let new_token = sign(&key(3), "k2", claims());
    assert!(verifier.verify(&new_token, now()).is_err());
    assert_eq!(verifier.replace_keys(&jwks(&[("k2", &key(3))])).unwrap(), 1);
    assert!(verifier.verify(&new_token, now()).is_ok());
    assert!(
        verifier
            .verify(&sign(&key(1), "k1", claims()), now())
            .is_err(),
        "the old key is gone"
    );
    assert!(verifier.replace_keys("{\"keys\": []}").is_err());
}
