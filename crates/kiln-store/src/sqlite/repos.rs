//! [`RepoStore`] over SQLite.

use super::codec::{from_ts, ts};
use super::{SqliteStore, backend, commit, conflict_on_unique};
use crate::ports::{RepoStore, Result};
use crate::types::RepoRecord;
use jiff::Timestamp;
use kiln_model::RepoId;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

const SELECT: &str = "SELECT id, name, url, created_at FROM repos";

fn repo(row: &SqliteRow) -> Result<RepoRecord> {
    Ok(RepoRecord {
        id: RepoId(row.try_get("id").map_err(backend)?),
        name: row.try_get("name").map_err(backend)?,
        url: row.try_get("url").map_err(backend)?,
        created_at: from_ts(row.try_get("created_at").map_err(backend)?)?,
    })
}

#[async_trait::async_trait]
impl RepoStore for SqliteStore {
    async fn add_repo(&self, name: &str, url: &str, now: Timestamp) -> Result<RepoRecord> {
        let mut tx = self.write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO repos (name, url, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(url)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, || format!("a repository named `{name}` exists")))?;
        let row = sqlx::query(&format!("{SELECT} WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let record = repo(&row)?;
        commit(tx).await?;
        Ok(record)
    }

    async fn repos(&self) -> Result<Vec<RepoRecord>> {
        sqlx::query(&format!("{SELECT} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(repo)
            .collect()
    }

    async fn repo_by_name(&self, name: &str) -> Result<Option<RepoRecord>> {
        sqlx::query(&format!("{SELECT} WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(repo)
            .transpose()
    }
}
