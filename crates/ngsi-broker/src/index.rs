//! The broker's in-memory entity index, one per store (kept in the store's
//! [`index_slot`](store::NgsiStore::index_slot), so every broker over one store shares it).
//!
//! SQLite stays the durable source of truth; the index holds, per tenant, every committed
//! entity decoded once (`id -> Arc<Entity>`, ordered by id), the ids of each type, and the
//! ids holding each scalar attribute value (for `attr==value` terms of `q`) and an R-tree
//! of the envelopes of each GeoProperty (for geo-queries). A tenant is
//! loaded from the store on its first use; from then on every write of every broker goes
//! through [`Broker::modify`](crate::Broker::modify), which keeps the index in step:
//!
//! - the writes of one tenant take turns ([`Tenant::writing`]); in its turn a write's
//!   read-modify-write callback reads the current entities from the index (the store does
//!   not read or decode them), puts its results in a per-tenant *overlay* of written but not
//!   yet committed entities, so that the next write sees them even before they commit, and
//!   queues its store write on the store's single writer;
//! - once the transaction's fate is known, the store runs the write's commit hook (on the
//!   writer, in commit order): on commit the results move to the committed map and the
//!   indexes, otherwise they are dropped from the overlay.
//!
//! Readers see only the committed map, so a reader never sees a write that could still be
//! lost, and a write acknowledged to its caller is visible to every later read.
//! A loaded tenant does not see writes that bypass the brokers (e.g. a direct
//! `NgsiStore::delete_entities`); every NGSI-LD write of the platform goes through
//! `Broker::modify`. Memory: every entity of a used tenant stays decoded in memory.
//! Query semantics stay those of [`ngsi_ld::query::Query::matches`]: the value index only
//! narrows the candidates, each of which is then matched in full.

use crate::codec;
use crate::error::{BrokerError, BrokerResult};
use ngsi_ld::Entity;
use ngsi_ld::query::{BoolExpr, CompareOp, Literal, QExpr, QTerm, QValue, Query};
use rstar::primitives::Rectangle;
use rstar::{AABB, RTree};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use store::{EntityFilter, NgsiStore, TenantScope};

/// An entity as the index holds it, shared with readers without copying.
type SharedEntity = Arc<Entity>;

type Id = Arc<str>;

/// The geo index of one GeoProperty: an R-tree of the distinct envelopes, the ids per
/// envelope (many entities often share one, e.g. a point), and the ids whose geometry
/// has no envelope.
#[derive(Default)]
struct GeoIndex {
    tree: RTree<Rectangle<[f64; 2]>>,
    ids: HashMap<[u64; 4], BTreeSet<Id>>,
    unbounded: BTreeSet<Id>,
}

fn bits(b: [f64; 4]) -> [u64; 4] {
    b.map(f64::to_bits)
}

fn rect(b: [f64; 4]) -> Rectangle<[f64; 2]> {
    Rectangle::from_corners([b[0], b[1]], [b[2], b[3]])
}

impl GeoIndex {
    fn insert(&mut self, id: &Id, bbox: Option<[f64; 4]>) {
        let Some(b) = bbox else {
            self.unbounded.insert(id.clone());
            return;
        };
        match self.ids.get_mut(&bits(b)) {
            Some(set) => {
                set.insert(id.clone());
            }
            None => {
                self.tree.insert(rect(b));
                self.ids.insert(bits(b), BTreeSet::from([id.clone()]));
            }
        }
    }

    fn remove(&mut self, id: &Id, bbox: Option<[f64; 4]>) {
        let Some(b) = bbox else {
            self.unbounded.remove(id);
            return;
        };
        if let Some(set) = self.ids.get_mut(&bits(b)) {
            set.remove(id);
            if set.is_empty() {
                self.ids.remove(&bits(b));
                self.tree.remove(&rect(b));
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.unbounded.is_empty()
    }

    /// Ids whose envelope intersects `b`, and those without an envelope.
    fn candidates(&self, b: [f64; 4], out: &mut BTreeSet<Id>) {
        let envelope = AABB::from_corners([b[0], b[1]], [b[2], b[3]]);
        for r in self.tree.locate_in_envelope_intersecting(&envelope) {
            let (lo, hi) = (r.lower(), r.upper());
            if let Some(set) = self.ids.get(&bits([lo[0], lo[1], hi[0], hi[1]])) {
                out.extend(set.iter().cloned());
            }
        }
        out.extend(self.unbounded.iter().cloned());
    }
}

/// The envelopes of an entity's valid GeoProperty values, per attribute (`None`: a
/// valid geometry without an envelope, e.g. an empty collection).
fn entity_geo(e: &Entity) -> Vec<(String, Option<[f64; 4]>)> {
    let mut out = Vec::new();
    for (name, instances) in &e.attributes {
        for instance in instances {
            if let ngsi_ld::AttributeValue::GeoProperty(v) = &instance.value
                && let Ok(g) = ngsi_ld::geospatial::parse_geojson(v)
            {
                // -0 as 0, so that equal envelopes have equal bits.
                let bbox = ngsi_ld::geospatial::bounding_box(&g)
                    .map(|b| b.to_array().map(|x| if x == 0.0 { 0.0 } else { x }));
                if !out.contains(&(name.clone(), bbox)) {
                    out.push((name.clone(), bbox));
                }
            }
        }
    }
    out
}

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

/// A committed entity with its value-index keys.
struct Committed {
    entity: Arc<Entity>,
    keys: Vec<(String, Key)>,
    geo: Vec<(String, Option<[f64; 4]>)>,
}

/// One tenant's committed entities and indexes, and the overlay of uncommitted writes.
#[derive(Default)]
struct TenantState {
    /// Whether the tenant ever received data (`NgsiStore::tenant_exists`).
    registered: bool,
    entities: BTreeMap<Id, Committed>,
    by_type: HashMap<String, BTreeSet<Id>>,
    by_value: HashMap<String, HashMap<Key, BTreeSet<Id>>>,
    /// Per GeoProperty name: the envelopes of its valid geometries, and the ids whose
    /// geometry has no envelope.
    by_geo: HashMap<String, GeoIndex>,
    /// Written but not yet committed: id -> (write sequence, entity or deletion).
    overlay: HashMap<String, (u64, Option<Arc<Entity>>)>,
}

type TypeIndex = HashMap<String, BTreeSet<Id>>;
type ValueIndex = HashMap<String, HashMap<Key, BTreeSet<Id>>>;
type GeoIndexes = HashMap<String, GeoIndex>;

fn add_type(by_type: &mut TypeIndex, id: &Id, t: &str) {
    if let Some(set) = by_type.get_mut(t) {
        set.insert(id.clone());
    } else {
        by_type.insert(t.to_owned(), BTreeSet::from([id.clone()]));
    }
}

fn remove_type(by_type: &mut TypeIndex, id: &Id, t: &str) {
    if let Some(set) = by_type.get_mut(t) {
        set.remove(id);
        if set.is_empty() {
            by_type.remove(t);
        }
    }
}

fn add_key(by_value: &mut ValueIndex, id: &Id, (name, key): &(String, Key)) {
    let values = match by_value.get_mut(name) {
        Some(v) => v,
        None => by_value.entry(name.clone()).or_default(),
    };
    values.entry(key.clone()).or_default().insert(id.clone());
}

fn remove_key(by_value: &mut ValueIndex, id: &Id, (name, key): &(String, Key)) {
    if let Some(values) = by_value.get_mut(name) {
        if let Some(set) = values.get_mut(key) {
            set.remove(id);
            if set.is_empty() {
                values.remove(key);
            }
        }
        if values.is_empty() {
            by_value.remove(name);
        }
    }
}

fn add_geo(by_geo: &mut GeoIndexes, id: &Id, (name, bbox): &(String, Option<[f64; 4]>)) {
    by_geo.entry(name.clone()).or_default().insert(id, *bbox);
}

fn remove_geo(by_geo: &mut GeoIndexes, id: &Id, (name, bbox): &(String, Option<[f64; 4]>)) {
    if let Some(g) = by_geo.get_mut(name) {
        g.remove(id, *bbox);
        if g.is_empty() {
            by_geo.remove(name);
        }
    }
}

/// The entries of `old` to take out of an index and those of `new` to put in, for an id whose
/// entries (each list free of repeats) change from `old` to `new`. Lists of one length are
/// compared position by position, so an entity written again with the same types, geometry
/// and most of its values moves only what changed; otherwise all of `old` goes and all of `new`
/// comes. Removing every listed old entry before adding the new ones leaves exactly `new`:
/// an old entry at a changed position differs from every unchanged one, which stays.
fn changed<'a, T: PartialEq>(old: &'a [T], new: &'a [T]) -> (Vec<&'a T>, Vec<&'a T>) {
    if old.len() != new.len() {
        return (old.iter().collect(), new.iter().collect());
    }
    old.iter().zip(new).filter(|(o, n)| o != n).unzip()
}

impl TenantState {
    fn unindex(&mut self, id: &Id, old: &Committed) {
        for t in &old.entity.types {
            remove_type(&mut self.by_type, id, t);
        }
        for g in &old.geo {
            remove_geo(&mut self.by_geo, id, g);
        }
        for k in &old.keys {
            remove_key(&mut self.by_value, id, k);
        }
    }

    fn index(&mut self, id: &Id, c: &Committed) {
        for t in &c.entity.types {
            add_type(&mut self.by_type, id, t);
        }
        for k in &c.keys {
            add_key(&mut self.by_value, id, k);
        }
        for g in &c.geo {
            add_geo(&mut self.by_geo, id, g);
        }
    }

    /// Makes `staged` the committed state of its id. Returns the entry it replaces, for the
    /// caller to drop once it has released the lock (a batch's old entities are thousands of
    /// allocations).
    fn commit(&mut self, staged: Staged) -> Option<Committed> {
        let Some(entity) = staged.entity else {
            let (key, old) = self.entities.remove_entry(staged.id.as_str())?;
            self.unindex(&key, &old);
            return Some(old);
        };
        let new = Committed {
            entity,
            keys: staged.keys,
            geo: staged.geo,
        };
        let TenantState {
            entities,
            by_type,
            by_value,
            by_geo,
            ..
        } = self;
        let id = staged.id.as_str();
        // One lookup that yields the stored key (shared with the index sets) and the entry.
        let Some((key, slot)) = entities
            .range_mut::<str, _>((Bound::Included(id), Bound::Included(id)))
            .next()
        else {
            let key: Id = Arc::from(id);
            self.index(&key, &new);
            self.entities.insert(key, new);
            return None;
        };
        // Written again: only the index entries that changed move.
        let (gone, came) = changed(&slot.entity.types, &new.entity.types);
        gone.into_iter().for_each(|t| remove_type(by_type, key, t));
        came.into_iter().for_each(|t| add_type(by_type, key, t));
        let (gone, came) = changed(&slot.keys, &new.keys);
        gone.into_iter().for_each(|k| remove_key(by_value, key, k));
        came.into_iter().for_each(|k| add_key(by_value, key, k));
        let (gone, came) = changed(&slot.geo, &new.geo);
        gone.into_iter().for_each(|g| remove_geo(by_geo, key, g));
        came.into_iter().for_each(|g| add_geo(by_geo, key, g));
        Some(std::mem::replace(slot, new))
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

    /// Ids a geo-query can match, if its envelope narrows it.
    fn geo_candidates(&self, query: &Query) -> Option<BTreeSet<Id>> {
        let g = query.geo.as_ref()?;
        let b = g.prefilter()?;
        let mut out = BTreeSet::new();
        if let Some(index) = self.by_geo.get(&g.geoproperty) {
            index.candidates(b.to_array(), &mut out);
        }
        Some(out)
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
            None => self.entities.values().map(|c| c.entity.clone()).collect(),
            Some(ids) => ids
                .iter()
                .filter_map(|i| self.entities.get(i).map(|c| c.entity.clone()))
                .collect(),
        }
    }
}

struct TenantSlot {
    loaded: tokio::sync::OnceCell<()>,
    /// Held while a write computes its result and queues it (see `Broker::modify`).
    writing: WriteTurn,
    state: RwLock<TenantState>,
}

/// The turn of one tenant's writes (see [`Tenant::writing`]).
///
/// Not tokio's mutex: that one is fair, handing a released turn to the first waiting task,
/// which holds it until its worker thread is woken and polls it. On a 2-core VM that wake-up
/// took longer than a create's whole turn, so creates queued behind idle turns (round 10 in
/// docs/bench-ngsi-ld.md). Here a released turn goes to whoever runs next. A turn is never
/// held across an await, so a writer that finds it held by a short write blocks its thread
/// for a few microseconds; one that finds a long write holding it (a batch computes for
/// milliseconds) waits without blocking, so its thread serves other requests meanwhile.
#[derive(Default)]
struct WriteTurn {
    lock: std::sync::Mutex<()>,
    /// The holder is a long write.
    long: std::sync::atomic::AtomicBool,
    /// Wakes the writers waiting for a long write's turn to end.
    released: tokio::sync::Notify,
}

/// Writes of at least this many entities hold the turn long enough that waiting writers
/// should not block their threads.
const LONG_WRITE: usize = 64;

/// A held turn; dropping it hands the turn on.
pub(crate) struct TurnGuard<'a> {
    guard: Option<std::sync::MutexGuard<'a, ()>>,
    turn: &'a WriteTurn,
}

impl Drop for TurnGuard<'_> {
    fn drop(&mut self) {
        self.turn.long.store(false, Ordering::Release);
        drop(self.guard.take());
        self.turn.released.notify_waiters();
    }
}

impl WriteTurn {
    async fn take(&self, entities: usize) -> TurnGuard<'_> {
        // A panic while the turn was held left nothing half-done for the next write to read:
        // a write's effects are staged only once computed.
        let guard = loop {
            match self.lock.try_lock() {
                Ok(guard) => break guard,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            if !self.long.load(Ordering::Acquire) {
                break self
                    .lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before looking again, so a release in between is not missed.
            released.as_mut().enable();
            if self.long.load(Ordering::Acquire) {
                released.await;
            }
        };
        self.long.store(entities >= LONG_WRITE, Ordering::Release);
        TurnGuard {
            guard: Some(guard),
            turn: self,
        }
    }
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
                        writing: WriteTurn::default(),
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
                    st.commit(Staged::new(r.id.clone(), Some(e)));
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

/// The committed entities `query` can match (a superset, ordered by id): narrowed by the
/// value index and the R-tree where the query allows, else by `ids` and `types`.
fn candidates(st: &TenantState, query: &Query, types: Option<&[String]>) -> Vec<Arc<Entity>> {
    let by_q = query.q.as_ref().and_then(|q| st.q_candidates(q));
    let by_geo = st.geo_candidates(query);
    let candidates = match (by_q, by_geo) {
        (Some(a), Some(b)) => Some(if a.len() <= b.len() {
            a.into_iter().filter(|i| b.contains(i)).collect()
        } else {
            b.into_iter().filter(|i| a.contains(i)).collect()
        }),
        (a, b) => a.or(b),
    };
    match candidates {
        Some(ids) => ids
            .iter()
            .filter_map(|i| st.entities.get(i).map(|c| c.entity.clone()))
            .collect(),
        None => st.filtered(&EntityFilter {
            ids: (!query.ids.is_empty()).then(|| query.ids.clone()),
            types: types.map(<[String]>::to_vec),
        }),
    }
}

/// What a write does to one entity: its new state (`None`: deleted), with its
/// value-index keys computed off the writer.
pub(crate) struct Staged {
    id: String,
    entity: Option<Arc<Entity>>,
    keys: Vec<(String, Key)>,
    geo: Vec<(String, Option<[f64; 4]>)>,
}

impl Staged {
    pub(crate) fn new(id: String, entity: Option<Entity>) -> Self {
        let keys = entity.as_ref().map(entity_keys).unwrap_or_default();
        let geo = entity.as_ref().map(entity_geo).unwrap_or_default();
        Staged {
            id,
            entity: entity.map(Arc::new),
            keys,
            geo,
        }
    }
}

/// Everything one write does.
pub(crate) type Written = Vec<Staged>;

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
        Ok(self.read()?.entities.get(id).map(|c| c.entity.clone()))
    }

    /// Serialises the writes of this tenant while they compute and queue; `entities` is the
    /// size of the write (see [`WriteTurn`]). The turn must not be held across an await.
    pub(crate) async fn writing(&self, entities: usize) -> TurnGuard<'_> {
        self.slot.writing.take(entities).await
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
        let pool = candidates(&*self.read()?, query, types);
        Ok(pool.into_iter().filter(|e| query.matches(e)).collect())
    }

    /// With [`Tenant::writing`] held: the current state of `ids` (queued but uncommitted
    /// writes included), shared with the index (no copies).
    pub(crate) fn current_shared(&self, ids: &[String]) -> BrokerResult<Vec<Option<SharedEntity>>> {
        let st = self.read()?;
        Ok(ids
            .iter()
            .map(|id| match st.overlay.get(id) {
                Some((_, e)) => e.clone(),
                None => st.entities.get(id.as_str()).map(|c| Arc::clone(&c.entity)),
            })
            .collect())
    }

    /// With [`Tenant::writing`] held: records a write's results as uncommitted; returns
    /// its sequence.
    pub(crate) fn stage(&self, written: &Written) -> BrokerResult<u64> {
        let seq = self.index.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut st = self.slot.state.write().map_err(|_| poisoned())?;
        for w in written {
            st.overlay.insert(w.id.clone(), (seq, w.entity.clone()));
        }
        Ok(seq)
    }

    /// On the writer, once the write's fate is known: commits or drops its results. Returns
    /// the entries the write replaced, for its caller to free.
    pub(crate) fn finish(&self, seq: u64, written: Written, committed: bool) -> Replaced {
        // A poisoned lock means a panic elsewhere; nothing sane is left to update.
        let Ok(mut st) = self.slot.state.write() else {
            return Replaced {
                _entries: Vec::new(),
            };
        };
        let mut replaced = Vec::with_capacity(if committed { written.len() } else { 0 });
        for w in written {
            if st.overlay.get(&w.id).is_some_and(|(s, _)| *s == seq) {
                st.overlay.remove(&w.id);
            }
            if committed {
                if w.entity.is_some() {
                    st.registered = true;
                }
                replaced.extend(st.commit(w));
            }
        }
        Replaced { _entries: replaced }
    }
}

/// The index entries a write replaced. They are handed back to the write's caller and
/// freed there: freeing a batch's old entities on the store's writer, which every write
/// waits for, was 15% of its time in batches that update (profiled).
pub(crate) struct Replaced {
    _entries: Vec<Committed>,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ngsi_ld::query::QueryParams;
    use ngsi_ld::{Context, CoreContext, parse_entity};
    use serde_json::json;

    fn state(entities: &[Value]) -> (TenantState, Context) {
        let ctx = Context::core(CoreContext::V1_9);
        let mut st = TenantState::default();
        for v in entities {
            let e = parse_entity(v, &ctx).unwrap();
            st.commit(Staged::new(e.id.clone(), Some(e)));
        }
        (st, ctx)
    }

    fn query_state(st: &TenantState, query: &Query, types: Option<&[String]>) -> Vec<Arc<Entity>> {
        candidates(st, query, types)
            .into_iter()
            .filter(|e| query.matches(e))
            .collect()
    }

    fn ids(v: &[Arc<Entity>]) -> Vec<String> {
        v.iter().map(|e| e.id.clone()).collect()
    }

    /// The indexed query answers exactly what a full scan with `Query::matches` answers.
    #[test]
    fn indexed_queries_answer_what_a_scan_answers() {
        let p = |v: Value| json!({"type": "Property", "value": v});
        let mut entities = Vec::new();
        for (i, v) in [
            json!(7),
            json!(7.0),
            json!(-0.0),
            json!(0),
            json!("7"),
            json!("7.0"),
            json!("abc"),
            json!(true),
            json!([1, 7, "x"]),
            json!([[7]]),
            json!({"@value": 7}),
            json!({"a": 7}),
            json!("2024-01-01T00:00:00Z"),
            json!("2024-01-01T00:00:00.000Z"),
            json!(null),
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = json!({"id": format!("urn:ngsi-ld:T:{i:02}"), "type": if i % 2 == 0 { "T" } else { "U" }});
            if !v.is_null() {
                e["speed"] = p(v);
            }
            e["location"] = json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [(i % 5) as f64, 1.0]}});
            e["rel"] =
                json!({"type": "Relationship", "object": format!("urn:ngsi-ld:R:{}", i % 3)});
            entities.push(e);
        }
        entities.push(json!({"id": "urn:ngsi-ld:T:99", "type": "T",
            "speed": [{"type": "Property", "value": 3}, {"type": "Property", "value": 7, "datasetId": "urn:d:1"}],
            "location": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [[[0.5, 0.5], [3.5, 0.5], [3.5, 3.5], [0.5, 0.5]]]}}}));
        let (mut st, ctx) = state(&entities);
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<(&'a str, &'a str, &'a str)>,
        );
        let cases: &[Case<'_>] = &[
            (None, Some("speed==7"), None),
            (Some("T"), Some("speed==7"), None),
            (None, Some("speed==0"), None),
            (None, Some("speed==\"7\""), None),
            (None, Some("speed==7.0"), None),
            (None, Some("speed==abc"), None),
            (None, Some("speed==true"), None),
            (None, Some("speed==1,x"), None),
            (None, Some("speed==2024-01-01T00:00:00Z"), None),
            (None, Some("speed==7;rel==urn:ngsi-ld:R:1"), None),
            (None, Some("speed==7|speed==abc"), None),
            (None, Some("speed==7|speed>5"), None),
            (None, Some("speed==1..8"), None),
            (None, Some("speed!=7"), None),
            (None, Some("speed[a]==7"), None),
            (None, Some("rel==urn:ngsi-ld:R:2"), None),
            (None, Some("nothing==7"), None),
            (
                Some("T,U"),
                None,
                Some(("near;maxDistance==200000", "Point", "[2.0,1.0]")),
            ),
            (
                None,
                Some("speed==7"),
                Some((
                    "within",
                    "Polygon",
                    "[[[-0.5,0],[4.5,0],[4.5,2],[-0.5,2],[-0.5,0]]]",
                )),
            ),
            (Some("T"), None, Some(("intersects", "Point", "[1.0,1.0]"))),
            (Some("T"), None, Some(("disjoint", "Point", "[1.0,1.0]"))),
        ];
        let check = |st: &TenantState, label: &str| {
            for (types, q, geo) in cases {
                let query = Query::parse(
                    &QueryParams {
                        types: *types,
                        q: *q,
                        georel: geo.map(|g| g.0),
                        geometry: geo.map(|g| g.1),
                        coordinates: geo.map(|g| g.2),
                        ..QueryParams::default()
                    },
                    &ctx,
                )
                .unwrap();
                let scan: Vec<Arc<Entity>> = st
                    .entities
                    .values()
                    .map(|c| c.entity.clone())
                    .filter(|e| query.matches(e))
                    .collect();
                let tenant_types: Option<Vec<String>> =
                    types.map(|t| t.split(',').map(|t| ctx.expand_term(t).unwrap()).collect());
                let indexed = query_state(st, &query, tenant_types.as_deref());
                assert_eq!(
                    ids(&indexed),
                    ids(&scan),
                    "{label}: {types:?} {q:?} {geo:?}"
                );
            }
        };
        check(&st, "fresh");
        assert!(
            !ids(&query_state(
                &st,
                &Query::parse(
                    &QueryParams {
                        q: Some("speed==7"),
                        ..QueryParams::default()
                    },
                    &ctx
                )
                .unwrap(),
                None
            ))
            .is_empty()
        );
        // Overwrites and deletions keep the indexes in step.
        let changed = parse_entity(
            &json!({"id": "urn:ngsi-ld:T:00", "type": "U", "speed": p(json!("abc")),
                    "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [50.0, 50.0]}}}),
            &ctx,
        )
        .unwrap();
        st.commit(Staged::new("urn:ngsi-ld:T:00".into(), Some(changed)));
        st.commit(Staged::new("urn:ngsi-ld:T:04".into(), None));
        check(&st, "changed");
        assert!(st.by_type.values().all(|s| !s.contains("urn:ngsi-ld:T:04")));
    }

    /// The indexes after `st`'s writes equal the indexes built from scratch from its entities.
    fn assert_rebuilt_equal(st: &TenantState, label: &str) {
        let mut fresh = TenantState::default();
        for c in st.entities.values() {
            fresh.commit(Staged::new(c.entity.id.clone(), Some((*c.entity).clone())));
        }
        assert_eq!(st.by_type, fresh.by_type, "{label}: types");
        assert_eq!(st.by_value, fresh.by_value, "{label}: values");
        /// Per GeoProperty: the R-tree's size, the ids per envelope, the ids without one.
        type GeoView = BTreeMap<String, (usize, Vec<([u64; 4], BTreeSet<Id>)>, BTreeSet<Id>)>;
        let geo = |st: &TenantState| -> GeoView {
            st.by_geo
                .iter()
                .map(|(name, g)| {
                    let mut ids: Vec<_> = g.ids.iter().map(|(b, s)| (*b, s.clone())).collect();
                    ids.sort();
                    (name.clone(), (g.tree.size(), ids, g.unbounded.clone()))
                })
                .collect()
        };
        assert_eq!(geo(st), geo(&fresh), "{label}: geo");
    }

    /// An entity written again moves only its changed index entries; after every kind of
    /// change the indexes are exactly those built from scratch (no stale id, no empty set).
    #[test]
    fn rewrites_keep_the_indexes_equal_to_a_rebuild() {
        let ctx = Context::core(CoreContext::V1_9);
        let p = |v: Value| json!({"type": "Property", "value": v});
        let point = |x: f64| json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [x, 1.0]}});
        let entity = |v: Value| parse_entity(&v, &ctx).unwrap();
        let mut st = TenantState::default();
        let base = |i: usize| {
            json!({"id": format!("urn:ngsi-ld:V:{i}"), "type": "V", "speed": p(json!(i % 3)),
                   "plate": p(json!(format!("B-{i}"))), "location": point(i as f64)})
        };
        for i in 0..6 {
            st.commit(Staged::new(
                format!("urn:ngsi-ld:V:{i}"),
                Some(entity(base(i))),
            ));
        }
        assert_rebuilt_equal(&st, "loaded");
        let id = "urn:ngsi-ld:V:1".to_owned();
        let steps: Vec<(&str, Value)> = vec![
            ("same again", base(1)),
            (
                "value changed",
                json!({"id": id, "type": "V", "speed": p(json!(2)), "plate": p(json!("B-1")), "location": point(1.0)}),
            ),
            (
                "value to one another entity holds alone",
                json!({"id": id, "type": "V", "speed": p(json!(2)), "plate": p(json!("B-4")), "location": point(1.0)}),
            ),
            (
                "types changed",
                json!({"id": id, "type": ["W", "V"], "speed": p(json!(2)), "plate": p(json!("B-4")), "location": point(1.0)}),
            ),
            (
                "geometry moved onto another's",
                json!({"id": id, "type": ["W", "V"], "speed": p(json!(2)), "plate": p(json!("B-4")), "location": point(3.0)}),
            ),
            (
                "attributes reordered",
                json!({"id": id, "type": ["W", "V"], "plate": p(json!("B-4")), "speed": p(json!(2)), "location": point(3.0)}),
            ),
            (
                "values swapped between attributes",
                json!({"id": id, "type": ["W", "V"], "plate": p(json!(2)), "speed": p(json!("B-4")), "location": point(3.0)}),
            ),
            (
                "attribute added",
                json!({"id": id, "type": "V", "plate": p(json!(2)), "speed": p(json!("B-4")), "location": point(3.0), "extra": p(json!([1, 2, "x"]))}),
            ),
            (
                "array value changed in place",
                json!({"id": id, "type": "V", "plate": p(json!(2)), "speed": p(json!("B-4")), "location": point(3.0), "extra": p(json!([2, 1, "y"]))}),
            ),
            ("attributes removed", json!({"id": id, "type": "V"})),
            ("back to the start", base(1)),
        ];
        for (label, v) in steps {
            let old = st.commit(Staged::new(id.clone(), Some(entity(v))));
            assert!(old.is_some(), "{label}: the entry is replaced");
            assert_rebuilt_equal(&st, label);
        }
        assert!(st.commit(Staged::new(id.clone(), None)).is_some());
        assert_rebuilt_equal(&st, "deleted");
        assert!(st.commit(Staged::new(id.clone(), None)).is_none());
        assert!(st.by_type.values().all(|s| !s.contains(id.as_str())));
    }
}
