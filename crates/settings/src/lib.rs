//! citybrain's configuration: one typed structure, loaded from a TOML file, then
//! `CITYBRAIN_*` environment variables, then command-line flags (later sources win),
//! and validated before anything starts.
//!
//! Environment variables name a key path with `__` between levels:
//! `CITYBRAIN_HTTP__LISTEN=0.0.0.0:1026`, `CITYBRAIN_AUTH__OIDC__ISSUER=...`.
//! Unknown keys anywhere are errors that name the key and where it came from, so a typo
//! never silently falls back to a default.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default HTTP address: the NGSI-LD port FIWARE users expect, loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1026";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./citybrain-data";
/// Prefix of environment variables read as configuration.
pub const ENV_PREFIX: &str = "CITYBRAIN_";
/// Environment variable naming the configuration file (not itself a key).
pub const ENV_CONFIG_FILE: &str = "CITYBRAIN_CONFIG";
/// Process-level variables under [`ENV_PREFIX`] that are not configuration keys: the
/// configuration file, where the shared data sets live, and the Python that runs the
/// reference simulator for `bench sim`. Every other `CITYBRAIN_*` variable must name a key.
pub const ENV_NOT_CONFIG: &[&str] = &[
    ENV_CONFIG_FILE,
    "CITYBRAIN_SHARED",
    "CITYBRAIN_CITYFLOW_PYTHON",
];

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP API.
    pub http: HttpConfig,
    /// Where and how data is stored.
    pub store: StoreConfig,
    /// The unified user system.
    pub auth: AuthConfig,
    /// Logging.
    pub log: LogConfig,
    /// The computing-power network coordinator.
    pub compute: ComputeConfig,
    /// The NGSI-LD context broker.
    pub ngsi: NgsiConfig,
    /// The Handle System node.
    pub handle: HandleConfig,
}

/// `[ngsi]`: the NGSI-LD context broker.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NgsiConfig {
    /// The tenant of requests without `NGSILD-Tenant` whose caller has no default tenant
    /// (e.g. anonymous callers).
    pub default_tenant: String,
    /// `@context` URLs served from local files (URL -> path), so the broker works offline.
    pub context_preload: BTreeMap<String, PathBuf>,
    /// Fetch other remote `@context`s (else they are `LdContextNotAvailable`).
    pub fetch_remote_contexts: bool,
    /// Remote context fetches may reach private and loopback addresses (trusted networks only).
    pub context_allow_private: bool,
    /// Largest remote context accepted, in bytes.
    pub context_max_bytes: usize,
    /// Time limit of one remote context fetch, in milliseconds.
    pub context_timeout_ms: u64,
    /// How many fetched contexts are kept.
    pub context_cache_entries: usize,
    /// Page size of queries without `limit`.
    pub default_limit: usize,
    /// Largest `limit` accepted.
    pub max_limit: usize,
    /// Subscription notifications may go to private and loopback addresses (trusted networks,
    /// the conformance suite's local receiver). Link-local addresses stay forbidden.
    pub notification_allow_private: bool,
    /// Time limit of one notification delivery attempt, in milliseconds.
    pub notification_timeout_ms: u64,
    /// Temporal API page: most instances of one attribute per response; a longer history is
    /// answered 206 with `Content-Range` (spec 6.3.10).
    pub temporal_limit: usize,
    /// Every entity write also records its history (the temporal representation). Off, the
    /// temporal API keeps serving what was written to it directly (`/temporal/entities`), and
    /// entity writes cost about a fifth less CPU (like Orion-LD without its TRoE option).
    pub record_history: bool,
}

impl Default for NgsiConfig {
    fn default() -> Self {
        Self {
            default_tenant: "default".to_owned(),
            context_preload: BTreeMap::new(),
            fetch_remote_contexts: true,
            context_allow_private: false,
            context_max_bytes: 1024 * 1024,
            context_timeout_ms: 5_000,
            context_cache_entries: 256,
            default_limit: 20,
            max_limit: 1000,
            notification_allow_private: false,
            notification_timeout_ms: 5_000,
            temporal_limit: 10_000,
            record_history: true,
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on, `IP:PORT`.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Requests taking longer are answered with 408.
    pub request_timeout_secs: u64,
    /// Serve `/metrics` without authentication (for a Prometheus scraper on a trusted
    /// network). Off by default: then it needs a platform administrator's token.
    pub metrics_public: bool,
    /// On shutdown, how long in-flight requests get to finish.
    pub shutdown_grace_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            body_limit_bytes: 16 * 1024 * 1024,
            request_timeout_secs: 30,
            metrics_public: false,
            shutdown_grace_secs: 10,
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The data directory (database, secrets).
    pub data_dir: PathBuf,
    /// `process-crash` (default: acknowledged writes survive kill -9) or `power-loss`
    /// (every commit fsynced).
    pub durability: Durability,
    /// The write-ahead log's size bound in MiB: past it the store lets the log start over
    /// even under writes that never pause, and cuts the file back to it.
    pub wal_limit_mb: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            durability: Durability::ProcessCrash,
            wal_limit_mb: 256,
        }
    }
}

/// See [`StoreConfig::durability`].
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Survive a process crash.
    ProcessCrash,
    /// Survive a power loss.
    PowerLoss,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of access tokens (JWT).
    pub access_token_ttl_secs: i64,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl_secs: i64,
    /// Failed logins per username before a lockout.
    pub max_failed_logins: u32,
    /// Lockout length.
    pub lockout_secs: i64,
    /// DANGER, opt-in: let unauthenticated callers act with this built-in role in every
    /// tenant (for conformance suites that send no credentials). Logged loudly at start.
    pub anonymous_role: Option<String>,
    /// Accept bearer tokens from an external OpenID Connect provider.
    pub oidc: Option<OidcConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            max_failed_logins: 10,
            lockout_secs: 300,
            anonymous_role: None,
            oidc: None,
        }
    }
}

/// `[auth.oidc]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Where to fetch the provider's JWKS (https, or http on a private network when
    /// `jwks_allow_private` is set).
    pub jwks_url: Option<String>,
    /// Or: a local JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// Allow `jwks_url` to point at private/loopback addresses.
    #[serde(default)]
    pub jwks_allow_private: bool,
    /// How often to re-fetch `jwks_url`.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// Claim naming the tenant(s).
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Claim naming the role(s).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
}

fn default_jwks_refresh() -> u64 {
    3600
}
fn default_tenant_claim() -> String {
    "tenant".to_owned()
}
fn default_role_claim() -> String {
    "roles".to_owned()
}

/// `[compute]`: the computing-power network coordinator. The defaults need no setup: this
/// machine is registered as a `local` site and runs jobs as local processes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    /// Run the coordinator and serve `/cpn/v1`.
    pub enabled: bool,
    /// Register this machine as a site at start (if no site has its id yet).
    pub local_site: bool,
    /// The local site's id.
    pub local_site_id: String,
    /// The local site's region (one of the east/west catalogue's, e.g. `yrd`, `ningxia`).
    pub local_region: String,
    /// The local site's data-sovereignty zone.
    pub local_zone: String,
    /// Cores offered (default: all of this machine's).
    pub local_cpu_cores: Option<f64>,
    /// Memory offered, GiB.
    pub local_memory_gib: f64,
    /// Agent heartbeat and monitor tick, milliseconds.
    pub heartbeat_interval_ms: u64,
    /// A site silent this long is down and its jobs are retried elsewhere, milliseconds.
    pub heartbeat_timeout_ms: u64,
    /// Attempts per job before it fails.
    pub max_attempts: u32,
    /// Default per-tenant quota: active jobs.
    pub default_max_active_jobs: u32,
    /// Default per-tenant quota: cores over active jobs.
    pub default_max_cpu_cores: f64,
    /// Default per-tenant quota: GPUs over active jobs.
    pub default_max_gpus: f64,
    /// slurmrestd base URL (`http://host:port`) for `slurm` sites.
    pub slurm_url: Option<String>,
    /// User the slurmrestd token belongs to.
    pub slurm_user: Option<String>,
    /// File holding the slurmrestd JWT (never put the token itself in the configuration).
    pub slurm_token_file: Option<PathBuf>,
    /// Directory shared with the compute nodes, writable by `slurm_user`.
    pub slurm_workdir: Option<String>,
    /// Slurm partition.
    pub slurm_partition: String,
    /// Kubernetes API server URL for `kubernetes` sites (`http://`: a `kubectl proxy` or a
    /// TLS-terminating proxy; needs a binary built with `--features kubernetes`).
    pub kube_url: Option<String>,
    /// Namespace the Jobs are created in.
    pub kube_namespace: String,
    /// Container image the jobs' commands run in.
    pub kube_image: String,
    /// File holding a bearer token for the API server, if it needs one.
    pub kube_token_file: Option<PathBuf>,
}

impl Default for ComputeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            local_site: true,
            local_site_id: "local".to_owned(),
            local_region: "yrd".to_owned(),
            local_zone: "CN-SH".to_owned(),
            local_cpu_cores: None,
            local_memory_gib: 4.0,
            heartbeat_interval_ms: 1000,
            heartbeat_timeout_ms: 5000,
            max_attempts: 3,
            default_max_active_jobs: 100,
            default_max_cpu_cores: 256.0,
            default_max_gpus: 64.0,
            slurm_url: None,
            slurm_user: None,
            slurm_token_file: None,
            slurm_workdir: None,
            slurm_partition: "debug".to_owned(),
            kube_url: None,
            kube_namespace: "default".to_owned(),
            kube_image: "busybox:1.37".to_owned(),
            kube_token_file: None,
        }
    }
}

/// Default native (UDP and TCP) address of the Handle System node: the protocol's port 2641,
/// loopback only.
pub const DEFAULT_HANDLE_LISTEN: &str = "127.0.0.1:2641";

/// `[handle]`: the Handle System node (native UDP/TCP protocol and the Handle.Net REST API
/// under `/api/handles`). On by default. If the default port is taken, `serve` goes on without
/// the native listener (a warning names the key); an explicitly configured `listen` that
/// cannot be bound is an error.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HandleConfig {
    /// Run the node at all.
    pub enabled: bool,
    /// Native UDP+TCP address, `IP:PORT` (port 0: any free port, for tests).
    pub listen: String,
    /// Prefixes homed on this node; each gets `0.NA/<prefix>` and the administrator handle
    /// `<prefix>/ADMIN` whose secret key (HS_SECKEY, index 300) is read from
    /// `admin_secret_file`.
    pub prefixes: Vec<String>,
    /// File holding the administrators' secret key (first line). Unset: a random one is
    /// created in `<data_dir>/secrets/handle-admin.secret` (owner-only). Never logged.
    pub admin_secret_file: Option<PathBuf>,
    /// UDP worker threads; 0: one per CPU.
    pub udp_workers: usize,
    /// The base URL clients reach this platform at (`https://city.example.org`). Minted
    /// identifiers point at entities under it, and the node's `did:web` identifier is derived
    /// from its host. Unset: `http://<http.listen>`.
    pub public_url: Option<String>,
    /// The prefix new identifiers for entities and data sets are minted under. Unset: the
    /// first of `prefixes`.
    pub mint_prefix: Option<String>,
}

impl Default for HandleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: DEFAULT_HANDLE_LISTEN.to_owned(),
            prefixes: vec!["21.T999".to_owned()],
            admin_secret_file: None,
            udp_workers: 0,
            public_url: None,
            mint_prefix: None,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `citybrain=debug,tower_http=info`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// See [`LogConfig::format`].
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration problem, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Parser message with line and column.
        reason: String,
    },
    /// A key that does not exist, or a value of the wrong type.
    #[error("invalid configuration key `{key}` (from {source_name}): {reason}")]
    Key {
        /// Dotted key path.
        key: String,
        /// File, environment variable or flag.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// A value that has the right type but is not acceptable.
    #[error("invalid value for `{key}`: {reason}")]
    Value {
        /// Dotted key path.
        key: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// Where configuration comes from, in increasing precedence.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A TOML file.
    pub file: Option<PathBuf>,
    /// `(name, value)` environment pairs; only `CITYBRAIN_*` ones are used.
    pub env: Vec<(String, String)>,
    /// Command-line overrides as `(dotted.key, value)`, e.g. `("http.listen", "0.0.0.0:80")`.
    pub flags: Vec<(String, toml::Value)>,
}

impl Sources {
    /// The process environment plus an optional file and flags.
    pub fn from_process(file: Option<PathBuf>, flags: Vec<(String, toml::Value)>) -> Self {
        let env: Vec<_> = std::env::vars().collect();
        let file = file.or_else(|| {
            env.iter()
                .find(|(k, _)| k == ENV_CONFIG_FILE)
                .map(|(_, v)| PathBuf::from(v))
        });
        Self { file, env, flags }
    }
}

fn env_value(raw: &str) -> toml::Value {
    // Numbers and booleans keep their type; everything else is a string.
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| {
            matches!(
                v,
                toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_)
            )
        })
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{part}` is a value, not a section"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// Loads and validates the configuration.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let mut table = match &sources.file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            text.parse::<toml::Table>()
                .map_err(|e| ConfigError::Syntax {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
        }
        None => toml::Table::new(),
    };
    let file_name = sources
        .file
        .as_ref()
        .map(|p| format!("config file {}", p.display()))
        .unwrap_or_default();
    let mut overlay = |key: String, value: toml::Value, source: String, table: &mut toml::Table| {
        let path: Vec<String> = key.split('.').map(str::to_owned).collect();
        insert_path(table, &path, value).map_err(|reason| ConfigError::Key {
            key: key.clone(),
            source_name: source.clone(),
            reason,
        })?;
        origin.insert(key, source);
        Ok::<(), ConfigError>(())
    };
    for (name, raw) in &sources.env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_NOT_CONFIG.contains(&name.as_str()) || rest.is_empty() {
            continue;
        }
        let key = rest
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(".");
        overlay(
            key,
            env_value(raw),
            format!("environment variable {name}"),
            &mut table,
        )?;
    }
    for (key, value) in &sources.flags {
        overlay(
            key.clone(),
            value.clone(),
            format!("flag for {key}"),
            &mut table,
        )?;
    }
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|error| {
            let key = error.path().to_string();
            let source_name = origin
                .iter()
                .find(|(k, _)| {
                    key == **k
                        || key.starts_with(&format!("{k}."))
                        || k.starts_with(&format!("{key}."))
                })
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| {
                    if file_name.is_empty() {
                        "defaults".to_owned()
                    } else {
                        file_name.clone()
                    }
                });
            ConfigError::Key {
                key,
                source_name,
                reason: error.inner().to_string(),
            }
        })?;
    config.validate()?;
    Ok(config)
}

impl Config {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let value = |key: &str, reason: String| {
            Err(ConfigError::Value {
                key: key.to_owned(),
                reason,
            })
        };
        self.listen_addr()?;
        if self.http.body_limit_bytes < 1024 {
            return value("http.body_limit_bytes", "must be at least 1024".into());
        }
        if self.http.request_timeout_secs == 0 {
            return value("http.request_timeout_secs", "must be at least 1".into());
        }
        if self.store.data_dir.as_os_str().is_empty() {
            return value("store.data_dir", "must not be empty".into());
        }
        if !(1..=1024 * 1024).contains(&self.store.wal_limit_mb) {
            return value(
                "store.wal_limit_mb",
                "must be between 1 and 1048576 (MiB)".into(),
            );
        }
        if self.auth.access_token_ttl_secs < 10 {
            return value("auth.access_token_ttl_secs", "must be at least 10".into());
        }
        if self.auth.refresh_token_ttl_secs < self.auth.access_token_ttl_secs {
            return value(
                "auth.refresh_token_ttl_secs",
                "must be at least auth.access_token_ttl_secs".into(),
            );
        }
        if self.auth.max_failed_logins == 0 || self.auth.lockout_secs <= 0 {
            return value(
                "auth.max_failed_logins",
                "lockout settings must be positive".into(),
            );
        }
        if let Some(url) = &self.handle.public_url
            && !((url.starts_with("https://") || url.starts_with("http://"))
                && url.len() > "https://".len()
                && !url.contains(char::is_whitespace))
        {
            return value(
                "handle.public_url",
                format!("{url:?} is not an http(s) base URL such as https://city.example.org"),
            );
        }
        if let Some(prefix) = &self.handle.mint_prefix
            && !self.handle.prefixes.contains(prefix)
        {
            return value(
                "handle.mint_prefix",
                format!(
                    "{prefix:?} is not one of handle.prefixes {:?}",
                    self.handle.prefixes
                ),
            );
        }
        if let Some(role) = &self.auth.anonymous_role
            && !["admin", "operator", "analyst", "viewer", "device"].contains(&role.as_str())
        {
            return value(
                "auth.anonymous_role",
                format!("{role:?} is not one of admin, operator, analyst, viewer, device"),
            );
        }
        if let Some(oidc) = &self.auth.oidc {
            if oidc.issuer.is_empty() || oidc.audience.is_empty() {
                return value("auth.oidc", "issuer and audience are required".into());
            }
            match (&oidc.jwks_url, &oidc.jwks_file) {
                (None, None) => return value("auth.oidc", "set jwks_url or jwks_file".into()),
                (Some(_), Some(_)) => {
                    return value("auth.oidc", "set only one of jwks_url and jwks_file".into());
                }
                (Some(url), None)
                    if !(url.starts_with("https://") || url.starts_with("http://")) =>
                {
                    return value(
                        "auth.oidc.jwks_url",
                        format!("{url:?} is not an http(s) URL"),
                    );
                }
                _ => {}
            }
        }
        if self.log.level.trim().is_empty() {
            return value("log.level", "must not be empty".into());
        }
        Ok(())
    }

    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http.listen.parse().map_err(|_| ConfigError::Value {
            key: "http.listen".into(),
            reason: format!(
                "{:?} is not an IP:PORT address (port 0-65535), e.g. {DEFAULT_LISTEN} or 0.0.0.0:1026",
                self.http.listen
            ),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.store.data_dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn load_with(
        file_text: Option<&str>,
        env: &[(&str, &str)],
        flags: &[(&str, &str)],
    ) -> Result<Config, ConfigError> {
        let f = file_text.map(file);
        load(&Sources {
            file: f.as_ref().map(|f| f.path().to_owned()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            flags: flags
                .iter()
                .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
                .collect(),
        })
    }

    #[test]
    fn defaults_are_what_a_fiware_user_expects() {
        let config = load_with(None, &[], &[]).unwrap();
        assert_eq!(config.listen_addr().unwrap().to_string(), "127.0.0.1:1026");
        assert_eq!(config.store.data_dir, PathBuf::from("./citybrain-data"));
        assert_eq!(config.auth.anonymous_role, None);
        assert_eq!(config.store.wal_limit_mb, 256);
        assert!(config.ngsi.record_history);
        let config = load_with(Some("[ngsi]\nrecord_history = false\n"), &[], &[]).unwrap();
        assert!(!config.ngsi.record_history);
    }

    #[test]
    fn the_wal_limit_is_checked() {
        let config = load_with(Some("[store]\nwal_limit_mb = 64\n"), &[], &[]).unwrap();
        assert_eq!(config.store.wal_limit_mb, 64);
        let err = load_with(None, &[], &[("store.wal_limit_mb", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.wal_limit_mb"), "{err}");
    }

    #[test]
    fn later_sources_win() {
        let config = load_with(
            Some("[http]\nlisten = \"127.0.0.1:1\"\nrequest_timeout_secs = 5\n"),
            &[
                ("CITYBRAIN_HTTP__LISTEN", "127.0.0.1:2"),
                ("CITYBRAIN_HTTP__METRICS_PUBLIC", "true"),
                ("OTHER", "x"),
            ],
            &[("http.listen", "127.0.0.1:3")],
        )
        .unwrap();
        assert_eq!(config.http.listen, "127.0.0.1:3");
        assert_eq!(config.http.request_timeout_secs, 5);
        assert!(config.http.metrics_public);
    }

    #[test]
    fn process_variables_are_not_configuration_keys() {
        let env = [
            ("CITYBRAIN_SHARED", "/data"),
            ("CITYBRAIN_CITYFLOW_PYTHON", "/venv/bin/python"),
        ];
        assert!(load_with(None, &env, &[]).is_ok());
        let err = load_with(None, &[("CITYBRAIN_SHARD", "/data")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CITYBRAIN_SHARD"), "{err}");
    }

    #[test]
    fn unknown_keys_name_the_key_and_its_source() {
        let err = load_with(Some("[http]\nlisen = \"x\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http") && err.contains("lisen") && err.contains("config file"),
            "{err}"
        );
        let err = load_with(None, &[("CITYBRAIN_STORE__DATADIR", "/x")], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CITYBRAIN_STORE__DATADIR") && err.contains("datadir"),
            "{err}"
        );
        let err = load_with(Some("[nosuch]\na = 1\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nosuch"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        let err = load_with(None, &[], &[("http.listen", "127.0.0.1:99999")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http.listen") && err.contains("99999") && err.contains("IP:PORT"),
            "{err}"
        );
        let err = load_with(Some("[http]\nrequest_timeout_secs = \"soon\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("request_timeout_secs"), "{err}");
        let err = load_with(Some("[auth]\nanonymous_role = \"root\"\n"), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("anonymous_role") && err.contains("root"),
            "{err}"
        );
        let err = load_with(
            Some("[auth.oidc]\nissuer = \"i\"\naudience = \"a\"\n"),
            &[],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("jwks_url or jwks_file"), "{err}");
    }

    #[test]
    fn unreadable_and_malformed_files_are_reported_with_their_path() {
        let missing = load(&Sources {
            file: Some("/nonexistent/citybrain.toml".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/citybrain.toml"),
            "{missing}"
        );
        let err = load_with(Some("[http\nlisten="), &[], &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }
}
