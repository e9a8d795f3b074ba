//! GitHub bodies (`X-GitHub-Event`: `push`, `pull_request`,
//! `issue_comment`, `ping`).
//!
//! `create` and `delete` are ignored: GitHub sends a `push` with
//! `created`/`deleted` set for the same change, and acting on both would
//! start work twice.

use super::Forge;
use super::event::{self, Comment, ForgeEvent, PrAction, PullRequest, Push, Repo};
use super::parse::{ParseError, body, branch_name, ignored, urls};
use serde::Deserialize;

/// GitHub lists at most this many commits in a push; a full list may be cut.
const MAX_PUSH_COMMITS: usize = 2048;

pub(crate) fn parse(event: &str, raw: &[u8]) -> Result<ForgeEvent, ParseError> {
    match event {
        "push" => Ok(push(body(Forge::GitHub, event, raw)?)),
        "pull_request" => Ok(pull_request(body(Forge::GitHub, event, raw)?)),
        "issue_comment" => Ok(comment(body(Forge::GitHub, event, raw)?)),
        "ping" => {
            // Still a body check: a ping that is not JSON is not GitHub's.
            let _: serde_json::Value = body(Forge::GitHub, event, raw)?;
            Ok(ForgeEvent::Ping)
        }
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

#[derive(Deserialize)]
struct WireUser {
    login: String,
}

#[derive(Deserialize)]
struct WirePusher {
    name: String,
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
    created: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    #[serde(default)]
    commits: Vec<WireCommit>,
    repository: WireRepo,
    pusher: WirePusher,
}

fn push(p: WirePush) -> ForgeEvent {
    let created = p.created || event::is_zero_sha(&p.before);
    let deleted = p.deleted || event::is_zero_sha(&p.after);
    let trust = !(created || deleted || p.forced || p.commits.len() >= MAX_PUSH_COMMITS);
    let changed_files = if trust {
        event::changed_files(p.commits.iter().map(|c| {
            (
                c.added.as_deref().unwrap_or_default(),
                c.modified.as_deref().unwrap_or_default(),
                c.removed.as_deref().unwrap_or_default(),
                c.added.is_some() || c.modified.is_some() || c.removed.is_some(),
            )
        }))
    } else {
        None
    };
    ForgeEvent::Push(Push {
        repo: p.repository.repo(),
        git_ref: p.git_ref,
        before: p.before,
        after: p.after,
        created,
        deleted,
        changed_files,
        pusher: p.pusher.name,
    })
}

#[derive(Deserialize)]
struct WireBranch {
    #[serde(rename = "ref")]
    git_ref: String,
    sha: String,
    repo: Option<WireRepo>,
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
    let base_repo = pr.base.repo.as_ref().unwrap_or(&e.repository);
    let head_repo_is_fork = match &pr.head.repo {
        Some(head) => !head.full_name.eq_ignore_ascii_case(&base_repo.full_name),
        None => true,
    };
    let action = match e.action.as_str() {
        "opened" => PrAction::Opened,
        "synchronize" => PrAction::Synchronize,
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
        author: pr.user.login,
        merged: pr.merged.unwrap_or(false),
    })
}

#[derive(Deserialize)]
struct WireIssue {
    number: u64,
    /// Present (an object with URLs) exactly when the issue is a pull request.
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireComment {
    id: u64,
    body: String,
    user: WireUser,
    author_association: Option<String>,
}

#[derive(Deserialize)]
struct WireCommentEvent {
    action: String,
    issue: WireIssue,
    comment: WireComment,
    repository: WireRepo,
}

fn comment(e: WireCommentEvent) -> ForgeEvent {
    if e.action != "created" {
        return ignored(format!("issue_comment.{}", e.action));
    }
    let on_pull_request = e.issue.pull_request.as_ref().is_some_and(|v| !v.is_null());
    ForgeEvent::Comment(Comment {
        repo: e.repository.repo(),
        pr_number: on_pull_request.then_some(e.issue.number),
        issue_number: (!on_pull_request).then_some(e.issue.number),
        on_pull_request,
        body: e.comment.body,
        author: e.comment.user.login,
        author_association: e.comment.author_association,
        comment_id: e.comment.id,
        head_sha: None,
    })
}
