//! [`GateStore`] over SQLite: concurrency groups, environments, deploys.

use super::codec::{from_opt_json, from_opt_ts, from_ts, parse_status, status_str, to_json, ts};
use super::{SqliteStore, backend, commit};
use crate::ports::{GateStore, Result, StoreError};
use crate::types::{EndEntry, EntryState, EnvironmentRecord, GateEntryRecord, GateKey, NewGate};
use jiff::Timestamp;
use kiln_core::gate::{Approval, GateKind};
use kiln_model::{InstanceId, RepoId, RunId};
use kiln_proto::api::Waiting;
use kiln_proto::results::DeployOutcome;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

const SELECT_ENTRY: &str = "SELECT g.id, g.repo_id, g.kind, g.name, g.run_id, g.instance_id, \
     i.job_key, g.commit_sha, g.state, g.force, g.cancel_in_progress, g.approval, g.approver, \
     g.actor, g.outcome, COALESCE(i.status, r.status) AS subject_status, \
     json_extract(i.result, '$.deploy') AS deploy, g.created_at, g.released_at, g.finished_at \
     FROM gate_entries g JOIN runs r ON r.id = g.run_id \
     LEFT JOIN instances i ON i.id = g.instance_id";

pub(super) fn kind_str(k: GateKind) -> &'static str {
    k.as_str()
}

fn parse_kind(s: &str) -> Result<GateKind> {
    match s {
        "group" => Ok(GateKind::Group),
        "environment" => Ok(GateKind::Environment),
        other => Err(StoreError::Backend(format!("unknown gate kind `{other}`"))),
    }
}

pub(super) fn approval_str(a: Approval) -> &'static str {
    match a {
        Approval::NotNeeded => "not_needed",
        Approval::Pending => "pending",
        Approval::Granted => "granted",
        Approval::Rejected => "rejected",
    }
}

fn parse_approval(s: &str) -> Result<Approval> {
    match s {
        "not_needed" => Ok(Approval::NotNeeded),
        "pending" => Ok(Approval::Pending),
        "granted" => Ok(Approval::Granted),
        "rejected" => Ok(Approval::Rejected),
        other => Err(StoreError::Backend(format!("unknown approval `{other}`"))),
    }
}

fn parse_state(s: &str) -> Result<EntryState> {
    match s {
        "waiting" => Ok(EntryState::Waiting),
        "holding" => Ok(EntryState::Holding),
        "done" => Ok(EntryState::Done),
        other => Err(StoreError::Backend(format!("unknown gate state `{other}`"))),
    }
}

fn entry_record(row: &SqliteRow) -> Result<GateEntryRecord> {
    let deploy: Option<String> = row.try_get("deploy").map_err(backend)?;
    let deploy: Option<DeployOutcome> = match deploy {
        // json_extract gives a JSON string's value without its quotes.
        Some(d) => from_opt_json("deploy outcome", Some(format!("\"{d}\"")))?,
        None => None,
    };
    Ok(GateEntryRecord {
        id: row.try_get("id").map_err(backend)?,
        key: GateKey {
            repo: RepoId(row.try_get("repo_id").map_err(backend)?),
            kind: parse_kind(row.try_get("kind").map_err(backend)?)?,
            name: row.try_get("name").map_err(backend)?,
        },
        run: RunId(row.try_get("run_id").map_err(backend)?),
        instance: row
            .try_get::<Option<i64>, _>("instance_id")
            .map_err(backend)?
            .map(InstanceId),
        job_key: row.try_get("job_key").map_err(backend)?,
        commit: row.try_get("commit_sha").map_err(backend)?,
        state: parse_state(row.try_get("state").map_err(backend)?)?,
        force: row.try_get("force").map_err(backend)?,
        cancel_in_progress: row.try_get("cancel_in_progress").map_err(backend)?,
        approval: parse_approval(row.try_get("approval").map_err(backend)?)?,
        approver: row.try_get("approver").map_err(backend)?,
        actor: row.try_get("actor").map_err(backend)?,
        outcome: row.try_get("outcome").map_err(backend)?,
        subject_status: parse_status(row.try_get("subject_status").map_err(backend)?)?,
        deploy,
        created_at: from_ts(row.try_get("created_at").map_err(backend)?)?,
        released_at: from_opt_ts(row.try_get("released_at").map_err(backend)?)?,
        finished_at: from_opt_ts(row.try_get("finished_at").map_err(backend)?)?,
    })
}

/// Insert an entry for a run (instance `None`) or an instance, inside the
/// transaction that creates it.
pub(super) async fn insert_entry(
    tx: &mut Transaction<'static, Sqlite>,
    repo: RepoId,
    run: RunId,
    instance: Option<InstanceId>,
    gate: &NewGate,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO gate_entries (repo_id, kind, name, run_id, instance_id, commit_sha, state, \
         force, cancel_in_progress, approval, actor, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, 'waiting', ?, ?, ?, ?, ?)",
    )
    .bind(repo.0)
    .bind(kind_str(gate.kind))
    .bind(&gate.name)
    .bind(run.0)
    .bind(instance.map(|i| i.0))
    .bind(&gate.commit)
    .bind(gate.force)
    .bind(gate.cancel_in_progress)
    .bind(approval_str(gate.approval))
    .bind(&gate.actor)
    .bind(ts(now))
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}

async fn entry_on(tx: &mut Transaction<'static, Sqlite>, id: i64) -> Result<GateEntryRecord> {
    let row = sqlx::query(&format!("{SELECT_ENTRY} WHERE g.id = ?"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::NotFound(format!("gate entry {id}")))?;
    entry_record(&row)
}

#[async_trait::async_trait]
impl GateStore for SqliteStore {
    async fn live_gates(&self) -> Result<Vec<GateKey>> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT DISTINCT repo_id, kind, name FROM gate_entries WHERE state != 'done' \
             ORDER BY repo_id, kind, name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.into_iter()
            .map(|(repo, kind, name)| {
                Ok(GateKey {
                    repo: RepoId(repo),
                    kind: parse_kind(&kind)?,
                    name,
                })
            })
            .collect()
    }

    async fn gate_entries(&self, key: &GateKey) -> Result<Vec<GateEntryRecord>> {
        let rows = sqlx::query(&format!(
            "{SELECT_ENTRY} WHERE g.repo_id = ? AND g.kind = ? AND g.name = ? \
             AND g.state != 'done' ORDER BY g.id"
        ))
        .bind(key.repo.0)
        .bind(kind_str(key.kind))
        .bind(&key.name)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(entry_record).collect()
    }

    async fn run_gate_entries(&self, run: RunId) -> Result<Vec<GateEntryRecord>> {
        let rows = sqlx::query(&format!("{SELECT_ENTRY} WHERE g.run_id = ? ORDER BY g.id"))
            .bind(run.0)
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter().map(entry_record).collect()
    }

    async fn gate_history(&self, key: &GateKey, limit: u32) -> Result<Vec<GateEntryRecord>> {
        let rows = sqlx::query(&format!(
            "{SELECT_ENTRY} WHERE g.repo_id = ? AND g.kind = ? AND g.name = ? \
             ORDER BY g.id DESC LIMIT ?"
        ))
        .bind(key.repo.0)
        .bind(kind_str(key.kind))
        .bind(&key.name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(entry_record).collect()
    }

    async fn release_entry(&self, id: i64, now: Timestamp) -> Result<bool> {
        let mut tx = self.write().await?;
        let entry = entry_on(&mut tx, id).await?;
        if entry.state != EntryState::Waiting {
            return Ok(false);
        }
        sqlx::query("UPDATE gate_entries SET state = 'holding', released_at = ? WHERE id = ?")
            .bind(ts(now))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        match entry.instance {
            Some(inst) => {
                sqlx::query("UPDATE instances SET hold = NULL WHERE id = ?")
                    .bind(inst.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            None => {
                sqlx::query("UPDATE runs SET hold = NULL WHERE id = ?")
                    .bind(entry.run.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
        }
        commit(tx).await?;
        Ok(true)
    }

    async fn end_entry(&self, end: EndEntry) -> Result<bool> {
        let mut tx = self.write().await?;
        let entry = entry_on(&mut tx, end.id).await?;
        if entry.state == EntryState::Done {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE gate_entries SET state = 'done', outcome = ?, finished_at = ? WHERE id = ?",
        )
        .bind(&end.outcome)
        .bind(ts(end.now))
        .bind(end.id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(status) = end.end_subject {
            if !status.is_terminal() {
                return Err(StoreError::Conflict(format!(
                    "a gate entry cannot end its subject as {status}"
                )));
            }
            match entry.instance {
                Some(inst) => {
                    sqlx::query(
                        "UPDATE instances SET status = ?, reason = ?, hold = NULL, \
                         graph_applied = 0, finished_at = ? \
                         WHERE id = ? AND status = 'queued'",
                    )
                    .bind(status_str(status))
                    .bind(&end.outcome)
                    .bind(ts(end.now))
                    .bind(inst.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
                None => {
                    sqlx::query(
                        "UPDATE runs SET status = ?, error = ?, hold = NULL, finished_at = ?, \
                         version = version + 1 WHERE id = ? AND status = 'queued'",
                    )
                    .bind(status_str(status))
                    .bind(&end.outcome)
                    .bind(ts(end.now))
                    .bind(entry.run.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
            }
        }
        if let Some(env) = &end.environment {
            sqlx::query(
                "INSERT INTO environments (repo_id, name, commit_sha, healthy, run_id, entry_id, \
                 deployed_by, deployed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (repo_id, name) DO UPDATE SET commit_sha = excluded.commit_sha, \
                 healthy = excluded.healthy, run_id = excluded.run_id, \
                 entry_id = excluded.entry_id, deployed_by = excluded.deployed_by, \
                 deployed_at = excluded.deployed_at",
            )
            .bind(env.repo.0)
            .bind(&env.name)
            .bind(&env.commit)
            .bind(env.healthy)
            .bind(env.run.0)
            .bind(env.entry)
            .bind(&env.deployed_by)
            .bind(ts(env.deployed_at))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        commit(tx).await?;
        Ok(true)
    }

    async fn set_approval(
        &self,
        id: i64,
        approval: Approval,
        approver: &str,
        then_hold: Option<Waiting>,
        now: Timestamp,
    ) -> Result<bool> {
        let _ = now;
        let mut tx = self.write().await?;
        let entry = entry_on(&mut tx, id).await?;
        if entry.state != EntryState::Waiting || entry.approval != Approval::Pending {
            return Ok(false);
        }
        sqlx::query("UPDATE gate_entries SET approval = ?, approver = ? WHERE id = ?")
            .bind(approval_str(approval))
            .bind(approver)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if let (Some(inst), Some(hold)) = (entry.instance, then_hold) {
            sqlx::query("UPDATE instances SET hold = ? WHERE id = ? AND status = 'queued'")
                .bind(to_json(&hold)?)
                .bind(inst.0)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        commit(tx).await?;
        Ok(true)
    }

    async fn environment(&self, repo: RepoId, name: &str) -> Result<Option<EnvironmentRecord>> {
        let row = sqlx::query(
            "SELECT repo_id, name, commit_sha, healthy, run_id, entry_id, deployed_by, \
             deployed_at FROM environments WHERE repo_id = ? AND name = ?",
        )
        .bind(repo.0)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|row| {
            Ok(EnvironmentRecord {
                repo: RepoId(row.try_get("repo_id").map_err(backend)?),
                name: row.try_get("name").map_err(backend)?,
                commit: row.try_get("commit_sha").map_err(backend)?,
                healthy: row.try_get("healthy").map_err(backend)?,
                run: RunId(row.try_get("run_id").map_err(backend)?),
                entry: row.try_get("entry_id").map_err(backend)?,
                deployed_by: row.try_get("deployed_by").map_err(backend)?,
                deployed_at: from_ts(row.try_get("deployed_at").map_err(backend)?)?,
            })
        })
        .transpose()
    }

    async fn environment_names(&self, repo: RepoId) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT name FROM environments WHERE repo_id = ? UNION \
             SELECT name FROM gate_entries WHERE repo_id = ? AND kind = 'environment' \
             ORDER BY name",
        )
        .bind(repo.0)
        .bind(repo.0)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }
}
