//! The gatekeeper: concurrency groups and environments on the server.
//!
//! Runs and jobs enter gates when they are created (a workflow's
//! `concurrency:` holds the run; a job's `environment:` or `concurrency:`
//! holds the instance). One task settles every gate that has live entries
//! whenever something changes (and once a second as a safety net): entries
//! whose run or job ended leave (a deploy's outcome is written to its
//! environment in the same transaction), then `kiln_core::gate::decide`
//! says who starts, who is superseded or stale, and who is cancelled.
//! Everything it reads and writes is in the store, so a restart resumes
//! exactly where it stopped: a deploy that held its environment still holds
//! it. The rules are in `docs/deploys.md`.

use super::Engine;
use super::error::{EngineError, EngineResult};
use super::transition::Input;
use crate::signals::Topic;
use jiff::Timestamp;
use kiln_core::gate::{self, Approval, GateKind, Verdict};
use kiln_model::{JobStatus, RunId, Value};
use kiln_proto::api::{DeployInfo, EnvironmentInfo, WaitKind, Waiting};
use kiln_proto::results::DeployOutcome;
use kiln_store::types::{EndEntry, EntryState, EnvironmentRecord, GateEntryRecord, GateKey};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Deploys shown per environment by `kiln envs`.
const HISTORY: u32 = 20;

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

impl Engine {
    /// Something a gate depends on changed: settle the gates soon.
    pub(crate) fn gates_changed(&self) {
        self.signals.notify(Topic::Gates);
    }

    /// Settle gates forever (spawned by the server).
    pub async fn gatekeeper(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut dirty = self.signals.listen(Topic::Gates);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = dirty.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Err(e) = self.settle_gates().await {
                tracing::error!(error = %e, "settling concurrency groups and environments");
            }
        }
    }

    /// Settle every gate with live entries once.
    pub async fn settle_gates(&self) -> EngineResult<()> {
        let _one = self.gate_lock.lock().await;
        for key in self.store.live_gates().await? {
            self.settle(&key).await?;
        }
        Box::pin(self.feed_unapplied()).await
    }

    async fn settle(&self, key: &GateKey) -> EngineResult<()> {
        let mut live = Vec::new();
        for e in self.store.gate_entries(key).await? {
            if e.subject_status.is_terminal() {
                self.leave(key, &e).await?;
            } else {
                live.push(e);
            }
        }
        let current = match key.kind {
            GateKind::Environment => self
                .store
                .environment(key.repo, &key.name)
                .await?
                .map(|e| e.commit),
            GateKind::Group => None,
        };
        let ancestry = self.ancestry(key, &live, current.as_deref()).await;
        let entries: Vec<gate::Entry> = live
            .iter()
            .map(|e| gate::Entry {
                id: e.id as u64,
                commit: e.commit.clone(),
                holding: e.state == EntryState::Holding,
                deploy: key.kind == GateKind::Environment,
                force: e.force,
                cancel_in_progress: e.cancel_in_progress,
                approval: e.approval,
            })
            .collect();
        let verdicts = gate::decide(key.kind, &entries, current.as_deref(), &|a, b| {
            ancestry.contains(&(a.to_owned(), b.to_owned()))
        });
        let by_id: HashMap<u64, &GateEntryRecord> = live.iter().map(|e| (e.id as u64, e)).collect();
        let now = Timestamp::now();
        for v in verdicts {
            match v {
                Verdict::Release { id } => {
                    let Some(e) = by_id.get(&id) else { continue };
                    if self.store.release_entry(e.id, now).await? {
                        tracing::info!(gate = %key.name, run = %e.run, "released");
                        match e.instance {
                            Some(_) => self.signals.notify(Topic::Work),
                            None => Box::pin(self.advance(e.run, Input::Start, Vec::new())).await?,
                        }
                    }
                }
                Verdict::Superseded { id, by } => {
                    let Some(e) = by_id.get(&id) else { continue };
                    self.end_waiting(
                        e,
                        format!("superseded by {}", short(&by)),
                        JobStatus::Skipped,
                        now,
                    )
                    .await?;
                }
                Verdict::Stale { id, at } => {
                    let Some(e) = by_id.get(&id) else { continue };
                    self.end_waiting(
                        e,
                        format!("stale: {} is at newer {}", key.name, short(&at)),
                        JobStatus::Skipped,
                        now,
                    )
                    .await?;
                }
                Verdict::Cancelled { id, by } => {
                    let (Some(e), Some(newer)) = (by_id.get(&id), by_id.get(&by)) else {
                        continue;
                    };
                    let reason = format!(
                        "cancelled by run {}: newer run in concurrency group {}",
                        newer.run, key.name
                    );
                    if e.state == EntryState::Waiting {
                        self.end_waiting(e, reason, JobStatus::Cancelled, now)
                            .await?;
                        continue;
                    }
                    let first = self
                        .gate_cancelled
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(e.id);
                    if first {
                        let input = match e.instance {
                            Some(inst) => Input::CancelInstances(vec![inst]),
                            None => Input::ConcurrencyCancel { reason },
                        };
                        Box::pin(self.advance(e.run, input, Vec::new())).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// End a waiting entry and its held subject.
    async fn end_waiting(
        &self,
        e: &GateEntryRecord,
        outcome: String,
        status: JobStatus,
        now: Timestamp,
    ) -> EngineResult<()> {
        tracing::info!(gate = %e.key.name, run = %e.run, %outcome, "gate entry ends");
        self.store
            .end_entry(EndEntry {
                id: e.id,
                outcome,
                end_subject: Some(status),
                environment: None,
                now,
            })
            .await?;
        if e.instance.is_none() {
            // A held run ended without starting.
            self.run_ended(e.run);
            self.forge_news(e.run, e.key.repo).await;
        }
        Ok(())
    }

    /// An entry whose run or job ended leaves its gate; a deploy that held
    /// its environment records what the environment now runs.
    async fn leave(&self, key: &GateKey, e: &GateEntryRecord) -> EngineResult<()> {
        let now = Timestamp::now();
        let mut environment = None;
        let outcome = if key.kind == GateKind::Environment && e.state == EntryState::Holding {
            let deployed_by = match &e.approver {
                Some(a) => format!("{} (approved by {a})", e.actor),
                None => e.actor.clone(),
            };
            let record = |commit: &str, healthy: bool| EnvironmentRecord {
                repo: key.repo,
                name: key.name.clone(),
                commit: commit.to_owned(),
                healthy,
                run: e.run,
                entry: e.id,
                deployed_by: deployed_by.clone(),
                deployed_at: now,
            };
            match (e.subject_status, e.deploy) {
                (JobStatus::Success, _) => {
                    environment = Some(record(&e.commit, true));
                    "deployed".to_owned()
                }
                (_, Some(DeployOutcome::Unhealthy)) => {
                    environment = Some(record(&e.commit, false));
                    "unhealthy".to_owned()
                }
                (_, Some(DeployOutcome::RolledBack)) => "rolled back".to_owned(),
                (_, Some(DeployOutcome::RollbackFailed)) => {
                    if let Some(cur) = self.store.environment(key.repo, &key.name).await? {
                        environment = Some(EnvironmentRecord {
                            healthy: false,
                            ..cur
                        });
                    }
                    "rollback failed".to_owned()
                }
                (s, _) => s.as_str().to_owned(),
            }
        } else {
            e.subject_status.as_str().to_owned()
        };
        self.gate_cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&e.id);
        self.store
            .end_entry(EndEntry {
                id: e.id,
                outcome,
                end_subject: None,
                environment,
                now,
            })
            .await?;
        Ok(())
    }

    /// Which commits of a gate are ancestors of which, from git.
    async fn ancestry(
        &self,
        key: &GateKey,
        live: &[GateEntryRecord],
        current: Option<&str>,
    ) -> HashSet<(String, String)> {
        let mut out = HashSet::new();
        if key.kind != GateKind::Environment {
            return out;
        }
        let mut commits: Vec<&str> = live.iter().map(|e| e.commit.as_str()).collect();
        commits.extend(current);
        commits.sort();
        commits.dedup();
        if commits.len() < 2 {
            return out;
        }
        let repo = match self.store.repos().await {
            Ok(repos) => repos.into_iter().find(|r| r.id == key.repo),
            Err(_) => None,
        };
        let Some(repo) = repo else { return out };
        let Some(mirror) = self.mirrors.has_commit(&repo.name, commits[0]).await else {
            return out;
        };
        for a in &commits {
            for b in &commits {
                if a == b {
                    continue;
                }
                let pair = (a.to_string(), b.to_string());
                let cached = self
                    .ancestors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&pair)
                    .copied();
                let yes = match cached {
                    Some(y) => y,
                    None => {
                        let y = self.mirrors.is_ancestor(&mirror, a, b).await;
                        self.ancestors
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(pair.clone(), y);
                        y
                    }
                };
                if yes {
                    out.insert(pair);
                }
            }
        }
        out
    }

    /// Approve or reject the waiting deploys of job `job` of `run`.
    pub async fn approve(
        &self,
        run: RunId,
        job: &str,
        reject: bool,
        who: &str,
    ) -> EngineResult<usize> {
        let now = Timestamp::now();
        let mut n = 0;
        for e in self.store.run_gate_entries(run).await? {
            if e.job_key.as_deref() != Some(job)
                || e.state != EntryState::Waiting
                || e.approval != Approval::Pending
            {
                continue;
            }
            let approval = if reject {
                Approval::Rejected
            } else {
                Approval::Granted
            };
            let then = Waiting {
                kind: WaitKind::Environment,
                name: e.key.name.clone(),
            };
            if !self
                .store
                .set_approval(e.id, approval, who, Some(then), now)
                .await?
            {
                continue;
            }
            if reject {
                self.store
                    .end_entry(EndEntry {
                        id: e.id,
                        outcome: format!("rejected by {who}"),
                        end_subject: Some(JobStatus::Cancelled),
                        environment: None,
                        now,
                    })
                    .await?;
            }
            n += 1;
        }
        if n == 0 {
            return Err(EngineError::Conflict(format!(
                "no job `{job}` of run {run} is waiting for approval"
            )));
        }
        self.gates_changed();
        self.feed_unapplied().await?;
        Ok(n)
    }

    /// The last good commit of `env` (for `KILN_ROLLBACK_TO`).
    pub(crate) async fn last_good(&self, key: &GateKey) -> EngineResult<Option<String>> {
        Ok(self
            .store
            .gate_history(key, 200)
            .await?
            .into_iter()
            .find(|e| e.outcome.as_deref() == Some("deployed"))
            .map(|e| e.commit))
    }

    /// The `kiln.deploy` context of a claimed deploy instance.
    pub(crate) async fn deploy_context(
        &self,
        run: RunId,
        instance: kiln_model::InstanceId,
    ) -> EngineResult<Option<Value>> {
        let entries = self.store.run_gate_entries(run).await?;
        let Some(e) = entries
            .into_iter()
            .find(|e| e.instance == Some(instance) && e.key.kind == GateKind::Environment)
        else {
            return Ok(None);
        };
        let last = self.last_good(&e.key).await?.unwrap_or_default();
        Ok(Some(Value::object([
            ("environment", Value::str(e.key.name.clone())),
            ("rollback_to", Value::str(last)),
        ])))
    }

    /// `kiln deploy`: at `req.commit`, run the jobs that deploy to
    /// `req.environment` (and the jobs they need) of every workflow that has
    /// one, as event `deploy`.
    pub async fn deploy(
        &self,
        repo_name: &str,
        req: kiln_proto::api::DeployRequest,
        who: &str,
    ) -> EngineResult<Vec<kiln_store::types::RunRecord>> {
        use kiln_model::workflow::Workflow;
        let repo = self
            .store
            .repo_by_name(repo_name)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("repository `{repo_name}`")))?;
        let mirror = match self.mirrors.has_commit(&repo.name, &req.commit).await {
            Some(m) => m,
            None => self
                .mirrors
                .sync(&repo.name, &repo.url)
                .await
                .map_err(|e| EngineError::Invalid(format!("fetching {}: {e}", repo.url)))?,
        };
        let commit = self
            .mirrors
            .commit(&mirror, &req.commit)
            .await
            .map_err(|_| {
                EngineError::Invalid(format!("`{}` is not in {}", req.commit, repo.url))
            })?;
        let files = self
            .mirrors
            .workflow_files(&mirror, &commit, &self.cfg.workflows_dir)
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut created = Vec::new();
        for (path, text) in &files {
            let loaded = kiln_pipeline::load::load(path, text);
            if loaded.has_errors() {
                continue;
            }
            let Some(wf) = loaded.workflow else { continue };
            // Jobs deploying to the environment, then what they need.
            let mut keep: Vec<bool> = wf
                .jobs
                .iter()
                .map(|j| {
                    j.environment
                        .as_ref()
                        .is_some_and(|e| e.name.src == req.environment)
                })
                .collect();
            if !keep.iter().any(|k| *k) {
                continue;
            }
            loop {
                let mut more = false;
                for i in 0..wf.jobs.len() {
                    if !keep[i] {
                        continue;
                    }
                    for need in &wf.jobs[i].needs {
                        if let Some(n) = wf.jobs.iter().position(|j| &j.id == need)
                            && !keep[n]
                        {
                            keep[n] = true;
                            more = true;
                        }
                    }
                }
                if !more {
                    break;
                }
            }
            let jobs = wf
                .jobs
                .iter()
                .zip(&keep)
                .filter(|(_, k)| **k)
                .map(|(j, _)| j.clone())
                .collect();
            let wf = Workflow {
                jobs,
                ..Workflow::clone_head(&wf)
            };
            let name = wf.display_name().to_owned();
            let inputs = Value::Object(Default::default());
            let github = kiln_pipeline::contexts::github(kiln_pipeline::contexts::RunFacts {
                repository: &repo.name,
                sha: &commit,
                git_ref: None,
                event: "deploy",
                workflow: &name,
                actor: who,
                run_id: "",
                inputs: &inputs,
            });
            let graph = super::transition::new_graph(&wf);
            let rec = self
                .create_run(kiln_store::types::NewRun {
                    repo: repo.id,
                    workflow_file: path.clone(),
                    workflow_name: name,
                    commit: commit.clone(),
                    git_ref: None,
                    event: "deploy".into(),
                    workflow: Some(wf),
                    contexts: kiln_store::types::RunContexts {
                        github,
                        inputs,
                        kiln: Value::object([("flags", Value::Object(Default::default()))]),
                        force_deploy: req.force,
                        ..Default::default()
                    },
                    status: JobStatus::Queued,
                    error: None,
                    graph: Some(graph),
                    hold: None,
                    gate: None,
                    now: Timestamp::now(),
                })
                .await?;
            created.push(self.store.run(rec.id).await?);
        }
        if created.is_empty() {
            return Err(EngineError::Invalid(format!(
                "no job deploys to `{}` at {} (jobs name it with `environment: {}`)",
                req.environment,
                short(&commit),
                req.environment
            )));
        }
        Ok(created)
    }

    /// The environments of a repository, with their history.
    pub async fn environments(&self, repo_name: &str) -> EngineResult<Vec<EnvironmentInfo>> {
        let repo = self
            .store
            .repo_by_name(repo_name)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("repository `{repo_name}`")))?;
        let mut out = Vec::new();
        for name in self.store.environment_names(repo.id).await? {
            let key = GateKey {
                repo: repo.id,
                kind: GateKind::Environment,
                name: name.clone(),
            };
            let env = self.store.environment(repo.id, &name).await?;
            let history = self
                .store
                .gate_history(&key, HISTORY)
                .await?
                .into_iter()
                .map(|e| DeployInfo {
                    run: e.run,
                    job: e.instance,
                    commit: e.commit,
                    state: match e.state {
                        EntryState::Done => e.outcome.unwrap_or_else(|| "done".into()),
                        EntryState::Holding => "deploying".into(),
                        EntryState::Waiting if e.approval == Approval::Pending => {
                            "waiting-approval".into()
                        }
                        EntryState::Waiting => "waiting".into(),
                    },
                    forced: e.force,
                    actor: e.actor,
                    approver: e.approver,
                    created_at: e.created_at,
                    finished_at: e.finished_at,
                })
                .collect();
            out.push(EnvironmentInfo {
                name,
                commit: env.as_ref().map(|e| e.commit.clone()),
                healthy: env.as_ref().map(|e| e.healthy).unwrap_or(true),
                run: env.as_ref().map(|e| e.run),
                deployed_by: env.as_ref().map(|e| e.deployed_by.clone()),
                deployed_at: env.as_ref().map(|e| e.deployed_at),
                history,
            });
        }
        Ok(out)
    }
}
