//! The node inside the platform: persistent identifiers for the platform's own data, minted
//! through the unified user system, and every administrative operation on the node reported
//! to the platform's hash-chained audit log.
//!
//! - `POST /api/v1/tenants/{tenant}/identifiers` mints a handle for an NGSI-LD entity of the
//!   tenant (its URL value points at the entity under `/ngsi-ld/v1/entities/`) or for a data set
//!   (its URL value is the data set's address). Callers need `identifiers:write` (and
//!   `data:read` for an entity, which must exist in the tenant). Minting is idempotent: the
//!   suffix is derived from the tenant and the target, so minting the same entity twice answers
//!   the same handle.
//! - `GET`/`DELETE /api/v1/tenants/{tenant}/identifiers/{prefix}/{suffix}` read and withdraw
//!   one; a handle minted for another tenant is not found.
//! - The handle is created through [`HandleNode::create_handle`] as the prefix administrator,
//!   so the one authorization function and the durable store apply as on every other path.
//!   Which tenant owns a handle is kept in a value readable by administrators only
//!   (permissions `1100`), so public resolution never reveals it.
//! - [`audit_sink`] forwards the node's [`AdminEvent`]s (native, REST and minting paths) to
//!   the identity service's audit log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use api_server::{ApiError, Caller, ErrorKind, Module};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use handle_proto::{HandleValue, ResponseCode, ValuePermissions, ValueReference};
use identity::{Access, IdentityService, Permission, Principal};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use store::{AuditOutcome, NgsiStore, TenantId, TenantScope};
use tokio::sync::mpsc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::node::{AdminEvent, AuditSink, HandleNode, OpError};

/// Value type holding the NGSI-LD entity id a handle was minted for.
pub const TYPE_ENTITY: &str = "NGSI-LD-ENTITY";
/// Value type holding the data set name a handle was minted for.
pub const TYPE_DATASET: &str = "CITYBRAIN-DATASET";
/// Value type holding the owning tenant (administrators only).
pub const TYPE_TENANT: &str = "CITYBRAIN-TENANT";

/// What is escaped when an entity id becomes a path segment: everything but unreserved
/// characters and `:` (allowed in a segment, and in every URN).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

const INDEX_URL: u32 = 1;
const INDEX_TARGET: u32 = 2;
const INDEX_TENANT: u32 = 3;

/// How identifiers are minted.
#[derive(Debug, Clone)]
pub struct MintConfig {
    /// The prefix new handles are minted under (homed on this node).
    pub prefix: String,
    /// The base URL clients reach the platform at, without a trailing slash.
    pub public_url: String,
    /// The administrator the platform acts as on the node (`300:<prefix>/ADMIN`).
    pub minter: ValueReference,
}

/// Mints and manages identifiers for the platform's entities and data sets.
pub struct Identifiers {
    node: Arc<HandleNode>,
    identity: Arc<IdentityService>,
    entities: Arc<dyn NgsiStore>,
    config: MintConfig,
}

/// What to mint an identifier for: exactly one of `entity` and `dataset`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintRequest {
    /// An NGSI-LD entity id of the tenant (`urn:ngsi-ld:Junction:J1`).
    #[serde(default)]
    pub entity: Option<String>,
    /// A data set name (letters, digits, `-`, `_`, `.`, `:`; at most 200 characters).
    #[serde(default)]
    pub dataset: Option<String>,
    /// For a data set: where it can be fetched (`http://` or `https://`).
    #[serde(default)]
    pub url: Option<String>,
}

/// A minted identifier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct MintedIdentifier {
    /// The handle (`21.T999/e-...`).
    pub handle: String,
    /// `entity` or `dataset`.
    pub kind: String,
    /// The entity id or data set name.
    pub target: String,
    /// The URL value the handle resolves to.
    pub url: String,
    /// The platform's proxy resolver path for the handle.
    pub resolver: String,
}

/// Errors of the identifier service.
#[derive(Debug, thiserror::Error)]
pub enum IdentifierError {
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// No such entity or identifier in the tenant.
    #[error("{0}")]
    NotFound(String),
    /// The node refused or failed.
    #[error("handle node: {0}")]
    Node(#[from] OpError),
    /// The entity store failed.
    #[error("entity store: {0}")]
    Store(#[from] store::StoreError),
}

impl From<IdentifierError> for ApiError {
    fn from(e: IdentifierError) -> Self {
        match &e {
            IdentifierError::Invalid(_) => ApiError::new(ErrorKind::BadRequest, e.to_string()),
            IdentifierError::NotFound(_) => ApiError::new(ErrorKind::NotFound, e.to_string()),
            IdentifierError::Node(op) if op.code == ResponseCode::HANDLE_ALREADY_EXISTS => {
                ApiError::new(ErrorKind::Conflict, e.to_string())
            }
            IdentifierError::Node(_) | IdentifierError::Store(_) => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

fn valid_dataset_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

fn valid_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The suffix for `target` of `kind` in `tenant`: a stable digest, so minting is idempotent and
/// two tenants' entities with the same id get different handles.
fn suffix(kind: &str, tenant: &TenantId, target: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(tenant.as_str().as_bytes());
    h.update([0]);
    h.update(target.as_bytes());
    let digest = h.finalize();
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", &kind[..1])
}

fn utf8(v: &HandleValue) -> String {
    String::from_utf8_lossy(&v.data).into_owned()
}

impl Identifiers {
    /// The service over `node`, checking entities in `entities`.
    pub fn new(
        node: Arc<HandleNode>,
        identity: Arc<IdentityService>,
        entities: Arc<dyn NgsiStore>,
        mut config: MintConfig,
    ) -> Self {
        while config.public_url.ends_with('/') {
            config.public_url.pop();
        }
        Self {
            node,
            identity,
            entities,
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MintConfig {
        &self.config
    }

    /// The URL an entity's handle points at.
    pub fn entity_url(&self, entity_id: &str) -> String {
        format!(
            "{}/ngsi-ld/v1/entities/{}",
            self.config.public_url,
            percent_encoding::utf8_percent_encode(entity_id, PATH_SEGMENT)
        )
    }

    /// Mints (or finds) the identifier for `request` in the scope's tenant. Returns it and
    /// whether it was new; a new one is recorded in the audit log under `actor`. The caller
    /// has been authorized already.
    pub async fn mint(
        &self,
        scope: &TenantScope,
        actor: String,
        request: &MintRequest,
    ) -> Result<(MintedIdentifier, bool), IdentifierError> {
        let tenant = scope.tenant();
        let (kind, target, url, target_type) = match (&request.entity, &request.dataset) {
            (Some(entity), None) => {
                if request.url.is_some() {
                    return Err(IdentifierError::Invalid(
                        "an entity's identifier points at the entity; `url` is only for data sets"
                            .into(),
                    ));
                }
                if entity.is_empty() || entity.len() > 2048 || !entity.contains(':') {
                    return Err(IdentifierError::Invalid(format!(
                        "{entity:?} is not an entity id (a URI such as urn:ngsi-ld:Junction:J1)"
                    )));
                }
                if self.entities.entity(scope, entity).await?.is_none() {
                    return Err(IdentifierError::NotFound(format!(
                        "no entity {entity} in tenant {tenant}"
                    )));
                }
                (
                    "entity",
                    entity.clone(),
                    self.entity_url(entity),
                    TYPE_ENTITY,
                )
            }
            (None, Some(dataset)) => {
                if !valid_dataset_name(dataset) {
                    return Err(IdentifierError::Invalid(format!(
                        "{dataset:?} is not a data set name (1-200 letters, digits, '-', '_', '.', ':')"
                    )));
                }
                let Some(url) = request.url.as_ref().filter(|u| valid_url(u)) else {
                    return Err(IdentifierError::Invalid(
                        "a data set needs `url`, an http(s) address of at most 2048 characters"
                            .into(),
                    ));
                };
                ("dataset", dataset.clone(), url.clone(), TYPE_DATASET)
            }
            _ => {
                return Err(IdentifierError::Invalid(
                    "give exactly one of `entity` and `dataset`".into(),
                ));
            }
        };
        let handle = format!("{}/{}", self.config.prefix, suffix(kind, tenant, &target));
        if let Some(existing) = self.read(tenant, &handle)? {
            if existing.target == target && existing.kind == kind {
                return Ok((existing, false));
            }
            return Err(IdentifierError::Node(OpError::new(
                ResponseCode::HANDLE_ALREADY_EXISTS,
                format!("{handle} is taken"),
            )));
        }
        let mut owner = HandleValue::new(INDEX_TENANT, TYPE_TENANT, tenant.as_str().as_bytes());
        owner.permissions =
            ValuePermissions(ValuePermissions::ADMIN_READ | ValuePermissions::ADMIN_WRITE);
        let values = vec![
            HandleValue::new(INDEX_URL, "URL", url.as_bytes()),
            HandleValue::new(INDEX_TARGET, target_type, target.as_bytes()),
            owner,
        ];
        let node = self.node.clone();
        let minter = self.config.minter.clone();
        let name = handle.clone();
        // The durable store blocks until its commit; keep that off the async workers.
        tokio::task::spawn_blocking(move || {
            node.create_handle(Some(&minter), &name, values, false)
        })
        .await
        .map_err(|e| IdentifierError::Invalid(format!("minting was interrupted: {e}")))??;
        self.identity
            .audit(
                Some(tenant),
                actor,
                "identifier.mint",
                AuditOutcome::Success,
                Some(handle.clone()),
                json!({ "kind": kind, "target": target }),
            )
            .await;
        Ok((
            MintedIdentifier {
                resolver: format!("/hdl/{handle}"),
                handle,
                kind: kind.to_owned(),
                target,
                url,
            },
            true,
        ))
    }

    /// The identifier `handle` if the tenant minted it.
    pub fn read(
        &self,
        tenant: &TenantId,
        handle: &str,
    ) -> Result<Option<MintedIdentifier>, IdentifierError> {
        let Some(values) = self.node.store().get(handle).map_err(OpError::from)? else {
            return Ok(None);
        };
        let find = |index: u32| values.iter().find(|v| v.index == index);
        let owned = find(INDEX_TENANT)
            .is_some_and(|v| v.value_type == TYPE_TENANT && v.data == tenant.as_str().as_bytes());
        let (Some(url), Some(target)) = (find(INDEX_URL), find(INDEX_TARGET)) else {
            return Ok(None);
        };
        let kind = match target.value_type.as_str() {
            TYPE_ENTITY => "entity",
            TYPE_DATASET => "dataset",
            _ => return Ok(None),
        };
        if !owned {
            return Ok(None);
        }
        Ok(Some(MintedIdentifier {
            handle: handle.to_owned(),
            kind: kind.to_owned(),
            target: utf8(target),
            url: utf8(url),
            resolver: format!("/hdl/{handle}"),
        }))
    }

    /// Withdraws the identifier `handle` of the tenant, recording it under `actor`.
    pub async fn delete(
        &self,
        tenant: &TenantId,
        actor: String,
        handle: &str,
    ) -> Result<(), IdentifierError> {
        if self.read(tenant, handle)?.is_none() {
            return Err(IdentifierError::NotFound(format!(
                "no identifier {handle} in tenant {tenant}"
            )));
        }
        let node = self.node.clone();
        let minter = self.config.minter.clone();
        let name = handle.to_owned();
        tokio::task::spawn_blocking(move || node.delete_handle(Some(&minter), &name))
            .await
            .map_err(|e| IdentifierError::Invalid(format!("deletion was interrupted: {e}")))??;
        self.identity
            .audit(
                Some(tenant),
                actor,
                "identifier.delete",
                AuditOutcome::Success,
                Some(handle.to_owned()),
                json!({}),
            )
            .await;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP.

#[derive(Clone)]
struct Api {
    service: Arc<Identifiers>,
}

impl Api {
    async fn scope(
        &self,
        caller: &Principal,
        tenant: &str,
        permission: Permission,
        what: &str,
    ) -> Result<TenantScope, ApiError> {
        let tenant = TenantId::new(tenant)?;
        Ok(self
            .service
            .identity
            .authorize(caller, &tenant, permission, what)
            .await?)
    }
}

/// The identifier routes, bound to `service`.
pub fn module(service: Arc<Identifiers>) -> Module {
    let protected = OpenApiRouter::new()
        .routes(routes!(mint_identifier))
        .routes(routes!(get_identifier, delete_identifier))
        .with_state(Api { service });
    Module {
        public: OpenApiRouter::new(),
        protected,
    }
}

/// Mint a persistent identifier (a handle) for an NGSI-LD entity or a data set of the tenant.
/// Idempotent: the same target answers the same handle (200 instead of 201).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/identifiers", tag = "identifiers",
    security(("bearer" = [])), params(("tenant" = String, Path)), request_body = MintRequest,
    responses((status = 201, body = MintedIdentifier), (status = 200, body = MintedIdentifier),
        (status = 400, body = api_server::ProblemDetails), (status = 403, body = api_server::ProblemDetails),
        (status = 404, body = api_server::ProblemDetails)))]
async fn mint_identifier(
    State(api): State<Api>,
    Caller(caller): Caller,
    Path(tenant): Path<String>,
    body: Result<Json<MintRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<MintedIdentifier>), ApiError> {
    let scope = api
        .scope(
            &caller,
            &tenant,
            Permission::new(identity::Module::Identifiers, Access::Write),
            "identifiers.mint",
        )
        .await?;
    let Json(request) = body?;
    if request.entity.is_some() {
        api.scope(
            &caller,
            &tenant,
            Permission::new(identity::Module::Data, Access::Read),
            "identifiers.mint",
        )
        .await?;
    }
    let (minted, created) = api.service.mint(&scope, caller.actor(), &request).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(minted)))
}

/// One identifier minted by the tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/identifiers/{prefix}/{suffix}",
    tag = "identifiers", security(("bearer" = [])),
    params(("tenant" = String, Path), ("prefix" = String, Path), ("suffix" = String, Path)),
    responses((status = 200, body = MintedIdentifier), (status = 403, body = api_server::ProblemDetails),
        (status = 404, body = api_server::ProblemDetails)))]
async fn get_identifier(
    State(api): State<Api>,
    Caller(caller): Caller,
    Path((tenant, prefix, suffix)): Path<(String, String, String)>,
) -> Result<Json<MintedIdentifier>, ApiError> {
    let scope = api
        .scope(
            &caller,
            &tenant,
            Permission::new(identity::Module::Identifiers, Access::Read),
            "identifiers.get",
        )
        .await?;
    let handle = format!("{prefix}/{suffix}");
    api.service
        .read(scope.tenant(), &handle)?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("no identifier {handle} in tenant {}", scope.tenant()),
            )
        })
}

/// Withdraw an identifier minted by the tenant.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/identifiers/{prefix}/{suffix}",
    tag = "identifiers", security(("bearer" = [])),
    params(("tenant" = String, Path), ("prefix" = String, Path), ("suffix" = String, Path)),
    responses((status = 204), (status = 403, body = api_server::ProblemDetails),
        (status = 404, body = api_server::ProblemDetails)))]
async fn delete_identifier(
    State(api): State<Api>,
    Caller(caller): Caller,
    Path((tenant, prefix, suffix)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let scope = api
        .scope(
            &caller,
            &tenant,
            Permission::new(identity::Module::Identifiers, Access::Write),
            "identifiers.delete",
        )
        .await?;
    let handle = format!("{prefix}/{suffix}");
    api.service
        .delete(scope.tenant(), caller.actor(), &handle)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Audit.

/// How many node events may wait for the audit log before new ones are counted as dropped.
const AUDIT_QUEUE: usize = 16_384;

struct IdentityAudit {
    queue: mpsc::Sender<AdminEvent>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink for IdentityAudit {
    fn record(&self, event: AdminEvent) {
        // The node's UDP workers must never block on the audit log; a full queue (a flood of
        // refused requests) is counted and reported as one audit entry once it drains.
        if self.queue.try_send(event).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An [`AuditSink`] appending the node's administrative operations to `identity`'s audit log
/// (actor `handle:<index>:<handle>` or `anonymous`; refused operations as `denied`). Spawns the
/// writer task on the current tokio runtime.
pub fn audit_sink(identity: Arc<IdentityService>) -> Arc<dyn AuditSink> {
    let (queue, mut events) = mpsc::channel::<AdminEvent>(AUDIT_QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let lost = dropped.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let outcome = match &event.outcome {
                Ok(()) => AuditOutcome::Success,
                Err(e) if (400..500).contains(&e.code.0) => AuditOutcome::Denied,
                Err(_) => AuditOutcome::Failure,
            };
            let detail = match &event.outcome {
                Ok(()) => json!({}),
                Err(e) => json!({ "responseCode": e.code.0, "message": e.message }),
            };
            let actor = event
                .identity
                .as_ref()
                .map_or_else(|| "anonymous".to_owned(), |id| format!("handle:{id}"));
            identity
                .audit(
                    None,
                    actor,
                    event.action,
                    outcome,
                    Some(event.handle),
                    detail,
                )
                .await;
            let missed = lost.swap(0, Ordering::Relaxed);
            if missed > 0 {
                identity
                    .audit(
                        None,
                        "system:handle".to_owned(),
                        "handle.audit.dropped",
                        AuditOutcome::Failure,
                        None,
                        json!({ "events": missed }),
                    )
                    .await;
            }
        }
    });
    Arc::new(IdentityAudit { queue, dropped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_stable_and_tenant_specific() {
        let a = TenantId::new("alpha").unwrap();
        let b = TenantId::new("beta").unwrap();
        let s = suffix("entity", &a, "urn:ngsi-ld:Junction:J1");
        assert_eq!(s, suffix("entity", &a, "urn:ngsi-ld:Junction:J1"));
        assert_ne!(s, suffix("entity", &b, "urn:ngsi-ld:Junction:J1"));
        assert_ne!(s, suffix("dataset", &a, "urn:ngsi-ld:Junction:J1"));
        assert!(s.starts_with("e-") && s.len() == 22, "{s}");
    }

    #[test]
    fn names_and_urls_are_checked() {
        assert!(valid_dataset_name("traffic-counts_2026.v1"));
        assert!(!valid_dataset_name(""));
        assert!(!valid_dataset_name("a b"));
        assert!(!valid_dataset_name(&"x".repeat(201)));
        assert!(valid_url("https://data.example.org/counts.csv"));
        assert!(!valid_url("ftp://x"));
        assert!(!valid_url("https://"));
        assert!(!valid_url("https://a b"));
    }
}
