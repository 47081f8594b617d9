//! The one job state machine, and how each engine's states map onto it.
//!
//! ```text
//! Pending ──► Running ──► Succeeded
//!    │           ├──────► Failed
//!    │           └──────► Lost      (the site or node went away; the scheduler retries elsewhere)
//!    └──────────────────► Cancelled (also from Running)
//! ```
//! Terminal states never change again ([`JobState::can_become`] encodes the allowed moves).

/// Engine-independent job state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Accepted, not running yet.
    Pending,
    /// Running.
    Running,
    /// Finished with exit code 0.
    Succeeded,
    /// Finished with a non-zero exit, a signal, or a limit.
    Failed,
    /// Cancelled by a user or the scheduler.
    Cancelled,
    /// The engine lost the job (node or site failure); retry elsewhere.
    Lost,
}

impl JobState {
    /// Whether the state is final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Lost
        )
    }

    /// Whether moving from `self` to `next` is allowed.
    pub fn can_become(self, next: JobState) -> bool {
        use JobState::*;
        match (self, next) {
            (a, b) if a == b => true,
            (Pending, _) => true,
            (Running, Succeeded | Failed | Cancelled | Lost) => true,
            _ => false,
        }
    }

    /// Lower-case name (for APIs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
        }
    }
}

/// Maps a Slurm job state (`squeue`/slurmrestd `job_state`, e.g. `COMPLETED`, `NODE_FAIL`) onto
/// [`JobState`]. Unknown states are treated as pending (Slurm adds states over releases; none of the
/// unknown ones is terminal-success).
pub fn from_slurm(state: &str) -> JobState {
    match state.trim().to_ascii_uppercase().as_str() {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_FED" | "REQUEUE_HOLD"
        | "RESV_DEL_HOLD" | "SUSPENDED" | "STOPPED" | "RESIZING" | "SIGNALING" => JobState::Pending,
        "RUNNING" | "COMPLETING" | "STAGE_OUT" => JobState::Running,
        "COMPLETED" => JobState::Succeeded,
        "FAILED" | "TIMEOUT" | "OUT_OF_MEMORY" | "DEADLINE" | "BOOT_FAIL" | "SPECIAL_EXIT" => {
            JobState::Failed
        }
        "CANCELLED" | "REVOKED" | "PREEMPTED" => JobState::Cancelled,
        "NODE_FAIL" => JobState::Lost,
        _ => JobState::Pending,
    }
}

/// Maps a Kubernetes pod phase (and whether deletion was requested) onto [`JobState`].
pub fn from_pod_phase(phase: &str, deletion_requested: bool) -> JobState {
    match (phase, deletion_requested) {
        ("Succeeded", _) => JobState::Succeeded,
        ("Failed", true) => JobState::Cancelled,
        ("Failed", false) => JobState::Failed,
        ("Unknown", _) => JobState::Lost,
        (_, true) => JobState::Cancelled,
        ("Running", false) => JobState::Running,
        _ => JobState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_never_change() {
        use JobState::*;
        let all = [Pending, Running, Succeeded, Failed, Cancelled, Lost];
        for a in all {
            for b in all {
                if a.is_terminal() && a != b {
                    assert!(!a.can_become(b), "{a:?} -> {b:?}");
                }
            }
        }
        assert!(Pending.can_become(Running) && Running.can_become(Succeeded));
        assert!(!Running.can_become(Pending));
    }

    #[test]
    fn slurm_and_pod_states_map_as_documented() {
        assert_eq!(from_slurm("COMPLETED"), JobState::Succeeded);
        assert_eq!(from_slurm("running"), JobState::Running);
        assert_eq!(from_slurm("TIMEOUT"), JobState::Failed);
        assert_eq!(from_slurm("CANCELLED"), JobState::Cancelled);
        assert_eq!(from_slurm("NODE_FAIL"), JobState::Lost);
        assert_eq!(from_slurm("PENDING"), JobState::Pending);
        assert_eq!(from_pod_phase("Running", false), JobState::Running);
        assert_eq!(from_pod_phase("Running", true), JobState::Cancelled);
        assert_eq!(from_pod_phase("Failed", false), JobState::Failed);
        assert_eq!(from_pod_phase("Unknown", false), JobState::Lost);
        assert_eq!(from_pod_phase("Pending", false), JobState::Pending);
    }
}
