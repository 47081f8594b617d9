//! Wires the Handle System node (issue 6) into the running platform.
//!
//! - Storage: [`DurableStore`] over the platform's SQLite store (tables of migration 0003):
//!   every handle is loaded into memory at start, reads never touch the database, and each
//!   change is committed before it is acknowledged.
//! - The native protocol on UDP+TCP `handle.listen` (default 127.0.0.1:2641). If the
//!   *default* address is taken (another node, a second `serve` on this machine), the
//!   platform starts without the native listener and says so; an address set explicitly
//!   must bind or `serve` fails.
//! - The Handle.Net REST API (`/api/handles`, `/api/prefixes`, proxy under `/hdl/`) in the
//!   one HTTP API. These routes are **deliberately public** at the platform layer, as on a
//!   Handle.Net server: resolution is public by design of the Handle System (values without
//!   PUBLIC_READ are still withheld), and writes authenticate with Handle.Net's own scheme
//!   (HTTP Basic `300:<prefix>/ADMIN` + the HS_SECKEY secret) checked against HS_ADMIN by the
//!   node's single authorization function, so pyhandle and other Handle clients work
//!   unchanged.
//! - Each prefix in `handle.prefixes` is homed with `0.NA/<prefix>` and `<prefix>/ADMIN`
//!   holding the administrators' secret (read from `handle.admin_secret_file`, or generated
//!   once into the data directory). The secret is never logged.
//! - The node's Ed25519 key (seed generated once into the data directory) is published in
//!   HS_SITE and in its `did:web` document at `/.well-known/did.json`; the DID's host comes
//!   from `handle.public_url` (default: the HTTP address).
//! - Identifiers for the platform's data: `/api/v1/tenants/{tenant}/identifiers` mints handles
//!   for NGSI-LD entities and data sets under `handle.mint_prefix`, through the unified user
//!   system; every administrative operation of the node goes to the platform's audit log.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use handle_proto::ValueReference;
use handle_proto::constants::types;
use handle_server::durable::DurableStore;
use handle_server::identifiers::{self, Identifiers, MintConfig};
use handle_server::rest::{RestState, platform_router};
use handle_server::server::{AdminKey, ServerConfig, home_prefix_with_admin};
use handle_server::site;
use handle_server::store::HandleStore;

use super::Started;
use crate::platform::{Platform, restrict};

const SECRET_FILE: &str = "secrets/handle-admin.secret";
const NODE_KEY_FILE: &str = "secrets/handle-node.key";

/// Starts the node: loads the store, homes the prefixes, binds UDP/TCP, mounts the REST API.
pub(crate) async fn start(platform: &Platform) -> anyhow::Result<Started> {
    let config = &platform.config.handle;
    if !config.enabled {
        return Ok(Started::default());
    }
    let listen: SocketAddr = config.listen.parse().map_err(|_| {
        anyhow::anyhow!(
            "invalid value for `handle.listen`: {:?} is not an IP:PORT address, e.g. {}",
            config.listen,
            settings::DEFAULT_HANDLE_LISTEN
        )
    })?;
    for prefix in &config.prefixes {
        if prefix.is_empty() || prefix.contains('/') || !prefix.is_ascii() {
            bail!(
                "invalid value for `handle.prefixes`: {prefix:?} is not a handle prefix such as 21.T999"
            );
        }
    }
    let secret = admin_secret(
        config.admin_secret_file.as_deref(),
        platform.config.data_dir(),
    )?;

    let durable: Arc<dyn store::HandleStore> = Arc::new(platform.store.clone());
    let store = Arc::new(
        DurableStore::open(durable)
            .await
            .map_err(|e| anyhow::anyhow!("loading the handle store: {e}"))?,
    );
    let mut admins = Vec::new();
    for prefix in &config.prefixes {
        admins.push(ensure_prefix(&store, prefix, &secret)?);
    }

    let node_key = node_public_key(platform.config.data_dir())?;
    let public_url = match &config.public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!(
            "http://{}",
            platform
                .http_addr
                .get()
                .map_or_else(|| platform.config.http.listen.clone(), ToString::to_string)
        ),
    };
    let did_host = site::did_web_host(&public_url).with_context(|| {
        format!("handle.public_url {public_url:?} has no host for the node's did:web identifier")
    })?;
    let server_config = ServerConfig {
        bind: listen.ip(),
        advertise: None,
        native_port: listen.port(),
        http_port: None,
        udp_workers: if config.udp_workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.udp_workers
        },
        server_admins: Vec::new(),
        did_host: Some(did_host.clone()),
        node_public_key: Some(node_key),
    };
    let mut started = Started::default();
    let node = match handle_server::server::start(server_config, store.clone()).await {
        Ok(running) => {
            started.listening.push(format!(
                "handle node: native protocol on udp+tcp {} ({} handles, prefixes {})",
                running.native_addr,
                store.handle_count(),
                config.prefixes.join(", ")
            ));
            // The listeners run for the life of the process.
            let node = running.node.clone();
            std::mem::forget(running);
            node
        }
        Err(error) if config.listen == settings::DEFAULT_HANDLE_LISTEN => {
            tracing::warn!(
                %error,
                "handle node: cannot bind the default native address {listen}; continuing without \
                 the UDP/TCP listener (set handle.listen to another address, or handle.enabled = false)"
            );
            started
                .listening
                .push("handle node: REST only (native port taken)".to_owned());
            Arc::new(handle_server::node::HandleNode::new(
                store.clone(),
                handle_server::node::NodeConfig {
                    server_admins: Vec::new(),
                    site: handle_server::site::generate_site(&handle_server::site::SiteParams {
                        address: listen.ip(),
                        native_port: listen.port(),
                        http_port: 0,
                        serial: 1,
                        description: "citybrain handle node".into(),
                        public_key: Some(node_key),
                    }),
                    challenge_timeout_ms: 60_000,
                },
            ))
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot listen on {listen} (handle.listen)"));
        }
    };
    tracing::info!(admins = ?admins.iter().map(ToString::to_string).collect::<Vec<_>>(), "handle prefixes homed");
    // Every administrative operation, on every path, lands in the platform's audit log.
    node.set_audit_sink(identifiers::audit_sink(platform.identity.clone()));
    let did_document = site::did_web_document_at(
        &did_host,
        &public_url,
        &node_key,
        listen.port(),
        &config.prefixes,
    );
    started.listening.push(format!(
        "handle node: did:web:{did_host} at /.well-known/did.json"
    ));
    let mint_prefix = config
        .mint_prefix
        .clone()
        .or_else(|| config.prefixes.first().cloned());
    let router = platform_router::<api_server::AppState>(Arc::new(RestState {
        node: node.clone(),
        did_document: Some(did_document),
    }));
    started.modules.push(api_server::Module {
        public: router.into(),
        protected: utoipa_axum::router::OpenApiRouter::new(),
    });
    if let Some(prefix) = mint_prefix {
        let entities: Arc<dyn store::NgsiStore> = Arc::new(platform.store.clone());
        let service = Arc::new(Identifiers::new(
            node,
            platform.identity.clone(),
            entities,
            MintConfig {
                minter: ValueReference::new(format!("{prefix}/ADMIN"), 300),
                prefix,
                public_url,
            },
        ));
        let _ = platform.identifiers.set(service.clone());
        started.modules.push(identifiers::module(service));
    }
    Ok(started)
}

/// The node's Ed25519 public key (HS_SITE and the did:web document). Its seed is created
/// once in the data directory (owner-only) and never leaves it.
fn node_public_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join(NODE_KEY_FILE);
    let seed: [u8; 32] = if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the handle node key {}", path.display()))?;
        hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .with_context(|| format!("{} is not a 32-byte hex seed", path.display()))?
    } else {
        let dir = path.parent().context("node key path has no parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        restrict(dir, 0o700)?;
        let seed: [u8; 32] = identity::secrets::random_bytes(32)
            .try_into()
            .map_err(|_| anyhow::anyhow!("the random source gave a short seed"))?;
        std::fs::write(&path, format!("{}\n", hex::encode(seed)))
            .with_context(|| format!("writing {}", path.display()))?;
        restrict(&path, 0o600)?;
        seed
    };
    Ok(site::node_public_key(&seed))
}

/// Homes `prefix` with its admin handle on first start; later starts only bring the secret
/// in line with the configured one.
fn ensure_prefix(
    store: &Arc<DurableStore>,
    prefix: &str,
    secret: &[u8],
) -> anyhow::Result<ValueReference> {
    let admin_handle = format!("{prefix}/ADMIN");
    let existing = store
        .get(&admin_handle)
        .map_err(|e| anyhow::anyhow!("reading {admin_handle}: {e}"))?;
    let Some(values) = existing.filter(|_| store.is_homed(prefix)) else {
        return home_prefix_with_admin(store.as_ref(), prefix, AdminKey::Secret(secret.to_vec()))
            .map_err(|e| anyhow::anyhow!("homing prefix {prefix}: {e}"));
    };
    let admin = ValueReference::new(admin_handle.clone(), 300);
    let key = values.iter().find(|v| v.index == 300);
    match key {
        Some(v) if v.value_type == types::HS_SECKEY && v.data == secret => {}
        Some(v) if v.value_type == types::HS_SECKEY => {
            let mut v = v.clone();
            v.data = secret.to_vec();
            v.timestamp = handle_server::node::now_seconds();
            store
                .modify_values(&admin_handle, &[v])
                .map_err(|e| anyhow::anyhow!("updating the secret of {admin_handle}: {e}"))?;
            tracing::info!(handle = %admin_handle, "handle admin secret replaced by the configured one");
        }
        // An Ed25519 key (or anything else) set up with `citybrain admin` is left alone.
        _ => {}
    }
    Ok(admin)
}

/// The administrators' secret: the first line of `file`, or a random one kept in the data
/// directory (created owner-only on first start).
fn admin_secret(file: Option<&Path>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let read = |path: &PathBuf| -> anyhow::Result<Vec<u8>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the handle admin secret {}", path.display()))?;
        let secret = text
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .as_bytes()
            .to_vec();
        if secret.is_empty() {
            bail!("the handle admin secret file {} is empty", path.display());
        }
        Ok(secret)
    };
    if let Some(file) = file {
        return read(&file.to_path_buf());
    }
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        return read(&path);
    }
    let dir = path.parent().context("secret path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    restrict(dir, 0o700)?;
    let secret = hex::encode(identity::secrets::random_bytes(24));
    std::fs::write(&path, format!("{secret}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    restrict(&path, 0o600)?;
    Ok(secret.into_bytes())
}
