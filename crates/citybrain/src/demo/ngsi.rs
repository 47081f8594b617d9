//! Demo component: the city's roads and intersections as Smart Data Model entities.

use super::{DemoContext, DemoPart};

/// Starts this component; returns its part of the banner, if any.
pub(crate) async fn start(_context: &DemoContext<'_>) -> anyhow::Result<Option<DemoPart>> {
    Ok(None)
}
