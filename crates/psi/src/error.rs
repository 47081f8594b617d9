//! The error type of the PSI state machines.

use crate::codec::DecodeError;
use crate::manifest::GovernanceError;
use thiserror::Error;

/// Reason code carried by an abort message, so the peer can report why the job stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbortCode {
    /// A message was malformed, unexpected, out of order or replayed.
    Protocol,
    /// A message failed authentication (tampered, or the transcripts diverged).
    Authentication,
    /// The job breaks a governance rule (manifest mismatch, set over its cap).
    Governance,
    /// The intersection is below the manifest's release minimum.
    BelowReleaseMinimum,
    /// The local driver cancelled the job (its input failed, for instance).
    Cancelled,
}

impl AbortCode {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Protocol => 1,
            Self::Authentication => 2,
            Self::Governance => 3,
            Self::BelowReleaseMinimum => 4,
            Self::Cancelled => 5,
        }
    }

    pub(crate) fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            1 => Self::Protocol,
            2 => Self::Authentication,
            3 => Self::Governance,
            4 => Self::BelowReleaseMinimum,
            5 => Self::Cancelled,
            _ => {
                return Err(DecodeError::InvalidField {
                    field: "abort.code",
                    reason: "unknown abort code",
                });
            }
        })
    }
}

impl std::fmt::Display for AbortCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Protocol => "protocol violation",
            Self::Authentication => "message authentication failed",
            Self::Governance => "governance rule broken",
            Self::BelowReleaseMinimum => "intersection below the release minimum",
            Self::Cancelled => "cancelled by the peer",
        })
    }
}

/// Why a PSI session failed. After any error the session is dead: its buffers are dropped and
/// no output is ever released.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PsiError {
    /// The job breaks the manifest (raised before any cryptographic message when local).
    #[error("governance: {0}")]
    Governance(#[from] GovernanceError),
    /// A message could not be decoded.
    #[error("malformed {kind} message: {source}")]
    Malformed {
        /// Message kind being decoded.
        kind: &'static str,
        /// What was wrong.
        source: DecodeError,
    },
    /// The message belongs to another session (replayed from another job, or misrouted).
    #[error("message belongs to another session")]
    WrongSession,
    /// The message has a protocol version this build does not speak.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// The message is out of order, duplicated or replayed within the session.
    #[error("out-of-order or replayed message: sequence {got}, expected {expected}")]
    Sequence {
        /// Sequence number expected next.
        expected: u32,
        /// Sequence number received.
        got: u32,
    },
    /// The message's authentication tag is wrong: it was altered in transit, or an earlier
    /// message was, so the two transcripts differ.
    #[error("message authentication failed: tampered message or diverging transcripts")]
    Authentication,
    /// A well-formed message arrived when the protocol does not allow it.
    #[error("unexpected {got} message in state {state}")]
    Unexpected {
        /// Kind received.
        got: &'static str,
        /// State of the session.
        state: &'static str,
    },
    /// The peer runs a different manifest than ours.
    #[error("the peer's job manifest differs from ours")]
    ManifestMismatch,
    /// Both parties claim the same role.
    #[error("the peer claims our protocol role")]
    RoleConflict,
    /// A received point is not a valid ristretto255 encoding.
    #[error("invalid group element at position {index} of a {kind} message")]
    InvalidPoint {
        /// Message kind.
        kind: &'static str,
        /// Position in the batch.
        index: usize,
    },
    /// The peer sent more items than it declared, or fewer before finishing.
    #[error("peer sent {got} {what}, but declared {declared}")]
    CountMismatch {
        /// What was counted.
        what: &'static str,
        /// Number declared.
        declared: u64,
        /// Number received.
        got: u64,
    },
    /// The local driver misused the session (pushed too many items, pushed too early, ...).
    #[error("local usage error: {0}")]
    Usage(&'static str),
    /// The peer aborted the job.
    #[error("the peer aborted the job: {0}")]
    PeerAborted(AbortCode),
    /// The peer's confirmation shows it saw a different transcript.
    #[error("transcript confirmation failed: the peer saw different messages")]
    ConfirmMismatch,
    /// The decrypted sum is outside the range the protocol can recover.
    #[error("intersection sum could not be decrypted (outside the supported range)")]
    SumOutOfRange,
    /// The session already failed or finished.
    #[error("the session is closed ({0})")]
    Closed(&'static str),
}

impl PsiError {
    /// The abort code sent to the peer when this error ends the session locally.
    pub fn abort_code(&self) -> AbortCode {
        match self {
            Self::Governance(crate::manifest::GovernanceError::BelowReleaseMinimum { .. }) => {
                AbortCode::BelowReleaseMinimum
            }
            Self::Governance(_) | Self::ManifestMismatch | Self::RoleConflict => {
                AbortCode::Governance
            }
            Self::Authentication | Self::ConfirmMismatch => AbortCode::Authentication,
            Self::Usage(_) | Self::SumOutOfRange => AbortCode::Cancelled,
            _ => AbortCode::Protocol,
        }
    }
}
