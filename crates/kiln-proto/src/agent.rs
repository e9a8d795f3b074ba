//! The agent protocol. Written down in `docs/protocol.md`.
//!
//! 1. `POST register` with an agent token → an agent id and the timings.
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

use crate::api::LogStream;
use crate::results::JobResult;
use jiff::Timestamp;
use kiln_model::workflow::Workflow;
use kiln_model::{AgentId, InstanceId, RunId, Value};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub name: String,
    pub labels: Vec<String>,
    pub capacity: u32,
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub agent_id: AgentId,
    pub heartbeat_ms: u64,
    pub lease_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub agent_id: AgentId,
    /// Capacity units not taken by jobs the agent is running.
    pub free_capacity: u32,
    /// How long the server may hold the request open.
    pub wait_ms: u64,
}

/// A leased job. Everything the agent needs to run it with the job runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
pub struct JobContexts {
    pub github: Value,
    pub inputs: Value,
    pub needs: Value,
    pub matrix: Value,
    pub strategy: Value,
    pub kiln: Value,
    pub secrets: Value,
    pub vars: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Stop the job: a person cancelled it.
    pub cancel: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogChunk {
    pub attempt: u32,
    /// 0, 1, 2, … per attempt; a chunk is stored once.
    pub seq: u64,
    pub lines: Vec<WireLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireLine {
    pub step: u32,
    pub stream: LogStream,
    pub at: Timestamp,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub attempt: u32,
    /// Steps, outputs and phases as the runner saw them; the server adds
    /// queue wait and the agent's name.
    pub result: JobResult,
}
