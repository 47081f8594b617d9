//! The Handle System node: the I/O shell around `handle-proto`.
//!
//! - [`store`]: the `HandleStore` trait, a compact in-memory implementation and a shared
//!   conformance test suite (`handle_store_test_suite!`) for other backends.
//! - [`durable`]: [`durable::DurableStore`], the in-memory index written through to the
//!   platform's durable `store::HandleStore` (SQLite) before a change is acknowledged.
//! - [`node`]: the operations every front end shares, including the single authorization
//!   function (HS_ADMIN, HS_VLIST groups, server admins) and the native request processor.
//! - [`native`]: UDP (one SO_REUSEPORT socket per worker thread, the resolution fast path) and
//!   TCP (tokio, mini-redis-style framing, KC keep-alive) listeners.
//! - [`rest`]: the Handle.Net v8/v9-compatible REST API and the proxy resolver as an axum `Router`.
//! - [`site`]: generated HS_SITE and the node's `did:web` document.
//! - [`identifiers`]: minting handles for the platform's entities and data sets through the
//!   unified user system, and the node's operations in the platform's audit log.
//! - [`server`]: starts all of it from a [`server::ServerConfig`].

pub mod bench;
pub mod durable;
pub mod identifiers;
pub mod native;
pub mod node;
pub mod rest;
pub mod server;
pub mod site;
pub mod store;
