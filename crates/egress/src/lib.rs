//! Outbound HTTP for the platform: every fetch the server makes on a user's behalf
//! (remote JSON-LD `@context` documents, an OpenID provider's keys, ...) goes through
//! [`Fetcher`], which bounds it and refuses to reach private networks.
//!
//! Why a crate of its own: server-side request forgery is a class of bug, not a single
//! call site. One policy object decides, for every connection attempt, whether the
//! destination address is acceptable:
//! - host names are resolved by our resolver, which drops private, loopback,
//!   link-local (cloud metadata), CGNAT, multicast and unspecified addresses unless the
//!   policy allows private destinations, so a public name pointing at `127.0.0.1` fails;
//! - literal IP URLs are checked before the request, and redirects are followed only a
//!   few times and re-checked at each hop;
//! - bodies are read in chunks and abandoned past `max_bytes`; the whole fetch has a
//!   time limit.

mod send;

pub use send::{Posted, resolve_allowed};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

/// Link-local addresses (169.254.0.0/16, fe80::/10) hold cloud metadata services and are
/// refused even when private destinations are allowed.
pub fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

fn allowed(ip: IpAddr, allow_private: bool) -> bool {
    !is_link_local(ip) && (allow_private || !is_non_public(ip))
}

/// What outbound fetches may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Allow private and loopback destinations (trusted networks, tests). Link-local
    /// addresses stay forbidden.
    pub allow_private: bool,
    /// Allow plain `http://` (otherwise only `https://`).
    pub allow_http: bool,
    /// Largest body accepted.
    pub max_bytes: usize,
    /// Time limit for the whole fetch, connection to last byte.
    pub timeout: Duration,
    /// Redirects followed at most.
    pub max_redirects: usize,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        Self {
            allow_private: false,
            allow_http: true,
            max_bytes: 1024 * 1024,
            timeout: Duration::from_secs(5),
            max_redirects: 3,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// Not a URL, or a scheme other than http(s).
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The destination is on a network the policy does not allow.
    #[error("refusing to fetch {url}: {reason}")]
    Forbidden {
        /// The URL.
        url: String,
        /// Which rule refused it.
        reason: String,
    },
    /// The body exceeded `max_bytes`.
    #[error("response from {url} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// Timeout, DNS failure, connection refused, TLS failure...
    #[error("fetching {url} failed: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// The underlying error, with its causes.
        reason: String,
    },
}

/// A fetched document.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The final URL (after redirects).
    pub url: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Whether an address is outside the public internet: loopback, private, link-local,
/// CGNAT, unspecified, broadcast, multicast, documentation or benchmarking ranges, and
/// their IPv4-mapped IPv6 forms.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_non_public_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0) // NAT64 prefix itself
        }
    }
}

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// Resolves names and drops addresses the policy forbids.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| allowed(a.ip(), allow_private))
                .collect();
            if usable.is_empty() && !addrs.is_empty() {
                return Err(
                    format!("{host} resolves only to addresses the egress policy forbids").into(),
                );
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Makes bounded, policy-checked GET requests. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    policy: Arc<EgressPolicy>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher enforcing `policy`.
    pub fn new(policy: EgressPolicy) -> Result<Self, EgressError> {
        install_crypto_provider();
        let redirect_policy = policy.clone();
        let client = reqwest::Client::builder()
            .dns_resolver(GuardedResolver {
                allow_private: policy.allow_private,
            })
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .user_agent(concat!("citybrain/", env!("CARGO_PKG_VERSION")))
            // Some receivers (the conformance suite's among them) match header names
            // case-sensitively.
            .http1_title_case_headers()
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > redirect_policy.max_redirects {
                    return attempt.error("too many redirects");
                }
                match check_url(attempt.url().as_str(), &redirect_policy) {
                    Ok(()) => attempt.follow(),
                    Err(error) => attempt.error(error.to_string()),
                }
            }))
            .build()
            .map_err(|e| EgressError::Network {
                url: String::new(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            client,
            policy: Arc::new(policy),
        })
    }

    /// The policy.
    pub fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    /// GETs `url` with the given `Accept` header.
    pub async fn get(&self, url: &str, accept: &str) -> Result<Fetched, EgressError> {
        check_url(url, &self.policy)?;
        let network = |e: reqwest::Error| EgressError::Network {
            url: url.to_owned(),
            reason: error_chain(&e),
        };
        let mut response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(network)?;
        let status = response.status();
        if !status.is_success() {
            return Err(EgressError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let limit = self.policy.max_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(EgressError::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        let final_url = response.url().to_string();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if body.len() + chunk.len() > limit {
                return Err(EgressError::TooLarge {
                    url: url.to_owned(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            url: final_url,
            content_type,
            body,
        })
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Checks scheme and, for literal IP hosts, the address.
fn check_url(raw: &str, policy: &EgressPolicy) -> Result<(), EgressError> {
    let invalid = |reason: &str| EgressError::InvalidUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return Err(EgressError::Forbidden {
                url: raw.to_owned(),
                reason: "only https is allowed".into(),
            });
        }
        _ => return Err(invalid("only http and https URLs can be fetched")),
    }
    let forbidden_ip = |ip: IpAddr| {
        (!allowed(ip, policy.allow_private)).then(|| EgressError::Forbidden {
            url: raw.to_owned(),
            reason: format!("{ip} is not a public address"),
        })
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => forbidden_ip(IpAddr::V4(ip)).map_or(Ok(()), Err),
        Some(url::Host::Ipv6(ip)) => forbidden_ip(IpAddr::V6(ip)).map_or(Ok(()), Err),
        Some(url::Host::Domain(name))
            if !policy.allow_private && (name == "localhost" || name.ends_with(".localhost")) =>
        {
            Err(EgressError::Forbidden {
                url: raw.to_owned(),
                reason: "localhost is not a public host".into(),
            })
        }
        Some(url::Host::Domain(_)) => Ok(()),
        None => Err(invalid("the URL has no host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_ranges_are_non_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::",
        ] {
            assert!(
                is_non_public(ip.parse().unwrap()),
                "{ip} should be non-public"
            );
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn urls_are_checked_before_any_connection() {
        let policy = EgressPolicy::default();
        assert!(matches!(
            check_url("http://127.0.0.1:8080/x", &policy),
            Err(EgressError::Forbidden { .. })
        ));
        assert!(matches!(
            check_url("http://[::1]/x", &policy),
            Err(EgressError::Forbidden { .. })
        ));
        assert!(matches!(
            check_url("http://169.254.169.254/latest/meta-data", &policy),
            Err(EgressError::Forbidden { .. })
        ));
        assert!(matches!(
            check_url("http://localhost/x", &policy),
            Err(EgressError::Forbidden { .. })
        ));
        assert!(matches!(
            check_url("file:///etc/passwd", &policy),
            Err(EgressError::InvalidUrl { .. })
        ));
        assert!(matches!(
            check_url("not a url", &policy),
            Err(EgressError::InvalidUrl { .. })
        ));
        assert!(
            check_url(
                "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld",
                &policy
            )
            .is_ok()
        );
        let https_only = EgressPolicy {
            allow_http: false,
            ..EgressPolicy::default()
        };
        assert!(matches!(
            check_url("http://example.org/", &https_only),
            Err(EgressError::Forbidden { .. })
        ));
        let trusted = EgressPolicy {
            allow_private: true,
            ..EgressPolicy::default()
        };
        assert!(check_url("http://127.0.0.1:8080/x", &trusted).is_ok());
        assert!(
            check_url("http://169.254.169.254/latest", &trusted).is_err(),
            "metadata stays forbidden"
        );
        assert!(check_url("http://[fe80::1]/", &trusted).is_err());
    }
}
