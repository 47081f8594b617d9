//! Demo component: the demo city (Jinan) live in the simulator under the signal controller.

use super::{DemoContext, DemoPart};

/// Starts this component; returns its part of the banner, if any.
pub(crate) async fn start(_context: &DemoContext<'_>) -> anyhow::Result<Option<DemoPart>> {
    Ok(None)
}
