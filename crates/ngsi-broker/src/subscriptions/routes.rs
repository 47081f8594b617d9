//! `/ngsi-ld/v1/subscriptions`: create, list (paged), retrieve, update (`PATCH`), delete.
//! A child of the `http` module, so it shares its tenant, context and negotiation helpers.

use super::*;
use ngsi_ld::subscription::Subscription;

/// The subscription routes (state: the broker).
pub(super) fn routes() -> axum::Router<Arc<Broker>> {
    axum::Router::new()
        .route(
            "/ngsi-ld/v1/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/ngsi-ld/v1/subscriptions/",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/ngsi-ld/v1/subscriptions/{id}",
            get(retrieve_subscription)
                .patch(update_subscription)
                .delete(delete_subscription),
        )
}

fn check_subscription_id(id: &str) -> BrokerResult<()> {
    if !ngsi_ld::iri::is_absolute_iri(id) {
        return Err(bad_data(format!("subscription id `{id}` is not a URI")));
    }
    Ok(())
}

/// A `@context` that is not one URL (a string, or an array holding just one string).
fn is_complex_context(c: &Value) -> bool {
    match c {
        Value::String(_) => false,
        Value::Array(items) => !(items.len() == 1 && items[0].is_string()),
        _ => true,
    }
}

fn subscription_location(id: &str) -> String {
    format!("/ngsi-ld/v1/subscriptions/{id}")
}

fn render_live(live: &crate::subscriptions::Live, req: &Req, mime: Mime, sys_attrs: bool) -> Value {
    let now = now();
    let mut m = live.subscription().render(&req.ctx, now);
    let status = live.status();
    let at = |t: Option<UnixMillis>| {
        t.and_then(|t| chrono::DateTime::from_timestamp_millis(t.0))
            .map(|t| json!(ngsi_ld::time::format_datetime(&t)))
    };
    if status.times_sent > 0
        && let Some(Value::Object(n)) = m.get_mut("notification")
    {
        let failed = status.last_failure.is_some() && status.last_failure >= status.last_success;
        n.insert("status".into(), json!(if failed { "failed" } else { "ok" }));
        n.insert("timesSent".into(), json!(status.times_sent));
        if status.times_failed > 0 {
            n.insert("timesFailed".into(), json!(status.times_failed));
        }
        for (k, v) in [
            ("lastNotification", status.last_notification),
            ("lastSuccess", status.last_success),
            ("lastFailure", status.last_failure),
        ] {
            if let Some(v) = at(v) {
                n.insert(k.into(), v);
            }
        }
    }
    if sys_attrs {
        if let Some(v) = at(Some(live.created_at)) {
            m.insert("createdAt".into(), v);
        }
        if let Some(v) = at(Some(live.modified_at)) {
            m.insert("modifiedAt".into(), v);
        }
    }
    if mime == Mime::LdJson {
        m.insert("@context".into(), response_context(req));
    }
    Value::Object(m)
}

async fn create_subscription(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
    body: Bytes,
) -> BrokerResult<Response> {
    P::checked(q)?;
    let service = b.subscription_service()?.clone();
    let (req, value) = b.write_req(&caller, &h, &body, false).await?;
    let default_id = format!("urn:ngsi-ld:Subscription:{}", uuid::Uuid::new_v4());
    let mut sub = Subscription::parse(&value, &req.ctx, &default_id)?;
    if sub.jsonld_context.is_none()
        && let Some(inline) = req.user.as_ref().filter(|u| is_complex_context(u))
    {
        // Spec 5.13: a @context that is not a single URL is kept as an ImplicitlyCreated
        // context, named by the subscription's jsonldContext.
        sub.jsonld_context = Some(b.contexts.implicit(inline, &base_url(&h)).await?);
    }
    let id = sub.id.clone();
    service
        .create(&req.scope, sub, &req.ctx, req.user.clone(), now())
        .await?;
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&subscription_location(&id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn list_subscriptions(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Query(q): Params,
) -> BrokerResult<Response> {
    let service = b.subscription_service()?.clone();
    let p = P::checked(q)?;
    let mime = accept(&h, false)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    let (limit, offset, count) = paging(&p, &b)?;
    let sys_attrs = p.has_option("sysAttrs");
    let (items, total) = service.page(&req.scope, offset, limit).await?;
    let body: Vec<Value> = items
        .iter()
        .map(|l| render_live(l, &req, mime, sys_attrs))
        .collect();
    let mut r = respond(StatusCode::OK, Value::Array(body), mime, Some(&req));
    let page_link = |o: usize| {
        format!(
            "</ngsi-ld/v1/subscriptions?limit={limit}&offset={o}>;rel=\"{}\";type=\"application/ld+json\"",
            if o < offset { "prev" } else { "next" }
        )
    };
    let mut links = Vec::new();
    if offset > 0 && limit > 0 {
        links.push(page_link(offset.saturating_sub(limit)));
    }
    if limit > 0 && ((offset + limit) as u64) < total {
        links.push(page_link(offset + limit));
    }
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(","))
    {
        r.headers_mut().insert(header::LINK, v);
    }
    if count {
        r.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(total));
    }
    Ok(r)
}

async fn retrieve_subscription(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    Query(q): Params,
) -> BrokerResult<Response> {
    let service = b.subscription_service()?.clone();
    let p = P::checked(q)?;
    let mime = accept(&h, false)?;
    check_subscription_id(&id)?;
    let req = b.read_req(&caller, &h, Access::Read).await?;
    let live = service
        .get(&req.scope, &id)
        .ok_or_else(|| not_found(format!("subscription {id} not found")))?;
    let body = render_live(&live, &req, mime, p.has_option("sysAttrs"));
    Ok(respond(StatusCode::OK, body, mime, Some(&req)))
}

async fn update_subscription(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> BrokerResult<Response> {
    let service = b.subscription_service()?.clone();
    check_subscription_id(&id)?;
    let (req, value) = b.write_req(&caller, &h, &body, true).await?;
    if !value.is_object() {
        return Err(bad_data("the fragment must be a JSON object"));
    }
    service
        .update(&req.scope, &id, &value, &req.ctx, req.user.clone(), now())
        .await?;
    Ok(no_content())
}

async fn delete_subscription(
    State(b): St,
    Caller(caller): Caller,
    h: HeaderMap,
    Path(id): Path<String>,
) -> BrokerResult<Response> {
    let service = b.subscription_service()?.clone();
    check_subscription_id(&id)?;
    let req = b.read_req(&caller, &h, Access::Write).await?;
    service.delete(&req.scope, &id).await?;
    Ok(no_content())
}
