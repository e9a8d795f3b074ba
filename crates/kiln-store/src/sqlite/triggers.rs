//! [`TriggerStore`] over SQLite (tables of `0002_triggers.sql`).
//!
//! Claims (`record_delivery`, `claim_event`) are `INSERT … ON CONFLICT DO
//! NOTHING`: exactly one of any number of concurrent callers inserts the
//! row, and the row count says who.

use super::codec::{from_json, from_ts, to_json, ts};
use super::runs::insert_run;
use super::{SqliteStore, backend, commit};
use crate::ports::{Result, StoreError, TriggerStore};
use crate::types::{NewRun, PollTurn, PullRequestPoll, RunRecord, ScheduleState, TriggerSettings};
use jiff::Timestamp;
use kiln_model::{RepoId, RunId};
use kiln_proto::api::{WaitKind, Waiting};
use sqlx::{Row, Sqlite, Transaction};
use std::collections::BTreeMap;

impl SqliteStore {
    async fn require_repo(&self, repo: RepoId) -> Result<()> {
        let found = sqlx::query_scalar::<_, i64>("SELECT 1 FROM repos WHERE id = ?")
            .bind(repo.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("repository {repo}"))),
        }
    }
}

fn to_u64(what: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Backend(format!("{what} out of range: {v}")))
}

fn to_i64(what: &str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Conflict(format!("{what} out of range: {v}")))
}

#[async_trait::async_trait]
impl TriggerStore for SqliteStore {
    async fn trigger_settings(&self, repo: RepoId) -> Result<TriggerSettings> {
        self.require_repo(repo).await?;
        let row = sqlx::query(
            "SELECT poll_interval_secs, webhook_secret, fork_approval, command_allowlist, \
             reply_to_outsiders, priority FROM repo_triggers WHERE repo_id = ?",
        )
        .bind(repo.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(TriggerSettings::default());
        };
        let interval: i64 = row.try_get("poll_interval_secs").map_err(backend)?;
        let allow: String = row.try_get("command_allowlist").map_err(backend)?;
        Ok(TriggerSettings {
            poll_interval_secs: u32::try_from(interval)
                .map_err(|_| StoreError::Backend(format!("poll interval {interval}")))?,
            webhook_secret: row.try_get("webhook_secret").map_err(backend)?,
            fork_approval: row.try_get("fork_approval").map_err(backend)?,
            command_allowlist: from_json("command allowlist", &allow)?,
            reply_to_outsiders: row.try_get("reply_to_outsiders").map_err(backend)?,
            priority: row.try_get("priority").map_err(backend)?,
        })
    }

    async fn set_trigger_settings(&self, repo: RepoId, settings: &TriggerSettings) -> Result<()> {
        self.require_repo(repo).await?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO repo_triggers (repo_id, poll_interval_secs, webhook_secret, \
             fork_approval, command_allowlist, reply_to_outsiders, priority) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (repo_id) DO UPDATE SET poll_interval_secs = excluded.poll_interval_secs, \
             webhook_secret = excluded.webhook_secret, fork_approval = excluded.fork_approval, \
             command_allowlist = excluded.command_allowlist, \
             reply_to_outsiders = excluded.reply_to_outsiders, priority = excluded.priority",
        )
        .bind(repo.0)
        .bind(i64::from(settings.poll_interval_secs))
        .bind(&settings.webhook_secret)
        .bind(settings.fork_approval)
        .bind(to_json(&settings.command_allowlist)?)
        .bind(settings.reply_to_outsiders)
        .bind(settings.priority)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn polled_refs(&self, repo: RepoId) -> Result<Option<BTreeMap<String, String>>> {
        self.require_repo(repo).await?;
        let refs: Option<String> =
            sqlx::query_scalar("SELECT refs FROM polled_refs WHERE repo_id = ?")
                .bind(repo.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        refs.map(|r| from_json("polled refs", &r)).transpose()
    }

    async fn set_polled_refs(
        &self,
        repo: RepoId,
        refs: &BTreeMap<String, String>,
        now: Timestamp,
    ) -> Result<()> {
        self.require_repo(repo).await?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO polled_refs (repo_id, refs, polled_at) VALUES (?, ?, ?) \
             ON CONFLICT (repo_id) DO UPDATE SET refs = excluded.refs, \
             polled_at = excluded.polled_at",
        )
        .bind(repo.0)
        .bind(to_json(refs)?)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn record_delivery(&self, forge: &str, id: &str, now: Timestamp) -> Result<bool> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "INSERT INTO deliveries (forge, delivery_id, received_at) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(forge)
        .bind(id)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_event(&self, repo: RepoId, key: &str, now: Timestamp) -> Result<bool> {
        self.require_repo(repo).await?;
        let mut tx = self.write().await?;
        let claimed = claim_on(&mut tx, repo, key, now).await?;
        commit(tx).await?;
        Ok(claimed)
    }

    async fn claim_poll(&self, repo: RepoId, now: Timestamp, next: Timestamp) -> Result<PollTurn> {
        self.require_repo(repo).await?;
        let mut tx = self.write().await?;
        let moved: Option<i64> = sqlx::query_scalar(
            "INSERT INTO poll_schedule (repo_id, next_at) VALUES (?1, ?2) \
             ON CONFLICT (repo_id) DO UPDATE SET next_at = excluded.next_at \
             WHERE poll_schedule.next_at <= ?3 RETURNING next_at",
        )
        .bind(repo.0)
        .bind(ts(next))
        .bind(ts(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let turn = match moved {
            Some(_) => PollTurn::Mine,
            None => {
                let at: i64 =
                    sqlx::query_scalar("SELECT next_at FROM poll_schedule WHERE repo_id = ?")
                        .bind(repo.0)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(backend)?;
                PollTurn::NotDue(from_ts(at)?)
            }
        };
        commit(tx).await?;
        Ok(turn)
    }

    async fn event_claimed(&self, repo: RepoId, key: &str) -> Result<bool> {
        self.require_repo(repo).await?;
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT 1 FROM started_events WHERE repo_id = ? AND event_key = ?",
        )
        .bind(repo.0)
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .is_some())
    }

    async fn schedule(
        &self,
        repo: RepoId,
        workflow_file: &str,
        index: u32,
    ) -> Result<Option<ScheduleState>> {
        let row = sqlx::query(
            "SELECT cron, next_fire FROM schedules \
             WHERE repo_id = ? AND workflow_file = ? AND cron_index = ?",
        )
        .bind(repo.0)
        .bind(workflow_file)
        .bind(i64::from(index))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|row| {
            Ok(ScheduleState {
                cron: row.try_get("cron").map_err(backend)?,
                next_fire: from_ts(row.try_get("next_fire").map_err(backend)?)?,
            })
        })
        .transpose()
    }

    async fn advance_schedule(
        &self,
        repo: RepoId,
        workflow_file: &str,
        index: u32,
        expected: Option<Timestamp>,
        next: &ScheduleState,
    ) -> Result<bool> {
        self.require_repo(repo).await?;
        let mut tx = self.write().await?;
        let done = match expected {
            None => sqlx::query(
                "INSERT INTO schedules (repo_id, workflow_file, cron_index, cron, next_fire) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(repo.0)
            .bind(workflow_file)
            .bind(i64::from(index))
            .bind(&next.cron)
            .bind(ts(next.next_fire))
            .execute(&mut *tx)
            .await
            .map_err(backend)?,
            Some(expected) => sqlx::query(
                "UPDATE schedules SET cron = ?, next_fire = ? \
                 WHERE repo_id = ? AND workflow_file = ? AND cron_index = ? AND next_fire = ?",
            )
            .bind(&next.cron)
            .bind(ts(next.next_fire))
            .bind(repo.0)
            .bind(workflow_file)
            .bind(i64::from(index))
            .bind(ts(expected))
            .execute(&mut *tx)
            .await
            .map_err(backend)?,
        };
        commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn pull_request_polls(&self, repo: RepoId) -> Result<Vec<PullRequestPoll>> {
        let rows = sqlx::query(
            "SELECT number, head_sha, last_comment FROM pull_request_polls \
             WHERE repo_id = ? ORDER BY number",
        )
        .bind(repo.0)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(PullRequestPoll {
                    number: to_u64(
                        "pull request number",
                        row.try_get("number").map_err(backend)?,
                    )?,
                    head_sha: row.try_get("head_sha").map_err(backend)?,
                    last_comment: to_u64(
                        "comment id",
                        row.try_get("last_comment").map_err(backend)?,
                    )?,
                })
            })
            .collect()
    }

    async fn set_pull_request_poll(&self, repo: RepoId, poll: &PullRequestPoll) -> Result<()> {
        self.require_repo(repo).await?;
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO pull_request_polls (repo_id, number, head_sha, last_comment) \
             VALUES (?, ?, ?, ?) ON CONFLICT (repo_id, number) DO UPDATE SET \
             head_sha = excluded.head_sha, last_comment = excluded.last_comment",
        )
        .bind(repo.0)
        .bind(to_i64("pull request number", poll.number)?)
        .bind(&poll.head_sha)
        .bind(to_i64("comment id", poll.last_comment)?)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn create_held_run(&self, mut run: NewRun, reason: &str) -> Result<RunRecord> {
        run.hold = Some(fork_hold(reason));
        let mut tx = self.write().await?;
        let record = insert_run(&mut tx, &run).await?;
        commit(tx).await?;
        Ok(record)
    }

    async fn run_hold(&self, run: RunId) -> Result<Option<String>> {
        let hold: Option<Option<String>> = sqlx::query_scalar(&format!(
            "SELECT hold FROM runs WHERE id = ? AND {FORK_HOLD}"
        ))
        .bind(run.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        hold.flatten().map(|h| reason_of(&h)).transpose()
    }

    async fn held_runs(&self) -> Result<Vec<(RunId, String)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT id, hold FROM runs WHERE {FORK_HOLD} ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.into_iter()
            .map(|(id, hold)| Ok((RunId(id), reason_of(&hold)?)))
            .collect()
    }

    async fn release_run(&self, run: RunId) -> Result<bool> {
        let done = sqlx::query(&format!(
            "UPDATE runs SET hold = NULL WHERE id = ? AND {FORK_HOLD}"
        ))
        .bind(run.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}

/// Runs held for approval: `runs.hold` is a `Waiting` of kind
/// `fork-approval` (concurrency groups hold runs in the same column).
const FORK_HOLD: &str = "hold IS NOT NULL AND json_extract(hold, '$.kind') = 'fork-approval'";

/// Claim `key` inside a write transaction: true for the first claim.
pub(super) async fn claim_on(
    tx: &mut Transaction<'static, Sqlite>,
    repo: RepoId,
    key: &str,
    now: Timestamp,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO started_events (repo_id, event_key, started_at) VALUES (?, ?, ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(repo.0)
    .bind(key)
    .bind(ts(now))
    .execute(&mut **tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::NotFound(format!("repository {repo}"))
        }
        e => backend(e),
    })?;
    Ok(done.rows_affected() == 1)
}

fn fork_hold(reason: &str) -> Waiting {
    Waiting {
        kind: WaitKind::ForkApproval,
        name: reason.to_owned(),
    }
}

fn reason_of(hold: &str) -> Result<String> {
    let w: Waiting = from_json("run hold", hold)?;
    Ok(w.name)
}
