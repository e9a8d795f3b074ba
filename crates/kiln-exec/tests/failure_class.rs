//! The failure class the job runner gives a failed job (what `retry:`
//! acts on), through real bash processes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kiln_exec::port::{Cancel, LogLine};
use kiln_exec::process::ProcessExecutor;
use kiln_exec::runner::context::BaseContexts;
use kiln_exec::runner::{Checkout, JobObserver, JobOutcome, JobRun, run_job};
use kiln_model::{Failure, FailureClass, JobStatus, Value};
use kiln_proto::results::StepResult;

struct Quiet;

impl JobObserver for Quiet {
    fn step_started(&self, _: u32, _: &str) {}
    fn line(&self, _: u32, _: LogLine) {}
    fn step_finished(&self, _: &StepResult) {}
    fn note(&self, _: &str) {}
}

/// A checkout that always fails, as an unreachable mirror would.
#[derive(Debug)]
struct BrokenCheckout;

#[async_trait::async_trait]
impl Checkout for BrokenCheckout {
    async fn checkout(&self, _: &Path, _: &(dyn Fn(String) + Send + Sync)) -> Result<(), String> {
        Err("the mirror is unreachable".into())
    }
}

/// Runs `job` (a job body indented by four spaces).
async fn run(job: &str, checkout: Option<Arc<dyn Checkout>>) -> JobOutcome {
    let yaml = format!("on: push\njobs:\n  j:\n    runs-on: local\n{job}");
    let loaded = kiln_pipeline::load::load("classes.yml", &yaml);
    assert!(!loaded.has_errors(), "{yaml}\n{:?}", loaded.diagnostics);
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    let temp = dir.path().join("tmp");
    std::fs::create_dir_all(&workspace).unwrap();
    std::fs::create_dir_all(&temp).unwrap();
    let run = JobRun {
        workflow: Arc::new(loaded.workflow.unwrap()),
        job_index: 0,
        contexts: BaseContexts {
            github: Value::object([("job", Value::str("j"))]),
            ..Default::default()
        },
        workspace,
        temp,
        base_env: std::env::vars().collect(),
        kill_grace: Duration::from_secs(2),
        label: "class-test".into(),
        checkout,
    };
    let cancel = Cancel::default();
    tokio::time::timeout(
        Duration::from_secs(60),
        run_job(&ProcessExecutor::new(), &run, Arc::new(Quiet), &cancel),
    )
    .await
    .expect("the job ends within 60 s")
}

#[tokio::test]
async fn a_non_zero_exit_is_exit_code_with_the_step_and_code() {
    let o = run(
        "    steps:
      - run: exit 3
        continue-on-error: true
      - run: echo fine
      - run: exit 7
      - if: always()
        run: exit 9
",
        None,
    )
    .await;
    assert_eq!(o.status, JobStatus::Failure);
    assert_eq!(
        o.failure,
        Some(Failure {
            class: FailureClass::ExitCode,
            step: Some(3),
            exit_code: Some(7),
        })
    );
}

#[tokio::test]
async fn a_success_has_no_failure() {
    let o = run(
        "    steps:\n      - run: exit 1\n        continue-on-error: true\n",
        None,
    )
    .await;
    assert_eq!(o.status, JobStatus::Success);
    assert_eq!(o.failure, None);
}

#[tokio::test]
async fn a_step_timeout_is_timeout() {
    let o = run(
        "    steps:
      - run: exec sleep 60
        timeout-minutes: 0.005
",
        None,
    )
    .await;
    assert_eq!(o.status, JobStatus::Failure);
    assert_eq!(o.failure.map(|f| f.class), Some(FailureClass::Timeout));
}

#[tokio::test]
async fn a_job_timeout_is_timeout() {
    let o = run(
        "    timeout-minutes: 0.005
    steps:
      - run: exec sleep 60
",
        None,
    )
    .await;
    assert_eq!(o.status, JobStatus::Failure);
    assert_eq!(o.failure.map(|f| f.class), Some(FailureClass::Timeout));
}

#[tokio::test]
async fn a_failed_checkout_is_checkout() {
    let o = run(
        "    steps:
      - uses: actions/checkout@v4
      - run: echo never
",
        Some(Arc::new(BrokenCheckout)),
    )
    .await;
    assert_eq!(o.status, JobStatus::Failure);
    assert_eq!(
        o.failure,
        Some(Failure {
            class: FailureClass::Checkout,
            step: Some(1),
            exit_code: None,
        })
    );
}

#[tokio::test]
async fn a_signal_or_a_bad_expression_is_other() {
    let o = run("    steps:\n      - run: kill -9 $$\n", None).await;
    assert_eq!(o.failure.map(|f| f.class), Some(FailureClass::Other));
    let o = run(
        "    steps:\n      - run: echo ${{ fromJSON('nope') }}\n",
        None,
    )
    .await;
    assert_eq!(o.failure.map(|f| f.class), Some(FailureClass::Other));
}

#[tokio::test]
async fn a_failed_health_check_is_other_whatever_the_rollback_does() {
    let o = run(
        "    environment:
      name: production
      health-check:
        run: exit 1
        retries: 0
        interval: 0
    steps:
      - run: echo deployed
    rollback:
      - run: exit 4
",
        None,
    )
    .await;
    assert_eq!(o.status, JobStatus::Failure);
    assert_eq!(o.failure.map(|f| f.class), Some(FailureClass::Other));
}
