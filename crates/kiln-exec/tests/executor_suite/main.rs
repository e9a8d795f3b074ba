//! One suite, both executors: every case is a job (workflow YAML) run by
//! the job runner twice, once as processes and once with `container:` (the
//! busybox test image, `KILN_TEST_IMAGE`, on the engine from `DOCKER_HOST`),
//! and must behave the same way in both: step shells, env, file commands
//! (`$KILN_OUTPUT`, `$KILN_ENV`, `$KILN_PATH`), `working-directory`, exit
//! codes, timeouts. The executor comes from `select::Executors`, as in
//! `kiln exec` and the agent.
//!
//! Scripts are POSIX sh: the image has busybox, not bash (kiln's default
//! bash falls back to `sh -e` there, as on GitHub).

mod cases;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_exec::port::{Cancel, LogLine, Stream};
use kiln_exec::runner::context::BaseContexts;
use kiln_exec::runner::{JobObserver, JobOutcome, JobRun, run_job};
use kiln_exec::select::Executors;
use kiln_model::Value;
use kiln_proto::results::StepResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Process,
    Container,
}

pub const BOTH: [Kind; 2] = [Kind::Process, Kind::Container];

fn image() -> String {
    std::env::var("KILN_TEST_IMAGE").unwrap_or_else(|_| "localhost/kiln-busybox:latest".into())
}

#[derive(Default)]
struct Seen {
    lines: Vec<(u32, Stream, String)>,
}

struct Observer(Mutex<Seen>);

impl JobObserver for Observer {
    fn step_started(&self, _: u32, _: &str) {}
    fn line(&self, number: u32, line: LogLine) {
        self.0
            .lock()
            .unwrap()
            .lines
            .push((number, line.stream, line.text));
    }
    fn step_finished(&self, _: &StepResult) {}
    fn note(&self, _: &str) {}
}

/// What a job did.
pub struct Ran {
    pub kind: Kind,
    pub outcome: JobOutcome,
    pub lines: Vec<(u32, Stream, String)>,
    pub workspace: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Ran {
    /// Stdout lines of step `number`.
    pub fn out(&self, number: u32) -> Vec<&str> {
        self.stream(number, Stream::Stdout)
    }

    pub fn stream(&self, number: u32, stream: Stream) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(n, s, _)| *n == number && *s == stream)
            .map(|(_, _, t)| t.as_str())
            .collect()
    }

    pub fn step(&self, number: u32) -> &StepResult {
        &self.outcome.steps[number as usize - 1]
    }
}

/// Runs `job` (the YAML of one job's body, indented by four spaces, under
/// `jobs.j`) with executor `kind`.
pub async fn run(kind: Kind, job: &str) -> Ran {
    let container = match kind {
        Kind::Process => String::new(),
        Kind::Container => format!("    container: {}\n", image()),
    };
    let yaml = format!("on: push\njobs:\n  j:\n    runs-on: local\n{container}{job}");
    let loaded = kiln_pipeline::load::load("suite.yml", &yaml);
    assert!(!loaded.has_errors(), "{yaml}\n{:?}", loaded.diagnostics);
    let workflow = Arc::new(loaded.workflow.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    let temp = dir.path().join("tmp");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::create_dir_all(&temp).unwrap();
    let run = JobRun {
        workflow,
        job_index: 0,
        contexts: BaseContexts {
            github: Value::object([("sha", Value::str("abc123")), ("job", Value::str("j"))]),
            ..Default::default()
        },
        workspace: workspace.clone(),
        temp,
        base_env: std::env::vars().collect(),
        kill_grace: Duration::from_secs(2),
        label: format!(
            "kiln-suite-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ),
        checkout: None,
    };
    let executor = EXECUTORS.executor_for(&run);
    let observer = Arc::new(Observer(Mutex::new(Seen::default())));
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        run_job(
            executor.as_ref(),
            &run,
            observer.clone(),
            &Cancel::default(),
        ),
    )
    .await
    .expect("the job ends within 60 s");
    let lines = std::mem::take(&mut observer.0.lock().unwrap().lines);
    Ran {
        kind,
        outcome,
        lines,
        workspace,
        _dir: dir,
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static EXECUTORS: std::sync::LazyLock<Executors> = std::sync::LazyLock::new(Executors::default);

/// Runs `job` with both executors; `check` gets each result.
pub async fn both(job: &str, check: impl Fn(&Ran)) {
    for kind in BOTH {
        let ran = run(kind, job).await;
        check(&ran);
    }
}

pub fn outputs(ran: &Ran) -> &BTreeMap<String, String> {
    &ran.outcome.outputs
}
