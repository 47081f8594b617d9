//! `citybrain demo`: `serve` plus a demo city, loaded and running.
//!
//! The demo grows with the platform: each area adds one component module here whose
//! `start` loads its demo data through the platform's own services, spawns whatever keeps
//! running (a live simulation, a job stream...), and returns the lines it adds to the
//! banner. Components run in the order of [`start`].

mod compute;
mod handle;
mod ngsi;
mod traffic;

use crate::output::outln;
use crate::platform::Platform;
use anyhow::Context;
use identity::secrets::Secret;
use store::TenantId;

/// What a demo component can use.
pub(crate) struct DemoContext<'a> {
    /// The opened platform (store, identity, configuration).
    pub(crate) platform: &'a Platform,
    /// Where the HTTP API answers, e.g. `http://127.0.0.1:1026`.
    pub(crate) base_url: String,
}

/// The tenant the demo city lives in.
pub(crate) const DEMO_TENANT: &str = "demo";

/// One component's part of the banner.
pub(crate) struct DemoPart {
    /// A short title, e.g. "traffic".
    pub(crate) title: &'static str,
    /// Lines to print under it.
    pub(crate) lines: Vec<String>,
}

/// Starts every demo component. Each area adds its component here.
pub(crate) async fn start(context: &DemoContext<'_>) -> anyhow::Result<Vec<DemoPart>> {
    let mut parts = Vec::new();
    // The data base first: later components publish into the broker.
    parts.extend(ngsi::start(context).await?);
    parts.extend(handle::start(context).await?);
    parts.extend(traffic::start(context).await?);
    parts.extend(compute::start(context).await?);
    Ok(parts)
}

const DEMO_CREDENTIALS_FILE: &str = "demo-admin-credentials.txt";

/// Makes sure the demo has an administrator and returns its username and password.
pub(crate) async fn admin(platform: &Platform) -> anyhow::Result<(String, Option<String>)> {
    let file = platform.config.data_dir().join(DEMO_CREDENTIALS_FILE);
    if platform.store_is_empty().await? {
        let report = platform
            .identity
            .bootstrap(
                "admin",
                None,
                TenantId::new(DEMO_TENANT).context("demo tenant id")?,
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

pub(crate) fn print_banner(
    context: &DemoContext<'_>,
    username: &str,
    password: Option<&str>,
    parts: &[DemoPart],
) {
    let base = &context.base_url;
    let data_dir = context.platform.config.data_dir().display();
    outln!();
    outln!("  citybrain demo is running");
    outln!("  ─────────────────────────");
    outln!("  dashboard      {base}/ui/");
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
    for part in parts {
        outln!();
        outln!("  {}", part.title);
        for line in &part.lines {
            outln!("    {line}");
        }
    }
    outln!();
    outln!("  Ctrl-C stops the demo; data stays in the data directory.");
}
