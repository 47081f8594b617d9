//! The NGSI-LD core contexts, pinned into the binary (never downloaded).
//!
//! Provenance of each file is in `contexts/SOURCE.md`. Documents and compiled contexts are built once
//! per process (`OnceLock`): parsing an embedded constant is not I/O.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::{Context, NoLoader, Run};

/// The NGSI-LD namespace, `ngsi-ld:` in the core context.
pub const NGSI_LD_NS: &str = "https://uri.etsi.org/ngsi-ld/";
/// The core context's `@vocab`: where unknown terms land (spec 6.3.5).
pub const DEFAULT_CONTEXT_BASE: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

const V1_6_SOURCE: &str = include_str!("../../contexts/ngsi-ld-core-context-v1.6.jsonld");
const V1_8_SOURCE: &str = include_str!("../../contexts/ngsi-ld-core-context-v1.8.jsonld");
const V1_9_SOURCE: &str = include_str!("../../contexts/ngsi-ld-core-context-v1.9.jsonld");

/// A pinned version of the NGSI-LD core context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoreContext {
    /// ETSI GS CIM 009 V1.6.1 (referenced by the test suite's `core_context` variable).
    V1_6,
    /// V1.8.1 (the test suite's data files use it).
    V1_8,
    /// V1.9.1, the latest; also what the unversioned alias URL resolves to.
    V1_9,
}

impl CoreContext {
    /// All pinned versions.
    pub const ALL: [CoreContext; 3] = [CoreContext::V1_6, CoreContext::V1_8, CoreContext::V1_9];
    /// The unversioned alias of the core context.
    pub const ALIAS_URL: &'static str =
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld";

    /// The canonical URL of this version.
    pub fn url(self) -> &'static str {
        match self {
            CoreContext::V1_6 => "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
            CoreContext::V1_8 => "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
            CoreContext::V1_9 => "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld",
        }
    }

    /// The document text exactly as pinned (what `GET` of the URL should serve).
    pub fn source(self) -> &'static str {
        match self {
            CoreContext::V1_6 => V1_6_SOURCE,
            CoreContext::V1_8 => V1_8_SOURCE,
            CoreContext::V1_9 => V1_9_SOURCE,
        }
    }

    /// The version a URL names (the alias resolves to the latest), also accepting `http:`.
    pub fn from_url(url: &str) -> Option<CoreContext> {
        let normalized;
        let url = match url.strip_prefix("http:") {
            Some(rest) => {
                normalized = format!("https:{rest}");
                normalized.as_str()
            }
            None => url,
        };
        // Stellio publishes byte copies of the core contexts that the ETSI suite's data files reference.
        let url = url
            .strip_prefix("https://easy-global-market.github.io/ngsild-api-data-models/shared-jsonld-contexts/")
            .map_or(url, |file| match file {
                "ngsi-ld-core-context-v1.6.jsonld" => CoreContext::V1_6.url(),
                "ngsi-ld-core-context-v1.8.jsonld" => CoreContext::V1_8.url(),
                "ngsi-ld-core-context-v1.9.jsonld" => CoreContext::V1_9.url(),
                _ => url,
            });
        let matches = |candidate: &str| url == candidate;
        if matches(Self::ALIAS_URL) {
            return Some(CoreContext::V1_9);
        }
        Self::ALL.into_iter().find(|v| matches(v.url()))
    }

    fn index(self) -> usize {
        match self {
            CoreContext::V1_6 => 0,
            CoreContext::V1_8 => 1,
            CoreContext::V1_9 => 2,
        }
    }

    /// The parsed document.
    pub fn document(self) -> Arc<Value> {
        static DOCS: [OnceLock<Arc<Value>>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        DOCS[self.index()]
            .get_or_init(|| Arc::new(serde_json::from_str(self.source()).unwrap_or(Value::Null)))
            .clone()
    }

    /// The compiled context of this version, with every term protected (the spec treats the core as
    /// protected even where a copy lacks `@protected`).
    pub fn compiled(self) -> &'static Context {
        static COMPILED: [OnceLock<Context>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        COMPILED[self.index()].get_or_init(|| {
            let doc = self.document();
            let inner = doc.get("@context").cloned().unwrap_or(Value::Null);
            let mut run = Run {
                loader: &NoLoader,
                remote_stack: Vec::new(),
                terms_created: 0,
                core_seen: None,
            };
            let mut ctx = Context::empty()
                .process_with(&inner, &mut run)
                .unwrap_or_default();
            for def in Arc::make_mut(&mut ctx.terms).values_mut() {
                def.protected = true;
            }
            // Build the indexes before naming the core: `rebuild_inverse` would otherwise look up this
            // very context while it is being initialised.
            ctx.rebuild_inverse();
            ctx.core = Some(self);
            ctx
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pinned_core_compiles_with_its_vocab() {
        for v in CoreContext::ALL {
            let c = v.compiled();
            assert!(c.len() > 140, "{v:?} has {} terms", c.len());
            assert_eq!(c.vocab(), Some(DEFAULT_CONTEXT_BASE));
            assert_eq!(
                c.expand_term("Relationship").as_deref(),
                Some("https://uri.etsi.org/ngsi-ld/Relationship")
            );
            assert_eq!(CoreContext::from_url(v.url()), Some(v));
        }
        assert_eq!(
            CoreContext::from_url(CoreContext::ALIAS_URL),
            Some(CoreContext::V1_9)
        );
        assert_eq!(
            CoreContext::from_url(
                "http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
            ),
            Some(CoreContext::V1_8)
        );
    }
}
