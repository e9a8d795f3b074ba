//! The container executor against a real engine (Podman's Docker API, set
//! up by `scripts/test.sh`, found from `DOCKER_HOST`), with the busybox
//! test image (`KILN_TEST_IMAGE`). A missing engine fails these tests: CI
//! must not pass without running them.
//!
//! Tests synchronise on lines the step prints as they reach the sink,
//! never on sleeps; [`BOUND`] only turns a hang into a failure.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};
use kiln_exec::config::{ContainerConfig, PullPolicy};
use kiln_exec::container::engine::Engine;
use kiln_exec::container::labels;
use kiln_exec::container::spec::{
    ContainerSpec, JobContainers, Options, ServiceSpec, parse_options,
};
use kiln_exec::container::{ContainerExecutor, EngineSlot};
use kiln_exec::port::{
    Cancel, ExecError, Executor, JobHandle, JobSpec, LogLine, LogSink, StepExit, StepReport,
    StepSpec, Stream,
};
use tokio::sync::mpsc;

const BOUND: Duration = Duration::from_secs(60);

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {BOUND:?}"))
}

fn image() -> String {
    std::env::var("KILN_TEST_IMAGE").unwrap_or_else(|_| "localhost/kiln-busybox:latest".into())
}

async fn engine() -> Engine {
    Engine::connect_default().await.unwrap_or_else(|e| {
        panic!("the container tests need an engine (run scripts/test.sh, which starts Podman): {e}")
    })
}

struct ChannelSink(mpsc::UnboundedSender<LogLine>);

impl LogSink for ChannelSink {
    fn line(&self, line: LogLine) {
        let _ = self.0.send(line);
    }
}

fn label(test: &str) -> String {
    format!("kiln-test-{}-{test}", std::process::id())
}

fn job_in(image: &str) -> JobContainers {
    JobContainers {
        container: Some(ContainerSpec {
            image: image.to_owned(),
            ..Default::default()
        }),
        services: Vec::new(),
        weight: 1,
    }
}

struct Harness {
    job: Box<dyn JobHandle>,
    sink: Arc<dyn LogSink>,
    lines: mpsc::UnboundedReceiver<LogLine>,
    dir: tempfile::TempDir,
    label: String,
}

impl Harness {
    async fn start(test: &str, plan: JobContainers) -> Self {
        Self::try_start(test, plan, ContainerConfig::default())
            .await
            .unwrap_or_else(|e| panic!("start_job: {e}"))
    }

    async fn try_start(
        test: &str,
        plan: JobContainers,
        config: ContainerConfig,
    ) -> Result<Self, ExecError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ws")).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let executor = ContainerExecutor::new(
            Arc::new(EngineSlot::with(engine().await)),
            Arc::new(config),
            Ok(plan),
            dir.path().join("tmp"),
            vec![
                ("PATH".into(), "/host/bin".into()),
                ("HOME".into(), "/root".into()),
            ],
        );
        let label = label(test);
        let job = executor
            .start_job(&JobSpec {
                workspace: dir.path().join("ws"),
                label: label.clone(),
            })
            .await?;
        let (tx, lines) = mpsc::unbounded_channel();
        Ok(Self {
            job,
            sink: Arc::new(ChannelSink(tx)),
            lines,
            dir,
            label,
        })
    }

    fn ws(&self) -> std::path::PathBuf {
        self.dir.path().join("ws")
    }

    fn sh(&self, script: &str) -> StepSpec {
        StepSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![
                ("PATH".into(), "/host/bin".into()),
                ("HOME".into(), "/root".into()),
            ],
            cwd: self.ws(),
            timeout: None,
            kill_grace: Duration::from_secs(5),
        }
    }

    async fn run(&mut self, step: StepSpec) -> StepReport {
        bounded(
            "the step",
            self.job
                .run_step(step, self.sink.clone(), &Cancel::default()),
        )
        .await
    }

    /// Every line received so far (after the step returned, all of them).
    fn drain(&mut self) -> Vec<LogLine> {
        let mut out = Vec::new();
        while let Ok(l) = self.lines.try_recv() {
            out.push(l);
        }
        out
    }

    async fn until(&mut self, text: &str) {
        bounded(&format!("line `{text}`"), async {
            loop {
                match self.lines.recv().await {
                    Some(l) if l.text == text => return,
                    Some(_) => {}
                    None => panic!("sink closed before `{text}`"),
                }
            }
        })
        .await
    }

    async fn finish(self) -> String {
        bounded("finish", self.job.finish()).await.unwrap();
        self.label
    }
}

fn texts(lines: &[LogLine], stream: Stream) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| l.text.as_str())
        .collect()
}

/// Containers and networks still carrying the job's label.
async fn leftovers(label: &str) -> (usize, usize) {
    let e = engine().await;
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let _ = e;
    let filter = HashMap::from([("label", vec![format!("{}={label}", labels::JOB)])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filter)
                .build(),
        ))
        .await
        .unwrap();
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::new().filters(&filter).build(),
        ))
        .await
        .unwrap();
    (containers.len(), networks.len())
}

#[tokio::test]
async fn a_job_runs_in_a_busybox_container_and_is_removed() {
    let mut h = Harness::start("basic", job_in(&image())).await;
    std::fs::write(h.ws().join("file.txt"), "from the host\n").unwrap();
    let step =
        h.sh("cat file.txt; pwd; echo err >&2; echo $PATH; id -u; touch made-inside; exit 3");
    let report = h.run(step).await;
    assert_eq!(report.exit, StepExit::Exited(3));
    let lines = h.drain();
    let ws = h.ws().display().to_string();
    // The host's PATH stays on the host; the image's applies.
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").unwrap().uid().to_string()
    };
    assert_eq!(
        texts(&lines, Stream::Stdout),
        ["from the host", ws.as_str(), "/bin", uid.as_str()]
    );
    assert_eq!(texts(&lines, Stream::Stderr), ["err"]);
    assert!(h.ws().join("made-inside").exists());
    let label = h.finish().await;
    assert_eq!(leftovers(&label).await, (0, 0));
}

#[tokio::test]
async fn lines_stream_live_while_the_step_runs() {
    let mut h = Harness::start("live", job_in(&image())).await;
    let step = h.sh("echo ready; while [ ! -e go ]; do sleep 0.05; done; echo done");
    let ws = h.ws();
    let sink = h.sink.clone();
    let cancel = Cancel::default();
    let run = h.job.run_step(step, sink, &cancel);
    let watch = async {
        // `ready` arrives before the step ends, which it cannot until the
        // test creates `go`.
        loop {
            let l = h.lines.recv().await.unwrap();
            if l.text == "ready" {
                std::fs::write(ws.join("go"), "").unwrap();
                return;
            }
        }
    };
    let (report, ()) = bounded("the step", async { tokio::join!(run, watch) }).await;
    assert_eq!(report.exit, StepExit::Exited(0));
    h.until("done").await;
    h.finish().await;
}

#[tokio::test]
async fn a_timeout_kills_a_term_ignoring_step_after_the_grace_period() {
    let mut h = Harness::start("timeout", job_in(&image())).await;
    let mut step = h.sh("trap '' TERM; echo ready; while :; do sleep 1; done");
    step.timeout = Some(Duration::from_millis(500));
    step.kill_grace = Duration::from_millis(500);
    let report = h.run(step).await;
    assert_eq!(report.exit, StepExit::TimedOut);
    let took = report.finished.duration_since(report.started).unwrap();
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    // A later step (`if: always()`) still runs: the container restarts.
    let step = h.sh("echo after");
    assert_eq!(h.run(step).await.exit, StepExit::Exited(0));
    assert!(h.drain().iter().any(|l| l.text == "after"));
    h.finish().await;
}

#[tokio::test]
async fn a_graceful_cancel_terminates_the_step() {
    let mut h = Harness::start("cancel", job_in(&image())).await;
    let step = h.sh("echo ready; sleep 300");
    let cancel = Cancel::default();
    let sink = h.sink.clone();
    let run = h.job.run_step(step, sink, &cancel);
    let trigger = async {
        loop {
            if h.lines.recv().await.unwrap().text == "ready" {
                cancel.graceful.cancel();
                return;
            }
        }
    };
    let (report, ()) = bounded("cancel", async { tokio::join!(run, trigger) }).await;
    assert_eq!(report.exit, StepExit::Cancelled);
    // sleep died of SIGTERM: well within the 5 s grace.
    let took = report.finished.duration_since(report.started).unwrap();
    assert!(took < Duration::from_secs(4), "{took:?}");
    h.finish().await;
}

#[tokio::test]
async fn an_immediate_cancel_kills_at_once() {
    let mut h = Harness::start("kill", job_in(&image())).await;
    let step = h.sh("trap '' TERM; echo ready; while :; do sleep 1; done");
    let cancel = Cancel::default();
    let sink = h.sink.clone();
    let run = h.job.run_step(step, sink, &cancel);
    let trigger = async {
        loop {
            if h.lines.recv().await.unwrap().text == "ready" {
                cancel.graceful.cancel();
                cancel.immediate.cancel();
                return;
            }
        }
    };
    let (report, ()) = bounded("kill", async { tokio::join!(run, trigger) }).await;
    assert_eq!(report.exit, StepExit::Cancelled);
    let took = report.finished.duration_since(report.started).unwrap();
    assert!(took < Duration::from_secs(4), "{took:?}");
    h.finish().await;
}

#[tokio::test]
async fn a_missing_image_is_a_clear_job_error() {
    let missing = "localhost/kiln-no-such-image:1";
    let err = Harness::try_start("missing", job_in(missing), ContainerConfig::default())
        .await
        .err()
        .expect("the job must not start");
    let text = err.to_string();
    assert!(text.contains(missing), "{text}");
    assert!(text.contains("pulling image"), "{text}");
    let never = ContainerConfig {
        pull: PullPolicy::Never,
        ..Default::default()
    };
    let err = Harness::try_start("never", job_in(missing), never)
        .await
        .err()
        .expect("the job must not start");
    assert!(err.to_string().contains("pull policy is `never`"), "{err}");
    assert_eq!(leftovers(&label("missing")).await, (0, 0));
}

#[tokio::test]
async fn the_engine_socket_cannot_be_mounted_unless_allowed() {
    let e = engine().await;
    let sock = e.endpoint.socket_path().expect("a unix socket engine");
    let mut plan = job_in(&image());
    if let Some(c) = plan.container.as_mut() {
        c.volumes = vec![format!("{}:/var/run/docker.sock", sock.display())];
    }
    let err = Harness::try_start("socket", plan.clone(), ContainerConfig::default())
        .await
        .err()
        .expect("the socket mount must be refused");
    assert!(err.to_string().contains("allow_socket_mount"), "{err}");
    let allowed = ContainerConfig {
        allow_socket_mount: true,
        ..Default::default()
    };
    let mut h = Harness::try_start("socket-ok", plan, allowed)
        .await
        .unwrap();
    let step = h.sh("test -S /var/run/docker.sock");
    assert_eq!(h.run(step).await.exit, StepExit::Exited(0));
    h.finish().await;
}

#[tokio::test]
async fn limits_follow_the_job_weight() {
    let config = ContainerConfig {
        cpus_per_weight: Some(0.5),
        memory_per_weight: Some(64 << 20),
        ..Default::default()
    };
    let mut plan = job_in(&image());
    plan.weight = 2;
    let mut h = Harness::try_start("limits", plan, config).await.unwrap();
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let filter = HashMap::from([("label", vec![format!("{}={}", labels::JOB, h.label)])]);
    let found = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new().filters(&filter).build(),
        ))
        .await
        .unwrap();
    let id = found[0].id.clone().unwrap();
    let inspect = docker.inspect_container(&id, None).await.unwrap();
    let host = inspect.host_config.unwrap();
    assert_eq!(host.memory, Some(128 << 20));
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    let step = h.sh("true");
    assert_eq!(h.run(step).await.exit, StepExit::Exited(0));
    h.finish().await;
}

#[tokio::test]
async fn a_service_is_reachable_by_name_from_the_job_container() {
    let mut plan = job_in(&image());
    plan.services.push(ServiceSpec {
        name: "web".into(),
        spec: ContainerSpec {
            image: image(),
            options: parse_options(
                "--health-cmd 'wget -q -O /dev/null http://127.0.0.1:8080/' --health-interval 100ms --health-retries 50",
            )
            .unwrap(),
            ..Default::default()
        },
    });
    let mut h = Harness::start("service", plan).await;
    let step = h.sh("wget -q -O - http://web:8080/");
    let report = h.run(step).await;
    let lines = h.drain();
    assert_eq!(report.exit, StepExit::Exited(0), "{lines:?}");
    assert_eq!(texts(&lines, Stream::Stdout), ["hello from kiln-web"]);
    let label = h.finish().await;
    assert_eq!(leftovers(&label).await, (0, 0));
}

#[tokio::test]
async fn a_failing_service_health_check_fails_the_job_and_leaves_nothing() {
    let mut plan = job_in(&image());
    plan.services.push(ServiceSpec {
        name: "broken".into(),
        spec: ContainerSpec {
            image: image(),
            options: Options {
                health: parse_options(
                    "--health-cmd false --health-interval 50ms --health-retries 2",
                )
                .unwrap()
                .health,
                ..Default::default()
            },
            ..Default::default()
        },
    });
    let err = Harness::try_start("unhealthy", plan, ContainerConfig::default())
        .await
        .err()
        .expect("the job must not start");
    assert!(err.to_string().contains("services.broken"), "{err}");
    assert_eq!(leftovers(&label("unhealthy")).await, (0, 0));
}

/// A job whose owner was SIGKILLed leaves its container behind; the sweep
/// (what an agent runs when it starts) removes it.
#[tokio::test]
async fn a_sweep_removes_what_a_killed_owner_left() {
    let child = env!("CARGO_BIN_EXE_kiln-test-child");
    let dir = tempfile::tempdir().unwrap();
    let label = format!("kiln-test-{}-orphan", std::process::id());
    let mut proc = tokio::process::Command::new(child)
        .args([
            "container-job",
            &image(),
            &dir.path().display().to_string(),
            &label,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(proc.stdout.take().unwrap());
    bounded("the child's container job", async {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                out.read_line(&mut line).await.unwrap() > 0,
                "the child ended"
            );
            if line.trim() == "ready" {
                return;
            }
        }
    })
    .await;
    // The owner is alive: the container is there, and no sweep (this
    // one, or another test process's) may touch it.
    assert_eq!(leftovers(&label).await.0, 1);
    let swept = labels::sweep(&engine().await).await.unwrap();
    assert!(
        !swept.containers.iter().any(|c| c.contains("orphan")),
        "{swept:?}"
    );
    assert_eq!(leftovers(&label).await.0, 1);
    proc.start_kill().unwrap();
    proc.wait().await.unwrap();
    // Dead: the next sweep removes it (another test process's sweep may
    // have been first; either way nothing is left).
    bounded("the sweep", labels::sweep(&engine().await))
        .await
        .unwrap();
    assert_eq!(leftovers(&label).await, (0, 0));
}
