//! `serve` and `demo`: the platform as one process.

use crate::output::outln;
use crate::platform::Platform;
use anyhow::Context;
use identity::secrets::Secret;
use settings::Config;
use std::sync::Arc;
use store::TenantId;

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

const DEMO_CREDENTIALS_FILE: &str = "demo-admin-credentials.txt";

/// Makes sure the demo has an administrator and returns its username and password.
async fn demo_admin(platform: &Platform) -> anyhow::Result<(String, Option<String>)> {
    let file = platform.config.data_dir().join(DEMO_CREDENTIALS_FILE);
    if platform.store_is_empty().await? {
        let report = platform
            .identity
            .bootstrap(
                "admin",
                None,
                TenantId::new("demo").context("demo tenant id")?,
            )
            .await
            .context("creating the demo administrator")?;
        let password = report
            .generated_password
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default()
            .to_owned();
        std::fs::write(
            &file,
            format!("username: admin\npassword: {password}\ntenant: demo\n"),
        )
        .with_context(|| format!("writing {}", file.display()))?;
        crate::platform::restrict(&file, 0o600)?;
        return Ok((report.username, Some(password)));
    }
    let password = std::fs::read_to_string(&file).ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("password: ").map(str::to_owned))
    });
    Ok(("admin".to_owned(), password))
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
        Mode::Demo => Some(demo_admin(&platform).await?),
        Mode::Serve => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (http.listen / --listen)"))?;
    let local = listener.local_addr()?;
    // One stable line on stdout that scripts (and `citybrain bench startup`) wait for.
    outln!(
        "citybrain {} listening on http://{local}",
        env!("CARGO_PKG_VERSION")
    );
    tracing::info!(%local, data_dir = %platform.config.data_dir().display(), "serving");
    if let Some((username, password)) = &demo_login {
        print_demo_banner(local, &platform, username, password.as_deref());
    }
    let state = platform.app_state();
    let grace = std::time::Duration::from_secs(platform.config.http.shutdown_grace_secs);
    let (signalled, on_signal) = tokio::sync::oneshot::channel::<()>();
    let app = api_server::app(state, platform.http_modules());
    let server = api_server::serve(listener, app, async move {
        shutdown_signal().await;
        let _ = signalled.send(());
    });
    // After the signal, in-flight requests get `grace` to finish; then we stop anyway.
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
    // Every acknowledged write is committed; close the store cleanly.
    platform.store.close();
    tracing::info!("stopped");
    Ok(())
}

fn print_demo_banner(
    addr: std::net::SocketAddr,
    platform: &Platform,
    username: &str,
    password: Option<&str>,
) {
    let base = format!("http://{addr}");
    let data_dir = platform.config.data_dir().display();
    outln!();
    outln!("  citybrain demo is running");
    outln!("  ─────────────────────────");
    outln!("  API            {base}");
    outln!("  health         {base}/health   (readiness: {base}/ready)");
    outln!("  OpenAPI        {base}/openapi.json");
    outln!("  data directory {data_dir}");
    outln!(
        "  administrator  {username} / {}",
        password.unwrap_or("(see demo-admin-credentials.txt in the data directory)")
    );
    outln!(
        "                 tenant 'demo'; credentials saved in {data_dir}/{DEMO_CREDENTIALS_FILE}"
    );
    outln!();
    outln!("  log in:  curl -s -X POST {base}/auth/login -H 'content-type: application/json' \\");
    outln!("             -d '{{\"username\":\"{username}\",\"password\":\"<password>\"}}'");
    outln!("  then:    curl -s {base}/api/v1/me -H 'authorization: Bearer <access_token>'");
    outln!();
    outln!("  Ctrl-C stops the demo; data stays in the data directory.");
}
