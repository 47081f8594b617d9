//! The embedded store: one SQLite database file in WAL mode, no setup.
//!
//! Why SQLite: it is the most widely deployed embedded database, its file format is
//! stable and documented, WAL mode gives concurrent readers with one writer, and a
//! committed transaction survives a crash of our process (kill -9) with
//! `synchronous=NORMAL`, or a power loss with `synchronous=FULL` (see [`Durability`]).
//!
//! Concurrency model (see `engine.rs`):
//! - **One writer thread** owns the only write connection. Writes from all tasks are
//!   queued to it; it runs as many queued writes as are waiting in one transaction
//!   (group commit), each inside its own savepoint so one failing write does not undo
//!   the others, and acknowledges each write only after the commit returned.
//! - **Readers** borrow connections from a small pool on tokio's blocking threads.
//!
//! Schema changes are numbered SQL files under `migrations/`, applied in order at open
//! and tracked in `PRAGMA user_version`.

mod compute;
mod engine;
mod handle;
mod identity;
mod migrations;
mod multi_row;
mod ngsi;
mod ngsi_registrations;
mod ngsi_subscriptions;
mod ngsi_temporal;
mod secure;
mod tenant_docs;

pub use engine::{Durability, NEW_DATABASE_PAGE_SIZE, OpenOptions, SqliteStore};

/// Name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "citybrain.db";
