//! The forge's HTTP API as kiln uses it: one port, [`ForgeApi`].
//!
//! The server talks to GitHub, Gitea/Forgejo and GitLab through this trait
//! only; the adapters (HTTP, in `kiln-server`) map each call to the forge's
//! own endpoints. Tests of the server use a real HTTP server that plays the
//! forge and records what it receives.
//!
//! `repo` is always the forge's full name of the repository (`owner/name`,
//! GitLab: `group/sub/name`), as configured for the kiln repository.
//!
//! Errors: [`ApiError::NotFound`] when the forge says 404 (unknown user,
//! repository, pull request, comment), [`ApiError::Unauthorized`] for 401 or
//! 403 (a missing or too weak token), [`ApiError::Unavailable`] for anything
//! that may work when tried again (connection refused, timeouts, 5xx, rate
//! limits), [`ApiError::Invalid`] for an answer kiln cannot read.

use serde::{Deserialize, Serialize};

/// What a user may do in a repository, as the forge's permission API says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    None,
    Read,
    /// Push access (GitHub `write`/`maintain`, GitLab Developer+).
    Write,
    Admin,
}

impl Permission {
    /// May push to the repository (what comment commands require by default).
    pub fn can_write(self) -> bool {
        self >= Permission::Write
    }
}

/// A commit status state. GitHub's names; GitLab's `running`/`canceled`
/// map onto these in the adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

/// One commit status: one per workflow of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitStatus {
    pub state: StatusState,
    /// The status's name on the forge (`kiln/<workflow>`): the same context
    /// is updated in place, which is what required checks key on.
    pub context: String,
    /// One line for people (`3 jobs passed`, `skipped: no matching changes`).
    pub description: String,
    /// Link to the run in kiln.
    pub target_url: Option<String>,
}

/// An open pull request, as listed by the forge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestInfo {
    /// The number shown in the forge's UI (GitLab: the merge request `iid`).
    pub number: u64,
    pub head_sha: String,
    /// Branch name, without `refs/heads/`.
    pub head_ref: String,
    /// Branch name, without `refs/heads/`.
    pub base_ref: String,
    /// The head branch lives in another repository (or the forge does not
    /// say where).
    pub head_repo_is_fork: bool,
    pub author: String,
}

/// A comment on a pull request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentInfo {
    /// The forge's id; ids grow over time on every supported forge, which is
    /// what "comments after id N" relies on.
    pub id: u64,
    pub author: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("not allowed by the forge (check the token's scopes): {0}")]
    Unauthorized(String),
    #[error("forge unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected answer from the forge: {0}")]
    Invalid(String),
}

impl ApiError {
    /// Worth trying again later (with backoff).
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Unavailable(_))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The forge's API, for one configured forge and token.
#[async_trait::async_trait]
pub trait ForgeApi: Send + Sync {
    /// The forge's name in messages (`github`, `gitea`, `gitlab`).
    fn name(&self) -> &str;

    /// What `user` may do in `repo`. A user the forge does not know has
    /// [`Permission::None`] (not an error).
    async fn permission(&self, repo: &str, user: &str) -> ApiResult<Permission>;

    /// Create or update the status named `status.context` on `sha`.
    async fn set_status(&self, repo: &str, sha: &str, status: &CommitStatus) -> ApiResult<()>;

    /// Comment on pull request `pr`; returns the new comment's id.
    async fn create_comment(&self, repo: &str, pr: u64, body: &str) -> ApiResult<u64>;

    /// Replace the body of a comment kiln made earlier on `pr`.
    async fn edit_comment(&self, repo: &str, pr: u64, comment: u64, body: &str) -> ApiResult<()>;

    /// The repository's open pull requests.
    async fn open_pull_requests(&self, repo: &str) -> ApiResult<Vec<PullRequestInfo>>;

    /// One pull request, open or not.
    async fn pull_request(&self, repo: &str, number: u64) -> ApiResult<PullRequestInfo>;

    /// Comments on `pr` whose id is greater than `after`, oldest first.
    async fn comments_after(&self, repo: &str, pr: u64, after: u64) -> ApiResult<Vec<CommentInfo>>;
}
