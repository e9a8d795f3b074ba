//! The outbound reporter: tells each repository's forge how its runs are
//! going (a commit status per run, and a comment on the run's pull request)
//! through the store's outbox, so that nothing is lost to a restart and a
//! forge outage never fails or slows a build.
//!
//! Flow: the engine calls [`Engine::forge_news`] where a run changes
//! (created, a job claimed, a transition that changes the run's status).
//! That only marks the run due in the outbox (one small write, only for
//! repositories with a forge) and wakes [`deliver`], the background task.
//! The deliverer reads due rows, sends the run's *current* state (so
//! news coalesces and an older state never overwrites a newer one), and
//! records the outcome: delivered, or failed with the error and the time
//! of the next try (exponential backoff, [`super::status::backoff`]).
//! `kiln show` reads the row: a failing forge is visible in the run.

use super::status::{backoff, comment_body, commit_status};
use crate::engine::Engine;
use jiff::Timestamp;
use kiln_forge::api::ApiError;
use kiln_model::{RepoId, RunId};
use kiln_store::StoreError;
use kiln_store::types::ForgeReport;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Due reports read (and delivered concurrently) per round.
const BATCH: u32 = 16;
/// Look for due reports at least this often (a backed-off retry comes due
/// without anyone waking the deliverer).
const POLL: Duration = Duration::from_millis(500);

impl Engine {
    /// The run has news for its repository's forge (if it has one). Never
    /// fails: a problem here is logged, and the run goes on.
    pub async fn forge_news(&self, run: RunId, repo: RepoId) {
        if self.forges.forge(repo).await.is_none() {
            return;
        }
        match self.store.report_requested(run, Timestamp::now()).await {
            Ok(()) => self.outbound.wake.notify_one(),
            Err(e) => tracing::warn!(run = %run, error = %e, "queueing a forge report"),
        }
    }

    /// The link to a run in statuses and comments.
    pub fn run_link(&self, run: RunId) -> Option<String> {
        (!self.outbound.public_url.is_empty()).then(|| {
            format!(
                "{}{}",
                self.outbound.public_url,
                kiln_proto::routes::run(run)
            )
        })
    }
}

/// Deliver due reports until `shutdown` (spawned by the server).
pub async fn deliver(engine: Arc<Engine>, shutdown: CancellationToken) {
    loop {
        match engine.store.reports_due(Timestamp::now(), BATCH).await {
            Ok(due) => {
                futures_util::future::join_all(due.into_iter().map(|r| deliver_one(&engine, r)))
                    .await;
            }
            Err(e) => tracing::error!(error = %e, "reading due forge reports"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = engine.outbound.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Send one run's current state; record the outcome.
async fn deliver_one(engine: &Engine, report: ForgeReport) {
    let store = &engine.store;
    let run = match store.run_head(report.run).await {
        Ok(r) => r,
        Err(StoreError::NotFound(_)) => {
            let _ = store.report_delivered(report.run, report.seq, None).await;
            return;
        }
        Err(e) => {
            tracing::warn!(run = %report.run, error = %e, "reading a run to report");
            return;
        }
    };
    let Some(forge) = engine.forges.forge(run.repo).await else {
        // The forge was removed since: nothing to send.
        if let Err(e) = store.report_delivered(run.id, report.seq, None).await {
            tracing::warn!(run = %run.id, error = %e, "closing a forge report");
        }
        return;
    };
    let jobs = match store.instances(run.id).await {
        Ok(j) => j,
        Err(e) => {
            tracing::warn!(run = %run.id, error = %e, "reading jobs to report");
            return;
        }
    };
    let link = engine.run_link(run.id);
    let mut comment_id = report.comment_id;
    let sent: Result<(), ApiError> = async {
        let status = commit_status(&run, &jobs, link.clone());
        forge
            .api
            .set_status(&forge.full_name, &run.commit, &status)
            .await?;
        if let Some(pr) = run.contexts.pull_request {
            let body = comment_body(&run, &jobs, link.as_deref());
            let edited = match comment_id {
                Some(id) => {
                    match forge
                        .api
                        .edit_comment(&forge.full_name, pr, id, &body)
                        .await
                    {
                        // Deleted by someone: make a new one.
                        Err(ApiError::NotFound(_)) => false,
                        other => other.map(|()| true)?,
                    }
                }
                None => false,
            };
            if !edited {
                comment_id = Some(
                    forge
                        .api
                        .create_comment(&forge.full_name, pr, &body)
                        .await?,
                );
            }
        }
        Ok(())
    }
    .await;
    let outcome = match sent {
        Ok(()) => {
            tracing::debug!(run = %run.id, status = %run.status, "reported to the forge");
            store.report_delivered(run.id, report.seq, comment_id).await
        }
        Err(e) => {
            let failures = report.attempts + 1;
            let wait = backoff(failures, &e);
            tracing::warn!(
                run = %run.id,
                forge = forge.api.name(),
                failures,
                retry_in_s = wait.as_secs(),
                error = %e,
                "reporting to the forge failed"
            );
            let next = Timestamp::now()
                .checked_add(wait)
                .unwrap_or_else(|_| Timestamp::now());
            store
                .report_failed(run.id, &e.to_string(), next, comment_id)
                .await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(run = %run.id, error = %e, "recording a forge report");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineConfig;
    use crate::forge::directory::StoreForges;
    use crate::forge::secret::SecretKey;
    use crate::forge::testing::{FakeHttp, Reply};
    use crate::forge::{ForgeDirectory, Outbound};
    use kiln_model::{JobStatus, Value};
    use kiln_proto::api::ForgeKind;
    use kiln_store::SqliteStore;
    use kiln_store::types::{ForgeRecord, NewRun, RunContexts, Transition};
    use std::sync::atomic::{AtomicUsize, Ordering};

    async fn wait_for(what: &str, mut cond: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !cond().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A pull request run: a status and a comment when created; after a
    /// failed try (502) the next try edits the same comment with the result.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pull_request_runs_get_one_comment_edited_as_they_go() {
        let comment_edits = Arc::new(AtomicUsize::new(0));
        let edits = comment_edits.clone();
        let fake = FakeHttp::start(move |r| match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/repos/octo/web/statuses/abc") => Reply::json(201, "{}"),
            ("POST", "/repos/octo/web/issues/7/comments") => Reply::json(201, r#"{"id":901}"#),
            ("PATCH", "/repos/octo/web/issues/comments/901") => {
                // The first edit fails: the forge is having a moment.
                if edits.fetch_add(1, Ordering::SeqCst) == 0 {
                    Reply::json(502, "bad gateway")
                } else {
                    Reply::json(200, r#"{"id":901}"#)
                }
            }
            _ => Reply::json(404, "{}"),
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn kiln_store::Store> =
            Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let key = Arc::new(SecretKey::at(dir.path().join("secret.key")));
        let forges = Arc::new(StoreForges::new(store.clone(), key.clone()));
        let engine = Engine::with_forges(
            store.clone(),
            crate::git::Mirrors::new(dir.path().join("mirrors")),
            EngineConfig {
                label_aliases: Vec::new(),
                lease: Duration::from_secs(15),
                heartbeat: Duration::from_secs(5),
                max_attempts: 3,
                max_claim_wait: Duration::from_secs(1),
                workflows_dir: ".kiln/workflows".into(),
                time_zone: jiff::tz::TimeZone::UTC,
                hook_body_limit: 1 << 20,
            },
            forges.clone(),
            Outbound::new("https://ci.example.com/", key.clone()),
        );
        let now = Timestamp::now();
        let repo = store
            .add_repo("web", "https://github.com/octo/web", now)
            .await
            .unwrap();
        store
            .set_forge(&ForgeRecord {
                repo: repo.id,
                kind: ForgeKind::Github,
                api_url: fake.url.clone(),
                full_name: "octo/web".into(),
                token: key.seal(repo.id, "tok").unwrap(),
                updated_at: now,
            })
            .await
            .unwrap();
        forges.changed(repo.id);
        let run = store
            .create_run(NewRun {
                hold: None,
                gate: None,
                repo: repo.id,
                workflow_file: ".kiln/workflows/ci.yml".into(),
                workflow_name: "ci".into(),
                commit: "abc".into(),
                git_ref: None,
                event: "pull_request".into(),
                workflow: None,
                contexts: RunContexts {
                    github: Value::Null,
                    inputs: Value::Null,
                    kiln: Value::Null,
                    pull_request: Some(7),
                    ..RunContexts::default()
                },
                status: JobStatus::Queued,
                error: None,
                graph: Some("{}".into()),
                now,
            })
            .await
            .unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(deliver(engine.clone(), stop.clone()));

        engine.forge_news(run.id, repo.id).await;
        wait_for("the first report", async || {
            store.report(run.id).await.unwrap().is_some_and(|r| !r.due)
        })
        .await;
        assert_eq!(
            store.report(run.id).await.unwrap().unwrap().comment_id,
            Some(901)
        );

        store
            .apply(
                run.id,
                Transition {
                    expected_version: run.version,
                    graph: "{}".into(),
                    status: Some(JobStatus::Cancelled),
                    finished_at: Some(now),
                    now,
                    ..Transition::default()
                },
            )
            .await
            .unwrap();
        engine.forge_news(run.id, repo.id).await;
        wait_for("the failed edit", async || {
            store.report(run.id).await.unwrap().unwrap().attempts == 1
        })
        .await;
        let failed = store.report(run.id).await.unwrap().unwrap();
        assert!(failed.due);
        assert!(failed.last_error.unwrap().contains("502"));
        wait_for("the retried edit", async || {
            store.report(run.id).await.unwrap().is_some_and(|r| !r.due)
        })
        .await;
        stop.cancel();
        task.await.unwrap();

        let reqs = fake.requests();
        let posts: Vec<_> = reqs.iter().filter(|r| r.method == "POST").collect();
        // Two statuses + one retry of the second, and exactly one comment.
        assert_eq!(
            posts
                .iter()
                .filter(|r| r.path.ends_with("/comments"))
                .count(),
            1
        );
        let statuses: Vec<serde_json::Value> = posts
            .iter()
            .filter(|r| r.path.ends_with("/statuses/abc"))
            .map(|r| r.json())
            .collect();
        assert_eq!(statuses.first().unwrap()["state"], "pending");
        assert_eq!(statuses.last().unwrap()["state"], "error");
        assert_eq!(statuses.last().unwrap()["description"], "cancelled");
        assert_eq!(
            statuses.last().unwrap()["target_url"],
            format!("https://ci.example.com/api/v1/runs/{}", run.id)
        );
        let created = posts
            .iter()
            .find(|r| r.path.ends_with("/comments"))
            .unwrap();
        assert!(created.json()["body"].as_str().unwrap().contains("queued"));
        let last_edit = reqs.iter().rev().find(|r| r.method == "PATCH").unwrap();
        let body = last_edit.json()["body"].as_str().unwrap().to_owned();
        assert!(
            body.starts_with(&format!("<!-- kiln run {} -->", run.id)),
            "{body}"
        );
        assert!(body.contains("cancelled"), "{body}");
        assert!(
            body.contains("https://ci.example.com/api/v1/runs/"),
            "{body}"
        );
    }

    /// A repository without a forge: nothing is queued.
    #[tokio::test]
    async fn no_forge_no_report() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn kiln_store::Store> =
            Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let key = Arc::new(SecretKey::at(dir.path().join("secret.key")));
        let forges = Arc::new(StoreForges::new(store.clone(), key.clone()));
        let engine = Engine::with_forges(
            store.clone(),
            crate::git::Mirrors::new(dir.path().join("mirrors")),
            EngineConfig {
                label_aliases: Vec::new(),
                lease: Duration::from_secs(15),
                heartbeat: Duration::from_secs(5),
                max_attempts: 3,
                max_claim_wait: Duration::from_secs(1),
                workflows_dir: ".kiln/workflows".into(),
                time_zone: jiff::tz::TimeZone::UTC,
                hook_body_limit: 1 << 20,
            },
            forges,
            Outbound::new("", key),
        );
        let now = Timestamp::now();
        let repo = store.add_repo("web", "file:///x", now).await.unwrap();
        let run = store
            .create_run(NewRun {
                hold: None,
                gate: None,
                repo: repo.id,
                workflow_file: "ci.yml".into(),
                workflow_name: "ci".into(),
                commit: "abc".into(),
                git_ref: None,
                event: "push".into(),
                workflow: None,
                contexts: RunContexts::default(),
                status: JobStatus::Queued,
                error: None,
                graph: None,
                now,
            })
            .await
            .unwrap();
        engine.forge_news(run.id, repo.id).await;
        assert_eq!(store.report(run.id).await.unwrap(), None);
        assert_eq!(engine.run_link(run.id), None);
        // The secret key is made only when a token is sealed or opened.
        assert!(!dir.path().join("secret.key").exists());
    }
}
