//! Records the ports read and write.

use jiff::Timestamp;
use kiln_core::gate::{Approval, GateKind};
use kiln_model::workflow::Workflow;
use kiln_model::{AgentId, FailureClass, InstanceId, JobStatus, RepoId, RetryPolicy, RunId, Value};
use kiln_proto::agent::JobContexts;
use kiln_proto::api::{LogEntry, Role, Waiting};
use kiln_proto::results::DeployOutcome;
use kiln_proto::results::JobResult;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct RepoRecord {
    pub id: RepoId,
    pub name: String,
    pub url: String,
    pub created_at: Timestamp,
}

/// The contexts fixed for a whole run (stored as JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunContexts {
    pub github: Value,
    pub inputs: Value,
    pub kiln: Value,
    /// `kiln retry --failed-only`: jobs (by key) that succeeded in the run
    /// retried, with their outputs; they are not run again.
    #[serde(default)]
    pub reuse: BTreeMap<String, BTreeMap<String, String>>,
    /// The run this one retries.
    #[serde(default)]
    pub retry_of: Option<RunId>,
    /// The pull request (merge request `iid` on GitLab) the run belongs to:
    /// its progress is reported there.
    #[serde(default)]
    pub pull_request: Option<u64>,
    /// The code comes from a fork: the run gets no secrets.
    #[serde(default)]
    pub from_fork: bool,
    /// `kiln deploy --force`: the run's deploys pass the stale guard.
    #[serde(default)]
    pub force_deploy: bool,
    /// The repository's default priority when the run was created (its
    /// jobs' priority unless the workflow or the job sets one).
    #[serde(default)]
    pub repo_priority: i32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    pub repo: RepoId,
    pub workflow_file: String,
    pub workflow_name: String,
    pub commit: String,
    pub git_ref: Option<String>,
    pub event: String,
    /// `None` when the workflow at the commit is invalid; `error` says why.
    pub workflow: Option<Workflow>,
    pub contexts: RunContexts,
    /// Initial status: `Queued`, or `Failure` for an invalid workflow.
    pub status: JobStatus,
    pub error: Option<String>,
    /// The run graph (see `kiln_core::graph`), in its stored parts.
    pub graph: Option<GraphParts>,
    /// Why the run may not start yet (set with `gate` for a workflow-level
    /// concurrency group, alone for a fork's pull request).
    pub hold: Option<Waiting>,
    /// The run enters this gate (workflow-level `concurrency:`).
    pub gate: Option<NewGate>,
    pub now: Timestamp,
}

/// A run graph as the store keeps it, opaque to the store: a small head
/// and one record per node, numbered from 0 (`kiln_core::graph::RunGraph::to_parts`).
/// Transitions rewrite the head and the nodes they changed
/// ([`Transition::graph_nodes`]), never the whole graph.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphParts {
    pub head: String,
    pub nodes: Vec<String>,
}

impl From<&str> for GraphParts {
    /// A graph of no nodes with this head.
    fn from(head: &str) -> Self {
        GraphParts {
            head: head.to_owned(),
            nodes: Vec::new(),
        }
    }
}

/// A run or instance entering a gate (see `kiln_core::gate`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewGate {
    pub kind: GateKind,
    /// The group's or environment's name.
    pub name: String,
    pub commit: String,
    pub force: bool,
    pub cancel_in_progress: bool,
    pub approval: Approval,
    /// Who or what started it (`push`, a token's name).
    pub actor: String,
}

/// One gate of a repository.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GateKey {
    pub repo: RepoId,
    pub kind: GateKind,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryState {
    Waiting,
    Holding,
    Done,
}

impl EntryState {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Waiting => "waiting",
            EntryState::Holding => "holding",
            EntryState::Done => "done",
        }
    }
}

/// A run or instance in a gate, with the status of its subject.
#[derive(Clone, Debug, PartialEq)]
pub struct GateEntryRecord {
    pub id: i64,
    pub key: GateKey,
    pub run: RunId,
    /// `None`: the entry is the whole run.
    pub instance: Option<InstanceId>,
    /// The job key of the instance.
    pub job_key: Option<String>,
    pub commit: String,
    pub state: EntryState,
    pub force: bool,
    pub cancel_in_progress: bool,
    pub approval: Approval,
    pub approver: Option<String>,
    pub actor: String,
    pub outcome: Option<String>,
    /// The status of the run or instance the entry stands for.
    pub subject_status: JobStatus,
    /// The instance's deploy outcome, once it completed.
    pub deploy: Option<DeployOutcome>,
    pub created_at: Timestamp,
    pub released_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// What an environment runs.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentRecord {
    pub repo: RepoId,
    pub name: String,
    pub commit: String,
    pub healthy: bool,
    pub run: RunId,
    /// The gate entry of the deploy that put it there.
    pub entry: i64,
    pub deployed_by: String,
    pub deployed_at: Timestamp,
}

/// How an entry leaves its gate.
#[derive(Clone, Debug, PartialEq)]
pub struct EndEntry {
    pub id: i64,
    /// Recorded as the entry's outcome (`success`, `superseded by …`).
    pub outcome: String,
    /// For an entry whose subject is still queued and held: end the subject
    /// with this status and `outcome` as its reason (an instance is then
    /// fed back to its graph; a run ends at once).
    pub end_subject: Option<JobStatus>,
    /// The environment's new state, written in the same transaction.
    pub environment: Option<EnvironmentRecord>,
    pub now: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub id: RunId,
    pub repo: RepoId,
    pub repo_name: String,
    pub repo_url: String,
    pub workflow_file: String,
    pub workflow_name: String,
    pub commit: String,
    pub git_ref: Option<String>,
    pub event: String,
    pub workflow: Option<Workflow>,
    pub contexts: RunContexts,
    pub status: JobStatus,
    pub error: Option<String>,
    /// The head of its run graph ([`GraphParts::head`]); the nodes are
    /// read apart ([`crate::RunStore::graph_nodes`]).
    pub graph: Option<String>,
    /// Why the run has not started yet.
    pub hold: Option<Waiting>,
    /// Optimistic-concurrency version, bumped by every transition.
    pub version: i64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// A job instance to create in a transition.
#[derive(Clone, Debug, PartialEq)]
pub struct NewInstance {
    pub node: u32,
    pub index: u32,
    pub job_key: String,
    pub name: String,
    pub matrix: Option<Value>,
    pub runs_on: Vec<String>,
    pub weight: u32,
    /// Claim order: higher first (0 by default).
    pub priority: i32,
    /// `Queued` enters the queue; `Skipped`, `Failure`, `Cancelled` are
    /// terminal at once (and count as applied to the graph).
    pub status: JobStatus,
    pub reason: Option<String>,
    pub contexts: JobContexts,
    /// Which failed attempts are tried again, and how often (`retry:`, or
    /// the server's default: agent loss and checkout, two retries).
    pub retry: RetryPolicy,
    /// The instance enters this gate and is held until released.
    pub gate: Option<(NewGate, Waiting)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub run: RunId,
    pub repo: RepoId,
    pub node: u32,
    pub index: u32,
    pub job_key: String,
    pub name: String,
    pub matrix: Option<Value>,
    pub runs_on: Vec<String>,
    pub weight: u32,
    pub status: JobStatus,
    /// Claim order: higher first.
    pub priority: i32,
    /// The current or last attempt (0 before the first claim).
    pub attempt: u32,
    /// Its retry policy (`max` retries: `max + 1` attempts in all).
    pub retry: RetryPolicy,
    pub agent: Option<AgentId>,
    pub agent_name: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub cancel_requested: bool,
    pub reason: Option<String>,
    /// Why a queued instance is not offered to agents yet.
    pub hold: Option<Waiting>,
    pub contexts: JobContexts,
    /// The last attempt's result, once complete.
    pub result: Option<JobResult>,
    /// False while a terminal status has not been fed to the run graph.
    pub graph_applied: bool,
    pub queued_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// The light view of an instance that run transitions need: where it sits
/// in the graph, its status, and its outputs (nothing else is decoded).
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceState {
    pub id: InstanceId,
    pub node: u32,
    pub index: u32,
    pub job_key: String,
    pub status: JobStatus,
    /// The job outputs of its result, once complete.
    pub outputs: BTreeMap<String, String>,
}

/// One attempt of an instance, for the results document.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub instance: InstanceId,
    pub attempt: u32,
    pub agent_name: String,
    /// `Running`, or how it ended.
    pub status: JobStatus,
    /// `agent-lost`, `cancelled`, … when it did not complete normally.
    pub reason: Option<String>,
    /// Why it failed, by class, when it failed and the class is known.
    pub failure: Option<FailureClass>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub result: Option<JobResult>,
}

/// An atomic step of a run: applied only if the run's version is still
/// `expected_version`, else [`crate::StoreError::Conflict`] and nothing changes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Transition {
    pub expected_version: i64,
    /// The graph's new head.
    pub graph: String,
    /// The graph's nodes that changed, by number: written, the others kept.
    pub graph_nodes: Vec<(u32, String)>,
    pub status: Option<JobStatus>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub new_instances: Vec<NewInstance>,
    /// Instances to stop: a queued one becomes `Cancelled` at once (with
    /// `graph_applied = false`, so the engine feeds it back); a running one
    /// gets `cancel_requested`, seen by its agent at the next heartbeat.
    pub cancel: Vec<InstanceId>,
    /// Instances whose terminal status this transition fed to the graph.
    pub applied: Vec<InstanceId>,
    /// Why the run ends as it does (kept unless the run already has one).
    pub error: Option<String>,
    pub now: Timestamp,
}

/// A queued instance as dispatch sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub id: InstanceId,
    pub repo: RepoId,
    pub runs_on: Vec<String>,
    pub weight: u32,
    pub priority: i32,
}

/// Whose turn it is to poll a repository ([`crate::TriggerStore::claim_poll`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollTurn {
    /// This caller polls now; the next poll is due at the `next` it gave.
    Mine,
    /// Someone polled already; the next poll is due then.
    NotDue(Timestamp),
}

/// An event key to claim together with the runs it creates
/// ([`crate::RunStore::create_runs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct EventClaim {
    pub repo: RepoId,
    /// `push:refs/heads/main:<sha>`, `pull_request:7:<sha>`, `comment:<id>` …
    pub key: String,
    pub now: Timestamp,
}

/// An agent asking for work.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimAsk {
    pub agent: AgentId,
    /// The labels it serves: its own and the aliases they satisfy
    /// (`kiln_core::dispatch::effective_labels`).
    pub labels: Vec<String>,
    pub capacity: u32,
    /// Capacity not taken by its running jobs.
    pub free: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AgentRecord {
    pub id: AgentId,
    pub name: String,
    pub labels: Vec<String>,
    pub capacity: u32,
    pub last_seen: Timestamp,
    /// When the server declared the agent lost; `None` while it is online
    /// (any call from the agent clears it).
    pub lost_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TokenRecord {
    pub id: i64,
    pub role: Role,
    pub name: Option<String>,
    pub created_at: Timestamp,
}

/// What [`complete`](crate::QueueStore::complete) did with a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completed {
    pub run: RunId,
    /// True when the attempt failed in a way the instance's retry policy
    /// retries: the instance is queued again (at its old place) instead of
    /// ending, and there is nothing to feed to the run graph.
    pub requeued: bool,
}

/// A finished attempt as its agent reports it ([`crate::QueueStore::complete_many`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedAttempt {
    pub instance: InstanceId,
    pub attempt: u32,
    /// Its last log chunk: the chunk's number and lines.
    pub logs: Option<(u64, Vec<LogEntry>)>,
    pub result: JobResult,
}

/// What a lease expiry did to one instance.
#[derive(Clone, Debug, PartialEq)]
pub struct Expired {
    pub instance: InstanceId,
    pub run: RunId,
    pub attempt: u32,
    /// True when it went back to the queue; false when it failed for good
    /// (attempts used up, or it had been cancelled).
    pub requeued: bool,
}

/// A page of log lines and where to continue from.
#[derive(Clone, Debug, PartialEq)]
pub struct LogPage {
    pub entries: Vec<kiln_proto::api::LogEntry>,
    /// Pass back as `after` to get only newer chunks.
    pub cursor: i64,
}

/// How a repository's events reach kiln and who may start runs from a
/// pull request (`kiln repo add --poll-interval … --allow …`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerSettings {
    /// Seconds between polls of the remote (`git ls-remote`); 0 turns
    /// polling off.
    pub poll_interval_secs: u32,
    /// The secret webhooks are signed with; `None` refuses every delivery.
    pub webhook_secret: Option<String>,
    /// Runs of pull requests from forks wait for approval before starting.
    pub fork_approval: bool,
    /// Logins allowed to run comment commands. Empty: whoever has write
    /// access on the forge.
    pub command_allowlist: Vec<String>,
    /// Answer a refused comment command with a reply saying why.
    pub reply_to_outsiders: bool,
    /// The priority of the repository's jobs unless their workflow or
    /// job sets one (`kiln repo add --priority N`).
    pub priority: i32,
}

impl Default for TriggerSettings {
    fn default() -> Self {
        TriggerSettings {
            poll_interval_secs: 60,
            webhook_secret: None,
            fork_approval: true,
            command_allowlist: Vec::new(),
            reply_to_outsiders: true,
            priority: 0,
        }
    }
}

/// A schedule's stored state: the cron it was computed for and when it
/// fires next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleState {
    pub cron: String,
    pub next_fire: Timestamp,
}

/// An open pull request as API polling last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestPoll {
    pub number: u64,
    pub head_sha: String,
    /// The id of the newest comment already read (0: none).
    pub last_comment: u64,
}

/// An API token sealed with the server's secret key (AEAD): the store
/// never sees it in clear. `Debug` shows only the lengths.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// The AEAD nonce used for this ciphertext (unique per sealing).
    pub nonce: Vec<u8>,
    /// Ciphertext with its authentication tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret({} bytes, redacted)", self.ciphertext.len())
    }
}

/// A repository's forge: where its statuses and comments go.
#[derive(Clone, Debug, PartialEq)]
pub struct ForgeRecord {
    pub repo: RepoId,
    pub kind: kiln_proto::api::ForgeKind,
    /// API root, e.g. `https://api.github.com`.
    pub api_url: String,
    /// The repository's full name on the forge.
    pub full_name: String,
    pub token: SealedSecret,
    /// Set by every change; lets readers notice a change (cache keys).
    pub updated_at: Timestamp,
}

/// One run's pending or done report to its forge (the outbox row).
#[derive(Clone, Debug, PartialEq)]
pub struct ForgeReport {
    pub run: RunId,
    /// Bumped by every request; a delivery counts only for the request it
    /// read ([`ForgeStore::report_delivered`](crate::ForgeStore::report_delivered)).
    pub seq: i64,
    /// Something is still to be delivered.
    pub due: bool,
    /// Failed tries since the last delivery.
    pub attempts: u32,
    /// Not before this time.
    pub next_at: Timestamp,
    pub last_error: Option<String>,
    /// The pull request comment kiln made for the run.
    pub comment_id: Option<u64>,
}
