//! An append-only, hash-chained audit log of governance events.
//!
//! Each entry commits to its predecessor: `hash = BLAKE3(prev_hash || seq || time || event)`.
//! Changing, removing or reordering any entry breaks every later hash, which
//! [`AuditLog::verify`] detects. The log records digests, counts and recipients, never raw
//! items, masked points or values. Timestamps are inputs (the core reads no clock).

use crate::codec::{DecodeError, Reader, put_bytes_u32};
use thiserror::Error;

/// A governance event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// A job manifest was proposed.
    Proposed {
        /// Job id.
        job_id: String,
        /// Manifest digest.
        manifest_digest: [u8; 32],
    },
    /// A data owner approved the manifest with this digest.
    Approved {
        /// Approving party.
        party: String,
        /// Digest approved.
        manifest_digest: [u8; 32],
    },
    /// A job was refused before any cryptographic message (reason in words).
    Refused {
        /// Job id.
        job_id: String,
        /// Why.
        reason: String,
    },
    /// A party committed its input (digest of the input file and item count).
    InputCommitted {
        /// Party.
        party: String,
        /// Digest of the input.
        input_digest: [u8; 32],
        /// Items.
        items: u64,
    },
    /// A result was released.
    Released {
        /// Job id.
        job_id: String,
        /// Who received it.
        recipient: String,
        /// Rows or intersection size released.
        size: u64,
    },
    /// A job aborted (reason in words).
    Aborted {
        /// Job id.
        job_id: String,
        /// Why.
        reason: String,
    },
}

impl AuditEvent {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Proposed {
                job_id,
                manifest_digest,
            } => {
                out.push(1);
                put_bytes_u32(out, job_id.as_bytes());
                out.extend_from_slice(manifest_digest);
            }
            Self::Approved {
                party,
                manifest_digest,
            } => {
                out.push(2);
                put_bytes_u32(out, party.as_bytes());
                out.extend_from_slice(manifest_digest);
            }
            Self::Refused { job_id, reason } => {
                out.push(3);
                put_bytes_u32(out, job_id.as_bytes());
                put_bytes_u32(out, reason.as_bytes());
            }
            Self::InputCommitted {
                party,
                input_digest,
                items,
            } => {
                out.push(4);
                put_bytes_u32(out, party.as_bytes());
                out.extend_from_slice(input_digest);
                out.extend_from_slice(&items.to_le_bytes());
            }
            Self::Released {
                job_id,
                recipient,
                size,
            } => {
                out.push(5);
                put_bytes_u32(out, job_id.as_bytes());
                put_bytes_u32(out, recipient.as_bytes());
                out.extend_from_slice(&size.to_le_bytes());
            }
            Self::Aborted { job_id, reason } => {
                out.push(6);
                put_bytes_u32(out, job_id.as_bytes());
                put_bytes_u32(out, reason.as_bytes());
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let text = |r: &mut Reader<'_>, field| -> Result<String, DecodeError> {
            String::from_utf8(r.bytes_u32(field, MAX_TEXT)?.to_vec()).map_err(|_| {
                DecodeError::InvalidField {
                    field,
                    reason: "not UTF-8",
                }
            })
        };
        Ok(match r.u8("event.kind")? {
            1 => Self::Proposed {
                job_id: text(r, "job_id")?,
                manifest_digest: r.array("manifest_digest")?,
            },
            2 => Self::Approved {
                party: text(r, "party")?,
                manifest_digest: r.array("manifest_digest")?,
            },
            3 => Self::Refused {
                job_id: text(r, "job_id")?,
                reason: text(r, "reason")?,
            },
            4 => Self::InputCommitted {
                party: text(r, "party")?,
                input_digest: r.array("input_digest")?,
                items: r.u64("items")?,
            },
            5 => Self::Released {
                job_id: text(r, "job_id")?,
                recipient: text(r, "recipient")?,
                size: r.u64("size")?,
            },
            6 => Self::Aborted {
                job_id: text(r, "job_id")?,
                reason: text(r, "reason")?,
            },
            _ => {
                return Err(DecodeError::InvalidField {
                    field: "event.kind",
                    reason: "unknown event",
                });
            }
        })
    }
}

const MAX_TEXT: u64 = 4096;
const MAX_ENTRIES: u64 = 1 << 24;

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Time supplied by the caller (e.g. Unix milliseconds).
    pub time: u64,
    /// The event.
    pub event: AuditEvent,
    /// Hash of the previous entry (zeros for the first).
    pub prev: [u8; 32],
    /// Hash of this entry.
    pub hash: [u8; 32],
}

fn entry_hash(prev: &[u8; 32], seq: u64, time: u64, event: &AuditEvent) -> [u8; 32] {
    let mut body = Vec::new();
    event.encode(&mut body);
    let mut h = blake3::Hasher::new_derive_key("citybrain-audit v1 entry");
    h.update(prev)
        .update(&seq.to_le_bytes())
        .update(&time.to_le_bytes())
        .update(&body);
    *h.finalize().as_bytes()
}

/// Why a log does not verify.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Entry `seq` has the wrong position number.
    #[error("entry {index} has sequence number {seq}")]
    Sequence {
        /// Index in the log.
        index: u64,
        /// Its `seq` field.
        seq: u64,
    },
    /// Entry's `prev` does not match the previous entry's hash.
    #[error("entry {0} does not link to its predecessor")]
    BrokenLink(u64),
    /// Entry's hash does not match its content.
    #[error("entry {0} was altered")]
    Altered(u64),
    /// The encoded log is malformed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditLog {
    entries: Vec<AuditEntry>,
}

impl AuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event and returns the new entry.
    pub fn append(&mut self, time: u64, event: AuditEvent) -> &AuditEntry {
        let prev = self.head();
        let seq = self.entries.len() as u64;
        let hash = entry_hash(&prev, seq, time, &event);
        self.entries.push(AuditEntry {
            seq,
            time,
            event,
            prev,
            hash,
        });
        &self.entries[self.entries.len() - 1]
    }

    /// Hash of the last entry (zeros when empty): publish it to pin the log's history.
    pub fn head(&self) -> [u8; 32] {
        self.entries.last().map_or([0; 32], |e| e.hash)
    }

    /// Entries in order.
    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }

    /// Checks every link and hash of a sequence of entries.
    pub fn verify(entries: &[AuditEntry]) -> Result<(), AuditError> {
        let mut prev = [0u8; 32];
        for (i, e) in entries.iter().enumerate() {
            let index = i as u64;
            if e.seq != index {
                return Err(AuditError::Sequence { index, seq: e.seq });
            }
            if e.prev != prev {
                return Err(AuditError::BrokenLink(index));
            }
            if entry_hash(&e.prev, e.seq, e.time, &e.event) != e.hash {
                return Err(AuditError::Altered(index));
            }
            prev = e.hash;
        }
        Ok(())
    }

    /// Encodes the whole log.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![1u8];
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.seq.to_le_bytes());
            out.extend_from_slice(&e.time.to_le_bytes());
            e.event.encode(&mut out);
            out.extend_from_slice(&e.prev);
            out.extend_from_slice(&e.hash);
        }
        out
    }

    /// Decodes a log and verifies its chain.
    pub fn decode(bytes: &[u8]) -> Result<Self, AuditError> {
        let mut r = Reader::new(bytes);
        if r.u8("log.version")? != 1 {
            return Err(DecodeError::InvalidField {
                field: "log.version",
                reason: "unsupported",
            }
            .into());
        }
        let n = r.u64("log.count")?;
        if n > MAX_ENTRIES || n.saturating_mul(81) > r.remaining() as u64 {
            return Err(DecodeError::InvalidField {
                field: "log.count",
                reason: "larger than the data",
            }
            .into());
        }
        let mut entries = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let seq = r.u64("entry.seq")?;
            let time = r.u64("entry.time")?;
            let event = AuditEvent::decode(&mut r)?;
            let prev = r.array("entry.prev")?;
            let hash = r.array("entry.hash")?;
            entries.push(AuditEntry {
                seq,
                time,
                event,
                prev,
                hash,
            });
        }
        r.finish("audit log")?;
        Self::verify(&entries)?;
        Ok(Self { entries })
    }
}
