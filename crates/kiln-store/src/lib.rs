//! Storage: the ports the server's engine talks to, and their adapters.
//!
//! The store, not memory, is the source of truth: every accepted trigger,
//! transition, lease and log line is committed before the server answers,
//! so a killed server loses nothing and a second server (PostgreSQL, later)
//! can work from the same data. Ports are narrow traits by subject
//! ([`ports`]); adapters live beside them ([`sqlite`]); [`conformance`] is the
//! one suite every adapter must pass.
//!
//! Time never comes from the clock here: callers pass `now`. Design note:
//! `docs/design/store.md`.

pub mod conformance;
pub mod ports;
pub mod sqlite;
pub mod types;

pub use ports::{
    AgentStore, AuthStore, ForgeStore, LogStore, QueueStore, RepoStore, RunStore, Store,
    StoreError, TriggerStore,
};
pub use sqlite::SqliteStore;
