//! Gitea and Forgejo bodies (`X-Gitea-Event` / `X-Forgejo-Event`: `push`,
//! `pull_request`, `issue_comment`).
//!
//! Both send one `push` for every ref change, tags and deletes included
//! (Gitea's `services/repository/push.go` notifies a push before it
//! notifies `create`/`delete`), so `create` and `delete` are ignored like
//! GitHub's. All pull request activity (sync, labels, assignees) comes as
//! `pull_request` with the `action` telling which; reviews come as
//! `pull_request_approved` / `_rejected` / `_comment` and are ignored.
//! Comments on issues and pull requests both come as `issue_comment`.
//! Gitea has no ping: its "test delivery" is a push.

use super::Forge;
use super::event::{self, Comment, ForgeEvent, PrAction, PullRequest, Push, Repo};
use super::parse::{ParseError, body, branch_name, ignored, urls};
use serde::Deserialize;

pub(crate) fn parse(forge: Forge, event: &str, raw: &[u8]) -> Result<ForgeEvent, ParseError> {
    match event {
        "push" => Ok(push(body(forge, event, raw)?)),
        "pull_request" => Ok(pull_request(body(forge, event, raw)?)),
        "issue_comment" => Ok(comment(body(forge, event, raw)?)),
        other => Ok(ignored(other)),
    }
}

#[derive(Deserialize)]
struct WireRepo {
    full_name: String,
    clone_url: Option<String>,
    ssh_url: Option<String>,
}

impl WireRepo {
    fn repo(&self) -> Repo {
        Repo {
            full_name: self.full_name.clone(),
            clone_urls: urls([self.clone_url.as_ref(), self.ssh_url.as_ref()]),
        }
    }
}

/// Gitea sends both `login` and `username` (older versions only one).
#[derive(Deserialize)]
struct WireUser {
    #[serde(default)]
    login: String,
    #[serde(default)]
    username: String,
}

impl WireUser {
    fn name(self) -> String {
        if self.login.is_empty() {
            self.username
        } else {
            self.login
        }
    }
}

#[derive(Deserialize)]
struct WireCommit {
    added: Option<Vec<String>>,
    modified: Option<Vec<String>>,
    removed: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct WirePush {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    commits: Vec<WireCommit>,
    /// How many commits the push had; the list is cut to a few (Gitea's
    /// `FEED_MAX_COMMIT_NUM`). Absent in old versions.
    total_commits: Option<usize>,
    repository: WireRepo,
    pusher: WireUser,
}

fn push(p: WirePush) -> ForgeEvent {
    let created = event::is_zero_sha(&p.before);
    let deleted = event::is_zero_sha(&p.after);
    let truncated = p.total_commits.is_some_and(|n| n > p.commits.len());
    let changed_files = if created || deleted || truncated {
        None
    } else {
        event::changed_files(p.commits.iter().map(|c| {
            (
                c.added.as_deref().unwrap_or_default(),
                c.modified.as_deref().unwrap_or_default(),
                c.removed.as_deref().unwrap_or_default(),
                c.added.is_some() || c.modified.is_some() || c.removed.is_some(),
            )
        }))
    };
    ForgeEvent::Push(Push {
        repo: p.repository.repo(),
        git_ref: p.git_ref,
        before: p.before,
        after: p.after,
        created,
        deleted,
        changed_files,
        pusher: p.pusher.name(),
    })
}

#[derive(Deserialize)]
struct WireRepoName {
    full_name: String,
}

#[derive(Deserialize)]
struct WireBranch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    repo_id: Option<i64>,
    repo: Option<WireRepoName>,
}

#[derive(Deserialize)]
struct WirePr {
    user: WireUser,
    head: WireBranch,
    base: WireBranch,
    #[serde(default)]
    merged: Option<bool>,
}

#[derive(Deserialize)]
struct WirePrEvent {
    action: String,
    number: u64,
    pull_request: WirePr,
    repository: WireRepo,
}

fn pull_request(e: WirePrEvent) -> ForgeEvent {
    let pr = e.pull_request;
    let head_repo_is_fork = match (
        &pr.head.repo_id,
        &pr.base.repo_id,
        &pr.head.repo,
        &pr.base.repo,
    ) {
        (Some(h), Some(b), _, _) => h != b,
        (_, _, Some(h), Some(b)) => !h.full_name.eq_ignore_ascii_case(&b.full_name),
        (_, _, Some(h), None) => !h.full_name.eq_ignore_ascii_case(&e.repository.full_name),
        _ => true,
    };
    let action = match e.action.as_str() {
        "opened" => PrAction::Opened,
        "synchronized" => PrAction::Synchronize,
        "reopened" => PrAction::Reopened,
        "closed" => PrAction::Closed,
        other => PrAction::Other(other.to_owned()),
    };
    ForgeEvent::PullRequest(PullRequest {
        repo: e.repository.repo(),
        action,
        number: e.number,
        head_sha: pr.head.sha,
        head_ref: branch_name(&pr.head.git_ref),
        base_ref: branch_name(&pr.base.git_ref),
        head_repo_is_fork,
        author: pr.user.name(),
        merged: pr.merged.unwrap_or(false),
    })
}

#[derive(Deserialize)]
struct WireIssue {
    number: u64,
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireComment {
    id: u64,
    body: String,
    user: WireUser,
}

#[derive(Deserialize)]
struct WireCommentEvent {
    action: String,
    issue: WireIssue,
    comment: WireComment,
    repository: WireRepo,
    is_pull: Option<bool>,
}

fn comment(e: WireCommentEvent) -> ForgeEvent {
    if e.action != "created" {
        return ignored(format!("issue_comment.{}", e.action));
    }
    let on_pull_request = e
        .is_pull
        .unwrap_or_else(|| e.issue.pull_request.as_ref().is_some_and(|v| !v.is_null()));
    ForgeEvent::Comment(Comment {
        repo: e.repository.repo(),
        pr_number: on_pull_request.then_some(e.issue.number),
        issue_number: (!on_pull_request).then_some(e.issue.number),
        on_pull_request,
        body: e.comment.body,
        author: e.comment.user.name(),
        author_association: None,
        comment_id: e.comment.id,
        head_sha: None,
    })
}
