//! A step in the job container: an exec with the step's environment,
//! stopped on timeout or cancel by stopping the container.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use tokio::time::Instant;

use super::job::ContainerJob;
use super::{KILL_WAIT, engine_message, output};
use crate::port::{Cancel, ExecError, JobHandle, LogSink, StepExit, StepReport, StepSpec};
use crate::process::lines::Emitter;
use crate::process::spawn::check_dir;
impl ContainerJob {
    /// Starts the step as an exec in the job container (started again
    /// first if a timeout or cancel stopped it), its output forwarded to
    /// `sink`. `Err`: the step's exit, for a step that could not start.
    async fn start_exec(
        &mut self,
        step: &StepSpec,
        sink: Arc<dyn LogSink>,
    ) -> Result<StartedExec, StepExit> {
        let failed = |message: String| StepExit::SpawnFailed(message);
        let Some(id) = self.container.clone() else {
            return Err(failed("the job has no container".to_owned()));
        };
        if step.argv.is_empty() {
            return Err(failed("the step has an empty command".to_owned()));
        }
        // The workspace and temp directory are the same paths inside; a
        // missing directory there is reported as the process executor does.
        let mounted = step.cwd.starts_with(&self.workspace) || step.cwd.starts_with(&self.temp);
        if mounted && let Err(e) = check_dir(&step.cwd) {
            return Err(failed(e.to_string()));
        }
        if self.stopped {
            if let Err(e) = self.engine.docker.start_container(&id, None).await {
                return Err(failed(format!(
                    "restarting the job's container: {}",
                    engine_message(&e)
                )));
            }
            self.stopped = false;
        }
        let program = step.argv[0].clone();
        let argv = with_bash_fallback(step.argv.clone());
        let exec = self
            .engine
            .docker
            .create_exec(
                &id,
                CreateExecOptions {
                    cmd: Some(argv),
                    env: Some(self.exec_env(&step.env)),
                    working_dir: Some(step.cwd.display().to_string()),
                    user: self.user.clone(),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| failed(format!("{program}: {}", engine_message(&e))))?;
        let output = match self
            .engine
            .docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await
        {
            Ok(StartExecResults::Attached { output, .. }) => output,
            Ok(StartExecResults::Detached) => {
                return Err(failed(format!("{program}: the engine detached the exec")));
            }
            Err(e) => return Err(failed(format!("{program}: {}", engine_message(&e)))),
        };
        let reader = tokio::spawn(output::forward(output, Emitter::new(sink)));
        Ok(StartedExec {
            id,
            exec: exec.id,
            program,
            reader,
        })
    }

    /// Waits for the exec's output to end, signalling the container on a
    /// timeout or cancel as it comes. `Some`: why kiln stopped the step.
    async fn wait(
        &self,
        id: &str,
        mut reader: tokio::task::JoinHandle<()>,
        step: &StepSpec,
        cancel: &Cancel,
    ) -> Option<Stop> {
        let timeout_at = step.timeout.map(|t| Instant::now() + t);
        let mut reason: Option<StopReason> = None;
        let mut kill_at: Option<Instant> = None;
        let mut killed = false;
        loop {
            tokio::select! {
                biased;
                _ = &mut reader => break,
                () = cancel.immediate.cancelled(), if !killed => {
                    reason.get_or_insert(StopReason::Cancelled);
                    self.signal(id, "SIGKILL").await;
                    killed = true;
                }
                () = cancel.graceful.cancelled(), if reason.is_none() => {
                    reason = Some(StopReason::Cancelled);
                    self.signal(id, "SIGTERM").await;
                    kill_at = Some(Instant::now() + step.kill_grace);
                }
                () = sleep_until_opt(timeout_at), if reason.is_none() => {
                    reason = Some(StopReason::TimedOut);
                    self.signal(id, "SIGTERM").await;
                    kill_at = Some(Instant::now() + step.kill_grace);
                }
                () = sleep_until_opt(kill_at), if !killed => {
                    self.signal(id, "SIGKILL").await;
                    killed = true;
                }
            }
        }
        reason.map(|reason| Stop {
            reason,
            kill_at,
            killed,
        })
    }

    /// Finishes stopping container `id` after a timeout or cancel: the rest
    /// of the container got the same SIGTERM and has what is left of the
    /// grace period (or until an immediate cancel) to end, then it is
    /// killed.
    async fn stop(
        &mut self,
        id: &str,
        Stop {
            reason,
            kill_at,
            killed,
        }: Stop,
        cancel: &Cancel,
    ) -> StepExit {
        self.stopped = true;
        if !killed {
            let deadline = kill_at.unwrap_or_else(Instant::now);
            tokio::select! {
                _ = self.wait_stopped(id, deadline) => {}
                () = cancel.immediate.cancelled() => {}
            }
        }
        self.signal(id, "SIGKILL").await;
        self.wait_stopped(id, Instant::now() + KILL_WAIT).await;
        match reason {
            StopReason::TimedOut => StepExit::TimedOut,
            StopReason::Cancelled => StepExit::Cancelled,
        }
    }

    /// The step's environment for exec: what the runner inherited from
    /// kiln's own environment stays on the host (the container has its
    /// own), and the host `PATH` becomes the container's (keeping entries
    /// that steps added in front with `$KILN_PATH`). Known limit: a
    /// workflow `env:` value equal to the host's value of the same name is
    /// taken for inherited and left out; kiln's own variables never are.
    fn exec_env(&self, env: &[(String, String)]) -> Vec<String> {
        let base: HashMap<&str, &str> = self
            .base_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut out = Vec::with_capacity(env.len());
        for (k, v) in env {
            let inherited = base.get(k.as_str()).copied();
            if k == "PATH" {
                match inherited {
                    Some(host) if host == v => {
                        out.push(format!("PATH={}", self.container_path));
                    }
                    Some(host) if v.ends_with(&format!(":{host}")) => {
                        let added = &v[..v.len() - host.len()];
                        out.push(format!("PATH={added}{}", self.container_path));
                    }
                    Some(_) | None => out.push(format!("PATH={v}")),
                }
                continue;
            }
            // What kiln itself sets always goes in, even when the host
            // happens to have the same value (an agent running under CI=true).
            let kilns = k == "CI"
                || k == "KILN"
                || ["KILN_", "GITHUB_", "RUNNER_"]
                    .iter()
                    .any(|p| k.starts_with(p));
            if inherited == Some(v.as_str()) && !kilns {
                continue;
            }
            out.push(format!("{k}={v}"));
        }
        out
    }
}

/// The runner's default shell is bash; GitHub falls back to `sh` when an
/// image has no bash, and so does kiln: the runner's exact bash command
/// line runs bash when the container has it and `sh -e` otherwise, decided
/// inside the same exec (no extra round trip).
fn with_bash_fallback(argv: Vec<String>) -> Vec<String> {
    const BASH: [&str; 5] = ["bash", "--noprofile", "--norc", "-eo", "pipefail"];
    if argv.len() != 6 || argv[..5] != BASH {
        return argv;
    }
    let script = argv[5].clone();
    vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "if command -v bash >/dev/null 2>&1; then exec bash --noprofile --norc -eo pipefail \"$1\"; \
         else exec sh -e \"$1\"; fi"
            .to_owned(),
        "sh".to_owned(),
        script,
    ]
}

/// A step's exec in the job container, started.
struct StartedExec {
    /// The job container's id.
    id: String,
    exec: String,
    /// The step's program, naming it in errors.
    program: String,
    /// The task forwarding the exec's output: done when the output ends.
    reader: tokio::task::JoinHandle<()>,
}

/// A step kiln is stopping: why, when SIGKILL is due, whether it was sent.
struct Stop {
    reason: StopReason,
    kill_at: Option<Instant>,
    killed: bool,
}

/// Why kiln stopped a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    TimedOut,
    Cancelled,
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[async_trait::async_trait]
impl JobHandle for ContainerJob {
    async fn run_step(
        &mut self,
        step: StepSpec,
        sink: Arc<dyn LogSink>,
        cancel: &Cancel,
    ) -> StepReport {
        self.grace = step.kill_grace;
        let host = self.host.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(host) = host.as_mut() {
            return host.run_step(step, sink, cancel).await;
        }
        let started = SystemTime::now();
        let report = |exit| StepReport {
            exit,
            started,
            finished: SystemTime::now(),
        };
        if cancel.immediate.is_cancelled() || cancel.graceful.is_cancelled() {
            return report(StepExit::Cancelled);
        }
        let started = match self.start_exec(&step, sink).await {
            Ok(started) => started,
            Err(exit) => return report(exit),
        };
        let exit = match self.wait(&started.id, started.reader, &step, cancel).await {
            Some(stop) => self.stop(&started.id, stop, cancel).await,
            None => match self.exit_code(&started.exec).await {
                Ok(code) => StepExit::Exited(i32::try_from(code).unwrap_or(-1)),
                Err(e) => StepExit::SpawnFailed(format!("{}: {e}", started.program)),
            },
        };
        report(exit)
    }

    async fn finish(mut self: Box<Self>) -> Result<(), ExecError> {
        let mut failures = Vec::new();
        let host = self
            .host
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(host) = host
            && let Err(e) = host.finish().await
        {
            failures.push(e.to_string());
        }
        // Background processes of steps get the grace period a step gets.
        let grace = self.grace;
        failures.extend(self.teardown(grace).await.iter().map(ToString::to_string));
        self.finished = true;
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ExecError::Cleanup(format!(
                "job {}: {}",
                self.label,
                failures.join(", ")
            )))
        }
    }
}
