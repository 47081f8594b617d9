//! Starts a node on loopback with `21.T999` homed and `300:21.T999/ADMIN` (secret `secret`),
//! for the pyhandle end-to-end script and manual tests.
//!
//! `cargo run --release -p handle-server --example serve -- [native_port] [http_port] [seed_count]`

use std::sync::Arc;

use handle_server::server::{AdminKey, ServerConfig, home_prefix_with_admin, start};
use handle_server::store::{CreateMode, HandleStore, MemoryStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let native_port: u16 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2641);
    let http_port: u16 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8000);
    let seed: u32 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
    let store = Arc::new(MemoryStore::new());
    home_prefix_with_admin(
        store.as_ref(),
        "21.T999",
        AdminKey::Secret(b"secret".to_vec()),
    )?;
    for i in 0..seed {
        store.create(
            &format!("21.T999/{i}"),
            &handle_server::bench::sample_values(i),
            CreateMode::Overwrite,
        )?;
    }
    let config = ServerConfig {
        native_port,
        http_port: Some(http_port),
        ..ServerConfig::default()
    };
    let server = start(config, store.clone() as Arc<dyn HandleStore>).await?;
    println!(
        "listening native={} http={:?} handles={}",
        server.native_addr,
        server.http_addr,
        store.handle_count()
    );
    tokio::signal::ctrl_c().await?;
    server.stop();
    Ok(())
}
