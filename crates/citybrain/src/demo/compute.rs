//! Demo component: member sites and jobs flowing through the computing-power network.

use super::{DemoContext, DemoPart};

/// Starts this component; returns its part of the banner, if any.
pub(crate) async fn start(_context: &DemoContext<'_>) -> anyhow::Result<Option<DemoPart>> {
    Ok(None)
}
