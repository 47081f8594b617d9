//! Storage of the NGSI-LD context broker: entities (as opaque JSON documents with their
//! id and types pulled out for indexing) and user `@context` documents.
//!
//! The store knows nothing about NGSI-LD semantics: the broker (crate `ngsi-broker`)
//! parses, merges and renders; the store keeps documents per tenant, indexes them by id
//! and type, and runs read-modify-write callbacks atomically on its write path.

use crate::{StoreResult, TenantScope, UnixMillis};
use async_trait::async_trait;

/// One stored entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRecord {
    /// The entity id (a URI).
    pub id: String,
    /// Expanded entity type IRIs (indexed).
    pub types: Vec<String>,
    /// The broker's storage encoding of the entity (JSON text).
    pub doc: String,
    /// When the entity was created.
    pub created_at: UnixMillis,
    /// When it last changed.
    pub modified_at: UnixMillis,
}

/// What a [`NgsiStore::modify_entities`] callback wants done with one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityChange {
    /// Leave it as it is.
    Keep,
    /// Create or overwrite it with this record (whose `id` must be the requested id).
    Put(EntityRecord),
    /// Delete it (no-op if absent).
    Delete,
}

/// A read-modify-write step over some entities: receives the current records of the
/// requested ids (in order, `None` where absent) and answers one change per id.
pub type EntityModifier =
    Box<dyn FnOnce(Vec<Option<EntityRecord>>) -> Vec<EntityChange> + Send + 'static>;

/// Told the fate of a write of [`NgsiStore::modify_entities_blind`]: `true` once it is
/// committed, `false` if it was rolled back.
pub type CommitHook = Box<dyn FnOnce(bool) + Send + 'static>;

/// A queued write of [`NgsiStore::modify_entities_blind`]; resolves once committed.
pub type WriteFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<()>> + Send + 'static>>;

/// The slot of [`NgsiStore::index_slot`].
pub type IndexSlot = std::sync::OnceLock<std::sync::Arc<dyn std::any::Any + Send + Sync>>;

/// Which entities to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityFilter {
    /// Only these ids (any of them), if set.
    pub ids: Option<Vec<String>>,
    /// Only entities having one of these expanded types, if set.
    pub types: Option<Vec<String>>,
}

/// A stored user `@context` (the `/jsonldContexts` resource). Contexts are global, not
/// per tenant, as in the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextRecord {
    /// The identifier (a URN, or the URL of a cached remote context).
    pub id: String,
    /// The original URL for cached contexts, `None` for hosted ones.
    pub url: Option<String>,
    /// `hosted` or `cached`.
    pub kind: String,
    /// The document (JSON text with an `@context` member).
    pub doc: String,
    /// When it was stored.
    pub created_at: UnixMillis,
}

/// Storage for the NGSI-LD broker.
///
/// Tenant isolation: every entity method takes a [`TenantScope`]; an entity of another
/// tenant behaves exactly as if it did not exist.
#[async_trait]
pub trait NgsiStore: Send + Sync + 'static {
    /// The entity `id` of the scope's tenant.
    async fn entity(&self, scope: &TenantScope, id: &str) -> StoreResult<Option<EntityRecord>>;

    /// Entities matching `filter`, ordered by id.
    async fn entities(
        &self,
        scope: &TenantScope,
        filter: &EntityFilter,
    ) -> StoreResult<Vec<EntityRecord>>;

    /// Runs `modify` on the current records of `ids` inside one write transaction and
    /// applies its answer atomically (all or nothing); resolves once committed. A `Put`
    /// also registers the tenant (see [`NgsiStore::tenant_exists`]). If `modify` answers
    /// a number of changes different from `ids.len()`, nothing is written and the call
    /// fails with `InvalidInput`.
    async fn modify_entities(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        modify: EntityModifier,
    ) -> StoreResult<()>;

    /// Like [`NgsiStore::modify_entities`] for a caller that keeps the current records
    /// itself (the broker's in-memory index): `modify` is given `None` for every id (the
    /// store does not read them), and `on_commit` runs exactly once, with `true` once the
    /// write is committed or `false` if it is not. The write is queued when this is
    /// called, before the returned future is first polled, so writes queued one after
    /// another run in that order; their hooks run one at a time in commit order, each
    /// before its future resolves.
    ///
    /// `history` (empty for none) is appended to the store's temporal representation in
    /// the same transaction, with the contract of
    /// [`NgsiTemporalStore::record_temporal`](crate::NgsiTemporalStore::record_temporal):
    /// the entity write and its history commit together or not at all, in one trip through
    /// the writer.
    fn modify_entities_blind(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        modify: EntityModifier,
        history: crate::TemporalWrite,
        on_commit: CommitHook,
    ) -> WriteFuture;

    /// One slot per store, shared by every user of the store: the broker keeps its
    /// in-memory index there, so that two brokers over one store share one index.
    fn index_slot(&self) -> &IndexSlot;

    /// Deletes every entity of the scope's tenant matching `filter`; returns how many.
    async fn delete_entities(&self, scope: &TenantScope, filter: &EntityFilter)
    -> StoreResult<u64>;

    /// Whether the tenant ever received NGSI-LD data.
    async fn tenant_exists(&self, scope: &TenantScope) -> StoreResult<bool>;

    /// Stores a context; `AlreadyExists` if the id is taken.
    async fn put_context(&self, record: ContextRecord) -> StoreResult<()>;
    /// One context.
    async fn context(&self, id: &str) -> StoreResult<Option<ContextRecord>>;
    /// Every stored context, ordered by id.
    async fn contexts(&self) -> StoreResult<Vec<ContextRecord>>;
    /// Deletes a context; false if there was none.
    async fn delete_context(&self, id: &str) -> StoreResult<bool>;
}
