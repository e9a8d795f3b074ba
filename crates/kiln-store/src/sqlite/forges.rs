//! [`ForgeStore`] over SQLite: `repo_forges` and the `forge_reports` outbox.

use super::codec::{from_ts, to_u32, ts};
use super::{SqliteStore, backend, commit};
use crate::ports::{ForgeStore, Result, StoreError};
use crate::types::{ForgeRecord, ForgeReport, SealedSecret};
use jiff::Timestamp;
use kiln_model::{RepoId, RunId};
use kiln_proto::api::ForgeKind;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

const SELECT_FORGE: &str = "SELECT repo_id, kind, api_url, full_name, token_nonce, token_sealed, \
                            updated_at FROM repo_forges";
const SELECT_REPORT: &str =
    "SELECT run_id, seq, due, attempts, next_at, last_error, comment_id FROM forge_reports";

fn forge(row: &SqliteRow) -> Result<ForgeRecord> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    Ok(ForgeRecord {
        repo: RepoId(row.try_get("repo_id").map_err(backend)?),
        kind: kind
            .parse::<ForgeKind>()
            .map_err(|e| StoreError::Backend(format!("corrupt forge kind: {e}")))?,
        api_url: row.try_get("api_url").map_err(backend)?,
        full_name: row.try_get("full_name").map_err(backend)?,
        token: SealedSecret {
            nonce: row.try_get("token_nonce").map_err(backend)?,
            ciphertext: row.try_get("token_sealed").map_err(backend)?,
        },
        updated_at: from_ts(row.try_get("updated_at").map_err(backend)?)?,
    })
}

fn report(row: &SqliteRow) -> Result<ForgeReport> {
    let comment: Option<i64> = row.try_get("comment_id").map_err(backend)?;
    Ok(ForgeReport {
        run: RunId(row.try_get("run_id").map_err(backend)?),
        seq: row.try_get("seq").map_err(backend)?,
        due: row.try_get::<i64, _>("due").map_err(backend)? != 0,
        attempts: to_u32("attempts", row.try_get("attempts").map_err(backend)?)?,
        next_at: from_ts(row.try_get("next_at").map_err(backend)?)?,
        last_error: row.try_get("last_error").map_err(backend)?,
        comment_id: comment.map(|c| c as u64),
    })
}

#[async_trait::async_trait]
impl ForgeStore for SqliteStore {
    async fn set_forge(&self, f: &ForgeRecord) -> Result<()> {
        let mut tx = self.write().await?;
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM repos WHERE id = ?")
            .bind(f.repo.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if known.is_none() {
            return Err(StoreError::NotFound(format!("repository {}", f.repo.0)));
        }
        sqlx::query(
            "INSERT INTO repo_forges (repo_id, kind, api_url, full_name, token_nonce, \
             token_sealed, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (repo_id) DO UPDATE SET kind = excluded.kind, \
             api_url = excluded.api_url, full_name = excluded.full_name, \
             token_nonce = excluded.token_nonce, token_sealed = excluded.token_sealed, \
             updated_at = excluded.updated_at",
        )
        .bind(f.repo.0)
        .bind(f.kind.as_str())
        .bind(&f.api_url)
        .bind(&f.full_name)
        .bind(&f.token.nonce)
        .bind(&f.token.ciphertext)
        .bind(ts(f.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        commit(tx).await
    }

    async fn forge(&self, repo: RepoId) -> Result<Option<ForgeRecord>> {
        sqlx::query(&format!("{SELECT_FORGE} WHERE repo_id = ?"))
            .bind(repo.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(forge)
            .transpose()
    }

    async fn forges(&self) -> Result<Vec<ForgeRecord>> {
        sqlx::query(&format!("{SELECT_FORGE} ORDER BY repo_id"))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(forge)
            .collect()
    }

    async fn remove_forge(&self, repo: RepoId) -> Result<bool> {
        let mut tx = self.write().await?;
        let n = sqlx::query("DELETE FROM repo_forges WHERE repo_id = ?")
            .bind(repo.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        commit(tx).await?;
        Ok(n > 0)
    }

    async fn report_requested(&self, run: RunId, now: Timestamp) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO forge_reports (run_id, seq, due, attempts, next_at) \
             VALUES (?, 1, 1, 0, ?) \
             ON CONFLICT (run_id) DO UPDATE SET seq = seq + 1, due = 1, \
             next_at = min(next_at, excluded.next_at)",
        )
        .bind(run.0)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound(format!("run {}", run.0))
            }
            _ => backend(e),
        })?;
        commit(tx).await
    }

    async fn reports_due(&self, now: Timestamp, limit: u32) -> Result<Vec<ForgeReport>> {
        sqlx::query(&format!(
            "{SELECT_REPORT} WHERE due = 1 AND next_at <= ? ORDER BY next_at, run_id LIMIT ?"
        ))
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .iter()
        .map(report)
        .collect()
    }

    async fn report_delivered(&self, run: RunId, seq: i64, comment_id: Option<u64>) -> Result<()> {
        let mut tx = self.write().await?;
        let n = sqlx::query(
            "UPDATE forge_reports SET attempts = 0, last_error = NULL, \
             comment_id = coalesce(?, comment_id), due = CASE WHEN seq = ? THEN 0 ELSE due END \
             WHERE run_id = ?",
        )
        .bind(comment_id.map(|c| c as i64))
        .bind(seq)
        .bind(run.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("report of run {}", run.0)));
        }
        commit(tx).await
    }

    async fn report_failed(
        &self,
        run: RunId,
        error: &str,
        next_at: Timestamp,
        comment_id: Option<u64>,
    ) -> Result<()> {
        let mut tx = self.write().await?;
        let n = sqlx::query(
            "UPDATE forge_reports SET attempts = attempts + 1, last_error = ?, next_at = ?, \
             comment_id = coalesce(?, comment_id) WHERE run_id = ?",
        )
        .bind(error)
        .bind(ts(next_at))
        .bind(comment_id.map(|c| c as i64))
        .bind(run.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("report of run {}", run.0)));
        }
        commit(tx).await
    }

    async fn report(&self, run: RunId) -> Result<Option<ForgeReport>> {
        sqlx::query(&format!("{SELECT_REPORT} WHERE run_id = ?"))
            .bind(run.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(report)
            .transpose()
    }
}
