//! `kiln doctor`: which container engine kiln sees, its version, and
//! whether a trivial container runs the way kiln runs job containers, with
//! a fix for each failure.
//!
//! The container check goes through the container executor itself (a job
//! container with the workspace mounted, one step running `true`, then
//! removal), so a pass means container jobs work here.

use crate::cli::DoctorArgs;
use crate::error::CliError;
use crate::exit;
use kiln_exec::config::{ContainerConfig, PullPolicy};
use kiln_exec::container::engine::{self, EndpointSource, Engine};
use kiln_exec::container::spec::{ContainerSpec, JobContainers};
use kiln_exec::container::{ContainerExecutor, EngineSlot};
use kiln_exec::port::{Cancel, Executor, JobSpec, LogLine, LogSink, StepExit, StepSpec};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One check's outcome.
enum Check {
    Ok(String),
    Fail { what: String, fix: String },
}

fn print(name: &str, check: &Check) {
    match check {
        Check::Ok(what) => println!("{name:<10} ok    {what}"),
        Check::Fail { what, fix } => {
            println!("{name:<10} FAIL  {what}");
            println!("{:<10} fix:  {fix}", "");
        }
    }
}

pub fn run(args: &DoctorArgs) -> Result<i32, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let ok = runtime.block_on(doctor(args));
    Ok(if ok { exit::SUCCESS } else { exit::FAILURE })
}

async fn doctor(args: &DoctorArgs) -> bool {
    let endpoint = match engine::discover() {
        Ok(e) => e,
        Err(e) => {
            let e = e.to_string();
            print(
                "engine",
                &Check::Fail {
                    what: e,
                    fix: "start Docker, or Podman's Docker API: `podman system service --time=0 \
                          unix:///run/podman/podman.sock &` (as root), or set DOCKER_HOST to the \
                          engine's address (unix:///PATH or tcp://HOST:PORT)"
                        .into(),
                },
            );
            return false;
        }
    };
    let engine = match Engine::connect(endpoint.clone()).await {
        Ok(engine) => engine,
        Err(e) => {
            let e = e.to_string();
            print(
                "engine",
                &Check::Fail {
                    fix: connect_fix(&e, endpoint.source, &endpoint.url),
                    what: e,
                },
            );
            return false;
        }
    };
    print("engine", &Check::Ok(engine.describe()));
    let check = trivial_container(engine, &args.image).await;
    print("container", &check);
    matches!(check, Check::Ok(_))
}

fn connect_fix(error: &str, source: EndpointSource, url: &str) -> String {
    let lower = error.to_ascii_lowercase();
    if lower.contains("permission denied") {
        return format!(
            "kiln may not use {url}: run kiln as a user with access to the socket (the `docker` \
             group for Docker), or use rootless Podman (`systemctl --user enable --now podman.socket`)"
        );
    }
    match source {
        EndpointSource::DockerHost => format!(
            "DOCKER_HOST={url} does not answer: start the engine there, or unset DOCKER_HOST to use \
             the local Docker or Podman socket"
        ),
        EndpointSource::DockerSocket => {
            "the Docker socket does not answer: start Docker (`systemctl start docker`)".into()
        }
        EndpointSource::PodmanRootlessSocket | EndpointSource::PodmanSystemSocket => format!(
            "the Podman socket does not answer: start the API service (`podman system service \
             --time=0 {url} &`, or `systemctl start podman.socket`)"
        ),
    }
}

fn container_fix(error: &str, image: &str) -> String {
    let lower = error.to_ascii_lowercase();
    if lower.contains("pull")
        || lower.contains("not on the engine")
        || lower.contains("no such image")
    {
        format!(
            "the engine has no image `{image}` and could not pull it: pull or import one \
             (`podman import ROOTFS.tar localhost/NAME`), then pass it with --image"
        )
    } else if lower.contains("cgroup") || lower.contains("crun") {
        "the OCI runtime refused the container: with Podman, set `runtime = \"runc\"` under \
         [engine] in /etc/containers/containers.conf (crun refuses hybrid cgroups)"
            .into()
    } else if lower.contains("ulimit") || lower.contains("rlimit") {
        "the engine's default ulimits are refused here: with Podman, set `default_ulimits = \
         [\"nofile=1024:1024\", \"nproc=1024:1024\"]` under [containers] in \
         /etc/containers/containers.conf"
            .into()
    } else if lower.contains("memory") || lower.contains("cpu") {
        "the engine cannot apply CPU or memory limits here: enable the cgroup controllers, or \
         turn the limits off in the agent's container configuration"
            .into()
    } else {
        "run the same container by hand (`docker run --rm IMAGE true` or `podman run --rm IMAGE \
         true`) to see the engine's own error"
            .into()
    }
}

struct Collect(Mutex<Vec<String>>);

impl LogSink for Collect {
    fn line(&self, line: LogLine) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line.text);
        }
    }
}

async fn trivial_container(engine: Engine, image: &str) -> Check {
    let fail = |what: String| Check::Fail {
        fix: container_fix(&what, image),
        what,
    };
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => return fail(format!("creating a scratch directory: {e}")),
    };
    let started = Instant::now();
    let executor = ContainerExecutor::new(
        Arc::new(EngineSlot::with(engine)),
        Arc::new(ContainerConfig {
            pull: PullPolicy::IfNotPresent,
            ..ContainerConfig::default()
        }),
        Ok(JobContainers {
            container: Some(ContainerSpec {
                image: image.to_owned(),
                ..Default::default()
            }),
            services: Vec::new(),
            weight: 1,
        }),
        dir.clone(),
        Vec::new(),
    );
    let label = format!("kiln-doctor-{}", std::process::id());
    let result = async {
        let mut job = executor
            .start_job(&JobSpec {
                workspace: dir.clone(),
                label,
            })
            .await
            .map_err(|e| e.to_string())?;
        let sink = Arc::new(Collect(Mutex::new(Vec::new())));
        let report = job
            .run_step(
                StepSpec {
                    argv: vec!["true".into()],
                    env: Vec::new(),
                    cwd: dir.clone(),
                    timeout: Some(Duration::from_secs(60)),
                    kill_grace: Duration::from_secs(1),
                },
                sink.clone(),
                &Cancel::default(),
            )
            .await;
        let finished = job.finish().await.map_err(|e| e.to_string());
        let output = sink.0.lock().map(|l| l.join(" | ")).unwrap_or_default();
        match report.exit {
            StepExit::Exited(0) => finished,
            other => Err(format!("`true` in {image} ended with {other:?}: {output}")),
        }
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => Check::Ok(format!(
            "{image} ran `true` as kiln runs a job ({:.2}s)",
            started.elapsed().as_secs_f64()
        )),
        Err(e) => fail(e),
    }
}

/// A fresh directory under the system temp dir, for the job's workspace.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("kiln-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
