//! The HTTP API under `/ngsi-ld/v1`: content negotiation, `Link` contexts, tenants,
//! permissions, pagination, and the mapping of each route to a broker operation.

use crate::error::{BrokerError, BrokerResult, already_exists, bad_data, invalid, not_found};
use crate::ops::{BatchItem, EntityChangeE, carry_created, now};
use crate::{Broker, contexts::HOSTED_PATH};
use api_server::Caller;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use identity::{Access, Denied, Module as IdModule, Permission};
use ngsi_ld::linked::{JoinMode, JoinSpec, Projection, is_empty_render};
use ngsi_ld::query::parse_type_expr;
use ngsi_ld::raw::RawJson;
use ngsi_ld::render::{feature_collection, parse_name_list};
use ngsi_ld::{
    Attribute, AttributeKind, Context, CoreContext, Entity, ErrorKind, Format, LangFilter,
    NameMemo, NgsiError, ParseOptions, Query as NgsiQuery, QueryParams, RenderOptions,
    parse_entity_memo, parse_entity_raw, parse_entity_with, render, render_geojson,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use store::{ContextRecord, EntityFilter, TenantId, TenantScope, UnixMillis};

mod registrations;
mod temporal;

type Params = Query<Vec<(String, String)>>;
type St = State<Arc<Broker>>;

const CONTEXT_REL: &str = "http://www.w3.org/ns/json-ld#context";

#[path = "subscriptions/routes.rs"]
mod subscription_routes;

/// The broker's routes as an api-server module (all behind authentication).
pub fn module(broker: Arc<Broker>) -> api_server::Module {
    let router: axum::Router<()> = axum::Router::new()
        .route(
            "/ngsi-ld/v1/entities",
            get(query_entities)
                .post(create_entity)
                .delete(purge_entities),
        )
        .route(
            "/ngsi-ld/v1/entities/",
            get(query_entities)
                .post(create_entity)
                .delete(purge_entities)
                .patch(missing_id)
                .put(missing_id),
        )
        .route(
            "/ngsi-ld/v1/entities/{id}",
            get(retrieve_entity)
                .delete(delete_entity)
                .put(replace_entity)
                .patch(merge_entity),
        )
        .route(
            "/ngsi-ld/v1/entities/{id}/attrs",
            post(append_attrs).patch(update_attrs),
        )
        .route(
            "/ngsi-ld/v1/entities/{id}/attrs/",
            post(append_attrs).patch(update_attrs),
        )
        .route("/ngsi-ld/v1/{*rest}", axum::routing::any(unknown_route))
        .route(
            "/ngsi-ld/v1/entities/{id}/attrs/{attr}",
            axum::routing::patch(partial_update_attr)
                .put(replace_attr)
                .delete(delete_attr),
        )
        .route("/ngsi-ld/v1/entityOperations/{op}", post(batch))
        .route("/ngsi-ld/v1/entityOperations/{op}/", post(batch))
        .route("/ngsi-ld/v1/types", get(list_types))
        .route("/ngsi-ld/v1/types/", get(list_types))
        .route("/ngsi-ld/v1/attributes/", get(list_attributes))
        .route(
            "/ngsi-ld/v1/jsonldContexts/",
            get(list_contexts).post(add_context),
        )
        .route("/ngsi-ld/v1/types/{t}", get(type_info))
        .route("/ngsi-ld/v1/attributes", get(list_attributes))
        .route("/ngsi-ld/v1/attributes/{a}", get(attribute_info))
        .route(
            "/ngsi-ld/v1/jsonldContexts",
            get(list_contexts).post(add_context),
        )
        .route(
            "/ngsi-ld/v1/jsonldContexts/{id}",
            get(get_context).delete(delete_context),
        )
        .merge(subscription_routes::routes())
        .merge(temporal::routes())
        .merge(registrations::routes())
        .with_state(broker);
    api_server::Module {
        public: utoipa_axum::router::OpenApiRouter::new(),
        protected: utoipa_axum::router::OpenApiRouter::from(router.with_state(())),
    }
}

// ----- request helpers -----

struct P(BTreeMap<String, String>);

/// Every query parameter the API knows; any other is `InvalidRequest` (spec 6.3.20).
const KNOWN_PARAMS: &[&str] = &[
    "id",
    "type",
    "idPattern",
    "attrs",
    "q",
    "scopeQ",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "geometryProperty",
    "lang",
    "limit",
    "offset",
    "count",
    "options",
    "format",
    "pick",
    "omit",
    "datasetId",
    "deleteAll",
    "details",
    "kind",
    "reload",
    "local",
    "csf",
    "orderBy",
    "collect",
    "join",
    "joinLevel",
    "containedBy",
    "entityMap",
    "expandValues",
    "timerel",
    "timeAt",
    "endTimeAt",
    "timeproperty",
    "lastN",
    "aggrMethods",
    "aggrPeriodDuration",
    "observedAt",
    "doNotCompact",
    "via",
    "keep",
    "drop",
];

impl P {
    fn checked(q: Vec<(String, String)>) -> BrokerResult<Self> {
        if let Some((k, _)) = q.iter().find(|(k, _)| !KNOWN_PARAMS.contains(&k.as_str())) {
            return Err(invalid(format!("unknown query parameter `{k}`")));
        }
        Ok(Self::new(q))
    }

    fn new(q: Vec<(String, String)>) -> Self {
        let mut m = BTreeMap::new();
        for (k, v) in q {
            m.entry(k)
                .and_modify(|e: &mut String| {
                    e.push(',');
                    e.push_str(&v)
                })
                .or_insert(v);
        }
        P(m)
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn options(&self) -> Vec<&str> {
        self.get("options")
            .map(|o| o.split(',').map(str::trim).collect())
            .unwrap_or_default()
    }
    fn has_option(&self, o: &str) -> bool {
        self.options().contains(&o)
    }
    fn flag(&self, k: &str) -> BrokerResult<bool> {
        match self.get(k) {
            None => Ok(false),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(bad_data(format!("`{k}` must be true or false, not `{v}`"))),
        }
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The context URL of the `Link` header, if any.
fn link_context(h: &HeaderMap) -> BrokerResult<Option<String>> {
    let mut found = None;
    for v in h.get_all(header::LINK) {
        let v = v
            .to_str()
            .map_err(|_| bad_data("the Link header is not ASCII"))?;
        for link in v.split(',') {
            let link = link.trim();
            if !link.contains(CONTEXT_REL) {
                continue;
            }
            let (Some(start), Some(end)) = (link.find('<'), link.find('>')) else {
                return Err(bad_data(format!("malformed Link header `{link}`")));
            };
            if end <= start {
                return Err(bad_data(format!("malformed Link header `{link}`")));
            }
            if found.is_some() {
                return Err(bad_data("more than one JSON-LD context Link header"));
            }
            let url = link[start + 1..end].trim().to_owned();
            if !ngsi_ld::iri::is_absolute_iri(&url) {
                return Err(bad_data(format!(
                    "the Link header context `{url}` is not a URL"
                )));
            }
            found = Some(url);
        }
    }
    Ok(found)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mime {
    Json,
    LdJson,
    GeoJson,
}

fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The representation the client accepts.
fn accept(h: &HeaderMap, geo_ok: bool) -> BrokerResult<Mime> {
    let Some(raw) = header_str(h, "accept") else {
        return Ok(Mime::Json);
    };
    if raw.trim().is_empty() {
        return Ok(Mime::Json);
    }
    let mut best: Option<(f32, Mime)> = None;
    for part in raw.split(',') {
        let mt = media_type(part);
        let q = part
            .split(';')
            .skip(1)
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let m = match mt.as_str() {
            "application/json" | "*/*" | "application/*" => Some(Mime::Json),
            "application/ld+json" => Some(Mime::LdJson),
            "application/geo+json" if geo_ok => Some(Mime::GeoJson),
            _ => None,
        };
        if let Some(m) = m
            && q > 0.0
            && best.is_none_or(|(bq, _)| q > bq)
        {
            best = Some((q, m));
        }
    }
    best.map(|(_, m)| m).ok_or_else(|| {
        BrokerError::NotAcceptable(format!("no representation matches Accept `{raw}`"))
    })
}

/// A write request's body: read as a `Value`, or as written (`RawJson`, for entities that
/// `parse_entity_raw` takes without a `Value` tree).
trait WriteBody<'de>: serde::Deserialize<'de> {
    /// `None` if the body is not an object, else its `@context` member (as `serde_json` reads it).
    fn context_member(&self) -> Option<Option<Value>>;
}

impl WriteBody<'_> for Value {
    fn context_member(&self) -> Option<Option<Value>> {
        self.as_object().map(|m| m.get("@context").cloned())
    }
}

impl<'de> WriteBody<'de> for RawJson<'de> {
    fn context_member(&self) -> Option<Option<Value>> {
        matches!(self, RawJson::Object(_)).then(|| self.get("@context").map(RawJson::to_value))
    }
}

/// A request's tenant, context and representation.
struct Req {
    scope: TenantScope,
    explicit_tenant: bool,
    ctx: Arc<Context>,
    /// The user context as given (Link URL string or body @context).
    user: Option<Value>,
}

impl Broker {
    async fn scope(
        &self,
        caller: &identity::Principal,
        h: &HeaderMap,
        access: Access,
    ) -> BrokerResult<(TenantScope, bool)> {
        let named = match header_str(h, "ngsild-tenant") {
            Some(t) => Some(
                TenantId::new(t.trim())
                    .map_err(|e| NgsiError::new(ErrorKind::NonexistentTenant, e.to_string()))?,
            ),
            None => None,
        };
        let explicit = named.is_some();
        let tenant = named
            .or_else(|| caller.default_tenant.clone())
            .unwrap_or_else(|| self.settings.default_tenant.clone());
        let permission = Permission::new(IdModule::Data, access);
        match caller.authorize(&tenant, permission) {
            Ok(scope) => Ok((scope, explicit)),
            Err(denied) => {
                self.identity
                    .audit_denied(caller, Some(&tenant), "ngsi-ld", &denied)
                    .await;
                match denied {
                    Denied::NotAMember(t) => Err(NgsiError::new(
                        ErrorKind::NonexistentTenant,
                        format!("tenant {t} does not exist or is not visible to the caller"),
                    )
                    .into()),
                    other => Err(BrokerError::Forbidden(other.to_string())),
                }
            }
        }
    }

    /// Tenant and context for a request without a body.
    async fn read_req(
        &self,
        caller: &identity::Principal,
        h: &HeaderMap,
        access: Access,
    ) -> BrokerResult<Req> {
        let (scope, explicit) = self.scope(caller, h, access).await?;
        let user = link_context(h)?.map(Value::String);
        let ctx = self.contexts.resolve(user.as_ref()).await?;
        Ok(Req {
            scope,
            explicit_tenant: explicit,
            ctx,
            user,
        })
    }

    /// A read on a tenant named explicitly must find it.
    async fn check_tenant_exists(&self, req: &Req) -> BrokerResult<()> {
        if req.explicit_tenant && !self.tenant_exists(&req.scope).await? {
            return Err(NgsiError::new(
                ErrorKind::NonexistentTenant,
                format!("tenant {} does not exist", req.scope.tenant()),
            )
            .into());
        }
        Ok(())
    }

    /// Tenant, context and JSON body for a write. `merge_patch` allows
    /// `application/merge-patch+json`.
    async fn write_req(
        &self,
        caller: &identity::Principal,
        h: &HeaderMap,
        body: &Bytes,
        merge_patch: bool,
    ) -> BrokerResult<(Req, Value)> {
        self.write_req_as(caller, h, body, merge_patch).await
    }

    /// [`Self::write_req`] with the body read as `B` (a `Value`, or `RawJson` as written).
    async fn write_req_as<'b, B: WriteBody<'b>>(
        &self,
        caller: &identity::Principal,
        h: &HeaderMap,
        body: &'b Bytes,
        merge_patch: bool,
    ) -> BrokerResult<(Req, B)> {
        let (scope, explicit) = self.scope(caller, h, Access::Write).await?;
        let ct = header_str(h, "content-type").map(media_type);
        let ld = match ct.as_deref() {
            Some("application/json") => false,
            Some("application/ld+json") => true,
            Some("application/merge-patch+json") if merge_patch => false,
            Some(other) => {
                return Err(BrokerError::UnsupportedMediaType(format!(
                    "Content-Type `{other}` is not supported; use application/json or application/ld+json"
                )));
            }
            None => {
                return Err(BrokerError::UnsupportedMediaType(
                    "a Content-Type header is required".into(),
                ));
            }
        };
        let value: B = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
        let link = link_context(h)?;
        let user = if ld {
            if link.is_some() {
                return Err(bad_data(
                    "a JSON-LD context Link header must not be sent with application/ld+json",
                ));
            }
            match value.context_member() {
                Some(context) => Some(context.ok_or_else(|| {
                    bad_data("an application/ld+json body must contain @context")
                })?),
                None => None,
            }
        } else {
            if let Some(Some(_)) = value.context_member() {
                return Err(bad_data(
                    "an application/json body must not contain @context; use the Link header",
                ));
            }
            link.map(Value::String)
        };
        let ctx = self.contexts.resolve(user.as_ref()).await?;
        Ok((
            Req {
                scope,
                explicit_tenant: explicit,
                ctx,
                user,
            },
            value,
        ))
    }
}

/// This broker's scheme and authority as the client addressed it (`Host`, and
/// `X-Forwarded-Proto` behind a proxy), for URLs of hosted contexts.
fn base_url(h: &HeaderMap) -> String {
    let host = header_str(h, "host")
        .filter(|v| !v.is_empty() && !v.contains(['/', ' ', '@']))
        .unwrap_or("localhost");
    let proto = match header_str(h, "x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    format!("{proto}://{host}")
}

/// The `@context` to show in a response: the user's, else the core context URL.
fn response_context(req: &Req) -> Value {
    req.user
        .clone()
        .unwrap_or_else(|| Value::String(CoreContext::V1_9.url().to_owned()))
}

fn link_header_value(req: &Req) -> Option<HeaderValue> {
    let url = match &req.user {
        Some(Value::String(u)) => u.clone(),
        Some(_) => return None,
        None => CoreContext::V1_9.url().to_owned(),
    };
    HeaderValue::from_str(&format!(
        "<{url}>; rel=\"{CONTEXT_REL}\"; type=\"application/ld+json\""
    ))
    .ok()
}

fn respond(status: StatusCode, body: Value, mime: Mime, req: Option<&Req>) -> Response {
    let ct = match mime {
        Mime::Json => "application/json",
        Mime::LdJson => "application/ld+json",
        Mime::GeoJson => "application/geo+json",
    };
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if mime != Mime::LdJson
        && let Some(req) = req
        && let Some(link) = link_header_value(req)
    {
        r.headers_mut().insert(header::LINK, link);
    }
    r
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn entity_location(id: &str) -> String {
    format!("/ngsi-ld/v1/entities/{id}")
}

fn check_id(id: &str) -> BrokerResult<()> {
    ngsi_ld::parse::validate_entity_id(id)?;
    Ok(())
}

/// Rejects empty names and projection braces (linked-entity projections are not supported).
fn check_name_list(key: &str, list: &str) -> BrokerResult<()> {
    if list.contains('{') || list.contains('}') {
        return Err(bad_data(format!(
            "`{key}`: nested projections with braces are not supported or malformed"
        )));
    }
    if list.split(',').any(|n| n.trim().is_empty()) {
        return Err(bad_data(format!("`{key}` has an empty name")));
    }
    Ok(())
}

/// Render options from the query parameters.
fn render_options(p: &P, ctx: &Context, mime: Mime, req: &Req) -> BrokerResult<RenderOptions> {
    let mut opts = RenderOptions::default();
    for o in p.options() {
        match o {
            "keyValues" | "simplified" => opts.format = Format::KeyValues,
            "concise" => opts.format = Format::Concise,
            "normalized" => opts.format = Format::Normalized,
            "sysAttrs" => opts.sys_attrs = true,
            "" => {}
            other => {
                // Options of other operations (noOverwrite, replace, update) are accepted.
                if !matches!(other, "noOverwrite" | "replace" | "update") {
                    return Err(invalid(format!("unknown option `{other}`")));
                }
            }
        }
    }
    if let Some(f) = p.get("format") {
        opts.format = Format::parse(f).map_err(|e| invalid(e.detail))?;
    }
    if let Some(a) = p.get("attrs") {
        opts.attrs = Some(parse_name_list(a, ctx)?);
    }
    if let Some(list) = p.get("attrs") {
        check_name_list("attrs", list)?;
    }
    // `pick`/`omit` may name members of linked entities in braces; the entity itself gets the
    // top-level names (see `ngsi_ld::linked`).
    if let Some(a) = p.get("pick") {
        opts.pick = Some(Projection::parse(a, ctx)?.pick_names());
    }
    if let Some(a) = p.get("omit") {
        opts.omit = Some(Projection::parse(a, ctx)?.omit_names());
    }
    if opts.pick.is_some() && opts.omit.is_some() {
        return Err(bad_data("pick and omit cannot be used together"));
    }
    if (opts.pick.is_some() || opts.omit.is_some()) && opts.attrs.is_some() {
        return Err(bad_data("attrs cannot be combined with pick or omit"));
    }
    if let Some(l) = p.get("lang") {
        opts.lang = Some(LangFilter::parse(l)?);
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
    if mime == Mime::LdJson || mime == Mime::GeoJson {
        opts.context = Some(response_context(req));
    }
    Ok(opts)
}

/// `join`, `joinLevel`, `containedBy` and the full `pick`/`omit` projections (`None` without `join`,
/// and for GeoJSON, which has no place for linked entities).
fn join_spec(p: &P, ctx: &Context, mime: Mime) -> BrokerResult<Option<JoinSpec>> {
    let spec = JoinSpec::from_params(p.get("join"), p.get("joinLevel"), p.get("containedBy"))?;
    let Some(mut spec) = spec.filter(|_| mime != Mime::GeoJson) else {
        return Ok(None);
    };
    spec.pick = p
        .get("pick")
        .map(|s| Projection::parse(s, ctx))
        .transpose()?;
    spec.omit = p
        .get("omit")
        .map(|s| Projection::parse(s, ctx))
        .transpose()?;
    Ok(Some(spec))
}

/// Linked entity retrieval: renders `roots` with `spec`, fetching the linked entities of the
/// caller's tenant level by level (each round fetches what the previous rendering was missing).
async fn render_joined(
    b: &Broker,
    req: &Req,
    roots: &[&Entity],
    opts: &RenderOptions,
    spec: &JoinSpec,
) -> BrokerResult<Vec<Value>> {
    let mut fetched: HashMap<String, Arc<Entity>> = HashMap::new();
    let mut absent: HashSet<String> = HashSet::new();
    loop {
        let joined = {
            let lookup = |id: &str| fetched.get(id).map(|e| &**e);
            ngsi_ld::linked::join(roots, opts, spec, &lookup, &req.ctx)
        };
        let new: Vec<String> = joined
            .missing
            .into_iter()
            .filter(|id| !absent.contains(id))
            .collect();
        if new.is_empty() {
            return Ok(joined.values);
        }
        for id in new {
            match b.get_shared(&req.scope, &id).await? {
                Some(e) => {
                    fetched.insert(id, e);
                }
                None => {
                    absent.insert(id);
                }
            }
        }
    }
}

fn render_one(e: &Entity, opts: &RenderOptions, ctx: &Context, mime: Mime, p: &P) -> Value {
    if mime == Mime::GeoJson {
        let geoprop = p.get("geometryProperty").and_then(|g| ctx.expand_term(g));
        render_geojson(e, opts, ctx, geoprop.as_deref())
    } else {
        render(e, opts, ctx)
    }
}

// ----- entities -----

/// Paths under `/ngsi-ld/v1` that name no resource of this broker.
async fn unknown_route(uri: axum::http::Uri) -> BrokerResult<Response> {
    let path = uri.path();
    if path.contains("//") {
        return Err(bad_data(format!("`{path}` is missing an identifier")));
    }
    Err(not_found(format!("no NGSI-LD resource at `{path}`")))
}

async fn missing_id() -> BrokerResult<Response> {
    Err(bad_data("the entity id is missing from the URL"))
}

/// A LanguageProperty whose map is `{"@none": "urn:ngsi-ld:null"}` is the merge-patch
/// deletion of that instance.
fn language_nulls(parsed: &mut ngsi_ld::ParsedEntity) {
    let mut deletions = Vec::new();
    for (name, instances) in parsed.entity.attributes.iter_mut() {
        instances.retain(|a| {
            let is_null = matches!(&a.value, ngsi_ld::AttributeValue::LanguageProperty(m)
                if m.len() == 1 && m.get("@none").and_then(Value::as_str) == Some(ngsi_ld::parse::NGSI_LD_NULL));
            if is_null {
                deletions.push((name.clone(), a.dataset_id.clone()));
            }
            !is_null
        });
    }
    parsed.entity.attributes.retain(|_, v| !v.is_empty());
    parsed.deletions.extend(deletions);
}

thread_local! {
    /// The names this thread expanded lately, with the context they were expanded in (kept
    /// alive here, so that a context at the same address is the same context).
    static NAME_MEMO: std::cell::RefCell<Option<(Arc<Context>, NameMemo)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's memo of names expanded in `ctx` (a fresh one when the thread's
/// last context was another). Single creates arrive one entity per request, nearly all in the
/// same context; without a memo each expanded its type and attribute names afresh, which
/// was almost half of parsing the entity. A memo is only ever used for its own context, so
/// names expand exactly as without it.
fn with_name_memo<R>(ctx: &Arc<Context>, f: impl FnOnce(&mut NameMemo) -> R) -> R {
    NAME_MEMO.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            if slot.as_ref().is_none_or(|(c, _)| !Arc::ptr_eq(c, ctx)) {
                *slot = Some((Arc::clone(ctx), NameMemo::default()));
            }
            match slot.as_mut() {
                Some((_, memo)) => f(memo),
                None => f(&mut NameMemo::default()),
            }
        }
        // Not reentrant: a nested use gets a memo of its own.
        Err(_) => f(&mut NameMemo::default()),
    })
}

async fn create_entity(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    body: Bytes,
) -> BrokerResult<Response> {
    let (req, value) = b
        .write_req_as::<RawJson<'_>>(&caller, &h, &body, false)
        .await?;
    if !matches!(value, RawJson::Object(_)) {
        return Err(invalid("the entity must be a JSON object"));
    }
    // The usual shapes straight from the text; anything else (errors included) through a
    // `Value`, as before.
    let parsed = with_name_memo(&req.ctx, |memo| {
        parse_entity_raw(&value, &req.ctx, ParseOptions::default(), Some(memo))
    });
    let entity = match parsed {
        Some(parsed) => parsed.entity,
        None => parse_entity_with(&value.to_value(), &req.ctx, ParseOptions::default())?.entity,
    };
    let id = entity.id.clone();
    b.create(&req.scope, entity).await?;
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&entity_location(&id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn retrieve_entity(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    let mime = accept(&h, true)?;
    check_id(&id)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    b.check_tenant_exists(&req).await?;
    let opts = render_options(&p, &req.ctx, mime, &req)?;
    let join = join_spec(&p, &req.ctx, mime)?;
    let entity = b
        .get_shared(&req.scope, &id)
        .await?
        .ok_or_else(|| not_found(format!("entity {id} not found")))?;
    if let Some(t) = p.get("type") {
        let expr = parse_type_expr(t, &req.ctx)?;
        if !expr.eval(&mut |name: &String| entity.has_type(name)) {
            return Err(not_found(format!("entity {id} has no type matching `{t}`")));
        }
    }
    if let Some(attrs) = &opts.attrs
        && !attrs.iter().any(|a| entity.attributes.contains_key(a))
        && !entity.attributes.is_empty()
        && opts.pick.is_none()
    {
        return Err(not_found(format!(
            "entity {id} has none of the requested attributes"
        )));
    }
    let body = match &join {
        None => render_one(&entity, &opts, &req.ctx, mime, &p),
        Some(spec) => {
            let mut values = render_joined(&b, &req, &[&entity], &opts, spec).await?;
            // Flat: the entity and its linked entities as an array, or the entity alone.
            if spec.mode == JoinMode::Inline || values.len() == 1 {
                values.swap_remove(0)
            } else {
                Value::Array(values)
            }
        }
    };
    let root = match &body {
        Value::Array(items) => items.first().unwrap_or(&Value::Null),
        other => other,
    };
    if is_empty_render(root) {
        return Err(not_found(format!(
            "entity {id} has no member left after pick/omit"
        )));
    }
    Ok(respond(StatusCode::OK, body, mime, Some(&req)))
}

async fn delete_entity(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let req = b.read_req(&caller, &h, Access::Write).await?;
    b.delete(&req.scope, &id).await?;
    Ok(no_content())
}

async fn replace_entity(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let (req, value) = b.write_req(&caller, &h, &body, false).await?;
    let parsed = parse_entity_with(
        &value,
        &req.ctx,
        ParseOptions {
            fragment: true,
            ..Default::default()
        },
    )?
    .entity;
    if !parsed.id.is_empty() && parsed.id != id {
        return Err(bad_data(format!(
            "the body's id {} differs from the URL's {id}",
            parsed.id
        )));
    }
    if parsed.types.is_empty() {
        return Err(bad_data("the replacing entity needs a type"));
    }
    let id2 = id.clone();
    b.modify_one(&req.scope, &id, move |current| {
        let old = current.ok_or_else(|| not_found(format!("entity {id2} not found")))?;
        let mut e = parsed;
        e.id = id2;
        e.created_at = old.created_at;
        e.stamp(now());
        Ok((EntityChangeE::Put(Arc::new(e)), ()))
    })
    .await?;
    Ok(no_content())
}

/// The first attribute of a batch entity whose value member (`value`, `object`, ...) is a JSON
/// `null` (in normalized form, one instance or several).
fn json_null_attribute(item: &Value) -> Option<&str> {
    let Value::Object(m) = item else { return None };
    let null_member = |v: &Value| {
        v.as_object().is_some_and(|a| {
            AttributeKind::ALL
                .into_iter()
                .any(|k| a.get(k.value_member()).is_some_and(Value::is_null))
        })
    };
    m.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "id" | "type" | "scope" | "@context"))
        .find(|(_, v)| match v {
            Value::Array(items) => items.iter().any(null_member),
            other => null_member(other),
        })
        .map(|(k, _)| k.as_str())
}

/// Merges `patch` into `old` (spec 5.6.17): attributes present replace values but keep
/// sub-attributes not mentioned; `null`s delete.
fn merge_into(old: &mut Entity, parsed: ngsi_ld::ParsedEntity, at: ngsi_ld::Timestamp) {
    let mut parsed = parsed;
    language_nulls(&mut parsed);
    let ngsi_ld::ParsedEntity { entity, deletions } = parsed;
    for t in entity.types {
        if !old.types.contains(&t) {
            old.types.push(t);
        }
    }
    if !entity.scope.is_empty() {
        old.scope = entity.scope;
    }
    for (name, dataset) in deletions {
        old.remove_attribute(&name, dataset.as_deref(), false);
    }
    for (name, instances) in entity.attributes {
        for mut inst in instances {
            let existing = old
                .attributes
                .get(&name)
                .and_then(|l| l.iter().find(|a| a.dataset_id == inst.dataset_id))
                .cloned();
            if let Some(prev) = existing {
                let mut subs = prev.sub_attributes.clone();
                for (k, v) in inst.sub_attributes {
                    subs.insert(k, v);
                }
                inst.sub_attributes = subs;
                inst.created_at = prev.created_at;
                if inst.observed_at.is_none() {
                    inst.observed_at = prev.observed_at;
                }
                if inst.unit_code().is_none() {
                    inst.set_unit_code(prev.unit_code().map(str::to_owned));
                }
            }
            inst.stamp(at);
            old.upsert_attribute(name.clone(), inst);
        }
    }
}

async fn merge_entity(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let p = P::checked(q)?;
    let (req, value) = b.write_req(&caller, &h, &body, true).await?;
    let parsed = parse_entity_with(
        &value,
        &req.ctx,
        ParseOptions {
            fragment: true,
            allow_null: true,
            key_values: p.has_option("keyValues"),
        },
    )?;
    if !parsed.entity.id.is_empty() && parsed.entity.id != id {
        return Err(bad_data(format!(
            "the body's id {} differs from the URL's {id}",
            parsed.entity.id
        )));
    }
    let id2 = id.clone();
    b.modify_one(&req.scope, &id, move |current| {
        let mut e = current.ok_or_else(|| not_found(format!("entity {id2} not found")))?;
        let at = now();
        merge_into(&mut e, parsed, at);
        e.modified_at = Some(at);
        Ok((EntityChangeE::Put(Arc::new(e)), ()))
    })
    .await?;
    Ok(no_content())
}

/// `GET /entities`.
async fn query_entities(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    let mime = accept(&h, true)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    let query = parse_query(&p, &req.ctx)?;
    let local = p.flag("local")?;
    if !local && (!query.has_selector() || (query.types.is_none() && only_ids(&p))) {
        return Err(bad_data(
            "a query needs at least one of type, q, attrs, scopeQ, a geo-query or local=true",
        ));
    }
    let opts = render_options(&p, &req.ctx, mime, &req)?;
    run_query(&b, &req, &p, query, opts, mime).await
}

/// True if the only selectors are `id` / `idPattern` (not enough for a query, 5.7.2).
fn only_ids(p: &P) -> bool {
    ["attrs", "q", "scopeQ", "georel"]
        .iter()
        .all(|k| p.get(k).is_none())
}

fn parse_query(p: &P, ctx: &Context) -> BrokerResult<NgsiQuery> {
    Ok(NgsiQuery::parse(
        &QueryParams {
            ids: p.get("id"),
            id_pattern: p.get("idPattern"),
            types: p.get("type"),
            q: p.get("q"),
            scope_q: p.get("scopeQ"),
            attrs: p.get("attrs"),
            georel: p.get("georel"),
            geometry: p.get("geometry"),
            coordinates: p.get("coordinates"),
            geoproperty: p.get("geoproperty"),
        },
        ctx,
    )?)
}

/// Types every match must have one of (a prefilter for the store), if the type expression
/// allows one.
fn candidate_types(expr: &ngsi_ld::query::TypeExpr) -> Vec<String> {
    use ngsi_ld::query::BoolExpr;
    match expr {
        BoolExpr::Atom(t) => vec![t.clone()],
        BoolExpr::Or(items) => items.iter().flat_map(candidate_types).collect(),
        BoolExpr::And(items) => items.first().map(candidate_types).unwrap_or_default(),
    }
}

fn paging(p: &P, b: &Broker) -> BrokerResult<(usize, usize, bool)> {
    let limit = match p.get("limit") {
        None => b.settings.default_limit,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| bad_data(format!("limit must be a non-negative integer, not `{l}`")))?,
    };
    if limit > b.settings.max_limit {
        return Err(NgsiError::new(
            ErrorKind::TooManyResults,
            format!("limit {limit} exceeds the maximum {}", b.settings.max_limit),
        )
        .into());
    }
    let offset = match p.get("offset") {
        None => 0,
        Some(o) => o
            .parse::<usize>()
            .map_err(|_| bad_data(format!("offset must be a non-negative integer, not `{o}`")))?,
    };
    let count = p.flag("count")?;
    if limit == 0 && !count {
        return Err(bad_data("limit=0 is only allowed with count=true"));
    }
    Ok((limit, offset, count))
}

async fn run_query(
    b: &Broker,
    req: &Req,
    p: &P,
    query: NgsiQuery,
    opts: RenderOptions,
    mime: Mime,
) -> BrokerResult<Response> {
    let (limit, offset, count) = paging(p, b)?;
    if req.explicit_tenant && !b.tenant_exists(&req.scope).await? {
        return Err(NgsiError::new(
            ErrorKind::NonexistentTenant,
            format!("tenant {} does not exist", req.scope.tenant()),
        )
        .into());
    }
    let types = query.types.as_ref().map(candidate_types);
    let mut hits = b.query(&req.scope, &query, types.as_deref()).await?;
    if let Some(order) = p.get("orderBy") {
        temporal::order_by(&mut hits, order, &req.ctx)?;
    }
    let total = hits.len();
    let roots: Vec<&Entity> = hits.iter().skip(offset).take(limit).map(|e| &**e).collect();
    let page = render_page(b, req, p, &roots, &opts, mime).await?;
    let body = if mime == Mime::GeoJson {
        feature_collection(page, opts.context.clone())
    } else {
        Value::Array(page)
    };
    let mut r = respond(StatusCode::OK, body, mime, Some(req));
    if count {
        r.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    Ok(r)
}

/// The entities of a query page, with their linked entities if `join` asks for them; entities
/// left with no member by `pick`/`omit` are not listed.
async fn render_page(
    b: &Broker,
    req: &Req,
    p: &P,
    roots: &[&Entity],
    opts: &RenderOptions,
    mime: Mime,
) -> BrokerResult<Vec<Value>> {
    let mut page = match join_spec(p, &req.ctx, mime)? {
        Some(spec) => render_joined(b, req, roots, opts, &spec).await?,
        None => roots
            .iter()
            .map(|e| render_one(e, opts, &req.ctx, mime, p))
            .collect(),
    };
    if mime != Mime::GeoJson {
        page.retain(|v| !is_empty_render(v));
    }
    Ok(page)
}

/// `DELETE /entities?type=...`: purge.
async fn purge_entities(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    let req = b.read_req(&caller, &h, Access::Write).await?;
    let query = parse_query(&p, &req.ctx)?;
    if !query.has_selector() && p.get("local") != Some("true") {
        return Err(bad_data(
            "purging needs at least one of type, id, idPattern, q, scopeQ, a geo-query or local=true",
        ));
    }
    if p.get("keep").is_some() && p.get("drop").is_some() {
        return Err(bad_data("keep and drop cannot be used together"));
    }
    let keep = p
        .get("keep")
        .map(|k| parse_name_list(k, &req.ctx))
        .transpose()?;
    let drop = p
        .get("drop")
        .map(|k| parse_name_list(k, &req.ctx))
        .transpose()?;
    let types = query.types.as_ref().map(candidate_types);
    let ids: Vec<String> = b
        .query(&req.scope, &query, types.as_deref())
        .await?
        .iter()
        .map(|e| e.id.clone())
        .collect();
    if ids.is_empty() {
        return Err(not_found("no entity matches"));
    }
    let items: Vec<(String, BatchItem)> = ids
        .into_iter()
        .map(|id| {
            let (keep, drop) = (keep.clone(), drop.clone());
            let f: BatchItem = Box::new(move |cur, at| {
                let Some(e) = cur else { return Ok(None) };
                let mut e = Arc::unwrap_or_clone(e);
                if let Some(keep) = keep {
                    e.attributes.retain(|n, _| keep.contains(n));
                } else if let Some(drop) = drop {
                    e.attributes.retain(|n, _| !drop.contains(n));
                } else {
                    return Ok(None);
                }
                e.modified_at = Some(at);
                Ok(Some(e))
            });
            (id, f)
        })
        .collect();
    b.batch(&req.scope, items).await?;
    Ok(no_content())
}

// ----- attributes -----

fn parse_fragment(value: &Value, ctx: &Context, p: &P) -> BrokerResult<Entity> {
    if !value.is_object() {
        return Err(bad_data("the body must be a JSON object"));
    }
    Ok(parse_entity_with(
        value,
        ctx,
        ParseOptions {
            fragment: true,
            key_values: p.has_option("keyValues"),
            allow_null: false,
        },
    )?
    .entity)
}

fn partial_result(
    updated: Vec<String>,
    not_updated: Vec<(String, String)>,
    ctx: &Context,
) -> Response {
    if not_updated.is_empty() {
        return no_content();
    }
    let body = json!({
        "updated": updated.iter().map(|n| ctx.compact_iri(n)).collect::<Vec<_>>(),
        "notUpdated": not_updated.iter().map(|(n, reason)| json!({
            "attributeName": ctx.compact_iri(n), "reason": reason
        })).collect::<Vec<_>>(),
    });
    let mut r = (StatusCode::MULTI_STATUS, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn append_attrs(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let p = P::checked(q)?;
    let (req, value) = b.write_req(&caller, &h, &body, false).await?;
    let frag = parse_fragment(&value, &req.ctx, &p)?;
    let no_overwrite = p.has_option("noOverwrite");
    let id2 = id.clone();
    let (updated, not_updated) = b
        .modify_one(&req.scope, &id, move |current| {
            let mut e = current.ok_or_else(|| not_found(format!("entity {id2} not found")))?;
            let at = now();
            let mut updated = Vec::new();
            let mut not_updated = Vec::new();
            for t in frag.types {
                if !e.types.contains(&t) {
                    e.types.push(t);
                }
            }
            if !frag.scope.is_empty() {
                if no_overwrite {
                    for sc in frag.scope {
                        if !e.scope.contains(&sc) {
                            e.scope.push(sc);
                        }
                    }
                } else {
                    e.scope = frag.scope;
                }
            }
            for (name, instances) in frag.attributes {
                for mut inst in instances {
                    let exists = e
                        .attributes
                        .get(&name)
                        .is_some_and(|l| l.iter().any(|a| a.dataset_id == inst.dataset_id));
                    if exists && no_overwrite {
                        not_updated.push((
                            name.clone(),
                            "attribute exists and noOverwrite is set".to_owned(),
                        ));
                        continue;
                    }
                    carry_created(e.attributes.get(&name).map(Vec::as_slice), &mut inst);
                    inst.stamp(at);
                    e.upsert_attribute(name.clone(), inst);
                    if !updated.contains(&name) {
                        updated.push(name.clone());
                    }
                }
            }
            e.modified_at = Some(at);
            Ok((EntityChangeE::Put(Arc::new(e)), (updated, not_updated)))
        })
        .await?;
    Ok(partial_result(updated, not_updated, &req.ctx))
}

async fn update_attrs(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let p = P::checked(q)?;
    let (req, value) = b.write_req(&caller, &h, &body, false).await?;
    if !value.is_object() {
        return Err(bad_data("the body must be a JSON object"));
    }
    let mut parsed = parse_entity_with(
        &value,
        &req.ctx,
        ParseOptions {
            fragment: true,
            key_values: p.has_option("keyValues"),
            allow_null: true,
        },
    )?;
    language_nulls(&mut parsed);
    let ngsi_ld::ParsedEntity {
        entity: frag,
        deletions,
    } = parsed;
    let id2 = id.clone();
    let (updated, not_updated) = b
        .modify_one(&req.scope, &id, move |current| {
            let mut e = current.ok_or_else(|| not_found(format!("entity {id2} not found")))?;
            let at = now();
            let mut updated = Vec::new();
            let mut not_updated = Vec::new();
            let mut changed = false;
            for t in frag.types {
                if !e.types.contains(&t) {
                    e.types.push(t);
                    changed = true;
                }
            }
            if !frag.scope.is_empty() {
                if e.scope.is_empty() {
                    not_updated.push(("scope".to_owned(), "the entity has no scope".to_owned()));
                } else {
                    e.scope = frag.scope;
                    changed = true;
                }
            }
            for (name, dataset) in deletions {
                if e.remove_attribute(&name, dataset.as_deref(), false) {
                    updated.push(name);
                } else {
                    not_updated.push((name, "attribute does not exist".to_owned()));
                }
            }
            // ETSI GS CIM 009 V1.9.1 clause 5.6.2.4: an instance the entity does not have (by
            // name and datasetId) is appended; a matching one is replaced (createdAt kept).
            for (name, instances) in frag.attributes {
                for mut inst in instances {
                    carry_created(e.attributes.get(&name).map(Vec::as_slice), &mut inst);
                    inst.stamp(at);
                    e.upsert_attribute(name.clone(), inst);
                    if !updated.contains(&name) {
                        updated.push(name.clone());
                    }
                }
            }
            if updated.is_empty() && !changed {
                return Ok((EntityChangeE::Keep, (updated, not_updated)));
            }
            e.modified_at = Some(at);
            Ok((EntityChangeE::Put(Arc::new(e)), (updated, not_updated)))
        })
        .await?;
    Ok(partial_result(updated, not_updated, &req.ctx))
}

fn expand_attr(name: &str, ctx: &Context) -> BrokerResult<String> {
    Ok(ngsi_ld::parse::expand_attribute_name(name, ctx)?)
}

async fn partial_update_attr(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path((id, attr)): Path<(String, String)>,
    body: Bytes,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let (req, value) = b.write_req(&caller, &h, &body, true).await?;
    let name = expand_attr(&attr, &req.ctx)?;
    let Value::Object(m) = value else {
        return Err(bad_data("the body must be a JSON object"));
    };
    let dataset = m
        .get("datasetId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let ctx = req.ctx.clone();
    let id2 = id.clone();
    b.modify_one(&req.scope, &id, move |current| {
        let mut e = current.ok_or_else(|| not_found(format!("entity {id2} not found")))?;
        let Some(prev) = e
            .attributes
            .get(&name)
            .and_then(|l| l.iter().find(|a| a.dataset_id == dataset))
            .cloned()
        else {
            return Err(not_found(format!("entity {id2} has no attribute {attr}")));
        };
        let (body, keep_value) = fragment_of_kind(m, prev.kind(), &attr)?;
        let mut wrapper = Map::new();
        wrapper.insert(attr.clone(), Value::Object(body));
        let mut parsed = parse_entity_with(
            &Value::Object(wrapper),
            &ctx,
            ParseOptions {
                fragment: true,
                allow_null: true,
                ..Default::default()
            },
        )?;
        if keep_value {
            for inst in parsed.entity.attributes.values_mut().flatten() {
                inst.value = prev.value.clone();
            }
        }
        let at = now();
        merge_into(&mut e, parsed, at);
        e.modified_at = Some(at);
        Ok((EntityChangeE::Put(Arc::new(e)), ()))
    })
    .await?;
    Ok(no_content())
}

/// The body of a partial attribute update, made to name the target attribute's kind (ETSI GS CIM
/// 009 V1.9.1 clause 5.6.4.4: the update may not change the type of the attribute). A body that
/// names or implies another kind is BadRequestData. A body without a value member (sub-attributes
/// only) gets a placeholder value; the returned flag says the caller keeps the existing value.
fn fragment_of_kind(
    mut body: Map<String, Value>,
    kind: AttributeKind,
    attr: &str,
) -> BrokerResult<(Map<String, Value>, bool)> {
    let mismatch = |other: &str| {
        bad_data(format!(
            "attribute {attr} is a {}; a partial update cannot make it a {other}",
            kind.name()
        ))
    };
    if let Some(t) = body.get("type").and_then(Value::as_str) {
        return match AttributeKind::from_name(t) {
            Some(k) if k != kind => Err(mismatch(k.name())),
            _ => Ok((body, false)),
        };
    }
    let own = kind.value_member();
    if body.contains_key(own) {
        body.insert("type".into(), Value::from(kind.name()));
        return Ok((body, false));
    }
    if let Some(k) = AttributeKind::ALL
        .into_iter()
        .find(|k| body.contains_key(k.value_member()))
    {
        return Err(mismatch(k.name()));
    }
    let placeholder = match kind {
        AttributeKind::Property => json!(0),
        AttributeKind::GeoProperty => json!({"type": "Point", "coordinates": [0.0, 0.0]}),
        AttributeKind::Relationship => json!("urn:ngsi-ld:placeholder"),
        AttributeKind::ListRelationship => json!(["urn:ngsi-ld:placeholder"]),
        AttributeKind::LanguageProperty => json!({"en": "placeholder"}),
        AttributeKind::VocabProperty => json!("placeholder"),
        AttributeKind::JsonProperty => json!({}),
        AttributeKind::ListProperty => json!([0]),
    };
    body.insert("type".into(), Value::from(kind.name()));
    body.insert(own.into(), placeholder);
    Ok((body, true))
}

async fn replace_attr(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path((id, attr)): Path<(String, String)>,
    body: Bytes,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let (req, value) = b.write_req(&caller, &h, &body, false).await?;
    let name = expand_attr(&attr, &req.ctx)?;
    let mut wrapper = Map::new();
    let mut inner = value.clone();
    if let Value::Object(m) = &mut inner {
        m.remove("@context");
    }
    wrapper.insert(attr.clone(), inner);
    let frag = parse_entity_with(
        &Value::Object(wrapper),
        &req.ctx,
        ParseOptions {
            fragment: true,
            ..Default::default()
        },
    )?
    .entity;
    let id2 = id.clone();
    b.modify_one(&req.scope, &id, move |current| {
        let mut e = current.ok_or_else(|| not_found(format!("entity {id2} not found")))?;
        if !e.attributes.contains_key(&name) {
            return Err(not_found(format!("entity {id2} has no attribute {attr}")));
        }
        let at = now();
        for (n, instances) in frag.attributes {
            for mut inst in instances {
                carry_created(e.attributes.get(&n).map(Vec::as_slice), &mut inst);
                inst.stamp(at);
                e.upsert_attribute(n.clone(), inst);
            }
        }
        e.modified_at = Some(at);
        Ok((EntityChangeE::Put(Arc::new(e)), ()))
    })
    .await?;
    Ok(no_content())
}

async fn delete_attr(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path((id, attr)): Path<(String, String)>,
    Query(q): Params,
) -> BrokerResult<Response> {
    check_id(&id)?;
    let p = P::checked(q)?;
    let req = b.read_req(&caller, &h, Access::Write).await?;
    if attr == "scope" {
        let id2 = id.clone();
        b.modify_one(&req.scope, &id, move |current| {
            let mut e = current.ok_or_else(|| not_found(format!("entity {id2} not found")))?;
            if e.scope.is_empty() {
                return Err(not_found(format!("entity {id2} has no scope")));
            }
            e.scope.clear();
            e.modified_at = Some(now());
            Ok((EntityChangeE::Put(Arc::new(e)), ()))
        })
        .await?;
        return Ok(no_content());
    }
    let name = expand_attr(&attr, &req.ctx)?;
    let dataset = p.get("datasetId").map(str::to_owned);
    let all = p.flag("deleteAll")?;
    let id2 = id.clone();
    b.modify_one(&req.scope, &id, move |current| {
        let mut e = current.ok_or_else(|| not_found(format!("entity {id2} not found")))?;
        if !e.remove_attribute(&name, dataset.as_deref(), all) {
            return Err(not_found(format!(
                "entity {id2} has no attribute {attr}{}",
                dataset
                    .as_deref()
                    .map(|d| format!(" with datasetId {d}"))
                    .unwrap_or_default()
            )));
        }
        e.modified_at = Some(now());
        Ok((EntityChangeE::Put(Arc::new(e)), ()))
    })
    .await?;
    Ok(no_content())
}

// ----- batch operations -----

fn batch_error_entry(id: &str, e: &NgsiError) -> Value {
    json!({ "entityId": id, "error": e.to_problem_details() })
}

async fn batch(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(op): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    if op == "query" {
        return batch_query(b, caller, h, p, body).await;
    }
    if !matches!(
        op.as_str(),
        "create" | "upsert" | "update" | "delete" | "merge"
    ) {
        return Err(not_found(format!("no entity operation `{op}`")));
    }
    let (scope, _) = b.scope(&caller, &h, Access::Write).await?;
    let ct = header_str(&h, "content-type").map(media_type);
    let ld = match ct.as_deref() {
        Some("application/json") => false,
        Some("application/ld+json") => true,
        other => {
            return Err(BrokerError::UnsupportedMediaType(format!(
                "Content-Type {other:?} is not supported; use application/json or application/ld+json"
            )));
        }
    };
    // Read as written, without a `Value` tree: most items are parsed straight from it.
    let value: RawJson<'_> = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
    let RawJson::Array(items) = value else {
        return Err(bad_data(
            "the body of a batch operation must be a JSON array",
        ));
    };
    if items.is_empty() {
        return Err(bad_data("the batch is empty"));
    }
    let link = link_context(&h)?;
    if ld && link.is_some() {
        return Err(bad_data(
            "a JSON-LD context Link header must not be sent with application/ld+json",
        ));
    }
    let mut errors: Vec<(String, NgsiError)> = Vec::new();
    let mut work: Vec<(String, BatchItem)> = Vec::with_capacity(items.len());
    let no_overwrite = p.has_option("noOverwrite");
    let update_mode = p.has_option("update");
    // Batch update with noOverwrite: the attributes left alone, per entity (reported in a 207).
    let not_updated: Arc<std::sync::Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let mut names: Option<(Arc<Context>, NameMemo)> = None;
    for item in items {
        if op == "delete" {
            match item.as_str() {
                Some(id) => match ngsi_ld::parse::validate_entity_id(id) {
                    Ok(_) => {
                        let id = id.to_owned();
                        let id2 = id.clone();
                        let f: BatchItem = Box::new(move |cur, _| match cur {
                            Some(_) => Ok(None),
                            None => Err(NgsiError::new(
                                ErrorKind::ResourceNotFound,
                                format!("entity {id2} not found"),
                            )),
                        });
                        work.push((id, f));
                    }
                    Err(e) => errors.push((id.to_owned(), e)),
                },
                None => return Err(bad_data("batch delete takes an array of entity ids")),
            }
            continue;
        }
        let id_hint = item
            .get("id")
            .and_then(RawJson::as_str)
            .unwrap_or("")
            .to_owned();
        let user = if ld {
            match item.get("@context") {
                Some(c) => Some(c.to_value()),
                None => {
                    errors.push((
                        id_hint,
                        NgsiError::bad_data("an application/ld+json entity must contain @context"),
                    ));
                    continue;
                }
            }
        } else {
            if item.get("@context").is_some() {
                errors.push((
                    id_hint,
                    NgsiError::bad_data("an application/json entity must not contain @context"),
                ));
                continue;
            }
            link.clone().map(Value::String)
        };
        let ctx = match b.contexts.resolve(user.as_ref()).await {
            Ok(c) => c,
            Err(BrokerError::Ngsi(e)) => {
                errors.push((id_hint, e));
                continue;
            }
            Err(e) => return Err(e),
        };
        let merge = op == "merge";
        // Names are expanded through a memo for as long as the items share a context.
        if names.as_ref().is_some_and(|(c, _)| !Arc::ptr_eq(c, &ctx)) {
            names = None;
        }
        let (_, memo) = names.get_or_insert_with(|| (ctx.clone(), NameMemo::default()));
        let opts = ParseOptions {
            fragment: false,
            allow_null: merge,
            key_values: p.has_option("keyValues"),
        };
        // The usual shapes straight from the text; anything else (errors included) through a
        // `Value`, as before.
        let parsed = match parse_entity_raw(&item, &ctx, opts, Some(&mut *memo)) {
            Some(parsed) => parsed,
            None => {
                let item = item.to_value();
                if merge && let Some(name) = json_null_attribute(&item) {
                    // Clause 5.2.1: JSON-LD expansion drops a JSON null, leaving an attribute
                    // without its value; only the NGSI-LD Null deletes.
                    errors.push((
                        id_hint,
                        NgsiError::bad_data(format!(
                            "attribute `{name}` has a JSON null value; \"urn:ngsi-ld:null\" deletes"
                        )),
                    ));
                    continue;
                }
                match parse_entity_memo(&item, &ctx, opts, memo) {
                    Ok(p) => p,
                    Err(e) => {
                        errors.push((id_hint, e));
                        continue;
                    }
                }
            }
        };
        let id = parsed.entity.id.clone();
        let f: BatchItem = match op.as_str() {
            "create" => Box::new(move |cur, _| match cur {
                Some(_) => Err(NgsiError::new(
                    ErrorKind::AlreadyExists,
                    format!("entity {} already exists", parsed.entity.id),
                )),
                None => Ok(Some(parsed.entity)),
            }),
            "upsert" => Box::new(move |cur, at| match cur {
                None => Ok(Some(parsed.entity)),
                Some(old) if update_mode => {
                    let mut old = Arc::unwrap_or_clone(old);
                    for t in parsed.entity.types {
                        if !old.types.contains(&t) {
                            old.types.push(t);
                        }
                    }
                    for (name, instances) in parsed.entity.attributes {
                        for mut inst in instances {
                            carry_created(old.attributes.get(&name).map(Vec::as_slice), &mut inst);
                            inst.stamp(at);
                            old.upsert_attribute(name.clone(), inst);
                        }
                    }
                    old.modified_at = Some(at);
                    Ok(Some(old))
                }
                Some(old) => {
                    let mut e = parsed.entity;
                    e.created_at = old.created_at;
                    Ok(Some(e))
                }
            }),
            "update" => {
                let not_updated = Arc::clone(&not_updated);
                Box::new(move |cur, at| {
                    let Some(old) = cur else {
                        return Err(NgsiError::new(
                            ErrorKind::ResourceNotFound,
                            format!("entity {} not found", parsed.entity.id),
                        ));
                    };
                    let mut old = Arc::unwrap_or_clone(old);
                    for t in parsed.entity.types {
                        if !old.types.contains(&t) {
                            old.types.push(t);
                        }
                    }
                    for (name, instances) in parsed.entity.attributes {
                        for mut inst in instances {
                            let exists = old
                                .attributes
                                .get(&name)
                                .is_some_and(|l| l.iter().any(|a| a.dataset_id == inst.dataset_id));
                            if exists && no_overwrite {
                                if let Ok(mut skipped) = not_updated.lock() {
                                    skipped
                                        .entry(old.id.clone())
                                        .or_default()
                                        .push(name.clone());
                                }
                                continue;
                            }
                            carry_created(old.attributes.get(&name).map(Vec::as_slice), &mut inst);
                            inst.stamp(at);
                            old.upsert_attribute(name.clone(), inst);
                        }
                    }
                    old.modified_at = Some(at);
                    Ok(Some(old))
                })
            }
            _ => Box::new(move |cur, at| {
                let Some(old) = cur else {
                    return Err(NgsiError::new(
                        ErrorKind::ResourceNotFound,
                        format!("entity {} not found", parsed.entity.id),
                    ));
                };
                let mut old = Arc::unwrap_or_clone(old);
                merge_into(&mut old, parsed, at);
                old.modified_at = Some(at);
                Ok(Some(old))
            }),
        };
        work.push((id, f));
    }
    let outcome = if work.is_empty() {
        crate::BatchOutcome::default()
    } else {
        b.batch(&scope, work).await?
    };
    errors.extend(outcome.errors);
    let mut success = outcome.success;
    let not_updated = not_updated.lock().map(|m| m.clone()).unwrap_or_default();
    if !not_updated.is_empty() {
        // The entity was updated except for these attributes: reported as not (fully) updated.
        for (id, names) in &not_updated {
            if !success.iter().any(|(s, _)| s == id) {
                continue;
            }
            errors.push((
                id.clone(),
                NgsiError::bad_data(format!(
                    "attributes {} exist and were not updated (noOverwrite)",
                    names.join(", ")
                )),
            ));
        }
        success.retain(|(id, _)| !not_updated.contains_key(id));
    }
    if errors.is_empty() {
        return Ok(match op.as_str() {
            "create" => respond(
                StatusCode::CREATED,
                Value::Array(
                    success
                        .iter()
                        .map(|(id, _)| Value::from(id.as_str()))
                        .collect(),
                ),
                Mime::Json,
                None,
            ),
            "upsert" => {
                let created: Vec<Value> = success
                    .iter()
                    .filter(|(_, c)| *c)
                    .map(|(id, _)| Value::from(id.as_str()))
                    .collect();
                if created.is_empty() {
                    no_content()
                } else {
                    respond(StatusCode::CREATED, Value::Array(created), Mime::Json, None)
                }
            }
            _ => no_content(),
        });
    }
    let body = json!({
        "success": success.iter().map(|(id, _)| Value::from(id.as_str())).collect::<Vec<_>>(),
        "errors": errors.iter().map(|(id, e)| batch_error_entry(id, e)).collect::<Vec<_>>(),
    });
    Ok(respond(StatusCode::MULTI_STATUS, body, Mime::Json, None))
}

async fn batch_query(
    b: Arc<Broker>,
    caller: identity::Principal,
    h: HeaderMap,
    p: P,
    body: Bytes,
) -> BrokerResult<Response> {
    let mime = accept(&h, true)?;
    let (scope, explicit) = b.scope(&caller, &h, Access::Read).await?;
    let ct = header_str(&h, "content-type").map(media_type);
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
    let user = match ct.as_deref() {
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
        ctx: ctx.clone(),
        user,
    };
    let Value::Object(m) = &value else {
        return Err(bad_data("the query must be a JSON object"));
    };
    if m.get("type").and_then(Value::as_str) != Some("Query") {
        return Err(bad_data("the query object must have type `Query`"));
    }
    // Entity selectors: each {id?, idPattern?, type}; the query matches any of them.
    let mut selectors = Vec::new();
    if let Some(Value::Array(list)) = m.get("entities") {
        for sel in list {
            selectors.push((
                sel.get("id").and_then(Value::as_str).map(str::to_owned),
                sel.get("idPattern")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                sel.get("type").and_then(Value::as_str).map(str::to_owned),
            ));
        }
    }
    let attrs = match m.get("attrs") {
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    };
    // Members of the Query body that are query parameters of `GET /entities` (the URL wins).
    let mut p = p;
    for key in [
        "join",
        "joinLevel",
        "containedBy",
        "pick",
        "omit",
        "orderBy",
        "lang",
        "local",
    ] {
        let text = match m.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            _ => continue,
        };
        p.0.entry(key.to_owned()).or_insert(text);
    }
    let q = m.get("q").and_then(Value::as_str).map(str::to_owned);
    let scope_q = m.get("scopeQ").and_then(Value::as_str).map(str::to_owned);
    let (georel, geometry, coordinates, geoproperty) = match m.get("geoQ") {
        Some(g) => (
            g.get("georel").and_then(Value::as_str).map(str::to_owned),
            g.get("geometry").and_then(Value::as_str).map(str::to_owned),
            g.get("coordinates").map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            g.get("geoproperty")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        None => (None, None, None, None),
    };
    let base = |id: Option<&str>, pat: Option<&str>, t: Option<&str>| {
        NgsiQuery::parse(
            &QueryParams {
                ids: id,
                id_pattern: pat,
                types: t,
                q: q.as_deref(),
                scope_q: scope_q.as_deref(),
                attrs: attrs.as_deref(),
                georel: georel.as_deref(),
                geometry: geometry.as_deref(),
                coordinates: coordinates.as_deref(),
                geoproperty: geoproperty.as_deref(),
            },
            &ctx,
        )
    };
    let queries: Vec<NgsiQuery> = if selectors.is_empty() {
        vec![base(None, None, None)?]
    } else {
        selectors
            .iter()
            .map(|(i, pat, t)| base(i.as_deref(), pat.as_deref(), t.as_deref()))
            .collect::<Result<_, _>>()?
    };
    if queries.iter().all(|q| !q.has_selector()) {
        return Err(bad_data(
            "the query needs an entity selector, attrs, q or geoQ",
        ));
    }
    let mut opts = render_options(&p, &ctx, mime, &req)?;
    if let Some(a) = &attrs {
        opts.attrs = Some(parse_name_list(a, &ctx)?);
    }
    let (limit, offset, count) = paging(&p, &b)?;
    let all = b.list_shared(&req.scope, &EntityFilter::default()).await?;
    let mut hits: Vec<&Entity> = all
        .iter()
        .map(|e| &**e)
        .filter(|e| queries.iter().any(|q| q.matches(e)))
        .collect();
    if let Some(order) = p.get("orderBy") {
        temporal::order_by(&mut hits, order, &ctx)?;
    }
    let total = hits.len();
    let roots: Vec<&Entity> = hits.iter().skip(offset).take(limit).copied().collect();
    let page = render_page(&b, &req, &p, &roots, &opts, mime).await?;
    let body = if mime == Mime::GeoJson {
        feature_collection(page, opts.context.clone())
    } else {
        Value::Array(page)
    };
    let mut r = respond(StatusCode::OK, body, mime, Some(&req));
    if count {
        r.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    Ok(r)
}

// ----- types and attributes -----

struct TypeStats {
    entities: usize,
    attrs: BTreeMap<String, BTreeSet<&'static str>>,
}

async fn tenant_entities(b: &Broker, req: &Req) -> BrokerResult<Vec<Arc<Entity>>> {
    b.check_tenant_exists(req).await?;
    b.list_shared(&req.scope, &EntityFilter::default()).await
}

async fn list_types(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    let mime = accept(&h, false)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    let entities = tenant_entities(&b, &req).await?;
    let mut types: BTreeMap<String, TypeStats> = BTreeMap::new();
    for e in &entities {
        for t in &e.types {
            let s = types.entry(t.clone()).or_insert(TypeStats {
                entities: 0,
                attrs: BTreeMap::new(),
            });
            s.entities += 1;
            for (name, instances) in &e.attributes {
                let kinds = s.attrs.entry(name.clone()).or_default();
                for i in instances {
                    kinds.insert(i.kind().name());
                }
            }
        }
    }
    let ctx = &req.ctx;
    let body = if p.flag("details")? {
        Value::Array(
            types
                .iter()
                .map(|(t, s)| {
                    json!({
                        "id": t, "type": "EntityType", "typeName": ctx.compact_iri(t),
                        "attributeNames": s.attrs.keys().map(|a| ctx.compact_iri(a)).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    } else {
        json!({
            "id": format!("urn:ngsi-ld:EntityTypeList:{}", uuid::Uuid::new_v4()),
            "type": "EntityTypeList",
            "typeList": types.keys().map(|t| ctx.compact_iri(t)).collect::<BTreeSet<_>>(),
        })
    };
    let body = with_context(body, mime, &req);
    Ok(respond(StatusCode::OK, body, mime, Some(&req)))
}

fn with_context(mut body: Value, mime: Mime, req: &Req) -> Value {
    if mime == Mime::LdJson {
        match &mut body {
            Value::Object(m) => {
                m.insert("@context".into(), response_context(req));
            }
            Value::Array(items) => {
                for i in items {
                    if let Value::Object(m) = i {
                        m.insert("@context".into(), response_context(req));
                    }
                }
            }
            _ => {}
        }
    }
    body
}

async fn type_info(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(t): Path<String>,
) -> BrokerResult<Response> {
    let mime = accept(&h, false)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    let expanded = ngsi_ld::parse::expand_type_name(&t, &req.ctx)?;
    b.check_tenant_exists(&req).await?;
    let entities = b
        .list_shared(
            &req.scope,
            &EntityFilter {
                ids: None,
                types: Some(vec![expanded.clone()]),
            },
        )
        .await?;
    if entities.is_empty() {
        return Err(not_found(format!("no entity of type {t}")));
    }
    let mut attrs: BTreeMap<String, (usize, BTreeSet<&'static str>)> = BTreeMap::new();
    for e in &entities {
        for (name, instances) in &e.attributes {
            let s = attrs.entry(name.clone()).or_default();
            s.0 += 1;
            for i in instances {
                s.1.insert(i.kind().name());
            }
        }
    }
    let ctx = &req.ctx;
    let body = json!({
        "id": expanded, "type": "EntityTypeInfo", "typeName": ctx.compact_iri(&expanded),
        "entityCount": entities.len(),
        "attributeDetails": attrs.iter().map(|(a, (_, kinds))| json!({
            "id": a, "type": "Attribute", "attributeName": ctx.compact_iri(a),
            "attributeTypes": kinds.iter().collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let body = with_context(body, mime, &req);
    Ok(respond(StatusCode::OK, body, mime, Some(&req)))
}

async fn list_attributes(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    let mime = accept(&h, false)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    let entities = tenant_entities(&b, &req).await?;
    let mut attrs: BTreeMap<String, (usize, BTreeSet<&'static str>, BTreeSet<String>)> =
        BTreeMap::new();
    for e in &entities {
        for (name, instances) in &e.attributes {
            let s = attrs.entry(name.clone()).or_default();
            s.0 += 1;
            for i in instances {
                s.1.insert(i.kind().name());
            }
            s.2.extend(e.types.iter().cloned());
        }
    }
    let ctx = &req.ctx;
    let body = if p.flag("details")? {
        Value::Array(
            attrs
                .iter()
                .map(|(a, (_, _, types))| {
                    json!({
                        "id": a, "type": "Attribute", "attributeName": ctx.compact_iri(a),
                        "typeNames": types.iter().map(|t| ctx.compact_iri(t)).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    } else {
        json!({
            "id": format!("urn:ngsi-ld:AttributeList:{}", uuid::Uuid::new_v4()),
            "type": "AttributeList",
            "attributeList": attrs.keys().map(|a| ctx.compact_iri(a)).collect::<BTreeSet<_>>(),
        })
    };
    let body = with_context(body, mime, &req);
    Ok(respond(StatusCode::OK, body, mime, Some(&req)))
}

async fn attribute_info(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(a): Path<String>,
) -> BrokerResult<Response> {
    let mime = accept(&h, false)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    let expanded = expand_attr(&a, &req.ctx)?;
    let entities = tenant_entities(&b, &req).await?;
    let mut count = 0;
    let mut kinds = BTreeSet::new();
    let mut types = BTreeSet::new();
    for e in &entities {
        if let Some(instances) = e.attributes.get(&expanded) {
            count += instances.len();
            for i in instances {
                kinds.insert(i.kind().name());
            }
            types.extend(e.types.iter().cloned());
        }
    }
    if count == 0 {
        return Err(not_found(format!("no entity has attribute {a}")));
    }
    let ctx = &req.ctx;
    let body = json!({
        "id": expanded, "type": "Attribute", "attributeName": ctx.compact_iri(&expanded),
        "attributeCount": count,
        "attributeTypes": kinds.iter().collect::<Vec<_>>(),
        "typeNames": types.iter().map(|t| ctx.compact_iri(t)).collect::<Vec<_>>(),
    });
    let body = with_context(body, mime, &req);
    Ok(respond(StatusCode::OK, body, mime, Some(&req)))
}

// ----- @context management -----

async fn add_context(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    body: Bytes,
) -> BrokerResult<Response> {
    // Contexts are global: adding one needs write access to data in the caller's tenant.
    b.scope(&caller, &h, Access::Write).await?;
    match header_str(&h, "content-type").map(media_type).as_deref() {
        Some("application/json" | "application/ld+json") => {}
        other => {
            return Err(BrokerError::UnsupportedMediaType(format!(
                "Content-Type {other:?} is not supported"
            )));
        }
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
    let Some(inner) = value.get("@context") else {
        return Err(invalid(
            "the body must be an object with an @context member",
        ));
    };
    if !(inner.is_object() || inner.is_array() || inner.is_string()) {
        return Err(bad_data("@context must be an object, an array or a URL"));
    }
    // It must process (remote references included).
    Context::empty()
        .process(inner, &ngsi_ld::NoLoader)
        .or_else(|e| {
            if e.kind == ErrorKind::LdContextNotAvailable {
                Ok(Context::empty())
            } else {
                Err(e)
            }
        })
        .map_err(|e| bad_data(format!("invalid @context: {}", e.detail)))?;
    let id = format!("urn:ngsi-ld:jsonldContext:{}", uuid::Uuid::new_v4());
    b.store
        .put_context(ContextRecord {
            id: id.clone(),
            url: None,
            kind: crate::contexts::KIND_HOSTED.into(),
            doc: value.to_string(),
            created_at: UnixMillis(now().timestamp_millis()),
        })
        .await?;
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{HOSTED_PATH}{id}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

fn context_info(
    id: &str,
    url: &str,
    kind: &str,
    created: &str,
    extra: Option<(u64, &str)>,
) -> Value {
    let mut v = json!({
        "URL": url, "localId": id, "kind": kind, "createdAt": created,
    });
    if let (Some((hits, last)), Value::Object(m)) = (extra, &mut v) {
        m.insert("numberOfHits".into(), json!(hits));
        m.insert("lastUsage".into(), json!(last));
    }
    v
}

fn millis_text(t: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(t.0)
        .map(|t| ngsi_ld::time::format_datetime(&t))
        .unwrap_or_default()
}

/// A stored (hosted or implicitly created) context: its URL and details.
fn stored_context_info(rec: &ContextRecord) -> (String, Value) {
    let url = rec
        .url
        .clone()
        .unwrap_or_else(|| format!("{HOSTED_PATH}{}", rec.id));
    let info = context_info(&rec.id, &url, &rec.kind, &millis_text(rec.created_at), None);
    (url, info)
}

fn cached_context_info(url: &str, c: &crate::contexts::CachedContext) -> Value {
    let created = ngsi_ld::time::format_datetime(&c.created_at);
    let last = ngsi_ld::time::format_datetime(&c.last_used);
    context_info(url, url, "Cached", &created, Some((c.hits, &last)))
}

async fn list_contexts(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    b.scope(&caller, &h, Access::Read).await?;
    let details = p.flag("details")?;
    let kind = p.get("kind").map(str::to_ascii_lowercase);
    if let Some(k) = &kind
        && !matches!(k.as_str(), "hosted" | "cached" | "implicitlycreated")
    {
        return Err(bad_data(format!("unknown context kind `{k}`")));
    }
    let mut out = Vec::new();
    for rec in b.store.contexts().await? {
        if kind
            .as_deref()
            .is_some_and(|k| k != rec.kind.to_ascii_lowercase())
        {
            continue;
        }
        let (url, info) = stored_context_info(&rec);
        out.push(if details { info } else { Value::String(url) });
    }
    if kind.as_deref().is_none_or(|k| k == "cached") {
        for (url, c) in b.contexts.cached() {
            out.push(if details {
                cached_context_info(&url, &c)
            } else {
                Value::String(url)
            });
        }
    }
    Ok(respond(StatusCode::OK, Value::Array(out), Mime::Json, None))
}

async fn get_context(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    b.scope(&caller, &h, Access::Read).await?;
    let details = p.flag("details")?;
    if let Some(rec) = b.store.context(&id).await? {
        let body = if details {
            stored_context_info(&rec).1
        } else {
            serde_json::from_str(&rec.doc).unwrap_or(Value::Null)
        };
        return Ok(respond(StatusCode::OK, body, Mime::Json, None));
    }
    if let Some((url, c)) = b.contexts.cached().into_iter().find(|(u, _)| *u == id) {
        let body = if details {
            cached_context_info(&url, &c)
        } else {
            (*c.doc).clone()
        };
        // Serving is a use: the next look shows one more hit.
        b.contexts.count_hit(&url);
        return Ok(respond(StatusCode::OK, body, Mime::Json, None));
    }
    if let Some(core) = CoreContext::from_url(&id) {
        // The core contexts are built in; shown as cached copies kept since the start.
        let body = if details {
            let started = ngsi_ld::time::format_datetime(&b.contexts.started_at());
            context_info(&id, core.url(), "Cached", &started, None)
        } else {
            (*core.document()).clone()
        };
        return Ok(respond(StatusCode::OK, body, Mime::Json, None));
    }
    Err(not_found(format!("no @context {id}")))
}

async fn delete_context(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    b.scope(&caller, &h, Access::Write).await?;
    let reload = p.flag("reload")?;
    if CoreContext::from_url(&id).is_some() {
        if reload {
            // The core contexts are pinned in the binary: reloading them is a no-op.
            return Ok(no_content());
        }
        return Err(bad_data("the core @context cannot be deleted"));
    }
    if let Some(rec) = b.store.context(&id).await? {
        if reload {
            return Err(bad_data(format!(
                "reload applies to cached contexts, not to {} ones",
                rec.kind
            )));
        }
        b.store.delete_context(&id).await?;
        b.contexts.invalidate();
        return Ok(no_content());
    }
    if b.contexts.is_cached(&id) {
        if reload {
            // Keeps the cached copy if the source cannot be reached (503).
            b.contexts.reload(&id).await?;
        } else {
            b.contexts.evict(&id);
        }
        return Ok(no_content());
    }
    if reload {
        return Err(bad_data(format!("no cached @context {id} to reload")));
    }
    Err(not_found(format!("no @context {id}")))
}

#[allow(dead_code)]
fn unused(_: Attribute) -> BrokerResult<()> {
    Err(already_exists(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ngsi_ld::context::{CoreContext, NoLoader};

    fn parsed_speed(ctx: &Arc<Context>) -> Option<String> {
        let body = br#"{"id":"urn:ngsi-ld:Vehicle:1","type":"Vehicle","speed":{"type":"Property","value":3}}"#;
        let value: RawJson<'_> = serde_json::from_slice(body).ok()?;
        let parsed = with_name_memo(ctx, |memo| {
            parse_entity_raw(&value, ctx, ParseOptions::default(), Some(memo))
        })?;
        parsed.entity.attributes.keys().next().cloned()
    }

    #[test]
    fn a_thread_memo_expands_names_only_in_its_own_context() {
        let core = Arc::new(Context::core(CoreContext::V1_8));
        let own = Arc::new(
            Context::core(CoreContext::V1_8)
                .process(&json!({"speed": "https://example.org/speed"}), &NoLoader)
                .expect("a context"),
        );
        let default = "https://uri.etsi.org/ngsi-ld/default-context/speed";
        assert_eq!(parsed_speed(&core).as_deref(), Some(default));
        assert_eq!(
            parsed_speed(&own).as_deref(),
            Some("https://example.org/speed")
        );
        // Back to the first context: its names expand as before, not as the other's.
        assert_eq!(parsed_speed(&core).as_deref(), Some(default));
        // An equal context at another address is another context: nothing is carried over.
        let again = Arc::new(Context::core(CoreContext::V1_8));
        assert_eq!(parsed_speed(&again).as_deref(), Some(default));
        assert_eq!(
            parsed_speed(&own).as_deref(),
            Some("https://example.org/speed")
        );
    }
}
