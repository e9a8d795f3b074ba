//! The conformance suite: the behaviour every [`Store`] adapter must have,
//! one public function per behaviour. An adapter's tests run it with
//! [`conformance_tests!`](crate::conformance_tests) (one `#[tokio::test]`
//! per behaviour, each on a fresh store) or [`run_all`] (all of them in one
//! test).
//!
//! Each case gets an empty store and owns it. Timestamps are whole
//! microseconds, the precision every adapter keeps. Where a port leaves an
//! order or a choice open, the suite does not pin it; where this module's
//! cases pin something the port docs do not spell out, the case's doc says
//! so (it is then part of the contract).

use crate::ports::{Store, StoreError};
use crate::types::*;
use jiff::Timestamp;
use kiln_model::{AgentId, InstanceId, JobStatus, RunId, StepStatus, Value};
use kiln_proto::agent::JobContexts;
use kiln_proto::api::{LogEntry, LogStream, Role};
use kiln_proto::results::{JobResult, StepResult};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// Runs every case in turn, each on a store from `new_store`. The second
/// half of the pair is kept alive until the case ends (a temporary
/// directory, a scratch schema) and then dropped.
pub async fn run_all<S, G, F, Fut>(mut new_store: F)
where
    S: Store + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = (S, G)>,
{
    macro_rules! run_cases {
        ([] $($case:ident),* $(,)?) => {
            $(
                let (store, guard) = new_store().await;
                $case(store).await;
                drop(guard);
            )*
        };
    }
    crate::__conformance_cases!(run_cases;);
}

/// The list of cases, handed to `$then` after `[$args]`.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($then:path; $($args:tt)*) => {
        $then! { [$($args)*]
            repos_add_duplicate_list,
            runs_create_read_list,
            timestamps_keep_microseconds,
            apply_checks_the_version,
            apply_is_all_or_nothing,
            transition_creates_instances,
            candidates_are_fifo,
            claim_records_the_attempt,
            claim_is_exclusive,
            fencing_rejects_old_attempts,
            cancel_queued_and_running,
            complete_until_applied,
            expire_requeues_then_gives_up,
            expire_cancelled_job,
            extend_all_leases,
            running_by_agent,
            logs_are_idempotent,
            logs_page_by_cursor,
            logs_round_trip,
            logs_fenced_by_attempt,
            agents_upsert,
            tokens,
        }
    };
}

/// One `#[tokio::test]` per conformance case. `$new` is an expression
/// evaluated afresh for each test, a future of `(store, guard)`; `guard`
/// lives until the test ends. The calling crate needs `tokio` (with the
/// `macros` and `rt-multi-thread` features) among its dev-dependencies.
///
/// ```ignore
/// kiln_store::conformance_tests!(async {
///     let dir = tempfile::tempdir().unwrap();
///     let store = SqliteStore::open(&dir.path().join("kiln.db")).await.unwrap();
///     (store, dir)
/// });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($new:expr) => {
        $crate::__conformance_cases!($crate::__conformance_test_fns; $new);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    ([$new:expr] $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, guard) = $new.await;
                $crate::conformance::$case(store).await;
                drop(guard);
            }
        )*
    };
}

// ---------------------------------------------------------------- fixtures

/// A fixed instant plus `secs` seconds and a few microseconds (so that
/// sub-second precision is exercised everywhere).
fn t(secs: i64) -> Timestamp {
    Timestamp::from_microsecond(1_700_000_000_000_000 + secs * 1_000_000 + 123_456)
        .expect("fixture timestamp")
}

fn new_run(repo: &RepoRecord, now: Timestamp) -> NewRun {
    NewRun {
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
        },
        status: JobStatus::Queued,
        error: None,
        graph: Some("{\"graph\":0}".into()),
        now,
    }
}

fn new_instance(node: u32, index: u32, status: JobStatus) -> NewInstance {
    NewInstance {
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
        max_attempts: 3,
    }
}

async fn add_repo<S: Store>(s: &S, name: &str) -> RepoRecord {
    s.add_repo(name, &format!("https://forge.invalid/{name}.git"), t(0))
        .await
        .expect("add_repo")
}

/// A run with `n` queued instances (node 0, index 0..n), created by one
/// transition. Returns the run as it stands after, and the instances.
async fn run_with_queued<S: Store>(
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

async fn add_agent<S: Store>(s: &S, name: &str) -> AgentRecord {
    s.register_agent(name, &["linux".into(), "x64".into()], 4, t(0))
        .await
        .expect("register_agent")
}

/// A run with one instance, claimed by a fresh agent at t(10) with a lease
/// until t(40).
async fn claimed<S: Store>(s: &S) -> (RunRecord, InstanceRecord, AgentRecord) {
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

fn job_result(status: JobStatus, attempt: u32) -> JobResult {
    JobResult {
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

fn line(job: InstanceId, attempt: u32, step: u32, text: &str) -> LogEntry {
    LogEntry {
        job,
        attempt,
        step,
        stream: LogStream::Stdout,
        at: t(i64::from(step)),
        text: text.to_owned(),
    }
}

fn texts(page: &LogPage) -> Vec<&str> {
    page.entries.iter().map(|e| e.text.as_str()).collect()
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Conflict(_))),
        "expected Conflict, got {r:?}"
    );
}

#[track_caller]
fn assert_stale<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::Stale(_))),
        "expected Stale, got {r:?}"
    );
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(
        matches!(r, Err(StoreError::NotFound(_))),
        "expected NotFound, got {r:?}"
    );
}

// ------------------------------------------------------------------- cases

/// Repositories: add, a taken name is a Conflict, list, look up by name.
pub async fn repos_add_duplicate_list<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    assert_eq!(a.name, "alpha");
    assert_eq!(a.url, "https://forge.invalid/alpha.git");
    assert_eq!(a.created_at, t(0));
    let b = add_repo(&s, "beta").await;
    assert_ne!(a.id, b.id);
    assert_conflict(s.add_repo("alpha", "file:///elsewhere", t(1)).await);

    let mut all = s.repos().await.unwrap();
    all.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(all, vec![a.clone(), b]);
    assert_eq!(s.repo_by_name("alpha").await.unwrap(), Some(a));
    assert_eq!(s.repo_by_name("gamma").await.unwrap(), None);
}

/// Runs: create, read back exactly, list newest first (by repository and
/// limited), active runs; unknown repository or run is NotFound. A run
/// created terminal (an invalid workflow) is not active.
pub async fn runs_create_read_list<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let b = add_repo(&s, "beta").await;
    let r1 = s.create_run(new_run(&a, t(1))).await.unwrap();
    let mut invalid = new_run(&b, t(2));
    invalid.status = JobStatus::Failure;
    invalid.error = Some("ci.yml:3:5: error: unknown key `jobz`".into());
    invalid.graph = None;
    let r2 = s.create_run(invalid).await.unwrap();
    let r3 = s.create_run(new_run(&a, t(3))).await.unwrap();

    let expected = new_run(&a, t(1));
    assert_eq!(r1.repo, a.id);
    assert_eq!(r1.repo_name, "alpha");
    assert_eq!(r1.repo_url, a.url);
    assert_eq!(r1.workflow_file, expected.workflow_file);
    assert_eq!(r1.workflow_name, expected.workflow_name);
    assert_eq!(r1.commit, expected.commit);
    assert_eq!(r1.git_ref, expected.git_ref);
    assert_eq!(r1.event, expected.event);
    assert_eq!(r1.workflow, None);
    assert_eq!(r1.contexts, expected.contexts);
    assert_eq!(r1.status, JobStatus::Queued);
    assert_eq!(r1.error, None);
    assert_eq!(r1.graph, expected.graph);
    assert_eq!(r1.created_at, t(1));
    assert_eq!(r1.started_at, None);
    assert_eq!(r1.finished_at, None);
    assert_eq!(r2.status, JobStatus::Failure);
    assert_eq!(
        r2.error.as_deref(),
        Some("ci.yml:3:5: error: unknown key `jobz`")
    );
    assert_eq!(r2.graph, None);

    assert_eq!(s.run(r1.id).await.unwrap(), r1);
    assert_eq!(s.run(r2.id).await.unwrap(), r2);
    let ids = |runs: Vec<RunRecord>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.runs(None, 10).await.unwrap()),
        vec![r3.id, r2.id, r1.id]
    );
    assert_eq!(ids(s.runs(None, 2).await.unwrap()), vec![r3.id, r2.id]);
    assert_eq!(
        ids(s.runs(Some(a.id), 10).await.unwrap()),
        vec![r3.id, r1.id]
    );
    assert_eq!(ids(s.runs(Some(b.id), 10).await.unwrap()), vec![r2.id]);
    let mut active = s.active_runs().await.unwrap();
    active.sort();
    assert_eq!(active, vec![r1.id, r3.id]);

    assert_not_found(s.run(RunId(r3.id.0 + 1000)).await);
    let mut orphan = new_run(&a, t(4));
    orphan.repo = kiln_model::RepoId(a.id.0 + b.id.0 + 1000);
    assert_not_found(s.create_run(orphan).await);
    assert_eq!(s.runs(None, 10).await.unwrap().len(), 3);
}

/// Every timestamp comes back exactly, to the microsecond.
pub async fn timestamps_keep_microseconds<S: Store + 'static>(s: S) {
    let at = Timestamp::from_microsecond(1_712_345_678_901_234).unwrap();
    let repo = s.add_repo("micro", "file:///micro", at).await.unwrap();
    assert_eq!(repo.created_at, at);
    assert_eq!(
        s.repo_by_name("micro").await.unwrap().unwrap().created_at,
        at
    );
    let agent = s.register_agent("a", &[], 1, at).await.unwrap();
    assert_eq!(s.agent(agent.id).await.unwrap().last_seen, at);
}

/// `apply` with the current version succeeds and returns the next one; with
/// an old version it is a Conflict and nothing changes.
pub async fn apply_checks_the_version<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
    let v1 = run.version;
    let v2 = s
        .apply(
            run.id,
            Transition {
                expected_version: v1,
                graph: "g2".into(),
                status: Some(JobStatus::Running),
                started_at: Some(t(2)),
                now: t(2),
                ..Transition::default()
            },
        )
        .await
        .unwrap();
    assert!(v2 > v1, "the version must move on: {v1} -> {v2}");
    let after = s.run(run.id).await.unwrap();
    assert_eq!(after.version, v2);
    assert_eq!(after.graph.as_deref(), Some("g2"));
    assert_eq!(after.status, JobStatus::Running);
    assert_eq!(after.started_at, Some(t(2)));
    assert_eq!(after.finished_at, None);

    // A second writer still holding v1 loses, and changes nothing.
    assert_conflict(
        s.apply(
            run.id,
            Transition {
                expected_version: v1,
                graph: "lost".into(),
                status: Some(JobStatus::Failure),
                finished_at: Some(t(3)),
                new_instances: vec![new_instance(0, 0, JobStatus::Queued)],
                now: t(3),
                ..Transition::default()
            },
        )
        .await,
    );
    assert_eq!(s.run(run.id).await.unwrap(), after);
    assert!(s.instances(run.id).await.unwrap().is_empty());
    assert!(s.candidates(10).await.unwrap().is_empty());

    // Fields left `None` are kept.
    let v3 = s
        .apply(
            run.id,
            Transition {
                expected_version: v2,
                graph: "g3".into(),
                status: Some(JobStatus::Success),
                finished_at: Some(t(4)),
                now: t(4),
                ..Transition::default()
            },
        )
        .await
        .unwrap();
    let done = s.run(run.id).await.unwrap();
    assert_eq!(done.version, v3);
    assert_eq!(done.started_at, Some(t(2)));
    assert_eq!(done.finished_at, Some(t(4)));
    assert_eq!(done.status, JobStatus::Success);
    assert!(s.active_runs().await.unwrap().is_empty());

    assert_not_found(
        s.apply(
            RunId(run.id.0 + 1000),
            Transition {
                expected_version: v3,
                ..Transition::default()
            },
        )
        .await,
    );
}

/// A transition that fails part-way (an unknown instance to cancel) leaves
/// no trace: no version bump, no new instances.
pub async fn apply_is_all_or_nothing<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (run, instances) = run_with_queued(&s, &repo, 1).await;
    let result = s
        .apply(
            run.id,
            Transition {
                expected_version: run.version,
                graph: "half".into(),
                new_instances: vec![new_instance(1, 0, JobStatus::Queued)],
                cancel: vec![InstanceId(instances[0].id.0 + 1000)],
                now: t(5),
                ..Transition::default()
            },
        )
        .await;
    assert!(
        result.is_err(),
        "cancelling an unknown job must fail, got {result:?}"
    );
    assert_eq!(s.run(run.id).await.unwrap(), run);
    assert_eq!(s.instances(run.id).await.unwrap(), instances);
}

/// New instances: queued ones enter the queue; terminal ones are stored
/// terminal, finished at `now`, already applied to the graph, and never
/// queued. `instances` orders by (node, index). Pinned: `graph_applied` is
/// true for queued instances too (it is false only while a terminal status
/// waits to be fed back).
pub async fn transition_creates_instances<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
    let news = vec![
        new_instance(1, 1, JobStatus::Queued),
        new_instance(2, 0, JobStatus::Skipped),
        new_instance(1, 0, JobStatus::Queued),
        new_instance(0, 0, JobStatus::Cancelled),
    ];
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "g".into(),
            new_instances: news.clone(),
            now: t(3),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    let got = s.instances(run.id).await.unwrap();
    let keys: Vec<(u32, u32)> = got.iter().map(|i| (i.node, i.index)).collect();
    assert_eq!(keys, vec![(0, 0), (1, 0), (1, 1), (2, 0)]);
    for i in &got {
        let new = news
            .iter()
            .find(|n| (n.node, n.index) == (i.node, i.index))
            .unwrap();
        assert_eq!(i.run, run.id);
        assert_eq!(i.repo, repo.id);
        assert_eq!(i.job_key, new.job_key);
        assert_eq!(i.name, new.name);
        assert_eq!(i.matrix, new.matrix);
        assert_eq!(i.runs_on, new.runs_on);
        assert_eq!(i.weight, new.weight);
        assert_eq!(i.status, new.status);
        assert_eq!(i.reason, new.reason);
        assert_eq!(i.contexts, new.contexts);
        assert_eq!(i.max_attempts, new.max_attempts);
        assert_eq!(i.attempt, 0);
        assert_eq!(i.agent, None);
        assert_eq!(i.agent_name, None);
        assert_eq!(i.lease_expires_at, None);
        assert!(!i.cancel_requested);
        assert_eq!(i.result, None);
        assert!(i.graph_applied, "{} must count as applied", i.name);
        assert_eq!(i.queued_at, t(3));
        assert_eq!(i.started_at, None);
        match i.status {
            JobStatus::Queued => assert_eq!(i.finished_at, None),
            JobStatus::Cancelled | JobStatus::Skipped => assert_eq!(i.finished_at, Some(t(3))),
            JobStatus::Running | JobStatus::Success | JobStatus::Failure => {
                panic!("unexpected status {}", i.status)
            }
        }
        assert_eq!(&s.instance(i.id).await.unwrap(), i);
    }
    let queued: Vec<InstanceId> = s
        .candidates(10)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    let expected: Vec<InstanceId> = [(1, 1), (1, 0)]
        .iter()
        .map(|k| got.iter().find(|i| (i.node, i.index) == *k).unwrap().id)
        .collect();
    assert_eq!(queued, expected, "queued in creation order");
    assert!(s.unapplied().await.unwrap().is_empty());
    assert_not_found(s.instance(InstanceId(got[3].id.0 + 1000)).await);
    assert_not_found(s.instances(RunId(run.id.0 + 1000)).await);
}

/// Candidates: queued instances oldest first, across runs, at most
/// `limit`, without running or cancelled ones; a candidate carries the
/// repository, labels and weight.
pub async fn candidates_are_fifo<S: Store + 'static>(s: S) {
    let a = add_repo(&s, "alpha").await;
    let b = add_repo(&s, "beta").await;
    let (_, first) = run_with_queued(&s, &a, 2).await;
    let (run_b, second) = run_with_queued(&s, &b, 2).await;
    let order: Vec<InstanceId> = first.iter().chain(&second).map(|i| i.id).collect();
    let all = s.candidates(10).await.unwrap();
    assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), order);
    assert_eq!(all[0].repo, a.id);
    assert_eq!(all[2].repo, b.id);
    assert_eq!(all[1].runs_on, vec!["linux".to_owned(), "x64".to_owned()]);
    assert_eq!(all[1].weight, first[1].weight);
    assert_eq!(
        s.candidates(3)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        order[..3]
    );

    let agent = add_agent(&s, "agent-1").await;
    s.claim(order[0], agent.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.apply(
        run_b.id,
        Transition {
            expected_version: run_b.version,
            graph: "g".into(),
            cancel: vec![order[2]],
            now: t(11),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.candidates(10)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        vec![order[1], order[3]]
    );
}

/// A claim starts the first attempt: Running, the agent and its name, the
/// lease, `started_at`; an attempt row is recorded. Claiming a job that is
/// not queued gets `None`; an unknown job or agent is NotFound.
pub async fn claim_records_the_attempt<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (run, instances) = run_with_queued(&s, &repo, 1).await;
    let agent = add_agent(&s, "agent-1").await;
    let id = instances[0].id;
    assert_not_found(s.claim(id, AgentId(agent.id.0 + 1000), t(10), t(40)).await);
    assert_eq!(
        s.instance(id).await.unwrap(),
        instances[0],
        "a failed claim changes nothing"
    );

    let got = s.claim(id, agent.id, t(10), t(40)).await.unwrap().unwrap();
    assert_eq!(got.status, JobStatus::Running);
    assert_eq!(got.attempt, 1);
    assert_eq!(got.agent, Some(agent.id));
    assert_eq!(got.agent_name.as_deref(), Some("agent-1"));
    assert_eq!(got.lease_expires_at, Some(t(40)));
    assert_eq!(got.started_at, Some(t(10)));
    assert_eq!(got.finished_at, None);
    assert_eq!(got.queued_at, instances[0].queued_at);
    assert_eq!(s.instance(id).await.unwrap(), got);
    assert_eq!(
        s.attempts(run.id).await.unwrap(),
        vec![AttemptRecord {
            instance: id,
            attempt: 1,
            agent_name: "agent-1".into(),
            status: JobStatus::Running,
            reason: None,
            started_at: t(10),
            finished_at: None,
            result: None,
        }]
    );
    assert!(s.candidates(10).await.unwrap().is_empty());

    let other = add_agent(&s, "agent-2").await;
    assert_eq!(s.claim(id, other.id, t(11), t(41)).await.unwrap(), None);
    assert_eq!(s.instance(id).await.unwrap(), got);
    assert_not_found(
        s.claim(InstanceId(id.0 + 1000), agent.id, t(11), t(41))
            .await,
    );
}

/// Sixteen tasks claim the same job at once: exactly one wins, and exactly
/// one attempt is recorded.
pub async fn claim_is_exclusive<S: Store + 'static>(s: S) {
    let s = Arc::new(s);
    let repo = add_repo(&*s, "alpha").await;
    let (run, instances) = run_with_queued(&*s, &repo, 1).await;
    let id = instances[0].id;
    let mut agents = Vec::new();
    for n in 0..16 {
        agents.push(add_agent(&*s, &format!("agent-{n:02}")).await.id);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(agents.len()));
    let tasks: Vec<_> = agents
        .iter()
        .map(|&agent| {
            let s = Arc::clone(&s);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                s.claim(id, agent, t(10), t(40)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(won) = task.await.expect("task").expect("claim must not fail") {
            winners.push(won);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    assert_eq!(winners[0].attempt, 1);
    let attempts = s.attempts(run.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(Some(attempts[0].agent_name.clone()), winners[0].agent_name);
    assert_eq!(s.instance(id).await.unwrap(), winners[0]);
}

/// After a lost lease and a new claim, calls carrying the old attempt are
/// Stale and change nothing; the new attempt works.
pub async fn fencing_rejects_old_attempts<S: Store + 'static>(s: S) {
    let (run, first, agent) = claimed(&s).await;
    let id = first.id;
    assert_eq!(s.expire_leases(t(41)).await.unwrap().len(), 1);
    let second = s.claim(id, agent.id, t(50), t(80)).await.unwrap().unwrap();
    assert_eq!(second.attempt, 2);

    assert_stale(s.heartbeat(id, 1, t(51), t(90)).await);
    assert_stale(
        s.complete(id, 1, job_result(JobStatus::Success, 1), t(52))
            .await,
    );
    assert_stale(s.append_logs(id, 1, 0, &[line(id, 1, 1, "late")]).await);
    assert_stale(s.heartbeat(id, 3, t(51), t(90)).await);
    assert_eq!(s.instance(id).await.unwrap(), second);
    assert!(s.logs(run.id, None, 0).await.unwrap().entries.is_empty());
    assert_eq!(s.attempts(run.id).await.unwrap().len(), 2);

    assert!(!s.heartbeat(id, 2, t(53), t(90)).await.unwrap());
    assert_eq!(s.instance(id).await.unwrap().lease_expires_at, Some(t(90)));
    assert_eq!(
        s.complete(id, 2, job_result(JobStatus::Success, 2), t(54))
            .await
            .unwrap(),
        run.id
    );
    // Once complete, the attempt is no longer running.
    assert_stale(s.heartbeat(id, 2, t(55), t(95)).await);
    assert_stale(
        s.complete(id, 2, job_result(JobStatus::Failure, 2), t(55))
            .await,
    );
    assert_eq!(s.instance(id).await.unwrap().status, JobStatus::Success);
    assert_not_found(s.heartbeat(InstanceId(id.0 + 1000), 1, t(55), t(95)).await);
}

/// Cancelling a queued job ends it at once (Cancelled, reason `cancelled`,
/// waiting to be fed back); a running one gets `cancel_requested`, which
/// its heartbeat reports; a finished one is left alone.
pub async fn cancel_queued_and_running<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (run, instances) = run_with_queued(&s, &repo, 3).await;
    let agent = add_agent(&s, "agent-1").await;
    let (queued, running, done) = (instances[0].id, instances[1].id, instances[2].id);
    s.claim(running, agent.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.claim(done, agent.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.complete(done, 1, job_result(JobStatus::Success, 1), t(12))
        .await
        .unwrap();
    let run = s.run(run.id).await.unwrap();
    let done_before = s.instance(done).await.unwrap();

    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "cancelling".into(),
            cancel: vec![queued, running, done],
            now: t(13),
            ..Transition::default()
        },
    )
    .await
    .unwrap();

    let q = s.instance(queued).await.unwrap();
    assert_eq!(q.status, JobStatus::Cancelled);
    assert_eq!(q.reason.as_deref(), Some("cancelled"));
    assert!(!q.graph_applied);
    assert_eq!(q.finished_at, Some(t(13)));
    assert_eq!(s.claim(queued, agent.id, t(14), t(44)).await.unwrap(), None);

    let r = s.instance(running).await.unwrap();
    assert_eq!(r.status, JobStatus::Running);
    assert!(r.cancel_requested);
    assert!(s.heartbeat(running, 1, t(14), t(44)).await.unwrap());

    assert_eq!(s.instance(done).await.unwrap(), done_before);
    let unapplied = s.unapplied().await.unwrap();
    assert!(unapplied.contains(&(run.id, queued)));
    assert!(!unapplied.contains(&(run.id, running)));
    assert!(s.candidates(10).await.unwrap().is_empty());

    // The agent stops the job and reports it; the result decides.
    s.complete(running, 1, job_result(JobStatus::Cancelled, 1), t(15))
        .await
        .unwrap();
    assert_eq!(
        s.instance(running).await.unwrap().status,
        JobStatus::Cancelled
    );
}

/// `complete` ends the attempt with the result's status and reason, stores
/// the result, and leaves `graph_applied = false`: `unapplied` lists the job
/// until a transition marks it applied.
pub async fn complete_until_applied<S: Store + 'static>(s: S) {
    let (run, job, _) = claimed(&s).await;
    let result = job_result(JobStatus::Failure, 1);
    assert!(
        s.complete(job.id, 1, job_result(JobStatus::Running, 1), t(20))
            .await
            .is_err(),
        "a non-final result is refused"
    );
    assert_eq!(
        s.complete(job.id, 1, result.clone(), t(20)).await.unwrap(),
        run.id
    );
    let done = s.instance(job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Failure);
    assert_eq!(done.reason, result.reason);
    assert_eq!(done.result.as_ref(), Some(&result));
    assert_eq!(done.finished_at, Some(t(20)));
    assert_eq!(done.started_at, Some(t(10)));
    assert_eq!(done.attempt, 1);
    assert_eq!(done.agent_name.as_deref(), Some("agent-1"));
    assert!(!done.graph_applied);
    let attempts = s.attempts(run.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, JobStatus::Failure);
    assert_eq!(attempts[0].reason, result.reason);
    assert_eq!(attempts[0].finished_at, Some(t(20)));
    assert_eq!(attempts[0].result.as_ref(), Some(&result));
    assert_eq!(s.unapplied().await.unwrap(), vec![(run.id, job.id)]);
    assert!(s.running_by_agent().await.unwrap().is_empty());

    let run = s.run(run.id).await.unwrap();
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "fed".into(),
            applied: vec![job.id],
            now: t(21),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    assert!(s.instance(job.id).await.unwrap().graph_applied);
    assert!(s.unapplied().await.unwrap().is_empty());
}

/// Lost leases: nothing happens before the lease ends; then the attempt
/// ends `agent-lost` and the job is requeued, at its old place in the
/// queue (pinned: ahead of jobs queued after it); once `max_attempts` are
/// used up it fails for good with `agent-lost: gave up after N attempts`.
pub async fn expire_requeues_then_gives_up<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let run = s.create_run(new_run(&repo, t(1))).await.unwrap();
    let mut flaky = new_instance(0, 0, JobStatus::Queued);
    flaky.max_attempts = 2;
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "g".into(),
            new_instances: vec![flaky, new_instance(1, 0, JobStatus::Queued)],
            now: t(2),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    let instances = s.instances(run.id).await.unwrap();
    let (id, later) = (instances[0].id, instances[1].id);
    let agent = add_agent(&s, "agent-1").await;

    s.claim(id, agent.id, t(10), t(40)).await.unwrap().unwrap();
    assert!(
        s.expire_leases(t(40)).await.unwrap().is_empty(),
        "the lease ends after t(40)"
    );
    assert_eq!(
        s.expire_leases(t(41)).await.unwrap(),
        vec![Expired {
            instance: id,
            run: run.id,
            attempt: 1,
            requeued: true
        }]
    );
    let requeued = s.instance(id).await.unwrap();
    assert_eq!(requeued.status, JobStatus::Queued);
    assert_eq!(requeued.attempt, 1);
    assert_eq!(requeued.agent, None);
    assert_eq!(requeued.lease_expires_at, None);
    assert_eq!(requeued.finished_at, None);
    assert!(requeued.graph_applied);
    assert_eq!(
        s.candidates(10)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        vec![id, later]
    );
    assert!(s.unapplied().await.unwrap().is_empty());

    let again = s.claim(id, agent.id, t(50), t(80)).await.unwrap().unwrap();
    assert_eq!(again.attempt, 2);
    assert_eq!(
        again.started_at,
        Some(t(10)),
        "started_at is the first claim's"
    );
    assert_eq!(
        s.expire_leases(t(81)).await.unwrap(),
        vec![Expired {
            instance: id,
            run: run.id,
            attempt: 2,
            requeued: false
        }]
    );
    let failed = s.instance(id).await.unwrap();
    assert_eq!(failed.status, JobStatus::Failure);
    assert_eq!(
        failed.reason.as_deref(),
        Some("agent-lost: gave up after 2 attempts")
    );
    assert_eq!(failed.finished_at, Some(t(81)));
    assert_eq!(failed.lease_expires_at, None);
    assert!(!failed.graph_applied);
    assert_eq!(s.unapplied().await.unwrap(), vec![(run.id, id)]);
    assert!(s.expire_leases(t(200)).await.unwrap().is_empty());

    let attempts = s.attempts(run.id).await.unwrap();
    assert_eq!(attempts.len(), 2);
    for (n, a) in attempts.iter().enumerate() {
        assert_eq!(a.instance, id);
        assert_eq!(a.attempt as usize, n + 1);
        assert_eq!(a.status, JobStatus::Failure);
        assert_eq!(a.reason.as_deref(), Some("agent-lost"));
        assert_eq!(a.agent_name, "agent-1");
    }
    assert_eq!(attempts[0].finished_at, Some(t(41)));
    assert_eq!(attempts[1].finished_at, Some(t(81)));
}

/// A job whose cancellation was requested is not requeued when its lease
/// is lost: it ends Cancelled, waiting to be fed back.
pub async fn expire_cancelled_job<S: Store + 'static>(s: S) {
    let (run, job, _) = claimed(&s).await;
    s.apply(
        run.id,
        Transition {
            expected_version: run.version,
            graph: "g".into(),
            cancel: vec![job.id],
            now: t(11),
            ..Transition::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.expire_leases(t(41)).await.unwrap(),
        vec![Expired {
            instance: job.id,
            run: run.id,
            attempt: 1,
            requeued: false
        }]
    );
    let gone = s.instance(job.id).await.unwrap();
    assert_eq!(gone.status, JobStatus::Cancelled);
    assert!(!gone.graph_applied);
    assert_eq!(gone.finished_at, Some(t(41)));
    assert!(s.candidates(10).await.unwrap().is_empty());
    let attempts = s.attempts(run.id).await.unwrap();
    assert_eq!(attempts[0].reason.as_deref(), Some("agent-lost"));
    assert_eq!(s.unapplied().await.unwrap(), vec![(run.id, job.id)]);
}

/// `extend_all_leases(until)` gives every running job a lease until at
/// least `until` (pinned: a longer lease is kept); queued jobs get none.
pub async fn extend_all_leases<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (_, instances) = run_with_queued(&s, &repo, 3).await;
    let agent = add_agent(&s, "agent-1").await;
    s.claim(instances[0].id, agent.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.claim(instances[1].id, agent.id, t(10), t(500))
        .await
        .unwrap()
        .unwrap();
    s.extend_all_leases(t(300)).await.unwrap();
    assert_eq!(
        s.instance(instances[0].id).await.unwrap().lease_expires_at,
        Some(t(300))
    );
    assert_eq!(
        s.instance(instances[1].id).await.unwrap().lease_expires_at,
        Some(t(500))
    );
    assert_eq!(
        s.instance(instances[2].id).await.unwrap().lease_expires_at,
        None
    );
    assert!(s.expire_leases(t(299)).await.unwrap().is_empty());
    assert_eq!(s.expire_leases(t(301)).await.unwrap().len(), 1);
}

/// `running_by_agent` lists each running job with its agent and weight.
pub async fn running_by_agent<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (_, instances) = run_with_queued(&s, &repo, 3).await;
    let a = add_agent(&s, "agent-a").await;
    let b = add_agent(&s, "agent-b").await;
    s.claim(instances[0].id, a.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.claim(instances[1].id, b.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.claim(instances[2].id, a.id, t(10), t(40))
        .await
        .unwrap()
        .unwrap();
    s.complete(instances[2].id, 1, job_result(JobStatus::Success, 1), t(11))
        .await
        .unwrap();
    let mut got = s.running_by_agent().await.unwrap();
    got.sort();
    let mut expected = vec![
        (a.id, instances[0].id, instances[0].weight),
        (b.id, instances[1].id, instances[1].weight),
    ];
    expected.sort();
    assert_eq!(got, expected);
}

/// A chunk sent twice is stored once (the first copy wins), also after the
/// job completed (a retried upload may arrive late).
pub async fn logs_are_idempotent<S: Store + 'static>(s: S) {
    let (run, job, _) = claimed(&s).await;
    let id = job.id;
    s.append_logs(id, 1, 0, &[line(id, 1, 1, "one"), line(id, 1, 1, "two")])
        .await
        .unwrap();
    s.append_logs(id, 1, 0, &[line(id, 1, 1, "one"), line(id, 1, 1, "two")])
        .await
        .unwrap();
    s.append_logs(id, 1, 0, &[line(id, 1, 1, "different")])
        .await
        .unwrap();
    s.complete(id, 1, job_result(JobStatus::Success, 1), t(20))
        .await
        .unwrap();
    s.append_logs(id, 1, 1, &[line(id, 1, 2, "three")])
        .await
        .unwrap();
    s.append_logs(id, 1, 1, &[line(id, 1, 2, "three")])
        .await
        .unwrap();
    let page = s.logs(run.id, None, 0).await.unwrap();
    assert_eq!(texts(&page), vec!["one", "two", "three"]);
    assert_not_found(s.append_logs(InstanceId(id.0 + 1000), 1, 0, &[]).await);
}

/// Paging: `cursor` moves past every chunk returned; asking again with it
/// gives only chunks stored since (or nothing, with the same cursor).
/// Lines come in (instance, attempt, seq) order whatever the arrival
/// order; `instance` filters.
pub async fn logs_page_by_cursor<S: Store + 'static>(s: S) {
    let repo = add_repo(&s, "alpha").await;
    let (run, instances) = run_with_queued(&s, &repo, 2).await;
    let agent = add_agent(&s, "agent-1").await;
    let (a, b) = (instances[0].id, instances[1].id);
    s.claim(a, agent.id, t(10), t(40)).await.unwrap().unwrap();
    s.claim(b, agent.id, t(10), t(40)).await.unwrap().unwrap();

    let empty = s.logs(run.id, None, 0).await.unwrap();
    assert!(empty.entries.is_empty());
    assert_eq!(empty.cursor, 0);

    s.append_logs(b, 1, 0, &[line(b, 1, 1, "b0")])
        .await
        .unwrap();
    s.append_logs(a, 1, 1, &[line(a, 1, 1, "a1")])
        .await
        .unwrap();
    s.append_logs(a, 1, 0, &[line(a, 1, 1, "a0-x"), line(a, 1, 1, "a0-y")])
        .await
        .unwrap();
    let first = s.logs(run.id, None, 0).await.unwrap();
    assert_eq!(texts(&first), vec!["a0-x", "a0-y", "a1", "b0"]);
    assert!(first.cursor > 0);

    let nothing = s.logs(run.id, None, first.cursor).await.unwrap();
    assert!(nothing.entries.is_empty());
    assert_eq!(nothing.cursor, first.cursor);

    s.append_logs(a, 1, 2, &[line(a, 1, 2, "a2")])
        .await
        .unwrap();
    s.append_logs(b, 1, 1, &[line(b, 1, 2, "b1")])
        .await
        .unwrap();
    let second = s.logs(run.id, None, first.cursor).await.unwrap();
    assert_eq!(texts(&second), vec!["a2", "b1"]);
    assert!(second.cursor > first.cursor);

    let only_b = s.logs(run.id, Some(b), 0).await.unwrap();
    assert_eq!(texts(&only_b), vec!["b0", "b1"]);
    let b_since = s.logs(run.id, Some(b), first.cursor).await.unwrap();
    assert_eq!(texts(&b_since), vec!["b1"]);
    assert_eq!(
        texts(&s.logs(run.id, None, 0).await.unwrap()),
        vec!["a0-x", "a0-y", "a1", "a2", "b0", "b1"]
    );

    // Another run's lines never show.
    let (other, other_instances) = run_with_queued(&s, &repo, 1).await;
    let o = other_instances[0].id;
    s.claim(o, agent.id, t(10), t(40)).await.unwrap().unwrap();
    s.append_logs(o, 1, 0, &[line(o, 1, 1, "other")])
        .await
        .unwrap();
    assert_eq!(
        texts(&s.logs(other.id, None, 0).await.unwrap()),
        vec!["other"]
    );
    assert_eq!(
        s.logs(run.id, None, second.cursor)
            .await
            .unwrap()
            .entries
            .len(),
        0
    );
    assert_not_found(s.logs(RunId(other.id.0 + 1000), None, 0).await);
}

/// Lines come back exactly: every field, unicode, control characters,
/// empty and very long lines, empty chunks.
pub async fn logs_round_trip<S: Store + 'static>(s: S) {
    let (run, job, _) = claimed(&s).await;
    let id = job.id;
    let long = "kiln ✓ ".repeat(40_000);
    let mut lines = vec![
        line(id, 1, 0, "system: job started"),
        line(id, 1, 1, "héllo wörld — 日本語 — 🔥🚀"),
        line(id, 1, 1, ""),
        line(id, 1, 1, "tab\tcarriage\rbell\u{7}nul\u{0}end"),
        line(id, 1, 2, &long),
    ];
    lines[0].stream = LogStream::System;
    lines[3].stream = LogStream::Stderr;
    lines[4].at = Timestamp::from_microsecond(1_700_000_000_999_999).unwrap();
    s.append_logs(id, 1, 0, &lines).await.unwrap();
    s.append_logs(id, 1, 1, &[]).await.unwrap();
    let page = s.logs(run.id, Some(id), 0).await.unwrap();
    assert_eq!(page.entries, lines);
}

/// Logs are fenced by the attempt number only: the current attempt may
/// write (even after completion), an older or newer one is Stale.
pub async fn logs_fenced_by_attempt<S: Store + 'static>(s: S) {
    let (run, job, agent) = claimed(&s).await;
    let id = job.id;
    assert_stale(s.append_logs(id, 2, 0, &[line(id, 2, 1, "future")]).await);
    s.append_logs(id, 1, 0, &[line(id, 1, 1, "first try")])
        .await
        .unwrap();
    s.expire_leases(t(41)).await.unwrap();
    s.claim(id, agent.id, t(50), t(80)).await.unwrap().unwrap();
    assert_stale(s.append_logs(id, 1, 1, &[line(id, 1, 1, "late")]).await);
    s.append_logs(id, 2, 0, &[line(id, 2, 1, "second try")])
        .await
        .unwrap();
    assert_eq!(
        texts(&s.logs(run.id, None, 0).await.unwrap()),
        vec!["first try", "second try"]
    );
}

/// Agents register by name: again with the same name keeps the id and
/// updates labels, capacity and `last_seen`; `touch_agent` moves
/// `last_seen`; an unknown id is NotFound.
pub async fn agents_upsert<S: Store + 'static>(s: S) {
    let a = s
        .register_agent("builder", &["linux".into()], 2, t(0))
        .await
        .unwrap();
    assert_eq!(a.name, "builder");
    assert_eq!(a.labels, vec!["linux".to_owned()]);
    assert_eq!(a.capacity, 2);
    assert_eq!(a.last_seen, t(0));
    let b = s.register_agent("other", &[], 1, t(1)).await.unwrap();
    assert_ne!(a.id, b.id);

    let again = s
        .register_agent("builder", &["linux".into(), "gpu".into()], 8, t(5))
        .await
        .unwrap();
    assert_eq!(again.id, a.id);
    assert_eq!(again.labels, vec!["linux".to_owned(), "gpu".to_owned()]);
    assert_eq!(again.capacity, 8);
    assert_eq!(again.last_seen, t(5));
    assert_eq!(s.agent(a.id).await.unwrap(), again);

    s.touch_agent(a.id, t(9)).await.unwrap();
    assert_eq!(s.agent(a.id).await.unwrap().last_seen, t(9));
    let mut all = s.agents().await.unwrap();
    all.sort_by_key(|r| r.id);
    assert_eq!(all.len(), 2);
    assert_eq!(
        all.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        vec!["builder", "other"]
    );

    let unknown = AgentId(a.id.0 + b.id.0 + 1000);
    assert_not_found(s.agent(unknown).await);
    assert_not_found(s.touch_agent(unknown, t(10)).await);
}

/// Tokens are stored and found by hash; a hash stored twice is a Conflict.
pub async fn tokens<S: Store + 'static>(s: S) {
    assert_eq!(s.token_count().await.unwrap(), 0);
    let h1 = "a".repeat(64);
    let h2 = "b".repeat(64);
    let admin = s
        .add_token(&h1, Role::Admin, Some("bootstrap"), t(0))
        .await
        .unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.name.as_deref(), Some("bootstrap"));
    assert_eq!(admin.created_at, t(0));
    let agent = s.add_token(&h2, Role::Agent, None, t(1)).await.unwrap();
    assert_ne!(admin.id, agent.id);
    assert_conflict(s.add_token(&h1, Role::Viewer, None, t(2)).await);
    assert_eq!(s.token_count().await.unwrap(), 2);
    assert_eq!(s.token_by_hash(&h1).await.unwrap(), Some(admin));
    assert_eq!(s.token_by_hash(&h2).await.unwrap(), Some(agent));
    assert_eq!(s.token_by_hash(&"c".repeat(64)).await.unwrap(), None);
}
