//! The public REST API's bodies. Every error response is an [`ErrorBody`]
//! whose [`ErrorKind`] says what a client may do about it; status codes:
//! 400 bad input, 401 no or unknown token, 403 token lacks the role (or an
//! agent reports on a lease it does not hold), 404 unknown id, 409 conflict
//! (a duplicate name, a state that forbids the request, or a stale fencing
//! token: the kind tells them apart), 413 body too large, 500 server fault.

use jiff::Timestamp;
use kiln_model::{AgentId, InstanceId, JobStatus, RunId, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Every error: a message a person can act on, and its kind for programs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: String,
    /// Absent in answers from servers older than the field: read as
    /// [`ErrorKind::Other`], and the status code decides.
    #[serde(default)]
    pub kind: ErrorKind,
}

/// What went wrong, as a client acts on it. The HTTP status is derived
/// from it (one table, at the server's edge); two kinds may share a
/// status (`conflict` and `stale` are both 409), so clients read the kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The request is malformed or asks for something impossible: do not
    /// repeat it unchanged (400).
    Invalid,
    /// No token, or an unknown one (401).
    Unauthorized,
    /// The token's role is not enough (403).
    Forbidden,
    /// An agent reported on an attempt whose lease another agent holds
    /// (403): stop working on it.
    NotLeaseHolder,
    /// The thing named does not exist (404).
    NotFound,
    /// The current state forbids it now, or a concurrent change won:
    /// re-read, and retrying may succeed (409).
    Conflict,
    /// The fencing token (attempt) is no longer current: nothing changed,
    /// and the attempt is over for its agent (409).
    Stale,
    /// The body is larger than the server accepts (413).
    TooLarge,
    /// The server failed; retrying later may work (500).
    Internal,
    /// A kind this client does not know (a newer server), or none sent.
    #[default]
    #[serde(other)]
    Other,
}

/// What a token may do. Admin ⊃ maintainer ⊃ viewer; agent tokens reach
/// only the agent endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Maintainer,
    Viewer,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Maintainer => "maintainer",
            Role::Viewer => "viewer",
            Role::Agent => "agent",
        }
    }

    /// Does a token with this role satisfy a route that needs `needed`?
    pub fn allows(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Agent, Role::Agent) => true,
            (Role::Agent, Role::Admin | Role::Maintainer | Role::Viewer) => false,
            (Role::Admin | Role::Maintainer | Role::Viewer, Role::Agent) => false,
            (Role::Admin, Role::Admin | Role::Maintainer | Role::Viewer) => true,
            (Role::Maintainer, Role::Maintainer | Role::Viewer) => true,
            (Role::Maintainer, Role::Admin) => false,
            (Role::Viewer, Role::Viewer) => true,
            (Role::Viewer, Role::Admin | Role::Maintainer) => false,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "maintainer" => Ok(Role::Maintainer),
            "viewer" => Ok(Role::Viewer),
            "agent" => Ok(Role::Agent),
            other => Err(format!(
                "unknown role `{other}`: expected admin, maintainer, viewer or agent"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddRepo {
    pub name: String,
    /// Any git URL: file://, git://, http(s)://, ssh, or a local path.
    pub url: String,
    /// How events reach kiln; `None`: the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<TriggerSettingsRequest>,
    /// The forge that hosts the repository: commit statuses and pull
    /// request comments go there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<ForgeSettings>,
}

/// Trigger settings to give a repository; an unset field keeps its default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerSettingsRequest {
    /// Seconds between polls of the remote (default 60; 0 turns polling off).
    #[serde(default)]
    pub poll_interval_secs: Option<u32>,
    /// The secret the forge signs webhooks with (never shown again).
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Fork pull requests wait for approval before running (default true).
    #[serde(default)]
    pub fork_approval: Option<bool>,
    /// Logins allowed to run comment commands (default: forge write access).
    #[serde(default)]
    pub command_allowlist: Vec<String>,
    /// Reply to a refused comment command saying why (default true).
    #[serde(default)]
    pub reply_to_outsiders: Option<bool>,
    /// The priority of the repository's jobs unless their workflow or job
    /// sets one (default 0; -1000 to 1000).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// A repository's trigger settings as the API shows them: the webhook
/// secret only as whether one is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepoTriggers {
    pub poll_interval_secs: u32,
    pub webhook_secret_set: bool,
    pub fork_approval: bool,
    pub command_allowlist: Vec<String>,
    pub reply_to_outsiders: bool,
    /// The repository's default job priority (0 from older servers).
    #[serde(default)]
    pub priority: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RepoInfo {
    pub name: String,
    pub url: String,
    pub created_at: Timestamp,
    /// Trigger settings (absent from servers that predate them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<RepoTriggers>,
    /// The repository's forge, if one is configured (never its token).
    #[serde(default)]
    pub forge: Option<ForgeInfo>,
}

/// The kinds of forge kiln talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitea,
    Forgejo,
    Gitlab,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitea => "gitea",
            ForgeKind::Forgejo => "forgejo",
            ForgeKind::Gitlab => "gitlab",
        }
    }
}

impl std::fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ForgeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "github" => Ok(ForgeKind::Github),
            "gitea" => Ok(ForgeKind::Gitea),
            "forgejo" => Ok(ForgeKind::Forgejo),
            "gitlab" => Ok(ForgeKind::Gitlab),
            other => Err(format!(
                "unknown forge `{other}`: expected github, gitea, forgejo or gitlab"
            )),
        }
    }
}

/// A repository's forge as set by an admin (`PUT repo_forge(name)`, or
/// with [`AddRepo`]). The token goes to the server only: it is stored
/// encrypted and never sent back.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeSettings {
    pub kind: ForgeKind,
    /// The API root requests are made under (`https://api.github.com`,
    /// `https://gitea.example.com/api/v1`, `https://gitlab.com/api/v4`).
    /// Default: derived from the repository URL's host.
    #[serde(default)]
    pub api_url: Option<String>,
    /// The repository's full name on the forge (`owner/name`, GitLab
    /// `group/sub/name`). Default: derived from the repository URL's path.
    #[serde(default)]
    pub repo: Option<String>,
    /// An API token allowed to set commit statuses and comment.
    pub token: String,
}

impl std::fmt::Debug for ForgeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgeSettings")
            .field("kind", &self.kind)
            .field("api_url", &self.api_url)
            .field("repo", &self.repo)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A repository's forge as the API shows it: everything but the token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeInfo {
    pub kind: ForgeKind,
    pub api_url: String,
    /// The repository's full name on the forge.
    pub repo: String,
    /// A token is stored (always true today; the token itself is never shown).
    pub token_set: bool,
}

/// How the reporting of a run to its forge (commit statuses, the pull
/// request comment) is going.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeReportInfo {
    /// Everything asked so far has reached the forge.
    pub delivered: bool,
    /// Failed tries since the last delivery.
    pub attempts: u32,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// When the next try is due (while not delivered).
    pub next_attempt_at: Option<Timestamp>,
    /// The id of the pull request comment kiln keeps for this run.
    pub comment_id: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerRequest {
    /// A branch or tag (`main`, `refs/tags/v1`); default: the remote's HEAD.
    #[serde(default)]
    pub git_ref: Option<String>,
    /// A commit to pin instead of resolving `git_ref`.
    #[serde(default)]
    pub commit: Option<String>,
    /// Only this workflow (name, file name or stem); default: every workflow
    /// that runs on `event`.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Default `push`.
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// `NAME` or `NAME=VALUE`, visible as `kiln.flags.NAME`.
    #[serde(default)]
    pub flags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerResponse {
    pub runs: Vec<RunSummary>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunSummary {
    pub id: RunId,
    pub repo: String,
    pub workflow_name: String,
    pub workflow_file: String,
    pub commit: String,
    pub git_ref: Option<String>,
    pub event: String,
    pub status: JobStatus,
    /// Why a queued run has not started (a concurrency group, an approval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// The same, in words a person can act on (who holds the group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<WaitingReason>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    /// Why the run failed before any job ran (the diagnostics of an invalid
    /// workflow, rendered as `kiln validate` prints them).
    pub error: Option<String>,
    pub jobs: Vec<JobSummary>,
    /// Reporting to the repository's forge; `None` when it has none.
    #[serde(default)]
    pub forge: Option<ForgeReportInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSummary {
    pub id: InstanceId,
    /// The key under `jobs:`.
    pub job: String,
    pub name: String,
    pub status: JobStatus,
    /// The current or last attempt (the fencing token).
    pub attempt: u32,
    pub agent: Option<String>,
    pub runs_on: Vec<String>,
    pub weight: u32,
    /// Claim order, higher first (`priority:`; 0 from older servers).
    #[serde(default)]
    pub priority: i32,
    pub reason: Option<String>,
    /// Why a queued job is not offered to agents yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// Why a queued job waits, whatever holds it (a gate, or the agents):
    /// set for every queued job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<WaitingReason>,
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// Why a queued job (or a run held before it starts) waits, in words a
/// person can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingReason {
    pub kind: WaitingKind,
    /// `no online agent has labels [gpu] (online agents have: ...)`,
    /// `waiting behind run 40 in concurrency group \`ci-main\``, ...
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum WaitingKind {
    /// No online agent has the job's labels.
    NoMatchingAgent,
    /// Agents with the labels are online, but none has room now.
    AgentsBusy,
    /// Behind another run in a concurrency group.
    ConcurrencyGroup,
    /// Waiting for an environment's deploy lock.
    DeployLock,
    /// Waiting for `kiln approve`.
    Approval,
    /// Nothing holds it back: an agent with room takes it at its next claim.
    Ready,
}

/// Why a queued run or job does not start yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Waiting {
    pub kind: WaitKind,
    /// The environment or group waited for; for a fork's pull request, why
    /// it waits.
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum WaitKind {
    /// A deploy waits for `kiln approve`.
    Approval,
    /// A deploy waits for its environment (another deploy holds it).
    Environment,
    /// A run or job waits for its concurrency group.
    Group,
    /// A pull request from a fork waits for a maintainer's approval.
    ForkApproval,
}

impl Waiting {
    /// The status word shown in listings (`waiting-approval`, `waiting`).
    pub fn status_word(&self) -> &'static str {
        match self.kind {
            WaitKind::Approval | WaitKind::ForkApproval => "waiting-approval",
            WaitKind::Environment | WaitKind::Group => "waiting",
        }
    }
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            WaitKind::Approval => write!(f, "waiting for approval to deploy to {}", self.name),
            WaitKind::Environment => write!(f, "waiting for environment {}", self.name),
            WaitKind::Group => write!(f, "waiting for concurrency group {}", self.name),
            WaitKind::ForkApproval if self.name.is_empty() => {
                write!(f, "waiting for approval: pull request from a fork")
            }
            WaitKind::ForkApproval => f.write_str(&self.name),
        }
    }
}

/// `POST /runs/{run}/approve`: approve or reject a held deploy job (or a
/// held run, when `job` is absent).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApproveRequest {
    /// The job key under `jobs:` (every waiting instance of it).
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub reject: bool,
}

/// `POST /repos/{repo}/deploy`: deploy a commit to an environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeployRequest {
    pub environment: String,
    /// A commit, branch or tag.
    pub commit: String,
    /// Pass the stale guard (roll back by hand).
    #[serde(default)]
    pub force: bool,
}

/// An environment of a repository: what it runs and how it got there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvironmentInfo {
    pub name: String,
    /// The commit it runs; `None` before its first successful deploy.
    pub commit: Option<String>,
    pub healthy: bool,
    pub run: Option<RunId>,
    pub deployed_by: Option<String>,
    pub deployed_at: Option<Timestamp>,
    /// Deploys, newest first.
    pub history: Vec<DeployInfo>,
}

/// One deploy attempt of an environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeployInfo {
    pub run: RunId,
    pub job: Option<InstanceId>,
    pub commit: String,
    /// `waiting`, `deploying`, or how it ended (`success`, `failure`,
    /// `rolled back`, `superseded by …`, `stale: …`, `rejected by …`).
    pub state: String,
    pub forced: bool,
    /// Who or what started it.
    pub actor: String,
    pub approver: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryRequest {
    /// Rerun only the jobs that did not succeed (and what needs them).
    #[serde(default)]
    pub failed_only: bool,
}

/// One stored line of job output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    pub job: InstanceId,
    pub attempt: u32,
    /// 1-based step number; 0 for kiln's own messages about the job.
    pub step: u32,
    pub stream: LogStream,
    pub at: Timestamp,
    pub text: String,
}

/// One page of a run's stored output, oldest first: the answer to
/// `GET run_logs(id)?job=ID&after=CURSOR`. Pass `cursor` back as `after` to
/// get the lines stored since; an empty `entries` means nothing newer yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogsPage {
    pub entries: Vec<LogEntry>,
    pub cursor: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// A message from kiln itself.
    System,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentInfo {
    pub id: AgentId,
    pub name: String,
    pub labels: Vec<String>,
    pub capacity: u32,
    /// Capacity taken by running jobs.
    pub used: u32,
    pub online: bool,
    pub last_seen: Timestamp,
    /// When the server declared the agent lost (its lease ran out while it
    /// was silent); `None` while it is online.
    #[serde(default)]
    pub lost_at: Option<Timestamp>,
    pub running: Vec<InstanceId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueuedJob {
    pub id: InstanceId,
    pub run: RunId,
    pub repo: String,
    pub name: String,
    pub runs_on: Vec<String>,
    pub weight: u32,
    /// Claim order, higher first (`priority:`; 0 from older servers).
    #[serde(default)]
    pub priority: i32,
    /// Attempts made so far (more than 0: it is queued again for a retry).
    #[serde(default)]
    pub attempt: u32,
    pub queued_at: Timestamp,
    /// Why it waits (every queued job has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_reason: Option<WaitingReason>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateToken {
    pub role: Role,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    /// The secret, shown this once; the server keeps only its hash.
    pub token: String,
    pub role: Role,
    pub name: Option<String>,
}

/// Extra run information a trigger may carry into the `github` context.
pub type EventPayload = BTreeMap<String, Value>;

/// The answer to an accepted webhook delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HookAccepted {
    pub repo: String,
    /// The event as the forge named it.
    pub event: String,
    pub delivery: Option<String>,
    /// Seen before: nothing more was done.
    pub duplicate: bool,
    /// Work was handed to a background task.
    pub queued: bool,
}
