//! JSON-LD `@context` processing for what NGSI-LD needs: a compiled term map.
//!
//! NGSI-LD uses JSON-LD only to turn short names into IRIs and back. A general JSON-LD processor per
//! request is both slow and more than the spec asks, so this module implements the JSON-LD 1.1 context
//! processing algorithm for the subset that real NGSI-LD contexts use: terms, prefixes and compact IRIs,
//! `@vocab`, `@protected`, `@version`, arrays of contexts, remote references (resolved through a
//! caller-supplied [`ContextLoader`]; this crate never fetches), and term definitions with `@id`, `@type`
//! (`@id`, `@vocab`, `@json` or a datatype IRI), `@container`, `@prefix`, `@language`, `@nest` and
//! `@index`. Scoped contexts (`@context` inside a term definition, as in the v1.9 core context) are
//! validated and kept but not applied, because NGSI-LD never nests node objects under such a term.
//! `@import` and `@reverse` are rejected with `BadRequestData` rather than guessed at.
//!
//! The result, [`Context`], answers [`Context::expand_term`] (short name to IRI, with the NGSI-LD
//! default-context fallback that the core context's `@vocab` provides) and [`Context::compact_iri`]
//! (IRI to the shortest term, `@vocab`-relative suffix or compact IRI, as JSON-LD compaction selects it).
//! Both are differential-tested against pyld (see `tests/jsonld_oracle.rs`).
//!
//! The NGSI-LD core context is always appended last to the user's context (spec 6.3.5) and always wins,
//! even over protected user terms. If the user's context already names a core context (any version),
//! that one is used and no second core is appended, so a v1.8 user context keeps v1.8 semantics.

mod core;
pub mod preload;

pub use self::core::{CoreContext, DEFAULT_CONTEXT_BASE, NGSI_LD_NS};

use std::collections::{BTreeMap, HashMap};

/// Term maps hash with foldhash (seeded at random per process): every attribute name of every
/// payload is looked up here, and SipHash was a visible part of parsing.
pub(crate) type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::{NgsiError, Result};
use crate::iri::{is_absolute_iri, is_gen_delim, is_keyword, looks_like_keyword};

/// Remote contexts may reference other remote contexts; beyond this depth we assume a cycle or abuse.
pub const MAX_REMOTE_DEPTH: usize = 16;
/// Upper bound on the number of term definitions one processing run may create (fuzzing and abuse guard).
pub const MAX_TERMS: usize = 100_000;

/// Resolves a remote `@context` URL to the JSON document found there.
///
/// The core crate never performs I/O: the server supplies a loader backed by its preload map, cache
/// and (optionally) an outbound fetcher. A loader that cannot produce the document returns
/// [`ErrorKind::LdContextNotAvailable`](crate::ErrorKind::LdContextNotAvailable).
pub trait ContextLoader {
    /// The whole document at `url` (an object with an `@context` member).
    fn load(&self, url: &str) -> Result<Arc<Value>>;
}

/// A loader that knows no document: every remote reference fails with `LdContextNotAvailable`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLoader;

impl ContextLoader for NoLoader {
    fn load(&self, url: &str) -> Result<Arc<Value>> {
        Err(NgsiError::context_not_available(format!(
            "@context `{url}` is not available (no loader)"
        )))
    }
}

impl ContextLoader for HashMap<String, Arc<Value>> {
    fn load(&self, url: &str) -> Result<Arc<Value>> {
        self.get(url).cloned().ok_or_else(|| {
            NgsiError::context_not_available(format!("@context `{url}` is not available"))
        })
    }
}

impl ContextLoader for BTreeMap<String, Arc<Value>> {
    fn load(&self, url: &str) -> Result<Arc<Value>> {
        self.get(url).cloned().ok_or_else(|| {
            NgsiError::context_not_available(format!("@context `{url}` is not available"))
        })
    }
}

impl<L: ContextLoader + ?Sized> ContextLoader for &L {
    fn load(&self, url: &str) -> Result<Arc<Value>> {
        (**self).load(url)
    }
}

/// How a term coerces string values (`@type` in a term definition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeMapping {
    /// `@id`: strings are IRIs (relationship objects, `datasetId`).
    Id,
    /// `@vocab`: strings are vocabulary terms, expanded like property names (VocabProperty values).
    Vocab,
    /// `@json`: the value is an opaque JSON literal (JsonProperty).
    Json,
    /// `@none`.
    None,
    /// A datatype IRI such as `https://uri.etsi.org/ngsi-ld/DateTime`.
    Datatype(String),
}

/// One compiled term definition.
#[derive(Debug, Clone, PartialEq)]
pub struct TermDefinition {
    /// The IRI (or keyword) the term maps to; `None` for a term explicitly mapped to `null`.
    pub iri: Option<String>,
    /// Value coercion.
    pub type_mapping: Option<TypeMapping>,
    /// `@container` values, sorted (e.g. `["@list"]`, `["@language"]`).
    pub container: Vec<String>,
    /// Whether the term may be used as the prefix of a compact IRI.
    pub prefix: bool,
    /// Whether the term is protected against redefinition.
    pub protected: bool,
    /// `@language` of the term, if any.
    pub language: Option<Option<String>>,
    /// A scoped context, kept verbatim (not applied; see the module docs).
    pub scoped_context: Option<Value>,
    /// `@index` of the term, if any.
    pub index: Option<String>,
    /// `@nest` of the term, if any.
    pub nest: Option<String>,
}

impl TermDefinition {
    fn same_as(&self, other: &TermDefinition) -> bool {
        // Protected redefinition is allowed when only `protected` differs (JSON-LD 1.1, 4.2.2 step 27).
        self.iri == other.iri
            && self.type_mapping == other.type_mapping
            && self.container == other.container
            && self.prefix == other.prefix
            && self.language == other.language
            && self.scoped_context == other.scoped_context
            && self.index == other.index
            && self.nest == other.nest
    }
}

/// A compiled active context.
///
/// Cloning is cheap: the term table and the compaction indexes are shared (`Arc`) and copied on
/// write, so handing out the compiled core context per request costs a few reference counts.
#[derive(Debug, Clone, Default)]
pub struct Context {
    terms: Arc<FastMap<TermDefinition>>,
    vocab: Option<String>,
    default_language: Option<String>,
    /// IRI -> terms mapping to it, for compaction; rebuilt lazily after processing.
    inverse: Arc<FastMap<Vec<String>>>,
    /// Prefix terms (prefix flag set), sorted shortest then lexicographically, for compact IRIs.
    prefixes: Arc<Vec<String>>,
    /// The core context this context was completed with, if any.
    core: Option<CoreContext>,
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        self.terms == other.terms
            && self.vocab == other.vocab
            && self.default_language == other.default_language
    }
}

/// Scratch state of one context-processing run.
struct Run<'a> {
    loader: &'a dyn ContextLoader,
    remote_stack: Vec<String>,
    terms_created: usize,
    /// The last core context referenced (directly or through remote contexts), if any.
    core_seen: Option<CoreContext>,
}

impl Context {
    /// An empty context (no terms, no `@vocab`).
    pub fn empty() -> Self {
        Context::default()
    }

    /// The compiled core context of `version` alone (what applies when a request carries no `@context`).
    pub fn core(version: CoreContext) -> Context {
        version.compiled().clone()
    }

    /// The context of a request: `user` (a `Link` header URL, a body `@context` value, or `None`)
    /// followed by the core context `core`, which is appended last and always wins (spec 6.3.5).
    /// If `user` already references a core context, no second one is appended.
    pub fn for_request(
        user: Option<&Value>,
        core: CoreContext,
        loader: &dyn ContextLoader,
    ) -> Result<Context> {
        let Some(user) = user else {
            return Ok(Context::core(core));
        };
        let mut run = Run {
            loader,
            remote_stack: Vec::new(),
            terms_created: 0,
            core_seen: None,
        };
        let mut ctx = Context::empty().process_with(user, &mut run)?;
        if let Some(named_core) = run.core_seen {
            ctx.core = Some(named_core);
        } else {
            ctx = ctx.apply_core(core)?;
        }
        ctx.rebuild_inverse();
        Ok(ctx)
    }

    /// Process `local` (a context value: object, IRI string, array or `null`) on top of `self`,
    /// exactly as JSON-LD context processing does, without appending the core context.
    pub fn process(&self, local: &Value, loader: &dyn ContextLoader) -> Result<Context> {
        let mut run = Run {
            loader,
            remote_stack: Vec::new(),
            terms_created: 0,
            core_seen: None,
        };
        let mut ctx = self.process_with(local, &mut run)?;
        ctx.rebuild_inverse();
        Ok(ctx)
    }

    /// Which core context was used to complete this context, if any.
    pub fn core_version(&self) -> Option<CoreContext> {
        self.core
    }

    /// The `@vocab` mapping, if any.
    pub fn vocab(&self) -> Option<&str> {
        self.vocab.as_deref()
    }

    /// The term definition of `term`, if any.
    pub fn term(&self, term: &str) -> Option<&TermDefinition> {
        self.terms.get(term)
    }

    /// Number of term definitions.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// True if the context defines no term.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// All defined terms and their definitions (unordered).
    pub fn terms(&self) -> impl Iterator<Item = (&str, &TermDefinition)> {
        self.terms.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn apply_core(self, core: CoreContext) -> Result<Context> {
        // The core is processed last and overrides even protected user terms (override-protected).
        let mut ctx = self.merge_core(core, true)?;
        ctx.core = Some(core);
        Ok(ctx)
    }

    /// Processing a core context document, without reprocessing it: its compiled terms are merged in.
    /// This equals JSON-LD processing of the document because every core term is defined from the
    /// core's own prefixes, absolute IRIs or its own `@vocab`.
    fn merge_core(mut self, core: CoreContext, override_protected: bool) -> Result<Context> {
        let compiled = core.compiled();
        if self.terms.is_empty() {
            self.terms = Arc::clone(&compiled.terms);
        } else {
            let terms = Arc::make_mut(&mut self.terms);
            for (term, def) in compiled.terms.iter() {
                if !override_protected
                    && let Some(previous) = terms.get(term)
                    && previous.protected
                    && !previous.same_as(def)
                {
                    return Err(NgsiError::bad_data(format!(
                        "protected term redefinition: `{term}`"
                    )));
                }
                terms.insert(term.clone(), def.clone());
            }
        }
        if compiled.vocab.is_some() {
            self.vocab = compiled.vocab.clone();
        }
        Ok(self)
    }

    fn process_with(&self, local: &Value, run: &mut Run<'_>) -> Result<Context> {
        let mut result = self.clone();
        let items: &[Value] = match local {
            Value::Array(items) => items,
            other => std::slice::from_ref(other),
        };
        for item in items {
            match item {
                Value::Null => {
                    if result.terms.values().any(|d| d.protected) {
                        return Err(NgsiError::bad_data(
                            "invalid context nullification: the active context has protected terms",
                        ));
                    }
                    result = Context::empty();
                }
                Value::String(url) => result = result.process_remote(url, run)?,
                Value::Object(map) => result.process_object(map, run)?,
                other => {
                    return Err(NgsiError::bad_data(format!(
                        "invalid local context: expected an object, a string or null, found {}",
                        json_kind(other)
                    )));
                }
            }
        }
        Ok(result)
    }

    fn process_remote(self, url: &str, run: &mut Run<'_>) -> Result<Context> {
        if run.remote_stack.iter().any(|u| u == url) {
            return Err(NgsiError::bad_data(format!(
                "recursive context inclusion of `{url}`"
            )));
        }
        if run.remote_stack.len() >= MAX_REMOTE_DEPTH {
            return Err(NgsiError::bad_data(format!(
                "context overflow: more than {MAX_REMOTE_DEPTH} nested remote contexts at `{url}`"
            )));
        }
        if !is_absolute_iri(url) {
            return Err(NgsiError::bad_data(format!(
                "@context reference `{url}` is not an absolute IRI"
            )));
        }
        if let Some(core) = CoreContext::from_url(url) {
            run.core_seen = Some(core);
            return self.merge_core(core, false);
        }
        let document: Arc<Value> = run.loader.load(url)?;
        let Some(inner) = document.get("@context") else {
            return Err(NgsiError::context_not_available(format!(
                "document at `{url}` is not a JSON-LD context (no @context member)"
            )));
        };
        run.remote_stack.push(url.to_owned());
        let processed = self.process_with(inner, run);
        run.remote_stack.pop();
        processed
    }

    fn process_object(&mut self, map: &Map<String, Value>, run: &mut Run<'_>) -> Result<()> {
        if let Some(version) = map.get("@version")
            && version.as_f64() != Some(1.1)
        {
            return Err(NgsiError::bad_data(format!(
                "invalid @version value {version}"
            )));
        }
        if map.contains_key("@import") {
            return Err(NgsiError::bad_data("@import in @context is not supported"));
        }
        if let Some(vocab) = map.get("@vocab") {
            match vocab {
                Value::Null => self.vocab = None,
                Value::String(v) => {
                    let expanded = if v.is_empty() {
                        Some(String::new())
                    } else {
                        self.expand_iri_for_definition(v, true, map, &mut HashMap::new(), run)?
                    };
                    match expanded {
                        Some(iri)
                            if iri.is_empty() || is_absolute_iri(&iri) || iri.starts_with("_:") =>
                        {
                            self.vocab = Some(iri)
                        }
                        _ => {
                            return Err(NgsiError::bad_data(format!(
                                "invalid @vocab mapping `{v}`"
                            )));
                        }
                    }
                }
                other => {
                    return Err(NgsiError::bad_data(format!(
                        "invalid @vocab mapping {other}"
                    )));
                }
            }
        }
        if let Some(lang) = map.get("@language") {
            match lang {
                Value::Null => self.default_language = None,
                Value::String(l) => self.default_language = Some(l.to_ascii_lowercase()),
                other => {
                    return Err(NgsiError::bad_data(format!(
                        "invalid default language {other}"
                    )));
                }
            }
        }
        let protected_default = match map.get("@protected") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(NgsiError::bad_data(format!(
                    "invalid @protected value {other}"
                )));
            }
        };
        let mut defined: HashMap<String, bool> = HashMap::new();
        for key in map.keys() {
            if matches!(
                key.as_str(),
                "@base"
                    | "@direction"
                    | "@import"
                    | "@language"
                    | "@propagate"
                    | "@protected"
                    | "@version"
                    | "@vocab"
            ) {
                continue;
            }
            self.create_term_definition(map, key, &mut defined, protected_default, run)?;
        }
        Ok(())
    }

    /// JSON-LD 1.1 "Create Term Definition" (4.2.2), for the supported subset.
    fn create_term_definition(
        &mut self,
        local: &Map<String, Value>,
        term: &str,
        defined: &mut HashMap<String, bool>,
        protected_default: bool,
        run: &mut Run<'_>,
    ) -> Result<()> {
        match defined.get(term) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(NgsiError::bad_data(format!(
                    "cyclic IRI mapping for term `{term}`"
                )));
            }
            None => {}
        }
        if term.is_empty() {
            return Err(NgsiError::bad_data("invalid term definition: empty term"));
        }
        let Some(value) = local.get(term) else {
            return Ok(());
        };
        run.terms_created += 1;
        if run.terms_created > MAX_TERMS {
            return Err(NgsiError::bad_data(format!(
                "@context defines more than {MAX_TERMS} terms"
            )));
        }
        defined.insert(term.to_owned(), false);
        if is_keyword(term) && term != "@type" {
            return Err(NgsiError::bad_data(format!(
                "keyword redefinition: `{term}`"
            )));
        }
        if looks_like_keyword(term) && term != "@type" {
            // JSON-LD ignores terms that look like future keywords.
            defined.insert(term.to_owned(), true);
            return Ok(());
        }
        let previous = Arc::make_mut(&mut self.terms).remove(term);

        let (simple, map) = match value {
            Value::Null => (false, None),
            Value::String(_) => (true, None),
            Value::Object(m) => (false, Some(m)),
            other => {
                return Err(NgsiError::bad_data(format!(
                    "invalid term definition for `{term}`: expected a string, an object or null, found {}",
                    json_kind(other)
                )));
            }
        };
        let mut def = TermDefinition {
            iri: None,
            type_mapping: None,
            container: Vec::new(),
            prefix: false,
            protected: protected_default,
            language: None,
            scoped_context: None,
            index: None,
            nest: None,
        };
        let id_value: Option<&Value> = match (value, map) {
            (Value::String(_), _) => Some(value),
            (_, Some(m)) => m.get("@id"),
            _ => None,
        };
        let explicit_null = value.is_null() || matches!(id_value, Some(Value::Null));

        if let Some(m) = map {
            for key in m.keys() {
                if !matches!(
                    key.as_str(),
                    "@id"
                        | "@type"
                        | "@container"
                        | "@protected"
                        | "@prefix"
                        | "@language"
                        | "@context"
                        | "@index"
                        | "@nest"
                        | "@direction"
                        | "@reverse"
                ) {
                    return Err(NgsiError::bad_data(format!(
                        "invalid term definition for `{term}`: unknown member `{key}`"
                    )));
                }
            }
            if m.contains_key("@reverse") {
                return Err(NgsiError::bad_data(format!(
                    "term `{term}`: @reverse is not supported"
                )));
            }
            if let Some(p) = m.get("@protected") {
                def.protected = p.as_bool().ok_or_else(|| {
                    NgsiError::bad_data(format!("term `{term}`: invalid @protected value {p}"))
                })?;
            }
            if let Some(t) = m.get("@type") {
                let Value::String(t) = t else {
                    return Err(NgsiError::bad_data(format!(
                        "term `{term}`: invalid type mapping {t}"
                    )));
                };
                let expanded = self.expand_iri_for_definition(t, true, local, defined, run)?;
                def.type_mapping = Some(match expanded.as_deref() {
                    Some("@id") => TypeMapping::Id,
                    Some("@vocab") => TypeMapping::Vocab,
                    Some("@json") => TypeMapping::Json,
                    Some("@none") => TypeMapping::None,
                    Some(iri) if is_absolute_iri(iri) => TypeMapping::Datatype(iri.to_owned()),
                    _ => {
                        return Err(NgsiError::bad_data(format!(
                            "term `{term}`: invalid type mapping `{t}`"
                        )));
                    }
                });
            }
        }

        if let Some(Value::String(id)) = id_value.filter(|_| !explicit_null) {
            if id != term {
                if looks_like_keyword(id) && !is_keyword(id) {
                    // A term mapped to a keyword-like string is ignored (JSON-LD 1.1, 4.2.2 step 14.2.2).
                    defined.insert(term.to_owned(), true);
                    if let Some(previous) = previous {
                        Arc::make_mut(&mut self.terms).insert(term.to_owned(), previous);
                    }
                    return Ok(());
                }
                let iri = self.expand_iri_for_definition(id, true, local, defined, run)?;
                match iri.as_deref() {
                    Some(i) if is_keyword(i) || is_absolute_iri(i) || i.starts_with("_:") => {}
                    _ => {
                        return Err(NgsiError::bad_data(format!(
                            "term `{term}`: invalid IRI mapping `{id}` (not an absolute IRI, compact IRI or keyword)"
                        )));
                    }
                }
                if iri.as_deref() == Some("@context") {
                    return Err(NgsiError::bad_data(format!(
                        "term `{term}`: invalid keyword alias @context"
                    )));
                }
                def.iri = iri;
                if !term.contains(':') && !term.contains('/') && simple {
                    def.prefix = def.iri.as_deref().is_some_and(|i| {
                        i.starts_with("_:") || i.chars().last().is_some_and(is_gen_delim)
                    });
                }
            } else {
                def.iri = Some(self.iri_for_term_itself(term, local, defined, run)?);
            }
        } else if explicit_null {
            def.iri = None;
        } else if let Some(other) = id_value {
            return Err(NgsiError::bad_data(format!(
                "term `{term}`: invalid @id value {other}"
            )));
        } else {
            def.iri = Some(self.iri_for_term_itself(term, local, defined, run)?);
        }

        if let Some(m) = map {
            if let Some(c) = m.get("@container") {
                let items: Vec<&Value> = match c {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                for item in items {
                    match item.as_str() {
                        Some(
                            s @ ("@list" | "@set" | "@index" | "@language" | "@id" | "@type"
                            | "@graph"),
                        ) => def.container.push(s.to_owned()),
                        _ => {
                            return Err(NgsiError::bad_data(format!(
                                "term `{term}`: invalid container mapping {item}"
                            )));
                        }
                    }
                }
                def.container.sort();
                def.container.dedup();
            }
            if let Some(p) = m.get("@prefix") {
                if term.contains(':') || term.contains('/') {
                    return Err(NgsiError::bad_data(format!(
                        "term `{term}`: @prefix on a compact IRI or IRI term"
                    )));
                }
                def.prefix = p.as_bool().ok_or_else(|| {
                    NgsiError::bad_data(format!("term `{term}`: invalid @prefix value {p}"))
                })?;
            }
            if let Some(l) = m.get("@language") {
                def.language = Some(match l {
                    Value::Null => None,
                    Value::String(s) => Some(s.to_ascii_lowercase()),
                    other => {
                        return Err(NgsiError::bad_data(format!(
                            "term `{term}`: invalid @language {other}"
                        )));
                    }
                });
            }
            if let Some(sc) = m.get("@context") {
                if !matches!(
                    sc,
                    Value::Null | Value::String(_) | Value::Object(_) | Value::Array(_)
                ) {
                    return Err(NgsiError::bad_data(format!(
                        "term `{term}`: invalid scoped context {sc}"
                    )));
                }
                def.scoped_context = Some(sc.clone());
            }
            if let Some(i) = m.get("@index") {
                def.index = Some(
                    i.as_str()
                        .ok_or_else(|| {
                            NgsiError::bad_data(format!("term `{term}`: invalid @index {i}"))
                        })?
                        .to_owned(),
                );
            }
            if let Some(n) = m.get("@nest") {
                def.nest = Some(
                    n.as_str()
                        .ok_or_else(|| {
                            NgsiError::bad_data(format!("term `{term}`: invalid @nest {n}"))
                        })?
                        .to_owned(),
                );
            }
        }

        if let Some(previous) = previous
            && previous.protected
        {
            if !def.same_as(&previous) {
                return Err(NgsiError::bad_data(format!(
                    "protected term redefinition: `{term}`"
                )));
            }
            def = previous;
        }
        Arc::make_mut(&mut self.terms).insert(term.to_owned(), def);
        defined.insert(term.to_owned(), true);
        Ok(())
    }

    /// The IRI of a term whose definition has no `@id`: compact IRI, IRI, or `@vocab` + term.
    fn iri_for_term_itself(
        &mut self,
        term: &str,
        local: &Map<String, Value>,
        defined: &mut HashMap<String, bool>,
        run: &mut Run<'_>,
    ) -> Result<String> {
        if let Some((prefix, suffix)) = term.split_once(':').filter(|(p, _)| !p.is_empty()) {
            if local.contains_key(prefix) {
                self.create_term_definition(local, prefix, defined, false, run)?;
            }
            if let Some(prefix_iri) = self.terms.get(prefix).and_then(|d| d.iri.as_deref()) {
                return Ok(format!("{prefix_iri}{suffix}"));
            }
            return Ok(term.to_owned());
        }
        if term.contains('/') {
            return Ok(term.to_owned());
        }
        if term == "@type" {
            return Ok("@type".to_owned());
        }
        match &self.vocab {
            Some(vocab) => Ok(format!("{vocab}{term}")),
            None => Err(NgsiError::bad_data(format!(
                "term `{term}`: invalid IRI mapping (no @id and no @vocab)"
            ))),
        }
    }

    /// JSON-LD IRI expansion during context processing (may create definitions from `local` on demand).
    fn expand_iri_for_definition(
        &mut self,
        value: &str,
        vocab: bool,
        local: &Map<String, Value>,
        defined: &mut HashMap<String, bool>,
        run: &mut Run<'_>,
    ) -> Result<Option<String>> {
        if is_keyword(value) {
            return Ok(Some(value.to_owned()));
        }
        if looks_like_keyword(value) {
            return Ok(None);
        }
        if local.contains_key(value) && defined.get(value) != Some(&true) {
            self.create_term_definition(local, value, defined, false, run)?;
        }
        if let Some(def) = self.terms.get(value)
            && (vocab || def.iri.as_deref().is_some_and(is_keyword))
        {
            return Ok(def.iri.clone());
        }
        if let Some((prefix, suffix)) = value.split_once(':').filter(|(p, _)| !p.is_empty()) {
            if prefix == "_" || suffix.starts_with("//") {
                return Ok(Some(value.to_owned()));
            }
            if local.contains_key(prefix) && defined.get(prefix) != Some(&true) {
                self.create_term_definition(local, prefix, defined, false, run)?;
            }
            if let Some(def) = self.terms.get(prefix)
                && let (Some(iri), true) = (&def.iri, def.prefix)
            {
                return Ok(Some(format!("{iri}{suffix}")));
            }
            if is_absolute_iri(value) {
                return Ok(Some(value.to_owned()));
            }
        }
        if vocab && let Some(v) = &self.vocab {
            return Ok(Some(format!("{v}{value}")));
        }
        Ok(Some(value.to_owned()))
    }

    /// Expand `value` as a vocabulary-relative IRI (attribute names, entity types, `@vocab`-typed values).
    ///
    /// Returns `None` if the term is explicitly mapped to `null` or is a keyword-like string that
    /// JSON-LD ignores. With the NGSI-LD core context, any unknown term expands to
    /// `https://uri.etsi.org/ngsi-ld/default-context/<term>` through the core's `@vocab`.
    pub fn expand_term(&self, value: &str) -> Option<String> {
        if is_keyword(value) {
            return Some(value.to_owned());
        }
        if looks_like_keyword(value) {
            return None;
        }
        if let Some(def) = self.terms.get(value) {
            return def.iri.clone();
        }
        if let Some((prefix, suffix)) = value.split_once(':').filter(|(p, _)| !p.is_empty()) {
            if prefix == "_" || suffix.starts_with("//") {
                return Some(value.to_owned());
            }
            if let Some(TermDefinition {
                iri: Some(iri),
                prefix: true,
                ..
            }) = self.terms.get(prefix)
            {
                return Some(format!("{iri}{suffix}"));
            }
            if is_absolute_iri(value) {
                return Some(value.to_owned());
            }
        }
        match &self.vocab {
            Some(v) => Some(format!("{v}{value}")),
            None => Some(value.to_owned()),
        }
    }

    /// Expand `value` as a document-relative IRI (`@id`-typed values): only compact IRIs with a
    /// prefix term are rewritten, other strings are kept (NGSI-LD has no base IRI).
    pub fn expand_id(&self, value: &str) -> String {
        if let Some((prefix, suffix)) = value.split_once(':').filter(|(p, _)| !p.is_empty())
            && prefix != "_"
            && !suffix.starts_with("//")
            && let Some(TermDefinition {
                iri: Some(iri),
                prefix: true,
                ..
            }) = self.terms.get(prefix)
        {
            return format!("{iri}{suffix}");
        }
        if let Some(TermDefinition { iri: Some(iri), .. }) = self.terms.get(value)
            && is_keyword(iri)
        {
            return iri.clone();
        }
        value.to_owned()
    }

    fn rebuild_inverse(&mut self) {
        if let Some(core) = self.core {
            let compiled = core.compiled();
            if Arc::ptr_eq(&self.terms, &compiled.terms) {
                self.inverse = Arc::clone(&compiled.inverse);
                self.prefixes = Arc::clone(&compiled.prefixes);
                return;
            }
        }
        let mut inverse: FastMap<Vec<String>> = FastMap::default();
        let mut prefixes = Vec::new();
        for (term, def) in self.terms.iter() {
            if let Some(iri) = &def.iri {
                inverse.entry(iri.clone()).or_default().push(term.clone());
                if def.prefix {
                    prefixes.push(term.clone());
                }
            }
        }
        for terms in inverse.values_mut() {
            terms.sort_by(|a, b| shortest_then_least(a, b));
        }
        prefixes.sort_by(|a, b| shortest_then_least(a, b));
        self.inverse = Arc::new(inverse);
        self.prefixes = Arc::new(prefixes);
    }

    /// Compact `iri` as JSON-LD IRI compaction with `vocab = true` does for a node value (an NGSI-LD
    /// attribute, an entity type, a `@vocab` value): a term mapping to it (see `select_term`), else the
    /// `@vocab`-relative suffix, else the shortest compact IRI from a prefix term, else the IRI itself.
    pub fn compact_iri(&self, iri: &str) -> String {
        if let Some(term) = self.select_term(iri) {
            return term.to_owned();
        }
        if let Some(vocab) = &self.vocab
            && let Some(suffix) = iri.strip_prefix(vocab.as_str())
            && !suffix.is_empty()
            && !self.terms.contains_key(suffix)
        {
            return suffix.to_owned();
        }
        let mut best: Option<String> = None;
        for prefix in self.prefixes.iter() {
            let Some(prefix_iri) = self.terms.get(prefix).and_then(|d| d.iri.as_deref()) else {
                continue;
            };
            let Some(suffix) = iri.strip_prefix(prefix_iri) else {
                continue;
            };
            if suffix.is_empty() {
                continue;
            }
            let candidate = format!("{prefix}:{suffix}");
            let usable = match self.terms.get(&candidate) {
                None => true,
                Some(d) => d.iri.as_deref() == Some(iri),
            };
            if usable
                && best
                    .as_ref()
                    .is_none_or(|b| shortest_then_least(&candidate, b).is_lt())
            {
                best = Some(candidate);
            }
        }
        best.unwrap_or_else(|| iri.to_owned())
    }

    /// JSON-LD term selection for a node value (pyld `_select_term` with type/language `@type`/`@id`):
    /// containers `@set` then none; within each, terms typed `@id`, then terms with neither type nor
    /// language mapping (or `@type: @none`); shortest then least. Typed, `@vocab`, `@json`, language
    /// and list/index terms are never chosen for a node.
    fn select_term(&self, iri: &str) -> Option<&str> {
        let candidates = self.inverse.get(iri)?;
        let set = ["@set".to_owned()];
        for container in [&set[..], &[]] {
            let in_container = || {
                candidates
                    .iter()
                    .filter_map(|t| self.terms.get(t).map(|d| (t, d)))
                    .filter(move |(_, d)| d.container.as_slice() == container)
            };
            let id_typed = in_container().find(|(_, d)| d.type_mapping == Some(TypeMapping::Id));
            let untyped = || {
                in_container().find(|(_, d)| {
                    (d.type_mapping.is_none() && d.language.is_none())
                        || d.type_mapping == Some(TypeMapping::None)
                })
            };
            if let Some((t, _)) = id_typed.or_else(untyped) {
                return Some(t.as_str());
            }
        }
        None
    }
}

/// JSON-LD's term ordering: shorter first, then lexicographically least.
fn shortest_then_least(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Context {
        Context::for_request(Some(&v), CoreContext::V1_9, &NoLoader).expect("context processes")
    }

    #[test]
    fn unknown_terms_fall_back_to_the_default_context() {
        let c = Context::core(CoreContext::V1_9);
        assert_eq!(
            c.expand_term("speed").as_deref(),
            Some("https://uri.etsi.org/ngsi-ld/default-context/speed")
        );
        assert_eq!(
            c.compact_iri("https://uri.etsi.org/ngsi-ld/default-context/speed"),
            "speed"
        );
        assert_eq!(
            c.expand_term("Property").as_deref(),
            Some("https://uri.etsi.org/ngsi-ld/Property")
        );
        assert_eq!(
            c.compact_iri("https://uri.etsi.org/ngsi-ld/location"),
            "location"
        );
    }

    #[test]
    fn user_terms_prefixes_and_compact_iris() {
        let c = ctx(
            json!({"ex": "https://example.org/", "speed": "ex:speed", "Car": "https://example.org/types/Car"}),
        );
        assert_eq!(
            c.expand_term("speed").as_deref(),
            Some("https://example.org/speed")
        );
        assert_eq!(
            c.expand_term("ex:brand").as_deref(),
            Some("https://example.org/brand")
        );
        assert_eq!(c.compact_iri("https://example.org/speed"), "speed");
        assert_eq!(c.compact_iri("https://example.org/brand"), "ex:brand");
        assert_eq!(c.compact_iri("https://other.org/x"), "https://other.org/x");
    }

    #[test]
    fn core_wins_over_user_redefinitions() {
        let c =
            ctx(json!({"location": "https://example.org/loc", "@vocab": "https://example.org/v/"}));
        assert_eq!(
            c.expand_term("location").as_deref(),
            Some("https://uri.etsi.org/ngsi-ld/location")
        );
        assert_eq!(c.vocab(), Some(DEFAULT_CONTEXT_BASE));
    }

    #[test]
    fn protected_terms_cannot_be_redefined_after_the_core() {
        let v = json!(["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld", {"type": "https://x.org/t"}]);
        let err = Context::for_request(Some(&v), CoreContext::V1_9, &NoLoader).unwrap_err();
        assert!(err.detail.contains("protected term redefinition"), "{err}");
        // Identical redefinition is allowed.
        let v = json!(["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld", {"type": "@type"}]);
        assert!(Context::for_request(Some(&v), CoreContext::V1_9, &NoLoader).is_ok());
    }

    #[test]
    fn a_named_core_version_is_kept() {
        let v = json!(["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"]);
        let c = Context::for_request(Some(&v), CoreContext::V1_9, &NoLoader).expect("processes");
        assert_eq!(c.core_version(), Some(CoreContext::V1_8));
        // v1.8 maps `attributeCount` to itself, which JSON-LD resolves through `@vocab`.
        assert_eq!(
            c.expand_term("attributeCount").as_deref(),
            Some("https://uri.etsi.org/ngsi-ld/default-context/attributeCount")
        );
    }

    #[test]
    fn remote_contexts_go_through_the_loader() {
        let mut map: HashMap<String, Arc<Value>> = HashMap::new();
        map.insert(
            "https://a.org/ctx.jsonld".into(),
            Arc::new(json!({"@context": {"foo": "https://a.org/foo"}})),
        );
        let c = Context::for_request(
            Some(&json!("https://a.org/ctx.jsonld")),
            CoreContext::V1_9,
            &map,
        )
        .expect("loads");
        assert_eq!(c.expand_term("foo").as_deref(), Some("https://a.org/foo"));
        let err = Context::for_request(Some(&json!("https://b.org/none")), CoreContext::V1_9, &map)
            .unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::LdContextNotAvailable);
    }

    #[test]
    fn cycles_are_detected() {
        let mut map: HashMap<String, Arc<Value>> = HashMap::new();
        map.insert(
            "https://a.org/1".into(),
            Arc::new(json!({"@context": "https://a.org/2"})),
        );
        map.insert(
            "https://a.org/2".into(),
            Arc::new(json!({"@context": ["https://a.org/1"]})),
        );
        let err = Context::for_request(Some(&json!("https://a.org/1")), CoreContext::V1_9, &map)
            .unwrap_err();
        assert!(err.detail.contains("recursive"), "{err}");
    }

    #[test]
    fn cyclic_term_definitions_are_rejected() {
        let err = Context::empty().process(&json!({"a": "b:x", "b": "a:y"}), &NoLoader);
        assert!(err.is_err());
    }

    #[test]
    fn type_mappings_and_containers() {
        let c = ctx(
            json!({"ref": {"@id": "https://e.org/ref", "@type": "@id"}, "cat": {"@id": "https://e.org/cat", "@type": "@vocab"}, "tags": {"@id": "https://e.org/tags", "@container": "@list"}}),
        );
        assert_eq!(
            c.term("ref").and_then(|d| d.type_mapping.clone()),
            Some(TypeMapping::Id)
        );
        assert_eq!(
            c.term("cat").and_then(|d| d.type_mapping.clone()),
            Some(TypeMapping::Vocab)
        );
        assert_eq!(
            c.term("tags").map(|d| d.container.clone()),
            Some(vec!["@list".to_owned()])
        );
        // A list-container term is not chosen to compact a plain attribute.
        assert_eq!(c.compact_iri("https://e.org/tags"), "https://e.org/tags");
    }

    #[test]
    fn null_mapping_and_nullification() {
        let c = Context::empty()
            .process(
                &json!([{"a": "https://x.org/a"}, null, {"b": null}]),
                &NoLoader,
            )
            .expect("ok");
        assert_eq!(c.term("a"), None);
        assert_eq!(c.expand_term("b"), None);
        let err = Context::core(CoreContext::V1_9)
            .process(&Value::Null, &NoLoader)
            .unwrap_err();
        assert!(err.detail.contains("nullification"));
    }
}
