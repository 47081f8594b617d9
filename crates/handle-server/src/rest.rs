//! The Handle.Net v8/v9-compatible REST API and the proxy-style resolver, as an axum `Router`.
//!
//! Every route maps onto [`HandleNode`] operations, so authorization is the same function as on
//! the native path. Authentication: HTTP Basic with user `index:handle` (percent-decoded, as
//! pyhandle sends `300%3A21.T999/ADMIN`) and the HS_SECKEY secret as password.
//! responseCode → HTTP status follows the Handle.Net manual: 1 → 200/201, 2 → 500, 100 → 404,
//! 101/201 → 409, 102/202 → 400, 200 → 200 on GET (400 otherwise), 301 → 400, 402 → 401,
//! other 4xx codes → 403.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use handle_proto::constants::types;
use handle_proto::json::{value_from_json, value_to_json};
use handle_proto::{HandleValue, ResponseCode, ValueReference};
use serde_json::{Value, json};

use crate::node::{HandleNode, OpError, now_seconds, random_bytes};
use crate::store::ValueFilter;

/// Shared state of the REST router.
pub struct RestState {
    /// The node.
    pub node: Arc<HandleNode>,
    /// The `did:web` document served at `/.well-known/did.json`, if configured.
    pub did_document: Option<Value>,
}

/// Builds the router: `/api/handles`, `/api/prefixes`, `/.well-known/did.json` and the proxy.
pub fn router(state: Arc<RestState>) -> Router {
    Router::new()
        .route("/api/handles", get(list_handles))
        .route(
            "/api/handles/{*handle}",
            get(get_handle).put(put_handle).delete(delete_handle),
        )
        .route("/api/prefixes", get(list_prefixes))
        .route("/.well-known/did.json", get(did_document))
        .route("/{*handle}", get(proxy))
        .with_state(state)
}

/// The routes the platform mounts in its one HTTP API: `/api/handles`, `/api/prefixes`, the
/// node's `did:web` document and the proxy resolver under `/hdl/{handle}` (the root path belongs to the platform there).
/// Reads are public and writes authenticate with Handle.Net's own Basic/HS_SECKEY scheme, as
/// on a Handle.Net server, so the platform mounts these among its public routes.
pub fn platform_router<S: Clone + Send + Sync + 'static>(state: Arc<RestState>) -> Router<S> {
    Router::new()
        .route("/api/handles", get(list_handles))
        .route(
            "/api/handles/{*handle}",
            get(get_handle).put(put_handle).delete(delete_handle),
        )
        .route("/api/prefixes", get(list_prefixes))
        .route("/.well-known/did.json", get(did_document))
        .route("/hdl/{*handle}", get(proxy))
        .with_state(state)
}

struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<&str>) -> Self {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Self(
            raw.unwrap_or_default()
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(kv), String::new()),
                })
                .collect(),
        )
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.all(key).next()
    }

    /// A bare key (`?pretty`) counts as true.
    fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) => v.is_empty() || v.eq_ignore_ascii_case("true"),
        }
    }
}

fn http_status(code: ResponseCode, is_get: bool) -> StatusCode {
    match code.0 {
        1 => StatusCode::OK,
        2 => StatusCode::INTERNAL_SERVER_ERROR,
        100 => StatusCode::NOT_FOUND,
        101 | 201 => StatusCode::CONFLICT,
        102 | 202 | 301 => StatusCode::BAD_REQUEST,
        200 if is_get => StatusCode::OK,
        200 => StatusCode::BAD_REQUEST,
        402 => StatusCode::UNAUTHORIZED,
        400..=499 => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn respond(status: StatusCode, body: Value, params: &Params) -> Response {
    let text = if params.flag("pretty", false) {
        serde_json::to_string_pretty(&body)
    } else {
        serde_json::to_string(&body)
    }
    .unwrap_or_default();
    match params.get("callback").filter(|c| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.')
    }) {
        Some(cb) => (
            status,
            [(header::CONTENT_TYPE, "application/javascript")],
            format!("{cb}({text});"),
        )
            .into_response(),
        None => (
            status,
            [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
            text,
        )
            .into_response(),
    }
}

fn error_response(e: &OpError, handle: &str, is_get: bool, params: &Params) -> Response {
    let mut body = json!({ "responseCode": e.code.0, "handle": handle });
    if !e.message.is_empty() {
        body["message"] = json!(e.message);
    }
    respond(http_status(e.code, is_get), body, params)
}

/// Outcome of reading the Authorization header.
enum Auth {
    Anonymous,
    Identity(ValueReference),
    /// Bad credentials; the identity they claimed, if it could be read.
    Failed(Option<String>),
}

fn authenticate(node: &HandleNode, headers: &HeaderMap) -> Auth {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Auth::Anonymous;
    };
    let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Auth::Failed(None);
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return Auth::Failed(None);
    };
    let Ok(text) = String::from_utf8(decoded) else {
        return Auth::Failed(None);
    };
    let Some((user, password)) = text.split_once(':') else {
        return Auth::Failed(None);
    };
    let user = percent_encoding::percent_decode_str(user).decode_utf8_lossy();
    let Some(identity) = ValueReference::parse(&user) else {
        return Auth::Failed(Some(user.into_owned()));
    };
    if node.verify_password(&identity, password.as_bytes()) {
        Auth::Identity(identity)
    } else {
        Auth::Failed(Some(identity.to_string()))
    }
}

fn auth_error() -> OpError {
    OpError::new(ResponseCode::AUTHENTICATION_FAILED, "authentication failed")
}

fn auth_failed(handle: &str, params: &Params) -> Response {
    let e = OpError::new(ResponseCode::AUTHENTICATION_FAILED, "authentication failed");
    respond(
        StatusCode::UNAUTHORIZED,
        json!({ "responseCode": e.code.0, "handle": handle, "message": e.message }),
        params,
    )
}

async fn get_handle(
    State(st): State<Arc<RestState>>,
    Path(handle): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(q.as_deref());
    let identity = match authenticate(&st.node, &headers) {
        Auth::Failed(claimed) => {
            st.node
                .record_refusal("handle.read", &handle, claimed, auth_error());
            return auth_failed(&handle, &params);
        }
        Auth::Identity(id) => Some(id),
        Auth::Anonymous => None,
    };
    let indexes: Vec<u32> = params.all("index").filter_map(|i| i.parse().ok()).collect();
    let types: Vec<String> = params.all("type").map(str::to_owned).collect();
    let public_only = params.flag("publicOnly", identity.is_none());
    let filter = ValueFilter {
        indexes: &indexes,
        types: &types,
        public_only,
    };
    match st.node.resolve(&handle, &filter, identity.as_ref()) {
        Ok(values) if params.get("pretty").is_none() && params.get("callback").is_none() => {
            // Hot path: write the document directly instead of building a JSON tree.
            let mut body = String::with_capacity(256 + 200 * values.len());
            body.push_str("{\"handle\":");
            body.push_str(&serde_json::to_string(&handle).unwrap_or_default());
            body.push_str(",\"responseCode\":1,\"values\":[");
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                handle_proto::json::write_value_json(v, &mut body);
            }
            body.push_str("]}");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
                body,
            )
                .into_response()
        }
        Ok(values) => {
            let values: Vec<Value> = values.iter().map(value_to_json).collect();
            respond(
                StatusCode::OK,
                json!({ "responseCode": 1, "handle": handle, "values": values }),
                &params,
            )
        }
        Err(e) if e.code == ResponseCode::VALUES_NOT_FOUND => respond(
            StatusCode::OK,
            json!({ "responseCode": 200, "handle": handle, "values": [] }),
            &params,
        ),
        Err(e) => error_response(&e, &handle, true, &params),
    }
}

fn parse_values(body: &[u8], handle: &str) -> Result<Vec<HandleValue>, OpError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| OpError::new(ResponseCode::INVALID_VALUE, format!("invalid JSON: {e}")))?;
    let items = match &json {
        Value::Array(a) => a.clone(),
        Value::Object(o) if o.contains_key("values") => o
            .get("values")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Value::Object(_) => vec![json.clone()],
        _ => return Err(OpError::new(ResponseCode::INVALID_VALUE, "expected values")),
    };
    if let Some(h) = json.get("handle").and_then(Value::as_str)
        && !h.eq_ignore_ascii_case(handle)
        && !handle.ends_with('/')
    {
        return Err(OpError::new(
            ResponseCode::INVALID_HANDLE,
            "handle in body does not match the URL",
        ));
    }
    let now = now_seconds();
    items
        .iter()
        .map(|v| {
            value_from_json(v, now)
                .map_err(|e| OpError::new(ResponseCode::INVALID_VALUE, e.to_string()))
        })
        .collect()
}

fn mint_suffix() -> String {
    let b = random_bytes::<16>();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn put_handle(
    State(st): State<Arc<RestState>>,
    Path(handle): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(q.as_deref());
    let identity = match authenticate(&st.node, &headers) {
        Auth::Failed(claimed) => {
            st.node
                .record_refusal("handle.create", &handle, claimed, auth_error());
            return auth_failed(&handle, &params);
        }
        Auth::Identity(id) => id,
        Auth::Anonymous => {
            let e = OpError::new(ResponseCode::AUTHENTICATION_NEEDED, "authentication needed");
            st.node
                .record_refusal("handle.create", &handle, None, e.clone());
            return error_response(&e, &handle, false, &params);
        }
    };
    let mut values = match parse_values(&body, &handle) {
        Ok(v) => v,
        Err(e) => return error_response(&e, &handle, false, &params),
    };
    let overwrite = params.flag("overwrite", true);
    let node = &st.node;
    let index_params: Vec<&str> = params.all("index").collect();
    let (handle, result) = if params.flag("mintNewSuffix", false) {
        let minted = if handle.ends_with('/') {
            format!("{handle}{}", mint_suffix())
        } else {
            format!("{handle}/{}", mint_suffix())
        };
        let r = node.create_handle(Some(&identity), &minted, values, false);
        (minted, r)
    } else if !index_params.is_empty() {
        if !index_params.contains(&"various") {
            let wanted: Vec<u32> = index_params.iter().filter_map(|i| i.parse().ok()).collect();
            values.retain(|v| wanted.contains(&v.index));
        }
        let r = node
            .upsert_values(Some(&identity), &handle, values, overwrite)
            .map(|()| false);
        (handle, r)
    } else {
        let r = node.create_handle(Some(&identity), &handle, values, overwrite);
        (handle, r)
    };
    match result {
        Ok(created) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            respond(
                status,
                json!({ "responseCode": 1, "handle": handle }),
                &params,
            )
        }
        Err(e) => error_response(&e, &handle, false, &params),
    }
}

async fn delete_handle(
    State(st): State<Arc<RestState>>,
    Path(handle): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(q.as_deref());
    let identity = match authenticate(&st.node, &headers) {
        Auth::Failed(claimed) => {
            st.node
                .record_refusal("handle.delete", &handle, claimed, auth_error());
            return auth_failed(&handle, &params);
        }
        Auth::Identity(id) => Some(id),
        Auth::Anonymous => None,
    };
    let indexes: Vec<u32> = params.all("index").filter_map(|i| i.parse().ok()).collect();
    let result = if indexes.is_empty() {
        st.node.delete_handle(identity.as_ref(), &handle)
    } else {
        st.node.remove_values(identity.as_ref(), &handle, &indexes)
    };
    match result {
        Ok(()) => respond(
            StatusCode::OK,
            json!({ "responseCode": 1, "handle": handle }),
            &params,
        ),
        Err(e) => error_response(&e, &handle, false, &params),
    }
}

async fn list_handles(
    State(st): State<Arc<RestState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(q.as_deref());
    let prefix = params
        .get("prefix")
        .unwrap_or_default()
        .trim_start_matches("0.NA/")
        .to_owned();
    let identity = match authenticate(&st.node, &headers) {
        Auth::Failed(claimed) => {
            st.node
                .record_refusal("handle.list", &prefix, claimed, auth_error());
            return auth_failed(&prefix, &params);
        }
        Auth::Identity(id) => Some(id),
        Auth::Anonymous => None,
    };
    let page: usize = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let page_size: Option<usize> = params
        .get("pageSize")
        .and_then(|p| p.parse::<i64>().ok())
        .and_then(|n| usize::try_from(n).ok());
    let (offset, limit) = match page_size {
        Some(0) => (0, 0),
        Some(n) => (page.saturating_mul(n), n),
        None => (0, usize::MAX),
    };
    match st
        .node
        .list_handles(identity.as_ref(), &prefix, offset, limit)
    {
        Ok(p) => respond(
            StatusCode::OK,
            json!({ "responseCode": 1, "prefix": prefix, "totalCount": p.total.to_string(), "page": page, "pageSize": page_size, "handles": p.handles }),
            &params,
        ),
        Err(e) => error_response(&e, &prefix, true, &params),
    }
}

async fn list_prefixes(State(st): State<Arc<RestState>>, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    match st.node.store().homed_prefixes() {
        Ok(p) => respond(
            StatusCode::OK,
            json!({ "responseCode": 1, "prefixes": p }),
            &params,
        ),
        Err(e) => error_response(&e.into(), "", true, &params),
    }
}

async fn did_document(State(st): State<Arc<RestState>>) -> Response {
    match &st.did_document {
        Some(doc) => (
            [(header::CONTENT_TYPE, "application/did+json")],
            doc.to_string(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Proxy resolver: `GET /{handle}` redirects to a URL value (`?index=N` picks one, otherwise
/// the lowest-index URL); `?noredirect` or no URL shows the record as JSON.
async fn proxy(
    State(st): State<Arc<RestState>>,
    Path(handle): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = Params::parse(q.as_deref());
    let values = match st.node.resolve(
        &handle,
        &ValueFilter {
            public_only: true,
            ..ValueFilter::ALL
        },
        None,
    ) {
        Ok(v) => v,
        Err(e)
            if e.code == ResponseCode::HANDLE_NOT_FOUND
                || e.code == ResponseCode::SERVER_NOT_RESP
                || e.code == ResponseCode::INVALID_HANDLE =>
        {
            let hint = if handle.ends_with('/') {
                " (check for a stray trailing slash)"
            } else {
                ""
            };
            return (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
                format!("Handle Not Found: {handle}{hint}\n"),
            )
                .into_response();
        }
        Err(e) => return error_response(&e, &handle, true, &params),
    };
    let wanted: Option<u32> = params.get("index").and_then(|i| i.parse().ok());
    let url = values
        .iter()
        .filter(|v| v.value_type.eq_ignore_ascii_case(types::URL))
        .filter(|v| wanted.is_none_or(|i| v.index == i))
        .min_by_key(|v| v.index)
        .and_then(|v| std::str::from_utf8(&v.data).ok());
    match url {
        Some(u) if params.get("noredirect").is_none() => match HeaderValue::from_str(u) {
            Ok(loc) => (StatusCode::FOUND, [(header::LOCATION, loc)]).into_response(),
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        },
        _ => {
            let values: Vec<Value> = values.iter().map(value_to_json).collect();
            respond(
                StatusCode::OK,
                json!({ "responseCode": 1, "handle": handle, "values": values }),
                &params,
            )
        }
    }
}
