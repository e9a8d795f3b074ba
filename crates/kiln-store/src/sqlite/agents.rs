//! [`AgentStore`] and [`AuthStore`] over SQLite.

use super::codec::{from_json, from_ts, parse_role, to_json, to_u32, ts};
use super::{SqliteStore, backend, commit, conflict_on_unique};
use crate::ports::{AgentStore, AuthStore, Result, StoreError};
use crate::types::{AgentRecord, TokenRecord};
use jiff::Timestamp;
use kiln_model::AgentId;
use kiln_proto::api::Role;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

const SELECT_AGENT: &str = "SELECT id, name, labels, capacity, last_seen, lost_at FROM agents";

fn agent(row: &SqliteRow) -> Result<AgentRecord> {
    Ok(AgentRecord {
        id: AgentId(row.try_get("id").map_err(backend)?),
        name: row.try_get("name").map_err(backend)?,
        labels: from_json("agent labels", row.try_get("labels").map_err(backend)?)?,
        capacity: to_u32("capacity", row.try_get("capacity").map_err(backend)?)?,
        last_seen: from_ts(row.try_get("last_seen").map_err(backend)?)?,
        lost_at: row
            .try_get::<Option<i64>, _>("lost_at")
            .map_err(backend)?
            .map(from_ts)
            .transpose()?,
    })
}

const SELECT_TOKEN: &str = "SELECT id, role, name, created_at FROM tokens";

fn token(row: &SqliteRow) -> Result<TokenRecord> {
    Ok(TokenRecord {
        id: row.try_get("id").map_err(backend)?,
        role: parse_role(row.try_get("role").map_err(backend)?)?,
        name: row.try_get("name").map_err(backend)?,
        created_at: from_ts(row.try_get("created_at").map_err(backend)?)?,
    })
}

#[async_trait::async_trait]
impl AgentStore for SqliteStore {
    async fn register_agent(
        &self,
        name: &str,
        labels: &[String],
        capacity: u32,
        session_hash: &str,
        now: Timestamp,
    ) -> Result<AgentRecord> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "INSERT INTO agents (name, labels, capacity, created_at, last_seen, session_hash) \
             VALUES (?1, ?2, ?3, ?4, ?4, ?5) \
             ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, \
             capacity = excluded.capacity, last_seen = MAX(last_seen, excluded.last_seen), \
             session_hash = excluded.session_hash, lost_at = NULL \
             RETURNING id, name, labels, capacity, last_seen, lost_at",
        )
        .bind(name)
        .bind(to_json(labels)?)
        .bind(i64::from(capacity))
        .bind(ts(now))
        .bind(session_hash)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let record = agent(&row)?;
        commit(tx).await?;
        Ok(record)
    }

    async fn agent_by_session(&self, session_hash: &str) -> Result<Option<AgentRecord>> {
        sqlx::query(&format!("{SELECT_AGENT} WHERE session_hash = ?"))
            .bind(session_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(agent)
            .transpose()
    }

    async fn agent(&self, id: AgentId) -> Result<AgentRecord> {
        let row = sqlx::query(&format!("{SELECT_AGENT} WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::NotFound(format!("agent {id}")))?;
        agent(&row)
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>> {
        sqlx::query(&format!("{SELECT_AGENT} ORDER BY name"))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?
            .iter()
            .map(agent)
            .collect()
    }

    async fn touch_agent(&self, id: AgentId, now: Timestamp) -> Result<()> {
        let mut tx = self.write().await?;
        let done = sqlx::query(
            "UPDATE agents SET last_seen = MAX(last_seen, ?), lost_at = NULL WHERE id = ?",
        )
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("agent {id}")));
        }
        commit(tx).await
    }

    async fn mark_lost_agents(
        &self,
        silent_since: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<AgentId>> {
        let mut tx = self.write().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE agents SET lost_at = ? WHERE lost_at IS NULL AND last_seen < ? RETURNING id",
        )
        .bind(ts(now))
        .bind(ts(silent_since))
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        commit(tx).await?;
        let mut ids: Vec<AgentId> = ids.into_iter().map(AgentId).collect();
        ids.sort();
        Ok(ids)
    }
}

#[async_trait::async_trait]
impl AuthStore for SqliteStore {
    async fn add_token(
        &self,
        hash: &str,
        role: Role,
        name: Option<&str>,
        now: Timestamp,
    ) -> Result<TokenRecord> {
        let mut tx = self.write().await?;
        let row = sqlx::query(
            "INSERT INTO tokens (hash, role, name, created_at) VALUES (?, ?, ?, ?) \
             RETURNING id, role, name, created_at",
        )
        .bind(hash)
        .bind(role.as_str())
        .bind(name)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, || "a token with that secret exists".to_owned()))?;
        let record = token(&row)?;
        commit(tx).await?;
        Ok(record)
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>> {
        sqlx::query(&format!("{SELECT_TOKEN} WHERE hash = ?"))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(token)
            .transpose()
    }

    async fn token_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        u64::try_from(n).map_err(|_| StoreError::Backend(format!("token count {n}")))
    }
}
