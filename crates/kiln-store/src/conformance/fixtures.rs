//! What the cases build on: fixed instants, sample records, assertions.

use crate::ports::{Store, StoreError};
use crate::types::*;
use jiff::Timestamp;
use kiln_model::{Failure, FailureClass, InstanceId, JobStatus, RetryPolicy, StepStatus, Value};
use kiln_proto::agent::JobContexts;
use kiln_proto::api::{LogEntry, LogStream};
use kiln_proto::results::{JobResult, StepResult};
use std::collections::BTreeMap;

/// A fixed instant plus `secs` seconds and a few microseconds (so that
/// sub-second precision is exercised everywhere).
pub(crate) fn t(secs: i64) -> Timestamp {
    Timestamp::from_microsecond(1_700_000_000_000_000 + secs * 1_000_000 + 123_456)
        .expect("fixture timestamp")
}

pub(crate) fn new_run(repo: &RepoRecord, now: Timestamp) -> NewRun {
    NewRun {
        hold: None,
        gate: None,
        repo: repo.id,
        workflow_file: ".kiln/ci.yml".into(),
        workflow_name: "CI".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        git_ref: Some("refs/heads/main".into()),
        event: "push".into(),
        workflow: None,
        contexts: RunContexts {
            github: Value::object([
                ("sha", Value::str("0123456789abcdef")),
                ("run_number", Value::Number(7.0)),
            ]),
            inputs: Value::object([("greeting", Value::str("héllo"))]),
            kiln: Value::object([("flags", Value::Array(vec![Value::str("fast")]))]),
            ..RunContexts::default()
        },
        status: JobStatus::Queued,
        error: None,
        graph: Some(GraphParts {
            head: "{\"graph\":0}".into(),
            nodes: vec!["{\"node\":0}".into(), "{\"node\":1}".into()],
        }),
        now,
    }
}

pub(crate) fn new_instance(node: u32, index: u32, status: JobStatus) -> NewInstance {
    NewInstance {
        priority: 0,
        gate: None,
        node,
        index,
        job_key: format!("job{node}"),
        name: format!("job{node} ({index})"),
        matrix: Some(Value::object([
            ("os", Value::str("linux")),
            ("n", Value::Number(f64::from(index))),
        ])),
        runs_on: vec!["linux".into(), "x64".into()],
        weight: 1 + index,
        status,
        reason: match status {
            JobStatus::Skipped => Some("skipped: if condition was false".into()),
            JobStatus::Queued
            | JobStatus::Running
            | JobStatus::Success
            | JobStatus::Failure
            | JobStatus::Cancelled => None,
        },
        contexts: JobContexts {
            matrix: Value::object([("os", Value::str("linux"))]),
            needs: Value::object([("setup", Value::object([("result", Value::str("success"))]))]),
            ..JobContexts::default()
        },
        retry: RetryPolicy::infrastructure(2),
    }
}

pub(crate) async fn add_repo<S: Store>(s: &S, name: &str) -> RepoRecord {
    s.add_repo(name, &format!("https://forge.invalid/{name}.git"), t(0))
        .await
        .expect("add_repo")
}

/// A run with `n` queued instances (node 0, index 0..n), created by one
/// transition. Returns the run as it stands after, and the instances.
pub(crate) async fn run_with_queued<S: Store>(
    s: &S,
    repo: &RepoRecord,
    n: u32,
) -> (RunRecord, Vec<InstanceRecord>) {
    let run = s.create_run(new_run(repo, t(1))).await.expect("create_run");
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "{\"graph\":1}".into(),
            status: Some(JobStatus::Running),
            started_at: Some(t(2)),
            new_instances: (0..n)
                .map(|i| new_instance(0, i, JobStatus::Queued))
                .collect(),
            now: t(2),
            ..Transition::default()
        },
    )
    .await
    .expect("apply");
    let run = s.run(run.id).await.expect("run");
    let instances = s.instances(run.id).await.expect("instances");
    (run, instances)
}

pub(crate) async fn add_agent<S: Store + ?Sized>(s: &S, name: &str) -> AgentRecord {
    s.register_agent(
        name,
        &["linux".into(), "x64".into()],
        4,
        &format!("session-of-{name}"),
        t(0),
    )
    .await
    .expect("register_agent")
}

/// A run with one instance, claimed by a fresh agent at t(10) with a lease
/// until t(40).
pub(crate) async fn claimed<S: Store>(s: &S) -> (RunRecord, InstanceRecord, AgentRecord) {
    let repo = add_repo(s, "claimed").await;
    let (run, instances) = run_with_queued(s, &repo, 1).await;
    let agent = add_agent(s, "agent-1").await;
    let claimed = s
        .claim(instances[0].id, agent.id, t(10), t(40))
        .await
        .expect("claim")
        .expect("claim wins");
    (run, claimed, agent)
}

pub(crate) fn job_result(status: JobStatus, attempt: u32) -> JobResult {
    JobResult {
        deploy: None,
        job: "job0".into(),
        name: "job0 (0)".into(),
        matrix: Some(BTreeMap::from([("os".to_owned(), Value::str("linux"))])),
        status,
        reason: match status {
            JobStatus::Failure => Some("step `test` exited with 2".into()),
            JobStatus::Queued
            | JobStatus::Running
            | JobStatus::Success
            | JobStatus::Cancelled
            | JobStatus::Skipped => None,
        },
        failure: match status {
            JobStatus::Failure => Some(Failure {
                class: FailureClass::ExitCode,
                step: Some(1),
                exit_code: Some(2),
            }),
            JobStatus::Queued
            | JobStatus::Running
            | JobStatus::Success
            | JobStatus::Cancelled
            | JobStatus::Skipped => None,
        },
        attempt,
        agent: Some("agent-1".into()),
        queued_at: Some(t(2)),
        started_at: Some(t(10)),
        finished_at: Some(t(20)),
        duration_ms: 10_000,
        phases: Vec::new(),
        outputs: BTreeMap::from([("version".to_owned(), "1.2.3".to_owned())]),
        steps: vec![StepResult {
            number: 1,
            id: Some("test".into()),
            name: "Run tests".into(),
            status: StepStatus::Success,
            outcome: StepStatus::Success,
            exit_code: Some(0),
            started_at: Some(t(11)),
            finished_at: Some(t(19)),
            duration_ms: 8_000,
            reason: None,
        }],
    }
}

pub(crate) fn line(job: InstanceId, attempt: u32, step: u32, text: &str) -> LogEntry {
    LogEntry {
        job,
        attempt,
        step,
        stream: LogStream::Stdout,
        at: t(i64::from(step)),
        text: text.to_owned(),
    }
}

pub(crate) fn texts(page: &LogPage) -> Vec<&str> {
    page.entries.iter().map(|e| e.text.as_str()).collect()
}

#[track_caller]
pub(crate) fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Conflict(_))),
        "expected Conflict, got {r:?}"
    );
}

#[track_caller]
pub(crate) fn assert_stale<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Stale(_))),
        "expected Stale, got {r:?}"
    );
}

#[track_caller]
pub(crate) fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::NotFound(_))),
        "expected NotFound, got {r:?}"
    );
}
