//! Entity operations on parsed entities, as atomic read-modify-write steps on the store.

use crate::error::{BrokerError, BrokerResult, already_exists, not_found};
use crate::index::{self, Staged, Written};
use crate::{Broker, codec};
use foldhash::{HashMap, HashMapExt};
use ngsi_ld::{Attribute, Entity, NgsiError, Timestamp};
use std::sync::Arc;
use store::{EntityChange, EntityFilter, EntityRecord, TemporalWrite, TenantScope, UnixMillis};

/// What an operation does to one entity.
#[derive(Debug)]
pub enum EntityChangeE {
    /// Nothing.
    Keep,
    /// Store this entity (shared: a batch hands on the entity its later items saw, and the
    /// index keeps it, without copying it).
    Put(Arc<Entity>),
    /// Delete it.
    Delete,
}

/// Per-entity results of a batch operation.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Ids that succeeded, with whether they were created.
    pub success: Vec<(String, bool)>,
    /// Ids that failed, with why.
    pub errors: Vec<(String, NgsiError)>,
}

pub(crate) fn millis(t: Option<Timestamp>) -> UnixMillis {
    UnixMillis(t.map(|t| t.timestamp_millis()).unwrap_or(0))
}

pub(crate) fn from_record(r: &EntityRecord) -> BrokerResult<Entity> {
    codec::decode(&r.doc).ok_or_else(|| {
        BrokerError::Store(store::StoreError::backend(format!(
            "stored entity {} does not decode",
            r.id
        )))
    })
}

/// The current time, truncated to milliseconds (what the store keeps).
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl Broker {
    /// Runs `f` on the current entities `ids` (deduplicated by the caller) atomically.
    ///
    /// The writes of one tenant take turns (a per-tenant lock) to read the current
    /// entities from the in-memory index (see `index.rs`), run `f`, encode the results
    /// and queue them on the store's writer; the lock is released once the write is
    /// queued, so the next write computes while this one commits, and it sees this one's
    /// results (the index's uncommitted overlay). The answer is returned once the write
    /// is committed; the write's commit hook then has already updated the index.
    pub async fn modify<R: Send + 'static>(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        f: impl FnOnce(Vec<Option<Entity>>) -> BrokerResult<(Vec<EntityChangeE>, R)> + Send + 'static,
    ) -> BrokerResult<R> {
        self.modify_recording(scope, ids, true, f).await
    }

    /// [`Broker::modify`] for a write whose history its caller records itself (the temporal
    /// API's create/append, which stores the instances it was given): the current entities
    /// change through the index like every write, without a second copy of the history.
    pub(crate) async fn modify_current_only<R: Send + 'static>(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        f: impl FnOnce(Vec<Option<Entity>>) -> BrokerResult<(Vec<EntityChangeE>, R)> + Send + 'static,
    ) -> BrokerResult<R> {
        self.modify_recording(scope, ids, false, f).await
    }

    async fn modify_recording<R: Send + 'static>(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        record_history: bool,
        f: impl FnOnce(Vec<Option<Entity>>) -> BrokerResult<(Vec<EntityChangeE>, R)> + Send + 'static,
    ) -> BrokerResult<R> {
        self.modify_shared(scope, ids, record_history, move |current| {
            f(current
                .into_iter()
                .map(|e| e.map(|e| (*e).clone()))
                .collect())
        })
        .await
    }

    /// [`Broker::modify`] handing `f` the current entities as the index shares them: an
    /// operation that only looks at an entity, or replaces it, copies nothing (a batch
    /// upsert of existing entities used to copy each one twice).
    async fn modify_shared<R: Send + 'static>(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        record_history: bool,
        f: impl FnOnce(Vec<Option<Arc<Entity>>>) -> BrokerResult<(Vec<EntityChangeE>, R)>
        + Send
        + 'static,
    ) -> BrokerResult<R> {
        let tenant = self.index.tenant(&self.store, scope).await?;
        // Change events for subscriptions (only while some exist), published after the commit,
        // and the history the temporal API keeps, committed in the same transaction as the
        // entities.
        let sink = self.watching_sink();
        let record_history =
            record_history && self.settings.record_history && self.temporal.is_some();
        let mut pairs = Vec::new();
        let queued = {
            let _turn = tenant.writing(ids.len()).await;
            let before = tenant.current_shared(&ids)?;
            let (changes, answer) = f(before.clone())?;
            if changes.len() != ids.len() {
                return Err(BrokerError::Store(store::StoreError::backend(
                    "an entity operation answered the wrong number of changes",
                )));
            }
            // Each entity put is encoded once, before its history, which copies the instances
            // it records from the entity's text.
            let encoded: Vec<Option<codec::EncodedEntity>> = changes
                .iter()
                .map(|c| match c {
                    EntityChangeE::Put(e) => Some(codec::encode_with_spans(e)),
                    _ => None,
                })
                .collect();
            let history = if record_history {
                crate::temporal::history(&ids, &before, &changes, &encoded)
            } else {
                TemporalWrite::default()
            };
            if sink.is_some() {
                pairs = crate::changes::pairs(&before, &changes);
            }
            let mut written: Written = Vec::with_capacity(ids.len());
            let records: Vec<EntityChange> = ids
                .iter()
                .zip(changes)
                .zip(encoded)
                .map(|((id, c), encoded)| match c {
                    EntityChangeE::Keep => EntityChange::Keep,
                    EntityChangeE::Delete => {
                        written.push(Staged::new(id.clone(), None));
                        EntityChange::Delete
                    }
                    EntityChangeE::Put(e) => {
                        // Every put was encoded above.
                        let doc = encoded.map_or_else(|| codec::encode(&e), |enc| enc.text);
                        let rec = index::record(&e, doc);
                        written.push(Staged::shared(id.clone(), Some(e)));
                        EntityChange::Put(rec)
                    }
                })
                .collect();
            if written.is_empty() {
                return Ok(answer);
            }
            let seq = tenant.stage(&written)?;
            let hook_tenant = tenant.clone();
            let queued = self.store.modify_entities_blind(
                scope,
                ids,
                Box::new(move |_| records),
                history,
                // The writer only records the fate; it is applied below, off the writer.
                Box::new(move |committed| hook_tenant.finished(seq, written, committed)),
            );
            (queued, answer)
        };
        let (queued, answer) = queued;
        let stored = queued.await;
        // The hook ran before the store answered: this write's fate (and every earlier one)
        // is applied to the index before the write is answered, committed or not. The
        // entities the writes replaced are freed here, not on the writer.
        drop(tenant.apply_finished().await);
        stored?;
        if let Some(sink) = &sink {
            self.publish(sink, scope.tenant(), pairs);
        }
        Ok(answer)
    }

    /// Runs `f` on one entity; `f` gets `None` if it does not exist.
    pub async fn modify_one<R: Send + 'static>(
        &self,
        scope: &TenantScope,
        id: &str,
        f: impl FnOnce(Option<Entity>) -> BrokerResult<(EntityChangeE, R)> + Send + 'static,
    ) -> BrokerResult<R> {
        self.modify(scope, vec![id.to_owned()], move |mut current| {
            let (change, r) = f(current.pop().flatten())?;
            Ok((vec![change], r))
        })
        .await
    }

    /// Creates an entity; `AlreadyExists` if the id is taken.
    pub async fn create(&self, scope: &TenantScope, mut entity: Entity) -> BrokerResult<()> {
        let id = entity.id.clone();
        self.modify_one(scope, &id, move |current| {
            if current.is_some() {
                return Err(already_exists(format!(
                    "entity {} already exists",
                    entity.id
                )));
            }
            entity.stamp(now());
            Ok((EntityChangeE::Put(Arc::new(entity)), ()))
        })
        .await
    }

    /// One entity.
    pub async fn get(&self, scope: &TenantScope, id: &str) -> BrokerResult<Option<Entity>> {
        Ok(self.get_shared(scope, id).await?.map(|e| (*e).clone()))
    }

    /// One entity, shared with the index (no copy).
    pub async fn get_shared(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> BrokerResult<Option<Arc<Entity>>> {
        self.index.tenant(&self.store, scope).await?.get(id)
    }

    /// Entities by id and type (all of the tenant if both are `None`).
    pub async fn list(
        &self,
        scope: &TenantScope,
        filter: &EntityFilter,
    ) -> BrokerResult<Vec<Entity>> {
        Ok(self
            .list_shared(scope, filter)
            .await?
            .iter()
            .map(|e| (**e).clone())
            .collect())
    }

    /// Entities by id and type, shared with the index (no copies), ordered by id.
    pub async fn list_shared(
        &self,
        scope: &TenantScope,
        filter: &EntityFilter,
    ) -> BrokerResult<Vec<Arc<Entity>>> {
        self.index.tenant(&self.store, scope).await?.list(filter)
    }

    /// Entities matching `query` (`types`: candidate types every match has one of, if
    /// known), ordered by id; the value index narrows `q` equality terms.
    pub async fn query(
        &self,
        scope: &TenantScope,
        query: &ngsi_ld::query::Query,
        types: Option<&[String]>,
    ) -> BrokerResult<Vec<Arc<Entity>>> {
        self.index
            .tenant(&self.store, scope)
            .await?
            .query(query, types)
    }

    /// Whether the tenant ever received NGSI-LD data.
    pub async fn tenant_exists(&self, scope: &TenantScope) -> BrokerResult<bool> {
        self.index.tenant(&self.store, scope).await?.registered()
    }

    /// Deletes an entity; `ResourceNotFound` if absent.
    pub async fn delete(&self, scope: &TenantScope, id: &str) -> BrokerResult<()> {
        let id2 = id.to_owned();
        self.modify_one(scope, id, move |current| match current {
            None => Err(not_found(format!("entity {id2} not found"))),
            Some(_) => Ok((EntityChangeE::Delete, ())),
        })
        .await
    }

    /// Applies `op` to each entity of a batch in order (an id may repeat), atomically for
    /// the whole batch; per-entity failures are collected, not fatal.
    pub async fn batch(
        &self,
        scope: &TenantScope,
        items: Vec<(String, BatchItem)>,
    ) -> BrokerResult<BatchOutcome> {
        // Each item's place among the distinct ids, worked out once (the map borrows the ids).
        let mut ids: Vec<String> = Vec::with_capacity(items.len());
        let mut slots: Vec<usize> = Vec::with_capacity(items.len());
        {
            let mut seen: HashMap<&str, usize> = HashMap::with_capacity(items.len());
            for (id, _) in &items {
                let slot = *seen.entry(id.as_str()).or_insert_with(|| {
                    ids.push(id.clone());
                    ids.len() - 1
                });
                slots.push(slot);
            }
        }
        self.modify_shared(scope, ids, true, move |current| {
            let mut state: Vec<Option<Arc<Entity>>> = current;
            let mut touched = vec![false; state.len()];
            let mut deleted = vec![false; state.len()];
            let mut outcome = BatchOutcome {
                success: Vec::with_capacity(items.len()),
                errors: Vec::new(),
            };
            let at = now();
            for ((id, item), slot) in items.into_iter().zip(slots) {
                let existing = state[slot].take();
                let existed = existing.is_some();
                match item(existing.clone(), at) {
                    Ok(Some(mut e)) => {
                        e.stamp(at);
                        state[slot] = Some(Arc::new(e));
                        touched[slot] = true;
                        deleted[slot] = false;
                        outcome.success.push((id, !existed));
                    }
                    Ok(None) => {
                        state[slot] = None;
                        touched[slot] = true;
                        deleted[slot] = true;
                        outcome.success.push((id, false));
                    }
                    Err(e) => {
                        state[slot] = existing;
                        outcome.errors.push((id, e));
                    }
                }
            }
            let changes = state
                .into_iter()
                .enumerate()
                .map(|(i, e)| match (touched[i], deleted[i], e) {
                    (false, _, _) => EntityChangeE::Keep,
                    (true, true, _) | (true, false, None) => EntityChangeE::Delete,
                    // The batch's own result goes on as it is (no copy, no new allocation).
                    (true, false, Some(e)) => EntityChangeE::Put(e),
                })
                .collect();
            Ok((changes, outcome))
        })
        .await
    }
}

/// One step of a batch: given the current entity (if any, shared: `Arc::unwrap_or_clone`
/// to change it) and the time, the new entity (`Some`), a deletion (`None`), or an error
/// for this entity.
pub type BatchItem =
    Box<dyn FnOnce(Option<Arc<Entity>>, Timestamp) -> Result<Option<Entity>, NgsiError> + Send>;

/// Keeps `createdAt` of instances being replaced and stamps the rest.
pub fn carry_created(old: Option<&[Attribute]>, new: &mut Attribute) {
    if let Some(old) = old
        && let Some(prev) = old.iter().find(|a| a.dataset_id == new.dataset_id)
    {
        new.created_at = prev.created_at;
    }
}
