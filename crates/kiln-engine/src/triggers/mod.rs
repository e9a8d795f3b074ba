//! Triggers: what happened on a forge or a remote (a webhook delivery, a
//! poll that saw a moved ref or a new pull request comment, a schedule's
//! slot) becomes runs.
//!
//! Every source produces a [`TriggerEvent`] and goes through one door,
//! [`Engine::on_event`]: each workflow at the event's commit is matched
//! ([`decide`], pure) and the runs to create and replies to post are
//! planned without writing; then the event is claimed by its key
//! (`push:<ref>:<sha>`, `pull_request:<n>:<sha>`, `comment:<id>`,
//! `schedule:<file>:<i>:<slot>`) in the same store transaction that
//! creates its runs, so that a webhook and a poll of the same change, even
//! at once, start it once. Comment commands are in `comment.rs`.
//!
//! Invariants:
//! - an event's claim and its runs are one transaction: a failure before
//!   it claims nothing (the next report, a poll, tries again), and a
//!   claimed event always has its runs; replies are posted only by the
//!   caller that claimed;
//! - a deleted ref and a closed pull request start nothing;
//! - a workflow excluded only by its path filters gets a run created
//!   `skipped` with [`decide::SKIPPED_NO_CHANGES`];
//! - a fork's pull request run is created held when the repository asks
//!   for approval, and starts only through [`Engine::release_run`];
//! - a comment command runs only for an allowed author; an unknown flag or
//!   a refused author is answered on the pull request, never ignored.
//!
//! Design note: `docs/design/triggers.md`.

mod comment;
pub mod decide;
pub mod hooks;
pub mod poller;

use crate::engine::Engine;
use crate::engine::error::EngineError;
use crate::engine::transition::{Input, new_graph};
use crate::git::GitError;
use decide::Decision;
use jiff::Timestamp;
use kiln_forge::webhook::{ForgeEvent, PrAction};
use kiln_model::workflow::Workflow;
use kiln_model::{JobStatus, RunId, Value};
use kiln_proto::api::{WaitKind, Waiting};
use kiln_store::StoreError;
use kiln_store::types::{EventClaim, NewRun, RepoRecord, RunContexts};
use std::collections::BTreeMap;
use std::path::Path;

/// Something that may start runs of one repository, whatever reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TriggerEvent {
    Push(PushEvent),
    PullRequest(PullRequestEvent),
    Comment(CommentEvent),
    Schedule(ScheduleEvent),
}

/// A ref moved, was created or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    /// Full ref: `refs/heads/main`, `refs/tags/v1`.
    pub git_ref: String,
    /// The old commit; `None` for a new ref.
    pub before: Option<String>,
    pub after: String,
    pub deleted: bool,
    /// From the webhook payload; `None`: computed with git when a
    /// workflow's path filters need it.
    pub changed_files: Option<Vec<String>>,
    pub pusher: String,
}

/// A pull request was opened, updated, reopened or closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub action: PrAction,
    pub number: u64,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    pub from_fork: bool,
    pub author: String,
}

/// A new comment on a pull request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommentEvent {
    pub pr: u64,
    pub comment_id: u64,
    pub author: String,
    pub body: String,
    /// The pull request's head when the report carried it; else asked
    /// from the forge.
    pub head_sha: Option<String>,
}

/// A schedule slot of one workflow on the default branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleEvent {
    pub workflow_file: String,
    pub index: u32,
    pub cron: String,
    pub slot: Timestamp,
    /// The default branch's commit and full ref when the schedule was read.
    pub commit: String,
    pub git_ref: Option<String>,
}

impl TriggerEvent {
    /// The pull request the event is about, where replies go.
    fn pull_request(&self) -> Option<u64> {
        match self {
            TriggerEvent::PullRequest(p) => Some(p.number),
            TriggerEvent::Comment(c) => Some(c.pr),
            TriggerEvent::Push(_) | TriggerEvent::Schedule(_) => None,
        }
    }

    /// The event of a verified webhook: `None` for what starts nothing by
    /// nature (ping, ignored events, comments on plain issues).
    pub fn from_forge(ev: ForgeEvent) -> Option<TriggerEvent> {
        match ev {
            ForgeEvent::Push(p) => Some(TriggerEvent::Push(PushEvent {
                before: (!p.created && !is_zero(&p.before)).then_some(p.before),
                git_ref: p.git_ref,
                after: p.after,
                deleted: p.deleted,
                changed_files: p.changed_files,
                pusher: p.pusher,
            })),
            ForgeEvent::PullRequest(pr) => Some(TriggerEvent::PullRequest(PullRequestEvent {
                action: pr.action,
                number: pr.number,
                head_sha: pr.head_sha,
                head_ref: pr.head_ref,
                base_ref: pr.base_ref,
                from_fork: pr.head_repo_is_fork,
                author: pr.author,
            })),
            ForgeEvent::Comment(c) => match (c.on_pull_request, c.pr_number) {
                (true, Some(pr)) => Some(TriggerEvent::Comment(CommentEvent {
                    pr,
                    comment_id: c.comment_id,
                    author: c.author,
                    body: c.body,
                    head_sha: c.head_sha,
                })),
                (true, None) | (false, _) => None,
            },
            ForgeEvent::Ping | ForgeEvent::Ignored { .. } => None,
        }
    }

    /// The deduplication key (see the module doc). `on_event` first
    /// replaces a push's `after` by its commit (an annotated tag peeled).
    pub fn key(&self) -> String {
        match self {
            TriggerEvent::Push(p) => decide::push_key(&p.git_ref, &p.after),
            TriggerEvent::PullRequest(p) => decide::pull_request_key(p.number, &p.head_sha),
            TriggerEvent::Comment(c) => decide::comment_key(c.comment_id),
            TriggerEvent::Schedule(s) => decide::schedule_key(&s.workflow_file, s.index, s.slot),
        }
    }
}

fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("git: {0}")]
    Git(#[from] GitError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("forge: {0}")]
    Forge(#[from] kiln_forge::api::ApiError),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// What handling an event did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Runs created and started.
    pub started: Vec<RunId>,
    /// Runs created terminal: skipped by path filters, or failed because
    /// the workflow file is invalid.
    pub finished: Vec<RunId>,
    /// Runs created held (waiting for approval).
    pub held: Vec<RunId>,
    /// The event had been handled before (same key).
    pub duplicate: bool,
    /// Replies posted on the pull request.
    pub replies: Vec<String>,
    /// What else happened, for the log.
    pub notes: Vec<String>,
}

impl Outcome {
    fn note(why: impl Into<String>) -> Outcome {
        Outcome {
            notes: vec![why.into()],
            ..Outcome::default()
        }
    }
}

/// What a handler decided, before anything is written: the outcome so
/// far (notes, replies to post) and the runs to create.
#[derive(Default)]
struct Handled {
    out: Outcome,
    runs: Vec<(NewRun, Create)>,
}

impl From<Outcome> for Handled {
    fn from(out: Outcome) -> Handled {
        Handled {
            out,
            runs: Vec::new(),
        }
    }
}

impl std::ops::Deref for Handled {
    type Target = Outcome;
    fn deref(&self) -> &Outcome {
        &self.out
    }
}

impl std::ops::DerefMut for Handled {
    fn deref_mut(&mut self) -> &mut Outcome {
        &mut self.out
    }
}

/// How a run is created.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Create {
    Start,
    Hold(&'static str),
    Skip(String),
}

/// What every run of one event shares.
struct RunPlan<'a> {
    repo: &'a RepoRecord,
    commit: &'a str,
    git_ref: Option<String>,
    event: &'static str,
    actor: &'a str,
    flags: Value,
    pull_request: Option<u64>,
    from_fork: bool,
    /// Fields merged into the `github` context.
    github: Vec<(&'static str, Value)>,
}

impl Engine {
    /// Handle one event of `repo`: claim it, match every workflow at its
    /// commit, create (and start, skip or hold) runs. A duplicate starts
    /// nothing.
    pub async fn on_event(
        &self,
        repo: &RepoRecord,
        event: TriggerEvent,
    ) -> Result<Outcome, TriggerError> {
        if let TriggerEvent::Push(p) = &event
            && p.deleted
        {
            tracing::debug!(repo = %repo.name, git_ref = p.git_ref, "event starts nothing: deleted");
            return Ok(Outcome::note(format!("{} was deleted", p.git_ref)));
        }
        if let TriggerEvent::PullRequest(p) = &event
            && p.action == PrAction::Closed
        {
            return Ok(Outcome::note(format!(
                "pull request #{} was closed",
                p.number
            )));
        }
        let mut event = event;
        if let TriggerEvent::Push(p) = &mut event {
            // Key pushes by the commit, not an annotated tag's object: a
            // webhook may name the tag object where a poll sees the commit.
            let mirror = self
                .mirrors
                .ensure_commit(&repo.name, &repo.url, &p.after, &[])
                .await?;
            p.after = self.mirrors.commit(&mirror, &p.after).await?;
        }
        let key = event.key();
        let duplicate = || Outcome {
            duplicate: true,
            ..Outcome::default()
        };
        // A cheap early look; the claim below, with the runs, decides.
        if self.store.event_claimed(repo.id, &key).await? {
            tracing::debug!(repo = %repo.name, key, "event already handled");
            return Ok(duplicate());
        }
        let pr = event.pull_request();
        // Deciding writes nothing: a failure here leaves the event for its
        // next report.
        let handled = match event {
            TriggerEvent::Push(p) => self.on_push(repo, p).await,
            TriggerEvent::PullRequest(p) => self.on_pull_request(repo, p).await,
            TriggerEvent::Comment(c) => self.on_comment(repo, c).await,
            TriggerEvent::Schedule(s) => self.on_schedule(repo, s).await,
        };
        let Handled { mut out, runs } = match handled {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(repo = %repo.name, key, error = %e, "event failed");
                return Err(e);
            }
        };
        let (news, hows): (Vec<NewRun>, Vec<Create>) = runs.into_iter().unzip();
        let claim = EventClaim {
            repo: repo.id,
            key: key.clone(),
            now: Timestamp::now(),
        };
        // The claim and the runs are one transaction, so an event reported
        // twice at once (a webhook and a poll) starts its runs once.
        let Some(created) = self.create_runs(Some(claim), news).await? else {
            tracing::debug!(repo = %repo.name, key, "event handled concurrently");
            return Ok(duplicate());
        };
        for (rec, how) in created.iter().zip(hows) {
            match how {
                Create::Start => out.started.push(rec.id),
                Create::Hold(_) => out.held.push(rec.id),
                Create::Skip(_) => out.finished.push(rec.id),
            }
        }
        self.post_replies(repo, pr, &out.replies).await;
        tracing::info!(
            repo = %repo.name, key,
            started = ?out.started, finished = ?out.finished, held = ?out.held,
            notes = ?out.notes, "event handled"
        );
        Ok(out)
    }

    /// Start a held run (a fork's pull request after approval). `false`
    /// when the run was not held (nothing happens).
    pub async fn release_run(&self, run: RunId) -> Result<bool, EngineError> {
        if !self.store.release_run(run).await? {
            return Ok(false);
        }
        self.advance(run, Input::Start, Vec::new()).await?;
        Ok(true)
    }

    async fn workflows_at(
        &self,
        mirror: &Path,
        commit: &str,
    ) -> Result<Vec<(String, String, kiln_pipeline::load::Loaded)>, TriggerError> {
        let files = self
            .mirrors
            .workflow_files(mirror, commit, &self.cfg.workflows_dir)
            .await?;
        Ok(files
            .into_iter()
            .map(|(path, text)| {
                let loaded = kiln_pipeline::load::load(&path, &text);
                (path, text, loaded)
            })
            .collect())
    }

    async fn on_push(&self, repo: &RepoRecord, p: PushEvent) -> Result<Handled, TriggerError> {
        let mirror = self
            .mirrors
            .ensure_commit(&repo.name, &repo.url, &p.after, &[])
            .await?;
        let commit = self.mirrors.commit(&mirror, &p.after).await?;
        let plan = RunPlan {
            repo,
            commit: &commit,
            git_ref: Some(p.git_ref.clone()),
            event: "push",
            actor: &p.pusher,
            flags: Value::Object(BTreeMap::new()),
            pull_request: None,
            from_fork: false,
            github: vec![(
                "event",
                Value::object([
                    ("ref", Value::str(&p.git_ref)),
                    (
                        "before",
                        Value::str(p.before.clone().unwrap_or_else(|| "0".repeat(40))),
                    ),
                    ("after", Value::str(&commit)),
                    ("created", Value::Bool(p.before.is_none())),
                    ("deleted", Value::Bool(false)),
                    ("pusher", Value::object([("name", Value::str(&p.pusher))])),
                ]),
            )],
        };
        let mut changed = p.changed_files.clone();
        let mut out = Handled::default();
        for (path, text, loaded) in self.workflows_at(&mirror, &commit).await? {
            let Some(wf) = self.usable(&plan, &path, &text, &loaded, &mut out).await? else {
                continue;
            };
            let filter_needs_files = wf.on.push.as_ref().is_some_and(decide::has_path_filters)
                && p.git_ref.starts_with("refs/heads/");
            if changed.is_none() && filter_needs_files {
                changed = Some(
                    self.mirrors
                        .changed_files(&mirror, p.before.as_deref(), &commit)
                        .await?,
                );
            }
            let decision = decide::push(wf, &p.git_ref, changed.as_deref());
            self.decided(&plan, &path, wf, decision, Create::Start, &mut out);
        }
        Ok(out)
    }

    /// A workflow that loaded without errors, or `None` (after recording
    /// a failed run for a broken file the event would otherwise have
    /// started, as `kiln trigger` does).
    async fn usable<'l>(
        &self,
        plan: &RunPlan<'_>,
        path: &str,
        text: &str,
        loaded: &'l kiln_pipeline::load::Loaded,
        out: &mut Handled,
    ) -> Result<Option<&'l Workflow>, TriggerError> {
        let runs_on_event = loaded
            .workflow
            .as_ref()
            .is_none_or(|wf| wf.runs_on_event(plan.event));
        if !loaded.has_errors() {
            return Ok(loaded.workflow.as_ref().filter(|_| runs_on_event));
        }
        if runs_on_event && plan.event == "push" {
            let rendered = kiln_pipeline::diag::render(
                &loaded.diagnostics,
                |f| (f == path).then_some(text),
                false,
            );
            let name = loaded
                .workflow
                .as_ref()
                .map(|w| w.display_name().to_owned())
                .unwrap_or_else(|| path.rsplit('/').next().unwrap_or(path).to_owned());
            let new = self.new_run(plan, path, &name, None, JobStatus::Failure, Some(rendered));
            out.runs.push((new, Create::Skip(String::new())));
        }
        Ok(None)
    }

    fn new_run(
        &self,
        plan: &RunPlan<'_>,
        path: &str,
        name: &str,
        wf: Option<&Workflow>,
        status: JobStatus,
        error: Option<String>,
    ) -> NewRun {
        let inputs = Value::Object(BTreeMap::new());
        let github = kiln_pipeline::contexts::github(kiln_pipeline::contexts::RunFacts {
            repository: &plan.repo.name,
            sha: plan.commit,
            git_ref: plan.git_ref.as_deref(),
            event: plan.event,
            workflow: name,
            actor: plan.actor,
            run_id: "",
            inputs: &inputs,
        });
        let github = decide::merge_github(github, plan.github.clone());
        NewRun {
            repo: plan.repo.id,
            workflow_file: path.to_owned(),
            workflow_name: name.to_owned(),
            commit: plan.commit.to_owned(),
            git_ref: plan.git_ref.clone(),
            event: plan.event.to_owned(),
            graph: match status {
                JobStatus::Queued => wf.map(new_graph),
                JobStatus::Running
                | JobStatus::Success
                | JobStatus::Failure
                | JobStatus::Cancelled
                | JobStatus::Skipped => None,
            },
            workflow: wf.cloned(),
            contexts: RunContexts {
                github,
                inputs,
                kiln: Value::object([("flags", plan.flags.clone())]),
                pull_request: plan.pull_request,
                from_fork: plan.from_fork,
                ..RunContexts::default()
            },
            status,
            error,
            hold: None,
            gate: None,
            now: Timestamp::now(),
        }
    }

    /// Plan what a trigger decision means for `wf`: a run created as
    /// `start` says, a run recorded skipped when only its path filters
    /// excluded it, or only a note.
    fn decided(
        &self,
        plan: &RunPlan<'_>,
        path: &str,
        wf: &Workflow,
        decision: Decision,
        start: Create,
        out: &mut Handled,
    ) {
        match decision {
            Decision::Start => self.create(plan, path, wf, start, out),
            Decision::SkipNoChanges(why) => {
                out.notes.push(format!("{path}: {why}"));
                let skip = Create::Skip(decide::SKIPPED_NO_CHANGES.into());
                self.create(plan, path, wf, skip, out);
            }
            Decision::NotTriggered(why) => out.notes.push(format!("{path}: {why}")),
        }
    }

    /// Plan a run of `wf` (created when the event is claimed).
    fn create(
        &self,
        plan: &RunPlan<'_>,
        path: &str,
        wf: &Workflow,
        how: Create,
        out: &mut Handled,
    ) {
        let name = wf.display_name();
        let new = match &how {
            Create::Start => self.new_run(plan, path, name, Some(wf), JobStatus::Queued, None),
            Create::Hold(reason) => NewRun {
                hold: Some(Waiting {
                    kind: WaitKind::ForkApproval,
                    name: (*reason).to_owned(),
                }),
                ..self.new_run(plan, path, name, Some(wf), JobStatus::Queued, None)
            },
            Create::Skip(reason) => self.new_run(
                plan,
                path,
                name,
                Some(wf),
                JobStatus::Skipped,
                Some(reason.clone()),
            ),
        };
        out.runs.push((new, how));
    }

    /// The refs that may hold a pull request's head on the forges kiln
    /// knows (GitHub and Gitea: `refs/pull/N/head`; GitLab:
    /// `refs/merge-requests/N/head`).
    fn pull_refs(number: u64) -> Vec<String> {
        vec![
            format!("refs/pull/{number}/head"),
            format!("refs/merge-requests/{number}/head"),
        ]
    }

    fn pull_github(p: &PullRequestEvent, action: &str) -> Vec<(&'static str, Value)> {
        vec![
            ("head_ref", Value::str(&p.head_ref)),
            ("base_ref", Value::str(&p.base_ref)),
            (
                "event",
                Value::object([
                    ("action", Value::str(action)),
                    ("number", Value::Number(p.number as f64)),
                    (
                        "pull_request",
                        Value::object([
                            ("number", Value::Number(p.number as f64)),
                            (
                                "head",
                                Value::object([
                                    ("ref", Value::str(&p.head_ref)),
                                    ("sha", Value::str(&p.head_sha)),
                                ]),
                            ),
                            ("base", Value::object([("ref", Value::str(&p.base_ref))])),
                            ("user", Value::object([("login", Value::str(&p.author))])),
                        ]),
                    ),
                ]),
            ),
        ]
    }

    async fn on_pull_request(
        &self,
        repo: &RepoRecord,
        p: PullRequestEvent,
    ) -> Result<Handled, TriggerError> {
        let mirror = self
            .mirrors
            .ensure_commit(
                &repo.name,
                &repo.url,
                &p.head_sha,
                &Self::pull_refs(p.number),
            )
            .await?;
        let commit = self.mirrors.commit(&mirror, &p.head_sha).await?;
        let settings = self.store.trigger_settings(repo.id).await?;
        let plan = RunPlan {
            repo,
            commit: &commit,
            git_ref: Some(format!("refs/pull/{}/head", p.number)),
            event: "pull_request",
            actor: &p.author,
            flags: Value::Object(BTreeMap::new()),
            pull_request: Some(p.number),
            from_fork: p.from_fork,
            github: Self::pull_github(&p, p.action.as_github_str()),
        };
        let mut changed: Option<Option<Vec<String>>> = None;
        let mut out = Handled::default();
        for (path, text, loaded) in self.workflows_at(&mirror, &commit).await? {
            let Some(wf) = self.usable(&plan, &path, &text, &loaded, &mut out).await? else {
                continue;
            };
            let needs_files = wf
                .on
                .pull_request
                .as_ref()
                .is_some_and(|t| decide::has_path_filters(&t.filter));
            if changed.is_none() && needs_files {
                changed = Some(
                    self.mirrors
                        .pull_request_files(&mirror, &p.base_ref, &commit)
                        .await?,
                );
            }
            let files = changed.clone().flatten();
            let decision = decide::pull_request(wf, &p.action, &p.base_ref, files.as_deref());
            // A fork's pull request waits for a maintainer instead of starting.
            let start = if p.from_fork && settings.fork_approval {
                Create::Hold(decide::HELD_FOR_FORK)
            } else {
                Create::Start
            };
            self.decided(&plan, &path, wf, decision, start, &mut out);
        }
        Ok(out)
    }

    /// Post the replies an event decided on, once it is claimed.
    async fn post_replies(&self, repo: &RepoRecord, pr: Option<u64>, replies: &[String]) {
        let (Some(pr), false) = (pr, replies.is_empty()) else {
            return;
        };
        let Some(f) = self.forges.forge(repo.id).await else {
            tracing::warn!(pr, "no forge configured: cannot reply");
            return;
        };
        for body in replies {
            if let Err(e) = f.api.create_comment(&f.full_name, pr, body).await {
                tracing::warn!(pr, error = %e, "replying on the pull request");
            }
        }
    }

    async fn on_schedule(
        &self,
        repo: &RepoRecord,
        s: ScheduleEvent,
    ) -> Result<Handled, TriggerError> {
        let mirror = self
            .mirrors
            .ensure_commit(&repo.name, &repo.url, &s.commit, &[])
            .await?;
        let plan = RunPlan {
            repo,
            commit: &s.commit,
            git_ref: s.git_ref.clone(),
            event: "schedule",
            actor: "kiln",
            flags: Value::Object(BTreeMap::new()),
            pull_request: None,
            from_fork: false,
            github: vec![("event", Value::object([("schedule", Value::str(&s.cron))]))],
        };
        let mut out = Handled::default();
        for (path, _text, loaded) in self.workflows_at(&mirror, &s.commit).await? {
            if path != s.workflow_file {
                continue;
            }
            let Some(wf) = loaded.workflow.as_ref().filter(|_| !loaded.has_errors()) else {
                out.notes
                    .push(format!("{path} is invalid at the default branch"));
                continue;
            };
            if wf
                .on
                .schedule
                .iter()
                .any(|c| c.cron.trim() == s.cron.trim())
            {
                self.create(&plan, &path, wf, Create::Start, &mut out);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
