//! kiln's wire contract.
//!
//! One crate, used by every side: `kiln exec` writes the results document
//! defined here, the server serves it and the REST API, agents and the CLI
//! speak the types and routes declared here. Changing a type here changes
//! the contract for all of them at once, which is the point (raibid-ci's
//! server, agent and CLI each had their own idea of a job; no job ever
//! crossed).
//!
//! - [`results`]: the results document;
//! - [`api`]: the public REST API (`/api/v1`);
//! - [`agent`]: the agent protocol (`/api/v1/agent/...`), see `docs/protocol.md`;
//! - [`routes`]: every path, in one place.
//!
//! With the `openapi` feature every wire type also derives `utoipa`'s
//! `ToSchema`: the server's OpenAPI document is generated from these
//! definitions, so it cannot describe a field the wire does not carry.

pub mod agent;
pub mod api;
pub mod results;
pub mod routes;
