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
mod guard;
mod images;
pub mod labels;
mod output;
pub mod spec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding, PortMap,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::ContainerConfig;
use crate::port::{
    Cancel, ExecError, Executor, JobHandle, JobSpec, LogSink, StepExit, StepReport, StepSpec,
};
use crate::process::ProcessExecutor;
use crate::process::lines::Emitter;
use engine::Engine;
use labels::Owner;
use spec::{ContainerSpec, JobContainers, ServiceSpec};

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
    pub async fn get(&self) -> Result<Arc<Engine>, String> {
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
    plan: Result<JobContainers, String>,
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
        plan: Result<JobContainers, String>,
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
        let plan = self.plan.clone().map_err(ExecError::Prepare)?;
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
            guard::check(&volumes, &sockets).map_err(ExecError::Prepare)?;
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
                Err(ExecError::Prepare(e))
            }
        }
    }
}

/// One job attempt's containers and network.
struct ContainerJob {
    engine: Arc<Engine>,
    /// The base name of everything created for the job.
    name: String,
    label: String,
    owner: Owner,
    workspace: PathBuf,
    temp: PathBuf,
    base_env: Vec<(String, String)>,
    /// The job container's `PATH`, replacing the host's in step envs.
    container_path: String,
    /// The user steps run as (`uid:gid` unless `--user` says otherwise).
    user: Option<String>,
    /// The job container's id.
    container: Option<String>,
    /// Whether the job container was stopped (by a timeout or a cancel)
    /// and must be started again before the next step.
    stopped: bool,
    services: Vec<String>,
    network: Option<String>,
    /// The process executor's handle, for a job with services and no
    /// container: its steps run on the host.
    /// (In a mutex only to make the job `Sync`; never locked across an
    /// await: `get_mut` through `&mut self`.)
    host: std::sync::Mutex<Option<Box<dyn JobHandle>>>,
    /// SIGTERM-to-SIGKILL grace of the last step, for `finish`.
    grace: Duration,
    finished: bool,
}

impl ContainerJob {
    async fn prepare(
        &mut self,
        plan: &JobContainers,
        config: &ContainerConfig,
    ) -> Result<(), String> {
        // Images first, all at once: nothing is created for a job whose
        // image cannot be had.
        let specs: Vec<&ContainerSpec> = plan
            .container
            .iter()
            .chain(plan.services.iter().map(|s| &s.spec))
            .collect();
        let inspected = futures_util::future::join_all(
            specs
                .iter()
                .map(|s| images::ensure(&self.engine, s, s.options.pull.unwrap_or(config.pull))),
        )
        .await;
        let mut image_envs = Vec::with_capacity(specs.len());
        for result in inspected {
            image_envs.push(result?);
        }

        if !plan.services.is_empty() {
            let network = format!("{}-net", self.name);
            self.engine
                .docker
                .create_network(NetworkCreateRequest {
                    name: network.clone(),
                    labels: Some(labels::for_job(&self.owner, &self.label, None)),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("creating the job's network: {}", engine_message(&e)))?;
            self.network = Some(network);
            for service in &plan.services {
                let id = self.start_service(service).await?;
                self.services.push(id);
            }
        }

        if let Some(spec) = &plan.container {
            let image_env = image_envs.first().cloned().unwrap_or_default();
            self.start_job_container(spec, &image_env, plan.weight, config)
                .await?;
        }

        // Services must answer before the first step.
        let waits = plan
            .services
            .iter()
            .zip(self.services.iter())
            .filter(|(s, _)| s.spec.options.health.cmd.is_some())
            .map(|(s, id)| self.wait_healthy(s, id, config.service_ready_limit));
        for result in futures_util::future::join_all(waits).await {
            result?;
        }
        Ok(())
    }

    fn endpoints(&self, aliases: Vec<String>) -> Option<NetworkingConfig> {
        let network = self.network.as_ref()?;
        Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.clone(),
                EndpointSettings {
                    aliases: Some(aliases),
                    ..Default::default()
                },
            )])),
        })
    }

    fn port_bindings(ports: &[String]) -> Result<Option<PortMap>, String> {
        if ports.is_empty() {
            return Ok(None);
        }
        let mut map: PortMap = HashMap::new();
        for p in ports {
            let (ip, host, container) = spec::parse_port(p)?;
            map.entry(container)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: ip,
                    host_port: host,
                });
        }
        Ok(Some(map))
    }

    async fn create_and_start(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, String> {
        let created = self
            .engine
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(name).build()),
                body,
            )
            .await
            .map_err(|e| format!("creating container {name}: {}", engine_message(&e)))?;
        let id = created.id;
        if let Err(e) = self.engine.docker.start_container(&id, None).await {
            let _ = self.remove(&id).await;
            return Err(format!("starting container {name}: {}", engine_message(&e)));
        }
        Ok(id)
    }

    async fn start_service(&self, service: &ServiceSpec) -> Result<String, String> {
        let spec = &service.spec;
        let o = &spec.options;
        let name = format!("{}-{}", self.name, service.name);
        let mut aliases = vec![service.name.clone()];
        aliases.extend(o.network_aliases.iter().cloned());
        let mut env: Vec<String> = spec
            .env
            .iter()
            .chain(o.env.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.dedup();
        let mut labels = labels::for_job(&self.owner, &self.label, Some("service"));
        labels.extend(o.labels.iter().cloned());
        let binds: Vec<String> = spec
            .volumes
            .iter()
            .chain(o.volumes.iter())
            .cloned()
            .collect();
        let port_bindings = Self::port_bindings(&spec.ports)
            .map_err(|e| format!("services.{}: {e}", service.name))?;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(env),
            labels: Some(labels),
            hostname: o.hostname.clone(),
            user: o.user.clone(),
            entrypoint: o.entrypoint.as_ref().map(|e| vec![e.clone()]),
            exposed_ports: port_bindings.as_ref().map(|m| m.keys().cloned().collect()),
            host_config: Some(HostConfig {
                binds: (!binds.is_empty()).then_some(binds),
                port_bindings,
                privileged: o.privileged.then_some(true),
                init: o.init.then_some(true),
                cap_add: (!o.cap_add.is_empty()).then(|| o.cap_add.clone()),
                cap_drop: (!o.cap_drop.is_empty()).then(|| o.cap_drop.clone()),
                shm_size: o.shm_size,
                nano_cpus: o.cpus.map(|c| (c * 1e9) as i64),
                memory: o.memory,
                extra_hosts: (!o.add_hosts.is_empty()).then(|| o.add_hosts.clone()),
                tmpfs: tmpfs(&o.tmpfs),
                network_mode: self.network.clone(),
                ..Default::default()
            }),
            networking_config: self.endpoints(aliases),
            ..Default::default()
        };
        self.create_and_start(&name, body)
            .await
            .map_err(|e| format!("services.{}: {e}", service.name))
    }

    async fn start_job_container(
        &mut self,
        spec: &ContainerSpec,
        image_env: &[String],
        weight: u32,
        config: &ContainerConfig,
    ) -> Result<(), String> {
        let o = &spec.options;
        let user = o.user.clone().unwrap_or_else(current_user);
        let mut env: Vec<String> = spec
            .env
            .iter()
            .chain(o.env.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.dedup();
        // The PATH steps get: the job's own, else the image's.
        self.container_path = env
            .iter()
            .chain(image_env.iter())
            .find_map(|kv| kv.strip_prefix("PATH=").map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_PATH.to_owned());
        let mut binds = vec![format!(
            "{}:{}",
            self.workspace.display(),
            self.workspace.display()
        )];
        if !self.temp.starts_with(&self.workspace) {
            binds.push(format!("{}:{}", self.temp.display(), self.temp.display()));
        }
        binds.extend(spec.volumes.iter().chain(o.volumes.iter()).cloned());
        let mut labels = labels::for_job(&self.owner, &self.label, Some("job"));
        labels.extend(o.labels.iter().cloned());
        let port_bindings = Self::port_bindings(&spec.ports)?;
        let nano_cpus = o
            .cpus
            .map(|c| (c * 1e9) as i64)
            .or_else(|| config.nano_cpus(weight, self.engine.cpus));
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(env),
            labels: Some(labels),
            hostname: o.hostname.clone(),
            user: Some(user.clone()),
            entrypoint: Some(vec!["sh".to_owned(), "-c".to_owned(), INIT.to_owned()]),
            cmd: Some(Vec::new()),
            working_dir: Some(self.workspace.display().to_string()),
            exposed_ports: port_bindings.as_ref().map(|m| m.keys().cloned().collect()),
            host_config: Some(HostConfig {
                binds: Some(binds),
                port_bindings,
                privileged: o.privileged.then_some(true),
                init: o.init.then_some(true),
                cap_add: (!o.cap_add.is_empty()).then(|| o.cap_add.clone()),
                cap_drop: (!o.cap_drop.is_empty()).then(|| o.cap_drop.clone()),
                shm_size: o.shm_size,
                nano_cpus,
                memory: o.memory.or_else(|| config.memory(weight)),
                extra_hosts: (!o.add_hosts.is_empty()).then(|| o.add_hosts.clone()),
                tmpfs: tmpfs(&o.tmpfs),
                network_mode: self.network.clone(),
                ..Default::default()
            }),
            networking_config: self.endpoints(o.network_aliases.clone()),
            ..Default::default()
        };
        let id = self.create_and_start(&self.name.clone(), body).await?;
        self.container = Some(id);
        self.user = Some(user);
        Ok(())
    }

    /// Runs the service's `--health-cmd` through exec until it passes, like
    /// the engine's own health checks would (which Podman only runs with
    /// systemd).
    async fn wait_healthy(
        &self,
        service: &ServiceSpec,
        id: &str,
        limit: Duration,
    ) -> Result<(), String> {
        let health = &service.spec.options.health;
        let Some(cmd) = &health.cmd else {
            return Ok(());
        };
        let interval = health.interval.unwrap_or(Duration::from_secs(1));
        let timeout = health.timeout.unwrap_or(Duration::from_secs(30));
        let retries = health.retries.unwrap_or(3).max(1);
        let start_period = health.start_period.unwrap_or_default();
        let started = Instant::now();
        let mut failures = 0u32;
        let mut last;
        loop {
            let argv = vec!["sh".to_owned(), "-c".to_owned(), cmd.clone()];
            match tokio::time::timeout(timeout, self.exec_collect(id, argv)).await {
                Ok(Ok((0, _))) => return Ok(()),
                Ok(Ok((code, out))) => last = format!("exit code {code}: {}", out.trim()),
                Ok(Err(e)) => last = e,
                Err(_) => last = format!("timed out after {timeout:?}"),
            }
            if started.elapsed() >= start_period {
                failures += 1;
            }
            if failures >= retries || started.elapsed() + interval > limit {
                return Err(format!(
                    "services.{}: health check `{cmd}` did not pass ({last})",
                    service.name
                ));
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Runs `argv` in container `id` and returns its exit code and output.
    async fn exec_collect(&self, id: &str, argv: Vec<String>) -> Result<(i64, String), String> {
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
            .map_err(|e| engine_message(&e))?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } = self
            .engine
            .docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await
            .map_err(|e| engine_message(&e))?
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
    async fn exit_code(&self, exec: &str) -> Result<i64, String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let inspect = self
                .engine
                .docker
                .inspect_exec(exec)
                .await
                .map_err(|e| engine_message(&e))?;
            match (inspect.running, inspect.exit_code) {
                (Some(false) | None, Some(code)) => return Ok(code),
                _ if Instant::now() >= deadline => {
                    return Err("the engine did not report the exit code".to_owned());
                }
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
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

    async fn signal(&self, id: &str, signal: &str) {
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
    async fn wait_stopped(&self, id: &str, deadline: Instant) -> bool {
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

    async fn remove(&self, id: &str) -> Result<(), String> {
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
            Err(e) => Err(format!("container {id:.12}: {}", engine_message(&e))),
        }
    }

    /// Stops and removes everything of the job: the job container gets
    /// SIGTERM and `grace` before it is removed by force; services and the
    /// network go at once.
    async fn teardown(&mut self, grace: Duration) -> Vec<String> {
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
                Err(e) => failures.push(format!("network {network}: {}", engine_message(&e))),
            }
        }
        failures
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

/// `uid:gid` of this process (the owner of `/proc/self`).
fn current_user() -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(meta) => format!("{}:{}", meta.uid(), meta.gid()),
        Err(_) => "0:0".to_owned(),
    }
}

fn tmpfs(list: &[String]) -> Option<HashMap<String, String>> {
    if list.is_empty() {
        return None;
    }
    Some(
        list.iter()
            .map(|t| match t.split_once(':') {
                Some((path, opts)) => (path.to_owned(), opts.to_owned()),
                None => (t.clone(), String::new()),
            })
            .collect(),
    )
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

fn check_cwd(cwd: &Path) -> Result<(), String> {
    match std::fs::metadata(cwd) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "working directory {} is not a directory",
            cwd.display()
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "working directory {} does not exist",
            cwd.display()
        )),
        Err(err) => Err(format!("working directory {}: {err}", cwd.display())),
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
        let Some(id) = self.container.clone() else {
            return report(StepExit::SpawnFailed("the job has no container".to_owned()));
        };
        if step.argv.is_empty() {
            return report(StepExit::SpawnFailed(
                "the step has an empty command".to_owned(),
            ));
        }
        // The workspace and temp directory are the same paths inside; a
        // missing directory there is reported as the process executor does.
        let mounted = step.cwd.starts_with(&self.workspace) || step.cwd.starts_with(&self.temp);
        if mounted && let Err(m) = check_cwd(&step.cwd) {
            return report(StepExit::SpawnFailed(m));
        }
        if self.stopped {
            if let Err(e) = self.engine.docker.start_container(&id, None).await {
                return report(StepExit::SpawnFailed(format!(
                    "restarting the job's container: {}",
                    engine_message(&e)
                )));
            }
            self.stopped = false;
        }
        let program = step.argv[0].clone();
        let argv = with_bash_fallback(step.argv.clone());
        let exec = match self
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
        {
            Ok(exec) => exec,
            Err(e) => {
                return report(StepExit::SpawnFailed(format!(
                    "{program}: {}",
                    engine_message(&e)
                )));
            }
        };
        let output = match self
            .engine
            .docker
            .start_exec(&exec.id, None::<StartExecOptions>)
            .await
        {
            Ok(StartExecResults::Attached { output, .. }) => output,
            Ok(StartExecResults::Detached) => {
                return report(StepExit::SpawnFailed(format!(
                    "{program}: the engine detached the exec"
                )));
            }
            Err(e) => {
                return report(StepExit::SpawnFailed(format!(
                    "{program}: {}",
                    engine_message(&e)
                )));
            }
        };
        let mut reader = tokio::spawn(output::forward(output, Emitter::new(sink)));

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
                    self.signal(&id, "SIGKILL").await;
                    killed = true;
                }
                () = cancel.graceful.cancelled(), if reason.is_none() => {
                    reason = Some(StopReason::Cancelled);
                    self.signal(&id, "SIGTERM").await;
                    kill_at = Some(Instant::now() + step.kill_grace);
                }
                () = sleep_until_opt(timeout_at), if reason.is_none() => {
                    reason = Some(StopReason::TimedOut);
                    self.signal(&id, "SIGTERM").await;
                    kill_at = Some(Instant::now() + step.kill_grace);
                }
                () = sleep_until_opt(kill_at), if !killed => {
                    self.signal(&id, "SIGKILL").await;
                    killed = true;
                }
            }
        }

        let exit = match reason {
            Some(reason) => {
                // The rest of the container got the same SIGTERM: it has
                // what is left of the grace period (or until an immediate
                // cancel) to end, then it is killed.
                self.stopped = true;
                if !killed {
                    let deadline = kill_at.unwrap_or_else(Instant::now);
                    tokio::select! {
                        _ = self.wait_stopped(&id, deadline) => {}
                        () = cancel.immediate.cancelled() => {}
                    }
                }
                self.signal(&id, "SIGKILL").await;
                self.wait_stopped(&id, Instant::now() + KILL_WAIT).await;
                match reason {
                    StopReason::TimedOut => StepExit::TimedOut,
                    StopReason::Cancelled => StepExit::Cancelled,
                }
            }
            None => match self.exit_code(&exec.id).await {
                Ok(code) => StepExit::Exited(i32::try_from(code).unwrap_or(-1)),
                Err(e) => StepExit::SpawnFailed(format!("{program}: {e}")),
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
        failures.extend(self.teardown(grace).await);
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
