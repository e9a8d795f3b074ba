//! One step, run: its environment, script and working directory
//! rendered, its timeout worked out, the process run through the job's
//! handle, its exit and file commands turned into a [`StepResult`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use jiff::Timestamp;
use kiln_model::FailureClass;
use kiln_model::StepStatus;
use kiln_model::workflow::{Builtin, Shell, Step, StepAction, Template};
use kiln_proto::results::StepResult;

use super::context::field;
use super::state::{JobState, ValueError};
use super::step_files::StepFiles;
use super::{CLEANUP_STEP_LIMIT, JobObserver, fmt_duration, minutes, shell};
use crate::port::{Cancel, LogLine, LogSink, StepExit, StepReport, StepSpec};

/// Why a step could not be run; its message is the step's failure reason.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("checkout: {0}")]
    Checkout(String),
    #[error("env `{key}`: {source}")]
    Env { key: String, source: ValueError },
    #[error("run: {0}")]
    Script(ValueError),
    #[error("working-directory: {0}")]
    WorkingDirectory(ValueError),
    #[error(transparent)]
    Timeout(ValueError),
    #[error("writing the step's script in {}: {source}", .dir.display())]
    Write {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Shell(String),
}

/// A `run:` step ready to run.
struct Prepared {
    spec: StepSpec,
    files: StepFiles,
    timeout: Duration,
    /// Whether `timeout` is what is left of the job's own timeout.
    job_limit: bool,
}

impl JobState<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_step(
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
                return match self.checkout(number, observer).await {
                    Ok(()) => StepStatus::Success,
                    Err(e) => {
                        self.step_class = FailureClass::Checkout;
                        fail(result, e.to_string())
                    }
                };
            }
            StepAction::Unsupported { uses } => {
                return fail(result, format!("action `{uses}` is not supported by kiln"));
            }
        };
        let prepared = match self.prepare(number, step, script, shell, wd, deadline) {
            Ok(p) => p,
            Err(e) => return fail(result, e.to_string()),
        };
        let sink: Arc<dyn LogSink> = Arc::new(StepSink {
            number,
            observer: observer.clone(),
        });
        let StepReport { exit, .. } = handle.run_step(prepared.spec, sink, cancel).await;

        // File commands are read whatever the exit.
        let status = self.exit_status(&exit, prepared.timeout, prepared.job_limit, result);
        if let StepExit::SpawnFailed(m) = &exit {
            observer.note(&format!("step {number}: {m}"));
        }
        match prepared.files.read() {
            Ok((outs, envs, paths)) => {
                outputs.extend(outs);
                for (k, v) in envs {
                    self.env.insert(k, v);
                }
                for p in paths {
                    self.path_prefix.insert(0, p);
                }
                status
            }
            Err(e) => {
                result.reason = Some(e.to_string());
                observer.note(&format!("step {number}: {e}"));
                StepStatus::Failure
            }
        }
    }

    /// The `actions/checkout` built-in: the runner's [`super::Checkout`],
    /// or only a note when the workspace already holds the tree.
    async fn checkout(
        &self,
        number: u32,
        observer: &Arc<dyn JobObserver>,
    ) -> Result<(), StepError> {
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
        match &self.run.checkout {
            None => {
                say(format!(
                    "workspace already holds the tree: {}",
                    self.run.workspace.display()
                ));
                Ok(())
            }
            Some(c) => c
                .checkout(&self.run.workspace, &say)
                .await
                .map_err(StepError::Checkout),
        }
    }

    /// A `run:` step made ready to run: its env, script, shell and working
    /// directory rendered, the script and file-command files written, its
    /// timeout worked out.
    fn prepare(
        &self,
        number: u32,
        step: &Step,
        script: &Template,
        shell: &Option<Shell>,
        wd: &Option<Template>,
        deadline: Instant,
    ) -> Result<Prepared, StepError> {
        // Step env, evaluated with the env so far.
        let mut step_env = BTreeMap::new();
        for (k, tpl) in &step.env {
            let v = self
                .render_with(tpl, &step_env)
                .map_err(|source| StepError::Env {
                    key: k.clone(),
                    source,
                })?;
            step_env.insert(k.clone(), v);
        }
        let script = self
            .render_with(script, &step_env)
            .map_err(StepError::Script)?;
        let shell = shell.clone().unwrap_or_else(|| self.shell.clone());
        let cwd = match wd.as_ref().or(self.working_directory.as_ref()) {
            None => self.run.workspace.clone(),
            Some(t) => self.run.workspace.join(
                self.render_with(t, &step_env)
                    .map_err(StepError::WorkingDirectory)?,
            ),
        };
        let step_timeout = self
            .eval_minutes(step.timeout_minutes.as_ref(), "timeout-minutes")
            .map_err(StepError::Timeout)?
            .map(minutes);
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
        std::fs::write(&script_path, &script)
            .and_then(|()| files.create())
            .map_err(|source| StepError::Write {
                dir: temp.clone(),
                source,
            })?;
        let argv = shell::command(&shell, &script_path).map_err(StepError::Shell)?;
        let env = self.process_env(&step_env, &files);
        Ok(Prepared {
            spec: StepSpec {
                argv,
                env,
                cwd,
                timeout: Some(timeout),
                kill_grace: self.run.kill_grace,
            },
            files,
            timeout,
            job_limit,
        })
    }

    /// The step's status and reason from how its process ended; a timeout
    /// that was the job's own marks the job timed out.
    fn exit_status(
        &mut self,
        exit: &StepExit,
        timeout: Duration,
        job_limit: bool,
        result: &mut StepResult,
    ) -> StepStatus {
        match exit {
            StepExit::Exited(0) => {
                result.exit_code = Some(0);
                StepStatus::Success
            }
            StepExit::Exited(code) => {
                self.step_class = FailureClass::ExitCode;
                result.exit_code = Some(*code);
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
                StepStatus::Failure
            }
        }
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

struct StepSink {
    number: u32,
    observer: Arc<dyn JobObserver>,
}

impl LogSink for StepSink {
    fn line(&self, line: LogLine) {
        self.observer.line(self.number, line);
    }
}

pub(super) fn skipped(number: u32, step: &Step, name: &str, reason: Option<String>) -> StepResult {
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

pub(super) fn failed_without_running(
    number: u32,
    step: &Step,
    name: &str,
    reason: String,
) -> StepResult {
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
