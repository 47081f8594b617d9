//! Opening the platform from a configuration: data directory, store, signing key,
//! identity service, HTTP state. Shared by `serve`, `demo`, `admin` and `bench`.

use anyhow::{Context, bail};
use identity::oidc::{OidcSettings, OidcVerifier};
use identity::{IdentityService, ServiceConfig, SystemClock};
use settings::Config;
use std::path::Path;
use std::sync::Arc;
use store_sqlite::{Durability, OpenOptions, SqliteStore};

/// The opened platform.
pub(crate) struct Platform {
    pub(crate) config: Config,
    pub(crate) store: SqliteStore,
    pub(crate) identity: Arc<IdentityService>,
    /// The external token verifier, if `[auth.oidc]` is configured.
    pub(crate) oidc: Option<Arc<OidcVerifier>>,
    /// The computing-power network coordinator, once `services::compute` started it.
    pub(crate) compute: std::sync::OnceLock<cpn_server::Coordinator>,
    /// The address the HTTP API is bound to, once `serve` bound it (before services start,
    /// so they know the real port when `http.listen` asks for port 0).
    pub(crate) http_addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// The identifier service, once `services::handle` started the node.
    pub(crate) identifiers: std::sync::OnceLock<Arc<handle_server::identifiers::Identifiers>>,
}

const SIGNING_KEY_FILE: &str = "secrets/access-token-hs256.key";

/// The fetcher for an OpenID provider's keys: https only, unless the operator allowed a
/// private network (then plain http on it is accepted too).
fn jwks_fetcher(oidc: &settings::OidcConfig) -> anyhow::Result<egress::Fetcher> {
    let policy = egress::EgressPolicy {
        allow_private: oidc.jwks_allow_private,
        allow_http: oidc.jwks_allow_private,
        max_bytes: 256 * 1024,
        ..Default::default()
    };
    Ok(egress::Fetcher::new(policy)?)
}

async fn fetch_jwks(fetcher: &egress::Fetcher, url: &str) -> anyhow::Result<String> {
    let fetched = fetcher
        .get(url, "application/json")
        .await
        .context("fetching auth.oidc.jwks_url")?;
    String::from_utf8(fetched.body).context("the JWKS document is not UTF-8")
}

/// Re-fetches the provider's keys periodically (key rotation); failures keep the old keys.
pub(crate) fn spawn_jwks_refresh(
    config: &Config,
    verifier: Arc<OidcVerifier>,
) -> anyhow::Result<()> {
    let Some(oidc) = &config.auth.oidc else {
        return Ok(());
    };
    let Some(url) = oidc.jwks_url.clone() else {
        return Ok(());
    };
    let fetcher = jwks_fetcher(oidc)?;
    let every = std::time::Duration::from_secs(oidc.jwks_refresh_secs.max(60));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.tick().await;
        loop {
            interval.tick().await;
            match fetch_jwks(&fetcher, &url)
                .await
                .map(|jwks| verifier.replace_keys(&jwks))
            {
                Ok(Ok(keys)) => tracing::debug!(keys, "refreshed the OpenID provider's keys"),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "the OpenID provider's new key set is unusable; keeping the old one")
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "could not refresh the OpenID provider's keys")
                }
            }
        }
    });
    Ok(())
}

/// Reads the access-token signing key, creating it (owner-only) on first start.
fn signing_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(SIGNING_KEY_FILE);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let key = hex::decode(text.trim())
            .with_context(|| format!("{} is not a hex key", path.display()))?;
        if key.len() < 32 {
            bail!("{} holds a key shorter than 32 bytes", path.display());
        }
        return Ok(key);
    }
    let dir = path.parent().context("signing key path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    restrict(dir, 0o700)?;
    let bytes = identity::secrets::random_bytes(32);
    std::fs::write(&path, format!("{}\n", hex::encode(&bytes)))
        .with_context(|| format!("writing {}", path.display()))?;
    restrict(&path, 0o600)?;
    Ok(bytes)
}

#[cfg(unix)]
pub(crate) fn restrict(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting permissions of {}", path.display()))
}

#[cfg(not(unix))]
pub(crate) fn restrict(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}

impl Platform {
    /// Opens everything the configuration names.
    pub(crate) async fn open(config: Config) -> anyhow::Result<Self> {
        let data_dir = config.data_dir().to_owned();
        std::fs::create_dir_all(&data_dir).with_context(|| {
            format!(
                "cannot create the data directory {} (store.data_dir)",
                data_dir.display()
            )
        })?;
        let durability = match config.store.durability {
            settings::Durability::ProcessCrash => Durability::ProcessCrash,
            settings::Durability::PowerLoss => Durability::PowerLoss,
        };
        let store = SqliteStore::open_with(
            &data_dir,
            OpenOptions {
                durability,
                wal_restart_bytes: config.store.wal_limit_mb.saturating_mul(1024 * 1024),
                ..Default::default()
            },
        )
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
        let key = signing_key(&data_dir)?;
        let auth = &config.auth;
        let service_config = ServiceConfig {
            access_token_ttl_secs: auth.access_token_ttl_secs,
            refresh_token_ttl_secs: auth.refresh_token_ttl_secs,
            max_failed_logins: auth.max_failed_logins,
            lockout_secs: auth.lockout_secs,
            anonymous_role: auth.anonymous_role.clone(),
        };
        let oidc = match &auth.oidc {
            None => None,
            Some(oidc) => {
                let jwks = match (&oidc.jwks_file, &oidc.jwks_url) {
                    (Some(file), _) => std::fs::read_to_string(file).with_context(|| {
                        format!("reading auth.oidc.jwks_file {}", file.display())
                    })?,
                    (None, Some(url)) => fetch_jwks(&jwks_fetcher(oidc)?, url).await?,
                    (None, None) => bail!("auth.oidc needs jwks_url or jwks_file"),
                };
                let settings = OidcSettings {
                    issuer: oidc.issuer.clone(),
                    audience: oidc.audience.clone(),
                    tenant_claim: oidc.tenant_claim.clone(),
                    role_claim: oidc.role_claim.clone(),
                };
                Some(Arc::new(
                    OidcVerifier::new(settings, &jwks).context("loading the OIDC key set")?,
                ))
            }
        };
        let identity = IdentityService::new(
            Arc::new(store.clone()),
            &key,
            Arc::new(SystemClock),
            service_config,
            oidc.clone(),
        )?;
        Ok(Self {
            config,
            store,
            identity: Arc::new(identity),
            oidc,
            compute: std::sync::OnceLock::new(),
            http_addr: std::sync::OnceLock::new(),
            identifiers: std::sync::OnceLock::new(),
        })
    }

    /// The HTTP application state.
    pub(crate) fn app_state(&self) -> api_server::AppState {
        let http = &self.config.http;
        api_server::AppState::new(
            Arc::clone(&self.identity),
            api_server::HttpSettings {
                body_limit_bytes: http.body_limit_bytes,
                request_timeout: std::time::Duration::from_secs(http.request_timeout_secs),
                metrics_public: http.metrics_public,
            },
        )
    }
}

impl Platform {
    /// Whether no user exists yet (the store needs bootstrapping).
    pub(crate) async fn store_is_empty(&self) -> anyhow::Result<bool> {
        use store::IdentityStore;
        Ok(self.store.user_count().await? == 0)
    }
}
