//! `serve` and `demo`: the platform as one process.

use crate::output::outln;
use crate::platform::Platform;
use anyhow::Context;
use settings::Config;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Serve,
    Demo,
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = terminate => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

pub(crate) async fn serve(config: Config, mode: Mode) -> anyhow::Result<()> {
    let addr = config.listen_addr()?;
    if let Some(role) = &config.auth.anonymous_role {
        tracing::warn!(
            role,
            "ANONYMOUS ACCESS IS ON: unauthenticated callers act with role {role} in every tenant (auth.anonymous_role). \
             Never use this outside a test environment."
        );
    }
    let platform = Platform::open(config).await?;
    if let Some(verifier) = &platform.oidc {
        crate::platform::spawn_jwks_refresh(&platform.config, Arc::clone(verifier))?;
    }
    let demo_login = match mode {
        Mode::Demo => Some(crate::demo::admin(&platform).await?),
        Mode::Serve => None,
    };
    // Bound before the services start so that they know the real address (port 0 in tests);
    // connections wait in the backlog until the server runs.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (http.listen / --listen)"))?;
    let local = listener.local_addr()?;
    let _ = platform.http_addr.set(local);
    let services = crate::services::start(&platform).await?;
    for line in &services.listening {
        tracing::info!("{line}");
    }
    // One stable line on stdout that scripts (and `citybrain bench startup`) wait for.
    outln!(
        "citybrain {} listening on http://{local}",
        env!("CARGO_PKG_VERSION")
    );
    tracing::info!(%local, data_dir = %platform.config.data_dir().display(), "serving");
    let state = platform.app_state();
    let grace = std::time::Duration::from_secs(platform.config.http.shutdown_grace_secs);
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let app = api_server::app(state, services.modules);
    let server = api_server::serve(listener, app, async move {
        shutdown_signal().await;
        let _ = signalled.send(());
    });
    // After the signal, in-flight requests get `grace` to finish; then we stop anyway.
    let serving = async {
        tokio::select! {
            result = server => result.context("the HTTP server failed")?,
            () = async {
                if on_signal.await.is_ok() {
                    tokio::time::sleep(grace).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing remaining connections"),
        }
        anyhow::Ok(())
    };
    // The demo city loads while the API already answers (its components may take a while).
    let demo = async {
        if let Some((username, password)) = &demo_login {
            let context = crate::demo::DemoContext {
                platform: &platform,
                base_url: format!("http://{local}"),
            };
            let parts = crate::demo::start(&context).await?;
            crate::demo::print_banner(&context, username, password.as_deref(), &parts);
        }
        anyhow::Ok(())
    };
    tokio::try_join!(serving, demo)?;
    // Every acknowledged write is committed; close the store cleanly.
    platform.store.close();
    tracing::info!("stopped");
    Ok(())
}
