//! Storage behind a small trait, with a compact in-memory implementation and a shared
//! conformance suite ([`handle_store_test_suite!`]) that every implementation must pass.
//!
//! Contracts (all implementations):
//! - Handle names compare ASCII case-insensitively; the name as first created is kept.
//! - Values are stored in their wire encoding; [`HandleStore::read_encoded`] appends them
//!   unchanged, which is what lets the resolution fast path copy them into a response.
//! - Every mutating call is atomic for its handle: it either applies completely or not at all.
//! - `create` fails with `AlreadyExists` unless `overwrite`; `delete`/`add`/`modify`/`remove`
//!   on a missing handle fail with `NotFound`; `add_values` of an existing index fails with
//!   `ValueExists`; `modify_values`/`remove_values` of a missing index fail with `ValueNotFound`.
//! - Calls are synchronous and short (in-memory or one SQLite transaction); async callers
//!   that use a slow backend should wrap them in `spawn_blocking`.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use handle_proto::codec::{Codec, Reader};
use handle_proto::value::{HandleValue, RawValue};

/// Which values of a handle to return.
#[derive(Debug, Clone, Default)]
pub struct ValueFilter<'a> {
    /// Requested indices (empty with empty `types` = all).
    pub indexes: &'a [u32],
    /// Requested types (`X.` = hierarchy).
    pub types: &'a [String],
    /// Only values with PUBLIC_READ.
    pub public_only: bool,
}

impl ValueFilter<'_> {
    /// Every value.
    pub const ALL: ValueFilter<'static> = ValueFilter {
        indexes: &[],
        types: &[],
        public_only: false,
    };

    /// Whether a value passes (CNRI semantics: in the index list *or* the type list).
    pub fn accepts(&self, v: &RawValue<'_>) -> bool {
        if self.public_only
            && !v
                .permissions
                .has(handle_proto::ValuePermissions::PUBLIC_READ)
        {
            return false;
        }
        if self.indexes.is_empty() && self.types.is_empty() {
            return true;
        }
        self.indexes.contains(&v.index)
            || self
                .types
                .iter()
                .any(|t| HandleValue::type_matches(v.value_type, t.as_bytes()))
    }
}

/// Storage failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The handle does not exist.
    #[error("handle not found")]
    NotFound,
    /// The handle exists and overwrite was not requested.
    #[error("handle already exists")]
    AlreadyExists,
    /// A value index to add is taken.
    #[error("value index {0} already exists")]
    ValueExists(u32),
    /// A value index to modify or remove is absent.
    #[error("value index {0} not found")]
    ValueNotFound(u32),
    /// Two values in one request share an index.
    #[error("duplicate value index {0}")]
    DuplicateIndex(u32),
    /// Stored bytes failed to decode (corruption or a backend bug).
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// Backend failure (I/O, database).
    #[error("backend: {0}")]
    Backend(String),
}

/// Whether `create` may replace an existing handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// Fail with `AlreadyExists`.
    FailIfExists,
    /// Replace all values.
    Overwrite,
}

/// One page of a prefix listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlePage {
    /// Handles under the prefix in total.
    pub total: usize,
    /// This page, sorted.
    pub handles: Vec<String>,
}

/// The storage interface of a Handle node.
pub trait HandleStore: Send + Sync + 'static {
    /// Appends the wire encoding of the values of `handle` that pass `filter` to `out` and
    /// returns how many were appended, or `None` if the handle does not exist.
    fn read_encoded(
        &self,
        handle: &str,
        filter: &ValueFilter<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Option<u32>, StoreError>;

    /// Creates `handle` (or replaces it with `CreateMode::Overwrite`). Returns `true` if it
    /// did not exist before.
    fn create(
        &self,
        handle: &str,
        values: &[HandleValue],
        mode: CreateMode,
    ) -> Result<bool, StoreError>;

    /// Deletes `handle`.
    fn delete(&self, handle: &str) -> Result<(), StoreError>;

    /// Adds values with new indices.
    fn add_values(&self, handle: &str, values: &[HandleValue]) -> Result<(), StoreError>;

    /// Replaces values with existing indices.
    fn modify_values(&self, handle: &str, values: &[HandleValue]) -> Result<(), StoreError>;

    /// Removes values by index.
    fn remove_values(&self, handle: &str, indexes: &[u32]) -> Result<(), StoreError>;

    /// Lists handles whose prefix is `prefix` (case-insensitive), sorted, `offset`/`limit` paged.
    fn list(&self, prefix: &str, offset: usize, limit: usize) -> Result<HandlePage, StoreError>;

    /// Marks `prefix` as homed on this node.
    fn home_prefix(&self, prefix: &str) -> Result<(), StoreError>;

    /// Removes `prefix` from the homed set.
    fn unhome_prefix(&self, prefix: &str) -> Result<(), StoreError>;

    /// Prefixes homed on this node, sorted.
    fn homed_prefixes(&self) -> Result<Vec<String>, StoreError>;

    /// Whether `prefix` is homed here (hot path: must be cheap).
    fn is_homed(&self, prefix: &str) -> bool;

    /// Number of handles stored.
    fn handle_count(&self) -> usize;

    /// All values of `handle`, decoded.
    fn get(&self, handle: &str) -> Result<Option<Vec<HandleValue>>, StoreError> {
        let mut buf = Vec::new();
        let Some(n) = self.read_encoded(handle, &ValueFilter::ALL, &mut buf)? else {
            return Ok(None);
        };
        let mut r = Reader::new(&buf);
        let mut values = Vec::with_capacity(n as usize);
        for _ in 0..n {
            values.push(HandleValue::read(&mut r).map_err(|e| StoreError::Corrupt(e.to_string()))?);
        }
        Ok(Some(values))
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory store.
//
// Layout: handles are spread over shards by a hash of their upper-cased name; each shard has a
// hashbrown `HashTable<u64>` of record locations and an arena of 4 MiB chunks holding records
//     u16 name length | name | u32 value count | u32 values length | values (wire encoding)
// Updates append a new record and leave the old bytes as garbage, which the shard compacts once
// it exceeds half the arena. Per handle the overhead is the 8-byte location (about 11 bytes at
// hashbrown's load factor) plus a 10-byte record header, so a handle with a URL and an HS_ADMIN
// value (about 150 bytes of wire data) costs about 170 bytes: 10M such handles fit in 2 GB.
// Chunks are never reallocated, so the arena does not double its footprint while growing.

const CHUNK_SIZE: usize = 4 << 20;
const SHARDS: usize = 64;

#[derive(Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
    live_bytes: usize,
    total_bytes: usize,
}

impl Arena {
    fn record(&self, location: u64) -> &[u8] {
        let chunk = &self.chunks[(location >> 32) as usize];
        let off = (location & 0xffff_ffff) as usize;
        let name_len = u16::from_be_bytes([chunk[off], chunk[off + 1]]) as usize;
        let vals_len_at = off + 2 + name_len + 4;
        let vals_len = u32::from_be_bytes([
            chunk[vals_len_at],
            chunk[vals_len_at + 1],
            chunk[vals_len_at + 2],
            chunk[vals_len_at + 3],
        ]) as usize;
        &chunk[off..vals_len_at + 4 + vals_len]
    }

    fn append(&mut self, record: &[u8]) -> u64 {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= record.len());
        if !fits {
            self.chunks
                .push(Vec::with_capacity(CHUNK_SIZE.max(record.len())));
        }
        let idx = self.chunks.len() - 1;
        let chunk = &mut self.chunks[idx];
        let off = chunk.len();
        chunk.extend_from_slice(record);
        self.live_bytes += record.len();
        self.total_bytes += record.len();
        ((idx as u64) << 32) | off as u64
    }
}

#[derive(Default)]
struct Shard {
    table: hashbrown::HashTable<u64>,
    arena: Arena,
    pool: Pool,
}

/// Interned values of one shard: identical values (typically HS_ADMIN and other values shared
/// by many handles of a prefix) are stored once and referenced by a 2-byte id from records.
/// Admission is on first sight while the pool has room; an entry is freed when the last record
/// referring to it is replaced or removed.
#[derive(Default)]
struct Pool {
    slots: Vec<(Box<[u8]>, u32)>,
    free: Vec<u16>,
    index: hashbrown::HashTable<u16>,
    hasher: std::collections::hash_map::RandomState,
}

const POOL_MAX: usize = 4096;
const INTERN_MAX_LEN: usize = 512;
/// High bit of a record's value count: the body is in the compact form
/// (entries `0 u16-len bytes` | `2 u32-len bytes` | `1 u16-id`), not plain wire values.
const COMPACT: u32 = 0x8000_0000;

impl Pool {
    fn hash(&self, bytes: &[u8]) -> u64 {
        self.hasher.hash_one(bytes)
    }

    fn intern(&mut self, bytes: &[u8]) -> Option<u16> {
        if bytes.len() > INTERN_MAX_LEN {
            return None;
        }
        let hash = self.hash(bytes);
        let slots = &self.slots;
        if let Some(&id) = self
            .index
            .find(hash, |&id| &*slots[usize::from(id)].0 == bytes)
        {
            self.slots[usize::from(id)].1 += 1;
            return Some(id);
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[usize::from(id)] = (bytes.into(), 1);
                id
            }
            None if self.slots.len() < POOL_MAX => {
                self.slots.push((bytes.into(), 1));
                (self.slots.len() - 1) as u16
            }
            None => return None,
        };
        let slots = &self.slots;
        let hasher = &self.hasher;
        self.index
            .insert_unique(hash, id, |&x| hasher.hash_one(&*slots[usize::from(x)].0));
        Some(id)
    }

    fn release(&mut self, id: u16) {
        let slot = &mut self.slots[usize::from(id)];
        slot.1 -= 1;
        if slot.1 > 0 {
            return;
        }
        let hash = self.hash(&self.slots[usize::from(id)].0);
        if let Ok(e) = self.index.find_entry(hash, |&x| x == id) {
            e.remove();
        }
        self.slots[usize::from(id)].0 = Box::default();
        self.free.push(id);
    }

    fn get(&self, id: u16) -> &[u8] {
        &self.slots[usize::from(id)].0
    }

    /// The arena form of a plain record: values shared with other records become references.
    /// Records without any shared value stay plain.
    fn compact(&mut self, plain: &[u8]) -> Vec<u8> {
        let n = u16::from_be_bytes([plain[0], plain[1]]) as usize;
        let (count, body) = record_values(plain);
        let mut ids = Vec::with_capacity(count as usize);
        let mut slices = Vec::with_capacity(count as usize);
        for v in handle_proto::value::raw_values(body) {
            let Ok(v) = v else { return plain.to_vec() };
            ids.push(self.intern(v.bytes));
            slices.push(v.bytes);
        }
        if ids.iter().all(Option::is_none) {
            return plain.to_vec();
        }
        let mut rec = Vec::with_capacity(plain.len());
        rec.extend_from_slice(&plain[..2 + n]);
        rec.extend_from_slice(&(count | COMPACT).to_be_bytes());
        rec.extend_from_slice(&[0; 4]);
        for (id, bytes) in ids.iter().zip(&slices) {
            match id {
                Some(id) => {
                    rec.push(1);
                    rec.extend_from_slice(&id.to_be_bytes());
                }
                None if bytes.len() <= usize::from(u16::MAX) => {
                    rec.push(0);
                    rec.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                    rec.extend_from_slice(bytes);
                }
                None => {
                    rec.push(2);
                    rec.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                    rec.extend_from_slice(bytes);
                }
            }
        }
        let body_len = (rec.len() - 10 - n) as u32;
        rec[6 + n..10 + n].copy_from_slice(&body_len.to_be_bytes());
        rec
    }

    /// Calls `f` with each entry of a compact body: `Ok(bytes)` inline, `Err(id)` interned.
    fn entries(body: &[u8], mut f: impl FnMut(Result<&[u8], u16>)) {
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                1 => {
                    f(Err(u16::from_be_bytes([body[i + 1], body[i + 2]])));
                    i += 3;
                }
                0 => {
                    let len = u16::from_be_bytes([body[i + 1], body[i + 2]]) as usize;
                    f(Ok(&body[i + 3..i + 3 + len]));
                    i += 3 + len;
                }
                _ => {
                    let len =
                        u32::from_be_bytes([body[i + 1], body[i + 2], body[i + 3], body[i + 4]])
                            as usize;
                    f(Ok(&body[i + 5..i + 5 + len]));
                    i += 5 + len;
                }
            }
        }
    }

    /// Drops the references a record holds.
    fn release_record(&mut self, rec: &[u8]) {
        let (count, body) = record_values(rec);
        if count & COMPACT == 0 {
            return;
        }
        let mut ids = Vec::new();
        Self::entries(body, |e| {
            if let Err(id) = e {
                ids.push(id);
            }
        });
        for id in ids {
            self.release(id);
        }
    }
}

impl Shard {
    fn find(&self, hash: u64, name: &str) -> Option<u64> {
        self.table
            .find(hash, |&l| {
                record_name(self.arena.record(l)).eq_ignore_ascii_case(name.as_bytes())
            })
            .copied()
    }

    /// The values of a record in wire form: the body itself, or expanded into `scratch`.
    fn values<'a>(&'a self, rec: &'a [u8], scratch: &'a mut Vec<u8>) -> (u32, &'a [u8]) {
        let (count, body) = record_values(rec);
        if count & COMPACT == 0 {
            return (count, body);
        }
        scratch.clear();
        Pool::entries(body, |e| match e {
            Ok(bytes) => scratch.extend_from_slice(bytes),
            Err(id) => scratch.extend_from_slice(self.pool.get(id)),
        });
        (count & !COMPACT, scratch)
    }

    fn upsert(&mut self, hash: u64, name: &str, record: &[u8], hasher: &impl Fn(&[u8]) -> u64) {
        let record = self.pool.compact(record);
        let new_loc = self.arena.append(&record);
        let arena = &mut self.arena;
        match self.table.find_entry(hash, |&l| {
            record_name(arena.record(l)).eq_ignore_ascii_case(name.as_bytes())
        }) {
            Ok(mut entry) => {
                let old = std::mem::replace(entry.get_mut(), new_loc);
                arena.live_bytes -= arena.record(old).len();
                self.pool.release_record(arena.record(old));
            }
            Err(_) => {
                let arena = &self.arena;
                self.table
                    .insert_unique(hash, new_loc, |&l| hasher(record_name(arena.record(l))));
            }
        }
        self.maybe_compact(hasher);
    }

    fn remove(&mut self, hash: u64, name: &str) -> bool {
        let arena = &mut self.arena;
        match self.table.find_entry(hash, |&l| {
            record_name(arena.record(l)).eq_ignore_ascii_case(name.as_bytes())
        }) {
            Ok(entry) => {
                let (old, _) = entry.remove();
                arena.live_bytes -= arena.record(old).len();
                self.pool.release_record(arena.record(old));
                true
            }
            Err(_) => false,
        }
    }

    fn maybe_compact(&mut self, hasher: &impl Fn(&[u8]) -> u64) {
        if self.arena.total_bytes < 2 * CHUNK_SIZE
            || self.arena.live_bytes * 2 > self.arena.total_bytes
        {
            return;
        }
        let old_arena = std::mem::take(&mut self.arena);
        let old_table = std::mem::take(&mut self.table);
        self.table.reserve(old_table.len(), |_| 0);
        for l in old_table {
            let rec = old_arena.record(l);
            let new_loc = self.arena.append(rec);
            let arena = &self.arena;
            self.table
                .insert_unique(hasher(record_name(rec)), new_loc, |&x| {
                    hasher(record_name(arena.record(x)))
                });
        }
    }
}

fn record_name(rec: &[u8]) -> &[u8] {
    let n = u16::from_be_bytes([rec[0], rec[1]]) as usize;
    &rec[2..2 + n]
}

fn record_values(rec: &[u8]) -> (u32, &[u8]) {
    let n = u16::from_be_bytes([rec[0], rec[1]]) as usize;
    let count = u32::from_be_bytes(rec[2 + n..6 + n].try_into().unwrap_or([0; 4]));
    (count, &rec[10 + n..])
}

fn encode_record(name: &str, values: &[HandleValue]) -> Vec<u8> {
    let body_len: usize = values.iter().map(HandleValue::encoded_len).sum();
    let mut rec = Vec::with_capacity(10 + name.len() + body_len);
    rec.extend_from_slice(&(name.len() as u16).to_be_bytes());
    rec.extend_from_slice(name.as_bytes());
    rec.extend_from_slice(&(values.len() as u32).to_be_bytes());
    rec.extend_from_slice(&(body_len as u32).to_be_bytes());
    for v in values {
        v.encode(&mut rec);
    }
    rec
}

fn decode_values(shard: &Shard, rec: &[u8]) -> Result<Vec<HandleValue>, StoreError> {
    let mut scratch = Vec::new();
    let (count, bytes) = shard.values(rec, &mut scratch);
    let mut r = Reader::new(bytes);
    (0..count)
        .map(|_| HandleValue::read(&mut r).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

pub(crate) fn check_unique(values: &[HandleValue]) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    for v in values {
        if !seen.insert(v.index) {
            return Err(StoreError::DuplicateIndex(v.index));
        }
    }
    Ok(())
}

/// The in-memory [`HandleStore`].
pub struct MemoryStore {
    shards: Box<[RwLock<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    prefixes: RwLock<BTreeSet<String>>,
    count: AtomicUsize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            prefixes: RwLock::new(BTreeSet::new()),
            count: AtomicUsize::new(0),
        }
    }

    fn hash(&self, name: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for b in name {
            h.write_u8(b.to_ascii_uppercase());
        }
        h.finish()
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    /// Bytes held by record arenas (capacity), for footprint reports.
    pub fn arena_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.read()
                    .map(|s| s.arena.chunks.iter().map(Vec::capacity).sum::<usize>())
                    .unwrap_or(0)
            })
            .sum()
    }

    pub(crate) fn hash_of(&self, name: &str) -> u64 {
        self.hash(name.as_bytes())
    }

    /// Computes the record `f` makes of `handle` without applying it.
    pub(crate) fn prepare(
        &self,
        hash: u64,
        handle: &str,
        f: impl FnOnce(Option<Vec<HandleValue>>) -> Result<Option<Vec<HandleValue>>, StoreError>,
    ) -> Result<Prepared, StoreError> {
        let shard = self
            .shard(hash)
            .read()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        prepare_in(&shard, hash, handle, f)
    }

    /// Applies a prepared change.
    pub(crate) fn apply(&self, prepared: Prepared) -> Result<bool, StoreError> {
        let mut shard = self
            .shard(prepared.hash)
            .write()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        Ok(self.apply_in(&mut shard, prepared))
    }

    fn apply_in(&self, shard: &mut Shard, prepared: Prepared) -> bool {
        let hasher = |n: &[u8]| self.hash(n);
        let Prepared {
            hash,
            name,
            record,
            existed,
        } = prepared;
        match record {
            Some(record) => {
                shard.upsert(hash, &name, &record, &hasher);
                if !existed {
                    self.count.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                if shard.remove(hash, &name) {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        !existed
    }

    /// Inserts (or replaces) a handle from its stored form: `values` is the wire encoding of
    /// `count` values, checked before it is accepted. Used when loading a durable store.
    pub fn insert_encoded(&self, name: &str, count: u32, values: &[u8]) -> Result<(), StoreError> {
        let mut n = 0u32;
        for v in handle_proto::value::raw_values(values) {
            v.map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?;
            n += 1;
        }
        if n != count || name.len() > usize::from(u16::MAX) {
            return Err(StoreError::Corrupt(format!(
                "{name}: {count} values announced, {n} stored"
            )));
        }
        let mut record = Vec::with_capacity(10 + name.len() + values.len());
        record.extend_from_slice(&(name.len() as u16).to_be_bytes());
        record.extend_from_slice(name.as_bytes());
        record.extend_from_slice(&count.to_be_bytes());
        record.extend_from_slice(&(values.len() as u32).to_be_bytes());
        record.extend_from_slice(values);
        let hash = self.hash(name.as_bytes());
        let mut shard = self
            .shard(hash)
            .write()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        let existed = shard.find(hash, name).is_some();
        self.apply_in(
            &mut shard,
            Prepared {
                hash,
                name: name.to_owned(),
                record: Some(record),
                existed,
            },
        );
        Ok(())
    }

    fn mutate(
        &self,
        handle: &str,
        f: impl FnOnce(Option<Vec<HandleValue>>) -> Result<Option<Vec<HandleValue>>, StoreError>,
    ) -> Result<bool, StoreError> {
        let hash = self.hash(handle.as_bytes());
        let mut shard = self
            .shard(hash)
            .write()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        let prepared = prepare_in(&shard, hash, handle, f)?;
        Ok(self.apply_in(&mut shard, prepared))
    }
}

/// A computed but not yet applied change of one handle.
pub(crate) struct Prepared {
    hash: u64,
    /// The handle's name (as first created, if it exists).
    pub(crate) name: String,
    /// The new record (`None`: delete).
    record: Option<Vec<u8>>,
    existed: bool,
}

impl Prepared {
    /// The new values' count and wire encoding, or `None` for a deletion.
    pub(crate) fn values(&self) -> Option<(u32, &[u8])> {
        self.record.as_deref().map(record_values)
    }
}

fn prepare_in(
    shard: &Shard,
    hash: u64,
    handle: &str,
    f: impl FnOnce(Option<Vec<HandleValue>>) -> Result<Option<Vec<HandleValue>>, StoreError>,
) -> Result<Prepared, StoreError> {
    let (name, current) = match shard.find(hash, handle) {
        Some(l) => {
            let rec = shard.arena.record(l);
            (
                String::from_utf8_lossy(record_name(rec)).into_owned(),
                Some(decode_values(shard, rec)?),
            )
        }
        None => (handle.to_owned(), None),
    };
    let existed = current.is_some();
    let record = f(current)?.map(|mut values| {
        values.sort_by_key(|v| v.index);
        encode_record(&name, &values)
    });
    Ok(Prepared {
        hash,
        name,
        record,
        existed,
    })
}

impl HandleStore for MemoryStore {
    fn read_encoded(
        &self,
        handle: &str,
        filter: &ValueFilter<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Option<u32>, StoreError> {
        let hash = self.hash(handle.as_bytes());
        let shard = self
            .shard(hash)
            .read()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        let Some(l) = shard.find(hash, handle) else {
            return Ok(None);
        };
        let rec = shard.arena.record(l);
        if filter.indexes.is_empty() && filter.types.is_empty() && !filter.public_only {
            // The fast path: copy the stored wire bytes (expanding shared values) into `out`.
            let (count, body) = record_values(rec);
            if count & COMPACT == 0 {
                out.extend_from_slice(body);
            } else {
                Pool::entries(body, |e| match e {
                    Ok(bytes) => out.extend_from_slice(bytes),
                    Err(id) => out.extend_from_slice(shard.pool.get(id)),
                });
            }
            return Ok(Some(count & !COMPACT));
        }
        let mut scratch = Vec::new();
        let (_, bytes) = shard.values(rec, &mut scratch);
        let mut n = 0;
        for v in handle_proto::value::raw_values(bytes) {
            let v = v.map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if filter.accepts(&v) {
                out.extend_from_slice(v.bytes);
                n += 1;
            }
        }
        Ok(Some(n))
    }

    fn create(
        &self,
        handle: &str,
        values: &[HandleValue],
        mode: CreateMode,
    ) -> Result<bool, StoreError> {
        check_unique(values)?;
        self.mutate(handle, ops::create(values, mode))
    }

    fn delete(&self, handle: &str) -> Result<(), StoreError> {
        self.mutate(handle, ops::delete).map(|_| ())
    }

    fn add_values(&self, handle: &str, values: &[HandleValue]) -> Result<(), StoreError> {
        check_unique(values)?;
        self.mutate(handle, ops::add(values)).map(|_| ())
    }

    fn modify_values(&self, handle: &str, values: &[HandleValue]) -> Result<(), StoreError> {
        check_unique(values)?;
        self.mutate(handle, ops::modify(values)).map(|_| ())
    }

    fn remove_values(&self, handle: &str, indexes: &[u32]) -> Result<(), StoreError> {
        self.mutate(handle, ops::remove(indexes)).map(|_| ())
    }

    fn list(&self, prefix: &str, offset: usize, limit: usize) -> Result<HandlePage, StoreError> {
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard
                .read()
                .map_err(|_| StoreError::Backend("lock poisoned".into()))?;
            for &l in shard.table.iter() {
                let name = record_name(shard.arena.record(l));
                let matches = name.len() > prefix.len()
                    && name[prefix.len()] == b'/'
                    && name[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
                if matches {
                    all.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
        all.sort_unstable();
        let total = all.len();
        let handles = all.into_iter().skip(offset).take(limit).collect();
        Ok(HandlePage { total, handles })
    }

    fn home_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        self.prefixes
            .write()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?
            .insert(prefix.to_ascii_uppercase());
        Ok(())
    }

    fn unhome_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        self.prefixes
            .write()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?
            .remove(&prefix.to_ascii_uppercase());
        Ok(())
    }

    fn homed_prefixes(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .prefixes
            .read()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?
            .iter()
            .cloned()
            .collect())
    }

    fn is_homed(&self, prefix: &str) -> bool {
        let Ok(set) = self.prefixes.read() else {
            return false;
        };
        if prefix.bytes().all(|b| !b.is_ascii_lowercase()) {
            set.contains(prefix)
        } else {
            set.contains(&prefix.to_ascii_uppercase())
        }
    }

    fn handle_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// The mutations of the trait as functions of a handle's current values (`None`: absent) to
/// its new values (`None`: delete), shared by every implementation built on [`MemoryStore`].
pub(crate) mod ops {
    use super::{CreateMode, StoreError};
    use handle_proto::HandleValue;

    type Values = Option<Vec<HandleValue>>;

    pub(crate) fn create(
        values: &[HandleValue],
        mode: CreateMode,
    ) -> impl FnOnce(Values) -> Result<Values, StoreError> + '_ {
        move |cur| match (cur, mode) {
            (Some(_), CreateMode::FailIfExists) => Err(StoreError::AlreadyExists),
            _ => Ok(Some(values.to_vec())),
        }
    }

    pub(crate) fn delete(cur: Values) -> Result<Values, StoreError> {
        cur.map(|_| None).ok_or(StoreError::NotFound)
    }

    pub(crate) fn add(
        values: &[HandleValue],
    ) -> impl FnOnce(Values) -> Result<Values, StoreError> + '_ {
        move |cur| {
            let mut cur = cur.ok_or(StoreError::NotFound)?;
            for v in values {
                if cur.iter().any(|c| c.index == v.index) {
                    return Err(StoreError::ValueExists(v.index));
                }
            }
            cur.extend_from_slice(values);
            Ok(Some(cur))
        }
    }

    pub(crate) fn modify(
        values: &[HandleValue],
    ) -> impl FnOnce(Values) -> Result<Values, StoreError> + '_ {
        move |cur| {
            let mut cur = cur.ok_or(StoreError::NotFound)?;
            for v in values {
                let slot = cur
                    .iter_mut()
                    .find(|c| c.index == v.index)
                    .ok_or(StoreError::ValueNotFound(v.index))?;
                *slot = v.clone();
            }
            Ok(Some(cur))
        }
    }

    pub(crate) fn remove(
        indexes: &[u32],
    ) -> impl FnOnce(Values) -> Result<Values, StoreError> + '_ {
        move |cur| {
            let mut cur = cur.ok_or(StoreError::NotFound)?;
            for i in indexes {
                if !cur.iter().any(|c| c.index == *i) {
                    return Err(StoreError::ValueNotFound(*i));
                }
            }
            cur.retain(|c| !indexes.contains(&c.index));
            Ok(Some(cur))
        }
    }
}

/// Generates the conformance tests for a [`HandleStore`] implementation. `$make` is an
/// expression producing a fresh, empty store.
///
/// ```ignore
/// handle_server::handle_store_test_suite!(handle_server::store::MemoryStore::new());
/// ```
#[macro_export]
macro_rules! handle_store_test_suite {
    ($make:expr) => {
        mod handle_store_suite {
            #[allow(unused_imports)]
            use super::*;
            use handle_proto::HandleValue;
            use $crate::store::{CreateMode, HandleStore, StoreError, ValueFilter};

            fn store() -> impl HandleStore {
                $make
            }

            fn url(index: u32, u: &str) -> HandleValue {
                HandleValue::new(index, "URL", u.as_bytes().to_vec())
            }

            #[test]
            fn create_get_case_insensitive_and_conflict() {
                let s = store();
                assert_eq!(
                    s.create(
                        "21.T999/Obj",
                        &[url(1, "http://a")],
                        CreateMode::FailIfExists
                    ),
                    Ok(true)
                );
                let got = s.get("21.t999/OBJ").unwrap().unwrap();
                assert_eq!(got, vec![url(1, "http://a")]);
                assert_eq!(
                    s.create("21.T999/OBJ", &[url(1, "x")], CreateMode::FailIfExists),
                    Err(StoreError::AlreadyExists)
                );
                assert_eq!(
                    s.create("21.T999/obj", &[url(2, "http://b")], CreateMode::Overwrite),
                    Ok(false)
                );
                assert_eq!(
                    s.get("21.T999/obj").unwrap().unwrap(),
                    vec![url(2, "http://b")]
                );
                assert_eq!(s.handle_count(), 1);
                assert_eq!(
                    s.list("21.t999", 0, 10).unwrap().handles,
                    vec!["21.T999/Obj".to_string()]
                );
            }

            #[test]
            fn value_operations_and_errors() {
                let s = store();
                assert_eq!(
                    s.add_values("a/b", &[url(1, "x")]),
                    Err(StoreError::NotFound)
                );
                s.create("a/b", &[url(1, "x"), url(2, "y")], CreateMode::FailIfExists)
                    .unwrap();
                assert_eq!(
                    s.add_values("a/b", &[url(2, "z")]),
                    Err(StoreError::ValueExists(2))
                );
                assert_eq!(
                    s.create("a/c", &[url(1, "x"), url(1, "y")], CreateMode::FailIfExists),
                    Err(StoreError::DuplicateIndex(1))
                );
                s.add_values("a/b", &[url(3, "z")]).unwrap();
                assert_eq!(
                    s.modify_values("a/b", &[url(9, "q")]),
                    Err(StoreError::ValueNotFound(9))
                );
                s.modify_values("a/b", &[url(1, "changed")]).unwrap();
                assert_eq!(
                    s.remove_values("a/b", &[2, 7]),
                    Err(StoreError::ValueNotFound(7))
                );
                // A failed call changed nothing.
                assert_eq!(s.get("a/b").unwrap().unwrap().len(), 3);
                s.remove_values("a/b", &[2]).unwrap();
                let got = s.get("a/b").unwrap().unwrap();
                assert_eq!(got, vec![url(1, "changed"), url(3, "z")]);
                s.delete("a/b").unwrap();
                assert_eq!(s.delete("a/b"), Err(StoreError::NotFound));
                assert_eq!(s.get("a/b").unwrap(), None);
                assert_eq!(s.handle_count(), 0);
            }

            #[test]
            fn filters_and_encoded_reads() {
                let s = store();
                let mut secret = HandleValue::new(300, "HS_SECKEY", b"pw".to_vec());
                secret.permissions = handle_proto::ValuePermissions(0x0c);
                s.create(
                    "p/x",
                    &[
                        url(1, "u"),
                        HandleValue::new(2, "10320.loc", b"l".to_vec()),
                        secret,
                    ],
                    CreateMode::FailIfExists,
                )
                .unwrap();
                let mut out = Vec::new();
                let types = vec!["10320.".to_string()];
                let n = s
                    .read_encoded(
                        "p/x",
                        &ValueFilter {
                            indexes: &[1],
                            types: &types,
                            public_only: false,
                        },
                        &mut out,
                    )
                    .unwrap();
                assert_eq!(n, Some(2));
                out.clear();
                let n = s
                    .read_encoded(
                        "p/x",
                        &ValueFilter {
                            indexes: &[],
                            types: &[],
                            public_only: true,
                        },
                        &mut out,
                    )
                    .unwrap();
                assert_eq!(n, Some(2));
                assert!(!out.windows(9).any(|w| w == b"HS_SECKEY"));
                assert_eq!(
                    s.read_encoded("p/none", &ValueFilter::ALL, &mut out)
                        .unwrap(),
                    None
                );
            }

            #[test]
            fn listing_pages_and_prefixes() {
                let s = store();
                for i in 0..25 {
                    s.create(
                        &format!("21.T999/{i:02}"),
                        &[url(1, "u")],
                        CreateMode::FailIfExists,
                    )
                    .unwrap();
                }
                s.create("21.T9990/other", &[url(1, "u")], CreateMode::FailIfExists)
                    .unwrap();
                let page = s.list("21.T999", 10, 10).unwrap();
                assert_eq!(page.total, 25);
                assert_eq!(page.handles.first().map(String::as_str), Some("21.T999/10"));
                assert_eq!(page.handles.len(), 10);
                assert!(!s.is_homed("21.T999"));
                s.home_prefix("21.t999").unwrap();
                assert!(s.is_homed("21.T999") && s.is_homed("21.t999"));
                assert_eq!(s.homed_prefixes().unwrap(), vec!["21.T999".to_string()]);
                s.unhome_prefix("21.T999").unwrap();
                assert!(!s.is_homed("21.T999"));
            }

            #[test]
            fn many_updates_keep_data_consistent() {
                let s = store();
                let payload = "x".repeat(2000);
                for round in 0..3u32 {
                    for i in 0..3000u32 {
                        s.create(
                            &format!("c/{i}"),
                            &[url(1, &format!("{round}-{payload}"))],
                            CreateMode::Overwrite,
                        )
                        .unwrap();
                    }
                }
                assert_eq!(s.handle_count(), 3000);
                for i in (0..3000u32).step_by(97) {
                    let v = s.get(&format!("c/{i}")).unwrap().unwrap();
                    assert!(v[0].data.starts_with(b"2-"));
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::handle_store_test_suite!(crate::store::MemoryStore::new());
}
