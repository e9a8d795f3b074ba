//! GitLab bodies (`X-Gitlab-Event`: `Push Hook`, `Tag Push Hook`,
//! `Merge Request Hook`, `Note Hook`).
//!
//! A system hook sends `System Hook` for every kind; its body's
//! `object_kind` then picks the parser. GitLab has no ping: its "test"
//! button sends a sample of the chosen event.

use super::Forge;
use super::event::{self, Comment, ForgeEvent, PrAction, PullRequest, Push, Repo};
use super::parse::{ParseError, body, ignored, urls};
use serde::Deserialize;

pub(crate) fn parse(event: &str, raw: &[u8]) -> Result<ForgeEvent, ParseError> {
    let kind = match event {
        "Push Hook" => "push",
        "Tag Push Hook" => "tag_push",
        "Merge Request Hook" => "merge_request",
        "Note Hook" => "note",
        "System Hook" => {
            #[derive(Deserialize)]
            struct Kind {
                object_kind: Option<String>,
            }
            let k: Kind = body(Forge::GitLab, event, raw)?;
            match k.object_kind.as_deref() {
                Some("push") => "push",
                Some("tag_push") => "tag_push",
                Some("merge_request") => "merge_request",
                Some("note") => "note",
                Some(other) => return Ok(ignored(format!("System Hook.{other}"))),
                None => return Ok(ignored(event)),
            }
        }
        other => return Ok(ignored(other)),
    };
    match kind {
        "push" | "tag_push" => Ok(push(body(Forge::GitLab, event, raw)?)),
        "merge_request" => Ok(merge_request(body(Forge::GitLab, event, raw)?)),
        _ => Ok(note(body(Forge::GitLab, event, raw)?)),
    }
}

#[derive(Deserialize)]
struct WireProject {
    path_with_namespace: String,
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
}

impl WireProject {
    fn repo(&self) -> Repo {
        Repo {
            full_name: self.path_with_namespace.clone(),
            clone_urls: urls([self.git_http_url.as_ref(), self.git_ssh_url.as_ref()]),
        }
    }
}

#[derive(Deserialize)]
struct WireUser {
    username: String,
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
    /// The list is cut to 20 commits; this is the real count.
    total_commits_count: Option<usize>,
    user_username: String,
    project: WireProject,
}

fn push(p: WirePush) -> ForgeEvent {
    let created = event::is_zero_sha(&p.before);
    let deleted = event::is_zero_sha(&p.after);
    let truncated = p.total_commits_count.is_some_and(|n| n > p.commits.len());
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
        repo: p.project.repo(),
        git_ref: p.git_ref,
        before: p.before,
        after: p.after,
        created,
        deleted,
        changed_files,
        pusher: p.user_username,
    })
}

#[derive(Deserialize)]
struct WireLastCommit {
    id: String,
}

#[derive(Deserialize)]
struct WireMr {
    iid: u64,
    action: Option<String>,
    last_commit: WireLastCommit,
    source_branch: String,
    target_branch: String,
    source_project_id: Option<u64>,
    target_project_id: Option<u64>,
    /// The previous head, present on `update` exactly when commits were
    /// pushed.
    oldrev: Option<String>,
    state: Option<String>,
}

#[derive(Deserialize)]
struct WireMrEvent {
    object_attributes: WireMr,
    user: WireUser,
    project: WireProject,
}

fn merge_request(e: WireMrEvent) -> ForgeEvent {
    let mr = e.object_attributes;
    let action_str = mr.action.as_deref().unwrap_or_default();
    let action = match action_str {
        "open" => PrAction::Opened,
        "update" if mr.oldrev.as_deref().is_some_and(|r| !r.is_empty()) => PrAction::Synchronize,
        "reopen" => PrAction::Reopened,
        "close" | "merge" => PrAction::Closed,
        other => PrAction::Other(other.to_owned()),
    };
    let head_repo_is_fork = match (mr.source_project_id, mr.target_project_id) {
        (Some(s), Some(t)) => s != t,
        _ => true,
    };
    ForgeEvent::PullRequest(PullRequest {
        repo: e.project.repo(),
        action,
        number: mr.iid,
        head_sha: mr.last_commit.id,
        head_ref: mr.source_branch,
        base_ref: mr.target_branch,
        head_repo_is_fork,
        author: e.user.username,
        merged: action_str == "merge" || mr.state.as_deref() == Some("merged"),
    })
}

#[derive(Deserialize)]
struct WireNote {
    id: u64,
    note: String,
    noteable_type: String,
    action: Option<String>,
}

#[derive(Deserialize)]
struct WireNoteMr {
    iid: u64,
    last_commit: Option<WireLastCommit>,
}

#[derive(Deserialize)]
struct WireNoteIssue {
    iid: u64,
}

#[derive(Deserialize)]
struct WireNoteEvent {
    object_attributes: WireNote,
    user: WireUser,
    project: WireProject,
    merge_request: Option<WireNoteMr>,
    issue: Option<WireNoteIssue>,
}

fn note(e: WireNoteEvent) -> ForgeEvent {
    if let Some(action) = e.object_attributes.action.as_deref()
        && action != "create"
    {
        return ignored(format!("Note Hook.{action}"));
    }
    let mr = match (e.object_attributes.noteable_type.as_str(), e.merge_request) {
        ("MergeRequest", Some(mr)) => Some(mr),
        _ => None,
    };
    let issue_number = match e.object_attributes.noteable_type.as_str() {
        "Issue" => e.issue.map(|i| i.iid),
        _ => None,
    };
    ForgeEvent::Comment(Comment {
        repo: e.project.repo(),
        pr_number: mr.as_ref().map(|m| m.iid),
        issue_number,
        on_pull_request: mr.is_some(),
        body: e.object_attributes.note,
        author: e.user.username,
        author_association: None,
        comment_id: e.object_attributes.id,
        head_sha: mr.and_then(|m| m.last_commit).map(|c| c.id),
    })
}
