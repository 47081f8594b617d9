//! Linked entity retrieval (spec 4.5.23, 1.8+): `join=flat|inline`, `joinLevel`, `containedBy`, and the
//! projection syntax of `pick`/`omit` with braces (spec 4.21), e.g. `id,locatedAt{id,name}`.
//!
//! Pure: the caller supplies the entities it already fetched through a lookup closure; [`join`]
//! renders what it can and lists the ids it needed but could not find ([`Joined::missing`]). The
//! server fetches those and calls again, until nothing new is missing (at most `joinLevel` rounds).
//!
//! Rules (as the ETSI suite checks them):
//! - Only relationships that are rendered are followed (an attribute removed by `attrs`, `pick` or
//!   `omit` is not), up to `joinLevel` hops (1 when `join` is given alone).
//! - `pick=a,rel{x,y}` keeps `a` and `rel` on the entity and `x`, `y` on the entities `rel` links to;
//!   `omit=a,rel{x}` omits `a` on the entity (not `rel`) and `x` on the linked entities. A linked entity
//!   reached through a relationship without braces is shown whole.
//! - `inline`: each Relationship instance gets an `entity` member (an array when it has several
//!   objects), each ListRelationship an `entityList`; in the simplified representation the object
//!   id itself is replaced by the linked entity. An entity already on the path is not inlined again.
//! - `flat`: the linked entities follow the matched ones in the same array, each once.
//! - Ids listed in `containedBy` are not followed (they are already being shown by the caller).

use std::collections::{HashSet, VecDeque};

use serde_json::Value;

use crate::context::Context;
use crate::error::{NgsiError, Result};
use crate::model::{Attribute, AttributeValue, Entity};
use crate::render::{Format, RenderOptions, render};

/// A parsed `pick`/`omit` list: names (expanded, or `id`/`type`/`scope`) with optional nested lists
/// for the entities a relationship links to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Projection {
    /// The items in order.
    pub items: Vec<ProjectionItem>,
}

/// One item of a [`Projection`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectionItem {
    /// Expanded attribute name, or `id`, `type`, `scope`.
    pub name: String,
    /// The projection of the linked entities (`name{...}`).
    pub nested: Option<Projection>,
}

impl Projection {
    /// Parse `a,b{c,d{e}}` expanding each name against `ctx`.
    pub fn parse(s: &str, ctx: &Context) -> Result<Projection> {
        let chars: Vec<char> = s.chars().collect();
        let mut pos = 0;
        let p = parse_list(&chars, &mut pos, ctx, 0)?;
        if pos != chars.len() {
            return Err(NgsiError::bad_data(format!(
                "unbalanced `}}` at position {pos} in `{s}`"
            )));
        }
        Ok(p)
    }

    /// The names to keep when used as `pick` (every item).
    pub fn pick_names(&self) -> Vec<String> {
        self.items.iter().map(|i| i.name.clone()).collect()
    }

    /// The names to remove when used as `omit` (items without a nested list: `rel{x}` omits `x`
    /// on the linked entities, not `rel`).
    pub fn omit_names(&self) -> Vec<String> {
        self.items
            .iter()
            .filter(|i| i.nested.is_none())
            .map(|i| i.name.clone())
            .collect()
    }

    /// The nested projection given for `name`, if any.
    pub fn nested(&self, name: &str) -> Option<&Projection> {
        self.items
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.nested.as_ref())
    }

    /// True if some item has a nested list.
    pub fn has_nested(&self) -> bool {
        self.items.iter().any(|i| i.nested.is_some())
    }
}

/// Nesting limit of `{...}` (a bound on recursion; `joinLevel` is bounded separately).
const MAX_DEPTH: usize = 16;

fn parse_list(chars: &[char], pos: &mut usize, ctx: &Context, depth: usize) -> Result<Projection> {
    if depth > MAX_DEPTH {
        return Err(NgsiError::bad_data("pick/omit: too deeply nested"));
    }
    let mut items = Vec::new();
    loop {
        let start = *pos;
        while *pos < chars.len() && !matches!(chars[*pos], ',' | '{' | '}') {
            *pos += 1;
        }
        let raw: String = chars[start..*pos].iter().collect();
        let name = raw.trim();
        if name.is_empty() {
            return Err(NgsiError::bad_data(format!(
                "pick/omit: empty name at position {start}"
            )));
        }
        let name = match name {
            "id" | "type" | "scope" => name.to_owned(),
            _ => {
                crate::parse::validate_name("attribute", name)?;
                ctx.expand_term(name).ok_or_else(|| {
                    NgsiError::bad_data(format!("`{name}` is mapped to null by the @context"))
                })?
            }
        };
        let nested = if chars.get(*pos) == Some(&'{') {
            *pos += 1;
            let inner = parse_list(chars, pos, ctx, depth + 1)?;
            if chars.get(*pos) != Some(&'}') {
                return Err(NgsiError::bad_data("pick/omit: missing `}`"));
            }
            *pos += 1;
            Some(inner)
        } else {
            None
        };
        items.push(ProjectionItem { name, nested });
        match chars.get(*pos) {
            Some(',') => *pos += 1,
            _ => return Ok(Projection { items }),
        }
    }
}

/// `join=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinMode {
    /// Linked entities appended to the result array.
    Flat,
    /// Linked entities inside the relationships that link them.
    Inline,
}

impl JoinMode {
    /// Parse `flat` / `inline` (`@none` means no join: `None`).
    pub fn parse(s: &str) -> Result<Option<JoinMode>> {
        match s {
            "flat" => Ok(Some(JoinMode::Flat)),
            "inline" => Ok(Some(JoinMode::Inline)),
            "@none" => Ok(None),
            other => Err(NgsiError::bad_data(format!(
                "join must be flat, inline or @none, not `{other}`"
            ))),
        }
    }
}

/// Upper bound of `joinLevel` (each level is one round of lookups).
pub const MAX_JOIN_LEVEL: usize = 10;

/// A linked-entity retrieval request.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinSpec {
    /// Flat or inline.
    pub mode: JoinMode,
    /// Relationship hops to follow (≥ 1).
    pub level: usize,
    /// Entity ids not to follow (`containedBy`).
    pub contained_by: Vec<String>,
    /// The full `pick` projection (the root's names are also in `RenderOptions::pick`).
    pub pick: Option<Projection>,
    /// The full `omit` projection.
    pub omit: Option<Projection>,
}

impl JoinSpec {
    /// From the `join`, `joinLevel` and `containedBy` parameters (`None` when there is no join).
    pub fn from_params(
        join: Option<&str>,
        join_level: Option<&str>,
        contained_by: Option<&str>,
    ) -> Result<Option<JoinSpec>> {
        let level = join_level
            .map(|l| {
                l.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=MAX_JOIN_LEVEL).contains(l))
                    .ok_or_else(|| {
                        NgsiError::bad_data(format!(
                            "joinLevel must be an integer from 1 to {MAX_JOIN_LEVEL}, not `{l}`"
                        ))
                    })
            })
            .transpose()?;
        let Some(mode) = join.map(JoinMode::parse).transpose()?.flatten() else {
            return Ok(None);
        };
        let contained_by = contained_by
            .map(|c| {
                c.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(JoinSpec {
            mode,
            level: level.unwrap_or(1),
            contained_by,
            pick: None,
            omit: None,
        }))
    }
}

/// The result of [`join`].
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// Inline: one value per root. Flat: the roots, then the linked entities.
    pub values: Vec<Value>,
    /// Ids the rendering needed that `lookup` did not return (fetch them and call again; ids that
    /// do not exist stay here).
    pub missing: Vec<String>,
}

/// The options for an entity reached through a relationship.
fn linked_opts(
    base: &RenderOptions,
    pick: Option<&Projection>,
    omit: Option<&Projection>,
    keep_context: bool,
) -> RenderOptions {
    RenderOptions {
        format: base.format,
        sys_attrs: base.sys_attrs,
        lang: base.lang.clone(),
        attrs: None,
        pick: pick.map(Projection::pick_names),
        omit: omit.map(Projection::omit_names),
        dataset_ids: None,
        context: if keep_context {
            base.context.clone()
        } else {
            None
        },
    }
}

fn linked_ids(attr: &Attribute) -> Option<&[String]> {
    match &attr.value {
        AttributeValue::Relationship(ids) | AttributeValue::ListRelationship(ids) => Some(ids),
        _ => None,
    }
}

/// The relationship instances of `e` that `opts` renders: (expanded name, selected instances).
fn rendered_links<'e>(e: &'e Entity, opts: &RenderOptions) -> Vec<(&'e str, Vec<&'e Attribute>)> {
    e.attributes
        .iter()
        .filter(|(name, _)| opts.attribute_wanted(name))
        .filter_map(|(name, instances)| {
            let selected: Vec<&Attribute> = instances
                .iter()
                .filter(|a| opts.instance_wanted(a))
                .collect();
            selected
                .iter()
                .any(|a| linked_ids(a).is_some())
                .then_some((name.as_str(), selected))
        })
        .collect()
}

/// Render `roots` with their linked entities.
pub fn join<'a>(
    roots: &[&'a Entity],
    opts: &RenderOptions,
    spec: &JoinSpec,
    lookup: &dyn Fn(&str) -> Option<&'a Entity>,
    ctx: &Context,
) -> Joined {
    let mut missing = Vec::new();
    let values = match spec.mode {
        JoinMode::Inline => {
            let mut path = Vec::new();
            roots
                .iter()
                .map(|e| {
                    let shape = (spec.pick.as_ref(), spec.omit.as_ref());
                    inline(
                        e,
                        opts,
                        shape,
                        0,
                        spec,
                        lookup,
                        ctx,
                        &mut path,
                        &mut missing,
                    )
                })
                .collect()
        }
        JoinMode::Flat => flat(roots, opts, spec, lookup, ctx, &mut missing),
    };
    let mut seen = HashSet::new();
    missing.retain(|id| seen.insert(id.clone()));
    Joined { values, missing }
}

type Shape<'p> = (Option<&'p Projection>, Option<&'p Projection>);

fn nested_shape<'p>(shape: Shape<'p>, name: &str) -> Shape<'p> {
    (
        shape.0.and_then(|p| p.nested(name)),
        shape.1.and_then(|o| o.nested(name)),
    )
}

#[allow(clippy::too_many_arguments)]
fn inline<'a>(
    e: &'a Entity,
    opts: &RenderOptions,
    shape: Shape<'_>,
    depth: usize,
    spec: &JoinSpec,
    lookup: &dyn Fn(&str) -> Option<&'a Entity>,
    ctx: &Context,
    path: &mut Vec<String>,
    missing: &mut Vec<String>,
) -> Value {
    let mut out = render(e, opts, ctx);
    if depth >= spec.level {
        return out;
    }
    path.push(e.id.clone());
    for (name, selected) in rendered_links(e, opts) {
        let child_shape = nested_shape(shape, name);
        let child_opts = linked_opts(opts, child_shape.0, child_shape.1, false);
        // For each selected instance: the linked entities (None where not found or not followed).
        let per_instance: Vec<Vec<Option<Value>>> = selected
            .iter()
            .map(|a| {
                linked_ids(a)
                    .unwrap_or_default()
                    .iter()
                    .map(|id| {
                        if spec.contained_by.contains(id) || path.contains(id) {
                            return None;
                        }
                        match lookup(id) {
                            Some(linked) => Some(inline(
                                linked,
                                &child_opts,
                                child_shape,
                                depth + 1,
                                spec,
                                lookup,
                                ctx,
                                path,
                                missing,
                            )),
                            None => {
                                missing.push(id.clone());
                                None
                            }
                        }
                    })
                    .collect()
            })
            .collect();
        let Some(slot) = out.get_mut(ctx.compact_iri(name)) else {
            continue;
        };
        let n = selected.len();
        for ((attr, entities), slot) in
            selected
                .iter()
                .zip(per_instance)
                .zip(instance_slots(slot, n, opts.format))
        {
            attach(slot, attr, entities, opts.format);
        }
    }
    path.pop();
    out
}

/// The rendered value of each selected instance of an attribute, in order (see
/// [`crate::render::render_attribute`]: one instance is the value itself; several are an array, or a
/// `dataset` map in the simplified representation).
fn instance_slots(v: &mut Value, n: usize, format: Format) -> Vec<&mut Value> {
    if n == 1 {
        return vec![v];
    }
    match (format, v) {
        (Format::KeyValues, Value::Object(m)) => match m.get_mut("dataset") {
            Some(Value::Object(d)) => d.values_mut().collect(),
            _ => Vec::new(),
        },
        (_, Value::Array(items)) => items.iter_mut().collect(),
        _ => Vec::new(),
    }
}

fn attach(slot: &mut Value, attr: &Attribute, entities: Vec<Option<Value>>, format: Format) {
    let list = matches!(attr.value, AttributeValue::ListRelationship(_));
    if format == Format::KeyValues {
        let ids = linked_ids(attr).unwrap_or_default();
        let replaced: Vec<Value> = ids
            .iter()
            .zip(entities)
            .map(|(id, e)| e.unwrap_or_else(|| Value::String(id.clone())))
            .collect();
        *slot = match (list, <[Value; 1]>::try_from(replaced)) {
            (false, Ok([one])) => one,
            (_, Ok(one)) => Value::Array(one.into()),
            (_, Err(many)) => Value::Array(many),
        };
        return;
    }
    let Value::Object(m) = slot else { return };
    let found: Vec<Value> = entities.into_iter().flatten().collect();
    if found.is_empty() {
        return;
    }
    if list {
        m.insert("entityList".into(), Value::Array(found));
    } else if let (1, Ok([one])) = (
        linked_ids(attr).map_or(0, <[String]>::len),
        <[Value; 1]>::try_from(found.clone()),
    ) {
        m.insert("entity".into(), one);
    } else {
        m.insert("entity".into(), Value::Array(found));
    }
}

fn flat<'a>(
    roots: &[&'a Entity],
    opts: &RenderOptions,
    spec: &JoinSpec,
    lookup: &dyn Fn(&str) -> Option<&'a Entity>,
    ctx: &Context,
    missing: &mut Vec<String>,
) -> Vec<Value> {
    let mut out: Vec<Value> = roots.iter().map(|e| render(e, opts, ctx)).collect();
    let mut seen: HashSet<&str> = roots.iter().map(|e| e.id.as_str()).collect();
    let root_shape = (spec.pick.as_ref(), spec.omit.as_ref());
    let mut queue: VecDeque<(&'a Entity, RenderOptions, Shape<'_>, usize)> = roots
        .iter()
        .map(|e| (*e, opts.clone(), root_shape, 0))
        .collect();
    while let Some((e, e_opts, shape, depth)) = queue.pop_front() {
        if depth >= spec.level {
            continue;
        }
        for (name, selected) in rendered_links(e, &e_opts) {
            let child_shape = nested_shape(shape, name);
            let child_opts = linked_opts(&e_opts, child_shape.0, child_shape.1, true);
            for id in selected.iter().filter_map(|a| linked_ids(a)).flatten() {
                if spec.contained_by.contains(id) || seen.contains(id.as_str()) {
                    continue;
                }
                match lookup(id) {
                    Some(linked) => {
                        seen.insert(linked.id.as_str());
                        out.push(render(linked, &child_opts, ctx));
                        queue.push_back((linked, child_opts.clone(), child_shape, depth + 1));
                    }
                    None => missing.push(id.clone()),
                }
            }
        }
    }
    out
}

/// True if a rendered entity has no member left (besides `@context`): `pick`/`omit` removed all.
pub fn is_empty_render(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.keys().all(|k| k == "@context"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_entity;
    use serde_json::json;
    use std::collections::HashMap;

    fn ctx() -> Context {
        Context::core(crate::CoreContext::V1_9)
    }

    fn entity(v: Value) -> Entity {
        parse_entity(&v, &ctx()).expect("valid entity")
    }

    fn store() -> HashMap<String, Entity> {
        let list = [
            json!({"id": "urn:b:1", "type": "Building", "name": {"value": "B1"},
                   "locatedAt": {"object": "urn:c:1"}}),
            json!({"id": "urn:c:1", "type": "City", "name": {"value": "Paris"},
                   "description": {"value": "capital"},
                   "isInCountry": {"object": "urn:k:1"}}),
            json!({"id": "urn:k:1", "type": "Country", "name": {"value": "France"},
                   "description": {"value": "a country"}}),
        ];
        list.into_iter()
            .map(entity)
            .map(|e| (e.id.clone(), e))
            .collect()
    }

    fn run(spec: &JoinSpec, opts: &RenderOptions) -> Joined {
        let s = store();
        let lookup = |id: &str| s.get(id);
        let root = &s["urn:b:1"];
        join(&[root], opts, spec, &lookup, &ctx())
    }

    fn spec(mode: JoinMode, level: usize) -> JoinSpec {
        JoinSpec {
            mode,
            level,
            contained_by: Vec::new(),
            pick: None,
            omit: None,
        }
    }

    fn iri(n: &str) -> String {
        ctx().expand_term(n).expect("expands")
    }

    #[test]
    fn projection_parses_nested_lists() {
        let p = Projection::parse("id,locatedAt{id,name,isInCountry{description}}", &ctx())
            .expect("valid");
        assert_eq!(p.pick_names(), vec!["id".to_owned(), iri("locatedAt")]);
        assert_eq!(p.omit_names(), vec!["id".to_owned()]);
        let inner = p.nested(&iri("locatedAt")).expect("nested");
        assert_eq!(inner.items.len(), 3);
        assert_eq!(
            inner
                .nested(&iri("isInCountry"))
                .map(Projection::pick_names),
            Some(vec![iri("description")])
        );
        for bad in ["a{b", "a}b", "a,,b", "a{}", "{a}", "a{b}}", ""] {
            assert!(Projection::parse(bad, &ctx()).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn inline_nests_linked_entities_up_to_join_level() {
        let got = run(&spec(JoinMode::Inline, 1), &RenderOptions::default());
        assert!(got.missing.is_empty());
        let city = &got.values[0]["locatedAt"]["entity"];
        assert_eq!(city["id"], "urn:c:1");
        assert_eq!(city["isInCountry"]["object"], "urn:k:1");
        assert!(city["isInCountry"].get("entity").is_none(), "level 1 only");

        let got = run(&spec(JoinMode::Inline, 2), &RenderOptions::default());
        assert_eq!(
            got.values[0]["locatedAt"]["entity"]["isInCountry"]["entity"]["id"],
            "urn:k:1"
        );
    }

    #[test]
    fn simplified_inline_replaces_the_object_id() {
        let opts = RenderOptions {
            format: Format::KeyValues,
            ..Default::default()
        };
        let got = run(&spec(JoinMode::Inline, 2), &opts);
        assert_eq!(got.values[0]["locatedAt"]["id"], "urn:c:1");
        assert_eq!(got.values[0]["locatedAt"]["isInCountry"]["name"], "France");
    }

    #[test]
    fn flat_appends_each_linked_entity_once() {
        let got = run(&spec(JoinMode::Flat, 2), &RenderOptions::default());
        let ids: Vec<&str> = got.values.iter().filter_map(|v| v["id"].as_str()).collect();
        assert_eq!(ids, vec!["urn:b:1", "urn:c:1", "urn:k:1"]);
        assert!(got.values[0]["locatedAt"].get("entity").is_none());
    }

    #[test]
    fn pick_and_omit_apply_per_level() {
        let pick = Projection::parse("id,locatedAt{id,name,isInCountry{description}}", &ctx())
            .expect("valid");
        let opts = RenderOptions {
            pick: Some(pick.pick_names()),
            ..Default::default()
        };
        let mut s = spec(JoinMode::Inline, 2);
        s.pick = Some(pick);
        let got = run(&s, &opts);
        let b = &got.values[0];
        assert!(b.get("type").is_none() && b.get("name").is_none());
        let city = &b["locatedAt"]["entity"];
        assert_eq!(city["name"]["value"], "Paris");
        assert!(city.get("description").is_none() && city.get("type").is_none());
        let country = &city["isInCountry"]["entity"];
        assert_eq!(country["description"]["value"], "a country");
        assert!(country.get("id").is_none() && country.get("name").is_none());

        // Without isInCountry in the pick, the country is not reached.
        let pick = Projection::parse("locatedAt{name}", &ctx()).expect("valid");
        let mut s = spec(JoinMode::Flat, 2);
        s.pick = Some(pick.clone());
        let got = run(
            &s,
            &RenderOptions {
                pick: Some(pick.pick_names()),
                ..Default::default()
            },
        );
        assert_eq!(got.values.len(), 2);
        assert_eq!(
            got.values[1],
            json!({"name": {"type": "Property", "value": "Paris"}})
        );

        let omit = Projection::parse("type,locatedAt{name,isInCountry{description}}", &ctx())
            .expect("valid");
        let mut s = spec(JoinMode::Flat, 2);
        s.omit = Some(omit.clone());
        let got = run(
            &s,
            &RenderOptions {
                omit: Some(omit.omit_names()),
                ..Default::default()
            },
        );
        assert!(got.values[0].get("type").is_none() && got.values[0].get("locatedAt").is_some());
        assert!(got.values[1].get("name").is_none() && got.values[1].get("description").is_some());
        assert!(got.values[2].get("description").is_none() && got.values[2].get("name").is_some());
    }

    #[test]
    fn missing_and_contained_entities() {
        let s = store();
        let lookup = |id: &str| (id != "urn:c:1").then(|| s.get(id)).flatten();
        let got = join(
            &[&s["urn:b:1"]],
            &RenderOptions::default(),
            &spec(JoinMode::Flat, 3),
            &lookup,
            &ctx(),
        );
        assert_eq!(got.missing, vec!["urn:c:1".to_owned()]);
        assert_eq!(got.values.len(), 1);

        let mut sp = spec(JoinMode::Inline, 3);
        sp.contained_by = vec!["urn:c:1".into()];
        let got = run(&sp, &RenderOptions::default());
        assert!(got.missing.is_empty());
        assert!(got.values[0]["locatedAt"].get("entity").is_none());
    }

    #[test]
    fn join_params() {
        assert_eq!(JoinSpec::from_params(None, Some("2"), None), Ok(None));
        let s = JoinSpec::from_params(Some("flat"), None, Some("urn:a, urn:b"))
            .expect("valid")
            .expect("join");
        assert_eq!((s.mode, s.level), (JoinMode::Flat, 1));
        assert_eq!(s.contained_by, vec!["urn:a".to_owned(), "urn:b".to_owned()]);
        assert!(JoinSpec::from_params(Some("deep"), None, None).is_err());
        assert!(JoinSpec::from_params(Some("inline"), Some("0"), None).is_err());
        assert!(JoinSpec::from_params(Some("inline"), Some("x"), None).is_err());
    }
}
