//! `@context` resolution for requests: the pinned core contexts, the operator's preload map,
//! contexts hosted by this broker (`/jsonldContexts`), and remote contexts fetched through
//! the egress policy into a bounded cache. Compiled contexts are cached by their JSON text.

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
}

/// Resolves request contexts.
pub struct ContextResolver {
    preload: PreloadMap,
    fetcher: Option<egress::Fetcher>,
    store: Arc<dyn NgsiStore>,
    max_cached: usize,
    cache: Mutex<IndexMap<String, CachedContext>>,
    compiled: Mutex<HashMap<String, Arc<Context>>>,
}

struct Loader<'a> {
    preload: &'a PreloadMap,
    docs: &'a HashMap<String, Arc<Value>>,
    missing: RefCell<Vec<String>>,
}

impl ContextLoader for Loader<'_> {
    fn load(&self, url: &str) -> ngsi_ld::Result<Arc<Value>> {
        if let Ok(doc) = self.preload.load(url) {
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
        }
    }

    /// The context of a request whose user context is `user` (a Link URL as a JSON string,
    /// or a body `@context` value).
    pub async fn resolve(&self, user: Option<&Value>) -> BrokerResult<Arc<Context>> {
        let Some(user) = user else {
            return Ok(Arc::new(Context::core(CoreContext::V1_9)));
        };
        let key = user.to_string();
        if let Some(ctx) = self.compiled.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(ctx);
        }
        let mut docs: HashMap<String, Arc<Value>> = HashMap::new();
        for _round in 0..16 {
            let loader = Loader {
                preload: &self.preload,
                docs: &docs,
                missing: RefCell::new(Vec::new()),
            };
            match Context::for_request(Some(user), CoreContext::V1_9, &loader) {
                Ok(ctx) => {
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
            return Ok(entry.doc.clone());
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
        let doc = Arc::new(doc);
        if let Ok(mut cache) = self.cache.lock() {
            while cache.len() >= self.max_cached {
                cache.shift_remove_index(0);
            }
            cache.insert(
                url.to_owned(),
                CachedContext {
                    doc: doc.clone(),
                    created_at: crate::ops::now(),
                    hits: 1,
                },
            );
        }
        Ok(doc)
    }

    /// The cached remote contexts (URL, entry).
    pub fn cached(&self) -> Vec<(String, CachedContext)> {
        self.cache
            .lock()
            .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
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
