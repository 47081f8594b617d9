//! The platform's services, one module per area, started by `serve` and `demo`.
//!
//! Each area owns one file here. Its `start` builds the area's shell (stores, servers,
//! background tasks) on top of the opened [`Platform`] and returns the HTTP routes it adds
//! to the one API, plus anything it keeps running. Areas never reach into each other's
//! files; what they share lives on [`Platform`].

mod compute;
mod handle;
mod ngsi;
mod ngsi_subscriptions;
mod secure;
mod secure_input;

use crate::platform::Platform;

/// What the started services add to the running process.
#[derive(Default)]
pub(crate) struct Started {
    /// HTTP routes, mounted next to the platform's own.
    pub(crate) modules: Vec<api_server::Module>,
    /// Lines for the `serve` log and the demo banner (e.g. "handle node on udp/tcp 2641").
    pub(crate) listening: Vec<String>,
}

impl Started {
    fn extend(&mut self, other: Started) {
        self.modules.extend(other.modules);
        self.listening.extend(other.listening);
    }
}

/// Starts every area's services. Called once, inside the runtime, before the HTTP server.
pub(crate) async fn start(platform: &Platform) -> anyhow::Result<Started> {
    let mut started = Started::default();
    started.extend(ngsi::start(platform).await?);
    started.extend(handle::start(platform).await?);
    started.extend(compute::start(platform).await?);
    started.extend(secure::start(platform).await?);
    Ok(started)
}
