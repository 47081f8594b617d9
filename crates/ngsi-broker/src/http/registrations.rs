//! Context source registrations under `/ngsi-ld/v1/csourceRegistrations` (spec 5.9.2-5.9.4,
//! 5.10.1-5.10.2): create, retrieve, query (`id`, `idPattern`, `type`, `attrs`, paged), update
//! (`PATCH`) and delete, stored per tenant in the [`NgsiRegistrationStore`]. Tenants,
//! permissions, contexts, content negotiation and errors are those of the entity routes (the
//! parent module's helpers).
//!
//! The broker records registrations and answers discovery; it does not forward entity
//! queries to registered sources. `/csourceSubscriptions` is answered after the usual
//! checks (content negotiation, tenant, permission) with `OperationNotSupported`.

use super::*;
use ngsi_ld::query::compile_regex;
use ngsi_ld::registration::{Registration, RegistrationFilter};
use store::{NgsiRegistrationStore, RegistrationRecord};

const BASE: &str = "/ngsi-ld/v1/csourceRegistrations";
const SUBSCRIPTIONS: &str = "/ngsi-ld/v1/csourceSubscriptions";

/// The registration routes, merged into the broker's router.
pub(super) fn routes() -> axum::Router<Arc<Broker>> {
    axum::Router::new()
        .route(BASE, get(query_registrations).post(create_registration))
        .route(
            &format!("{BASE}/"),
            get(query_registrations).post(create_registration),
        )
        .route(
            &format!("{BASE}/{{id}}"),
            get(retrieve_registration)
                .patch(update_registration)
                .delete(delete_registration),
        )
        .route(
            SUBSCRIPTIONS,
            get(registration_subscriptions).post(registration_subscriptions_write),
        )
        .route(
            &format!("{SUBSCRIPTIONS}/"),
            get(registration_subscriptions).post(registration_subscriptions_write),
        )
        .route(
            &format!("{SUBSCRIPTIONS}/{{id}}"),
            get(registration_subscriptions)
                .patch(registration_subscriptions_write)
                .delete(registration_subscriptions_write),
        )
}

impl Broker {
    fn registration_store(&self) -> BrokerResult<&Arc<dyn NgsiRegistrationStore>> {
        self.registrations.as_ref().ok_or_else(|| {
            NgsiError::new(
                ErrorKind::OperationNotSupported,
                "context source registrations are not enabled on this broker",
            )
            .into()
        })
    }
}

fn check_registration_id(id: &str) -> BrokerResult<()> {
    if !ngsi_ld::iri::is_absolute_iri(id) {
        return Err(bad_data(format!("registration id `{id}` is not a URI")));
    }
    Ok(())
}

/// The stored form: the registration with expanded names (rendered with the core context,
/// so it decodes without the client's context).
fn encode(reg: &Registration) -> String {
    Value::Object(reg.render(CoreContext::V1_9.compiled())).to_string()
}

fn decode(rec: &RegistrationRecord) -> BrokerResult<Registration> {
    let doc: Value = serde_json::from_str(&rec.doc).map_err(|e| {
        BrokerError::Store(store::StoreError::backend(format!(
            "stored registration {}: {e}",
            rec.id
        )))
    })?;
    Ok(Registration::parse(
        &doc,
        CoreContext::V1_9.compiled(),
        &rec.id,
    )?)
}

fn render_registration(
    reg: &Registration,
    rec: &RegistrationRecord,
    req: &Req,
    mime: Mime,
    sys_attrs: bool,
) -> Value {
    let mut m = reg.render(&req.ctx);
    if sys_attrs {
        m.insert("createdAt".into(), json!(millis_text(rec.created_at)));
        m.insert("modifiedAt".into(), json!(millis_text(rec.modified_at)));
    }
    if mime == Mime::LdJson {
        m.insert("@context".into(), response_context(req));
    }
    Value::Object(m)
}

async fn create_registration(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
    body: Bytes,
) -> BrokerResult<Response> {
    P::checked(q)?;
    let store = b.registration_store()?.clone();
    let (req, value) = b.write_req(&caller, &h, &body, false).await?;
    let default_id = format!(
        "urn:ngsi-ld:ContextSourceRegistration:{}",
        uuid::Uuid::new_v4()
    );
    let reg = Registration::parse(&value, &req.ctx, &default_id)?;
    let at = UnixMillis(now().timestamp_millis());
    store
        .create_registration(
            &req.scope,
            RegistrationRecord {
                id: reg.id.clone(),
                doc: encode(&reg),
                created_at: at,
                modified_at: at,
            },
        )
        .await?;
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{BASE}/{}", reg.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

fn registration_filter(p: &P, ctx: &Context) -> BrokerResult<RegistrationFilter> {
    for unsupported in ["q", "csf", "georel", "timerel", "scopeQ"] {
        if p.get(unsupported).is_some() {
            return Err(NgsiError::new(
                ErrorKind::OperationNotSupported,
                format!("`{unsupported}` is not supported on registration queries"),
            )
            .into());
        }
    }
    let ids = p
        .get("id")
        .map(|list| {
            list.split(',')
                .map(|id| {
                    let id = id.trim();
                    check_id(id)?;
                    Ok(id.to_owned())
                })
                .collect::<BrokerResult<Vec<_>>>()
        })
        .transpose()?;
    let id_pattern = p.get("idPattern").map(compile_regex).transpose()?;
    let types = p.get("type").map(|t| parse_type_expr(t, ctx)).transpose()?;
    let attrs = p
        .get("attrs")
        .map(|a| parse_name_list(a, ctx))
        .transpose()?;
    Ok(RegistrationFilter {
        ids,
        id_pattern,
        types,
        attrs,
    })
}

async fn query_registrations(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    let mime = accept(&h, false)?;
    let store = b.registration_store()?.clone();
    let req = b.read_req(&caller, &h, Access::Read).await?;
    let filter = registration_filter(&p, &req.ctx)?;
    let (limit, offset, count) = paging(&p, &b)?;
    let sys_attrs = p.has_option("sysAttrs");
    let mut matched = Vec::new();
    for rec in store.registrations(&req.scope).await? {
        let reg = decode(&rec)?;
        if filter.matches(&reg) {
            matched.push((reg, rec));
        }
    }
    let total = matched.len();
    let body: Vec<Value> = matched
        .iter()
        .skip(offset)
        .take(limit)
        .map(|(reg, rec)| render_registration(reg, rec, &req, mime, sys_attrs))
        .collect();
    let mut r = respond(StatusCode::OK, Value::Array(body), mime, Some(&req));
    if count {
        r.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    Ok(r)
}

async fn retrieve_registration(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> BrokerResult<Response> {
    let p = P::checked(q)?;
    let mime = accept(&h, false)?;
    check_registration_id(&id)?;
    let store = b.registration_store()?.clone();
    let req = b.read_req(&caller, &h, Access::Read).await?;
    let rec = store
        .registration(&req.scope, &id)
        .await?
        .ok_or_else(|| not_found(format!("registration {id} not found")))?;
    let reg = decode(&rec)?;
    let body = render_registration(&reg, &rec, &req, mime, p.has_option("sysAttrs"));
    Ok(respond(StatusCode::OK, body, mime, Some(&req)))
}

async fn update_registration(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> BrokerResult<Response> {
    check_registration_id(&id)?;
    let store = b.registration_store()?.clone();
    let (req, value) = b.write_req(&caller, &h, &body, true).await?;
    let rec = store
        .registration(&req.scope, &id)
        .await?
        .ok_or_else(|| not_found(format!("registration {id} not found")))?;
    let merged = decode(&rec)?.merge(&value, &req.ctx)?;
    store
        .replace_registration(
            &req.scope,
            RegistrationRecord {
                id: rec.id,
                doc: encode(&merged),
                created_at: rec.created_at,
                modified_at: UnixMillis(now().timestamp_millis()),
            },
        )
        .await?;
    Ok(no_content())
}

async fn delete_registration(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> BrokerResult<Response> {
    check_registration_id(&id)?;
    let store = b.registration_store()?.clone();
    let req = b.read_req(&caller, &h, Access::Write).await?;
    if !store.delete_registration(&req.scope, &id).await? {
        return Err(not_found(format!("registration {id} not found")));
    }
    Ok(no_content())
}

fn registration_subscriptions_unsupported() -> BrokerError {
    NgsiError::new(
        ErrorKind::OperationNotSupported,
        "context source registration subscriptions are not supported by this broker",
    )
    .into()
}

async fn registration_subscriptions(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
) -> BrokerResult<Response> {
    P::checked(q)?;
    accept(&h, false)?;
    b.read_req(&caller, &h, Access::Read).await?;
    Err(registration_subscriptions_unsupported())
}

async fn registration_subscriptions_write(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
) -> BrokerResult<Response> {
    b.scope(&caller, &h, Access::Write).await?;
    Err(registration_subscriptions_unsupported())
}
