//! Offline `@context` preload: which well-known URLs are served from which local document.
//!
//! The core crate does no I/O, so this module only knows *names*: the binary reads the files (from the
//! shared data folder or a configured directory) and hands their contents to [`PreloadMap::insert_source`].
//! The ETSI test-suite contexts are small and pinned into the crate as well, because the conformance run
//! needs them in every deployment that enables it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::ContextLoader;
use crate::error::{NgsiError, Result};

/// The Smart Data Models repositories whose `context.jsonld` the platform ships, with the file name
/// under `smart-data-models/_contexts/`.
pub const SMART_DATA_MODELS: &[(&str, &str)] = &[
    (
        "dataModel.Transportation",
        "dataModel.Transportation.context.jsonld",
    ),
    ("dataModel.Device", "dataModel.Device.context.jsonld"),
    ("dataModel.Alert", "dataModel.Alert.context.jsonld"),
];

/// The URLs under which a Smart Data Models repository publishes its context.
pub fn smart_data_model_urls(repo: &str) -> [String; 3] {
    [
        format!("https://raw.githubusercontent.com/smart-data-models/{repo}/master/context.jsonld"),
        format!("https://smart-data-models.github.io/{repo}/context.jsonld"),
        format!("https://raw.githubusercontent.com/smart-data-models/{repo}/main/context.jsonld"),
    ]
}

/// Every (URL, file name) pair for the Smart Data Models contexts: the binary reads each file name from
/// its `_contexts` directory and calls [`PreloadMap::insert_source`].
pub fn smart_data_models_preload() -> Vec<(String, &'static str)> {
    SMART_DATA_MODELS
        .iter()
        .flat_map(|(repo, file)| {
            smart_data_model_urls(repo)
                .into_iter()
                .map(move |url| (url, *file))
        })
        .collect()
}

const TEST_SUITE: &str = include_str!("../../contexts/ngsi-ld-test-suite.jsonld");
const TEST_SUITE_COMPOUND: &str = include_str!("../../contexts/ngsi-ld-test-suite-compound.jsonld");
const EGM_COMPOUND_V1_8: &str = include_str!("../../contexts/ngsildTestSuiteV1.8-compound.jsonld");

/// The ETSI NGSI-LD test suite's own contexts: (URL, document text). Both the ETSI Forge URLs (the
/// ETSI import) and the fork's GitHub URLs map to the pinned copies. The fork's compound context
/// names the ETSI Forge URL of the suite context, which is preloaded too, so one text serves both.
pub fn test_suite_urls() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/ngsi-ld-test-suite.jsonld",
            TEST_SUITE,
        ),
        (
            "https://forge.etsi.org/rep/cim/ngsi-ld-test-suite/-/raw/develop/resources/jsonld-contexts/ngsi-ld-test-suite-compound.jsonld",
            TEST_SUITE_COMPOUND,
        ),
        (
            "https://raw.githubusercontent.com/marek-mraz/ngsi-ld-test-suite/main/resources/jsonld-contexts/ngsi-ld-test-suite.jsonld",
            TEST_SUITE,
        ),
        (
            "https://raw.githubusercontent.com/marek-mraz/ngsi-ld-test-suite/main/resources/jsonld-contexts/ngsi-ld-test-suite-compound.jsonld",
            TEST_SUITE_COMPOUND,
        ),
        (
            "https://easy-global-market.github.io/ngsild-api-data-models/ngsildTestSuite/ngsildTestSuiteV1.8-compound.jsonld",
            EGM_COMPOUND_V1_8,
        ),
        (
            "https://easy-global-market.github.io/ngsild-api-data-models/ngsildTestSuite/ngsildTestSuite.jsonld",
            TEST_SUITE,
        ),
    ]
}

/// A URL -> parsed document map; implements [`ContextLoader`].
#[derive(Debug, Default, Clone)]
pub struct PreloadMap {
    documents: HashMap<String, Arc<Value>>,
}

impl PreloadMap {
    /// An empty map.
    pub fn new() -> Self {
        PreloadMap::default()
    }

    /// A map with the pinned test-suite contexts (the core contexts are always built in).
    pub fn with_test_suite() -> Self {
        let mut map = PreloadMap::new();
        for (url, text) in test_suite_urls() {
            // The pinned texts are valid JSON (checked by a test); a failure here would only drop one entry.
            let _ = map.insert_source(url, text);
        }
        map
    }

    /// Parse `text` and serve it for `url`. Fails with `LdContextNotAvailable` if it is not JSON with
    /// an `@context` member, so a broken file is never cached.
    pub fn insert_source(&mut self, url: &str, text: &str) -> Result<()> {
        let doc: Value = serde_json::from_str(text).map_err(|e| {
            NgsiError::context_not_available(format!(
                "preloaded @context for `{url}` is not JSON: {e}"
            ))
        })?;
        self.insert(url, doc)
    }

    /// Serve the parsed `document` for `url`.
    pub fn insert(&mut self, url: &str, document: Value) -> Result<()> {
        if document.get("@context").is_none() {
            return Err(NgsiError::context_not_available(format!(
                "preloaded document for `{url}` has no @context member"
            )));
        }
        self.documents.insert(url.to_owned(), Arc::new(document));
        Ok(())
    }

    /// Number of URLs served.
    pub fn len(&self) -> usize {
        self.documents.len()
    }

    /// True if no URL is served.
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// The URLs served.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.documents.keys().map(String::as_str)
    }
}

impl ContextLoader for PreloadMap {
    fn load(&self, url: &str) -> Result<Arc<Value>> {
        self.documents.get(url).cloned().ok_or_else(|| {
            NgsiError::context_not_available(format!("@context `{url}` is not available offline"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Context, CoreContext};
    use serde_json::json;

    #[test]
    fn the_test_suite_compound_context_resolves_offline() {
        let map = PreloadMap::with_test_suite();
        assert_eq!(map.len(), 6);
        let url = test_suite_urls()[1].0;
        let ctx =
            Context::for_request(Some(&json!(url)), CoreContext::V1_9, &map).expect("resolves");
        assert_eq!(ctx.core_version(), Some(CoreContext::V1_8));
        assert_eq!(
            ctx.expand_term("speed").as_deref(),
            Some("https://ngsi-ld-test-suite/context#speed")
        );
        assert_eq!(
            ctx.compact_iri("https://ngsi-ld-test-suite/context#Vehicle"),
            "Vehicle"
        );
    }

    #[test]
    fn documents_without_context_are_refused() {
        let mut map = PreloadMap::new();
        assert!(map.insert_source("https://x.org/a", "{\"a\":1}").is_err());
        assert!(map.insert_source("https://x.org/a", "not json").is_err());
        assert!(map.is_empty());
        assert_eq!(smart_data_models_preload().len(), 9);
    }
}
