//! kiln's engine: it carries out `kiln-core`'s pure decisions against the
//! storage ports. Runs and their transitions, the queue's claims, leases
//! and attempts, gates (concurrency groups, deploys), triggers (webhooks,
//! polling, comment commands, schedules), repository mirrors, live-log
//! wake-ups and forge reports. It serves no HTTP: `kiln-server` maps its
//! typed [`engine::error::EngineError`] to statuses at its edge.
//!
//! - [`engine`]: the [`Engine`](engine::Engine), its transitions, claims,
//!   gates, results and waiting reasons;
//! - [`triggers`]: events from forges, polling and schedules become runs;
//! - [`git`]: bare mirrors of repositories;
//! - [`signals`]: the wake-ups port (a hint to re-read the store);
//! - [`forge`]: the forge adapters (from `kiln-forge-clients`) and what
//!   the engine reports through them.
//!
//! Design note: `docs/design/server.md` (the engine's half).

pub mod engine;
pub mod forge;
pub mod git;
pub mod signals;
pub mod triggers;
