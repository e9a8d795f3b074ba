//! Forges as the engine sees them: the adapters and the directory of each
//! repository's forge (`kiln-forge-clients`, re-exported here), and what
//! the engine tells them: [`status`] (pure rules for commit statuses and
//! the pull request comment) and [`report`] (the outbox deliverer).

pub use kiln_forge_clients::*;

pub mod report;
pub mod status;
