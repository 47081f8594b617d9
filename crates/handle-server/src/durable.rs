//! [`DurableStore`]: the in-memory index for reads, written through to a durable
//! [`store::HandleStore`] (the platform's SQLite store) before any change is acknowledged.
//!
//! - **Reads** never touch the durable store: they are [`MemoryStore`] reads, so the UDP
//!   resolution fast path is unchanged.
//! - **Writes** of one handle are serialised by a striped lock. Under it the new record is
//!   computed from the in-memory state, written to the durable store and, once that write has
//!   committed, applied to memory. Readers see the old values until the commit, and a write
//!   whose commit failed leaves memory unchanged: acknowledged means committed.
//! - Writes to different handles run concurrently; the SQLite store folds concurrent writes
//!   into one transaction (group commit), which is what makes many creates per second possible
//!   with a durable commit each.
//! - At start, [`DurableStore::open`] loads every handle and homed prefix into memory.
//!
//! The node's store trait is synchronous (the UDP workers are plain threads), so a write
//! blocks its caller until the commit: inside a multi-threaded tokio runtime via
//! `block_in_place`, so the runtime keeps serving other connections meanwhile.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use handle_proto::HandleValue;
use store::HandleRecord;

use crate::store::{
    CreateMode, HandlePage, HandleStore, MemoryStore, Prepared, StoreError, ValueFilter,
    check_unique, ops,
};

const STRIPES: usize = 256;
const LOAD_PAGE: usize = 10_000;

/// In-memory reads, durable writes. See the module documentation.
pub struct DurableStore {
    memory: MemoryStore,
    durable: Arc<dyn store::HandleStore>,
    stripes: Box<[Mutex<()>]>,
    _guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

fn durable_error(e: store::StoreError) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl DurableStore {
    /// Loads every homed prefix and handle of `durable` into memory.
    pub async fn open(durable: Arc<dyn store::HandleStore>) -> Result<Self, StoreError> {
        let memory = MemoryStore::new();
        for prefix in durable.homed_prefixes().await.map_err(durable_error)? {
            memory.home_prefix(&prefix)?;
        }
        let mut after: Option<String> = None;
        loop {
            let page = durable
                .scan_handles(after.as_deref(), LOAD_PAGE)
                .await
                .map_err(durable_error)?;
            let Some(last) = page.last() else { break };
            after = Some(last.name.clone());
            for r in &page {
                memory.insert_encoded(&r.name, r.value_count, &r.values)?;
            }
        }
        Ok(Self {
            memory,
            durable,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            _guard: None,
        })
    }

    /// Keeps `guard` (e.g. a temporary directory holding the database) alive with the store.
    #[must_use]
    pub fn with_guard(mut self, guard: impl Send + Sync + 'static) -> Self {
        self._guard = Some(Box::new(guard));
        self
    }

    /// The in-memory index (for footprint reports).
    pub fn memory(&self) -> &MemoryStore {
        &self.memory
    }

    /// Writes many new handles in one durable transaction (bulk import; existing handles are
    /// replaced). Returns how many were written.
    pub fn import(&self, handles: &[(String, Vec<HandleValue>)]) -> Result<usize, StoreError> {
        let mut records = Vec::with_capacity(handles.len());
        for (name, values) in handles {
            check_unique(values)?;
            let hash = self.memory.hash_of(name);
            let p = self
                .memory
                .prepare(hash, name, ops::create(values, CreateMode::Overwrite))?;
            records.push(p);
        }
        let batch = records
            .iter()
            .filter_map(|p| {
                p.values().map(|(count, bytes)| HandleRecord {
                    name: p.name.clone(),
                    value_count: count,
                    values: bytes.to_vec(),
                })
            })
            .collect();
        wait(self.durable.put_handles(batch)).map_err(durable_error)?;
        let n = records.len();
        for p in records {
            self.memory.apply(p)?;
        }
        Ok(n)
    }

    fn mutate(
        &self,
        handle: &str,
        f: impl FnOnce(Option<Vec<HandleValue>>) -> Result<Option<Vec<HandleValue>>, StoreError>,
    ) -> Result<bool, StoreError> {
        let hash = self.memory.hash_of(handle);
        let _serialised = self.stripes[(hash as usize) % STRIPES]
            .lock()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        let prepared: Prepared = self.memory.prepare(hash, handle, f)?;
        match prepared.values() {
            Some((count, bytes)) => wait(self.durable.put_handle(HandleRecord {
                name: prepared.name.clone(),
                value_count: count,
                values: bytes.to_vec(),
            }))
            .map_err(durable_error)?,
            None => {
                wait(self.durable.delete_handle(&prepared.name)).map_err(durable_error)?;
            }
        }
        self.memory.apply(prepared)
    }
}

impl HandleStore for DurableStore {
    fn read_encoded(
        &self,
        handle: &str,
        filter: &ValueFilter<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Option<u32>, StoreError> {
        self.memory.read_encoded(handle, filter, out)
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
        self.memory.list(prefix, offset, limit)
    }

    fn home_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        wait(self.durable.home_prefix(prefix)).map_err(durable_error)?;
        self.memory.home_prefix(prefix)
    }

    fn unhome_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        wait(self.durable.unhome_prefix(prefix)).map_err(durable_error)?;
        self.memory.unhome_prefix(prefix)
    }

    fn homed_prefixes(&self) -> Result<Vec<String>, StoreError> {
        self.memory.homed_prefixes()
    }

    fn is_homed(&self, prefix: &str) -> bool {
        self.memory.is_homed(prefix)
    }

    fn handle_count(&self) -> usize {
        self.memory.handle_count()
    }
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread (it must not need this thread's tokio runtime to
/// make progress: the durable writes only wait for the store's writer thread).
fn park_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Blocks on a durable write without stalling a multi-threaded tokio runtime.
fn wait<F: Future>(fut: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| park_on(fut))
        }
        _ => park_on(fut),
    }
}
