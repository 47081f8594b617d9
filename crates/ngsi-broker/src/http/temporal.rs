//! The temporal API under `/ngsi-ld/v1/temporal` (spec 5.6.11-5.6.16, 5.7.3-5.7.4): create or
//! add to a temporal entity, retrieve and query histories (`timerel`/`timeAt`/`endTimeAt`,
//! `timeproperty`, `lastN`, `temporalValues`, `aggregatedValues`), delete an entity's history or
//! one attribute's, modify or delete one instance, and `POST /temporal/entityOperations/query`.
//! Tenants, permissions, contexts and errors are exactly those of the entity routes (the parent
//! module's helpers).

use super::*;
use crate::temporal::{entity_record, from_micros, instance_record, micros, temporal_entity};
use axum::routing::{delete, patch};
use ngsi_ld::temporal::{AggrMethod, TemporalFormat, TemporalQuery, TimeProperty, TimeRel};
use ngsi_ld::time::IsoDuration;
use store::{
    DatasetSelector, InstanceQuery, NgsiTemporalStore, TemporalEntityRecord, TemporalWrite,
    TimeColumn,
};

/// The temporal routes, merged into the broker's router.
pub(super) fn routes() -> axum::Router<Arc<Broker>> {
    const E: &str = "/ngsi-ld/v1/temporal/entities";
    axum::Router::new()
        .route(E, get(query_temporal).post(create_temporal))
        .route(&format!("{E}/"), get(query_temporal).post(create_temporal))
        .route(
            &format!("{E}/{{id}}"),
            get(retrieve_temporal).delete(delete_temporal),
        )
        .route(&format!("{E}/{{id}}/attrs"), post(append_temporal))
        .route(&format!("{E}/{{id}}/attrs/"), post(append_temporal))
        .route(
            &format!("{E}/{{id}}/attrs/{{attr}}"),
            delete(delete_temporal_attr),
        )
        .route(
            &format!("{E}/{{id}}/attrs/{{attr}}/"),
            delete(delete_temporal_attr),
        )
        .route(
            &format!("{E}/{{id}}/attrs/{{attr}}/{{instance}}"),
            patch(patch_instance).delete(delete_instance),
        )
        .route(
            "/ngsi-ld/v1/temporal/entityOperations/query",
            post(query_temporal_post),
        )
        .route(
            "/ngsi-ld/v1/temporal/entityOperations/query/",
            post(query_temporal_post),
        )
}

fn history(b: &Broker) -> BrokerResult<Arc<dyn NgsiTemporalStore>> {
    b.temporal.clone().ok_or_else(|| {
        NgsiError::not_supported("this broker keeps no temporal representation").into()
    })
}

// ----- parsing -----

/// A temporal entity payload: every attribute maps to a list of instances (any number per
/// `datasetId`). `fragment`: `id` and `type` are optional (append).
fn parse_temporal(value: &Value, ctx: &Context, fragment: bool) -> BrokerResult<Entity> {
    let Value::Object(map) = value else {
        return Err(invalid("a temporal entity must be a JSON object"));
    };
    let mut e = Entity::default();
    match map.get("id").or_else(|| map.get("@id")) {
        Some(Value::String(id)) => e.id = ngsi_ld::parse::validate_entity_id(id)?.to_owned(),
        Some(other) => return Err(bad_data(format!("entity id must be a string, not {other}"))),
        None if !fragment => return Err(bad_data("the temporal entity has no `id`")),
        None => {}
    }
    match map.get("type").or_else(|| map.get("@type")) {
        Some(Value::String(t)) => e.types = vec![ngsi_ld::parse::expand_type_name(t, ctx)?],
        Some(Value::Array(items)) if !items.is_empty() => {
            for t in items {
                let t = t
                    .as_str()
                    .ok_or_else(|| bad_data("entity types must be strings"))?;
                let t = ngsi_ld::parse::expand_type_name(t, ctx)?;
                if !e.types.contains(&t) {
                    e.types.push(t);
                }
            }
        }
        Some(other) => return Err(bad_data(format!("invalid entity type {other}"))),
        None if !fragment => return Err(bad_data("the temporal entity has no `type`")),
        None => {}
    }
    if let Some(s) = map.get("scope") {
        e.scope = ngsi_ld::parse::parse_scope_value(s)?;
    }
    for (key, v) in map {
        if matches!(
            key.as_str(),
            "id" | "@id"
                | "type"
                | "@type"
                | "scope"
                | "@context"
                | "createdAt"
                | "modifiedAt"
                | "deletedAt"
        ) {
            continue;
        }
        let name = ngsi_ld::parse::expand_attribute_name(key, ctx)?;
        let instances = ngsi_ld::parse::parse_attribute_instances(
            key,
            v,
            ctx,
            ParseOptions {
                fragment: true,
                ..Default::default()
            },
        )?;
        e.attributes.entry(name).or_default().extend(instances);
    }
    Ok(e)
}

/// What a temporal read selects and how it renders.
struct Tq {
    instances: InstanceQuery,
    time_property: TimeProperty,
    timerel: Option<TimeRel>,
    format: TemporalFormat,
    opts: RenderOptions,
    /// Explicit `attrs`/`datasetId` (an entity without a match is not found / not listed).
    narrowed: bool,
    /// `lastN` as asked.
    last_n: Option<usize>,
    /// The page: most instances per attribute in one response.
    page: usize,
}

fn parse_tq(p: &P, ctx: &Context, mime: Mime, req: &Req, page: usize) -> BrokerResult<Tq> {
    let time_property = p
        .get("timeproperty")
        .map(TimeProperty::parse)
        .transpose()?
        .unwrap_or_default();
    let timerel = match p.get("timerel") {
        Some(rel) => Some(TimeRel::parse(rel, p.get("timeAt"), p.get("endTimeAt"))?),
        None => None,
    };
    let last_n = p
        .get("lastN")
        .map(TemporalQuery::parse_last_n)
        .transpose()?;
    let mut format = TemporalFormat::Normalized;
    let mut sys_attrs = false;
    let mut wants_aggr = false;
    for o in p.options() {
        match o {
            "temporalValues" => format = TemporalFormat::TemporalValues,
            "aggregatedValues" => wants_aggr = true,
            "sysAttrs" => sys_attrs = true,
            "normalized" | "" => {}
            other => return Err(invalid(format!("unknown option `{other}`"))),
        }
    }
    let aggr_format = |p: &P| -> BrokerResult<TemporalFormat> {
        let methods = match p.get("aggrMethods") {
            Some(m) => AggrMethod::parse_list(m)?,
            None => return Err(bad_data("aggregatedValues needs aggrMethods")),
        };
        let period = p
            .get("aggrPeriodDuration")
            .map(|d| IsoDuration::parse("aggrPeriodDuration", d))
            .transpose()?;
        Ok(TemporalFormat::Aggregated { methods, period })
    };
    if wants_aggr {
        format = aggr_format(p)?;
    }
    if let Some(f) = p.get("format") {
        format = match f {
            "temporalValues" | "simplified" | "keyValues" => TemporalFormat::TemporalValues,
            "aggregatedValues" => aggr_format(p)?,
            "normalized" => TemporalFormat::Normalized,
            other => return Err(invalid(format!("unknown format `{other}`"))),
        };
    }
    let mut opts = RenderOptions {
        sys_attrs,
        ..RenderOptions::default()
    };
    for key in ["pick", "omit", "attrs"] {
        if let Some(list) = p.get(key) {
            check_name_list(key, list)?;
        }
    }
    if let Some(a) = p.get("attrs") {
        opts.attrs = Some(parse_name_list(a, ctx)?);
    }
    if let Some(a) = p.get("pick") {
        opts.pick = Some(parse_name_list(a, ctx)?);
    }
    if let Some(a) = p.get("omit") {
        opts.omit = Some(parse_name_list(a, ctx)?);
    }
    if opts.pick.is_some() && opts.omit.is_some() {
        return Err(bad_data("pick and omit cannot be used together"));
    }
    if (opts.pick.is_some() || opts.omit.is_some()) && opts.attrs.is_some() {
        return Err(bad_data("attrs cannot be combined with pick or omit"));
    }
    if let Some(d) = p.get("datasetId") {
        opts.dataset_ids = Some(
            d.split(',')
                .map(|s| match s.trim() {
                    "@none" => None,
                    s => Some(s.to_owned()),
                })
                .collect(),
        );
    }
    if mime == Mime::LdJson {
        opts.context = Some(response_context(req));
    }
    let (from, to) = timerel.map(|r| r.bounds()).unwrap_or((None, None));
    let column = match time_property {
        TimeProperty::ObservedAt => TimeColumn::ObservedAt,
        TimeProperty::CreatedAt => TimeColumn::CreatedAt,
        TimeProperty::ModifiedAt => TimeColumn::ModifiedAt,
        TimeProperty::DeletedAt => TimeColumn::DeletedAt,
    };
    Ok(Tq {
        instances: InstanceQuery {
            attributes: opts.attrs.clone(),
            column,
            from: from.map(micros),
            to: to.map(micros),
            last_n: last_n.map(|n| n.min(page)),
            first_n: last_n.is_none().then_some(page),
        },
        last_n,
        page,
        time_property,
        timerel,
        narrowed: opts.attrs.is_some() || opts.dataset_ids.is_some(),
        format,
        opts,
    })
}

fn wanted(opts: &RenderOptions, name: &str) -> bool {
    if let Some(pick) = &opts.pick
        && !pick.iter().any(|p| p == name)
    {
        return false;
    }
    !opts
        .omit
        .as_ref()
        .is_some_and(|omit| omit.iter().any(|o| o == name))
}

/// Renders a temporal entity whose attribute lists are the selected instances.
fn render_temporal(e: &Entity, tq: &Tq, ctx: &Context) -> Value {
    let opts = &tq.opts;
    let mut out = Map::new();
    if wanted(opts, "id") {
        out.insert("id".into(), Value::String(e.id.clone()));
    }
    if wanted(opts, "type") {
        let types: Vec<Value> = e
            .types
            .iter()
            .map(|t| Value::String(ctx.compact_iri(t)))
            .collect();
        out.insert(
            "type".into(),
            if types.len() == 1 {
                types.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(types)
            },
        );
    }
    for (name, instances) in &e.attributes {
        if !wanted(opts, name) {
            continue;
        }
        let selected: Vec<&Attribute> = instances
            .iter()
            .filter(|a| {
                opts.dataset_ids
                    .as_ref()
                    .is_none_or(|ids| ids.contains(&a.dataset_id))
            })
            .collect();
        if selected.is_empty() {
            // Emptied by the page's time range: shown as an empty history.
            if instances.is_empty() {
                match tq.format {
                    TemporalFormat::Normalized => {
                        out.insert(ctx.compact_iri(name), Value::Array(Vec::new()));
                    }
                    TemporalFormat::TemporalValues => {
                        out.insert(
                            ctx.compact_iri(name),
                            json!({"type": "Property", "values": []}),
                        );
                    }
                    TemporalFormat::Aggregated { .. } => {}
                }
            }
            continue;
        }
        let rendered = match &tq.format {
            TemporalFormat::Normalized => {
                let inst_opts = RenderOptions {
                    format: Format::Normalized,
                    sys_attrs: opts.sys_attrs,
                    ..RenderOptions::default()
                };
                Value::Array(
                    selected
                        .iter()
                        .map(|a| {
                            let mut v = ngsi_ld::render::render_instance(a, &inst_opts, ctx);
                            if let (Some(t), Value::Object(m)) = (a.deleted_at, &mut v) {
                                m.insert(
                                    "deletedAt".into(),
                                    Value::String(ngsi_ld::time::format_datetime(&t)),
                                );
                            }
                            v
                        })
                        .collect(),
                )
            }
            simplified => {
                // One object per datasetId (an array if there are several).
                let mut groups: Vec<(Option<String>, Vec<&Attribute>)> = Vec::new();
                for a in selected {
                    match groups.iter_mut().find(|(d, _)| *d == a.dataset_id) {
                        Some((_, g)) => g.push(a),
                        None => groups.push((a.dataset_id.clone(), vec![a])),
                    }
                }
                let mut rendered: Vec<Value> = groups
                    .into_iter()
                    .map(|(dataset, group)| {
                        let mut v = match simplified {
                            TemporalFormat::Aggregated { methods, period } => {
                                let range = tq.timerel.map(|r| r.bounds()).unwrap_or((None, None));
                                ngsi_ld::temporal::aggregate(
                                    &group,
                                    tq.time_property,
                                    methods,
                                    *period,
                                    range,
                                )
                            }
                            _ => ngsi_ld::temporal::temporal_values(&group, tq.time_property, ctx),
                        };
                        if let (Some(d), Value::Object(m)) = (dataset, &mut v) {
                            m.insert("datasetId".into(), Value::String(d));
                        }
                        v
                    })
                    .collect();
                if rendered.len() == 1 {
                    rendered.pop().unwrap_or(Value::Null)
                } else {
                    Value::Array(rendered)
                }
            }
        };
        out.insert(ctx.compact_iri(name), rendered);
    }
    if opts.sys_attrs {
        for (k, t) in [
            ("createdAt", e.created_at),
            ("modifiedAt", e.modified_at),
            ("deletedAt", e.deleted_at),
        ] {
            if let Some(t) = t {
                out.insert(k.into(), Value::String(ngsi_ld::time::format_datetime(&t)));
            }
        }
    }
    if let Some(c) = &opts.context {
        out.insert("@context".into(), c.clone());
    }
    Value::Object(out)
}

/// The history of `rec` per `tq`, as a temporal entity (attributes with no selected instance
/// after the `datasetId` filter are dropped).
async fn load(
    store: &Arc<dyn NgsiTemporalStore>,
    scope: &TenantScope,
    rec: &TemporalEntityRecord,
    tq: &Tq,
) -> BrokerResult<Entity> {
    let rows = store
        .temporal_instances(scope, &rec.id, &tq.instances)
        .await?;
    let mut e = temporal_entity(rec, rows)?;
    if let Some(ids) = &tq.opts.dataset_ids {
        for list in e.attributes.values_mut() {
            list.retain(|a| ids.contains(&a.dataset_id));
        }
        e.attributes.retain(|_, l| !l.is_empty());
    }
    Ok(e)
}

/// The entity as of the latest selected instance of each attribute and dataset (what `q`,
/// `attrs` and geo-queries are evaluated against).
fn latest_view(e: &Entity) -> Entity {
    let mut view = Entity {
        id: e.id.clone(),
        types: e.types.clone(),
        scope: e.scope.clone(),
        ..Entity::default()
    };
    for (name, instances) in &e.attributes {
        for a in instances {
            if a.deleted_at.is_none() {
                view.upsert_attribute(name.clone(), a.clone());
            }
        }
    }
    view
}

/// A time range of temporal pagination, in the order the instances were selected.
type Range = (ngsi_ld::Timestamp, ngsi_ld::Timestamp);

/// Temporal pagination (spec 6.3.10): if an attribute filled the page, keeps only the time range
/// every attribute is complete in, and returns it (start first: oldest-first without `lastN`,
/// newest-first with it).
fn paginate(e: &mut Entity, tq: &Tq) -> Option<Range> {
    if tq.last_n.is_some_and(|n| n < tq.page) {
        return None;
    }
    let limit = tq.last_n.map_or(tq.page, |n| n.min(tq.page));
    let tp = tq.time_property;
    let time = |a: &Attribute| tp.of(a).or(a.created_at);
    let reached: Vec<Range> = e
        .attributes
        .values()
        .filter(|l| l.len() >= limit)
        .filter_map(|l| Some((time(l.first()?)?, time(l.last()?)?)))
        .collect();
    if reached.is_empty() {
        return None;
    }
    let range = if tq.last_n.is_some() {
        let end = reached.iter().map(|r| r.0).max()?;
        let start = match tq.timerel {
            Some(TimeRel::Before(t)) | Some(TimeRel::Between(_, t)) => t,
            _ => reached.iter().map(|r| r.1).max()?,
        };
        (start, end)
    } else {
        let end = reached.iter().map(|r| r.1).min()?;
        let start = match tq.timerel {
            Some(TimeRel::After(t)) | Some(TimeRel::Between(t, _)) => t,
            _ => reached.iter().map(|r| r.0).min()?,
        };
        (start, end)
    };
    cut(e, range, tp);
    Some(range)
}

/// Keeps the instances of `e` inside `range` (either order).
fn cut(e: &mut Entity, range: Range, tp: TimeProperty) {
    let (lo, hi) = if range.0 <= range.1 {
        range
    } else {
        (range.1, range.0)
    };
    for list in e.attributes.values_mut() {
        list.retain(|a| {
            tp.of(a)
                .or(a.created_at)
                .is_some_and(|t| lo <= t && t <= hi)
        });
    }
}

/// 206 with `Content-Range: date-time <start>-<end>/<size>` if the answer is a page.
fn paged(mut r: Response, range: Option<Range>, tq: &Tq) -> Response {
    if let Some((start, end)) = range {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        let size = tq
            .last_n
            .map(|n| n.to_string())
            .unwrap_or_else(|| "*".to_owned());
        let v = format!(
            "date-time {}-{}/{size}",
            ngsi_ld::time::format_datetime(&start),
            ngsi_ld::time::format_datetime(&end)
        );
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    r
}

// ----- writes -----

/// Adds the instances of `e` to the history (an instance with the `observedAt` and `datasetId`
/// of an existing one replaces it, keeping its `instanceId`), and brings the current entity up
/// to the latest instance of each attribute. The history written here is the payload itself, so
/// the current-entity write bypasses the write-path recorder.
async fn add_instances(
    b: &Broker,
    store: &Arc<dyn NgsiTemporalStore>,
    scope: &TenantScope,
    existing: Option<&TemporalEntityRecord>,
    e: Entity,
) -> BrokerResult<()> {
    let at = now();
    let mut write = TemporalWrite::default();
    let mut record = entity_record(&e, at, false);
    if let Some(old) = existing {
        record.created_at = old.created_at;
        if record.types.is_empty() {
            record.types = old.types.clone();
        }
        if e.scope.is_empty() {
            record.scope = old.scope.clone();
        }
    }
    write.entities.push(record.clone());
    for (name, instances) in &e.attributes {
        for inst in instances {
            let mut rec = instance_record(&e.id, name, inst, at);
            if let (Some(_), Some(t)) = (existing, inst.observed_at) {
                let same = store
                    .temporal_instances(
                        scope,
                        &e.id,
                        &InstanceQuery {
                            attributes: Some(vec![name.clone()]),
                            column: TimeColumn::ObservedAt,
                            from: Some(micros(t)),
                            to: Some(micros(t) + 1),
                            last_n: None,
                            first_n: None,
                        },
                    )
                    .await?;
                if let Some(prev) = same.iter().find(|r| r.dataset_id == inst.dataset_id) {
                    rec.instance_id = prev.instance_id.clone();
                    rec.created_at = prev.created_at;
                    store.update_temporal_instance(scope, &rec).await?;
                    continue;
                }
            }
            write.instances.push(rec);
        }
    }
    store.record_temporal(scope, write).await?;
    // The current entity: the latest instance (by observedAt) of each attribute and dataset.
    let id = e.id.clone();
    let types = record.types.clone();
    let new_scope = e.scope.clone();
    let latest = e;
    // Through the broker's write path, so the in-memory index and subscriptions see it; the
    // history was recorded above from the instances as given.
    b.modify_current_only(scope, vec![id.clone()], move |current| {
        let cur = current.into_iter().next().flatten();
        let mut cur = cur.unwrap_or_else(|| Entity {
            id: id.clone(),
            ..Entity::default()
        });
        for t in types {
            if !cur.types.contains(&t) {
                cur.types.push(t);
            }
        }
        if !new_scope.is_empty() {
            cur.scope = new_scope;
        }
        for (name, instances) in latest.attributes {
            for mut inst in instances {
                let newer = cur
                    .attributes
                    .get(&name)
                    .and_then(|l| l.iter().find(|a| a.dataset_id == inst.dataset_id))
                    .is_none_or(|a| a.observed_at <= inst.observed_at);
                if newer {
                    inst.set_instance_id(None);
                    carry_created(cur.attributes.get(&name).map(Vec::as_slice), &mut inst);
                    inst.stamp(at);
                    cur.upsert_attribute(name.clone(), inst);
                }
            }
        }
        cur.stamp(at);
        Ok((vec![crate::ops::EntityChangeE::Put(Arc::new(cur))], ()))
    })
    .await?;
    Ok(())
}

async fn create_temporal(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    body: Bytes,
) -> BrokerResult<Response> {
    let store = history(&b)?;
    let (req, value) = b.write_req(&caller, &h, &body, false).await?;
    if !value.is_object() {
        return Err(invalid("the temporal entity must be a JSON object"));
    }
    let e = parse_temporal(&value, &req.ctx, false)?;
    let id = e.id.clone();
    let existing = store.temporal_entity(&req.scope, &id).await?;
    let created = existing.is_none();
    add_instances(&b, &store, &req.scope, existing.as_ref(), e).await?;
    if !created {
        return Ok(no_content());
    }
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/ngsi-ld/v1/temporal/entities/{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn append_temporal(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let store = history(&b)?;
    let (req, value) = b.write_req(&caller, &h, &body, false).await?;
    if !value.is_object() {
        return Err(invalid("the fragment must be a JSON object"));
    }
    let mut e = parse_temporal(&value, &req.ctx, true)?;
    if !e.id.is_empty() && e.id != id {
        return Err(bad_data(format!(
            "the body's id {} differs from the URL's {id}",
            e.id
        )));
    }
    e.id = id.clone();
    let existing = store
        .temporal_entity(&req.scope, &id)
        .await?
        .ok_or_else(|| not_found(format!("no temporal entity {id}")))?;
    add_instances(&b, &store, &req.scope, Some(&existing), e).await?;
    Ok(no_content())
}

async fn delete_temporal(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let store = history(&b)?;
    let req = b.read_req(&caller, &h, Access::Write).await?;
    if !store.delete_temporal_entity(&req.scope, &id).await? {
        return Err(not_found(format!("no temporal entity {id}")));
    }
    Ok(no_content())
}

async fn delete_temporal_attr(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path((id, attr)): Path<(String, String)>,
    Query(q): Params,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let p = P::checked(q)?;
    let store = history(&b)?;
    let req = b.read_req(&caller, &h, Access::Write).await?;
    let name = expand_attr(&attr, &req.ctx)?;
    let selector = if p.flag("deleteAll")? {
        DatasetSelector::All
    } else {
        match p.get("datasetId") {
            Some(d) => DatasetSelector::Id(d.to_owned()),
            None => DatasetSelector::Default,
        }
    };
    if store.temporal_entity(&req.scope, &id).await?.is_none() {
        return Err(not_found(format!("no temporal entity {id}")));
    }
    let n = store
        .delete_temporal_attribute(&req.scope, &id, &name, &selector)
        .await?;
    if n == 0 {
        return Err(not_found(format!(
            "temporal entity {id} has no matching instances of {attr}"
        )));
    }
    Ok(no_content())
}

fn check_instance_id(instance: &str) -> BrokerResult<()> {
    if !ngsi_ld::iri::is_absolute_iri(instance) {
        return Err(bad_data(format!("instance id `{instance}` is not a URI")));
    }
    Ok(())
}

async fn patch_instance(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path((id, attr, instance)): Path<(String, String, String)>,
    body: Bytes,
) -> BrokerResult<Response> {
    if attr.is_empty() {
        // `/attrs//{instanceId}` names no attribute instance to modify, like `/attrs/{attrId}/`
        // (suite 016_02_04/06; a DELETE there is a BadRequestData, 017_02_05).
        return Ok(StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    check_id(&id)?;
    check_instance_id(&instance)?;
    let store = history(&b)?;
    let (req, value) = b.write_req(&caller, &h, &body, false).await?;
    let name = expand_attr(&attr, &req.ctx)?;
    if !value.is_object() {
        return Err(bad_data("the instance must be a JSON object"));
    }
    let parsed = ngsi_ld::parse::parse_attribute(&attr, &value, &req.ctx, ParseOptions::default())?;
    if store.temporal_entity(&req.scope, &id).await?.is_none() {
        return Err(not_found(format!("no temporal entity {id}")));
    }
    let rows = store
        .temporal_instances(
            &req.scope,
            &id,
            &InstanceQuery {
                attributes: Some(vec![name.clone()]),
                ..InstanceQuery::default()
            },
        )
        .await?;
    let prev = rows
        .into_iter()
        .find(|r| r.instance_id.as_deref() == Some(instance.as_str()))
        .ok_or_else(|| not_found(format!("no instance {instance} of {attr}")))?;
    let mut inst = parsed;
    if inst.dataset_id.is_none() {
        inst.dataset_id = prev.dataset_id.clone();
    }
    inst.set_instance_id(Some(instance));
    let at = now();
    let mut rec = instance_record(&id, &name, &inst, from_micros(prev.created_at));
    rec.modified_at = micros(at);
    store.update_temporal_instance(&req.scope, &rec).await?;
    Ok(no_content())
}

async fn delete_instance(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path((id, attr, instance)): Path<(String, String, String)>,
) -> BrokerResult<Response> {
    check_id(&id)?;
    check_instance_id(&instance)?;
    let store = history(&b)?;
    let req = b.read_req(&caller, &h, Access::Write).await?;
    let name = expand_attr(&attr, &req.ctx)?;
    if store.temporal_entity(&req.scope, &id).await?.is_none() {
        return Err(not_found(format!("no temporal entity {id}")));
    }
    if !store
        .delete_temporal_instance(&req.scope, &id, &name, &instance)
        .await?
    {
        return Err(not_found(format!("no instance {instance} of {attr}")));
    }
    Ok(no_content())
}

// ----- reads -----

async fn retrieve_temporal(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    let mime = accept(&h, false)?;
    check_id(&id)?;
    let store = history(&b)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    b.check_tenant_exists(&req).await?;
    let tq = parse_tq(&p, &req.ctx, mime, &req, b.settings.temporal_limit)?;
    let rec = store
        .temporal_entity(&req.scope, &id)
        .await?
        .ok_or_else(|| not_found(format!("no temporal entity {id}")))?;
    let mut e = load(&store, &req.scope, &rec, &tq).await?;
    if tq.opts.attrs.is_some() && e.attributes.is_empty() {
        return Err(not_found(format!(
            "temporal entity {id} has none of the requested attributes"
        )));
    }
    if let Some(pick) = &tq.opts.pick
        && !pick
            .iter()
            .any(|n| n == "id" || n == "type" || e.attributes.contains_key(n))
    {
        return Err(not_found(format!(
            "temporal entity {id} has none of the picked members"
        )));
    }
    if tq.opts.omit.is_some() && e.attributes.keys().all(|n| !wanted(&tq.opts, n)) {
        let omit = tq.opts.omit.as_deref().unwrap_or_default();
        if omit.iter().any(|n| n == "id") && omit.iter().any(|n| n == "type") {
            return Err(not_found(format!("every member of {id} is omitted")));
        }
    }
    let range = paginate(&mut e, &tq);
    let body = render_temporal(&e, &tq, &req.ctx);
    Ok(paged(
        respond(StatusCode::OK, body, mime, Some(&req)),
        range,
        &tq,
    ))
}

async fn query_temporal(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    let mime = accept(&h, false)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    run_temporal_query(&b, &req, &p, mime).await
}

async fn run_temporal_query(b: &Broker, req: &Req, p: &P, mime: Mime) -> BrokerResult<Response> {
    let store = history(b)?;
    let query = parse_query(p, &req.ctx)?;
    let local = p.get("local") == Some("true");
    if !local && (!query.has_selector() || (query.types.is_none() && only_ids(p))) {
        return Err(bad_data(
            "a temporal query needs at least one of type, id, idPattern, attrs, q or a geo-query",
        ));
    }
    let tq = parse_tq(p, &req.ctx, mime, req, b.settings.temporal_limit)?;
    let (limit, offset, count) = paging(p, b)?;
    b.check_tenant_exists(req).await?;
    let ids = (!query.ids.is_empty()).then(|| query.ids.clone());
    let candidates = store.temporal_entities(&req.scope, ids.as_deref()).await?;
    let mut hits = Vec::new();
    let mut range: Option<Range> = None;
    for rec in &candidates {
        // Cheap checks on the entity record first.
        let shell = Entity {
            id: rec.id.clone(),
            types: rec.types.clone(),
            scope: rec.scope.clone(),
            ..Entity::default()
        };
        if let Some(pat) = &query.id_pattern
            && !pat.is_match(&shell.id)
        {
            continue;
        }
        if let Some(t) = &query.types
            && !t.eval(&mut |name: &String| shell.has_type(name))
        {
            continue;
        }
        let mut e = load(&store, &req.scope, rec, &tq).await?;
        if e.attributes.is_empty() && (tq.narrowed || tq.timerel.is_some()) {
            continue;
        }
        if !query.matches(&latest_view(&e)) {
            continue;
        }
        if let Some(r) = paginate(&mut e, &tq) {
            // The page of the answer: the range every listed entity is complete in.
            range = Some(match range {
                None => r,
                Some(prev) if tq.last_n.is_some() => (prev.0.max(r.0), prev.1.max(r.1)),
                Some(prev) => (prev.0.min(r.0), prev.1.min(r.1)),
            });
        }
        hits.push(e);
    }
    if let Some(r) = range {
        // Every listed entity is cut to the common range.
        for e in &mut hits {
            cut(e, r, tq.time_property);
        }
    }
    if let Some(order) = p.get("orderBy") {
        order_by(&mut hits, order, &req.ctx)?;
    }
    let total = hits.len();
    let page: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| render_temporal(e, &tq, &req.ctx))
        .collect();
    let mut r = respond(StatusCode::OK, Value::Array(page), mime, Some(req));
    if count {
        r.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    Ok(paged(r, range, &tq))
}

/// One `orderBy` key of an entity: `id`, `type`, `createdAt`, `modifiedAt`, or an attribute path
/// (`name`, `name.sub`, `name.createdAt`) read on the latest selected instance.
fn order_value(e: &Entity, path: &[String]) -> Option<Value> {
    let micros_of = |t: Option<ngsi_ld::Timestamp>| t.map(|t| json!(t.timestamp_micros()));
    match path {
        [one] if one == "id" => return Some(Value::String(e.id.clone())),
        [one] if one == "type" => return e.types.first().cloned().map(Value::String),
        [one] if one == "createdAt" => return micros_of(e.created_at),
        [one] if one == "modifiedAt" => return micros_of(e.modified_at),
        _ => {}
    }
    let (name, rest) = path.split_first()?;
    let attr = e
        .attributes
        .get(name)?
        .iter()
        .rev()
        .find(|a| a.deleted_at.is_none())?;
    match rest {
        [] => Some(ngsi_ld::query::q::attribute_value(attr)),
        [sub] if sub == "createdAt" => micros_of(attr.created_at),
        [sub] if sub == "modifiedAt" => micros_of(attr.modified_at),
        [sub] if sub == "observedAt" => micros_of(attr.observed_at),
        [sub, ..] => attr
            .sub_attributes
            .get(sub)
            .map(ngsi_ld::query::q::attribute_value),
    }
}

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a.as_f64(), b.as_f64(), a.as_str(), b.as_str()) {
        (Some(x), Some(y), _, _) => x.total_cmp(&y),
        (_, _, Some(x), Some(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// `orderBy=path[;asc|desc],...` (1.9): entities without the value come last.
pub(super) fn order_by<E: std::borrow::Borrow<Entity>>(
    hits: &mut [E],
    order: &str,
    ctx: &Context,
) -> BrokerResult<()> {
    let mut keys = Vec::new();
    for item in order.split(',') {
        let (path, dir) = match item.split_once(';') {
            Some((p, "asc")) => (p, false),
            Some((p, "desc")) => (p, true),
            Some((_, other)) => return Err(bad_data(format!("orderBy direction `{other}`"))),
            None => (item, false),
        };
        let parts: Vec<String> = path
            .split('.')
            .enumerate()
            .map(|(i, seg)| {
                if (i == 0 && matches!(seg, "id" | "type" | "createdAt" | "modifiedAt"))
                    || (i > 0 && matches!(seg, "createdAt" | "modifiedAt" | "observedAt"))
                {
                    Ok(seg.to_owned())
                } else {
                    expand_attr(seg, ctx)
                }
            })
            .collect::<BrokerResult<_>>()?;
        keys.push((parts, dir));
    }
    hits.sort_by(|a, b| {
        for (path, desc) in &keys {
            let ord = match (order_value(a.borrow(), path), order_value(b.borrow(), path)) {
                (Some(x), Some(y)) => {
                    let o = cmp_values(&x, &y);
                    if *desc { o.reverse() } else { o }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(())
}

/// `POST /temporal/entityOperations/query`: the `Query` body turned into the GET parameters.
async fn query_temporal_post(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
    body: Bytes,
) -> BrokerResult<Response> {
    let mime = accept(&h, false)?;
    let (scope, explicit) = b.scope(&caller, &h, Access::Read).await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
    let user = match header_str(&h, "content-type").map(media_type).as_deref() {
        Some("application/ld+json") => Some(
            value
                .get("@context")
                .cloned()
                .ok_or_else(|| bad_data("an application/ld+json body must contain @context"))?,
        ),
        Some("application/json") => link_context(&h)?.map(Value::String),
        other => {
            return Err(BrokerError::UnsupportedMediaType(format!(
                "Content-Type {other:?} is not supported"
            )));
        }
    };
    let ctx = b.contexts.resolve(user.as_ref()).await?;
    let req = Req {
        scope,
        explicit_tenant: explicit,
        ctx,
        user,
    };
    let Value::Object(m) = &value else {
        return Err(bad_data("the query must be a JSON object"));
    };
    if m.get("type").and_then(Value::as_str) != Some("Query") {
        return Err(bad_data("the query object must have type `Query`"));
    }
    let mut params: Vec<(String, String)> = q;
    let mut types = Vec::new();
    let mut ids = Vec::new();
    let mut patterns = Vec::new();
    if let Some(Value::Array(list)) = m.get("entities") {
        for sel in list {
            if let Some(t) = sel.get("type").and_then(Value::as_str) {
                types.push(t.to_owned());
            }
            if let Some(i) = sel.get("id").and_then(Value::as_str) {
                ids.push(i.to_owned());
            }
            if let Some(i) = sel.get("idPattern").and_then(Value::as_str) {
                patterns.push(i.to_owned());
            }
        }
    }
    if !types.is_empty() {
        params.push(("type".into(), types.join(",")));
    }
    if !ids.is_empty() {
        params.push(("id".into(), ids.join(",")));
    }
    if !patterns.is_empty() {
        params.push(("idPattern".into(), patterns.join("|")));
    }
    if let Some(Value::Array(a)) = m.get("attrs") {
        let names: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
        params.push(("attrs".into(), names.join(",")));
    }
    for key in ["q", "scopeQ"] {
        if let Some(v) = m.get(key).and_then(Value::as_str) {
            params.push((key.into(), v.to_owned()));
        }
    }
    if let Some(Value::Object(g)) = m.get("geoQ") {
        for key in ["georel", "geometry", "geoproperty"] {
            if let Some(v) = g.get(key).and_then(Value::as_str) {
                params.push((key.into(), v.to_owned()));
            }
        }
        if let Some(c) = g.get("coordinates") {
            params.push((
                "coordinates".into(),
                match c {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            ));
        }
    }
    if let Some(Value::Object(t)) = m.get("temporalQ") {
        for key in ["timerel", "timeAt", "endTimeAt", "timeproperty"] {
            if let Some(v) = t.get(key).and_then(Value::as_str) {
                params.push((key.into(), v.to_owned()));
            }
        }
        if let Some(n) = t.get("lastN") {
            params.push((
                "lastN".into(),
                match n {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            ));
        }
    }
    let p = P::checked(params)?;
    run_temporal_query(&b, &req, &p, mime).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_payloads_keep_every_instance() {
        let ctx = Context::core(CoreContext::V1_9);
        let e = parse_temporal(
            &json!({
                "id": "urn:ngsi-ld:V:1", "type": "V",
                "speed": [
                    {"type": "Property", "value": 1, "observedAt": "2020-01-01T00:00:00Z"},
                    {"type": "Property", "value": 2, "observedAt": "2020-01-01T00:01:00Z"},
                    {"type": "Property", "value": 3, "observedAt": "2020-01-01T00:01:00Z", "datasetId": "urn:d"}
                ]
            }),
            &ctx,
            false,
        )
        .unwrap_or_default();
        assert_eq!(e.instance_count(), 3);
        assert!(parse_temporal(&json!({"type": "V"}), &ctx, false).is_err());
        assert!(parse_temporal(&json!({"id": "nope", "type": "V"}), &ctx, false).is_err());
        assert!(parse_temporal(&json!({"speed": 1}), &ctx, true).is_ok());
        assert!(parse_temporal(&json!([1]), &ctx, true).is_err());
    }
}
