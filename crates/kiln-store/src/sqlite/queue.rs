//! [`QueueStore`] over SQLite: the durable queue, leases and fencing.
//!
//! The queue is the instances whose status is `queued`, in `queue_seq`
//! order. Every state change is a conditional `UPDATE` inside a
//! `BEGIN IMMEDIATE` transaction, keyed on the status and, once claimed,
//! on the attempt number (the fencing token): a caller holding an old
//! attempt changes nothing and gets [`StoreError::Stale`].

use super::codec::{from_json, status_str, to_json, to_u32, ts};
use super::runs::instance_on;
use super::{SqliteStore, backend, commit};
use crate::ports::{QueueStore, Result, StoreError};
use crate::types::{Candidate, Expired, InstanceRecord};
use jiff::Timestamp;
use kiln_model::{AgentId, InstanceId, JobStatus, RepoId, RunId};
use kiln_proto::results::JobResult;
use sqlx::{Row, SqliteConnection};

/// The reason recorded on an attempt whose agent stopped heartbeating.
pub(crate) const AGENT_LOST: &str = "agent-lost";

/// Why a fenced call found nothing to change: the instance does not exist
/// (NotFound) or is not running at `attempt` (Stale).
async fn not_current(conn: &mut SqliteConnection, id: InstanceId, attempt: u32) -> StoreError {
    let found: std::result::Result<Option<(String, i64)>, _> =
        sqlx::query_as("SELECT status, attempt FROM instances WHERE id = ?")
            .bind(id.0)
            .fetch_optional(conn)
            .await;
    match found {
        Err(e) => backend(e),
        Ok(None) => StoreError::NotFound(format!("job {id}")),
        Ok(Some((status, current))) => StoreError::Stale(format!(
            "job {id} is {status} at attempt {current}, not running at attempt {attempt}"
        )),
    }
}

/// Record that the agent was heard from (never moves `last_seen` back).
async fn touch(conn: &mut SqliteConnection, agent: i64, now: Timestamp) -> Result<()> {
    sqlx::query("UPDATE agents SET last_seen = MAX(last_seen, ?) WHERE id = ?")
        .bind(ts(now))
        .bind(agent)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

#[async_trait::async_trait]
impl QueueStore for SqliteStore {
    async fn candidates(&self, limit: u32) -> Result<Vec<Candidate>> {
        let rows = sqlx::query(
            "SELECT i.id, r.repo_id, i.runs_on, i.weight FROM instances i \
             JOIN runs r ON r.id = i.run_id \
             WHERE i.status = 'queued' AND i.cancel_requested = 0 AND i.hold IS NULL \
             ORDER BY i.queue_seq LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(Candidate {
                    id: InstanceId(row.try_get("id").map_err(backend)?),
                    repo: RepoId(row.try_get("repo_id").map_err(backend)?),
                    runs_on: from_json(
                        "instance runs_on",
                        row.try_get("runs_on").map_err(backend)?,
                    )?,
                    weight: to_u32("weight", row.try_get("weight").map_err(backend)?)?,
                })
            })
            .collect()
    }

    async fn claim(
        &self,
        id: InstanceId,
        agent: AgentId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<InstanceRecord>> {
        let mut tx = self.write().await?;
        let agent_name: String = sqlx::query_scalar("SELECT name FROM agents WHERE id = ?")
            .bind(agent.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("agent {agent}")))?;
        let attempt: Option<i64> = sqlx::query_scalar(
            "UPDATE instances SET status = 'running', attempt = attempt + 1, agent_id = ?, \
             lease_expires_at = ?, started_at = COALESCE(started_at, ?) \
             WHERE id = ? AND status = 'queued' AND cancel_requested = 0 AND hold IS NULL \
             RETURNING attempt",
        )
        .bind(agent.0)
        .bind(ts(lease_until))
        .bind(ts(now))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(attempt) = attempt else {
            let exists = sqlx::query_scalar::<_, i64>("SELECT 1 FROM instances WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?
                .is_some();
            return if exists {
                Ok(None)
            } else {
                Err(StoreError::NotFound(format!("job {id}")))
            };
        };
        sqlx::query(
            "INSERT INTO attempts (instance_id, attempt, agent_id, agent_name, status, started_at) \
             VALUES (?, ?, ?, ?, 'running', ?)",
        )
        .bind(id.0)
        .bind(attempt)
        .bind(agent.0)
        .bind(&agent_name)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        touch(&mut tx, agent.0, now).await?;
        let record = instance_on(&mut tx, id).await?;
        commit(tx).await?;
        Ok(Some(record))
    }

    async fn heartbeat(
        &self,
        id: InstanceId,
        attempt: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let updated: Option<(bool, i64)> = sqlx::query_as(
            "UPDATE instances SET lease_expires_at = ? \
             WHERE id = ? AND status = 'running' AND attempt = ? \
             RETURNING cancel_requested, agent_id",
        )
        .bind(ts(lease_until))
        .bind(id.0)
        .bind(i64::from(attempt))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some((cancel, agent)) = updated else {
            return Err(not_current(&mut tx, id, attempt).await);
        };
        touch(&mut tx, agent, now).await?;
        commit(tx).await?;
        Ok(cancel)
    }

    async fn complete(
        &self,
        id: InstanceId,
        attempt: u32,
        result: JobResult,
        now: Timestamp,
    ) -> Result<RunId> {
        match result.status {
            JobStatus::Success | JobStatus::Failure | JobStatus::Cancelled | JobStatus::Skipped => {
            }
            JobStatus::Queued | JobStatus::Running => {
                return Err(StoreError::Conflict(format!(
                    "job {id} cannot complete as {}: a result's status must be final",
                    result.status
                )));
            }
        }
        let json = to_json(&result)?;
        let mut tx = self.write().await?;
        let run: Option<i64> = sqlx::query_scalar(
            "UPDATE instances SET status = ?, reason = ?, result = ?, finished_at = ?, \
             lease_expires_at = NULL, graph_applied = 0 \
             WHERE id = ? AND status = 'running' AND attempt = ? RETURNING run_id",
        )
        .bind(status_str(result.status))
        .bind(&result.reason)
        .bind(&json)
        .bind(ts(now))
        .bind(id.0)
        .bind(i64::from(attempt))
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(run) = run else {
            return Err(not_current(&mut tx, id, attempt).await);
        };
        sqlx::query(
            "UPDATE attempts SET status = ?, reason = ?, finished_at = ?, result = ? \
             WHERE instance_id = ? AND attempt = ?",
        )
        .bind(status_str(result.status))
        .bind(&result.reason)
        .bind(ts(now))
        .bind(&json)
        .bind(id.0)
        .bind(i64::from(attempt))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        commit(tx).await?;
        Ok(RunId(run))
    }

    async fn expire_leases(&self, now: Timestamp) -> Result<Vec<Expired>> {
        let mut tx = self.write().await?;
        let lost: Vec<(i64, i64, i64, i64, bool)> = sqlx::query_as(
            "SELECT id, run_id, attempt, max_attempts, cancel_requested FROM instances \
             WHERE status = 'running' AND lease_expires_at < ? ORDER BY id",
        )
        .bind(ts(now))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut expired = Vec::with_capacity(lost.len());
        for (id, run, attempt, max_attempts, cancel_requested) in lost {
            sqlx::query(
                "UPDATE attempts SET status = 'failure', reason = ?, finished_at = ? \
                 WHERE instance_id = ? AND attempt = ?",
            )
            .bind(AGENT_LOST)
            .bind(ts(now))
            .bind(id)
            .bind(attempt)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            let requeued = !cancel_requested && attempt < max_attempts;
            if requeued {
                // Back to the queue at its old position (`queue_seq` is
                // kept): it has waited longest already.
                sqlx::query(
                    "UPDATE instances SET status = 'queued', agent_id = NULL, \
                     lease_expires_at = NULL WHERE id = ?",
                )
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            } else {
                let (status, reason) = if cancel_requested {
                    (JobStatus::Cancelled, "cancelled".to_owned())
                } else {
                    (
                        JobStatus::Failure,
                        format!("{AGENT_LOST}: gave up after {attempt} attempts"),
                    )
                };
                sqlx::query(
                    "UPDATE instances SET status = ?, reason = ?, finished_at = ?, \
                     lease_expires_at = NULL, graph_applied = 0 WHERE id = ?",
                )
                .bind(status_str(status))
                .bind(reason)
                .bind(ts(now))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            expired.push(Expired {
                instance: InstanceId(id),
                run: RunId(run),
                attempt: to_u32("attempt", attempt)?,
                requeued,
            });
        }
        commit(tx).await?;
        Ok(expired)
    }

    async fn extend_all_leases(&self, until: Timestamp) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE instances SET lease_expires_at = MAX(COALESCE(lease_expires_at, ?1), ?1) \
             WHERE status = 'running'",
        )
        .bind(ts(until))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn running_by_agent(&self) -> Result<Vec<(AgentId, InstanceId, u32)>> {
        let rows: Vec<(Option<i64>, i64, i64)> = sqlx::query_as(
            "SELECT agent_id, id, weight FROM instances WHERE status = 'running' \
             ORDER BY agent_id, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.into_iter()
            .map(|(agent, id, weight)| {
                let agent = agent
                    .ok_or_else(|| StoreError::Backend(format!("running job {id} has no agent")))?;
                Ok((AgentId(agent), InstanceId(id), to_u32("weight", weight)?))
            })
            .collect()
    }
}
