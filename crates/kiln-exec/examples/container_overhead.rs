//! Benchmark: container job start overhead, `job ready → first step
//! running`, against baselines measured in the same run, interleaved
//! (docs/benchmarks.md, "container-start").
//!
//! Series, each `--repeat` times (default 15) after 2 untimed warm-ups:
//! - `podman run --rm IMAGE true`: the CLI's whole container life;
//! - `engine API`: what any executor must do, straight through bollard:
//!   create (same init, same mounts) + start + exec create + exec start,
//!   until the exec's first output line; removal not timed;
//! - `kiln`: `run_job` of a one-step job with `container: IMAGE` through
//!   `select::Executors` (as `kiln exec` and the agent run it), from the
//!   call until the step's first line (`echo running`) reaches the
//!   observer; also the whole job (until `finish` removed everything).
//!
//! Usage: `DOCKER_HOST=unix:///tmp/kiln-podman.sock cargo run --release
//! -p kiln-exec --example container_overhead [IMAGE] [--repeat N]`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;
use kiln_exec::port::{Cancel, LogLine};
use kiln_exec::runner::context::BaseContexts;
use kiln_exec::runner::{JobObserver, JobRun, run_job};
use kiln_exec::select::Executors;
use kiln_proto::results::StepResult;

const INIT: &str = "trap 'kill -TERM -1 2>/dev/null; wait; exit 0' TERM; \
                    while :; do sleep 3600 & wait $!; done";

struct FirstLine(Mutex<Option<SystemTime>>);

impl JobObserver for FirstLine {
    fn step_started(&self, _: u32, _: &str) {}
    fn line(&self, _: u32, line: LogLine) {
        let mut first = self.0.lock().unwrap();
        if first.is_none() && line.text == "running" {
            *first = Some(line.at);
        }
    }
    fn step_finished(&self, _: &StepResult) {}
    fn note(&self, text: &str) {
        eprintln!("note: {text}");
    }
}

fn podman_run(image: &str) -> Duration {
    let t = Instant::now();
    let status = std::process::Command::new("podman")
        .args(["run", "--rm", image, "true"])
        .status()
        .expect("podman");
    assert!(status.success());
    t.elapsed()
}

async fn engine_api(docker: &Docker, image: &str, n: usize) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().display().to_string();
    let name = format!("kiln-bench-raw-{}-{n}", std::process::id());
    let t = Instant::now();
    let id = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            ContainerCreateBody {
                image: Some(image.to_owned()),
                entrypoint: Some(vec!["sh".into(), "-c".into(), INIT.into()]),
                cmd: Some(Vec::new()),
                host_config: Some(HostConfig {
                    binds: Some(vec![format!("{ws}:{ws}")]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
    docker.start_container(&id, None).await.unwrap();
    let exec = docker
        .create_exec(
            &id,
            CreateExecOptions {
                cmd: Some(vec![
                    "sh".to_owned(),
                    "-c".to_owned(),
                    "echo running".to_owned(),
                ]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                working_dir: Some(ws.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let StartExecResults::Attached { mut output, .. } =
        docker.start_exec(&exec.id, None).await.unwrap()
    else {
        panic!("detached");
    };
    let _ = output.next().await;
    let took = t.elapsed();
    while output.next().await.is_some() {}
    docker
        .remove_container(
            &id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await
        .unwrap();
    took
}

async fn kiln(executors: &Executors, image: &str, n: usize) -> (Duration, Duration) {
    let yaml = format!(
        "on: push\njobs:\n  j:\n    runs-on: local\n    container: {image}\n    steps:\n      - run: echo running\n"
    );
    let workflow = Arc::new(
        kiln_pipeline::load::load("bench.yml", &yaml)
            .workflow
            .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (ws, temp) = (dir.path().join("ws"), dir.path().join("tmp"));
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&temp).unwrap();
    let run = JobRun {
        workflow,
        job_index: 0,
        contexts: BaseContexts::default(),
        workspace: ws,
        temp,
        base_env: std::env::vars().collect(),
        kill_grace: Duration::from_secs(5),
        label: format!("kiln-bench-{}-{n}", std::process::id()),
        checkout: None,
    };
    let observer = Arc::new(FirstLine(Mutex::new(None)));
    let ready = SystemTime::now();
    let t = Instant::now();
    let executor = executors.executor_for(&run);
    let outcome = run_job(
        executor.as_ref(),
        &run,
        observer.clone(),
        &Cancel::default(),
    )
    .await;
    let whole = t.elapsed();
    assert_eq!(
        outcome.status,
        kiln_model::JobStatus::Success,
        "{outcome:?}"
    );
    let first = observer.0.lock().unwrap().expect("the step printed");
    (first.duration_since(ready).unwrap(), whole)
}

fn stats(name: &str, v: &mut [Duration]) -> (Duration, String) {
    v.sort();
    let med = v[(v.len() - 1) / 2];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        med,
        format!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            ms(med),
            ms(v[0]),
            ms(v[v.len() - 1])
        ),
    )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut image = "localhost/kiln-busybox:latest".to_owned();
    let mut repeat = 15usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeat" => repeat = args.next().and_then(|n| n.parse().ok()).expect("N"),
            other => image = other.to_owned(),
        }
    }
    let docker = Docker::connect_with_defaults().unwrap();
    let executors = Executors::default();
    let (mut podman, mut raw, mut first, mut whole) = (vec![], vec![], vec![], vec![]);
    for n in 0..repeat + 2 {
        let p = podman_run(&image);
        let r = engine_api(&docker, &image, n).await;
        let (f, w) = kiln(&executors, &image, n).await;
        if n >= 2 {
            podman.push(p);
            raw.push(r);
            first.push(f);
            whole.push(w);
        }
    }
    println!("image {image}, {repeat} runs each, interleaved; milliseconds\n");
    println!("| series | median | min | max |\n|---|---|---|---|");
    let (p, lp) = stats("`podman run --rm IMAGE true`", &mut podman);
    let (r, lr) = stats("engine API: create + start + exec → first line", &mut raw);
    let (f, lf) = stats("kiln: job ready → first step running", &mut first);
    let (_, lw) = stats("kiln: whole job (until everything is removed)", &mut whole);
    for l in [lp, lr, lf, lw] {
        println!("{l}");
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\nkiln − engine API: {:+.0} ms (kiln's own overhead); kiln − podman run: {:+.0} ms; \
         kiln ÷ podman run: {:.2}",
        ms(f) - ms(r),
        ms(f) - ms(p),
        ms(f) / ms(p)
    );
}
