//! Turns on NGSI-LD subscriptions (issue 3) on the broker: stored subscriptions are loaded
//! and the notifier starts, under the `[ngsi]` notification settings.

use crate::platform::Platform;
use anyhow::Context as _;
use ngsi_broker::Broker;
use ngsi_broker::subscriptions::NotifierSettings;
use std::sync::Arc;

pub(crate) async fn enable(platform: &Platform, broker: &Arc<Broker>) -> anyhow::Result<()> {
    let config = &platform.config.ngsi;
    if config.notification_allow_private {
        tracing::warn!(
            "ngsi.notification_allow_private is on: subscription notifications may reach \
             private and loopback addresses"
        );
    }
    let settings = NotifierSettings {
        allow_private: config.notification_allow_private,
        timeout: std::time::Duration::from_millis(config.notification_timeout_ms.max(1)),
        ..NotifierSettings::default()
    };
    let loaded = broker
        .enable_subscriptions(Arc::new(platform.store.clone()), settings)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("starting NGSI-LD subscriptions")?;
    tracing::info!(loaded, "NGSI-LD subscriptions enabled");
    Ok(())
}
