//! Wires the NGSI-LD context broker (issue 3) into the running platform.

use super::Started;
use crate::platform::Platform;
use anyhow::Context as _;
use ngsi_broker::{Broker, BrokerSettings, ContextResolver};
use ngsi_ld::PreloadMap;
use std::sync::Arc;
use store::TenantId;

/// Builds the broker from `[ngsi]` on the platform's store and identity.
pub(crate) fn broker(platform: &Platform) -> anyhow::Result<Arc<Broker>> {
    let config = &platform.config.ngsi;
    let mut preload = PreloadMap::with_test_suite();
    for (url, path) in &config.context_preload {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading ngsi.context_preload entry {url} -> {}",
                path.display()
            )
        })?;
        preload
            .insert_source(url, &text)
            .map_err(|e| anyhow::anyhow!("ngsi.context_preload entry {url}: {e}"))?;
    }
    let fetcher = if config.fetch_remote_contexts {
        Some(
            egress::Fetcher::new(egress::EgressPolicy {
                allow_private: config.context_allow_private,
                allow_http: true,
                max_bytes: config.context_max_bytes,
                timeout: std::time::Duration::from_millis(config.context_timeout_ms),
                max_redirects: 3,
            })
            .context("building the @context fetcher")?,
        )
    } else {
        None
    };
    let store: Arc<dyn store::NgsiStore> = Arc::new(platform.store.clone());
    let contexts = ContextResolver::new(
        preload,
        fetcher,
        Arc::clone(&store),
        config.context_cache_entries,
    );
    let settings = BrokerSettings {
        default_tenant: TenantId::new(config.default_tenant.clone())
            .context("ngsi.default_tenant")?,
        default_limit: config.default_limit.max(1),
        max_limit: config.max_limit.max(1),
        temporal_limit: config.temporal_limit.max(1),
        record_history: config.record_history,
    };
    if !config.record_history {
        tracing::info!(
            "ngsi.record_history is off: entity writes record no history; the temporal API stores only what is written to it"
        );
    }
    Ok(Arc::new(
        Broker::new(store, contexts, Arc::clone(&platform.identity), settings)
            .with_temporal(Arc::new(platform.store.clone()))
            .with_registrations(Arc::new(platform.store.clone())),
    ))
}

/// Starts the broker's HTTP routes.
pub(crate) async fn start(platform: &Platform) -> anyhow::Result<Started> {
    let broker = broker(platform)?;
    super::ngsi_subscriptions::enable(platform, &broker).await?;
    Ok(Started {
        modules: vec![ngsi_broker::module(broker)],
        listening: vec!["NGSI-LD API under /ngsi-ld/v1".to_owned()],
    })
}
