//! NGSI-LD context source registrations (clause 5.2.9, 5.9, 5.10): parsing and validation,
//! rendering, `PATCH` merging and the matching used by the registration query
//! (`GET /csourceRegistrations?type=...&id=...&idPattern=...&attrs=...`).
//!
//! A registration tells which entities (`information`: entity ids, id patterns and types,
//! property and relationship names) a context source at `endpoint` can provide. This module
//! does no I/O: the broker stores registrations and answers the discovery API; it does not
//! (yet) forward queries to the registered sources.

use regex::Regex;
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::error::Result;
use crate::iri::is_absolute_iri;
use crate::model::Timestamp;
use crate::query::{BoolExpr, TypeExpr};
use crate::subscription::{bad, name_array, string};
use crate::time::{format_datetime, parse_datetime_field};

/// The `type` of every registration.
pub const REGISTRATION_TYPE: &str = "ContextSourceRegistration";

/// One entry of `information[].entities`: the same selector as a subscription's `entities`.
pub type RegEntity = crate::subscription::EntitySelector;

/// One entry of `information`.
#[derive(Debug, Clone, Default)]
pub struct RegistrationInfo {
    /// `entities` (empty: any entity).
    pub entities: Vec<RegEntity>,
    /// `propertyNames` (expanded); `None`: not restricted.
    pub property_names: Option<Vec<String>>,
    /// `relationshipNames` (expanded); `None`: not restricted.
    pub relationship_names: Option<Vec<String>>,
}

/// `mode` of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationMode {
    /// The source adds to what the broker holds (default).
    Inclusive,
    /// The source is the only provider of what it registers.
    Exclusive,
    /// Requests are redirected to the source.
    Redirect,
    /// The source is used only when nothing else answers.
    Auxiliary,
}

impl RegistrationMode {
    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            RegistrationMode::Inclusive => "inclusive",
            RegistrationMode::Exclusive => "exclusive",
            RegistrationMode::Redirect => "redirect",
            RegistrationMode::Auxiliary => "auxiliary",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            RegistrationMode::Inclusive,
            RegistrationMode::Exclusive,
            RegistrationMode::Redirect,
            RegistrationMode::Auxiliary,
        ]
        .into_iter()
        .find(|m| m.name() == s)
    }
}

/// A parsed registration with expanded names.
#[derive(Debug, Clone)]
pub struct Registration {
    /// `id`.
    pub id: String,
    /// `registrationName`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `information` (at least one entry).
    pub information: Vec<RegistrationInfo>,
    /// `endpoint`: the context source's URI.
    pub endpoint: String,
    /// `expiresAt`.
    pub expires_at: Option<Timestamp>,
    /// `mode`, if given.
    pub mode: Option<RegistrationMode>,
    /// `operations`, if given.
    pub operations: Option<Vec<String>>,
    /// Other members (`contextSourceInfo`, `location`, `observationInterval`, `scope`,
    /// `tenant`, `refreshRate`, `management`, ... and the source's own properties), kept as
    /// given.
    pub other: Map<String, Value>,
}

/// Members that are never stored from a request (the broker sets them).
const SYSTEM: &[&str] = &["@context", "createdAt", "modifiedAt", "status"];

fn parse_entity(v: &Value, ctx: &Context) -> Result<RegEntity> {
    crate::subscription::parse_selector(v, ctx, "information[].entities")
}

fn parse_info(v: &Value, ctx: &Context) -> Result<RegistrationInfo> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad("each entry of information must be an object"))?;
    let entities = match obj.get("entities") {
        None => Vec::new(),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|e| parse_entity(e, ctx))
            .collect::<Result<_>>()?,
        Some(_) => return Err(bad("information[].entities must be a non-empty array")),
    };
    let property_names = obj
        .get("propertyNames")
        .map(|p| name_array(p, "information[].propertyNames", ctx))
        .transpose()?;
    let relationship_names = obj
        .get("relationshipNames")
        .map(|p| name_array(p, "information[].relationshipNames", ctx))
        .transpose()?;
    if entities.is_empty() && property_names.is_none() && relationship_names.is_none() {
        return Err(bad(
            "each entry of information needs entities, propertyNames or relationshipNames",
        ));
    }
    Ok(RegistrationInfo {
        entities,
        property_names,
        relationship_names,
    })
}

impl Registration {
    /// Parses a registration from a request body (with `@context` already resolved into
    /// `ctx`); `default_id` is used when the body has no `id`.
    pub fn parse(v: &Value, ctx: &Context, default_id: &str) -> Result<Registration> {
        let obj = v
            .as_object()
            .ok_or_else(|| bad("a context source registration must be a JSON object"))?;
        match obj.get("type") {
            Some(Value::String(t)) if t == REGISTRATION_TYPE => {}
            Some(_) => {
                return Err(bad(format!("the type must be `{REGISTRATION_TYPE}`")));
            }
            None => return Err(bad("a registration needs `type`")),
        }
        let id = match obj.get("id") {
            Some(i) => string(i, "id")?,
            None => default_id.to_owned(),
        };
        if !is_absolute_iri(&id) {
            return Err(bad(format!("registration id `{id}` is not a URI")));
        }
        let mut reg = Registration {
            id,
            name: None,
            description: None,
            information: Vec::new(),
            endpoint: String::new(),
            expires_at: None,
            mode: None,
            operations: None,
            other: Map::new(),
        };
        for (k, value) in obj {
            reg.set(k, value, ctx)?;
        }
        reg.check()?;
        Ok(reg)
    }

    fn set(&mut self, k: &str, value: &Value, ctx: &Context) -> Result<()> {
        match k {
            "id" | "type" => {}
            "registrationName" => self.name = Some(string(value, k)?),
            "description" => self.description = Some(string(value, k)?),
            "information" => {
                let items = value
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| bad("information must be a non-empty array"))?;
                self.information = items
                    .iter()
                    .map(|i| parse_info(i, ctx))
                    .collect::<Result<_>>()?;
            }
            "endpoint" => {
                let e = string(value, k)?;
                if !is_absolute_iri(&e) || e.contains(char::is_whitespace) {
                    return Err(bad(format!("endpoint `{e}` is not a URI")));
                }
                self.endpoint = e;
            }
            "expiresAt" => {
                self.expires_at = Some(parse_datetime_field("expiresAt", &string(value, k)?)?);
            }
            "mode" => {
                let m = string(value, k)?;
                self.mode = Some(
                    RegistrationMode::parse(&m)
                        .ok_or_else(|| bad(format!("unknown registration mode `{m}`")))?,
                );
            }
            "operations" => {
                let ops = value
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| bad("operations must be a non-empty array of strings"))?
                    .iter()
                    .map(|o| string(o, "operations[]"))
                    .collect::<Result<Vec<_>>>()?;
                self.operations = Some(ops);
            }
            k if SYSTEM.contains(&k) => {}
            k => {
                self.other.insert(k.to_owned(), value.clone());
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        if self.information.is_empty() {
            return Err(bad("a registration needs information"));
        }
        if self.endpoint.is_empty() {
            return Err(bad("a registration needs an endpoint"));
        }
        Ok(())
    }

    /// Applies a `PATCH` fragment (members replace the registration's; `id` and `type`
    /// cannot change). The fragment's names are expanded with `ctx`.
    pub fn merge(&self, fragment: &Value, ctx: &Context) -> Result<Registration> {
        let obj = fragment
            .as_object()
            .ok_or_else(|| bad("the fragment must be a JSON object"))?;
        if let Some(id) = obj.get("id")
            && id.as_str() != Some(self.id.as_str())
        {
            return Err(bad("the id of a registration cannot be changed"));
        }
        if let Some(t) = obj.get("type")
            && t.as_str() != Some(REGISTRATION_TYPE)
        {
            return Err(bad(format!("the type must be `{REGISTRATION_TYPE}`")));
        }
        let mut reg = self.clone();
        for (k, value) in obj {
            if value.is_null() {
                // Merge-patch semantics: null removes an optional member.
                match k.as_str() {
                    "registrationName" => reg.name = None,
                    "description" => reg.description = None,
                    "expiresAt" => reg.expires_at = None,
                    "mode" => reg.mode = None,
                    "operations" => reg.operations = None,
                    "information" | "endpoint" => {
                        return Err(bad(format!("{k} cannot be removed")));
                    }
                    other => {
                        reg.other.remove(other);
                    }
                }
                continue;
            }
            reg.set(k, value, ctx)?;
        }
        reg.check()?;
        Ok(reg)
    }

    /// The registration as JSON, names compacted with `ctx` (no `@context`).
    pub fn render(&self, ctx: &Context) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("type".into(), json!(REGISTRATION_TYPE));
        if let Some(n) = &self.name {
            out.insert("registrationName".into(), json!(n));
        }
        if let Some(d) = &self.description {
            out.insert("description".into(), json!(d));
        }
        let compact_all = |names: &[String]| -> Value {
            names.iter().map(|n| json!(ctx.compact_iri(n))).collect()
        };
        let information: Vec<Value> = self
            .information
            .iter()
            .map(|info| {
                let mut m = Map::new();
                if !info.entities.is_empty() {
                    let entities: Vec<Value> = info
                        .entities
                        .iter()
                        .map(|e| {
                            let mut em = Map::new();
                            if let Some(id) = &e.id {
                                em.insert("id".into(), json!(id));
                            }
                            if let Some(p) = &e.id_pattern {
                                em.insert("idPattern".into(), json!(p));
                            }
                            let t = match &e.types {
                                BoolExpr::Atom(iri) => ctx.compact_iri(iri),
                                _ => e.type_text.clone(),
                            };
                            em.insert("type".into(), json!(t));
                            Value::Object(em)
                        })
                        .collect();
                    m.insert("entities".into(), Value::Array(entities));
                }
                if let Some(p) = &info.property_names {
                    m.insert("propertyNames".into(), compact_all(p));
                }
                if let Some(r) = &info.relationship_names {
                    m.insert("relationshipNames".into(), compact_all(r));
                }
                Value::Object(m)
            })
            .collect();
        out.insert("information".into(), Value::Array(information));
        out.insert("endpoint".into(), json!(self.endpoint));
        if let Some(t) = &self.expires_at {
            out.insert("expiresAt".into(), json!(format_datetime(t)));
        }
        if let Some(m) = self.mode {
            out.insert("mode".into(), json!(m.name()));
        }
        if let Some(ops) = &self.operations {
            out.insert("operations".into(), json!(ops));
        }
        for (k, v) in &self.other {
            out.insert(k.clone(), v.clone());
        }
        out
    }

    /// True if the registration has expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// The filter of a registration query (expanded names).
#[derive(Debug, Clone, Default)]
pub struct RegistrationFilter {
    /// `id`: registrations that can provide any of these entities.
    pub ids: Option<Vec<String>>,
    /// `idPattern`.
    pub id_pattern: Option<Regex>,
    /// `type`.
    pub types: Option<TypeExpr>,
    /// `attrs`: registrations providing any of these attributes.
    pub attrs: Option<Vec<String>>,
}

impl RegistrationFilter {
    /// True if `reg` matches: one of its `information` entries covers the requested
    /// entities (an entry without `entities` covers any entity) and attributes (an entry
    /// without `propertyNames` and `relationshipNames` covers every attribute).
    pub fn matches(&self, reg: &Registration) -> bool {
        reg.information.iter().any(|info| self.info_matches(info))
    }

    fn info_matches(&self, info: &RegistrationInfo) -> bool {
        let entities_ok =
            info.entities.is_empty() || info.entities.iter().any(|e| self.entity_matches(e));
        let attrs_ok = match &self.attrs {
            None => true,
            Some(wanted) => {
                if info.property_names.is_none() && info.relationship_names.is_none() {
                    true
                } else {
                    info.property_names
                        .iter()
                        .chain(info.relationship_names.iter())
                        .flatten()
                        .any(|n| wanted.contains(n))
                }
            }
        };
        entities_ok && attrs_ok
    }

    fn entity_matches(&self, e: &RegEntity) -> bool {
        if let Some(types) = &self.types {
            let registered: Vec<&String> = e.types.atoms();
            if !types.eval(&mut |t: &String| registered.contains(&t)) {
                return false;
            }
        }
        if let Some(ids) = &self.ids {
            let ok = match (&e.id, &e.id_regex) {
                (Some(id), _) => ids.contains(id),
                (None, Some(r)) => ids.iter().any(|id| r.is_match(id)),
                (None, None) => true,
            };
            if !ok {
                return false;
            }
        }
        if let Some(pattern) = &self.id_pattern {
            let ok = match (&e.id, &e.id_pattern) {
                (Some(id), _) => pattern.is_match(id),
                // Two patterns: cannot tell whether they overlap; keep the registration.
                _ => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
