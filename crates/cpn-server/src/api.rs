//! The `/cpn/v1` HTTP API: every route is behind the platform's authentication layer and
//! acts in one tenant (the `X-Tenant` header, else the caller's default tenant), with the
//! `compute` module's permissions: `read` to list and inspect, `write` to submit and cancel,
//! `admin` to register sites and set quotas.

use std::sync::Arc;

use api_server::{ApiError, Caller, ErrorKind, Module};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use identity::{Access, AuthError, IdentityService, Permission, Principal};
use serde::{Deserialize, Serialize};
use store::{QuotaRecord, TenantId, TenantScope};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::coordinator::{Coordinator, CpnError, JobRequest, JobView, SiteRegistration, SiteView};

/// The header naming the tenant a request acts in.
pub const TENANT_HEADER: &str = "x-tenant";

#[derive(Clone)]
struct Api {
    coordinator: Coordinator,
    identity: Arc<IdentityService>,
}

impl From<CpnError> for ApiErrorWrap {
    fn from(e: CpnError) -> Self {
        let kind = match &e {
            CpnError::Invalid(_) => ErrorKind::BadRequest,
            CpnError::NotFound(_) => ErrorKind::NotFound,
            CpnError::Conflict(_) => ErrorKind::Conflict,
            CpnError::Quota(_) => ErrorKind::Forbidden,
            CpnError::Store(s) if s.kind() == store::StoreErrorKind::Unavailable => {
                ErrorKind::Unavailable
            }
            CpnError::Store(s) => return ApiErrorWrap(ApiError::internal(s.to_string())),
        };
        ApiErrorWrap(ApiError::new(kind, e.to_string()))
    }
}

/// `ApiError` plus conversions from this crate's errors.
struct ApiErrorWrap(ApiError);

impl From<ApiError> for ApiErrorWrap {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}
impl From<AuthError> for ApiErrorWrap {
    fn from(e: AuthError) -> Self {
        Self(e.into())
    }
}
impl From<JsonRejection> for ApiErrorWrap {
    fn from(e: JsonRejection) -> Self {
        Self(e.into())
    }
}
impl IntoResponse for ApiErrorWrap {
    fn into_response(self) -> axum::response::Response {
        self.0.into_response()
    }
}

type Result<T> = std::result::Result<T, ApiErrorWrap>;

impl Api {
    async fn scope(
        &self,
        caller: &Principal,
        headers: &HeaderMap,
        access: Access,
        what: &str,
    ) -> Result<TenantScope> {
        let named = match headers.get(TENANT_HEADER) {
            None => None,
            Some(v) => {
                let text = v
                    .to_str()
                    .map_err(|_| ApiError::bad_request("the X-Tenant header is not ASCII"))?;
                Some(TenantId::new(text).map_err(ApiError::from)?)
            }
        };
        let tenant = caller
            .resolve_tenant(named.as_ref())
            .map_err(AuthError::from)?;
        Ok(self
            .identity
            .authorize(
                caller,
                &tenant,
                Permission::new(identity::Module::Compute, access),
                what,
            )
            .await?)
    }
}

/// The `/cpn/v1` routes, bound to `coordinator`.
pub fn module(coordinator: Coordinator, identity: Arc<IdentityService>) -> Module {
    let api = Api {
        coordinator,
        identity,
    };
    let protected = OpenApiRouter::new()
        .routes(routes!(list_sites, register_site))
        .routes(routes!(get_site))
        .routes(routes!(list_jobs, submit_job))
        .routes(routes!(get_job))
        .routes(routes!(job_logs))
        .routes(routes!(job_events))
        .routes(routes!(cancel_job))
        .routes(routes!(get_quota, set_quota))
        .routes(routes!(agent_heartbeat))
        .routes(routes!(agent_log))
        .with_state(api);
    Module {
        public: OpenApiRouter::new(),
        protected,
    }
}

/// The alliance's site catalogue with live free capacity and CATS adverts.
#[utoipa::path(get, path = "/cpn/v1/sites", tag = "compute", security(("bearer" = [])),
    responses((status = 200, body = Vec<SiteView>)))]
async fn list_sites(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
) -> Result<Json<Vec<SiteView>>> {
    api.scope(&caller, &headers, Access::Read, "cpn.sites.list")
        .await?;
    Ok(Json(api.coordinator.sites()))
}

/// Register a member site (owned by the tenant) and start its agent.
#[utoipa::path(post, path = "/cpn/v1/sites", tag = "compute", security(("bearer" = [])),
    request_body = SiteRegistration,
    responses((status = 201, body = SiteView), (status = 400, body = api_server::ProblemDetails),
        (status = 409, body = api_server::ProblemDetails)))]
async fn register_site(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: std::result::Result<Json<SiteRegistration>, JsonRejection>,
) -> Result<(StatusCode, Json<SiteView>)> {
    let scope = api
        .scope(&caller, &headers, Access::Admin, "cpn.sites.register")
        .await?;
    let Json(body) = body?;
    let view = api.coordinator.register_site(&scope, body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One site.
#[utoipa::path(get, path = "/cpn/v1/sites/{id}", tag = "compute", security(("bearer" = [])),
    responses((status = 200, body = SiteView), (status = 404, body = api_server::ProblemDetails)))]
async fn get_site(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SiteView>> {
    api.scope(&caller, &headers, Access::Read, "cpn.sites.get")
        .await?;
    api.coordinator
        .site(&id)
        .map(Json)
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no site {id}")).into())
}

#[derive(Debug, Deserialize, IntoParams)]
struct ListQuery {
    /// Most jobs returned (default 100, at most 1000).
    limit: Option<usize>,
}

/// The tenant's jobs, newest first.
#[utoipa::path(get, path = "/cpn/v1/jobs", tag = "compute", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = Vec<JobView>)))]
async fn list_jobs(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<JobView>>> {
    let scope = api
        .scope(&caller, &headers, Access::Read, "cpn.jobs.list")
        .await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(api.coordinator.jobs(&scope, limit).await?))
}

/// Submit a job. It is validated at once (unknown resource, impossible deadline, zone no site
/// offers, negative sizes, quota) and either refused with the reason or accepted and queued.
#[utoipa::path(post, path = "/cpn/v1/jobs", tag = "compute", security(("bearer" = [])),
    request_body = JobRequest,
    responses((status = 201, body = JobView), (status = 400, body = api_server::ProblemDetails),
        (status = 403, body = api_server::ProblemDetails)))]
async fn submit_job(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: std::result::Result<Json<JobRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<JobView>)> {
    let scope = api
        .scope(&caller, &headers, Access::Write, "cpn.jobs.submit")
        .await?;
    let Json(body) = body?;
    let view = api.coordinator.submit(&scope, body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// One job's status.
#[utoipa::path(get, path = "/cpn/v1/jobs/{id}", tag = "compute", security(("bearer" = [])),
    responses((status = 200, body = JobView), (status = 404, body = api_server::ProblemDetails)))]
async fn get_job(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<JobView>> {
    let scope = api
        .scope(&caller, &headers, Access::Read, "cpn.jobs.get")
        .await?;
    Ok(Json(api.coordinator.job(&scope, &id).await?))
}

/// A job's combined stdout and stderr so far (text).
#[utoipa::path(get, path = "/cpn/v1/jobs/{id}/logs", tag = "compute", security(("bearer" = [])),
    responses((status = 200, body = String, content_type = "text/plain"), (status = 404, body = api_server::ProblemDetails)))]
async fn job_logs(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let scope = api
        .scope(&caller, &headers, Access::Read, "cpn.jobs.logs")
        .await?;
    let text = api.coordinator.logs(&scope, &id).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

#[derive(Debug, Serialize, ToSchema)]
struct EventView {
    seq: i64,
    at: i64,
    kind: String,
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// A job's history: submitted, placed (site, cost), running, lost, retried, ended.
#[utoipa::path(get, path = "/cpn/v1/jobs/{id}/events", tag = "compute", security(("bearer" = [])),
    responses((status = 200, body = Vec<EventView>), (status = 404, body = api_server::ProblemDetails)))]
async fn job_events(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Vec<EventView>>> {
    let scope = api
        .scope(&caller, &headers, Access::Read, "cpn.jobs.events")
        .await?;
    Ok(Json(
        api.coordinator
            .events(&scope, &id)
            .await?
            .into_iter()
            .map(|e| EventView {
                seq: e.seq,
                at: e.at.0,
                kind: e.kind,
                detail: e.detail,
            })
            .collect(),
    ))
}

/// Cancel a job (a waiting job ends at once; a running one when its engine confirms).
#[utoipa::path(post, path = "/cpn/v1/jobs/{id}/cancel", tag = "compute", security(("bearer" = [])),
    responses((status = 202, body = JobView), (status = 404, body = api_server::ProblemDetails)))]
async fn cancel_job(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobView>)> {
    let scope = api
        .scope(&caller, &headers, Access::Write, "cpn.jobs.cancel")
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(api.coordinator.cancel(&scope, &id).await?),
    ))
}

/// A tenant's limits on active jobs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Quota {
    max_active_jobs: u32,
    max_cpu_cores: f64,
    max_gpus: f64,
}

/// The tenant's quota.
#[utoipa::path(get, path = "/cpn/v1/quota", tag = "compute", security(("bearer" = [])),
    responses((status = 200, body = Quota)))]
async fn get_quota(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
) -> Result<Json<Quota>> {
    let scope = api
        .scope(&caller, &headers, Access::Read, "cpn.quota.get")
        .await?;
    let q = api.coordinator.quota(&scope).await?;
    Ok(Json(Quota {
        max_active_jobs: q.max_active_jobs,
        max_cpu_cores: q.max_cpu_cores,
        max_gpus: q.max_gpus,
    }))
}

/// Set the tenant's quota (compute admins).
#[utoipa::path(put, path = "/cpn/v1/quota", tag = "compute", security(("bearer" = [])),
    request_body = Quota, responses((status = 200, body = Quota), (status = 400, body = api_server::ProblemDetails)))]
async fn set_quota(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: std::result::Result<Json<Quota>, JsonRejection>,
) -> Result<Json<Quota>> {
    let scope = api
        .scope(&caller, &headers, Access::Admin, "cpn.quota.set")
        .await?;
    let Json(q) = body?;
    api.coordinator
        .set_quota(
            &scope,
            QuotaRecord {
                max_active_jobs: q.max_active_jobs,
                max_cpu_cores: q.max_cpu_cores,
                max_gpus: q.max_gpus,
            },
        )
        .await?;
    Ok(Json(q))
}

/// A remote site agent's heartbeat (protocol in `cpn_server::remote`): capacity and job reports in,
/// assignments, cancellations and jobs to forget out. Needs `compute` write in the site's owner
/// tenant.
#[utoipa::path(post, path = "/cpn/v1/agent/heartbeat", tag = "compute", security(("bearer" = [])),
    request_body = crate::remote::AgentHeartbeat,
    responses((status = 200, body = crate::remote::AgentReply), (status = 400, body = api_server::ProblemDetails),
        (status = 404, body = api_server::ProblemDetails)))]
async fn agent_heartbeat(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: std::result::Result<Json<crate::remote::AgentHeartbeat>, JsonRejection>,
) -> Result<Json<crate::remote::AgentReply>> {
    let scope = api
        .scope(&caller, &headers, Access::Write, "cpn.agent.heartbeat")
        .await?;
    let Json(beat) = body?;
    Ok(Json(api.coordinator.agent_heartbeat(&scope, beat).await?))
}

/// A remote site agent uploads the output so far of a job it runs (text, the last MiB is kept).
#[utoipa::path(put, path = "/cpn/v1/agent/sites/{site}/jobs/{job}/log", tag = "compute",
    security(("bearer" = [])), request_body(content = String, content_type = "text/plain"),
    responses((status = 204), (status = 400, body = api_server::ProblemDetails),
        (status = 404, body = api_server::ProblemDetails)))]
async fn agent_log(
    State(api): State<Api>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path((site, job)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<StatusCode> {
    let scope = api
        .scope(&caller, &headers, Access::Write, "cpn.agent.log")
        .await?;
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("the log is not UTF-8 text"))?;
    api.coordinator.agent_log(&scope, &site, &job, text).await?;
    Ok(StatusCode::NO_CONTENT)
}
