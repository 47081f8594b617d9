//! Sans-IO codec for the Handle System native protocol (RFC 3651/3652, DO-IRP) as spoken by
//! CNRI HANDLE.NET 7.3, plus the value formats around it.
//!
//! Design decisions:
//! - **No I/O, no clocks, no randomness.** Everything takes bytes or `&str` and returns values;
//!   times (`now`) and nonces are inputs. The server crate owns sockets and storage.
//! - **rustls-style codec.** Every wire element implements [`codec::Codec`]; decoding goes
//!   through a bounds-checked [`codec::Reader`], `read_bytes` rejects trailing data, and every
//!   failure is a typed [`InvalidMessage`] naming the field. Counts are checked against the
//!   bytes that remain before anything is allocated.
//! - **Wire bytes are the storage format.** [`value::RawValue`] lets a server filter encoded
//!   values by index, type and permission without decoding them, and
//!   [`message::MessageBuilder`] writes a response around them, so resolution is a memcpy.
//! - **CNRI is the reference** where the RFC and the deployed software disagree (4-byte
//!   timestamps, primary mask bits, TC unset on fragments, SHA-1 secret-key answers); see
//!   `docs/handle-protocol.md`.

pub mod auth;
pub mod batch;
pub mod codec;
pub mod constants;
pub mod data;
mod error;
pub mod handle;
pub mod json;
pub mod message;
pub mod udp;
pub mod value;

pub use constants::{DigestAlgorithm, OpCode, OpFlags, ResponseCode};
pub use error::InvalidMessage;
pub use message::{Body, Envelope, Header, Message, Request, Response};
pub use value::{HandleValue, ValuePermissions, ValueReference};
