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

use crate::port::{Cancel, Executor, JobSpec, LogLine, LogSink, StepExit, StepReport, StepSpec};
use context::{BaseContexts, Ctx, field};
use jiff::Timestamp;
use kiln_model::workflow::{Builtin, Dyn, Job, Shell, Step, StepAction, Template, Workflow};
use kiln_model::{Failure, FailureClass, JobStatus, StepStatus, Value};
use kiln_pipeline::expr::{self, StatusCheck};
use kiln_proto::results::{DeployOutcome, Phase, PhaseKind, StepResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
        outcome.status = JobStatus::Failure;
        outcome.failure = Some(Failure::of(FailureClass::Other));
        observer.note(&reason);
        outcome.reason = Some(reason);
        return outcome;
    }
    let timeout = match state.eval_minutes(job.timeout_minutes.as_ref(), "timeout-minutes") {
        Ok(t) => t.unwrap_or(DEFAULT_JOB_TIMEOUT_MINUTES),
        Err(reason) => {
            outcome.status = JobStatus::Failure;
            outcome.failure = Some(Failure::of(FailureClass::Other));
            outcome.reason = Some(reason);
            return outcome;
        }
    };
    let deadline = Instant::now() + minutes(timeout);

    let spec = JobSpec {
        workspace: run.workspace.clone(),
        label: run.label.clone(),
    };
    let mut handle = match executor.start_job(&spec).await {
        Ok(h) => h,
        Err(e) => {
            outcome.status = JobStatus::Failure;
            outcome.failure = Some(Failure::of(FailureClass::Other));
            outcome.reason = Some(e.to_string());
            observer.note(&e.to_string());
            return outcome;
        }
    };

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
            state.should_run(step, status)
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
                handle.as_mut(),
                number,
                step,
                &name,
                deadline,
                &step_cancel,
                &observer,
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

    // Job outputs, from the final step states.
    for (key, tpl) in &job.outputs {
        match state.render(tpl) {
            Ok(v) => {
                outcome.outputs.insert(key.clone(), v);
            }
            Err(e) => observer.note(&format!("output `{key}` could not be evaluated: {e}")),
        }
    }

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
    outcome.failure = failure_of(&state, outcome.status);
    outcome
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

/// The runner's state while it walks the steps.
struct JobState<'r> {
    run: &'r JobRun,
    /// `env` context so far: workflow, then job, then `$KILN_ENV` additions.
    env: BTreeMap<String, String>,
    /// Directories from `$KILN_PATH`, newest first.
    path_prefix: Vec<String>,
    steps: BTreeMap<String, Value>,
    job_ctx: Value,
    failed: bool,
    cancelled: bool,
    timed_out: bool,
    /// The first step failure that counted (after `continue-on-error`).
    failure: Option<Failure>,
    /// The class of the step `execute` ran last, if it failed.
    step_class: FailureClass,
    /// The environment's rendered name, for `$KILN_ENVIRONMENT`.
    environment: Option<String>,
    /// `$KILN_ROLLBACK_TO`, set while the rollback steps run.
    rollback_to: Option<String>,
    shell: Shell,
    working_directory: Option<Template>,
}

impl<'r> JobState<'r> {
    fn new(run: &'r JobRun, job: &Job) -> Self {
        let defaults = [&job.defaults, &run.workflow.defaults];
        JobState {
            run,
            env: BTreeMap::new(),
            path_prefix: Vec::new(),
            steps: BTreeMap::new(),
            job_ctx: Value::object([("status", Value::str("success"))]),
            failed: false,
            cancelled: false,
            timed_out: false,
            failure: None,
            step_class: FailureClass::Other,
            environment: None,
            rollback_to: None,
            shell: defaults
                .iter()
                .find_map(|d| d.shell.clone())
                .unwrap_or(Shell::Bash),
            working_directory: defaults.iter().find_map(|d| d.working_directory.clone()),
        }
    }

    fn status(&self) -> StatusCheck {
        if self.cancelled || self.timed_out {
            StatusCheck::Cancelled
        } else if self.failed {
            StatusCheck::Failure
        } else {
            StatusCheck::Success
        }
    }

    fn env_value(&self, extra: &BTreeMap<String, String>) -> Value {
        Value::Object(
            self.env
                .iter()
                .chain(extra.iter())
                .map(|(k, v)| (k.clone(), Value::str(v.clone())))
                .collect(),
        )
    }

    fn with_ctx<T>(
        &self,
        extra_env: &BTreeMap<String, String>,
        f: impl FnOnce(&Ctx<'_>) -> T,
    ) -> T {
        let env = self.env_value(extra_env);
        let steps = Value::Object(self.steps.clone());
        let ctx = Ctx {
            base: &self.run.contexts,
            env: &env,
            steps: &steps,
            job: &self.job_ctx,
            status: self.status(),
            workspace: &self.run.workspace,
        };
        f(&ctx)
    }

    fn render(&self, tpl: &Template) -> Result<String, String> {
        self.render_with(tpl, &BTreeMap::new())
    }

    fn render_with(
        &self,
        tpl: &Template,
        extra: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        if tpl.is_literal() {
            return Ok(tpl.src.clone());
        }
        let parsed = expr::parse_template(&tpl.src).map_err(|e| e.to_string())?;
        self.with_ctx(extra, |ctx| parsed.render(ctx))
            .map_err(|e| e.to_string())
    }

    fn eval_value(&self, tpl: &Template) -> Result<Value, String> {
        let parsed = expr::parse_template(&tpl.src).map_err(|e| e.to_string())?;
        self.with_ctx(&BTreeMap::new(), |ctx| parsed.eval(ctx))
            .map_err(|e| e.to_string())
    }

    fn eval_bool(&self, d: &Dyn<bool>) -> Result<bool, String> {
        match d {
            Dyn::Lit(b) => Ok(*b),
            Dyn::Expr(t) => self.eval_value(t).map(|v| expr::truthy(&v)),
        }
    }

    fn eval_minutes(&self, d: Option<&Dyn<f64>>, what: &str) -> Result<Option<f64>, String> {
        let n = match d {
            None => return Ok(None),
            Some(Dyn::Lit(n)) => *n,
            Some(Dyn::Expr(t)) => match self.eval_value(t)? {
                Value::Number(n) => n,
                Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{what}: `{s}` is not a number of minutes"))?,
                other => {
                    return Err(format!(
                        "{what}: expected a number, got {}",
                        expr::to_string(&other)
                    ));
                }
            },
        };
        if !(n > 0.0 && n.is_finite()) {
            return Err(format!(
                "{what}: must be a positive number of minutes, got {n}"
            ));
        }
        Ok(Some(n))
    }

    fn evaluate_job_env(&mut self, wf: &Workflow, job: &Job) -> Result<(), String> {
        for (scope, pairs) in [("workflow", &wf.env), ("job", &job.env)] {
            for (k, tpl) in pairs {
                let v = self
                    .render(tpl)
                    .map_err(|e| format!("{scope} env `{k}`: {e}"))?;
                self.env.insert(k.clone(), v);
            }
        }
        Ok(())
    }

    /// Render the environment's name once, for `$KILN_ENVIRONMENT` and the
    /// deploy's messages.
    fn evaluate_environment(&mut self, job: &Job) -> Result<(), String> {
        if let Some(env) = &job.environment {
            let name = self
                .render(&env.name)
                .map_err(|e| format!("environment name: {e}"))?;
            self.environment = Some(name);
        }
        Ok(())
    }

    fn step_name(&self, step: &Step) -> String {
        if let Some(n) = &step.name {
            if let Ok(s) = self.render(n) {
                return s;
            }
            return n.src.clone();
        }
        match &step.action {
            StepAction::Run { script, .. } => {
                let first = script
                    .src
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                format!("Run {}", first.trim())
            }
            StepAction::Uses {
                builtin: Builtin::Checkout,
                ..
            } => "Run actions/checkout".into(),
            StepAction::Unsupported { uses } => format!("Run {uses}"),
        }
    }

    /// Whether the step's condition holds. `Err` is an evaluation error,
    /// which fails the step.
    fn should_run(&self, step: &Step, status: StatusCheck) -> Result<bool, String> {
        match &step.if_ {
            None => Ok(status == StatusCheck::Success),
            Some(cond) => {
                let parsed = expr::parse_condition(&cond.src).map_err(|e| format!("if: {e}"))?;
                self.with_ctx(&BTreeMap::new(), |ctx| parsed.eval(ctx))
                    .map_err(|e| format!("if: {e}"))
            }
        }
    }

    fn record(&mut self, step: &Step, result: &StepResult, outputs: BTreeMap<String, String>) {
        let class = std::mem::replace(&mut self.step_class, FailureClass::Other);
        match result.status {
            StepStatus::Failure => {
                self.failed = true;
                self.failure.get_or_insert(Failure {
                    class,
                    step: Some(result.number),
                    exit_code: result.exit_code.filter(|&c| c != 0),
                });
            }
            StepStatus::Cancelled => self.cancelled = true,
            StepStatus::Success | StepStatus::Skipped => {}
        }
        self.refresh_job_ctx();
        if let Some(id) = &step.id {
            let outputs = Value::Object(
                outputs
                    .into_iter()
                    .map(|(k, v)| (k, Value::str(v)))
                    .collect(),
            );
            self.steps.insert(
                id.to_string(),
                Value::object([
                    ("outputs", outputs),
                    ("outcome", Value::str(result.outcome.as_str())),
                    ("conclusion", Value::str(result.status.as_str())),
                ]),
            );
        }
    }

    /// `job.status` from the flags.
    fn refresh_job_ctx(&mut self) {
        self.job_ctx = Value::object([(
            "status",
            Value::str(if self.cancelled || self.timed_out {
                "cancelled"
            } else if self.failed {
                "failure"
            } else {
                "success"
            }),
        )]);
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_step(
        &mut self,
        handle: &mut dyn crate::port::JobHandle,
        number: u32,
        step: &Step,
        name: &str,
        deadline: Instant,
        cancel: &Cancel,
        observer: &Arc<dyn JobObserver>,
    ) -> (StepResult, BTreeMap<String, String>) {
        let started_at = Timestamp::now();
        let mut result = StepResult {
            number,
            id: step.id.as_ref().map(|i| i.to_string()),
            name: name.to_owned(),
            status: StepStatus::Success,
            outcome: StepStatus::Success,
            exit_code: None,
            started_at: Some(started_at),
            finished_at: None,
            duration_ms: 0,
            reason: None,
        };
        let clock = Instant::now();
        let mut outputs = BTreeMap::new();
        let outcome = self
            .execute(
                handle,
                number,
                step,
                deadline,
                cancel,
                observer,
                &mut result,
                &mut outputs,
            )
            .await;
        let continue_on_error = match self.eval_bool(&step.continue_on_error) {
            Ok(b) => b,
            Err(e) => {
                observer.note(&format!("continue-on-error: {e}"));
                false
            }
        };
        result.outcome = outcome;
        result.status = match outcome {
            StepStatus::Failure if continue_on_error => StepStatus::Success,
            StepStatus::Success
            | StepStatus::Failure
            | StepStatus::Cancelled
            | StepStatus::Skipped => outcome,
        };
        result.finished_at = Some(Timestamp::now());
        result.duration_ms = clock.elapsed().as_millis() as u64;
        (result, outputs)
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &mut self,
        handle: &mut dyn crate::port::JobHandle,
        number: u32,
        step: &Step,
        deadline: Instant,
        cancel: &Cancel,
        observer: &Arc<dyn JobObserver>,
        result: &mut StepResult,
        outputs: &mut BTreeMap<String, String>,
    ) -> StepStatus {
        self.step_class = FailureClass::Other;
        let fail = |result: &mut StepResult, reason: String| {
            observer.note(&format!("step {number}: {reason}"));
            result.reason = Some(reason);
            StepStatus::Failure
        };
        let (script, shell, wd) = match &step.action {
            StepAction::Run {
                script,
                shell,
                working_directory,
            } => (script, shell, working_directory),
            StepAction::Uses {
                builtin: Builtin::Checkout,
                ..
            } => {
                let say = |text: String| {
                    observer.line(
                        number,
                        LogLine {
                            stream: crate::port::Stream::Stdout,
                            at: SystemTime::now(),
                            text,
                        },
                    )
                };
                return match &self.run.checkout {
                    None => {
                        say(format!(
                            "workspace already holds the tree: {}",
                            self.run.workspace.display()
                        ));
                        StepStatus::Success
                    }
                    Some(c) => match c.checkout(&self.run.workspace, &say).await {
                        Ok(()) => StepStatus::Success,
                        Err(e) => {
                            self.step_class = FailureClass::Checkout;
                            fail(result, format!("checkout: {e}"))
                        }
                    },
                };
            }
            StepAction::Unsupported { uses } => {
                return fail(result, format!("action `{uses}` is not supported by kiln"));
            }
        };
        // Step env, evaluated with the env so far.
        let mut step_env = BTreeMap::new();
        for (k, tpl) in &step.env {
            match self.render_with(tpl, &step_env) {
                Ok(v) => {
                    step_env.insert(k.clone(), v);
                }
                Err(e) => return fail(result, format!("env `{k}`: {e}")),
            }
        }
        let script = match self.render_with(script, &step_env) {
            Ok(s) => s,
            Err(e) => return fail(result, format!("run: {e}")),
        };
        let shell = shell.clone().unwrap_or_else(|| self.shell.clone());
        let cwd = match wd.as_ref().or(self.working_directory.as_ref()) {
            None => self.run.workspace.clone(),
            Some(t) => match self.render_with(t, &step_env) {
                Ok(d) => self.run.workspace.join(d),
                Err(e) => return fail(result, format!("working-directory: {e}")),
            },
        };
        let step_timeout = match self.eval_minutes(step.timeout_minutes.as_ref(), "timeout-minutes")
        {
            Ok(t) => t.map(minutes),
            Err(e) => return fail(result, e),
        };
        // After the job's own timeout, cleanup steps (`if: always()`) get
        // their own limit or CLEANUP_STEP_LIMIT, not the spent deadline.
        let left = if self.timed_out {
            CLEANUP_STEP_LIMIT
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        let (timeout, job_limit) = match step_timeout {
            Some(t) if t < left => (t, false),
            Some(_) | None => (left, !self.timed_out),
        };

        let temp = &self.run.temp;
        let script_path = temp.join(format!("step-{number}.{}", shell::script_extension(&shell)));
        let files = StepFiles::new(temp, number);
        if let Err(e) = std::fs::write(&script_path, &script).and_then(|()| files.create()) {
            return fail(
                result,
                format!("writing the step's script in {}: {e}", temp.display()),
            );
        }
        let argv = match shell::command(&shell, &script_path) {
            Ok(a) => a,
            Err(e) => return fail(result, e),
        };
        let env = self.process_env(&step_env, &files);
        let spec = StepSpec {
            argv,
            env,
            cwd,
            timeout: Some(timeout),
            kill_grace: self.run.kill_grace,
        };
        let sink: Arc<dyn LogSink> = Arc::new(StepSink {
            number,
            observer: observer.clone(),
        });
        let StepReport { exit, .. } = handle.run_step(spec, sink, cancel).await;

        // File commands are read whatever the exit.
        let mut status = match exit {
            StepExit::Exited(0) => {
                result.exit_code = Some(0);
                StepStatus::Success
            }
            StepExit::Exited(code) => {
                self.step_class = FailureClass::ExitCode;
                result.exit_code = Some(code);
                result.reason = Some(format!("exited with code {code}"));
                StepStatus::Failure
            }
            StepExit::Signalled(sig) => {
                result.reason = Some(format!("killed by signal {sig}"));
                StepStatus::Failure
            }
            StepExit::TimedOut => {
                self.step_class = FailureClass::Timeout;
                if job_limit {
                    self.timed_out = true;
                    result.reason = Some("the job's timeout-minutes was reached".into());
                } else {
                    result.reason = Some(format!("timed out after {}", fmt_duration(timeout)));
                }
                StepStatus::Failure
            }
            StepExit::Cancelled => {
                result.reason = Some("cancelled".into());
                StepStatus::Cancelled
            }
            StepExit::SpawnFailed(m) => {
                result.reason = Some(m.clone());
                observer.note(&format!("step {number}: {m}"));
                StepStatus::Failure
            }
        };
        match files.read() {
            Ok((outs, envs, paths)) => {
                outputs.extend(outs);
                for (k, v) in envs {
                    self.env.insert(k, v);
                }
                for p in paths {
                    self.path_prefix.insert(0, p);
                }
            }
            Err(e) => {
                result.reason = Some(e.clone());
                observer.note(&format!("step {number}: {e}"));
                status = StepStatus::Failure;
            }
        }
        status
    }

    /// The process environment: base, kiln's variables, `env` context, the
    /// step's `env`, and `PATH` with `$KILN_PATH` additions in front.
    fn process_env(
        &self,
        step_env: &BTreeMap<String, String>,
        files: &StepFiles,
    ) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = self.run.base_env.iter().cloned().collect();
        let c = &self.run.contexts;
        let ws = self.run.workspace.display().to_string();
        let temp = self.run.temp.display().to_string();
        let mut set = |k: &str, v: String| {
            env.insert(k.to_owned(), v);
        };
        set("CI", "true".into());
        set("KILN", "true".into());
        for (kiln, gh, v) in [
            ("KILN_WORKSPACE", "GITHUB_WORKSPACE", ws),
            ("KILN_SHA", "GITHUB_SHA", field(&c.github, "sha").to_owned()),
            ("KILN_REF", "GITHUB_REF", field(&c.github, "ref").to_owned()),
            (
                "KILN_REF_NAME",
                "GITHUB_REF_NAME",
                field(&c.github, "ref_name").to_owned(),
            ),
            (
                "KILN_EVENT_NAME",
                "GITHUB_EVENT_NAME",
                field(&c.github, "event_name").to_owned(),
            ),
            (
                "KILN_REPOSITORY",
                "GITHUB_REPOSITORY",
                field(&c.github, "repository").to_owned(),
            ),
            (
                "KILN_RUN_ID",
                "GITHUB_RUN_ID",
                field(&c.github, "run_id").to_owned(),
            ),
            (
                "KILN_RUN_NUMBER",
                "GITHUB_RUN_NUMBER",
                field(&c.github, "run_number").to_owned(),
            ),
            (
                "KILN_ACTOR",
                "GITHUB_ACTOR",
                field(&c.github, "actor").to_owned(),
            ),
            ("KILN_JOB", "GITHUB_JOB", field(&c.github, "job").to_owned()),
            (
                "KILN_OUTPUT",
                "GITHUB_OUTPUT",
                files.output.display().to_string(),
            ),
            ("KILN_ENV", "GITHUB_ENV", files.env.display().to_string()),
            ("KILN_PATH", "GITHUB_PATH", files.path.display().to_string()),
            (
                "KILN_STEP_SUMMARY",
                "GITHUB_STEP_SUMMARY",
                files.summary.display().to_string(),
            ),
        ] {
            set(kiln, v.clone());
            set(gh, v);
        }
        set("RUNNER_OS", field(&c.runner, "os").to_owned());
        set("RUNNER_ARCH", field(&c.runner, "arch").to_owned());
        set("RUNNER_NAME", field(&c.runner, "name").to_owned());
        set("RUNNER_TEMP", temp);
        if let Some(name) = &self.environment {
            set("KILN_ENVIRONMENT", name.clone());
        }
        if let Some(sha) = &self.rollback_to {
            set("KILN_ROLLBACK_TO", sha.clone());
        }
        for (k, v) in self.env.iter().chain(step_env.iter()) {
            env.insert(k.clone(), v.clone());
        }
        if !self.path_prefix.is_empty() {
            let mut parts = self.path_prefix.clone();
            if let Some(p) = env.get("PATH") {
                parts.push(p.clone());
            }
            env.insert("PATH".into(), parts.join(":"));
        }
        env.into_iter().collect()
    }
}

/// The per-step files behind `$KILN_OUTPUT`, `$KILN_ENV`, `$KILN_PATH` and
/// `$KILN_STEP_SUMMARY`.
struct StepFiles {
    output: PathBuf,
    env: PathBuf,
    path: PathBuf,
    summary: PathBuf,
}

impl StepFiles {
    fn new(temp: &Path, number: u32) -> Self {
        let f = |kind: &str| temp.join(format!("step-{number}.{kind}"));
        StepFiles {
            output: f("output"),
            env: f("env"),
            path: f("path"),
            summary: f("summary.md"),
        }
    }

    /// Nothing to create: `>>` creates a file on first write, and a file
    /// never written reads as empty. Only stale files of an earlier use of
    /// the same temp directory are removed.
    fn create(&self) -> std::io::Result<()> {
        for p in [&self.output, &self.env, &self.path, &self.summary] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn read(&self) -> Result<(Vec<(String, String)>, Vec<(String, String)>, Vec<String>), String> {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let outputs =
            files::parse_pairs("$KILN_OUTPUT", &read(&self.output)).map_err(|e| e.to_string())?;
        let env = files::parse_pairs("$KILN_ENV", &read(&self.env)).map_err(|e| e.to_string())?;
        let paths = files::parse_paths(&read(&self.path));
        Ok((outputs, env, paths))
    }
}

struct StepSink {
    number: u32,
    observer: Arc<dyn JobObserver>,
}

impl LogSink for StepSink {
    fn line(&self, line: LogLine) {
        self.observer.line(self.number, line);
    }
}

fn skipped(number: u32, step: &Step, name: &str, reason: Option<String>) -> StepResult {
    StepResult {
        number,
        id: step.id.as_ref().map(|i| i.to_string()),
        name: name.to_owned(),
        status: StepStatus::Skipped,
        outcome: StepStatus::Skipped,
        exit_code: None,
        started_at: None,
        finished_at: None,
        duration_ms: 0,
        reason,
    }
}

fn failed_without_running(number: u32, step: &Step, name: &str, reason: String) -> StepResult {
    let now = Timestamp::now();
    StepResult {
        status: StepStatus::Failure,
        outcome: StepStatus::Failure,
        started_at: Some(now),
        finished_at: Some(now),
        reason: Some(reason),
        ..skipped(number, step, name, None)
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
