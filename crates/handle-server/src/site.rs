//! Generated site information (HS_SITE) and the node's `did:web` document.

use std::net::IpAddr;

use base64::Engine as _;
use handle_proto::codec::Codec;
use handle_proto::data::{
    Interface, PublicKey, ServerInfo, SiteInfo, hash_option, interface_protocol, interface_type,
};
use serde_json::{Value, json};

/// What the site record advertises.
#[derive(Debug, Clone)]
pub struct SiteParams {
    /// Address clients should use.
    pub address: IpAddr,
    /// Native UDP/TCP port.
    pub native_port: u16,
    /// HTTP (REST) port.
    pub http_port: u16,
    /// Site serial number.
    pub serial: u16,
    /// `desc` attribute.
    pub description: String,
    /// The node's Ed25519 public key, published in the server record.
    pub public_key: Option<[u8; 32]>,
}

/// Builds the HS_SITE record the way CNRI's setup writes it: one primary server (id 1),
/// admin+query on TCP, query on UDP, admin+query on HTTP, hash by handle.
pub fn generate_site(p: &SiteParams) -> SiteInfo {
    let port = u32::from(p.native_port);
    SiteInfo {
        version: 1,
        protocol_major: 2,
        protocol_minor: 5,
        serial: p.serial,
        primary_mask: SiteInfo::PRIMARY,
        hash_option: hash_option::BY_HANDLE,
        hash_filter: Vec::new(),
        attributes: vec![(b"desc".to_vec(), p.description.as_bytes().to_vec())],
        servers: vec![ServerInfo {
            server_id: 1,
            address: ServerInfo::address_bytes(p.address),
            public_key: p
                .public_key
                .map(|k| PublicKey::ed25519(k).to_bytes())
                .unwrap_or_default(),
            interfaces: vec![
                Interface {
                    kind: interface_type::ADMIN_AND_QUERY,
                    protocol: interface_protocol::TCP,
                    port,
                },
                Interface {
                    kind: interface_type::QUERY,
                    protocol: interface_protocol::UDP,
                    port,
                },
                Interface {
                    kind: interface_type::ADMIN_AND_QUERY,
                    protocol: interface_protocol::HTTP,
                    port: u32::from(p.http_port),
                },
            ],
        }],
    }
}

/// The `did:web` document for a node reachable at `host` (`example.org` or `example.org%3A8000`),
/// listing its Ed25519 key and its Handle service endpoints (served at `/.well-known/did.json`).
/// The REST endpoint is `https://<host>/api/handles/`.
pub fn did_web_document(
    host: &str,
    public_key: &[u8; 32],
    native_port: u16,
    prefixes: &[String],
) -> Value {
    let base = format!("https://{}", host.replace("%3A", ":"));
    did_web_document_at(host, &base, public_key, native_port, prefixes)
}

/// The Ed25519 public key of the node key with this 32-byte seed.
pub fn node_public_key(seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes()
}

/// The `did:web` host for a base URL: `https://city.example.org:8443/x` gives
/// `city.example.org%3A8443` (the port's colon percent-encoded, as did:web requires).
pub fn did_web_host(base_url: &str) -> Option<String> {
    let rest = base_url
        .strip_prefix("https://")
        .or_else(|| base_url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(authority.replace(':', "%3A"))
}

/// Like [`did_web_document`], with the REST API's base URL given (`http://127.0.0.1:8080` for a
/// node on a private address).
pub fn did_web_document_at(
    host: &str,
    rest_base: &str,
    public_key: &[u8; 32],
    native_port: u16,
    prefixes: &[String],
) -> Value {
    let did = format!("did:web:{host}");
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public_key);
    let http_host = host.replace("%3A", ":");
    let bare_host = http_host.split(':').next().unwrap_or(&http_host).to_owned();
    let rest_base = rest_base.trim_end_matches('/');
    json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/suites/jws-2020/v1"],
        "id": did,
        "verificationMethod": [{
            "id": format!("{did}#node-key"),
            "type": "JsonWebKey2020",
            "controller": did,
            "publicKeyJwk": { "kty": "OKP", "crv": "Ed25519", "x": x },
        }],
        "authentication": [format!("{did}#node-key")],
        "assertionMethod": [format!("{did}#node-key")],
        "service": [
            { "id": format!("{did}#handle-rest"), "type": "HandleRestApi", "serviceEndpoint": format!("{rest_base}/api/handles/") },
            { "id": format!("{did}#handle-native"), "type": "HandleNativeProtocol", "serviceEndpoint": format!("hdl://{bare_host}:{native_port}") },
        ],
        "handlePrefixes": prefixes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_is_primary_with_three_interfaces() {
        let site = generate_site(&SiteParams {
            address: "192.0.2.2".parse().unwrap(),
            native_port: 2641,
            http_port: 8000,
            serial: 1,
            description: "node".into(),
            public_key: Some([1; 32]),
        });
        let bytes = site.to_bytes();
        let back = SiteInfo::read_bytes(&bytes).unwrap();
        assert_eq!(back.primary_mask, 0x80);
        assert_eq!(back.servers[0].ip().to_string(), "192.0.2.2");
        assert_eq!(back.servers[0].interfaces.len(), 3);
        assert_eq!(
            PublicKey::read_bytes(&back.servers[0].public_key)
                .unwrap()
                .as_ed25519(),
            Some([1; 32])
        );
    }

    #[test]
    fn did_web_hosts_encode_the_port() {
        assert_eq!(
            did_web_host("https://city.example.org").as_deref(),
            Some("city.example.org")
        );
        assert_eq!(
            did_web_host("http://127.0.0.1:8080/base").as_deref(),
            Some("127.0.0.1%3A8080")
        );
        assert_eq!(did_web_host("ftp://x"), None);
        assert_eq!(did_web_host("https://user@x"), None);
        assert_eq!(did_web_host("https://"), None);
    }

    #[test]
    fn did_document_names_key_and_services() {
        let doc = did_web_document("node.example%3A8000", &[0; 32], 2641, &["21.T999".into()]);
        assert_eq!(doc["id"], "did:web:node.example%3A8000");
        assert_eq!(
            doc["verificationMethod"][0]["publicKeyJwk"]["x"],
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(
            doc["service"][0]["serviceEndpoint"],
            "https://node.example:8000/api/handles/"
        );
        assert_eq!(
            doc["service"][1]["serviceEndpoint"],
            "hdl://node.example:2641"
        );
    }
}
