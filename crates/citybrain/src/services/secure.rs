//! Wires secure computation jobs between nodes (issue 8) into the running platform: the
//! `secure_computation` HTTP module.
//!
//! A job runs between two `citybrain serve` nodes only under an explicit governance record
//! that each node's tenant administrator approved on their own node:
//!
//! 1. `POST /api/v1/tenants/{t}/secure/jobs` records a job on a node (parties, purpose,
//!    columns, mode, receiver, caps, release minimum, expiry). Both nodes record the same
//!    governance document, so both compute the same digest (SHA-256 of its canonical JSON).
//! 2. `POST .../jobs/{id}/approve` is the administrator's explicit approval: it repeats the
//!    digest the administrator reviewed and uploads the node's input (the items, or an
//!    NGSI-LD query of the tenant evaluated then: `secure_input.rs`). Until then,
//!    and after the expiry, the node refuses to run the job.
//! 3. `POST .../jobs/{id}/run` (on one node, the initiator) names the peer node, the peer's
//!    tenant and an API key that the peer's administrator issued for it. The initiator then
//!    drives the ECDH-PSI state machines of `crates/psi`: every round trip is one
//!    `POST .../jobs/{id}/exchange` to the peer carrying concatenated protocol frames; the
//!    answer carries the peer's frames.
//!
//! Integrity: the frames are authenticated and chained per direction and bound to the session
//! and to the manifest, whose job id embeds the governance digest. A tampered, truncated,
//! replayed or reordered message therefore fails the session on the side that reads it,
//! which sends an abort frame to the other; both sides record `aborted` with the reason and
//! release nothing. The result (JSON) is stored only on the receiver, and only once the
//! protocol confirmed the whole transcript.
//!
//! Inputs live in this process's memory between approval and run (not in the database), so
//! a restarted node needs a new approval.

use super::Started;
use crate::platform::Platform;
use api_server::{ApiError, Caller, ErrorKind};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use identity::{Access, IdentityService, Module, Permission, Principal};
use psi::{JobManifest, PartySpec, PsiConfig, PsiMode, PsiOutput, PsiSession};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{
    AuditOutcome, SecureJobRecord, SecureJobStatus, SecureJobStore, SecureJobTransition,
    StoreError, StoreErrorKind, TenantId, TenantScope, UnixMillis,
};
use store_sqlite::SqliteStore;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Header carrying the governance digest the caller approved.
const GOVERNANCE_HEADER: &str = "x-citybrain-governance";
/// Header carrying the hex session id of a run.
const SESSION_HEADER: &str = "x-citybrain-session";
/// Response header with the answering side's protocol state.
const STATE_HEADER: &str = "x-citybrain-psi-state";
/// Items per protocol batch.
const BATCH: usize = 4096;
/// Batches a side pushes per round trip (bounds request and response bodies).
const BATCHES_PER_ROUND: usize = 8;
/// A run that has not finished by then is cancelled on both sides.
const RUN_TIMEOUT: Duration = Duration::from_secs(3600);

/// The governance document every administrator approves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Governance {
    /// Only `psi` (ECDH-PSI) runs between nodes today.
    kind: String,
    /// Why the job exists, as approved.
    purpose: String,
    /// The two data owners (party ids, e.g. node or organisation names) and their caps.
    parties: Vec<GovernanceParty>,
    /// The party that receives the result.
    receiver: String,
    /// `intersection`, `intersection-both`, `cardinality` or `intersection-sum` (the receiver
    /// holds a `u32` value per item and learns the size and the sum over the intersection).
    mode: String,
    /// Which columns of each party's data are matched (documentation of the approval).
    columns: Vec<String>,
    /// Nothing is released below this intersection size.
    min_release_size: u64,
    /// Unix milliseconds after which no run starts.
    expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GovernanceParty {
    id: String,
    max_set_size: u64,
}

impl Governance {
    fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }

    fn mode(&self) -> Result<PsiMode, String> {
        match self.mode.as_str() {
            "intersection" => Ok(PsiMode::Intersection),
            "intersection-both" => Ok(PsiMode::IntersectionBoth),
            "cardinality" => Ok(PsiMode::Cardinality),
            "intersection-sum" => Ok(PsiMode::IntersectionSum),
            other => Err(format!(
                "mode {other:?} is not supported between nodes \
                 (intersection, intersection-both, cardinality, intersection-sum)"
            )),
        }
    }

    /// The protocol manifest; its job id embeds the governance digest, so the protocol
    /// transcript is bound to everything the administrators approved.
    fn manifest(&self, job_id: &str) -> Result<JobManifest, String> {
        let [a, b] = self.parties.as_slice() else {
            return Err("a PSI job has exactly two parties".to_owned());
        };
        let manifest = JobManifest {
            job_id: format!("{job_id}#{}", self.digest()),
            parties: [
                PartySpec {
                    id: a.id.clone(),
                    max_set_size: a.max_set_size,
                },
                PartySpec {
                    id: b.id.clone(),
                    max_set_size: b.max_set_size,
                },
            ],
            receiver: self.receiver.clone(),
            mode: self.mode()?,
            min_release_size: self.min_release_size,
        };
        manifest.validate().map_err(|e| e.to_string())?;
        Ok(manifest)
    }

    fn check(&self, job_id: &str, local_party: &str) -> Result<(), String> {
        if self.kind != "psi" {
            return Err(format!("kind {:?} is not supported (psi)", self.kind));
        }
        if self.purpose.trim().is_empty() {
            return Err("purpose must not be empty".to_owned());
        }
        if self.columns.is_empty() {
            return Err("columns must name at least one column".to_owned());
        }
        if job_id.is_empty()
            || job_id.len() > 64
            || !job_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("job id must be 1-64 characters of [A-Za-z0-9_-]".to_owned());
        }
        let manifest = self.manifest(job_id)?;
        manifest
            .party_index(local_party)
            .map_err(|e| format!("local_party: {e}"))?;
        Ok(())
    }
}

/// One approved input, waiting for a run.
type InputKey = (TenantId, String);

/// A party's approved input: the items and, on the value holder of an `intersection-sum`
/// job (its receiver), one value per item.
struct JobInput {
    items: Vec<Vec<u8>>,
    values: Option<Vec<u32>>,
}

/// The responding side of a running job.
struct Responder {
    session_id: [u8; 16],
    session: Box<PsiSession>,
    items: Arc<JobInput>,
    next: usize,
    /// This side's hello, sent with the first answer.
    hello: Option<Vec<u8>>,
}

/// Approved inputs, by job, from approval to the end of the run.
type Inputs = Arc<Mutex<HashMap<InputKey, Arc<JobInput>>>>;
/// Responding sides of running jobs; `None` while an exchange is being processed.
type Responders = Arc<Mutex<HashMap<InputKey, Option<Responder>>>>;

#[derive(Clone)]
struct SecureState {
    store: SqliteStore,
    identity: Arc<IdentityService>,
    inputs: Inputs,
    responders: Responders,
    http: reqwest::Client,
    /// Evaluates inputs given as NGSI-LD queries (`secure_input`).
    broker: Arc<ngsi_broker::Broker>,
}

fn now() -> UnixMillis {
    UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    )
}

fn store_error(error: StoreError) -> ApiError {
    let kind = match error.kind() {
        StoreErrorKind::NotFound => ErrorKind::NotFound,
        StoreErrorKind::AlreadyExists | StoreErrorKind::InvalidInput => ErrorKind::Conflict,
        StoreErrorKind::Unavailable => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    ApiError::new(kind, error.message().to_owned())
}

fn conflict(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Conflict, detail)
}

impl SecureState {
    async fn scope(
        &self,
        caller: &Principal,
        tenant: &str,
        access: Access,
        what: &str,
    ) -> Result<TenantScope, ApiError> {
        let tenant = TenantId::new(tenant)?;
        Ok(self
            .identity
            .authorize(
                caller,
                &tenant,
                Permission::new(Module::SecureComputation, access),
                what,
            )
            .await?)
    }

    async fn job(&self, scope: &TenantScope, id: &str) -> Result<SecureJobRecord, ApiError> {
        self.store
            .secure_job(scope, id)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorKind::NotFound,
                    format!("no secure job {id:?} in this tenant"),
                )
            })
    }

    async fn audit(
        &self,
        scope: &TenantScope,
        actor: String,
        action: &str,
        outcome: AuditOutcome,
        id: &str,
        detail: serde_json::Value,
    ) {
        self.identity
            .audit(
                Some(scope.tenant()),
                actor,
                action,
                outcome,
                Some(format!("secure-job:{id}")),
                detail,
            )
            .await;
    }

    /// Records the end of a job (completed with its result, or aborted with the reason) and
    /// forgets its input.
    async fn finish(&self, scope: &TenantScope, id: &str, outcome: Result<Option<String>, String>) {
        let key = (scope.tenant().clone(), id.to_owned());
        if let Ok(mut inputs) = self.inputs.lock() {
            inputs.remove(&key);
        }
        let (to, error, result) = match &outcome {
            Ok(result) => (SecureJobStatus::Completed, None, result.clone()),
            Err(reason) => (SecureJobStatus::Aborted, Some(reason.clone()), None),
        };
        let change = SecureJobTransition {
            id: id.to_owned(),
            from: vec![SecureJobStatus::Approved, SecureJobStatus::Running],
            to,
            approved_by: None,
            error: error.clone(),
            result,
            at: now(),
        };
        if let Err(e) = self.store.transition_secure_job(scope, change).await {
            tracing::warn!(job = id, error = %e.message(), "could not record the end of a secure job");
        }
        let (action, audit_outcome, detail) = match error {
            None => (
                "secure.job.completed",
                AuditOutcome::Success,
                serde_json::json!({}),
            ),
            Some(reason) => (
                "secure.job.aborted",
                AuditOutcome::Failure,
                serde_json::json!({ "reason": reason }),
            ),
        };
        self.audit(
            scope,
            "system:secure".to_owned(),
            action,
            audit_outcome,
            id,
            detail,
        )
        .await;
    }
}

/// The released result of a party, as stored (JSON), or `None` if this party learns nothing.
fn release(output: &PsiOutput, items: &[Vec<u8>]) -> Option<String> {
    match output {
        PsiOutput::Intersection { positions } => {
            let matched: Vec<String> = positions
                .iter()
                .filter_map(|&p| items.get(p as usize))
                .map(|item| String::from_utf8_lossy(item).into_owned())
                .collect();
            Some(serde_json::json!({ "size": matched.len(), "intersection": matched }).to_string())
        }
        PsiOutput::Cardinality { size } => Some(serde_json::json!({ "size": size }).to_string()),
        PsiOutput::Sum { size, sum } => {
            Some(serde_json::json!({ "size": size, "sum": sum }).to_string())
        }
        PsiOutput::Completed => None,
    }
}

/// Splits a body into frames; a body that ends inside a frame is a truncated message.
fn split_frames(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut splitter = psi::wire::FrameSplitter::new();
    splitter.extend(body);
    let mut frames = Vec::new();
    loop {
        match splitter.next_frame() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => break,
            Err(e) => return Err(format!("malformed message: {e}")),
        }
    }
    if splitter.buffered() != 0 {
        return Err(format!(
            "truncated message: {} bytes of an incomplete frame",
            splitter.buffered()
        ));
    }
    Ok(frames)
}

/// Pushes up to [`BATCHES_PER_ROUND`] batches of local items while the session wants them.
fn push_some(
    session: &mut PsiSession,
    input: &JobInput,
    next: &mut usize,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), psi::PsiError> {
    let mut rounds = 0;
    let items = &input.items;
    while session.wants_items() && rounds < BATCHES_PER_ROUND {
        let end = (*next + session.batch_size()).min(items.len());
        out.extend(match &input.values {
            Some(values) => session.push_valued_items(&items[*next..end], &values[*next..end])?,
            None => session.push_items(&items[*next..end])?,
        });
        *next = end;
        rounds += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Handlers

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewJob {
    /// Job id, the same on both nodes.
    id: String,
    /// This node's party id in `governance.parties`.
    local_party: String,
    /// The governance document.
    governance: Governance,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Job {
    id: String,
    status: String,
    local_party: String,
    governance: serde_json::Value,
    governance_digest: String,
    expires_at: i64,
    created_by: String,
    created_at: i64,
    approved_by: Option<String>,
    approved_at: Option<i64>,
    error: Option<String>,
    /// Only on the receiver, only when completed.
    result: Option<serde_json::Value>,
}

impl From<SecureJobRecord> for Job {
    fn from(r: SecureJobRecord) -> Self {
        Self {
            id: r.id,
            status: r.status.as_str().to_owned(),
            local_party: r.local_party,
            governance: serde_json::from_str(&r.governance).unwrap_or_default(),
            governance_digest: r.governance_digest,
            expires_at: r.expires_at.0,
            created_by: r.created_by,
            created_at: r.created_at.0,
            approved_by: r.approved_by,
            approved_at: r.approved_at.map(|t| t.0),
            error: r.error,
            result: r.result.and_then(|s| serde_json::from_str(&s).ok()),
        }
    }
}

/// Record a secure-computation job and its governance (tenant administrators).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/secure/jobs", tag = "secure_computation",
    request_body = NewJob, security(("bearer" = [])),
    responses((status = 201, body = Job), (status = 400, body = api_server::ProblemDetails),
        (status = 409, body = api_server::ProblemDetails)))]
async fn create_job(
    State(state): State<SecureState>,
    Caller(caller): Caller,
    Path(tenant): Path<String>,
    body: Result<Json<NewJob>, JsonRejection>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let scope = state
        .scope(&caller, &tenant, Access::Admin, "secure.job.create")
        .await?;
    let Json(body) = body?;
    body.governance
        .check(&body.id, &body.local_party)
        .map_err(ApiError::bad_request)?;
    if body.governance.expires_at <= now().0 {
        return Err(ApiError::bad_request("expires_at is in the past"));
    }
    let at = now();
    let record = SecureJobRecord {
        id: body.id.clone(),
        governance: body.governance.canonical(),
        governance_digest: body.governance.digest(),
        local_party: body.local_party,
        expires_at: UnixMillis(body.governance.expires_at),
        status: SecureJobStatus::Proposed,
        created_by: caller.actor(),
        created_at: at,
        approved_by: None,
        approved_at: None,
        error: None,
        result: None,
        updated_at: at,
    };
    state
        .store
        .create_secure_job(&scope, record.clone())
        .await
        .map_err(store_error)?;
    state
        .audit(
            &scope,
            caller.actor(),
            "secure.job.proposed",
            AuditOutcome::Success,
            &body.id,
            serde_json::json!({ "governance_digest": record.governance_digest }),
        )
        .await;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// The tenant's secure-computation jobs.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/secure/jobs", tag = "secure_computation",
    security(("bearer" = [])), responses((status = 200, body = Vec<Job>)))]
async fn list_jobs(
    State(state): State<SecureState>,
    Caller(caller): Caller,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<Job>>, ApiError> {
    let scope = state
        .scope(&caller, &tenant, Access::Read, "secure.job.list")
        .await?;
    let jobs = state.store.secure_jobs(&scope).await.map_err(store_error)?;
    Ok(Json(jobs.into_iter().map(Job::from).collect()))
}

/// One job, with its result on the receiver once completed.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/secure/jobs/{id}", tag = "secure_computation",
    security(("bearer" = [])), responses((status = 200, body = Job), (status = 404, body = api_server::ProblemDetails)))]
async fn get_job(
    State(state): State<SecureState>,
    Caller(caller): Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<Job>, ApiError> {
    let scope = state
        .scope(&caller, &tenant, Access::Read, "secure.job.read")
        .await?;
    Ok(Json(state.job(&scope, &id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approval {
    /// The digest of the governance document the administrator reviewed.
    governance_digest: String,
    /// This node's input for the job (the uploaded column values).
    #[serde(default)]
    items: Option<Vec<String>>,
    /// Or: an NGSI-LD query of this tenant whose attribute values are the input.
    #[serde(default)]
    query: Option<super::secure_input::NgsiInput>,
    /// One value per item, on the receiver (value holder) of an `intersection-sum` job only.
    #[serde(default)]
    values: Option<Vec<u32>>,
}

/// Approve a job (tenant administrators) and upload this node's input for it.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/secure/jobs/{id}/approve", tag = "secure_computation",
    request_body = Approval, security(("bearer" = [])),
    responses((status = 200, body = Job), (status = 400, body = api_server::ProblemDetails),
        (status = 409, body = api_server::ProblemDetails)))]
async fn approve_job(
    State(state): State<SecureState>,
    Caller(caller): Caller,
    Path((tenant, id)): Path<(String, String)>,
    body: Result<Json<Approval>, JsonRejection>,
) -> Result<Json<Job>, ApiError> {
    let scope = state
        .scope(&caller, &tenant, Access::Admin, "secure.job.approve")
        .await?;
    let Json(body) = body?;
    let job = state.job(&scope, &id).await?;
    if body.governance_digest != job.governance_digest {
        return Err(conflict(format!(
            "the approved digest {} is not the job's governance digest {}",
            body.governance_digest, job.governance_digest
        )));
    }
    if job.expires_at.0 <= now().0 {
        return Err(conflict("the job has expired"));
    }
    let governance: Governance = serde_json::from_str(&job.governance)
        .map_err(|e| ApiError::internal(format!("stored governance is unreadable: {e}")))?;
    let manifest = governance.manifest(&id).map_err(ApiError::bad_request)?;
    let index = manifest
        .party_index(&job.local_party)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (items, source) = match (body.items, &body.query) {
        (Some(items), None) => (items, serde_json::json!("upload")),
        (None, Some(query)) => (
            super::secure_input::items(&state.broker, &scope, query).await?,
            serde_json::json!({ "ngsi_query": {
                "type": query.entity_type, "attribute": query.attribute, "q": query.q,
            } }),
        ),
        _ => {
            return Err(ApiError::bad_request(
                "give the input either as items or as an NGSI-LD query, exactly one",
            ));
        }
    };
    let holds_values =
        manifest.mode == PsiMode::IntersectionSum && manifest.receiver == job.local_party;
    let values = match (holds_values, body.values) {
        (true, Some(values)) if values.len() == items.len() => Some(values),
        (true, Some(values)) => {
            return Err(ApiError::bad_request(format!(
                "{} values for {} items: give one value per item",
                values.len(),
                items.len()
            )));
        }
        (true, None) => {
            return Err(ApiError::bad_request(
                "this node is the value holder of an intersection-sum job: give values",
            ));
        }
        (false, Some(_)) => {
            return Err(ApiError::bad_request(
                "values are given only by the receiver of an intersection-sum job",
            ));
        }
        (false, None) => None,
    };
    manifest
        .check_size(index, items.len() as u64)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let approved = state
        .store
        .transition_secure_job(
            &scope,
            SecureJobTransition {
                id: id.clone(),
                from: vec![SecureJobStatus::Proposed],
                to: SecureJobStatus::Approved,
                approved_by: Some(caller.actor()),
                error: None,
                result: None,
                at: now(),
            },
        )
        .await
        .map_err(store_error)?;
    let items: Vec<Vec<u8>> = items.into_iter().map(String::into_bytes).collect();
    let count = items.len();
    if let Ok(mut inputs) = state.inputs.lock() {
        inputs.insert(
            (scope.tenant().clone(), id.clone()),
            Arc::new(JobInput { items, values }),
        );
    }
    state
        .audit(
            &scope,
            caller.actor(),
            "secure.job.approved",
            AuditOutcome::Success,
            &id,
            serde_json::json!({
                "governance_digest": approved.governance_digest,
                "input_items": count,
                "input": source,
            }),
        )
        .await;
    Ok(Json(approved.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRequest {
    /// Base URL of the peer node (e.g. `https://node-b.example:8080`).
    peer_url: String,
    /// The peer's tenant that holds its copy of the job.
    peer_tenant: String,
    /// An API key the peer's administrator issued for this job (never stored or logged).
    peer_api_key: String,
}

impl std::fmt::Debug for RunRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRequest")
            .field("peer_url", &self.peer_url)
            .field("peer_tenant", &self.peer_tenant)
            .finish_non_exhaustive()
    }
}

/// Start an approved job against the peer node; poll the job for the outcome.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/secure/jobs/{id}/run", tag = "secure_computation",
    request_body = RunRequest, security(("bearer" = [])),
    responses((status = 202, body = Job), (status = 409, body = api_server::ProblemDetails)))]
async fn run_job(
    State(state): State<SecureState>,
    Caller(caller): Caller,
    Path((tenant, id)): Path<(String, String)>,
    body: Result<Json<RunRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    let scope = state
        .scope(&caller, &tenant, Access::Admin, "secure.job.run")
        .await?;
    let Json(body) = body?;
    let job = state.job(&scope, &id).await?;
    if job.status != SecureJobStatus::Approved {
        return Err(conflict(format!(
            "the job is {}; only an approved job runs",
            job.status.as_str()
        )));
    }
    if job.expires_at.0 <= now().0 {
        return Err(conflict("the job has expired"));
    }
    let peer_tenant = TenantId::new(body.peer_tenant.clone())?;
    let base = body.peer_url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(ApiError::bad_request("peer_url must be an http(s) URL"));
    }
    let url = format!("{base}/api/v1/tenants/{peer_tenant}/secure/jobs/{id}/exchange");
    let items = state
        .inputs
        .lock()
        .ok()
        .and_then(|inputs| inputs.get(&(scope.tenant().clone(), id.clone())).cloned())
        .ok_or_else(|| conflict("this node holds no input for the job; approve it again"))?;
    let mut session_id = [0u8; 16];
    session_id.copy_from_slice(&identity::secrets::random_bytes(16));
    // Refused before anything is sent if the input breaks the governance.
    let (session, hello) = open_session(&job, &id, items.items.len(), session_id)?;
    let running = state
        .store
        .transition_secure_job(
            &scope,
            SecureJobTransition {
                id: id.clone(),
                from: vec![SecureJobStatus::Approved],
                to: SecureJobStatus::Running,
                approved_by: None,
                error: None,
                result: None,
                at: now(),
            },
        )
        .await
        .map_err(store_error)?;
    state
        .audit(
            &scope,
            caller.actor(),
            "secure.job.started",
            AuditOutcome::Success,
            &id,
            serde_json::json!({ "peer_url": base, "peer_tenant": peer_tenant.as_str() }),
        )
        .await;
    let initiator = Initiator {
        state: state.clone(),
        url,
        api_key: body.peer_api_key,
        governance_digest: job.governance_digest.clone(),
        session_id,
        items,
    };
    let session = Box::new(session);
    // Boxed: the protocol state is large and must not live on a worker thread's stack.
    tokio::spawn(Box::pin(async move {
        let outcome = match tokio::time::timeout(
            RUN_TIMEOUT,
            Box::pin(initiator.drive(session, hello)),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(_) => Err("the run timed out".to_owned()),
        };
        if let Err(reason) = &outcome {
            tracing::warn!(job = %id, %reason, "secure job aborted");
        }
        state.finish(&scope, &id, outcome).await;
    }));
    Ok((StatusCode::ACCEPTED, Json(running.into())))
}

/// The initiating side of a run.
struct Initiator {
    state: SecureState,
    url: String,
    api_key: String,
    governance_digest: String,
    session_id: [u8; 16],
    items: Arc<JobInput>,
}

/// What one round trip brought back.
struct Answer {
    frames: Vec<Vec<u8>>,
    peer_state: String,
}

impl Initiator {
    async fn exchange(&self, frames: &[Vec<u8>]) -> Result<Answer, String> {
        let body: Vec<u8> = frames.concat();
        let response = self
            .state
            .http
            .post(&self.url)
            .header("x-api-key", &self.api_key)
            .header(GOVERNANCE_HEADER, &self.governance_digest)
            .header(SESSION_HEADER, hex::encode(self.session_id))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("cannot reach the peer node: {e}"))?;
        let status = response.status();
        let peer_state = response
            .headers()
            .get(STATE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading the peer's answer: {e}"))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(format!(
                "the peer node refused the exchange ({status}): {detail}"
            ));
        }
        Ok(Answer {
            frames: split_frames(&bytes)?,
            peer_state,
        })
    }

    /// Tells the peer that this side failed, best effort.
    async fn send_abort(&self, session: &mut Box<PsiSession>) {
        if let Some(frame) = session.take_abort_frame() {
            let _ = self.exchange(&[frame]).await;
        }
    }

    async fn drive(
        self,
        session: Box<PsiSession>,
        hello: Vec<u8>,
    ) -> Result<Option<String>, String> {
        let mut session = Some(session);
        let mut outgoing = vec![hello];
        let mut next = 0usize;
        let mut idle = 0u32;
        loop {
            // Push local items (CPU-heavy: off the async threads).
            let (s, pushed) = {
                let mut s = session.take().ok_or("session lost")?;
                let items = Arc::clone(&self.items);
                let mut n = next;
                tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    let r = push_some(&mut s, &items, &mut n, &mut out);
                    (s, r.map(|()| (out, n)))
                })
                .await
                .map_err(|e| format!("protocol task failed: {e}"))?
            };
            session = Some(s);
            match pushed {
                Ok((frames, n)) => {
                    next = n;
                    outgoing.extend(frames);
                }
                Err(e) => {
                    let mut s = session.take().ok_or("session lost")?;
                    self.send_abort(&mut s).await;
                    return Err(e.to_string());
                }
            }
            let sent_any = !outgoing.is_empty();
            let answer = match self.exchange(&outgoing).await {
                Ok(answer) => answer,
                Err(reason) => {
                    // Unreachable, refused or a truncated answer: cancel and tell the peer.
                    let mut s = session.take().ok_or("session lost")?;
                    if let Some(frame) = s.cancel() {
                        let _ = self.exchange(&[frame]).await;
                    }
                    return Err(reason);
                }
            };
            outgoing.clear();
            let received_any = !answer.frames.is_empty();
            let (s, handled) = {
                let mut s = session.take().ok_or("session lost")?;
                tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    for frame in &answer.frames {
                        match s.handle_frame(frame) {
                            Ok(frames) => out.extend(frames),
                            Err(e) => return (s, Err(e)),
                        }
                    }
                    (s, Ok(out))
                })
                .await
                .map_err(|e| format!("protocol task failed: {e}"))?
            };
            session = Some(s);
            match handled {
                Ok(frames) => outgoing.extend(frames),
                Err(e) => {
                    let mut s = session.take().ok_or("session lost")?;
                    if !matches!(e, psi::PsiError::PeerAborted(_)) {
                        self.send_abort(&mut s).await;
                    }
                    return Err(e.to_string());
                }
            }
            let s = session.as_ref().ok_or("session lost")?;
            if answer.peer_state == "failed" {
                return Err("the peer node aborted the job".to_owned());
            }
            if s.is_done() && outgoing.is_empty() && answer.peer_state == "done" {
                let output = s.output().ok_or("finished without an output")?;
                return Ok(release(output, &self.items.items));
            }
            if !sent_any && !received_any && outgoing.is_empty() {
                idle += 1;
                tokio::time::sleep(Duration::from_millis(u64::from(idle.min(50)) * 2)).await;
            } else {
                idle = 0;
            }
        }
    }
}

fn frames_response(state: &str, frames: Vec<Vec<u8>>) -> Response {
    let mut response = (StatusCode::OK, frames.concat()).into_response();
    response.headers_mut().insert(
        STATE_HEADER,
        HeaderValue::from_static(match state {
            "done" => "done",
            "failed" => "failed",
            _ => "running",
        }),
    );
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request(format!("the {name} header is required")))
}

/// Protocol messages from the initiating peer node (called by nodes, with an API key the
/// administrator of this node issued). The body and the answer are concatenated PSI frames.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/secure/jobs/{id}/exchange", tag = "secure_computation",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "concatenated PSI frames"),
    security(("bearer" = [])),
    responses((status = 200, description = "the answering frames"), (status = 409, body = api_server::ProblemDetails)))]
async fn exchange(
    State(state): State<SecureState>,
    Caller(caller): Caller,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let scope = state
        .scope(&caller, &tenant, Access::Write, "secure.job.exchange")
        .await?;
    let digest = header(&headers, GOVERNANCE_HEADER)?.to_owned();
    let session_hex = header(&headers, SESSION_HEADER)?;
    let mut session_id = [0u8; 16];
    hex::decode_to_slice(session_hex, &mut session_id)
        .map_err(|_| ApiError::bad_request("the session header must be 32 hex digits"))?;
    let key = (scope.tenant().clone(), id.clone());

    // Take this job's responder out of the map (or start it on the first message).
    let existing = {
        let mut responders = state
            .responders
            .lock()
            .map_err(|_| ApiError::internal("responder table poisoned"))?;
        match responders.get_mut(&key) {
            Some(slot) => match slot.take() {
                Some(r) => Some(r),
                None => return Err(conflict("another exchange of this job is in progress")),
            },
            None => None,
        }
    };
    let responder = match existing {
        Some(r) if r.session_id == session_id => r,
        Some(r) => {
            // Put it back untouched: a message from another session does not end this one.
            if let Ok(mut responders) = state.responders.lock() {
                responders.insert(key, Some(r));
            }
            return Err(conflict("the job is running in another session"));
        }
        None => {
            Box::pin(start_responder(
                &state, &scope, &id, &digest, &caller, session_id,
            ))
            .await?
        }
    };
    // Reserve the slot while this exchange runs.
    if let Ok(mut responders) = state.responders.lock() {
        responders.insert(key.clone(), None);
    }
    let (responder, outcome) = tokio::task::spawn_blocking(move || respond(responder, &body))
        .await
        .map_err(|e| ApiError::internal(format!("protocol task failed: {e}")))?;
    match outcome {
        Step::Running(frames) => {
            if let Ok(mut responders) = state.responders.lock() {
                responders.insert(key, Some(responder));
            }
            Ok(frames_response("running", frames))
        }
        Step::Done(frames) => {
            if let Ok(mut responders) = state.responders.lock() {
                responders.remove(&key);
            }
            let result = responder
                .session
                .output()
                .and_then(|output| release(output, &responder.items.items));
            state.finish(&scope, &id, Ok(result)).await;
            Ok(frames_response("done", frames))
        }
        Step::Failed(reason, frames) => {
            if let Ok(mut responders) = state.responders.lock() {
                responders.remove(&key);
            }
            tracing::warn!(job = %id, %reason, "secure job aborted");
            state.finish(&scope, &id, Err(reason)).await;
            Ok(frames_response("failed", frames))
        }
    }
}

/// This node's PSI session for `job` under its stored governance, with a fresh seed; refused
/// (before anything is sent) if the input breaks the governance.
fn open_session(
    job: &SecureJobRecord,
    id: &str,
    set_size: usize,
    session_id: [u8; 16],
) -> Result<(PsiSession, Vec<u8>), ApiError> {
    let governance: Governance = serde_json::from_str(&job.governance)
        .map_err(|e| ApiError::internal(format!("stored governance is unreadable: {e}")))?;
    let manifest = governance.manifest(id).map_err(ApiError::bad_request)?;
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&identity::secrets::random_bytes(32));
    let config = PsiConfig {
        manifest,
        local_party: job.local_party.clone(),
        session_id,
        set_size: set_size as u64,
        seed,
        batch_size: BATCH,
    };
    PsiSession::new(config).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn start_responder(
    state: &SecureState,
    scope: &TenantScope,
    id: &str,
    digest: &str,
    caller: &Principal,
    session_id: [u8; 16],
) -> Result<Responder, ApiError> {
    let job = state.job(scope, id).await?;
    if job.status != SecureJobStatus::Approved {
        return Err(conflict(format!(
            "the job is {} on this node; it runs only once approved by this node's administrator",
            job.status.as_str()
        )));
    }
    if job.expires_at.0 <= now().0 {
        return Err(conflict("the job has expired"));
    }
    if digest != job.governance_digest {
        return Err(conflict(format!(
            "governance mismatch: the peer ran {digest}, this node approved {}",
            job.governance_digest
        )));
    }
    let items = state
        .inputs
        .lock()
        .ok()
        .and_then(|inputs| {
            inputs
                .get(&(scope.tenant().clone(), id.to_owned()))
                .cloned()
        })
        .ok_or_else(|| conflict("this node holds no input for the job; approve it again"))?;
    let (session, hello) = open_session(&job, id, items.items.len(), session_id)?;
    state
        .store
        .transition_secure_job(
            scope,
            SecureJobTransition {
                id: id.to_owned(),
                from: vec![SecureJobStatus::Approved],
                to: SecureJobStatus::Running,
                approved_by: None,
                error: None,
                result: None,
                at: now(),
            },
        )
        .await
        .map_err(store_error)?;
    state
        .audit(
            scope,
            caller.actor(),
            "secure.job.started",
            AuditOutcome::Success,
            id,
            serde_json::json!({ "as": "responder" }),
        )
        .await;
    Ok(Responder {
        session_id,
        session: Box::new(session),
        items,
        next: 0,
        hello: Some(hello),
    })
}

enum Step {
    Running(Vec<Vec<u8>>),
    Done(Vec<Vec<u8>>),
    Failed(String, Vec<Vec<u8>>),
}

fn respond(mut r: Responder, body: &[u8]) -> (Responder, Step) {
    let mut out: Vec<Vec<u8>> = r.hello.take().into_iter().collect();
    let fail = |r: &mut Responder, reason: String, mut out: Vec<Vec<u8>>| {
        out.clear();
        if let Some(frame) = r.session.take_abort_frame() {
            out.push(frame);
        }
        Step::Failed(reason, out)
    };
    let frames = match split_frames(body) {
        Ok(frames) => frames,
        Err(reason) => {
            let abort: Vec<Vec<u8>> = r.session.cancel().into_iter().collect();
            return (r, Step::Failed(reason, abort));
        }
    };
    for frame in &frames {
        match r.session.handle_frame(frame) {
            Ok(frames) => out.extend(frames),
            Err(e) => {
                let step = fail(&mut r, e.to_string(), out);
                return (r, step);
            }
        }
    }
    let items = Arc::clone(&r.items);
    let mut next = r.next;
    if let Err(e) = push_some(&mut r.session, &items, &mut next, &mut out) {
        let step = fail(&mut r, e.to_string(), out);
        return (r, step);
    }
    r.next = next;
    if r.session.is_done() {
        (r, Step::Done(out))
    } else {
        (r, Step::Running(out))
    }
}

/// Starts this area's services: the `secure_computation` HTTP module.
pub(crate) async fn start(platform: &Platform) -> anyhow::Result<Started> {
    // Peers may be https; the client's TLS needs a process-wide provider (another module may
    // have installed it already, which is fine).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let state = SecureState {
        store: platform.store.clone(),
        identity: Arc::clone(&platform.identity),
        inputs: Arc::default(),
        responders: Arc::default(),
        broker: super::ngsi::broker(platform)?,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()?,
    };
    let protected = OpenApiRouter::new()
        .routes(routes!(create_job, list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(approve_job))
        .routes(routes!(run_job))
        .routes(routes!(exchange))
        .with_state(state);
    Ok(Started {
        modules: vec![api_server::Module {
            public: OpenApiRouter::new(),
            protected,
        }],
        listening: Vec::new(),
    })
}
