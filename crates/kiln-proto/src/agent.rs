//! The agent protocol. Written down in `docs/protocol.md`.
//!
//! 1. `POST register` with an agent token → an agent id, a session secret
//!    and the timings. Every later call carries the secret in the
//!    [`SESSION_HEADER`]: it names the agent, and a report on a job is
//!    accepted only from the agent holding that attempt's lease (403,
//!    kind `not-lease-holder`, otherwise). Registering again under the same
//!    name replaces the session: the previous one gets 401.
//! 2. `POST claim` long-polls: the server answers at once when a job that
//!    fits the agent's labels and free capacity is queued, or the moment one
//!    becomes ready, or with 204 after `wait_ms`.
//! 3. The [`Assignment`] is a lease; its `attempt` is the fencing token.
//!    Every later call carries it; a stale one gets 409 and changes nothing.
//! 4. `POST heartbeat` every `heartbeat_ms` extends the lease; its reply
//!    says whether the job was cancelled.
//! 5. `POST logs` ships numbered chunks; a chunk seen before is accepted
//!    and ignored, so retries are safe.
//! 6. `POST complete` reports the result once; retried until acknowledged.
//! 7. `POST work` does 2, 5 (the last chunk) and 6 in one round trip: it
//!    carries the results of finished attempts, each with its last log
//!    lines, and asks for as many jobs as the free capacity takes. In
//!    steady state a job costs this one call (plus heartbeats when it runs
//!    longer than `heartbeat_ms`). `claim`, `logs` and `complete` stay for
//!    agents that predate it.

use crate::api::LogStream;
use crate::results::JobResult;
use jiff::Timestamp;
use kiln_model::workflow::Workflow;
// Named `AnyValue` here, not `Value`: utoipa's derive takes any type
// named `Value` for serde_json's and writes the type-less schema `{}`,
// which utoipa's own types cannot read back; under another name the
// fields refer to kiln-model's `Value` schema (any JSON, spelled out).
use kiln_model::{AgentId, InstanceId, RunId, Value as AnyValue};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    pub name: String,
    pub labels: Vec<String>,
    pub capacity: u32,
    pub version: String,
}

/// The header that carries an agent's [`SessionSecret`] on every call after
/// `register`.
pub const SESSION_HEADER: &str = "kiln-agent-session";

/// The secret that names one registration of an agent. Its value is never
/// printed (`Debug` shows a placeholder); the server keeps only its hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SessionSecret(String);

impl SessionSecret {
    pub fn new(secret: String) -> SessionSecret {
        SessionSecret(secret)
    }

    /// The secret itself, for the header and for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterResponse {
    pub agent_id: AgentId,
    /// Send it in [`SESSION_HEADER`] on every later call.
    pub session: SessionSecret,
    pub heartbeat_ms: u64,
    pub lease_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimRequest {
    pub agent_id: AgentId,
    /// Capacity units not taken by jobs the agent is running.
    pub free_capacity: u32,
    /// How long the server may hold the request open.
    pub wait_ms: u64,
}

/// `POST work`: results to record, then a claim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkRequest {
    pub agent_id: AgentId,
    /// Finished attempts, recorded in this order before anything is
    /// claimed (at most [`MAX_REPORTS`]).
    #[serde(default)]
    pub reports: Vec<Report>,
    /// Capacity units not taken by jobs the agent is running: the claim
    /// leases jobs up to this many units (0: report only).
    pub free_capacity: u32,
    /// How long the server may wait for a job when none is ready (0:
    /// answer at once). Answered at once whenever it leases a job.
    pub wait_ms: u64,
}

/// Most reports one `work` call may carry.
pub const MAX_REPORTS: usize = 64;

/// Most jobs one `work` call leases, whatever the free capacity.
pub const MAX_JOBS_PER_CLAIM: u32 = 32;

/// A finished attempt: its last log lines, then its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub job: InstanceId,
    /// The fencing token.
    pub attempt: u32,
    /// The attempt's last chunk of log lines (numbered after those sent
    /// with `logs`), stored with the result; absent when nothing was left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogChunk>,
    pub result: JobResult,
}

/// The answer to `work`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkResponse {
    /// One per report, in the request's order.
    pub reports: Vec<ReportOutcome>,
    /// The jobs leased to the agent now, at most its free capacity.
    pub jobs: Vec<Assignment>,
}

/// What became of one report. `error` is absent when it was recorded;
/// otherwise its kind says what to do, as for `complete`: `stale` and
/// `not-lease-holder` end the attempt for the agent (nothing changed: a
/// report sent again after a lost answer gets `stale`, the first copy
/// was recorded), `conflict` and `internal` are worth sending again,
/// others are final.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportOutcome {
    pub job: InstanceId,
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::api::ErrorBody>,
}

/// A leased job. Everything the agent needs to run it with the job runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    pub job: InstanceId,
    /// The fencing token.
    pub attempt: u32,
    pub run: RunId,
    pub repo_name: String,
    pub repo_url: String,
    pub commit: String,
    /// The workflow at that commit, already validated by the server.
    pub workflow: Workflow,
    /// Index of the job in `workflow.jobs`.
    pub job_index: usize,
    pub name: String,
    pub contexts: JobContexts,
    pub lease_ms: u64,
    pub heartbeat_ms: u64,
}

/// The job-level expression contexts, computed by the server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobContexts {
    pub github: AnyValue,
    pub inputs: AnyValue,
    pub needs: AnyValue,
    pub matrix: AnyValue,
    pub strategy: AnyValue,
    pub kiln: AnyValue,
    pub secrets: AnyValue,
    pub vars: AnyValue,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatReply {
    /// Stop the job: a person cancelled it.
    pub cancel: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogChunk {
    pub attempt: u32,
    /// 0, 1, 2, … per attempt; a chunk is stored once.
    pub seq: u64,
    pub lines: Vec<WireLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WireLine {
    pub step: u32,
    pub stream: LogStream,
    pub at: Timestamp,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Completion {
    pub attempt: u32,
    /// Steps, outputs and phases as the runner saw them; the server adds
    /// queue wait and the agent's name.
    pub result: JobResult,
}
