//! Governance records of secure-computation jobs between nodes (issue 8): who takes part, for
//! what purpose, over which columns, until when, and who approved it.
//!
//! A job exists once on every node that takes part, each copy in the owning tenant of that
//! node. A node runs its side only while its own copy is `approved` and unexpired; both
//! copies carry the same governance digest, which the protocol binds into its transcript.

use crate::{StoreResult, TenantScope, UnixMillis};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecureJobStatus {
    /// Recorded, waiting for this node's administrator.
    Proposed,
    /// This node's administrator approved it; it may run until it expires.
    Approved,
    /// The protocol is running.
    Running,
    /// Finished; the receiver holds the released result.
    Completed,
    /// Failed or refused; nothing was released.
    Aborted,
}

impl SecureJobStatus {
    /// Stable name (also the stored value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Approved => "approved",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Aborted => "aborted",
        }
    }

    /// Parses a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "proposed" => Self::Proposed,
            "approved" => Self::Approved,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "aborted" => Self::Aborted,
            _ => return None,
        })
    }
}

/// One node's copy of a job and its governance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureJobRecord {
    /// Job id, the same on every node (unique per tenant).
    pub id: String,
    /// The governance document every administrator approves (JSON: parties, purpose,
    /// columns, mode, receiver, caps, expiry). Stored as given, never rewritten.
    pub governance: String,
    /// Hex SHA-256 of `governance`.
    pub governance_digest: String,
    /// This node's party id in the governance document.
    pub local_party: String,
    /// Expiry copied from the governance document: no run starts at or after it.
    pub expires_at: UnixMillis,
    /// Current state.
    pub status: SecureJobStatus,
    /// Who recorded it.
    pub created_by: String,
    /// When it was recorded.
    pub created_at: UnixMillis,
    /// The administrator who approved it, once approved.
    pub approved_by: Option<String>,
    /// When it was approved.
    pub approved_at: Option<UnixMillis>,
    /// Why it aborted (a clear message; never raw items).
    pub error: Option<String>,
    /// The released result (JSON), only on the receiver and only when completed.
    pub result: Option<String>,
    /// Last change.
    pub updated_at: UnixMillis,
}

/// The change [`SecureJobStore::transition_secure_job`] applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureJobTransition {
    /// The job.
    pub id: String,
    /// The change happens only from one of these states (compare-and-set).
    pub from: Vec<SecureJobStatus>,
    /// The new state.
    pub to: SecureJobStatus,
    /// Set `approved_by`/`approved_at` (for `to == Approved`).
    pub approved_by: Option<String>,
    /// Error message to record.
    pub error: Option<String>,
    /// Result to record.
    pub result: Option<String>,
    /// When.
    pub at: UnixMillis,
}

/// Storage of secure-computation jobs, tenant-scoped like every store trait.
#[async_trait]
pub trait SecureJobStore: Send + Sync {
    /// Records a new job. `AlreadyExists` if the tenant has a job with this id.
    async fn create_secure_job(&self, scope: &TenantScope, job: SecureJobRecord)
    -> StoreResult<()>;

    /// One job of the tenant.
    async fn secure_job(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<SecureJobRecord>>;

    /// The tenant's jobs, newest first.
    async fn secure_jobs(&self, scope: &TenantScope) -> StoreResult<Vec<SecureJobRecord>>;

    /// Moves a job to `to` if it is in one of `from`, atomically, and returns the new record.
    /// `NotFound` if the tenant has no such job; `InvalidInput` (naming the current state)
    /// if it is in another state.
    async fn transition_secure_job(
        &self,
        scope: &TenantScope,
        change: SecureJobTransition,
    ) -> StoreResult<SecureJobRecord>;
}
