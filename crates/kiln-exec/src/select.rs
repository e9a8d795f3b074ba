//! Which executor runs a job: the one choice both front doors (`kiln exec`
//! and the agent) make the same way.
//!
//! A job with `container:` or `services:` gets a [`ContainerExecutor`];
//! every other job the shared [`ProcessExecutor`]. The container engine is
//! connected on first use, so a machine without one runs process jobs as
//! before and fails only the jobs that need containers, with a message
//! that points at `kiln doctor`.

use std::sync::Arc;

use crate::config::ExecConfig;
use crate::container::labels::{self, SweepError, Swept};
use crate::container::{ContainerExecutor, EngineSlot, spec};
use crate::port::Executor;
use crate::process::ProcessExecutor;
use crate::runner::JobRun;

/// The executors of one kiln process: built once, asked per job.
#[derive(Clone, Debug)]
pub struct Executors {
    process: Arc<ProcessExecutor>,
    engine: Arc<EngineSlot>,
    config: Arc<ExecConfig>,
}

impl Default for Executors {
    fn default() -> Self {
        Executors::new(ExecConfig::default())
    }
}

impl Executors {
    pub fn new(config: ExecConfig) -> Self {
        Executors {
            process: Arc::new(ProcessExecutor::new()),
            engine: Arc::new(EngineSlot::new()),
            config: Arc::new(config),
        }
    }

    /// The executor for `run`. Rendering the job's `container:` and
    /// `services:` happens here; an error there comes back from the
    /// executor's `start_job`, so the runner reports it as the job's
    /// failure like any other preparation error.
    pub fn executor_for(&self, run: &JobRun) -> Arc<dyn Executor> {
        let job = &run.workflow.jobs[run.job_index];
        if job.container.is_none() && job.services.is_empty() {
            return self.process.clone();
        }
        let plan = spec::render(job, &run.contexts, &run.workspace);
        Arc::new(ContainerExecutor::new(
            self.engine.clone(),
            Arc::new(self.config.container.clone()),
            plan,
            run.temp.clone(),
            run.base_env.clone(),
        ))
    }

    /// Removes what dead kiln processes of this host left in the engine
    /// (an agent calls it when it starts). No engine: nothing to do.
    pub async fn sweep_leftovers(&self) -> Result<Swept, SweepError> {
        match self.engine.get().await {
            Ok(engine) => labels::sweep(&engine).await,
            Err(_) => Ok(Swept::default()),
        }
    }
}
