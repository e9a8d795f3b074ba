//! The normalized event every forge's body is parsed into.
//!
//! Field meanings are the same for every forge; where a forge does not send
//! something the field says so (`Option`, or a documented fallback). The
//! event says what happened; whether it starts anything (deletes and closed
//! pull requests start nothing, filters, comment commands) is decided by the
//! caller.

use serde::Serialize;

/// What a verified delivery says happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ForgeEvent {
    /// A ref moved, was created or was deleted (branches and tags alike).
    Push(Push),
    PullRequest(PullRequest),
    /// A new comment on an issue, a pull request or (GitLab) a commit.
    Comment(Comment),
    /// GitHub's hook-created ping; answered, starts nothing.
    Ping,
    /// Anything else: `event` names it (`create`, `release`,
    /// `issue_comment.edited` …). Answered with 2xx, starts nothing.
    Ignored {
        event: String,
    },
}

/// The repository an event belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Repo {
    /// `owner/name` (GitLab: `path_with_namespace`).
    pub full_name: String,
    /// Every URL the forge gave to clone it (HTTP first, then SSH), for
    /// matching the delivery to a configured repository.
    pub clone_urls: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Push {
    pub repo: Repo,
    /// The full ref: `refs/heads/main`, `refs/tags/v1.0`.
    pub git_ref: String,
    /// The ref's old commit; all zeros when the ref was created.
    pub before: String,
    /// The ref's new commit; all zeros when the ref was deleted.
    pub after: String,
    pub created: bool,
    pub deleted: bool,
    /// Paths changed by the pushed commits, sorted and deduplicated: the
    /// union of the payload's `added`, `modified` and `removed`. `None` when
    /// the payload cannot tell (the ref was created, deleted or
    /// force-pushed, the commit list is empty or truncated, or the forge
    /// does not list files): the caller then computes it with git.
    pub changed_files: Option<Vec<String>>,
    /// Login of whoever pushed (GitHub: the pusher's name).
    pub pusher: String,
}

/// What happened to a pull request (GitLab: merge request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrAction {
    Opened,
    /// New commits on the head branch (Gitea `synchronized`, GitLab
    /// `update` with an `oldrev`).
    Synchronize,
    Reopened,
    /// Closed, merged or not (see [`PullRequest::merged`]).
    Closed,
    /// Any other action, as the forge spells it (`edited`, `labeled`,
    /// GitLab's `update` without new commits, `approved` …).
    Other(String),
}

impl PrAction {
    /// The action as GitHub names it, which is what `on.pull_request.types`
    /// lists.
    pub fn as_github_str(&self) -> &str {
        match self {
            PrAction::Opened => "opened",
            PrAction::Synchronize => "synchronize",
            PrAction::Reopened => "reopened",
            PrAction::Closed => "closed",
            PrAction::Other(s) => s,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    /// The target repository (where the pull request lives).
    pub repo: Repo,
    pub action: PrAction,
    /// The number shown in the forge's UI (GitLab: the `iid`).
    pub number: u64,
    pub head_sha: String,
    /// Branch name, without `refs/heads/`.
    pub head_ref: String,
    /// Branch name, without `refs/heads/`.
    pub base_ref: String,
    /// Whether the head branch lives in another repository. When the
    /// payload does not say (a deleted fork, an old Gitea), this is `true`:
    /// code of unknown origin is treated as a fork's.
    pub head_repo_is_fork: bool,
    /// The pull request's author. GitLab's merge request events only carry
    /// the author's numeric id, so there it is the user who acted.
    pub author: String,
    /// Closed by merging.
    pub merged: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub repo: Repo,
    /// The pull request's number when the comment is on one.
    pub pr_number: Option<u64>,
    /// The issue's number when the comment is on a plain issue.
    pub issue_number: Option<u64>,
    pub on_pull_request: bool,
    pub body: String,
    /// The commenter's login.
    pub author: String,
    /// GitHub's `author_association` (`OWNER`, `MEMBER`, `COLLABORATOR`,
    /// `CONTRIBUTOR`, `NONE` …), for deciding who may run commands; `None`
    /// on forges that do not send it.
    pub author_association: Option<String>,
    pub comment_id: u64,
    /// The pull request's head commit when the payload carries it (GitLab
    /// notes do; GitHub and Gitea comments do not, and the caller asks the
    /// forge's API).
    pub head_sha: Option<String>,
}

pub(crate) fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// The union of the commits' file lists, or `None` when it cannot be
/// trusted (see [`Push::changed_files`]).
pub(crate) fn changed_files<'a>(
    commits: impl IntoIterator<Item = (&'a [String], &'a [String], &'a [String], bool)>,
) -> Option<Vec<String>> {
    let mut files = Vec::new();
    let mut any = false;
    for (added, modified, removed, lists_files) in commits {
        any = true;
        if !lists_files {
            return None;
        }
        files.extend(added.iter().chain(modified).chain(removed).cloned());
    }
    if !any {
        return None;
    }
    files.sort();
    files.dedup();
    Some(files)
}
