//! Storage of the NGSI-LD temporal representation (spec 4.5.7, 5.6.11-5.6.16, 5.7.3-5.7.4):
//! every attribute instance an entity ever had, each with its `instanceId` and timestamps, plus
//! one row per temporal entity (its types and system times, `deletedAt` once deleted).
//!
//! As with [`NgsiStore`](crate::NgsiStore), the store knows nothing of NGSI-LD semantics: an
//! instance is an opaque document (the broker's encoding of one attribute instance) with the
//! columns pulled out that queries need. Times are microseconds since the Unix epoch (NGSI-LD
//! keeps sub-millisecond `observedAt` values), chosen by the caller.
//!
//! Query contract ([`NgsiTemporalStore::temporal_instances`]): rows whose chosen time column is
//! set and lies in `[from, to)`, ordered by that time (then by insertion), oldest first; with
//! `last_n`, only the newest N **per attribute** (still returned oldest first). Backends must
//! answer `last_n` without reading the attribute's whole history (an index on tenant, entity,
//! attribute and time, read newest-first with a limit).

use crate::{StoreResult, TenantScope};
use async_trait::async_trait;

/// One temporal entity: what is known about the entity besides its attribute instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporalEntityRecord {
    /// The entity id.
    pub id: String,
    /// Expanded entity types (the latest known).
    pub types: Vec<String>,
    /// Scopes (the latest known).
    pub scope: Vec<String>,
    /// First recorded (µs).
    pub created_at: i64,
    /// Last recorded change (µs).
    pub modified_at: i64,
    /// When the entity was deleted through the entity API (µs), if it was.
    pub deleted_at: Option<i64>,
}

/// One attribute instance of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporalInstanceRecord {
    /// The entity id.
    pub entity_id: String,
    /// Expanded attribute name.
    pub attribute: String,
    /// The instance id (a URI), unique per entity and attribute. In a write, `None` has the
    /// store mint one, unique in the whole store and never handed out again; instances read
    /// back always have one.
    pub instance_id: Option<String>,
    /// `datasetId`, `None` for the default instance.
    pub dataset_id: Option<String>,
    /// `observedAt` (µs), if the instance has one.
    pub observed_at: Option<i64>,
    /// When the instance was recorded (µs).
    pub created_at: i64,
    /// When the instance was last modified (µs); equals `created_at` unless it was patched.
    pub modified_at: i64,
    /// For deletion instances (the attribute or entity was deleted): when (µs).
    pub deleted_at: Option<i64>,
    /// The broker's encoding of the instance (JSON text).
    pub doc: String,
}

/// Which time of an instance a query restricts and orders by (`timeproperty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeColumn {
    /// `observedAt` (the default). Instances without one have no place on this axis when a
    /// range is given; without a range they are ordered by their `createdAt`.
    #[default]
    ObservedAt,
    /// `createdAt`.
    CreatedAt,
    /// `modifiedAt`.
    ModifiedAt,
    /// `deletedAt` (only deletion instances have one).
    DeletedAt,
}

/// Which instances to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceQuery {
    /// Only these attributes (expanded names), if set.
    pub attributes: Option<Vec<String>>,
    /// The time axis.
    pub column: TimeColumn,
    /// Inclusive lower bound (µs).
    pub from: Option<i64>,
    /// Exclusive upper bound (µs).
    pub to: Option<i64>,
    /// Only the newest N instances of each attribute.
    pub last_n: Option<usize>,
    /// Without `last_n`: only the oldest N instances of each attribute (a page).
    pub first_n: Option<usize>,
}

/// Which instances of an attribute to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetSelector {
    /// Every instance, whatever its `datasetId` (`deleteAll=true`).
    All,
    /// Instances of the default instance (no `datasetId`).
    Default,
    /// Instances with this `datasetId`.
    Id(String),
}

/// One atomic addition to the history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemporalWrite {
    /// Entities to create or update. An existing entity keeps its `created_at` and takes the
    /// record's types, scope, `modified_at` and `deleted_at`.
    pub entities: Vec<TemporalEntityRecord>,
    /// Instances to append (an entity named here must exist or be in `entities`).
    pub instances: Vec<TemporalInstanceRecord>,
}

impl TemporalWrite {
    /// True if there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty() && self.instances.is_empty()
    }
}

/// Storage of the temporal representation. Tenant isolation as for every store trait: another
/// tenant's history behaves exactly as if it did not exist.
#[async_trait]
pub trait NgsiTemporalStore: Send + Sync + 'static {
    /// Applies `write` atomically; resolves once committed. An `instance_id` already present for
    /// the same entity and attribute is `AlreadyExists` (and nothing is written). A given
    /// `instance_id` may be refused (`InvalidInput`) if it has the form of the ids the store
    /// mints.
    async fn record_temporal(&self, scope: &TenantScope, write: TemporalWrite) -> StoreResult<()>;

    /// One temporal entity.
    async fn temporal_entity(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<TemporalEntityRecord>>;

    /// Temporal entities (only `ids`, if given), ordered by id.
    async fn temporal_entities(
        &self,
        scope: &TenantScope,
        ids: Option<&[String]>,
    ) -> StoreResult<Vec<TemporalEntityRecord>>;

    /// The attributes that have (or had) instances, in first-recorded order.
    async fn temporal_attributes(&self, scope: &TenantScope, id: &str) -> StoreResult<Vec<String>>;

    /// Instances of entity `id` matching `query` (see the module docs for the order).
    async fn temporal_instances(
        &self,
        scope: &TenantScope,
        id: &str,
        query: &InstanceQuery,
    ) -> StoreResult<Vec<TemporalInstanceRecord>>;

    /// Deletes the entity's whole history; false if there was none.
    async fn delete_temporal_entity(&self, scope: &TenantScope, id: &str) -> StoreResult<bool>;

    /// Deletes the instances of one attribute selected by `dataset`; returns how many.
    async fn delete_temporal_attribute(
        &self,
        scope: &TenantScope,
        id: &str,
        attribute: &str,
        dataset: &DatasetSelector,
    ) -> StoreResult<u64>;

    /// Replaces the document, `observedAt` and `modifiedAt` of one instance; false if absent.
    async fn update_temporal_instance(
        &self,
        scope: &TenantScope,
        instance: &TemporalInstanceRecord,
    ) -> StoreResult<bool>;

    /// Deletes one instance; false if absent.
    async fn delete_temporal_instance(
        &self,
        scope: &TenantScope,
        id: &str,
        attribute: &str,
        instance_id: &str,
    ) -> StoreResult<bool>;
}
