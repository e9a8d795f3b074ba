//! [`LogStore`] over SQLite: log chunks, deflated, idempotent by
//! (instance, attempt, seq), paged by their global id.

use super::codec::{pack_logs, unpack_logs};
use super::{SqliteStore, backend, commit};
use crate::ports::{LogStore, Result, StoreError};
use crate::types::LogPage;
use kiln_model::{AgentId, InstanceId, RunId};
use kiln_proto::api::LogEntry;
use sqlx::SqliteConnection;

/// Store one packed chunk inside the caller's write transaction, fenced
/// as [`LogStore::append_logs`] says.
pub(crate) async fn append_on(
    conn: &mut SqliteConnection,
    id: InstanceId,
    agent: AgentId,
    attempt: u32,
    seq: i64,
    line_count: i64,
    data: Vec<u8>,
) -> Result<()> {
    let (run, current): (i64, i64) =
        sqlx::query_as("SELECT run_id, attempt FROM instances WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("job {id}")))?;
    // Only the attempt number fences logs: a retried upload of the
    // current attempt may arrive after its completion and still counts.
    if current != i64::from(attempt) {
        return Err(StoreError::Stale(format!(
            "job {id} is at attempt {current}, not {attempt}"
        )));
    }
    // ...and the attempt's agent: nobody else may write its log.
    let holder: Option<i64> =
        sqlx::query_scalar("SELECT agent_id FROM attempts WHERE instance_id = ? AND attempt = ?")
            .bind(id.0)
            .bind(i64::from(attempt))
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
    if holder != Some(agent.0) {
        return Err(StoreError::NotOwner(format!(
            "attempt {attempt} of job {id} belongs to another agent, not agent {agent}"
        )));
    }
    sqlx::query(
        "INSERT INTO log_chunks (run_id, instance_id, attempt, seq, line_count, data) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id, attempt, seq) DO NOTHING",
    )
    .bind(run)
    .bind(id.0)
    .bind(i64::from(attempt))
    .bind(seq)
    .bind(line_count)
    .bind(data)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// A chunk's number and line count as stored, and its lines packed.
pub(crate) fn packed(seq: u64, lines: &[LogEntry]) -> Result<(i64, i64, Vec<u8>)> {
    let seq = i64::try_from(seq)
        .map_err(|_| StoreError::Invalid(format!("log chunk number {seq} is too large")))?;
    let line_count = i64::try_from(lines.len())
        .map_err(|_| StoreError::Invalid("log chunk has too many lines".to_owned()))?;
    Ok((seq, line_count, pack_logs(lines)?))
}

#[async_trait::async_trait]
impl LogStore for SqliteStore {
    async fn append_logs(
        &self,
        id: InstanceId,
        agent: AgentId,
        attempt: u32,
        seq: u64,
        lines: &[LogEntry],
    ) -> Result<()> {
        // Compress before taking the write lock.
        let (seq, line_count, data) = packed(seq, lines)?;
        let mut tx = self.write().await?;
        append_on(&mut tx, id, agent, attempt, seq, line_count, data).await?;
        commit(tx).await
    }

    async fn logs(&self, run: RunId, instance: Option<InstanceId>, after: i64) -> Result<LogPage> {
        let mut tx = self.read().await?;
        let exists = sqlx::query_scalar::<_, i64>("SELECT 1 FROM runs WHERE id = ?")
            .bind(run.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("run {run}")));
        }
        let chunks: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT id, data FROM log_chunks \
             WHERE run_id = ?1 AND (?2 IS NULL OR instance_id = ?2) AND id > ?3 \
             ORDER BY instance_id, attempt, seq",
        )
        .bind(run.0)
        .bind(instance.map(|i| i.0))
        .bind(after)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let mut page = LogPage {
            entries: Vec::new(),
            cursor: after,
        };
        for (id, data) in chunks {
            page.cursor = page.cursor.max(id);
            page.entries.extend(unpack_logs(&data)?);
        }
        Ok(page)
    }
}
