//! `kiln exec`: run a repository's workflows on this machine.
//!
//! The driver of the pure run graph (`kiln_core::graph`): it evaluates jobs
//! when the graph asks (`kiln_pipeline::plan`), prepares a fresh workspace
//! per job, runs the job through the same runner and executor an agent uses
//! (`kiln_exec::runner`, the executor `kiln_exec::select` picks), and feeds results back as
//! events until the graph says the run is finished.

pub(crate) mod output;
mod select;
mod workspace;

use crate::cli::ExecArgs;
use crate::error::CliError;
use crate::exit;
use crate::repo::Repo;
use crate::workflows::{discover, load_files, render_all, render_warnings};
use jiff::Timestamp;
use kiln_core::graph::{Command, Event, Expansion, InstanceKey, NeedsStatus, NodeSpec, RunGraph};
use kiln_exec::port::Cancel;
use kiln_exec::runner::context::BaseContexts;
use kiln_exec::runner::{JobObserver, JobRun, run_job};
use kiln_model::workflow::Workflow;
use kiln_model::{Failure, FailureClass, JobStatus, Value};
use kiln_pipeline::expr::StatusCheck;
use kiln_pipeline::plan::{Decision, Instance, JobContexts, Plan, plan_job};
use kiln_proto::results::{
    JobResult, Phase, PhaseKind, RESULTS_SCHEMA, ResultsDocument, RunResult,
};
use output::Printer;
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub fn run(args: &ExecArgs, color: bool) -> Result<i32, CliError> {
    let cwd = std::env::current_dir()?;
    let repo = Repo::discover(&cwd)?;
    let dir = if args.workflows.is_absolute() {
        args.workflows.clone()
    } else {
        repo.root.join(&args.workflows)
    };
    let paths = discover(&dir)?;
    if paths.is_empty() {
        return Err(CliError::Usage(format!(
            "no workflow files (*.yml, *.yaml) in {}; write one or pass --workflows DIR",
            dir.display()
        )));
    }
    let files = load_files(&paths, Some(&repo.root))?;
    let all: Vec<Arc<Workflow>> = files
        .iter()
        .filter_map(|f| f.loaded.workflow.clone().map(Arc::new))
        .collect();
    // A file that is not even YAML could be any workflow: stop here.
    let unreadable: Vec<_> = files
        .iter()
        .filter(|f| f.loaded.workflow.is_none())
        .collect();
    if !unreadable.is_empty() {
        eprint!(
            "{}",
            render_all(&files, color && std::io::stderr().is_terminal())
        );
        let names: Vec<&str> = unreadable.iter().map(|f| f.display.as_str()).collect();
        return Err(CliError::Invalid(format!(
            "invalid workflow: {}",
            names.join(", ")
        )));
    }
    let chosen = select::workflows(&all, args)?;
    // Only the chosen workflows must be valid; a broken unrelated file
    // should not stop a local run (it is still reported).
    let broken: Vec<_> = files
        .iter()
        .filter(|f| f.loaded.has_errors())
        .filter(|f| f.loaded.workflow.is_none() || chosen.iter().any(|w| w.file == f.display))
        .collect();
    let text = render_all(&files, color && std::io::stderr().is_terminal());
    for f in files.iter().filter(|f| f.loaded.has_errors()) {
        if !broken.iter().any(|b| b.display == f.display) {
            eprintln!(
                "note: {} has errors and is not run (see `kiln validate`)",
                f.display
            );
        }
    }
    if !broken.is_empty() {
        eprint!("{text}");
        let names: Vec<&str> = broken.iter().map(|f| f.display.as_str()).collect();
        return Err(CliError::Invalid(format!(
            "invalid workflow: {}",
            names.join(", ")
        )));
    }
    // The chosen workflows' warnings (a GitHub-hosted `runs-on`, ...) are
    // shown before they run.
    let warnings = render_warnings(&files, color && std::io::stderr().is_terminal(), |name| {
        chosen.iter().any(|w| w.file == name)
    });
    if !warnings.is_empty() {
        eprintln!("{}\n", warnings.trim_end());
    }
    let inputs = resolve_inputs(&chosen, args)?;
    let flags =
        kiln_pipeline::inputs::flags(&args.flags).map_err(|e| CliError::Usage(format!("--{e}")))?;
    let capacity = args.parallel.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    });
    if capacity == 0 {
        return Err(CliError::Usage("--parallel must be at least 1".into()));
    }
    let source = if args.in_place {
        None
    } else {
        Some(Arc::new(workspace::Source::new(
            repo.root.clone(),
            repo.worktree_files()?,
        )))
    };
    let scratch = tempfile::Builder::new().prefix("kiln-exec-").tempdir()?;
    let printer = Printer::new(color, args.quiet);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let driver = Driver {
        repo,
        args,
        inputs,
        flags,
        source,
        scratch: scratch.path().to_path_buf(),
        printer,
        run_id: format!("{}", std::process::id()),
    };
    let (runs, interrupted) = rt.block_on(driver.drive(&chosen, capacity))?;
    drop(scratch);

    if let Some(path) = &args.json {
        let doc = ResultsDocument {
            schema: RESULTS_SCHEMA.to_owned(),
            runs: runs.clone(),
        };
        let json = serde_json::to_string_pretty(&doc).map_err(std::io::Error::from)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| CliError::Usage(format!("writing {}: {e}", path.display())))?;
    }
    if interrupted {
        return Ok(exit::INTERRUPTED);
    }
    let failed = runs
        .iter()
        .any(|r| matches!(r.status, JobStatus::Failure | JobStatus::Cancelled));
    Ok(if failed { exit::FAILURE } else { exit::SUCCESS })
}

fn resolve_inputs(chosen: &[Arc<Workflow>], args: &ExecArgs) -> Result<Vec<Value>, CliError> {
    let given = kiln_pipeline::inputs::parse_pairs(&args.inputs)
        .map_err(|e| CliError::Usage(format!("--input {e}")))?;
    if !given.is_empty() && args.event != "workflow_dispatch" {
        return Err(CliError::Usage(
            "--input is for workflow_dispatch runs: add --event workflow_dispatch".into(),
        ));
    }
    chosen
        .iter()
        .map(|wf| match (&wf.on.workflow_dispatch, args.event.as_str()) {
            (Some(d), "workflow_dispatch") => kiln_pipeline::inputs::resolve(d, &given)
                .map_err(|e| CliError::Usage(format!("workflow `{}`: {e}", wf.display_name()))),
            (None, "workflow_dispatch") if !given.is_empty() => Err(CliError::Usage(format!(
                "workflow `{}` has no workflow_dispatch inputs",
                wf.display_name()
            ))),
            _ => Ok(Value::Object(BTreeMap::new())),
        })
        .collect()
}

/// One node of the combined graph: a job of one of the chosen workflows.
struct Node {
    wf: usize,
    job: usize,
}

/// What the driver keeps per started or planned instance.
struct Slot {
    instance: Instance,
    queued_at: Timestamp,
    queued_clock: Instant,
    cancel: Cancel,
}

struct Driver<'a> {
    repo: Repo,
    args: &'a ExecArgs,
    inputs: Vec<Value>,
    flags: Value,
    source: Option<Arc<workspace::Source>>,
    scratch: PathBuf,
    printer: Arc<Printer>,
    run_id: String,
}

/// A finished instance, as reported by its task.
struct Done {
    key: InstanceKey,
    result: JobResult,
}

impl Driver<'_> {
    async fn drive(
        &self,
        chosen: &[Arc<Workflow>],
        capacity: u32,
    ) -> Result<(Vec<RunResult>, bool), CliError> {
        let started_at = Timestamp::now();
        let clock = Instant::now();
        let mut nodes = Vec::new();
        let mut specs = Vec::new();
        for (wi, wf) in chosen.iter().enumerate() {
            let jobs = select::jobs(wf, &self.args.jobs, self.args.workflow.is_some())?;
            let base = nodes.len();
            for &ji in &jobs {
                let needs = wf.jobs[ji]
                    .needs
                    .iter()
                    .filter_map(|n| {
                        jobs.iter()
                            .position(|&j| &wf.jobs[j].id == n)
                            .map(|p| base + p)
                    })
                    .collect();
                nodes.push(Node { wf: wi, job: ji });
                specs.push(NodeSpec { needs });
            }
        }
        let githubs: Vec<Value> = chosen
            .iter()
            .zip(&self.inputs)
            .map(|(wf, inputs)| {
                select::github_context(&self.repo, wf, self.args, inputs, &self.run_id)
            })
            .collect();
        let executor = kiln_exec::select::Executors::new(
            self.args
                .containers
                .exec_config()
                .map_err(CliError::Usage)?,
        );
        let base_env: Arc<Vec<(String, String)>> = Arc::new(std::env::vars().collect());
        let mut graph = RunGraph::new(specs, capacity);
        let mut slots: HashMap<InstanceKey, Slot> = HashMap::new();
        let mut results: BTreeMap<InstanceKey, JobResult> = BTreeMap::new();
        let mut plans: HashMap<usize, Plan> = HashMap::new();
        let (tx, mut rx) = mpsc::unbounded_channel::<Done>();
        let mut interrupts = interrupts();
        let mut interrupted = 0u32;
        let mut started = 0usize;
        let mut pending = graph.start();
        let empty = Value::Object(BTreeMap::new());

        loop {
            let mut events = Vec::new();
            for cmd in pending.drain(..) {
                match cmd {
                    Command::Evaluate { node, needs } => {
                        let n = &nodes[node];
                        let wf = &chosen[n.wf];
                        let job = &wf.jobs[n.job];
                        let needs_ctx = self.needs_context(&nodes, node, &graph, &results, chosen);
                        let kiln = Value::object([("flags", self.flags.clone())]);
                        let cx = JobContexts {
                            github: &githubs[n.wf],
                            inputs: &self.inputs[n.wf],
                            needs: &needs_ctx,
                            vars: &empty,
                            kiln: &kiln,
                            secrets: &empty,
                        };
                        let status = match needs {
                            NeedsStatus::Success => StatusCheck::Success,
                            NeedsStatus::Failure => StatusCheck::Failure,
                            NeedsStatus::NotSuccess => StatusCheck::NotSuccess,
                            NeedsStatus::Cancelled => StatusCheck::Cancelled,
                        };
                        let key = InstanceKey { node, index: 0 };
                        match plan_job(job, cx, status) {
                            Ok(Decision::Skip) => {
                                // Not run because the run was cancelled: cancelled, not skipped.
                                let (status, reason) = if needs == NeedsStatus::Cancelled {
                                    (
                                        JobStatus::Cancelled,
                                        "cancelled: the run was cancelled before it started",
                                    )
                                } else if job.if_.is_none() && needs != NeedsStatus::Success {
                                    (
                                        JobStatus::Skipped,
                                        "skipped: a job it needs did not succeed",
                                    )
                                } else {
                                    (JobStatus::Skipped, "skipped: its if condition was false")
                                };
                                let mut r = blank_result(wf, n.job, job.id.as_str(), status);
                                r.reason = Some(reason.to_owned());
                                self.printer.job(node, job.id.as_str()).say(reason);
                                results.insert(key, r);
                                events.push(Event::Skipped { node });
                            }
                            Ok(Decision::Run(plan)) => {
                                let now = Timestamp::now();
                                let expansion = Expansion {
                                    weight: plan.weight,
                                    instances: plan.instances.len(),
                                    fail_fast: plan.fail_fast,
                                    max_parallel: plan.max_parallel,
                                    continue_on_error: plan
                                        .instances
                                        .iter()
                                        .map(|i| i.continue_on_error)
                                        .collect(),
                                };
                                for (index, inst) in plan.instances.iter().enumerate() {
                                    slots.insert(
                                        InstanceKey { node, index },
                                        Slot {
                                            instance: inst.clone(),
                                            queued_at: now,
                                            queued_clock: Instant::now(),
                                            cancel: Cancel::default(),
                                        },
                                    );
                                }
                                plans.insert(node, plan);
                                events.push(Event::Expanded { node, expansion });
                            }
                            Err(e) => {
                                let mut r =
                                    blank_result(wf, n.job, job.id.as_str(), JobStatus::Failure);
                                r.reason = Some(e.message.clone());
                                r.failure = Some(Failure::of(FailureClass::Other));
                                self.printer
                                    .job(node, job.id.as_str())
                                    .note(&format!("error: {e}"));
                                results.insert(key, r);
                                events.push(Event::EvaluationFailed { node });
                            }
                        }
                    }
                    Command::Start { key } => {
                        started += 1;
                        let n = &nodes[key.node];
                        let Some(slot) = slots.get(&key) else {
                            continue;
                        };
                        let wf = chosen[n.wf].clone();
                        let mut github = githubs[n.wf].clone();
                        if let Value::Object(m) = &mut github {
                            m.insert("job".into(), Value::str(wf.jobs[n.job].id.to_string()));
                        }
                        let contexts = BaseContexts {
                            github,
                            inputs: self.inputs[n.wf].clone(),
                            needs: self.needs_context(&nodes, key.node, &graph, &results, chosen),
                            kiln: Value::object([("flags", self.flags.clone())]),
                            secrets: empty.clone(),
                            vars: empty.clone(),
                            strategy: slot.instance.strategy.clone(),
                            matrix: slot
                                .instance
                                .matrix
                                .as_ref()
                                .map(|m| m.to_value())
                                .unwrap_or(Value::Null),
                            runner: Value::Null,
                        };
                        let task = JobTask {
                            key,
                            wf,
                            job_index: n.job,
                            instance: slot.instance.clone(),
                            contexts,
                            queued_at: slot.queued_at,
                            queued_clock: slot.queued_clock,
                            cancel: slot.cancel.clone(),
                            dir: self.scratch.join(format!("{}-{}", key.node, key.index)),
                            in_place: self.args.in_place.then(|| self.repo.root.clone()),
                            source: self.source.clone(),
                            kill_grace: Duration::from_secs_f64(self.args.kill_grace.max(0.0)),
                            observer: self.printer.job(started, &slot.instance.name),
                            executor: executor.clone(),
                            base_env: base_env.clone(),
                        };
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            let result = task.run().await;
                            let _ = tx.send(Done { key, result });
                        });
                    }
                    Command::Cancel { key } => {
                        if let Some(slot) = slots.get(&key) {
                            slot.cancel.graceful.cancel();
                            if interrupted >= 2 {
                                slot.cancel.immediate.cancel();
                            }
                        }
                    }
                    Command::Dropped { key, status } => {
                        let n = &nodes[key.node];
                        let wf = &chosen[n.wf];
                        let mut r = blank_result(wf, n.job, wf.jobs[n.job].id.as_str(), status);
                        if let Some(slot) = slots.get(&key) {
                            r.name = slot.instance.name.clone();
                            r.matrix = slot.instance.matrix.as_ref().map(combination_map);
                            r.queued_at = Some(slot.queued_at);
                        }
                        r.reason = Some("cancelled before it started".into());
                        results.insert(key, r);
                    }
                    Command::RunFinished { .. } => {}
                }
            }
            for e in events.drain(..) {
                pending.extend(graph.on(e));
            }
            if !pending.is_empty() {
                continue;
            }
            if graph.is_finished() {
                break;
            }
            tokio::select! {
                done = rx.recv() => {
                    let Some(Done { key, result }) = done else { break };
                    let status = result.status;
                    results.insert(key, result);
                    pending.extend(graph.on(Event::Finished { key, status }));
                }
                Some(()) = interrupts.recv() => {
                    interrupted += 1;
                    if interrupted == 1 {
                        self.printer.line("interrupted: cancelling running jobs (Ctrl-C again to kill them now)");
                        pending.extend(graph.on(Event::CancelRun));
                    } else {
                        self.printer.line("interrupted again: killing running jobs");
                        for slot in slots.values() {
                            slot.cancel.immediate.cancel();
                        }
                    }
                }
            }
        }

        let finished_at = Timestamp::now();
        let runs = chosen
            .iter()
            .enumerate()
            .map(|(wi, wf)| {
                let jobs: Vec<JobResult> = results
                    .iter()
                    .filter(|(k, _)| nodes[k.node].wf == wi)
                    .map(|(_, r)| r.clone())
                    .collect();
                RunResult {
                    workflow_file: wf.file.clone(),
                    workflow_name: wf.display_name().to_owned(),
                    event: self.args.event.clone(),
                    commit: self.repo.head.clone(),
                    git_ref: self.repo.branch.as_ref().map(|b| format!("refs/heads/{b}")),
                    status: run_status(
                        (0..nodes.len())
                            .filter(|n| nodes[*n].wf == wi)
                            .filter_map(|n| graph.node_status(n)),
                        interrupted > 0,
                    ),
                    started_at,
                    finished_at,
                    duration_ms: clock.elapsed().as_millis() as u64,
                    jobs,
                }
            })
            .collect::<Vec<_>>();
        let all: Vec<&JobResult> = runs.iter().flat_map(|r| &r.jobs).collect();
        self.printer.line(&output::summary(&self.printer, &all));
        let failed = all
            .iter()
            .filter(|j| j.status == JobStatus::Failure)
            .count();
        let ok = all
            .iter()
            .filter(|j| j.status == JobStatus::Success)
            .count();
        self.printer.line(&format!(
            "{} job{}: {ok} succeeded, {failed} failed, {} other, in {}",
            all.len(),
            if all.len() == 1 { "" } else { "s" },
            all.len() - ok - failed,
            output::fmt_ms(clock.elapsed().as_millis() as u64)
        ));
        Ok((runs, interrupted > 0))
    }

    /// The `needs` context of `node`: result and outputs of each job it needs.
    fn needs_context(
        &self,
        nodes: &[Node],
        node: usize,
        graph: &RunGraph,
        results: &BTreeMap<InstanceKey, JobResult>,
        chosen: &[Arc<Workflow>],
    ) -> Value {
        let n = &nodes[node];
        let wf = &chosen[n.wf];
        let mut out = BTreeMap::new();
        for need in &wf.jobs[n.job].needs {
            let Some(ni) = nodes
                .iter()
                .position(|m| m.wf == n.wf && &wf.jobs[m.job].id == need)
            else {
                continue;
            };
            let status = graph.node_status(ni).unwrap_or(JobStatus::Skipped);
            let mut outputs = BTreeMap::new();
            for (_, r) in results.range(
                InstanceKey { node: ni, index: 0 }..=InstanceKey {
                    node: ni,
                    index: usize::MAX,
                },
            ) {
                for (k, v) in &r.outputs {
                    outputs.insert(k.clone(), Value::str(v.clone()));
                }
            }
            out.insert(
                need.to_string(),
                Value::object([
                    ("result", Value::str(status.as_str())),
                    ("outputs", Value::Object(outputs)),
                ]),
            );
        }
        Value::Object(out)
    }
}

/// A workflow's status from its jobs' statuses as the graph aggregated them
/// (a failed matrix instance with `continue-on-error` counts as success).
fn run_status(nodes: impl Iterator<Item = JobStatus>, interrupted: bool) -> JobStatus {
    let statuses: Vec<JobStatus> = nodes.collect();
    if interrupted {
        JobStatus::Cancelled
    } else if statuses.contains(&JobStatus::Failure) {
        JobStatus::Failure
    } else if statuses.contains(&JobStatus::Success) || statuses.is_empty() {
        JobStatus::Success
    } else if statuses.contains(&JobStatus::Cancelled) {
        JobStatus::Cancelled
    } else {
        JobStatus::Skipped
    }
}

fn combination_map(c: &kiln_pipeline::matrix::Combination) -> BTreeMap<String, Value> {
    c.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect()
}

fn blank_result(wf: &Workflow, job_index: usize, name: &str, status: JobStatus) -> JobResult {
    JobResult {
        deploy: None,
        job: wf.jobs[job_index].id.to_string(),
        name: name.to_owned(),
        matrix: None,
        status,
        reason: None,
        failure: None,
        attempt: 1,
        agent: Some("local".into()),
        queued_at: None,
        started_at: None,
        finished_at: None,
        duration_ms: 0,
        phases: Vec::new(),
        outputs: BTreeMap::new(),
        steps: Vec::new(),
    }
}

/// Ctrl-C presses, as a channel.
///
/// One SIGINT listener for the whole run, registered before this returns:
/// a fresh `ctrl_c()` per press would leave a gap in which a quick second
/// Ctrl-C is lost.
fn interrupts() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        Ok(mut sigint) => {
            tokio::spawn(async move {
                while sigint.recv().await.is_some() {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
        }
        Err(e) => eprintln!("warning: Ctrl-C will not cancel jobs: {e}"),
    }
    rx
}

/// One job instance on its way through workspace, runner and cleanup.
struct JobTask {
    key: InstanceKey,
    wf: Arc<Workflow>,
    job_index: usize,
    instance: Instance,
    contexts: BaseContexts,
    queued_at: Timestamp,
    queued_clock: Instant,
    cancel: Cancel,
    dir: PathBuf,
    in_place: Option<PathBuf>,
    source: Option<Arc<workspace::Source>>,
    kill_grace: Duration,
    observer: output::JobPrinter,
    executor: kiln_exec::select::Executors,
    base_env: Arc<Vec<(String, String)>>,
}

impl JobTask {
    async fn run(mut self) -> JobResult {
        let started_at = Timestamp::now();
        let clock = Instant::now();
        let mut result = blank_result(
            &self.wf,
            self.job_index,
            &self.instance.name,
            JobStatus::Running,
        );
        result.matrix = self.instance.matrix.as_ref().map(combination_map);
        result.queued_at = Some(self.queued_at);
        result.started_at = Some(started_at);
        result.phases.push(Phase {
            kind: PhaseKind::QueueWait,
            name: "queue".into(),
            started_at: self.queued_at,
            duration_ms: (clock - self.queued_clock).as_millis() as u64,
        });

        // Workspace.
        let ws_started = Timestamp::now();
        let ws_clock = Instant::now();
        let temp = self.dir.join("tmp");
        let prepared = {
            let dir = self.dir.clone();
            let source = self.source.clone();
            let in_place = self.in_place.clone();
            let temp = temp.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
                std::fs::create_dir_all(&temp)?;
                match (in_place, source) {
                    (Some(root), _) => Ok(root),
                    (None, Some(src)) => {
                        let ws = dir.join("ws");
                        src.materialize(&ws)?;
                        Ok(ws)
                    }
                    (None, None) => Ok(dir.join("ws")),
                }
            })
            .await
        };
        result.phases.push(Phase {
            kind: PhaseKind::Workspace,
            name: "workspace".into(),
            started_at: ws_started,
            duration_ms: ws_clock.elapsed().as_millis() as u64,
        });
        let workspace = match prepared {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => return self.fail(result, clock, format!("preparing the workspace: {e}")),
            Err(e) => return self.fail(result, clock, format!("preparing the workspace: {e}")),
        };
        self.contexts.runner = Value::object([
            ("os", Value::str("Linux")),
            ("arch", Value::str(runner_arch())),
            ("name", Value::str("local")),
            ("temp", Value::str(temp.display().to_string())),
            ("workspace", Value::str(workspace.display().to_string())),
        ]);
        if let Value::Object(g) = &mut self.contexts.github {
            g.insert(
                "workspace".into(),
                Value::str(workspace.display().to_string()),
            );
        }
        let run = JobRun {
            workflow: self.wf.clone(),
            job_index: self.job_index,
            contexts: self.contexts.clone(),
            workspace,
            temp,
            base_env: self.base_env.as_ref().clone(),
            kill_grace: self.kill_grace,
            label: format!(
                "kiln-exec-{}-{}-{}",
                std::process::id(),
                self.key.node,
                self.key.index
            ),
            checkout: None,
        };
        let observer: Arc<dyn JobObserver> = Arc::new(self.observer);
        let executor = self.executor.executor_for(&run);
        let outcome = run_job(executor.as_ref(), &run, observer.clone(), &self.cancel).await;

        // Cleanup: the runner stopped leftovers; the job's directory is
        // removed in the background, off the job's critical path (whatever
        // is left when kiln exits goes with the scratch directory).
        let cleanup_clock = Instant::now();
        let dir = self.dir.clone();
        drop(tokio::task::spawn_blocking(move || {
            std::fs::remove_dir_all(dir)
        }));
        let mut phases = outcome.phases;
        if let Some(last) = phases.last_mut()
            && last.kind == PhaseKind::Cleanup
        {
            last.duration_ms += cleanup_clock.elapsed().as_millis() as u64;
        }
        result.phases.extend(phases);
        result.status = outcome.status;
        result.reason = outcome.reason;
        result.outputs = outcome.outputs;
        result.steps = outcome.steps;
        result.deploy = outcome.deploy;
        result.failure = outcome.failure;
        result.finished_at = Some(Timestamp::now());
        result.duration_ms = clock.elapsed().as_millis() as u64;
        match &result.reason {
            Some(r) if r != result.status.as_str() => {
                observer.note(&format!("{}: {r}", result.status))
            }
            Some(_) | None => {}
        }
        result
    }

    fn fail(self, mut result: JobResult, clock: Instant, reason: String) -> JobResult {
        self.observer.note(&reason);
        result.status = JobStatus::Failure;
        // Only preparing the workspace fails here: the local `checkout`.
        result.failure = Some(Failure::of(FailureClass::Checkout));
        result.reason = Some(reason);
        result.finished_at = Some(Timestamp::now());
        result.duration_ms = clock.elapsed().as_millis() as u64;
        let _ = std::fs::remove_dir_all(&self.dir);
        result
    }
}

fn runner_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "X64",
        "aarch64" => "ARM64",
        "x86" => "X86",
        "arm" => "ARM",
        other => other,
    }
}
