//! The container executor: a job's steps run in one container of the
//! job's image, its services in containers beside it on a network private
//! to the job, all through the Docker Engine API (Docker or Podman).
//!
//! One container per job, kept alive by a small `sh` init; each step is an
//! exec in it, with the workspace and the runner's temp directory
//! bind-mounted at the same paths as on the host, as the user kiln runs as.
//! Stopping a step (timeout, cancel) stops the container: SIGTERM goes to
//! the init, which forwards it to every process of the container and exits
//! when they are gone; the engine is told to SIGKILL after the grace period.
//! A later step (`if: always()`) starts the container again. `finish`
//! removes every container and network of the job; all of them carry
//! [`labels`] naming the job attempt and the owning process, so that
//! [`labels::sweep`] removes what a dead kiln left behind.
//! See `docs/design/containers.md` for the invariants.
//!
//! - `engine`: discovering and connecting to the engine;
//! - `spec`: `container:`/`services:` rendered and `options:` parsed;
//! - `images`: the pull policy;
//! - `guard`: refusing mounts of the engine's socket;
//! - `labels`: labels and the leftover sweep;
//! - `output`: exec output as log lines.

pub mod engine;
mod error;
mod guard;
mod images;
mod job;
pub mod labels;
mod output;
mod prepare;
pub mod spec;
mod spec_error;
mod step;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;

use crate::config::ContainerConfig;
use crate::port::{ExecError, Executor, JobHandle, JobSpec};
use crate::process::ProcessExecutor;
use engine::{Engine, EngineError};
use job::ContainerJob;
use labels::Owner;
use spec::{JobContainers, SpecError};

/// The job container's main process: it waits, and on SIGTERM forwards the
/// signal to every other process of the container and exits once they are
/// gone (the engine's SIGKILL after the grace period covers the rest).
const INIT: &str = "trap 'kill -TERM -1 2>/dev/null; wait; \
                    while kill -0 -1 2>/dev/null; do sleep 0.05; done; exit 0' TERM INT; \
                    while :; do sleep 3600 & wait $!; done";

/// The `PATH` of a container whose image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long kiln waits for the engine to confirm a container is gone after
/// a SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How often kiln asks whether a stopping container has stopped.
const STOP_POLL: Duration = Duration::from_millis(10);

/// The grace period of `finish` when no step ran.
const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The engine connection shared by every job of a process: connected on
/// first use (and again after a failure), swept for leftovers once.
#[derive(Debug, Default)]
pub struct EngineSlot {
    engine: Mutex<Option<Arc<Engine>>>,
    swept: AtomicBool,
}

impl EngineSlot {
    pub fn new() -> Self {
        Self::default()
    }

    /// A slot already holding `engine` (tests, `kiln doctor`).
    pub fn with(engine: Engine) -> Self {
        EngineSlot {
            engine: Mutex::new(Some(Arc::new(engine))),
            swept: AtomicBool::new(false),
        }
    }

    /// The engine, connecting if needed. The first success also starts a
    /// sweep of what dead kiln processes left behind, in the background.
    pub async fn get(&self) -> Result<Arc<Engine>, EngineError> {
        let mut slot = self.engine.lock().await;
        if let Some(engine) = slot.as_ref() {
            return Ok(engine.clone());
        }
        let engine = Arc::new(Engine::connect_default().await?);
        *slot = Some(engine.clone());
        if !self.swept.swap(true, Ordering::SeqCst) {
            let e = engine.clone();
            tokio::spawn(async move {
                let _ = labels::sweep(&e).await;
            });
        }
        Ok(engine)
    }
}

/// Runs one job's steps in its container (or, for a job with services and
/// no container, as processes with the services beside them). Built per
/// job by [`crate::select::Executors::executor_for`], which renders the
/// job's `container:` and `services:`.
pub struct ContainerExecutor {
    slot: Arc<EngineSlot>,
    config: Arc<ContainerConfig>,
    plan: Result<JobContainers, SpecError>,
    temp: PathBuf,
    base_env: Vec<(String, String)>,
}

impl ContainerExecutor {
    /// `plan`: the rendered job (or why it could not be rendered, reported
    /// by `start_job`); `temp`: the runner's temp directory, mounted like
    /// the workspace; `base_env`: the environment the runner starts every
    /// step from, which stays on the host (the image's environment applies
    /// instead).
    pub fn new(
        slot: Arc<EngineSlot>,
        config: Arc<ContainerConfig>,
        plan: Result<JobContainers, SpecError>,
        temp: PathBuf,
        base_env: Vec<(String, String)>,
    ) -> Self {
        ContainerExecutor {
            slot,
            config,
            plan,
            temp,
            base_env,
        }
    }
}

/// A name the engine accepts, from a job label.
fn object_name(label: &str) -> String {
    let mut name: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !name.starts_with("kiln") {
        name.insert_str(0, "kiln-");
    }
    name
}

pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A short form of an engine error: the server's message when there is one.
pub(crate) fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl Executor for ContainerExecutor {
    async fn start_job(&self, job: &JobSpec) -> Result<Box<dyn JobHandle>, ExecError> {
        let plan = self
            .plan
            .clone()
            .map_err(|e| ExecError::Prepare(e.to_string()))?;
        for dir in [&job.workspace, &self.temp] {
            if !dir.is_dir() {
                return Err(ExecError::Prepare(format!(
                    "workspace {} is not a directory",
                    dir.display()
                )));
            }
        }
        let engine = self.slot.get().await.map_err(|e| {
            ExecError::Prepare(format!(
                "the job needs a container engine: {e} (run `kiln doctor`)"
            ))
        })?;
        if !self.config.allow_socket_mount {
            let sockets = guard::engine_sockets(&engine.endpoint);
            let mut volumes: Vec<&str> = Vec::new();
            for spec in plan
                .container
                .iter()
                .chain(plan.services.iter().map(|s| &s.spec))
            {
                volumes.extend(spec.volumes.iter().map(String::as_str));
                volumes.extend(spec.options.volumes.iter().map(String::as_str));
            }
            guard::check(&volumes, &sockets).map_err(|e| ExecError::Prepare(e.to_string()))?;
        }
        let host = match plan.container {
            Some(_) => None,
            None => Some(ProcessExecutor::new().start_job(job).await?),
        };
        let mut handle = ContainerJob {
            engine,
            name: object_name(&job.label),
            label: job.label.clone(),
            owner: Owner::this_process(),
            workspace: job.workspace.clone(),
            temp: self.temp.clone(),
            base_env: self.base_env.clone(),
            container_path: DEFAULT_PATH.to_owned(),
            user: None,
            container: None,
            stopped: false,
            services: Vec::new(),
            network: None,
            host: std::sync::Mutex::new(host),
            grace: DEFAULT_GRACE,
            finished: false,
        };
        match handle.prepare(&plan, &self.config).await {
            Ok(()) => Ok(Box::new(handle)),
            Err(e) => {
                let _ = handle.teardown(Duration::ZERO).await;
                handle.finished = true;
                Err(ExecError::Prepare(e.to_string()))
            }
        }
    }
}
