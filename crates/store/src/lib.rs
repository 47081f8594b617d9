//! Storage traits shared by every citybrain module.
//!
//! The platform keeps all of its state behind small async traits defined here. Each
//! backend (the embedded SQLite store today, PostgreSQL later) implements them, and
//! every implementation runs the same conformance suite ([`identity_store_test_suite!`]),
//! so behaviour is defined once, in the traits' doc comments and in that suite.
//!
//! Design decisions:
//! - **Tenant isolation lives here, not in handlers.** Every method that touches tenant
//!   data takes a [`TenantScope`]. Backends must filter every read and write by the
//!   scope's tenant; there is no method that reads another tenant's rows through a scope.
//!   The suite checks this for each method.
//! - **Time is an input.** Records carry timestamps chosen by the caller ([`UnixMillis`]),
//!   so tests are deterministic and the store never reads a clock.
//! - **Async traits** (via `async-trait`) because the PostgreSQL backend is async; the
//!   SQLite backend runs its blocking work on dedicated threads.

mod compute;
mod error;
mod handle;
mod identity;
mod ngsi;
mod ngsi_registrations;
mod ngsi_subscriptions;
mod ngsi_temporal;
mod secure;
mod types;

#[cfg(feature = "testsuite")]
pub mod compute_testsuite;
#[cfg(feature = "testsuite")]
pub mod handle_testsuite;
#[cfg(feature = "testsuite")]
pub mod ngsi_registrations_testsuite;
#[cfg(feature = "testsuite")]
pub mod ngsi_subscriptions_testsuite;
#[cfg(feature = "testsuite")]
pub mod ngsi_temporal_testsuite;
#[cfg(feature = "testsuite")]
pub mod ngsi_testsuite;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use compute::{ComputeStore, JobEventRecord, JobRecord, QuotaRecord, SiteRecord};
pub use error::{StoreError, StoreErrorKind, StoreResult};
pub use handle::{HandleRecord, HandleStore};
pub use identity::{
    AUDIT_GENESIS_HASH, ApiKeyRecord, AuditEntry, AuditEvent, AuditFilter, AuditLog, AuditOutcome,
    AuditScope, ChainVerification, CustomRoleRecord, IdentityStore, MemberRecord, MembershipRecord,
    RefreshTokenRecord, TenantRecord, UserRecord, audit_entry_digest_input, audit_entry_hash,
};
pub use ngsi::{CommitHook, IndexSlot, WriteFuture};
pub use ngsi::{
    ContextRecord, EntityChange, EntityFilter, EntityModifier, EntityRecord, NgsiStore,
};
pub use ngsi_registrations::{NgsiRegistrationStore, RegistrationRecord};
pub use ngsi_subscriptions::{
    NgsiSubscriptionStore, SubscriptionPage, SubscriptionRecord, SubscriptionStatusRecord,
};
pub use ngsi_temporal::{
    DatasetSelector, InstanceQuery, NgsiTemporalStore, TemporalEntityRecord,
    TemporalInstanceRecord, TemporalWrite, TimeColumn,
};
pub use secure::{SecureJobRecord, SecureJobStatus, SecureJobStore, SecureJobTransition};
pub use types::{TenantId, TenantIdError, TenantScope, UnixMillis};
