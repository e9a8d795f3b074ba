//! One job attempt's containers and network: what kiln holds of them,
//! talking to them (signals, execs), and removing them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{KillContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::engine::Engine;
use super::error::ContainerError;
use super::labels::Owner;
use super::{STOP_POLL, engine_message, is_not_found};
use crate::port::JobHandle;
/// One job attempt's containers and network.
pub(super) struct ContainerJob {
    pub(super) engine: Arc<Engine>,
    /// The base name of everything created for the job.
    pub(super) name: String,
    pub(super) label: String,
    pub(super) owner: Owner,
    pub(super) workspace: PathBuf,
    pub(super) temp: PathBuf,
    pub(super) base_env: Vec<(String, String)>,
    /// The job container's `PATH`, replacing the host's in step envs.
    pub(super) container_path: String,
    /// The user steps run as (`uid:gid` unless `--user` says otherwise).
    pub(super) user: Option<String>,
    /// The job container's id.
    pub(super) container: Option<String>,
    /// Whether the job container was stopped (by a timeout or a cancel)
    /// and must be started again before the next step.
    pub(super) stopped: bool,
    pub(super) services: Vec<String>,
    pub(super) network: Option<String>,
    /// The process executor's handle, for a job with services and no
    /// container: its steps run on the host.
    /// (In a mutex only to make the job `Sync`; never locked across an
    /// await: `get_mut` through `&mut self`.)
    pub(super) host: std::sync::Mutex<Option<Box<dyn JobHandle>>>,
    /// SIGTERM-to-SIGKILL grace of the last step, for `finish`.
    pub(super) grace: Duration,
    pub(super) finished: bool,
}

impl ContainerJob {
    /// Runs `argv` in container `id` and returns its exit code and output.
    pub(super) async fn exec_collect(
        &self,
        id: &str,
        argv: Vec<String>,
    ) -> Result<(i64, String), ContainerError> {
        let exec = self
            .engine
            .docker
            .create_exec(
                id,
                CreateExecOptions {
                    cmd: Some(argv),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ContainerError::Exec(engine_message(&e)))?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } = self
            .engine
            .docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await
            .map_err(|e| ContainerError::Exec(engine_message(&e)))?
        {
            while let Some(Ok(frame)) = output.next().await {
                if text.len() < 4096 {
                    text.push_str(&String::from_utf8_lossy(frame.as_ref()));
                }
            }
        }
        Ok((self.exit_code(&exec.id).await?, text))
    }

    /// The exit code of a finished exec; the engine may report it running
    /// for a moment after its output ended.
    pub(super) async fn exit_code(&self, exec: &str) -> Result<i64, ContainerError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let inspect = self
                .engine
                .docker
                .inspect_exec(exec)
                .await
                .map_err(|e| ContainerError::Exec(engine_message(&e)))?;
            match (inspect.running, inspect.exit_code) {
                (Some(false) | None, Some(code)) => return Ok(code),
                _ if Instant::now() >= deadline => {
                    return Err(ContainerError::NoExitCode);
                }
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    pub(super) async fn signal(&self, id: &str, signal: &str) {
        let _ = self
            .engine
            .docker
            .kill_container(
                id,
                Some(KillContainerOptionsBuilder::new().signal(signal).build()),
            )
            .await;
    }

    /// Waits until container `id` is not running, at most until `deadline`.
    /// Polls `inspect` (a millisecond each) rather than using the wait
    /// endpoint, which Podman answers only after a polling delay of its own.
    pub(super) async fn wait_stopped(&self, id: &str, deadline: Instant) -> bool {
        loop {
            match self.engine.docker.inspect_container(id, None).await {
                Ok(c) if c.state.as_ref().and_then(|s| s.running) == Some(true) => {}
                // Not running, or gone.
                Ok(_) | Err(_) => return true,
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(STOP_POLL.min(deadline - Instant::now())).await;
        }
    }

    pub(super) async fn remove(&self, id: &str) -> Result<(), ContainerError> {
        match self
            .engine
            .docker
            .remove_container(
                id,
                Some(
                    RemoveContainerOptionsBuilder::new()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(ContainerError::Remove {
                id: id.to_owned(),
                message: engine_message(&e),
            }),
        }
    }

    /// Stops and removes everything of the job: the job container gets
    /// SIGTERM and `grace` before it is removed by force; services and the
    /// network go at once.
    pub(super) async fn teardown(&mut self, grace: Duration) -> Vec<ContainerError> {
        let mut failures = Vec::new();
        if let Some(id) = self.container.take() {
            if !self.stopped && !grace.is_zero() {
                self.signal(&id, "SIGTERM").await;
                self.wait_stopped(&id, Instant::now() + grace).await;
            }
            if let Err(e) = self.remove(&id).await {
                failures.push(e);
            }
        }
        let services = std::mem::take(&mut self.services);
        let removed =
            futures_util::future::join_all(services.iter().map(|id| self.remove(id))).await;
        failures.extend(removed.into_iter().filter_map(Result::err));
        if let Some(network) = self.network.take() {
            match self.engine.docker.remove_network(&network).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => failures.push(ContainerError::RemoveNetwork {
                    network,
                    message: engine_message(&e),
                }),
            }
        }
        failures
    }
}

impl Drop for ContainerJob {
    /// A safety net for a handle dropped without `finish` (a panic, a
    /// cancelled task): remove everything in the background; what a dying
    /// process cannot remove, the next sweep does.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let docker = self.engine.docker.clone();
        let ids: Vec<String> = self
            .container
            .take()
            .into_iter()
            .chain(std::mem::take(&mut self.services))
            .collect();
        let network = self.network.take();
        runtime.spawn(async move {
            for id in ids {
                let _ = docker
                    .remove_container(
                        &id,
                        Some(
                            RemoveContainerOptionsBuilder::new()
                                .force(true)
                                .v(true)
                                .build(),
                        ),
                    )
                    .await;
            }
            if let Some(n) = network {
                let _ = docker.remove_network(&n).await;
            }
        });
    }
}
