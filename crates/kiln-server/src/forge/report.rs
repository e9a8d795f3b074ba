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
