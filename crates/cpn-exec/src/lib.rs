//! Executors for the computing-power network: the I/O shell around `cpn-core`'s decisions.
//!
//! One [`Executor`] trait (submit, status, logs, cancel) and one job state machine ([`JobState`])
//! that every engine's status is mapped onto, so the scheduler and the API never see engine-specific
//! states. [`local::LocalExecutor`] runs jobs as real processes on this machine;
//! [`slurm::SlurmExecutor`] submits to Slurm through slurmrestd (OpenAPI v0.0.38, JWT); [`state`]
//! holds the pure mappings from Slurm job states and Kubernetes pod phases onto [`JobState`].
//!
//! The trait is synchronous on purpose: submission and status are short calls, the local executor
//! needs no runtime, and an async server can call it from `spawn_blocking`.

pub mod http;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod local;
pub mod slurm;
pub mod state;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use state::JobState;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecSpec {
    /// Human-readable name (for logs).
    pub name: String,
    /// Program and arguments (no shell unless the caller asks for one).
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the executor's job directory).
    pub workdir: Option<PathBuf>,
    /// Resource limits.
    pub limits: Limits,
    /// Wall-clock limit; the job is killed and marked failed when it is exceeded.
    pub timeout: Option<Duration>,
}

/// Per-process resource limits (applied with `prlimit`, so they bind the job's process tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// CPU time in seconds (`RLIMIT_CPU`).
    pub cpu_seconds: Option<u64>,
    /// Address space in bytes (`RLIMIT_AS`).
    pub memory_bytes: Option<u64>,
    /// Open files (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Processes (`RLIMIT_NPROC`, per user).
    pub processes: Option<u64>,
    /// CPU share in thousandths of a core: the request and limit of a Kubernetes container
    /// (the local executor bounds CPU time instead and ignores it).
    pub cpu_millicores: Option<u64>,
}

/// Status of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    /// Engine-independent state.
    pub state: JobState,
    /// Exit code, once the process has exited normally.
    pub exit_code: Option<i32>,
    /// Signal that ended the process, if any.
    pub signal: Option<i32>,
    /// Engine-specific detail (raw state name, reason).
    pub detail: String,
}

/// Identifier of a submitted job within one executor.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecId(pub String);

/// Executor errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The spec is unusable (empty argv, bad limit).
    #[error("invalid job spec: {0}")]
    InvalidSpec(String),
    /// No job with this id.
    #[error("unknown job {0}")]
    UnknownJob(String),
    /// Spawning, waiting or reading logs failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The engine answered with an error.
    #[error("engine error: {0}")]
    Engine(String),
}

/// Submit, observe and cancel jobs on one engine.
pub trait Executor {
    /// Starts (or queues) a job.
    fn submit(&self, spec: &ExecSpec) -> Result<ExecId, ExecError>;
    /// Current status.
    fn status(&self, id: &ExecId) -> Result<JobStatus, ExecError>;
    /// Combined stdout and stderr so far.
    fn logs(&self, id: &ExecId) -> Result<String, ExecError>;
    /// Cancels the job (no-op if it already ended).
    fn cancel(&self, id: &ExecId) -> Result<(), ExecError>;
}
