//! `@context` resolution for requests: the pinned core contexts, the operator's preload map,
//! contexts hosted by this broker (`/jsonldContexts`: `Hosted` ones added by clients and
//! `ImplicitlyCreated` ones the broker keeps for a subscription's or registration's inline
//! `@context`), and remote contexts fetched through the egress policy into a bounded cache.
//! Compiled contexts are cached by their JSON text.
//!
//! The cache is what `/jsonldContexts?kind=Cached` lists: a remote URL is listed once a
//! request used it, whether its document came from the network or from the operator's
//! preload map (which stands in for the network); the core contexts are never listed.

use crate::error::BrokerResult;
use indexmap::IndexMap;
use ngsi_ld::{Context, ContextLoader, CoreContext, NgsiError, PreloadMap};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use store::NgsiStore;

/// Path segment of hosted contexts: a URL ending in `/ngsi-ld/v1/jsonldContexts/<id>` names one.
pub const HOSTED_PATH: &str = "/ngsi-ld/v1/jsonldContexts/";

/// A remote context this broker fetched and keeps.
#[derive(Debug, Clone)]
pub struct CachedContext {
    /// The document.
    pub doc: Arc<Value>,
    /// When it was fetched.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// How often it was used.
    pub hits: u64,
    /// When it was last used.
    pub last_used: chrono::DateTime<chrono::Utc>,
}

/// `kind` of a hosted context added by a client.
pub const KIND_HOSTED: &str = "Hosted";
/// `kind` of a context the broker created for an inline `@context`.
pub const KIND_IMPLICIT: &str = "ImplicitlyCreated";

/// Resolves request contexts.
pub struct ContextResolver {
    preload: PreloadMap,
    fetcher: Option<egress::Fetcher>,
    store: Arc<dyn NgsiStore>,
    max_cached: usize,
    cache: Mutex<IndexMap<String, CachedContext>>,
    compiled: Mutex<HashMap<String, Arc<Context>>>,
    /// The context of requests without a user context: one for all of them, so that a
    /// batch's items share it (and its parse's name memo, see `http::batch`).
    core: Arc<Context>,
    started_at: chrono::DateTime<chrono::Utc>,
}

struct Loader<'a> {
    preload: &'a PreloadMap,
    docs: &'a HashMap<String, Arc<Value>>,
    missing: RefCell<Vec<String>>,
    preloaded: RefCell<Vec<(String, Arc<Value>)>>,
}

impl ContextLoader for Loader<'_> {
    fn load(&self, url: &str) -> ngsi_ld::Result<Arc<Value>> {
        if let Ok(doc) = self.preload.load(url) {
            if CoreContext::from_url(url).is_none() {
                self.preloaded
                    .borrow_mut()
                    .push((url.to_owned(), doc.clone()));
            }
            return Ok(doc);
        }
        if let Some(doc) = self.docs.get(url) {
            return Ok(doc.clone());
        }
        self.missing.borrow_mut().push(url.to_owned());
        Err(NgsiError::context_not_available(format!(
            "@context `{url}` is not available"
        )))
    }
}

const COMPILED_MAX: usize = 1024;

impl ContextResolver {
    /// A resolver; `fetcher` `None` means offline (only preloaded and hosted contexts).
    pub fn new(
        preload: PreloadMap,
        fetcher: Option<egress::Fetcher>,
        store: Arc<dyn NgsiStore>,
        max_cached: usize,
    ) -> Self {
        Self {
            preload,
            fetcher,
            store,
            max_cached: max_cached.max(1),
            cache: Mutex::new(IndexMap::new()),
            compiled: Mutex::new(HashMap::new()),
            core: Arc::new(Context::core(CoreContext::V1_9)),
            started_at: crate::ops::now(),
        }
    }

    /// The context of a request whose user context is `user` (a Link URL as a JSON string,
    /// or a body `@context` value).
    pub async fn resolve(&self, user: Option<&Value>) -> BrokerResult<Arc<Context>> {
        let Some(user) = user else {
            return Ok(self.core.clone());
        };
        let key = user.to_string();
        if let Some(ctx) = self.compiled.lock().ok().and_then(|c| c.get(&key).cloned()) {
            self.touch(user);
            return Ok(ctx);
        }
        let mut docs: HashMap<String, Arc<Value>> = HashMap::new();
        for _round in 0..16 {
            let loader = Loader {
                preload: &self.preload,
                docs: &docs,
                missing: RefCell::new(Vec::new()),
                preloaded: RefCell::new(Vec::new()),
            };
            match Context::for_request(Some(user), CoreContext::V1_9, &loader) {
                Ok(ctx) => {
                    for (url, doc) in loader.preloaded.into_inner() {
                        self.remember(&url, doc);
                    }
                    let ctx = Arc::new(ctx);
                    if let Ok(mut compiled) = self.compiled.lock() {
                        if compiled.len() >= COMPILED_MAX {
                            compiled.clear();
                        }
                        compiled.insert(key, ctx.clone());
                    }
                    return Ok(ctx);
                }
                Err(e) => {
                    let missing = loader.missing.into_inner();
                    if missing.is_empty() {
                        return Err(e.into());
                    }
                    for url in missing {
                        let doc = self.document(&url).await?;
                        docs.insert(url, doc);
                    }
                }
            }
        }
        Err(NgsiError::context_not_available("@context nests too many remote contexts").into())
    }

    /// The document at `url`: hosted here, cached, or fetched now.
    pub async fn document(&self, url: &str) -> BrokerResult<Arc<Value>> {
        if let Ok(doc) = self.preload.load(url) {
            if CoreContext::from_url(url).is_none() {
                self.remember(url, doc.clone());
            }
            return Ok(doc);
        }
        if let Some(pos) = url.find(HOSTED_PATH) {
            let id = &url[pos + HOSTED_PATH.len()..];
            if let Some(rec) = self.store.context(id).await? {
                let doc: Value = serde_json::from_str(&rec.doc).map_err(|e| {
                    NgsiError::context_not_available(format!("stored context {id}: {e}"))
                })?;
                return Ok(Arc::new(doc));
            }
        }
        if let Ok(mut cache) = self.cache.lock()
            && let Some(entry) = cache.get_mut(url)
        {
            entry.hits += 1;
            entry.last_used = crate::ops::now();
            return Ok(entry.doc.clone());
        }
        let doc = self.fetch(url).await?;
        self.remember(url, doc.clone());
        Ok(doc)
    }

    /// Fetches `url` from the network (or the preload map), bypassing the cache.
    async fn fetch(&self, url: &str) -> BrokerResult<Arc<Value>> {
        if let Ok(doc) = self.preload.load(url) {
            return Ok(doc);
        }
        let Some(fetcher) = &self.fetcher else {
            return Err(NgsiError::context_not_available(format!(
                "@context `{url}` is not preloaded and remote contexts are disabled (ngsi.fetch_remote_contexts)"
            ))
            .into());
        };
        let fetched = fetcher
            .get(url, "application/ld+json, application/json")
            .await
            .map_err(|e| NgsiError::context_not_available(format!("@context `{url}`: {e}")))?;
        let doc: Value = serde_json::from_slice(&fetched.body).map_err(|e| {
            NgsiError::context_not_available(format!("@context `{url}` is not JSON: {e}"))
        })?;
        if doc.get("@context").is_none() {
            return Err(NgsiError::context_not_available(format!(
                "the document at `{url}` has no @context member"
            ))
            .into());
        }
        Ok(Arc::new(doc))
    }

    /// Records a use of the remote context `url` (document `doc`) in the cache.
    fn remember(&self, url: &str, doc: Arc<Value>) {
        let now = crate::ops::now();
        if let Ok(mut cache) = self.cache.lock() {
            if let Some(entry) = cache.get_mut(url) {
                entry.hits += 1;
                entry.last_used = now;
                return;
            }
            while cache.len() >= self.max_cached {
                cache.shift_remove_index(0);
            }
            cache.insert(
                url.to_owned(),
                CachedContext {
                    doc,
                    created_at: now,
                    hits: 1,
                    last_used: now,
                },
            );
        }
    }

    /// Counts a use of the cached URLs named at the top of a user context (a compiled
    /// context was reused, so the documents were not looked up again).
    fn touch(&self, user: &Value) {
        let urls: Vec<&str> = match user {
            Value::String(u) => vec![u.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => return,
        };
        let now = crate::ops::now();
        if let Ok(mut cache) = self.cache.lock() {
            for url in urls {
                if let Some(entry) = cache.get_mut(url) {
                    entry.hits += 1;
                    entry.last_used = now;
                }
            }
        }
    }

    /// Counts one use of the cached context `url` (serving it counts too).
    pub fn count_hit(&self, url: &str) {
        self.touch(&Value::String(url.to_owned()));
    }

    /// Fetches a cached context again and replaces the cached copy. If the fetch fails, the
    /// cached copy is kept and the error returned (`LdContextNotAvailable`).
    pub async fn reload(&self, url: &str) -> BrokerResult<()> {
        let doc = self.fetch(url).await?;
        self.invalidate();
        let now = crate::ops::now();
        if let Ok(mut cache) = self.cache.lock() {
            let hits = cache.get(url).map_or(0, |e| e.hits);
            cache.insert(
                url.to_owned(),
                CachedContext {
                    doc,
                    created_at: now,
                    hits,
                    last_used: now,
                },
            );
        }
        Ok(())
    }

    /// Whether `url` is in the cache.
    pub fn is_cached(&self, url: &str) -> bool {
        self.cache
            .lock()
            .map(|c| c.contains_key(url))
            .unwrap_or(false)
    }

    /// Keeps an inline `@context` (`user`, not a single URL) as an `ImplicitlyCreated`
    /// hosted context and returns its URL (`base` is this broker's scheme and authority,
    /// e.g. `http://broker.example`). An identical implicit context is reused.
    pub async fn implicit(&self, user: &Value, base: &str) -> BrokerResult<String> {
        let doc = serde_json::json!({ "@context": user }).to_string();
        for rec in self.store.contexts().await? {
            if rec.kind == KIND_IMPLICIT && rec.doc == doc {
                return Ok(rec
                    .url
                    .unwrap_or_else(|| format!("{base}{HOSTED_PATH}{}", rec.id)));
            }
        }
        let id = format!("urn:ngsi-ld:jsonldContext:{}", uuid::Uuid::new_v4());
        let url = format!("{base}{HOSTED_PATH}{id}");
        self.store
            .put_context(store::ContextRecord {
                id,
                url: Some(url.clone()),
                kind: KIND_IMPLICIT.into(),
                doc,
                created_at: store::UnixMillis(crate::ops::now().timestamp_millis()),
            })
            .await?;
        Ok(url)
    }

    /// The cached remote contexts (URL, entry).
    pub fn cached(&self) -> Vec<(String, CachedContext)> {
        self.cache
            .lock()
            .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// When this resolver started (the `createdAt` shown for the core contexts).
    pub fn started_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.started_at
    }

    /// Drops a cached remote context; true if it was cached.
    pub fn evict(&self, url: &str) -> bool {
        self.invalidate();
        self.cache
            .lock()
            .map(|mut c| c.shift_remove(url).is_some())
            .unwrap_or(false)
    }

    /// Forgets every compiled context (after hosted contexts change).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.compiled.lock() {
            c.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Requests without a user context share one core context, and requests naming the same
    /// context share its compiled form, so that a batch's items share one name memo.
    #[tokio::test]
    async fn requests_with_the_same_context_share_it() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn NgsiStore> =
            Arc::new(store_sqlite::SqliteStore::open(dir.path()).unwrap());
        let resolver = ContextResolver::new(PreloadMap::new(), None, store, 4);
        let core = resolver.resolve(None).await.unwrap();
        assert!(Arc::ptr_eq(&core, &resolver.resolve(None).await.unwrap()));
        assert_eq!(core.core_version(), Some(CoreContext::V1_9));
        let user = serde_json::json!({"speed": "urn:x:speed"});
        let first = resolver.resolve(Some(&user)).await.unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &resolver.resolve(Some(&user)).await.unwrap()
        ));
        assert_eq!(first.expand_term("speed").as_deref(), Some("urn:x:speed"));
        assert!(!Arc::ptr_eq(&first, &core));
    }
}
