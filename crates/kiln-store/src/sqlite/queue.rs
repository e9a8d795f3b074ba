//! [`QueueStore`] over SQLite: the durable queue, leases and fencing.
//!
//! The queue is the instances whose status is `queued`, in `queue_seq`
//! order. Every state change is a conditional `UPDATE` inside a
//! `BEGIN IMMEDIATE` transaction, keyed on the status and, once claimed,
//! on the attempt number (the fencing token): a caller holding an old
//! attempt changes nothing and gets [`StoreError::Stale`]. A failed attempt
//! (completed, or its lease lost) goes back to the queue when the
//! instance's retry policy says so (`kiln_core::retry`).

use super::codec::{from_json, status_str, to_json, to_u32, ts};
use super::logs::{append_on, packed};
use super::runs::{SELECT_INSTANCE, instance_on, instance_record, retry_policy};
use super::{SqliteStore, backend, commit};
use crate::ports::{QueueStore, Result, StoreError};
use crate::types::{Candidate, ClaimAsk, Completed, Expired, FinishedAttempt, InstanceRecord};
use jiff::Timestamp;
use kiln_core::dispatch::{covers, next_repo};
use kiln_core::retry::{Verdict, decide};
use kiln_model::{AgentId, Failure, FailureClass, InstanceId, JobStatus, RepoId, RunId};
use kiln_proto::results::JobResult;
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

/// The reason recorded on an attempt whose agent stopped heartbeating.
pub(crate) const AGENT_LOST: &str = "agent-lost";

/// Why a fenced call found nothing to change: the instance does not exist
/// (NotFound), is not running at `attempt` (Stale), or is, but leased to
/// another agent (NotOwner).
async fn not_current(
    conn: &mut SqliteConnection,
    id: InstanceId,
    agent: AgentId,
    attempt: u32,
) -> StoreError {
    let found: std::result::Result<Option<(String, i64, Option<i64>)>, _> =
        sqlx::query_as("SELECT status, attempt, agent_id FROM instances WHERE id = ?")
            .bind(id.0)
            .fetch_optional(conn)
            .await;
    match found {
        Err(e) => backend(e),
        Ok(None) => StoreError::NotFound(format!("job {id}")),
        Ok(Some((status, current, holder)))
            if status == "running" && current == i64::from(attempt) && holder != Some(agent.0) =>
        {
            StoreError::NotOwner(format!(
                "attempt {attempt} of job {id} is leased to another agent, not agent {agent}"
            ))
        }
        Ok(Some((status, current, _))) => StoreError::Stale(format!(
            "job {id} is {status} at attempt {current}, not running at attempt {attempt}"
        )),
    }
}

/// Record that the agent was heard from (never moves `last_seen` back; an
/// agent declared lost is online again).
async fn touch(conn: &mut SqliteConnection, agent: i64, now: Timestamp) -> Result<()> {
    sqlx::query("UPDATE agents SET last_seen = MAX(last_seen, ?), lost_at = NULL WHERE id = ?")
        .bind(ts(now))
        .bind(agent)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Back to the queue at its old position (`queue_seq` is kept: it has
/// waited longest already), for another attempt at the next claim.
async fn requeue(conn: &mut SqliteConnection, id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE instances SET status = 'queued', agent_id = NULL, lease_expires_at = NULL \
         WHERE id = ?",
    )
    .bind(id)
    .execute(conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The id of a `runs-on` set (sorted, without duplicates), interned in
/// `label_sets` on first use.
pub(crate) async fn label_set(
    tx: &mut Transaction<'static, Sqlite>,
    runs_on: &[String],
) -> Result<i64> {
    let mut labels = runs_on.to_vec();
    labels.sort();
    labels.dedup();
    let json = to_json(&labels)?;
    sqlx::query("INSERT INTO label_sets (labels) VALUES (?) ON CONFLICT (labels) DO NOTHING")
        .bind(&json)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    sqlx::query_scalar("SELECT id FROM label_sets WHERE labels = ?")
        .bind(&json)
        .fetch_one(&mut **tx)
        .await
        .map_err(backend)
}

/// The queue as the claim index sees it: the partial index's condition
/// (spelled out so that SQLite uses the index) and the weight rule of
/// `kiln_core::dispatch::has_room` (`?1` free, `?2` capacity).
const CLAIMABLE: &str = "status = 'queued' AND hold IS NULL AND cancel_requested = 0 \
     AND (weight <= ?1 OR (weight > ?2 AND ?1 = ?2)) AND label_set = ?3";

/// Lease `id` to `agent` if it is still queued (the claim's conditional
/// update), recording the attempt. `None` if it is not.
async fn claim_on(
    tx: &mut Transaction<'static, Sqlite>,
    id: InstanceId,
    agent: AgentId,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<InstanceRecord>> {
    let agent_name: String = sqlx::query_scalar("SELECT name FROM agents WHERE id = ?")
        .bind(agent.0)
        .fetch_optional(&mut **tx)
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
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some(attempt) = attempt else {
        return Ok(None);
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
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    touch(tx, agent.0, now).await?;
    Ok(Some(instance_on(tx, id).await?))
}

/// The next instance `ask` can take, by the rules of
/// `kiln_core::dispatch::pick`, found with index seeks per label set the
/// agent covers: the best priority, then the first repository after the
/// cursor (wrapping) at that priority, then the oldest job there.
async fn next_for(
    tx: &mut Transaction<'static, Sqlite>,
    ask: &ClaimAsk,
) -> Result<Option<(InstanceId, i64)>> {
    let sets: Vec<(i64, String)> = sqlx::query_as("SELECT id, labels FROM label_sets")
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)?;
    let mut mine = Vec::new();
    for (id, labels) in sets {
        let runs_on: Vec<String> = from_json("label set", &labels)?;
        if covers(&ask.labels, &runs_on) {
            mine.push(id);
        }
    }
    let (free, capacity) = (i64::from(ask.free), i64::from(ask.capacity));
    let mut top: Option<i64> = None;
    for set in &mine {
        let p: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT priority FROM instances WHERE {CLAIMABLE} ORDER BY priority DESC LIMIT 1"
        ))
        .bind(free)
        .bind(capacity)
        .bind(set)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
        top = top.max(p);
    }
    let Some(priority) = top else {
        return Ok(None);
    };
    let last: Option<i64> =
        sqlx::query_scalar("SELECT last_repo FROM dispatch_cursor WHERE id = 1")
            .fetch_one(&mut **tx)
            .await
            .map_err(backend)?;
    // Per label set: the first repository after the cursor, and the first
    // of all (for the wrap); `next_repo` picks among them.
    let mut repos = Vec::new();
    for set in &mine {
        for after in [last, None] {
            let r: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT repo_id FROM instances WHERE {CLAIMABLE} AND priority = ?4 \
                 AND repo_id > ?5 ORDER BY repo_id LIMIT 1"
            ))
            .bind(free)
            .bind(capacity)
            .bind(set)
            .bind(priority)
            .bind(after.unwrap_or(i64::MIN))
            .fetch_optional(&mut **tx)
            .await
            .map_err(backend)?;
            repos.extend(r.map(RepoId));
        }
    }
    let Some(repo) = next_repo(repos, last.map(RepoId)) else {
        return Ok(None);
    };
    let mut best: Option<(i64, i64)> = None;
    for set in &mine {
        let found: Option<(i64, i64)> = sqlx::query_as(&format!(
            "SELECT queue_seq, id FROM instances WHERE {CLAIMABLE} AND priority = ?4 \
             AND repo_id = ?5 ORDER BY queue_seq LIMIT 1"
        ))
        .bind(free)
        .bind(capacity)
        .bind(set)
        .bind(priority)
        .bind(repo.0)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
        best = match (best, found) {
            (Some(b), Some(f)) => Some(b.min(f)),
            (b, f) => b.or(f),
        };
    }
    Ok(best.map(|(_, id)| (InstanceId(id), repo.0)))
}

/// The result as stored: its JSON, once its status is final.
fn final_result(id: InstanceId, result: &JobResult) -> Result<String> {
    match result.status {
        JobStatus::Success | JobStatus::Failure | JobStatus::Cancelled | JobStatus::Skipped => {}
        JobStatus::Queued | JobStatus::Running => {
            return Err(StoreError::Invalid(format!(
                "job {id} cannot complete as {}: a result's status must be final",
                result.status
            )));
        }
    }
    to_json(result)
}

/// [`QueueStore::complete`] inside the caller's write transaction.
async fn complete_on(
    conn: &mut SqliteConnection,
    id: InstanceId,
    agent: AgentId,
    attempt: u32,
    result: &JobResult,
    json: &str,
    now: Timestamp,
) -> Result<Completed> {
    // The write lock is held (BEGIN IMMEDIATE): what this reads is
    // what the update below changes.
    let current: Option<(i64, i64, Option<String>, bool)> = sqlx::query_as(
        "SELECT run_id, max_attempts, retry_on, cancel_requested FROM instances \
         WHERE id = ? AND status = 'running' AND attempt = ? AND agent_id = ?",
    )
    .bind(id.0)
    .bind(i64::from(attempt))
    .bind(agent.0)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    let Some((run, max_attempts, retry_on, cancel_requested)) = current else {
        return Err(not_current(&mut *conn, id, agent, attempt).await);
    };
    let policy = retry_policy(max_attempts, retry_on)?;
    let verdict = decide(
        &policy,
        result.status,
        result.failure.as_ref(),
        attempt,
        cancel_requested,
    );
    let requeued = match verdict {
        Verdict::Retry => {
            requeue(&mut *conn, id.0).await?;
            true
        }
        Verdict::End => {
            sqlx::query(
                "UPDATE instances SET status = ?, reason = ?, result = ?, finished_at = ?, \
                 lease_expires_at = NULL, graph_applied = 0 WHERE id = ?",
            )
            .bind(status_str(result.status))
            .bind(&result.reason)
            .bind(json)
            .bind(ts(now))
            .bind(id.0)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
            false
        }
    };
    touch(&mut *conn, agent.0, now).await?;
    let failure = match result.status {
        JobStatus::Failure => result.failure.as_ref().map(|f| f.class.as_str()),
        JobStatus::Success
        | JobStatus::Cancelled
        | JobStatus::Skipped
        | JobStatus::Queued
        | JobStatus::Running => None,
    };
    sqlx::query(
        "UPDATE attempts SET status = ?, reason = ?, failure = ?, finished_at = ?, result = ? \
         WHERE instance_id = ? AND attempt = ?",
    )
    .bind(status_str(result.status))
    .bind(&result.reason)
    .bind(failure)
    .bind(ts(now))
    .bind(json)
    .bind(id.0)
    .bind(i64::from(attempt))
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(Completed {
        run: RunId(run),
        requeued,
    })
}

#[async_trait::async_trait]
impl QueueStore for SqliteStore {
    async fn claim_batch(
        &self,
        ask: &ClaimAsk,
        max: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<InstanceRecord>> {
        let mut tx = self.write().await?;
        // The write lock is held from the start (BEGIN IMMEDIATE): what
        // `next_for` finds is still queued when it is claimed.
        let mut ask = ask.clone();
        let mut claimed = Vec::new();
        let mut last_repo = None;
        while (claimed.len() as u32) < max && ask.free > 0 {
            let Some((id, repo)) = next_for(&mut tx, &ask).await? else {
                break;
            };
            let Some(record) = claim_on(&mut tx, id, ask.agent, now, lease_until).await? else {
                break;
            };
            // A job heavier than the whole capacity takes all of it.
            ask.free = ask
                .free
                .saturating_sub(record.weight.min(ask.capacity).max(1));
            last_repo = Some(repo);
            // The cursor moves with every job, so that the next one of
            // this batch goes to the next repository.
            sqlx::query("UPDATE dispatch_cursor SET last_repo = ? WHERE id = 1")
                .bind(repo)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            claimed.push(record);
        }
        if last_repo.is_none() {
            return Ok(claimed);
        }
        commit(tx).await?;
        Ok(claimed)
    }

    async fn candidates(&self, limit: u32) -> Result<Vec<Candidate>> {
        let rows = sqlx::query(
            "SELECT i.id, r.repo_id, i.runs_on, i.weight, i.priority FROM instances i \
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
                    priority: row.try_get("priority").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn queued_instances(&self, limit: u32) -> Result<Vec<InstanceRecord>> {
        let rows = sqlx::query(&format!(
            "{SELECT_INSTANCE} WHERE i.status = 'queued' \
             ORDER BY i.priority DESC, i.queue_seq LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(instance_record).collect()
    }

    async fn claim(
        &self,
        id: InstanceId,
        agent: AgentId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<InstanceRecord>> {
        let mut tx = self.write().await?;
        let record = claim_on(&mut tx, id, agent, now, lease_until).await?;
        if record.is_none() {
            let exists = sqlx::query_scalar::<_, i64>("SELECT 1 FROM instances WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound(format!("job {id}")));
            }
        }
        commit(tx).await?;
        Ok(record)
    }

    async fn heartbeat(
        &self,
        id: InstanceId,
        agent: AgentId,
        attempt: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.write().await?;
        let updated: Option<bool> = sqlx::query_scalar(
            "UPDATE instances SET lease_expires_at = ? \
             WHERE id = ? AND status = 'running' AND attempt = ? AND agent_id = ? \
             RETURNING cancel_requested",
        )
        .bind(ts(lease_until))
        .bind(id.0)
        .bind(i64::from(attempt))
        .bind(agent.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(cancel) = updated else {
            return Err(not_current(&mut tx, id, agent, attempt).await);
        };
        touch(&mut tx, agent.0, now).await?;
        commit(tx).await?;
        Ok(cancel)
    }

    async fn complete(
        &self,
        id: InstanceId,
        agent: AgentId,
        attempt: u32,
        result: JobResult,
        now: Timestamp,
    ) -> Result<Completed> {
        let json = final_result(id, &result)?;
        let mut tx = self.write().await?;
        let done = complete_on(&mut tx, id, agent, attempt, &result, &json, now).await?;
        commit(tx).await?;
        Ok(done)
    }

    async fn complete_many(
        &self,
        agent: AgentId,
        attempts: Vec<FinishedAttempt>,
        now: Timestamp,
    ) -> Result<Vec<Result<Completed>>> {
        // Encode and compress before taking the write lock.
        let mut prepared = Vec::with_capacity(attempts.len());
        for a in attempts {
            let encoded = (|| {
                let json = final_result(a.instance, &a.result)?;
                let logs = match &a.logs {
                    Some((seq, lines)) if !lines.is_empty() => Some(packed(*seq, lines)?),
                    Some(_) | None => None,
                };
                Ok((json, logs))
            })();
            prepared.push((a, encoded));
        }
        let mut tx = self.write().await?;
        let mut out = Vec::with_capacity(prepared.len());
        for (a, encoded) in prepared {
            let (json, logs) = match encoded {
                Ok(e) => e,
                Err(e) => {
                    out.push(Err(e));
                    continue;
                }
            };
            // Each report in a savepoint: one that fails leaves no trace
            // and does not undo the others.
            let mut sp = sqlx::Connection::begin(&mut *tx).await.map_err(backend)?;
            let done = async {
                if let Some((seq, count, data)) = logs {
                    append_on(&mut sp, a.instance, agent, a.attempt, seq, count, data).await?;
                }
                complete_on(&mut sp, a.instance, agent, a.attempt, &a.result, &json, now).await
            }
            .await;
            match done {
                Ok(done) => {
                    sp.commit().await.map_err(backend)?;
                    out.push(Ok(done));
                }
                Err(e) => {
                    sp.rollback().await.map_err(backend)?;
                    out.push(Err(e));
                }
            }
        }
        commit(tx).await?;
        Ok(out)
    }

    async fn expire_leases(&self, now: Timestamp) -> Result<Vec<Expired>> {
        let mut tx = self.write().await?;
        #[allow(clippy::type_complexity)]
        let lost: Vec<(i64, i64, i64, i64, Option<String>, bool, Option<i64>, i64)> =
            sqlx::query_as(
                "SELECT id, run_id, attempt, max_attempts, retry_on, cancel_requested, agent_id, \
                 lease_expires_at FROM instances \
                 WHERE status = 'running' AND lease_expires_at < ? ORDER BY id",
            )
            .bind(ts(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        let mut expired = Vec::with_capacity(lost.len());
        for (id, run, attempt, max_attempts, retry_on, cancel_requested, agent, lease_end) in lost {
            // Silent since before its lease ran out: the agent is lost, not
            // merely late with this one job.
            sqlx::query(
                "UPDATE agents SET lost_at = ? WHERE id = ? AND lost_at IS NULL AND last_seen < ?",
            )
            .bind(ts(now))
            .bind(agent)
            .bind(lease_end)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            sqlx::query(
                "UPDATE attempts SET status = 'failure', reason = ?, failure = ?, finished_at = ? \
                 WHERE instance_id = ? AND attempt = ?",
            )
            .bind(AGENT_LOST)
            .bind(FailureClass::AgentLost.as_str())
            .bind(ts(now))
            .bind(id)
            .bind(attempt)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            let policy = retry_policy(max_attempts, retry_on)?;
            let verdict = decide(
                &policy,
                JobStatus::Failure,
                Some(&Failure::of(FailureClass::AgentLost)),
                to_u32("attempt", attempt)?,
                cancel_requested,
            );
            let requeued = match verdict {
                Verdict::Retry => {
                    requeue(&mut tx, id).await?;
                    true
                }
                Verdict::End => {
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
                    false
                }
            };
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
