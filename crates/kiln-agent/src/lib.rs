//! kiln's agent: a process that pulls jobs from a kiln server and runs
//! them on this machine with the same job runner and process executor as
//! `kiln exec`.
//!
//! The agent speaks the protocol in `kiln_proto::agent` (written down in
//! `docs/protocol.md`) through `kiln_client`. Its life: register (retrying
//! while the server is unreachable), then long-poll `claim` with the free
//! capacity, run each assignment in its own task, and claim again at once
//! whenever capacity is free; a claim is never delayed by a polling
//! interval. Per job, three tasks cooperate:
//!
//! - the runner ([`kiln_exec::runner::run_job`]) in a fresh workspace, with
//!   `actions/checkout` served from a local mirror of the repository
//!   (`checkout`);
//! - the heartbeat (`heartbeat`), which keeps the lease, turns a server-side
//!   cancel into a graceful cancel, and kills the job when the lease is
//!   gone (409);
//! - the log shipper (`logs`, `spool`), which sends numbered chunks and
//!   retries each until acknowledged, spilling to disk rather than dropping
//!   lines while the server is down.
//!
//! After the runner returns the logs are flushed, then the result is
//! reported and retried until acknowledged. Invariants (the agent's side
//! of `docs/protocol.md`):
//!
//! - capacity in use is the sum of the weights of the jobs whose task has
//!   not ended, and a task ends only after its completion was acknowledged
//!   (or the attempt was found to be stale), so the agent never claims
//!   more than the server believes it has free;
//! - every call about a job carries the assignment's `attempt`; a 409 on
//!   any of them means the attempt is no longer this agent's, and nothing
//!   more is sent for it;
//! - nothing a job printed is dropped while its attempt is still ours.

mod backoff;
mod checkout;
mod error;
mod events;
mod heartbeat;
mod job;
mod lease_loop;
mod logs;
mod spool;
mod workdir;

pub use error::AgentError;
pub use events::{AgentEvents, Call, Event, JobEnd, StderrEvents};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What an agent needs to know. Built by the composition root (the `kiln`
/// binary) from flags, environment and defaults.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The server's base URL, like `http://127.0.0.1:8080`.
    pub server: String,
    /// An agent token (role `agent`).
    pub token: String,
    /// The agent's name; registering again under the same name keeps the
    /// same agent id on the server.
    pub name: String,
    /// Labels matched against the `runs-on` of jobs.
    pub labels: Vec<String>,
    /// Capacity units; a job takes its `weight:` of them (at least 1 unit
    /// of capacity is required).
    pub capacity: u32,
    /// Where job workspaces (`jobs/`) and repository mirrors (`mirrors/`)
    /// live. One agent per directory: leftovers under `jobs/` are removed
    /// at start.
    pub work_dir: PathBuf,
    /// SIGTERM-to-SIGKILL grace when a step is cancelled or times out.
    pub kill_grace: Duration,
    /// How long the server may hold a claim open when nothing fits.
    pub claim_wait: Duration,
    /// Executors' settings: container limits per weight unit, socket
    /// mounts, pull policy.
    pub exec: kiln_exec::config::ExecConfig,
}

/// Run the agent until `shutdown` is cancelled and the jobs it is running
/// have finished and been reported. Cancelling `shutdown` stops claiming
/// (an open claim is abandoned) but lets running jobs finish; stopping
/// them sooner is the caller's business (drop the future, or exit).
///
/// Agent events (registration, retries, jobs) are written to stderr; use
/// [`run_with`] to receive them instead.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    run_with(config, shutdown, Arc::new(StderrEvents)).await
}

/// [`run`], reporting what happens to `events` instead of stderr.
///
/// Errors: [`AgentError::Config`] before anything starts; [`AgentError::Io`]
/// when the work directory cannot be prepared; [`AgentError::Rejected`]
/// when the server refuses the agent for good (401, 403, or a request it
/// calls invalid), returned once the running jobs have finished.
pub async fn run_with(
    config: AgentConfig,
    shutdown: CancellationToken,
    events: Arc<dyn AgentEvents>,
) -> Result<(), AgentError> {
    lease_loop::run(config, shutdown, events).await
}
