//! The agent-facing half of the engine: claims (the store picks and
//! leases, see `kiln_core::dispatch`), heartbeats, log chunks and
//! completions, each accepted only from the agent holding the attempt's
//! lease, and the reaper that expires leases of silent agents.

use super::error::{EngineError, EngineResult};
use super::transition::{Input, finished};
use super::{Engine, lease_until};
use crate::signals::Topic;
use jiff::Timestamp;
use kiln_core::dispatch::effective_labels;
use kiln_core::graph::Event;
use kiln_model::JobStatus;
use kiln_model::workflow::Workflow;
use kiln_model::{AgentId, InstanceId, RunId, Value};
use kiln_proto::agent::{Assignment, Report, WireLine};
use kiln_proto::api::LogEntry;
use kiln_proto::results::JobResult;
use kiln_store::types::{AgentRecord, ClaimAsk, FinishedAttempt, InstanceRecord, RunRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

impl Engine {
    /// Remember where a claimed instance sits, for its logs and completion.
    pub(super) fn remember(&self, job: InstanceId, run: RunId, node: u32, index: u32) {
        self.claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job, (run, node, index));
    }

    pub(super) fn forget(&self, job: InstanceId) {
        self.claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job);
    }

    /// (run, node, index) of an instance: from memory, or the store after a
    /// restart.
    pub(super) async fn whereabouts(&self, job: InstanceId) -> EngineResult<(RunId, u32, u32)> {
        if let Some(w) = self
            .claimed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&job)
        {
            return Ok(*w);
        }
        let inst = self.store.instance(job).await?;
        self.remember(job, inst.run, inst.node, inst.index);
        Ok((inst.run, inst.node, inst.index))
    }

    /// Expire leases and feed results, forever (spawned by the server).
    pub async fn reaper(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let period = (self.cfg.lease / 5).clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let now = Timestamp::now();
            // An idle agent calls at least once per claim wait; one silent
            // for that and a lease more is gone.
            let silence = jiff::SignedDuration::try_from(self.cfg.max_claim_wait + self.cfg.lease)
                .unwrap_or(jiff::SignedDuration::from_secs(60));
            match self
                .store
                .mark_lost_agents(now.checked_sub(silence).unwrap_or(now), now)
                .await
            {
                Ok(lost) => {
                    for agent in lost {
                        tracing::warn!(%agent, "agent lost: silent for longer than a claim and a lease");
                    }
                }
                Err(e) => tracing::error!(error = %e, "marking lost agents"),
            }
            match self.store.expire_leases(now).await {
                Ok(expired) => {
                    for e in &expired {
                        tracing::warn!(instance = %e.instance, attempt = e.attempt, requeued = e.requeued, "lease expired: agent lost");
                    }
                    if expired.iter().any(|e| e.requeued) {
                        self.signals.notify(Topic::Work);
                    }
                }
                Err(e) => tracing::error!(error = %e, "expiring leases"),
            }
            if let Err(e) = self.feed_unapplied().await {
                tracing::error!(error = %e, "feeding results");
            }
        }
    }

    /// Long-poll for a job for `agent`.
    pub async fn claim(
        &self,
        agent: &AgentRecord,
        free: u32,
        wait: Duration,
    ) -> EngineResult<Option<Assignment>> {
        Ok(self
            .claim_jobs(agent, free, 1, wait)
            .await?
            .into_iter()
            .next())
    }

    /// Long-poll for jobs for `agent`: up to `max` of them within its
    /// `free` capacity, all leased in one store transaction. Answers as
    /// soon as one is leased; empty after `wait`.
    pub async fn claim_jobs(
        &self,
        agent: &AgentRecord,
        free: u32,
        max: u32,
        wait: Duration,
    ) -> EngineResult<Vec<Assignment>> {
        let deadline = tokio::time::Instant::now() + wait.min(self.cfg.max_claim_wait);
        let ask = ClaimAsk {
            agent: agent.id,
            labels: effective_labels(&agent.labels, &self.cfg.label_aliases),
            capacity: agent.capacity,
            free,
        };
        if free == 0 || max == 0 {
            return Ok(Vec::new());
        }
        loop {
            // Listen before looking, so work queued in between wakes us.
            let mut work = self.signals.listen(Topic::Work);
            let now = Timestamp::now();
            // The store picks (labels, weight, priority, fair share, FIFO:
            // `kiln_core::dispatch`) and claims in one transaction.
            let claimed = self
                .store
                .claim_batch(&ask, max, now, lease_until(now, self.cfg.lease))
                .await?;
            if !claimed.is_empty() {
                let mut out = Vec::with_capacity(claimed.len());
                let mut heads: HashMap<RunId, RunRecord> = HashMap::new();
                for inst in claimed {
                    let run = match heads.entry(inst.run) {
                        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::hash_map::Entry::Vacant(e) => {
                            let head = self.store.run_head(inst.run).await?;
                            // forge: a job started (the comment says "running").
                            self.forge_news(inst.run, inst.repo).await;
                            e.insert(head)
                        }
                    };
                    out.push(self.assignment(run, inst).await?);
                }
                return Ok(out);
            }
            tokio::select! {
                _ = work.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
            }
        }
    }

    /// What an agent needs to run a leased instance.
    async fn assignment(&self, run: &RunRecord, inst: InstanceRecord) -> EngineResult<Assignment> {
        let wf = self
            .workflow(inst.run)
            .await?
            .ok_or_else(|| EngineError::Internal("claimed a job of an invalid run".into()))?;
        // The agent needs only its own job: send the workflow with that
        // one job, not every job of a large run.
        let job = wf.jobs.get(inst.node as usize).cloned().ok_or_else(|| {
            EngineError::Internal(format!("run {} has no job {}", inst.run, inst.node))
        })?;
        let deploys = job.environment.is_some();
        let workflow = Workflow {
            jobs: vec![job],
            ..Workflow::clone_head(&wf)
        };
        let mut contexts = inst.contexts;
        if deploys
            && let Some(d) = self.deploy_context(inst.run, inst.id).await?
            && let Value::Object(k) = &mut contexts.kiln
        {
            k.insert("deploy".into(), d);
        }
        self.remember(inst.id, inst.run, inst.node, inst.index);
        Ok(Assignment {
            job: inst.id,
            attempt: inst.attempt,
            run: inst.run,
            repo_name: run.repo_name.clone(),
            repo_url: run.repo_url.clone(),
            commit: run.commit.clone(),
            job_index: 0,
            workflow,
            name: inst.name,
            contexts,
            lease_ms: self.cfg.lease.as_millis() as u64,
            heartbeat_ms: self.cfg.heartbeat.as_millis() as u64,
        })
    }

    /// Record finished attempts of `agent` (each with its last log chunk)
    /// in one store transaction, then feed them to their runs' graphs, one
    /// transition per run. One outcome per report, in order. A stored
    /// result whose transition fails here is fed again by the reaper
    /// (`feed_unapplied`): the report itself is done.
    pub async fn report(
        &self,
        agent: AgentId,
        reports: Vec<Report>,
    ) -> EngineResult<Vec<EngineResult<()>>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        let attempts: Vec<FinishedAttempt> = reports
            .into_iter()
            .map(|r| FinishedAttempt {
                instance: r.job,
                attempt: r.attempt,
                logs: r.logs.map(|chunk| {
                    let lines = chunk
                        .lines
                        .into_iter()
                        .map(|l| LogEntry {
                            job: r.job,
                            attempt: r.attempt,
                            step: l.step,
                            stream: l.stream,
                            at: l.at,
                            text: l.text,
                        })
                        .collect();
                    (chunk.seq, lines)
                }),
                result: r.result,
            })
            .collect();
        let keys: Vec<(InstanceId, JobStatus, bool)> = attempts
            .iter()
            .map(|f| (f.instance, f.result.status, f.logs.is_some()))
            .collect();
        let outcomes = self
            .store
            .complete_many(agent, attempts, Timestamp::now())
            .await?;
        let mut by_run: BTreeMap<RunId, (Vec<Event>, Vec<InstanceId>)> = BTreeMap::new();
        let mut requeued = false;
        let mut out = Vec::with_capacity(outcomes.len());
        for ((job, status, logged), outcome) in keys.into_iter().zip(outcomes) {
            match outcome {
                Ok(done) => {
                    if logged {
                        self.signals.notify(Topic::Run(done.run));
                    }
                    if done.requeued {
                        requeued = true;
                    } else {
                        match self.whereabouts(job).await {
                            Ok((_, node, index)) => {
                                let entry = by_run.entry(done.run).or_default();
                                entry.0.push(finished(node, index, status));
                                entry.1.push(job);
                            }
                            Err(e) => {
                                tracing::error!(%job, error = %e, "finding a reported job; the reaper feeds it");
                            }
                        }
                    }
                    self.forget(job);
                    out.push(Ok(()));
                }
                Err(e) => out.push(Err(e.into())),
            }
        }
        if requeued {
            // A retry policy sent some back to the queue: another attempt.
            self.signals.notify(Topic::Work);
        }
        for (run, (events, applied)) in by_run {
            if let Err(e) = self.advance(run, Input::Events(events), applied).await {
                tracing::error!(%run, error = %e, "feeding reported results to the run; the reaper tries again");
            }
        }
        Ok(out)
    }

    pub async fn heartbeat(
        &self,
        agent: AgentId,
        job: InstanceId,
        attempt: u32,
    ) -> EngineResult<bool> {
        let now = Timestamp::now();
        let cancel = self
            .store
            .heartbeat(job, agent, attempt, now, lease_until(now, self.cfg.lease))
            .await?;
        // The store's heartbeat also marks the agent as seen.
        Ok(cancel)
    }

    pub async fn logs(
        &self,
        agent: AgentId,
        job: InstanceId,
        attempt: u32,
        seq: u64,
        lines: Vec<WireLine>,
    ) -> EngineResult<()> {
        let entries: Vec<LogEntry> = lines
            .into_iter()
            .map(|l| LogEntry {
                job,
                attempt,
                step: l.step,
                stream: l.stream,
                at: l.at,
                text: l.text,
            })
            .collect();
        self.store
            .append_logs(job, agent, attempt, seq, &entries)
            .await?;
        let (run, _, _) = self.whereabouts(job).await?;
        self.signals.notify(Topic::Run(run));
        Ok(())
    }

    pub async fn complete(
        &self,
        agent: AgentId,
        job: InstanceId,
        attempt: u32,
        result: JobResult,
    ) -> EngineResult<()> {
        let status = result.status;
        let done = self
            .store
            .complete(job, agent, attempt, result, Timestamp::now())
            .await?;
        if done.requeued {
            // Its retry policy sent it back to the queue: another attempt,
            // nothing for the run graph yet.
            self.forget(job);
            self.signals.notify(Topic::Work);
            return Ok(());
        }
        let (_, node, index) = self.whereabouts(job).await?;
        self.forget(job);
        self.advance(
            done.run,
            Input::Events(vec![finished(node, index, status)]),
            vec![job],
        )
        .await
    }
}
