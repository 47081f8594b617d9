//! Storage of NGSI-LD context source registrations (`/ngsi-ld/v1/csourceRegistrations`).
//!
//! Like subscriptions, a registration is an opaque JSON document for the store (the broker's
//! encoding, with expanded names); the store keeps it per tenant, ordered by creation.

use crate::{StoreResult, TenantScope, UnixMillis};
use async_trait::async_trait;

/// One stored context source registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRecord {
    /// The registration id (a URI, unique per tenant).
    pub id: String,
    /// The broker's encoding of the registration (JSON text).
    pub doc: String,
    /// When it was created (also the listing order).
    pub created_at: UnixMillis,
    /// When its document last changed.
    pub modified_at: UnixMillis,
}

/// Storage of NGSI-LD context source registrations.
///
/// Tenant isolation: every method takes a [`TenantScope`]; another tenant's registration
/// behaves exactly as if it did not exist.
#[async_trait]
pub trait NgsiRegistrationStore: Send + Sync + 'static {
    /// Stores a new registration; `AlreadyExists` if the tenant has one with this id.
    async fn create_registration(
        &self,
        scope: &TenantScope,
        record: RegistrationRecord,
    ) -> StoreResult<()>;

    /// One registration of the tenant.
    async fn registration(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<RegistrationRecord>>;

    /// Every registration of the tenant, oldest first (ties by id). Queries filter these in
    /// the broker: a tenant has few registrations compared with entities.
    async fn registrations(&self, scope: &TenantScope) -> StoreResult<Vec<RegistrationRecord>>;

    /// Replaces the document and `modified_at` of an existing registration (`created_at` is
    /// kept); `NotFound` if the tenant has none with this id.
    async fn replace_registration(
        &self,
        scope: &TenantScope,
        record: RegistrationRecord,
    ) -> StoreResult<()>;

    /// Deletes a registration; false if the tenant had none with this id.
    async fn delete_registration(&self, scope: &TenantScope, id: &str) -> StoreResult<bool>;
}
