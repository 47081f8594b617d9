//! Governance as data: the job manifest every party approves before a PSI job may run.
//!
//! The state machines call [`JobManifest::authorize`] in their constructors, i.e. before any
//! key is drawn or any cryptographic message exists, so a job that breaks a rule is refused
//! without the peer ever seeing a masked item. The manifest's [`JobManifest::digest`] is bound
//! into the protocol transcript, so two parties holding different manifests fail at the first
//! message instead of running a job one of them did not approve.

use crate::codec::{DecodeError, Reader, put_bytes_u32};
use thiserror::Error;

/// Largest set either side may bring to one job (positions travel as `u32`, and tags of at most
/// 96 bits keep false matches below 2^-40 up to 2^28 × 2^28).
pub const PROTOCOL_MAX_SET_SIZE: u64 = 1 << 28;

/// Largest set in `IntersectionSum`: the value holder buffers 160 bytes per item to shuffle
/// (≈ 0.7 GiB at 2^22) and decrypts limb sums by baby-step giant-step.
pub const SUM_MODE_MAX_SET_SIZE: u64 = 1 << 22;

/// What a PSI job computes and who learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsiMode {
    /// The receiver learns which of its items are in the intersection.
    Intersection,
    /// Like `Intersection`, and the other party also learns which of *its* items matched.
    IntersectionBoth,
    /// The receiver learns only |X ∩ Y| (both sets are shuffled so positions leak nothing).
    Cardinality,
    /// The receiver (who holds a `u32` value per item) learns the sum of its values over the
    /// intersection and its size; the other party learns the size only.
    IntersectionSum,
}

impl PsiMode {
    fn code(self) -> u8 {
        match self {
            Self::Intersection => 1,
            Self::IntersectionBoth => 2,
            Self::Cardinality => 3,
            Self::IntersectionSum => 4,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            1 => Self::Intersection,
            2 => Self::IntersectionBoth,
            3 => Self::Cardinality,
            4 => Self::IntersectionSum,
            _ => {
                return Err(DecodeError::InvalidField {
                    field: "mode",
                    reason: "unknown mode",
                });
            }
        })
    }

    /// Stable name used in manifests shown to people and in audit entries.
    pub fn name(self) -> &'static str {
        match self {
            Self::Intersection => "intersection",
            Self::IntersectionBoth => "intersection-both",
            Self::Cardinality => "cardinality",
            Self::IntersectionSum => "intersection-sum",
        }
    }
}

/// One data owner named in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartySpec {
    /// Stable identifier of the party (e.g. a tenant or node name).
    pub id: String,
    /// Largest set this party may contribute.
    pub max_set_size: u64,
}

/// The per-job rules every data owner approves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobManifest {
    /// Unique job identifier; part of the session context.
    pub job_id: String,
    /// The two data owners.
    pub parties: [PartySpec; 2],
    /// The party that receives the result (for `IntersectionSum`, the party holding values).
    pub receiver: String,
    /// What is computed.
    pub mode: PsiMode,
    /// The result is withheld (the job aborts on both sides) below this intersection size.
    pub min_release_size: u64,
}

/// The two protocol roles. The matcher compares doubly-masked values; the other party helps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Stores the doubly-masked values of its own set and matches the peer's against them.
    Matcher,
    /// Re-masks the matcher's values and streams its own (shuffled where the mode requires).
    Helper,
}

impl Role {
    /// The other role.
    pub fn peer(self) -> Self {
        match self {
            Self::Matcher => Self::Helper,
            Self::Helper => Self::Matcher,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Matcher => 1,
            Self::Helper => 2,
        }
    }
}

/// A rule of the manifest that a job would break. Raised before any cryptographic message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GovernanceError {
    /// The manifest is not well formed.
    #[error("invalid manifest: {0}")]
    InvalidManifest(&'static str),
    /// The local party is not one of the manifest's parties.
    #[error("party `{0}` is not named in the manifest")]
    UnknownParty(String),
    /// A set exceeds its owner's cap.
    #[error("set of party `{party}` has {size} items, above its cap of {cap}")]
    SetTooLarge {
        /// Party whose set is too large.
        party: String,
        /// Declared size.
        size: u64,
        /// Cap from the manifest.
        cap: u64,
    },
    /// The intersection is smaller than the manifest allows to release.
    #[error("intersection size {size} is below the release minimum {min}; nothing is released")]
    BelowReleaseMinimum {
        /// Size found.
        size: u64,
        /// Minimum from the manifest.
        min: u64,
    },
}

impl JobManifest {
    /// Checks the manifest's own consistency.
    pub fn validate(&self) -> Result<(), GovernanceError> {
        let [a, b] = &self.parties;
        if self.job_id.is_empty() {
            return Err(GovernanceError::InvalidManifest("job_id is empty"));
        }
        if a.id.is_empty() || b.id.is_empty() {
            return Err(GovernanceError::InvalidManifest("party id is empty"));
        }
        if a.id == b.id {
            return Err(GovernanceError::InvalidManifest(
                "the two parties must differ",
            ));
        }
        if self.receiver != a.id && self.receiver != b.id {
            return Err(GovernanceError::InvalidManifest(
                "receiver is not one of the parties",
            ));
        }
        if a.max_set_size > PROTOCOL_MAX_SET_SIZE || b.max_set_size > PROTOCOL_MAX_SET_SIZE {
            return Err(GovernanceError::InvalidManifest(
                "set-size cap above the protocol limit",
            ));
        }
        let sum_cap = a.max_set_size.max(b.max_set_size);
        if self.mode == PsiMode::IntersectionSum && sum_cap > SUM_MODE_MAX_SET_SIZE {
            return Err(GovernanceError::InvalidManifest(
                "intersection-sum caps must not exceed 2^22 items (memory and decryption bound)",
            ));
        }
        Ok(())
    }

    /// Index (0 or 1) of a party in `parties`.
    pub fn party_index(&self, party: &str) -> Result<usize, GovernanceError> {
        self.parties
            .iter()
            .position(|p| p.id == party)
            .ok_or_else(|| GovernanceError::UnknownParty(party.to_owned()))
    }

    /// Checks that `party` may bring a set of `set_size` items and returns its protocol role.
    pub fn authorize(&self, party: &str, set_size: u64) -> Result<Role, GovernanceError> {
        self.validate()?;
        let index = self.party_index(party)?;
        self.check_size(index, set_size)?;
        Ok(self.role_of(index))
    }

    /// Checks a declared set size against the cap of party `index`.
    pub fn check_size(&self, index: usize, size: u64) -> Result<(), GovernanceError> {
        let spec = self
            .parties
            .get(index)
            .ok_or(GovernanceError::InvalidManifest("index"))?;
        if size > spec.max_set_size {
            return Err(GovernanceError::SetTooLarge {
                party: spec.id.clone(),
                size,
                cap: spec.max_set_size,
            });
        }
        Ok(())
    }

    /// The protocol role of party `index`. The matcher learns the result, except in
    /// `IntersectionSum`, where the value holder (the receiver) helps and decrypts the sum.
    pub fn role_of(&self, index: usize) -> Role {
        let is_receiver = self
            .parties
            .get(index)
            .is_some_and(|p| p.id == self.receiver);
        let receiver_role = if self.mode == PsiMode::IntersectionSum {
            Role::Helper
        } else {
            Role::Matcher
        };
        if is_receiver {
            receiver_role
        } else {
            receiver_role.peer()
        }
    }

    /// Refuses a result below the release minimum.
    pub fn check_release(&self, size: u64) -> Result<(), GovernanceError> {
        if size < self.min_release_size {
            return Err(GovernanceError::BelowReleaseMinimum {
                size,
                min: self.min_release_size,
            });
        }
        Ok(())
    }

    /// Canonical encoding (the bytes that are hashed and logged).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![MANIFEST_VERSION];
        put_bytes_u32(&mut out, self.job_id.as_bytes());
        for p in &self.parties {
            put_bytes_u32(&mut out, p.id.as_bytes());
            out.extend_from_slice(&p.max_set_size.to_le_bytes());
        }
        put_bytes_u32(&mut out, self.receiver.as_bytes());
        out.push(self.mode.code());
        out.extend_from_slice(&self.min_release_size.to_le_bytes());
        out
    }

    /// Decodes a canonical manifest and validates it.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestDecodeError> {
        let mut r = Reader::new(bytes);
        if r.u8("manifest.version")? != MANIFEST_VERSION {
            return Err(DecodeError::InvalidField {
                field: "manifest.version",
                reason: "unsupported version",
            }
            .into());
        }
        let text = |r: &mut Reader<'_>, field| -> Result<String, DecodeError> {
            let raw = r.bytes_u32(field, MAX_NAME_LEN)?;
            String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::InvalidField {
                field,
                reason: "not UTF-8",
            })
        };
        let job_id = text(&mut r, "manifest.job_id")?;
        let party = |r: &mut Reader<'_>| -> Result<PartySpec, DecodeError> {
            let id = text(r, "manifest.party.id")?;
            let max_set_size = r.u64("manifest.party.max_set_size")?;
            Ok(PartySpec { id, max_set_size })
        };
        let parties = [party(&mut r)?, party(&mut r)?];
        let receiver = text(&mut r, "manifest.receiver")?;
        let mode = PsiMode::from_code(r.u8("manifest.mode")?)?;
        let min_release_size = r.u64("manifest.min_release_size")?;
        r.finish("manifest")?;
        let manifest = Self {
            job_id,
            parties,
            receiver,
            mode,
            min_release_size,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// BLAKE3 digest of the canonical encoding.
    pub fn digest(&self) -> [u8; 32] {
        *blake3::Hasher::new_derive_key("citybrain-psi v1 manifest")
            .update(&self.encode())
            .finalize()
            .as_bytes()
    }
}

const MANIFEST_VERSION: u8 = 1;
const MAX_NAME_LEN: u64 = 256;

/// Failure to decode a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestDecodeError {
    /// Bytes malformed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Well formed but breaks a rule.
    #[error(transparent)]
    Governance(#[from] GovernanceError),
}
