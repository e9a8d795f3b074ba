//! The results document: what happened in a run, job by job and step by
//! step, with where the time went. Schema: `docs/results.md`.

use jiff::Timestamp;
// Named `AnyValue` here, not `Value`: utoipa's derive takes any type
// named `Value` for serde_json's and writes the type-less schema `{}`,
// which utoipa's own types cannot read back; under another name the
// fields refer to kiln-model's `Value` schema (any JSON, spelled out).
use kiln_model::{Failure, JobStatus, StepStatus, Value as AnyValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The schema identifier written into every document.
pub const RESULTS_SCHEMA: &str = "kiln.results/v1";

/// What `kiln exec --json FILE` writes: one run per workflow executed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResultsDocument {
    pub schema: String,
    pub runs: Vec<RunResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunResult {
    /// Workflow file, relative to the repository root.
    pub workflow_file: String,
    pub workflow_name: String,
    pub event: String,
    /// The commit the run is pinned to, when known.
    pub commit: Option<String>,
    pub git_ref: Option<String>,
    pub status: JobStatus,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub duration_ms: u64,
    pub jobs: Vec<JobResult>,
}

/// One job instance (one matrix combination) and one attempt of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobResult {
    /// The key under `jobs:`.
    pub job: String,
    /// Display name, with the matrix combination (`test (ubuntu, 3.12)`).
    pub name: String,
    pub matrix: Option<BTreeMap<String, AnyValue>>,
    pub status: JobStatus,
    /// Why the job ended as it did, when that is not obvious from the
    /// steps (`timed out after 5m`, `skipped: if condition was false`).
    pub reason: Option<String>,
    /// For a failed attempt: why, by class (`agent-lost`, `checkout`,
    /// `timeout`, `exit-code`, `other`), the step that failed the job and
    /// its exit code. Decides whether the job is retried (`retry:`).
    /// `null` for any other status, and in documents of older kilns.
    #[serde(default)]
    pub failure: Option<Failure>,
    pub attempt: u32,
    /// Where it ran: `local` for `kiln exec`, the agent's name on a server.
    pub agent: Option<String>,
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: u64,
    /// Where the time went, in order.
    pub phases: Vec<Phase>,
    pub outputs: BTreeMap<String, String>,
    pub steps: Vec<StepResult>,
    /// For a deploy (a job with an `environment`) that reached its health
    /// check: what became of the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployOutcome>,
}

/// What a deploy's health check (and rollback) left the environment in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeployOutcome {
    /// The health check passed (or there was none): the environment runs
    /// the job's commit.
    Healthy,
    /// The health check never passed and the `rollback:` steps ran: the
    /// environment is back at its last good commit.
    RolledBack,
    /// The rollback steps themselves failed: the environment's state is
    /// unknown and marked unhealthy.
    RollbackFailed,
    /// The health check never passed and there were no `rollback:` steps:
    /// the environment runs the job's commit and is marked unhealthy.
    Unhealthy,
}

/// A span of a job's life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Phase {
    pub kind: PhaseKind,
    /// For steps, the step's display name; otherwise the kind's name.
    pub name: String,
    pub started_at: Timestamp,
    pub duration_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PhaseKind {
    /// Ready to run (needs done) until started.
    QueueWait,
    /// Preparing the job's workspace (copy or checkout).
    Workspace,
    Step,
    /// One attempt of a deploy's health check (`environment.health-check`).
    HealthCheck,
    /// One `rollback:` step of a deploy whose health check never passed.
    Rollback,
    /// Stopping leftovers and removing the workspace.
    Cleanup,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepResult {
    /// 1-based position in the job.
    pub number: u32,
    pub id: Option<String>,
    pub name: String,
    /// The result after `continue-on-error` (GitHub's `conclusion`).
    pub status: StepStatus,
    /// The raw result (GitHub's `outcome`).
    pub outcome: StepStatus,
    pub exit_code: Option<i32>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: u64,
    /// Why the step failed or was skipped, in words.
    pub reason: Option<String>,
}
