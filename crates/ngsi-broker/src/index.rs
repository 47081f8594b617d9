//! The broker's in-memory entity index, one per store (kept in the store's
//! [`index_slot`](store::NgsiStore::index_slot), so every broker over one store shares it).
//!
//! SQLite stays the durable source of truth; the index holds, per tenant, every committed
//! entity decoded once (`id -> Arc<Entity>`, ordered by id), the ids of each type, and the
//! ids holding each scalar attribute value (for `attr==value` terms of `q`). A tenant is
//! loaded from the store on its first use; from then on every write of every broker goes
//! through [`Broker::modify`](crate::Broker::modify), which keeps the index in step:
//!
//! - the write's read-modify-write callback runs on the store's single writer; it reads
//!   the current entities from the index (the store does not read or decode them) and puts
//!   its results in a per-tenant *overlay* of written but not yet committed entities, so the
//!   next write in the same group-commit transaction sees them;
//! - once the transaction's fate is known, the store runs the write's commit hook (on the
//!   writer, in commit order): on commit the results move to the committed map and the
//!   indexes, otherwise they are dropped from the overlay.
//!
//! Readers see only the committed map, so a reader never sees a write that could still be
//! lost, and a write acknowledged to its caller is visible to every later read.
//! Query semantics stay those of [`ngsi_ld::query::Query::matches`]: the value index only
//! narrows the candidates, each of which is then matched in full.

use crate::codec;
use crate::error::{BrokerError, BrokerResult};
use ngsi_ld::Entity;
use ngsi_ld::query::{BoolExpr, CompareOp, Literal, QExpr, QTerm, QValue, Query};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use store::{EntityFilter, NgsiStore, TenantScope};

type Id = Arc<str>;

/// A scalar attribute value, as `q` equality sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A number (or a string that parses as one), by its `f64` bits (`-0` as `0`).
    Num(u64),
    Str(String),
    Bool(bool),
}

fn num_key(f: f64) -> Option<Key> {
    if f.is_nan() {
        return None;
    }
    let f = if f == 0.0 { 0.0 } else { f };
    Some(Key::Num(f.to_bits()))
}

/// The keys under which a value element is found by `==` (mirrors `q::compare`).
fn element_keys(v: &Value, out: &mut Vec<Key>) {
    match v {
        Value::Number(n) => out.extend(n.as_f64().and_then(num_key)),
        Value::Bool(b) => out.push(Key::Bool(*b)),
        Value::String(s) => {
            out.push(Key::Str(s.clone()));
            if let Ok(f) = s.parse::<f64>() {
                out.extend(num_key(f));
            }
        }
        _ => {}
    }
}

fn unwrap_typed(v: &Value) -> &Value {
    v.get("@value").unwrap_or(v)
}

/// Every `(attribute, key)` of an entity, deduplicated.
fn entity_keys(e: &Entity) -> Vec<(String, Key)> {
    let mut out: Vec<(String, Key)> = Vec::new();
    let mut keys = Vec::new();
    for (name, instances) in &e.attributes {
        keys.clear();
        for instance in instances {
            let v = ngsi_ld::query::q::attribute_value(instance);
            match &v {
                Value::Array(items) => {
                    for item in items {
                        element_keys(unwrap_typed(item), &mut keys);
                    }
                }
                other => element_keys(unwrap_typed(other), &mut keys),
            }
        }
        for k in keys.drain(..) {
            if !out.iter().any(|(n, o)| n == name && *o == k) {
                out.push((name.clone(), k));
            }
        }
    }
    out
}

/// The keys a literal equals, or `None` if equality is not a plain key match.
fn literal_keys(lit: &Literal) -> Option<Vec<Key>> {
    match lit {
        Literal::Number(f) => Some(num_key(*f).into_iter().collect()),
        Literal::Bool(b) => Some(vec![Key::Bool(*b)]),
        Literal::Text {
            text,
            expanded,
            datetime,
        } => {
            if datetime.is_some() {
                return None;
            }
            let mut keys = vec![Key::Str(text.clone())];
            keys.extend(expanded.iter().map(|e| Key::Str(e.clone())));
            Some(keys)
        }
    }
}

/// One tenant's committed entities and indexes, and the overlay of uncommitted writes.
#[derive(Default)]
struct TenantState {
    /// Whether the tenant ever received data (`NgsiStore::tenant_exists`).
    registered: bool,
    entities: BTreeMap<Id, Arc<Entity>>,
    by_type: HashMap<String, BTreeSet<Id>>,
    by_value: HashMap<String, HashMap<Key, BTreeSet<Id>>>,
    /// Written but not yet committed: id -> (write sequence, entity or deletion).
    overlay: HashMap<String, (u64, Option<Arc<Entity>>)>,
}

impl TenantState {
    fn unindex(&mut self, id: &Id, e: &Entity) {
        for t in &e.types {
            if let Some(set) = self.by_type.get_mut(t) {
                set.remove(id);
                if set.is_empty() {
                    self.by_type.remove(t);
                }
            }
        }
        for (name, key) in entity_keys(e) {
            if let Some(values) = self.by_value.get_mut(&name) {
                if let Some(set) = values.get_mut(&key) {
                    set.remove(id);
                    if set.is_empty() {
                        values.remove(&key);
                    }
                }
                if values.is_empty() {
                    self.by_value.remove(&name);
                }
            }
        }
    }

    fn index(&mut self, id: &Id, e: &Entity) {
        for t in &e.types {
            self.by_type
                .entry(t.clone())
                .or_default()
                .insert(id.clone());
        }
        for (name, key) in entity_keys(e) {
            self.by_value
                .entry(name)
                .or_default()
                .entry(key)
                .or_default()
                .insert(id.clone());
        }
    }

    /// Makes `entity` (or its absence) the committed state of `id`.
    fn commit(&mut self, id: &str, entity: Option<Arc<Entity>>) {
        if let Some((key, old)) = self.entities.remove_entry(id) {
            self.unindex(&key, &old);
        }
        if let Some(e) = entity {
            let key: Id = Arc::from(id);
            self.index(&key, &e);
            self.entities.insert(key, e);
        }
    }

    /// Ids a `q` expression can match, if the value index narrows it.
    fn q_candidates(&self, expr: &QExpr) -> Option<BTreeSet<Id>> {
        match expr {
            BoolExpr::Atom(QTerm::Compare {
                path,
                op: CompareOp::Eq,
                value,
            }) if path.sub_attributes.is_empty()
                && path.members.is_empty()
                && !matches!(
                    path.attribute.as_str(),
                    "createdAt" | "modifiedAt" | "deletedAt"
                ) =>
            {
                let literals: Vec<&Literal> = match value {
                    QValue::Single(l) => vec![l],
                    QValue::List(ls) => ls.iter().collect(),
                    QValue::Range(..) => return None,
                };
                let mut keys = Vec::new();
                for l in literals {
                    keys.extend(literal_keys(l)?);
                }
                let values = self.by_value.get(&path.attribute);
                let mut out = BTreeSet::new();
                for k in keys {
                    if let Some(set) = values.and_then(|v| v.get(&k)) {
                        out.extend(set.iter().cloned());
                    }
                }
                Some(out)
            }
            BoolExpr::Atom(_) => None,
            BoolExpr::And(items) => items
                .iter()
                .filter_map(|i| self.q_candidates(i))
                .min_by_key(BTreeSet::len),
            BoolExpr::Or(items) => {
                let mut out = BTreeSet::new();
                for i in items {
                    out.extend(self.q_candidates(i)?);
                }
                Some(out)
            }
        }
    }

    /// Ids of entities with any of `types`, ordered.
    fn typed(&self, types: &[String]) -> BTreeSet<Id> {
        let mut out = BTreeSet::new();
        for t in types {
            if let Some(set) = self.by_type.get(t) {
                out.extend(set.iter().cloned());
            }
        }
        out
    }

    /// Committed entities matching `filter` (as `NgsiStore::entities`), ordered by id.
    fn filtered(&self, filter: &EntityFilter) -> Vec<Arc<Entity>> {
        let by_ids = |ids: &[String]| -> BTreeSet<Id> {
            ids.iter()
                .filter_map(|i| {
                    self.entities
                        .get_key_value(i.as_str())
                        .map(|(k, _)| k.clone())
                })
                .collect()
        };
        let ids: Option<BTreeSet<Id>> = match (&filter.ids, &filter.types) {
            (None, None) => None,
            (Some(ids), None) => Some(by_ids(ids)),
            (None, Some(types)) => Some(self.typed(types)),
            (Some(ids), Some(types)) => {
                let typed = self.typed(types);
                Some(
                    by_ids(ids)
                        .into_iter()
                        .filter(|i| typed.contains(i))
                        .collect(),
                )
            }
        };
        match ids {
            None => self.entities.values().cloned().collect(),
            Some(ids) => ids
                .iter()
                .filter_map(|i| self.entities.get(i).cloned())
                .collect(),
        }
    }
}

struct TenantSlot {
    loaded: tokio::sync::OnceCell<()>,
    state: RwLock<TenantState>,
}

/// The index of one store (see the module docs).
pub(crate) struct Index {
    tenants: Mutex<HashMap<String, Arc<TenantSlot>>>,
    /// Numbers writes in the order the writer runs them.
    seq: AtomicU64,
}

fn poisoned() -> BrokerError {
    BrokerError::Store(store::StoreError::backend(
        "the entity index lock is poisoned",
    ))
}

/// A loaded tenant of the index.
#[derive(Clone)]
pub(crate) struct Tenant {
    slot: Arc<TenantSlot>,
    index: Arc<Index>,
}

impl Index {
    /// The index shared by every broker over `store`.
    pub(crate) fn of(store: &Arc<dyn NgsiStore>) -> Arc<Index> {
        let any = store
            .index_slot()
            .get_or_init(|| {
                Arc::new(Arc::new(Index {
                    tenants: Mutex::new(HashMap::new()),
                    seq: AtomicU64::new(0),
                }))
            })
            .clone();
        match any.downcast::<Arc<Index>>() {
            Ok(index) => (*index).clone(),
            // Someone else's value in the slot: keep a private index (never the case for
            // the stores of this workspace).
            Err(_) => Arc::new(Index {
                tenants: Mutex::new(HashMap::new()),
                seq: AtomicU64::new(0),
            }),
        }
    }

    /// The tenant of `scope`, loaded from `store` on first use.
    pub(crate) async fn tenant(
        self: &Arc<Self>,
        store: &Arc<dyn NgsiStore>,
        scope: &TenantScope,
    ) -> BrokerResult<Tenant> {
        let slot = {
            let mut tenants = self.tenants.lock().map_err(|_| poisoned())?;
            tenants
                .entry(scope.tenant().as_str().to_owned())
                .or_insert_with(|| {
                    Arc::new(TenantSlot {
                        loaded: tokio::sync::OnceCell::new(),
                        state: RwLock::new(TenantState::default()),
                    })
                })
                .clone()
        };
        slot.loaded
            .get_or_try_init(|| async {
                let registered = store.tenant_exists(scope).await?;
                let records = store.entities(scope, &EntityFilter::default()).await?;
                let mut st = TenantState {
                    registered,
                    ..TenantState::default()
                };
                for r in &records {
                    let e = crate::ops::from_record(r)?;
                    st.commit(&r.id, Some(Arc::new(e)));
                }
                *slot.state.write().map_err(|_| poisoned())? = st;
                Ok::<(), BrokerError>(())
            })
            .await?;
        Ok(Tenant {
            slot,
            index: Arc::clone(self),
        })
    }
}

/// What one write did to one entity: its new state (`None`: deleted).
pub(crate) type Written = Vec<(String, Option<Arc<Entity>>)>;

impl Tenant {
    fn read(&self) -> BrokerResult<std::sync::RwLockReadGuard<'_, TenantState>> {
        self.slot.state.read().map_err(|_| poisoned())
    }

    /// Whether the tenant ever received data.
    pub(crate) fn registered(&self) -> BrokerResult<bool> {
        Ok(self.read()?.registered)
    }

    /// The committed entity `id`.
    pub(crate) fn get(&self, id: &str) -> BrokerResult<Option<Arc<Entity>>> {
        Ok(self.read()?.entities.get(id).cloned())
    }

    /// Committed entities matching `filter`, ordered by id.
    pub(crate) fn list(&self, filter: &EntityFilter) -> BrokerResult<Vec<Arc<Entity>>> {
        Ok(self.read()?.filtered(filter))
    }

    /// Committed entities matching `query`, ordered by id.
    pub(crate) fn query(
        &self,
        query: &Query,
        types: Option<&[String]>,
    ) -> BrokerResult<Vec<Arc<Entity>>> {
        let st = self.read()?;
        let candidates = query.q.as_ref().and_then(|q| st.q_candidates(q));
        let pool: Vec<Arc<Entity>> = match candidates {
            Some(ids) => ids
                .iter()
                .filter_map(|i| st.entities.get(i).cloned())
                .collect(),
            None => st.filtered(&EntityFilter {
                ids: (!query.ids.is_empty()).then(|| query.ids.clone()),
                types: types.map(<[String]>::to_vec),
            }),
        };
        drop(st);
        Ok(pool.into_iter().filter(|e| query.matches(e)).collect())
    }

    /// On the writer: the current state of `ids` (uncommitted writes included).
    pub(crate) fn current(&self, ids: &[String]) -> BrokerResult<Vec<Option<Entity>>> {
        let st = self.read()?;
        Ok(ids
            .iter()
            .map(|id| match st.overlay.get(id) {
                Some((_, e)) => e.as_deref().cloned(),
                None => st.entities.get(id.as_str()).map(|e| (**e).clone()),
            })
            .collect())
    }

    /// On the writer: records a write's results as uncommitted; returns its sequence.
    pub(crate) fn stage(&self, written: &Written) -> BrokerResult<u64> {
        let seq = self.index.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut st = self.slot.state.write().map_err(|_| poisoned())?;
        for (id, e) in written {
            st.overlay.insert(id.clone(), (seq, e.clone()));
        }
        Ok(seq)
    }

    /// On the writer, once the write's fate is known: commits or drops its results.
    pub(crate) fn finish(&self, seq: u64, written: Written, committed: bool) {
        // A poisoned lock means a panic elsewhere; nothing sane is left to update.
        let Ok(mut st) = self.slot.state.write() else {
            return;
        };
        for (id, e) in written {
            if st.overlay.get(&id).is_some_and(|(s, _)| *s == seq) {
                st.overlay.remove(&id);
            }
            if committed {
                if e.is_some() {
                    st.registered = true;
                }
                st.commit(&id, e);
            }
        }
    }
}

/// The storage record of an entity.
pub(crate) fn record(e: &Entity) -> store::EntityRecord {
    store::EntityRecord {
        id: e.id.clone(),
        types: e.types.clone(),
        doc: codec::encode(e),
        created_at: crate::ops::millis(e.created_at),
        modified_at: crate::ops::millis(e.modified_at),
    }
}
