//! Starting a node: UDP workers, the TCP listener and the HTTP (REST + proxy) listener, plus
//! the prefix-homing helper that `citybrain admin` will call.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use handle_proto::codec::Codec;
use handle_proto::constants::types;
use handle_proto::data::{AdminPermissions, AdminRecord, PublicKey, ValueList};
use handle_proto::handle::prefix_handle;
use handle_proto::{HandleValue, ValuePermissions, ValueReference};

use crate::node::{HandleNode, NodeConfig, now_seconds};
use crate::rest::{RestState, router};
use crate::site::{SiteParams, did_web_document, generate_site};
use crate::store::{CreateMode, HandleStore, StoreError};

/// Listener configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub bind: IpAddr,
    /// Address advertised in HS_SITE (defaults to `bind`).
    pub advertise: Option<IpAddr>,
    /// UDP/TCP port (2641 by default).
    pub native_port: u16,
    /// HTTP port for REST and the proxy (8000 by default); `None` disables HTTP.
    pub http_port: Option<u16>,
    /// UDP worker threads (default: available parallelism).
    pub udp_workers: usize,
    /// Server administrators.
    pub server_admins: Vec<ValueReference>,
    /// Host name for `did:web` (e.g. `node.example.org`).
    pub did_host: Option<String>,
    /// The node's Ed25519 public key (published in HS_SITE and the DID document).
    pub node_public_key: Option<[u8; 32]>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: IpAddr::from([127, 0, 0, 1]),
            advertise: None,
            native_port: handle_proto::constants::DEFAULT_PORT,
            http_port: Some(8000),
            udp_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            server_admins: Vec::new(),
            did_host: None,
            node_public_key: None,
        }
    }
}

/// A running node; dropping it does not stop it, call [`RunningServer::stop`].
pub struct RunningServer {
    /// The shared node.
    pub node: Arc<HandleNode>,
    /// Bound UDP/TCP address.
    pub native_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    udp_threads: Vec<std::thread::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops every listener and waits for the UDP workers.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.abort();
        }
        for t in self.udp_threads {
            let _ = t.join();
        }
    }
}

/// Starts the node on the current tokio runtime.
pub async fn start(
    config: ServerConfig,
    store: Arc<dyn HandleStore>,
) -> std::io::Result<RunningServer> {
    let tcp =
        tokio::net::TcpListener::bind(SocketAddr::new(config.bind, config.native_port)).await?;
    let native_addr = tcp.local_addr()?;
    let http = match config.http_port {
        Some(p) => Some(tokio::net::TcpListener::bind(SocketAddr::new(config.bind, p)).await?),
        None => None,
    };
    let http_addr = http
        .as_ref()
        .map(tokio::net::TcpListener::local_addr)
        .transpose()?;
    let site = generate_site(&SiteParams {
        address: config.advertise.unwrap_or(config.bind),
        native_port: native_addr.port(),
        http_port: http_addr.map_or(8000, |a| a.port()),
        serial: 1,
        description: "citybrain handle node".into(),
        public_key: config.node_public_key,
    });
    let node = Arc::new(HandleNode::new(
        store.clone(),
        NodeConfig {
            server_admins: config.server_admins.clone(),
            site,
            challenge_timeout_ms: 60_000,
        },
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let udp_threads = crate::native::bind_udp(native_addr, config.udp_workers)?
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let (node, stop) = (node.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("hdl-udp-{i}"))
                .spawn(move || crate::native::run_udp_worker(node, socket, stop))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut tasks = vec![tokio::spawn(crate::native::run_tcp(node.clone(), tcp))];
    if let Some(listener) = http {
        let did_document = match (&config.did_host, config.node_public_key) {
            (Some(host), Some(key)) => Some(did_web_document(
                host,
                &key,
                native_addr.port(),
                &store.homed_prefixes().unwrap_or_default(),
            )),
            _ => None,
        };
        let app = router(Arc::new(RestState {
            node: node.clone(),
            did_document,
        }));
        tasks.push(tokio::spawn(async move {
            // Responses are small and often pipelined: without TCP_NODELAY, Nagle and delayed ACKs
            // add 40 ms stalls.
            use axum::serve::ListenerExt as _;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "http server stopped");
            }
        }));
    }
    Ok(RunningServer {
        node,
        native_addr,
        http_addr,
        stop,
        udp_threads,
        tasks,
    })
}

/// How the prefix administrator authenticates.
#[derive(Debug, Clone)]
pub enum AdminKey {
    /// HS_SECKEY at index 300 holding this secret.
    Secret(Vec<u8>),
    /// HS_PUBKEY (Ed25519) at index 300.
    Ed25519([u8; 32]),
}

/// Homes `prefix` and creates `0.NA/<prefix>` and `<prefix>/ADMIN` as CNRI's setup does:
/// `0.NA/<prefix>` has HS_ADMIN@100 for `300:<prefix>/ADMIN` and the admin group HS_VLIST@200
/// (pyhandle's default owner `200:0.NA/<prefix>`); `<prefix>/ADMIN` holds HS_ADMIN@100 and the
/// key at 300. Existing records are replaced.
pub fn home_prefix_with_admin(
    store: &dyn HandleStore,
    prefix: &str,
    key: AdminKey,
) -> Result<ValueReference, StoreError> {
    let admin_handle = format!("{prefix}/ADMIN");
    let admin = ValueReference::new(admin_handle.clone(), 300);
    let now = now_seconds();
    let stamp = |mut v: HandleValue| {
        v.timestamp = now;
        v
    };
    let admin_value = |who: ValueReference| {
        stamp(HandleValue::new(
            100,
            types::HS_ADMIN,
            AdminRecord {
                permissions: AdminPermissions::ALL,
                admin: who,
            }
            .to_bytes(),
        ))
    };
    store.home_prefix(prefix)?;
    store.create(
        &prefix_handle(prefix),
        &[
            admin_value(admin.clone()),
            stamp(HandleValue::new(
                200,
                types::HS_VLIST,
                ValueList(vec![admin.clone()]).to_bytes(),
            )),
        ],
        CreateMode::Overwrite,
    )?;
    let mut key_value = match key {
        AdminKey::Secret(s) => HandleValue::new(300, types::HS_SECKEY, s),
        AdminKey::Ed25519(k) => {
            HandleValue::new(300, types::HS_PUBKEY, PublicKey::ed25519(k).to_bytes())
        }
    };
    if key_value.value_type == types::HS_SECKEY {
        key_value.permissions =
            ValuePermissions(ValuePermissions::ADMIN_READ | ValuePermissions::ADMIN_WRITE);
    }
    store.create(
        &admin_handle,
        &[admin_value(admin.clone()), stamp(key_value)],
        CreateMode::Overwrite,
    )?;
    Ok(admin)
}
