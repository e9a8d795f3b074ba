//! The job runner: one job instance's steps, in order, through an executor.
//!
//! Shared by `kiln exec` and the agent, so a job behaves the same locally
//! and on a server. The caller prepares the workspace and the contexts
//! (`github`, `needs`, `matrix`, …); the runner evaluates each step's `if:`,
//! renders its script and environment, runs it through the [`Executor`]
//! port, reads the file commands it wrote (`$KILN_OUTPUT`, `$KILN_ENV`,
//! `$KILN_PATH`), and reports every step to a [`JobObserver`].
//!
//! Status rules follow GitHub Actions: a step runs when its condition holds
//! (`success()` by default); a failed step with `continue-on-error` counts
//! as a success for later steps and for the job; after a cancellation or a
//! job timeout only steps whose condition holds under `cancelled()` (such
//! as `if: always()`) still run, with a fresh graceful-cancel token so that
//! they are not stopped at once.

pub mod context;
mod deploy;
pub mod files;
pub mod hash;
pub mod shell;
mod state;
mod step;
mod step_files;

use crate::port::{Cancel, Executor, JobHandle, JobSpec, LogLine};
use context::BaseContexts;
use jiff::Timestamp;
use kiln_model::workflow::{Job, Workflow};
use kiln_model::{Failure, FailureClass, JobStatus, StepStatus};
use kiln_proto::results::{DeployOutcome, Phase, PhaseKind, StepResult};
use state::JobState;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use step::{failed_without_running, skipped};

/// The limit of a step that runs after its job timed out (a cleanup step
/// with `if: always()`), unless its own `timeout-minutes` is shorter.
pub const CLEANUP_STEP_LIMIT: Duration = Duration::from_secs(5 * 60);

/// GitHub's default job timeout.
pub const DEFAULT_JOB_TIMEOUT_MINUTES: f64 = 360.0;

/// One job instance to run.
#[derive(Clone, Debug)]
pub struct JobRun {
    pub workflow: Arc<Workflow>,
    /// Index of the job in `workflow.jobs`.
    pub job_index: usize,
    /// Contexts fixed for the job (`github`, `needs`, `matrix`, …).
    pub contexts: BaseContexts,
    /// The prepared workspace: steps run here.
    pub workspace: PathBuf,
    /// A private, existing, empty directory for scripts and file commands.
    pub temp: PathBuf,
    /// The environment every step starts from (before kiln's variables and
    /// the workflow's `env`).
    pub base_env: Vec<(String, String)>,
    /// SIGTERM-to-SIGKILL grace for timeouts and cancellation.
    pub kill_grace: Duration,
    /// Unique name of this attempt, for the executor's labels.
    pub label: String,
    /// What `actions/checkout` does. `None`: the workspace already holds
    /// the tree (`kiln exec`), so the step only says so.
    pub checkout: Option<Arc<dyn Checkout>>,
}

/// Puts the job's commit into the workspace, for the `actions/checkout`
/// built-in. Called at most once per step that uses it.
#[async_trait::async_trait]
pub trait Checkout: Send + Sync + std::fmt::Debug {
    /// Check out into `workspace` (which exists and may be empty); report
    /// progress through `log`. `Err` fails the step with that message.
    async fn checkout(
        &self,
        workspace: &Path,
        log: &(dyn Fn(String) + Send + Sync),
    ) -> Result<(), String>;
}

/// Receives what happens in a job, as it happens. Called from the runner's
/// task and from output reader tasks; must not block.
pub trait JobObserver: Send + Sync {
    fn step_started(&self, number: u32, name: &str);
    /// A line of output of step `number`.
    fn line(&self, number: u32, line: LogLine);
    fn step_finished(&self, result: &StepResult);
    /// A message from kiln about the job (not step output).
    fn note(&self, text: &str);
}

/// How the job ended.
#[derive(Clone, Debug, PartialEq)]
pub struct JobOutcome {
    pub status: JobStatus,
    pub reason: Option<String>,
    pub steps: Vec<StepResult>,
    pub outputs: BTreeMap<String, String>,
    /// One phase per step that ran (health-check attempts and rollback
    /// steps included), then cleanup.
    pub phases: Vec<Phase>,
    /// For a job with an `environment` whose steps succeeded: what the
    /// health check and rollback left the environment in. `None` for other
    /// jobs and for a deploy that failed or was cancelled in its steps.
    pub deploy: Option<DeployOutcome>,
    /// For a failed job: why, by class (what `retry:` acts on). `None`
    /// for any other status.
    pub failure: Option<Failure>,
}

/// Run the job. Never fails: every problem becomes a failed step or job
/// with a reason.
pub async fn run_job(
    executor: &dyn Executor,
    run: &JobRun,
    observer: Arc<dyn JobObserver>,
    cancel: &Cancel,
) -> JobOutcome {
    let job = &run.workflow.jobs[run.job_index];
    let mut state = JobState::new(run, job);
    let mut outcome = JobOutcome {
        status: JobStatus::Success,
        reason: None,
        steps: Vec::new(),
        outputs: BTreeMap::new(),
        phases: Vec::new(),
        deploy: None,
        failure: None,
    };

    if let Err(reason) = state
        .evaluate_job_env(&run.workflow, job)
        .and_then(|()| state.evaluate_environment(job))
    {
        let reason = reason.to_string();
        observer.note(&reason);
        return not_started(outcome, reason);
    }
    let timeout = match state.eval_minutes(job.timeout_minutes.as_ref(), "timeout-minutes") {
        Ok(t) => t.unwrap_or(DEFAULT_JOB_TIMEOUT_MINUTES),
        Err(reason) => return not_started(outcome, reason.to_string()),
    };
    let deadline = Instant::now() + minutes(timeout);

    let spec = JobSpec {
        workspace: run.workspace.clone(),
        label: run.label.clone(),
    };
    let mut handle = match executor.start_job(&spec).await {
        Ok(h) => h,
        Err(e) => {
            observer.note(&e.to_string());
            return not_started(outcome, e.to_string());
        }
    };

    run_steps(
        &mut state,
        job,
        handle.as_mut(),
        deadline,
        cancel,
        &observer,
        &mut outcome,
    )
    .await;

    // A deploy whose steps succeeded: health check, then maybe rollback.
    let mut deploy_reason = None;
    if let Some(env) = &job.environment
        && !(state.failed || state.cancelled || state.timed_out)
    {
        let (d, reason) = deploy::after_steps(
            &mut state,
            job,
            env,
            handle.as_mut(),
            deadline,
            cancel,
            &observer,
            &mut outcome,
        )
        .await;
        outcome.deploy = Some(d);
        deploy_reason = reason;
    }

    job_outputs(&state, job, observer.as_ref(), &mut outcome);
    clean_up(handle, observer.as_ref(), &mut outcome).await;
    conclude(&state, timeout, deploy_reason, &mut outcome);
    outcome
}

/// The outcome of a job that failed before its first step.
fn not_started(mut outcome: JobOutcome, reason: String) -> JobOutcome {
    outcome.status = JobStatus::Failure;
    outcome.failure = Some(Failure::of(FailureClass::Other));
    outcome.reason = Some(reason);
    outcome
}

/// The job's steps in order, each run, skipped or failed by its condition.
async fn run_steps(
    state: &mut JobState<'_>,
    job: &Job,
    handle: &mut dyn JobHandle,
    deadline: Instant,
    cancel: &Cancel,
    observer: &Arc<dyn JobObserver>,
    outcome: &mut JobOutcome,
) {
    for (i, step) in job.steps.iter().enumerate() {
        let number = i as u32 + 1;
        if cancel.graceful.is_cancelled() || cancel.immediate.is_cancelled() {
            state.cancelled = true;
        }
        let name = state.step_name(step);
        let status = state.status();
        let decision = if cancel.immediate.is_cancelled() {
            Err("cancelled".to_string())
        } else {
            state.should_run(step, status).map_err(|e| e.to_string())
        };
        let run_it = match decision {
            Ok(true) => true,
            Ok(false) => {
                let result = skipped(number, step, &name, None);
                observer.step_finished(&result);
                state.record(step, &result, BTreeMap::new());
                outcome.steps.push(result);
                continue;
            }
            Err(reason) if cancel.immediate.is_cancelled() => {
                let mut result = skipped(number, step, &name, Some(reason));
                result.status = StepStatus::Cancelled;
                result.outcome = StepStatus::Cancelled;
                observer.step_finished(&result);
                outcome.steps.push(result);
                continue;
            }
            Err(reason) => {
                observer.step_started(number, &name);
                let result = failed_without_running(number, step, &name, reason);
                observer.step_finished(&result);
                state.record(step, &result, BTreeMap::new());
                outcome.steps.push(result);
                continue;
            }
        };
        debug_assert!(run_it);
        observer.step_started(number, &name);
        // After a cancellation or timeout, cleanup steps get a fresh graceful
        // token; Ctrl-C twice (immediate) still stops them.
        let step_cancel = if state.cancelled || state.timed_out {
            Cancel {
                graceful: Default::default(),
                immediate: cancel.immediate.clone(),
            }
        } else {
            cancel.clone()
        };
        let started = Instant::now();
        let (result, step_outputs) = state
            .run_step(
                handle,
                number,
                step,
                &name,
                deadline,
                &step_cancel,
                observer,
            )
            .await;
        outcome.phases.push(Phase {
            kind: PhaseKind::Step,
            name: name.clone(),
            started_at: result.started_at.unwrap_or_else(Timestamp::now),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        observer.step_finished(&result);
        state.record(step, &result, step_outputs);
        outcome.steps.push(result);
    }
}

/// Job outputs, from the final step states.
fn job_outputs(
    state: &JobState<'_>,
    job: &Job,
    observer: &dyn JobObserver,
    outcome: &mut JobOutcome,
) {
    for (key, tpl) in &job.outputs {
        match state.render(tpl) {
            Ok(v) => {
                outcome.outputs.insert(key.clone(), v);
            }
            Err(e) => observer.note(&format!("output `{key}` could not be evaluated: {e}")),
        }
    }
}

/// Ends the job's handle (its containers, leftover processes), timed as
/// the cleanup phase.
async fn clean_up(
    handle: Box<dyn JobHandle>,
    observer: &dyn JobObserver,
    outcome: &mut JobOutcome,
) {
    let cleanup_started = Timestamp::now();
    let cleanup_clock = Instant::now();
    if let Err(e) = handle.finish().await {
        observer.note(&e.to_string());
    }
    outcome.phases.push(Phase {
        kind: PhaseKind::Cleanup,
        name: "cleanup".into(),
        started_at: cleanup_started,
        duration_ms: cleanup_clock.elapsed().as_millis() as u64,
    });
}

/// The job's status, reason and failure class from how its steps and
/// deploy went.
fn conclude(
    state: &JobState<'_>,
    timeout: f64,
    deploy_reason: Option<String>,
    outcome: &mut JobOutcome,
) {
    (outcome.status, outcome.reason) = if state.timed_out {
        (
            JobStatus::Failure,
            Some(format!("timed out after {}", fmt_minutes(timeout))),
        )
    } else if state.failed {
        (JobStatus::Failure, None)
    } else if state.cancelled {
        (JobStatus::Cancelled, Some("cancelled".into()))
    } else {
        (JobStatus::Success, None)
    };
    if let Some(d) = deploy_reason {
        outcome.reason = Some(match outcome.reason.take() {
            Some(base) => format!("{base}; {d}"),
            None => d,
        });
    }
    outcome.failure = failure_of(state, outcome.status);
}

/// The failure class of a job that ended with `status`: a timeout of the
/// job, else the first step that failed it, else `other`.
fn failure_of(state: &JobState<'_>, status: JobStatus) -> Option<Failure> {
    match status {
        JobStatus::Failure => {}
        JobStatus::Success
        | JobStatus::Cancelled
        | JobStatus::Skipped
        | JobStatus::Queued
        | JobStatus::Running => return None,
    }
    match state.failure {
        Some(f) if state.timed_out && f.class != FailureClass::Timeout => {
            Some(Failure::of(FailureClass::Timeout))
        }
        Some(f) => Some(f),
        None if state.timed_out => Some(Failure::of(FailureClass::Timeout)),
        None => Some(Failure::of(FailureClass::Other)),
    }
}

fn minutes(m: f64) -> Duration {
    Duration::from_secs_f64((m * 60.0).min(1e9))
}

fn fmt_minutes(m: f64) -> String {
    fmt_duration(minutes(m))
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{:.0}m{:02.0}s", (s / 60.0).floor(), s % 60.0)
    } else {
        format!("{:.0}h{:02.0}m", (s / 3600.0).floor(), (s % 3600.0) / 60.0)
    }
}
