//! Private set intersection, OPRF lookup and secure aggregation for citybrain, as pure
//! (sans-IO) protocol state machines.
//!
//! Nothing in this crate opens a socket, reads a file, looks at a clock or draws from the OS:
//! every session takes its randomness as a seed and exchanges opaque byte frames that the
//! caller moves over whatever transport it has (HTTP between `citybrain serve` nodes, TCP in
//! the benchmark, a `VecDeque` in tests). That keeps the protocol logic testable and fuzzable
//! in isolation, like rustls.
//!
//! * [`ecdh`]: two-party ECDH-PSI on X25519 ([`x25519`]; intersection to one or both parties,
//!   cardinality only, intersection sum), streaming in batches.
//! * [`oprf`]: 2HashDH OPRF lookup of a small set against a large published one.
//! * [`secagg`]: N-party secure sum/mean/count by pairwise masking with dropout recovery.
//! * [`manifest`] and [`audit`]: governance as data (checked before any cryptographic message;
//!   an append-only hash-chained log).
//!
//! The security model (semi-honest), what each mode reveals and the message flows are in
//! `docs/psi-security.md`.

pub mod audit;
pub mod codec;
pub mod ecdh;
pub mod elgamal;
pub mod error;
pub mod group;
pub mod local;
pub mod manifest;
pub mod oprf;
pub mod secagg;
pub mod wire;
pub mod x25519;

pub use ecdh::{PsiConfig, PsiOutput, PsiSession};
pub use error::{AbortCode, PsiError};
pub use manifest::{GovernanceError, JobManifest, PartySpec, PsiMode, Role};
