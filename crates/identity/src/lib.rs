//! The unified user system: one identity for every citybrain module.
//!
//! - [`permissions`]: modules, access levels, built-in roles and what they may do.
//! - [`Principal`]: who is calling, and in which tenants with which permissions.
//! - [`secrets`]: argon2id password hashes, API keys and refresh tokens (random, shown
//!   once, stored as SHA-256), redacted [`secrets::Secret`] strings.
//! - [`tokens`]: signed access tokens (JWT, HS256) with expiry checked against an
//!   injected [`Clock`].
//! - [`oidc`]: bearer tokens from an external OpenID Connect provider, verified with
//!   its JWKS.
//! - [`IdentityService`]: the operations (bootstrap, login, refresh, authenticate,
//!   users, memberships, keys, audit) on top of the store, each audited.
//!
//! Design decisions:
//! - Access tokens carry the caller's tenants and permissions, so authorising a request
//!   costs no database read. The price: a role change or disabling a user takes effect
//!   at the next refresh (access tokens live 15 minutes by default). API keys are looked
//!   up on every use, so revocation is immediate.
//! - API keys and refresh tokens are 256-bit random secrets, so a fast hash (SHA-256) is
//!   enough; passwords are low-entropy and get argon2id.

pub mod clock;
pub mod oidc;
pub mod permissions;
mod principal;
pub mod secrets;
mod service;
pub mod tokens;

pub use clock::{Clock, ManualClock, SystemClock};
pub use permissions::{Access, BuiltinRole, Module, Permission, PermissionSet};
pub use principal::{Denied, Grant, Principal, Subject};
pub use service::{
    AuthError, BootstrapReport, IdentityBackend, IdentityService, IssuedApiKey, NewUser,
    ServiceConfig, TokenPair,
};
