//! Setting up a job's containers before its first step: images pulled,
//! the network and services started, the job container created, services
//! waited on until healthy.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding, PortMap,
};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use tokio::time::Instant;

use super::error::ContainerError;
use super::job::ContainerJob;
use super::spec::{self, ContainerSpec, JobContainers, ServiceSpec, SpecError};
use super::{DEFAULT_PATH, INIT, engine_message, images, labels};
use crate::config::ContainerConfig;
impl ContainerJob {
    pub(super) async fn prepare(
        &mut self,
        plan: &JobContainers,
        config: &ContainerConfig,
    ) -> Result<(), ContainerError> {
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
                .map_err(|e| ContainerError::Network(engine_message(&e)))?;
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

    pub(super) fn endpoints(&self, aliases: Vec<String>) -> Option<NetworkingConfig> {
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

    pub(super) fn port_bindings(ports: &[String]) -> Result<Option<PortMap>, SpecError> {
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

    pub(super) async fn create_and_start(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, ContainerError> {
        let created = self
            .engine
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::new().name(name).build()),
                body,
            )
            .await
            .map_err(|e| ContainerError::Create {
                name: name.to_owned(),
                message: engine_message(&e),
            })?;
        let id = created.id;
        if let Err(e) = self.engine.docker.start_container(&id, None).await {
            let _ = self.remove(&id).await;
            return Err(ContainerError::Start {
                name: name.to_owned(),
                message: engine_message(&e),
            });
        }
        Ok(id)
    }

    pub(super) async fn start_service(
        &self,
        service: &ServiceSpec,
    ) -> Result<String, ContainerError> {
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
        let in_service = |e: ContainerError| ContainerError::Service {
            service: service.name.clone(),
            source: Box::new(e),
        };
        let port_bindings = Self::port_bindings(&spec.ports).map_err(|e| in_service(e.into()))?;
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
        self.create_and_start(&name, body).await.map_err(in_service)
    }

    pub(super) async fn start_job_container(
        &mut self,
        spec: &ContainerSpec,
        image_env: &[String],
        weight: u32,
        config: &ContainerConfig,
    ) -> Result<(), ContainerError> {
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
    pub(super) async fn wait_healthy(
        &self,
        service: &ServiceSpec,
        id: &str,
        limit: Duration,
    ) -> Result<(), ContainerError> {
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
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("timed out after {timeout:?}"),
            }
            if started.elapsed() >= start_period {
                failures += 1;
            }
            if failures >= retries || started.elapsed() + interval > limit {
                return Err(ContainerError::Unhealthy {
                    service: service.name.clone(),
                    cmd: cmd.clone(),
                    last,
                });
            }
            tokio::time::sleep(interval).await;
        }
    }
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
