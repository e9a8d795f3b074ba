//! `kiln exec`: run a repository's workflows on this machine.
//!
//! The driver of the pure run graph (`kiln_core::graph`): it evaluates jobs
//! when the graph asks (`kiln_pipeline::plan`), prepares a fresh workspace
//! per job, runs the job through the same runner and executor an agent uses
//! (`kiln_exec::runner`, the executor `kiln_exec::select` picks), and feeds results back as
//! events until the graph says the run is finished.

mod driver;
pub(crate) mod output;
mod select;
mod workspace;

use crate::cli::ExecArgs;
use crate::error::CliError;
use crate::exit;
use crate::repo::Repo;
use crate::workflows::{discover, load_files, render_all, render_warnings};
use driver::Driver;
use jiff::Timestamp;
use kiln_core::graph::InstanceKey;
use kiln_exec::port::Cancel;
use kiln_exec::runner::context::BaseContexts;
use kiln_exec::runner::{JobObserver, JobRun, run_job};
use kiln_model::workflow::Workflow;
use kiln_model::{Failure, FailureClass, JobStatus, Value};
use kiln_pipeline::plan::Instance;
use kiln_proto::results::{JobResult, Phase, PhaseKind, RESULTS_SCHEMA, ResultsDocument};
use output::Printer;
use std::collections::BTreeMap;
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
