//! The poller and the scheduler: one background task per server.
//!
//! Every tick it walks the registered repositories. A repository whose
//! poll is due (its interval plus up to 10 % jitter, 0 = never) is asked
//! `git ls-remote`; moved branches and new or moved tags become push
//! events, and, when the repository has a forge, new or updated open pull
//! requests and new comments on them become pull request and comment
//! events — all through [`Engine::on_event`], so a webhook that reported
//! the same change first makes the poll start nothing. The first poll of
//! a repository (normally at registration, see [`Engine::baseline`])
//! records what exists and starts nothing.
//!
//! The same `ls-remote` tells the default branch's commit; the schedules
//! (`on.schedule`) of the workflows there are read when it moves, and each
//! tick fires the due ones: the next fire time is stored, so a server that
//! was down past one or many slots fires once when it is back.

use super::decide::{self, ScheduleStep};
use super::{CommentEvent, PullRequestEvent, PushEvent, ScheduleEvent, TriggerError, TriggerEvent};
use crate::engine::Engine;
use crate::forge::RepoForge;
use crate::git::RemoteRefs;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use kiln_forge::cron::Cron;
use kiln_model::RepoId;
use kiln_store::types::{PollTurn, PullRequestPoll, RepoRecord};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the loop wakes to look for due polls and schedules.
const TICK: Duration = Duration::from_millis(250);
/// How often the default branch is looked at for schedules when polling
/// is off for a repository.
const SCHEDULE_REFRESH: Duration = Duration::from_secs(60);
/// The pull request number that marks "pull request polling has a
/// baseline" in the store (no forge numbers a pull request 0).
const PR_BASELINE: u64 = 0;

/// The schedules of one repository's default branch.
#[derive(Clone, Debug, Default)]
struct Schedules {
    commit: String,
    git_ref: Option<String>,
    /// (workflow file, index in `on.schedule`, cron)
    entries: Vec<(String, u32, Cron)>,
}

/// Poller state (in memory only: what matters is in the store).
#[derive(Default)]
struct State {
    /// When each repository is due, as last learned from the store (a
    /// cache: the store's `claim_poll` decides whose turn it is).
    next_poll: HashMap<RepoId, Instant>,
    schedules: HashMap<RepoId, Schedules>,
}

/// A random fraction in [0, 1) for jitter.
fn jitter_fraction() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// The interval until the next poll: `secs` plus up to 10 % jitter, so
/// that many repositories registered at once do not poll in step.
fn poll_delay(secs: u32) -> Duration {
    let base = Duration::from_secs(u64::from(secs));
    base + base.mul_f64(0.1 * jitter_fraction())
}

impl Engine {
    /// Poll repositories and fire schedules until `shutdown` (spawned by
    /// the server).
    pub async fn poller(self: Arc<Self>, shutdown: CancellationToken) {
        let mut state = State::default();
        loop {
            self.poll_tick(&mut state).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    async fn poll_tick(&self, state: &mut State) {
        let repos = match self.store.repos().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "poller: listing repositories");
                return;
            }
        };
        let now = Instant::now();
        for repo in &repos {
            if state.next_poll.get(&repo.id).is_some_and(|at| *at > now) {
                continue;
            }
            let interval = match self.store.trigger_settings(repo.id).await {
                Ok(s) => s.poll_interval_secs,
                Err(e) => {
                    tracing::error!(repo = %repo.name, error = %e, "poller: reading settings");
                    continue;
                }
            };
            let delay = if interval == 0 {
                SCHEDULE_REFRESH
            } else {
                poll_delay(interval)
            };
            // Take the turn in the store: with several servers on one
            // database, only one polls each repository per interval.
            let at = Timestamp::now();
            let next = at
                .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
                .unwrap_or(at);
            match self.store.claim_poll(repo.id, at, next).await {
                Ok(PollTurn::Mine) => {
                    state.next_poll.insert(repo.id, now + delay);
                }
                Ok(PollTurn::NotDue(due)) => {
                    let wait = due.duration_since(at).unsigned_abs();
                    state.next_poll.insert(repo.id, now + wait);
                    // Not our turn to poll, but a server that just started
                    // still learns the schedules it may have to fire.
                    if !state.schedules.contains_key(&repo.id)
                        && let Ok(remote) = self.mirrors.ls_remote(&repo.url).await
                    {
                        self.refresh_schedules(repo, &remote, state).await;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(repo = %repo.name, error = %e, "poller: taking the turn");
                    continue;
                }
            }
            match self.mirrors.ls_remote(&repo.url).await {
                Ok(remote) => {
                    if interval > 0 {
                        self.poll_refs(repo, &remote).await;
                        self.poll_pull_requests(repo).await;
                    }
                    self.refresh_schedules(repo, &remote, state).await;
                }
                Err(e) => tracing::warn!(repo = %repo.name, error = %e, "poll: git ls-remote"),
            }
        }
        state
            .next_poll
            .retain(|id, _| repos.iter().any(|r| r.id == *id));
        state
            .schedules
            .retain(|id, _| repos.iter().any(|r| r.id == *id));
        for repo in &repos {
            if let Some(s) = state.schedules.get(&repo.id).cloned() {
                self.fire_schedules(repo, &s).await;
            }
        }
    }

    /// Record what a newly registered repository has (its refs and, with a
    /// forge, its open pull requests and their comments), so that only
    /// what changes afterwards triggers.
    pub async fn baseline(&self, repo: &RepoRecord) -> Result<(), TriggerError> {
        let remote = self.mirrors.ls_remote(&repo.url).await?;
        self.store
            .set_polled_refs(repo.id, &remote.refs, Timestamp::now())
            .await?;
        if let Some(forge) = self.forges.forge(repo.id).await {
            self.baseline_pull_requests(repo, &forge).await?;
        }
        Ok(())
    }

    async fn poll_refs(&self, repo: &RepoRecord, remote: &RemoteRefs) {
        let stored = match self.store.polled_refs(repo.id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(repo = %repo.name, error = %e, "poll: reading refs");
                return;
            }
        };
        let Some(stored) = stored else {
            if let Err(e) = self
                .store
                .set_polled_refs(repo.id, &remote.refs, Timestamp::now())
                .await
            {
                tracing::error!(repo = %repo.name, error = %e, "poll: storing the baseline");
            }
            return;
        };
        let mut seen = remote.refs.clone();
        for change in decide::ref_changes(&stored, &remote.refs) {
            let event = TriggerEvent::Push(PushEvent {
                git_ref: change.git_ref.clone(),
                before: change.before.clone(),
                after: change.after.clone(),
                deleted: false,
                changed_files: None,
                // ls-remote does not say who pushed.
                pusher: "kiln".into(),
            });
            if let Err(e) = self.on_event(repo, event).await {
                tracing::warn!(repo = %repo.name, git_ref = change.git_ref, error = %e, "poll: push");
                // Try again at the next poll: keep the old value.
                match change.before {
                    Some(old) => seen.insert(change.git_ref, old),
                    None => seen.remove(&change.git_ref),
                };
            }
        }
        if seen != stored
            && let Err(e) = self
                .store
                .set_polled_refs(repo.id, &seen, Timestamp::now())
                .await
        {
            tracing::error!(repo = %repo.name, error = %e, "poll: storing refs");
        }
    }

    async fn baseline_pull_requests(
        &self,
        repo: &RepoRecord,
        forge: &RepoForge,
    ) -> Result<(), TriggerError> {
        let open = forge.api.open_pull_requests(&forge.full_name).await?;
        for pr in open {
            let last = forge
                .api
                .comments_after(&forge.full_name, pr.number, 0)
                .await?
                .iter()
                .map(|c| c.id)
                .max()
                .unwrap_or(0);
            self.store
                .set_pull_request_poll(
                    repo.id,
                    &PullRequestPoll {
                        number: pr.number,
                        head_sha: pr.head_sha,
                        last_comment: last,
                    },
                )
                .await?;
        }
        self.store
            .set_pull_request_poll(
                repo.id,
                &PullRequestPoll {
                    number: PR_BASELINE,
                    head_sha: String::new(),
                    last_comment: 0,
                },
            )
            .await?;
        Ok(())
    }

    async fn poll_pull_requests(&self, repo: &RepoRecord) {
        let Some(forge) = self.forges.forge(repo.id).await else {
            return;
        };
        if let Err(e) = self.poll_pull_requests_of(repo, &forge).await {
            tracing::warn!(repo = %repo.name, forge = forge.api.name(), error = %e, "poll: pull requests");
        }
    }

    async fn poll_pull_requests_of(
        &self,
        repo: &RepoRecord,
        forge: &RepoForge,
    ) -> Result<(), TriggerError> {
        let seen = self.store.pull_request_polls(repo.id).await?;
        if !seen.iter().any(|p| p.number == PR_BASELINE) {
            return self.baseline_pull_requests(repo, forge).await;
        }
        let open = forge.api.open_pull_requests(&forge.full_name).await?;
        for (action, pr) in decide::pull_request_changes(&seen, &open) {
            let last_comment = seen
                .iter()
                .find(|s| s.number == pr.number)
                .map_or(0, |s| s.last_comment);
            self.on_event(
                repo,
                TriggerEvent::PullRequest(PullRequestEvent {
                    action,
                    number: pr.number,
                    head_sha: pr.head_sha.clone(),
                    head_ref: pr.head_ref.clone(),
                    base_ref: pr.base_ref.clone(),
                    from_fork: pr.head_repo_is_fork,
                    author: pr.author.clone(),
                }),
            )
            .await?;
            self.store
                .set_pull_request_poll(
                    repo.id,
                    &PullRequestPoll {
                        number: pr.number,
                        head_sha: pr.head_sha.clone(),
                        last_comment,
                    },
                )
                .await?;
        }
        for pr in &open {
            let last = self
                .store
                .pull_request_polls(repo.id)
                .await?
                .into_iter()
                .find(|s| s.number == pr.number)
                .map_or(0, |s| s.last_comment);
            let comments = forge
                .api
                .comments_after(&forge.full_name, pr.number, last)
                .await?;
            for c in comments {
                self.on_event(
                    repo,
                    TriggerEvent::Comment(CommentEvent {
                        pr: pr.number,
                        comment_id: c.id,
                        author: c.author,
                        body: c.body,
                        head_sha: Some(pr.head_sha.clone()),
                    }),
                )
                .await?;
                self.store
                    .set_pull_request_poll(
                        repo.id,
                        &PullRequestPoll {
                            number: pr.number,
                            head_sha: pr.head_sha.clone(),
                            last_comment: c.id,
                        },
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Re-read the default branch's schedules when its commit moved.
    async fn refresh_schedules(&self, repo: &RepoRecord, remote: &RemoteRefs, state: &mut State) {
        let Some(head) = &remote.head else {
            state.schedules.remove(&repo.id);
            return;
        };
        if state
            .schedules
            .get(&repo.id)
            .is_some_and(|s| &s.commit == head)
        {
            return;
        }
        match self.read_schedules(repo, head).await {
            Ok(s) => {
                state.schedules.insert(repo.id, s);
            }
            Err(e) => tracing::warn!(repo = %repo.name, error = %e, "reading schedules"),
        }
    }

    async fn read_schedules(
        &self,
        repo: &RepoRecord,
        head: &str,
    ) -> Result<Schedules, TriggerError> {
        let mirror = self
            .mirrors
            .ensure_commit(&repo.name, &repo.url, head, &[])
            .await?;
        let git_ref = self
            .mirrors
            .resolve(&mirror, None)
            .await
            .ok()
            .and_then(|(_, r)| r);
        let mut entries = Vec::new();
        for (path, _text, loaded) in self.workflows_at(&mirror, head).await? {
            let Some(wf) = loaded.workflow.as_ref().filter(|_| !loaded.has_errors()) else {
                continue;
            };
            for (i, s) in wf.on.schedule.iter().enumerate() {
                match Cron::parse(&s.cron) {
                    Ok(c) => entries.push((path.clone(), i as u32, c)),
                    Err(e) => {
                        tracing::warn!(repo = %repo.name, file = path, cron = s.cron, error = %e, "invalid schedule")
                    }
                }
            }
        }
        Ok(Schedules {
            commit: head.to_owned(),
            git_ref,
            entries,
        })
    }

    async fn fire_schedules(&self, repo: &RepoRecord, s: &Schedules) {
        for (file, index, cron) in &s.entries {
            if let Err(e) = self.fire_schedule(repo, s, file, *index, cron).await {
                tracing::warn!(repo = %repo.name, file, index, error = %e, "schedule");
            }
        }
    }

    async fn fire_schedule(
        &self,
        repo: &RepoRecord,
        s: &Schedules,
        file: &str,
        index: u32,
        cron: &Cron,
    ) -> Result<(), TriggerError> {
        let stored = self.store.schedule(repo.id, file, index).await?;
        let now = Timestamp::now();
        let tz: &TimeZone = &self.cfg.time_zone;
        match decide::schedule_step(cron, stored.as_ref(), now, tz) {
            ScheduleStep::Wait | ScheduleStep::Never => {}
            ScheduleStep::Init { next } => {
                self.store
                    .advance_schedule(repo.id, file, index, stored.map(|s| s.next_fire), &next)
                    .await?;
            }
            ScheduleStep::Fire { slot, next } => {
                let expected = stored.map(|s| s.next_fire);
                // Whoever moves the stored fire time owns the fire (another
                // server may be looking at the same row).
                if self
                    .store
                    .advance_schedule(repo.id, file, index, expected, &next)
                    .await?
                {
                    self.on_event(
                        repo,
                        TriggerEvent::Schedule(ScheduleEvent {
                            workflow_file: file.to_owned(),
                            index,
                            cron: cron.source().to_owned(),
                            slot,
                            commit: s.commit.clone(),
                            git_ref: s.git_ref.clone(),
                        }),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
