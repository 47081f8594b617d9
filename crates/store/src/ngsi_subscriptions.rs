//! Storage of NGSI-LD subscriptions (`/ngsi-ld/v1/subscriptions`).
//!
//! Like entities, a subscription is an opaque JSON document for the store (the broker's
//! encoding, with expanded names and the subscriber's `@context`); the store keeps it per
//! tenant, ordered by creation, together with its delivery counters, which change far more
//! often than the document and are written separately.

use crate::{StoreResult, TenantId, TenantScope, UnixMillis};
use async_trait::async_trait;

/// Delivery counters of one subscription (the spec's `timesSent`, `timesFailed`,
/// `lastNotification`, `lastSuccess`, `lastFailure`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriptionStatusRecord {
    /// Notifications attempted (delivered or not).
    pub times_sent: u64,
    /// Notifications that could not be delivered.
    pub times_failed: u64,
    /// When the last notification was attempted.
    pub last_notification: Option<UnixMillis>,
    /// When a notification was last delivered.
    pub last_success: Option<UnixMillis>,
    /// When a notification last failed.
    pub last_failure: Option<UnixMillis>,
}

/// One stored subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// The subscription id (a URI, unique per tenant).
    pub id: String,
    /// The broker's encoding of the subscription (JSON text).
    pub doc: String,
    /// Delivery counters.
    pub status: SubscriptionStatusRecord,
    /// When it was created (also the listing order).
    pub created_at: UnixMillis,
    /// When its document last changed.
    pub modified_at: UnixMillis,
}

/// A page of a tenant's subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionPage {
    /// The subscriptions of the page, oldest first.
    pub items: Vec<SubscriptionRecord>,
    /// How many the tenant has in all.
    pub total: u64,
}

/// Storage of NGSI-LD subscriptions.
///
/// Tenant isolation: every method but [`NgsiSubscriptionStore::all_subscriptions`] takes a
/// [`TenantScope`]; another tenant's subscription behaves exactly as if it did not exist.
#[async_trait]
pub trait NgsiSubscriptionStore: Send + Sync + 'static {
    /// Stores a new subscription; `AlreadyExists` if the tenant has one with this id.
    async fn create_subscription(
        &self,
        scope: &TenantScope,
        record: SubscriptionRecord,
    ) -> StoreResult<()>;

    /// One subscription of the tenant.
    async fn subscription(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<SubscriptionRecord>>;

    /// The tenant's subscriptions, oldest first (ties by id), skipping `offset` and
    /// returning at most `limit`, with the total count.
    async fn subscriptions(
        &self,
        scope: &TenantScope,
        offset: u64,
        limit: u64,
    ) -> StoreResult<SubscriptionPage>;

    /// Replaces the document and `modified_at` of an existing subscription (counters and
    /// `created_at` are kept); `NotFound` if the tenant has none with this id.
    async fn replace_subscription(
        &self,
        scope: &TenantScope,
        record: SubscriptionRecord,
    ) -> StoreResult<()>;

    /// Deletes a subscription; false if the tenant had none with this id.
    async fn delete_subscription(&self, scope: &TenantScope, id: &str) -> StoreResult<bool>;

    /// Writes the delivery counters of a subscription; a subscription deleted meanwhile is
    /// ignored (no error).
    async fn set_subscription_status(
        &self,
        scope: &TenantScope,
        id: &str,
        status: SubscriptionStatusRecord,
    ) -> StoreResult<()>;

    /// Every subscription of every tenant, for the notifier that loads them at start.
    /// Not for request handling (it crosses tenants by design).
    async fn all_subscriptions(&self) -> StoreResult<Vec<(TenantId, SubscriptionRecord)>>;
}
