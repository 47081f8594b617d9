//! The NGSI-LD context broker's I/O shell (issue 3): the HTTP API under `/ngsi-ld/v1`
//! over the [`NgsiStore`], with `@context` resolution, tenants mapped to the unified user
//! system, and ProblemDetails errors with the spec's types.
//!
//! Layout:
//! - [`Broker`] holds the store, the context resolver and the settings, and implements the
//!   entity operations on parsed [`Entity`] values (used by the HTTP layer, the demo loader
//!   and the benchmark);
//! - `http` turns requests into those operations: content negotiation, `Link` headers,
//!   pagination, tenants and permissions;
//! - `codec` is the storage encoding of entities;
//! - [`contexts`] resolves user contexts (preload map, hosted contexts, egress-limited fetches);
//! - `http/registrations.rs` serves context source registrations (stored per tenant in the
//!   [`NgsiRegistrationStore`]).
//!
//! Every write is a read-modify-write callback run on the store's single writer (see
//! `NgsiStore::modify_entities`), so concurrent merges never lose updates, and a write is
//! acknowledged only after it is committed.

pub mod changes;
pub mod codec;
pub mod contexts;
pub mod error;
mod http;
mod index;
mod ops;
pub mod subscriptions;
mod temporal;

pub use contexts::ContextResolver;
pub use error::{BrokerError, BrokerResult};
pub use http::module;
pub use ops::{BatchOutcome, EntityChangeE};

use identity::IdentityService;
use std::sync::Arc;
use store::{NgsiRegistrationStore, NgsiStore, NgsiTemporalStore, TenantId};

/// Settings of the broker.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// The tenant used when a request names none and the caller has no default tenant.
    pub default_tenant: TenantId,
    /// Page size when `limit` is not given.
    pub default_limit: usize,
    /// Largest `limit` accepted.
    pub max_limit: usize,
    /// Most instances of one attribute in one temporal response (temporal pagination).
    pub temporal_limit: usize,
    /// With a temporal store: entity writes also record their history. Off, only writes to
    /// the temporal API itself store instances.
    pub record_history: bool,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            default_tenant: TenantId::new("default").unwrap_or_else(|_| unreachable!()),
            default_limit: 20,
            max_limit: 1000,
            temporal_limit: 10_000,
            record_history: true,
        }
    }
}

/// The broker: store, contexts, identity and settings.
pub struct Broker {
    store: Arc<dyn NgsiStore>,
    contexts: ContextResolver,
    identity: Arc<IdentityService>,
    settings: BrokerSettings,
    index: Arc<index::Index>,
    changes: std::sync::OnceLock<changes::ChangeSink>,
    subscriptions: std::sync::OnceLock<Arc<subscriptions::SubscriptionService>>,
    /// Where entity writes record their history (`None`: no temporal API).
    temporal: Option<Arc<dyn NgsiTemporalStore>>,
    /// Where context source registrations are kept (`None`: no `/csourceRegistrations`).
    registrations: Option<Arc<dyn NgsiRegistrationStore>>,
}

impl Broker {
    /// Builds the broker.
    pub fn new(
        store: Arc<dyn NgsiStore>,
        contexts: ContextResolver,
        identity: Arc<IdentityService>,
        settings: BrokerSettings,
    ) -> Self {
        Self {
            index: index::Index::of(&store),
            store,
            contexts,
            identity,
            settings,
            changes: std::sync::OnceLock::new(),
            subscriptions: std::sync::OnceLock::new(),
            temporal: None,
            registrations: None,
        }
    }

    /// Serves context source registrations (`/ngsi-ld/v1/csourceRegistrations`) from `store`.
    pub fn with_registrations(mut self, store: Arc<dyn NgsiRegistrationStore>) -> Self {
        self.registrations = Some(store);
        self
    }

    /// Keeps the temporal representation of every entity write and serves the temporal API
    /// (`/ngsi-ld/v1/temporal/...`) from `store`. Entity writes hand their history to the
    /// entity store ([`NgsiStore::modify_entities_blind`]), which commits it with the
    /// entities, so `store` must be the same database as the broker's entity store.
    pub fn with_temporal(mut self, store: Arc<dyn NgsiTemporalStore>) -> Self {
        self.temporal = Some(store);
        self
    }
    /// The store.
    pub fn store(&self) -> &Arc<dyn NgsiStore> {
        &self.store
    }
    /// The context resolver.
    pub fn contexts(&self) -> &ContextResolver {
        &self.contexts
    }
    /// The settings.
    pub fn settings(&self) -> &BrokerSettings {
        &self.settings
    }
}
