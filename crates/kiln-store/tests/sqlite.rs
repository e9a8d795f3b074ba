//! The SQLite adapter against the conformance suite, on a database file
//! (the production setup) and in memory; plus what only a file can show:
//! everything survives closing and reopening.

use jiff::Timestamp;
use kiln_model::{JobStatus, Value};
use kiln_proto::agent::JobContexts;
use kiln_proto::api::{LogEntry, LogStream, Role};
use kiln_store::types::{NewInstance, NewRun, RunContexts, Transition};
use kiln_store::{
    AgentStore, AuthStore, LogStore, QueueStore, RepoStore, RunStore, SqliteStore, StoreError,
};
use tempfile::TempDir;

async fn file_store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("kiln.db"))
        .await
        .expect("open");
    (store, dir)
}

mod file {
    kiln_store::conformance_tests!(super::file_store());
}

mod memory {
    kiln_store::conformance_tests!(async {
        (
            kiln_store::SqliteStore::open_in_memory()
                .await
                .expect("open"),
            (),
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_never_claim_one_job_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kiln.db");
    let a = SqliteStore::open(&path).await.expect("open a");
    let b = SqliteStore::open(&path).await.expect("open b");
    kiln_store::conformance::two_handles_never_claim_one_job_twice(a, b).await;
}

#[tokio::test]
async fn run_all_in_one_go() {
    kiln_store::conformance::run_all(file_store).await;
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn workflow() -> kiln_model::workflow::Workflow {
    let src = "name: CI\non: push\njobs:\n  build:\n    runs-on: linux\n    steps:\n      - run: echo hi\n";
    let loaded = kiln_pipeline::load::load(".kiln/ci.yml", src);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    loaded.workflow.expect("workflow")
}

#[tokio::test]
async fn everything_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    let store = SqliteStore::open(&path).await.unwrap();

    let repo = store
        .add_repo("alpha", "file:///alpha", t(0))
        .await
        .unwrap();
    let run = store
        .create_run(NewRun {
            hold: None,
            gate: None,
            repo: repo.id,
            workflow_file: ".kiln/ci.yml".into(),
            workflow_name: "CI".into(),
            commit: "abc".into(),
            git_ref: None,
            event: "push".into(),
            workflow: Some(workflow()),
            contexts: RunContexts {
                github: Value::object([("sha", Value::str("abc"))]),
                ..RunContexts::default()
            },
            status: JobStatus::Queued,
            error: None,
            graph: Some("graph-1".into()),
            now: t(1),
        })
        .await
        .unwrap();
    let version = store
        .apply(
            run.id,
            Transition {
                expected_version: run.version,
                graph: "graph-2".into(),
                status: Some(JobStatus::Running),
                started_at: Some(t(2)),
                new_instances: vec![
                    NewInstance {
                        priority: 0,
                        gate: None,
                        node: 0,
                        index: 0,
                        job_key: "build".into(),
                        name: "build".into(),
                        matrix: None,
                        runs_on: vec!["linux".into()],
                        weight: 1,
                        status: JobStatus::Queued,
                        reason: None,
                        contexts: JobContexts::default(),
                        retry: kiln_model::RetryPolicy::infrastructure(2),
                    },
                    NewInstance {
                        priority: 0,
                        gate: None,
                        node: 1,
                        index: 0,
                        job_key: "deploy".into(),
                        name: "deploy".into(),
                        matrix: None,
                        runs_on: vec!["linux".into()],
                        weight: 1,
                        status: JobStatus::Queued,
                        reason: None,
                        contexts: JobContexts::default(),
                        retry: kiln_model::RetryPolicy::infrastructure(2),
                    },
                ],
                now: t(2),
                ..Transition::default()
            },
        )
        .await
        .unwrap();
    let agent = store
        .register_agent("builder", &["linux".into()], 2, "session", t(3))
        .await
        .unwrap();
    let build = store.instances(run.id).await.unwrap()[0].id;
    store
        .claim(build, agent.id, t(4), t(34))
        .await
        .unwrap()
        .unwrap();
    let lines: Vec<LogEntry> = (0..100)
        .map(|n| LogEntry {
            job: build,
            attempt: 1,
            step: 1,
            stream: LogStream::Stdout,
            at: t(5),
            text: format!("line {n} ✓"),
        })
        .collect();
    store
        .append_logs(build, agent.id, 1, 0, &lines)
        .await
        .unwrap();
    store
        .add_token(&"f".repeat(64), Role::Admin, Some("root"), t(6))
        .await
        .unwrap();

    let before = (
        store.repos().await.unwrap(),
        store.run(run.id).await.unwrap(),
        store.instances(run.id).await.unwrap(),
        store.attempts(run.id).await.unwrap(),
        store.agents().await.unwrap(),
        store.logs(run.id, None, 0).await.unwrap(),
        store.candidates(10).await.unwrap(),
    );
    assert_eq!(before.1.version, version);
    assert_eq!(before.1.workflow, Some(workflow()));
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&path).await.unwrap();
    let after = (
        store.repos().await.unwrap(),
        store.run(run.id).await.unwrap(),
        store.instances(run.id).await.unwrap(),
        store.attempts(run.id).await.unwrap(),
        store.agents().await.unwrap(),
        store.logs(run.id, None, 0).await.unwrap(),
        store.candidates(10).await.unwrap(),
    );
    assert_eq!(after, before);
    assert_eq!(store.token_count().await.unwrap(), 1);
    assert!(
        store
            .token_by_hash(&"f".repeat(64))
            .await
            .unwrap()
            .is_some()
    );
    // The queue and the fencing token carry on where they were.
    assert!(
        !store
            .heartbeat(build, agent.id, 1, t(7), t(37))
            .await
            .unwrap()
    );
    assert!(matches!(
        store.heartbeat(build, agent.id, 2, t(7), t(37)).await,
        Err(StoreError::Stale(_))
    ));
    // Ids are never reused after a restart.
    let run2 = store
        .create_run(NewRun {
            hold: None,
            gate: None,
            repo: repo.id,
            workflow_file: ".kiln/ci.yml".into(),
            workflow_name: "CI".into(),
            commit: "def".into(),
            git_ref: None,
            event: "push".into(),
            workflow: None,
            contexts: RunContexts::default(),
            status: JobStatus::Queued,
            error: None,
            graph: None,
            now: t(8),
        })
        .await
        .unwrap();
    assert!(run2.id > run.id);
}

#[tokio::test]
async fn database_is_in_wal_mode_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kiln.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store
        .add_repo("alpha", "file:///alpha", t(0))
        .await
        .unwrap();
    assert!(dir.path().join("kiln.db-wal").exists(), "WAL file expected");
    store.close().await;
    // Reopening an existing database migrates nothing and works.
    let again = SqliteStore::open(&path).await.unwrap();
    assert_eq!(again.repos().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_see_busy() {
    let (store, _dir) = file_store().await;
    let store = std::sync::Arc::new(store);
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                for k in 0..10 {
                    store
                        .register_agent(
                            &format!("agent-{n}-{k}"),
                            &[],
                            1,
                            &format!("s-{n}-{k}"),
                            t(k),
                        )
                        .await
                        .expect("no write may fail under contention");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.agents().await.unwrap().len(), 320);
}
