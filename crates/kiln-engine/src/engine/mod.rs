//! The engine: the server's driver of runs. It performs what the pure
//! decisions ask (`transition`, `kiln_core::dispatch`) against the store,
//! wakes long-polling agents when work is queued, and keeps runs moving
//! after crashes (reconciliation at start and on a timer). The
//! agent-facing half (claims, heartbeats, logs, completions, the reaper)
//! is in `leases.rs`.
//!
//! Invariants:
//! - every change is a store transaction before any answer is sent;
//! - a run's transitions are serialised per run in this process and
//!   fenced by the run's version across processes;
//! - a terminal instance is fed to its run graph exactly once
//!   (`graph_applied`), even across a crash between the two writes.

pub mod error;
pub mod gates;
mod leases;
pub mod results;
pub mod transition;
pub mod waiting;

use crate::git::Mirrors;
use crate::signals::{InProcess, Signals, Topic};
use error::{EngineError, EngineResult};
use jiff::Timestamp;
use kiln_core::graph::Event;
use kiln_core::graph::RunGraph;
use kiln_model::workflow::Workflow;
use kiln_model::{InstanceId, JobStatus, RunId, Value};
use kiln_proto::api::TriggerRequest;
use kiln_store::types::{EventClaim, NewRun, RunContexts, RunRecord};
use kiln_store::{Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use transition::{Input, Instances, TransitionError, finished, new_graph};

/// Decoded workflows kept in memory (cleared when full).
const WORKFLOW_CACHE: usize = 256;

/// Engine settings (resolved configuration).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub lease: Duration,
    pub heartbeat: Duration,
    /// Attempts per job before an infrastructure failure (agent lost,
    /// checkout) fails it, for jobs without `retry:` (3 = two retries).
    pub max_attempts: u32,
    /// Longest a claim may wait.
    pub max_claim_wait: Duration,
    /// Directory of workflow files inside repositories.
    pub workflows_dir: String,
    /// The time zone `on.schedule` crons are read in.
    pub time_zone: jiff::tz::TimeZone,
    /// Webhook bodies larger than this get 413.
    pub hook_body_limit: usize,
    /// `runs-on` label → the agent labels that serve it.
    pub label_aliases: Vec<(String, Vec<String>)>,
}

pub struct Engine {
    pub store: Arc<dyn Store>,
    pub mirrors: Mirrors,
    /// Wake-ups: queued work, gates, runs' logs and status (a hint to
    /// re-read the store; see `signals`).
    pub signals: Arc<dyn Signals>,
    pub cfg: EngineConfig,
    /// The forge API of each repository that has one.
    pub forges: Arc<dyn crate::forge::ForgeDirectory>,
    /// Links, the token key and the report deliverer's wake-up (forge/report.rs).
    pub outbound: crate::forge::Outbound,
    workflows: Mutex<HashMap<RunId, Arc<Workflow>>>,
    /// The graphs of active runs as this server last wrote them, with the
    /// run's version then: a cache, used only while the version matches.
    graphs: Mutex<HashMap<RunId, (i64, RunGraph)>>,
    claimed: Mutex<HashMap<InstanceId, (RunId, u32, u32)>>,
    run_locks: Mutex<HashMap<RunId, Arc<tokio::sync::Mutex<()>>>>,
    /// One settling of gates at a time.
    gate_lock: tokio::sync::Mutex<()>,
    /// Holding gate entries already asked to cancel.
    gate_cancelled: Mutex<std::collections::HashSet<i64>>,
    /// (a, b): whether commit a is an ancestor of b (never changes).
    ancestors: Mutex<HashMap<(String, String), bool>>,
}

fn lease_until(now: Timestamp, d: Duration) -> Timestamp {
    now.checked_add(
        jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::from_secs(15)),
    )
    .unwrap_or(now)
}

impl Engine {
    /// An engine without forges.
    pub fn new(store: Arc<dyn Store>, mirrors: Mirrors, cfg: EngineConfig) -> Arc<Engine> {
        Self::with_forges(
            store,
            mirrors,
            cfg,
            Arc::new(crate::forge::NoForges),
            crate::forge::Outbound::default(),
        )
    }

    /// An engine whose repositories may have forges.
    pub fn with_forges(
        store: Arc<dyn Store>,
        mirrors: Mirrors,
        cfg: EngineConfig,
        forges: Arc<dyn crate::forge::ForgeDirectory>,
        outbound: crate::forge::Outbound,
    ) -> Arc<Engine> {
        Arc::new(Engine {
            store,
            mirrors,
            signals: Arc::new(InProcess::default()),
            cfg,
            forges,
            outbound,
            workflows: Mutex::new(HashMap::new()),
            graphs: Mutex::new(HashMap::new()),
            claimed: Mutex::new(HashMap::new()),
            run_locks: Mutex::new(HashMap::new()),
            gate_lock: tokio::sync::Mutex::new(()),
            gate_cancelled: Mutex::new(Default::default()),
            ancestors: Mutex::new(HashMap::new()),
        })
    }

    /// The workflow of a run: decoded once, then kept (it never changes
    /// after the run is created). `None` for a run whose workflow was invalid.
    async fn workflow(&self, run: RunId) -> EngineResult<Option<Arc<Workflow>>> {
        if let Some(wf) = self
            .workflows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&run)
        {
            return Ok(Some(wf.clone()));
        }
        let Some(wf) = self.store.run(run).await?.workflow else {
            return Ok(None);
        };
        let wf = Arc::new(wf);
        let mut cache = self.workflows.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= WORKFLOW_CACHE {
            cache.clear();
        }
        cache.insert(run, wf.clone());
        Ok(Some(wf))
    }

    /// A run's graph as stored: its head and its nodes.
    async fn load_graph(&self, run: RunId, head: &str) -> EngineResult<RunGraph> {
        let nodes = self.store.graph_nodes(run).await?;
        RunGraph::from_parts(
            head,
            nodes.into_iter().map(|(n, s)| (n as usize, s)).collect(),
        )
        .map_err(|e| EngineError::Internal(format!("run {run}: stored graph: {e}")))
    }

    fn run_lock(&self, run: RunId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.run_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(run).or_default().clone()
    }

    /// Create runs for a trigger: one per workflow at the pinned commit
    /// that runs on the event (or the one named).
    pub async fn trigger(
        &self,
        repo_name: &str,
        req: TriggerRequest,
    ) -> EngineResult<Vec<RunRecord>> {
        let repo = self.store.repo_by_name(repo_name).await?.ok_or_else(|| {
            EngineError::NotFound(format!(
                "repository `{repo_name}` (add it with `kiln repo add`)"
            ))
        })?;
        let known = match &req.commit {
            Some(c) => self.mirrors.has_commit(&repo.name, c).await,
            None => None,
        };
        let mirror = match known {
            Some(m) => m,
            None => self
                .mirrors
                .sync(&repo.name, &repo.url)
                .await
                .map_err(|e| EngineError::Invalid(format!("fetching {}: {e}", repo.url)))?,
        };
        let (commit, git_ref) = match &req.commit {
            Some(c) => {
                let sha = self.mirrors.commit(&mirror, c).await.map_err(|_| {
                    EngineError::Invalid(format!("commit `{c}` is not in {}", repo.url))
                })?;
                (sha, req.git_ref.clone())
            }
            None => self
                .mirrors
                .resolve(&mirror, req.git_ref.as_deref())
                .await
                .map_err(|e| EngineError::Invalid(e.to_string()))?,
        };
        let files = self
            .mirrors
            .workflow_files(&mirror, &commit, &self.cfg.workflows_dir)
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        if files.is_empty() {
            return Err(EngineError::Invalid(format!(
                "commit {} has no workflow files in {}/",
                short(&commit),
                self.cfg.workflows_dir
            )));
        }
        let event = req.event.clone().unwrap_or_else(|| "push".into());
        let flags = kiln_pipeline::inputs::flags(&req.flags)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let now = Timestamp::now();
        let mut news = Vec::new();
        for (path, text) in &files {
            let loaded = kiln_pipeline::load::load(path, text);
            let chosen = match (&loaded.workflow, &req.workflow) {
                (Some(wf), Some(name)) => wf.is_named(name),
                (Some(wf), None) => wf.runs_on_event(&event),
                // Broken beyond reading: report it when asked for by file name, or on push.
                (None, Some(name)) => path.ends_with(name.as_str()) || path.contains(name.as_str()),
                (None, None) => true,
            };
            if !chosen {
                continue;
            }
            let stem = path.rsplit('/').next().unwrap_or(path).to_owned();
            let name = loaded
                .workflow
                .as_ref()
                .map(|w| w.display_name().to_owned())
                .unwrap_or(stem);
            let (workflow, status, error, graph, inputs) = if loaded.has_errors() {
                let rendered = kiln_pipeline::diag::render(
                    &loaded.diagnostics,
                    |f| (f == path.as_str()).then_some(text.as_str()),
                    false,
                );
                (
                    None,
                    JobStatus::Failure,
                    Some(rendered),
                    None,
                    Value::Object(BTreeMap::new()),
                )
            } else {
                let Some(wf) = loaded.workflow else { continue };
                let inputs = self.inputs_for(&wf, &event, &req)?;
                let graph = new_graph(&wf);
                (Some(wf), JobStatus::Queued, None, Some(graph), inputs)
            };
            // run_id/run_number are set per job once the run has its id.
            let github = kiln_pipeline::contexts::github(kiln_pipeline::contexts::RunFacts {
                repository: &repo.name,
                sha: &commit,
                git_ref: git_ref.as_deref(),
                event: &event,
                workflow: &name,
                actor: "kiln",
                run_id: "",
                inputs: &inputs,
            });
            news.push(NewRun {
                repo: repo.id,
                workflow_file: path.clone(),
                workflow_name: name,
                commit: commit.clone(),
                git_ref: git_ref.clone(),
                event: event.clone(),
                workflow,
                contexts: RunContexts {
                    github,
                    inputs,
                    kiln: Value::object([("flags", flags.clone())]),
                    ..RunContexts::default()
                },
                status,
                error,
                graph,
                hold: None,
                gate: None,
                now,
            });
        }
        if news.is_empty() {
            return Err(EngineError::Invalid(match &req.workflow {
                Some(w) => format!("no workflow named `{w}` at {}", short(&commit)),
                None => format!("no workflow runs on `{event}` at {}", short(&commit)),
            }));
        }
        let created = self.create_runs(None, news).await?.unwrap_or_default();
        let mut current = Vec::with_capacity(created.len());
        for rec in created {
            current.push(self.store.run(rec.id).await?);
        }
        Ok(current)
    }

    /// The one way runs are created (manual triggers, events, retries,
    /// deploys): in one store transaction, with `claim` (an event's key)
    /// claimed in the same one — `None` when the event was claimed before,
    /// and then nothing is created. Then each run is started (or left
    /// held for its concurrency group or an approval) and reported to its
    /// forge. A crash between the two leaves created runs unstarted, and
    /// `recover` starts them.
    pub(crate) async fn create_runs(
        &self,
        claim: Option<EventClaim>,
        news: Vec<NewRun>,
    ) -> EngineResult<Option<Vec<RunRecord>>> {
        let mut gated = Vec::with_capacity(news.len());
        for mut new in news {
            // The repository's default priority as it is now (a retried
            // run gets today's, not its original's).
            new.contexts.repo_priority = self.store.trigger_settings(new.repo).await?.priority;
            gated.push(self.in_its_group(new));
        }
        let news = gated;
        let Some(created) = self.store.create_runs(claim, news).await? else {
            return Ok(None);
        };
        if created.iter().any(|r| r.hold.is_some()) {
            self.gates_changed();
        }
        for rec in &created {
            if rec.status == JobStatus::Queued && rec.hold.is_none() {
                self.advance(rec.id, Input::Start, Vec::new()).await?;
            }
            // forge: report the new run (pending, or its end if it ended at once).
            self.forge_news(rec.id, rec.repo).await;
        }
        Ok(Some(created))
    }

    /// Create and start one run (see [`Engine::create_runs`]).
    pub(crate) async fn create_run(&self, new: NewRun) -> EngineResult<RunRecord> {
        self.create_runs(None, vec![new])
            .await?
            .and_then(|mut v| v.pop())
            .ok_or_else(|| EngineError::Internal("a run without an event was not created".into()))
    }

    /// A workflow-level `concurrency:` puts a new run in its group, held
    /// until the gatekeeper releases it (or fails the run when the group's
    /// name does not evaluate).
    fn in_its_group(&self, mut new: NewRun) -> NewRun {
        if let (Some(wf), false) = (&new.workflow, new.status.is_terminal())
            && let Some(c) = &wf.concurrency
        {
            let empty = Value::Object(BTreeMap::new());
            let cx = kiln_pipeline::plan::JobContexts {
                github: &new.contexts.github,
                inputs: &new.contexts.inputs,
                needs: &empty,
                vars: &empty,
                kiln: &new.contexts.kiln,
                secrets: &empty,
            };
            match kiln_pipeline::plan::workflow_group(c, cx) {
                Ok(g) => {
                    let actor = match new.contexts.github.get_ci("actor") {
                        Some(Value::String(s)) => s.clone(),
                        _ => "kiln".to_owned(),
                    };
                    new.hold = Some(kiln_proto::api::Waiting {
                        kind: kiln_proto::api::WaitKind::Group,
                        name: g.name.clone(),
                    });
                    new.gate = Some(kiln_store::types::NewGate {
                        kind: kiln_core::gate::GateKind::Group,
                        name: g.name,
                        commit: new.commit.clone(),
                        force: false,
                        cancel_in_progress: g.cancel_in_progress,
                        approval: kiln_core::gate::Approval::NotNeeded,
                        actor,
                    });
                }
                Err(e) => {
                    new.status = JobStatus::Failure;
                    new.error = Some(format!("workflow `{}`: {e}", wf.display_name()));
                    new.graph = None;
                }
            }
        }
        new
    }

    fn inputs_for(
        &self,
        wf: &kiln_model::workflow::Workflow,
        event: &str,
        req: &TriggerRequest,
    ) -> EngineResult<Value> {
        let given: Vec<(String, String)> = req
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match (&wf.on.workflow_dispatch, event) {
            (Some(d), "workflow_dispatch") => {
                kiln_pipeline::inputs::resolve(d, &given).map_err(|e| {
                    EngineError::Invalid(format!("workflow `{}`: {e}", wf.display_name()))
                })
            }
            _ if !given.is_empty() => Err(EngineError::Invalid(
                "inputs are for workflow_dispatch runs: set the event to workflow_dispatch".into(),
            )),
            _ => Ok(Value::Object(BTreeMap::new())),
        }
    }

    /// Move a run forward; retries on a lost optimistic race.
    pub async fn advance(
        &self,
        run: RunId,
        input: Input,
        applied: Vec<InstanceId>,
    ) -> EngineResult<()> {
        let lock = self.run_lock(run);
        let _guard = lock.lock().await;
        for _ in 0..8 {
            let rec = self.store.run_head(run).await?;
            let Some(head) = rec.graph.as_deref() else {
                return Ok(());
            };
            if rec.hold.is_some() && matches!(input, Input::Start) {
                // Waits for its concurrency group (engine/gates.rs).
                return Ok(());
            }
            let Some(wf) = self.workflow(run).await? else {
                return Ok(());
            };
            // The graph as of `rec.version`: kept from this server's last
            // transition of the run, else read from the store.
            let cached = self
                .graphs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run);
            let mut graph = match cached {
                Some((version, g)) if version == rec.version => g,
                Some(_) | None => self.load_graph(run, head).await?,
            };
            // Only the instances the transition may look at: the cost of a
            // completion does not grow with the run.
            let instances = match transition::nodes_to_read(&wf, &input) {
                Some(nodes) => {
                    Instances::of_nodes(&nodes, self.store.node_instance_states(run, &nodes).await?)
                }
                None => Instances::all(self.store.instance_states(run).await?),
            };
            let now = Timestamp::now();
            let retries = self.cfg.max_attempts.saturating_sub(1);
            let computed = match transition::transition(
                &rec,
                &wf,
                &mut graph,
                &instances,
                input.clone(),
                applied.clone(),
                now,
                retries,
            ) {
                Err(TransitionError::Missing(_)) => {
                    // It looked further than expected: again, with all.
                    graph = self.load_graph(run, head).await?;
                    let all = Instances::all(self.store.instance_states(run).await?);
                    transition::transition(
                        &rec,
                        &wf,
                        &mut graph,
                        &all,
                        input.clone(),
                        applied.clone(),
                        now,
                        retries,
                    )
                }
                other => other,
            };
            let (t, fx) = computed.map_err(|e| EngineError::Internal(e.to_string()))?;
            let cancels = !t.cancel.is_empty();
            let status_changed = t.status.is_some();
            match self.store.apply(run, t).await {
                Ok(version) => {
                    if fx.finished.is_none() {
                        self.graphs
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(run, (version, graph));
                    }
                    if fx.queued > 0 {
                        self.signals.notify(Topic::Work);
                    }
                    if fx.gated || wf_gated(&wf) {
                        self.gates_changed();
                    }
                    if status_changed {
                        // forge: the run started or ended (Effects.finished).
                        self.forge_news(run, rec.repo).await;
                    }
                    if fx.finished.is_some() {
                        self.run_ended(run);
                    }
                    if cancels {
                        // Queued instances cancelled just now must be fed back.
                        drop(_guard);
                        Box::pin(self.feed_unapplied()).await?;
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Internal(format!(
            "run {run}: too many concurrent updates"
        )))
    }

    /// A run ended: its followers read the store once more and stop.
    fn run_ended(&self, run: RunId) {
        self.signals.notify(Topic::Run(run));
        self.signals.retire(Topic::Run(run));
    }

    /// Feed every terminal-but-unapplied instance to its run graph.
    pub async fn feed_unapplied(&self) -> EngineResult<()> {
        let mut by_run: BTreeMap<RunId, Vec<InstanceId>> = BTreeMap::new();
        for (run, inst) in self.store.unapplied().await? {
            by_run.entry(run).or_default().push(inst);
        }
        for (run, ids) in by_run {
            let mut events = Vec::new();
            for id in &ids {
                let inst = self.store.instance(*id).await?;
                events.push(finished(inst.node, inst.index, inst.status));
            }
            self.advance(run, Input::Events(events), ids).await?;
        }
        Ok(())
    }

    /// After a (re)start: give agents a fresh lease, finish interrupted
    /// transitions, and start runs that were created but never started.
    pub async fn recover(&self) -> EngineResult<()> {
        let now = Timestamp::now();
        self.store
            .extend_all_leases(lease_until(now, self.cfg.lease))
            .await?;
        self.feed_unapplied().await?;
        for run in self.store.active_runs().await? {
            // A held run (approval, concurrency group) is skipped by `advance`.
            self.advance(run, Input::Start, Vec::new()).await?;
        }
        Ok(())
    }

    pub async fn cancel(&self, run: RunId) -> EngineResult<()> {
        // A run still waiting for its concurrency group never started: it
        // ends here, with nothing to stop.
        let waiting = self
            .store
            .run_gate_entries(run)
            .await?
            .into_iter()
            .find(|e| e.instance.is_none() && e.state == kiln_store::types::EntryState::Waiting);
        if let Some(e) = waiting {
            let ended = self
                .store
                .end_entry(kiln_store::types::EndEntry {
                    id: e.id,
                    outcome: "cancelled before it started".into(),
                    end_subject: Some(JobStatus::Cancelled),
                    environment: None,
                    now: Timestamp::now(),
                })
                .await?;
            if ended {
                self.run_ended(run);
                self.forge_news(run, e.key.repo).await;
                self.gates_changed();
                return Ok(());
            }
        }
        self.advance(run, Input::Events(vec![Event::CancelRun]), Vec::new())
            .await
    }

    /// A new run of the same workflow at the same commit. With
    /// `failed_only`, jobs that succeeded keep their result and outputs and
    /// do not run again.
    pub async fn retry(&self, run: RunId, failed_only: bool) -> EngineResult<RunRecord> {
        let old = self.store.run(run).await?;
        if !old.status.is_terminal() {
            return Err(EngineError::Conflict(format!(
                "run {run} is still {}: cancel it or wait",
                old.status
            )));
        }
        let mut contexts = old.contexts.clone();
        contexts.retry_of = Some(run);
        contexts.reuse.clear();
        if failed_only {
            let instances = self.store.instances(run).await?;
            let mut keys: Vec<&str> = instances.iter().map(|i| i.job_key.as_str()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let mine: Vec<_> = instances.iter().filter(|i| i.job_key == key).collect();
                if mine.iter().all(|i| i.status == JobStatus::Success) {
                    let mut outputs = old.contexts.reuse.get(key).cloned().unwrap_or_default();
                    for i in &mine {
                        if let Some(r) = &i.result {
                            outputs.extend(r.outputs.clone());
                        }
                    }
                    contexts.reuse.insert(key.to_owned(), outputs);
                }
            }
        }
        let graph = old.workflow.as_ref().map(new_graph);
        let rec = self
            .create_run(NewRun {
                repo: old.repo,
                workflow_file: old.workflow_file.clone(),
                workflow_name: old.workflow_name.clone(),
                commit: old.commit.clone(),
                git_ref: old.git_ref.clone(),
                event: old.event.clone(),
                status: if old.workflow.is_some() {
                    JobStatus::Queued
                } else {
                    JobStatus::Failure
                },
                workflow: old.workflow,
                contexts,
                error: old.error,
                graph,
                hold: None,
                gate: None,
                now: Timestamp::now(),
            })
            .await?;
        Ok(self.store.run(rec.id).await?)
    }
}

/// The workflow has a concurrency group or a deploy somewhere.
fn wf_gated(wf: &Workflow) -> bool {
    wf.concurrency.is_some()
        || wf
            .jobs
            .iter()
            .any(|j| j.environment.is_some() || j.concurrency.is_some())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
