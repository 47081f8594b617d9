//! Entity operations on parsed entities, as atomic read-modify-write steps on the store.

use crate::error::{BrokerError, BrokerResult, already_exists, not_found};
use crate::{Broker, codec};
use ngsi_ld::{Attribute, Entity, NgsiError, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use store::{EntityChange, EntityFilter, EntityRecord, TenantScope, UnixMillis};

/// What an operation does to one entity.
#[derive(Debug)]
pub enum EntityChangeE {
    /// Nothing.
    Keep,
    /// Store this entity.
    Put(Box<Entity>),
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

fn millis(t: Option<Timestamp>) -> UnixMillis {
    UnixMillis(t.map(|t| t.timestamp_millis()).unwrap_or(0))
}

fn to_record(e: &Entity) -> EntityRecord {
    EntityRecord {
        id: e.id.clone(),
        types: e.types.clone(),
        doc: codec::encode(e),
        created_at: millis(e.created_at),
        modified_at: millis(e.modified_at),
    }
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
    pub async fn modify<R: Send + 'static>(
        &self,
        scope: &TenantScope,
        ids: Vec<String>,
        f: impl FnOnce(Vec<Option<Entity>>) -> BrokerResult<(Vec<EntityChangeE>, R)> + Send + 'static,
    ) -> BrokerResult<R> {
        let slot: Arc<Mutex<Option<BrokerResult<R>>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let n = ids.len();
        let history = crate::temporal::Recorder::new(self, &ids);
        let probe = history.probe();
        self.store
            .modify_entities(
                scope,
                ids,
                Box::new(move |current| {
                    let decoded: BrokerResult<Vec<Option<Entity>>> = current
                        .iter()
                        .map(|r| r.as_ref().map(from_record).transpose())
                        .collect();
                    let before = probe.as_ref().and_then(|_| decoded.as_ref().ok().cloned());
                    let result = decoded.and_then(f);
                    let (changes, answer) = match result {
                        Ok((changes, r)) => (changes, Ok(r)),
                        Err(e) => ((0..n).map(|_| EntityChangeE::Keep).collect(), Err(e)),
                    };
                    if let (Some(p), Some(before)) = (&probe, &before) {
                        p.observe(before, &changes);
                    }
                    if let Ok(mut s) = out.lock() {
                        *s = Some(answer);
                    }
                    changes
                        .into_iter()
                        .map(|c| match c {
                            EntityChangeE::Keep => EntityChange::Keep,
                            EntityChangeE::Delete => EntityChange::Delete,
                            EntityChangeE::Put(e) => EntityChange::Put(to_record(&e)),
                        })
                        .collect()
                }),
            )
            .await?;
        history.commit(scope).await?;
        let answer = slot.lock().ok().and_then(|mut s| s.take());
        answer.unwrap_or_else(|| {
            Err(BrokerError::Store(store::StoreError::backend(
                "the write did not run",
            )))
        })
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
            Ok((EntityChangeE::Put(Box::new(entity)), ()))
        })
        .await
    }

    /// One entity.
    pub async fn get(&self, scope: &TenantScope, id: &str) -> BrokerResult<Option<Entity>> {
        self.store
            .entity(scope, id)
            .await?
            .as_ref()
            .map(from_record)
            .transpose()
    }

    /// Entities by id and type (all of the tenant if both are `None`).
    pub async fn list(
        &self,
        scope: &TenantScope,
        filter: &EntityFilter,
    ) -> BrokerResult<Vec<Entity>> {
        self.store
            .entities(scope, filter)
            .await?
            .iter()
            .map(from_record)
            .collect()
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
        let mut ids: Vec<String> = Vec::new();
        let mut seen = HashMap::new();
        for (id, _) in &items {
            if !seen.contains_key(id) {
                seen.insert(id.clone(), ids.len());
                ids.push(id.clone());
            }
        }
        let order = ids.clone();
        self.modify(scope, ids, move |current| {
            let mut state: Vec<Option<Entity>> = current;
            let mut touched = vec![false; state.len()];
            let mut deleted = vec![false; state.len()];
            let mut outcome = BatchOutcome::default();
            let at = now();
            for (id, item) in items {
                let Some(&slot) = seen.get(&id) else { continue };
                let existing = state[slot].take();
                let existed = existing.is_some();
                match item(existing.clone(), at) {
                    Ok(Some(mut e)) => {
                        e.stamp(at);
                        state[slot] = Some(e);
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
                    (true, false, Some(e)) => EntityChangeE::Put(Box::new(e)),
                })
                .collect();
            let _ = &order;
            Ok((changes, outcome))
        })
        .await
    }
}

/// One step of a batch: given the current entity (if any) and the time, the new entity
/// (`Some`), a deletion (`None`), or an error for this entity.
pub type BatchItem =
    Box<dyn FnOnce(Option<Entity>, Timestamp) -> Result<Option<Entity>, NgsiError> + Send>;

/// Keeps `createdAt` of instances being replaced and stamps the rest.
pub fn carry_created(old: Option<&[Attribute]>, new: &mut Attribute) {
    if let Some(old) = old
        && let Some(prev) = old.iter().find(|a| a.dataset_id == new.dataset_id)
    {
        new.created_at = prev.created_at;
    }
}
