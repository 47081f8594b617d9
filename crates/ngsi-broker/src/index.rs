//! The broker's in-memory entity index, one per store (kept in the store's
//! [`index_slot`](store::NgsiStore::index_slot), so every broker over one store shares it).
//!
//! SQLite stays the durable source of truth; the index holds, per tenant, every committed
//! entity decoded once (`id -> Arc<Entity>`, ordered by id), the entities of each type, and
//! the entities holding each scalar attribute value (for `attr==value` terms of `q`) and an
//! R-tree of the envelopes of each GeoProperty (for geo-queries). Those sets hold an entity's
//! *slot*, a small number the tenant gives it while it exists, in compressed bitmaps: adding
//! to a set of 100,000 compares integers, where a set of ids would compare strings behind
//! pointers, and a set of one entity (a unique value) costs a few bytes. Queries turn a set
//! back into id order by walking the ordered map when the set is a large part of it, and by
//! sorting the few entities otherwise. A tenant is
//! loaded from the store on its first use; from then on every write of every broker goes
//! through [`Broker::modify`](crate::Broker::modify), which keeps the index in step:
//!
//! - the writes of one tenant take turns ([`Tenant::writing`]); in its turn a write's
//!   read-modify-write callback reads the current entities from the index (the store does
//!   not read or decode them), puts its results in a per-tenant *overlay* of written but not
//!   yet committed entities, so that the next write sees them even before they commit, and
//!   queues its store write on the store's single writer;
//! - once the transaction's fate is known, the store runs the write's commit hook on the
//!   writer, which only records the fate in commit order ([`Tenant::finished`]); the write's
//!   caller applies the recorded fates, in that order, before it answers
//!   ([`Tenant::apply_finished`]), and a reader applies any it finds first: on commit the
//!   results move to the committed map and the indexes, otherwise they are dropped from the
//!   overlay. Applying them on the writer, which every write waits for, was an eighth of its
//!   work in batch upserts, and with two cores the writer bounds their rate.
//!
//! Readers see only the committed map, so a reader never sees a write that could still be
//! lost, and a write acknowledged to its caller is visible to every later read (its caller
//! applied its fate, and every fate recorded before it, first).
//! A loaded tenant does not see writes that bypass the brokers (e.g. a direct
//! `NgsiStore::delete_entities`); every NGSI-LD write of the platform goes through
//! `Broker::modify`. Memory: every entity of a used tenant stays decoded in memory.
//! Query semantics stay those of [`ngsi_ld::query::Query::matches`]: the value index only
//! narrows the candidates, each of which is then matched in full.

use crate::error::{BrokerError, BrokerResult};
use foldhash::{HashMap, HashMapExt};
use ngsi_ld::Entity;
use ngsi_ld::query::{BoolExpr, CompareOp, Literal, QExpr, QTerm, QValue, Query};
use roaring::RoaringBitmap;
use rstar::primitives::Rectangle;
use rstar::{AABB, RTree};
use serde_json::Value;
use std::collections::{BTreeMap, btree_map};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use store::{EntityFilter, NgsiStore, TenantScope};

/// An entity as the index holds it, shared with readers without copying.
type SharedEntity = Arc<Entity>;

/// Entities by their slots (see [`TenantState::slots`]).
type Slots = RoaringBitmap;

/// The geo index of one GeoProperty: an R-tree of the distinct envelopes, the entities per
/// envelope (many entities often share one, e.g. a point), and the entities whose geometry
/// has no envelope.
#[derive(Default)]
struct GeoIndex {
    tree: RTree<Rectangle<[f64; 2]>>,
    ids: HashMap<[u64; 4], Slots>,
    unbounded: Slots,
}

fn bits(b: [f64; 4]) -> [u64; 4] {
    b.map(f64::to_bits)
}

fn rect(b: [f64; 4]) -> Rectangle<[f64; 2]> {
    Rectangle::from_corners([b[0], b[1]], [b[2], b[3]])
}

impl GeoIndex {
    fn insert(&mut self, slot: u32, bbox: Option<[f64; 4]>) {
        let Some(b) = bbox else {
            self.unbounded.insert(slot);
            return;
        };
        match self.ids.get_mut(&bits(b)) {
            Some(set) => {
                set.insert(slot);
            }
            None => {
                self.tree.insert(rect(b));
                self.ids.insert(bits(b), Slots::from_iter([slot]));
            }
        }
    }

    fn remove(&mut self, slot: u32, bbox: Option<[f64; 4]>) {
        let Some(b) = bbox else {
            self.unbounded.remove(slot);
            return;
        };
        if let Some(set) = self.ids.get_mut(&bits(b)) {
            set.remove(slot);
            if set.is_empty() {
                self.ids.remove(&bits(b));
                self.tree.remove(&rect(b));
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.unbounded.is_empty()
    }

    /// Entities whose envelope intersects `b`, and those without an envelope.
    fn candidates(&self, b: [f64; 4], out: &mut Slots) {
        let envelope = AABB::from_corners([b[0], b[1]], [b[2], b[3]]);
        for r in self.tree.locate_in_envelope_intersecting(&envelope) {
            let (lo, hi) = (r.lower(), r.upper());
            if let Some(set) = self.ids.get(&bits([lo[0], lo[1], hi[0], hi[1]])) {
                *out |= set;
            }
        }
        *out |= &self.unbounded;
    }
}

/// An attribute of an entity by its position in the entity's attribute map. The index's
/// entries of an entity name attributes so, and resolve the name through the entity they keep:
/// a copy of every indexed attribute's expanded name was a heap string per entry.
type AttrPos = u32;

/// The expanded name of the attribute at `pos` of `e`.
fn name_of(e: &Entity, pos: AttrPos) -> &str {
    e.attributes
        .get_index(pos as usize)
        .map_or("", |(name, _)| name.as_str())
}

/// The envelopes of an entity's valid GeoProperty values, per attribute (`None`: a
/// valid geometry without an envelope, e.g. an empty collection).
fn entity_geo(e: &Entity) -> Vec<(AttrPos, Option<[f64; 4]>)> {
    let mut out = Vec::new();
    for (pos, instances) in (0..).zip(e.attributes.values()) {
        for instance in instances {
            if let ngsi_ld::AttributeValue::GeoProperty(v) = &instance.value
                && let Ok(g) = ngsi_ld::geospatial::parse_geojson(v)
            {
                // -0 as 0, so that equal envelopes have equal bits.
                let bbox = ngsi_ld::geospatial::bounding_box(&g)
                    .map(|b| b.to_array().map(|x| if x == 0.0 { 0.0 } else { x }));
                if !out.contains(&(pos, bbox)) {
                    out.push((pos, bbox));
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
fn entity_keys(e: &Entity) -> Vec<(AttrPos, Key)> {
    let mut out: Vec<(AttrPos, Key)> = Vec::new();
    let mut keys = Vec::new();
    for (pos, instances) in (0..).zip(e.attributes.values()) {
        keys.clear();
        for instance in instances {
            let v = ngsi_ld::query::q::attribute_value_shared(instance);
            match &*v {
                Value::Array(items) => {
                    for item in items {
                        element_keys(unwrap_typed(item), &mut keys);
                    }
                }
                other => element_keys(unwrap_typed(other), &mut keys),
            }
        }
        for k in keys.drain(..) {
            if !out.iter().any(|(p, o)| *p == pos && *o == k) {
                out.push((pos, k));
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

/// A committed entity with its slot and its value-index keys.
struct Committed {
    entity: Arc<Entity>,
    slot: u32,
    keys: Vec<(AttrPos, Key)>,
    geo: Vec<(AttrPos, Option<[f64; 4]>)>,
}

/// One tenant's committed entities and indexes, and the overlay of uncommitted writes.
#[derive(Default)]
struct TenantState {
    /// Whether the tenant ever received data (`NgsiStore::tenant_exists`).
    registered: bool,
    entities: BTreeMap<String, Committed>,
    /// Slot -> committed entity. A slot is taken when an id is first committed and given
    /// back (to `free`) when it is deleted, once no index set holds it any more.
    slots: Vec<Option<Arc<Entity>>>,
    free: Vec<u32>,
    by_type: HashMap<String, Slots>,
    by_value: HashMap<String, HashMap<Key, Slots>>,
    /// Per GeoProperty name: the envelopes of its valid geometries, and the entities whose
    /// geometry has no envelope.
    by_geo: HashMap<String, GeoIndex>,
    /// Written but not yet committed: id -> (write sequence, entity or deletion).
    overlay: HashMap<String, (u64, Option<Arc<Entity>>)>,
}

type TypeIndex = HashMap<String, Slots>;
type ValueIndex = HashMap<String, HashMap<Key, Slots>>;
type GeoIndexes = HashMap<String, GeoIndex>;

fn add_type(by_type: &mut TypeIndex, slot: u32, t: &str) {
    if let Some(set) = by_type.get_mut(t) {
        set.insert(slot);
    } else {
        by_type.insert(t.to_owned(), Slots::from_iter([slot]));
    }
}

fn remove_type(by_type: &mut TypeIndex, slot: u32, t: &str) {
    if let Some(set) = by_type.get_mut(t) {
        set.remove(slot);
        if set.is_empty() {
            by_type.remove(t);
        }
    }
}

fn add_key(by_value: &mut ValueIndex, slot: u32, name: &str, key: &Key) {
    let values = match by_value.get_mut(name) {
        Some(v) => v,
        None => by_value.entry(name.to_owned()).or_default(),
    };
    match values.get_mut(key) {
        Some(set) => {
            set.insert(slot);
        }
        None => {
            values.insert(key.clone(), Slots::from_iter([slot]));
        }
    }
}

fn remove_key(by_value: &mut ValueIndex, slot: u32, name: &str, key: &Key) {
    if let Some(values) = by_value.get_mut(name) {
        if let Some(set) = values.get_mut(key) {
            set.remove(slot);
            if set.is_empty() {
                values.remove(key);
            }
        }
        if values.is_empty() {
            by_value.remove(name);
        }
    }
}

fn add_geo(by_geo: &mut GeoIndexes, slot: u32, name: &str, bbox: Option<[f64; 4]>) {
    match by_geo.get_mut(name) {
        Some(g) => g.insert(slot, bbox),
        None => by_geo
            .entry(name.to_owned())
            .or_default()
            .insert(slot, bbox),
    }
}

fn remove_geo(by_geo: &mut GeoIndexes, slot: u32, name: &str, bbox: Option<[f64; 4]>) {
    if let Some(g) = by_geo.get_mut(name) {
        g.remove(slot, bbox);
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
/// Entries are the same when `same` says so (attribute positions compare by the names they
/// stand for).
fn changed<'a, T>(
    old: &'a [T],
    new: &'a [T],
    same: impl Fn(&T, &T) -> bool,
) -> (Vec<&'a T>, Vec<&'a T>) {
    if old.len() != new.len() {
        return (old.iter().collect(), new.iter().collect());
    }
    old.iter().zip(new).filter(|(o, n)| !same(o, n)).unzip()
}

/// Adds a committed entity's entries to the type, value and geo indexes.
fn index_entity(
    by_type: &mut TypeIndex,
    by_value: &mut ValueIndex,
    by_geo: &mut GeoIndexes,
    c: &Committed,
) {
    for t in &c.entity.types {
        add_type(by_type, c.slot, t);
    }
    for (pos, key) in &c.keys {
        add_key(by_value, c.slot, name_of(&c.entity, *pos), key);
    }
    for (pos, bbox) in &c.geo {
        add_geo(by_geo, c.slot, name_of(&c.entity, *pos), *bbox);
    }
}

/// A slot for a newly committed entity.
fn take_slot(
    slots: &mut Vec<Option<Arc<Entity>>>,
    free: &mut Vec<u32>,
    entity: &Arc<Entity>,
) -> u32 {
    if let Some(slot) = free.pop() {
        slots[slot as usize] = Some(Arc::clone(entity));
        return slot;
    }
    slots.push(Some(Arc::clone(entity)));
    // An entity takes kilobytes of memory, so a tenant never holds 2^32 of them.
    u32::try_from(slots.len() - 1).unwrap_or(u32::MAX)
}

impl TenantState {
    fn unindex(&mut self, old: &Committed) {
        for t in &old.entity.types {
            remove_type(&mut self.by_type, old.slot, t);
        }
        for (pos, bbox) in &old.geo {
            remove_geo(
                &mut self.by_geo,
                old.slot,
                name_of(&old.entity, *pos),
                *bbox,
            );
        }
        for (pos, key) in &old.keys {
            remove_key(
                &mut self.by_value,
                old.slot,
                name_of(&old.entity, *pos),
                key,
            );
        }
    }

    /// Makes `staged` the committed state of its id. Returns the entry it replaces, for the
    /// caller to drop once it has released the lock (a batch's old entities are thousands of
    /// allocations).
    fn commit(&mut self, staged: Staged) -> Option<Committed> {
        let Some(entity) = staged.entity else {
            let old = self.entities.remove(staged.id.as_str())?;
            self.unindex(&old);
            self.slots[old.slot as usize] = None;
            self.free.push(old.slot);
            return Some(old);
        };
        let TenantState {
            entities,
            slots,
            free,
            by_type,
            by_value,
            by_geo,
            ..
        } = self;
        // One search of the id map, whether the id is new or not (a batch of new entities
        // searched it twice per entity: a miss, then the insert).
        let entry = match entities.entry(staged.id) {
            btree_map::Entry::Occupied(entry) => entry.into_mut(),
            btree_map::Entry::Vacant(vacant) => {
                let new = Committed {
                    slot: take_slot(slots, free, &entity),
                    entity,
                    keys: staged.keys,
                    geo: staged.geo,
                };
                index_entity(by_type, by_value, by_geo, &new);
                vacant.insert(new);
                return None;
            }
        };
        let new = Committed {
            entity,
            slot: entry.slot,
            keys: staged.keys,
            geo: staged.geo,
        };
        slots[new.slot as usize] = Some(Arc::clone(&new.entity));
        // Written again: only the index entries that changed move.
        let at = new.slot;
        let (old_e, new_e) = (&*entry.entity, &*new.entity);
        let (gone, came) = changed(&old_e.types, &new_e.types, PartialEq::eq);
        gone.into_iter().for_each(|t| remove_type(by_type, at, t));
        came.into_iter().for_each(|t| add_type(by_type, at, t));
        let (gone, came) = changed(&entry.keys, &new.keys, |(p, k), (q, l)| {
            k == l && name_of(old_e, *p) == name_of(new_e, *q)
        });
        gone.into_iter()
            .for_each(|(p, k)| remove_key(by_value, at, name_of(old_e, *p), k));
        came.into_iter()
            .for_each(|(p, k)| add_key(by_value, at, name_of(new_e, *p), k));
        let (gone, came) = changed(&entry.geo, &new.geo, |(p, b), (q, c)| {
            b == c && name_of(old_e, *p) == name_of(new_e, *q)
        });
        gone.into_iter()
            .for_each(|(p, b)| remove_geo(by_geo, at, name_of(old_e, *p), *b));
        came.into_iter()
            .for_each(|(p, b)| add_geo(by_geo, at, name_of(new_e, *p), *b));
        Some(std::mem::replace(entry, new))
    }

    /// The entities in `set`, ordered by id.
    fn ordered(&self, set: &Slots) -> Vec<Arc<Entity>> {
        // Sorting k entities costs about k log k id comparisons, walking the map one bit
        // test per entity: walk when the set is more than a small part of the map.
        if set.len().saturating_mul(16) >= self.entities.len() as u64 {
            return self
                .entities
                .values()
                .filter(|c| set.contains(c.slot))
                .map(|c| Arc::clone(&c.entity))
                .collect();
        }
        let mut out: Vec<Arc<Entity>> = set
            .iter()
            .filter_map(|s| self.slots.get(s as usize)?.clone())
            .collect();
        out.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Entities a `q` expression can match, if the value index narrows it.
    fn q_candidates(&self, expr: &QExpr) -> Option<Slots> {
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
                let mut out = Slots::new();
                for k in keys {
                    if let Some(set) = values.and_then(|v| v.get(&k)) {
                        out |= set;
                    }
                }
                Some(out)
            }
            BoolExpr::Atom(_) => None,
            BoolExpr::And(items) => items
                .iter()
                .filter_map(|i| self.q_candidates(i))
                .reduce(|a, b| a & b),
            BoolExpr::Or(items) => {
                let mut out = Slots::new();
                for i in items {
                    out |= self.q_candidates(i)?;
                }
                Some(out)
            }
        }
    }

    /// Entities a geo-query can match, if its envelope narrows it.
    fn geo_candidates(&self, query: &Query) -> Option<Slots> {
        let g = query.geo.as_ref()?;
        let b = g.prefilter()?;
        let mut out = Slots::new();
        if let Some(index) = self.by_geo.get(&g.geoproperty) {
            index.candidates(b.to_array(), &mut out);
        }
        Some(out)
    }

    /// Entities with any of `types`.
    fn typed(&self, types: &[String]) -> Slots {
        let mut out = Slots::new();
        for t in types {
            if let Some(set) = self.by_type.get(t) {
                out |= set;
            }
        }
        out
    }

    /// Committed entities matching `filter` (as `NgsiStore::entities`), ordered by id.
    fn filtered(&self, filter: &EntityFilter) -> Vec<Arc<Entity>> {
        match (&filter.ids, &filter.types) {
            (None, None) => self.entities.values().map(|c| c.entity.clone()).collect(),
            (None, Some(types)) => self.ordered(&self.typed(types)),
            (Some(ids), types) => {
                let typed = types.as_deref().map(|t| self.typed(t));
                let mut out: Vec<&Committed> = ids
                    .iter()
                    .filter_map(|i| self.entities.get(i.as_str()))
                    .filter(|c| typed.as_ref().is_none_or(|t| t.contains(c.slot)))
                    .collect();
                out.sort_unstable_by(|a, b| a.entity.id.cmp(&b.entity.id));
                out.dedup_by_key(|c| c.slot);
                out.into_iter().map(|c| Arc::clone(&c.entity)).collect()
            }
        }
    }
}

struct TenantSlot {
    loaded: tokio::sync::OnceCell<()>,
    /// Held while a write computes its result and queues it (see `Broker::modify`).
    writing: WriteTurn,
    state: RwLock<TenantState>,
    /// The fates of writes the writer has run and nobody has applied to `state` yet, in the
    /// order the writer ran them.
    finished: Mutex<Vec<Fate>>,
    /// `finished` holds something (read without its lock).
    unapplied: AtomicBool,
    /// Held while fates are applied, so that they are applied in the order they were
    /// recorded: whoever takes it next applies only fates recorded later.
    applying: tokio::sync::Mutex<()>,
}

impl TenantSlot {
    fn new() -> Self {
        TenantSlot {
            loaded: tokio::sync::OnceCell::new(),
            writing: WriteTurn::default(),
            state: RwLock::new(TenantState::default()),
            finished: Mutex::new(Vec::new()),
            unapplied: AtomicBool::new(false),
            applying: tokio::sync::Mutex::new(()),
        }
    }
}

/// A write the writer has run: its sequence, its results, and whether it committed.
struct Fate {
    seq: u64,
    written: Written,
    committed: bool,
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
                .or_insert_with(|| Arc::new(TenantSlot::new()))
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
        (Some(a), Some(b)) => Some(a & b),
        (a, b) => a.or(b),
    };
    match candidates {
        Some(set) => st.ordered(&set),
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
    keys: Vec<(AttrPos, Key)>,
    geo: Vec<(AttrPos, Option<[f64; 4]>)>,
}

impl Staged {
    pub(crate) fn new(id: String, entity: Option<Entity>) -> Self {
        Self::shared(id, entity.map(Arc::new))
    }

    /// [`Staged::new`] for an entity already shared.
    pub(crate) fn shared(id: String, entity: Option<Arc<Entity>>) -> Self {
        let keys = entity.as_deref().map(entity_keys).unwrap_or_default();
        let geo = entity.as_deref().map(entity_geo).unwrap_or_default();
        Staged {
            id,
            entity,
            keys,
            geo,
        }
    }
}

/// Everything one write does.
pub(crate) type Written = Vec<Staged>;

impl Tenant {
    /// The committed state, with the fates recorded so far applied (unless another thread is
    /// applying them right now: the state's lock then waits for it).
    fn read(&self) -> BrokerResult<std::sync::RwLockReadGuard<'_, TenantState>> {
        if self.slot.unapplied.load(Ordering::Acquire)
            && let Ok(turn) = self.slot.applying.try_lock()
        {
            drop(self.apply_recorded());
            drop(turn);
        }
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

    /// On the writer, once the write's fate is known: records it, behind every fate recorded
    /// before (the writer runs writes in sequence). Nothing of the index is touched here.
    pub(crate) fn finished(&self, seq: u64, written: Written, committed: bool) {
        let mut finished = self
            .slot
            .finished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        finished.push(Fate {
            seq,
            written,
            committed,
        });
        self.slot.unapplied.store(true, Ordering::Release);
    }

    /// Applies every fate recorded so far (those of the caller's own write among them, once
    /// the store has answered it), in order, after whatever another thread is applying. Returns
    /// the entries they replaced, for the caller to free.
    pub(crate) async fn apply_finished(&self) -> Replaced {
        let _turn = self.slot.applying.lock().await;
        self.apply_recorded()
    }

    /// With `applying` held: takes the recorded fates and applies them.
    fn apply_recorded(&self) -> Replaced {
        let fates = {
            let mut finished = self
                .slot
                .finished
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.slot.unapplied.store(false, Ordering::Release);
            std::mem::take(&mut *finished)
        };
        let mut replaced = Vec::new();
        if fates.is_empty() {
            return Replaced { _entries: replaced };
        }
        // A poisoned lock means a panic elsewhere; nothing sane is left to update.
        let Ok(mut st) = self.slot.state.write() else {
            return Replaced { _entries: replaced };
        };
        for Fate {
            seq,
            written,
            committed,
        } in fates
        {
            if committed {
                replaced.reserve(written.len());
            }
            for w in written {
                // One lookup: the entry is put back in the rare case that a later write
                // staged the same id since.
                if let Some((id, staged)) = st.overlay.remove_entry(&w.id)
                    && staged.0 != seq
                {
                    st.overlay.insert(id, staged);
                }
                if committed {
                    if w.entity.is_some() {
                        st.registered = true;
                    }
                    replaced.extend(st.commit(w));
                }
            }
        }
        Replaced { _entries: replaced }
    }
}

/// The index entries applied writes replaced. They are freed by whoever applied the writes
/// (a write's caller or a reader), never on the store's writer: freeing a batch's old
/// entities there, which every write waits for, was 15% of its time in batches that update
/// (profiled).
pub(crate) struct Replaced {
    _entries: Vec<Committed>,
}

/// The storage record of an entity whose encoded text is `doc`.
pub(crate) fn record(e: &Entity, doc: String) -> store::EntityRecord {
    store::EntityRecord {
        id: e.id.clone(),
        types: e.types.clone(),
        doc,
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
    use std::collections::BTreeSet;

    fn state(entities: &[Value]) -> (TenantState, Context) {
        let ctx = Context::core(CoreContext::V1_9);
        let mut st = TenantState::default();
        // Committed in reverse, so that slot order is not id order.
        for v in entities.iter().rev() {
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

    fn ids_of(v: &[Arc<Entity>]) -> Vec<String> {
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
        // Entities of another type, so that most sets are a small part of the tenant (their
        // entities are sorted by id) and the sets of this type a large one (the ordered map
        // is walked).
        for i in 0..400 {
            entities.push(json!({"id": format!("urn:ngsi-ld:F:{i:03}"), "type": "F",
                "speed": p(json!(i % 200))}));
        }
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
            (Some("F"), None, None),
            (Some("T"), None, None),
            (Some("F,T"), Some("speed==7"), None),
            (None, Some("speed==7;speed==7.0"), None),
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
                    ids_of(&indexed),
                    ids_of(&scan),
                    "{label}: {types:?} {q:?} {geo:?}"
                );
            }
        };
        check(&st, "fresh");
        assert!(
            !ids_of(&query_state(
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
        assert!(
            types_view(&st)
                .values()
                .all(|s| !s.contains("urn:ngsi-ld:T:04"))
        );
        // Ids only, with and without types: ordered, repeats once, unknown ids left out.
        let listed = |ids: &[&str], types: Option<&[&str]>| {
            let filter = EntityFilter {
                ids: Some(ids.iter().map(|i| (*i).to_owned()).collect()),
                types: types.map(|t| t.iter().map(|t| ctx.expand_term(t).unwrap()).collect()),
            };
            ids_of(&st.filtered(&filter))
        };
        assert_eq!(
            listed(
                &[
                    "urn:ngsi-ld:T:03",
                    "urn:ngsi-ld:T:01",
                    "urn:ngsi-ld:T:03",
                    "urn:x"
                ],
                None
            ),
            ["urn:ngsi-ld:T:01", "urn:ngsi-ld:T:03"]
        );
        assert_eq!(
            listed(
                &["urn:ngsi-ld:T:03", "urn:ngsi-ld:T:02", "urn:ngsi-ld:T:01"],
                Some(&["T"])
            ),
            ["urn:ngsi-ld:T:02"]
        );
    }

    /// A set of slots as the ids of its entities.
    fn slot_ids(st: &TenantState, set: &Slots) -> BTreeSet<String> {
        set.iter()
            .map(|s| st.slots[s as usize].as_ref().unwrap().id.clone())
            .collect()
    }

    fn types_view(st: &TenantState) -> BTreeMap<String, BTreeSet<String>> {
        st.by_type
            .iter()
            .map(|(t, set)| (t.clone(), slot_ids(st, set)))
            .collect()
    }

    /// A slot belongs to exactly the live entity that holds it; the others are free.
    fn assert_slots_consistent(st: &TenantState, label: &str) {
        for c in st.entities.values() {
            let held = st.slots[c.slot as usize].as_ref();
            assert!(
                held.is_some_and(|e| Arc::ptr_eq(e, &c.entity)),
                "{label}: slot of {}",
                c.entity.id
            );
        }
        let live = st.slots.iter().filter(|s| s.is_some()).count();
        assert_eq!(live, st.entities.len(), "{label}: live slots");
        assert_eq!(live + st.free.len(), st.slots.len(), "{label}: free slots");
    }

    /// The indexes after `st`'s writes equal the indexes built from scratch from its entities.
    fn assert_rebuilt_equal(st: &TenantState, label: &str) {
        let mut fresh = TenantState::default();
        for c in st.entities.values() {
            fresh.commit(Staged::new(c.entity.id.clone(), Some((*c.entity).clone())));
        }
        assert_slots_consistent(st, label);
        assert_eq!(types_view(st), types_view(&fresh), "{label}: types");
        type ValueView = BTreeMap<String, Vec<(String, BTreeSet<String>)>>;
        let values = |st: &TenantState| -> ValueView {
            st.by_value
                .iter()
                .map(|(name, keys)| {
                    let mut keys: Vec<_> = keys
                        .iter()
                        .map(|(k, set)| (format!("{k:?}"), slot_ids(st, set)))
                        .collect();
                    keys.sort();
                    (name.clone(), keys)
                })
                .collect()
        };
        assert_eq!(values(st), values(&fresh), "{label}: values");
        /// Per GeoProperty: the R-tree's size, the ids per envelope, the ids without one.
        type GeoView =
            BTreeMap<String, (usize, Vec<([u64; 4], BTreeSet<String>)>, BTreeSet<String>)>;
        let geo = |st: &TenantState| -> GeoView {
            st.by_geo
                .iter()
                .map(|(name, g)| {
                    let mut ids: Vec<_> =
                        g.ids.iter().map(|(b, s)| (*b, slot_ids(st, s))).collect();
                    ids.sort();
                    (
                        name.clone(),
                        (g.tree.size(), ids, slot_ids(st, &g.unbounded)),
                    )
                })
                .collect()
        };
        assert_eq!(geo(st), geo(&fresh), "{label}: geo");
        // No empty set is left behind.
        assert!(st.by_type.values().all(|s| !s.is_empty()), "{label}");
        assert!(
            st.by_value
                .values()
                .flat_map(HashMap::values)
                .all(|s| !s.is_empty()),
            "{label}"
        );
    }

    fn tenant() -> Tenant {
        let slot = Arc::new(TenantSlot::new());
        Tenant {
            slot,
            index: Arc::new(Index {
                tenants: Mutex::new(HashMap::new()),
                seq: AtomicU64::new(0),
            }),
        }
    }

    /// Fates recorded on the writer are applied in the order recorded: by a reader that comes
    /// first (a write whose caller went away), or by a write's caller; a rolled-back write
    /// leaves nothing behind; nothing is visible to readers before it is applied.
    #[tokio::test]
    async fn recorded_fates_are_applied_in_order_by_readers_or_callers() {
        let ctx = Context::core(CoreContext::V1_9);
        let entity = |speed: i64| {
            parse_entity(
                &json!({"id": "urn:ngsi-ld:V:1", "type": "V", "speed": speed}),
                &ctx,
            )
            .unwrap()
        };
        let speed = |t: &Tenant| {
            t.get("urn:ngsi-ld:V:1")
                .unwrap()
                .map(|e| e.attributes.values().next().unwrap()[0].value.clone())
        };
        let t = tenant();
        let write = |speed: i64| vec![Staged::new("urn:ngsi-ld:V:1".into(), Some(entity(speed)))];
        // Two writes staged and committed in order, a third rolled back; none applied yet.
        let first = t.stage(&write(1)).unwrap();
        let second = t.stage(&write(2)).unwrap();
        let third = t.stage(&write(3)).unwrap();
        assert_eq!(
            t.slot.state.read().unwrap().entities.len(),
            0,
            "staged writes are not committed"
        );
        t.finished(first, write(1), true);
        t.finished(second, write(2), true);
        t.finished(third, write(3), false);
        // A reader applies them, in order: the second write's value stands.
        assert_eq!(speed(&t), Some(ngsi_ld::AttributeValue::Property(json!(2))));
        assert!(t.slot.state.read().unwrap().overlay.is_empty());
        assert!(!t.slot.unapplied.load(Ordering::Acquire));
        // A caller applies what was recorded since, whatever a reader did before.
        let fourth = t.stage(&write(4)).unwrap();
        t.finished(fourth, write(4), true);
        drop(t.apply_finished().await);
        assert_eq!(
            t.slot.state.read().unwrap().entities.len(),
            1,
            "one entity, written four times"
        );
        assert_eq!(speed(&t), Some(ngsi_ld::AttributeValue::Property(json!(4))));
        assert!(t.registered().unwrap());
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
                "attribute renamed, its value and position kept",
                json!({"id": id, "type": ["W", "V"], "plate": p(json!(2)), "velocity": p(json!("B-4")), "location": point(3.0)}),
            ),
            (
                "GeoProperty renamed, its geometry and position kept",
                json!({"id": id, "type": ["W", "V"], "plate": p(json!(2)), "velocity": p(json!("B-4")), "place": point(3.0)}),
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
        assert!(types_view(&st).values().all(|s| !s.contains(id.as_str())));
        // A freed slot is taken again by the next new id, and the indexes stay exact.
        let free = st.free.clone();
        assert_eq!(free.len(), 1);
        st.commit(Staged::new("urn:ngsi-ld:V:9".into(), Some(entity(base(9)))));
        assert!(st.free.is_empty());
        assert_eq!(st.entities["urn:ngsi-ld:V:9"].slot, free[0]);
        assert_rebuilt_equal(&st, "slot reused");
    }
}
