//! The process executor: every step is a process group on this machine.
//!
//! Each step's process leads a new process group, so that stopping a step
//! (timeout, cancel) reaches everything it started, and so that `finish`
//! can stop the background processes that steps leave running for later
//! steps (`server &`, as on GitHub Actions). Each group also holds a
//! watcher that kills it when the job's lifeline closes, so no step
//! outlives its job or the kiln process that runs it, even a SIGKILLed
//! one. See `docs/design/executor.md` for the invariants.
//!
//! - `spawn`: resolving the program and building the command;
//! - `lines`: turning pipe bytes into [`LogLine`](crate::port::LogLine)s;
//! - `group`: signalling process groups and bounded waits on them;
//! - `watch`: the job's lifeline and each group's watcher.

mod group;
pub(crate) mod lines;
pub(crate) mod spawn;
mod watch;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::port::{
    Cancel, ExecError, Executor, JobHandle, JobSpec, LogSink, StepExit, StepReport, StepSpec,
    Stream,
};
use group::{Group, KILL_WAIT, group_alive, release, signal_group, wait_group_gone};
use lines::{Emitter, forward_lines};
use watch::Lifeline;

pub use lines::MAX_LINE_BYTES;

/// How long `run_step` keeps reading a step's pipes after its leader exited,
/// when something else (a grandchild, a background process) still holds
/// them open. Output already in the pipes arrives within this window; the
/// readers then go on forwarding in the background until `finish`, and
/// `run_step` returns instead of waiting for processes it does not own.
pub const DRAIN_WINDOW: Duration = Duration::from_millis(100);

/// How long `finish` waits, once every process group of the job is gone,
/// for the reader tasks to deliver what is left in the pipes. Readers still
/// running then are held open by a process that escaped its group (`setsid`)
/// and are aborted.
pub const READER_WAIT: Duration = Duration::from_secs(1);

/// Runs steps as local processes. Stateless: every job gets its own
/// [`JobHandle`], and one executor serves any number of jobs at once.
#[derive(Clone, Debug, Default)]
pub struct ProcessExecutor {
    _private: (),
}

impl ProcessExecutor {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl Executor for ProcessExecutor {
    async fn start_job(&self, job: &JobSpec) -> Result<Box<dyn JobHandle>, ExecError> {
        match std::fs::metadata(&job.workspace) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(ExecError::Prepare(format!(
                    "workspace {} is not a directory",
                    job.workspace.display()
                )));
            }
            Err(err) => {
                return Err(ExecError::Prepare(format!(
                    "workspace {}: {err}",
                    job.workspace.display()
                )));
            }
        }
        let lifeline = Lifeline::new()
            .map_err(|err| ExecError::Prepare(format!("the job's lifeline (a pipe): {err}")))?;
        Ok(Box::new(ProcessJob {
            label: job.label.clone(),
            groups: Vec::new(),
            readers: Vec::new(),
            lifeline,
        }))
    }
}

/// One job attempt: the process groups its steps created that may still
/// have members, the reader tasks still forwarding their output, and the
/// lifeline that the groups' watchers hold.
struct ProcessJob {
    label: String,
    groups: Vec<Group>,
    readers: Vec<JoinHandle<()>>,
    /// Closes when the handle is dropped, after `finish` or `Drop::drop`
    /// stopped the groups (fields drop after `drop` runs); every watcher
    /// still there then ends what is left of its group.
    lifeline: Lifeline,
}

/// Why kiln stopped a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    TimedOut,
    Cancelled,
}

impl StopReason {
    fn exit(self) -> StepExit {
        match self {
            StopReason::TimedOut => StepExit::TimedOut,
            StopReason::Cancelled => StepExit::Cancelled,
        }
    }
}

/// The stopping state of a running step.
#[derive(Debug, Default)]
struct Stopping {
    reason: Option<StopReason>,
    /// When SIGTERM was sent, the moment SIGKILL follows.
    kill_at: Option<Instant>,
    killed: bool,
}

impl Stopping {
    fn terminate(&mut self, pgid: Pid, reason: StopReason, grace: Duration) {
        self.reason.get_or_insert(reason);
        if self.kill_at.is_none() && !self.killed {
            // A failure here can only be EPERM, which SIGKILL would meet as
            // well; the step then ends when its leader does.
            let _ = signal_group(pgid, Signal::SIGTERM);
            self.kill_at = Some(Instant::now() + grace);
        }
    }

    fn kill(&mut self, pgid: Pid, reason: StopReason) {
        self.reason.get_or_insert(reason);
        if !self.killed {
            let _ = signal_group(pgid, Signal::SIGKILL);
            self.killed = true;
        }
    }
}

/// Reader tasks of one step; aborted if `run_step` is dropped midway, so
/// that a dropped step never leaves readers that `finish` does not know.
struct StepReaders(Vec<JoinHandle<()>>);

impl Drop for StepReaders {
    fn drop(&mut self) {
        for reader in &self.0 {
            reader.abort();
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn exit_of(status: ExitStatus) -> StepExit {
    match (status.code(), status.signal()) {
        (Some(code), _) => StepExit::Exited(code),
        (None, Some(signal)) => StepExit::Signalled(signal),
        // Neither a code nor a signal: only stop/continue statuses, which
        // `wait` does not report.
        (None, None) => StepExit::Exited(-1),
    }
}

impl ProcessJob {
    /// Spawns the step's process as the leader of a new group, watched
    /// and registered with the job, its output forwarded to `sink`.
    /// `Err`: the exit of a step that could not start.
    async fn spawn_step(
        &mut self,
        step: &StepSpec,
        sink: Arc<dyn LogSink>,
    ) -> Result<(Child, Group, StepReaders), StepExit> {
        let mut command = match spawn::command_for(step).await {
            Ok(command) => command,
            Err(e) => return Err(StepExit::SpawnFailed(e.to_string())),
        };
        if watch::can_lead() {
            return self.spawn_led(command, step, sink).await;
        }
        let watcher = match watch::arm(&mut command, &self.lifeline) {
            Ok(watcher) => watcher,
            Err(err) => {
                return Err(StepExit::SpawnFailed(format!(
                    "the step's watcher (a pipe): {err}"
                )));
            }
        };
        let spawned = command.spawn();
        let watcher = watcher.watcher();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                // The program could not be executed after the watcher
                // started: the watcher is alone in its group.
                if let Some(watcher) = watcher {
                    let _ = nix::sys::signal::kill(watcher, Signal::SIGKILL);
                }
                let program = step.argv.first().map(String::as_str).unwrap_or_default();
                return Err(StepExit::SpawnFailed(format!("{program}: {err}")));
            }
        };
        let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
            // `id` is None only once the child has been reaped, which nothing
            // did yet.
            return Err(StepExit::SpawnFailed(
                "the step's process vanished".to_owned(),
            ));
        };
        let pgid = Pid::from_raw(pid);
        let Some(watcher) = watcher else {
            // The hook succeeded, so the intermediate reported; a missing pid
            // is a broken invariant. A step does not run unguarded.
            let _ = signal_group(pgid, Signal::SIGKILL);
            let _ = child.wait().await;
            return Err(StepExit::SpawnFailed(
                "the step's watcher did not report its pid".to_owned(),
            ));
        };
        let group = Group {
            pgid,
            kill_grace: step.kill_grace,
            watcher,
        };
        Ok(self.register(child, group, sink))
    }

    /// The step in a group led by its watcher (see `watch`): the watcher
    /// first, then the step joins its group.
    async fn spawn_led(
        &mut self,
        mut command: tokio::process::Command,
        step: &StepSpec,
        sink: Arc<dyn LogSink>,
    ) -> Result<(Child, Group, StepReaders), StepExit> {
        let watcher = watch::lead(&self.lifeline)
            .map_err(|err| StepExit::SpawnFailed(format!("the step's watcher (/bin/sh): {err}")))?;
        command.process_group(watcher.as_raw());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                // The watcher is alone in its group.
                let _ = signal_group(watcher, Signal::SIGKILL);
                let program = step.argv.first().map(String::as_str).unwrap_or_default();
                return Err(StepExit::SpawnFailed(format!("{program}: {err}")));
            }
        };
        let group = Group {
            pgid: watcher,
            kill_grace: step.kill_grace,
            watcher,
        };
        Ok(self.register(child, group, sink))
    }

    /// Register the step's group with the job (from now on `finish`, or
    /// Drop, is responsible for it) and forward its output to `sink`.
    fn register(
        &mut self,
        mut child: Child,
        group: Group,
        sink: Arc<dyn LogSink>,
    ) -> (Child, Group, StepReaders) {
        self.groups.push(group);
        let emitter = Emitter::new(sink);
        let mut readers = StepReaders(Vec::with_capacity(2));
        if let Some(stdout) = child.stdout.take() {
            readers.0.push(tokio::spawn(forward_lines(
                stdout,
                Stream::Stdout,
                emitter.clone(),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            readers
                .0
                .push(tokio::spawn(forward_lines(stderr, Stream::Stderr, emitter)));
        }
        (child, group, readers)
    }

    /// Waits for the step's leader to exit, stopping its group on a
    /// timeout or cancel as they come.
    async fn wait_step(
        child: &mut Child,
        group: &Group,
        step: &StepSpec,
        cancel: &Cancel,
    ) -> StepExit {
        let pgid = group.pgid;
        let timeout_at = step.timeout.map(|timeout| Instant::now() + timeout);
        let mut stopping = Stopping::default();
        let waited = loop {
            tokio::select! {
                biased;
                status = child.wait() => break status,
                () = cancel.immediate.cancelled(), if !stopping.killed => {
                    stopping.kill(pgid, StopReason::Cancelled);
                }
                () = cancel.graceful.cancelled(), if stopping.reason.is_none() => {
                    stopping.terminate(pgid, StopReason::Cancelled, step.kill_grace);
                }
                () = sleep_until_opt(timeout_at), if stopping.reason.is_none() => {
                    stopping.terminate(pgid, StopReason::TimedOut, step.kill_grace);
                }
                () = sleep_until_opt(stopping.kill_at), if !stopping.killed => {
                    stopping.kill(pgid, stopping.reason.unwrap_or(StopReason::Cancelled));
                }
            }
        };

        match (stopping.reason, waited) {
            (Some(reason), _) => {
                // The rest of the group got the same SIGTERM: it has what is
                // left of the grace period (or until an immediate cancel) to
                // end, then it is killed like the leader would have been.
                if !stopping.killed {
                    let deadline = stopping.kill_at.unwrap_or_else(Instant::now);
                    wait_group_gone(group, deadline, Some(&cancel.immediate)).await;
                }
                release(group);
                wait_group_gone(group, Instant::now() + KILL_WAIT, None).await;
                reason.exit()
            }
            (None, Ok(status)) => exit_of(status),
            (None, Err(err)) => {
                // Waiting on our own child cannot fail unless something else
                // reaped it; the step's outcome is unknown, so stop its group.
                let _ = signal_group(pgid, Signal::SIGKILL);
                StepExit::SpawnFailed(format!("waiting for the step's process failed: {err}"))
            }
        }
    }

    /// After the step: output still in the pipes arrives; readers held
    /// open by processes outliving the leader, and groups not yet empty,
    /// move to the job.
    async fn settle(&mut self, mut readers: StepReaders) {
        let drain_until = Instant::now() + DRAIN_WINDOW;
        for mut reader in std::mem::take(&mut readers.0) {
            if tokio::time::timeout_at(drain_until, &mut reader)
                .await
                .is_err()
            {
                self.readers.push(reader);
            }
        }
        // Forget groups that are empty now (but for their watcher), this
        // step's and earlier ones', ending their watchers: nothing is left
        // to guard, and a watcher per finished step would add up.
        self.groups.retain(|group| {
            let alive = group_alive(group);
            if !alive {
                release(group);
            }
            alive
        });
        self.readers.retain(|reader| !reader.is_finished());
    }
}

#[async_trait::async_trait]
impl JobHandle for ProcessJob {
    async fn run_step(
        &mut self,
        step: StepSpec,
        sink: Arc<dyn LogSink>,
        cancel: &Cancel,
    ) -> StepReport {
        let started = SystemTime::now();
        let report = |exit| StepReport {
            exit,
            started,
            finished: SystemTime::now(),
        };
        if cancel.immediate.is_cancelled() || cancel.graceful.is_cancelled() {
            return report(StepExit::Cancelled);
        }
        let (mut child, group, readers) = match self.spawn_step(&step, sink).await {
            Ok(spawned) => spawned,
            Err(exit) => return report(exit),
        };
        let exit = Self::wait_step(&mut child, &group, &step, cancel).await;
        self.settle(readers).await;
        report(exit)
    }

    async fn finish(mut self: Box<Self>) -> Result<(), ExecError> {
        let groups = std::mem::take(&mut self.groups);
        let readers = std::mem::take(&mut self.readers);
        let mut failures = Vec::new();

        // SIGTERM everything that is left, give each group its step's grace…
        let mut live = Vec::new();
        for group in groups {
            if !group_alive(&group) {
                release(&group);
                continue;
            }
            match signal_group(group.pgid, Signal::SIGTERM) {
                Ok(()) => live.push(group),
                Err(err) => failures.push(format!("process group {}: {err}", group.pgid)),
            }
        }
        let started = Instant::now();
        for group in &live {
            wait_group_gone(group, started + group.kill_grace, None).await;
        }
        // …then SIGKILL what is still there, watchers included.
        for group in &live {
            if let Err(err) = signal_group(group.pgid, Signal::SIGKILL) {
                failures.push(format!("process group {}: {err}", group.pgid));
            }
        }
        let kill_deadline = Instant::now() + KILL_WAIT;
        for group in &live {
            wait_group_gone(group, kill_deadline, None).await;
        }

        // Readers end at EOF once every holder of the pipes is gone; one held
        // by a process that escaped the group is aborted after the wait.
        let drain_until = Instant::now() + READER_WAIT;
        for mut reader in readers {
            if tokio::time::timeout_at(drain_until, &mut reader)
                .await
                .is_err()
            {
                reader.abort();
                // Resolves once the task is dropped, so the sink is never
                // called after `finish` returns.
                let _ = reader.await;
            }
        }

        if failures.is_empty() {
            Ok(())
        } else {
            Err(ExecError::Cleanup(format!(
                "job {}: could not stop {}",
                self.label,
                failures.join(", ")
            )))
        }
    }
}

impl Drop for ProcessJob {
    /// A safety net for a handle dropped without `finish` (a panic, a
    /// cancelled task): kill what is left, without waiting.
    fn drop(&mut self) {
        for group in &self.groups {
            let _ = signal_group(group.pgid, Signal::SIGKILL);
        }
        for reader in &self.readers {
            reader.abort();
        }
    }
}
