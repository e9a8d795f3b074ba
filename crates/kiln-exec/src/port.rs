//! The executor port: how the job runner asks a backend to run steps.
//!
//! Call order, for one job attempt:
//! 1. [`Executor::start_job`] once; it prepares whatever the backend needs
//!    (nothing for processes; a container and its network for containers).
//! 2. [`JobHandle::run_step`] once per step, strictly one at a time.
//! 3. [`JobHandle::finish`] exactly once, whatever happened before (also after
//!    cancellation): it stops everything the job left running (background
//!    processes of earlier steps, containers) and removes what it created.
//!
//! Concurrency: one `Executor` serves many jobs at once; a `JobHandle` is
//! used by one task. Cancellation: `run_step` watches [`Cancel`]; on
//! `graceful` it sends SIGTERM (or the backend's equivalent) to everything
//! the step started, waits the step's grace period, then kills; on
//! `immediate` it kills at once. A cancelled step returns
//! [`StepExit::Cancelled`]; it never returns an error for that.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Which output stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of step output, without its line terminator. A line longer than
/// the backend's limit (64 KiB) is split.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub stream: Stream,
    pub at: SystemTime,
    pub text: String,
}

/// Where output goes. Called from reader tasks, possibly after `run_step`
/// returned (a background process of the step still writing), until
/// `finish` returns; implementations must be cheap and must not block.
pub trait LogSink: Send + Sync {
    fn line(&self, line: LogLine);
}

/// Cancellation requests for a running step.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    /// Stop gracefully: SIGTERM, grace period, SIGKILL.
    pub graceful: CancellationToken,
    /// Kill now.
    pub immediate: CancellationToken,
}

/// What a job needs from its backend.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// The job's workspace directory (already prepared by the caller).
    pub workspace: PathBuf,
    /// A name for this job attempt, unique on this machine, used to label
    /// what the backend creates so that leftovers can be found and removed.
    pub label: String,
}

/// One step's command.
#[derive(Clone, Debug)]
pub struct StepSpec {
    /// Program and arguments; `argv[0]` is looked up in the `PATH` of `env`.
    pub argv: Vec<String>,
    /// The complete environment: nothing is inherited.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Wall-clock limit; reaching it stops the step like a graceful cancel
    /// and returns [`StepExit::TimedOut`].
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

/// How a step's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepExit {
    /// Exited by itself with this code.
    Exited(i32),
    /// Killed by a signal it was not sent by kiln.
    Signalled(i32),
    /// Stopped because its timeout passed.
    TimedOut,
    /// Stopped because of a [`Cancel`] request.
    Cancelled,
    /// Could not be started (missing program, bad working directory, …).
    SpawnFailed(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    pub exit: StepExit,
    pub started: SystemTime,
    pub finished: SystemTime,
}

/// Errors of preparing or tearing down a job. Step failures are not errors:
/// they are [`StepExit`] values.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("preparing the job failed: {0}")]
    Prepare(String),
    #[error("cleaning up the job failed: {0}")]
    Cleanup(String),
}

#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    async fn start_job(&self, job: &JobSpec) -> Result<Box<dyn JobHandle>, ExecError>;
}

#[async_trait::async_trait]
pub trait JobHandle: Send {
    async fn run_step(
        &mut self,
        step: StepSpec,
        sink: Arc<dyn LogSink>,
        cancel: &Cancel,
    ) -> StepReport;

    async fn finish(self: Box<Self>) -> Result<(), ExecError>;
}
