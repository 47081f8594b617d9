//! Entity queries: `q`, `scopeQ`, `type` expressions, `id`/`idPattern`, `attrs` and geo-queries,
//! combined in [`Query`].
//!
//! Every part has a public AST ([`QExpr`], [`TypeExpr`], [`ScopeExpr`], [`GeoQuery`]) so a SQL backend
//! can translate it, and an evaluator ([`Query::matches`]) used by the in-memory store, the
//! subscription engine and tests. Parse errors are `BadRequestData` naming the parameter and the byte
//! position (see [`SyntaxError`]).

pub mod expr;
pub mod q;

use regex::Regex;

pub use self::expr::{BoolExpr, SyntaxError};
pub use self::q::{AttrPath, CompareOp, Literal, QExpr, QTerm, QValue, parse_q};

use crate::context::Context;
use crate::error::{NgsiError, Result};
use crate::geospatial::GeoQuery;
use crate::iri::is_forbidden_name_char;
use crate::model::Entity;
use crate::parse::validate_entity_id;
use expr::{Cursor, parse_bool_expr};

/// A `type` expression: expanded type names combined with `,`/`|` (OR) and `;` (AND).
pub type TypeExpr = BoolExpr<String>;

/// A `scopeQ` expression.
pub type ScopeExpr = BoolExpr<ScopePattern>;

/// One scope pattern: `/a/b` (exact), `/a/#` (a and all descendants), `/+/b` (one-level wildcard),
/// `/#` (any scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopePattern {
    /// Segments; `+` and a final `#` are wildcards.
    pub segments: Vec<String>,
}

impl ScopePattern {
    /// True if `scope` (an entity scope such as `/Madrid/Gardens`) matches.
    pub fn matches(&self, scope: &str) -> bool {
        let Some(rest) = scope.strip_prefix('/') else {
            return false;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let mut i = 0;
        for seg in &self.segments {
            if seg == "#" {
                return true;
            }
            match parts.get(i) {
                Some(p) if seg == "+" || seg == p => i += 1,
                _ => return false,
            }
        }
        i == parts.len()
    }
}

/// Parse a `type` expression, expanding each name with `ctx`.
pub fn parse_type_expr(text: &str, ctx: &Context) -> Result<TypeExpr> {
    parse_bool_expr(text, true, &mut |c: &mut Cursor<'_>| {
        let start = c.pos();
        let name = c.take_while(|ch| {
            !matches!(ch, ',' | ';' | '|' | '(' | ')') && !is_forbidden_name_char(ch)
        });
        if name.is_empty() {
            return Err(c.error("expected an entity type name"));
        }
        ctx.expand_term(name).ok_or_else(|| SyntaxError {
            position: start,
            message: format!("type `{name}` is mapped to null"),
        })
    })
    .map_err(|e| e.into_ngsi("type"))
}

/// Parse a `scopeQ` expression.
pub fn parse_scope_q(text: &str) -> Result<ScopeExpr> {
    parse_bool_expr(text, true, &mut |c: &mut Cursor<'_>| {
        let start = c.pos();
        if !c.eat("/") {
            return Err(c.error("a scope starts with `/`"));
        }
        let body = c.take_while(|ch| {
            !matches!(ch, ',' | ';' | '|' | '(' | ')') && !is_forbidden_name_char(ch)
        });
        let segments: Vec<String> = if body == "#" || body.is_empty() {
            vec!["#".to_owned()]
        } else {
            body.split('/').map(str::to_owned).collect()
        };
        for (i, seg) in segments.iter().enumerate() {
            let bad = seg.is_empty()
                || (seg.contains(['#', '+']) && seg.len() > 1)
                || (seg == "#" && i + 1 != segments.len());
            if bad {
                return Err(SyntaxError {
                    position: start,
                    message: format!("invalid scope pattern `/{body}`"),
                });
            }
        }
        Ok(ScopePattern { segments })
    })
    .map_err(|e| e.into_ngsi("scopeQ"))
}

/// Raw query parameters as the HTTP layer receives them (already percent-decoded).
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryParams<'a> {
    /// `id`: comma-separated entity ids.
    pub ids: Option<&'a str>,
    /// `idPattern`: a regular expression on entity ids.
    pub id_pattern: Option<&'a str>,
    /// `type`: a type expression.
    pub types: Option<&'a str>,
    /// `q`.
    pub q: Option<&'a str>,
    /// `scopeQ`.
    pub scope_q: Option<&'a str>,
    /// `attrs`: comma-separated attribute names (an entity must have at least one).
    pub attrs: Option<&'a str>,
    /// `georel`.
    pub georel: Option<&'a str>,
    /// `geometry`.
    pub geometry: Option<&'a str>,
    /// `coordinates`.
    pub coordinates: Option<&'a str>,
    /// `geoproperty`.
    pub geoproperty: Option<&'a str>,
}

/// A parsed entity query.
#[derive(Debug, Clone)]
pub struct Query {
    /// Entity ids (any of).
    pub ids: Vec<String>,
    /// Id pattern.
    pub id_pattern: Option<Regex>,
    /// Type expression.
    pub types: Option<TypeExpr>,
    /// `q` expression.
    pub q: Option<QExpr>,
    /// `scopeQ` expression.
    pub scope_q: Option<ScopeExpr>,
    /// Expanded attribute names; a matching entity has at least one of them (empty: no constraint).
    pub attrs: Vec<String>,
    /// Geo-query.
    pub geo: Option<GeoQuery>,
}

impl Query {
    /// Parse all parameters against `ctx`.
    pub fn parse(params: &QueryParams<'_>, ctx: &Context) -> Result<Query> {
        let ids = match params.ids {
            Some(list) => list
                .split(',')
                .map(|id| validate_entity_id(id.trim()).map(str::to_owned))
                .collect::<Result<_>>()?,
            None => Vec::new(),
        };
        let id_pattern = params.id_pattern.map(compile_regex).transpose()?;
        let types = params.types.map(|t| parse_type_expr(t, ctx)).transpose()?;
        let q = params
            .q
            .map(|q| parse_q(q, ctx).map_err(|e| e.into_ngsi("q")))
            .transpose()?;
        let scope_q = params.scope_q.map(parse_scope_q).transpose()?;
        let attrs = match params.attrs {
            Some(a) => {
                let names = crate::render::parse_name_list(a, ctx)?;
                if let Some(core) = names.iter().find(|n| matches!(n.as_str(), "id" | "type")) {
                    return Err(NgsiError::bad_data(format!(
                        "attrs: `{core}` is not an attribute name"
                    )));
                }
                names
            }
            None => Vec::new(),
        };
        let geo = match (params.georel, params.geometry, params.coordinates) {
            (None, None, None) => None,
            (Some(georel), Some(geometry), Some(coordinates)) => {
                let geoproperty = params
                    .geoproperty
                    .map(|g| {
                        ctx.expand_term(g).ok_or_else(|| {
                            NgsiError::bad_data(format!("geoproperty `{g}` is mapped to null"))
                        })
                    })
                    .transpose()?;
                Some(GeoQuery::from_params(
                    georel,
                    geometry,
                    coordinates,
                    geoproperty,
                )?)
            }
            _ => {
                return Err(NgsiError::bad_data(
                    "a geo-query needs georel, geometry and coordinates together",
                ));
            }
        };
        Ok(Query {
            ids,
            id_pattern,
            types,
            q,
            scope_q,
            attrs,
            geo,
        })
    }

    /// True if the query has an entity selector the spec requires for `GET /entities` (type, id,
    /// idPattern, attrs, q, geo-query or scopeQ).
    pub fn has_selector(&self) -> bool {
        !self.ids.is_empty()
            || self.id_pattern.is_some()
            || self.types.is_some()
            || self.q.is_some()
            || self.scope_q.is_some()
            || !self.attrs.is_empty()
            || self.geo.is_some()
    }

    /// True if `entity` satisfies every part of the query.
    pub fn matches(&self, entity: &Entity) -> bool {
        if !self.ids.is_empty() && !self.ids.contains(&entity.id) {
            return false;
        }
        if let Some(p) = &self.id_pattern
            && !p.is_match(&entity.id)
        {
            return false;
        }
        if let Some(t) = &self.types
            && !t.eval(&mut |name: &String| entity.has_type(name))
        {
            return false;
        }
        if let Some(s) = &self.scope_q
            && !s.eval(&mut |p: &ScopePattern| entity.scope.iter().any(|sc| p.matches(sc)))
        {
            return false;
        }
        if !self.attrs.is_empty() && !self.attrs.iter().any(|a| entity.attributes.contains_key(a)) {
            return false;
        }
        if let Some(q) = &self.q
            && !q::matches(q, entity)
        {
            return false;
        }
        if let Some(g) = &self.geo {
            let hit = entity
                .attribute(&g.geoproperty)
                .is_some_and(|instances| instances.iter().any(|a| matches!(&a.value, crate::model::AttributeValue::GeoProperty(v) if g.matches_geojson(v))));
            if !hit {
                return false;
            }
        }
        true
    }
}

/// Compile an `idPattern` (or any user regex) with the crate's size limits.
pub fn compile_regex(pattern: &str) -> Result<Regex> {
    if let Some(at) = stacked_quantifier(pattern) {
        return Err(NgsiError::bad_data(format!(
            "invalid regular expression `{pattern}`: quantifier without an expression at position {at}"
        )));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(q::REGEX_SIZE_LIMIT)
        .dfa_size_limit(q::REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| NgsiError::bad_data(format!("invalid regular expression `{pattern}`: {e}")))
}

/// The byte position of a `*` or `+` that repeats a quantifier (`a**`, `a+*`, `a{2}+`). The `regex`
/// crate accepts these as nested repetitions; POSIX and PCRE engines (the SQL backend, other brokers)
/// reject them, so the broker does too. `*?` and `+?` (lazy) are fine.
fn stacked_quantifier(pattern: &str) -> Option<usize> {
    let mut prev_quantifier = false;
    let mut escaped = false;
    let mut in_class = false;
    let mut after_open_paren = false;
    for (i, ch) in pattern.char_indices() {
        if escaped {
            escaped = false;
            prev_quantifier = false;
            after_open_paren = false;
            continue;
        }
        match ch {
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            _ if in_class => {}
            '*' | '+' if prev_quantifier => return Some(i),
            '*' | '+' | '}' => {
                prev_quantifier = true;
                after_open_paren = false;
                continue;
            }
            // `?` after a quantifier makes it lazy; after `(` it opens a group flag.
            '?' if !after_open_paren && !prev_quantifier => {
                prev_quantifier = true;
                continue;
            }
            _ => {}
        }
        prev_quantifier = false;
        after_open_paren = ch == '(';
    }
    None
}

#[cfg(test)]
mod tests;
