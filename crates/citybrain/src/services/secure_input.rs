//! A secure job's input taken from the approving tenant's NGSI-LD data instead of an upload.
//!
//! The approval names an entity type, the attribute whose values become the items and an
//! optional NGSI-LD `q` filter. The query is evaluated here, at approval, through the node's
//! broker (the same parser and matcher as `GET /ngsi-ld/v1/entities`, with the core
//! `@context`) in the approving tenant only; nothing of the query result leaves the node
//! except through the protocol.

use api_server::ApiError;
use ngsi_broker::Broker;
use ngsi_ld::AttributeValue;
use ngsi_ld::query::{BoolExpr, Query, QueryParams, TypeExpr};
use serde::Deserialize;
use store::{EntityFilter, TenantScope};
use utoipa::ToSchema;

/// An NGSI-LD query whose matching entities' attribute values are the job's input.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NgsiInput {
    /// Entity type (or NGSI-LD type expression, e.g. `Vehicle|Truck`), core `@context` terms.
    #[serde(rename = "type")]
    pub(crate) entity_type: String,
    /// The attribute whose values become the items; entities without it are skipped.
    pub(crate) attribute: String,
    /// Optional NGSI-LD `q` filter (e.g. `speed>50;brand=="Mercedes"`).
    #[serde(default)]
    pub(crate) q: Option<String>,
}

/// Types every match must have one of (a prefilter for the store).
fn candidate_types(expr: &TypeExpr) -> Vec<String> {
    match expr {
        BoolExpr::Atom(t) => vec![t.clone()],
        BoolExpr::Or(items) => items.iter().flat_map(candidate_types).collect(),
        BoolExpr::And(items) => items.first().map(candidate_types).unwrap_or_default(),
    }
}

/// One attribute value as an item: strings as they are, numbers and booleans in JSON
/// notation, relationships as their target id. Other kinds are refused.
fn item_of(value: &AttributeValue) -> Result<Vec<String>, String> {
    let scalar = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok(v.to_string()),
        _ => Err("only string, number and boolean values can be items".to_owned()),
    };
    match value {
        AttributeValue::Property(v) => Ok(vec![scalar(v)?]),
        AttributeValue::Relationship(targets) => Ok(targets.clone()),
        AttributeValue::VocabProperty(iris) => Ok(iris.clone()),
        _ => Err(format!(
            "a {:?} cannot be an item (Property, Relationship or VocabProperty only)",
            value.kind()
        )),
    }
}

/// Evaluates the query in the tenant of `scope` and returns the items (one per attribute
/// instance of each matching entity, in the store's order).
pub(crate) async fn items(
    broker: &Broker,
    scope: &TenantScope,
    input: &NgsiInput,
) -> Result<Vec<String>, ApiError> {
    let bad = |what: &str, e: String| ApiError::bad_request(format!("query.{what}: {e}"));
    let ctx = broker
        .contexts()
        .resolve(None)
        .await
        .map_err(|e| ApiError::internal(format!("core @context: {e}")))?;
    if input.entity_type.trim().is_empty() {
        return Err(bad("type", "must not be empty".to_owned()));
    }
    let query = Query::parse(
        &QueryParams {
            types: Some(&input.entity_type),
            q: input.q.as_deref(),
            ..QueryParams::default()
        },
        &ctx,
    )
    .map_err(|e| bad("q", e.to_string()))?;
    let attribute = ctx
        .expand_term(input.attribute.trim())
        .filter(|a| !a.is_empty() && !input.attribute.trim().is_empty())
        .ok_or_else(|| bad("attribute", format!("{:?} is not a name", input.attribute)))?;
    let filter = EntityFilter {
        ids: None,
        types: query.types.as_ref().map(candidate_types),
    };
    let entities = broker
        .list(scope, &filter)
        .await
        .map_err(|e| ApiError::internal(format!("reading the tenant's entities: {e}")))?;
    let mut items = Vec::new();
    for entity in entities.iter().filter(|e| query.matches(e)) {
        for instance in entity.attributes.get(&attribute).into_iter().flatten() {
            let values = item_of(&instance.value)
                .map_err(|e| bad("attribute", format!("entity {}: {e}", entity.id)))?;
            items.extend(values);
        }
    }
    Ok(items)
}
