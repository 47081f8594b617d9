//! Parsing NGSI-LD payloads (`serde_json::Value`) into the [`model`](crate::model) with expanded names.
//!
//! Normalized and concise input are one code path: a member that names its `type` is normalized, and
//! one that does not is inferred with the concise rules of the spec (clause 4.5.x):
//! `value` -> Property (GeoProperty if the value is a GeoJSON geometry), `object` -> Relationship,
//! `objectList` -> ListRelationship, `languageMap` -> LanguageProperty, `vocab` -> VocabProperty,
//! `json` -> JsonProperty, `valueList` -> ListProperty; a bare GeoJSON geometry -> GeoProperty; any
//! other JSON value (scalar, array, object) -> a Property with that value. Simplified (keyValues) input
//! makes every member a Property except GeoJSON geometries, which become GeoProperties.
//!
//! System attributes (`createdAt`, `modifiedAt`, `deletedAt`, `instanceId`) in input are ignored, as
//! the spec requires; they are set by the store.

use std::borrow::Cow;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::context::{Context, FastMap, json_kind};
use crate::error::{NgsiError, Result};
use crate::geospatial::{looks_like_geometry, parse_geojson};
use crate::iri::{forbidden_name_char, is_absolute_iri, is_forbidden_name_char};
use crate::model::{Attribute, AttributeKind, AttributeValue, Entity};
use crate::raw::{RawJson, has_repeated_keys, member};
use crate::time::parse_datetime_field;

/// The NGSI-LD "null" literal of merge-patch payloads (1.8): deletes the attribute.
pub const NGSI_LD_NULL: &str = "urn:ngsi-ld:null";

/// How to read a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseOptions {
    /// Simplified (keyValues) input: every member is a value, not an attribute object.
    pub key_values: bool,
    /// The payload is a fragment (append/update/merge bodies): `id` and `type` are optional.
    pub fragment: bool,
    /// Merge-patch semantics: `null` and `"urn:ngsi-ld:null"` mark attributes for deletion instead of
    /// being rejected.
    pub allow_null: bool,
}

/// A parsed payload: the entity plus, in merge mode, the expanded names of attributes to delete.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedEntity {
    /// The entity (in fragment mode, `id` and `types` may be empty).
    pub entity: Entity,
    /// Attributes set to `null` in a merge-patch payload (expanded names, with their `datasetId`).
    pub deletions: Vec<(String, Option<String>)>,
}

/// Parse a complete entity (create, replace, batch) in normalized or concise form.
pub fn parse_entity(json: &Value, ctx: &Context) -> Result<Entity> {
    parse_entity_with(json, ctx, ParseOptions::default()).map(|p| p.entity)
}

/// Parse an entity or entity fragment with explicit options.
pub fn parse_entity_with(json: &Value, ctx: &Context, opts: ParseOptions) -> Result<ParsedEntity> {
    parse_entity_inner(json, ctx, opts, None)
}

/// Expanded entity type and attribute names of one `@context`, remembered across the entities
/// of one payload ([`parse_entity_memo`]). A batch's entities repeat a few names, and
/// expanding one (validating it, looking up the term, building and checking the IRI) was a
/// quarter of parsing an entity. Only names that expanded are kept, so an invalid name fails
/// with the same error every time. A memo belongs to one context: the caller starts a new one
/// when the context changes.
#[derive(Debug, Default)]
pub struct NameMemo {
    names: FastMap<String>,
}

impl NameMemo {
    /// Names kept at most: past this, a payload of ever new names is expanded as without a
    /// memo rather than growing it.
    const LIMIT: usize = 1024;

    /// `expand(name, ctx)`, remembered. Entity types and attribute names share the memo:
    /// [`expand_type_name`] and [`expand_attribute_name`] accept the same names and give them
    /// the same IRIs (they differ only in their error messages, and errors are not kept).
    fn expand(
        &mut self,
        name: &str,
        ctx: &Context,
        expand: fn(&str, &Context) -> Result<String>,
    ) -> Result<String> {
        if let Some(iri) = self.names.get(name) {
            return Ok(iri.clone());
        }
        let iri = expand(name, ctx)?;
        if self.names.len() < Self::LIMIT {
            self.names.insert(name.to_owned(), iri.clone());
        }
        Ok(iri)
    }
}

/// Expands `name` with `expand`, through `memo` if there is one.
fn expand_with(
    memo: Option<&mut NameMemo>,
    name: &str,
    ctx: &Context,
    expand: fn(&str, &Context) -> Result<String>,
) -> Result<String> {
    match memo {
        Some(memo) => memo.expand(name, ctx, expand),
        None => expand(name, ctx),
    }
}

/// [`parse_entity_with`] for one of many entities parsed with `ctx`: names are expanded
/// through `memo` (which must have been used with `ctx` only). The result is the same.
pub fn parse_entity_memo(
    json: &Value,
    ctx: &Context,
    opts: ParseOptions,
    memo: &mut NameMemo,
) -> Result<ParsedEntity> {
    parse_entity_inner(json, ctx, opts, Some(memo))
}

fn parse_entity_inner(
    json: &Value,
    ctx: &Context,
    opts: ParseOptions,
    mut memo: Option<&mut NameMemo>,
) -> Result<ParsedEntity> {
    let Value::Object(map) = json else {
        return Err(NgsiError::bad_data(format!(
            "entity must be a JSON object, found {}",
            json_kind(json)
        )));
    };
    let mut parsed = ParsedEntity::default();
    let entity = &mut parsed.entity;
    match map.get("id").or_else(|| map.get("@id")) {
        Some(Value::String(id)) => entity.id = validate_entity_id(id)?.to_owned(),
        Some(other) => {
            return Err(NgsiError::bad_data(format!(
                "entity id must be a string, found {other}"
            )));
        }
        None if !opts.fragment => return Err(NgsiError::bad_data("entity has no `id`")),
        None => {}
    }
    match map.get("type").or_else(|| map.get("@type")) {
        Some(t) => entity.types = parse_types(t, ctx, memo.as_deref_mut())?,
        None if !opts.fragment => return Err(NgsiError::bad_data("entity has no `type`")),
        None => {}
    }
    if let Some(scope) = map.get("scope") {
        entity.scope = parse_scope_value(scope)?;
    }
    // Sized once: growing the map entry by entry rebuilt its table several times per entity.
    entity
        .attributes
        .reserve_exact(map.keys().filter(|k| !is_entity_member(k)).count());
    for (key, value) in map {
        if is_entity_member(key) {
            continue;
        }
        let name = expand_with(memo.as_deref_mut(), key, ctx, expand_attribute_name)?;
        if opts.allow_null && is_null_literal(value) {
            parsed.deletions.push((name, None));
            continue;
        }
        let kept;
        let value = if opts.allow_null {
            // Instance-level nulls: `{"value": "urn:ngsi-ld:null", "datasetId": ...}` deletes that instance.
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let mut rest = Vec::new();
            for item in items {
                match null_instance(item) {
                    Some(dataset_id) => parsed.deletions.push((name.clone(), dataset_id)),
                    None => rest.push(item.clone()),
                }
            }
            match rest.len() {
                0 => continue,
                1 if !value.is_array() => value,
                _ => {
                    kept = Value::Array(rest);
                    &kept
                }
            }
        } else {
            value
        };
        let instances = parse_attribute_instances(key, value, ctx, opts)?;
        let slot = entity.attributes.entry(name).or_default();
        // Exact capacity: a pushed-into empty Vec reserves 4 instances (about 1.3 KB), and the
        // broker keeps every entity in memory, usually with one instance per attribute.
        slot.reserve_exact(instances.len());
        for instance in instances {
            if slot.iter().any(|a| a.dataset_id == instance.dataset_id) {
                return Err(NgsiError::bad_data(format!(
                    "attribute `{key}` has two instances with the same datasetId ({})",
                    instance.dataset_id.as_deref().unwrap_or("default")
                )));
            }
            slot.push(instance);
        }
    }
    Ok(parsed)
}

/// [`parse_entity_memo`] (or, without a memo, [`parse_entity_with`]) of an entity read as
/// [`RawJson`], for the shapes entities usually take: `None` when it takes another shape, or
/// when it would fail. The caller then parses `json.to_value()` as before, which gives the
/// result or the error; whatever this returns is what that parse gives.
///
/// Taken here: an object without repeated keys whose `id` and `type` are as the spec wants,
/// with a `scope` or not, whose attributes are each one attribute object that names its
/// `type` (normalized form) or a scalar (concise). Left to the `Value` parse: keyValues and
/// merge-patch input, multi-attributes and arrays, concise attribute objects, anything wrong.
pub fn parse_entity_raw(
    json: &RawJson<'_>,
    ctx: &Context,
    opts: ParseOptions,
    mut memo: Option<&mut NameMemo>,
) -> Option<ParsedEntity> {
    if opts.key_values || opts.allow_null {
        return None;
    }
    let RawJson::Object(members) = json else {
        return None;
    };
    if has_repeated_keys(members) {
        return None;
    }
    let mut parsed = ParsedEntity::default();
    let entity = &mut parsed.entity;
    match member(members, "id").or_else(|| member(members, "@id")) {
        Some(RawJson::String(id)) => entity.id = validate_entity_id(id).ok()?.to_owned(),
        Some(_) => return None,
        None if !opts.fragment => return None,
        None => {}
    }
    match member(members, "type").or_else(|| member(members, "@type")) {
        Some(t) => entity.types = raw_types(t, ctx, memo.as_deref_mut())?,
        None if !opts.fragment => return None,
        None => {}
    }
    if let Some(scope) = member(members, "scope") {
        entity.scope = parse_scope_value(&scope.to_value()).ok()?;
    }
    entity
        .attributes
        .reserve_exact(members.iter().filter(|(k, _)| !is_entity_member(k)).count());
    for (key, value) in members {
        if is_entity_member(key) {
            continue;
        }
        let name = expand_with(memo.as_deref_mut(), key, ctx, expand_attribute_name).ok()?;
        let attribute = raw_attribute(key, value, ctx, opts)?;
        // Two keys naming one attribute (a term and its IRI) make a multi-attribute.
        if entity.attributes.contains_key(&name) {
            return None;
        }
        // One instance, as the `Value` parse reserves it.
        entity.attributes.insert(name, vec![attribute]);
    }
    Some(parsed)
}

/// [`parse_types`] through `memo`, of a type member read as [`RawJson`] (`None`: it fails).
fn raw_types(
    v: &RawJson<'_>,
    ctx: &Context,
    mut memo: Option<&mut NameMemo>,
) -> Option<Vec<String>> {
    let names: &[RawJson<'_>] = match v {
        RawJson::String(_) => std::slice::from_ref(v),
        RawJson::Array(items) if !items.is_empty() => items,
        _ => return None,
    };
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let iri = expand_with(memo.as_deref_mut(), name.as_str()?, ctx, expand_type_name).ok()?;
        if !types.contains(&iri) {
            types.push(iri);
        }
    }
    Some(types)
}

/// [`parse_attribute_instances`] of an attribute read as [`RawJson`], when it is one instance:
/// an attribute object that names its `type`, or a scalar (`None` otherwise, or when it fails).
fn raw_attribute(
    name: &str,
    value: &RawJson<'_>,
    ctx: &Context,
    opts: ParseOptions,
) -> Option<Attribute> {
    let members = match value {
        RawJson::Null | RawJson::Array(_) => return None,
        RawJson::Object(members) => members,
        // Concise: a scalar is the value of a Property.
        scalar => return Some(Attribute::property(scalar.to_value())),
    };
    if has_repeated_keys(members) {
        return None;
    }
    let kind = AttributeKind::from_name(member(members, "type")?.as_str()?)?;
    let value_member = member(members, kind.value_member()).map(|v| Cow::Owned(v.to_value()));
    let attr_value = parse_kind_value(name, kind, value_member, ctx, false).ok()?;
    let mut attr = Attribute::new(attr_value);
    for (key, member) in members {
        if !is_value_or_ignored_member(key) {
            attribute_member(&mut attr, name, kind, key, &member.to_value(), ctx, opts).ok()?;
        }
    }
    Some(attr)
}

/// Members of an entity object that are not attributes.
fn is_entity_member(key: &str) -> bool {
    matches!(
        key,
        "id" | "@id"
            | "type"
            | "@type"
            | "scope"
            | "@context"
            | "createdAt"
            | "modifiedAt"
            | "deletedAt"
    )
}

/// Check that `id` is a URI, as entity ids must be (spec 4.5.1).
pub fn validate_entity_id(id: &str) -> Result<&str> {
    if is_absolute_iri(id) {
        Ok(id)
    } else {
        Err(NgsiError::bad_data(format!(
            "entity id `{id}` is not a URI"
        )))
    }
}

/// Check an entity type or attribute name (spec 4.6.2-4.6.3): not empty, none of ``<>"'=;()``,
/// whitespace or control characters.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(NgsiError::bad_data(format!("{what} name is empty")));
    }
    if let Some(c) = forbidden_name_char(name) {
        return Err(NgsiError::bad_data(format!(
            "{what} name `{name}` contains the forbidden character {c:?}"
        )));
    }
    Ok(())
}

/// Validate and expand an attribute name.
pub fn expand_attribute_name(name: &str, ctx: &Context) -> Result<String> {
    validate_name("attribute", name)?;
    let iri = ctx.expand_term(name).ok_or_else(|| {
        NgsiError::bad_data(format!(
            "attribute name `{name}` is mapped to null by the @context"
        ))
    })?;
    if !is_absolute_iri(&iri) {
        return Err(NgsiError::bad_data(format!(
            "attribute name `{name}` does not expand to an IRI"
        )));
    }
    Ok(iri)
}

/// Validate and expand an entity type name.
pub fn expand_type_name(name: &str, ctx: &Context) -> Result<String> {
    validate_name("entity type", name)?;
    let iri = ctx.expand_term(name).ok_or_else(|| {
        NgsiError::bad_data(format!(
            "entity type `{name}` is mapped to null by the @context"
        ))
    })?;
    if !is_absolute_iri(&iri) {
        return Err(NgsiError::bad_data(format!(
            "entity type `{name}` does not expand to an IRI"
        )));
    }
    Ok(iri)
}

fn parse_types(v: &Value, ctx: &Context, mut memo: Option<&mut NameMemo>) -> Result<Vec<String>> {
    let names: Vec<&str> = match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str().ok_or_else(|| {
                    NgsiError::bad_data(format!("entity type must be a string, found {i}"))
                })
            })
            .collect::<Result<_>>()?,
        other => {
            return Err(NgsiError::bad_data(format!(
                "entity type must be a string or a non-empty array, found {other}"
            )));
        }
    };
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let iri = expand_with(memo.as_deref_mut(), name, ctx, expand_type_name)?;
        if !types.contains(&iri) {
            types.push(iri);
        }
    }
    Ok(types)
}

/// Parse a `scope` member: a string or array of strings, each a scope path (`/a/b`).
pub fn parse_scope_value(v: &Value) -> Result<Vec<String>> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|i| {
            let s = i
                .as_str()
                .ok_or_else(|| NgsiError::bad_data(format!("scope must be a string, found {i}")))?;
            validate_scope(s)?;
            Ok(s.to_owned())
        })
        .collect()
}

/// A scope is `/` followed by non-empty segments separated by `/`, without the query wildcards.
pub fn validate_scope(s: &str) -> Result<()> {
    let Some(rest) = s.strip_prefix('/') else {
        return Err(NgsiError::bad_data(format!(
            "scope `{s}` does not start with `/`"
        )));
    };
    if rest.split('/').any(|seg| {
        seg.is_empty() || seg.contains(['#', '+']) || seg.chars().any(is_forbidden_name_char)
    }) {
        return Err(NgsiError::bad_data(format!(
            "scope `{s}` has an empty or invalid segment"
        )));
    }
    Ok(())
}

/// If `item` is an attribute object whose value member is the null literal, the `datasetId` of the
/// instance it deletes (`None` for the default instance).
fn null_instance(item: &Value) -> Option<Option<String>> {
    let Value::Object(m) = item else {
        return None;
    };
    let is_null = [
        "value",
        "object",
        "objectList",
        "languageMap",
        "vocab",
        "json",
        "valueList",
    ]
    .iter()
    .any(|k| m.get(*k).is_some_and(is_null_literal));
    is_null.then(|| {
        m.get("datasetId")
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

fn is_null_literal(v: &Value) -> bool {
    v.is_null() || v.as_str() == Some(NGSI_LD_NULL)
}

/// Parse the value of attribute `name` (compact, for messages) into its instances: an array of
/// attribute objects in normalized form is a multi-attribute; anything else is one instance.
pub fn parse_attribute_instances(
    name: &str,
    value: &Value,
    ctx: &Context,
    opts: ParseOptions,
) -> Result<Vec<Attribute>> {
    if !opts.key_values
        && let Value::Array(items) = value
        && !items.is_empty()
        && items.iter().all(is_attribute_object)
    {
        return items
            .iter()
            .map(|item| parse_attribute(name, item, ctx, opts))
            .collect();
    }
    Ok(vec![parse_attribute(name, value, ctx, opts)?])
}

/// True if `v` is an attribute object in normalized or concise form (as opposed to a plain value).
fn is_attribute_object(v: &Value) -> bool {
    let Value::Object(m) = v else {
        return false;
    };
    if let Some(t) = m.get("type").and_then(Value::as_str) {
        return AttributeKind::from_name(t).is_some();
    }
    [
        "value",
        "object",
        "objectList",
        "languageMap",
        "vocab",
        "json",
        "valueList",
    ]
    .iter()
    .any(|k| m.contains_key(*k))
}

/// Parse one attribute instance of attribute `name`.
pub fn parse_attribute(
    name: &str,
    value: &Value,
    ctx: &Context,
    opts: ParseOptions,
) -> Result<Attribute> {
    if value.is_null() {
        return Err(NgsiError::bad_data(format!(
            "attribute `{name}` has a null value"
        )));
    }
    if opts.key_values {
        return if looks_like_geometry(value) {
            parse_geo_value(name, value).map(Attribute::geo)
        } else {
            Ok(Attribute::property(value.clone()))
        };
    }
    let Value::Object(map) = value else {
        // Concise: a scalar or array is the value of a Property.
        return Ok(Attribute::property(value.clone()));
    };
    let explicit = match map.get("type") {
        Some(Value::String(t)) => match AttributeKind::from_name(t) {
            Some(kind) => Some(kind),
            None if looks_like_geometry(value) => {
                return parse_geo_value(name, value).map(Attribute::geo);
            }
            None => {
                return Err(NgsiError::bad_data(format!(
                    "attribute `{name}` has an unknown type `{t}`"
                )));
            }
        },
        Some(other) => {
            return Err(NgsiError::bad_data(format!(
                "attribute `{name}`: type must be a string, found {other}"
            )));
        }
        None => None,
    };
    let kind = match explicit {
        Some(kind) => kind,
        None => match infer_kind(map) {
            Some(kind) => kind,
            // Concise: an object that is no attribute object is the value of a Property.
            None => return Ok(Attribute::property(value.clone())),
        },
    };
    let attr_value = parse_kind_value(
        name,
        kind,
        map.get(kind.value_member()).map(Cow::Borrowed),
        ctx,
        explicit.is_none(),
    )?;
    let mut attr = Attribute::new(attr_value);
    for (key, member) in map {
        if !is_value_or_ignored_member(key) {
            attribute_member(&mut attr, name, kind, key, member, ctx, opts)?;
        }
    }
    Ok(attr)
}

/// Members of an attribute object that are its type, its value or ignored on input (system
/// attributes, and what only output carries).
fn is_value_or_ignored_member(key: &str) -> bool {
    matches!(
        key,
        "type"
            | "value"
            | "object"
            | "objectList"
            | "languageMap"
            | "vocab"
            | "json"
            | "valueList"
            | "createdAt"
            | "modifiedAt"
            | "deletedAt"
            | "instanceId"
            | "lang"
            | "@context"
            | "previousValue"
            | "previousObject"
    )
}

/// Sets member `key` (not one of [`is_value_or_ignored_member`]) of an attribute object on
/// `attr`, an attribute of `kind` named `name`: its options or a sub-attribute.
fn attribute_member(
    attr: &mut Attribute,
    name: &str,
    kind: AttributeKind,
    key: &str,
    member: &Value,
    ctx: &Context,
    opts: ParseOptions,
) -> Result<()> {
    match key {
        "datasetId" => {
            let id = member.as_str().ok_or_else(|| {
                NgsiError::bad_data(format!("attribute `{name}`: datasetId must be a string"))
            })?;
            if !is_absolute_iri(id) {
                return Err(NgsiError::bad_data(format!(
                    "attribute `{name}`: datasetId `{id}` is not a URI"
                )));
            }
            attr.dataset_id = Some(id.to_owned());
        }
        "observedAt" => {
            let s = member.as_str().ok_or_else(|| {
                NgsiError::bad_data(format!("attribute `{name}`: observedAt must be a string"))
            })?;
            attr.observed_at = Some(parse_datetime_field(
                &format!("attribute `{name}`: observedAt"),
                s,
            )?);
        }
        "unitCode" => {
            let s = member.as_str().ok_or_else(|| {
                NgsiError::bad_data(format!("attribute `{name}`: unitCode must be a string"))
            })?;
            attr.set_unit_code(Some(s.to_owned()));
        }
        "objectType" => {
            if kind != AttributeKind::Relationship && kind != AttributeKind::ListRelationship {
                return Err(NgsiError::bad_data(format!(
                    "attribute `{name}`: objectType on a {}",
                    kind.name()
                )));
            }
            attr.set_object_type(parse_types(member, ctx, None)?);
        }
        sub_name => {
            let expanded = expand_attribute_name(sub_name, ctx)?;
            let sub = parse_attribute(
                sub_name,
                member,
                ctx,
                ParseOptions {
                    key_values: false,
                    ..opts
                },
            )?;
            attr.sub_attributes.insert(expanded, sub);
        }
    }
    Ok(())
}

fn infer_kind(map: &Map<String, Value>) -> Option<AttributeKind> {
    if let Some(v) = map.get("value") {
        return Some(if looks_like_geometry(v) {
            AttributeKind::GeoProperty
        } else {
            AttributeKind::Property
        });
    }
    [
        ("object", AttributeKind::Relationship),
        ("objectList", AttributeKind::ListRelationship),
        ("languageMap", AttributeKind::LanguageProperty),
        ("vocab", AttributeKind::VocabProperty),
        ("json", AttributeKind::JsonProperty),
        ("valueList", AttributeKind::ListProperty),
    ]
    .into_iter()
    .find(|(member, _)| map.contains_key(*member))
    .map(|(_, kind)| kind)
}

fn parse_geo_value(name: &str, v: &Value) -> Result<Value> {
    check_geo_value(name, v)?;
    Ok(v.clone())
}

/// Checks that `v`, the value of attribute `name`, is a GeoJSON geometry.
fn check_geo_value(name: &str, v: &Value) -> Result<()> {
    parse_geojson(v)
        .map(drop)
        .map_err(|e| NgsiError::bad_data(format!("attribute `{name}`: {}", e.detail)))
}

/// The value of an attribute of `kind` named `name` from its value member (`value_member`,
/// the member `kind.value_member()` of the attribute object, if it has one).
fn parse_kind_value(
    name: &str,
    kind: AttributeKind,
    value_member: Option<Cow<'_, Value>>,
    ctx: &Context,
    inferred: bool,
) -> Result<AttributeValue> {
    let member = kind.value_member();
    let v = match value_member {
        Some(v) if !v.is_null() => v,
        _ => {
            return Err(NgsiError::bad_data(format!(
                "attribute `{name}` of type {} has no `{member}`",
                kind.name()
            )));
        }
    };
    Ok(match kind {
        // An owned member (read from raw JSON) is moved into the attribute, not copied.
        AttributeKind::Property => AttributeValue::Property(v.into_owned()),
        AttributeKind::GeoProperty => {
            if inferred || v.is_object() {
                check_geo_value(name, &v)?;
                AttributeValue::GeoProperty(v.into_owned())
            } else {
                return Err(NgsiError::bad_data(format!(
                    "attribute `{name}`: GeoProperty value must be a GeoJSON geometry"
                )));
            }
        }
        AttributeKind::Relationship => {
            let one = |i: &Value| -> Option<String> {
                let s = match i {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("id").and_then(Value::as_str),
                    _ => None,
                };
                s.filter(|s| is_absolute_iri(s)).map(|s| ctx.expand_id(s))
            };
            let objects: Option<Vec<String>> = match &*v {
                Value::Array(items) if !items.is_empty() => items.iter().map(one).collect(),
                Value::Array(_) => None,
                other => one(other).map(|o| vec![o]),
            };
            match objects {
                Some(o) => AttributeValue::Relationship(o),
                None => {
                    return Err(NgsiError::bad_data(format!(
                        "attribute `{name}`: Relationship object must be a URI or URIs, found {v}"
                    )));
                }
            }
        }
        AttributeKind::ListRelationship => {
            let Value::Array(items) = &*v else {
                return Err(NgsiError::bad_data(format!(
                    "attribute `{name}`: objectList must be an array"
                )));
            };
            let objects = items
                .iter()
                .map(|i| {
                    let s = match i {
                        Value::String(s) => Some(s.as_str()),
                        Value::Object(o) => o.get("object").and_then(Value::as_str),
                        _ => None,
                    };
                    s.filter(|s| is_absolute_iri(s))
                        .map(|s| ctx.expand_id(s))
                        .ok_or_else(|| {
                            NgsiError::bad_data(format!(
                                "attribute `{name}`: objectList member {i} is not a URI"
                            ))
                        })
                })
                .collect::<Result<_>>()?;
            AttributeValue::ListRelationship(objects)
        }
        AttributeKind::LanguageProperty => {
            let Value::Object(m) = &*v else {
                return Err(NgsiError::bad_data(format!(
                    "attribute `{name}`: languageMap must be an object"
                )));
            };
            let mut out = IndexMap::new();
            for (lang, text) in m {
                let ok = match text {
                    Value::String(_) => true,
                    Value::Array(a) => a.iter().all(Value::is_string),
                    _ => false,
                };
                if !ok || lang.is_empty() {
                    return Err(NgsiError::bad_data(format!(
                        "attribute `{name}`: languageMap entry `{lang}` must be a string or an array of strings"
                    )));
                }
                out.insert(lang.clone(), text.clone());
            }
            AttributeValue::LanguageProperty(out)
        }
        AttributeKind::VocabProperty => {
            let items: Vec<&Value> = match &*v {
                Value::Array(a) if !a.is_empty() => a.iter().collect(),
                other => vec![other],
            };
            let vocab = items
                .into_iter()
                .map(|i| {
                    let s = i.as_str().ok_or_else(|| {
                        NgsiError::bad_data(format!(
                            "attribute `{name}`: vocab must be a string or strings, found {i}"
                        ))
                    })?;
                    validate_name("vocab", s)?;
                    ctx.expand_term(s).ok_or_else(|| {
                        NgsiError::bad_data(format!(
                            "attribute `{name}`: vocab `{s}` is mapped to null"
                        ))
                    })
                })
                .collect::<Result<_>>()?;
            AttributeValue::VocabProperty(vocab)
        }
        AttributeKind::JsonProperty => AttributeValue::JsonProperty(v.into_owned()),
        AttributeKind::ListProperty => match v.into_owned() {
            Value::Array(items) => AttributeValue::ListProperty(items),
            _ => {
                return Err(NgsiError::bad_data(format!(
                    "attribute `{name}`: valueList must be an array"
                )));
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::CoreContext;
    use serde_json::json;

    fn core() -> Context {
        Context::core(CoreContext::V1_9)
    }

    const DC: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

    #[test]
    fn parsed_attributes_hold_no_spare_instance_capacity() {
        // The broker keeps every entity in memory: a default Vec growth would reserve four
        // instances (about 1.3 KB) per attribute of which one is used.
        let e = parse_entity(
            &json!({
                "id": "urn:ngsi-ld:Vehicle:A1", "type": "Vehicle",
                "speed": {"type": "Property", "value": 50},
                "plate": [{"type": "Property", "value": "a"},
                          {"type": "Property", "value": "b", "datasetId": "urn:d:2"}]
            }),
            &core(),
        )
        .expect("valid entity");
        for (name, instances) in &e.attributes {
            assert_eq!(instances.capacity(), instances.len(), "{name}");
        }
        assert_eq!(e.attributes.values().map(Vec::len).sum::<usize>(), 3);
    }

    #[test]
    fn normalized_entity() {
        let e = parse_entity(
            &json!({
                "id": "urn:ngsi-ld:Vehicle:A1", "type": "Vehicle",
                "speed": {"type": "Property", "value": 50, "observedAt": "2018-09-27T12:00:00Z", "unitCode": "KMH",
                          "accuracy": {"type": "Property", "value": 0.9}},
                "owner": {"type": "Relationship", "object": "urn:ngsi-ld:Person:1"},
                "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
                "name": {"type": "LanguageProperty", "languageMap": {"en": "car", "fr": "voiture"}},
                "category": {"type": "VocabProperty", "vocab": "sedan"},
                "config": {"type": "JsonProperty", "json": {"a": [1, null]}},
                "readings": {"type": "ListProperty", "valueList": [1, 2, 3]},
                "friends": {"type": "ListRelationship", "objectList": [{"object": "urn:a"}, "urn:b"]},
                "createdAt": "2000-01-01T00:00:00Z"
            }),
            &core(),
        )
        .expect("valid entity");
        assert_eq!(e.types, vec![format!("{DC}Vehicle")]);
        let speed = e.first_attribute(&format!("{DC}speed")).expect("speed");
        assert_eq!(speed.value, AttributeValue::Property(json!(50)));
        assert_eq!(speed.unit_code(), Some("KMH"));
        assert!(speed.observed_at.is_some());
        assert!(speed.sub_attributes.contains_key(&format!("{DC}accuracy")));
        assert_eq!(
            e.first_attribute(&format!("{DC}owner"))
                .map(Attribute::kind),
            Some(AttributeKind::Relationship)
        );
        assert!(e.geometry(crate::model::LOCATION).is_some());
        assert_eq!(
            e.first_attribute(&format!("{DC}category"))
                .map(|a| a.value.clone()),
            Some(AttributeValue::VocabProperty(vec![format!("{DC}sedan")]))
        );
        assert_eq!(
            e.first_attribute(&format!("{DC}friends"))
                .map(|a| a.value.clone()),
            Some(AttributeValue::ListRelationship(vec![
                "urn:a".into(),
                "urn:b".into()
            ]))
        );
        assert_eq!(e.attributes.len(), 8);
        assert!(
            e.created_at.is_none(),
            "system attributes in input are ignored"
        );
    }

    #[test]
    fn concise_inference() {
        let e = parse_entity(
            &json!({
                "id": "urn:x", "type": "T",
                "a": 5, "b": [1, 2], "c": {"street": "Main"},
                "d": {"value": 3, "unitCode": "C"},
                "e": {"object": "urn:y"},
                "location": {"type": "Point", "coordinates": [0, 0]},
                "f": {"value": {"type": "Point", "coordinates": [0, 0]}},
                "g": {"languageMap": {"en": "x"}},
                "h": {"vocab": ["v1", "v2"]}, "i": {"json": 1}, "j": {"valueList": []}, "k": {"objectList": []}
            }),
            &core(),
        )
        .expect("valid concise entity");
        let kind = |n: &str| e.first_attribute(&format!("{DC}{n}")).map(Attribute::kind);
        assert_eq!(kind("a"), Some(AttributeKind::Property));
        assert_eq!(kind("b"), Some(AttributeKind::Property));
        assert_eq!(kind("c"), Some(AttributeKind::Property));
        assert_eq!(kind("d"), Some(AttributeKind::Property));
        assert_eq!(kind("e"), Some(AttributeKind::Relationship));
        assert_eq!(kind("f"), Some(AttributeKind::GeoProperty));
        assert_eq!(kind("g"), Some(AttributeKind::LanguageProperty));
        assert_eq!(kind("h"), Some(AttributeKind::VocabProperty));
        assert_eq!(kind("i"), Some(AttributeKind::JsonProperty));
        assert_eq!(kind("j"), Some(AttributeKind::ListProperty));
        assert_eq!(kind("k"), Some(AttributeKind::ListRelationship));
        assert_eq!(
            e.first_attribute(crate::model::LOCATION)
                .map(Attribute::kind),
            Some(AttributeKind::GeoProperty)
        );
    }

    #[test]
    fn multi_attributes_by_dataset_id() {
        let e = parse_entity(
            &json!({"id": "urn:x", "type": "T", "temp": [
                {"type": "Property", "value": 1},
                {"type": "Property", "value": 2, "datasetId": "urn:ds:1"}
            ]}),
            &core(),
        )
        .expect("valid");
        assert_eq!(e.attribute(&format!("{DC}temp")).map(<[_]>::len), Some(2));
        let dup = parse_entity(
            &json!({"id": "urn:x", "type": "T", "temp": [{"value": 1}, {"value": 2}]}),
            &core(),
        );
        assert!(dup.unwrap_err().detail.contains("same datasetId"));
    }

    #[test]
    fn bad_payloads_name_the_element() {
        let cases = [
            (json!([]), "JSON object"),
            (json!({"type": "T"}), "no `id`"),
            (json!({"id": "not a uri", "type": "T"}), "not a URI"),
            (json!({"id": "urn:x"}), "no `type`"),
            (json!({"id": "urn:x", "type": 5}), "entity type"),
            (
                json!({"id": "urn:x", "type": "T", "a(b)": 1}),
                "forbidden character",
            ),
            (
                json!({"id": "urn:x", "type": "T", "p": {"type": "Property"}}),
                "has no `value`",
            ),
            (
                json!({"id": "urn:x", "type": "T", "p": {"type": "Property", "value": null}}),
                "has no `value`",
            ),
            (
                json!({"id": "urn:x", "type": "T", "r": {"type": "Relationship"}}),
                "has no `object`",
            ),
            (
                json!({"id": "urn:x", "type": "T", "r": {"type": "Relationship", "object": "nope"}}),
                "must be a URI",
            ),
            (
                json!({"id": "urn:x", "type": "T", "p": {"type": "Foo", "value": 1}}),
                "unknown type",
            ),
            (
                json!({"id": "urn:x", "type": "T", "p": {"value": 1, "observedAt": "yesterday"}}),
                "observedAt",
            ),
            (
                json!({"id": "urn:x", "type": "T", "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": ["a", 0]}}}),
                "not a number",
            ),
            (
                json!({"id": "urn:x", "type": "T", "l": {"type": "LanguageProperty", "languageMap": {"en": 5}}}),
                "languageMap",
            ),
            (json!({"id": "urn:x", "type": "T", "p": null}), "null"),
            (
                json!({"id": "urn:x", "type": "T", "scope": "noslash"}),
                "scope",
            ),
        ];
        for (payload, needle) in cases {
            let err = parse_entity(&payload, &core()).expect_err(&payload.to_string());
            assert_eq!(err.kind, crate::ErrorKind::BadRequestData);
            assert!(err.detail.contains(needle), "{payload}: {}", err.detail);
        }
    }

    #[test]
    fn key_values_and_merge_nulls() {
        let p = parse_entity_with(
            &json!({"id": "urn:x", "type": "T", "a": {"x": 1}, "location": {"type": "Point", "coordinates": [1, 1]}, "gone": null, "gone2": "urn:ngsi-ld:null"}),
            &core(),
            ParseOptions { key_values: true, fragment: false, allow_null: true },
        )
        .expect("valid");
        assert_eq!(
            p.entity
                .first_attribute(&format!("{DC}a"))
                .map(|a| a.value.clone()),
            Some(AttributeValue::Property(json!({"x": 1})))
        );
        assert_eq!(
            p.entity
                .first_attribute(crate::model::LOCATION)
                .map(Attribute::kind),
            Some(AttributeKind::GeoProperty)
        );
        assert_eq!(p.deletions.len(), 2);
        let p = parse_entity_with(
            &json!({"location": {"type": "GeoProperty", "value": "urn:ngsi-ld:null"},
                    "temp": [{"value": 5}, {"value": "urn:ngsi-ld:null", "datasetId": "urn:ds:1"}]}),
            &core(),
            ParseOptions { fragment: true, allow_null: true, key_values: false },
        )
        .expect("valid merge fragment");
        assert_eq!(
            p.deletions,
            vec![
                (crate::model::LOCATION.to_owned(), None),
                (format!("{DC}temp"), Some("urn:ds:1".to_owned()))
            ]
        );
        assert_eq!(
            p.entity.attribute(&format!("{DC}temp")).map(<[_]>::len),
            Some(1)
        );
        let frag = parse_entity_with(
            &json!({"a": 1}),
            &core(),
            ParseOptions {
                fragment: true,
                ..Default::default()
            },
        );
        assert!(frag.is_ok());
    }

    /// Entities parsed one after another through one memo come out as parsed alone, errors
    /// included: a name that failed is not remembered, an entity type and an attribute of
    /// the same name share the memo, and a name past the memo's limit still expands.
    #[test]
    fn names_expanded_through_a_memo_are_those_expanded_alone() {
        let ctx = core()
            .process(
                &json!({"speed": "urn:x:speed", "nothing": null, "Vehicle": "urn:x:Vehicle"}),
                &crate::context::NoLoader,
            )
            .expect("context");
        let mut payloads = vec![
            json!({"id": "urn:a", "type": "Vehicle", "speed": 1, "location": {"type": "Point", "coordinates": [1, 2]}}),
            json!({"id": "urn:b", "type": "Vehicle", "speed": {"type": "Property", "value": 2}, "Vehicle": 3}),
            json!({"id": "urn:c", "type": "T", "nothing": 1}),
            json!({"id": "urn:d", "type": "T", "bad<name": 1}),
            json!({"id": "urn:e", "type": "bad name", "speed": 1}),
            json!({"id": "urn:f", "type": "T", "nothing": 1, "speed": 5}),
            json!({"id": "urn:g", "type": ["T", "Vehicle"], "plate": "B"}),
        ];
        // Past the memo's limit.
        payloads.extend(
            (0..NameMemo::LIMIT + 5)
                .map(|n| json!({"id": "urn:h", "type": "T", format!("a{n}"): n})),
        );
        payloads.push(payloads[0].clone());
        let mut memo = NameMemo::default();
        for payload in &payloads {
            let alone = parse_entity_with(payload, &ctx, ParseOptions::default());
            let through = parse_entity_memo(payload, &ctx, ParseOptions::default(), &mut memo);
            match (alone, through) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{payload}"),
                (Err(a), Err(b)) => assert_eq!(a.detail, b.detail, "{payload}"),
                (a, b) => panic!("{payload}: {a:?} and {b:?}"),
            }
        }
        assert_eq!(memo.names.len(), NameMemo::LIMIT);
        assert_eq!(
            memo.names.get("Vehicle").map(String::as_str),
            Some("urn:x:Vehicle")
        );
        assert!(!memo.names.contains_key("nothing"));
    }
}
