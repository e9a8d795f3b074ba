//! Deploys through the job runner with the process executor (real bash
//! processes): the environment's health check after the steps, its
//! attempts, and the `rollback:` steps when it never passes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_exec::port::{Cancel, LogLine};
use kiln_exec::process::ProcessExecutor;
use kiln_exec::runner::context::BaseContexts;
use kiln_exec::runner::{JobObserver, JobOutcome, JobRun, run_job};
use kiln_model::{JobStatus, StepStatus, Value};
use kiln_proto::results::{DeployOutcome, PhaseKind, StepResult};

/// Records notes; cancels `cancel` gracefully when a step prints `cancel me`
/// (a handshake, not a sleep).
struct Quiet(Mutex<Vec<String>>, Cancel);

impl JobObserver for Quiet {
    fn step_started(&self, _: u32, _: &str) {}
    fn line(&self, _: u32, line: LogLine) {
        if line.text == "cancel me" {
            self.1.graceful.cancel();
        }
    }
    fn step_finished(&self, _: &StepResult) {}
    fn note(&self, text: &str) {
        self.0.lock().unwrap().push(text.to_owned());
    }
}

struct Ran {
    outcome: JobOutcome,
    workspace: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs `job` (a job body indented by four spaces) with `kiln.deploy.rollback_to` = `rollback_to`.
async fn run(job: &str, rollback_to: &str) -> Ran {
    let yaml = format!("on: push\njobs:\n  j:\n    runs-on: local\n{job}");
    let loaded = kiln_pipeline::load::load("deploy.yml", &yaml);
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
            github: Value::object([("sha", Value::str("abc123")), ("job", Value::str("j"))]),
            kiln: Value::object([(
                "deploy",
                Value::object([("rollback_to", Value::str(rollback_to))]),
            )]),
            ..Default::default()
        },
        workspace: workspace.clone(),
        temp,
        base_env: std::env::vars().collect(),
        kill_grace: Duration::from_secs(2),
        label: "deploy-test".into(),
        checkout: None,
    };
    let cancel = Cancel::default();
    let observer = Arc::new(Quiet(Mutex::new(Vec::new()), cancel.clone()));
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        run_job(&ProcessExecutor::new(), &run, observer, &cancel),
    )
    .await
    .expect("the job ends within 60 s");
    Ran {
        outcome,
        workspace,
        _dir: dir,
    }
}

fn names(o: &JobOutcome) -> Vec<&str> {
    o.steps.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test]
async fn health_check_passing_on_the_third_attempt_is_healthy() {
    let ran = run(
        "    environment:
      name: production
      health-check:
        run: |
          echo x >> tries
          test \"$(wc -l < tries)\" -ge 3
        retries: 4
        interval: 10ms
    steps:
      - run: test \"$KILN_ENVIRONMENT\" = production
",
        "",
    )
    .await;
    let o = &ran.outcome;
    assert_eq!(o.status, JobStatus::Success, "{o:?}");
    assert_eq!(o.deploy, Some(DeployOutcome::Healthy));
    assert_eq!(
        names(o),
        [
            "Run test \"$KILN_ENVIRONMENT\" = production",
            "Health check (1/5)",
            "Health check (2/5)",
            "Health check (3/5)"
        ]
    );
    let statuses: Vec<_> = o.steps.iter().map(|s| (s.number, s.status)).collect();
    assert_eq!(
        statuses,
        [
            (1, StepStatus::Success),
            (2, StepStatus::Failure),
            (3, StepStatus::Failure),
            (4, StepStatus::Success)
        ]
    );
    let kinds: Vec<_> = o.phases.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PhaseKind::Step,
            PhaseKind::HealthCheck,
            PhaseKind::HealthCheck,
            PhaseKind::HealthCheck,
            PhaseKind::Cleanup
        ]
    );
}

#[tokio::test]
async fn a_failing_health_check_runs_the_rollback_with_the_last_good_commit() {
    let ran = run(
        "    environment:
      name: production
      health-check:
        run: exit 1
        retries: 1
        interval: 0
    steps:
      - run: echo deployed
    rollback:
      - run: echo \"$KILN_ROLLBACK_TO $KILN_ENVIRONMENT\" > rolled-back-to
      - if: success()
        run: echo never
",
        "0123456789abcdef0123",
    )
    .await;
    let o = &ran.outcome;
    assert_eq!(o.status, JobStatus::Failure);
    assert_eq!(o.deploy, Some(DeployOutcome::RolledBack));
    assert_eq!(
        o.reason.as_deref(),
        Some("health check failed; rolled back to 0123456789ab")
    );
    let written = std::fs::read_to_string(ran.workspace.join("rolled-back-to")).unwrap();
    assert_eq!(written, "0123456789abcdef0123 production\n");
    assert_eq!(o.steps.len(), 5);
    assert_eq!(o.steps[3].status, StepStatus::Success);
    assert_eq!(o.steps[4].status, StepStatus::Skipped);
    assert_eq!(o.phases[3].kind, PhaseKind::Rollback);
}

#[tokio::test]
async fn a_failing_rollback_step_is_rollback_failed() {
    let ran = run(
        "    environment:
      name: production
      health-check:
        run: exit 1
        retries: 0
    steps:
      - run: echo deployed
    rollback:
      - run: test -n \"$KILN_ROLLBACK_TO\"
      - run: echo not after a failed rollback step
      - if: always()
        run: echo cleanup
",
        "",
    )
    .await;
    let o = &ran.outcome;
    assert_eq!(o.deploy, Some(DeployOutcome::RollbackFailed));
    assert_eq!(o.status, JobStatus::Failure);
    let reason = o.reason.as_deref().unwrap();
    assert!(
        reason.contains("rollback to (no earlier good commit) failed"),
        "{reason}"
    );
    let statuses: Vec<_> = o.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::Success,
            StepStatus::Failure,
            StepStatus::Failure,
            StepStatus::Skipped,
            StepStatus::Success
        ]
    );
}

#[tokio::test]
async fn without_rollback_steps_the_environment_is_unhealthy() {
    let ran = run(
        "    environment:
      name: staging
      health-check:
        run: exit 1
        retries: 2
        interval: 1ms
    steps:
      - run: echo deployed
",
        "",
    )
    .await;
    let o = &ran.outcome;
    assert_eq!(o.status, JobStatus::Failure);
    assert_eq!(o.deploy, Some(DeployOutcome::Unhealthy));
    assert_eq!(
        o.reason.as_deref(),
        Some("health check failed: staging is unhealthy (no rollback steps)")
    );
    assert_eq!(o.steps.len(), 4);
}

#[tokio::test]
async fn an_attempt_over_its_timeout_is_killed_and_counts_as_failed() {
    let ran = run(
        "    environment:
      name: production
      health-check:
        run: |
          if [ -e first-done ]; then exit 0; fi
          touch first-done
          sleep 30
        retries: 1
        interval: 0
        timeout: 300ms
    steps:
      - run: echo deployed
",
        "",
    )
    .await;
    let o = &ran.outcome;
    assert_eq!(o.deploy, Some(DeployOutcome::Healthy), "{o:?}");
    assert_eq!(o.steps[1].status, StepStatus::Failure);
    assert_eq!(o.steps[1].reason.as_deref(), Some("timed out after 0.3s"));
    assert!(o.steps[1].duration_ms < 10_000);
    assert_eq!(o.steps[2].status, StepStatus::Success);
}

#[tokio::test]
async fn a_failed_deploy_step_skips_the_health_check_and_has_no_deploy_outcome() {
    let ran = run(
        "    environment:
      name: production
      health-check:
        run: touch checked
    steps:
      - run: exit 4
    rollback:
      - run: touch rolled-back
",
        "abc",
    )
    .await;
    let o = &ran.outcome;
    assert_eq!(o.status, JobStatus::Failure);
    assert_eq!(o.deploy, None);
    assert_eq!(o.reason, None);
    assert_eq!(o.steps.len(), 1);
    assert!(!ran.workspace.join("checked").exists());
    assert!(!ran.workspace.join("rolled-back").exists());
}

#[tokio::test]
async fn a_deploy_without_health_check_that_succeeds_is_healthy() {
    let ran = run(
        "    environment: production
    steps:
      - run: echo deployed
",
        "",
    )
    .await;
    assert_eq!(ran.outcome.status, JobStatus::Success);
    assert_eq!(ran.outcome.deploy, Some(DeployOutcome::Healthy));
}

#[tokio::test]
async fn a_graceful_cancel_during_the_health_check_still_rolls_back() {
    let ran = run(
        "    environment:
      name: production
      health-check:
        run: |
          echo 'cancel me'
          sleep 30
        retries: 3
        interval: 0
    steps:
      - run: echo deployed
    rollback:
      - run: echo \"$KILN_ROLLBACK_TO\" > rolled-back-to
",
        "feedfacefeedfacefeed",
    )
    .await;
    let o = &ran.outcome;
    assert_eq!(o.status, JobStatus::Cancelled, "{o:?}");
    assert_eq!(o.deploy, Some(DeployOutcome::RolledBack));
    assert_eq!(
        o.reason.as_deref(),
        Some("cancelled; health check interrupted; rolled back to feedfacefeed")
    );
    // One attempt, stopped; no further attempts; the rollback ran.
    assert_eq!(o.steps.len(), 3, "{o:?}");
    assert_eq!(o.steps[1].status, StepStatus::Cancelled);
    let written = std::fs::read_to_string(ran.workspace.join("rolled-back-to")).unwrap();
    assert_eq!(written, "feedfacefeedfacefeed\n");
}
