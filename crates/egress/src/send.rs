//! Outbound notifications: a bounded POST under the same address policy as fetches, and
//! the address check for non-HTTP destinations (MQTT brokers).

use crate::{EgressError, EgressPolicy, Fetcher, allowed, check_url, error_chain};
use std::net::SocketAddr;

/// What a POST came back with.
#[derive(Debug, Clone)]
pub struct Posted {
    /// The HTTP status.
    pub status: u16,
}

impl Fetcher {
    /// POSTs `body` to `url` with `headers`, under the policy (address checks, time limit,
    /// no redirects followed beyond the policy's). A non-2xx answer is an
    /// [`EgressError::Status`]. The response body is not read past `max_bytes`.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<Posted, EgressError> {
        check_url(url, &self.policy)?;
        let mut request = self.client.post(url).body(body);
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.map_err(|e| EgressError::Network {
            url: url.to_owned(),
            reason: error_chain(&e),
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(EgressError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        Ok(Posted {
            status: status.as_u16(),
        })
    }
}

/// Resolves `host:port` and keeps the addresses `policy` allows (for protocols that do not
/// go through [`Fetcher`], such as MQTT). `Forbidden` if the name resolves only to
/// forbidden addresses.
pub async fn resolve_allowed(
    host: &str,
    port: u16,
    policy: &EgressPolicy,
) -> Result<Vec<SocketAddr>, EgressError> {
    let url = format!("{host}:{port}");
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| EgressError::Network {
            url: url.clone(),
            reason: e.to_string(),
        })?
        .collect();
    let usable: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| allowed(a.ip(), policy.allow_private))
        .collect();
    if usable.is_empty() {
        return Err(EgressError::Forbidden {
            url,
            reason: "the host resolves to no address the egress policy allows".into(),
        });
    }
    Ok(usable)
}
